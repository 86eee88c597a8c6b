//! Reassembling captures from ring records and classifying them.
//!
//! A capture is (pid, capture id): chunk records with seq 0, 1, 2, … and then one
//! end record, all written by the same program run on one CPU, so they arrive in
//! order and the end record comes last. Records of other captures and events may
//! interleave.
//!
//! Classification: the kernel sends the SIGKILL before `oom/mark_victim` fires, and
//! the victim may run its signal delivery (our capture) on another CPU before or
//! after that, so the two records arrive in either order. A finished capture whose
//! pid already has a mark_victim is "oom" at once; otherwise it waits up to the
//! classification window for one, and is "killed" after that.
//!
//! Captures are not split across ring records of several program runs: the walk
//! runs once, in the first thread's SIGKILL delivery, into the free ring space; why
//! (with measurements) is explained at the top of `oom-bpf/src/oomprof.bpf.c`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use oom_core::abi::{Chunk, End, Entries, Victim};

/// Why the captured process died.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillReason {
    /// The OOM killer picked it (a mark_victim for its pid arrived).
    Oom,
    /// Some other SIGKILL (kill -9, systemd-oomd, cgroup.kill, …).
    Killed,
}

/// One complete capture: the bucket entries of a process at its SIGKILL.
#[derive(Clone, Debug)]
pub struct Capture {
    /// Thread-group id.
    pub pid: u32,
    /// Kernel-assigned capture id (unique while the program stays loaded).
    pub capture_id: u32,
    /// oom or killed.
    pub reason: KillReason,
    /// The end record: counts of everything read and not read.
    pub end: End,
    /// The matching mark_victim, for OOM kills.
    pub victim: Option<Victim>,
    /// Chunk records the end record announced but that never arrived.
    pub missing_chunks: u32,
    payload: Vec<u8>,
}

impl Capture {
    /// The bucket entries, in list order (newest bucket first, like Go's list).
    pub fn entries(&self) -> Entries<'_> {
        Entries::new(&self.payload, self.end.pc_base)
    }

    /// The concatenated chunk payloads.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// True when every bucket of the list is in [`Capture::entries`].
    pub fn is_complete(&self) -> bool {
        self.end.is_complete() && self.missing_chunks == 0
    }
}

#[derive(Default)]
struct Partial {
    payload: Vec<u8>,
    next_seq: u32,
    missing: u32,
}

/// Collects chunks into captures and classifies them.
pub(crate) struct Assembler {
    partial: HashMap<(u32, u32), Partial>,
    victims: HashMap<u32, (Victim, Instant)>,
    waiting: Vec<(Capture, Instant)>,
    window: Duration,
    keep_killed: bool,
}

/// How long a mark_victim is remembered for a capture that ends later.
const VICTIM_MEMORY: Duration = Duration::from_secs(30);

impl Assembler {
    pub(crate) fn new(window: Duration, keep_killed: bool) -> Self {
        Self {
            partial: HashMap::new(),
            victims: HashMap::new(),
            waiting: Vec::new(),
            window,
            keep_killed,
        }
    }

    pub(crate) fn chunk(&mut self, c: &Chunk<'_>) {
        let p = self.partial.entry((c.pid, c.capture_id)).or_default();
        if c.seq != p.next_seq {
            p.missing += c.seq.saturating_sub(p.next_seq);
        }
        p.payload.extend_from_slice(c.payload);
        p.next_seq = c.seq.wrapping_add(1);
    }

    /// A capture ended; returns it if it can be classified now.
    pub(crate) fn end(&mut self, end: End, now: Instant) -> Option<Capture> {
        let p = self
            .partial
            .remove(&(end.pid, end.capture_id))
            .unwrap_or_default();
        let missing = p.missing + end.chunks.saturating_sub(p.next_seq);
        let mut cap = Capture {
            pid: end.pid,
            capture_id: end.capture_id,
            reason: KillReason::Killed,
            end,
            victim: None,
            missing_chunks: missing,
            payload: p.payload,
        };
        if let Some((v, _)) = self.victims.remove(&end.pid) {
            cap.reason = KillReason::Oom;
            cap.victim = Some(v);
            return Some(cap);
        }
        self.waiting.push((cap, now + self.window));
        None
    }

