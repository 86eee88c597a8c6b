//! `.go.buildinfo`, ELF notes and Go version strings.
#![no_main]
use libfuzzer_sys::fuzz_target;
use oom_core::buildinfo::{self, BuildInfo};
use oom_core::layout::{GoVersion, Layout};

fuzz_target!(|data: &[u8]| {
    for bi in [BuildInfo::parse(data), BuildInfo::find(data)].into_iter().flatten() {
        let _ = (bi.main_path(), bi.main_version(), bi.setting("vcs.revision"));
        bi.settings().for_each(drop);
        if let Ok(v) = GoVersion::parse(bi.go_version) {
            let _ = Layout::for_version(v);
        }
    }
    buildinfo::notes(data).for_each(drop);
    let _ = buildinfo::go_build_id(data);
    if let Ok(Some(id)) = buildinfo::gnu_build_id(data) {
        let _ = buildinfo::HexId::new(id).map(|h| h.as_str().len());
    }
    if let Ok(s) = core::str::from_utf8(data) {
        let _ = GoVersion::parse(s);
    }
});
