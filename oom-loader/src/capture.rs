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

use oom_core::abi::{Chunk, End, Entries, Entry, StackExpander, Victim};
use oom_core::bucket::{Bucket, MemRecord};

/// Why the captured process died.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillReason {
    /// The OOM killer picked it (a mark_victim for its pid arrived).
    Oom,
    /// Some other SIGKILL (kill -9, systemd-oomd, cgroup.kill, …).
    Killed,
    /// No mark_victim arrived, but the kernel lost event records around the capture
    /// (a full ring): it may have been the OOM killer's. Always kept.
    Unknown,
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
    /// Their stacks may share outer frames with the entry before: see
    /// [`Capture::for_each_bucket`] and [`Capture::buckets`] for whole stacks.
    pub fn entries(&self) -> Entries<'_> {
        Entries::new(&self.payload, self.end.pc_base)
    }

    /// Calls `f` with every bucket, whole stack expanded, in list order.
    ///
    /// Returns the first malformed entry's error.
    pub fn for_each_bucket(
        &self,
        mut f: impl FnMut(&Entry<'_>, Bucket<'_>),
    ) -> Result<(), oom_core::abi::Error> {
        let mut x = Box::new(StackExpander::new());
        let mut buf = vec![0u8; oom_core::abi::MAX_NSTK as usize * 8];
        for e in self.entries() {
            let e = e?;
            let b = x.bucket_into(&e, &mut buf)?;
            f(&e, b);
        }
        Ok(())
    }

    /// Every bucket with its whole stack, owned.
    ///
    /// Returns the first malformed entry's error.
    pub fn buckets(&self) -> Result<Vec<OwnedBucket>, oom_core::abi::Error> {
        let mut out = Vec::with_capacity(self.end.buckets_emitted as usize);
        self.for_each_bucket(|e, b| {
            out.push(OwnedBucket {
                size: b.size,
                stack: b.stack.iter().collect(),
                record: b.record,
                truncated: e.truncated(),
            })
        })?;
        Ok(out)
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

/// A captured bucket with its whole stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedBucket {
    /// Allocation size.
    pub size: u64,
    /// Return PCs, leaf first (runtime addresses of the victim).
    pub stack: Vec<u64>,
    /// Counters (cycles the kernel omitted are zero).
    pub record: MemRecord,
    /// The kernel cut the stack to `max_nstk`.
    pub truncated: bool,
}

struct Partial {
    payload: Vec<u8>,
    next_seq: u32,
    missing: u32,
    /// When its last chunk arrived.
    last: Instant,
}

impl Default for Partial {
    fn default() -> Self {
        Self {
            payload: Vec::new(),
            next_seq: 0,
            missing: 0,
            last: Instant::now(),
        }
    }
}

/// How long a capture's chunks wait for its end record. The end can come after the
/// process's exit event (a walk at the first thread's exit races the last thread's
/// exit), so a missing end is only declared lost after this.
const END_WAIT: Duration = Duration::from_secs(5);

/// Collects chunks into captures and classifies them.
///
/// Pids are reused, so a mark_victim and a capture of the same pid belong together only
/// if they are of the same process. The OOM killer sends SIGKILL, then fires
/// mark_victim; the victim captures at delivery or at its first thread's exit, and its
/// last thread's exit event may come before or after the capture's end record. So a
/// mark_victim that fires after the exit of the process that made a capture is some
/// later process's (a new process at that pid needs far longer than
/// [`SAME_PROCESS_SLACK_NS`] to start and run out of memory), and a remembered
/// mark_victim that precedes an exec of its pid is stale: it was another image's.
pub(crate) struct Assembler {
    partial: HashMap<(u32, u32), Partial>,
    victims: HashMap<u32, (Victim, Instant)>,
    /// Captures waiting for a mark_victim: the capture, its deadline, and the exit
    /// time (CLOCK_MONOTONIC ns) of its process once known.
    waiting: Vec<(Capture, Instant, Option<u64>)>,
    /// Last exec time (CLOCK_MONOTONIC ns) of each pid that recently exec'd.
    execs: HashMap<u32, (u64, Instant)>,
    window: Duration,
    keep_killed: bool,
    /// When the kernel was last seen losing event records (a mark_victim among them
    /// would leave its capture unclassifiable).
    last_loss: Option<Instant>,
}

