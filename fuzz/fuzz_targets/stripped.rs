//! The stripped-variable finder over arbitrary tables and code.
#![no_main]
use libfuzzer_sys::fuzz_target;
use oom_core::pclntab::Pclntab;
use oom_core::stripped::{self, Arch, Code};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    // 2 control bytes: table length (u16); then table, code.
    let (ctl, rest) = data.split_at(2);
    let split = usize::from(u16::from_le_bytes([ctl[0], ctl[1]])).min(rest.len());
    let (tab, code) = rest.split_at(split);
    let Ok(t) = Pclntab::parse(tab) else { return };
    let code = Code { addr: 0x1000, bytes: code };
    for arch in [Arch::Amd64, Arch::Arm64] {
        let _ = stripped::find_mbuckets(&t, 0x1000, code, arch, 0..u64::MAX);
        let _ = stripped::find_mem_profile_rate(&t, 0x1000, code, arch, 0..u64::MAX);
        let _ = stripped::find_mprof_cycle(&t, 0x1000, code, arch, 0..u64::MAX);
    }
});
