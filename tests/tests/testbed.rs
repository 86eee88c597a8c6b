//! The test bed itself: every fixture builds with every Go of the matrix in every
//! variant, the kernel really OOM-kills `oomer` in a 64 MiB memory cgroup, and `holder`'s
//! own heap profile is what `go tool pprof` says it should be.

use oom_tests::cgroup::MemCgroup;
use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix;
use oom_tests::pprof_raw::RawProfile;
use oom_tests::privileged;
use oom_tests::process::Running;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

#[test]
#[ignore = "needs the Go matrix: run tests/run"]
fn every_fixture_builds_with_every_go_in_every_variant() {
    let Some(matrix) = gomatrix::matrix("every_fixture_builds_with_every_go_in_every_variant")
    else {
        return;
    };
    let start = Instant::now();
    let mut failures = Vec::new();
    for tc in &matrix {
        for v in Variant::ALL {
            for name in fixtures::ALL {
                if let Err(e) = fixtures::build(name, tc, v) {
                    failures.push(e);
                }
            }
        }
    }
    eprintln!(
        "built {} fixtures × {} Go × {} variants in {:.1?}",
        fixtures::ALL.len(),
        matrix.len(),
        Variant::ALL.len(),
        start.elapsed()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
#[ignore = "needs the Go matrix: run tests/run"]
fn cgo_variant_is_really_cgo_and_the_others_are_not() {
    let Some(tc) = gomatrix::newest("cgo_variant_is_really_cgo_and_the_others_are_not") else {
        return;
    };
    for v in Variant::ALL {
        let bin = fixtures::build("holder", &tc, v).unwrap();
        let mut p =
            Running::spawn(Command::new(&bin).args(["-large", "1", "-small", "1"])).unwrap();
        let ready = p.wait_line("ready", Duration::from_secs(20)).unwrap();
        assert_eq!(
            ready.contains("cgo=true"),
            v == Variant::Cgo,
            "{}: {ready}",
            v.name()
        );
    }
}

#[test]
#[ignore = "needs root (a memory cgroup) and the Go matrix: run tests/run"]
fn oomer_is_oom_killed_in_a_64mib_cgroup_with_every_go() {
    const T: &str = "oomer_is_oom_killed_in_a_64mib_cgroup_with_every_go";
    if !privileged::root(T) {
        return;
    }
    let Some(matrix) = gomatrix::matrix(T) else {
        return;
    };
    for tc in &matrix {
        let bin = fixtures::build("oomer", tc, Variant::Default).unwrap();
        let cg = MemCgroup::create(64 * MIB).unwrap();
        let before = cg.oom_kills().unwrap();
        let child = cg.spawn(&mut Command::new(&bin)).unwrap();
        let mut p = Running::adopt(child);
        let status = p.wait_exit(Duration::from_secs(60)).unwrap();
        let after = cg.oom_kills().unwrap();
        eprintln!(
            "go {}: {:?} cgroup {:?}, oom_kill {before} -> {after}",
            tc.version,
            status,
            cg.version()
        );
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "go {}: {status:?}",
            tc.version
        );
        assert!(
            after > before,
            "go {}: oom_kill counter did not move",
            tc.version
        );
    }
}

#[test]
#[ignore = "needs root (a memory cgroup): run tests/run"]
fn cgroup_is_removed_even_when_the_test_panics() {
    const T: &str = "cgroup_is_removed_even_when_the_test_panics";
    if !privileged::root(T) {
        return;
    }
    let path = std::sync::Mutex::new(None);
    let r = std::panic::catch_unwind(|| {
        let cg = MemCgroup::create(64 * MIB).unwrap();
        *path.lock().unwrap() = Some(cg.path().to_path_buf());
        let _child = Running::adopt(cg.spawn(Command::new("sleep").arg("600")).unwrap());
        assert_eq!(cg.pids().len(), 1);
        panic!("deliberate");
    });
    assert!(r.is_err());
    let p = path.lock().unwrap().clone().unwrap();
    assert!(!p.exists(), "{} left behind", p.display());
}

/// Holder's own profile, as `go tool pprof -raw` of the same Go version reads it.
fn holder_profile(tc: &gomatrix::Toolchain, rate: Option<u32>) -> RawProfile {
    let bin = fixtures::build("holder", tc, Variant::Default).unwrap();
    // One directory per (Go version, rate): the two holder tests run in parallel and
    // each removes its own directory when done.
    let dir = std::env::temp_dir().join(format!(
        "oomprof-holder-{}-{}-{}",
        std::process::id(),
        tc.version,
        rate.unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let prof = dir.join(format!("holder-{}.pb.gz", rate.unwrap_or(0)));
    let mut cmd = Command::new(&bin);
    cmd.env("FIXTURE_PROFILE", &prof);
    if let Some(r) = rate {
        cmd.env("FIXTURE_MEMPROFILERATE", r.to_string());
    }
    let mut p = Running::spawn(&mut cmd).unwrap();
    p.wait_line("ready", Duration::from_secs(30)).unwrap();
    p.signal(libc::SIGUSR2).unwrap();
    p.wait_line("profiled", Duration::from_secs(30)).unwrap();
    let raw = tc.pprof_raw(&bin, &prof).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    RawProfile::parse(&raw).unwrap()
}

#[test]
#[ignore = "needs the Go matrix: run tests/run"]
fn holder_profile_shows_its_live_heap_exactly_at_rate_1_with_every_go() {
    let Some(matrix) =
        gomatrix::matrix("holder_profile_shows_its_live_heap_exactly_at_rate_1_with_every_go")
    else {
        return;
    };
    for tc in &matrix {
        let p = holder_profile(tc, Some(1));
        assert_eq!(p.period, 1, "go {}", tc.version);
        let large = p.total_for_size("inuse_space", "main.allocLarge", MIB);
        let small = p.total_for_size("inuse_space", "main.allocSmall", 1024);
        let large_n = p.total_for_size("inuse_objects", "main.allocLarge", MIB);
        let small_n = p.total_for_size("inuse_objects", "main.allocSmall", 1024);
        eprintln!(
            "go {}: allocLarge {large_n} / {large} B, allocSmall {small_n} / {small} B",
            tc.version
        );
        assert_eq!((large_n, large), (40, 40 << 20), "go {}", tc.version);
        assert_eq!(
            (small_n, small),
            (10_000, 10_000 * 1024),
            "go {}",
            tc.version
        );
    }
}

#[test]
#[ignore = "needs the Go matrix: run tests/run"]
fn holder_profile_is_plausible_at_the_default_rate_with_every_go() {
    let Some(matrix) =
        gomatrix::matrix("holder_profile_is_plausible_at_the_default_rate_with_every_go")
    else {
        return;
    };
    for tc in &matrix {
        let p = holder_profile(tc, None);
        assert_eq!(p.period, 512 * 1024, "go {}", tc.version);
        let large = p.total_for("inuse_space", "main.allocLarge");
        let small = p.total_for("inuse_space", "main.allocSmall");
        eprintln!(
            "go {}: allocLarge {large} B, allocSmall {small} B (scaled samples)",
            tc.version
        );
        // 40 MiB in 1 MiB objects: each sampled with p = 1 - e^-2 and scaled back.
        assert!(
            (20 << 20..=80 << 20).contains(&large),
            "go {}: allocLarge {large}",
            tc.version
        );
        // ~10 MB in 1 KiB objects: ~20 samples scaled by ~512; allow wide noise.
        assert!(
            (2 << 20..=40 << 20).contains(&small),
            "go {}: allocSmall {small}",
            tc.version
        );
    }
}
