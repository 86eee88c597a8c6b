//! gopclntab parsing and symbolization of arbitrary PCs; moduledata search.
#![no_main]
use libfuzzer_sys::fuzz_target;
use oom_core::layout::{GoVersion, Layout};
use oom_core::pclntab::{print_name_pieces, LoadBias, ModuleData, Pclntab, Symbolizer};

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let (pcs, tab) = data.split_at(16);
    let layout = Layout::for_version(GoVersion { minor: 19 + u16::from(pcs[0] % 9), patch: 0 }).unwrap();
    let _ = ModuleData::find(tab, u64::from_le_bytes(pcs[8..16].try_into().unwrap()), &layout);
    let Ok(t) = Pclntab::parse(tab) else { return };
    let _ = (t.text_len(), t.func_by_name("runtime.main"));
    for i in 0..t.func_count().min(64) {
        if let Ok(f) = t.func(i) {
            let _ = f.name().map(print_name_pieces);
        }
    }
    // gofunc is the same bytes, so inline trees point somewhere parseable.
    let sym = Symbolizer::new(t, 0x1000, tab, LoadBias(0), layout);
    let base = u64::from_le_bytes(pcs[..8].try_into().unwrap()) % 0x10_0000;
    for k in 0..32u64 {
        let pc = 0x1000 + base + k * 7;
        let _ = sym.frame(pc);
        let _ = sym.name_at(pc);
        let _ = sym.inline_levels(pc, |_| {});
    }
});
