//! Growth profiles: sampled page-fault stacks of one process, symbolized and written
//! as a gzipped pprof profile with sample types `faults` and `faulted_space`.
//!
//! ```text
//! GrowthEntry (tgid, PCs leaf first, samples) + /proc/PID/maps (executable mappings)
//!     ──▶ per mapping: Go → gopclntab (binary.rs, inline frames and lines);
//!                      other ELF → .symtab/.dynsym function symbols (object crate,
//!                      Rust and C++ names demangled)
//!         with the mapping's load bias (PIE executables, shared libraries)
//!     ──▶ unwinding checks: a stack of one frame, or a return address outside every
//!         executable mapping, is marked as not unwound (no frame pointers)
//!     ──▶ pprof (hand-written protobuf) ──▶ gzip
//! ```
//!
//! The values are first touches of memory, not allocations: `faulted_space` =
//! samples × period × page size. Memory the allocator reuses does not fault again.
//! A huge-page fault is counted as one page.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use object::{Object, ObjectSegment, ObjectSymbol, SymbolKind};
use oom_core::abi::{GrowthCounters, GrowthEntry, GROWTH_MAX_DEPTH};

use crate::binary::GoBinary;
use crate::procmaps::{self, MapEntry, Segment};

/// Function name of the frame added above a stack frame pointers did not unwind.
pub const NOT_UNWOUND: &str = "[not unwound: no frame pointers?]";
/// Function name of the frame added where unwinding reached an address outside code.
pub const UNWIND_STOPPED: &str = "[unwinding stopped: address outside code, no frame pointers?]";
/// Function name of the frame added above a stack cut at the depth limit.
pub const DEPTH_LIMIT: &str = "[stack cut at 127 frames]";

/// What the profile is of, for its comments.
#[derive(Clone, Debug)]
pub struct GrowthMeta {
    /// Process id.
    pub pid: i32,
    /// Its comm.
    pub comm: String,
    /// Its executable.
    pub exe: PathBuf,
    /// Page faults per sample.
    pub period: u64,
    /// How long it was sampled.
    pub duration: Duration,
    /// The kernel's counters at the end (drops are reported from them).
    pub counters: GrowthCounters,
    /// When the profile was taken.
    pub time: SystemTime,
}

/// A finished growth profile.
#[derive(Clone, Debug)]
pub struct GrowthProfile {
    /// Gzipped pprof.
    pub pprof_gz: Vec<u8>,
    /// Samples in it.
    pub samples: u64,
    /// Distinct stacks.
    pub stacks: usize,
    /// Samples whose stacks frame pointers could not unwind.
    pub not_unwound_samples: u64,
    /// `faulted_space` in all, bytes.
    pub bytes: u64,
    /// The function with the most `faulted_space` (leaf), if any.
    pub top_function: Option<String>,
    /// The profile's comments (what it is, what was lost).
    pub comments: Vec<String>,
}

/// One symbolized frame.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Line {
    function: String,
    file: String,
    line: i64,
}

/// How one mapping is symbolized.
enum Source {
    Go {
        bin: Box<GoBinary>,
        bias: u64,
    },
    Elf {
        syms: Vec<(u64, u64, String)>,
        bias: u64,
    },
    None,
}

/// An executable mapping and how to symbolize it.
struct Mapped {
    entry: MapEntry,
    build_id: String,
    source: Source,
}

fn elf_segments(file: &object::File<'_>) -> Vec<Segment> {
    file.segments()
        .map(|s| {
            let (offset, filesz) = s.file_range();
            Segment {
                vaddr: s.address(),
                offset,
                filesz,
            }
        })
        .collect()
}

/// A Rust symbol as Rust prints it (without the hash), a C++ one as C++ does; other
/// names as they are.
fn demangle(name: &str) -> String {
    if let Ok(d) = rustc_demangle::try_demangle(name) {
        return format!("{d:#}");
    }
    if name.starts_with("_Z") {
        if let Ok(s) = cpp_demangle::Symbol::new(name) {
            if let Ok(d) = s.demangle() {
                return d;
            }
        }
    }
    name.to_string()
}

/// Reads the function symbols of an ELF file (`.symtab`, else `.dynsym`).
fn elf_source(data: &[u8], maps: &[MapEntry], m: &MapEntry) -> (Source, String) {
    let Ok(file) = object::File::parse(data) else {
        return (Source::None, String::new());
    };
    let build_id = file
        .build_id()
        .ok()
        .flatten()
        .map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
        .unwrap_or_default();
    let mut syms: Vec<(u64, u64, String)> = file
        .symbols()
        .chain(file.dynamic_symbols())
        .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
        .filter_map(|s| Some((s.address(), s.size(), demangle(s.name().ok()?))))
        .filter(|(_, _, n)| !n.is_empty())
        .collect();
    syms.sort();
    syms.dedup_by(|a, b| a.0 == b.0);
    let bias = procmaps::load_bias(maps, m.dev, m.inode, &elf_segments(&file)).unwrap_or(0);
    (Source::Elf { syms, bias }, build_id)
}

