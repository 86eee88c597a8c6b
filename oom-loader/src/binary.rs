//! Analysis of a Go executable, done once per binary: Go version and layout, build IDs,
//! the addresses of the runtime variables the profile is read from, and everything the
//! symbolizer needs. Works on stripped (`-s -w`), PIE and cgo binaries.
//!
//! The file is memory-mapped, never read whole: only the pages the analysis touches
//! (ELF headers, buildinfo, notes, gopclntab, moduledata, the code of a few runtime
//! functions) are paged in.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{ElfFile64, ProgramHeader as _};
use object::{LittleEndian, Object as _, ObjectSection as _, ObjectSymbol as _, SectionKind};
use oom_core::buildinfo::{self, BuildInfo, HexId};
use oom_core::layout::{GoVersion, Layout};
use oom_core::pclntab::{ModuleData, Pclntab, Symbolizer};
use oom_core::stripped::{self, Arch, Code};

use crate::procmaps::Segment;

/// Identity of an executable file: two processes with equal keys run the same binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BinaryKey {
    /// Device of the file.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
}

impl BinaryKey {
    /// The key of an open file.
    ///
    /// Returns an error if fstat fails.
    pub fn of(file: &File) -> std::io::Result<Self> {
        Ok(Self::of_metadata(&file.metadata()?))
    }

    /// The key of a file from its metadata (e.g. `stat` of `/proc/PID/exe`, which
    /// follows the link to the executable).
    pub fn of_metadata(m: &std::fs::Metadata) -> Self {
        Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        }
    }
}

/// Why a file could not be analysed.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// Reading the file failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not a 64-bit little-endian ELF file.
    #[error("{0}: not a 64-bit little-endian ELF executable")]
    NotElf(PathBuf),
    /// An ELF file without Go build information.
    #[error("{0}: not a Go program (no Go build information)")]
    NotGo(PathBuf),
    /// A Go program oomprof cannot read.
    #[error("{path}: {what}: {source}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What was being read.
        what: &'static str,
        /// The parser's reason.
        source: oom_core::Error,
    },
    /// A required structure is missing or malformed.
    #[error("{path}: {what}")]
    Missing {
        /// The file.
        path: PathBuf,
        /// What is missing.
        what: &'static str,
    },
}

/// Link-time addresses of the runtime variables oomprof reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeVars {
    /// `runtime.mbuckets` (head of the memory-profile bucket list).
    pub mbuckets: u64,
    /// `runtime.MemProfileRate`, if found.
    pub mem_profile_rate: Option<u64>,
    /// `runtime.mProfCycle`, if found.
    pub mprof_cycle: Option<u64>,
    /// `runtime.disableMemoryProfiling`, if found (only through `.symtab`).
    pub disable_memory_profiling: Option<u64>,
}

/// Where the runtime variables were found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarSource {
    /// The ELF symbol table.
    Symtab,
    /// Decoding the runtime's code (stripped binary).
    Code,
}

/// One analysed Go executable: the file mapping and what was learnt from it.
#[derive(Debug)]
pub struct GoBinary {
    map: memmap2::Mmap,
    /// The file the map is of, kept open to fstat it before each use: truncated in
    /// place after the last process running it exited, the map would fault (SIGBUS).
    file: File,
    /// Identity of the file.
    pub key: BinaryKey,
    /// What the analysis found.
    pub info: BinaryInfo,
}

/// Everything oomprof needs to know about one Go executable.
#[derive(Clone, Debug)]
pub struct BinaryInfo {
    /// The path it was opened as.
    pub path: PathBuf,
    /// Go version string, e.g. `go1.27.3`.
    pub go_version: String,
    /// Per-version layouts and rules.
    pub layout: Layout,
    /// Main module path, if built with modules.
    pub main_path: Option<String>,
    /// Main module version (`(devel)` for local builds).
    pub main_version: Option<String>,
    /// `vcs.revision` build setting.
    pub vcs_revision: Option<String>,
    /// Go build ID (`.note.go.buildid`).
    pub go_build_id: Option<String>,
    /// GNU build ID in lower-case hex (what pprof puts in `Mapping.build_id`), or "".
    pub gnu_build_id: String,
    /// Instruction set.
    pub arch: Arch,
    /// Position-independent (ET_DYN): addresses move by the load bias.
    pub pie: bool,
    /// PT_LOAD segments.
    pub segments: Vec<Segment>,
    /// Runtime variables (link-time addresses).
    pub vars: RuntimeVars,
    /// Where `vars` came from.
    pub var_source: VarSource,
    /// The linker's `runtime.disableMemoryProfiling` as stored in the file, when known.
    pub profiling_disabled_by_linker: Option<bool>,
    /// File range of the gopclntab.
    pub pclntab: Range<usize>,
    /// Text base (`moduledata.text`), link-time.
    pub text: u64,
    /// File range from `moduledata.gofunc` to the end of its segment's file data.
    pub gofunc: Range<usize>,
}

