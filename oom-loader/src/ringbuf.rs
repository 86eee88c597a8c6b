//! BPF ring-buffer consumer: a lending reader over the map's mappings, woken by epoll.
//!
//! Protocol (kernel/bpf/ringbuf.c): the producer reserves `round_up(len + 8, 8)`
//! bytes at `producer_pos`, writes an 8-byte header whose first word is `len` with
//! the BUSY bit set, and advances `producer_pos` (release). On commit it clears BUSY
//! (or sets DISCARD) with a release store. The consumer reads records in order from
//! `consumer_pos` and must stop at the first BUSY header, because a record reserved
//! earlier blocks every later one. Advancing `consumer_pos` (release) hands the space
//! back.
//!
//! Wake-ups: the kernel signals the map fd only when a committed record sits at the
//! consumer position (the consumer was caught up), or on `BPF_RB_FORCE_WAKEUP`; so
//! the reader drains fully before it sleeps.

use std::io;
use std::ops::Deref;
use std::time::Duration;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use crate::sys::ring::RingMaps;
use crate::sys::MapFd;

/// `BPF_RINGBUF_BUSY_BIT`: the record is reserved but not committed yet.
const BUSY: u32 = 1 << 31;
/// `BPF_RINGBUF_DISCARD_BIT`: the producer discarded the record.
const DISCARD: u32 = 1 << 30;
/// `BPF_RINGBUF_HDR_SZ`.
const HDR: u64 = 8;

/// A decoded record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Header {
    /// Reserved, not yet committed: stop here.
    Busy,
    /// Discarded; skip `span` bytes.
    Discarded {
        /// Bytes to advance the consumer position by.
        span: u64,
    },
    /// A committed record of `len` payload bytes.
    Record {
        /// Payload bytes.
        len: u32,
        /// Bytes to advance the consumer position by.
        span: u64,
    },
}

/// Decodes the first header word of a ring record.
pub fn decode_header(word: u32) -> Header {
    if word & BUSY != 0 {
        return Header::Busy;
    }
    let len = word & !(BUSY | DISCARD);
    let span = (u64::from(len) + HDR).div_ceil(8) * 8;
    if word & DISCARD != 0 {
        Header::Discarded { span }
    } else {
        Header::Record { len, span }
    }
}

/// A ring-buffer consumer.
#[derive(Debug)]
pub struct RingBuf {
    maps: RingMaps,
    epoll: Epoll,
    // Keep the map open as long as the mappings are used.
    _map: MapFd,
}

impl std::os::fd::AsFd for RingBuf {
    /// The ring-buffer map fd: readable (EPOLLIN) when records are waiting.
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self._map.as_fd()
    }
}

impl RingBuf {
    /// Maps the ring buffer `map` whose data area is `size` bytes.
    ///
    /// Returns an error if mmap or epoll setup fails.
    pub fn new(map: MapFd, size: usize) -> io::Result<Self> {
        let maps = RingMaps::new(&map, size)?;
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll.add(&map, EpollEvent::new(EpollFlags::EPOLLIN, 0))?;
        Ok(Self {
            maps,
            epoll,
            _map: map,
        })
    }

    /// Data area size in bytes.
    pub fn size(&self) -> usize {
        self.maps.size()
    }

    /// Bytes committed or reserved but not yet consumed.
    pub fn pending_bytes(&self) -> u64 {
        self.maps
            .producer_pos()
            .saturating_sub(self.maps.consumer_pos())
    }

