//! `oomprof run` (the default): watch every Go process and write a profile for every
//! OOM kill.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use argh::FromArgs;
use nix::sys::signal::{SigSet, Signal};
use oom_core::abi;
use oom_loader::monitor::{Monitor, MonitorConfig, MonitorEvent};
use oom_loader::profile::Profile;

use crate::events::EventLog;
use crate::metrics::Metrics;
use crate::output;
use crate::retention::{Debounce, Retention};

/// What the daemon keeps: the directory's limits and the debounce.
#[derive(Debug)]
struct Keeping {
    retention: Retention,
    debounce: Option<Debounce>,
    /// When the directory was last pruned by age.
    pruned_at: Instant,
}

/// `--max-files`, `--max-bytes`, `--max-age`, `--debounce`, validated.
fn keeping(args: &RunArgs) -> anyhow::Result<Keeping> {
    let retention = Retention {
        max_files: match args.max_files {
            Some(0) => return super::usage("--max-files 0: want at least 1"),
            n => n,
        },
        max_bytes: match &args.max_bytes {
            None => None,
            Some(b) => match parse_size(b) {
                Some(n) if n > 0 => Some(n as u64),
                _ => return super::usage(format!("--max-bytes {b}: want a size, e.g. 512M or 2G")),
            },
        },
        max_age: match &args.max_age {
            None => None,
            Some(a) => match parse_duration(a) {
                Some(d) if !d.is_zero() => Some(d),
                _ => {
                    return super::usage(format!("--max-age {a}: want a duration, e.g. 7d or 12h"))
                }
            },
        },
    };
    let debounce = match &args.debounce {
        None => None,
        Some(w) => match parse_duration(w) {
            Some(d) if !d.is_zero() => Some(Debounce::new(d)),
            _ => return super::usage(format!("--debounce {w}: want a duration, e.g. 5m")),
        },
    };
    Ok(Keeping {
        retention,
        debounce,
        pruned_at: Instant::now(),
    })
}

/// watch Go processes and write a heap profile for every OOM kill (the default command)
#[derive(FromArgs, Debug, Default)]
#[argh(subcommand, name = "run")]
pub struct RunArgs {
    /// directory for profiles (default: current directory)
    #[argh(option)]
    pub dir: Option<String>,
    /// ring-buffer size, e.g. 8M: a power of two from the page size to 1G (default 8M)
    #[argh(option)]
    pub ring_size: Option<String>,
    /// most buckets captured per kill, 1 to 8000000 (default 150000, what the default ring holds)
    #[argh(option)]
    pub max_buckets: Option<u32>,
    /// longest in-kernel walk per kill, e.g. 100ms or 1s, or 0 for no limit (default 100ms); the walk runs with the victim's interrupts off
    #[argh(option)]
    pub walk_budget: Option<String>,
    /// also write profiles of Go processes killed by a SIGKILL that is not the OOM killer's (kill -9, cgroup.kill, systemd-oomd); normal exits and execs are never captured
    #[argh(switch)]
    pub keep_all_kills: bool,
    /// do not watch Go processes that are already running at start
    #[argh(switch)]
    pub no_scan: bool,
    /// also log the allocations Go had not published yet at the kill (recent_alloc_space: total and top site)
    #[argh(switch)]
    pub log_recent: bool,
    /// serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9464 (default: off)
    #[argh(option)]
    pub metrics_addr: Option<String>,
    /// keep at most N profiles in --dir, removing the oldest (default: no limit)
    #[argh(option)]
    pub max_files: Option<usize>,
    /// keep at most this many bytes of profiles in --dir, e.g. 1G, removing the oldest (default: no limit)
    #[argh(option)]
    pub max_bytes: Option<String>,
    /// remove profiles older than this from --dir, e.g. 7d or 12h (default: never)
    #[argh(option)]
    pub max_age: Option<String>,
    /// the OOM event log (every OOM kill of any process, from the kernel's report): a file, `-` for stdout, or `off` (default: oomprof-events.jsonl in --dir)
    #[argh(option)]
    pub events: Option<String>,
    /// where the node's container runtime state is (run/containerd, var/lib/docker, run/containers): pod and container names come from there (default: /)
    #[argh(option)]
    pub runtime_root: Option<String>,
    /// write one profile per container (or executable) per window, e.g. 5m: further kills within it are counted and logged, not written (default: every kill)
    #[argh(option)]
    pub debounce: Option<String>,
}

