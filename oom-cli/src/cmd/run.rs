//! `oomprof run` (the default): watch every Go process and write a profile for every
//! OOM kill.

use std::collections::{HashMap, VecDeque};
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

use oom_loader::s3::{normalize_prefix, CredentialSource, Endpoint, S3Config, S3};
use oom_loader::sigv4::Credentials;
use oom_loader::sink::{self, Backoff, ProfileInfo, Spool, SpoolLimits, Uploader};

use crate::config::{FileConfig, S3Section, Setting};
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

/// What messages call each setting that came from the config file instead of a flag
/// (`FILE:LINE: retention.max_files =`), by flag; a flag not here is named as itself.
#[derive(Debug, Default)]
pub struct Labels(HashMap<&'static str, String>);

impl Labels {
    /// `flag`, or the file's key that gave its value.
    fn of(&self, flag: &'static str) -> String {
        self.0
            .get(flag)
            .cloned()
            .unwrap_or_else(|| flag.to_string())
    }
}

/// `--max-files`, `--max-bytes`, `--max-age`, `--debounce`, validated.
fn keeping(args: &RunArgs, l: &Labels) -> anyhow::Result<Keeping> {
    let retention = Retention {
        max_files: match args.max_files {
            Some(0) => return super::usage(format!("{} 0: want at least 1", l.of("--max-files"))),
            n => n,
        },
        max_bytes: match &args.max_bytes {
            None => None,
            Some(b) => match parse_size(b) {
                Some(n) if n > 0 => Some(n as u64),
                _ => {
                    return super::usage(format!(
                        "{} {b}: want a size, e.g. 512M or 2G",
                        l.of("--max-bytes")
                    ))
                }
            },
        },
        max_age: match &args.max_age {
            None => None,
            Some(a) => match parse_duration(a) {
                Some(d) if !d.is_zero() => Some(d),
                _ => {
                    return super::usage(format!(
                        "{} {a}: want a duration, e.g. 7d or 12h",
                        l.of("--max-age")
                    ))
                }
            },
        },
    };
    let debounce = match &args.debounce {
        None => None,
        Some(w) => match parse_duration(w) {
            Some(d) if !d.is_zero() => Some(Debounce::new(d)),
            _ => {
                return super::usage(format!(
                    "{} {w}: want a duration, e.g. 5m",
                    l.of("--debounce")
                ))
            }
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
    /// read settings from this TOML file (every key: deploy/oomprof.toml); S3 delivery is configured there; flags given too win
    #[argh(option)]
    pub config: Option<String>,
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
    /// where the kernel's OOM reports for the event log come from: `kmsg` (/dev/kmsg), `syslog` (syslog(2), for containers without /dev/kmsg), `off` (the victim records alone), or `auto`: kmsg, else syslog (default)
    #[argh(option)]
    pub kernel_log: Option<String>,
    /// where the node's container runtime state is (run/containerd, var/lib/docker, run/containers): pod and container names come from there (default: /)
    #[argh(option)]
    pub runtime_root: Option<String>,
    /// write one profile per container (or executable) per window, e.g. 5m: further kills within it are counted and logged, not written (default: every kill)
    #[argh(option)]
    pub debounce: Option<String>,
    /// pre-OOM profile when a watched process's memory cgroup (or an ancestor's limit) reaches this percentage of its limit, 1 to 99, e.g. 90 (default: off)
    #[argh(option)]
    pub pre_oom_usage: Option<u8>,
    /// pre-OOM profile on a PSI trigger of the process's cgroup (v2 memory.pressure): KIND:STALL/WINDOW, e.g. some:150ms/2s; the window is 2s, 4s, 6s, 8s or 10s (default: off)
    #[argh(option)]
    pub pre_oom_psi: Option<String>,
    /// pre-OOM profile on a PSI trigger of the whole system (/proc/pressure/memory), e.g. some:150ms/2s: the largest watched processes are profiled (default: off)
    #[argh(option)]
    pub pre_oom_system_psi: Option<String>,
    /// pre-OOM profile when a cgroup over its memory.high is throttled (v2 memory.events `high` rising)
    #[argh(switch)]
    pub pre_oom_high: bool,
    /// a process profiled before an OOM is not profiled again within this, e.g. 5m or 30s (default 5m)
    #[argh(option)]
    pub pre_oom_debounce: Option<String>,
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

/// The daemon loop's poll timeout when nothing waits on time, ms: how soon SIGTERM
/// is noticed when idle.
const IDLE_POLL_MS: u64 = 1000;

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
fn config(args: &RunArgs, l: &Labels) -> anyhow::Result<MonitorConfig> {
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
                    "{} {r}: want a power of two from {}K to 1G, e.g. 8M",
                    l.of("--ring-size"),
                    page >> 10
                ))
            }
        };
        config.kernel.ring_size = size;
    }
    if let Some(n) = args.max_buckets {
        if n == 0 || n > abi::MAX_BUCKETS_CEILING {
            return super::usage(format!(
                "{} {n}: want 1 to {}",
                l.of("--max-buckets"),
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
                    "{} {b}: want a duration of at most 10s, e.g. 100ms, or 0",
                    l.of("--walk-budget")
                ))
            }
        };
    }
    config.kernel.keep_killed = args.keep_all_kills;
    // OOM profiles name the event log that holds their kill's event.
    config.event_log = match args.events.as_deref() {
        Some("off" | "-") => None,
        Some(p) => Some(p.to_string()),
        None => Some(crate::events::FILE_NAME.to_string()),
    };
    if let Some(r) = &args.runtime_root {
        config.runtime_root = PathBuf::from(r);
    }
    config.pressure = crate::preoom::config(crate::preoom::Flags {
        usage: args.pre_oom_usage,
        psi: args.pre_oom_psi.as_deref(),
        system_psi: args.pre_oom_system_psi.as_deref(),
        high: args.pre_oom_high,
        debounce: args.pre_oom_debounce.as_deref(),
    })?;
    Ok(config)
}

