//! [`Kernel`]: the loaded and attached oomprof BPF object, the lower-level handle the
//! process discovery and the `Monitor` build on.
//!
//! Lifecycle: [`Kernel::load`] probes features, loads the embedded object with
//! aya-obj (BTF fixup, maps, relocations, programs), picks the program variant that
//! matches each tracepoint's record layout on this kernel and the walk program the
//! kernel supports ([`WalkKind`]), installs the walk in the `walkers` program array
//! (the tracepoint programs enter it by tail call), and attaches. Then
//! [`Kernel::watch`] registers Go processes and [`Kernel::poll`] yields [`Event`]s.
//! Dropping the `Kernel` detaches and frees everything.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aya_obj::btf::BtfFeatures;
use aya_obj::maps::Map;
use aya_obj::Object;
use object::{Object as _, ObjectSection as _, SectionIndex};
use oom_core::abi::{self, Counters, Exit, Record, Victim};

use crate::attach::{self, Attachment, Tracepoint};
use crate::capture::{Assembler, Capture};
use crate::error::{Error, Result};
use crate::maps;
use crate::probe::{self, Features};
use crate::progs;
use crate::ringbuf::RingBuf;
use crate::sys::{self, consts, MapFd, ProgBtf, ProgSpec};

/// Default ring size: 8 MiB, the largest power of two that keeps all our maps under
/// the 16 MiB kernel-memory budget (8.6 MiB in total at the defaults). Measured on
/// `manysites` (44-frame stacks, 200k buckets): 54 bytes per bucket with u32 PCs
/// and shared outer frames, so 154,000 buckets fit; `deep`, whose buckets hold
/// 300-frame stacks, averages ~96 bytes per bucket (tests/tests/kernel_walk.rs).
pub const DEFAULT_RING_SIZE: usize = 8 << 20;
/// Default number of processes that can be watched at once.
pub const DEFAULT_MAX_WATCHED: u32 = 4096;
/// Default walk time budget. It bounds the pathological case (a million buckets,
/// corrupt lists) and must never cut a typical service (up to 50k buckets); the
/// figures it is set from are in docs/benchmarks.md ("walk").
pub const DEFAULT_WALK_BUDGET: Duration = Duration::from_nanos(abi::DEFAULT_WALK_BUDGET_NS);
/// Default time a finished capture waits for its mark_victim.
pub const DEFAULT_CLASSIFY_WINDOW: Duration = Duration::from_millis(250);

/// Load-time configuration.
#[derive(Clone, Debug)]
pub struct KernelConfig {
    /// Ring-buffer data size in bytes: a power of two, at least one page.
    pub ring_size: usize,
    /// Buckets read per capture, at most [`abi::MAX_BUCKETS_CEILING`] (the end
    /// record says `WALK_LIMIT`). The walk also stops when its steps run out
    /// (`STEP_CAP`; see [`WalkKind::max_buckets`]).
    pub max_buckets: u32,
    /// Processes watched at once.
    pub max_watched: u32,
    /// Longest time one walk may run (it holds the victim's siglock with interrupts
    /// off); `None`: no limit. A walk that reaches it stops and the profile says so.
    pub walk_budget: Option<Duration>,
    /// Yield captures of processes killed by something other than the OOM killer.
    pub keep_killed: bool,
    /// How long a finished capture waits for the OOM killer's mark_victim.
    pub classify_window: Duration,
    /// Attach the program variants for older tracepoint layouts (mark_victim with
    /// `pid` only, sched_process_exit without `group_dead`) even where the newer
    /// fields exist. For testing those variants on a new kernel.
    pub compat_programs: bool,
    /// Attach with `PERF_EVENT_IOC_SET_BPF` (the pre-5.15 method) even where BPF
    /// perf links exist. For testing that path on a new kernel.
    pub ioctl_attach: bool,
    /// Walk in the SIGKILL delivery (interrupts off) even where the kernel runs
    /// `sched_process_exit` before `exit_mm`, where the walk otherwise runs with
    /// interrupts on. For testing and measuring that placement on a new kernel.
    pub walk_in_delivery: bool,
    /// Walk with the fallback for kernels without `bpf_loop` (bounded loops and tail
    /// calls, [`WalkKind::Fallback`]) even where `bpf_loop` exists. For testing that
    /// walk on a new kernel.
    pub fallback_walk: bool,
}

impl Default for KernelConfig {
    fn default() -> Self {
        Self {
            ring_size: DEFAULT_RING_SIZE,
            max_buckets: abi::DEFAULT_MAX_BUCKETS,
            max_watched: DEFAULT_MAX_WATCHED,
            walk_budget: Some(DEFAULT_WALK_BUDGET),
            keep_killed: false,
            classify_window: DEFAULT_CLASSIFY_WINDOW,
            compat_programs: false,
            ioctl_attach: false,
            walk_in_delivery: false,
            fallback_walk: false,
        }
    }
}

/// Go memRecordCycle layout of a watched process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CycleLayout {
    /// `{allocs, frees, alloc_bytes, free_bytes}`: Go 1.19–1.26 (32 bytes).
    Words4,
    /// `{allocs, frees}`: Go 1.27+ (16 bytes).
    Words2,
}