impl RunArgs {
    /// Defaults, with the top-level `--dir`.
    pub fn with_dir(dir: Option<String>) -> Self {
        Self {
            dir,
            ..Self::default()
        }
    }
}

/// Raises the soft open-file limit to the hard one: every cached binary keeps its
/// file open (checked before its mapping is read), up to the cache's 4096 entries,
/// and the usual soft limit is 1024.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                log::warn!("raising the open-file limit from {soft} to {hard}: {e}");
            }
        }
        Ok(_) => {}
        Err(e) => log::warn!("reading the open-file limit: {e}"),
    }
}

/// Parses `8M`, `512K`, `16777216`, `1G` (binary units).
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1usize << 10),
        (i, 'm' | 'M') => (&s[..i], 1 << 20),
        (i, 'g' | 'G') => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<usize>().ok()?.checked_mul(mult)
}

/// Parses `100ms`, `2s`, `500us`, `0`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    match unit {
        "us" | "µs" => Some(Duration::from_micros(n)),
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        "d" => n.checked_mul(86400).map(Duration::from_secs),
        _ => None,
    }
}

/// Profiles that could not be written yet (full disk, permissions), retried each loop.
/// Bounded: the oldest are given up on, with a log line, past these limits.
const PENDING_MAX: usize = 16;
const PENDING_MAX_BYTES: usize = 256 << 20;

/// The largest `--ring-size`: what `Kernel::load` accepts (1 GiB).
const MAX_RING_SIZE: usize = 1 << 30;

/// The system page size, the smallest ring the kernel maps (4 KiB if unknown).
fn page_size() -> usize {
    use nix::unistd::{sysconf, SysconfVar};
    match sysconf(SysconfVar::PAGE_SIZE) {
        Ok(Some(n)) if n > 0 => n as usize,
        _ => 4096,
    }
}

/// Validates the flags into the monitor's configuration, before anything is loaded.
///
/// Returns a usage error if `--ring-size`, `--max-buckets` or `--walk-budget` is
/// malformed or out of the range the loader accepts.
fn config(args: &RunArgs) -> anyhow::Result<MonitorConfig> {
    let mut config = MonitorConfig {
        scan_existing: !args.no_scan,
        ..MonitorConfig::default()
    };
    if let Some(r) = &args.ring_size {
        let page = page_size();
        let size = match parse_size(r) {
            Some(s) if s.is_power_of_two() && (page..=MAX_RING_SIZE).contains(&s) => s,
            _ => {
                return super::usage(format!(
                    "--ring-size {r}: want a power of two from {}K to 1G, e.g. 8M",
                    page >> 10
                ))
            }
        };
        config.kernel.ring_size = size;
    }
    if let Some(n) = args.max_buckets {
        if n == 0 || n > abi::MAX_BUCKETS_CEILING {
            return super::usage(format!(
                "--max-buckets {n}: want 1 to {}",
                abi::MAX_BUCKETS_CEILING
            ));
        }
        config.kernel.max_buckets = n;
    }
    if let Some(b) = &args.walk_budget {
        config.kernel.walk_budget = match parse_duration(b) {
            Some(d) if d.is_zero() => None,
            Some(d) if d <= Duration::from_secs(10) => Some(d),
            _ => {
                return super::usage(format!(
                    "--walk-budget {b}: want a duration of at most 10s, e.g. 100ms, or 0"
                ))
            }
        };
    }
    config.kernel.keep_killed = args.keep_all_kills;
    if let Some(r) = &args.runtime_root {
        config.runtime_root = PathBuf::from(r);
    }
    Ok(config)
}