fn open_mapping(proc_root: &Path, pid: i32, m: &MapEntry) -> Option<File> {
    // map_files reaches the very file mapped, deleted or in another mount namespace.
    let mf = proc_root
        .join(pid.to_string())
        .join("map_files")
        .join(format!("{:x}-{:x}", m.start, m.end));
    File::open(mf).or_else(|_| File::open(&m.path)).ok()
}

impl Mapped {
    fn load(proc_root: &Path, pid: i32, maps: &[MapEntry], m: &MapEntry) -> Mapped {
        let none = |entry: &MapEntry| Mapped {
            entry: entry.clone(),
            build_id: String::new(),
            source: Source::None,
        };
        if m.inode == 0 || m.path.starts_with('[') {
            return none(m);
        }
        let Some(file) = open_mapping(proc_root, pid, m) else {
            return none(m);
        };
        if let Ok(bin) = GoBinary::analyze(&file, Path::new(&m.path)) {
            let bias = procmaps::load_bias(maps, m.dev, m.inode, &bin.info.segments).unwrap_or(0);
            return Mapped {
                entry: m.clone(),
                build_id: bin.info.gnu_build_id.clone(),
                source: Source::Go {
                    bin: Box::new(bin),
                    bias,
                },
            };
        }
        let mut data = Vec::new();
        if std::io::Read::read_to_end(&mut &file, &mut data).is_err() {
            return none(m);
        }
        let (source, build_id) = elf_source(&data, maps, m);
        Mapped {
            entry: m.clone(),
            build_id,
            source,
        }
    }

    /// Frames at `call` (the faulting instruction or a return address − 1),
    /// innermost first; empty when unknown.
    fn symbolize(&self, call: u64) -> Vec<Line> {
        match &self.source {
            Source::Go { bin, bias } => {
                let Ok(sym) = bin.symbolizer(*bias) else {
                    return Vec::new();
                };
                let mut levels = Vec::new();
                if sym.inline_levels(call, |l| levels.push(l.pc)).is_err() || levels.is_empty() {
                    levels = vec![call];
                }
                levels
                    .into_iter()
                    .filter_map(|pc| sym.frame(pc.wrapping_add(1)).ok())
                    .filter(|f| f.is_known())
                    .map(|f| Line {
                        function: f.function.to_string(),
                        file: f.file.to_string(),
                        line: f.line,
                    })
                    .collect()
            }
            Source::Elf { syms, bias } => {
                let link = call.wrapping_sub(*bias);
                let i = syms.partition_point(|s| s.0 <= link);
                let name = i
                    .checked_sub(1)
                    .and_then(|i| syms.get(i))
                    .filter(|(start, size, _)| link < start.saturating_add((*size).max(1)))
                    .map(|s| s.2.clone());
                let function = name.unwrap_or_else(|| {
                    let base = Path::new(&self.entry.path)
                        .file_name()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    format!("{base}+{:#x}", call - self.entry.start + self.entry.offset)
                });
                vec![Line {
                    function,
                    file: String::new(),
                    line: 0,
                }]
            }
            Source::None => Vec::new(),
        }
    }
}

/// A minimal protobuf writer (varints and length-delimited fields).
#[derive(Default)]
struct Pb(Vec<u8>);

