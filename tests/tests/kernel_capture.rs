//! Issue 4, acceptance 2, 3, 6 and 7: real OOM kills of Go fixtures in memory
//! cgroups, captured in the kernel at SIGKILL delivery.

mod kernel_common;

use std::process::Command;
use std::time::{Duration, Instant};

use kernel_common::*;
use oom_loader::{Event, KernelConfig, KillReason};
use oom_tests::cgroup::MemCgroup;
use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix::{self, Toolchain};
use oom_tests::privileged;
use oom_tests::process::Running;

const LIMIT: u64 = 64 << 20;

fn oomer(tc: &Toolchain) -> (std::path::PathBuf, Symbols) {
    let bin = fixtures::build("oomer", tc, Variant::Default).expect("build oomer");
    let syms = Symbols::read(&bin);
    (bin, syms)
}

/// Starts `oomer -wait` in `cg`, registers it, releases it, returns it.
fn start_oomer(
    k: &oom_loader::Kernel,
    cg: &MemCgroup,
    bin: &std::path::Path,
    syms: &Symbols,
    tc: &Toolchain,
) -> Running {
    let child = cg
        .spawn(
            Command::new(bin)
                .arg("-wait")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped()),
        )
        .expect("spawn oomer");
    let mut p = Running::adopt(child);
    p.wait_line("ready", Duration::from_secs(20))
        .expect("oomer ready");
    k.watch(p.pid() as u32, &syms.watch_info(tc))
        .expect("watch");
    p
}

