//! The OOM event log: one JSON line per OOM kill of any process (`oomprof-events.jsonl`
//! beside the profiles, or `--events -` for stdout), from the kernel's own report on
//! `/dev/kmsg` (see `oom_loader::kmsg`), linked to the Go profile of the same kill when
//! there is one.
//!
//! A report waits up to [`LINK_WAIT`] for the profile of its pid (the Monitor's
//! capture and the kernel's report race); a profile seen first waits for its report
//! the same way.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use oom_loader::attribution::Resolver;
use oom_loader::kmsg::OomReport;
use serde_json::{json, Value};

/// How long a report waits for its Go profile, and a profile for its report.
pub const LINK_WAIT: Duration = Duration::from_secs(2);

/// The file name of the log in the profile directory.
pub const FILE_NAME: &str = "oomprof-events.jsonl";

/// Where events go.
#[derive(Debug)]
enum Out {
    File(File),
    Stdout,
}

/// The event log and the reports waiting to be linked.
#[derive(Debug)]
pub struct EventLog {
    out: Out,
    path: Option<PathBuf>,
    waiting: VecDeque<(Instant, OomReport)>,
    profiles: VecDeque<(Instant, i32, String)>,
    resolver: Resolver,
    /// Pre-OOM profiles, named by the events of later kills.
    preoom: crate::preoom::Links,
}

