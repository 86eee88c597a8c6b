//! The kernel's own OOM-kill report, read from `/dev/kmsg`: for every victim, of any
//! program, the constraint (a memory cgroup's limit or global memory), the memory
//! cgroup whose limit was hit beside the victim's own, the task that triggered the
//! kill, and the victim's RSS by kind.
//!
//! `/dev/kmsg` yields one record per `read`: `PRIO,SEQ,USEC,FLAGS;TEXT` and optional
//! ` KEY=VALUE` lines. It is shared and rate-limited, and it wraps: a reader that
//! falls behind gets `EPIPE` once, then the oldest record still held; the sequence
//! numbers tell how many were lost ([`Reader::lost`]). The reader never blocks.
//!
//! A report is a run of records from `mm/oom_kill.c` (and `mm/memcontrol.c`):
//! ```text
//! oomer invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
//! CPU: 1 UID: 0 PID: 192 Comm: oomer Not tainted 6.12.117 ...   (6.1: "CPU: 1 PID: ...")
//! memory: usage 65536kB, limit 65536kB, failcnt 53                 (a memcg OOM)
//! oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/a,task_memcg=/a/b,task=oomer,pid=179,uid=0
//! Memory cgroup out of memory: Killed process 179 (oomer) total-vm:1293628kB, anon-rss:65040kB, file-rss:0kB, shmem-rss:2016kB, UID:0 pgtables:216kB oom_score_adj:0
//! ```
//! (`Out of memory: Killed process ...` for a global OOM.) Other CPUs' messages may
//! come in between; [`Assembler`] keeps the fields of the report in progress and
//! yields it at the `Killed process` line.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

/// One `/dev/kmsg` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Syslog priority and facility (`prio & 7` is the level).
    pub prio: u32,
    /// Sequence number: consecutive unless records were lost.
    pub seq: u64,
    /// Microseconds since boot (CLOCK_MONOTONIC).
    pub usec: u64,
    /// The message (first line).
    pub text: &'a str,
}

/// Parses one record as read from `/dev/kmsg`; `None` if it is not one.
pub fn parse_record(raw: &str) -> Option<Record<'_>> {
    let (head, rest) = raw.split_once(';')?;
    let mut f = head.split(',');
    let prio = f.next()?.parse().ok()?;
    let seq = f.next()?.parse().ok()?;
    let usec = f.next()?.parse().ok()?;
    let text = rest.split('\n').next().unwrap_or("");
    Some(Record {
        prio,
        seq,
        usec,
        text,
    })
}

/// What the kernel reported about one OOM kill.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OomReport {
    /// Sequence number of the `Killed process` record.
    pub seq: u64,
    /// When it was printed, µs since boot (CLOCK_MONOTONIC).
    pub usec: u64,
    /// `CONSTRAINT_MEMCG`, `CONSTRAINT_NONE` (global), `CONSTRAINT_CPUSET`, ...
    pub constraint: Option<String>,
    /// The memory cgroup whose limit was hit (v1/v2 path), for a memcg OOM.
    pub oom_memcg: Option<String>,
    /// The victim's own memory cgroup.
    pub task_memcg: Option<String>,
    /// The task that ran into the limit: comm and thread id.
    pub trigger_comm: Option<String>,
    /// Its thread id (`CPU: N PID: TID Comm: ...`).
    pub trigger_tid: Option<i32>,
    /// The allocation that failed: gfp mask text and order.
    pub gfp_mask: Option<String>,
    /// Allocation order.
    pub order: Option<u32>,
    /// The victim's pid (thread-group id) and comm.
    pub pid: i32,
    /// The victim's comm.
    pub comm: String,
    /// The victim's uid.
    pub uid: Option<u32>,
    /// kB figures of the victim at the kill.
    pub total_vm_kb: Option<u64>,
    /// Anonymous RSS, kB.
    pub anon_rss_kb: Option<u64>,
    /// File-backed RSS, kB.
    pub file_rss_kb: Option<u64>,
    /// Shared-memory (tmpfs, shm) RSS, kB.
    pub shmem_rss_kb: Option<u64>,
    /// Page tables, kB.
    pub pgtables_kb: Option<u64>,
    /// The victim's oom_score_adj.
    pub oom_score_adj: Option<i32>,
    /// The OOM memcg's usage and limit, kB (`memory: usage U, limit L, failcnt F`).
    pub memcg_usage_kb: Option<u64>,
    /// The OOM memcg's limit, kB.
    pub memcg_limit_kb: Option<u64>,
    /// The OOM memcg's kernel memory (v1 `kmem: usage`), kB.
    pub kmem_kb: Option<u64>,
    /// The OOM memcg's `memory.stat` as the kernel printed it at the OOM
    /// (`Memory cgroup stats for PATH:`), in its order; v1 or v2 names.
    pub stats: Vec<(String, u64)>,
    /// The tasks the kernel listed as candidates (`Tasks state`), largest RSS first.
    pub tasks: Vec<TaskRow>,
}

