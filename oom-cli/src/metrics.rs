//! The daemon's Prometheus endpoint (`oomprof run --metrics-addr ADDR`): counters the
//! daemon updates as it goes, served as text exposition format 0.0.4 by a minimal
//! HTTP/1.1 server on a thread of its own (one connection at a time, short timeouts;
//! a scrape every few seconds needs no more).
//!
//! Series:
//! - `oomprof_build_info{version}` 1;
//! - `oomprof_oom_kills_total{namespace,pod,container,comm}`: OOM kills of watched Go
//!   processes, at most [`MAX_KILL_SERIES`] label sets (then `_other`);
//! - `oomprof_oom_kills_node_total`: the same kills without labels, present at 0 from
//!   the start, so `increase()` sees a node's first kill (a labelled series is born
//!   at 1, and Prometheus cannot see its first increment);
//! - `oomprof_oom_events_total{constraint,kind}`: OOM kills of any process, from the
//!   kernel's report (memcg/global; anon, page_cache, shmem, kernel, sock);
//! - `oomprof_profiles_written_total{sink,result}`: `dir` ok/error (writes); `s3` ok
//!   (uploads), error (failed attempts: the profile stays spooled), dropped (never
//!   uploaded: the spool was full or could not be written);
//! - `oomprof_spool_files`, `oomprof_spool_bytes`: profiles waiting for S3 (with S3);
//! - `oomprof_profiles_debounced_total`: kills `--debounce` did not write;
//! - `oomprof_preoom_profiles_total{trigger}`: profiles taken before a kill because a
//!   cgroup neared its limit (usage, psi, system-psi, memory.high);
//! - `oomprof_captures_incomplete_total{reason}`;
//! - `oomprof_lost_events_total{kind}`: ring records the kernel could not deliver;
//! - `oomprof_watched_processes`;
//! - `oomprof_walk_seconds`: a histogram of the in-kernel walk's duration.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use oom_loader::profile::Profile;

/// Distinct `oomprof_oom_kills_total` label sets kept; kills beyond go to one series
/// whose labels are all `_other`, so a node killing many pods keeps a bounded scrape.
pub const MAX_KILL_SERIES: usize = 500;

/// Upper bounds of the walk histogram's buckets, in seconds.
const WALK_BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0,
];