impl EventLog {
    /// Appends to `target` (`-`: stdout), creating it with mode 0600; pod names come
    /// from the runtime state under `runtime_root` (the Monitor's).
    ///
    /// Returns an error if the file cannot be opened.
    pub fn open(target: &Path, runtime_root: &Path) -> anyhow::Result<Self> {
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
            waiting: VecDeque::new(),
            profiles: VecDeque::new(),
            resolver: Resolver::new(runtime_root),
            preoom: crate::preoom::Links::default(),
        })
    }

    /// Where the log is (None: stdout).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// A kernel report: written once linked, or after [`LINK_WAIT`].
    pub fn report(&mut self, r: OomReport, now: Instant) {
        let linked = self.profiles.iter().position(|(_, pid, _)| *pid == r.pid);
        if let Some((_, _, file)) = linked.and_then(|i| self.profiles.remove(i)) {
            self.write(&r, Some(&file), now);
        } else {
            self.waiting.push_back((now, r));
        }
    }

    /// A Go profile of an OOM-killed `pid`, written as `file`.
    pub fn profile(&mut self, pid: i32, file: &str, now: Instant) {
        let linked = self.waiting.iter().position(|(_, r)| r.pid == pid);
        if let Some((t, r)) = linked.and_then(|i| self.waiting.remove(i)) {
            self.write(&r, Some(file), t);
        } else {
            self.profiles.push_back((now, pid, file.to_string()));
        }
    }

    /// Writes the reports that waited long enough without a profile.
    pub fn tick(&mut self, now: Instant) {
        while self
            .waiting
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= LINK_WAIT)
        {
            if let Some((t, r)) = self.waiting.pop_front() {
                self.write(&r, None, t);
            }
        }
        while self
            .profiles
            .front()
            .is_some_and(|(t, _, _)| now.duration_since(*t) >= LINK_WAIT * 5)
        {
            self.profiles.pop_front();
        }
    }

    /// Writes everything still waiting (at shutdown).
    pub fn flush(&mut self) {
        while let Some((t, r)) = self.waiting.pop_front() {
            self.write(&r, None, t);
        }
    }

    /// A pre-OOM profile written: the event of a later kill of its pid or cgroup
    /// names it.
    pub fn preoom(&mut self, t: crate::preoom::Taken) {
        self.preoom.add(t);
    }

    /// Writes the event of `r`, whose report was read at `seen` (the kill's time
    /// within a poll).
    fn write(&mut self, r: &OomReport, profile: Option<&str>, seen: Instant) {
        let attribution = r
            .task_memcg
            .as_deref()
            .and_then(|cg| self.resolver.attribute(cg));
        let mut event = event_json(r, profile, attribution.as_ref());
        let preoom = self.preoom.for_kill(r, seen);
        let pre = match (
            preoom["profile"].as_str(),
            preoom["seconds_before_kill"].as_f64(),
        ) {
            (Some(f), Some(s)) => format!(" preoom={f} ({s:.1}s before)"),
            _ => String::new(),
        };
        event["preoom"] = preoom;
        let line = event.to_string();
        let res = match &mut self.out {
            Out::File(f) => writeln!(f, "{line}"),
            Out::Stdout => writeln!(std::io::stdout(), "{line}"),
        };
        match res {
            Ok(()) => log::info!(
                "oom event: pid={} comm={} {}{}{pre}",
                r.pid,
                r.comm,
                summary(r),
                profile.map(|p| format!(" profile={p}")).unwrap_or_default()
            ),
            Err(e) => log::error!("writing the OOM event of pid {}: {e}", r.pid),
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

/// The event's JSON object.
pub fn event_json(
    r: &OomReport,
    profile: Option<&str>,
    a: Option<&oom_loader::attribution::Attribution>,
) -> Value {
    let now = jiff::Timestamp::now();
    let breakdown = r.breakdown().map(|b| {
        json!({
            "anon": b.anon, "page_cache": b.page_cache, "shmem": b.shmem,
            "kernel": b.kernel, "sock": b.sock, "dominant": b.dominant().0,
        })
    });
    let tasks: Vec<Value> = r
        .tasks
        .iter()
        .take(20)
        .map(|t| json!({"pid": t.pid, "uid": t.uid, "rss_pages": t.rss_pages, "name": t.name}))
        .collect();
    let names = a.map(|a| &a.names);
    json!({
        "time": now.to_string(),
        "kmsg_seq": r.seq,
        "kernel_usec": r.usec,
        "pid": r.pid,
        "comm": r.comm,
        "uid": r.uid,
        "oom_score_adj": r.oom_score_adj,
        "constraint": r.constraint,
        "oom_memcg": r.oom_memcg,
        "task_memcg": r.task_memcg,
        "trigger": {"comm": r.trigger_comm, "tid": r.trigger_tid},
        "allocation": {"gfp_mask": r.gfp_mask, "order": r.order},
        "rss_kb": {
            "total_vm": r.total_vm_kb, "anon": r.anon_rss_kb, "file": r.file_rss_kb,
            "shmem": r.shmem_rss_kb, "pgtables": r.pgtables_kb,
        },
        "memcg": {
            "usage_kb": r.memcg_usage_kb, "limit_kb": r.memcg_limit_kb,
            "bytes": breakdown,
        },
        "tasks": tasks,
        "namespace": names.and_then(|n| n.namespace.clone()),
        "pod": names.and_then(|n| n.pod.clone()),
        "container": names.and_then(|n| n.container.clone()),
        "container_id": a.and_then(|a| a.ids.container_id.clone()),
        "profile": profile,
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
            (None, _) => "global OOM".into(),
        };
        let pod = match (s("namespace"), s("pod")) {
            (Some(ns), Some(p)) => format!(" pod={ns}/{p}"),
            _ => String::new(),
        };
        let pre = match (
            v["preoom"]["profile"].as_str(),
            v["preoom"]["seconds_before_kill"].as_f64(),
        ) {
            (Some(f), Some(s)) => format!(" preoom={f} ({s:.1}s before)"),
            _ => String::new(),
        };
        println!(
            "{time} pid={} comm={}{pod} {memcg} trigger={} profile={}{pre}",
            v["pid"],
            s("comm").unwrap_or_default(),
            v["trigger"]["comm"].as_str().unwrap_or("-"),
            v["profile"].as_str().unwrap_or("-"),
        );
        n += 1;
    }
    Ok(n)
}