/// What the kernel program needs to capture one process. Addresses are runtime
/// addresses in the target (link address + load bias).
#[derive(Clone, Copy, Debug)]
pub struct WatchInfo {
    /// `runtime.mbuckets`.
    pub mbuckets: u64,
    /// `runtime.MemProfileRate`, or 0 if unknown.
    pub mem_profile_rate: u64,
    /// `runtime.mProfCycle`, or 0 if unknown.
    pub mprof_cycle: u64,
    /// Base for compact `u32` PCs (e.g. the start of the text segment), or 0 to
    /// always send `u64` PCs.
    pub pc_base: u64,
    /// memRecordCycle layout (by Go version).
    pub cycle_layout: CycleLayout,
    /// Longest stack to copy, at most [`abi::MAX_NSTK`]; 32 is Go ≤ 1.22's limit.
    pub max_nstk: u32,
}

/// An exec seen by the kernel program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecEvent {
    /// Thread-group id after exec.
    pub pid: u32,
    /// Thread that called exec.
    pub old_pid: u32,
    /// New comm.
    pub comm: String,
    /// Path given to exec (possibly relative or truncated).
    pub filename: PathBuf,
    /// CLOCK_MONOTONIC ns.
    pub ts_ns: u64,
}

/// What [`Kernel::poll`] yields.
#[derive(Clone, Debug)]
pub enum Event {
    /// The OOM killer picked a victim (any process, watched or not).
    Victim(Victim),
    /// A process called exec; any watch of it was dropped by the kernel program.
    Exec(ExecEvent),
    /// A watched process exited; its watch was dropped by the kernel program.
    Exit(Exit),
    /// A capture finished and was classified.
    Capture(Capture),
}

/// Where [`Kernel::load`] spent its time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadTimings {
    /// Feature probes.
    pub probe: Duration,
    /// Parsing the object, BTF fixup and BPF_BTF_LOAD.
    pub object_and_btf: Duration,
    /// Map creation and relocations.
    pub maps_and_relocation: Duration,
    /// Reading tracepoint ids and formats (mounting tracefs privately if needed).
    pub tracefs: Duration,
    /// Verifying the walk program (the fallback one takes longest).
    pub walk_program: Duration,
    /// Verifying and attaching the programs.
    pub programs_and_attach: Duration,
    /// All of it.
    pub total: Duration,
}

/// Kernel object ids of a loaded [`Kernel`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BpfIds {
    /// Program ids.
    pub programs: Vec<u32>,
    /// Map ids.
    pub maps: Vec<u32>,
}

/// Which walk the kernel program runs: chosen by the `bpf_loop` probe, not by the
/// kernel version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkKind {
    /// `bpf_loop` (5.17+): up to [`abi::MAX_LOOPS`] steps.
    Loop,
    /// Kernels without `bpf_loop`: [`abi::FALLBACK_STEPS`] steps of straight-line
    /// calls in one program that tail-calls itself, [`abi::FALLBACK_RUNS`] runs:
    /// [`abi::FALLBACK_MAX_STEPS`] steps. Needs the BPF JIT on x86-64 (tail calls
    /// from a program with BPF-to-BPF calls, 5.10+).
    Fallback,
}

impl WalkKind {
    /// The walk's steps in all; a list left when they run out is `STEP_CAP`.
    pub fn max_steps(self) -> u32 {
        match self {
            WalkKind::Loop => abi::MAX_LOOPS,
            WalkKind::Fallback => abi::FALLBACK_MAX_STEPS,
        }
    }

    /// How many buckets of `nstk` frames (sent as `u32` offsets, as for any Go
    /// binary) the walk's steps cover.
    pub fn max_buckets(self, nstk: u32) -> u32 {
        self.max_steps() / abi::steps_per_bucket(nstk, true)
    }

    /// The walk program's name in the object.
    pub fn program(self) -> &'static str {
        match self {
            WalkKind::Loop => oom_bpf::programs::WALK_LOOP,
            WalkKind::Fallback => oom_bpf::programs::WALK_BOUNDED,
        }
    }
}

impl std::fmt::Display for WalkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalkKind::Loop => write!(f, "bpf_loop walk, {} steps", self.max_steps()),
            WalkKind::Fallback => write!(
                f,
                "fallback walk without bpf_loop, {} steps ({} runs of {})",
                self.max_steps(),
                abi::FALLBACK_RUNS,
                abi::FALLBACK_STEPS
            ),
        }
    }
}

/// Which program variant each tracepoint gets, chosen from its record layout.
#[derive(Debug)]
struct Choice {
    program: &'static str,
    /// `category/name` for a classic tracepoint, `name` for a raw one.
    tracepoint: &'static str,
    raw: bool,
    /// Program to use instead if the attach fails (an older raw tracepoint with
    /// fewer arguments than `program` reads).
    fallback: Option<&'static str>,
}

/// The `oom/mark_victim` record fields (name, offset, size) the full program reads:
/// the layout since about Linux 6.9 (before it, only `pid`).
const MARK_VICTIM_FULL: [(&str, u32, u32); 9] = [
    ("pid", 8, 4),
    ("comm", 12, 4),
    ("total_vm", 16, 8),
    ("anon_rss", 24, 8),
    ("file_rss", 32, 8),
    ("shmem_rss", 40, 8),
    ("uid", 48, 4),
    ("pgtables", 56, 8),
    ("oom_score_adj", 64, 2),
];

