//! The Monitor: discovery of Go processes, kernel captures at their SIGKILL, and
//! finished profiles, as typed events.
//!
//! ```text
//! start: /proc scan ──┐
//! kernel exec events ─┴▶ /proc/PID/exe → BinaryCache (one analysis per binary)
//!                        → /proc/PID/maps (bias, mappings recorded now: after the
//!                          kill the process is gone) → Kernel::watch
//! kernel exit events ──▶ forget (kept briefly for a capture still being classified)
//! kernel captures ─────▶ entries → Buckets → profile::assemble → MonitorEvent::Profile
//! ```
//!
//! Nothing here is global: each Monitor owns its kernel program, maps and caches, and
//! dropping it detaches everything.
//!
//! ```no_run
//! use std::time::Duration;
//! use oom_loader::monitor::{Monitor, MonitorEvent};
//!
//! let mut monitor = Monitor::builder().keep_killed(false).build()?;
//! loop {
//!     for event in monitor.poll(Some(Duration::from_secs(1)))? {
//!         if let MonitorEvent::Profile(p) = event {
//!             std::fs::write(format!("{}-{}.pb.gz", p.meta.comm, p.meta.pid), &p.pprof_gz)?;
//!         }
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use oom_core::values::{needs_fallback, Policy};
use oom_core::Bucket;

use crate::attribution::{Attribution, Resolver};
use crate::binary::{BinaryKey, GoBinary};
use crate::cache::BinaryCache;
use crate::capture::{Capture, KillReason};
use crate::kernel::{CycleLayout, Event, Kernel, KernelConfig, WalkKind, WatchInfo};
use crate::ondemand;
use crate::pressure::{Pressure, PressureConfig};
use crate::procmaps::{self, MapEntry};
use crate::profile::{
    assemble, disabled_diagnosis, Incomplete, Profile, ProfileMeta, RateSeen, Reason, Rss,
};

/// A process being watched.
#[derive(Clone, Debug)]
struct Watched {
    bin: Arc<GoBinary>,
    bias: u64,
    maps: Vec<MapEntry>,
    exe: PathBuf,
    comm: String,
    cgroup: Option<String>,
    /// Pod and container, resolved at discovery (the runtime's state may be gone
    /// at the kill).
    attribution: Option<Attribution>,
    /// CLOCK_MONOTONIC ns when the watch began: captures before it are of an earlier
    /// process that had the same pid.
    since_ns: u64,
}

/// What the Monitor reports.
#[derive(Debug)]
pub enum MonitorEvent {
    /// A Go process is now captured at its SIGKILL.
    Watched {
        /// Process id.
        pid: u32,
        /// Command name.
        comm: String,
        /// Executable.
        exe: PathBuf,
        /// Go version.
        go_version: String,
        /// Time from its exec to the watch (for processes found by exec events).
        latency: Option<Duration>,
    },
    /// A process is no longer watched.
    Unwatched {
        /// Process id.
        pid: u32,
        /// Why: "exit" or "exec".
        why: &'static str,
    },
    /// A process is not watched, and why (not Go, unreadable, unsupported).
    Skipped {
        /// Process id.
        pid: u32,
        /// Command name.
        comm: String,
        /// Why.
        reason: String,
    },
    /// A Go program was killed with memory profiling off (`runtime.MemProfileRate` 0
    /// at the kill): no profile. Said once per binary, later kills are `Dropped`.
    ProfilingDisabled {
        /// Process id.
        pid: u32,
        /// Command name.
        comm: String,
        /// Executable.
        exe: PathBuf,
        /// What was seen and both fixes ([`crate::profile::disabled_diagnosis`]).
        detail: &'static str,
    },
    /// The OOM killer picked a process, any process (Go or not, watched or not): the
    /// kernel's record completed from `/proc` at once ([`crate::victim`]).
    OomVictim(Box<crate::victim::VictimInfo>),
    /// A finished profile.
    Profile(Box<Profile>),
    /// A capture that produced no profile, and why.
    Dropped {
        /// Process id.
        pid: u32,
        /// Command name.
        comm: String,
        /// Why.
        reason: String,
    },
}

