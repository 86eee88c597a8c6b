//! The Monitor end to end: discovery by exec events, real OOM kills in memory cgroups,
//! profiles judged by `go tool pprof -raw` of the victim's Go version — over the Go
//! matrix and the default, stripped, PIE and cgo variants.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use oom_core::pprof::RECENT_SPACE;
use oom_loader::monitor::MonitorEvent;
use oom_loader::profile::{Profile, Reason};
use oom_tests::cgroup::MemCgroup;
use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix::{self, Toolchain};
use oom_tests::privileged;
use oom_tests::process::Running;
use oom_tests::watch::{check_oom_invariants, judge, monitor, oom_profile, wait_for};

const LIMIT: u64 = 64 << 20;

/// One Monitor at a time: each captures every kill on the host.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Checks an OOM profile of oomer (run at MemProfileRate 1, so totals are exact) with
/// `go tool pprof -raw` of its own Go version: the invariants, the culprit on top in
/// Go's view, and (oomer frees nothing) Go's view plus the allocations Go has not
/// published yet close to everything the process held.
fn check_oomer_profile(tc: &Toolchain, bin: &Path, p: &Profile, what: &str) {
    assert_eq!(p.meta.reason, Reason::Oom, "{what}");
    assert!(
        p.meta.incomplete.is_empty(),
        "{what}: {:?}",
        p.meta.incomplete
    );
    let raw = judge(tc, bin, p);
    let total = check_oom_invariants(&raw, LIMIT, true, what);
    let chunk = raw.total_for("inuse_space", "main.allocChunk");
    let recent = raw.total(RECENT_SPACE);
    let held = raw.total("alloc_space") + recent;
    let ratio = held as f64 / LIMIT as f64;
    eprintln!(
        "{what}: in-use (Go's view) {:.1} MiB, main.allocChunk {:.1} MiB; recent {:.1} MiB; allocated {:.0}% of the limit; top per oomprof: {:?}",
        total as f64 / 1048576.0,
        chunk as f64 / 1048576.0,
        recent as f64 / 1048576.0,
        ratio * 100.0,
        p.summary.top_function
    );
    assert!(
        chunk * 2 > total,
        "{what}: main.allocChunk is not the top in-use site"
    );
    assert_eq!(
        p.summary.top_function.as_deref(),
        Some("main.allocChunk"),
        "{what}"
    );
    // Every chunk oomer allocated was kept: published or recent, all of them were
    // recorded. The limit also holds the runtime's own memory and the binary.
    assert!(
        (0.7..=1.05).contains(&ratio),
        "{what}: allocated {held} B (published {} + recent {recent}) is not close to the limit {LIMIT}",
        raw.total("alloc_space")
    );
    // Symbolized: every location of the profile has a function.
    for (id, l) in &raw.locations {
        assert!(
            !l.lines.is_empty(),
            "{what}: location {id} ({:#x}) unsymbolized",
            l.address
        );
    }
    assert!(p.meta.comm.starts_with("oomer"), "{what}: {}", p.meta.comm);
    assert_eq!(p.meta.go_version, format!("go{}", go_full(tc)), "{what}");
}

