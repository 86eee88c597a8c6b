//! What triggers a capture, and what bounds it: only a SIGKILL generated for a watched
//! process walks (5905ff4). Its own exit_group or exec, which kill its other threads
//! through the same signal_deliver path, do not; kill(2) of the tgid, of a thread id
//! and of a whole memory cgroup do. The walk stops at its time budget and says so, and
//! event records a full ring refused are counted and reported.
//!
//! The counters are the kernel program's own (`oom_counters`, one per loaded
//! `Kernel`): only processes these tests watch can move `captures`, `kill_marks` and
//! `unmarked_deliveries`.

mod kernel_common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kernel_common::*;
use oom_core::abi::{end_status, Counters};
use oom_loader::monitor::{Monitor, MonitorConfig, MonitorEvent};
use oom_loader::{Capture, Event, Kernel, KernelConfig, KillReason};
use oom_tests::cgroup::MemCgroup;
use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix::{self, Toolchain};
use oom_tests::privileged;
use oom_tests::process::Running;

/// Goroutines manysites locks to threads of their own before a `-then` other than
/// `wait` (tests/go/manysites/main.go).
const EXTRA_THREADS: usize = 4;

fn manysites(tc: &Toolchain) -> (PathBuf, Symbols) {
    let bin = fixtures::build("manysites", tc, Variant::Default).expect("build manysites");
    let syms = Symbols::read(&bin);
    (bin, syms)
}

/// Kills (SIGKILL) kept, classified quickly.
fn keep() -> KernelConfig {
    KernelConfig {
        keep_killed: true,
        classify_window: Duration::from_millis(50),
        ..KernelConfig::default()
    }
}

/// Starts `manysites -n n -then then` and waits for its ready line.
fn start_manysites(bin: &std::path::Path, n: u32, then: &str) -> Running {
    let mut p = Running::spawn(Command::new(bin).args(["-n", &n.to_string(), "-then", then]))
        .expect("spawn manysites");
    p.wait_line("ready", Duration::from_secs(60 + u64::from(n) / 5_000))
        .expect("manysites ready");
    p
}

/// Watches `pid` and checks that the watch entry is there.
fn watch(k: &Kernel, pid: u32, syms: &Symbols, tc: &Toolchain) {
    k.watch(pid, &syms.watch_info(tc)).expect("watch");
    assert!(k.is_watched(pid).expect("lookup"), "pid {pid} not watched");
}

/// Thread ids of `pid`.
fn tasks(pid: u32) -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// Every event of the next `d`.
fn drain_for(k: &mut Kernel, d: Duration) -> Vec<Event> {
    let deadline = Instant::now() + d;
    let mut out = Vec::new();
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        out.extend(k.poll(Some(left)).expect("poll"));
    }
    out
}

fn captures_of(events: &[Event], pid: u32) -> Vec<&Capture> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Capture(c) if c.pid == pid => Some(c),
            _ => None,
        })
        .collect()
}

fn counters(k: &Kernel) -> Counters {
    k.counters().expect("counters")
}

/// Counter deltas worth printing.
fn deltas(a: &Counters, b: &Counters) -> String {
    format!(
        "captures +{}, kill_marks +{}, sigkills_marked +{}, unmarked_deliveries +{}, kills during/after walk +{}/+{}",
        b.captures - a.captures,
        b.kill_marks - a.kill_marks,
        b.sigkills_marked - a.sigkills_marked,
        b.unmarked_deliveries - a.unmarked_deliveries,
        b.kills_during_walk - a.kills_during_walk,
        b.kills_after_walk - a.kills_after_walk,
    )
}

/// Waits for the one capture of `pid`, then watches a while longer for a second one.
fn one_capture(k: &mut Kernel, pid: u32, what: &str) -> (Capture, Vec<Event>) {
    let mut seen = Vec::new();
    let c = wait_capture(k, pid, Duration::from_secs(10), &mut seen)
        .unwrap_or_else(|| panic!("{what}: no capture of pid {pid}; events {seen:?}"));
    seen.extend(drain_for(k, Duration::from_millis(500)));
    let more = captures_of(&seen, pid);
    assert!(
        more.is_empty(),
        "{what}: a second capture of pid {pid}: {:?}",
        more.iter().map(|c| c.end).collect::<Vec<_>>()
    );
    (c, seen)
}

