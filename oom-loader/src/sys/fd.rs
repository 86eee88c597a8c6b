//! Typed owned file descriptors: a map, a program, a BPF link, a perf event.
//! Closing the last fd of a link or perf event detaches the program.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::consts;

/// A BPF map fd with the sizes the kernel will read and write through it.
#[derive(Debug)]
pub struct MapFd {
    fd: OwnedFd,
    key_size: u32,
    /// Value bytes a lookup writes: per-CPU maps return one 8-aligned value per
    /// possible CPU.
    value_size_total: u32,
}

impl MapFd {
    /// `cpus`: possible CPUs, the number of values a per-CPU map's lookup writes.
    pub(crate) fn new(
        fd: OwnedFd,
        map_type: u32,
        key_size: u32,
        value_size: u32,
        cpus: u32,
    ) -> Self {
        let value_size_total = if map_type == consts::MAP_TYPE_PERCPU_ARRAY {
            value_size.div_ceil(8) * 8 * cpus
        } else {
            value_size
        };
        Self {
            fd,
            key_size,
            value_size_total,
        }
    }

    /// Key size in bytes.
    pub fn key_size(&self) -> u32 {
        self.key_size
    }

    /// Bytes a lookup or update transfers.
    pub fn value_size_total(&self) -> u32 {
        self.value_size_total
    }
}

/// A loaded BPF program.
#[derive(Debug)]
pub struct ProgFd(OwnedFd);

impl ProgFd {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        Self(fd)
    }
}

/// A BPF link; dropping it detaches the program.
#[derive(Debug)]
pub struct LinkFd(OwnedFd);

impl LinkFd {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        Self(fd)
    }
}

/// A perf event (here: a tracepoint); dropping it detaches an ioctl-attached program.
#[derive(Debug)]
pub struct PerfFd(OwnedFd);

impl PerfFd {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        Self(fd)
    }
}

macro_rules! fd_impls {
    ($($t:ty => $field:tt),*) => {$(
        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.$field.as_fd()
            }
        }
        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                self.$field.as_raw_fd()
            }
        }
    )*};
}
fd_impls!(MapFd => fd, ProgFd => 0, LinkFd => 0, PerfFd => 0);