/// Fills what the flags left unset from the config file; returns what the file's
/// values are called in messages.
fn merge(args: &mut RunArgs, f: &FileConfig) -> Labels {
    let mut l = Labels::default();
    let file = f.path.as_path();
    fn take<T: Clone>(
        slot: &mut Option<T>,
        from: &Option<Setting<T>>,
        flag: &'static str,
        file: &Path,
        l: &mut Labels,
    ) {
        if let (None, Some(s)) = (&slot, from) {
            *slot = Some(s.value.clone());
            l.0.insert(flag, s.label(file));
        }
    }
    take(&mut args.dir, &f.dir, "--dir", file, &mut l);
    take(&mut args.events, &f.events, "--events", file, &mut l);
    take(
        &mut args.runtime_root,
        &f.runtime_root,
        "--runtime-root",
        file,
        &mut l,
    );
    take(
        &mut args.ring_size,
        &f.ring_size,
        "--ring-size",
        file,
        &mut l,
    );
    take(
        &mut args.walk_budget,
        &f.walk_budget,
        "--walk-budget",
        file,
        &mut l,
    );
    take(
        &mut args.max_bytes,
        &f.max_bytes,
        "--max-bytes",
        file,
        &mut l,
    );
    take(&mut args.max_age, &f.max_age, "--max-age", file, &mut l);
    take(&mut args.debounce, &f.debounce, "--debounce", file, &mut l);
    take(
        &mut args.metrics_addr,
        &f.metrics_addr,
        "--metrics-addr",
        file,
        &mut l,
    );
    if let (None, Some(s)) = (args.max_files, &f.max_files) {
        args.max_files = Some(usize::try_from(s.value).unwrap_or(usize::MAX));
        l.0.insert("--max-files", s.label(file));
    }
    if let (None, Some(s)) = (args.max_buckets, &f.max_buckets) {
        // Out of u32's range is out of the accepted range: the same message.
        args.max_buckets = Some(u32::try_from(s.value).unwrap_or(u32::MAX));
        l.0.insert("--max-buckets", s.label(file));
    }
    // Switches: the file can turn them on; a flag cannot turn them off again.
    for (flag, from) in [
        (&mut args.keep_all_kills, &f.keep_all_kills),
        (&mut args.no_scan, &f.no_scan),
        (&mut args.log_recent, &f.log_recent),
    ] {
        *flag |= from.as_ref().is_some_and(|s| s.value);
    }
    l
}

/// S3 delivery, validated: the sink's configuration, the spool's bounds and the
/// retries.
#[derive(Debug)]
struct S3Setup {
    config: S3Config,
    limits: SpoolLimits,
    backoff: Backoff,
    keep_local: bool,
}

/// This node's name: `NODE_NAME` (the DaemonSet sets it from `spec.nodeName`), else
/// the hostname.
fn node_name() -> String {
    std::env::var("NODE_NAME")
        .ok()
        .filter(|n| !n.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "localhost".to_string())
}