/// Runs `/bin/true` `n` times, one after another (each one exec record).
fn exec_burst(n: usize) {
    for _ in 0..n {
        let st = Command::new("/bin/true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run /bin/true");
        assert!(st.success());
    }
}

/// A watched multi-threaded Go program (4 extra threads locked to goroutines) with 30k
/// live sites that exits (os.Exit, return from main) or execs: its other threads take
/// SIGKILL deliveries (unmarked_deliveries), and nothing walks. Before 5905ff4 each of
/// these was a "killed" capture.
#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn kernel_exit_return_and_exec_of_a_watched_go_program_do_not_walk() {
    const T: &str = "kernel_exit_return_and_exec_of_a_watched_go_program_do_not_walk";
    if !privileged::root(T) {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let _g = serial();
    let (bin, syms) = manysites(&tc);
    let mut k = load(&keep());
    for then in ["exit", "return", "exec"] {
        let mut p = start_manysites(&bin, 30_000, then);
        let pid = p.pid() as u32;
        watch(&k, pid, &syms, &tc);
        let threads = tasks(pid).len();
        assert!(
            threads > EXTRA_THREADS,
            "-then {then}: {threads} threads, want more than {EXTRA_THREADS}"
        );
        let before = counters(&k);
        p.send_line("go").expect("release manysites");
        let status = p.wait_exit(Duration::from_secs(30)).expect("exit");
        assert!(status.success(), "-then {then}: {status}");
        // Longer than the classification window: a capture would have come by now.
        let events = drain_for(&mut k, Duration::from_secs(1));
        let after = counters(&k);
        eprintln!(
            "-then {then}: {threads} threads; {}",
            deltas(&before, &after)
        );
        let caps: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Capture(c) => Some(c.end),
                _ => None,
            })
            .collect();
        assert!(caps.is_empty(), "-then {then}: captures {caps:?}");
        assert_eq!(after.captures, before.captures, "-then {then}: walks");
        assert_eq!(after.kill_marks, before.kill_marks, "-then {then}");
        // Not vacuous: the other threads did take SIGKILL deliveries, while watched.
        assert!(
            after.unmarked_deliveries - before.unmarked_deliveries >= threads as u64 - 1,
            "-then {then}: {}",
            deltas(&before, &after)
        );
        if then == "exec" {
            assert!(
                events.iter().any(|e| matches!(e, Event::Exec(x)
                    if x.pid == pid && x.filename == std::path::Path::new("/bin/true"))),
                "-then exec: no exec event of pid {pid}"
            );
        } else {
            assert!(
                events
                    .iter()
                    .any(|e| matches!(e, Event::Exit(x) if x.pid == pid)),
                "-then {then}: no exit event of the watched pid {pid}"
            );
        }
        assert!(!k.is_watched(pid).unwrap(), "-then {then}: still watched");
    }
}

/// kill(2) of the tgid: one mark, one walk, one complete capture, and every other
/// thread's delivery is a marked one.
#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn kernel_kill9_of_the_tgid_gives_one_complete_killed_capture() {
    const T: &str = "kernel_kill9_of_the_tgid_gives_one_complete_killed_capture";
    if !privileged::root(T) {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let _g = serial();
    let (bin, syms) = manysites(&tc);
    let mut k = load(&keep());
    let mut p = start_manysites(&bin, 30_000, "wait");
    let pid = p.pid() as u32;
    watch(&k, pid, &syms, &tc);
    let threads = tasks(pid).len();
    let before = counters(&k);
    p.signal(libc::SIGKILL).expect("kill -9");
    let _ = p.wait_exit(Duration::from_secs(30));
    let (c, _) = one_capture(&mut k, pid, "kill -9");
    let after = counters(&k);
    eprintln!(
        "kill -9: {threads} threads; {}; walk {:.2} ms over {} buckets",
        deltas(&before, &after),
        c.end.elapsed_ns as f64 / 1e6,
        c.end.buckets_seen
    );
    assert_eq!(c.reason, KillReason::Killed);
    assert!(c.is_complete(), "{:?}", c.end);
    assert!(c.end.buckets_seen >= 30_000, "{:?}", c.end);
    assert_eq!(after.captures - before.captures, 1);
    // The leader was the target: its delivery (or exit) found the mark and walked;
    // the other threads' found none and did not.
    assert_eq!(after.kill_marks - before.kill_marks, 1);
    assert_eq!(c.end.tid, c.pid, "the walk ran in the leader");
    assert_eq!(
        after.unmarked_deliveries - before.unmarked_deliveries,
        threads as u64 - 1,
        "{}",
        deltas(&before, &after)
    );
}

