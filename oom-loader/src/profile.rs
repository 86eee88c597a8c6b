//! Profile assembly: buckets (from a kernel capture or a user-space walk) + the
//! binary's symbol data + the process's mappings → values, symbolized pprof, gzip,
//! with the capture context carried as pprof comments.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use oom_core::bucket::Cycle;
use oom_core::pprof::{self, FrameSlot, LocationSlot, Mapping, StringSlot, Tables};
use oom_core::stripped::Arch;
use oom_core::values::{counts, unpublished, Exp, Policy, Scale};
use oom_core::Bucket;

use crate::binary::GoBinary;
use crate::procmaps::{self, MapEntry};

/// Why a profile was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The kernel's OOM killer killed the process.
    Oom,
    /// Something else killed it with SIGKILL (systemd-oomd, `cgroup.kill`, `kill -9`).
    Killed,
    /// Asked for while the process runs.
    OnDemand,
    /// SIGKILLed, and the kernel lost event records around the kill, so whether the
    /// OOM killer did it is unknown.
    Unknown,
    /// Taken while running because its memory cgroup neared its limit (a pre-OOM
    /// profile, [`crate::pressure`]).
    Pressure,
}

impl Reason {
    /// The word used in file comments and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Oom => "oom",
            Reason::Killed => "killed",
            Reason::OnDemand => "on-demand",
            Reason::Unknown => "unknown",
            Reason::Pressure => "pressure",
        }
    }
}

/// Memory figures of an OOM victim as the kernel reported them (kB).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rss {
    /// Total virtual memory.
    pub total_vm_kb: u64,
    /// Anonymous resident memory.
    pub anon_kb: u64,
    /// File-backed resident memory.
    pub file_kb: u64,
    /// Shared-memory resident memory.
    pub shmem_kb: u64,
    /// The victim's oom_score_adj.
    pub oom_score_adj: i64,
}

/// Who and what a profile is about.
#[derive(Clone, Debug)]
pub struct ProfileMeta {
    /// Process id.
    pub pid: i32,
    /// Command name.
    pub comm: String,
    /// Executable path.
    pub exe: PathBuf,
    /// Go version string.
    pub go_version: String,
    /// Main module path.
    pub main_module: Option<String>,
    /// Main module version.
    pub main_version: Option<String>,
    /// `vcs.revision` build setting.
    pub vcs_revision: Option<String>,
    /// Go build ID.
    pub go_build_id: Option<String>,
    /// GNU build ID (hex) or "".
    pub gnu_build_id: String,
    /// Why it was taken.
    pub reason: Reason,
    /// The task that triggered the OOM killer (pid, comm), when known.
    pub trigger: Option<(i32, String)>,
    /// For pre-OOM profiles: which trigger fired, for which cgroup, with its figures.
    pub pressure: Option<crate::pressure::PressureNote>,
    /// The victim's memory figures, when the kernel reported them.
    pub rss: Option<Rss>,
    /// The victim's cgroup path, when known.
    pub cgroup: Option<String>,
    /// Pod and container, where the cgroup and the runtime's state name them.
    pub attribution: Option<crate::attribution::Attribution>,
    /// `runtime.MemProfileRate` used for scaling.
    pub mem_profile_rate: i64,
    /// Buckets read.
    pub buckets: usize,
    /// Empty when every bucket was read with exact values; otherwise what is missing
    /// or uncertain, and why.
    pub incomplete: Vec<Incomplete>,
    /// Buckets the walk visited (captured or not), when known.
    pub buckets_seen: Option<usize>,
    /// For kills: CLOCK_MONOTONIC time the capture started (the SIGKILL delivery).
    pub kill_mono_ns: Option<u64>,
    /// For kills: how long the in-kernel walk of the bucket list took.
    pub walk_ns: Option<u64>,
    /// For kills: the walk ran with the victim's interrupts off (in its SIGKILL
    /// delivery) rather than at its exit with interrupts on.
    pub walk_irqs_off: Option<bool>,
    /// When the profile was taken.
    pub time: SystemTime,
    /// The OOM event log that has this kill's event (its file name), when one is kept:
    /// the profile's way back to the event.
    pub event_log: Option<String>,
}