impl Pb {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn uint(&mut self, tag: u32, v: u64) {
        if v != 0 {
            self.varint(u64::from(tag) << 3);
            self.varint(v);
        }
    }
    fn bytes(&mut self, tag: u32, b: &[u8]) {
        self.varint(u64::from(tag) << 3 | 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn packed(&mut self, tag: u32, vs: &[u64]) {
        let mut p = Pb::default();
        for &v in vs {
            p.varint(v);
        }
        self.bytes(tag, &p.0);
    }
}

/// The string table.
#[derive(Default)]
struct Strings {
    index: HashMap<String, u64>,
    list: Vec<String>,
}

impl Strings {
    fn id(&mut self, s: &str) -> u64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.list.len() as u64;
        self.list.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

/// The locations of one stack, leaf first: (mapping index or none, call pc, frames).
type Stack = Vec<(Option<usize>, u64, Vec<Line>)>;

/// Builds the growth profile of `entries` (those of `meta.pid`) with the process's
/// `maps` (read while it lived).
///
/// Never fails: frames that cannot be symbolized keep their address, and stacks
/// that could not be unwound are marked, both counted in the comments.
pub fn build(
    proc_root: &Path,
    entries: &[GrowthEntry],
    maps: &[MapEntry],
    meta: &GrowthMeta,
) -> GrowthProfile {
    let page = crate::sys::ring::page_size() as u64;
    let exec: Vec<&MapEntry> = procmaps::executable(maps).collect();
    let mut mapped: Vec<Option<Mapped>> = exec.iter().map(|_| None).collect();
    let find = |pc: u64| exec.iter().position(|m| pc >= m.start && pc < m.end);

    let mut strings = Strings::default();
    strings.id("");
    let mut stacks: Vec<(Stack, u64)> = Vec::new();
    let mut not_unwound = 0u64;
    let mut outside = 0u64;
    let mut depth_cut = 0u64;
    let mut unsymbolized = 0usize;
    for e in entries {
        let mut stack: Stack = Vec::new();
        let mut mark = None;
        for (i, &pc) in e.stack().iter().enumerate() {
            // The leaf is the faulting instruction; callers are return addresses.
            let call = if i == 0 { pc } else { pc.wrapping_sub(1) };
            let Some(mi) = find(call) else {
                mark = Some(if i == 0 { NOT_UNWOUND } else { UNWIND_STOPPED });
                if i > 0 {
                    outside += e.samples;
                }
                break;
            };
            let m =
                mapped[mi].get_or_insert_with(|| Mapped::load(proc_root, meta.pid, maps, exec[mi]));
            let lines = m.symbolize(call);
            if lines.is_empty() {
                unsymbolized += 1;
            }
            stack.push((Some(mi), call, lines));
        }
        if mark.is_none() && e.depth == 1 {
            mark = Some(NOT_UNWOUND);
        }
        if mark.is_none() && e.depth >= GROWTH_MAX_DEPTH {
            depth_cut += e.samples;
            mark = Some(DEPTH_LIMIT);
        }
        if let Some(name) = mark {
            if name != DEPTH_LIMIT {
                not_unwound += e.samples;
            }
            stack.push((
                None,
                0,
                vec![Line {
                    function: name.to_string(),
                    file: String::new(),
                    line: 0,
                }],
            ));
        }
        stacks.push((stack, e.samples));
    }

    // Functions and locations, deduplicated.
    let mut funcs: HashMap<(String, String), u64> = HashMap::new();
    let mut func_msgs = Pb::default();
    let mut locs: HashMap<(Option<usize>, u64, String), u64> = HashMap::new();
    let mut loc_msgs = Pb::default();
    let mut sample_msgs = Pb::default();
    let mut leaf_bytes: HashMap<String, u64> = HashMap::new();
    let total_samples: u64 = stacks.iter().map(|s| s.1).sum();
    for (stack, samples) in &stacks {
        let mut ids = Vec::with_capacity(stack.len());
        for (mi, call, lines) in stack {
            let synthetic = mi.is_none();
            let key_name = lines
                .first()
                .map(|l| l.function.clone())
                .unwrap_or_default();
            let key = (*mi, if synthetic { 0 } else { *call }, key_name);
            let next = locs.len() as u64 + 1;
            let id = *locs.entry(key).or_insert_with(|| {
                let mut loc = Pb::default();
                loc.uint(1, next);
                if let Some(mi) = mi {
                    loc.uint(2, *mi as u64 + 1);
                    loc.uint(3, *call);
                }
                for l in lines {
                    let fkey = (l.function.clone(), l.file.clone());
                    let fnext = funcs.len() as u64 + 1;
                    let fid = *funcs.entry(fkey).or_insert_with(|| {
                        let mut f = Pb::default();
                        f.uint(1, fnext);
                        let name = strings.id(&l.function);
                        f.uint(2, name);
                        f.uint(3, name);
                        f.uint(4, strings.id(&l.file));
                        func_msgs.bytes(5, &f.0);
                        fnext
                    });
                    let mut line = Pb::default();
                    line.uint(1, fid);
                    line.uint(2, l.line as u64);
                    loc.bytes(4, &line.0);
                }
                loc_msgs.bytes(4, &loc.0);
                next
            });
            ids.push(id);
        }
        let faults = samples.saturating_mul(meta.period);
        let bytes = faults.saturating_mul(page);
        let leaf = stack
            .first()
            .and_then(|(_, _, l)| l.first())
            .map(|l| l.function.clone())
            .unwrap_or_else(|| "?".into());
        *leaf_bytes.entry(leaf).or_default() += bytes;
        let mut s = Pb::default();
        s.packed(1, &ids);
        s.packed(2, &[faults, bytes]);
        sample_msgs.bytes(2, &s.0);
    }
    let total_bytes = total_samples
        .saturating_mul(meta.period)
        .saturating_mul(page);
    let top_function = leaf_bytes
        .iter()
        .max_by_key(|(n, b)| (**b, std::cmp::Reverse((*n).clone())))
        .map(|(n, _)| n.clone());

    let c = &meta.counters;
    let mut comments = vec![
        format!(
            "oomprof growth profile of pid {} ({}, {}): page faults sampled 1 in {} for {:.1}s; values are first touches of memory (faulted_space = samples x {} faults x {} B pages), not allocations; memory an allocator reuses is not seen again",
            meta.pid,
            meta.comm,
            meta.exe.display(),
            meta.period,
            meta.duration.as_secs_f64(),
            meta.period,
            page
        ),
        format!(
            "samples: {total_samples} in {} stacks",
            stacks.len()
        ),
    ];
    if not_unwound > 0 {
        comments.push(format!(
            "stacks could not be unwound: {not_unwound} of {total_samples} samples ({:.0}%) have stacks frame pointers did not unwind ({outside} stopped at an address outside code); build with frame pointers (C/C++ -fno-omit-frame-pointer, Rust -C force-frame-pointers=yes)",
            100.0 * not_unwound as f64 / total_samples.max(1) as f64
        ));
    }
    if depth_cut > 0 {
        comments.push(format!(
            "truncated: {depth_cut} samples have stacks cut at {GROWTH_MAX_DEPTH} frames"
        ));
    }
    if c.dropped_full > 0 {
        comments.push(format!(
            "lost: {} samples of new stacks were dropped because the kernel's stack map was full (all processes sampled since the start: {})",
            c.dropped_full, c.samples
        ));
    }
    if unsymbolized > 0 {
        comments.push(format!(
            "{unsymbolized} frames could not be symbolized (no symbols for their mapping)"
        ));
    }

    let mut p = Pb::default();
    for (t, u) in [("faults", "count"), ("faulted_space", "bytes")] {
        let mut vt = Pb::default();
        vt.uint(1, strings.id(t));
        vt.uint(2, strings.id(u));
        p.bytes(1, &vt.0);
    }
    p.0.extend_from_slice(&sample_msgs.0);
    for (i, m) in exec.iter().enumerate() {
        let mut mm = Pb::default();
        mm.uint(1, i as u64 + 1);
        mm.uint(2, m.start);
        mm.uint(3, m.end);
        mm.uint(4, m.offset);
        mm.uint(5, strings.id(&m.path));
        let bid = mapped[i]
            .as_ref()
            .map(|x| x.build_id.clone())
            .unwrap_or_default();
        mm.uint(6, strings.id(&bid));
        mm.uint(
            7,
            u64::from(
                mapped[i]
                    .as_ref()
                    .is_some_and(|x| !matches!(x.source, Source::None)),
            ),
        );
        p.bytes(3, &mm.0);
    }
    p.0.extend_from_slice(&loc_msgs.0);
    p.0.extend_from_slice(&func_msgs.0);
    let time_nanos = meta
        .time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let comment_ids: Vec<u64> = comments.iter().map(|c| strings.id(c)).collect();
    let period_type = (strings.id("space"), strings.id("bytes"));
    let default_type = strings.id("faulted_space");
    for s in &strings.list {
        p.bytes(6, s.as_bytes());
    }
    p.uint(9, time_nanos);
    p.uint(10, meta.duration.as_nanos() as u64);
    let mut pt = Pb::default();
    pt.uint(1, period_type.0);
    pt.uint(2, period_type.1);
    p.bytes(11, &pt.0);
    p.uint(12, meta.period * page);
    p.packed(13, &comment_ids);
    p.uint(14, default_type);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = gz.write_all(&p.0);
    let pprof_gz = gz.finish().unwrap_or_default();
    GrowthProfile {
        pprof_gz,
        samples: total_samples,
        stacks: stacks.len(),
        not_unwound_samples: not_unwound,
        bytes: total_bytes,
        top_function,
        comments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_demangled() {
        // Legacy Rust mangling, with its hash.
        assert_eq!(
            demangle("_ZN4grow8grow_vec17h0123456789abcdefE"),
            "grow::grow_vec"
        );
        assert_eq!(demangle("_ZN5Cache4growEm"), "Cache::grow(unsigned long)");
        assert_eq!(demangle("grow_cache"), "grow_cache");
        // Not valid mangling: kept as it is.
        assert_eq!(demangle("_ZN"), "_ZN");
        assert_eq!(demangle("_Z"), "_Z");
    }

    #[test]
    fn protobuf_varints() {
        let mut p = Pb::default();
        p.uint(1, 300);
        p.uint(2, 0); // zero fields are left out
        p.packed(3, &[1, 128]);
        assert_eq!(p.0, [0x08, 0xac, 0x02, 0x1a, 0x03, 0x01, 0x80, 0x01]);
    }
}