/// Runs the daemon until SIGINT or SIGTERM.
pub fn run(args: RunArgs, _debug: bool) -> anyhow::Result<()> {
    let config = config(&args)?;
    let runtime_root = config.runtime_root.clone();
    let mut keep = keeping(&args)?;
    let dir = PathBuf::from(args.dir.as_deref().unwrap_or("."));
    output::check_dir(&dir)?;
    raise_fd_limit();

    // SIGINT/SIGTERM: blocked here, before any thread exists, and taken by a waiter
    // thread, so shutdown is an orderly return (Drop detaches everything).
    let mut sigs = SigSet::empty();
    sigs.add(Signal::SIGINT);
    sigs.add(Signal::SIGTERM);
    sigs.thread_block().context("blocking SIGINT/SIGTERM")?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if let Ok(sig) = sigs.wait() {
                    log::info!("{sig}: detaching");
                }
                stop.store(true, Ordering::Relaxed);
            })
            .context("starting the signal thread")?;
    }

    let metrics = Metrics::new();
    if let Some(addr) = &args.metrics_addr {
        let bound = metrics.serve(addr)?;
        log::info!("metrics at http://{bound}/metrics");
    }

    let t = Instant::now();
    let mut monitor = Monitor::builder()
        .config(config)
        .build()
        .context("loading the kernel program (try `oomprof check`)")?;
    let watched = monitor.watched().count();
    log::info!(
        "ready in {:.0?}: watching {watched} Go processes, kernel memory {:.1} MiB, writing profiles to {}",
        t.elapsed(),
        monitor.kernel().kernel_memory() as f64 / 1048576.0,
        dir.display()
    );

    // The kernel's OOM reports, for the event log of every kill.
    let mut events = match args.events.as_deref() {
        Some("off") => None,
        target => {
            let path = target.map_or_else(|| dir.join(crate::events::FILE_NAME), PathBuf::from);
            match (
                EventLog::open(&path, &runtime_root),
                oom_loader::kmsg::Reader::open(),
            ) {
                (Ok(log), Ok(kmsg)) => {
                    log::info!(
                        "OOM events of every process to {}",
                        log.path()
                            .map_or("stdout".into(), |p| p.display().to_string())
                    );
                    Some((log, kmsg, oom_loader::kmsg::Assembler::new(), 0u64))
                }
                (Err(e), _) => return Err(e),
                (_, Err(e)) => {
                    log::warn!(
                        "no OOM event log: reading /dev/kmsg: {e} (needs CAP_SYSLOG where kernel.dmesg_restrict=1)"
                    );
                    None
                }
            }
        }
    };
    let mut pending: VecDeque<(String, Vec<u8>)> = VecDeque::new();
    let mut gauges_at = Instant::now();
    metrics.update(watched, monitor.kernel().lost());
    while !stop.load(Ordering::Relaxed) {
        // Short enough that SIGTERM is noticed within 50 ms; idle wake-ups cost nothing.
        let polled = match monitor.poll(Some(Duration::from_millis(50))) {
            Ok(e) => e,
            Err(e) => {
                log::error!("reading kernel events: {e}");
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        if let Some((log, kmsg, asm, lost_said)) = &mut events {
            let now = Instant::now();
            let mut reports = Vec::new();
            if let Err(e) = kmsg.drain(|r| reports.extend(asm.push(r))) {
                log::warn!("reading /dev/kmsg: {e}");
            }
            for r in reports {
                metrics.oom_event(&r);
                log.report(r, now);
            }
            if kmsg.lost() > *lost_said {
                log::warn!(
                    "/dev/kmsg: {} records overwritten before they were read: OOM reports among them are lost",
                    kmsg.lost() - *lost_said
                );
                *lost_said = kmsg.lost();
            }
            log.tick(now);
        }
        for e in polled {
            let oom = matches!(&e, MonitorEvent::Profile(p) if p.meta.reason == oom_loader::profile::Reason::Oom);
            let written = handle(e, &dir, args.log_recent, &mut pending, &metrics, &mut keep);
            if let (true, Some((pid, file)), Some((log, ..))) = (oom, written, &mut events) {
                // The event names the profile file (linked by pid).
                log.profile(pid, &file, Instant::now());
            }
        }
        if keep.retention.max_age.is_some() && keep.pruned_at.elapsed() >= Duration::from_secs(60) {
            prune(&keep.retention, &dir, None);
            keep.pruned_at = Instant::now();
        }
        retry(&dir, &mut pending, &metrics);
        if gauges_at.elapsed() >= Duration::from_secs(1) {
            metrics.update(monitor.watched().count(), monitor.kernel().lost());
            gauges_at = Instant::now();
        }
    }
    drop(monitor);
    if let Some((log, ..)) = &mut events {
        log.flush();
    }
    log::info!("detached");
    Ok(())
}

fn handle(
    e: MonitorEvent,
    dir: &Path,
    recent: bool,
    pending: &mut VecDeque<(String, Vec<u8>)>,
    metrics: &Metrics,
    keep: &mut Keeping,
) -> Option<(i32, String)> {
    match e {
        MonitorEvent::Watched {
            pid,
            comm,
            exe,
            go_version,
            latency,
        } => log::debug!(
            "watch pid {pid} ({comm}) {} {go_version}{}",
            exe.display(),
            latency
                .map(|l| format!(", {l:.2?} after exec"))
                .unwrap_or_default()
        ),
        MonitorEvent::Unwatched { pid, why } => log::debug!("unwatch pid {pid} ({why})"),
        MonitorEvent::Skipped { pid, comm, reason } => {
            log::debug!("skip pid {pid} ({comm}): {reason}")
        }
        MonitorEvent::ProfilingDisabled {
            pid,
            comm,
            exe,
            detail,
        } => log::warn!(
            "pid {pid} ({comm}, {}): killed, no profile written: {detail}",
            exe.display()
        ),
        MonitorEvent::Dropped { pid, comm, reason } => {
            log::warn!("pid {pid} ({comm}): no profile: {reason}")
        }
        MonitorEvent::Profile(mut p) => {
            metrics.profile(&p);
            if let Some(db) = &mut keep.debounce {
                let key = debounce_key(&p);
                match db.admit(&key, Instant::now()) {
                    Err(n) => {
                        metrics.debounced();
                        log::warn!(
                            "pid {} ({}): reason={} not written: kill {n} of {key} within the debounce window",
                            p.meta.pid,
                            p.meta.comm,
                            p.meta.reason.as_str()
                        );
                        return Some((p.meta.pid, "debounced".into()));
                    }
                    Ok(0) => {}
                    Ok(n) => log::info!("{key}: {n} kills were debounced since its last profile"),
                }
            }
            let base = name_of(&p);
            let t = Instant::now();
            match output::write_profile(dir, &base, &p.pprof_gz) {
                Ok(path) => {
                    p.timings.write = Some(t.elapsed());
                    metrics.written("dir", true);
                    log_profile(&p, &path, recent);
                    prune(&keep.retention, dir, Some(&path));
                    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                    return name.map(|n| (p.meta.pid, n));
                }
                Err(e) => {
                    metrics.written("dir", false);
                    log::error!(
                        "pid {} ({}): writing the profile failed, will retry: {e:#}",
                        p.meta.pid,
                        p.meta.comm
                    );
                    let pid = p.meta.pid;
                    pending.push_back((base.clone(), p.pprof_gz));
                    let mut bytes: usize = pending.iter().map(|(_, d)| d.len()).sum();
                    while pending.len() > PENDING_MAX || bytes > PENDING_MAX_BYTES {
                        if let Some((b, d)) = pending.pop_front() {
                            bytes -= d.len();
                            log::error!("giving up on profile {b}: too many waiting to be written");
                        }
                    }
                    return Some((pid, format!("{base}.pb.gz (pending)")));
                }
            }
        }
    }
    None
}

fn retry(dir: &Path, pending: &mut VecDeque<(String, Vec<u8>)>, metrics: &Metrics) {
    while let Some((base, data)) = pending.front() {
        match output::write_profile(dir, base, data) {
            Ok(path) => {
                metrics.written("dir", true);
                log::info!("wrote {} (delayed)", path.display());
                pending.pop_front();
            }
            Err(_) => break,
        }
    }
}

/// Applies the directory's limits, logging each removal.
fn prune(r: &Retention, dir: &Path, keep: Option<&Path>) {
    for p in r.prune(dir, keep, std::time::SystemTime::now()) {
        log::info!("retention: removed {}", p.display());
    }
}

/// What `--debounce` counts kills of: the container, else the executable.
fn debounce_key(p: &Profile) -> String {
    match p
        .meta
        .attribution
        .as_ref()
        .and_then(|a| a.ids.container_id.as_deref())
    {
        Some(id) => format!("container {}", &id[..id.len().min(12)]),
        None => format!("executable {}", p.meta.exe.display()),
    }
}

/// The file name (without `.pb.gz`) of a profile: `{who}-{pid}-{YYYYmmddHHMMSS}`, where
/// `who` is `{namespace}_{pod}_{container}` when the runtime named them, else the comm.
pub fn name_of(p: &Profile) -> String {
    // Out of jiff's range (years -9999 to 9999) only if the clock is absurd.
    let time = jiff::Timestamp::try_from(p.meta.time).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    output::base_name(&who(p), p.meta.pid, time)
}

/// `{namespace}_{pod}_{container}` when known (at most 200 bytes: file names end at
/// 255, and a pod name alone may be 253), else the comm.
fn who(p: &Profile) -> String {
    let names = p.meta.attribution.as_ref().map(|a| &a.names);
    match names.map(|n| (&n.namespace, &n.pod, &n.container)) {
        Some((Some(ns), Some(pod), container)) => {
            let mut w = format!(
                "{ns}_{pod}_{}",
                container.as_deref().unwrap_or(&p.meta.comm)
            );
            if w.len() > 200 {
                let mut end = 200;
                while !w.is_char_boundary(end) {
                    end -= 1;
                }
                w.truncate(end);
            }
            w
        }
        _ => p.meta.comm.clone(),
    }
}

/// ` pod=NS/NAME container=NAME` for the log line, when known.
fn who_fields(p: &Profile) -> String {
    let Some(a) = &p.meta.attribution else {
        return String::new();
    };
    let mut s = String::new();
    if let (Some(ns), Some(pod)) = (&a.names.namespace, &a.names.pod) {
        s.push_str(&format!(" pod={ns}/{pod}"));
    }
    if let Some(c) = &a.names.container {
        s.push_str(&format!(" container={c}"));
    } else if let Some(id) = &a.ids.container_id {
        s.push_str(&format!(" container_id={}", &id[..id.len().min(12)]));
    }
    s
}

/// One info line per profile: path, pid, comm, reason, in-use total, top site,
/// completeness, and for kills the time from the kill to the file with its stages.
/// With `recent`, also the recent-allocation view (`recent_alloc_space`).
pub fn log_profile(p: &Profile, path: &Path, recent: bool) {
    let s = &p.summary;
    let recent = if recent {
        format!(
            " recent={:.1}MiB recent_top={} ({:.1}MiB)",
            s.recent_bytes as f64 / 1048576.0,
            s.recent_top_function.as_deref().unwrap_or("-"),
            s.recent_top_bytes as f64 / 1048576.0
        )
    } else {
        String::new()
    };
    let timing = match (p.meta.walk_ns, p.meta.kill_mono_ns) {
        (Some(w), Some(k)) => {
            let after = oom_loader::monitor::monotonic_ns().map_or(0, |n| n.saturating_sub(k));
            format!(
                " walk={:.3}ms written={:.3}ms-after-kill{}",
                w as f64 / 1e6,
                after as f64 / 1e6,
                p.timings.fields()
            )
        }
        _ => p.timings.fields(),
    };
    log::info!(
        "wrote {} pid={} comm={}{} reason={} inuse={:.1}MiB top={} ({:.1}MiB){recent} {}{timing}",
        path.display(),
        p.meta.pid,
        p.meta.comm,
        who_fields(p),
        p.meta.reason.as_str(),
        s.inuse_bytes as f64 / 1048576.0,
        s.top_function.as_deref().unwrap_or("-"),
        s.top_inuse_bytes as f64 / 1048576.0,
        match p.meta.incomplete_text() {
            None => format!("complete ({} buckets)", p.meta.buckets),
            Some(w) => format!("INCOMPLETE: {w}"),
        }
    );
}

#[cfg(test)]
mod tests {
    use super::{config, keeping, RunArgs};
    use std::time::Duration;

    fn usage_of(args: RunArgs) -> String {
        let e = config(&args).unwrap_err();
        assert!(
            e.downcast_ref::<crate::cmd::UsageError>().is_some(),
            "{e:#}"
        );
        e.to_string()
    }

    #[test]
    fn out_of_range_sizes_are_usage_errors() {
        let ring = |r: &str| RunArgs {
            ring_size: Some(r.into()),
            ..RunArgs::default()
        };
        for bad in ["2G", "3M", "1K", "0", "x", "18446744073709551616"] {
            assert!(usage_of(ring(bad)).contains("--ring-size"), "{bad}");
        }
        assert_eq!(config(&ring("1G")).unwrap().kernel.ring_size, 1 << 30);
        assert_eq!(config(&ring("64K")).unwrap().kernel.ring_size, 64 << 10);
        let buckets = |n| RunArgs {
            max_buckets: Some(n),
            ..RunArgs::default()
        };
        for bad in [0, oom_core::abi::MAX_BUCKETS_CEILING + 1, u32::MAX] {
            assert!(usage_of(buckets(bad)).contains("--max-buckets"), "{bad}");
        }
        let max = oom_core::abi::MAX_BUCKETS_CEILING;
        assert_eq!(config(&buckets(max)).unwrap().kernel.max_buckets, max);
        let budget = RunArgs {
            walk_budget: Some("11s".into()),
            ..RunArgs::default()
        };
        assert!(usage_of(budget).contains("--walk-budget"));
    }

    #[test]
    fn retention_and_debounce_flags_are_validated() {
        let kept = |a: RunArgs| match keeping(&a) {
            Ok(k) => Ok((k.retention, k.debounce.is_some())),
            Err(e) => Err(e.to_string()),
        };
        for (args, flag) in [
            (
                RunArgs {
                    max_files: Some(0),
                    ..RunArgs::default()
                },
                "--max-files",
            ),
            (
                RunArgs {
                    max_bytes: Some("lots".into()),
                    ..RunArgs::default()
                },
                "--max-bytes",
            ),
            (
                RunArgs {
                    max_bytes: Some("0".into()),
                    ..RunArgs::default()
                },
                "--max-bytes",
            ),
            (
                RunArgs {
                    max_age: Some("0".into()),
                    ..RunArgs::default()
                },
                "--max-age",
            ),
            (
                RunArgs {
                    max_age: Some("7 days".into()),
                    ..RunArgs::default()
                },
                "--max-age",
            ),
            (
                RunArgs {
                    debounce: Some("soon".into()),
                    ..RunArgs::default()
                },
                "--debounce",
            ),
        ] {
            let e = kept(args).unwrap_err();
            assert!(e.contains(flag), "{e}");
        }
        let ok = kept(RunArgs {
            max_files: Some(100),
            max_bytes: Some("1G".into()),
            max_age: Some("7d".into()),
            debounce: Some("5m".into()),
            ..RunArgs::default()
        })
        .unwrap();
        assert_eq!(ok.0.max_files, Some(100));
        assert_eq!(ok.0.max_bytes, Some(1 << 30));
        assert_eq!(ok.0.max_age, Some(Duration::from_secs(7 * 86400)));
        assert!(ok.1);
        assert_eq!(
            super::parse_duration("12h"),
            Some(Duration::from_secs(43200))
        );
        assert_eq!(super::parse_duration("99999999999999999999d"), None);
        assert_eq!(super::parse_duration(&format!("{}d", u64::MAX)), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("8M"), Some(8 << 20));
        assert_eq!(super::parse_size("512k"), Some(512 << 10));
        assert_eq!(super::parse_size("4096"), Some(4096));
        assert_eq!(super::parse_size("x"), None);
        assert_eq!(super::parse_size(""), None);
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(
            super::parse_duration("100ms"),
            Some(Duration::from_millis(100))
        );
        assert_eq!(super::parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(
            super::parse_duration("500us"),
            Some(Duration::from_micros(500))
        );
        assert_eq!(super::parse_duration("0"), Some(Duration::ZERO));
        for bad in ["", "ms", "10", "1.5s", "-1s", "10x", "5 m"] {
            assert_eq!(super::parse_duration(bad), None, "{bad}");
        }
    }
}