fn go_full(tc: &Toolchain) -> String {
    let out = tc.command().arg("env").arg("GOVERSION").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("go")
        .to_string()
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn monitor_oom_profile_of_oomer_in_every_cell_of_the_matrix() {
    const T: &str = "monitor_oom_profile_of_oomer_in_every_cell_of_the_matrix";
    if !privileged::root(T) {
        return;
    }
    let Some(matrix) = gomatrix::matrix(T) else {
        return;
    };
    let _g = serial();
    let m = monitor();
    let mut latencies = Vec::new();
    for tc in &matrix {
        for v in Variant::ALL {
            let what = format!("go {} {}", tc.version, v.name());
            let bin = fixtures::build("oomer", tc, v).unwrap();
            let cg = MemCgroup::create(LIMIT).unwrap();
            // Every allocation recorded (rate 1): the in-use total is then exact, not a
            // sampled estimate, and can be held to the 15% bar without luck. Scaling is
            // checked bit for bit against Go elsewhere (ondemand, oom-core).
            let mut p = Running::adopt(
                cg.spawn(Command::new(&bin).env("FIXTURE_MEMPROFILERATE", "1"))
                    .unwrap(),
            );
            let pid = p.pid() as u32;
            p.wait_exit(Duration::from_secs(60)).unwrap();
            assert!(cg.oom_kills().unwrap() > 0, "{what}: not OOM-killed");
            let mut seen = Vec::new();
            let ev = wait_for(&m, pid, Duration::from_secs(10), &mut seen);
            for e in &seen {
                if let MonitorEvent::Watched {
                    pid: p,
                    latency: Some(l),
                    ..
                } = e
                {
                    if *p == pid {
                        latencies.push(*l);
                    }
                }
            }
            match ev {
                Some(MonitorEvent::Profile(prof)) => check_oomer_profile(tc, &bin, &prof, &what),
                other => panic!("{what}: no profile: {other:?}; other events: {seen:?}"),
            }
        }
    }
    latencies.sort();
    if !latencies.is_empty() {
        eprintln!(
            "discovery latency (exec → watched) over {}: p50 {:.2?}, p99 {:.2?}, max {:.2?}",
            latencies.len(),
            latencies[latencies.len() / 2],
            latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)],
            latencies[latencies.len() - 1]
        );
    }
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn monitor_captures_a_go_program_that_ooms_within_100ms_of_exec() {
    const T: &str = "monitor_captures_a_go_program_that_ooms_within_100ms_of_exec";
    if !privileged::root(T) {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let _g = serial();
    let m = monitor();
    let bin = fixtures::build("oomer", &tc, Variant::Default).unwrap();
    // Every run must be captured; at least 3 must have died within 100 ms of the
    // spawn (on a loaded machine some take longer; those do not test the claim).
    let mut fast = 0;
    for attempt in 0..20 {
        if fast >= 3 {
            break;
        }
        let cg = MemCgroup::create(24 << 20).unwrap();
        let t = Instant::now();
        let mut p = Running::adopt(cg.spawn(&mut Command::new(&bin)).unwrap());
        let pid = p.pid() as u32;
        p.wait_exit(Duration::from_secs(30)).unwrap();
        let lived = t.elapsed();
        assert!(cg.oom_kills().unwrap() > 0);
        let mut seen = Vec::new();
        match wait_for(&m, pid, Duration::from_secs(10), &mut seen) {
            Some(MonitorEvent::Profile(prof)) => {
                eprintln!(
                    "attempt {attempt}: lived {lived:.2?} from spawn to OOM kill; top {:?}, {} buckets",
                    prof.summary.top_function, prof.meta.buckets
                );
                assert_eq!(
                    prof.summary.top_function.as_deref(),
                    Some("main.allocChunk")
                );
                if lived < Duration::from_millis(100) {
                    fast += 1;
                }
            }
            other => panic!("no profile for an OOM {lived:?} after spawn: {other:?}; {seen:?}"),
        }
    }
    assert!(fast >= 3, "only {fast} runs died within 100 ms of exec");
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn monitor_eight_simultaneous_victims_of_different_binaries() {
    const T: &str = "monitor_eight_simultaneous_victims_of_different_binaries";
    if !privileged::root(T) {
        return;
    }
    let Some(matrix) = gomatrix::matrix(T) else {
        return;
    };
    let _g = serial();
    let m = monitor();
    // Eight (Go, variant) cells, all different binaries.
    let cells: Vec<(Toolchain, Variant)> = matrix
        .iter()
        .flat_map(|tc| [Variant::Default, Variant::Pie].map(|v| (tc.clone(), v)))
        .take(8)
        .collect();
    let mut running = Vec::new();
    for (tc, v) in &cells {
        let bin = fixtures::build("oomer", tc, *v).unwrap();
        let cg = MemCgroup::create(LIMIT).unwrap();
        let mut p = Running::adopt(
            cg.spawn(
                // Rate 1: exact in-use totals (see the matrix test).
                Command::new(&bin)
                    .arg("-wait")
                    .env("FIXTURE_MEMPROFILERATE", "1")
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped()),
            )
            .unwrap(),
        );
        p.wait_line("ready", Duration::from_secs(20)).unwrap();
        running.push((tc.clone(), *v, bin, cg, p));
    }
    // Let discovery settle, then release all eight at once.
    std::thread::sleep(Duration::from_millis(200));
    let mut seen: Vec<MonitorEvent> = m.events().try_iter().collect();
    for (_, _, _, _, p) in running.iter_mut() {
        p.send_line("go").unwrap();
    }
    for (_, _, _, _, p) in running.iter_mut() {
        p.wait_exit(Duration::from_secs(60)).unwrap();
    }
    for (tc, v, bin, cg, p) in &running {
        let what = format!("go {} {}", tc.version, v.name());
        assert!(cg.oom_kills().unwrap() > 0, "{what}");
        let pid = p.pid() as u32;
        // It may already be among the events seen while waiting for another.
        let pos = seen
            .iter()
            .position(|e| matches!(e, MonitorEvent::Profile(x) if x.meta.pid as u32 == pid));
        let ev = match pos {
            Some(i) => Some(seen.remove(i)),
            None => wait_for(&m, pid, Duration::from_secs(10), &mut seen),
        };
        match ev {
            Some(MonitorEvent::Profile(prof)) => check_oomer_profile(tc, bin, &prof, &what),
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn monitor_noprof_is_diagnosed_and_never_profiled() {
    const T: &str = "monitor_noprof_is_diagnosed_and_never_profiled";
    if !privileged::root(T) {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let _g = serial();
    let m = monitor();
    for v in [Variant::Default, Variant::Stripped] {
        let bin = fixtures::build("noprof", &tc, v).unwrap();
        let cg = MemCgroup::create(LIMIT).unwrap();
        let mut p = Running::adopt(cg.spawn(&mut Command::new(&bin)).unwrap());
        let pid = p.pid() as u32;
        p.wait_exit(Duration::from_secs(60)).unwrap();
        let mut seen = Vec::new();
        match wait_for(&m, pid, Duration::from_secs(5), &mut seen) {
            Some(MonitorEvent::ProfilingDisabled { .. }) => {}
            other => panic!("noprof {}: {other:?}; {seen:?}", v.name()),
        }
        assert!(
            !seen
                .iter()
                .any(|e| matches!(e, MonitorEvent::Profile(x) if x.meta.pid as u32 == pid)),
            "a profile was produced for noprof"
        );
    }
}

/// A leak 300 frames deep, OOM-killed in a 128 MiB cgroup, was reported to come back
/// as 6.9 GB (Go 1.21) to 86 GB (Go 1.27) of in-use memory in one bucket. Every
/// allocation is recorded (rate 1), so the profile's in-use total is exact and the
/// limit bounds it: the leaked chunks are touched, hence resident. Checked at the
/// default profstackdepth (Go cuts the stack at 32 frames up to 1.22, 128-130 after)
/// and, from 1.23, at profstackdepth=1024 (the whole stack, ~305 frames).
#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn monitor_deep_leak_oom_inuse_stays_within_the_cgroup_limit() {
    const T: &str = "monitor_deep_leak_oom_inuse_stays_within_the_cgroup_limit";
    const DEEP_LIMIT: u64 = 128 << 20;
    if !privileged::root(T) {
        return;
    }
    let Some(matrix) = gomatrix::matrix(T) else {
        return;
    };
    let _g = serial();
    let m = monitor();
    for tc in &matrix {
        let bin = fixtures::build("deep", tc, Variant::Default).unwrap();
        let depths: &[Option<&str>] = if tc.minor() >= 23 {
            &[None, Some("profstackdepth=1024")]
        } else {
            &[None]
        };
        for &depth in depths {
            let what = format!(
                "go {} deep, {}",
                tc.version,
                depth.unwrap_or("default depth")
            );
            // GODEBUG memprofilerate works from Go 1.21 (it covers runtime init too);
            // FIXTURE_MEMPROFILERATE sets the rate in main on every version.
            let godebug: Vec<&str> = (tc.minor() >= 21)
                .then_some("memprofilerate=1")
                .into_iter()
                .chain(depth)
                .collect();
            let mut cmd = Command::new(&bin);
            cmd.args(["-depth", "300", "-oom"])
                .env("FIXTURE_MEMPROFILERATE", "1")
                .env("GODEBUG", godebug.join(","));
            let prof = oom_profile(&m, &mut cmd, DEEP_LIMIT, &what);
            assert!(
                prof.meta.incomplete.is_empty(),
                "{what}: {:?}",
                prof.meta.incomplete
            );
            assert_eq!(prof.meta.mem_profile_rate, 1, "{what}");
            let raw = judge(tc, &bin, &prof);
            let total = check_oom_invariants(&raw, DEEP_LIMIT, true, &what);
            let held = raw.total("alloc_space") + raw.total(RECENT_SPACE);
            let i = raw.index("inuse_space").unwrap();
            let top = raw
                .samples
                .iter()
                .max_by_key(|s| s.values[i])
                .expect("samples");
            let funcs = raw.functions(top);
            let descend = funcs.iter().filter(|f| *f == "main.descend").count();
            eprintln!(
                "{what}: in-use {:.1} MiB, allocated (published + recent) {:.0}% of the limit, top sample {:.1} MiB with {} frames ({descend} main.descend); oomprof says {} B",
                total as f64 / 1048576.0,
                held as f64 * 100.0 / DEEP_LIMIT as f64,
                top.values[i] as f64 / 1048576.0,
                funcs.len(),
                prof.summary.inuse_bytes
            );
            // The deep leak frees nothing: everything it held was recorded, published
            // or recent, and no absurd value can hide in either.
            assert!(
                (held as u64) <= DEEP_LIMIT + (DEEP_LIMIT / 20) && held as u64 >= DEEP_LIMIT / 2,
                "{what}: allocated {held} B is not within 50-105% of the {DEEP_LIMIT} B limit"
            );
            assert_eq!(prof.summary.inuse_bytes, total, "{what}: summary vs pprof");
            assert_eq!(
                prof.summary.top_function.as_deref(),
                Some("main.allocDeep"),
                "{what}"
            );
            assert!(
                funcs.iter().any(|f| f == "main.allocDeep")
                    && top.values[i] as u64 * 2 > total as u64,
                "{what}: the top in-use stack is not the deep allocation: {funcs:?}"
            );
            let want = if depth.is_some() { 300 } else { 25 };
            assert!(
                descend >= want,
                "{what}: top stack has {descend} main.descend frames, want >= {want}"
            );
        }
    }
}