/// How a thread of the victim is aimed at.
#[derive(Clone, Copy, Debug)]
enum AtThread {
    /// kill(2) of the thread id: the whole group dies.
    Kill,
    /// tgkill(2) with SIGKILL: the same.
    Tgkill,
}

/// Starts manysites, SIGKILLs a thread that is not its leader, and returns the
/// capture, or why there is none. Checks what holds in both cases.
fn kill_a_thread(
    k: &mut Kernel,
    bin: &std::path::Path,
    syms: &Symbols,
    tc: &Toolchain,
    how: AtThread,
) -> Result<Capture, String> {
    let mut p = start_manysites(bin, 30_000, "wait");
    let pid = p.pid() as u32;
    watch(k, pid, syms, tc);
    let all = tasks(pid);
    let tid = *all
        .iter()
        .rev()
        .find(|&&t| t != pid)
        .expect("a thread other than the leader");
    let before = counters(k);
    // SAFETY: kill and tgkill have no memory-safety preconditions; `tid` is a thread
    // of our own child, which is not reaped while `p` exists.
    let r = unsafe {
        match how {
            AtThread::Kill => libc::kill(tid as i32, libc::SIGKILL),
            AtThread::Tgkill => libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGKILL) as i32,
        }
    };
    assert_eq!(r, 0, "{how:?}: {}", std::io::Error::last_os_error());
    let _ = p.wait_exit(Duration::from_secs(30));
    let mut seen = Vec::new();
    let c = wait_capture(k, pid, Duration::from_secs(5), &mut seen);
    seen.extend(drain_for(k, Duration::from_millis(500)));
    let after = counters(k);
    let leader_exit = seen.iter().find_map(|e| match e {
        Event::Exit(x) if x.pid == pid => Some(x.tid),
        _ => None,
    });
    eprintln!(
        "{how:?}: thread {tid} of {pid} ({} threads); walk ran in thread {:?}; exit event from thread {leader_exit:?}; {}",
        all.len(),
        c.as_ref().map(|c| c.end.tid),
        deltas(&before, &after)
    );
    assert!(after.sigkills_marked > before.sigkills_marked, "{how:?}");
    assert_eq!(
        after.kill_marks - before.kill_marks,
        u64::from(c.is_some()),
        "{how:?}: only the killed thread carries the mark"
    );
    let Some(c) = c else {
        return Err(format!(
            "{how:?}: no capture of pid {pid} (thread {tid} killed); exit event from thread {leader_exit:?}; {}",
            deltas(&before, &after)
        ));
    };
    let more = captures_of(&seen, pid);
    assert!(more.is_empty(), "{how:?}: {} more captures", more.len());
    assert_eq!(c.reason, KillReason::Killed, "{how:?}");
    assert!(c.is_complete(), "{how:?}: {:?}", c.end);
    // The mark is the thread's: its own delivery walked.
    assert_eq!(c.end.tid, tid, "{how:?}");
    assert_eq!(after.captures - before.captures, 1, "{how:?}");
    Ok(c)
}

/// A SIGKILL aimed at a thread id that is not the leader's (kill(2), tgkill(2)) kills
/// the group and is captured once, in the targeted thread's own delivery (usually the
/// last of the group's).
#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn kernel_kill_of_a_non_leader_thread_id_gives_one_capture() {
    const T: &str = "kernel_kill_of_a_non_leader_thread_id_gives_one_capture";
    if !privileged::root(T) {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let _g = serial();
    let (bin, syms) = manysites(&tc);
    let mut k = load(&keep());
    for how in [AtThread::Kill, AtThread::Tgkill] {
        if let Err(e) = kill_a_thread(&mut k, &bin, &syms, &tc, how) {
            panic!("{e}");
        }
    }
}

