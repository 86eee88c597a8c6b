//! [`Kernel`]: the loaded and attached oomprof BPF object, the lower-level handle the
//! process discovery and the `Monitor` build on.
//!
//! Lifecycle: [`Kernel::load`] probes features, loads the embedded object with
//! aya-obj (BTF fixup, maps, relocations, programs), picks the program variant that
//! matches each tracepoint's record layout on this kernel, and attaches. Then
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

/// Default ring size: 8 MiB holds about 150,000 buckets of a typical Go program
/// (measured ~50 bytes per bucket with u32 PCs; see tests/tests/kernel_capture.rs),
/// and keeps all our maps together under 9 MiB of kernel memory.
pub const DEFAULT_RING_SIZE: usize = 8 << 20;
/// Default number of processes that can be watched at once.
pub const DEFAULT_MAX_WATCHED: u32 = 4096;
/// Default time a finished capture waits for its mark_victim.
pub const DEFAULT_CLASSIFY_WINDOW: Duration = Duration::from_millis(250);

/// Load-time configuration.
#[derive(Clone, Debug)]
pub struct KernelConfig {
    /// Ring-buffer data size in bytes: a power of two, at least one page.
    pub ring_size: usize,
    /// Buckets read per capture, at most [`abi::MAX_BUCKETS_CEILING`].
    pub max_buckets: u32,
    /// Processes watched at once.
    pub max_watched: u32,
    /// Yield captures of processes killed by something other than the OOM killer.
    pub keep_killed: bool,
    /// How long a finished capture waits for the OOM killer's mark_victim.
    pub classify_window: Duration,
}

