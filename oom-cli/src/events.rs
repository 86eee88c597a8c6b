//! The OOM event log: one JSON line per OOM kill of any process (`oomprof-events.jsonl`
//! beside the profiles, or `--events -` for stdout). Three sources meet per pid:
//! - the kernel program's `oom/mark_victim` record, completed from `/proc`
//!   ([`oom_loader::victim`]): every kill, with the victim's exe and command line;
//! - the kernel's own report on `/dev/kmsg` or through `syslog(2)`
//!   ([`oom_loader::kmsg`]): constraint, the OOM memcg and its `memory.stat`, the task
//!   table; it may be missing (no CAP_SYSLOG, rate-limited, the log wrapped);
//! - the Go profile of the same kill, when the victim was a watched Go process.
//!
//! An event is written once the parts it can expect are in, or [`LINK_WAIT`] after its
//! first part arrived with whatever it has ([`PROFILE_WAIT`] when a watched Go
//! process's profile is still being made).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use oom_loader::attribution::Resolver;
use oom_loader::kmsg::OomReport;
use oom_loader::victim::VictimInfo;
use serde_json::{json, Value};

/// How long an event waits for its missing parts (the capture, the kernel's report and
/// the victim record race).
pub const LINK_WAIT: Duration = Duration::from_secs(2);

/// How long the event of a watched Go process waits for its profile.
pub const PROFILE_WAIT: Duration = Duration::from_secs(30);

/// The file name of the log in the profile directory.
pub const FILE_NAME: &str = "oomprof-events.jsonl";

/// At most this many kills wait to be written (a storm of kills is written as it
/// comes; the oldest waiting is written early, never dropped).
const MAX_WAITING: usize = 4096;

/// Where events go.
#[derive(Debug)]
enum Out {
    File(File),
    Stdout,
}

/// The parts of one kill seen so far.
#[derive(Debug)]
struct Pending {
    since: Instant,
    pid: i32,
    victim: Option<VictimInfo>,
    report: Option<OomReport>,
    profile: Option<String>,
    /// The Monitor said no profile will come (the capture was dropped).
    no_profile: bool,
    /// The OOM memcg's files, read when the report arrived.
    after: Option<oom_loader::memcg::MemcgNow>,
}

impl Pending {
    /// Everything it can expect is in: the victim record, the kernel's report when
    /// the log is read, the profile when a watched Go process died.
    fn complete(&self, kernel_log: bool) -> bool {
        let Some(v) = &self.victim else {
            return false;
        };
        (self.report.is_some() || !kernel_log)
            && (self.profile.is_some() || self.no_profile || !v.watched)
    }
}

/// The event log and the kills waiting to be written.
#[derive(Debug)]
pub struct EventLog {
    out: Out,
    path: Option<PathBuf>,
    pending: VecDeque<Pending>,
    /// Whether the kernel's reports are read (else events come from the victim
    /// record alone).
    kernel_log: bool,
    resolver: Resolver,
    metrics: crate::metrics::Metrics,
    /// Lines a write error left waiting (bounded: the oldest are given up on, with a
    /// log line, past [`MAX_UNWRITTEN`]).
    unwritten: VecDeque<String>,
    /// Pre-OOM profiles, named by the events of later kills.
    preoom: crate::preoom::Links,
}

/// Most event lines kept while they cannot be written.
const MAX_UNWRITTEN: usize = 1024;

impl EventLog {
    /// Appends to `target` (`-`: stdout), creating it with mode 0600; pod names come
    /// from the runtime state under `runtime_root` (the Monitor's). `kernel_log`: the
    /// kernel's reports will be fed in, so events wait for them.
    ///
    /// Returns an error if the file cannot be opened.
    pub fn open(
        target: &Path,
        runtime_root: &Path,
        kernel_log: bool,
        metrics: crate::metrics::Metrics,
    ) -> anyhow::Result<Self> {
        let (out, path) = if target == Path::new("-") {
            (Out::Stdout, None)
        } else {
            let f = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(target)
                .with_context(|| format!("opening the event log {}", target.display()))?;
            (Out::File(f), Some(target.to_path_buf()))
        };
        Ok(Self {
            out,
            path,
            pending: VecDeque::new(),
            kernel_log,
            resolver: Resolver::new(runtime_root),
            metrics,
            unwritten: VecDeque::new(),
            preoom: crate::preoom::Links::default(),
        })
    }