impl ProfileMeta {
    /// The metadata as pprof `comment` strings (at most 16).
    pub fn comments(&self) -> Vec<String> {
        let mut c = vec![format!(
            "oomprof: reason={} pid={} comm={}",
            self.reason.as_str(),
            self.pid,
            self.comm
        )];
        c.push(format!("exe: {}", self.exe.display()));
        c.push(format!(
            "go: {} module: {} {}",
            self.go_version,
            self.main_module.as_deref().unwrap_or("-"),
            self.main_version.as_deref().unwrap_or("-")
        ));
        if let Some(r) = &self.vcs_revision {
            c.push(format!("vcs.revision: {r}"));
        }
        c.push(format!(
            "build-id: go={} gnu={}",
            self.go_build_id.as_deref().unwrap_or("-"),
            if self.gnu_build_id.is_empty() {
                "-"
            } else {
                &self.gnu_build_id
            }
        ));
        if let Some((pid, comm)) = &self.trigger {
            c.push(format!("trigger: pid={pid} comm={comm}"));
        }
        if let Some(r) = &self.rss {
            c.push(format!(
                "rss: total_vm={}kB anon={}kB file={}kB shmem={}kB oom_score_adj={}",
                r.total_vm_kb, r.anon_kb, r.file_kb, r.shmem_kb, r.oom_score_adj
            ));
        }
        if let Some(cg) = &self.cgroup {
            c.push(format!("cgroup: {cg}"));
        }
        if let (Some(log), Reason::Oom) = (&self.event_log, self.reason) {
            c.push(format!("event: {log} (the line with \"pid\":{})", self.pid));
        }
        if let Some(p) = &self.pressure {
            c.push(p.comment());
        }
        if let Some(a) = &self.attribution {
            c.extend(a.comments());
        }
        c.push(format!("memprofilerate: {}", self.mem_profile_rate));
        let walk = self
            .walk_ns
            .map(|n| {
                let irqs = match self.walk_irqs_off {
                    Some(true) => " with interrupts off",
                    Some(false) => " with interrupts on",
                    None => "",
                };
                format!(", walked in {} us{irqs}", n / 1000)
            })
            .unwrap_or_default();
        let of = match self.buckets_seen {
            Some(seen) if seen != self.buckets => format!(" of {seen}"),
            _ => String::new(),
        };
        c.push(match self.incomplete_text() {
            None => format!("capture: complete, {} buckets{walk}", self.buckets),
            Some(why) => format!(
                "capture: INCOMPLETE, {}{of} buckets{walk}: {why}",
                self.buckets
            ),
        });
        c
    }

    /// True when every bucket was read with exact values.
    pub fn is_complete(&self) -> bool {
        self.incomplete.is_empty()
    }