/// One row of the report's task table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskRow {
    /// Thread-group id.
    pub pid: i32,
    /// Owner.
    pub uid: u32,
    /// Resident pages (`rss`).
    pub rss_pages: u64,
    /// The command name.
    pub name: String,
}

/// What filled a memory cgroup, in bytes, from its `memory.stat` (v2 names, or v1's
/// `total_*` figures).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Breakdown {
    /// Anonymous memory: heaps, stacks (v2 `anon`, v1 `total_rss`).
    pub anon: u64,
    /// Page cache other than shmem (v2 `file - shmem`, v1 `total_cache - total_shmem`).
    pub page_cache: u64,
    /// tmpfs, shm, memfd (`shmem`).
    pub shmem: u64,
    /// Kernel memory: slab, stacks, page tables (v2 `kernel`, else its parts; v1
    /// `kmem: usage`).
    pub kernel: u64,
    /// Socket buffers (v2 `sock`).
    pub sock: u64,
}

impl Breakdown {
    /// The largest kind and its bytes.
    pub fn dominant(&self) -> (&'static str, u64) {
        [
            ("anon", self.anon),
            ("page_cache", self.page_cache),
            ("shmem", self.shmem),
            ("kernel", self.kernel),
            ("sock", self.sock),
        ]
        .into_iter()
        .fold(("anon", 0), |best, k| if k.1 > best.1 { k } else { best })
    }
}