    /// Where the log is (None: stdout).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The kill of `pid`, started when absent.
    fn entry(&mut self, pid: i32, now: Instant) -> &mut Pending {
        let i = match self.pending.iter().position(|p| p.pid == pid) {
            Some(i) => i,
            None => {
                if self.pending.len() >= MAX_WAITING {
                    if let Some(p) = self.pending.pop_front() {
                        self.write(&p);
                    }
                }
                self.pending.push_back(Pending {
                    since: now,
                    pid,
                    victim: None,
                    report: None,
                    profile: None,
                    no_profile: false,
                    after: None,
                });
                self.pending.len() - 1
            }
        };
        &mut self.pending[i]
    }

    /// Writes the kill of `pid` if it is complete.
    fn settle(&mut self, pid: i32) {
        let kernel_log = self.kernel_log;
        if let Some(i) = self
            .pending
            .iter()
            .position(|p| p.pid == pid && p.complete(kernel_log))
        {
            if let Some(p) = self.pending.remove(i) {
                self.write(&p);
            }
        }
    }

    /// The kernel program's record of a victim.
    pub fn victim(&mut self, v: VictimInfo, now: Instant) {
        let pid = v.pid as i32;
        // The victim's own memory cgroup, read at once: a runtime removes a dead
        // container's cgroup within moments, before the kernel's report may be read.
        let after = v
            .cgroup
            .as_deref()
            .and_then(|l| oom_loader::memcg::read_line(Path::new("/proc"), l));
        let e = self.entry(pid, now);
        e.victim = Some(v);
        if e.after.is_none() {
            e.after = after;
        }
        self.settle(pid);
    }

    /// A kernel report.
    pub fn report(&mut self, r: OomReport, now: Instant) {
        let pid = r.pid;
        // Right after the kill: the OOM memcg's peak, and what the kill freed so far
        // (unless the victim's own cgroup, read earlier, is that memcg).
        let e = self.entry(pid, now);
        let have = e.after.as_ref().map(|a| a.path.as_str());
        if let Some(m) = r.oom_memcg.as_deref().filter(|m| have != Some(*m)) {
            if let Some(a) = oom_loader::memcg::read(Path::new("/proc"), m) {
                e.after = Some(a);
            }
        }
        e.report = Some(r);
        self.settle(pid);
    }

    /// A Go profile of an OOM-killed `pid`, written as `file`.
    pub fn profile(&mut self, pid: i32, file: &str, now: Instant) {
        self.entry(pid, now).profile = Some(file.to_string());
        self.settle(pid);
    }

    /// No profile will come for the kill of `pid` (its capture was dropped, or its
    /// memory profiling was off): its event need not wait for one.
    pub fn no_profile(&mut self, pid: i32) {
        if let Some(p) = self.pending.iter_mut().find(|p| p.pid == pid) {
            p.no_profile = true;
        }
        self.settle(pid);
    }

    /// Writes the kills that waited long enough and the lines a write error left
    /// waiting; forgets profiles no kill claimed.
    pub fn tick(&mut self, now: Instant) {
        self.retry_unwritten();
        while self.unwritten.len() > MAX_UNWRITTEN {
            self.unwritten.pop_front();
            log::error!("giving up on an OOM event: too many waiting to be written");
        }
        let mut i = 0;
        while i < self.pending.len() {
            let p = &self.pending[i];
            let age = now.duration_since(p.since);
            if p.victim.is_none() && p.report.is_none() {
                // A profile alone: its kill's records may still come (a big capture
                // finishes after them, a late kmsg read), but not forever.
                if age >= LINK_WAIT * 5 {
                    self.pending.remove(i);
                    continue;
                }
            } else if age >= LINK_WAIT
                && !(p.profile.is_none()
                    && !p.no_profile
                    && p.victim.as_ref().is_some_and(|v| v.watched)
                    && age < PROFILE_WAIT)
            {
                // A watched Go process's profile is waited for longer: a capture of a
                // large heap takes seconds under load; the Monitor says when none will
                // come ([`EventLog::no_profile`]).
                if let Some(p) = self.pending.remove(i) {
                    self.write(&p);
                }
                continue;
            }
            i += 1;
        }
    }