/// Validates `[s3]`.
///
/// Returns a usage error naming the file, line and key of a bad or missing value, or
/// if no credentials can be loaded now.
fn s3_setup(f: &FileConfig, s: &S3Section) -> anyhow::Result<S3Setup> {
    let file = f.path.as_path();
    let label = |set: &Setting<String>| set.label(file);
    let region = match &s.region {
        Some(r) if r.value.trim().is_empty() => {
            return super::usage(format!("{} \"\": want a region, e.g. us-east-1", label(r)))
        }
        Some(r) => r.value.clone(),
        None => "us-east-1".to_string(),
    };
    let (endpoint, aws) = match &s.endpoint {
        Some(e) => match Endpoint::parse(&e.value) {
            Ok(ep) => {
                let aws = ep.authority.ends_with(".amazonaws.com");
                (ep, aws)
            }
            Err(why) => return super::usage(format!("{} {why}", label(e))),
        },
        None => match Endpoint::parse(&format!("https://s3.{region}.amazonaws.com")) {
            Ok(ep) => (ep, true),
            Err(why) => {
                return super::usage(format!("{}:{}: s3.region: {why}", file.display(), s.line))
            }
        },
    };
    let bucket = match &s.bucket {
        Some(b) if valid_bucket(&b.value) => b.value.clone(),
        Some(b) => {
            return super::usage(format!(
                "{} {}: want a bucket name (3 to 63 of a-z, 0-9, '.', '-')",
                label(b),
                b.value
            ))
        }
        None => {
            return super::usage(format!(
                "{}:{}: [s3] needs a bucket (s3.bucket)",
                file.display(),
                s.line
            ))
        }
    };
    let credentials = match (&s.access_key_id, &s.secret_access_key, &s.credentials_file) {
        (Some(_), Some(_), Some(c)) | (Some(_), None, Some(c)) | (None, Some(_), Some(c)) => {
            return super::usage(format!(
                "{} {}: give the key pair or credentials_file, not both",
                label(c),
                c.value
            ))
        }
        (Some(id), Some(secret), None) => CredentialSource::Static(Credentials {
            access_key_id: id.value.clone(),
            secret_access_key: secret.value.clone(),
            session_token: s.session_token.as_ref().map(|t| t.value.clone()),
        }),
        (Some(one), None, None) | (None, Some(one), None) => {
            return super::usage(format!(
                "{}:{}: s3.access_key_id and s3.secret_access_key go together",
                file.display(),
                one.line
            ))
        }
        (None, None, Some(c)) => CredentialSource::File(PathBuf::from(&c.value)),
        (None, None, None) => CredentialSource::Environment,
    };
    // Checked now, so a missing secret stops the daemon at start; a file is read again
    // at every upload (a rotated secret is picked up).
    if let Err(e) = credentials.load() {
        return super::usage(e);
    }
    let duration = |set: &Option<Setting<String>>, default: Duration| match set {
        None => Ok(default),
        Some(d) => match parse_duration(&d.value) {
            Some(v) if !v.is_zero() => Ok(v),
            _ => super::usage(format!(
                "{} {}: want a duration, e.g. 30s or 5m",
                label(d),
                d.value
            )),
        },
    };
    let timeout = duration(&s.timeout, Duration::from_secs(30))?;
    let retry_max = duration(&s.retry_max, Duration::from_secs(300))?;
    let mut limits = SpoolLimits::default();
    if let Some(n) = &s.spool_max_files {
        limits.max_files = match usize::try_from(n.value) {
            Ok(v) if v > 0 => v,
            _ => return super::usage(format!("{} {}: want at least 1", n.label(file), n.value)),
        };
    }
    if let Some(b) = &s.spool_max_bytes {
        limits.max_bytes = match parse_size(&b.value) {
            Some(v) if v > 0 => v as u64,
            _ => {
                return super::usage(format!(
                    "{} {}: want a size, e.g. 512M or 2G",
                    label(b),
                    b.value
                ))
            }
        };
    }
    let setup = S3Setup {
        config: S3Config {
            endpoint,
            bucket,
            region,
            prefix: normalize_prefix(s.prefix.as_ref().map_or("oomprof", |p| p.value.as_str())),
            path_style: s.path_style.as_ref().map_or(!aws, |p| p.value),
            node: s.node.as_ref().map_or_else(node_name, |n| n.value.clone()),
            credentials,
            timeout,
            ca_file: s.ca_file.as_ref().map(|c| PathBuf::from(&c.value)),
        },
        limits,
        backoff: Backoff {
            min: Duration::from_secs(1).min(retry_max),
            max: retry_max,
        },
        keep_local: s.keep_local.as_ref().is_none_or(|k| k.value),
    };
    if let (Some(c), Err(e)) = (&s.ca_file, S3::new(setup.config.clone())) {
        return super::usage(format!("{} {}: {e}", c.label(file), c.value));
    }
    Ok(setup)
}