    /// The reasons in words, joined; `None` when complete.
    pub fn incomplete_text(&self) -> Option<String> {
        (!self.incomplete.is_empty()).then(|| {
            self.incomplete
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

/// Why a profile lacks buckets or exact values: one reason each, in words by Display.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incomplete {
    /// `runtime.mbuckets` could not be read.
    HeadUnreadable,
    /// The list could not be read past a bucket (at `addr` when known): the walk
    /// stopped there.
    ListCut {
        /// The unreadable bucket's address, when known.
        addr: Option<u64>,
    },
    /// The walk stopped at its bucket limit with buckets left.
    BucketLimit {
        /// The limit.
        limit: u64,
    },
    /// The kernel's ring buffer filled and the walk stopped there: `dropped` buckets
    /// were read but not sent, the rest of the list was not read.
    RingFull {
        /// Buckets read but not sent.
        dropped: u32,
    },
    /// The walk used up its time budget and stopped with buckets left.
    TimeBudget {
        /// How long it walked.
        walked_ns: u64,
    },
    /// The walk used up its steps and stopped with buckets left: a bucket takes
    /// one step, plus one per 16 frames of its stack.
    StepCap {
        /// The steps it had.
        steps: u32,
        /// The fallback walk of a kernel without `bpf_loop` (else `bpf_loop`'s).
        fallback: bool,
    },
    /// The kernel program could not enter its walk program: nothing was walked.
    NotWalked,
    /// The bucket list loops back (a corrupt list): the walk stopped, and entries
    /// before the detection may repeat.
    Loop,
    /// Buckets left out because they were unreadable, or invalid (a bad type or an
    /// impossible depth: corruption).
    BucketsLeftOut {
        /// How many.
        count: u64,
        /// Invalid rather than unreadable.
        invalid: bool,
        /// The first ones, in words (on-demand walks), or "".
        detail: String,
    },
    /// Stacks longer than the kernel copies were cut.
    StacksCut {
        /// How many.
        count: u32,
        /// At how many frames.
        frames: u32,
    },
    /// Ring records of the capture never arrived.
    ChunksLost {
        /// How many.
        count: u32,
    },
    /// A capture entry did not decode; the entries after it are missing.
    MalformedEntry(String),
    /// `runtime.MemProfileRate` could not be read: values are scaled as for Go's
    /// default rate.
    RateUnknown,
    /// `runtime.mProfCycle` could not be read: Go's view is taken as of the last
    /// flush (it may lag one GC).
    CycleUnknown,
}

impl Incomplete {
    /// A stable snake_case name of the reason, for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Incomplete::HeadUnreadable => "head_unreadable",
            Incomplete::ListCut { .. } => "list_cut",
            Incomplete::BucketLimit { .. } => "bucket_limit",
            Incomplete::RingFull { .. } => "ring_full",
            Incomplete::TimeBudget { .. } => "time_budget",
            Incomplete::Loop => "loop",
            Incomplete::BucketsLeftOut { invalid: false, .. } => "buckets_unreadable",
            Incomplete::BucketsLeftOut { invalid: true, .. } => "buckets_invalid",
            Incomplete::StacksCut { .. } => "stacks_cut",
            Incomplete::ChunksLost { .. } => "chunks_lost",
            Incomplete::MalformedEntry(_) => "malformed_entry",
            Incomplete::RateUnknown => "rate_unknown",
            Incomplete::CycleUnknown => "cycle_unknown",
            Incomplete::StepCap { .. } => "step_cap",
            Incomplete::NotWalked => "not_walked",
        }
    }
}

impl std::fmt::Display for Incomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Incomplete::HeadUnreadable => write!(f, "runtime.mbuckets unreadable"),
            Incomplete::ListCut { addr: Some(a) } => {
                write!(f, "bucket at {a:#x} unreadable: the list is cut there")
            }
            Incomplete::ListCut { addr: None } => {
                write!(f, "bucket list unreadable past the last bucket captured")
            }
            Incomplete::BucketLimit { limit } => {
                write!(f, "walk stopped at the limit of {limit} buckets (raise --max-buckets)")
            }
            Incomplete::RingFull { dropped } => write!(
                f,
                "ring buffer full: walk stopped, {dropped} buckets read but not sent and the rest of the list not read (raise --ring-size)"
            ),
            Incomplete::TimeBudget { walked_ns } => write!(
                f,
                "walk stopped at its time budget after {:.1} ms, the rest of the list not read (raise --walk-budget)",
                *walked_ns as f64 / 1e6
            ),
            Incomplete::StepCap {
                steps,
                fallback: true,
            } => write!(
                f,
                "walk stopped at the fallback walk's cap of {steps} steps (kernel without bpf_loop; a bucket takes 1 step plus 1 per 16 frames), the rest of the list not read"
            ),
            Incomplete::StepCap {
                steps,
                fallback: false,
            } => write!(
                f,
                "walk stopped at bpf_loop's cap of {steps} steps (a bucket takes 1 step plus 1 per 16 frames), the rest of the list not read"
            ),
            Incomplete::NotWalked => write!(
                f,
                "the kernel program could not start its walk program: no buckets read"
            ),
            Incomplete::Loop => write!(
                f,
                "the bucket list loops back (corrupt): walk stopped, some buckets may be counted twice"
            ),
            Incomplete::BucketsLeftOut {
                count,
                invalid,
                detail,
            } => {
                let what = if *invalid {
                    "unreadable or invalid (bad type or depth)"
                } else {
                    "unreadable"
                };
                write!(f, "{count} buckets {what} left out")?;
                if !detail.is_empty() {
                    write!(f, " ({detail})")?;
                }
                Ok(())
            }
            Incomplete::StacksCut { count, frames } => {
                write!(f, "{count} stacks cut at {frames} frames")
            }
            Incomplete::ChunksLost { count } => write!(f, "{count} chunks lost"),
            Incomplete::MalformedEntry(e) => write!(f, "malformed entry: {e}"),
            Incomplete::RateUnknown => write!(
                f,
                "runtime.MemProfileRate could not be read: values scaled as for Go's default 524288"
            ),
            Incomplete::CycleUnknown => write!(
                f,
                "runtime.mProfCycle unknown: Go's view taken as of the last flush (may lag one GC)"
            ),
        }
    }
}

