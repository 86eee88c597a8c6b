//! Shared by the real-binary tests and the benchmark: load a Go ELF binary with the
//! `object` crate the way oom-loader will, and hand its pieces to oom-core.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use object::{Object, ObjectSection, ObjectSymbol};
use oom_core::buildinfo::{self, BuildInfo};
use oom_core::layout::{GoVersion, Layout};
use oom_core::pclntab::{ModuleData, Pclntab, Symbolizer};
use std::path::Path;

/// A Go binary's bytes plus where its pieces are.
pub struct GoBinary {
    pub data: Vec<u8>,
    pub layout: Layout,
    pub go_version: String,
    /// (file range of the pclntab, its link address)
    pub pclntab: (std::ops::Range<usize>, u64),
    pub moduledata: ModuleData,
    /// file range of the bytes from gofunc to the end of its section
    pub gofunc: std::ops::Range<usize>,
    /// (.text address, file range)
    pub text: (u64, std::ops::Range<usize>),
    pub symbols: Vec<(String, u64)>,
    pub gnu_build_id: Option<String>,
    pub is_pie: bool,
    /// link-address ranges of writable data (for stripped-variable validation)
    pub data_range: std::ops::Range<u64>,
    pub arch: oom_core::stripped::Arch,
}

fn file_range(s: &object::Section<'_, '_>) -> Option<std::ops::Range<usize>> {
    let (off, len) = s.file_range()?;
    Some(off as usize..(off + len) as usize)
}

impl GoBinary {
    pub fn load(path: &Path) -> GoBinary {
        let data = std::fs::read(path).unwrap();
        let f = object::File::parse(&*data).unwrap();
        let bi_sec = f.section_by_name(".go.buildinfo").expect(".go.buildinfo");
        let bi = BuildInfo::parse(bi_sec.data().unwrap()).unwrap();
        let go_version = bi.go_version.to_string();
        let layout = Layout::for_version(GoVersion::parse(bi.go_version).unwrap()).unwrap();
        let mut gnu = None;
        for s in f.sections() {
            if s.kind() == object::SectionKind::Note {
                if let Ok(Some(id)) = buildinfo::gnu_build_id(s.data().unwrap()) {
                    gnu = Some(buildinfo::HexId::new(id).unwrap().as_str().to_string());
                }
            }
        }
        // The pclntab: its own section, or (cgo PIE ≤ 1.25) found by magic in .data.rel.ro.
        let mut pcl = None;
        for name in [".gopclntab", ".data.rel.ro.gopclntab"] {
            if let Some(s) = f.section_by_name(name) {
                pcl = Some((file_range(&s).unwrap(), s.address()));
            }
        }
        if pcl.is_none() {
            for s in f.sections() {
                let Some(r) = file_range(&s) else { continue };
                let d = &data[r.clone()];
                for i in (0..d.len().saturating_sub(8)).step_by(8) {
                    if (d[i..i + 4] == [0xf1, 0xff, 0xff, 0xff]
                        || d[i..i + 4] == [0xf0, 0xff, 0xff, 0xff])
                        && d[i + 4] == 0
                        && d[i + 5] == 0
                        && d[i + 7] == 8
                        && Pclntab::parse(&d[i..]).is_ok()
                    {
                        pcl = Some((r.start + i..r.end, s.address() + i as u64));
                        break;
                    }
                }
                if pcl.is_some() {
                    break;
                }
            }
        }
        let pclntab = pcl.expect("pclntab");
        let mut md = None;
        for name in [".go.module", ".noptrdata", ".data.rel.ro", ".data"] {
            if let Some(s) = f.section_by_name(name) {
                if let Some(r) = file_range(&s) {
                    if let Ok((_, m)) = ModuleData::find(&data[r], pclntab.1, &layout) {
                        md = Some(m);
                        break;
                    }
                }
            }
        }
        let moduledata = md.expect("moduledata");
        let mut gofunc = None;
        for s in f.sections() {
            if s.address() <= moduledata.gofunc && moduledata.gofunc < s.address() + s.size() {
                if let Some(r) = file_range(&s) {
                    gofunc = Some(r.start + (moduledata.gofunc - s.address()) as usize..r.end);
                }
            }
        }
        let text_sec = f.section_by_name(".text").unwrap();
        let symbols = f
            .symbols()
            .filter_map(|s| Some((s.name().ok()?.to_string(), s.address())))
            .collect();
        let mut lo = u64::MAX;
        let mut hi = 0;
        for s in f.sections() {
            let n = s.name().unwrap_or("");
            if n.contains("data") || n.contains("bss") {
                lo = lo.min(s.address());
                hi = hi.max(s.address() + s.size());
            }
        }
        let arch = match f.architecture() {
            object::Architecture::Aarch64 => oom_core::stripped::Arch::Arm64,
            _ => oom_core::stripped::Arch::Amd64,
        };
        GoBinary {
            is_pie: f.kind() == object::ObjectKind::Dynamic,
            text: (text_sec.address(), file_range(&text_sec).unwrap()),
            data,
            layout,
            go_version,
            pclntab,
            moduledata,
            gofunc: gofunc.expect("gofunc section"),
            symbols,
            gnu_build_id: gnu,
            data_range: lo..hi,
            arch,
        }
    }