    /// Writes everything still waiting (at shutdown); what cannot be written is said.
    pub fn flush(&mut self) {
        while let Some(p) = self.pending.pop_front() {
            if p.victim.is_some() || p.report.is_some() {
                self.write(&p);
            }
        }
        if let Err(e) = self.write_unwritten() {
            log::error!(
                "{} OOM events could not be written before exit: {e}",
                self.unwritten.len()
            );
        }
    }

    /// A pre-OOM profile written: the event of a later kill of its pid or cgroup
    /// names it.
    pub fn preoom(&mut self, t: crate::preoom::Taken) {
        self.preoom.add(t);
    }

    fn write(&mut self, p: &Pending) {
        self.metrics.oom_event(p.report.as_ref());
        let cgroup = p
            .report
            .as_ref()
            .and_then(|r| r.task_memcg.clone())
            .or_else(|| p.victim.as_ref().and_then(|v| v.cgroup.clone()));
        let attribution = cgroup.as_deref().and_then(|cg| self.resolver.attribute(cg));
        let mut event = event_json(
            p.pid,
            p.victim.as_ref(),
            p.report.as_ref(),
            p.profile.as_deref(),
            attribution.as_ref(),
        );
        if let Some(a) = &p.after {
            event["memcg"]["after_kill"] = json!({
                "path": a.path, "usage_bytes": a.usage, "limit_bytes": a.limit,
                "peak_bytes": a.peak, "oom_kills": a.oom_kills,
            });
        }
        // The kill was first seen at `since` (its victim record or report, read
        // within a poll of it).
        let preoom = self.preoom.for_kill(
            p.pid,
            p.report.as_ref().and_then(|r| r.oom_memcg.as_deref()),
            cgroup.as_deref(),
            p.since,
        );
        let pre = crate::preoom::describe(&preoom);
        event["preoom"] = preoom;
        let mut line = event.to_string();
        line.push('\n');
        // Lines that could not be written (a full disk) go first, in order.
        self.unwritten.push_back(line);
        let res = self.write_unwritten();
        let comm = p
            .report
            .as_ref()
            .map(|r| r.comm.clone())
            .or_else(|| p.victim.as_ref().and_then(|v| v.comm.clone()))
            .unwrap_or_default();
        match res {
            Ok(()) => log::info!(
                "oom event: pid={} comm={comm} {}{}{}{pre}",
                p.pid,
                match &p.report {
                    Some(r) => summary(r),
                    None => "(no kernel report)".into(),
                },
                p.victim
                    .as_ref()
                    .and_then(|v| v.exe.as_ref())
                    .map(|e| format!(" exe={}", e.display()))
                    .unwrap_or_default(),
                p.profile
                    .as_deref()
                    .map(|f| format!(" profile={f}"))
                    .unwrap_or_default()
            ),
            Err(e) => log::error!(
                "writing the OOM event of pid {}: {e}; {} events wait to be written, retried every loop",
                p.pid,
                self.unwritten.len()
            ),
        }
    }

    /// Writes the waiting lines, oldest first, each whole or not at all (a partial
    /// line is cut off again); stops at the first failure.
    fn write_unwritten(&mut self) -> std::io::Result<()> {
        while let Some(line) = self.unwritten.front() {
            match &mut self.out {
                Out::File(f) => {
                    let before = f.metadata()?.len();
                    if let Err(e) = f.write_all(line.as_bytes()) {
                        let _ = f.set_len(before);
                        return Err(e);
                    }
                }
                Out::Stdout => std::io::stdout().write_all(line.as_bytes())?,
            }
            self.unwritten.pop_front();
        }
        Ok(())
    }

    /// Retries the lines a write error left waiting; says when they are written.
    fn retry_unwritten(&mut self) {
        if self.unwritten.is_empty() {
            return;
        }
        let n = self.unwritten.len();
        if self.write_unwritten().is_ok() {
            log::info!("wrote {n} OOM events (delayed)");
        }
    }
}