/// Go's default `runtime.MemProfileRate` (512 KiB): the scale used when the rate in
/// force could not be read (and the profile says so).
pub const GO_DEFAULT_RATE: i64 = 512 * 1024;

/// What the target's `runtime.MemProfileRate` was when its buckets were read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateSeen {
    /// Read: this value (0 means profiling is off).
    Read(i64),
    /// Not located in the binary, or the read failed.
    Unknown,
}

impl RateSeen {
    /// The rate to scale with, and the problem to report when it is a guess; `None`
    /// when profiling is off (rate 0 or negative, which Go treats as off).
    pub fn scale_rate(self) -> Option<(i64, Option<Incomplete>)> {
        match self {
            RateSeen::Read(r) if r > 0 => Some((r, None)),
            RateSeen::Read(_) => None,
            RateSeen::Unknown => Some((GO_DEFAULT_RATE, Some(Incomplete::RateUnknown))),
        }
    }
}

/// Why a Go program's profile is empty, naming both fixes: the linker turns profiling
/// off in programs that never reference `runtime.MemProfile` (`linker`: what the
/// binary's `runtime.disableMemoryProfiling` says), and a program may set the rate
/// to 0 itself.
pub fn disabled_diagnosis(linker: Option<bool>) -> &'static str {
    match linker {
        Some(true) => "memory profiling is off: runtime.MemProfileRate is 0, as the Go linker set it because nothing references runtime.MemProfile; fix: make the program reference runtime.MemProfile (e.g. import _ \"net/http/pprof\") or set runtime.MemProfileRate (e.g. to 524288) early in main",
        _ => "memory profiling is off: runtime.MemProfileRate is 0 (the Go linker sets it so when nothing references runtime.MemProfile, or the program set it); fix: make the program reference runtime.MemProfile (e.g. import _ \"net/http/pprof\") or set runtime.MemProfileRate (e.g. to 524288) early in main",
    }
}

/// Headline figures of a profile, for log lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Total in-use bytes (scaled).
    pub inuse_bytes: i64,
    /// Total in-use objects (scaled).
    pub inuse_objects: i64,
    /// The function holding the most in-use bytes (first non-runtime frame).
    pub top_function: Option<String>,
    /// In-use bytes of `top_function`.
    pub top_inuse_bytes: i64,
    /// Bytes allocated but not yet published by the runtime (scaled): the
    /// `recent_alloc_space` total, 0 when the profile has no recent types.
    pub recent_bytes: i64,
    /// The function with the most `recent_alloc_space`.
    pub recent_top_function: Option<String>,
    /// `recent_alloc_space` of `recent_top_function`.
    pub recent_top_bytes: i64,
}