/// Monitor settings; build with [`Monitor::builder`].
#[derive(Clone, Debug)]
pub struct MonitorConfig {
    /// Kernel-side settings: ring size, bucket limit, which kills to keep.
    pub kernel: KernelConfig,
    /// Watch Go processes already running at start.
    pub scan_existing: bool,
    /// The procfs to read.
    pub proc_root: PathBuf,
    /// Most binaries kept analysed.
    pub max_cached_binaries: usize,
    /// Most bytes of executables kept mapped.
    pub max_mapped_bytes: usize,
    /// Where the node's container runtime state is (`run/containerd`,
    /// `var/lib/docker`, …): `/`, or where a container mounted the node's paths.
    /// Pod and container names come from there (see [`crate::attribution`]).
    pub runtime_root: PathBuf,
    /// Pre-OOM profiles when a watched process's memory cgroup nears its limit (all
    /// triggers off by default; see [`crate::pressure`]).
    pub pressure: PressureConfig,
    /// The OOM event log's file name, which OOM profiles name in a comment (`None`:
    /// no event log is kept).
    pub event_log: Option<String>,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            kernel: KernelConfig::default(),
            scan_existing: true,
            proc_root: PathBuf::from("/proc"),
            max_cached_binaries: crate::cache::DEFAULT_MAX_ENTRIES,
            max_mapped_bytes: crate::cache::DEFAULT_MAX_MAPPED,
            runtime_root: PathBuf::from("/"),
            pressure: PressureConfig::default(),
            event_log: None,
        }
    }
}

/// Builds a [`Monitor`].
#[derive(Clone, Debug, Default)]
pub struct MonitorBuilder {
    config: MonitorConfig,
}

impl MonitorBuilder {
    /// Ring-buffer size in bytes (a power of two, at least a page).
    pub fn ring_size(mut self, bytes: usize) -> Self {
        self.config.kernel.ring_size = bytes;
        self
    }

    /// Most buckets captured per kill.
    pub fn max_buckets(mut self, n: u32) -> Self {
        self.config.kernel.max_buckets = n;
        self
    }

    /// Also profile processes killed by something other than the OOM killer.
    pub fn keep_killed(mut self, keep: bool) -> Self {
        self.config.kernel.keep_killed = keep;
        self
    }

    /// Watch Go processes already running at start (default on).
    pub fn scan_existing(mut self, scan: bool) -> Self {
        self.config.scan_existing = scan;
        self
    }

    /// The whole configuration at once.
    pub fn config(mut self, config: MonitorConfig) -> Self {
        self.config = config;
        self
    }

    /// Loads the kernel program and scans running processes if asked.
    ///
    /// Returns an error if the kernel program cannot be loaded or attached.
    pub fn build(self) -> crate::Result<Monitor> {
        Monitor::new(self.config)
    }

    /// Builds and runs the Monitor on its own thread; events arrive on the returned
    /// handle's channel.
    ///
    /// The thread never waits for the consumer: the kernel ring must be drained on
    /// time whatever the consumer does. Events the channel cannot take yet wait in a
    /// backlog of at most [`BACKLOG`] events; past that the oldest is dropped, with a
    /// warning, and counted ([`MonitorHandle::dropped`]).
    ///
    /// Returns an error if the kernel program cannot be loaded or attached.
    pub fn spawn(self) -> crate::Result<MonitorHandle> {
        let mut m = Monitor::new(self.config)?;
        let (tx, rx) = sync_channel(BACKLOG);
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let (stop2, dropped2) = (stop.clone(), dropped.clone());
        let thread = std::thread::Builder::new()
            .name("oomprof-monitor".into())
            .spawn(move || {
                let mut backlog: VecDeque<MonitorEvent> = std::mem::take(&mut m.pending).into();
                while !stop2.load(Ordering::Relaxed) {
                    while let Some(e) = backlog.pop_front() {
                        match tx.try_send(e) {
                            Ok(()) => {}
                            Err(TrySendError::Full(e)) => {
                                backlog.push_front(e);
                                break;
                            }
                            Err(TrySendError::Disconnected(_)) => return,
                        }
                    }
                    while backlog.len() > BACKLOG {
                        if let Some(old) = backlog.pop_front() {
                            let n = dropped2.fetch_add(1, Ordering::Relaxed) + 1;
                            log::warn!(
                                "monitor: the consumer is not reading events; dropped the oldest ({}), {n} dropped so far",
                                old.kind()
                            );
                        }
                    }
                    // With a backlog, come back soon to hand it over.
                    let wait = if backlog.is_empty() { 100 } else { 10 };
                    match m.poll(Some(Duration::from_millis(wait))) {
                        Ok(events) => backlog.extend(events),
                        Err(e) => log::error!("monitor: {e}"),
                    }
                }
            })
            .map_err(|e| crate::Error::sys("spawning the monitor thread", e))?;
        Ok(MonitorHandle {
            events: rx,
            stop,
            dropped,
            thread: Some(thread),
        })
    }
}