/// True when this kernel runs `sched_process_exit` before `exit_mm`, so that the
/// exiting thread's memory can still be read there (with interrupts on). That move
/// came with the tracepoint's `group_dead` field (~6.16; on 6.18 the exiting task's
/// mm is still set at the tracepoint, measured with bpftrace); before it the
/// tracepoint fired after `exit_mm`.
fn exit_before_exit_mm(tps: &HashMap<String, Tracepoint>) -> bool {
    tps.get("sched/sched_process_exit")
        .is_some_and(|t| t.fields.iter().any(|f| f.name == "group_dead"))
}

fn choose(tps: &HashMap<String, Tracepoint>, compat: bool) -> Result<Vec<Choice>> {
    use oom_bpf::programs as p;
    let get = |name: &str| {
        tps.get(name).ok_or_else(|| Error::Tracepoint {
            tracepoint: name.into(),
            reason: "not found".into(),
        })
    };
    let bad = |name: &str, what: &str| Error::Tracepoint {
        tracepoint: name.into(),
        reason: format!("record layout differs from what the program reads: {what}"),
    };
    let mut out = vec![Choice {
        program: p::SIGNAL_DELIVER,
        tracepoint: "signal_deliver",
        raw: true,
        fallback: None,
    }];

    out.push(Choice {
        program: p::SIGNAL_GENERATE,
        tracepoint: "signal_generate",
        raw: true,
        fallback: None,
    });

    let mv = get("oom/mark_victim")?;
    let program = if !compat && MARK_VICTIM_FULL.iter().all(|&(n, o, s)| mv.has(n, o, s)) {
        p::MARK_VICTIM
    } else if mv.has("pid", 8, 4) {
        p::MARK_VICTIM_V1
    } else {
        return Err(bad("oom/mark_victim", "pid@8"));
    };
    out.push(Choice {
        program,
        tracepoint: "oom/mark_victim",
        raw: false,
        fallback: None,
    });

    let ex = get("sched/sched_process_exec")?;
    if !(ex.has("filename", 8, 4) && ex.has("pid", 12, 4) && ex.has("old_pid", 16, 4)) {
        return Err(bad(
            "sched/sched_process_exec",
            "filename@8, pid@12, old_pid@16",
        ));
    }
    out.push(Choice {
        program: p::SCHED_PROCESS_EXEC,
        tracepoint: "sched/sched_process_exec",
        raw: false,
        fallback: None,
    });

    out.push(if compat {
        Choice {
            program: p::SCHED_PROCESS_EXIT_V1,
            tracepoint: "sched_process_exit",
            raw: true,
            fallback: None,
        }
    } else {
        Choice {
            program: p::SCHED_PROCESS_EXIT,
            tracepoint: "sched_process_exit",
            raw: true,
            fallback: Some(p::SCHED_PROCESS_EXIT_V1),
        }
    });
    Ok(out)
}

/// The loaded, attached kernel program. Dropping it detaches every program and
/// frees every map.
#[derive(Debug)]
pub struct Kernel {
    // Field order is drop order: detach first, then free maps.
    attachments: Vec<Attachment>,
    ring: RingBuf,
    watched: MapFd,
    bss: Option<MapFd>,
    #[expect(dead_code, reason = "held for Drop")]
    other_maps: Vec<MapFd>,
    #[expect(dead_code, reason = "kept open for the programs' BTF")]
    btf: Option<OwnedFd>,
    features: Features,
    memlock: u64,
    programs: Vec<(&'static str, &'static str)>,
    ids: BpfIds,
    timings: LoadTimings,
    assembler: AssemblerBox,
    /// Kernel records lost so far (event and end records refused by a full ring), as
    /// last read from the counters; and ring records that did not parse.
    lost: Lost,
    /// When the lost counters were last read: after every drain that read records,
    /// else at most once per [`LOST_CHECK_EVERY`] (an idle daemon polls often).
    lost_checked: Instant,
    walks_at_exit: bool,
    walk: WalkKind,
    /// The walk program (also held by the `walkers` array).
    #[expect(dead_code, reason = "held for the bpf_ids and Drop")]
    walker: sys::ProgFd,
}

/// How often an idle Kernel reads the kernel's lost counters.
const LOST_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Records lost on the way from the kernel program, counted since load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lost {
    /// exec / exit / mark_victim records the full ring refused.
    pub events: u64,
    /// Capture end records the full ring refused (each a whole capture).
    pub ends: u64,
    /// Ring records that did not parse (skipped).
    pub malformed: u64,
}

/// Wrapper so `Kernel` can derive Debug.
struct AssemblerBox(Assembler);
impl std::fmt::Debug for AssemblerBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Assembler")
    }
}

/// Points `obj`'s map references at the maps created for `defs` (same order) and
/// resolves its BPF-to-BPF calls: the step between creating an object's maps and
/// loading its programs, shared by the OOM program and the growth sampler.
///
/// Returns an error if a relocation does not apply.
pub(crate) fn relocate(
    obj: &mut Object,
    defs: &[(String, Map)],
    created: &[(String, MapFd)],
) -> Result<()> {
    let text: HashSet<usize> = obj.functions.keys().map(|(s, _)| *s).collect();
    obj.relocate_maps(
        defs.iter()
            .zip(created)
            .map(|((n, m), (_, fd))| (n.as_str(), fd.as_raw_fd(), m)),
        &text,
    )
    .map_err(|e| object_err("map relocation", e))?;
    obj.relocate_calls(&text)
        .map_err(|e| object_err("call relocation", e))
}

