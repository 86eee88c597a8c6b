//! The two memory mappings of a BPF ring buffer and the atomic accesses to them.
//!
//! Layout (kernel/bpf/ringbuf.c, `ringbuf_map_mmap`): page 0 holds `consumer_pos`
//! and is the only page user space may map writable; page 1 holds `producer_pos`;
//! the data area follows and is mapped twice back to back, so a record that wraps
//! around the end is still contiguous in our view.
//!
//! Only the window of the data area that holds unread records is mapped
//! ([`RingMaps::map_window`]), and a large one only while it is read
//! ([`RingMaps::release_data`]; up to 64 KiB stay mapped for the next wake-up): the
//! kernel maps a ring mapping's pages all at once (`remap_vmalloc_range`), so mapping
//! the whole area twice cost 16 MiB of the daemon's RSS for the default 8 MiB ring
//! and about a millisecond of mmap/munmap per wake-up, i.e. per exec on the host. A
//! window starts at the page of the consumer position in the first copy and is at most
//! one data area long, so thanks to the second copy it is always contiguous. The
//! consumer and producer pages stay mapped.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use super::MapFd;

/// The smallest window mapped, and the largest kept mapped between wake-ups.
const KEEP_MAPPED: usize = 64 << 10;

/// A mapped part of the doubled data area: ring positions `start..end` (`start`
/// page-aligned), the first at the mapping's first byte.
#[derive(Debug)]
struct Window {
    map: MmapRaw,
    start: u64,
    end: u64,
}

/// The mappings of one ring-buffer map.
#[derive(Debug)]
pub struct RingMaps {
    consumer: MmapRaw,
    /// The producer page alone (for `producer_pos` while the data is not mapped).
    producer: MmapRaw,
    /// The mapped window of the data area while records are read.
    data: Option<Window>,
    fd: std::os::fd::RawFd,
    page: usize,
    size: usize,
}