/// Events a spawned Monitor holds for a consumer that is behind: the channel's
/// capacity, and as many again in the thread's backlog.
pub const BACKLOG: usize = 1024;

/// A Monitor running on its own thread. Dropping it stops the thread and detaches.
#[derive(Debug)]
pub struct MonitorHandle {
    events: Receiver<MonitorEvent>,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl MonitorHandle {
    /// The event channel.
    pub fn events(&self) -> &Receiver<MonitorEvent> {
        &self.events
    }

    /// Events dropped so far because the consumer fell more than [`BACKLOG`] behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl MonitorEvent {
    /// The event's kind, one word, for log lines.
    pub fn kind(&self) -> &'static str {
        match self {
            MonitorEvent::Watched { .. } => "watched",
            MonitorEvent::Unwatched { .. } => "unwatched",
            MonitorEvent::Skipped { .. } => "skipped",
            MonitorEvent::ProfilingDisabled { .. } => "profiling-disabled",
            MonitorEvent::OomVictim(_) => "oom-victim",
            MonitorEvent::Profile(_) => "profile",
            MonitorEvent::Dropped { .. } => "dropped",
        }
    }
}

impl Drop for MonitorHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Unblock a sender waiting on a full channel by draining it.
        while self.events.try_recv().is_ok() {}
        if let Some(t) = self.thread.take() {
            while !t.is_finished() {
                while self.events.try_recv().is_ok() {}
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = t.join();
        }
    }
}

/// How long a process's data is kept after its exit, for a capture still being
/// classified (the kernel classifies within its window, 250 ms by default).
const AFTER_EXIT: Duration = Duration::from_secs(3);
/// Most exited processes remembered at once (a host with thousands of short-lived Go
/// processes per second must not grow the daemon).
const MAX_EXITED: usize = 1024;

/// Watches Go processes and turns their kills into profiles. See the module docs.
#[derive(Debug)]
pub struct Monitor {
    kernel: Kernel,
    cache: Arc<BinaryCache>,
    config: MonitorConfig,
    watched: HashMap<u32, Watched>,
    /// Exited watched processes: their data, exit time (CLOCK_MONOTONIC ns), and when
    /// we learnt of it; kept for captures still being classified.
    exited: HashMap<u32, (Watched, u64, Instant)>,
    disabled_said: HashSet<BinaryKey>,
    pending: Vec<MonitorEvent>,
    resolver: Resolver,
    /// The pre-OOM triggers, when any is on.
    pressure: Option<Pressure>,
    /// The last exec of each process seen (path given to exec, comm): what an OOM
    /// victim ran when it is gone from /proc before its record is read.
    execs: HashMap<u32, (PathBuf, String)>,
}

/// Most execs remembered (a few hundred KiB at most).
const MAX_EXECS: usize = 4096;

impl Monitor {
    /// A builder with default settings.
    pub fn builder() -> MonitorBuilder {
        MonitorBuilder::default()
    }

    /// Loads the kernel program and, if configured, watches running Go processes.
    ///
    /// Returns an error if the kernel program cannot be loaded or attached.
    pub fn new(config: MonitorConfig) -> crate::Result<Monitor> {
        let kernel = Kernel::load(&config.kernel)?;
        let resolver = Resolver::new(config.runtime_root.clone());
        let cache = Arc::new(BinaryCache::new(
            config.max_cached_binaries,
            config.max_mapped_bytes,
        ));
        let pressure = match config.pressure.is_enabled() {
            true => Some(Pressure::new(
                config.pressure.clone(),
                &config.proc_root,
                cache.clone(),
            )?),
            false => None,
        };
        let mut m = Monitor {
            kernel,
            cache,
            config,
            watched: HashMap::new(),
            exited: HashMap::new(),
            disabled_said: HashSet::new(),
            pending: Vec::new(),
            resolver,
            pressure,
            execs: HashMap::new(),
        };
        if m.config.scan_existing {
            m.scan();
        }
        Ok(m)
    }

