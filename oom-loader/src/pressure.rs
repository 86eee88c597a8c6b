//! Pre-OOM profiles: when a watched Go process's memory cgroup nears its limit, an
//! on-demand profile ([`crate::ondemand`]) is taken before the OOM killer strikes, so a
//! slow leak is explained even when the kill comes later or never.
//!
//! ```text
//! Monitor::discover/exit ──▶ Pressure::watch/unwatch (pid → memory cgroup)
//! Monitor::poll ──▶ Pressure::tick:
//!     poll(2), timeout 0, over the trigger fds:
//!         /proc/pressure/memory          PSI trigger (system)          --pre-oom-system-psi
//!         <cgroup>/memory.pressure       PSI trigger (cgroup v2)       --pre-oom-psi
//!         <cgroup>/memory.events         `high` counter rising (v2)    --pre-oom-high
//!     every interval: usage of each limited ancestor          --pre-oom-usage
//!         (v1 memory.usage_in_bytes / memory.limit_in_bytes, v2 memory.current / memory.max)
//!     fired ──▶ the scope's watched pids not profiled within the debounce window,
//!               largest RSS first ──▶ worker thread: ondemand profile, reason=pressure
//!     ◀── finished profiles, as MonitorEvent::Profile
//! ```
//!
//! Nothing runs when no trigger is configured (the Monitor holds no `Pressure`). With
//! triggers, a tick costs one `poll(2)` when PSI or memory.high fds are open, and the
//! usage check reads two small files per limited cgroup per interval. Profiles are
//! taken on a thread of their own: a big heap takes milliseconds to read, and the
//! Monitor must keep draining the kernel's ring meanwhile.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::attribution::Attribution;
use crate::cache::BinaryCache;
use crate::monitor::MonitorEvent;
use crate::ondemand::{self, OnDemandOptions};

/// How long a process profiled under pressure is left alone (`--pre-oom-debounce`).
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_secs(300);
/// How often the usage trigger reads the limits.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(250);
/// Most processes profiled per trigger firing, largest resident set first.
pub const DEFAULT_MAX_PROCESSES: usize = 4;
/// Profiles waiting for the worker; more are skipped with a warning.
const QUEUE: usize = 16;
/// How often the cgroup fds are matched to the watched processes even without a change
/// (a memory.high set after the process started).
const RECONCILE_EVERY: Duration = Duration::from_secs(10);
/// The most often they are matched after changes: a host exec'ing Go programs all the
/// time must not make every tick read every limit.
const RECONCILE_MIN: Duration = Duration::from_secs(1);
/// The kernel's longest PSI window (`WINDOW_MAX_US`, kernel/sched/psi.c).
const PSI_WINDOW_MAX: Duration = Duration::from_secs(10);
/// The window granularity the kernel requires of a trigger whose opener lacks
/// CAP_SYS_RESOURCE (kernel/sched/psi.c, `psi_trigger_create`, since 6.5).
const PSI_WINDOW_STEP: Duration = Duration::from_secs(2);
/// A v1 limit at or above this is "no limit" (PAGE_COUNTER_MAX pages).
const V1_UNLIMITED: u64 = 1 << 62;

/// Which PSI line a trigger watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsiKind {
    /// Some task stalled on memory.
    Some,
    /// Every non-idle task stalled on memory at once.
    Full,
}

impl PsiKind {
    /// `some` or `full`, as the kernel's files write it.
    pub fn as_str(self) -> &'static str {
        match self {
            PsiKind::Some => "some",
            PsiKind::Full => "full",
        }
    }
}

/// A PSI trigger: fire when tasks stalled for `stall` within a `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PsiTrigger {
    /// Which line.
    pub kind: PsiKind,
    /// Stall time within the window that fires the trigger.
    pub stall: Duration,
    /// The window: a multiple of 2 s, at most 10 s.
    pub window: Duration,
}

/// Why a trigger specification was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TriggerError {
    /// Not `KIND:STALL/WINDOW`.
    #[error("want KIND:STALL/WINDOW, e.g. some:150ms/2s (KIND is some or full)")]
    Syntax,
    /// The kind is neither `some` nor `full`.
    #[error("{0:?} is not some or full")]
    Kind(String),
    /// A duration did not parse.
    #[error("{0:?} is not a duration such as 150ms or 2s")]
    Duration(String),
    /// The stall is 0 or longer than the window.
    #[error("the stall must be more than 0 and at most the window")]
    Stall,
    /// The window is not a multiple of 2 s up to 10 s.
    #[error("the window must be 2s, 4s, 6s, 8s or 10s: the kernel takes other windows only from a process with CAP_SYS_RESOURCE, which oomprof does not need")]
    Window,
}