impl RingMaps {
    /// Maps the ring of `map`, whose data area is `size` bytes (a power of two).
    pub fn new(map: &MapFd, size: usize) -> io::Result<Self> {
        if !size.is_power_of_two() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "ring size must be a power of two",
            ));
        }
        let page = page_size();
        let consumer = MmapOptions::new().len(page).map_raw(map.as_raw_fd())?;
        let producer = MmapOptions::new()
            .offset(page as u64)
            .len(page)
            .map_raw_read_only(map.as_raw_fd())?;
        Ok(Self {
            consumer,
            producer,
            data: None,
            fd: map.as_raw_fd(),
            page,
            size,
        })
    }

    /// Maps the data area that holds ring positions `from..to` (at most one data area:
    /// `to − from ≤ size`), unless the mapped window holds them already. The map's fd
    /// must still be open: the owner keeps it for as long as `self`.
    ///
    /// Returns an error if mmap fails.
    pub fn map_window(&mut self, from: u64, to: u64) -> io::Result<()> {
        if self
            .data
            .as_ref()
            .is_some_and(|w| w.start <= from && to <= w.end)
        {
            return Ok(());
        }
        self.data = None;
        let to = to.min(from.saturating_add(self.size as u64));
        let page = self.page as u64;
        let start = from & !(page - 1);
        // Offset of `start` in the first copy of the data area; the window is at most
        // size + page bytes from there, which the second copy covers.
        let off = start & (self.size as u64 - 1);
        // At least KEEP_MAPPED: the records of the next few wake-ups land in it too.
        let len = (to - start).div_ceil(page).max(1) * page;
        let len = len.max(KEEP_MAPPED as u64).min(2 * self.size as u64 - off);
        let map = MmapOptions::new()
            .offset(2 * page + off)
            .len(len as usize)
            .map_raw_read_only(self.fd)?;
        self.data = Some(Window {
            map,
            start,
            end: start + len,
        });
        Ok(())
    }

    /// Unmaps the data area if its window is larger than [`KEEP_MAPPED`] (a capture's):
    /// a small window stays for the next wake-up, which saves a mmap/munmap pair per
    /// exec event on the host for at most 64 KiB of RSS.
    pub fn release_data(&mut self) {
        if self
            .data
            .as_ref()
            .is_some_and(|w| w.end - w.start > KEEP_MAPPED as u64)
        {
            self.data = None;
        }
    }

    /// Data area size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    fn consumer_pos_ref(&self) -> &AtomicU64 {
        // SAFETY: the consumer page is a live, page-aligned shared mapping of at
        // least 8 bytes for as long as `self` lives; the kernel only reads
        // consumer_pos, and all our accesses go through this atomic.
        unsafe { &*(self.consumer.as_mut_ptr() as *const AtomicU64) }
    }

    /// `consumer_pos`, loaded with Acquire (pairs with nothing the kernel
    /// publishes, but keeps the read ordered before our data reads).
    pub fn consumer_pos(&self) -> u64 {
        self.consumer_pos_ref().load(Ordering::Acquire)
    }

    /// Stores `consumer_pos` with Release: every read of the record data we are
    /// giving back happens before the kernel can see the space as free and
    /// overwrite it (the kernel reads it with smp_load_acquire in
    /// `ringbuf_avail_data_sz` / `__bpf_ringbuf_reserve`).
    pub fn set_consumer_pos(&self, pos: u64) {
        self.consumer_pos_ref().store(pos, Ordering::Release)
    }

    /// `producer_pos`, loaded with Acquire: pairs with the kernel's
    /// smp_store_release in `__bpf_ringbuf_reserve`, so every record header up to
    /// it has been written (possibly still BUSY).
    pub fn producer_pos(&self) -> u64 {
        // SAFETY: the producer page is a live, page-aligned shared mapping for as
        // long as `self` lives; the kernel writes producer_pos atomically.
        let p = unsafe { &*(self.producer.as_ptr() as *const AtomicU64) };
        p.load(Ordering::Acquire)
    }

    /// Where ring positions `pos..pos + len` are in the mapped window, if it holds them.
    fn data_ptr(&self, pos: u64, len: usize) -> Option<*const u8> {
        let w = self.data.as_ref()?;
        let end = pos.checked_add(len as u64)?;
        if pos < w.start || end > w.end {
            return None;
        }
        // SAFETY: start <= pos and pos + len <= end: inside the window's mapping.
        Some(unsafe { w.map.as_ptr().add((pos - w.start) as usize) })
    }

    /// The 32-bit length word of the record header at `pos`, loaded with Acquire:
    /// pairs with the kernel's smp_store_release in `bpf_ringbuf_commit` that
    /// clears the BUSY bit after the record data was written. `None` while the
    /// window does not hold it.
    pub fn header_len(&self, pos: u64) -> Option<u32> {
        let p = self.data_ptr(pos, 8)?;
        // SAFETY: `pos` is 8-aligned (every record is rounded up to 8) and the window
        // starts page-aligned, so the header is 4-aligned, and it is within the
        // mapping; the kernel updates it atomically.
        let h = unsafe { &*(p as *const AtomicU32) };
        Some(h.load(Ordering::Acquire))
    }

    /// The `len` bytes of record payload after the 8-byte header at `pos`.
    ///
    /// Returns `None` if `len` exceeds the ring or the window does not hold it.
    pub fn payload(&self, pos: u64, len: usize) -> Option<&[u8]> {
        if len > self.size.saturating_sub(8) {
            return None;
        }
        let p = self.data_ptr(pos, 8 + len)?;
        // SAFETY: the window holds positions pos..pos + 8 + len. The bytes were
        // published by the kernel's release store of the header (read with
        // Acquire by the caller) and are not rewritten until we advance
        // consumer_pos past them, which needs `&self` (the borrow ends first).
        Some(unsafe { std::slice::from_raw_parts(p.add(8), len) })
    }
}

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory effects.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}