    /// The next committed record, or `None` when the ring is empty or the next
    /// record is still being written. Dropping the record releases its space.
    #[expect(
        clippy::should_implement_trait,
        reason = "lending: a record borrows the reader"
    )]
    pub fn next(&mut self) -> Option<RingRecord<'_>> {
        loop {
            let cons = self.maps.consumer_pos();
            let prod = self.maps.producer_pos();
            if cons >= prod {
                return None;
            }
            // Map the unread part of the data area (if the window does not hold the
            // header already): records reserved since the last mapping are in it.
            if self.maps.header_len(cons).is_none() {
                if let Err(e) = self.maps.map_window(cons, prod) {
                    log::warn!("mapping the ring buffer's data area: {e}");
                    return None;
                }
            }
            let word = self.maps.header_len(cons)?;
            match decode_header(word) {
                Header::Busy => return None,
                Header::Discarded { span } => self.maps.set_consumer_pos(cons + span),
                Header::Record { len, span } => {
                    if len as usize > self.maps.size().saturating_sub(8) {
                        // A length beyond the ring cannot come from the kernel;
                        // skip it rather than spin.
                        log::warn!("ring record of {len} bytes exceeds the ring; skipped");
                        self.maps.set_consumer_pos(cons + span);
                        continue;
                    }
                    if self.maps.payload(cons, len as usize).is_none() {
                        // Committed after the window was mapped: map up to the
                        // producer position as it is now (past this record).
                        let prod = self.maps.producer_pos().max(cons + span);
                        if let Err(e) = self.maps.map_window(cons, prod) {
                            log::warn!("mapping the ring buffer's data area: {e}");
                            return None;
                        }
                    }
                    let data = self.maps.payload(cons, len as usize)?;
                    return Some(RingRecord {
                        maps: &self.maps,
                        data,
                        next: cons + span,
                    });
                }
            }
        }
    }

    /// Sleeps until the kernel signals new data or `timeout` passes (`None`: no
    /// limit). Returns true if woken by data. Call only after [`RingBuf::next`]
    /// returned `None`.
    ///
    /// Returns an error if epoll_wait fails (EINTR is reported as a wake-up).
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        // Nothing is borrowed (`&mut self`): give a capture's data pages back while
        // asleep (a small window of event records stays mapped).
        self.maps.release_data();
        let t = match timeout {
            None => EpollTimeout::NONE,
            Some(d) => {
                // Round up so a 0.5 ms deadline does not become a busy loop.
                let ms = d.as_micros().div_ceil(1000).min(i32::MAX as u128);
                EpollTimeout::try_from(ms as u32).unwrap_or(EpollTimeout::NONE)
            }
        };
        let mut ev = [EpollEvent::empty()];
        match self.epoll.wait(&mut ev, t) {
            Ok(n) => Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => Ok(true),
            Err(e) => Err(e.into()),
        }
    }
}

/// One record borrowed from the ring; dropping it advances the consumer.
#[derive(Debug)]
pub struct RingRecord<'a> {
    maps: &'a RingMaps,
    data: &'a [u8],
    next: u64,
}

impl Deref for RingRecord<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.data
    }
}

impl Drop for RingRecord<'_> {
    fn drop(&mut self) {
        // Release: our reads of `data` happen before the kernel may reuse it.
        self.maps.set_consumer_pos(self.next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_committed_rounds_to_8() {
        assert_eq!(decode_header(1), Header::Record { len: 1, span: 16 });
        assert_eq!(decode_header(8), Header::Record { len: 8, span: 16 });
        assert_eq!(decode_header(9), Header::Record { len: 9, span: 24 });
        assert_eq!(decode_header(0), Header::Record { len: 0, span: 8 });
    }

    #[test]
    fn header_busy_wins_over_everything() {
        assert_eq!(decode_header(BUSY | 40), Header::Busy);
        assert_eq!(decode_header(BUSY | DISCARD | 40), Header::Busy);
    }

    #[test]
    fn header_discarded_skips_its_span() {
        assert_eq!(
            decode_header(DISCARD | 120),
            Header::Discarded { span: 128 }
        );
    }

    #[test]
    fn header_max_len() {
        let len = (1u32 << 30) - 1;
        assert_eq!(
            decode_header(len),
            Header::Record {
                len,
                span: (u64::from(len) + 8).div_ceil(8) * 8
            }
        );
    }
}