impl PsiTrigger {
    /// A trigger, validated as the kernel will.
    ///
    /// Returns an error if the stall is 0 or exceeds the window, or the window is not
    /// a multiple of 2 s from 2 s to 10 s.
    pub fn new(kind: PsiKind, stall: Duration, window: Duration) -> Result<Self, TriggerError> {
        let step = PSI_WINDOW_STEP.as_micros();
        if window.is_zero() || window > PSI_WINDOW_MAX || !window.as_micros().is_multiple_of(step) {
            return Err(TriggerError::Window);
        }
        if stall.as_micros() == 0 || stall > window {
            return Err(TriggerError::Stall);
        }
        Ok(Self {
            kind,
            stall,
            window,
        })
    }

    /// What is written to a pressure file: `some 150000 2000000` and a NUL (the
    /// kernel overwrites the last byte written with one).
    pub fn kernel_text(&self) -> String {
        format!(
            "{} {} {}\0",
            self.kind.as_str(),
            self.stall.as_micros(),
            self.window.as_micros()
        )
    }
}

impl std::fmt::Display for PsiTrigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}ms/{}s",
            self.kind.as_str(),
            self.stall.as_millis(),
            self.window.as_secs()
        )
    }
}

impl FromStr for PsiTrigger {
    type Err = TriggerError;

    /// Parses `some:150ms/2s`, `full:1s/10s`, or `150ms/2s` (`some`).
    fn from_str(s: &str) -> Result<Self, TriggerError> {
        let (kind, rest) = match s.split_once(':') {
            Some((k, r)) => (k, r),
            None => ("some", s),
        };
        let kind = match kind {
            "some" => PsiKind::Some,
            "full" => PsiKind::Full,
            k => return Err(TriggerError::Kind(k.to_string())),
        };
        let (stall, window) = rest.split_once('/').ok_or(TriggerError::Syntax)?;
        let d = |t: &str| duration(t).ok_or_else(|| TriggerError::Duration(t.to_string()));
        Self::new(kind, d(stall)?, d(window)?)
    }
}

/// `150ms`, `2s`, `500us`.
fn duration(s: &str) -> Option<Duration> {
    let i = s.find(|c: char| !c.is_ascii_digit())?;
    let n: u64 = s.get(..i)?.parse().ok()?;
    match s.get(i..)? {
        "us" => Some(Duration::from_micros(n)),
        "ms" => Some(Duration::from_millis(n)),
        "s" => n.checked_mul(1000).map(Duration::from_millis),
        _ => None,
    }
}

/// Which pre-OOM triggers are on; all off by default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PressureConfig {
    /// Profile when a limit's usage reaches this percentage (1-99).
    pub usage_percent: Option<u8>,
    /// A PSI trigger on each watched process's cgroup (`memory.pressure`, cgroup v2).
    pub psi: Option<PsiTrigger>,
    /// A PSI trigger on the whole system (`/proc/pressure/memory`).
    pub system_psi: Option<PsiTrigger>,
    /// Profile when the `high` counter of a cgroup's `memory.events` rises (v2, where
    /// an ancestor sets memory.high).
    pub memory_high: bool,
    /// A process profiled under pressure is not profiled again within this.
    pub debounce: Duration,
    /// How often the usage trigger reads the limits.
    pub interval: Duration,
    /// Most processes profiled per firing.
    pub max_processes: usize,
}

impl Default for PressureConfig {
    fn default() -> Self {
        Self {
            usage_percent: None,
            psi: None,
            system_psi: None,
            memory_high: false,
            debounce: DEFAULT_DEBOUNCE,
            interval: DEFAULT_INTERVAL,
            max_processes: DEFAULT_MAX_PROCESSES,
        }
    }
}

impl PressureConfig {
    /// True when any trigger is on.
    pub fn is_enabled(&self) -> bool {
        self.usage_percent.is_some()
            || self.psi.is_some()
            || self.system_psi.is_some()
            || self.memory_high
    }
}

/// Which trigger fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// Usage reached the configured share of a limit.
    Usage,
    /// The cgroup's PSI trigger.
    Psi,
    /// The system's PSI trigger.
    SystemPsi,
    /// memory.high was exceeded (the cgroup is being throttled).
    MemoryHigh,
}

impl Trigger {
    /// Every trigger, for metrics present at zero.
    pub const ALL: [Trigger; 4] = [
        Trigger::Usage,
        Trigger::Psi,
        Trigger::SystemPsi,
        Trigger::MemoryHigh,
    ];

    /// The word in comments, logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Usage => "usage",
            Trigger::Psi => "psi",
            Trigger::SystemPsi => "system-psi",
            Trigger::MemoryHigh => "memory.high",
        }
    }
}

/// Why a pre-OOM profile was taken: the trigger, the cgroup it fired for, its figures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PressureNote {
    /// The trigger.
    pub trigger: Trigger,
    /// The cgroup that neared its limit (its path in its hierarchy, e.g. `/kubepods/x`);
    /// `None` for the system's PSI.
    pub cgroup: Option<String>,
    /// The figures: `usage=… limit=… (93.1% >= 90%)`, `some avg10=…`, ….
    pub figures: String,
    /// Usage and limit of that cgroup in bytes, when read.
    pub usage_limit: Option<(u64, u64)>,
}