fn section_file_range(
    s: &object::read::elf::ElfSection64<'_, '_, LittleEndian>,
) -> Option<Range<usize>> {
    let (off, size) = s.file_range()?;
    let start = usize::try_from(off).ok()?;
    Some(start..start.checked_add(usize::try_from(size).ok()?)?)
}

impl GoBinary {
    /// Analyses the executable open as `file` (e.g. `/proc/PID/exe`), shown as `path`.
    ///
    /// Returns an error if it is not a Go ELF executable oomprof can read.
    pub fn analyze(file: &File, path: &Path) -> Result<GoBinary, AnalyzeError> {
        let io = |source| AnalyzeError::Io {
            path: path.to_path_buf(),
            source,
        };
        let key = BinaryKey::of(file).map_err(io)?;
        let map = crate::sys::mmap::map_readonly(file).map_err(io)?;
        let info = BinaryInfo::analyze(&map, path)?;
        crate::sys::mmap::release(&map);
        let file = file.try_clone().map_err(io)?;
        Ok(GoBinary {
            map,
            file,
            key,
            info,
        })
    }

    /// True while the file is as it was analysed (same size and mtime): only then may
    /// its mapping be read. A running executable cannot be written, but once its last
    /// process exited it can be rewritten in place, and reading a truncated mapping
    /// kills the reader with SIGBUS.
    pub fn unchanged(&self) -> bool {
        BinaryKey::of(&self.file).is_ok_and(|k| k == self.key)
    }

    /// Drops the pages the last symbolization touched from this process's RSS (they
    /// stay in the page cache).
    pub fn release_pages(&self) {
        crate::sys::mmap::release(&self.map);
    }

    /// A symbolizer for a process running this binary with load bias `bias`.
    ///
    /// Returns an error only if the mapped file changed under us (it cannot while the
    /// binary runs).
    pub fn symbolizer(&self, bias: u64) -> Result<Symbolizer<'_>, oom_core::Error> {
        let pcln = self.map.get(self.info.pclntab.clone()).unwrap_or_default();
        let tab = Pclntab::parse(pcln)?;
        let gofunc = self.map.get(self.info.gofunc.clone()).unwrap_or_default();
        Ok(Symbolizer::new(
            tab,
            self.info.text,
            gofunc,
            oom_core::pclntab::LoadBias(bias),
            self.info.layout,
        ))
    }

    /// Length of the file mapping (address space; the kernel pages in only what the
    /// analysis and symbolization touch).
    pub fn mapped_len(&self) -> usize {
        self.map.len()
    }
}