/// `memcg /a/b: anon 60.1 MiB of 64.0 MiB` or `global OOM`.
pub fn summary(r: &OomReport) -> String {
    let mib = |b: u64| b as f64 / 1048576.0;
    match (&r.oom_memcg, r.breakdown()) {
        (Some(m), Some(b)) => {
            let (kind, bytes) = b.dominant();
            let limit = r
                .memcg_limit_kb
                .map(|l| format!(" of {:.1} MiB", mib(l << 10)))
                .unwrap_or_default();
            format!("memcg {m}: {kind} {:.1} MiB{limit}", mib(bytes))
        }
        (Some(m), None) => format!("memcg {m}"),
        (None, _) => format!(
            "{} OOM",
            match r.constraint.as_deref() {
                Some("CONSTRAINT_NONE") | None => "global",
                Some(other) => other,
            }
        ),
    }
}

/// The event's JSON object: the kernel's report where there is one, the victim
/// record's figures where it is missing.
pub fn event_json(
    pid: i32,
    v: Option<&VictimInfo>,
    r: Option<&OomReport>,
    profile: Option<&str>,
    a: Option<&oom_loader::attribution::Attribution>,
) -> Value {
    let now = jiff::Timestamp::now();
    let breakdown = r.and_then(|r| r.breakdown()).map(|b| {
        json!({
            "anon": b.anon, "page_cache": b.page_cache, "shmem": b.shmem,
            "kernel": b.kernel, "sock": b.sock, "dominant": b.dominant().0,
        })
    });
    // The memcg's tasks, largest RSS first (the kernel lists them by pid).
    let mut by_rss: Vec<_> = r.map(|r| r.tasks.iter().collect()).unwrap_or_default();
    by_rss.sort_by_key(|t| std::cmp::Reverse(t.rss_pages));
    let tasks: Vec<Value> = by_rss
        .iter()
        .take(20)
        .map(|t| json!({"pid": t.pid, "uid": t.uid, "rss_pages": t.rss_pages, "name": t.name}))
        .collect();
    let names = a.map(|a| &a.names);
    let rss = v.and_then(|v| v.rss_kb);
    let mut sources = Vec::new();
    if v.is_some() {
        sources.push("mark_victim");
    }
    if r.is_some() {
        sources.push("kernel_log");
    }
    json!({
        "time": now.to_string(),
        "sources": sources,
        // The kernel rate-limits the header of its report (10 per 5 s): past that
        // only the `Killed process` line is printed.
        "kernel_report": r.map(|r| if r.constraint.is_some() { "complete" } else { "partial: the kernel rate-limited its header" }),
        "kmsg_seq": r.map(|r| r.seq),
        "kernel_usec": r.map(|r| r.usec),
        "pid": pid,
        "comm": r.map(|r| r.comm.clone()).or_else(|| v.and_then(|v| v.comm.clone())),
        "exe": v.and_then(|v| v.exe.as_ref()).map(|e| e.to_string_lossy().into_owned()),
        "exe_from": v.and_then(|v| v.exe_from),
        "cmdline": v.and_then(|v| v.cmdline.clone()),
        "uid": r.and_then(|r| r.uid).or_else(|| v.and_then(|v| v.uid)),
        "oom_score_adj": r
            .and_then(|r| r.oom_score_adj.map(i64::from))
            .or_else(|| v.and_then(|v| v.oom_score_adj.map(i64::from))),
        "constraint": r.and_then(|r| r.constraint.clone()),
        "oom_memcg": r.and_then(|r| r.oom_memcg.clone()),
        "task_memcg": r.and_then(|r| r.task_memcg.clone()),
        "cgroup": v.and_then(|v| v.cgroup.clone()),
        "trigger": {
            "comm": r.and_then(|r| r.trigger_comm.clone()).or_else(|| v.map(|v| v.trigger.2.clone())),
            "pid": v.map(|v| v.trigger.0),
            "tid": r
                .and_then(|r| r.trigger_tid.map(i64::from))
                .or_else(|| v.map(|v| i64::from(v.trigger.1))),
        },
        "allocation": {"gfp_mask": r.and_then(|r| r.gfp_mask.clone()), "order": r.and_then(|r| r.order)},
        "rss_kb": {
            "total_vm": r.and_then(|r| r.total_vm_kb),
            "anon": r.and_then(|r| r.anon_rss_kb).or(rss.map(|x| x[0])),
            "file": r.and_then(|r| r.file_rss_kb).or(rss.map(|x| x[1])),
            "shmem": r.and_then(|r| r.shmem_rss_kb).or(rss.map(|x| x[2])),
            "pgtables": r.and_then(|r| r.pgtables_kb),
        },
        "memcg": {
            "usage_kb": r.and_then(|r| r.memcg_usage_kb), "limit_kb": r.and_then(|r| r.memcg_limit_kb),
            "kmem_kb": r.and_then(|r| r.kmem_kb),
            "bytes": breakdown,
            // memory.stat as the kernel printed it at the OOM, every key (percpu,
            // slab_reclaimable, file_mapped, ... as the kernel version has them).
            "stat": r.filter(|r| !r.stats.is_empty()).map(|r| {
                r.stats.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>()
            }),
        },
        "tasks": tasks,
        "namespace": names.and_then(|n| n.namespace.clone()),
        "pod": names.and_then(|n| n.pod.clone()),
        "container": names.and_then(|n| n.container.clone()),
        "container_id": a.and_then(|a| a.ids.container_id.clone()),
        "profile": profile,
        "victim_read_after_ms": v.and_then(|v| v.proc_read_ns).map(|n| n as f64 / 1e6),
        "written_after_kill_ms": v.and_then(|v| {
            let now = oom_loader::monitor::monotonic_ns()?;
            Some(now.saturating_sub(v.ts_ns) as f64 / 1e6)
        }),
    })
}