impl PressureNote {
    /// The pprof comment: `pressure: trigger=usage cgroup=/a usage=… limit=…`.
    pub fn comment(&self) -> String {
        format!(
            "pressure: trigger={} cgroup={} {}",
            self.trigger.as_str(),
            self.cgroup.as_deref().unwrap_or("-"),
            self.figures
        )
    }
}

/// Where the memory controllers are mounted: (mount point, mount root) of each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Mounts {
    pub(crate) v1: Option<(PathBuf, String)>,
    v2: Option<(PathBuf, String)>,
}

impl Mounts {
    /// From `/proc/self/mountinfo`'s text.
    pub(crate) fn parse(text: &str) -> Self {
        let mut m = Mounts::default();
        for line in text.lines() {
            // "id parent maj:min root mountpoint opts [optional...] - fstype source superopts"
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let mut pre = pre.split(' ');
            let (Some(root), Some(mnt)) = (pre.nth(3), pre.next()) else {
                continue;
            };
            let mut post = post.split(' ');
            let fstype = post.next().unwrap_or("");
            let superopts = post.nth(1).unwrap_or("");
            let entry = (PathBuf::from(unescape(mnt)), unescape(root));
            if fstype == "cgroup2" && m.v2.is_none() {
                m.v2 = Some(entry);
            } else if fstype == "cgroup"
                && superopts.split(',').any(|o| o == "memory")
                && m.v1.is_none()
            {
                m.v1 = Some(entry);
            }
        }
        m
    }