fn object_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Object(format!("{what}: {e}"))
}

impl Kernel {
    /// Probes, loads and attaches the embedded object.
    ///
    /// Returns an error if a feature is missing ([`Error::MissingFeature`]), the
    /// configuration is out of range, a program fails verification (with the log),
    /// or a tracepoint cannot be attached.
    pub fn load(config: &KernelConfig) -> Result<Kernel> {
        let page = sys::ring::page_size();
        if !config.ring_size.is_power_of_two()
            || config.ring_size < page
            || config.ring_size > 1 << 30
        {
            return Err(Error::Config(format!(
                "ring_size {} must be a power of two between {page} and 1 GiB",
                config.ring_size
            )));
        }
        if config.max_buckets == 0 || config.max_buckets > abi::MAX_BUCKETS_CEILING {
            return Err(Error::Config(format!(
                "max_buckets {} must be 1..={}",
                config.max_buckets,
                abi::MAX_BUCKETS_CEILING
            )));
        }
        if config.max_watched == 0 {
            return Err(Error::Config("max_watched must be at least 1".into()));
        }
        let t0 = Instant::now();
        let features = probe::probe()?;
        let t_probe = t0.elapsed();

        // Tracepoints and the variant each gets: the record layouts decide the
        // programs, and sched_process_exit's where the walk runs.
        let tps = attach::index(attach::read_tracepoints(&[
            "oom/mark_victim",
            "sched/sched_process_exec",
            "sched/sched_process_exit",
        ])?);
        let choices = choose(&tps, config.compat_programs)?;
        let at_exit =
            !config.walk_in_delivery && !config.compat_programs && exit_before_exit_mm(&tps);
        let t_tracefs = t0.elapsed();

        let bytes = oom_bpf::object();
        let mut obj = Object::parse(bytes).map_err(|e| object_err("parse", e))?;
        let budget_ns = match config.walk_budget {
            None => 0,
            Some(d) if d.is_zero() || d > Duration::from_secs(10) => {
                return Err(Error::Config(format!(
                    "walk budget {d:?} must be more than 0 and at most 10 s"
                )))
            }
            Some(d) => d.as_nanos() as u64,
        };
        let flags = if at_exit {
            abi::config_flags::WALK_AT_EXIT
        } else {
            0
        };
        let cfg = abi::encode_config(config.max_buckets, budget_ns, flags);
        obj.patch_map_data(HashMap::from([(
            oom_bpf::maps::CONFIG_VAR,
            (&cfg[..], true),
        )]))
        .map_err(|e| object_err("patching oom_cfg", e))?;

        // BTF: fix up clang's output (DATASEC sizes) and load it. Without it the
        // programs still load, only without func/line info.
        let btf_features = BtfFeatures::new(true, true, true, false, false, false, false, false);
        let btf = match obj.fixup_and_sanitize_btf(&btf_features) {
            Ok(Some(btf)) => {
                let raw = btf.to_bytes();
                match sys::btf_load(&raw, None) {
                    Ok(fd) => Some(fd),
                    Err(e) => {
                        log::warn!("BPF_BTF_LOAD failed ({e}); loading without BTF");
                        None
                    }
                }
            }
            Ok(None) => None,
            Err(e) => return Err(object_err("BTF fixup", e)),
        };

        let t_btf = t0.elapsed();
        // Maps, with configured sizes.
        let mut defs: Vec<(String, Map)> = obj.maps.drain().collect();
        defs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut created: Vec<(String, MapFd)> = Vec::new();
        for (name, def) in &mut defs {
            match name.as_str() {
                oom_bpf::maps::EVENTS => def.set_max_entries(config.ring_size as u32),
                oom_bpf::maps::WATCHED | oom_bpf::maps::CLAIMS => {
                    def.set_max_entries(config.max_watched)
                }
                _ => {}
            }
            let fd = maps::create(name, def, btf.as_ref())?;
            created.push((name.clone(), fd));
        }
        relocate(&mut obj, &defs, &created)?;

        let t_maps = t0.elapsed();
        let elf = object::File::parse(bytes).map_err(|e| object_err("ELF", e))?;
        let mut prog_ids = Vec::new();
        // The walk first: the tracepoint programs enter it as soon as they attach.
        // Only the chosen one is loaded: a program calling bpf_loop does not load
        // where the helper is missing.
        let walk = if config.fallback_walk || !features.bpf_loop {
            WalkKind::Fallback
        } else {
            WalkKind::Loop
        };
        let walker = load_walker(&obj, &elf, btf.as_ref(), walk)?;
        let walkers = created
            .iter()
            .find(|(n, _)| n == oom_bpf::maps::WALKERS)
            .map(|(_, fd)| fd)
            .ok_or_else(|| Error::Object("no walkers map".into()))?;
        sys::map_update(
            walkers,
            &0u32.to_ne_bytes(),
            &(walker.as_raw_fd() as u32).to_ne_bytes(),
            0,
        )
        .map_err(|e| Error::sys("BPF_MAP_UPDATE_ELEM walkers[0]", e))?;
        prog_ids.push(maps::fdinfo_field(&walker, "prog_id")? as u32);
        let t_walk = t0.elapsed();
        let mut attachments = Vec::new();
        let mut programs = Vec::new();
        for choice in &choices {
            let mut program = choice.program;
            let attachment = loop {
                let prog_fd = load_program(&obj, &elf, btf.as_ref(), program, choice.kind())?;
                let attached = if choice.raw {
                    attach::attach_raw_tracepoint(&prog_fd, choice.tracepoint)
                } else {
                    attach::attach_tracepoint(
                        &prog_fd,
                        &tps[choice.tracepoint],
                        features.perf_link && !config.ioctl_attach,
                    )
                };
                match (attached, choice.fallback) {
                    (Ok(a), _) => {
                        prog_ids.push(maps::fdinfo_field(&prog_fd, "prog_id")? as u32);
                        break a;
                    }
                    (Err(e), Some(fb)) if program != fb => {
                        log::debug!("{program} does not attach ({e}); using {fb}");
                        program = fb;
                    }
                    (Err(e), _) => return Err(e),
                }
                // The attachment keeps the program alive; its fd can close now.
            };
            attachments.push(attachment);
            programs.push((program, choice.tracepoint));
        }

        let t_progs = t0.elapsed();
        let mut memlock = 0;
        let mut ring = None;
        let mut watched = None;
        let mut bss = None;
        let mut other_maps = Vec::new();
        let mut map_ids = Vec::new();
        for (name, fd) in created {
            let mut bytes = maps::memlock_bytes(&fd)?;
            if name == oom_bpf::maps::EVENTS {
                // Before 6.4 fdinfo counts a ring buffer as its (empty) key and value
                // (0.4 MiB in all on Debian's 6.1): it holds its data pages and two
                // header pages.
                bytes = bytes.max((config.ring_size + 2 * page) as u64);
            }
            memlock += bytes;
            map_ids.push(maps::fdinfo_field(&fd, "map_id")? as u32);
            match name.as_str() {
                oom_bpf::maps::EVENTS => ring = Some(fd),
                oom_bpf::maps::WATCHED => watched = Some(fd),
                ".bss" => bss = Some(fd),
                _ => other_maps.push(fd),
            }
        }
        let ring = ring.ok_or_else(|| Error::Object("no events map".into()))?;
        let watched = watched.ok_or_else(|| Error::Object("no watched map".into()))?;
        let ring = RingBuf::new(ring, config.ring_size)
            .map_err(|e| Error::sys("mmap of the ring buffer", e))?;
        let timings = LoadTimings {
            probe: t_probe,
            tracefs: t_tracefs - t_probe,
            object_and_btf: t_btf - t_tracefs,
            maps_and_relocation: t_maps - t_btf,
            walk_program: t_walk - t_maps,
            programs_and_attach: t_progs - t_walk,
            total: t0.elapsed(),
        };
        log::debug!("loaded: {timings:?}");
        Ok(Kernel {
            timings,
            attachments,
            ring,
            watched,
            bss,
            other_maps,
            btf,
            features,
            memlock,
            programs,
            ids: BpfIds {
                programs: prog_ids,
                maps: map_ids,
            },
            assembler: AssemblerBox(Assembler::new(config.classify_window, config.keep_killed)),
            lost: Lost::default(),
            lost_checked: Instant::now(),
            walks_at_exit: at_exit,
            walk,
            walker,
        })
    }

