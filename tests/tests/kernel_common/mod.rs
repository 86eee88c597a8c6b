//! Shared helpers of the `kernel_*` end-to-end tests: symbol lookup in fixture
//! binaries (`.symtab`; the stripped-binary finder comes from oom-core later), watch
//! registration, event waiting, and the in-use ranking of captured buckets.
#![allow(
    dead_code,
    reason = "each test binary uses a different subset (expect would fail where all are used)"
)]

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use object::{Object, ObjectSection, ObjectSymbol};
use oom_loader::{Capture, CycleLayout, Event, Kernel, KernelConfig, WatchInfo};
use oom_tests::gomatrix::Toolchain;

/// Serialises the tests of one binary: OOM kills and walk timings are measured on a
/// 2-CPU machine, and parallel victims would disturb each other's figures.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Addresses a watch needs, from a non-PIE binary's `.symtab`, and function ranges
/// to check PCs against.
pub struct Symbols {
    pub mbuckets: u64,
    pub mem_profile_rate: u64,
    pub mprof_cycle: u64,
    pub text_start: u64,
    funcs: Vec<(String, u64, u64)>,
}

impl Symbols {
    pub fn read(path: &Path) -> Symbols {
        let data = std::fs::read(path).expect("read binary");
        let elf = object::File::parse(&*data).expect("parse ELF");
        let mut s = Symbols {
            mbuckets: 0,
            mem_profile_rate: 0,
            mprof_cycle: 0,
            text_start: elf
                .section_by_name(".text")
                .map(|t| t.address())
                .expect(".text"),
            funcs: Vec::new(),
        };
        for sym in elf.symbols() {
            let Ok(name) = sym.name() else { continue };
            match name {
                "runtime.mbuckets" => s.mbuckets = sym.address(),
                "runtime.MemProfileRate" => s.mem_profile_rate = sym.address(),
                "runtime.mProfCycle" => s.mprof_cycle = sym.address(),
                _ => {}
            }
            if sym.kind() == object::SymbolKind::Text && sym.size() > 0 {
                s.funcs
                    .push((name.to_string(), sym.address(), sym.address() + sym.size()));
            }
        }
        assert_ne!(s.mbuckets, 0, "runtime.mbuckets in {}", path.display());
        s
    }

    /// The function containing `pc - 1` (return PCs point after the call).
    pub fn func_of(&self, pc: u64) -> Option<&str> {
        let pc = pc.checked_sub(1)?;
        self.funcs
            .iter()
            .find(|(_, lo, hi)| (*lo..*hi).contains(&pc))
            .map(|(n, _, _)| n.as_str())
    }

    pub fn watch_info(&self, tc: &Toolchain) -> WatchInfo {
        WatchInfo {
            mbuckets: self.mbuckets,
            mem_profile_rate: self.mem_profile_rate,
            mprof_cycle: self.mprof_cycle,
            pc_base: self.text_start,
            cycle_layout: if tc.minor() >= 27 {
                CycleLayout::Words2
            } else {
                CycleLayout::Words4
            },
            max_nstk: if tc.minor() <= 22 { 32 } else { 1024 },
        }
    }
}

pub fn load(config: &KernelConfig) -> Kernel {
    match Kernel::load(config) {
        Ok(k) => k,
        Err(e) => panic!("Kernel::load: {e}"),
    }
}

/// Polls until a capture of `pid` arrives, collecting every other event seen
/// (including those that came in the same batch as the capture).
pub fn wait_capture(
    k: &mut Kernel,
    pid: u32,
    timeout: Duration,
    seen: &mut Vec<Event>,
) -> Option<Capture> {
    let deadline = Instant::now() + timeout;
    let mut found = None;
    while found.is_none() && Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        for ev in k.poll(Some(left)).expect("poll") {
            match ev {
                Event::Capture(c) if c.pid == pid && found.is_none() => found = Some(c),
                other => seen.push(other),
            }
        }
    }
    found
}

/// In-use bytes of a bucket over every recorded cycle (active plus the three future
/// ones), unscaled: published or not.
pub fn inuse_bytes(b: &oom_loader::OwnedBucket) -> u64 {
    let r = &b.record;
    let allocs = r.active.allocs + r.future.iter().map(|c| c.allocs).sum::<u64>();
    let frees = r.active.frees + r.future.iter().map(|c| c.frees).sum::<u64>();
    allocs.saturating_sub(frees) * b.size
}

/// Buckets of a capture with whole stacks, panicking on a malformed entry.
pub fn entries(c: &Capture) -> Vec<oom_loader::OwnedBucket> {
    c.buckets().expect("entries parse")
}

/// Which of `ids` bpftool still lists. Ids, not names: other tests running at the
/// same time load programs of the same name.
pub fn leftover_bpf_objects(ids: &oom_loader::BpfIds) -> Vec<String> {
    let mut out = Vec::new();
    for (what, list) in [("prog", &ids.programs), ("map", &ids.maps)] {
        for id in list {
            let o = std::process::Command::new("bpftool")
                .args([what, "show", "id", &id.to_string()])
                .output()
                .expect("bpftool");
            if o.status.success() {
                out.push(
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string(),
                );
            }
        }
    }
    out
}