    /// The kernel handle (features, kernel memory, counters).
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// The binary analysis cache.
    pub fn cache(&self) -> &BinaryCache {
        &self.cache
    }

    /// Pids currently watched.
    pub fn watched(&self) -> impl Iterator<Item = u32> + '_ {
        self.watched.keys().copied()
    }

    fn scan(&mut self) {
        let Ok(rd) = std::fs::read_dir(&self.config.proc_root) else {
            return;
        };
        let me = std::process::id();
        let pids: Vec<u32> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|&p| p != me)
            .collect();
        for pid in pids {
            let mut out = Vec::new();
            self.discover(pid, None, &mut out);
            // A scan is noisy: keep what matters (watched processes).
            self.pending.extend(
                out.into_iter()
                    .filter(|e| !matches!(e, MonitorEvent::Skipped { .. })),
            );
        }
    }

    /// Waits up to `timeout` (`None`: forever) and returns the events that happened.
    ///
    /// Returns an error if the kernel ring cannot be read.
    pub fn poll(&mut self, timeout: Option<Duration>) -> crate::Result<Vec<MonitorEvent>> {
        let mut out = std::mem::take(&mut self.pending);
        let timeout = if out.is_empty() {
            timeout
        } else {
            Some(Duration::ZERO)
        };
        // The triggers are checked at every poll: wait no longer than their interval.
        let timeout = match &self.pressure {
            Some(p) => Some(timeout.map_or(p.interval(), |t| t.min(p.interval()))),
            None => timeout,
        };
        for ev in self.kernel.poll(timeout)? {
            match ev {
                Event::Exec(x) => {
                    if let Some(p) = &mut self.pressure {
                        p.unwatch(x.pid);
                    }
                    if self.execs.len() >= MAX_EXECS && !self.execs.contains_key(&x.pid) {
                        // An arbitrary one goes: the map's order is unrelated to age,
                        // but a victim's exec is usually recent enough to be kept.
                        if let Some(k) = self.execs.keys().next().copied() {
                            self.execs.remove(&k);
                        }
                    }
                    self.execs
                        .insert(x.pid, (x.filename.clone(), x.comm.clone()));
                    if self.watched.remove(&x.pid).is_some() {
                        out.push(MonitorEvent::Unwatched {
                            pid: x.pid,
                            why: "exec",
                        });
                    }
                    self.discover(x.pid, Some((x.ts_ns, &x.comm)), &mut out);
                }
                Event::Exit(x) => {
                    if let Some(p) = &mut self.pressure {
                        p.unwatch(x.pid);
                    }
                    if let Some(w) = self.watched.remove(&x.pid) {
                        if self.exited.len() >= MAX_EXITED {
                            let oldest = self
                                .exited
                                .iter()
                                .min_by_key(|(_, (_, _, t))| *t)
                                .map(|(p, _)| *p);
                            if let Some(p) = oldest {
                                self.exited.remove(&p);
                            }
                        }
                        self.exited.insert(x.pid, (w, x.ts_ns, Instant::now()));
                        out.push(MonitorEvent::Unwatched {
                            pid: x.pid,
                            why: "exit",
                        });
                    }
                }
                Event::Victim(v) => {
                    let w = self
                        .watched
                        .get(&v.pid)
                        .or_else(|| self.exited.get(&v.pid).map(|e| &e.0));
                    let known = match w {
                        Some(w) => Some(crate::victim::Known {
                            exe: w.exe.clone(),
                            comm: w.comm.clone(),
                            cgroup: w.cgroup.clone(),
                            from: "watch",
                        }),
                        None => self
                            .execs
                            .get(&v.pid)
                            .map(|(exe, comm)| crate::victim::Known {
                                exe: exe.clone(),
                                comm: comm.clone(),
                                cgroup: None,
                                from: "exec",
                            }),
                    };
                    out.push(MonitorEvent::OomVictim(Box::new(crate::victim::read(
                        &self.config.proc_root,
                        &v,
                        w.is_some(),
                        known,
                    ))));
                }
                Event::Capture(c) => out.push(self.profile(&c)),
            }
        }
        if let Some(p) = &mut self.pressure {
            out.extend(p.tick());
        }
        let now = Instant::now();
        self.exited
            .retain(|_, (_, _, t)| now.duration_since(*t) < AFTER_EXIT);
        Ok(out)
    }

    /// Runs until `f` returns false, handing it every event.
    ///
    /// Returns an error if the kernel ring cannot be read.
    pub fn run(&mut self, mut f: impl FnMut(MonitorEvent) -> bool) -> crate::Result<()> {
        loop {
            for e in self.poll(Some(Duration::from_millis(500)))? {
                if !f(e) {
                    return Ok(());
                }
            }
        }
    }

    /// Looks at `pid` and watches it if it is a Go program. Whatever the linker's
    /// `disableMemoryProfiling` says: a program may set `runtime.MemProfileRate` itself,
    /// and the rate read at the kill decides.
    ///
    /// `exec` is the exec event's time and command name, for processes found by one.
    fn discover(&mut self, pid: u32, exec: Option<(u64, &str)>, out: &mut Vec<MonitorEvent>) {
        let root = self.config.proc_root.clone();
        let ipid = pid as i32;
        let exec_ts = exec.map(|(ts, _)| ts);
        // The cheapest verdict first: one stat of the executable, then the cache.
        // Most execs on a host are of programs already known not to be Go; they cost
        // no other /proc read.
        if let Some(why) = std::fs::metadata(root.join(pid.to_string()).join("exe"))
            .ok()
            .and_then(|m| self.cache.rejected(&BinaryKey::of_metadata(&m)))
        {
            let comm = match exec {
                Some((_, comm)) => comm.to_string(),
                None => ondemand::comm(&root, ipid),
            };
            // Worded as the full examination words it (OnDemandError::NotGo).
            out.push(MonitorEvent::Skipped {
                pid,
                reason: format!("pid {pid} ({comm}): {why}"),
                comm,
            });
            return;
        }
        // The process generation: a pid reused while we read would otherwise be
        // watched with another process's binary or load bias.
        let Ok(started) = ondemand::start_time(&root, ipid) else {
            return; // gone already
        };
        let comm = ondemand::comm(&root, ipid);
        let (bin, exe) = match ondemand::open_binary(&root, ipid, Some(&self.cache)) {
            Ok(b) => b,
            Err(e) => {
                out.push(MonitorEvent::Skipped {
                    pid,
                    comm,
                    reason: e.to_string(),
                });
                return;
            }
        };
        let maps = match procmaps::read(&root, ipid) {
            Ok(m) => m,
            Err(e) => {
                out.push(MonitorEvent::Skipped {
                    pid,
                    comm,
                    reason: format!("reading /proc/{pid}/maps: {e}"),
                });
                return;
            }
        };
        let Some(bias) = bias_of(&bin, &maps) else {
            out.push(MonitorEvent::Skipped {
                pid,
                comm,
                reason: "executable not found in /proc/PID/maps".into(),
            });
            return;
        };
        // Keep only what profiles use: the executable mappings (pprof's Mapping list).
        let maps: Vec<MapEntry> = procmaps::executable(&maps).cloned().collect();
        let info = watch_info(&bin, bias);
        if let Err(e) = self.kernel.watch(pid, &info) {
            out.push(MonitorEvent::Skipped {
                pid,
                comm,
                reason: e.to_string(),
            });
            return;
        }
        // The pid may have exec'd or exited between our reads and the watch: make sure
        // it still runs the binary we analysed (the kernel drops watches on exec/exit,
        // but an exec that happened before the watch would be missed).
        let still = std::fs::File::open(root.join(pid.to_string()).join("exe"))
            .ok()
            .and_then(|f| BinaryKey::of(&f).ok())
            == Some(bin.key)
            && ondemand::start_time(&root, ipid).ok() == Some(started);
        if !still {
            let _ = self.kernel.unwatch(pid);
            return;
        }
        let latency =
            exec_ts.and_then(|ts| Some(Duration::from_nanos(monotonic_ns()?.saturating_sub(ts))));
        out.push(MonitorEvent::Watched {
            pid,
            comm: comm.clone(),
            exe: exe.clone(),
            go_version: bin.info.go_version.clone(),
            latency,
        });
        let cgroup = ondemand::cgroup(&root, ipid);
        let attribution = cgroup.as_deref().and_then(|c| self.resolver.attribute(c));
        if let Some(p) = &mut self.pressure {
            p.watch(pid, cgroup.as_deref(), attribution.clone());
        }
        self.watched.insert(
            pid,
            Watched {
                bin,
                bias,
                maps,
                exe,
                comm,
                cgroup,
                attribution,
                since_ns: exec_ts.or_else(monotonic_ns).unwrap_or(0),
            },
        );
    }

    /// Turns a capture into a profile event (or says why not).
    fn profile(&mut self, c: &Capture) -> MonitorEvent {
        let t0 = Instant::now();
        let walked = c.end.start_ns.saturating_add(c.end.elapsed_ns);
        let deliver = monotonic_ns().map(|n| Duration::from_nanos(n.saturating_sub(walked)));
        let pid = c.pid;
        // Which process that had this pid made the capture: the one watched now if it
        // started after that watch began, else the exited one. (The exited one's exit
        // may even precede its capture: on kernels before ~6.16 the exit event is the
        // leader's, and a kill aimed at another thread is walked in that thread's
        // delivery, after it.)
        let exited = self.exited.get(&pid);
        let current = self.watched.get(&pid);
        let w = match generation(
            c.end.start_ns,
            exited.is_some(),
            current.map(|w| w.since_ns),
        ) {
            Some(Generation::Current) => current,
            Some(Generation::Exited) => exited.map(|(w, _, _)| w),
            None => None,
        };
        let Some(w) = w.cloned() else {
            return MonitorEvent::Dropped {
                pid,
                comm: String::from_utf8_lossy(c.end.comm.as_bytes()).into_owned(),
                reason: "capture of a process oomprof no longer knows".into(),
            };
        };
        use oom_core::abi::end_status as st;
        let seen =
            if w.bin.info.vars.mem_profile_rate.is_none() || c.end.status & st::RATE_FAULT != 0 {
                RateSeen::Unknown
            } else {
                RateSeen::Read(c.end.mem_profile_rate as i64)
            };
        let Some((rate, rate_problem)) = seen.scale_rate() else {
            let detail = disabled_diagnosis(w.bin.info.profiling_disabled_by_linker);
            if self.disabled_said.insert(w.bin.key) {
                return MonitorEvent::ProfilingDisabled {
                    pid,
                    comm: w.comm,
                    exe: w.exe,
                    detail,
                };
            }
            return MonitorEvent::Dropped {
                pid,
                comm: w.comm,
                reason: detail.into(),
            };
        };
        // Expand the entries (whose stacks share outer frames with the entry before)
        // into whole-stack buckets backed by one arena.
        // Sized up front from the entry headers (each says its whole depth): no
        // regrowth copies of a many-megabyte arena.
        let words: usize = c.entries().map_while(Result::ok).map(|e| e.nstk()).sum();
        let mut arena: Vec<u8> = Vec::with_capacity(words * 8);
        let mut parts: Vec<(u64, std::ops::Range<usize>, oom_core::bucket::MemRecord)> =
            Vec::with_capacity(c.end.buckets_emitted as usize);
        let entry_error = c
            .for_each_bucket(|_, b| {
                let start = arena.len();
                arena.extend_from_slice(b.stack.as_bytes());
                parts.push((b.size, start..arena.len(), b.record));
            })
            .err();
        let buckets: Vec<Bucket<'_>> = parts
            .iter()
            .filter_map(|(size, r, record)| {
                Some(Bucket {
                    size: *size,
                    stack: oom_core::bucket::Stack::new(arena.get(r.clone())?)?,
                    record: *record,
                })
            })
            .collect();
        let end = &c.end;
        let mut problems: Vec<Incomplete> = rate_problem.into_iter().collect();
        if end.status & st::HEAD_FAULT != 0 {
            problems.push(Incomplete::HeadUnreadable);
        }
        if end.status & st::WALK_FAULT != 0 {
            problems.push(Incomplete::ListCut { addr: None });
        }
        if end.status & st::WALK_LIMIT != 0 {
            problems.push(Incomplete::BucketLimit {
                limit: u64::from(end.max_buckets),
            });
        }
        if end.status & st::RING_FULL != 0 || end.ring_full_buckets > 0 {
            problems.push(Incomplete::RingFull {
                dropped: end.ring_full_buckets,
            });
        }
        if end.status & st::TIME_BUDGET != 0 {
            problems.push(Incomplete::TimeBudget {
                walked_ns: end.elapsed_ns,
            });
        }
        if end.status & st::STEP_CAP != 0 {
            let walk = self.kernel.walk();
            problems.push(Incomplete::StepCap {
                steps: walk.max_steps(),
                fallback: walk == WalkKind::Fallback,
            });
        }
        if end.status & st::NO_WALKER != 0 {
            problems.push(Incomplete::NotWalked);
        }
        if end.status & st::LOOP != 0 {
            problems.push(Incomplete::Loop);
        }
        if end.status & st::INVALID != 0 || end.read_fault_buckets > 0 {
            problems.push(Incomplete::BucketsLeftOut {
                count: u64::from(end.read_fault_buckets),
                invalid: end.status & st::INVALID != 0,
                detail: String::new(),
            });
        }
        if end.truncated_stacks > 0 {
            problems.push(Incomplete::StacksCut {
                count: end.truncated_stacks,
                frames: end.max_nstk,
            });
        }
        if c.missing_chunks > 0 {
            problems.push(Incomplete::ChunksLost {
                count: c.missing_chunks,
            });
        }
        if let Some(err) = entry_error {
            problems.push(Incomplete::MalformedEntry(err.to_string()));
        }
        // Go's publication rule, as runtime.MemProfile would apply it at the kill; what
        // it leaves out goes to the recent_* sample types.
        let cycle = (w.bin.info.vars.mprof_cycle.is_some() && end.status & st::CYCLE_FAULT == 0)
            .then_some(end.mprof_cycle >> 1);
        if cycle.is_none() {
            problems.push(Incomplete::CycleUnknown);
        }
        let policy = Policy::GoPublished {
            cycle,
            fallback: needs_fallback(buckets.iter().map(|b| &b.record), cycle),
        };
        let (reason, trigger, rss) = match c.reason {
            KillReason::Oom => {
                let v = c.victim;
                (
                    Reason::Oom,
                    v.map(|v| {
                        (
                            v.trigger_pid as i32,
                            String::from_utf8_lossy(v.trigger_comm.as_bytes()).into_owned(),
                        )
                    }),
                    v.and_then(|v| v.details).map(|d| Rss {
                        total_vm_kb: d.total_vm_kb,
                        anon_kb: d.anon_rss_kb,
                        file_kb: d.file_rss_kb,
                        shmem_kb: d.shmem_rss_kb,
                        oom_score_adj: i64::from(d.oom_score_adj),
                    }),
                )
            }
            KillReason::Killed => (Reason::Killed, None, None),
            KillReason::Unknown => (Reason::Unknown, None, None),
        };
        let info = &w.bin.info;
        let meta = ProfileMeta {
            pid: pid as i32,
            comm: w.comm.clone(),
            exe: w.exe.clone(),
            go_version: info.go_version.clone(),
            main_module: info.main_path.clone(),
            main_version: info.main_version.clone(),
            vcs_revision: info.vcs_revision.clone(),
            go_build_id: info.go_build_id.clone(),
            gnu_build_id: info.gnu_build_id.clone(),
            reason,
            trigger,
            pressure: None,
            rss,
            cgroup: w.cgroup.clone(),
            attribution: w.attribution.clone(),
            mem_profile_rate: rate,
            buckets: buckets.len(),
            incomplete: problems,
            buckets_seen: Some(end.buckets_seen as usize),
            kill_mono_ns: Some(end.start_ns),
            walk_ns: Some(end.elapsed_ns),
            walk_irqs_off: Some(end.status & st::AT_EXIT == 0),
            event_log: self.config.event_log.clone(),
            time: SystemTime::now(),
        };
        let assembled = t0.elapsed();
        match assemble(&w.bin, w.bias, &buckets, &w.maps, policy, true, meta) {
            Ok(mut p) => {
                p.timings.deliver = deliver;
                p.timings.assemble = assembled;
                MonitorEvent::Profile(Box::new(p))
            }
            Err(e) => MonitorEvent::Dropped {
                pid,
                comm: w.comm,
                reason: e.to_string(),
            },
        }
    }
}