/// Where the time of one profile went, stage by stage, for log lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timings {
    /// For kills: from the end of the in-kernel walk to the capture reaching assembly
    /// (ring wake-up, reassembly of its records, waiting for the `mark_victim` that
    /// classifies it).
    pub deliver: Option<Duration>,
    /// Capture records → buckets, completeness and metadata (kills; zero on demand).
    pub assemble: Duration,
    /// Every distinct PC through gopclntab, once each.
    pub symbolize: Duration,
    /// The pprof encoding and the summary of the log line.
    pub encode: Duration,
    /// Compression.
    pub gzip: Duration,
    /// Writing the file (create, write, fsync, link), when the writer measured it.
    pub write: Option<Duration>,
}

impl Timings {
    /// The stages as ` name=1.234ms` fields, in pipeline order.
    pub fn fields(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mut s = String::new();
        if let Some(d) = self.deliver {
            s.push_str(&format!(" deliver={:.3}ms", ms(d)));
        }
        s.push_str(&format!(
            " assemble={:.3}ms symbolize={:.3}ms encode={:.3}ms gzip={:.3}ms",
            ms(self.assemble),
            ms(self.symbolize),
            ms(self.encode),
            ms(self.gzip)
        ));
        if let Some(d) = self.write {
            s.push_str(&format!(" write={:.3}ms", ms(d)));
        }
        s
    }
}

/// A finished profile.
#[derive(Clone, Debug)]
pub struct Profile {
    /// Who, why, how complete.
    pub meta: ProfileMeta,
    /// Headline figures.
    pub summary: Summary,
    /// The gzipped `perftools.profiles.Profile`.
    pub pprof_gz: Vec<u8>,
    /// How long each stage took.
    pub timings: Timings,
}

/// The gzip level of profiles: flate2's fastest, as Go's runtime/pprof writes them
/// (`gzip.BestSpeed`). Measured on a 100k-bucket profile (docs/benchmarks.md, figure
/// 4): higher levels cost several times the time for a few percent of size.
pub const GZIP_LEVEL: u32 = 1;

/// Why a profile could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    /// Memory profiling is off in the target (rate 0).
    #[error("memory profiling is disabled in this program (runtime.MemProfileRate is 0)")]
    ProfilingDisabled,
    /// The executable was rewritten since it was analysed (after its process died):
    /// its symbols are gone.
    #[error("the executable changed on disk since it was analysed: not symbolized")]
    BinaryChanged,
    /// The encoder rejected the input.
    #[error("encoding the profile: {0}")]
    Encode(oom_core::Error),
    /// Compressing failed.
    #[error("compressing the profile: {0}")]
    Gzip(std::io::Error),
}

/// The `math.Exp` the target used: on amd64 Go picks the FMA path when the CPU has AVX
/// and FMA; the target runs on this host, so this host's CPU decides.
fn target_exp(arch: Arch) -> Exp {
    match arch {
        Arch::Amd64 => {
            #[cfg(target_arch = "x86_64")]
            let fma = std::arch::is_x86_feature_detected!("avx")
                && std::arch::is_x86_feature_detected!("fma");
            #[cfg(not(target_arch = "x86_64"))]
            let fma = false;
            Exp::Amd64 { fma }
        }
        Arch::Arm64 => Exp::Arm64,
    }
}