/// An S3 bucket name as S3 accepts it in both addressing styles' URLs.
fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && !b.starts_with(['.', '-'])
        && !b.ends_with(['.', '-'])
}

/// The S3 side of the daemon: the spool the capture loop writes, and the thread that
/// uploads from it.
struct Delivery {
    spool: Arc<Spool>,
    uploader: Uploader,
    bucket: String,
    prefix: String,
    node: String,
    keep_local: bool,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("spool", &self.spool.dir())
            .field("bucket", &self.bucket)
            .finish()
    }
}

/// Opens `dir/spool/` and starts uploading what it holds.
///
/// Returns an error if the spool directory cannot be created or read.
fn start_delivery(setup: S3Setup, dir: &Path, metrics: &Metrics) -> anyhow::Result<Delivery> {
    let spool_dir = dir.join("spool");
    let (spool, rec) = Spool::open(&spool_dir, setup.limits)
        .with_context(|| format!("S3 spool {}", spool_dir.display()))?;
    for (path, why) in &rec.removed {
        log::warn!("spool: {}: {why}", path.display());
    }
    let spool = Arc::new(spool);
    let c = &setup.config;
    log::info!(
        "S3 delivery to s3://{}/{}{} at {}://{} ({} addressing, region {}, node {}); {} profiles waiting in {}",
        c.bucket,
        c.prefix,
        if c.prefix.is_empty() { "" } else { "/" },
        if c.endpoint.tls { "https" } else { "http" },
        c.endpoint.authority,
        if c.path_style { "path-style" } else { "virtual-hosted" },
        c.region,
        c.node,
        rec.entries,
        spool_dir.display()
    );
    metrics.sink("s3");
    let (bucket, prefix, node) = (c.bucket.clone(), c.prefix.clone(), c.node.clone());
    let (m, waiting) = (metrics.clone(), spool.clone());
    let uploader = Uploader::start(
        spool.clone(),
        Box::new(S3::new(setup.config).map_err(anyhow::Error::msg)?),
        setup.backoff,
        Box::new(move |d| match d {
            sink::Delivery::Uploaded {
                info,
                location,
                after_kill,
                attempts,
            } => {
                m.written("s3", true);
                log::info!(
                    "uploaded {location} pid={} comm={} {:.3}s after the kill{}",
                    info.pid,
                    info.comm,
                    after_kill.as_secs_f64(),
                    if attempts > 1 {
                        format!(" (attempt {attempts})")
                    } else {
                        String::new()
                    }
                );
            }
            sink::Delivery::Failed {
                info,
                error,
                failures,
                retry_in,
            } => {
                m.written("s3", false);
                let (files, _) = waiting.usage();
                log::error!(
                    "{error} (pid {}, failure {failures}; spooled, retry in {:.1}s; {files} waiting)",
                    info.pid,
                    retry_in.as_secs_f64()
                );
            }
            sink::Delivery::Unreadable { info, error } => {
                if error.kind() == std::io::ErrorKind::NotFound {
                    m.dropped("s3");
                    log::error!(
                        "spool: the profile of pid {} ({}) was removed before it was uploaded: {error}",
                        info.pid,
                        info.name
                    );
                } else {
                    log::error!(
                        "spool: pid {} ({}): {error}; kept, retried later",
                        info.pid,
                        info.name
                    );
                }
            }
        }),
    )
    .context("starting the S3 upload thread")?;
    Ok(Delivery {
        spool,
        uploader,
        bucket,
        prefix,
        node,
        keep_local: setup.keep_local,
    })
}