/// Checks a capture of oomer: complete, and the top in-use bucket allocates in
/// main.allocChunk.
fn check_oomer_capture(c: &oom_loader::Capture, syms: &Symbols) {
    assert!(c.is_complete(), "incomplete capture: {:?}", c.end);
    let es = entries(c);
    assert_eq!(es.len() as u32, c.end.buckets_emitted);
    let top = es
        .iter()
        .max_by_key(|e| inuse_bytes(e))
        .expect("some bucket");
    let funcs: Vec<_> = top
        .stack
        .iter()
        .map(|&pc| syms.func_of(pc).unwrap_or("?"))
        .collect();
    assert!(
        funcs.contains(&"main.allocChunk"),
        "top in-use bucket ({} B) is not main.allocChunk: {funcs:?}",
        inuse_bytes(top)
    );
    // Every cycle recorded, unscaled: sampled objects never outnumber real ones, so
    // the sum cannot exceed what the process held (oomer frees nothing). A decoding
    // slip (counters read from the wrong place) breaks this bound.
    let total: u64 = es.iter().map(inuse_bytes).sum();
    assert!(
        total > 0 && total <= LIMIT,
        "recorded in-use {total} B is not within what a {LIMIT} B cgroup holds"
    );
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn kernel_oom_20_consecutive_kills() {
    if !privileged::root("kernel_oom_20_consecutive_kills") {
        return;
    }
    let Some(tc) = gomatrix::newest("kernel_oom_20_consecutive_kills") else {
        return;
    };
    let _g = serial();
    let (bin, syms) = oomer(&tc);
    let mut k = load(&KernelConfig::default());
    let mut walk = Vec::new();
    for i in 0..20 {
        let cg = MemCgroup::create(LIMIT).expect("cgroup");
        let mut p = start_oomer(&k, &cg, &bin, &syms, &tc);
        let pid = p.pid() as u32;
        p.send_line("go").expect("release oomer");
        let mut seen = Vec::new();
        let c = wait_capture(&mut k, pid, Duration::from_secs(30), &mut seen)
            .unwrap_or_else(|| panic!("kill {i}: no capture of pid {pid}; events {seen:?}"));
        let _ = p.wait_exit(Duration::from_secs(10));
        assert_eq!(c.reason, KillReason::Oom, "kill {i}");
        assert!(c.victim.is_some());
        assert!(cg.oom_kills().unwrap_or(1) >= 1);
        check_oomer_capture(&c, &syms);
        walk.push((c.end.buckets_seen, c.end.elapsed_ns));
    }
    let (b, ns) = walk[0];
    eprintln!(
        "20/20 OOM captures complete (Go {}); e.g. {b} buckets walked in {:.3} ms",
        tc.version,
        ns as f64 / 1e6
    );
    assert_eq!(k.counters().unwrap().lost_ends, 0);
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn kernel_oom_8_simultaneous_victims() {
    if !privileged::root("kernel_oom_8_simultaneous_victims") {
        return;
    }
    let Some(tc) = gomatrix::newest("kernel_oom_8_simultaneous_victims") else {
        return;
    };
    let _g = serial();
    let (bin, syms) = oomer(&tc);
    let mut k = load(&KernelConfig::default());
    let cgs: Vec<MemCgroup> = (0..8)
        .map(|_| MemCgroup::create(LIMIT).expect("cgroup"))
        .collect();
    let mut procs: Vec<Running> = cgs
        .iter()
        .map(|cg| start_oomer(&k, cg, &bin, &syms, &tc))
        .collect();
    // Release all at once.
    for p in &mut procs {
        p.send_line("go").expect("release");
    }
    let mut want: Vec<u32> = procs.iter().map(|p| p.pid() as u32).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !want.is_empty() && Instant::now() < deadline {
        for ev in k.poll(Some(Duration::from_millis(500))).expect("poll") {
            if let Event::Capture(c) = ev {
                if let Some(i) = want.iter().position(|&p| p == c.pid) {
                    assert_eq!(c.reason, KillReason::Oom);
                    check_oomer_capture(&c, &syms);
                    want.swap_remove(i);
                }
            }
        }
    }
    assert!(want.is_empty(), "no capture for {want:?}");
    for p in &mut procs {
        let _ = p.wait_exit(Duration::from_secs(10));
    }
    eprintln!("8/8 simultaneous OOM captures complete");
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn kernel_kill9_is_killed_and_kept_only_when_asked() {
    if !privileged::root("kernel_kill9_is_killed_and_kept_only_when_asked") {
        return;
    }
    let Some(tc) = gomatrix::newest("kernel_kill9_is_killed_and_kept_only_when_asked") else {
        return;
    };
    let _g = serial();
    let (bin, syms) = oomer(&tc);
    for keep in [false, true] {
        let cfg = KernelConfig {
            keep_killed: keep,
            classify_window: Duration::from_millis(200),
            ..KernelConfig::default()
        };
        let mut k = load(&cfg);
        let cg = MemCgroup::create(1 << 30).expect("cgroup");
        let mut p = start_oomer(&k, &cg, &bin, &syms, &tc);
        let pid = p.pid() as u32;
        p.signal(libc::SIGKILL).expect("kill -9");
        let _ = p.wait_exit(Duration::from_secs(10));
        let mut seen = Vec::new();
        let c = wait_capture(&mut k, pid, Duration::from_secs(3), &mut seen);
        if keep {
            let c = c.expect("kill -9 capture kept with keep_killed");
            assert_eq!(c.reason, KillReason::Killed);
            assert!(c.is_complete(), "{:?}", c.end);
        } else {
            assert!(c.is_none(), "kill -9 capture yielded without keep_killed");
        }
        assert!(
            seen.iter()
                .any(|e| matches!(e, Event::Exit(x) if x.pid == pid)),
            "exit event of the watched pid: {seen:?}"
        );
        // Other tests on the host may OOM-kill their own processes meanwhile.
        assert!(
            !seen
                .iter()
                .any(|e| matches!(e, Event::Victim(v) if v.pid == pid)),
            "{seen:?}"
        );
        assert!(!k.is_watched(pid).unwrap(), "watch entry removed at exit");
    }
}

#[test]
#[ignore = "needs root (BPF, a memory cgroup): run tests/run"]
fn kernel_non_go_oom_is_silent() {
    if !privileged::root("kernel_non_go_oom_is_silent") {
        return;
    }
    if privileged::tool("kernel_non_go_oom_is_silent", "python3").is_none() {
        return;
    }
    let _g = serial();
    let mut k = load(&KernelConfig::default());
    let cg = MemCgroup::create(32 << 20).expect("cgroup");
    // A non-Go memory hog: python grows a bytearray until killed.
    let child = cg
        .spawn(Command::new("python3").args(["-c", "b=[]\nwhile True: b.append(bytearray(1<<20))"]))
        .expect("spawn python3");
    let mut p = Running::adopt(child);
    let pid = p.pid() as u32;
    let _ = p.wait_exit(Duration::from_secs(30));
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        events.extend(
            k.poll(Some(Duration::from_millis(200)))
                .expect("poll without errors"),
        );
    }
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Victim(v) if v.pid == pid)),
        "mark_victim for the python pid {pid}: {events:?}"
    );
    assert!(
        !events.iter().any(|e| matches!(e, Event::Capture(_))),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| matches!(e, Event::Exit(_))),
        "unwatched exits are not reported"
    );
    assert_eq!(k.counters().unwrap().captures, 0);
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn kernel_oom_every_go_version() {
    if !privileged::root("kernel_oom_every_go_version") {
        return;
    }
    let Some(matrix) = gomatrix::matrix("kernel_oom_every_go_version") else {
        return;
    };
    let _g = serial();
    let mut k = load(&KernelConfig::default());
    for tc in &matrix {
        let (bin, syms) = oomer(tc);
        let cg = MemCgroup::create(LIMIT).expect("cgroup");
        let mut p = start_oomer(&k, &cg, &bin, &syms, tc);
        let pid = p.pid() as u32;
        p.send_line("go").expect("release oomer");
        let mut seen = Vec::new();
        let c = wait_capture(&mut k, pid, Duration::from_secs(30), &mut seen)
            .unwrap_or_else(|| panic!("Go {}: no capture; events {seen:?}", tc.version));
        let _ = p.wait_exit(Duration::from_secs(10));
        assert_eq!(c.reason, KillReason::Oom, "Go {}", tc.version);
        assert_eq!(c.end.cycle_size, if tc.minor() >= 27 { 16 } else { 32 });
        check_oomer_capture(&c, &syms);
        eprintln!(
            "Go {}: {} buckets, MemProfileRate {}, mProfCycle {}",
            tc.version, c.end.buckets_emitted, c.end.mem_profile_rate, c.end.mprof_cycle
        );
    }
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn kernel_compat_programs_for_older_kernels() {
    if !privileged::root("kernel_compat_programs_for_older_kernels") {
        return;
    }
    if privileged::tool("kernel_compat_programs_for_older_kernels", "bpftool").is_none() {
        return;
    }
    let Some(tc) = gomatrix::newest("kernel_compat_programs_for_older_kernels") else {
        return;
    };
    let _g = serial();
    let (bin, syms) = oomer(&tc);
    // The variants attached where mark_victim has only `pid` (before ~6.9) and
    // sched_process_exit has no `group_dead` (before ~6.16), attached the way
    // kernels before 5.15 need (ioctl, no BPF link).
    let cfg = KernelConfig {
        compat_programs: true,
        ioctl_attach: true,
        ..KernelConfig::default()
    };
    let mut k = load(&cfg);
    assert!(k
        .programs()
        .iter()
        .any(|(p, _)| *p == oom_bpf_names::MARK_VICTIM_V1));
    let cg = MemCgroup::create(LIMIT).expect("cgroup");
    let mut p = start_oomer(&k, &cg, &bin, &syms, &tc);
    let pid = p.pid() as u32;
    p.send_line("go").expect("release oomer");
    let mut seen = Vec::new();
    let c = wait_capture(&mut k, pid, Duration::from_secs(30), &mut seen)
        .unwrap_or_else(|| panic!("no capture; events {seen:?}"));
    let _ = p.wait_exit(Duration::from_secs(10));
    assert_eq!(c.reason, KillReason::Oom);
    let v = c.victim.expect("victim");
    assert!(
        v.details.is_none(),
        "the pid-only variant has no details: {v:?}"
    );
    check_oomer_capture(&c, &syms);
    // The leader's exit stands in for the group's.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !seen
        .iter()
        .any(|e| matches!(e, Event::Exit(x) if x.pid == pid))
    {
        assert!(Instant::now() < deadline, "no exit event: {seen:?}");
        seen.extend(k.poll(Some(Duration::from_millis(100))).expect("poll"));
    }
    assert!(!k.is_watched(pid).unwrap());
    let ids = k.bpf_ids().clone();
    drop(k);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !leftover_bpf_objects(&ids).is_empty() {
        assert!(
            Instant::now() < deadline,
            "ioctl-attached objects left after drop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Program names of the kernel object, as the loader reports them.
mod oom_bpf_names {
    pub const MARK_VICTIM_V1: &str = "mark_victim_v1";
}

/// Issue 13: a kernel without bpf_loop (before 5.17) walks with the fallback (bounded
/// loops and tail calls). Forced here, in the SIGKILL delivery as on those kernels: a
/// real OOM kill of a Go program with ~1k buckets is captured completely, through the
/// Monitor, into a profile `go tool pprof` reads.
#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn kernel_oom_1k_buckets_complete_under_the_fallback_walk() {
    const T: &str = "kernel_oom_1k_buckets_complete_under_the_fallback_walk";
    if !privileged::root(T) {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let _g = serial();
    let bin = fixtures::build("manysites", &tc, Variant::Default).expect("build manysites");
    let config = oom_loader::monitor::MonitorConfig {
        kernel: KernelConfig {
            fallback_walk: true,
            walk_in_delivery: true,
            ..KernelConfig::default()
        },
        scan_existing: false,
        ..Default::default()
    };
    let m = oom_loader::monitor::Monitor::builder()
        .config(config)
        .spawn()
        .expect("monitor");
    let limit = (64u64 << 20) + 1000 * 1024;
    for i in 0..3 {
        let what = format!("fallback walk, kill {i}");
        let prof = oom_tests::watch::oom_profile(
            &m,
            Command::new(&bin)
                .args(["-n", "1000", "-oom"])
                .stdout(std::process::Stdio::null()),
            limit,
            &what,
        );
        eprintln!(
            "{what}: {} buckets, walk {:?} ns, irqs off {:?}: {:?}",
            prof.meta.buckets,
            prof.meta.walk_ns,
            prof.meta.walk_irqs_off,
            prof.meta.incomplete_text()
        );
        assert!(
            prof.meta.incomplete.is_empty(),
            "{what}: {:?}",
            prof.meta.incomplete
        );
        assert!(
            prof.meta.buckets >= 1000,
            "{what}: {} buckets",
            prof.meta.buckets
        );
        assert_eq!(prof.meta.walk_irqs_off, Some(true), "{what}");
        // Not exact: manysites samples its 1 MiB chunks at Go's default rate, and the
        // rate read at the kill scales every bucket.
        let raw = oom_tests::watch::judge(&tc, &bin, &prof);
        oom_tests::watch::check_oom_invariants(&raw, limit, false, &what);
        assert!(
            prof.meta
                .buckets_seen
                .is_none_or(|s| s == prof.meta.buckets),
            "{what}: {:?} seen, {} in the profile",
            prof.meta.buckets_seen,
            prof.meta.buckets
        );
    }
}