/// Before Linux 6.16 sched_process_exit has no `group_dead` and the program for it
/// (`sched_process_exit_v1`, forced here with `compat_programs`) drops the watch at
/// the leader's exit. A kill aimed at another thread marks only that thread, whose
/// delivery often comes last, after the leader delivered (unmarked) and exited: the
/// entry is kept for it in the `dying` map (lost 4 of 8 before it).
#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn kernel_kill_of_a_thread_id_is_captured_with_the_older_kernels_exit_program() {
    const T: &str = "kernel_kill_of_a_thread_id_is_captured_with_the_older_kernels_exit_program";
    if !privileged::root(T) {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let _g = serial();
    let (bin, syms) = manysites(&tc);
    let mut k = load(&KernelConfig {
        compat_programs: true,
        ..keep()
    });
    let mut lost = Vec::new();
    let tries = 8;
    for i in 0..tries {
        let how = if i % 2 == 0 {
            AtThread::Kill
        } else {
            AtThread::Tgkill
        };
        if let Err(e) = kill_a_thread(&mut k, &bin, &syms, &tc, how) {
            lost.push(e);
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {tries} thread kills not captured:\n{}",
        lost.len(),
        lost.join("\n")
    );
}

/// Every pid of a memory cgroup killed (MemCgroup::kill_all: cgroup.kill on v2, kill(2)
/// of each pid on v1): one capture per watched Go process, none for the rest.
#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn kernel_killing_every_pid_of_a_memory_cgroup_gives_one_capture_per_go_process() {
    const T: &str = "kernel_killing_every_pid_of_a_memory_cgroup_gives_one_capture_per_go_process";
    if !privileged::root(T) {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let _g = serial();
    let (bin, syms) = manysites(&tc);
    let mut k = load(&keep());
    let cg = MemCgroup::create(1 << 30).expect("cgroup");
    let mut procs: Vec<Running> = (0..3)
        .map(|_| {
            let child = cg
                .spawn(
                    Command::new(&bin)
                        .args(["-n", "5000"])
                        .stdin(Stdio::piped())
                        .stdout(Stdio::piped()),
                )
                .expect("spawn manysites in the cgroup");
            Running::adopt(child)
        })
        .collect();
    // Not Go, not watched: killed too, no capture.
    let _sleeper = Running::adopt(
        cg.spawn(Command::new("sleep").arg("600"))
            .expect("spawn sleep in the cgroup"),
    );
    for p in &mut procs {
        p.wait_line("ready", Duration::from_secs(60))
            .expect("manysites ready");
        watch(&k, p.pid() as u32, &syms, &tc);
    }
    assert_eq!(cg.pids().len(), 4, "{:?}", cg.pids());
    let before = counters(&k);
    eprintln!(
        "cgroup {:?} ({:?}): killing every pid",
        cg.path(),
        cg.version()
    );
    cg.kill_all();
    for p in &mut procs {
        p.wait_exit(Duration::from_secs(30)).expect("killed");
    }
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && !procs
            .iter()
            .all(|p| !captures_of(&events, p.pid() as u32).is_empty())
    {
        events.extend(k.poll(Some(Duration::from_millis(100))).expect("poll"));
    }
    events.extend(drain_for(&mut k, Duration::from_millis(500)));
    let after = counters(&k);
    eprintln!("cgroup kill: {}", deltas(&before, &after));
    for p in &procs {
        let pid = p.pid() as u32;
        let caps = captures_of(&events, pid);
        assert_eq!(caps.len(), 1, "pid {pid}: {} captures", caps.len());
        assert_eq!(caps[0].reason, KillReason::Killed);
        assert!(caps[0].is_complete(), "pid {pid}: {:?}", caps[0].end);
    }
    let all: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::Capture(c) => Some(c.pid),
            _ => None,
        })
        .collect();
    assert_eq!(all.len(), 3, "captures {all:?}");
    assert_eq!(after.captures - before.captures, 3);
    assert_eq!(after.kill_marks - before.kill_marks, 3);
}

/// A `hostile -mode many` victim: 2,000,000 fake one-frame buckets spliced in after the
/// real ones (tests/go/hostile).
const HOSTILE_FAKE: u32 = 2_000_000;