    /// Starts (or refreshes) capturing `pid` at its SIGKILL.
    ///
    /// Returns an error if `info` is out of range or the watch map is full.
    pub fn watch(&self, pid: u32, info: &WatchInfo) -> Result<()> {
        if info.mbuckets == 0 {
            return Err(Error::Config("WatchInfo.mbuckets is 0".into()));
        }
        if info.max_nstk == 0 || info.max_nstk > abi::MAX_NSTK {
            return Err(Error::Config(format!(
                "WatchInfo.max_nstk {} must be 1..={}",
                info.max_nstk,
                abi::MAX_NSTK
            )));
        }
        let mut v = [0u8; 64];
        abi::encode_watch(
            &mut v,
            info.mbuckets,
            info.mem_profile_rate,
            info.mprof_cycle,
            info.pc_base,
            match info.cycle_layout {
                CycleLayout::Words4 => 32,
                CycleLayout::Words2 => 16,
            },
            info.max_nstk,
            if info.pc_base != 0 {
                abi::watch_flags::PC32
            } else {
                0
            },
        );
        sys::map_update(&self.watched, &pid.to_ne_bytes(), &v, 0)
            .map_err(|e| Error::sys(format!("BPF_MAP_UPDATE_ELEM watched[{pid}]"), e))
    }