impl BinaryInfo {
    /// Analyses an executable's bytes, shown as `path` in errors.
    ///
    /// Returns an error if it is not a Go ELF executable oomprof can read.
    pub fn analyze(data: &[u8], path: &Path) -> Result<BinaryInfo, AnalyzeError> {
        let p = || path.to_path_buf();
        let missing = |what| AnalyzeError::Missing { path: p(), what };
        let unsupported = |what, source| AnalyzeError::Unsupported {
            path: p(),
            what,
            source,
        };
        let elf = ElfFile64::<LittleEndian>::parse(data).map_err(|_| AnalyzeError::NotElf(p()))?;
        let endian = elf.endian();
        let header = elf.elf_header();
        let arch = match header.e_machine.get(endian) {
            elf::EM_X86_64 => Arch::Amd64,
            elf::EM_AARCH64 => Arch::Arm64,
            _ => return Err(AnalyzeError::NotElf(p())),
        };
        let pie = header.e_type.get(endian) == elf::ET_DYN;
        let segments: Vec<Segment> = elf
            .elf_program_headers()
            .iter()
            .filter(|ph| ph.p_type(endian) == elf::PT_LOAD)
            .map(|ph| Segment {
                vaddr: ph.p_vaddr(endian),
                offset: ph.p_offset(endian),
                filesz: ph.p_filesz(endian),
            })
            .collect();

        // Identity: buildinfo, then notes. Without the section (stripped section
        // headers) the linker still puts the blob at the start of the first writable
        // segment: look only there, in its first 64 KiB, so a hostile or huge file is
        // never scanned whole.
        let bi = match elf
            .section_by_name(".go.buildinfo")
            .and_then(|s| s.data().ok())
        {
            Some(d) => BuildInfo::parse(d),
            None => elf
                .elf_program_headers()
                .iter()
                .find(|ph| ph.p_type(endian) == elf::PT_LOAD && ph.p_flags(endian) & elf::PF_W != 0)
                .and_then(|ph| {
                    let start = usize::try_from(ph.p_offset(endian)).ok()?;
                    let len = usize::try_from(ph.p_filesz(endian)).ok()?.min(64 << 10);
                    data.get(start..start.checked_add(len)?)
                })
                .map_or(
                    Err(oom_core::Error::NotFound { what: "buildinfo" }),
                    BuildInfo::find,
                ),
        }
        .map_err(|_| AnalyzeError::NotGo(p()))?;
        let version = GoVersion::parse(bi.go_version).map_err(|e| unsupported("Go version", e))?;
        let layout = Layout::for_version(version).map_err(|e| unsupported("Go version", e))?;
        let mut go_build_id = None;
        let mut gnu_build_id = String::new();
        for s in elf.sections().filter(|s| s.kind() == SectionKind::Note) {
            let Ok(d) = s.data() else { continue };
            if let Ok(Some(id)) = buildinfo::go_build_id(d) {
                go_build_id = Some(id.to_string());
            }
            if let Ok(Some(id)) = buildinfo::gnu_build_id(d) {
                if let Ok(hex) = HexId::new(id) {
                    gnu_build_id = hex.as_str().to_string();
                }
            }
        }

        // The symbols we use, found in one pass over .symtab (absent when stripped).
        const WANTED: [&str; 7] = [
            "runtime.pclntab",
            "runtime.epclntab",
            "runtime.firstmoduledata",
            "runtime.mbuckets",
            "runtime.MemProfileRate",
            "runtime.mProfCycle",
            "runtime.disableMemoryProfiling",
        ];
        let mut found = [None::<u64>; WANTED.len()];
        for sym in elf.symbols() {
            let Ok(name) = sym.name() else { continue };
            if !name.starts_with("runtime.") {
                continue;
            }
            if let Some(i) = WANTED.iter().position(|w| *w == name) {
                found[i].get_or_insert(sym.address());
            }
        }
        let symbol = |name: &str| {
            WANTED
                .iter()
                .position(|w| *w == name)
                .and_then(|i| found[i])
        };
        // gopclntab: its own section where the linker made one, else runtime.pclntab.
        let file_off = |addr: u64| -> Option<usize> {
            segments.iter().find_map(|s| {
                let rel = addr.checked_sub(s.vaddr)?;
                (rel < s.filesz).then(|| usize::try_from(s.offset + rel).ok())?
            })
        };
        let (pcln_addr, pcln_range) = if let Some(s) = elf
            .section_by_name(".gopclntab")
            .or_else(|| elf.section_by_name(".data.rel.ro.gopclntab"))
        {
            (
                s.address(),
                section_file_range(&s).ok_or_else(|| missing("gopclntab has no file data"))?,
            )
        } else if let (Some(start), Some(end)) =
            (symbol("runtime.pclntab"), symbol("runtime.epclntab"))
        {
            let a = file_off(start).ok_or_else(|| missing("runtime.pclntab outside the file"))?;
            let len = usize::try_from(end.saturating_sub(start)).unwrap_or(0);
            (start, a..a + len)
        } else {
            find_pclntab(&elf, data).ok_or_else(|| missing("no gopclntab"))?
        };
        let pcln_bytes = data
            .get(pcln_range.clone())
            .ok_or_else(|| missing("gopclntab outside the file"))?;
        let tab = Pclntab::parse(pcln_bytes).map_err(|e| unsupported("gopclntab", e))?;

        // moduledata: by symbol, else by its first word (the pcHeader address).
        let md = match symbol("runtime.firstmoduledata")
            .and_then(file_off)
            .and_then(|o| data.get(o..))
        {
            Some(d) => ModuleData::parse(d, &layout)
                .map_err(|e| unsupported("runtime.firstmoduledata", e))?,
            None => [".go.module", ".noptrdata", ".data", ".data.rel.ro"]
                .iter()
                .filter_map(|n| elf.section_by_name(n))
                .filter_map(|s| s.data().ok())
                .find_map(|d| ModuleData::find(d, pcln_addr, &layout).ok().map(|(_, m)| m))
                .ok_or_else(|| missing("runtime.firstmoduledata not found"))?,
        };
        let gofunc_start =
            file_off(md.gofunc).ok_or_else(|| missing("moduledata.gofunc outside the file"))?;
        let gofunc_end = segments
            .iter()
            .find_map(|s| {
                let rel = md.gofunc.checked_sub(s.vaddr)?;
                (rel < s.filesz).then(|| usize::try_from(s.offset + s.filesz).ok())?
            })
            .unwrap_or(gofunc_start);

        // Runtime variables: .symtab, else decode the code that loads them.
        let (vars, var_source) = match symbol("runtime.mbuckets") {
            Some(mbuckets) => (
                RuntimeVars {
                    mbuckets,
                    mem_profile_rate: symbol("runtime.MemProfileRate"),
                    mprof_cycle: symbol("runtime.mProfCycle"),
                    disable_memory_profiling: symbol("runtime.disableMemoryProfiling"),
                },
                VarSource::Symtab,
            ),
            None => {
                let text_sec = elf
                    .section_by_name(".text")
                    .ok_or_else(|| missing("no .text section"))?;
                let code = Code {
                    addr: text_sec.address(),
                    bytes: text_sec.data().map_err(|_| missing(".text has no data"))?,
                };
                // The variables live in the writable part of the image.
                let writable =
                    writable_range(&elf).ok_or_else(|| missing("no writable segment"))?;
                let mbuckets = stripped::find_mbuckets(&tab, md.text, code, arch, writable.clone())
                    .map_err(|e| unsupported("runtime.mbuckets", e))?;
                let rate =
                    stripped::find_mem_profile_rate(&tab, md.text, code, arch, writable.clone())
                        .ok();
                // Without it the profile lags a GC flush (go-runtime.md §1.4), no more.
                let cycle = stripped::find_mprof_cycle(&tab, md.text, code, arch, writable).ok();
                (
                    RuntimeVars {
                        mbuckets,
                        mem_profile_rate: rate,
                        mprof_cycle: cycle,
                        disable_memory_profiling: None,
                    },
                    VarSource::Code,
                )
            }
        };
        // The flag is 1 in initialised data when the linker set it, else it sits in bss.
        let profiling_disabled_by_linker = vars.disable_memory_profiling.map(|a| {
            file_off(a)
                .filter(|_| {
                    elf.sections().any(|s| {
                        s.kind() != SectionKind::UninitializedData
                            && (s.address()..s.address() + s.size()).contains(&a)
                    })
                })
                .and_then(|o| data.get(o))
                .is_some_and(|&b| b != 0)
        });

        let mods = bi.modinfo;
        let field = |prefix: &str| {
            mods.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .map(str::to_string)
        };
        let main = field("mod\t");
        let mut main_parts = main.as_deref().unwrap_or("").split('\t');
        let main_path = main_parts
            .next()
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let main_version = main_parts.next().map(str::to_string);

        Ok(BinaryInfo {
            path: p(),
            go_version: bi.go_version.to_string(),
            layout,
            main_path: main_path.or_else(|| field("path\t")),
            main_version,
            vcs_revision: bi.setting("vcs.revision").map(str::to_string),
            go_build_id,
            gnu_build_id,
            arch,
            pie,
            segments,
            vars,
            var_source,
            profiling_disabled_by_linker,
            pclntab: pcln_range,
            text: md.text,
            gofunc: gofunc_start..gofunc_end,
        })
    }
}