#[derive(Debug, Default)]
struct State {
    kills: BTreeMap<[String; 4], u64>,
    kills_node: u64,
    debounced: u64,
    preoom: BTreeMap<&'static str, u64>,
    events: BTreeMap<(String, &'static str), u64>,
    written: BTreeMap<(String, &'static str), u64>,
    spool: Option<(u64, u64)>,
    incomplete: BTreeMap<&'static str, u64>,
    lost: BTreeMap<&'static str, u64>,
    watched: u64,
    walk_buckets: [u64; WALK_BUCKETS.len()],
    walk_count: u64,
    walk_sum: f64,
}

/// The daemon's counters, shared with the server thread.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    state: Arc<Mutex<State>>,
}

impl Metrics {
    /// Counters with every fixed series present at zero (a series that appears only
    /// on the first failure cannot be alerted on with `increase()`).
    pub fn new() -> Self {
        let m = Self::default();
        {
            let mut s = m.lock();
            for result in ["ok", "error"] {
                s.written.insert(("dir".to_string(), result), 0);
            }
            for kind in ["events", "ends", "malformed"] {
                s.lost.insert(kind, 0);
            }
            for t in oom_loader::pressure::Trigger::ALL {
                s.preoom.insert(t.as_str(), 0);
            }
        }
        m
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a profile the Monitor produced: the kill (if the OOM killer's), the
    /// walk's duration, and each reason it is incomplete.
    pub fn profile(&self, p: &Profile) {
        let mut s = self.lock();
        if p.meta.reason == oom_loader::profile::Reason::Oom {
            let names = p.meta.attribution.as_ref().map(|a| &a.names);
            let get = |f: fn(&oom_loader::attribution::Names) -> &Option<String>| {
                names.and_then(|n| f(n).clone()).unwrap_or_default()
            };
            let mut key = [
                get(|n| &n.namespace),
                get(|n| &n.pod),
                get(|n| &n.container),
                p.meta.comm.clone(),
            ];
            if !s.kills.contains_key(&key) && s.kills.len() >= MAX_KILL_SERIES {
                key = std::array::from_fn(|_| "_other".to_string());
            }
            *s.kills.entry(key).or_default() += 1;
            s.kills_node += 1;
        }
        if let Some(ns) = p.meta.walk_ns {
            let secs = ns as f64 / 1e9;
            for (i, le) in WALK_BUCKETS.iter().enumerate() {
                if secs <= *le {
                    s.walk_buckets[i] += 1;
                }
            }
            s.walk_count += 1;
            s.walk_sum += secs;
        }
        for why in &p.meta.incomplete {
            *s.incomplete.entry(why.kind()).or_default() += 1;
        }
        if let Some(n) = &p.meta.pressure {
            *s.preoom.entry(n.trigger.as_str()).or_default() += 1;
        }
    }

    /// Counts a write to `sink` (e.g. `dir`) that succeeded or failed.
    pub fn written(&self, sink: &str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        *self
            .lock()
            .written
            .entry((sink.to_string(), result))
            .or_default() += 1;
    }

    /// Registers `sink` (e.g. `s3`): its ok, error and dropped series at zero.
    pub fn sink(&self, sink: &str) {
        let mut s = self.lock();
        for result in ["ok", "error", "dropped"] {
            s.written.entry((sink.to_string(), result)).or_default();
        }
        s.spool.get_or_insert((0, 0));
    }

    /// Counts a profile that will never reach `sink`.
    pub fn dropped(&self, sink: &str) {
        *self
            .lock()
            .written
            .entry((sink.to_string(), "dropped"))
            .or_default() += 1;
    }

    /// Sets the spool gauges: (profiles, bytes) waiting for S3.
    pub fn spool(&self, (files, bytes): (usize, u64)) {
        self.lock().spool = Some((files as u64, bytes));
    }

    /// Counts an OOM kill of any process, with the kernel's report when there is one
    /// (`unknown` constraint and kind without it).
    pub fn oom_event(&self, r: Option<&oom_loader::kmsg::OomReport>) {
        let constraint = match r.map(|r| r.constraint.as_deref()) {
            None => "unknown",
            Some(c) => match c {
                Some("CONSTRAINT_MEMCG") => "memcg",
                Some("CONSTRAINT_NONE") | None => "global",
                Some("CONSTRAINT_CPUSET") => "cpuset",
                Some("CONSTRAINT_MEMORY_POLICY") => "mempolicy",
                Some(_) => "other",
            },
        };
        let kind = r
            .and_then(|r| r.breakdown())
            .map_or("unknown", |b| b.dominant().0);
        *self
            .lock()
            .events
            .entry((constraint.to_string(), kind))
            .or_default() += 1;
    }

    /// Counts a profile `--debounce` did not write.
    pub fn debounced(&self) {
        self.lock().debounced += 1;
    }

    /// Sets the gauges and the kernel's loss counters (absolute values).
    pub fn update(&self, watched: usize, lost: oom_loader::kernel::Lost) {
        let mut s = self.lock();
        s.watched = watched as u64;
        s.lost.insert("events", lost.events);
        s.lost.insert("ends", lost.ends);
        s.lost.insert("malformed", lost.malformed);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let s = self.lock();
        let mut o = String::new();
        let head = |o: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(
            &mut o,
            "oomprof_build_info",
            "gauge",
            "oomprof's version; always 1.",
        );
        let _ = writeln!(
            o,
            "oomprof_build_info{{version=\"{}\"}} 1",
            escape(env!("CARGO_PKG_VERSION"))
        );
        head(
            &mut o,
            "oomprof_oom_kills_total",
            "counter",
            "OOM kills of watched Go processes, by pod and command.",
        );
        for ([ns, pod, container, comm], n) in &s.kills {
            let _ = writeln!(
                o,
                "oomprof_oom_kills_total{{namespace=\"{}\",pod=\"{}\",container=\"{}\",comm=\"{}\"}} {n}",
                escape(ns),
                escape(pod),
                escape(container),
                escape(comm)
            );
        }
        head(
            &mut o,
            "oomprof_oom_kills_node_total",
            "counter",
            "OOM kills of watched Go processes on this node (no labels; 0 from the start).",
        );
        let _ = writeln!(o, "oomprof_oom_kills_node_total {}", s.kills_node);
        head(
            &mut o,
            "oomprof_oom_events_total",
            "counter",
            "OOM kills of any process (the kernel's report), by constraint and the kind of memory that filled the cgroup.",
        );
        for ((constraint, kind), n) in &s.events {
            let _ = writeln!(
                o,
                "oomprof_oom_events_total{{constraint=\"{constraint}\",kind=\"{kind}\"}} {n}"
            );
        }
        head(
            &mut o,
            "oomprof_profiles_written_total",
            "counter",
            "Profiles written, by sink and result.",
        );
        for ((sink, result), n) in &s.written {
            let _ = writeln!(
                o,
                "oomprof_profiles_written_total{{sink=\"{}\",result=\"{result}\"}} {n}",
                escape(sink)
            );
        }
        if let Some((files, bytes)) = s.spool {
            head(
                &mut o,
                "oomprof_spool_files",
                "gauge",
                "Profiles spooled, waiting to be uploaded to S3.",
            );
            let _ = writeln!(o, "oomprof_spool_files {files}");
            head(
                &mut o,
                "oomprof_spool_bytes",
                "gauge",
                "Bytes of profiles spooled, waiting to be uploaded to S3.",
            );
            let _ = writeln!(o, "oomprof_spool_bytes {bytes}");
        }
        head(
            &mut o,
            "oomprof_profiles_debounced_total",
            "counter",
            "Profiles not written: a repeated kill within the --debounce window.",
        );
        let _ = writeln!(o, "oomprof_profiles_debounced_total {}", s.debounced);
        head(
            &mut o,
            "oomprof_preoom_profiles_total",
            "counter",
            "Pre-OOM profiles: taken while running because a memory cgroup neared its limit, by trigger.",
        );
        for (trigger, n) in &s.preoom {
            let _ = writeln!(
                o,
                "oomprof_preoom_profiles_total{{trigger=\"{trigger}\"}} {n}"
            );
        }
        head(
            &mut o,
            "oomprof_captures_incomplete_total",
            "counter",
            "Reasons captures were incomplete (a capture may have several).",
        );
        for (reason, n) in &s.incomplete {
            let _ = writeln!(
                o,
                "oomprof_captures_incomplete_total{{reason=\"{reason}\"}} {n}"
            );
        }
        head(
            &mut o,
            "oomprof_lost_events_total",
            "counter",
            "Kernel ring records lost (events, ends: whole captures) or malformed.",
        );
        for (kind, n) in &s.lost {
            let _ = writeln!(o, "oomprof_lost_events_total{{kind=\"{kind}\"}} {n}");
        }
        head(
            &mut o,
            "oomprof_watched_processes",
            "gauge",
            "Go processes watched now.",
        );
        let _ = writeln!(o, "oomprof_watched_processes {}", s.watched);
        head(
            &mut o,
            "oomprof_walk_seconds",
            "histogram",
            "Duration of the in-kernel walk of the heap profile at a kill.",
        );
        for (le, n) in WALK_BUCKETS.iter().zip(s.walk_buckets) {
            let _ = writeln!(o, "oomprof_walk_seconds_bucket{{le=\"{le}\"}} {n}");
        }
        let _ = writeln!(
            o,
            "oomprof_walk_seconds_bucket{{le=\"+Inf\"}} {}\noomprof_walk_seconds_sum {}\noomprof_walk_seconds_count {}",
            s.walk_count, s.walk_sum, s.walk_count
        );
        o
    }

    /// Binds `addr` and serves `/metrics` on a thread until the process exits.
    /// Returns the bound address (`:0` picks a port).
    ///
    /// Returns an error if the address cannot be bound.
    pub fn serve(&self, addr: &str) -> anyhow::Result<SocketAddr> {
        let listener =
            TcpListener::bind(addr).with_context(|| format!("--metrics-addr {addr}: binding"))?;
        let bound = listener.local_addr()?;
        let me = self.clone();
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    match conn {
                        Ok(c) => {
                            if let Err(e) = me.answer(c) {
                                log::debug!("metrics: {e}");
                            }
                        }
                        Err(e) => {
                            log::warn!("metrics: accepting a connection: {e}");
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
            })
            .context("starting the metrics thread")?;
        Ok(bound)
    }

    /// One request, one response, then close.
    fn answer(&self, mut c: TcpStream) -> std::io::Result<()> {
        c.set_read_timeout(Some(Duration::from_secs(2)))?;
        c.set_write_timeout(Some(Duration::from_secs(2)))?;
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = c.read(&mut buf)?;
            if n == 0 || req.len() > 8192 {
                break;
            }
            req.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&req);
        let mut words = line.split_whitespace();
        let (status, kind, body) = match (words.next(), words.next()) {
            (Some("GET"), Some(p)) if p == "/metrics" || p.starts_with("/metrics?") => (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                self.render(),
            ),
            (Some("GET"), Some("/")) => (
                "200 OK",
                "text/plain; charset=utf-8",
                "oomprof: metrics at /metrics\n".to_string(),
            ),
            (Some("GET"), _) => ("404 Not Found", "text/plain", "not found\n".into()),
            _ => ("405 Method Not Allowed", "text/plain", "GET only\n".into()),
        };
        write!(
            c,
            "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        c.flush()
    }
}

/// A label value as the exposition format quotes it.
fn escape(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
    }

    #[test]
    fn fixed_series_exist_at_zero_and_histogram_is_cumulative() {
        let m = Metrics::new();
        {
            let mut s = m.lock();
            s.walk_buckets = [0, 0, 1, 2, 2, 2, 2, 2, 2, 3];
            s.walk_count = 3;
            s.walk_sum = 0.5;
        }
        let t = m.render();
        assert!(t.contains("oomprof_profiles_written_total{sink=\"dir\",result=\"error\"} 0"));
        assert!(t.contains("oomprof_lost_events_total{kind=\"ends\"} 0"));
        assert!(t.contains("oomprof_walk_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(t.contains("oomprof_walk_seconds_count 3"));
        assert!(t.contains("# TYPE oomprof_oom_kills_total counter"));
        for trigger in ["usage", "psi", "system-psi", "memory.high"] {
            assert!(
                t.contains(&format!(
                    "oomprof_preoom_profiles_total{{trigger=\"{trigger}\"}} 0"
                )),
                "{t}"
            );
        }
        assert!(!t.contains("sink=\"s3\""), "no S3 series without S3");
        assert!(!t.contains("oomprof_spool_files"));
    }

    #[test]
    fn the_s3_sink_has_its_series_and_spool_gauges() {
        let m = Metrics::new();
        m.sink("s3");
        let t = m.render();
        for r in ["ok", "error", "dropped"] {
            assert!(
                t.contains(&format!(
                    "oomprof_profiles_written_total{{sink=\"s3\",result=\"{r}\"}} 0"
                )),
                "{t}"
            );
        }
        assert!(t.contains("oomprof_spool_files 0\n"), "{t}");
        m.written("s3", true);
        m.dropped("s3");
        m.spool((2, 4096));
        let t = m.render();
        assert!(t.contains("oomprof_profiles_written_total{sink=\"s3\",result=\"ok\"} 1"));
        assert!(t.contains("oomprof_profiles_written_total{sink=\"s3\",result=\"dropped\"} 1"));
        assert!(t.contains("\noomprof_spool_files 2\n"), "{t}");
        assert!(t.contains("\noomprof_spool_bytes 4096\n"), "{t}");
    }
}
