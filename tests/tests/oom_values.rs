//! The values of a profile taken at an OOM kill, against oracles: Go's own view of the
//! heap at the kill (a program that makes it known in advance), the culprit of a leak
//! beside garbage churn, and programs that switch profiling on themselves. Real OOM
//! kills in real memory cgroups, judged by `go tool pprof -raw` of the victim's Go.

use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use oom_core::pprof::{RECENT_OBJECTS, RECENT_SPACE};
use oom_loader::monitor::MonitorEvent;
use oom_tests::cgroup::MemCgroup;
use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix::{self, Toolchain};
use oom_tests::pprof_raw::RawProfile;
use oom_tests::privileged;
use oom_tests::process::Running;
use oom_tests::watch::{check_oom_invariants, judge, monitor, oom_profile, wait_for};

const LIMIT: u64 = 128 << 20;

/// One Monitor at a time: each captures every kill on the host.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn mib(b: i64) -> f64 {
    b as f64 / 1048576.0
}

/// The oracle: oracle's own profile, written with the GC off before its last
/// allocation, is Go's view at the kill. Compares Go's four sample types sample for
/// sample (non-zero ones: ours also lists the buckets created after the write, at
/// zero) and finds the final allocation in the recent types only.
fn check_oracle(
    m: &oom_loader::monitor::MonitorHandle,
    tc: &Toolchain,
    v: Variant,
    rate: Option<u32>,
) {
    let what = format!(
        "oracle go {} {} rate {}",
        tc.version,
        v.name(),
        rate.map_or("default".into(), |r| r.to_string())
    );
    let bin = fixtures::build("oracle", tc, v).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "oomprof-oracle-{}-{}-{}",
        std::process::id(),
        tc.version,
        v.name()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let theirs_path = dir.join("theirs.pb.gz");
    let mut cmd = Command::new(&bin);
    cmd.env("FIXTURE_PROFILE", &theirs_path);
    if let Some(r) = rate {
        cmd.env("FIXTURE_MEMPROFILERATE", r.to_string());
    }
    let prof = oom_profile(m, &mut cmd, LIMIT, &what);
    assert!(
        prof.meta.incomplete.is_empty(),
        "{what}: {:?}",
        prof.meta.incomplete
    );
    let ours = judge(tc, &bin, &prof);
    let theirs = RawProfile::parse(&tc.pprof_raw(&bin, &theirs_path).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    check_oom_invariants(&ours, LIMIT, rate == Some(1), &what);
    assert_eq!(ours.period, theirs.period, "{what}: period");
    assert_eq!(ours.sample_types[..4], theirs.sample_types[..], "{what}");
    let (a, b) = (ours.keyed_samples(4, true), theirs.keyed_samples(4, true));
    if a != b {
        let only_ours: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).collect();
        let only_theirs: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).collect();
        panic!("{what}: Go's view differs\nonly ours: {only_ours:#?}\nonly Go's: {only_theirs:#?}");
    }
    // The known heap is there: 20 x 1 MiB and 10,000 x 1 KiB live (by object size:
    // runtime work done while they allocated, e.g. a GC start, is charged to them too).
    let large = ours.total_for_size("inuse_space", "main.allocLarge", 1 << 20);
    let small = ours.total_for_size("inuse_space", "main.allocSmall", 1024);
    let garbage = ours.total_for_size("inuse_space", "main.allocGarbage", 256 << 10);
    // The giant allocation: recorded, not published; 1 GiB exceeds any rate, so it is
    // sampled for sure and scaled by exactly 1.
    let giant_recent = ours.total_for(RECENT_SPACE, "main.giant");
    let giant_objects = ours.total_for(RECENT_OBJECTS, "main.giant");
    let giant_inuse = ours.total_for("inuse_space", "main.giant");
    eprintln!(
        "{what}: {} non-zero samples equal Go's; in use: allocLarge {:.1} MiB, allocSmall {:.1} MiB, allocGarbage {:.1} MiB; recent: giant {:.1} MiB ({giant_objects} objects), total {:.1} MiB",
        a.values().sum::<usize>(),
        mib(large),
        mib(small),
        mib(garbage),
        mib(giant_recent),
        mib(ours.total(RECENT_SPACE)),
    );
    assert_eq!(
        giant_inuse, 0,
        "{what}: the unpublished allocation counted as in use"
    );
    assert_eq!(
        giant_recent,
        1 << 30,
        "{what}: main.giant in recent_alloc_space"
    );
    assert_eq!(
        giant_objects, 1,
        "{what}: main.giant in recent_alloc_objects"
    );
    if rate == Some(1) {
        assert_eq!(large, 20 << 20, "{what}: allocLarge");
        assert_eq!(small, 10_000 * 1024, "{what}: allocSmall");
        assert_eq!(garbage, 0, "{what}: freed garbage in use");
    }
    assert_eq!(
        prof.summary.recent_top_function.as_deref(),
        Some("main.giant"),
        "{what}: recent top"
    );
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn oom_profile_equals_gos_own_view_at_the_kill_across_the_matrix() {
    const T: &str = "oom_profile_equals_gos_own_view_at_the_kill_across_the_matrix";
    if !privileged::root(T) {
        return;
    }
    let Some(matrix) = gomatrix::matrix(T) else {
        return;
    };
    let _g = serial();
    let m = monitor();
    for tc in &matrix {
        for v in Variant::ALL {
            check_oracle(&m, tc, v, None);
        }
        check_oracle(&m, tc, Variant::Default, Some(1));
    }
}