/// The link-time range covering every writable PT_LOAD (data and bss).
fn writable_range(elf: &ElfFile64<'_, LittleEndian>) -> Option<Range<u64>> {
    let endian = elf.endian();
    let mut lo = u64::MAX;
    let mut hi = 0u64;
    for ph in elf.elf_program_headers() {
        if ph.p_type(endian) == elf::PT_LOAD && ph.p_flags(endian) & elf::PF_W != 0 {
            let start = ph.p_vaddr(endian);
            lo = lo.min(start);
            hi = hi.max(start.saturating_add(ph.p_memsz(endian)));
        }
    }
    (lo < hi).then_some(lo..hi)
}

/// Scans read-only sections for a gopclntab header (externally linked PIE ≤ 1.25 merges
/// it into `.data.rel.ro`): magic, two zero bytes, quantum 1/2/4, pointer size 8.
fn find_pclntab(elf: &ElfFile64<'_, LittleEndian>, data: &[u8]) -> Option<(u64, Range<usize>)> {
    for s in elf.sections() {
        if !matches!(
            s.kind(),
            SectionKind::ReadOnlyData | SectionKind::ReadOnlyDataWithRel | SectionKind::Data
        ) {
            continue;
        }
        let Some(range) = section_file_range(&s) else {
            continue;
        };
        let Some(bytes) = data.get(range.clone()) else {
            continue;
        };
        for off in (0..bytes.len().saturating_sub(16)).step_by(8) {
            let Some(h) = bytes.get(off..off + 8) else {
                break;
            };
            let magic_ok = h[..4] == [0xf1, 0xff, 0xff, 0xff] || h[..4] == [0xf0, 0xff, 0xff, 0xff];
            if magic_ok && h[4] == 0 && h[5] == 0 && matches!(h[6], 1 | 2 | 4) && h[7] == 8 {
                let tail = bytes.get(off..).unwrap_or_default();
                if Pclntab::parse(tail).is_ok() {
                    return Some((s.address() + off as u64, range.start + off..range.end));
                }
            }
        }
    }
    None
}