/// A ring and bucket limit that stop nothing before the budget does.
fn roomy(budget: Option<Duration>) -> KernelConfig {
    KernelConfig {
        ring_size: 256 << 20,
        max_buckets: oom_core::abi::MAX_BUCKETS_CEILING,
        walk_budget: budget,
        ..keep()
    }
}

/// Two million buckets, a ring and bucket limit that hold them, a 20 ms budget: the walk
/// stops at the budget (it runs with IRQs off in the victim) and the end record and
/// the capture say it is incomplete.
#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn kernel_walk_stops_at_its_time_budget() {
    const T: &str = "kernel_walk_stops_at_its_time_budget";
    if !privileged::root(T) {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let _g = serial();
    let bin = fixtures::build("hostile", &tc, Variant::Default).expect("build hostile");
    let syms = Symbols::read(&bin);
    let budget = Duration::from_millis(20);
    let mut k = load(&roomy(Some(budget)));
    let mut p = Running::spawn(Command::new(&bin).args(["-mode", "many"])).expect("spawn");
    p.wait_line("ready", Duration::from_secs(120))
        .expect("hostile ready");
    let pid = p.pid() as u32;
    watch(&k, pid, &syms, &tc);
    p.signal(libc::SIGKILL).expect("kill -9");
    let _ = p.wait_exit(Duration::from_secs(30));
    let (c, _) = one_capture(&mut k, pid, "hostile many");
    let e = c.end;
    eprintln!(
        "budget {budget:?}: walk {:.3} ms (IRQs off), {} of > {HOSTILE_FAKE} buckets seen, {} emitted, status {:#x}",
        e.elapsed_ns as f64 / 1e6,
        e.buckets_seen,
        e.buckets_emitted,
        e.status
    );
    assert_ne!(e.status & end_status::TIME_BUDGET, 0, "{e:?}");
    assert_eq!(
        e.status & (end_status::RING_FULL | end_status::WALK_LIMIT),
        0,
        "stopped by something else than the budget: {e:?}"
    );
    assert!(
        e.elapsed_ns <= (budget + Duration::from_millis(1)).as_nanos() as u64,
        "walk {} ns, budget {budget:?}",
        e.elapsed_ns
    );
    assert!(e.buckets_seen < HOSTILE_FAKE, "{e:?}");
    assert!(e.buckets_seen > 0);
    assert!(
        !c.is_complete(),
        "a walk cut by its budget is not complete: {e:?}"
    );
}

/// The same through the Monitor: the profile says the walk stopped at its budget.
#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn monitor_profile_of_a_walk_cut_by_its_budget_says_time_budget() {
    const T: &str = "monitor_profile_of_a_walk_cut_by_its_budget_says_time_budget";
    if !privileged::root(T) {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let _g = serial();
    let bin = fixtures::build("hostile", &tc, Variant::Default).expect("build hostile");
    let budget = Duration::from_millis(20);
    let mut m = Monitor::new(MonitorConfig {
        kernel: roomy(Some(budget)),
        scan_existing: false,
        ..MonitorConfig::default()
    })
    .expect("monitor");
    let mut p = Running::spawn(Command::new(&bin).args(["-mode", "many"])).expect("spawn");
    let pid = p.pid() as u32;
    // Discovered by its exec event.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !m.watched().any(|w| w == pid) {
        assert!(Instant::now() < deadline, "pid {pid} not watched");
        m.poll(Some(Duration::from_millis(50))).expect("poll");
    }
    p.wait_line("ready", Duration::from_secs(120))
        .expect("hostile ready");
    p.signal(libc::SIGKILL).expect("kill -9");
    let _ = p.wait_exit(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    let prof = loop {
        assert!(Instant::now() < deadline, "no profile of pid {pid}");
        let hit = m
            .poll(Some(Duration::from_millis(100)))
            .expect("poll")
            .into_iter()
            .find_map(|e| match e {
                MonitorEvent::Profile(p) if p.meta.pid as u32 == pid => Some(Ok(p)),
                MonitorEvent::Dropped { pid: q, reason, .. } if q == pid => Some(Err(reason)),
                _ => None,
            });
        match hit {
            Some(Ok(p)) => break p,
            Some(Err(why)) => panic!("pid {pid} dropped: {why}"),
            None => {}
        }
    };
    let why = &prof.meta.incomplete;
    eprintln!(
        "profile: {} buckets, walk {:?} ns: {:?}",
        prof.meta.buckets,
        prof.meta.walk_ns,
        prof.meta.incomplete_text()
    );
    assert!(
        why.iter()
            .any(|w| matches!(w, oom_loader::profile::Incomplete::TimeBudget { .. })),
        "{why:?}"
    );
    let walk = prof.meta.walk_ns.expect("walk time");
    assert!(
        walk <= (budget + Duration::from_millis(1)).as_nanos() as u64,
        "{walk} ns"
    );
}