    pub fn pclntab(&self) -> Pclntab<'_> {
        Pclntab::parse(&self.data[self.pclntab.0.clone()]).unwrap()
    }

    pub fn symbolizer(&self, bias: u64) -> Symbolizer<'_> {
        Symbolizer::new(
            self.pclntab(),
            self.moduledata.text,
            &self.data[self.gofunc.clone()],
            oom_core::pclntab::LoadBias(bias),
            self.layout,
        )
    }

    pub fn symbol(&self, name: &str) -> Option<u64> {
        self.symbols
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, a)| a)
    }

    pub fn code(&self) -> oom_core::stripped::Code<'_> {
        oom_core::stripped::Code {
            addr: self.text.0,
            bytes: &self.data[self.text.1.clone()],
        }
    }
}

/// Load bias of `exe` in process `pid` from /proc/PID/maps (0 for non-PIE).
pub fn load_bias(pid: i32, bin: &GoBinary) -> u64 {
    if !bin.is_pie {
        return 0;
    }
    let f = object::File::parse(&*bin.data).unwrap();
    // p_vaddr - p_offset of the first PT_LOAD (offset 0).
    let first_vaddr = match &f {
        object::File::Elf64(e) => {
            use object::read::elf::ProgramHeader;
            let endian = e.endian();
            e.elf_program_headers()
                .iter()
                .find(|p| p.p_type(endian) == object::elf::PT_LOAD)
                .map(|p| p.p_vaddr(endian) - p.p_offset(endian))
                .unwrap()
        }
        _ => 0,
    };
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    for l in maps.lines() {
        let parts: Vec<&str> = l.split_whitespace().collect();
        if parts.len() >= 6 && Path::new(parts[5]) == exe {
            let start = u64::from_str_radix(parts[0].split('-').next().unwrap(), 16).unwrap();
            let off = u64::from_str_radix(parts[2], 16).unwrap();
            return start - off - (first_vaddr & !0xfff);
        }
    }
    panic!("executable not in maps");
}

/// Executable mappings of `pid` as runtime/pprof reads them.
pub fn mappings(pid: i32) -> Vec<(u64, u64, u64, String)> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut out = Vec::new();
    for l in maps.lines() {
        let mut it = l.splitn(6, ' ');
        let range = it.next().unwrap();
        let perm = it.next().unwrap();
        let off = it.next().unwrap();
        let _dev = it.next();
        let inode = it.next().unwrap();
        let name = it
            .next()
            .unwrap_or("")
            .trim_start()
            .trim_end_matches(" (deleted)")
            .to_string();
        if !perm.contains('x') || (inode == "0" && name.is_empty()) {
            continue;
        }
        let (a, b) = range.split_once('-').unwrap();
        out.push((
            u64::from_str_radix(a, 16).unwrap(),
            u64::from_str_radix(b, 16).unwrap(),
            u64::from_str_radix(off, 16).unwrap(),
            name,
        ));
    }
    out
}

/// Lower-case hex GNU build ID of the ELF file at `path`, as runtime/pprof's
/// `elfBuildID` finds it (SHT_NOTE sections); "" when absent or unreadable.
pub fn file_build_id(path: &str) -> String {
    let Ok(data) = std::fs::read(path) else {
        return String::new();
    };
    let Ok(f) = object::File::parse(&*data) else {
        return String::new();
    };
    for s in f.sections() {
        if s.kind() == object::SectionKind::Note {
            if let Ok(Some(id)) = s.data().map(buildinfo::gnu_build_id).unwrap_or(Ok(None)) {
                return buildinfo::HexId::new(id)
                    .map(|h| h.as_str().to_string())
                    .unwrap_or_default();
            }
        }
    }
    String::new()
}