/// Which process that had a capture's pid made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Generation {
    /// The one watched now.
    Current,
    /// The one that exited last.
    Exited,
}

/// The process generation a capture that started at `start_ns` belongs to: the one
/// watched now if it started after that watch began (`current_since`), else the one
/// that exited, if there is one. The exited one's exit may precede its own capture: on
/// kernels before ~6.16 the exit event is the leader's, and a kill aimed at another
/// thread is walked in that thread's delivery, after it; and a walk at the first
/// thread's exit races the last thread's exit event.
fn generation(start_ns: u64, exited: bool, current_since: Option<u64>) -> Option<Generation> {
    match (exited, current_since) {
        (_, Some(since)) if start_ns >= since => Some(Generation::Current),
        (true, _) => Some(Generation::Exited),
        _ => None,
    }
}

/// The load bias of `bin` in a process with mappings `maps`.
fn bias_of(bin: &GoBinary, maps: &[MapEntry]) -> Option<u64> {
    if !bin.info.pie {
        return Some(0);
    }
    procmaps::load_bias(
        maps,
        ondemand::dev_pair(bin.key.dev),
        bin.key.ino,
        &bin.info.segments,
    )
    .or_else(|| {
        let m = maps.iter().find(|m| m.inode == bin.key.ino)?;
        procmaps::load_bias(maps, m.dev, m.inode, &bin.info.segments)
    })
}

