//! `BinaryInfo::analyze` finds the same runtime variables with and without `.symtab`,
//! for every Go version of the matrix and every build variant (amd64).
//!
//! A fixture analysed as built (`.symtab` present) is compared with a GNU-`strip`ped
//! copy of the same file (same layout, no `.symtab`: found by decoding code). The
//! `-s -w` variant has no unstripped twin with the same layout, so it is only required
//! to yield every variable; `oom-core/tests/real_binaries.rs` checks its live values.

use std::path::{Path, PathBuf};
use std::process::Command;

use oom_loader::binary::{BinaryInfo, VarSource};
use oom_tests::fixtures::{self, Variant};
use oom_tests::{gomatrix, privileged};

fn analyze(path: &Path) -> BinaryInfo {
    let data = std::fs::read(path).unwrap();
    BinaryInfo::analyze(&data, path).unwrap_or_else(|e| panic!("{e}"))
}

/// A `strip --strip-all` copy of `path` in the temp directory.
fn gnu_strip(path: &Path, tag: &str) -> PathBuf {
    let out =
        std::env::temp_dir().join(format!("oomprof-binary-vars-{}-{tag}", std::process::id()));
    let st = Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(&out)
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success(), "strip {}", path.display());
    out
}

#[test]
#[ignore = "needs the Go matrix: run tests/run"]
fn stripped_vars_equal_symtab_vars() {
    let test = "stripped_vars_equal_symtab_vars";
    let Some(matrix) = gomatrix::matrix(test) else {
        return;
    };
    if Command::new("strip").arg("--version").output().is_err() {
        privileged::skip(test, "GNU strip not installed (binutils)");
        return;
    }
    for tc in &matrix {
        for variant in [Variant::Default, Variant::Pie, Variant::Cgo] {
            let what = format!("go{} {:?}", tc.version, variant);
            let path = fixtures::build("holder", tc, variant).unwrap();
            let full = analyze(&path);
            assert_eq!(full.var_source, VarSource::Symtab, "{what}");
            assert!(
                full.vars.mprof_cycle.is_some(),
                "{what}: no mProfCycle symbol"
            );
            let copy = gnu_strip(&path, &format!("{}-{}", tc.version, variant.name()));
            let bare = analyze(&copy);
            let _ = std::fs::remove_file(&copy);
            assert_eq!(bare.var_source, VarSource::Code, "{what} stripped");
            assert_eq!(bare.vars.mbuckets, full.vars.mbuckets, "{what}: mbuckets");
            assert_eq!(
                bare.vars.mem_profile_rate, full.vars.mem_profile_rate,
                "{what}: MemProfileRate"
            );
            assert_eq!(
                bare.vars.mprof_cycle, full.vars.mprof_cycle,
                "{what}: mProfCycle"
            );
        }
        let path = fixtures::build("holder", tc, Variant::Stripped).unwrap();
        let info = analyze(&path);
        let what = format!("go{} -s -w", tc.version);
        assert_eq!(info.var_source, VarSource::Code, "{what}");
        assert!(
            info.vars.mem_profile_rate.is_some(),
            "{what}: MemProfileRate"
        );
        assert!(info.vars.mprof_cycle.is_some(), "{what}: mProfCycle");
        eprintln!("go{}: vars equal; -s -w: {:x?}", tc.version, info.vars);
    }
}