    /// Stops watching `pid`. Returns false if it was not watched.
    ///
    /// Returns an error if the map delete fails for another reason than ENOENT.
    pub fn unwatch(&self, pid: u32) -> Result<bool> {
        match sys::map_delete(&self.watched, &pid.to_ne_bytes()) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(Error::sys(format!("BPF_MAP_DELETE_ELEM watched[{pid}]"), e)),
        }
    }

    /// True if `pid` is in the watch map.
    ///
    /// Returns an error if the lookup fails for another reason than ENOENT.
    pub fn is_watched(&self, pid: u32) -> Result<bool> {
        let mut v = [0u8; 64];
        match sys::map_lookup(&self.watched, &pid.to_ne_bytes(), &mut v) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(Error::sys(format!("BPF_MAP_LOOKUP_ELEM watched[{pid}]"), e)),
        }
    }

    /// Waits up to `timeout` (`None`: forever) for events and returns those ready;
    /// empty on timeout. Drains the ring completely before sleeping.
    ///
    /// Returns an error if epoll fails (a malformed record is skipped with a warning).
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<Vec<Event>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut out = Vec::new();
        loop {
            let before = out.len();
            self.drain(&mut out)?;
            if out.len() > before || self.lost_checked.elapsed() >= LOST_CHECK_EVERY {
                self.check_lost();
            }
            let now = Instant::now();
            let mut caps = Vec::new();
            self.assembler.0.expire(now, &mut caps);
            out.extend(caps.into_iter().map(Event::Capture));
            if !out.is_empty() {
                return Ok(out);
            }
            let wake = match (deadline, self.assembler.0.next_deadline()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if let Some(d) = deadline {
                if now >= d {
                    return Ok(out);
                }
            }
            self.ring
                .wait(wake.map(|w| w.saturating_duration_since(now)))
                .map_err(|e| Error::sys("epoll_wait on the ring buffer", e))?;
        }
    }

    /// Records lost so far.
    pub fn lost(&self) -> Lost {
        self.lost
    }

    /// Reads the kernel's lost counters and reports what was lost since the last look:
    /// a lost exec leaves a process unwatched, a lost mark_victim leaves an OOM kill
    /// unclassified, a lost end record loses a capture.
    fn check_lost(&mut self) {
        self.lost_checked = Instant::now();
        let c = match self.counters() {
            Ok(c) => c,
            Err(e) => {
                log::warn!("reading the kernel counters: {e}");
                return;
            }
        };
        let (events, ends) = (
            c.lost_events.saturating_sub(self.lost.events),
            c.lost_ends.saturating_sub(self.lost.ends),
        );
        if events == 0 && ends == 0 {
            return;
        }
        log::warn!(
            "the kernel ring buffer was full: {events} event records (exec/exit/mark_victim) and {ends} capture end records lost ({} and {} since start); raise --ring-size",
            c.lost_events,
            c.lost_ends
        );
        self.lost.events = c.lost_events;
        self.lost.ends = c.lost_ends;
        self.assembler.0.lost_events(Instant::now());
    }

    fn drain(&mut self, out: &mut Vec<Event>) -> Result<()> {
        while let Some(rec) = self.ring.next() {
            let now = Instant::now();
            let asm = &mut self.assembler.0;
            let parsed = match Record::parse(&rec) {
                Ok(r) => r,
                Err(e) => {
                    // One bad record must not cost the rest of the batch.
                    self.lost.malformed += 1;
                    log::warn!(
                        "skipping a malformed kernel record ({} so far): {e}",
                        self.lost.malformed
                    );
                    continue;
                }
            };
            match parsed {
                Record::Victim(v) => {
                    if let Some(c) = asm.victim(v, now) {
                        out.push(Event::Victim(v));
                        out.push(Event::Capture(c));
                    } else {
                        out.push(Event::Victim(v));
                    }
                }
                Record::Exec(x) => {
                    asm.exec(x.pid, x.ts_ns, now);
                    out.push(Event::Exec(ExecEvent {
                        pid: x.pid,
                        old_pid: x.old_pid,
                        comm: String::from_utf8_lossy(x.comm.as_bytes()).into_owned(),
                        filename: PathBuf::from(std::ffi::OsStr::new(
                            &String::from_utf8_lossy(x.filename).into_owned(),
                        )),
                        ts_ns: x.ts_ns,
                    }))
                }
                Record::Exit(x) => {
                    asm.exited(x.pid, x.ts_ns);
                    out.push(Event::Exit(x));
                }
                Record::Chunk(c) => asm.chunk(&c),
                Record::End(e) => {
                    if let Some(c) = asm.end(e, now) {
                        out.push(Event::Capture(c));
                    }
                }
            }
        }
        Ok(())
    }

    /// When a finished capture waiting for its mark_victim must be classified.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.assembler.0.next_deadline()
    }

    /// The kernel program's global counters (captures, records lost to a full ring).
    ///
    /// Returns an error if the `.bss` map cannot be read.
    pub fn counters(&self) -> Result<Counters> {
        let bss = self
            .bss
            .as_ref()
            .ok_or_else(|| Error::Object("no .bss map".into()))?;
        let mut v = vec![0u8; bss.value_size_total() as usize];
        sys::map_lookup(bss, &0u32.to_ne_bytes(), &mut v)
            .map_err(|e| Error::sys("BPF_MAP_LOOKUP_ELEM .bss", e))?;
        // oom_counters is the only .bss variable, at offset 0.
        Ok(Counters::parse(&v)?)
    }

    /// Kernel memory charged for our maps (sum of their `memlock` in fdinfo).
    pub fn kernel_memory(&self) -> u64 {
        self.memlock
    }

    /// True when captures walk in the first exiting thread's `sched_process_exit`
    /// (interrupts on), false when in the SIGKILL delivery (interrupts off).
    pub fn walks_at_exit(&self) -> bool {
        self.walks_at_exit
    }

    /// Which walk captures run, and so how many steps they have.
    pub fn walk(&self) -> WalkKind {
        self.walk
    }

    /// Probed kernel features.
    pub fn features(&self) -> Features {
        self.features
    }

    /// (program, tracepoint) pairs attached.
    pub fn programs(&self) -> &[(&'static str, &'static str)] {
        &self.programs
    }

    /// Where loading spent its time.
    pub fn load_timings(&self) -> LoadTimings {
        self.timings
    }

    /// Kernel ids of our programs and maps (as `bpftool prog/map show id N` takes).
    pub fn bpf_ids(&self) -> &BpfIds {
        &self.ids
    }

    /// Ring-buffer data size.
    pub fn ring_size(&self) -> usize {
        self.ring.size()
    }
}