    /// A mark_victim arrived; returns a capture it classifies.
    pub(crate) fn victim(&mut self, v: Victim, now: Instant) -> Option<Capture> {
        if let Some(i) = self.waiting.iter().position(|(c, _)| c.pid == v.pid) {
            let (mut cap, _) = self.waiting.swap_remove(i);
            cap.reason = KillReason::Oom;
            cap.victim = Some(v);
            return Some(cap);
        }
        self.victims.insert(v.pid, (v, now));
        None
    }

    /// A watched process exited: a capture without an end record is lost.
    pub(crate) fn exit(&mut self, pid: u32) {
        self.partial.retain(|&(p, id), _| {
            if p == pid {
                log::warn!("capture {id} of pid {pid} lost its end record (ring full)");
            }
            p != pid
        });
    }

    /// Captures whose window passed: "killed" (dropped unless asked to keep them).
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Vec<Capture>) {
        let mut i = 0;
        while i < self.waiting.len() {
            if self.waiting[i].1 <= now {
                let (cap, _) = self.waiting.swap_remove(i);
                if self.keep_killed {
                    out.push(cap);
                } else {
                    log::debug!(
                        "pid {} was killed (not by the OOM killer); capture dropped",
                        cap.pid
                    );
                }
            } else {
                i += 1;
            }
        }
        self.victims
            .retain(|_, (_, t)| now.duration_since(*t) < VICTIM_MEMORY);
    }

    /// The next moment [`Assembler::expire`] has work.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.waiting.iter().map(|(_, t)| *t).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oom_core::abi::Record;

    fn end(pid: u32, id: u32, chunks: u32) -> End {
        let mut b = [0u8; 120];
        b[0] = 5;
        b[4..8].copy_from_slice(&pid.to_le_bytes());
        b[8..12].copy_from_slice(&id.to_le_bytes());
        b[56..60].copy_from_slice(&chunks.to_le_bytes());
        match Record::parse(&b).unwrap() {
            Record::End(e) => e,
            _ => unreachable!(),
        }
    }

    fn victim(pid: u32) -> Victim {
        let mut b = [0u8; 112];
        b[0] = 1;
        b[4..8].copy_from_slice(&pid.to_le_bytes());
        match Record::parse(&b).unwrap() {
            Record::Victim(v) => v,
            _ => unreachable!(),
        }
    }

    #[test]
    fn victim_before_end_is_oom_at_once() {
        let t = Instant::now();
        let mut a = Assembler::new(Duration::from_millis(100), false);
        assert!(a.victim(victim(7), t).is_none());
        let c = a.end(end(7, 1, 0), t).unwrap();
        assert_eq!(c.reason, KillReason::Oom);
        assert!(c.is_complete());
    }

    #[test]
    fn victim_after_end_within_window_is_oom() {
        let t = Instant::now();
        let mut a = Assembler::new(Duration::from_millis(100), false);
        assert!(a.end(end(7, 1, 0), t).is_none());
        assert_eq!(a.next_deadline(), Some(t + Duration::from_millis(100)));
        let c = a.victim(victim(7), t).unwrap();
        assert_eq!(c.reason, KillReason::Oom);
    }

    #[test]
    fn no_victim_is_killed_and_kept_only_when_asked() {
        let t = Instant::now();
        for keep in [false, true] {
            let mut a = Assembler::new(Duration::from_millis(100), keep);
            assert!(a.end(end(7, 1, 0), t).is_none());
            let mut out = Vec::new();
            a.expire(t, &mut out);
            assert!(out.is_empty());
            a.expire(t + Duration::from_millis(100), &mut out);
            assert_eq!(out.len(), usize::from(keep));
            if keep {
                assert_eq!(out[0].reason, KillReason::Killed);
            }
        }
    }

    #[test]
    fn chunks_join_and_gaps_are_counted() {
        let t = Instant::now();
        let mut a = Assembler::new(Duration::ZERO, true);
        let p = [1u8, 2, 3];
        for seq in [0, 2] {
            a.chunk(&Chunk {
                pid: 7,
                capture_id: 1,
                seq,
                buckets: 1,
                payload: &p,
            });
        }
        a.victim(victim(7), t);
        let c = a.end(end(7, 1, 4), t).unwrap();
        assert_eq!(c.payload(), &[1, 2, 3, 1, 2, 3]);
        // seq 1 skipped, seq 3 never came.
        assert_eq!(c.missing_chunks, 2);
        assert!(!c.is_complete());
    }
}