/// IRQs-off walk time of manysites at 1k to 1M buckets, without a budget and with the
/// default one (figures; the only assertion is the budget bound).
#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn kernel_walk_time_by_size_with_and_without_budget() {
    const T: &str = "kernel_walk_time_by_size_with_and_without_budget";
    if !privileged::root(T) {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let _g = serial();
    let (bin, syms) = manysites(&tc);
    let sizes = [1_000u32, 10_000, 100_000, 1_000_000];
    let budgets = [None, Some(oom_loader::kernel::DEFAULT_WALK_BUDGET)];
    let mut table = Vec::new();
    // Both placements: in the SIGKILL delivery (interrupts off for the whole walk)
    // and, where the kernel allows it, at the first thread's exit (interrupts on).
    for (budget, in_delivery) in budgets.iter().flat_map(|&b| [(b, true), (b, false)]) {
        let mut k = load(&KernelConfig {
            walk_in_delivery: in_delivery,
            ..roomy(budget)
        });
        if !in_delivery && !k.walks_at_exit() {
            eprintln!("this kernel runs sched_process_exit after exit_mm: no exit placement");
            continue;
        }
        for n in sizes {
            let mut p = start_manysites(&bin, n, "wait");
            let pid = p.pid() as u32;
            watch(&k, pid, &syms, &tc);
            p.signal(libc::SIGKILL).expect("kill -9");
            let _ = p.wait_exit(Duration::from_secs(60));
            let mut seen = Vec::new();
            let c = wait_capture(&mut k, pid, Duration::from_secs(30), &mut seen)
                .unwrap_or_else(|| panic!("-n {n}, budget {budget:?}: no capture"));
            let e = c.end;
            let line = format!(
                "-n {n:>7}  budget {:>8}  {}  walk {:>8.3} ms  seen {:>7}  emitted {:>7}  {:>5.1} B/bucket  {:.2} Mbuckets/s  status {:#x}{}",
                budget.map_or("none".to_string(), |b| format!("{b:?}")),
                if e.status & end_status::AT_EXIT != 0 {
                    "at exit, IRQs on  "
                } else {
                    "delivery, IRQs off"
                },
                e.elapsed_ns as f64 / 1e6,
                e.buckets_seen,
                e.buckets_emitted,
                e.bytes_emitted as f64 / f64::from(e.buckets_emitted.max(1)),
                f64::from(e.buckets_seen) / (e.elapsed_ns.max(1) as f64 / 1e3),
                e.status,
                if e.status & end_status::TIME_BUDGET != 0 {
                    " TIME_BUDGET"
                } else {
                    ""
                }
            );
            eprintln!("{line}");
            table.push(line.clone());
            assert_eq!(
                e.status & (end_status::RING_FULL | end_status::WALK_LIMIT),
                0,
                "{line}"
            );
            match budget {
                Some(b) => assert!(
                    e.elapsed_ns <= (b + Duration::from_millis(1)).as_nanos() as u64,
                    "{line}"
                ),
                None => assert_eq!(e.status & end_status::TIME_BUDGET, 0, "{line}"),
            }
        }
    }
    eprintln!("walk time by size and placement:\n{}", table.join("\n"));
}