impl OomReport {
    fn stat(&self, name: &str) -> Option<u64> {
        self.stats.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    /// The memory cgroup's breakdown at the OOM; `None` for a global OOM (no stats).
    pub fn breakdown(&self) -> Option<Breakdown> {
        if self.stats.is_empty() {
            return None;
        }
        if let Some(anon) = self.stat("anon") {
            // v2
            let file = self.stat("file").unwrap_or(0);
            let shmem = self.stat("shmem").unwrap_or(0);
            let kernel = self.stat("kernel").unwrap_or_else(|| {
                ["slab", "kernel_stack", "pagetables", "percpu"]
                    .iter()
                    .filter_map(|k| self.stat(k))
                    .sum()
            });
            return Some(Breakdown {
                anon,
                page_cache: file.saturating_sub(shmem),
                shmem,
                kernel,
                sock: self.stat("sock").unwrap_or(0),
            });
        }
        let get = |k: &str| {
            self.stat(&format!("total_{k}"))
                .or_else(|| self.stat(k))
                .unwrap_or(0)
        };
        let shmem = get("shmem");
        Some(Breakdown {
            anon: get("rss"),
            page_cache: get("cache").saturating_sub(shmem),
            shmem,
            kernel: self.kmem_kb.unwrap_or(0) << 10,
            sock: 0,
        })
    }
}

/// Which multi-record part of a report is being read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
enum Part {
    #[default]
    None,
    Stats,
    /// The task table, with its header's column names once seen.
    Tasks(Vec<String>),
}

/// `key=value` pairs of a comma-separated list (`oom-kill:` line).
fn kv(list: &str) -> impl Iterator<Item = (&str, &str)> {
    list.split(',').filter_map(|p| p.split_once('='))
}

/// The number before `kB` in `name:NNNkB` (or `name NNNkB`).
fn kb(text: &str, name: &str) -> Option<u64> {
    let i = text.find(name)? + name.len();
    leading_kb(&text[i..])
}

/// `NNNkB` at the start of `s` (after `:` or spaces).
fn leading_kb(s: &str) -> Option<u64> {
    let rest = s.trim_start_matches([':', ' ']);
    let n = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if !rest[n..].starts_with("kB") {
        return None;
    }
    rest[..n].parse().ok()
}

/// Collects the records of one OOM report at a time.
#[derive(Debug, Default)]
pub struct Assembler {
    cur: OomReport,
    part: Part,
}

/// `key value` with a lowercase key and a number: a `memory.stat` line.
fn stat_line(l: &str) -> Option<(String, u64)> {
    let (k, v) = l.trim().split_once(' ')?;
    if k.is_empty()
        || !k
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    Some((k.to_string(), v.trim().parse().ok()?))
}

impl Assembler {
    /// A new assembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one record; returns the report when its `Killed process` line arrives.
    pub fn push(&mut self, r: &Record<'_>) -> Option<OomReport> {
        let t = r.text;
        match &self.part {
            Part::Stats => {
                // One line per record (6.18), or the whole buffer in one record with
                // its newlines escaped (6.1: the header is a record of its own).
                let kvs: Option<Vec<_>> = t
                    .split("\\x0a")
                    .filter(|l| !l.is_empty())
                    .map(stat_line)
                    .collect();
                if let Some(kvs) = kvs.filter(|k| !k.is_empty()) {
                    self.cur.stats.extend(kvs);
                    return None;
                }
                self.part = Part::None;
            }
            Part::Tasks(cols) => {
                if let Some(row) = t.trim_start().strip_prefix('[') {
                    let cols = cols.clone();
                    self.task_row(row, &cols);
                    return None;
                }
                self.part = Part::None;
            }
            Part::None => {}
        }
        if let Some(rest) = t.strip_prefix("Memory cgroup stats for ") {
            // One record per line (6.18), or one with escaped newlines (6.1, 6.12).
            self.part = Part::Stats;
            for l in rest.split("\\x0a").skip(1) {
                if let Some(kv) = stat_line(l) {
                    self.cur.stats.push(kv);
                }
            }
        } else if t.starts_with("Tasks state (memory values in pages):") {
            self.part = Part::Tasks(Vec::new());
        } else if let Some(rest) = t.strip_prefix("kmem: usage ") {
            self.cur.kmem_kb = leading_kb(rest);
        } else if let Some((comm, rest)) = t.split_once(" invoked oom-killer: ") {
            self.cur = OomReport {
                trigger_comm: Some(comm.to_string()),
                ..OomReport::default()
            };
            for (k, v) in rest.split(", ").filter_map(|p| p.split_once('=')) {
                match k {
                    "gfp_mask" => self.cur.gfp_mask = Some(v.to_string()),
                    "order" => self.cur.order = v.parse().ok(),
                    _ => {}
                }
            }
        } else if t.starts_with("CPU: ") && t.contains(" PID: ") && self.cur.trigger_tid.is_none() {
            let after = t.split(" PID: ").nth(1)?;
            self.cur.trigger_tid = after.split_whitespace().next()?.parse().ok();
        } else if let Some(rest) = t.strip_prefix("memory: usage ") {
            // "65536kB, limit 65536kB, failcnt 53"
            self.cur.memcg_usage_kb = leading_kb(rest);
            self.cur.memcg_limit_kb = kb(rest, "limit");
        } else if let Some(list) = t.strip_prefix("oom-kill:") {
            for (k, v) in kv(list) {
                match k {
                    "constraint" => self.cur.constraint = Some(v.to_string()),
                    "oom_memcg" => self.cur.oom_memcg = Some(v.to_string()),
                    "task_memcg" => self.cur.task_memcg = Some(v.to_string()),
                    "uid" => self.cur.uid = v.parse().ok(),
                    _ => {}
                }
            }
        } else if let Some(i) = t.find("Killed process ") {
            // "<prefix>: Killed process PID (COMM) total-vm:..kB, anon-rss:..kB, ..."
            let rest = &t[i + "Killed process ".len()..];
            let (pid, rest) = rest.split_once(' ')?;
            let open = rest.find('(')?;
            let close = rest.rfind(") ")?;
            let mut rep = std::mem::take(&mut self.cur);
            rep.pid = pid.parse().ok()?;
            rep.comm = rest.get(open + 1..close)?.to_string();
            let figs = &rest[close + 2..];
            rep.total_vm_kb = kb(figs, "total-vm");
            rep.anon_rss_kb = kb(figs, "anon-rss");
            rep.file_rss_kb = kb(figs, "file-rss");
            rep.shmem_rss_kb = kb(figs, "shmem-rss");
            rep.pgtables_kb = kb(figs, "pgtables");
            rep.oom_score_adj = figs
                .split("oom_score_adj:")
                .nth(1)
                .and_then(|v| v.split_whitespace().next()?.parse().ok());
            if rep.uid.is_none() {
                rep.uid = figs
                    .split("UID:")
                    .nth(1)
                    .and_then(|v| v.split_whitespace().next()?.parse().ok());
            }
            if rep.constraint.is_none() && t.starts_with("Out of memory") {
                rep.constraint = Some("CONSTRAINT_NONE".into());
            }
            rep.seq = r.seq;
            rep.usec = r.usec;
            rep.tasks.sort_by_key(|t| std::cmp::Reverse(t.rss_pages));
            self.part = Part::None;
            return Some(rep);
        }
        None
    }
}

impl Assembler {
    /// One row after `[`: the header (`  pid  ]   uid  tgid total_vm rss ... name`)
    /// names the columns; a data row (`    345]     0   345 ... oomer`) is read by them.
    fn task_row(&mut self, row: &str, cols: &[String]) {
        let Some((first, rest)) = row.split_once(']') else {
            return;
        };
        if first.trim() == "pid" {
            let names = rest.split_whitespace().map(str::to_string).collect();
            self.part = Part::Tasks(names);
            return;
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let at = |name: &str| {
            cols.iter()
                .position(|c| c == name)
                .and_then(|i| fields.get(i))
        };
        // The name is the last column and may hold spaces.
        let name_at = cols.iter().position(|c| c == "name").unwrap_or(cols.len());
        let (Some(pid), Some(rss)) = (
            at("tgid").and_then(|v| v.parse().ok()),
            at("rss").and_then(|v| v.parse().ok()),
        ) else {
            return;
        };
        self.cur.tasks.push(TaskRow {
            pid,
            uid: at("uid").and_then(|v| v.parse().ok()).unwrap_or(0),
            rss_pages: rss,
            name: fields
                .get(name_at..)
                .map(|f| f.join(" "))
                .unwrap_or_default(),
        });
    }
}

/// A non-blocking reader of `/dev/kmsg` from the moment it was opened.
#[derive(Debug)]
pub struct Reader {
    file: File,
    next_seq: Option<u64>,
    lost: u64,
    buf: Vec<u8>,
}

/// The longest record the kernel writes (`CONSOLE_EXT_LOG_MAX`, 8 KiB).
const MAX_RECORD: usize = 8192;

impl Reader {
    /// Opens `/dev/kmsg` (needs CAP_SYSLOG or root when `dmesg_restrict` is set) and
    /// skips what is already there.
    ///
    /// Returns an error if it cannot be opened.
    pub fn open() -> std::io::Result<Reader> {
        Self::open_path("/dev/kmsg")
    }