/// How far a mark_victim may trail its victim's exit and still be its own (the killer
/// fires it right after sending SIGKILL; a tiny victim can exit in between).
const SAME_PROCESS_SLACK_NS: u64 = 5_000_000;

/// How long a mark_victim is remembered for a capture that ends later.
const VICTIM_MEMORY: Duration = Duration::from_secs(30);

impl Assembler {
    pub(crate) fn new(window: Duration, keep_killed: bool) -> Self {
        Self {
            partial: HashMap::new(),
            victims: HashMap::new(),
            waiting: Vec::new(),
            execs: HashMap::new(),
            window,
            keep_killed,
            last_loss: None,
        }
    }

    /// The kernel lost event records (seen in its counters at `now`).
    pub(crate) fn lost_events(&mut self, now: Instant) {
        self.last_loss = Some(now);
    }

    pub(crate) fn chunk(&mut self, c: &Chunk<'_>) {
        let p = self.partial.entry((c.pid, c.capture_id)).or_default();
        if c.seq != p.next_seq {
            p.missing += c.seq.saturating_sub(p.next_seq);
        }
        p.payload.extend_from_slice(c.payload);
        p.next_seq = c.seq.wrapping_add(1);
        p.last = Instant::now();
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
            // Stale if the pid exec'd after it: a previous image's. (Not its exit:
            // that can come before this end record.)
            let stale = self
                .execs
                .get(&end.pid)
                .is_some_and(|(exec_ns, _)| v.ts_ns < *exec_ns);
            if !stale {
                cap.reason = KillReason::Oom;
                cap.victim = Some(v);
                return Some(cap);
            }
        }
        self.waiting.push((cap, now + self.window, None));
        None
    }

    /// A mark_victim arrived; returns a capture it classifies.
    pub(crate) fn victim(&mut self, v: Victim, now: Instant) -> Option<Capture> {
        let same_process = |exit: &Option<u64>| {
            exit.is_none_or(|e| v.ts_ns <= e.saturating_add(SAME_PROCESS_SLACK_NS))
        };
        if let Some(i) = self
            .waiting
            .iter()
            .position(|(c, _, exit)| c.pid == v.pid && same_process(exit))
        {
            let (mut cap, _, _) = self.waiting.swap_remove(i);
            cap.reason = KillReason::Oom;
            cap.victim = Some(v);
            return Some(cap);
        }
        self.victims.insert(v.pid, (v, now));
        None
    }

    /// A watched process exited at `ts_ns` (CLOCK_MONOTONIC): captures still waiting
    /// for their mark_victim learn their process's exit time.
    pub(crate) fn exited(&mut self, pid: u32, ts_ns: u64) {
        for (c, _, exit) in self.waiting.iter_mut() {
            if c.pid == pid && exit.is_none() {
                *exit = Some(ts_ns);
            }
        }
    }

    /// `pid` exec'd at `ts_ns` (CLOCK_MONOTONIC): a new image, whose captures a
    /// remembered mark_victim of the old one must not classify.
    pub(crate) fn exec(&mut self, pid: u32, ts_ns: u64, now: Instant) {
        self.execs.insert(pid, (ts_ns, now));
    }

    /// Captures whose window passed: "killed" (dropped unless asked to keep them), or
    /// "unknown" (kept) when records were lost from a window before the capture
    /// ended to now: its mark_victim may be among them.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Vec<Capture>) {
        let mut i = 0;
        while i < self.waiting.len() {
            if self.waiting[i].1 <= now {
                let (mut cap, deadline, _) = self.waiting.swap_remove(i);
                let ended = deadline.checked_sub(self.window).unwrap_or(deadline);
                let lost_near = self.last_loss.is_some_and(|t| t + self.window >= ended);
                if lost_near {
                    cap.reason = KillReason::Unknown;
                    log::warn!(
                        "pid {}: capture kept as reason=unknown: kernel event records were lost around it, its mark_victim may be one",
                        cap.pid
                    );
                    out.push(cap);
                } else if self.keep_killed {
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
        // Chunks whose end record never came (the ring refused it: counted in
        // lost_ends, reported by the kernel handle).
        self.partial.retain(|&(pid, id), p| {
            let alive = now.saturating_duration_since(p.last) < END_WAIT;
            if !alive {
                log::warn!("capture {id} of pid {pid} lost its end record (ring full): its chunks are dropped");
            }
            alive
        });
        self.victims
            .retain(|_, (_, t)| now.duration_since(*t) < VICTIM_MEMORY);
        self.execs
            .retain(|_, (_, t)| now.duration_since(*t) < VICTIM_MEMORY);
    }

    /// The next moment [`Assembler::expire`] has work.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.waiting.iter().map(|(_, t, _)| *t).min()
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
        victim_at(pid, 0)
    }

    fn victim_at(pid: u32, ts_ns: u64) -> Victim {
        let mut b = [0u8; 112];
        b[0] = 1;
        b[4..8].copy_from_slice(&pid.to_le_bytes());
        b[8..16].copy_from_slice(&ts_ns.to_le_bytes());
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
    fn a_later_process_on_the_same_pid_does_not_classify_an_earlier_capture() {
        let t = Instant::now();
        let mut a = Assembler::new(Duration::from_millis(250), true);
        // The old process at pid 7 is killed with kill -9 and exits at 1 s.
        assert!(a.end(end(7, 1, 0), t).is_none());
        a.exited(7, 1_000_000_000);
        // A new process at pid 7 is OOM-killed at 1.1 s, inside the window.
        assert!(a.victim(victim_at(7, 1_100_000_000), t).is_none());
        let mut out = Vec::new();
        a.expire(t + Duration::from_millis(250), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].reason, KillReason::Killed);
        // The new process's own capture then pairs with its mark_victim.
        let c = a.end(end(7, 2, 0), t).unwrap();
        assert_eq!(c.reason, KillReason::Oom);
        assert_eq!(c.capture_id, 2);
    }

    #[test]
    fn a_stale_victim_does_not_classify_a_later_process() {
        let t = Instant::now();
        let mut a = Assembler::new(Duration::from_millis(250), true);
        // An unwatched OOM victim at pid 9 (no capture), then a watched process at pid
        // 9 exits after it... and a newer one, exec'd after it, is killed with kill -9.
        assert!(a.victim(victim_at(9, 1_000), t).is_none());
        a.exited(9, 2_000);
        a.exec(9, 3_000, t);
        assert!(a.end(end(9, 3, 0), t).is_none(), "stale victim matched");
    }

    #[test]
    fn a_victim_just_after_a_tiny_victims_exit_is_still_its_own() {
        let t = Instant::now();
        let mut a = Assembler::new(Duration::from_millis(250), false);
        assert!(a.end(end(5, 1, 0), t).is_none());
        a.exited(5, 1_000_000);
        let c = a.victim(victim_at(5, 1_000_000 + 1_000), t).unwrap();
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
    fn a_capture_near_lost_records_is_unknown_and_kept() {
        let t = Instant::now();
        let w = Duration::from_millis(100);
        // Loss seen while the capture waited, or shortly before it ended.
        for loss_at in [t + Duration::from_millis(50), t - Duration::from_millis(60)] {
            let mut a = Assembler::new(w, false);
            assert!(a.end(end(7, 1, 0), t).is_none());
            a.lost_events(loss_at);
            let mut out = Vec::new();
            a.expire(t + w, &mut out);
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].reason, KillReason::Unknown);
        }
        // A loss long before says nothing about this capture: killed, dropped.
        let mut a = Assembler::new(w, false);
        a.lost_events(t);
        assert!(a.end(end(7, 1, 0), t + Duration::from_secs(1)).is_none());
        let mut out = Vec::new();
        a.expire(t + Duration::from_secs(2), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn an_end_after_the_exit_event_still_completes_its_capture() {
        // A walk at the first thread's exit races the last thread's exit event.
        let t = Instant::now();
        let mut a = Assembler::new(Duration::ZERO, true);
        let p = [1u8, 2, 3];
        a.chunk(&Chunk {
            pid: 7,
            capture_id: 1,
            seq: 0,
            buckets: 1,
            payload: &p,
        });
        a.exited(7, 1);
        let mut out = Vec::new();
        a.expire(t, &mut out);
        a.victim(victim(7), t);
        let c = a.end(end(7, 1, 1), t).expect("classified");
        assert_eq!(c.payload(), &p);
        assert_eq!(c.missing_chunks, 0);
        // Chunks whose end never comes are dropped after END_WAIT.
        a.chunk(&Chunk {
            pid: 8,
            capture_id: 2,
            seq: 0,
            buckets: 1,
            payload: &p,
        });
        a.expire(Instant::now() + END_WAIT, &mut out);
        assert!(a.partial.is_empty());
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