/// A 16 KiB ring nobody drains while 500 processes exec: the refused records are counted
/// by the kernel, and Kernel::lost() reports the same cumulative figure after a poll.
#[test]
#[ignore = "needs root (BPF): run tests/run"]
fn kernel_lost_exec_records_are_counted_and_reported() {
    const T: &str = "kernel_lost_exec_records_are_counted_and_reported";
    if !privileged::root(T) {
        return;
    }
    let _g = serial();
    // 16 KiB holds ~53 exec records of 304 bytes (header included).
    let mut k = load(&KernelConfig {
        ring_size: 16 << 10,
        ..KernelConfig::default()
    });
    let mut last = 0;
    for round in 0..2 {
        // Nobody polls while the burst runs.
        exec_burst(500);
        let in_kernel = counters(&k).lost_events;
        assert!(in_kernel > last, "round {round}: lost_events {in_kernel}");
        let events = k.poll(Some(Duration::ZERO)).expect("poll");
        let execs = events
            .iter()
            .filter(|e| matches!(e, Event::Exec(_)))
            .count() as u64;
        // Other processes on the host may exec meanwhile and lose more: settle.
        let mut tries = 0;
        let (lost, c) = loop {
            let (lost, c) = (k.lost(), counters(&k));
            if lost.events == c.lost_events || tries == 10 {
                break (lost, c);
            }
            tries += 1;
            k.poll(Some(Duration::ZERO)).expect("poll");
        };
        eprintln!(
            "round {round}: {execs} exec records received, Kernel::lost() {lost:?}, counters lost_events {}",
            c.lost_events
        );
        assert!(lost.events > last, "round {round}: {lost:?}");
        assert_eq!(lost.events, c.lost_events, "round {round}");
        assert_eq!(lost.ends, c.lost_ends, "round {round}");
        assert!(
            execs < 500,
            "round {round}: nothing was lost from the burst?"
        );
        // Each of the burst's 500 execs was either received or counted lost.
        assert!(
            execs + (lost.events - last) >= 500,
            "round {round}: {execs} received + {} lost < 500",
            lost.events - last
        );
        last = lost.events;
    }
}

/// A kill -9 capture right after the kernel lost event records (a mark_victim may be
/// among them) is kept as KillReason::Unknown although killed captures are not kept.
#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn kernel_a_kill_near_lost_records_is_kept_as_unknown() {
    const T: &str = "kernel_a_kill_near_lost_records_is_kept_as_unknown";
    if !privileged::root(T) {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let _g = serial();
    let (bin, syms) = manysites(&tc);
    // Killed captures are not kept: only the loss can keep this one.
    let mut k = load(&KernelConfig {
        ring_size: 64 << 10,
        keep_killed: false,
        classify_window: Duration::from_millis(300),
        ..KernelConfig::default()
    });
    // Control: without a loss, a kill -9 capture is dropped.
    let mut p = start_manysites(&bin, 200, "wait");
    let pid = p.pid() as u32;
    watch(&k, pid, &syms, &tc);
    let before = counters(&k);
    p.signal(libc::SIGKILL).expect("kill -9");
    let _ = p.wait_exit(Duration::from_secs(10));
    let events = drain_for(&mut k, Duration::from_secs(1));
    assert_eq!(
        counters(&k).captures - before.captures,
        1,
        "the control walked"
    );
    assert!(captures_of(&events, pid).is_empty(), "control kept");
    assert_eq!(k.lost().events, 0, "the control saw a loss: {:?}", k.lost());

    let mut p = start_manysites(&bin, 200, "wait");
    let pid = p.pid() as u32;
    watch(&k, pid, &syms, &tc);
    exec_burst(500);
    // Drains the ring (room for the capture again) and sees the loss.
    k.poll(Some(Duration::ZERO)).expect("poll");
    assert!(k.lost().events > 0, "{:?}", k.lost());
    p.signal(libc::SIGKILL).expect("kill -9");
    let _ = p.wait_exit(Duration::from_secs(10));
    let mut seen = Vec::new();
    let c = wait_capture(&mut k, pid, Duration::from_secs(5), &mut seen)
        .unwrap_or_else(|| panic!("capture near a loss dropped; lost {:?}", k.lost()));
    eprintln!("kill -9 after {:?}: reason {:?}", k.lost(), c.reason);
    assert_eq!(c.reason, KillReason::Unknown);
    assert!(c.is_complete(), "{:?}", c.end);
}