/// Builds the profile of `buckets` taken from a process running `bin` with load bias
/// `bias` and the given mappings. `policy` picks Go's four sample types; `recent`
/// adds the allocations it leaves out as `recent_alloc_objects`/`recent_alloc_space`
/// (and makes `inuse_space` the default type, so pprof opens on Go's view).
///
/// Returns an error if profiling was disabled (rate 0) or encoding fails.
pub fn assemble(
    bin: &GoBinary,
    bias: u64,
    buckets: &[Bucket<'_>],
    maps: &[MapEntry],
    policy: Policy,
    recent: bool,
    meta: ProfileMeta,
) -> Result<Profile, AssembleError> {
    let scale = Scale::new(
        meta.mem_profile_rate,
        target_exp(bin.info.arch),
        bin.info.layout,
    )
    .map_err(|_| AssembleError::ProfilingDisabled)?;
    if !bin.unchanged() {
        return Err(AssembleError::BinaryChanged);
    }
    let sym = bin.symbolizer(bias).map_err(AssembleError::Encode)?;

    // Mappings as runtime/pprof lists them; the executable carries the GNU build ID.
    let exe_maps: Vec<&MapEntry> = procmaps::executable(maps).collect();
    let exe_path = meta.exe.to_string_lossy().into_owned();
    let mappings: Vec<Mapping<'_>> = exe_maps
        .iter()
        .map(|m| Mapping {
            start: m.start,
            limit: m.end,
            offset: m.offset,
            filename: &m.path,
            build_id: if m.path == exe_path || m.inode == bin.key.ino {
                &bin.info.gnu_build_id
            } else {
                ""
            },
        })
        .take(pprof::MAX_MAPPINGS)
        .collect();
    let comments = meta.comments();
    let comment_refs: Vec<&str> = comments.iter().map(String::as_str).collect();
    let time_nanos = meta
        .time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let profile = pprof::Profile {
        scale,
        policy,
        recent,
        mappings: &mappings,
        time_nanos,
        default_sample_type: recent.then_some("inuse_space"),
        comments: &comment_refs,
    };

    // Every distinct PC once; its count sizes the encoder's tables.
    let t = Instant::now();
    let mut frames = vec![FrameSlot::default(); FRAME_SLOTS];
    let distinct = loop {
        match pprof::symbolize(&mut frames, &sym, buckets) {
            Ok(n) => break n,
            Err(oom_core::Error::TableFull { capacity, .. }) if capacity < 1 << 26 => {
                // Keep what is symbolized: move it into a table 8 times larger.
                let mut more = vec![FrameSlot::default(); capacity * 8];
                pprof::rehash(&frames, &mut more).map_err(AssembleError::Encode)?;
                frames = more;
            }
            Err(e) => return Err(AssembleError::Encode(e)),
        }
    };
    let symbolize = t.elapsed();

    let t = Instant::now();
    let mut nstrings = 2 * (2 * distinct + 64 + 2 * mappings.len() + comments.len());
    let mut nlocs = 2 * distinct + 64;
    let words: usize = buckets.iter().map(|b| b.stack.len()).sum();
    let mut out = vec![0u8; 256 + 48 * buckets.len() + 12 * words];
    let len = loop {
        let mut strings = vec![StringSlot::default(); nstrings];
        let mut locations = vec![LocationSlot::default(); nlocs];
        let tables = Tables {
            strings: &mut strings,
            locations: &mut locations,
            frames: &frames,
        };
        match pprof::encode(&mut out, tables, &sym, &profile, buckets.iter()) {
            Ok(n) => break n,
            Err(oom_core::Error::BufferTooSmall { needed }) => out.resize(needed, 0),
            Err(oom_core::Error::TableFull { .. }) if nstrings < 1 << 28 => {
                nstrings *= 2;
                nlocs *= 2;
            }
            Err(e) => return Err(AssembleError::Encode(e)),
        }
    };
    out.truncate(len);
    let summary = summarize(&sym, &frames, &scale, policy, recent, buckets);
    let encode = t.elapsed();
    bin.release_pages();

    let t = Instant::now();
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(len / 3 + 64),
        flate2::Compression::new(GZIP_LEVEL),
    );
    gz.write_all(&out).map_err(AssembleError::Gzip)?;
    let pprof_gz = gz.finish().map_err(AssembleError::Gzip)?;
    let timings = Timings {
        symbolize,
        encode,
        gzip: t.elapsed(),
        ..Timings::default()
    };
    Ok(Profile {
        meta,
        summary,
        pprof_gz,
        timings,
    })
}

/// First size of the frame cache (about 100 KiB; distinct PCs grow far slower than
/// buckets, as stacks share most frames), grown eightfold when it is half full.
const FRAME_SLOTS: usize = 1024;