/// What a program is loaded as: its BPF program type and the section it must be in.
pub(crate) struct ProgKind {
    pub(crate) prog_type: u32,
    pub(crate) section: String,
}

impl Choice {
    fn kind(&self) -> ProgKind {
        if self.raw {
            ProgKind {
                prog_type: consts::PROG_TYPE_RAW_TRACEPOINT,
                section: format!("raw_tracepoint/{}", self.tracepoint),
            }
        } else {
            ProgKind {
                prog_type: consts::PROG_TYPE_TRACEPOINT,
                section: format!("tracepoint/{}", self.tracepoint),
            }
        }
    }
}

/// Loads the walk program `walk` (a raw tracepoint program, like the ones that
/// tail-call it, and never attached).
///
/// Returns an error if it fails verification; [`Error::MissingFeature`] where the
/// fallback walk needs the BPF JIT and it is off or absent.
fn load_walker(
    obj: &Object,
    elf: &object::File<'_>,
    btf: Option<&OwnedFd>,
    walk: WalkKind,
) -> Result<sys::ProgFd> {
    let kind = ProgKind {
        prog_type: consts::PROG_TYPE_RAW_TRACEPOINT,
        section: "raw_tracepoint/walk".into(),
    };
    match load_program(obj, elf, btf, walk.program(), kind) {
        // kernel/bpf/verifier.c: a tail call in a program with BPF-to-BPF calls
        // needs the JIT (x86-64 from 5.10; other JITs later).
        Err(Error::ProgLoad { log, .. })
            if log.contains("tail_calls are not allowed in non-JITed programs") =>
        {
            let jit = std::fs::read_to_string("/proc/sys/net/core/bpf_jit_enable")
                .map(|s| format!("net.core.bpf_jit_enable={}", s.trim()))
                .unwrap_or_else(|_| "no net.core.bpf_jit_enable".into());
            Err(Error::MissingFeature {
                feature: "the BPF JIT with tail calls from BPF-to-BPF calls (the walk without bpf_loop needs it; x86-64)",
                since: "5.10",
                detail: format!("{jit}; the verifier: {}", log.lines().last().unwrap_or("")),
            })
        }
        r => r,
    }
}

/// Loads `program` (of `kind`) from the relocated object.
pub(crate) fn load_program(
    obj: &Object,
    elf: &object::File<'_>,
    btf: Option<&OwnedFd>,
    program: &str,
    kind: ProgKind,
) -> Result<sys::ProgFd> {
    let prog = obj
        .programs
        .get(program)
        .ok_or_else(|| Error::Object(format!("program {program} missing from the object")))?;
    // aya-obj drops the tracepoint name from the section; check it here.
    let section = elf
        .section_by_index(SectionIndex(prog.section_index))
        .and_then(|s| s.name().map(str::to_string))
        .map_err(|e| object_err("section name", e))?;
    if section != kind.section {
        return Err(Error::Object(format!(
            "program {program} is in section {section}, expected {}",
            kind.section
        )));
    }
    let func = obj
        .functions
        .get(&prog.function_key())
        .ok_or_else(|| Error::Object(format!("function of program {program} missing")))?;
    let func_info = func.func_info.func_info_bytes();
    let line_info = func.line_info.line_info_bytes();
    let kname = format!("oomprof_{}", short_name(program));
    let spec = ProgSpec {
        prog_type: kind.prog_type,
        insns: &func.instructions,
        license: &prog.license,
        name: &kname,
        btf: btf.map(|fd| ProgBtf {
            btf_fd: std::os::fd::AsFd::as_fd(fd),
            func_info: &func_info,
            func_info_rec_size: func.func_info_rec_size as u32,
            line_info: &line_info,
            line_info_rec_size: func.line_info_rec_size as u32,
        }),
    };
    progs::load(&spec)
}

impl std::os::fd::AsFd for Kernel {
    /// The ring buffer's fd, for an outer event loop: when it is readable, call
    /// [`Kernel::poll`] with a zero timeout. Also call `poll` when
    /// [`Kernel::next_deadline`] passes (captures waiting to be classified).
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.ring.as_fd()
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        // A classic tracepoint detach waits in the kernel: closing a perf link
        // took ~30 ms and closing its perf event (tracepoint unregistration,
        // which syncs RCU under event_mutex) 40-120 ms on the test VM; a raw
        // tracepoint link closes in ~0.1 ms. Parallel threads overlap what the
        // kernel lets overlap (20-80 ms in total for our two classic ones). The
        // maps are freed after all programs are detached (field drop order).
        let attachments = std::mem::take(&mut self.attachments);
        std::thread::scope(|s| {
            for a in attachments {
                s.spawn(move || drop(a));
            }
        });
    }
}