impl Default for KernelConfig {
    fn default() -> Self {
        Self {
            ring_size: DEFAULT_RING_SIZE,
            max_buckets: abi::DEFAULT_MAX_BUCKETS,
            max_watched: DEFAULT_MAX_WATCHED,
            keep_killed: false,
            classify_window: DEFAULT_CLASSIFY_WINDOW,
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

/// Kernel object ids of a loaded [`Kernel`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BpfIds {
    /// Program ids.
    pub programs: Vec<u32>,
    /// Map ids.
    pub maps: Vec<u32>,
}

/// Which program variant each tracepoint gets, chosen from its record layout.
#[derive(Debug)]
struct Choice {
    program: &'static str,
    tracepoint: &'static str,
}

fn choose(tps: &HashMap<String, Tracepoint>) -> Result<Vec<Choice>> {
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
    let mut out = Vec::new();

    let sd = get("signal/signal_deliver")?;
    if !sd.has("sig", 8, 4) {
        return Err(bad("signal/signal_deliver", "sig@8"));
    }
    out.push(Choice {
        program: p::SIGNAL_DELIVER,
        tracepoint: "signal/signal_deliver",
    });

    let mv = get("oom/mark_victim")?;
    let full = [
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
    let program = if full.iter().all(|&(n, o, s)| mv.has(n, o, s)) {
        p::MARK_VICTIM
    } else if mv.has("pid", 8, 4) {
        p::MARK_VICTIM_V1
    } else {
        return Err(bad("oom/mark_victim", "pid@8"));
    };
    out.push(Choice {
        program,
        tracepoint: "oom/mark_victim",
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
    });

    let et = get("sched/sched_process_exit")?;
    out.push(Choice {
        program: if et.has("group_dead", 32, 1) {
            p::SCHED_PROCESS_EXIT
        } else {
            p::SCHED_PROCESS_EXIT_V1
        },
        tracepoint: "sched/sched_process_exit",
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
    #[allow(dead_code)] // held for Drop
    other_maps: Vec<MapFd>,
    #[allow(dead_code)] // kept open for the programs' BTF
    btf: Option<OwnedFd>,
    features: Features,
    memlock: u64,
    programs: Vec<(&'static str, &'static str)>,
    ids: BpfIds,
    assembler: AssemblerBox,
}

/// Wrapper so `Kernel` can derive Debug.
struct AssemblerBox(Assembler);
impl std::fmt::Debug for AssemblerBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Assembler")
    }
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
        let features = probe::probe()?;

        let bytes = oom_bpf::object();
        let mut obj = Object::parse(bytes).map_err(|e| object_err("parse", e))?;
        let cfg = abi::encode_config(config.max_buckets);
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

        // Maps, with configured sizes.
        let mut defs: Vec<(String, Map)> = obj.maps.drain().collect();
        defs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut created: Vec<(String, MapFd)> = Vec::new();
        for (name, def) in &mut defs {
            match name.as_str() {
                oom_bpf::maps::EVENTS => def.set_max_entries(config.ring_size as u32),
                oom_bpf::maps::WATCHED => def.set_max_entries(config.max_watched),
                _ => {}
            }
            let fd = maps::create(name, def, btf.as_ref())?;
            created.push((name.clone(), fd));
        }
        let text: HashSet<usize> = obj.functions.keys().map(|(s, _)| *s).collect();
        obj.relocate_maps(
            defs.iter()
                .zip(&created)
                .map(|((n, m), (_, fd))| (n.as_str(), fd.as_raw_fd(), m)),
            &text,
        )
        .map_err(|e| object_err("map relocation", e))?;
        obj.relocate_calls(&text)
            .map_err(|e| object_err("call relocation", e))?;

        // Tracepoints and the variant each gets.
        let tps = attach::index(attach::read_tracepoints(&[
            "signal/signal_deliver",
            "oom/mark_victim",
            "sched/sched_process_exec",
            "sched/sched_process_exit",
        ])?);
        let choices = choose(&tps)?;

        let elf = object::File::parse(bytes).map_err(|e| object_err("ELF", e))?;
        let mut attachments = Vec::new();
        let mut programs = Vec::new();
        let mut prog_ids = Vec::new();
        for choice in &choices {
            let prog = obj.programs.get(choice.program).ok_or_else(|| {
                Error::Object(format!(
                    "program {} missing from the object",
                    choice.program
                ))
            })?;
            // aya-obj drops the tracepoint name from the section; check it here.
            let section = elf
                .section_by_index(SectionIndex(prog.section_index))
                .and_then(|s| s.name().map(str::to_string))
                .map_err(|e| object_err("section name", e))?;
            if section != format!("tracepoint/{}", choice.tracepoint) {
                return Err(Error::Object(format!(
                    "program {} is in section {section}, expected tracepoint/{}",
                    choice.program, choice.tracepoint
                )));
            }
            let func = obj.functions.get(&prog.function_key()).ok_or_else(|| {
                Error::Object(format!("function of program {} missing", choice.program))
            })?;
            let func_info = func.func_info.func_info_bytes();
            let line_info = func.line_info.line_info_bytes();
            let kname = format!("oomprof_{}", short_name(choice.program));
            let spec = ProgSpec {
                prog_type: consts::PROG_TYPE_TRACEPOINT,
                insns: &func.instructions,
                license: &prog.license,
                name: &kname,
                btf: btf.as_ref().map(|fd| ProgBtf {
                    btf_fd: std::os::fd::AsFd::as_fd(fd),
                    func_info: &func_info,
                    func_info_rec_size: func.func_info_rec_size as u32,
                    line_info: &line_info,
                    line_info_rec_size: func.line_info_rec_size as u32,
                }),
            };
            let prog_fd = progs::load(&spec)?;
            prog_ids.push(maps::fdinfo_field(&prog_fd, "prog_id")? as u32);
            let tp = &tps[choice.tracepoint];
            attachments.push(attach::attach_tracepoint(&prog_fd, tp, features.perf_link)?);
            programs.push((choice.program, choice.tracepoint));
            // The attachment keeps the program alive; its fd can close now.
        }

        let mut memlock = 0;
        let mut ring = None;
        let mut watched = None;
        let mut bss = None;
        let mut other_maps = Vec::new();
        let mut map_ids = Vec::new();
        for (name, fd) in created {
            memlock += maps::memlock_bytes(&fd)?;
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
        Ok(Kernel {
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
    /// Returns an error if epoll fails or a record is malformed.
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<Vec<Event>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut out = Vec::new();
        loop {
            self.drain(&mut out)?;
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

    fn drain(&mut self, out: &mut Vec<Event>) -> Result<()> {
        while let Some(rec) = self.ring.next() {
            let now = Instant::now();
            let asm = &mut self.assembler.0;
            match Record::parse(&rec)? {
                Record::Victim(v) => {
                    if let Some(c) = asm.victim(v, now) {
                        out.push(Event::Victim(v));
                        out.push(Event::Capture(c));
                    } else {
                        out.push(Event::Victim(v));
                    }
                }
                Record::Exec(x) => out.push(Event::Exec(ExecEvent {
                    pid: x.pid,
                    old_pid: x.old_pid,
                    comm: String::from_utf8_lossy(x.comm.as_bytes()).into_owned(),
                    filename: PathBuf::from(std::ffi::OsStr::new(
                        &String::from_utf8_lossy(x.filename).into_owned(),
                    )),
                    ts_ns: x.ts_ns,
                })),
                Record::Exit(x) => {
                    asm.exit(x.pid);
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

    /// Probed kernel features.
    pub fn features(&self) -> Features {
        self.features
    }

    /// (program, tracepoint) pairs attached.
    pub fn programs(&self) -> &[(&'static str, &'static str)] {
        &self.programs
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

impl Drop for Kernel {
    fn drop(&mut self) {
        // Each detach waits for an RCU grace period in the kernel (tracepoint
        // unregistration), 15–120 ms apiece on the test VM; closing the
        // attachments on parallel threads lets those waits overlap. The maps
        // are freed after all programs are detached (field drop order).
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
        "mark_victim" | "mark_victim_v1" => "victim",
        "sched_process_exec" => "exec",
        "sched_process_exit" | "sched_process_exit_v1" => "exit",
        other => other,
    }
}