/// What the kernel program needs for a process running `bin` at `bias`.
pub fn watch_info(bin: &GoBinary, bias: u64) -> WatchInfo {
    let v = &bin.info.vars;
    let at = |a: Option<u64>| a.map_or(0, |a| a.wrapping_add(bias));
    // PCs are sent as u32 offsets from the lowest address of the image when they fit.
    let base = bin
        .info
        .segments
        .iter()
        .map(|s| s.vaddr)
        .min()
        .unwrap_or(0)
        .wrapping_add(bias);
    WatchInfo {
        mbuckets: v.mbuckets.wrapping_add(bias),
        mem_profile_rate: at(v.mem_profile_rate),
        mprof_cycle: at(v.mprof_cycle),
        pc_base: base,
        cycle_layout: if bin.info.layout.cycle_size == 16 {
            CycleLayout::Words2
        } else {
            CycleLayout::Words4
        },
        max_nstk: bin
            .info
            .layout
            .max_nstk
            .min(oom_core::abi::MAX_NSTK as usize) as u32,
    }
}

/// CLOCK_MONOTONIC now, in ns: the clock of the kernel program's timestamps.
pub fn monotonic_ns() -> Option<u64> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).ok()?;
    Some(now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64)
}

/// Path of `/proc/PID/exe` under `root`.
pub fn exe_link(root: &Path, pid: u32) -> PathBuf {
    root.join(pid.to_string()).join("exe")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_belongs_to_the_process_generation_it_started_in() {
        use Generation::*;
        // Only a current process: its own capture, or one from before its watch (a
        // previous process oomprof no longer knows).
        assert_eq!(generation(200, false, Some(100)), Some(Current));
        assert_eq!(generation(50, false, Some(100)), None);
        // Only an exited one: its capture, even if it starts after the exit event.
        assert_eq!(generation(50, true, None), Some(Exited));
        assert_eq!(generation(500, true, None), Some(Exited));
        // Both (the pid was reused): by the new watch's start.
        assert_eq!(generation(150, true, Some(100)), Some(Current));
        assert_eq!(generation(90, true, Some(100)), Some(Exited));
        assert_eq!(generation(1, false, None), None);
    }
}