    /// The cgroup a `/proc/PID/cgroup` line names (see [`ondemand::memory_cgroup`]).
    pub(crate) fn resolve(&self, line: &str) -> Option<Cg> {
        let mut f = line.splitn(3, ':');
        let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
        let v2 = ctrl.is_empty();
        let (mnt, root) = if v2 {
            self.v2.as_ref()?
        } else {
            self.v1.as_ref()?
        };
        // A mount of a sub-tree (a container's view) shows paths below its root.
        let rel = match path.strip_prefix(root.as_str()) {
            Some(r) if root != "/" && (r.is_empty() || r.starts_with('/')) => r,
            _ => path,
        };
        let rel = if rel.is_empty() { "/" } else { rel };
        Some(Cg {
            dir: mnt.join(rel.trim_start_matches('/')),
            rel: path.to_string(),
            v2,
            mount: mnt.clone(),
        })
    }
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|o| o.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(o)) => {
                out.push((o[0] - b'0') * 64 + (o[1] - b'0') * 8 + (o[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A memory cgroup: its directory, its path as `/proc/PID/cgroup` names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Cg {
    pub(crate) dir: PathBuf,
    rel: String,
    pub(crate) v2: bool,
    mount: PathBuf,
}

impl Cg {
    /// This cgroup and its ancestors below the hierarchy's root, nearest first.
    fn lineage(&self) -> Vec<Cg> {
        let mut out = Vec::new();
        let mut dir = self.dir.clone();
        let mut rel = self.rel.clone();
        while dir.starts_with(&self.mount) && dir != self.mount {
            out.push(Cg {
                dir: dir.clone(),
                rel: rel.clone(),
                v2: self.v2,
                mount: self.mount.clone(),
            });
            if !dir.pop() {
                break;
            }
            rel = match rel.rsplit_once('/') {
                Some(("", _)) | None => "/".to_string(),
                Some((parent, _)) => parent.to_string(),
            };
        }
        out
    }

    /// (usage, limit) in bytes; `None` when it has no limit or cannot be read.
    fn usage_limit(&self) -> Option<(u64, u64)> {
        let (usage, limit) = if self.v2 {
            ("memory.current", "memory.max")
        } else {
            ("memory.usage_in_bytes", "memory.limit_in_bytes")
        };
        let limit = read_limit(&self.dir.join(limit))?;
        Some((read_u64(&self.dir.join(usage))?, limit))
    }

    /// memory.high, when set (v2).
    fn high(&self) -> Option<u64> {
        self.v2.then(|| read_limit(&self.dir.join("memory.high")))?
    }
}

pub(crate) fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A limit file: `max` (v2) or a huge number (v1) is no limit.
pub(crate) fn read_limit(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    match text.trim() {
        "max" => None,
        t => t.parse().ok().filter(|&l| l < V1_UNLIMITED),
    }
}

/// The `high` counter of a `memory.events` text.
fn high_count(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("high "))
        .and_then(|v| v.trim().parse().ok())
}

/// The `KIND avg10=…` line of a pressure file's text.
fn psi_line(text: &str, kind: PsiKind) -> String {
    text.lines()
        .find(|l| l.starts_with(kind.as_str()))
        .unwrap_or("unreadable")
        .to_string()
}

/// Whether usage reached `percent` of the limit.
fn over(usage: u64, limit: u64, percent: u8) -> bool {
    limit > 0 && u128::from(usage) * 100 >= u128::from(limit) * u128::from(percent)
}

fn mib(b: u64) -> String {
    format!("{:.1}MiB", b as f64 / 1048576.0)
}

/// Opens `path` and arms `t` on it.
fn arm(path: &Path, t: &PsiTrigger) -> std::io::Result<File> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    f.write_all(t.kernel_text().as_bytes())?;
    Ok(f)
}

/// A watched process, as the triggers see it.
#[derive(Clone, Debug)]
struct Member {
    cg: Option<Cg>,
    attribution: Option<Attribution>,
}

/// One on-demand profile for the worker.
#[derive(Debug)]
struct Job {
    pid: i32,
    note: PressureNote,
    attribution: Option<Attribution>,
}

/// The pre-OOM triggers of a Monitor. See the module docs.
#[derive(Debug)]
pub struct Pressure {
    config: PressureConfig,
    mounts: Mounts,
    proc_root: PathBuf,
    members: HashMap<u32, Member>,
    dirty: bool,
    reconciled_at: Instant,
    /// Cgroups whose usage the usage trigger reads: every limited one above a member.
    limited: Vec<Cg>,
    system: Option<File>,
    psi: HashMap<PathBuf, (File, Cg)>,
    high: HashMap<PathBuf, (File, Cg, u64)>,
    /// Where arming a trigger failed: said once, not retried.
    refused: HashSet<PathBuf>,
    /// `--pre-oom-psi` on a v1 cgroup was said.
    said_v1: bool,
    /// `--pre-oom-high` on a v1 cgroup was said.
    said_v1_high: bool,
    next_usage: Instant,
    /// When each pid was last profiled under pressure (queued, then done).
    profiled: HashMap<u32, Instant>,
    /// Pids with memory profiling off: not tried again while they run.
    disabled: HashSet<u32>,
    jobs: Option<SyncSender<Job>>,
    /// Tells the worker to leave the jobs still queued (at drop).
    stop: Arc<AtomicBool>,
    /// Finished profiles: (pid, profiling was off, the event).
    results: Receiver<(u32, bool, MonitorEvent)>,
    worker: Option<JoinHandle<()>>,
}

impl Pressure {
    /// Arms the system trigger, if configured, and starts the worker thread.
    ///
    /// Returns an error if `/proc/pressure/memory` cannot be armed (no PSI in the
    /// kernel, `psi=0`, or the trigger refused) or the thread cannot start.
    pub fn new(
        config: PressureConfig,
        proc_root: &Path,
        cache: Arc<BinaryCache>,
    ) -> crate::Result<Self> {
        let system = match &config.system_psi {
            None => None,
            Some(t) => {
                let path = proc_root.join("pressure/memory");
                Some(arm(&path, t).map_err(|e| {
                    crate::Error::sys(
                        format!(
                            "arming the PSI trigger {t} on {} (kernel without PSI, or booted with psi=0?)",
                            path.display()
                        ),
                        e,
                    )
                })?)
            }
        };
        let mounts = std::fs::read_to_string(proc_root.join("self/mountinfo"))
            .map(|t| Mounts::parse(&t))
            .unwrap_or_default();
        let (jobs, rx) = sync_channel::<Job>(QUEUE);
        let (tx, results) = sync_channel::<(u32, bool, MonitorEvent)>(QUEUE + 1);
        let opts = OnDemandOptions {
            proc_root: proc_root.to_path_buf(),
            ..OnDemandOptions::default()
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let worker = std::thread::Builder::new()
            .name("oomprof-preoom".into())
            .spawn(move || {
                for job in rx {
                    if stopped.load(Ordering::Relaxed) {
                        return;
                    }
                    let pid = job.pid;
                    let mut off = false;
                    let ev = match ondemand::profile_under_pressure(
                        pid,
                        &opts,
                        &cache,
                        job.note,
                        job.attribution,
                    ) {
                        Ok(p) => MonitorEvent::Profile(Box::new(p)),
                        Err(e) => {
                            off = matches!(e, ondemand::OnDemandError::ProfilingDisabled { .. });
                            MonitorEvent::Dropped {
                                pid: pid as u32,
                                comm: ondemand::comm(&opts.proc_root, pid),
                                reason: format!("pre-OOM profile: {e}"),
                            }
                        }
                    };
                    if tx.send((pid as u32, off, ev)).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| crate::Error::sys("spawning the pre-OOM profile thread", e))?;
        Ok(Self {
            next_usage: Instant::now(),
            config,
            mounts,
            proc_root: proc_root.to_path_buf(),
            members: HashMap::new(),
            dirty: false,
            // The first members (the start's scan) are matched at the first tick.
            reconciled_at: Instant::now()
                .checked_sub(RECONCILE_MIN)
                .unwrap_or_else(Instant::now),
            limited: Vec::new(),
            system,
            psi: HashMap::new(),
            high: HashMap::new(),
            refused: HashSet::new(),
            said_v1: false,
            said_v1_high: false,
            profiled: HashMap::new(),
            disabled: HashSet::new(),
            jobs: Some(jobs),
            stop,
            results,
            worker: Some(worker),
        })
    }

    /// The longest a Monitor should wait between ticks.
    pub fn interval(&self) -> Duration {
        self.config.interval
    }

    /// A watched process and its memory cgroup line (`/proc/PID/cgroup`'s).
    pub fn watch(&mut self, pid: u32, cgroup: Option<&str>, attribution: Option<Attribution>) {
        let cg = cgroup.and_then(|l| self.mounts.resolve(l));
        self.members.insert(pid, Member { cg, attribution });
        self.dirty = true;
    }

    /// A process no longer watched.
    pub fn unwatch(&mut self, pid: u32) {
        if self.members.remove(&pid).is_some() {
            self.dirty = true;
        }
        self.disabled.remove(&pid);
    }

    /// Checks the triggers and returns the profiles finished since the last tick.
    pub fn tick(&mut self) -> Vec<MonitorEvent> {
        let now = Instant::now();
        let since = now.duration_since(self.reconciled_at);
        if (self.dirty && since >= RECONCILE_MIN) || since >= RECONCILE_EVERY {
            self.reconcile();
            self.reconciled_at = now;
            self.dirty = false;
        }
        self.poll_fds();
        if let Some(pct) = self.config.usage_percent {
            if now >= self.next_usage {
                self.next_usage = now + self.config.interval;
                self.check_usage(pct);
            }
        }
        let mut out = Vec::new();
        while let Ok((pid, off, e)) = self.results.try_recv() {
            // The window runs from the profile, not from the firing: a profile that
            // waited behind others' is not followed by another sooner than the window.
            if let Some(t) = self.profiled.get_mut(&pid) {
                *t = Instant::now();
            }
            if off {
                // Said once (this event); its slot goes to others from now on.
                self.disabled.insert(pid);
            }
            out.push(e);
        }
        let window = self.config.debounce;
        self.profiled.retain(|_, t| now.duration_since(*t) < window);
        out
    }

    /// Matches the cgroup fds and the usage list to the members' cgroups.
    fn reconcile(&mut self) {
        let own: HashSet<Cg> = self.members.values().filter_map(|m| m.cg.clone()).collect();
        let lineage: HashSet<Cg> = own.iter().flat_map(Cg::lineage).collect();
        if self.config.usage_percent.is_some() {
            self.limited = lineage
                .iter()
                .filter(|c| c.usage_limit().is_some())
                .cloned()
                .collect();
        }
        if let Some(t) = self.config.psi {
            self.psi.retain(|dir, _| own.iter().any(|c| &c.dir == dir));
            let new: Vec<&Cg> = own
                .iter()
                .filter(|c| !self.psi.contains_key(&c.dir))
                .collect();
            for c in new {
                if !c.v2 {
                    if !self.said_v1 {
                        self.said_v1 = true;
                        log::warn!(
                            "--pre-oom-psi: {} is a cgroup v1 memory cgroup, which has no memory.pressure (nor have the others on v1); only the system's PSI (--pre-oom-system-psi) applies there",
                            c.rel
                        );
                    }
                    continue;
                }
                let path = c.dir.join("memory.pressure");
                match arm(&path, &t) {
                    Ok(f) => {
                        log::debug!("pre-OOM: PSI trigger {t} armed on {}", path.display());
                        self.psi.insert(c.dir.clone(), (f, c.clone()));
                    }
                    Err(e) => {
                        if self.refused.insert(c.dir.clone()) {
                            log::warn!("--pre-oom-psi: arming {t} on {}: {e}", path.display());
                        }
                    }
                }
            }
        }
        if self.config.memory_high {
            if let Some(c) = own.iter().find(|c| !c.v2) {
                if !self.said_v1_high {
                    self.said_v1_high = true;
                    log::warn!(
                        "--pre-oom-high: {} is a cgroup v1 memory cgroup, which has no memory.high (nor have the others on v1)",
                        c.rel
                    );
                }
            }
            let highs: Vec<&Cg> = lineage.iter().filter(|c| c.high().is_some()).collect();
            self.high
                .retain(|dir, _| highs.iter().any(|c| &c.dir == dir));
            for c in highs {
                if self.high.contains_key(&c.dir) {
                    continue;
                }
                let path = c.dir.join("memory.events");
                let opened = File::open(&path).and_then(|mut f| {
                    let mut t = String::new();
                    f.read_to_string(&mut t)?;
                    Ok((f, high_count(&t).unwrap_or(0)))
                });
                match opened {
                    Ok((f, n)) => {
                        log::debug!("pre-OOM: watching {} (high {n})", path.display());
                        self.high.insert(c.dir.clone(), (f, c.clone(), n));
                    }
                    Err(e) => log::warn!("--pre-oom-high: opening {}: {e}", path.display()),
                }
            }
        }
        let members = &self.members;
        self.profiled.retain(|pid, _| members.contains_key(pid));
    }

    /// One `poll(2)` over the PSI and memory.events fds, timeout 0; handles what fired.
    fn poll_fds(&mut self) {
        if self.system.is_none() && self.psi.is_empty() && self.high.is_empty() {
            return;
        }
        // (which, key): 0 system, 1 cgroup PSI, 2 memory.events.
        let mut keys: Vec<(u8, PathBuf)> = Vec::new();
        let mut fired: Vec<(u8, PathBuf, PollFlags)> = Vec::new();
        {
            let mut fds: Vec<PollFd<'_>> = Vec::new();
            if let Some(f) = &self.system {
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLPRI));
                keys.push((0, PathBuf::new()));
            }
            for (dir, (f, _)) in &self.psi {
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLPRI));
                keys.push((1, dir.clone()));
            }
            for (dir, (f, _, _)) in &self.high {
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLPRI));
                keys.push((2, dir.clone()));
            }
            match poll(&mut fds, PollTimeout::ZERO) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) => {
                    log::warn!("pre-OOM: poll on the pressure files: {e}");
                    return;
                }
            }
            for (fd, (which, key)) in fds.iter().zip(&keys) {
                if let Some(r) = fd.revents().filter(|r| !r.is_empty()) {
                    fired.push((*which, key.clone(), r));
                }
            }
        }
        for (which, key, revents) in fired {
            match which {
                0 => self.system_fired(),
                1 => self.psi_fired(&key, revents),
                _ => self.high_fired(&key),
            }
        }
    }

    fn system_fired(&mut self) {
        let Some(t) = self.config.system_psi else {
            return;
        };
        let text =
            std::fs::read_to_string(self.proc_root.join("pressure/memory")).unwrap_or_default();
        let note = PressureNote {
            trigger: Trigger::SystemPsi,
            cgroup: None,
            figures: format!("{t} memory {}", psi_line(&text, t.kind)),
            usage_limit: None,
        };
        self.fire(None, note);
    }

    fn psi_fired(&mut self, dir: &Path, revents: PollFlags) {
        let Some(t) = self.config.psi else {
            return;
        };
        if revents.intersects(PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL) {
            // The cgroup was removed (or the trigger broke): an fd that would fire forever.
            if let Some((_, c)) = self.psi.remove(dir) {
                log::debug!("pre-OOM: PSI trigger on {} gone", c.rel);
            }
            return;
        }
        let Some((_, c)) = self.psi.get(dir) else {
            return;
        };
        let c = c.clone();
        let text = std::fs::read_to_string(c.dir.join("memory.pressure")).unwrap_or_default();
        let ul = c.usage_limit();
        let limit = ul
            .map(|(u, l)| format!(" usage={} limit={}", mib(u), mib(l)))
            .unwrap_or_default();
        let note = PressureNote {
            trigger: Trigger::Psi,
            cgroup: Some(c.rel.clone()),
            figures: format!("{t} {}{limit}", psi_line(&text, t.kind)),
            usage_limit: ul,
        };
        self.fire(Some(&c), note);
    }

    fn high_fired(&mut self, dir: &Path) {
        let Some((f, c, last)) = self.high.get_mut(dir) else {
            return;
        };
        // Reading again re-arms kernfs's notification.
        let mut text = String::new();
        let read = f
            .seek(SeekFrom::Start(0))
            .and_then(|_| f.read_to_string(&mut text));
        if let Err(e) = read {
            log::debug!("pre-OOM: {}/memory.events: {e}; no longer watched", c.rel);
            self.high.remove(dir);
            return;
        }
        let Some(n) = high_count(&text) else {
            return;
        };
        if n <= *last {
            *last = n;
            return;
        }
        let (rose, c) = (n - *last, c.clone());
        *last = n;
        let current = read_u64(&c.dir.join("memory.current"));
        let high = c.high();
        let ul = c.usage_limit();
        let note = PressureNote {
            trigger: Trigger::MemoryHigh,
            cgroup: Some(c.rel.clone()),
            figures: format!(
                "high events {n} (+{rose}) memory.current={} memory.high={}{}",
                current.map_or("-".into(), mib),
                high.map_or("-".into(), mib),
                ul.map(|(_, l)| format!(" memory.max={}", mib(l)))
                    .unwrap_or_default()
            ),
            usage_limit: ul,
        };
        self.fire(Some(&c), note);
    }

    fn check_usage(&mut self, pct: u8) {
        let mut fired = Vec::new();
        for c in &self.limited {
            if let Some((usage, limit)) = c.usage_limit() {
                if over(usage, limit, pct) {
                    fired.push((c.clone(), usage, limit));
                }
            }
        }
        for (c, usage, limit) in fired {
            let note = PressureNote {
                trigger: Trigger::Usage,
                cgroup: Some(c.rel.clone()),
                figures: format!(
                    "usage={usage} limit={limit} ({:.1}% >= {pct}%)",
                    usage as f64 * 100.0 / limit as f64
                ),
                usage_limit: Some((usage, limit)),
            };
            self.fire(Some(&c), note);
        }
    }

    /// Queues profiles of the scope's members (all of them for `None`) not profiled
    /// within the debounce window, largest resident set first.
    fn fire(&mut self, scope: Option<&Cg>, note: PressureNote) {
        let now = Instant::now();
        let mut pids: Vec<(u64, u32)> = self
            .members
            .iter()
            .filter(|(pid, _)| !self.profiled.contains_key(pid) && !self.disabled.contains(pid))
            .filter(|(_, m)| match (scope, &m.cg) {
                (None, _) => true,
                (Some(s), Some(c)) => c.v2 == s.v2 && c.dir.starts_with(&s.dir),
                (Some(_), None) => false,
            })
            .map(|(pid, _)| (rss_pages(&self.proc_root, *pid), *pid))
            .collect();
        if pids.is_empty() {
            return;
        }
        pids.sort_unstable_by(|a, b| b.cmp(a));
        pids.truncate(self.config.max_processes);
        log::info!(
            "pre-OOM: {} fired for {}: {}; profiling pid {}",
            note.trigger.as_str(),
            note.cgroup.as_deref().unwrap_or("the system"),
            note.figures,
            pids.iter()
                .map(|(_, p)| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let Some(jobs) = &self.jobs else {
            return;
        };
        for (_, pid) in pids {
            let job = Job {
                pid: pid as i32,
                note: note.clone(),
                attribution: self.members.get(&pid).and_then(|m| m.attribution.clone()),
            };
            match jobs.try_send(job) {
                Ok(()) => {
                    self.profiled.insert(pid, now);
                }
                Err(TrySendError::Full(_)) => {
                    log::warn!("pre-OOM: pid {pid} not profiled: {QUEUE} profiles already waiting")
                }
                Err(TrySendError::Disconnected(_)) => {
                    log::error!("pre-OOM: the profile thread is gone");
                    return;
                }
            }
        }
    }
}

/// Resident pages of `pid` (`/proc/PID/statm`'s second field), 0 if unknown.
fn rss_pages(proc_root: &Path, pid: u32) -> u64 {
    std::fs::read_to_string(proc_root.join(pid.to_string()).join("statm"))
        .ok()
        .and_then(|t| t.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

impl Drop for Pressure {
    fn drop(&mut self) {
        // The worker ends after the profile it is taking.
        self.stop.store(true, Ordering::Relaxed);
        self.jobs = None;
        if let Some(w) = self.worker.take() {
            while self.results.try_recv().is_ok() {}
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn psi_triggers_parse() {
        let t: PsiTrigger = "some:150ms/2s".parse().unwrap();
        assert_eq!(
            t,
            PsiTrigger {
                kind: PsiKind::Some,
                stall: ms(150),
                window: ms(2000)
            }
        );
        assert_eq!(t.kernel_text(), "some 150000 2000000\0");
        assert_eq!(t.to_string(), "some:150ms/2s");
        let t: PsiTrigger = "full:1s/10s".parse().unwrap();
        assert_eq!(
            (t.kind, t.stall, t.window),
            (PsiKind::Full, ms(1000), ms(10000))
        );
        assert_eq!(t.kernel_text(), "full 1000000 10000000\0");
        let t: PsiTrigger = "500us/4s".parse().unwrap();
        assert_eq!(
            (t.kind, t.stall),
            (PsiKind::Some, Duration::from_micros(500))
        );
        // The stall may fill the window.
        assert!("some:2s/2s".parse::<PsiTrigger>().is_ok());
    }

    #[test]
    fn psi_trigger_errors_say_what_is_wrong() {
        use TriggerError::*;
        let e = |s: &str| s.parse::<PsiTrigger>().unwrap_err();
        assert_eq!(e("some:150ms"), Syntax);
        assert_eq!(e(""), Syntax);
        assert_eq!(e("most:150ms/2s"), Kind("most".into()));
        assert_eq!(e("some:fast/2s"), Duration("fast".into()));
        assert_eq!(e("some:150ms/2"), Duration("2".into()));
        assert_eq!(e("some:1.5s/2s"), Duration("1.5s".into()));
        assert_eq!(e("some:150ms/2m"), Duration("2m".into()));
        assert_eq!(e("some:-1ms/2s"), Duration("-1ms".into()));
        assert_eq!(
            e("some:99999999999999999999s/2s"),
            Duration("99999999999999999999s".into())
        );
        assert_eq!(e("some:0ms/2s"), Stall);
        assert_eq!(e("some:3s/2s"), Stall);
        // The kernel's rule for a process without CAP_SYS_RESOURCE: 2 s steps to 10 s.
        for w in ["1s", "500ms", "3s", "2500ms", "12s", "0s"] {
            assert_eq!(e(&format!("some:100ms/{w}")), Window, "{w}");
        }
        assert!(Window.to_string().contains("2s, 4s"), "{Window}");
        assert!(Syntax.to_string().contains("some:150ms/2s"));
    }

    #[test]
    fn usage_over_a_share_of_the_limit() {
        assert!(over(90, 100, 90));
        assert!(!over(89, 100, 90));
        assert!(over(u64::MAX, u64::MAX, 99));
        assert!(!over(1, 0, 50), "no limit, never over");
    }

    #[test]
    fn mountinfo_names_both_hierarchies() {
        let text = "\
35 25 0:30 / /sys/fs/cgroup/memory rw,nosuid shared:15 - cgroup cgroup rw,memory\n\
36 25 0:31 / /sys/fs/cgroup/pids rw shared:16 - cgroup cgroup rw,pids\n\
37 25 0:32 / /sys/fs/cgroup/unified rw shared:17 - cgroup2 cgroup2 rw,nsdelegate\n\
38 25 0:33 / /mnt/with\\040space rw - tmpfs x rw\n";
        let m = Mounts::parse(text);
        assert_eq!(
            m.v1,
            Some((PathBuf::from("/sys/fs/cgroup/memory"), "/".into()))
        );
        assert_eq!(
            m.v2,
            Some((PathBuf::from("/sys/fs/cgroup/unified"), "/".into()))
        );
        let c = m.resolve("4:memory:/a/b").unwrap();
        assert_eq!(c.dir, PathBuf::from("/sys/fs/cgroup/memory/a/b"));
        assert_eq!((c.rel.as_str(), c.v2), ("/a/b", false));
        let c = m.resolve("0::/x").unwrap();
        assert_eq!(c.dir, PathBuf::from("/sys/fs/cgroup/unified/x"));
        assert!(c.v2);
        assert_eq!(m.resolve("garbage"), None);
        // No v1 memory hierarchy: nothing to resolve a v1 line in.
        assert_eq!(Mounts::parse("").resolve("4:memory:/a"), None);
        assert_eq!(unescape("/mnt/with\\040space"), "/mnt/with space");
        assert_eq!(unescape("a\\9"), "a\\9");
    }

    #[test]
    fn a_container_mount_of_a_subtree_strips_its_root() {
        let text = "40 30 0:40 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let m = Mounts::parse(text);
        let c = m.resolve("0::/kubepods/pod1/ctr").unwrap();
        assert_eq!(c.dir, PathBuf::from("/sys/fs/cgroup/ctr"));
        assert_eq!(c.rel, "/kubepods/pod1/ctr");
        // A path outside the mounted subtree is taken as relative to it.
        let c = m.resolve("0::/other").unwrap();
        assert_eq!(c.dir, PathBuf::from("/sys/fs/cgroup/other"));
    }

    #[test]
    fn lineage_walks_up_to_below_the_root() {
        let m = Mounts {
            v1: Some((PathBuf::from("/cg/memory"), "/".into())),
            v2: None,
        };
        let c = m.resolve("4:memory:/a/b/c").unwrap();
        let l: Vec<(String, PathBuf)> = c.lineage().into_iter().map(|c| (c.rel, c.dir)).collect();
        assert_eq!(
            l,
            [
                ("/a/b/c".to_string(), PathBuf::from("/cg/memory/a/b/c")),
                ("/a/b".to_string(), PathBuf::from("/cg/memory/a/b")),
                ("/a".to_string(), PathBuf::from("/cg/memory/a")),
            ]
        );
        assert!(m.resolve("4:memory:/").unwrap().lineage().is_empty());
    }

    #[test]
    fn events_and_pressure_lines_parse() {
        let ev = "low 0\nhigh 17\nmax 3\noom 0\noom_kill 0\n";
        assert_eq!(high_count(ev), Some(17));
        assert_eq!(high_count("low 0\n"), None);
        assert_eq!(high_count("high x\n"), None);
        let p = "some avg10=1.50 avg60=0.20 avg300=0.00 total=1234\nfull avg10=0.10 avg60=0.00 avg300=0.00 total=99\n";
        assert_eq!(
            psi_line(p, PsiKind::Full),
            "full avg10=0.10 avg60=0.00 avg300=0.00 total=99"
        );
        assert_eq!(psi_line("", PsiKind::Some), "unreadable");
    }

    #[test]
    fn limits_of_no_limit_are_none() {
        let d = std::env::temp_dir().join(format!("oomprof-pressure-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("limit");
        for (text, want) in [
            ("max\n", None),
            ("9223372036854771712\n", None),
            ("134217728\n", Some(134217728)),
            ("junk", None),
        ] {
            std::fs::write(&f, text).unwrap();
            assert_eq!(read_limit(&f), want, "{text:?}");
        }
        assert_eq!(read_limit(&d.join("missing")), None);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn notes_make_one_comment() {
        let n = PressureNote {
            trigger: Trigger::Usage,
            cgroup: Some("/a".into()),
            figures: "usage=9 limit=10 (90.0% >= 90%)".into(),
            usage_limit: Some((9, 10)),
        };
        assert_eq!(
            n.comment(),
            "pressure: trigger=usage cgroup=/a usage=9 limit=10 (90.0% >= 90%)"
        );
        let n = PressureNote {
            trigger: Trigger::SystemPsi,
            cgroup: None,
            ..n
        };
        assert!(n
            .comment()
            .starts_with("pressure: trigger=system-psi cgroup=- "));
        assert!(!PressureConfig::default().is_enabled());
    }
}