fn short_name(program: &str) -> &str {
    match program {
        "signal_deliver" => "signal",
        "signal_generate" => "kill",
        "mark_victim" | "mark_victim_v1" => "victim",
        "sched_process_exec" => "exec",
        "sched_process_exit" | "sched_process_exit_v1" => "exit",
        "walk_loop" => "walk",
        "walk_bounded" => "walkfb",
        other => other,
    }
}

// The Monitor may run the kernel handle on its own thread.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Kernel>();
    assert_send::<Capture>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attach::Field;

    fn tp(name: &str, fields: &[(&str, u32, u32)]) -> (String, Tracepoint) {
        let fields = fields
            .iter()
            .map(|&(n, offset, size)| Field {
                name: n.into(),
                offset,
                size,
            })
            .collect();
        (
            name.to_string(),
            Tracepoint {
                name: name.into(),
                id: 1,
                fields,
            },
        )
    }

    fn kernel(new: bool) -> HashMap<String, Tracepoint> {
        let mut mv = vec![("pid", 8, 4)];
        let mut exit = vec![("comm", 8, 16), ("pid", 24, 4), ("prio", 28, 4)];
        if new {
            mv = MARK_VICTIM_FULL.to_vec();
            exit.push(("group_dead", 32, 1));
        }
        HashMap::from([
            tp("signal/signal_deliver", &[("sig", 8, 4)]),
            tp("oom/mark_victim", &mv),
            tp(
                "sched/sched_process_exec",
                &[("filename", 8, 4), ("pid", 12, 4), ("old_pid", 16, 4)],
            ),
            tp("sched/sched_process_exit", &exit),
        ])
    }

    fn programs(c: Vec<Choice>) -> Vec<&'static str> {
        c.into_iter().map(|c| c.program).collect()
    }

    #[test]
    fn variants_follow_the_record_layout() {
        use oom_bpf::programs as p;
        let new = choose(&kernel(true), false).unwrap();
        assert_eq!(
            programs(choose(&kernel(true), false).unwrap()),
            [
                p::SIGNAL_DELIVER,
                p::SIGNAL_GENERATE,
                p::MARK_VICTIM,
                p::SCHED_PROCESS_EXEC,
                p::SCHED_PROCESS_EXIT
            ]
        );
        // Raw tracepoints: the exit variant is settled by the attach, with a fallback.
        assert!(new[0].raw && new[1].raw && new[4].raw && !new[2].raw && !new[3].raw);
        assert_eq!(new[4].fallback, Some(p::SCHED_PROCESS_EXIT_V1));
        assert_eq!(
            programs(choose(&kernel(false), false).unwrap()),
            [
                p::SIGNAL_DELIVER,
                p::SIGNAL_GENERATE,
                p::MARK_VICTIM_V1,
                p::SCHED_PROCESS_EXEC,
                p::SCHED_PROCESS_EXIT
            ]
        );
        assert_eq!(
            programs(choose(&kernel(true), true).unwrap()),
            [
                p::SIGNAL_DELIVER,
                p::SIGNAL_GENERATE,
                p::MARK_VICTIM_V1,
                p::SCHED_PROCESS_EXEC,
                p::SCHED_PROCESS_EXIT_V1
            ]
        );
    }

    #[test]
    fn walk_caps_in_buckets() {
        // bpf_loop: 8,388,608 steps; the fallback: 33 runs of 131,072.
        assert_eq!(WalkKind::Loop.max_buckets(44), 2_097_152);
        assert_eq!(WalkKind::Fallback.max_steps(), 33 * 131_072);
        assert_eq!(WalkKind::Fallback.max_buckets(1), 2_162_688);
        assert_eq!(WalkKind::Fallback.max_buckets(44), 1_081_344);
        assert_eq!(WalkKind::Fallback.max_buckets(1024), 66_544);
        assert_eq!(
            WalkKind::Fallback.to_string(),
            "fallback walk without bpf_loop, 4325376 steps (33 runs of 131072)"
        );
    }

    #[test]
    fn unexpected_layouts_are_errors_naming_the_tracepoint() {
        let mut k = kernel(true);
        k.insert(
            "sched/sched_process_exec".into(),
            tp(
                "sched/sched_process_exec",
                &[("filename", 8, 4), ("pid", 16, 4)],
            )
            .1,
        );
        match choose(&k, false) {
            Err(Error::Tracepoint { tracepoint, .. }) => {
                assert_eq!(tracepoint, "sched/sched_process_exec")
            }
            other => panic!("{other:?}"),
        }
        let mut k = kernel(true);
        k.remove("oom/mark_victim");
        match choose(&k, false) {
            Err(Error::Tracepoint { tracepoint, reason }) => {
                assert_eq!(
                    (tracepoint.as_str(), reason.as_str()),
                    ("oom/mark_victim", "not found")
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