/// One leak + churn run: the culprit on top of Go's view; returns (in-use top, recent
/// top) for the report.
fn leak_beside_churn(
    m: &oom_loader::monitor::MonitorHandle,
    tc: &Toolchain,
    v: Variant,
    generic: bool,
) -> ((String, i64), (String, i64)) {
    let what = format!(
        "leakchurn{} go {} {}",
        if generic { " -generic" } else { "" },
        tc.version,
        v.name()
    );
    let bin = fixtures::build("leakchurn", tc, v).unwrap();
    let mut cmd = Command::new(&bin);
    // Rate 1: totals are exact, so the bound below is a hard one.
    cmd.env("FIXTURE_MEMPROFILERATE", "1");
    if generic {
        cmd.arg("-generic");
    }
    let prof = oom_profile(m, &mut cmd, LIMIT, &what);
    let raw = judge(tc, &bin, &prof);
    let inuse = check_oom_invariants(&raw, LIMIT, true, &what);
    let top = raw.top_function("inuse_space").unwrap();
    let recent_top = raw.top_function(RECENT_SPACE).unwrap_or_default();
    let leak = raw.total_for("inuse_space", "main.leak");
    let churn = raw.total_for("inuse_space", "main.churn");
    eprintln!(
        "{what}: in use {:.1} MiB: main.leak {:.1} MiB, main.churn {:.1} MiB; top {} {:.1} MiB; recent top {} {:.1} MiB (recent total {:.1} MiB); oomprof says top={:?} recent_top={:?}",
        mib(inuse),
        mib(leak),
        mib(churn),
        top.0,
        mib(top.1),
        recent_top.0,
        mib(recent_top.1),
        mib(raw.total(RECENT_SPACE)),
        prof.summary.top_function,
        prof.summary.recent_top_function,
    );
    assert_eq!(top.0, "main.leak", "{what}: the culprit is not on top");
    assert!(leak > churn, "{what}: leak {leak} B vs churn {churn} B");
    assert_eq!(
        prof.summary.top_function.as_deref(),
        Some("main.leak"),
        "{what}: the daemon's top="
    );
    (top, recent_top)
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn oom_culprit_is_the_leak_beside_garbage_churn_in_every_cell() {
    const T: &str = "oom_culprit_is_the_leak_beside_garbage_churn_in_every_cell";
    if !privileged::root(T) {
        return;
    }
    let Some(matrix) = gomatrix::matrix(T) else {
        return;
    };
    let _g = serial();
    let m = monitor();
    for tc in &matrix {
        for v in Variant::ALL {
            leak_beside_churn(&m, tc, v, false);
        }
        leak_beside_churn(&m, tc, Variant::Default, true);
    }
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn oom_profiling_switched_on_at_run_time_is_captured_and_off_is_diagnosed() {
    const T: &str = "oom_profiling_switched_on_at_run_time_is_captured_and_off_is_diagnosed";
    if !privileged::root(T) {
        return;
    }
    let Some(matrix) = gomatrix::matrix(T) else {
        return;
    };
    let _g = serial();
    let m = monitor();
    for tc in &matrix {
        for v in [Variant::Default, Variant::Stripped] {
            let what = format!("noprof -rate 4096 go {} {}", tc.version, v.name());
            let bin = fixtures::build("noprof", tc, v).unwrap();
            // The linker turned profiling off; the program turns it back on.
            let prof = oom_profile(&m, Command::new(&bin).args(["-rate", "4096"]), LIMIT, &what);
            let raw = judge(tc, &bin, &prof);
            let inuse = check_oom_invariants(&raw, LIMIT, false, &what);
            let top = raw.top_function("inuse_space");
            eprintln!(
                "{what}: in use {:.1} MiB, top {top:?}, rate {}",
                mib(inuse),
                prof.meta.mem_profile_rate
            );
            assert_eq!(prof.meta.mem_profile_rate, 4096, "{what}");
            assert_eq!(
                top.map(|t| t.0).as_deref(),
                Some("main.allocNoprof"),
                "{what}"
            );
            assert!(inuse > 0 && (inuse as u64) < 2 * LIMIT, "{what}: {inuse}");

            // Left off: diagnosed at the kill, naming both fixes, and no profile.
            let cg = MemCgroup::create(LIMIT).unwrap();
            let mut p = Running::adopt(cg.spawn(&mut Command::new(&bin)).unwrap());
            let pid = p.pid() as u32;
            p.wait_exit(Duration::from_secs(60)).unwrap();
            assert!(cg.oom_kills().unwrap() > 0);
            let mut seen = Vec::new();
            let detail = match wait_for(&m, pid, Duration::from_secs(10), &mut seen) {
                Some(MonitorEvent::ProfilingDisabled { detail, .. }) => detail.to_string(),
                // Said once per binary; a later kill of the same one is dropped with it.
                Some(MonitorEvent::Dropped { reason, .. }) => reason,
                other => panic!("noprof go {} {}: {other:?}; {seen:?}", tc.version, v.name()),
            };
            assert!(
                detail.contains("reference runtime.MemProfile")
                    && detail.contains("set runtime.MemProfileRate"),
                "{detail}"
            );
        }
    }
}