/// Prints the log readably (`oomprof events`): one line per event, oldest first,
/// those at or after `since` only.
///
/// Returns an error if the log cannot be read; a malformed line is reported and
/// skipped.
pub fn print(path: &Path, since: Option<jiff::Timestamp>) -> anyhow::Result<usize> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("{}:{}: not an event ({e}), skipped", path.display(), i + 1);
                continue;
            }
        };
        let time = v["time"].as_str().unwrap_or("-");
        if let (Some(since), Ok(t)) = (since, time.parse::<jiff::Timestamp>()) {
            if t < since {
                continue;
            }
        }
        let s = |k: &str| v[k].as_str().map(str::to_string);
        let memcg = match (s("oom_memcg"), v["memcg"]["bytes"]["dominant"].as_str()) {
            (Some(m), Some(kind)) => {
                let bytes = v["memcg"]["bytes"][kind].as_u64().unwrap_or(0);
                let limit = v["memcg"]["limit_kb"].as_u64().map(|l| l << 10);
                format!(
                    "memcg {m}: {kind} {:.1} MiB{}",
                    bytes as f64 / 1048576.0,
                    limit
                        .map(|l| format!(" of {:.1} MiB", l as f64 / 1048576.0))
                        .unwrap_or_default()
                )
            }
            (Some(m), None) => format!("memcg {m}"),
            (None, _) => match v["constraint"].as_str() {
                Some(c) if c != "CONSTRAINT_NONE" => c.to_string(),
                Some(_) => "global OOM".into(),
                None => "(no kernel report)".into(),
            },
        };
        let exe = s("exe").map(|e| format!(" exe={e}")).unwrap_or_default();
        let pod = match (s("namespace"), s("pod")) {
            (Some(ns), Some(p)) => format!(" pod={ns}/{p}"),
            _ => String::new(),
        };
        println!(
            "{time} pid={} comm={}{exe}{pod} {memcg} trigger={} profile={}{}",
            v["pid"],
            s("comm").unwrap_or_default(),
            v["trigger"]["comm"].as_str().unwrap_or("-"),
            v["profile"].as_str().unwrap_or("-"),
            crate::preoom::describe(&v["preoom"]),
        );
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oom_loader::kmsg::TaskRow;

    fn victim(pid: u32) -> VictimInfo {
        VictimInfo {
            pid,
            ts_ns: 1,
            comm: Some("java".into()),
            exe: Some("/usr/bin/java".into()),
            exe_from: Some("exec"),
            cmdline: None,
            cgroup: None,
            uid: Some(1000),
            oom_score_adj: Some(0),
            rss_kb: Some([1024, 8, 0]),
            trigger: (7, 8, "kworker".into()),
            watched: false,
            proc_read_ns: Some(2_000_000),
        }
    }

    #[test]
    fn an_event_merges_its_sources_and_lists_tasks_by_rss() {
        let row = |pid, rss_pages, name: &str| TaskRow {
            pid,
            uid: 0,
            rss_pages,
            name: name.into(),
        };
        let r = OomReport {
            pid: 42,
            comm: "java".into(),
            constraint: Some("CONSTRAINT_MEMCG".into()),
            tasks: vec![
                row(1, 10, "pause"),
                row(42, 9000, "java"),
                row(50, 300, "envoy"),
            ],
            ..OomReport::default()
        };
        let v = victim(42);
        let e = event_json(42, Some(&v), Some(&r), None, None);
        assert_eq!(e["sources"], json!(["mark_victim", "kernel_log"]));
        let names: Vec<_> = e["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].clone())
            .collect();
        assert_eq!(names, [json!("java"), json!("envoy"), json!("pause")]);
        assert_eq!(e["exe"], "/usr/bin/java");
        assert_eq!(e["trigger"]["comm"], "kworker"); // the report has none
        assert!(e["memcg"]["stat"].is_null(), "{e}"); // nor memory.stat
                                                      // The victim record alone: its own figures.
        let e = event_json(42, Some(&v), None, None, None);
        assert_eq!(e["sources"], json!(["mark_victim"]));
        assert_eq!(
            (e["rss_kb"]["anon"].as_u64(), e["uid"].as_u64()),
            (Some(1024), Some(1000))
        );
        assert!(e["constraint"].is_null() && e["tasks"].as_array().unwrap().is_empty());
    }

    #[test]
    fn an_event_waits_for_its_parts_and_is_written_once() {
        let dir = std::env::temp_dir().join(format!("oomprof-evlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE_NAME);
        let mut log = EventLog::open(&path, &dir, true, crate::metrics::Metrics::new()).unwrap();
        let t0 = Instant::now();
        let lines = || std::fs::read_to_string(&path).unwrap().lines().count();
        // The victim record, then the report: written at the report.
        log.victim(victim(42), t0);
        assert_eq!(lines(), 0);
        log.report(
            OomReport {
                pid: 42,
                ..OomReport::default()
            },
            t0,
        );
        assert_eq!(lines(), 1);
        // A watched Go victim waits for its profile too.
        let mut go = victim(43);
        go.watched = true;
        log.victim(go, t0);
        log.report(
            OomReport {
                pid: 43,
                ..OomReport::default()
            },
            t0,
        );
        assert_eq!(lines(), 1);
        log.profile(43, "x-43.pb.gz", t0);
        assert_eq!(lines(), 2);
        // A watched victim whose capture is slow: still waiting after LINK_WAIT, and
        // written at once when the Monitor says no profile will come.
        let mut slow = victim(46);
        slow.watched = true;
        log.victim(slow, t0);
        log.report(
            OomReport {
                pid: 46,
                ..OomReport::default()
            },
            t0,
        );
        log.tick(t0 + LINK_WAIT * 2);
        assert_eq!(lines(), 2);
        log.no_profile(46);
        assert_eq!(lines(), 3);
        // A report whose victim record was lost: written after LINK_WAIT, not before.
        log.report(
            OomReport {
                pid: 44,
                ..OomReport::default()
            },
            t0,
        );
        log.tick(t0 + LINK_WAIT / 2);
        assert_eq!(lines(), 3);
        log.tick(t0 + LINK_WAIT);
        assert_eq!(lines(), 4);
        // A profile no kill claims is forgotten, never written.
        log.profile(45, "y-45.pb.gz", t0);
        log.tick(t0 + LINK_WAIT * 5);
        log.flush();
        assert_eq!(lines(), 4);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .contains("\"profile\":\"x-43.pb.gz\""),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