/// Runs the daemon until SIGINT or SIGTERM.
pub fn run(mut args: RunArgs, _debug: bool) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => Some(crate::config::load(Path::new(path)).map_err(super::UsageError)?),
        None => None,
    };
    let labels = file
        .as_ref()
        .map_or_else(Labels::default, |f| merge(&mut args, f));
    let config = config(&args, &labels)?;
    let runtime_root = config.runtime_root.clone();
    let mut keep = keeping(&args, &labels)?;
    let s3 = match file.as_ref().and_then(|f| f.s3.as_ref().map(|s| (f, s))) {
        Some((f, s)) => Some(s3_setup(f, s)?),
        None => None,
    };
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
        let bound = metrics
            .serve(addr)
            .map_err(|e| match labels.0.get("--metrics-addr") {
                Some(l) => anyhow::anyhow!("{l} {addr}: {:#}", e.root_cause()),
                None => e,
            })?;
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

    // The event log of every OOM kill, from the kernel program's victim records and,
    // where the kernel log can be read, the kernel's own reports.
    use oom_loader::kmsg::{KernelLog, Reader, SyslogReader};
    let opened = match (args.events.as_deref(), args.kernel_log.as_deref()) {
        (Some("off"), _) | (_, Some("off")) => None,
        (_, None | Some("auto")) => Some(KernelLog::open()),
        (_, Some("kmsg")) => Some(
            Reader::open()
                .map(KernelLog::Dev)
                .map_err(|e| format!("/dev/kmsg: {e}")),
        ),
        (_, Some("syslog")) => Some(
            SyslogReader::open()
                .map(KernelLog::Syslog)
                .map_err(|e| format!("syslog(2): {e}")),
        ),
        (_, Some(other)) => {
            return super::usage(format!(
                "--kernel-log {other}: want kmsg, syslog, auto or off"
            ))
        }
    };
    let mut klog = match opened {
        None => None,
        Some(Ok(k)) => Some((k, oom_loader::kmsg::Assembler::new(), 0u64)),
        Some(Err(e)) => {
            log::warn!(
                "OOM events without the kernel's reports (constraint, memory.stat, tasks): {e} (needs CAP_SYSLOG where kernel.dmesg_restrict=1)"
            );
            None
        }
    };
    let mut events = match args.events.as_deref() {
        Some("off") => None,
        target => {
            let path = target.map_or_else(|| dir.join(crate::events::FILE_NAME), PathBuf::from);
            let log = EventLog::open(&path, &runtime_root, klog.is_some(), metrics.clone())?;
            log::info!(
                "OOM events of every process to {}{}",
                log.path()
                    .map_or("stdout".into(), |p| p.display().to_string()),
                klog.as_ref()
                    .map(|(k, ..)| format!(", with the kernel's reports from {}", k.kind()))
                    .unwrap_or_default()
            );
            Some(log)
        }
    };
    // A kernel log read through syslog(2) copies the whole log: read it while a kill is
    // being reported, and every 10 s otherwise (a kill whose victim record was lost).
    let mut klog_wake_until: Option<Instant> = None;
    let mut klog_read_at = Instant::now();
    // After the monitor: the upload thread inherits the blocked SIGINT/SIGTERM.
    let delivery = match s3 {
        Some(setup) => Some(start_delivery(setup, &dir, &metrics)?),
        None => None,
    };
    let mut pending: VecDeque<(String, Vec<u8>)> = VecDeque::new();
    let mut gauges_at = Instant::now();
    metrics.update(watched, monitor.kernel().lost());
    while !stop.load(Ordering::Relaxed) {
        // The ring wakes the poll at once for every record; the timeout only paces the
        // work that waits on time: 50 ms while a kill is being reported (the kernel
        // log, events, profiles waiting for room), else 1 s, which is also how soon
        // SIGTERM is noticed (the idle cost is one wake-up a second).
        let busy = klog_wake_until.is_some_and(|t| Instant::now() < t)
            || !pending.is_empty()
            || events.as_ref().is_some_and(|e| e.busy());
        let timeout = Duration::from_millis(if busy { 50 } else { IDLE_POLL_MS });
        let polled = match monitor.poll(Some(timeout)) {
            Ok(e) => e,
            Err(e) => {
                log::error!("reading kernel events: {e}");
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        for e in &polled {
            if matches!(e, MonitorEvent::OomVictim(_)) {
                klog_wake_until = Some(Instant::now() + Duration::from_secs(3));
            }
        }
        if let Some((kmsg, asm, lost_said)) = &mut klog {
            let now = Instant::now();
            if !kmsg.read_when_woken()
                || klog_wake_until.is_some_and(|t| now < t)
                || now.duration_since(klog_read_at) >= Duration::from_secs(10)
            {
                klog_read_at = now;
                let mut reports = Vec::new();
                if let Err(e) = kmsg.drain(|r| reports.extend(asm.push(r))) {
                    log::warn!("reading the kernel log ({}): {e}", kmsg.kind());
                }
                if let Some(log) = &mut events {
                    for r in reports {
                        log.report(r, now);
                    }
                }
                if kmsg.lost() > *lost_said {
                    log::warn!(
                        "{}: {} records overwritten before they were read: OOM reports among them are lost",
                        kmsg.kind(),
                        kmsg.lost() - *lost_said
                    );
                    *lost_said = kmsg.lost();
                }
            }
        }
        if let Some(log) = &mut events {
            log.tick(Instant::now());
        }
        for e in polled {
            let e = match e {
                MonitorEvent::OomVictim(v) => {
                    log::debug!(
                        "oom victim pid {} ({}) read from /proc {:?} ms after the kill",
                        v.pid,
                        v.comm.as_deref().unwrap_or("-"),
                        v.proc_read_ns.map(|n| n / 1_000_000)
                    );
                    if let Some(log) = &mut events {
                        log.victim(*v, Instant::now());
                    }
                    continue;
                }
                e => e,
            };
            if let (
                MonitorEvent::Dropped { pid, .. } | MonitorEvent::ProfilingDisabled { pid, .. },
                Some(log),
            ) = (&e, &mut events)
            {
                log.no_profile(*pid as i32);
            }
            let oom = matches!(&e, MonitorEvent::Profile(p) if p.meta.reason == oom_loader::profile::Reason::Oom);
            // A pre-OOM profile: the event of a later kill names it.
            let pre = match &e {
                MonitorEvent::Profile(p) => crate::preoom::Taken::of(p, "", Instant::now()),
                _ => None,
            };
            let written = handle(
                e,
                &dir,
                args.log_recent,
                &mut pending,
                &metrics,
                &mut keep,
                delivery.as_ref(),
            );
            if let (Some(t), Some((_, file)), Some(log)) = (pre, &written, &mut events) {
                log.preoom(crate::preoom::Taken {
                    file: file.clone(),
                    ..t
                });
            }
            if let (true, Some((pid, file)), Some(log)) = (oom, written, &mut events) {
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
            if let Some(d) = &delivery {
                metrics.spool(d.spool.usage());
            }
            gauges_at = Instant::now();
        }
    }
    drop(monitor);
    if let Some(log) = &mut events {
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
    delivery: Option<&Delivery>,
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
        MonitorEvent::OomVictim(v) => log::debug!("oom victim pid {}", v.pid),
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
            // Pre-OOM profiles have their own debounce (--pre-oom-debounce).
            if let (Some(db), false) = (&mut keep.debounce, crate::preoom::is_preoom(&p)) {
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
            let spooled = delivery.and_then(|d| spool(d, &p, &base, metrics));
            if let (Some(d), Some((file, location))) = (delivery, &spooled) {
                if !d.keep_local {
                    // The event log names where the profile is going.
                    log_profile(&p, file, recent);
                    return Some((p.meta.pid, location.clone()));
                }
            }
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

/// Spools `p` for S3 and wakes the uploader; returns (its spool file, the object's
/// future `s3://bucket/key`), or `None` (logged, counted) if it could not be spooled.
fn spool(d: &Delivery, p: &Profile, base: &str, metrics: &Metrics) -> Option<(PathBuf, String)> {
    let info = ProfileInfo::of(p, base);
    match d.spool.add(&info, &p.pprof_gz) {
        Ok((id, dropped)) => {
            for e in dropped {
                metrics.dropped("s3");
                log::error!(
                    "spool full: dropped the profile of pid {} ({}) killed {:.0}s ago, never uploaded",
                    e.info.pid,
                    e.info.name,
                    std::time::SystemTime::now()
                        .duration_since(e.info.time)
                        .unwrap_or_default()
                        .as_secs_f64()
                );
            }
            d.uploader.wake();
            log::debug!("spooled {id} for S3");
            Some((
                d.spool.dir().join(format!("{id}.pb.gz")),
                format!(
                    "s3://{}/{}",
                    d.bucket,
                    oom_loader::s3::object_key(&d.prefix, &d.node, &info)
                ),
            ))
        }
        Err(e) => {
            metrics.dropped("s3");
            log::error!(
                "pid {} ({}): not delivered to S3: spooling failed: {e}",
                p.meta.pid,
                p.meta.comm
            );
            None
        }
    }
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
    output::base_name(&who(p), p.meta.pid, time) + crate::preoom::suffix(p)
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
        "wrote {} pid={} comm={}{} reason={}{} inuse={:.1}MiB top={} ({:.1}MiB){recent} {}{timing}",
        path.display(),
        p.meta.pid,
        p.meta.comm,
        who_fields(p),
        p.meta.reason.as_str(),
        crate::preoom::log_fields(p),
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
    use super::{config, keeping, Labels, RunArgs};
    use std::time::Duration;

    fn config_of(args: &RunArgs) -> anyhow::Result<oom_loader::monitor::MonitorConfig> {
        config(args, &Labels::default())
    }

    fn usage_of(args: RunArgs) -> String {
        let e = config(&args, &Labels::default()).unwrap_err();
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
        assert_eq!(config_of(&ring("1G")).unwrap().kernel.ring_size, 1 << 30);
        assert_eq!(config_of(&ring("64K")).unwrap().kernel.ring_size, 64 << 10);
        let buckets = |n| RunArgs {
            max_buckets: Some(n),
            ..RunArgs::default()
        };
        for bad in [0, oom_core::abi::MAX_BUCKETS_CEILING + 1, u32::MAX] {
            assert!(usage_of(buckets(bad)).contains("--max-buckets"), "{bad}");
        }
        let max = oom_core::abi::MAX_BUCKETS_CEILING;
        assert_eq!(config_of(&buckets(max)).unwrap().kernel.max_buckets, max);
        let budget = RunArgs {
            walk_budget: Some("11s".into()),
            ..RunArgs::default()
        };
        assert!(usage_of(budget).contains("--walk-budget"));
    }

    #[test]
    fn retention_and_debounce_flags_are_validated() {
        let kept = |a: RunArgs| match keeping(&a, &Labels::default()) {
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

    fn file(text: &str) -> crate::config::FileConfig {
        crate::config::parse(std::path::Path::new("/etc/o.toml"), text).unwrap()
    }

    #[test]
    fn the_file_fills_what_the_flags_leave_and_its_values_get_the_flags_messages() {
        let f = file("max_buckets = 5000000000\n[retention]\nmax_files = 0\nmax_age = \"soon\"\n[metrics]\naddr = \"127.0.0.1:9\"\n");
        let mut args = RunArgs::default();
        let l = super::merge(&mut args, &f);
        assert_eq!(args.metrics_addr.as_deref(), Some("127.0.0.1:9"));
        let e = keeping(&args, &l).unwrap_err().to_string();
        assert_eq!(e, "/etc/o.toml:3: retention.max_files = 0: want at least 1");
        let e = config(&args, &l).unwrap_err().to_string();
        assert!(
            e.starts_with("/etc/o.toml:1: max_buckets = 4294967295: want 1 to "),
            "{e}"
        );
        // A flag wins, and is named as itself.
        let mut args = RunArgs {
            max_files: Some(10),
            max_age: Some("never".into()),
            ..RunArgs::default()
        };
        let l = super::merge(&mut args, &f);
        assert_eq!(args.max_files, Some(10));
        let e = keeping(&args, &l).unwrap_err().to_string();
        assert_eq!(e, "--max-age never: want a duration, e.g. 7d or 12h");
        let f = file("no_scan = true\nkeep_all_kills = false\n[retention]\nmax_age = \"soon\"\n");
        let mut args = RunArgs::default();
        let l = super::merge(&mut args, &f);
        assert!(args.no_scan && !args.keep_all_kills);
        let e = keeping(&args, &l).unwrap_err().to_string();
        assert_eq!(
            e,
            "/etc/o.toml:4: retention.max_age = soon: want a duration, e.g. 7d or 12h"
        );
    }

    fn s3(text: &str) -> Result<super::S3Setup, String> {
        let f = file(text);
        let s = f.s3.clone().unwrap();
        super::s3_setup(&f, &s).map_err(|e| {
            assert!(
                e.downcast_ref::<crate::cmd::UsageError>().is_some(),
                "{e:#}"
            );
            e.to_string()
        })
    }

    const KEYS: &str = "access_key_id = \"AK\"\nsecret_access_key = \"SK\"\n";

    #[test]
    fn s3_defaults() {
        let s = s3(&format!("[s3]\nbucket = \"b-1\"\nnode = \"n1\"\n{KEYS}")).unwrap();
        let c = &s.config;
        assert_eq!(c.endpoint.authority, "s3.us-east-1.amazonaws.com");
        assert!(c.endpoint.tls && !c.path_style, "AWS: virtual-hosted");
        assert_eq!((c.prefix.as_str(), c.node.as_str()), ("oomprof", "n1"));
        assert!(s.keep_local);
        assert_eq!(s.backoff.max, Duration::from_secs(300));
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(s.limits, oom_loader::sink::SpoolLimits::default());
        let s = s3(&format!(
            "[s3]\nendpoint = \"http://127.0.0.1:8333\"\nbucket = \"bkt\"\n{KEYS}prefix = \"/a/b/\"\nkeep_local = false\nregion = \"eu-west-1\"\nretry_max = \"5s\"\n[s3.spool]\nmax_files = 3\nmax_bytes = \"1M\"\n"
        ))
        .unwrap();
        assert!(s.config.path_style, "another endpoint: path-style");
        assert_eq!(s.config.prefix, "a/b");
        assert_eq!(s.config.region, "eu-west-1");
        assert!(!s.keep_local);
        assert_eq!(s.backoff.max, Duration::from_secs(5));
        assert_eq!((s.limits.max_files, s.limits.max_bytes), (3, 1 << 20));
    }

    #[test]
    fn s3_errors_name_the_file_line_and_key() {
        for (text, want) in [
            (format!("[s3]\n{KEYS}"), "/etc/o.toml:1: [s3] needs a bucket (s3.bucket)".to_string()),
            (format!("[s3]\nbucket = \"B!\"\n{KEYS}"), "/etc/o.toml:2: s3.bucket = B!: want a bucket name (3 to 63 of a-z, 0-9, '.', '-')".into()),
            (format!("[s3]\nbucket = \"b\"\n{KEYS}"), "/etc/o.toml:2: s3.bucket = b: want a bucket name (3 to 63 of a-z, 0-9, '.', '-')".into()),
            (format!("[s3]\nbucket = \"bb1\"\nendpoint = \"s3.local:9000\"\n{KEYS}"), "/etc/o.toml:3: s3.endpoint = s3.local:9000: want http://HOST[:PORT] or https://HOST[:PORT]".into()),
            (format!("[s3]\nbucket = \"bb1\"\nendpoint = \"http://h/x\"\n{KEYS}"), "/etc/o.toml:3: s3.endpoint = http://h/x: want http(s)://HOST[:PORT], with no path, query or user".into()),
            (format!("[s3]\nbucket = \"bb1\"\n{KEYS}credentials_file = \"/x\"\n"), "/etc/o.toml:5: s3.credentials_file = /x: give the key pair or credentials_file, not both".into()),
            ("[s3]\nbucket = \"bb1\"\naccess_key_id = \"AK\"\n".into(), "/etc/o.toml:3: s3.access_key_id and s3.secret_access_key go together".into()),
            ("[s3]\nbucket = \"bb1\"\ncredentials_file = \"/nonexistent/creds\"\n".into(), "credentials file /nonexistent/creds: No such file or directory (os error 2)".into()),
            (format!("[s3]\nbucket = \"bb1\"\n{KEYS}timeout = \"0\"\n"), "/etc/o.toml:5: s3.timeout = 0: want a duration, e.g. 30s or 5m".into()),
            (format!("[s3]\nbucket = \"bb1\"\n{KEYS}retry_max = \"later\"\n"), "/etc/o.toml:5: s3.retry_max = later: want a duration, e.g. 30s or 5m".into()),
            (format!("[s3]\nbucket = \"bb1\"\n{KEYS}region = \" \"\n"), "/etc/o.toml:5: s3.region = \"\": want a region, e.g. us-east-1".into()),
            (format!("[s3]\nbucket = \"bb1\"\n{KEYS}ca_file = \"/nonexistent/ca.pem\"\n"), "/etc/o.toml:5: s3.ca_file = /nonexistent/ca.pem: CA file /nonexistent/ca.pem: No such file or directory (os error 2)".into()),
            (format!("[s3]\nbucket = \"bb1\"\n{KEYS}[s3.spool]\nmax_files = 0\n"), "/etc/o.toml:6: s3.spool.max_files = 0: want at least 1".into()),
            (format!("[s3]\nbucket = \"bb1\"\n{KEYS}[s3.spool]\nmax_bytes = \"lots\"\n"), "/etc/o.toml:6: s3.spool.max_bytes = lots: want a size, e.g. 512M or 2G".into()),
        ] {
            assert_eq!(s3(&text).err().as_deref(), Some(want.as_str()), "{text}");
        }
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