    fn open_path(path: &str) -> std::io::Result<Reader> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)?;
        // SEEK_END: only records from now on.
        let mut file = file;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0))?;
        Ok(Reader {
            file,
            next_seq: None,
            lost: 0,
            buf: vec![0; MAX_RECORD],
        })
    }

    /// Records lost to the ring wrapping before they were read.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Reads every record available now and hands each to `f`; returns how many.
    ///
    /// Returns an error only for a read error other than "nothing yet" or "records
    /// were overwritten" (counted in [`Reader::lost`]).
    pub fn drain(&mut self, mut f: impl FnMut(&Record<'_>)) -> std::io::Result<usize> {
        let mut n = 0;
        loop {
            match self.file.read(&mut self.buf) {
                Ok(0) => return Ok(n),
                Ok(len) => {
                    let raw = String::from_utf8_lossy(&self.buf[..len]);
                    if let Some(r) = parse_record(&raw) {
                        if let Some(want) = self.next_seq {
                            self.lost += r.seq.saturating_sub(want);
                        }
                        self.next_seq = Some(r.seq + 1);
                        f(&r);
                        n += 1;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(n),
                // Overwritten records: the next read returns the oldest kept one,
                // and the sequence gap counts them.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Parses one line of the kernel log as `syslog(2)` writes it (`<6>[ 12.345678] text`,
/// or `<6>text` when `printk.time` is off); `None` if it is not one. `seq` is left 0.
pub fn parse_syslog_line(line: &str) -> Option<Record<'_>> {
    let rest = line.strip_prefix('<')?;
    let (prio, rest) = rest.split_once('>')?;
    let prio = prio.parse().ok()?;
    let (usec, text) = match rest.strip_prefix('[') {
        Some(r) => {
            let (ts, text) = r.split_once(']')?;
            let (s, us) = ts.trim().split_once('.')?;
            let usec = s
                .parse::<u64>()
                .ok()?
                .checked_mul(1_000_000)?
                .checked_add(us.parse().ok()?)?;
            (usec, text.strip_prefix(' ').unwrap_or(text))
        }
        None => (0, rest),
    };
    Some(Record {
        prio,
        seq: 0,
        usec,
        text,
    })
}

/// A reader of the kernel log through `syslog(2)` (`SYSLOG_ACTION_READ_ALL`), for where
/// `/dev/kmsg` cannot be opened: a container without the device (Kubernetes gives
/// none to an unprivileged one), with CAP_SYSLOG, which the runtimes' default seccomp
/// profiles honour. It copies the whole buffer at each read, so the daemon reads only
/// when the kernel program saw an OOM victim, and rarely otherwise.
#[derive(Debug)]
pub struct SyslogReader {
    buf: Vec<u8>,
    /// The last line handed out, and its timestamp: where the next read resumes.
    last: Option<(String, u64)>,
    seq: u64,
    lost: u64,
}

/// The largest buffer read through `syslog(2)` (the kernel's `log_buf_len` limit is
/// 1 GiB; a larger log is read from its newest part).
const MAX_SYSLOG_BUF: usize = 16 << 20;

impl SyslogReader {
    /// Checks that `syslog(2)` may be used and skips what is already in the log.
    ///
    /// Returns an error if the call is refused (no CAP_SYSLOG where
    /// `kernel.dmesg_restrict=1`, or a seccomp filter).
    pub fn open() -> std::io::Result<SyslogReader> {
        let size = crate::sys::syslog_buffer_size()?;
        // The text form adds a `<p>[ s.us] ` prefix to every line: room for it.
        let len = size.saturating_mul(2).clamp(64 << 10, MAX_SYSLOG_BUF);
        let mut r = SyslogReader {
            buf: vec![0; len],
            last: None,
            seq: 0,
            lost: 0,
        };
        r.drain(|_| {})?;
        Ok(r)
    }

    /// Lines that may have been lost: the log wrapped past the last line read.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Reads the log and hands every line written since the last call to `f` (the
    /// first call hands none: the log before the reader's start); returns how many.
    /// Lines get consecutive sequence numbers of the reader's own.
    ///
    /// Returns an error if the call is refused.
    pub fn drain(&mut self, mut f: impl FnMut(&Record<'_>)) -> std::io::Result<usize> {
        let n = crate::sys::syslog_read_all(&mut self.buf)?;
        let text = String::from_utf8_lossy(&self.buf[..n]);
        let lines: Vec<(&str, Record<'_>)> = text
            .lines()
            .filter_map(|l| parse_syslog_line(l).map(|r| (l, r)))
            .collect();
        let start = match &self.last {
            None => lines.len(),
            Some((raw, usec)) => match lines.iter().rposition(|(l, _)| l == raw) {
                Some(i) => i + 1,
                None => {
                    // The last line read has left the buffer: what is newer than it
                    // is new; lines in between may be lost. Without timestamps
                    // nothing can be told apart, so nothing is taken as new.
                    let i = if *usec == 0 {
                        lines.len()
                    } else {
                        lines
                            .iter()
                            .position(|(_, r)| r.usec > *usec)
                            .unwrap_or(lines.len())
                    };
                    self.lost += 1;
                    i
                }
            },
        };
        let mut handed = 0;
        for (_, r) in &lines[start..] {
            self.seq += 1;
            f(&Record {
                seq: self.seq,
                ..r.clone()
            });
            handed += 1;
        }
        if let Some((l, r)) = lines.last() {
            self.last = Some((l.to_string(), r.usec));
        }
        Ok(handed)
    }
}

/// Where the daemon reads the kernel's OOM reports from.
#[derive(Debug)]
pub enum KernelLog {
    /// `/dev/kmsg`, read as records arrive.
    Dev(Reader),
    /// `syslog(2)`, read when woken (see [`SyslogReader`]).
    Syslog(SyslogReader),
}

impl KernelLog {
    /// `/dev/kmsg`, else `syslog(2)`.
    ///
    /// Returns the errors of both when neither can be used.
    pub fn open() -> Result<KernelLog, String> {
        match Reader::open() {
            Ok(r) => Ok(KernelLog::Dev(r)),
            Err(dev) => match SyslogReader::open() {
                Ok(s) => Ok(KernelLog::Syslog(s)),
                Err(sys) => Err(format!("/dev/kmsg: {dev}; syslog(2): {sys}")),
            },
        }
    }

    /// `/dev/kmsg` or `syslog(2)`, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            KernelLog::Dev(_) => "/dev/kmsg",
            KernelLog::Syslog(_) => "syslog(2)",
        }
    }

    /// Records lost before they were read.
    pub fn lost(&self) -> u64 {
        match self {
            KernelLog::Dev(r) => r.lost(),
            KernelLog::Syslog(r) => r.lost(),
        }
    }

    /// Whether reading costs a copy of the whole log, so it should be done only when
    /// an OOM kill was seen (and rarely otherwise).
    pub fn read_when_woken(&self) -> bool {
        matches!(self, KernelLog::Syslog(_))
    }

    /// Hands every new record to `f`; returns how many.
    ///
    /// Returns an error if the log cannot be read.
    pub fn drain(&mut self, f: impl FnMut(&Record<'_>)) -> std::io::Result<usize> {
        match self {
            KernelLog::Dev(r) => r.drain(f),
            KernelLog::Syslog(r) => r.drain(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, text: &str) -> String {
        format!("6,{seq},{},-;{text}\n SUBSYSTEM=x\n", seq * 10)
    }

    fn feed(a: &mut Assembler, lines: &[&str]) -> Vec<OomReport> {
        lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                let raw = rec(100 + i as u64, l);
                a.push(&parse_record(&raw).unwrap())
            })
            .collect()
    }

    #[test]
    fn records_parse_and_junk_does_not() {
        let r = parse_record("4,1234,5678901,-,caller=T12;hello world\n DEVICE=x\n").unwrap();
        assert_eq!(
            (r.prio, r.seq, r.usec, r.text),
            (4, 1234, 5678901, "hello world")
        );
        for bad in ["", "no semicolon", "a,b,c;x", "6,1;x"] {
            assert!(parse_record(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_memcg_report_from_6_12_with_other_messages_in_between() {
        let mut a = Assembler::new();
        let reps = feed(
            &mut a,
            &[
                "oomer invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
                "CPU: 1 UID: 0 PID: 192 Comm: oomer Not tainted 6.12.117+deb12-cloud-amd64 #1",
                "eth0: link up", // another CPU
                "memory: usage 65536kB, limit 65536kB, failcnt 53",
                "memory+swap: usage 65536kB, limit 9007199254740988kB, failcnt 0",
                "kmem: usage 388kB, limit 9007199254740988kB, failcnt 0",
                // 6.1 prints memory.stat as one record after the header's, newlines
                // escaped.
                "Memory cgroup stats for /oomvm/multi4:",
                "anon 66703360\\x0afile 8192\\x0akernel 397312\\x0ashmem 8192\\x0asock 0\\x0a",
                "Tasks state (memory values in pages):",
                "[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name",
                "[    170]     0   170     1000      100    40960        0             0 sh",
                "[    179]  1000   179   323407    16640   221184        0          -100 oomer",
                "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/oomvm/multi4,task_memcg=/oomvm/multi4/x,task=oomer,pid=179,uid=1000",
                "Memory cgroup out of memory: Killed process 179 (oomer) total-vm:1293628kB, anon-rss:65040kB, file-rss:0kB, shmem-rss:2016kB, UID:1000 pgtables:216kB oom_score_adj:-100",
            ],
        );
        assert_eq!(
            reps,
            [OomReport {
                seq: 113,
                usec: 1130,
                constraint: Some("CONSTRAINT_MEMCG".into()),
                oom_memcg: Some("/oomvm/multi4".into()),
                task_memcg: Some("/oomvm/multi4/x".into()),
                trigger_comm: Some("oomer".into()),
                trigger_tid: Some(192),
                gfp_mask: Some("0xcc0(GFP_KERNEL)".into()),
                order: Some(0),
                pid: 179,
                comm: "oomer".into(),
                uid: Some(1000),
                total_vm_kb: Some(1293628),
                anon_rss_kb: Some(65040),
                file_rss_kb: Some(0),
                shmem_rss_kb: Some(2016),
                pgtables_kb: Some(216),
                oom_score_adj: Some(-100),
                memcg_usage_kb: Some(65536),
                memcg_limit_kb: Some(65536),
                kmem_kb: Some(388),
                stats: [
                    ("anon", 66703360),
                    ("file", 8192),
                    ("kernel", 397312),
                    ("shmem", 8192),
                    ("sock", 0)
                ]
                .map(|(k, v)| (k.to_string(), v))
                .to_vec(),
                tasks: vec![
                    TaskRow {
                        pid: 179,
                        uid: 1000,
                        rss_pages: 16640,
                        name: "oomer".into()
                    },
                    TaskRow {
                        pid: 170,
                        uid: 0,
                        rss_pages: 100,
                        name: "sh".into()
                    },
                ],
            }]
        );
        let b = reps[0].breakdown().unwrap();
        assert_eq!(
            (b.anon, b.page_cache, b.shmem, b.kernel),
            (66703360, 0, 8192, 397312)
        );
        assert_eq!(b.dominant(), ("anon", 66703360));
    }

    #[test]
    fn a_global_report_from_6_1_and_a_comm_with_spaces() {
        let mut a = Assembler::new();
        let reps = feed(
            &mut a,
            &[
                "kworker/u4:2 invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0",
                "CPU: 0 PID: 160 Comm: kworker/u4:2 Not tainted 6.1.0-57-cloud-amd64 #1  Debian 6.1.192-3",
                "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/user.slice,task=my app (x),pid=4242,uid=0",
                "Out of memory: Killed process 4242 (my app (x)) total-vm:9000kB, anon-rss:8000kB, file-rss:10kB, shmem-rss:0kB, UID:0 pgtables:40kB oom_score_adj:0",
            ],
        );
        let r = &reps[0];
        assert_eq!(r.constraint.as_deref(), Some("CONSTRAINT_NONE"));
        assert_eq!(r.oom_memcg, None);
        assert_eq!(r.task_memcg.as_deref(), Some("/user.slice"));
        assert_eq!((r.pid, r.comm.as_str()), (4242, "my app (x)"));
        assert_eq!(r.trigger_tid, Some(160));
        assert_eq!(r.anon_rss_kb, Some(8000));
    }

    #[test]
    fn v1_stats_one_record_per_line_as_6_18_prints_them() {
        let mut a = Assembler::new();
        let reps = feed(
            &mut a,
            &[
                "sh invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
                "kmem: usage 1024kB, limit 9007199254740988kB, failcnt 0",
                "Memory cgroup stats for /t:",
                "cache 52428800",
                "rss 4194304",
                "shmem 50331648",
                "total_cache 52428800",
                "total_rss 4194304",
                "total_shmem 50331648",
                "Tasks state (memory values in pages):",
                "[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name",
                "[    601]     0   601   323409    16809    16288      521         0   233472        0             0 my prog",
                "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/t,task_memcg=/t,task=sh,pid=601,uid=0",
                "Memory cgroup out of memory: Killed process 601 (my prog) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:0kB oom_score_adj:0",
            ],
        );
        let r = &reps[0];
        assert_eq!(
            r.tasks,
            [TaskRow {
                pid: 601,
                uid: 0,
                rss_pages: 16809,
                name: "my prog".into()
            }]
        );
        let b = r.breakdown().unwrap();
        assert_eq!(
            (b.anon, b.page_cache, b.shmem, b.kernel),
            (4194304, 2097152, 50331648, 1 << 20)
        );
        assert_eq!(b.dominant().0, "shmem");
    }

    #[test]
    fn truncated_or_hostile_lines_never_panic() {
        let mut a = Assembler::new();
        for l in [
            "Killed process ",
            "Out of memory: Killed process x (y) total-vm:kB",
            "Out of memory: Killed process 12 (unterminated",
            "Out of memory: Killed process 12 (c) total-vm:99999999999999999999999kB",
            "oom-kill:",
            "oom-kill:constraint",
            "memory: usage",
            "CPU: 1 PID:",
            " invoked oom-killer: ",
            "Memory cgroup stats for ",
            "Tasks state (memory values in pages):",
            "[",
            "[ x ] y",
            "[  pid  ]",
            "[   1]",
        ] {
            let raw = rec(1, l);
            let _ = a.push(&parse_record(&raw).unwrap());
        }
        // A report after the junk still parses.
        let reps = feed(
            &mut a,
            &["Out of memory: Killed process 7 (z) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:0kB oom_score_adj:0"],
        );
        assert_eq!(reps[0].pid, 7);
    }

    #[test]
    #[ignore = "needs root (/dev/kmsg): run tests/run"]
    fn the_real_dev_kmsg_opens_at_its_end_and_drains_without_blocking() {
        let test = "the_real_dev_kmsg_opens_at_its_end_and_drains_without_blocking";
        if !oom_tests::privileged::root(test) {
            return;
        }
        let mut r = Reader::open().unwrap();
        let t = std::time::Instant::now();
        let n = r.drain(|_| {}).unwrap();
        assert!(n < 1000, "{n} records: not opened at the end");
        assert!(
            t.elapsed() < std::time::Duration::from_secs(1),
            "drain blocked"
        );
        assert_eq!(r.lost(), 0);
    }

    #[test]
    fn syslog_lines_parse_with_and_without_timestamps() {
        let r = parse_syslog_line(
            "<3>[ 1234.000567] Memory cgroup out of memory: Killed process 9 (x)",
        )
        .unwrap();
        assert_eq!(
            (r.prio, r.usec, r.text),
            (
                3,
                1_234_000_567,
                "Memory cgroup out of memory: Killed process 9 (x)"
            )
        );
        let r = parse_syslog_line("<6>plain").unwrap();
        assert_eq!((r.prio, r.usec, r.text), (6, 0, "plain"));
        for bad in [
            "",
            "no prio",
            "<x>y",
            "<6>[12] no dot",
            "<6>[1.2 unclosed",
            "<6>[99999999999999999999.1] big",
        ] {
            assert!(parse_syslog_line(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_report_read_through_syslog_assembles_like_kmsg() {
        let lines = [
            "<4>[  100.000001] oomer invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
            "<4>[  100.000002] memory: usage 65536kB, limit 65536kB, failcnt 53",
            "<6>[  100.000003] Memory cgroup stats for /x:",
            "<6>[  100.000003] anon 66703360",
            "<6>[  100.000003] file 8192",
            "<6>[  100.000004] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/x,task_memcg=/x,task=oomer,pid=192,uid=0",
            "<3>[  100.000005] Memory cgroup out of memory: Killed process 192 (oomer) total-vm:1000kB, anon-rss:900kB, file-rss:10kB, shmem-rss:0kB, UID:0 pgtables:100kB oom_score_adj:0",
        ];
        let mut a = Assembler::new();
        let reps: Vec<_> = lines
            .iter()
            .filter_map(|l| a.push(&parse_syslog_line(l).unwrap()))
            .collect();
        assert_eq!(reps.len(), 1);
        assert_eq!(reps[0].pid, 192);
        assert_eq!(reps[0].oom_memcg.as_deref(), Some("/x"));
        assert_eq!(reps[0].memcg_limit_kb, Some(65536));
        assert!(reps[0]
            .stats
            .iter()
            .any(|(k, v)| k == "anon" && *v == 66703360));
    }
}
