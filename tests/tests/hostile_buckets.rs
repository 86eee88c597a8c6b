//! Issue 8, hostile bucket lists: a Go program that corrupts its own profile buckets
//! (a loop in allnext, nstk 2^64-1, a bogus type, allnext into unmapped memory, and two
//! million fake buckets). On-demand reads and the kernel capture stop within their
//! limits, say why, keep what is valid, and nothing crashes or hangs.

use std::process::Command;
use std::time::{Duration, Instant};

use oom_loader::monitor::{Monitor, MonitorEvent};
use oom_loader::ondemand::{profile_pid, OnDemandOptions};
use oom_loader::profile::Incomplete;
use oom_tests::cgroup::MemCgroup;
use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix;
use oom_tests::privileged;
use oom_tests::process::Running;

const MODES: [&str; 5] = ["cycle", "nstk", "typ", "unmapped", "many"];

/// The kernel tests one at a time: each Monitor watches every Go process, so two at
/// once would both walk each other's multi-million-bucket victims (seen in CI: the
/// fallback test's capture did not arrive within 120 s while the other test ran).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The reason a walk of each hostile list must give.
fn expected(mode: &str, why: &Incomplete) -> bool {
    match mode {
        "cycle" => matches!(why, Incomplete::Loop),
        "nstk" | "typ" => matches!(why, Incomplete::BucketsLeftOut { invalid: true, .. }),
        "unmapped" => matches!(why, Incomplete::ListCut { .. }),
        _ => matches!(
            why,
            Incomplete::BucketLimit { .. }
                | Incomplete::RingFull { .. }
                | Incomplete::TimeBudget { .. }
        ),
    }
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn on_demand_reads_of_hostile_bucket_lists_stop_and_say_why() {
    const T: &str = "on_demand_reads_of_hostile_bucket_lists_stop_and_say_why";
    if !privileged::root(T) {
        return;
    }
    let Some(matrix) = gomatrix::matrix(T) else {
        return;
    };
    for tc in [&matrix[0], matrix.last().unwrap()] {
        let bin = fixtures::build("hostile", tc, Variant::Default).unwrap();
        for mode in MODES {
            let what = format!("go {} {mode}", tc.version);
            let mut p = Running::spawn(Command::new(&bin).args(["-mode", mode])).unwrap();
            p.wait_line("ready", Duration::from_secs(60)).unwrap();
            let opts = OnDemandOptions {
                max_buckets: 1_000_000,
                ..OnDemandOptions::default()
            };
            let t = Instant::now();
            let prof = profile_pid(p.pid(), &opts, None).unwrap_or_else(|e| panic!("{what}: {e}"));
            let took = t.elapsed();
            let why = &prof.meta.incomplete;
            eprintln!(
                "{what}: {} buckets in {took:.2?}: {:?}",
                prof.meta.buckets,
                prof.meta.incomplete_text()
            );
            assert!(why.iter().any(|w| expected(mode, w)), "{what}: {why:?}");
            // What was valid is kept: the three buckets in front of the damage at least.
            assert!(
                prof.meta.buckets >= 3,
                "{what}: {} buckets",
                prof.meta.buckets
            );
            assert!(took < Duration::from_secs(30), "{what}: {took:?}");
            assert!(
                p.wait_exit(Duration::ZERO).is_err(),
                "{what}: the target died"
            );
        }
    }
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn kernel_captures_of_hostile_bucket_lists_stop_and_say_why() {
    const T: &str = "kernel_captures_of_hostile_bucket_lists_stop_and_say_why";
    if !privileged::root(T) {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let bin = fixtures::build("hostile", &tc, Variant::Default).unwrap();
    let _g = serial();
    let m = Monitor::builder()
        .scan_existing(false)
        .spawn()
        .expect("monitor");
    for mode in MODES {
        let cg = MemCgroup::create(if mode == "many" { 1 << 30 } else { 128 << 20 }).unwrap();
        let mut p = Running::adopt(
            cg.spawn(
                Command::new(&bin)
                    .args(["-mode", mode, "-oom"])
                    .stdout(std::process::Stdio::piped()),
            )
            .unwrap(),
        );
        let pid = p.pid() as u32;
        p.wait_exit(Duration::from_secs(120)).unwrap();
        assert!(cg.oom_kills().unwrap() > 0, "{mode}: not OOM-killed");
        let deadline = Instant::now() + Duration::from_secs(30);
        let ev = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match m.events().recv_timeout(left) {
                Ok(MonitorEvent::Profile(x)) if x.meta.pid as u32 == pid => break Ok(x),
                Ok(MonitorEvent::Dropped { pid: q, reason, .. }) if q == pid => break Err(reason),
                Ok(_) => {}
                Err(_) => panic!("{mode}: no profile or drop for pid {pid}"),
            }
        };
        match ev {
            Ok(prof) => {
                eprintln!(
                    "kernel {mode}: {} buckets, walk {:?} ns: {:?}",
                    prof.meta.buckets, prof.meta.walk_ns, prof.meta.incomplete
                );
                let why = &prof.meta.incomplete;
                assert!(why.iter().any(|w| expected(mode, w)), "{mode}: {why:?}");
                assert!(prof.meta.buckets >= 1, "{mode}");
                // The walk is bounded: a loop is caught early, not run to the limit.
                if mode == "cycle" {
                    assert!(
                        prof.meta.buckets < 1000,
                        "{mode}: {} buckets",
                        prof.meta.buckets
                    );
                }
            }
            Err(reason) => eprintln!("kernel {mode}: dropped: {reason}"),
        }
    }
}

/// Issue 13: where the fallback walk (kernels without bpf_loop; forced here) runs out of
/// steps before the list ends, the profile says so, by that reason and with its cap,
/// as the daemon's log line does.
#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn kernel_capture_past_the_fallback_walk_cap_says_so() {
    const T: &str = "kernel_capture_past_the_fallback_walk_cap_says_so";
    if !privileged::root(T) {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    use oom_core::abi::FALLBACK_MAX_STEPS;
    let bin = fixtures::build("hostile", &tc, Variant::Default).unwrap();
    // A ring, bucket limit and time budget that all hold more than the cap: one-frame
    // buckets take two steps each (u32 PCs), so 2.3M of them outrun 4.3M steps.
    let config = oom_loader::monitor::MonitorConfig {
        kernel: oom_loader::KernelConfig {
            fallback_walk: true,
            ring_size: 256 << 20,
            max_buckets: oom_core::abi::MAX_BUCKETS_CEILING,
            walk_budget: None,
            ..oom_loader::KernelConfig::default()
        },
        scan_existing: false,
        ..Default::default()
    };
    let _g = serial();
    let m = Monitor::builder().config(config).spawn().expect("monitor");
    let cg = MemCgroup::create(2 << 30).unwrap();
    let mut p = Running::adopt(
        cg.spawn(
            Command::new(&bin)
                .args(["-mode", "many", "-n", "2300000", "-oom"])
                .stdout(std::process::Stdio::null()),
        )
        .unwrap(),
    );
    let pid = p.pid() as u32;
    p.wait_exit(Duration::from_secs(120)).unwrap();
    assert!(cg.oom_kills().unwrap() > 0, "not OOM-killed");
    // 2M buckets to assemble, beside the other tests of this file: give it time.
    let mut seen = Vec::new();
    let prof = match oom_tests::watch::wait_for(&m, pid, Duration::from_secs(120), &mut seen) {
        Some(MonitorEvent::Profile(prof)) => prof,
        other => panic!("no profile: {other:?}; other events: {seen:?}"),
    };
    let text = prof.meta.incomplete_text().unwrap_or_default();
    eprintln!(
        "fallback past its cap: {} buckets, walk {:?} ns: {text}",
        prof.meta.buckets, prof.meta.walk_ns
    );
    assert!(
        prof.meta.incomplete.contains(&Incomplete::StepCap {
            steps: FALLBACK_MAX_STEPS,
            fallback: true
        }),
        "{:?}",
        prof.meta.incomplete
    );
    assert!(
        text.contains(&format!(
            "fallback walk's cap of {FALLBACK_MAX_STEPS} steps"
        )),
        "{text}"
    );
    // Two steps a fake bucket: about half the cap, less what the runtime's own
    // (deeper) buckets took.
    let half = (FALLBACK_MAX_STEPS / 2) as usize;
    assert!(
        prof.meta.buckets <= half && prof.meta.buckets > half - 10_000,
        "{} buckets",
        prof.meta.buckets
    );
}