fn summarize<'a>(
    sym: &oom_core::Symbolizer<'a>,
    frames: &[FrameSlot<'a>],
    scale: &Scale,
    policy: Policy,
    recent: bool,
    buckets: &[Bucket<'_>],
) -> Summary {
    let mut s = Summary::default();
    let mut inuse: std::collections::HashMap<&str, i64> = Default::default();
    let mut fresh: std::collections::HashMap<&str, i64> = Default::default();
    for b in buckets {
        let v = scale.values(counts(&b.record, policy), b.size);
        let r = if recent {
            let u = unpublished(&b.record, policy);
            let c = Cycle {
                allocs: u.allocs,
                frees: 0,
            };
            scale.values(c, b.size).alloc_space
        } else {
            0
        };
        s.inuse_bytes = s.inuse_bytes.wrapping_add(v.inuse_space);
        s.inuse_objects = s.inuse_objects.wrapping_add(v.inuse_objects);
        s.recent_bytes = s.recent_bytes.wrapping_add(r);
        if v.inuse_space == 0 && r == 0 {
            continue;
        }
        let name = flat_function(sym, frames, b);
        if v.inuse_space != 0 {
            let e = inuse.entry(name).or_default();
            *e = e.wrapping_add(v.inuse_space);
        }
        if r != 0 {
            let e = fresh.entry(name).or_default();
            *e = e.wrapping_add(r);
        }
    }
    // Ties go to the smaller name, so the line is the same from run to run.
    let top = |m: std::collections::HashMap<&str, i64>| {
        m.into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
            .map(|(f, v)| (f.to_string(), v))
    };
    if let Some((f, v)) = top(inuse) {
        s.top_function = Some(f);
        s.top_inuse_bytes = v;
    }
    if let Some((f, v)) = top(fresh) {
        s.recent_top_function = Some(f);
        s.recent_top_bytes = v;
    }
    s
}

/// The function `go tool pprof -top` charges a bucket's values to (its flat
/// function): runtime/pprof drops the leading runtime frames, and a return PC is
/// looked up at PC − 1, innermost inlined function first. A stack that is all
/// runtime (e.g. goroutine creation) is named by its leaf.
fn flat_function<'a>(
    sym: &oom_core::Symbolizer<'a>,
    frames: &[FrameSlot<'a>],
    b: &Bucket<'_>,
) -> &'a str {
    let mut leaf = None;
    for pc in b.stack.iter() {
        let f = match pprof::cached_frame(frames, pc) {
            Some(f) => f,
            None => match sym.frame(pc) {
                Ok(f) => f,
                Err(_) => continue,
            },
        };
        if !f.is_known() {
            continue;
        }
        leaf.get_or_insert(f.function);
        if !f.function.starts_with("runtime.") && !f.function.starts_with("internal/runtime/") {
            return f.function;
        }
    }
    leaf.unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::{Incomplete, Timings};
    use std::time::Duration;

    #[test]
    fn timings_are_fields_in_pipeline_order() {
        let us = Duration::from_micros;
        let mut t = Timings {
            deliver: None,
            assemble: us(250),
            symbolize: us(500),
            encode: us(2000),
            gzip: us(750),
            write: None,
        };
        assert_eq!(
            t.fields(),
            " assemble=0.250ms symbolize=0.500ms encode=2.000ms gzip=0.750ms"
        );
        t.deliver = Some(us(1500));
        t.write = Some(us(3000));
        assert_eq!(
            t.fields(),
            " deliver=1.500ms assemble=0.250ms symbolize=0.500ms encode=2.000ms gzip=0.750ms write=3.000ms"
        );
    }

    #[test]
    fn step_caps_say_which_walk_and_how_many_steps() {
        let fallback = Incomplete::StepCap {
            steps: 4_325_376,
            fallback: true,
        };
        assert!(fallback.to_string().starts_with(
            "walk stopped at the fallback walk's cap of 4325376 steps (kernel without bpf_loop;"
        ));
        let bpf_loop = Incomplete::StepCap {
            steps: 8_388_608,
            fallback: false,
        };
        assert!(bpf_loop
            .to_string()
            .starts_with("walk stopped at bpf_loop's cap of 8388608 steps"));
        assert!(Incomplete::NotWalked
            .to_string()
            .contains("no buckets read"));
    }
}
