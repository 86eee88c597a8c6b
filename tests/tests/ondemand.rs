//! On-demand profiles (`oom_loader::ondemand::profile_pid`) against the program's own
//! runtime/pprof heap profile taken at the same moment, across the Go matrix and the
//! four build variants.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use oom_loader::cache::BinaryCache;
use oom_loader::ondemand::{profile_pid, OnDemandError, OnDemandOptions};
use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix::{self, Toolchain};
use oom_tests::pprof_raw::{RawProfile, SampleKey};
use oom_tests::privileged;
use oom_tests::process::Running;

fn samples(p: &RawProfile, nonzero: bool) -> BTreeMap<SampleKey, usize> {
    p.keyed_samples(usize::MAX, nonzero)
}

struct Compared {
    ours: usize,
    theirs: usize,
    zero_only_ours: usize,
    took: Duration,
}

/// Runs holder, has it write its own profile, then profiles it on demand while it is
/// quiescent, and compares both through `go tool pprof -raw`.
fn compare(tc: &Toolchain, v: Variant, rate: Option<u32>, cache: &BinaryCache) -> Compared {
    let what = format!("go {} {} rate {:?}", tc.version, v.name(), rate);
    let bin = fixtures::build("holder", tc, v).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "oomprof-ondemand-{}-{}-{}-{}",
        std::process::id(),
        tc.version,
        v.name(),
        rate.unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let theirs_path = dir.join("theirs.pb.gz");
    let ours_path = dir.join("ours.pb.gz");
    let mut cmd = Command::new(&bin);
    cmd.env("FIXTURE_PROFILE", &theirs_path);
    if let Some(r) = rate {
        cmd.env("FIXTURE_MEMPROFILERATE", r.to_string());
    }
    let mut p = Running::spawn(&mut cmd).unwrap();
    p.wait_line("ready", Duration::from_secs(30)).unwrap();
    p.signal(libc::SIGUSR2).unwrap();
    p.wait_line("profiled", Duration::from_secs(30)).unwrap();
    let t = Instant::now();
    let prof = profile_pid(p.pid(), &OnDemandOptions::default(), Some(cache))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let took = t.elapsed();
    assert!(
        prof.meta.incomplete.is_empty(),
        "{what}: {:?}",
        prof.meta.incomplete
    );
    std::fs::write(&ours_path, &prof.pprof_gz).unwrap();
    let ours = RawProfile::parse(&tc.pprof_raw(&bin, &ours_path).unwrap()).unwrap();
    let theirs = RawProfile::parse(&tc.pprof_raw(&bin, &theirs_path).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(ours.period, theirs.period, "{what}: period");
    assert_eq!(ours.sample_types, theirs.sample_types, "{what}");
    // Every non-zero sample identical, stacks and values.
    let (a, b) = (samples(&ours, true), samples(&theirs, true));
    if a != b {
        let only_ours: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).collect();
        let only_theirs: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).collect();
        panic!("{what}: samples differ\nonly ours: {only_ours:#?}\nonly theirs: {only_theirs:#?}");
    }
    // Zero-valued samples: ours may have more (buckets created by the profile writer
    // itself after it read the list), never fewer.
    let (za, zb) = (samples(&ours, false), samples(&theirs, false));
    for (k, n) in &zb {
        assert!(
            za.get(k).copied().unwrap_or(0) >= *n,
            "{what}: zero sample missing: {k:?}"
        );
    }
    Compared {
        ours: ours.samples.len(),
        theirs: theirs.samples.len(),
        zero_only_ours: ours.samples.len() - theirs.samples.len(),
        took,
    }
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn on_demand_profile_equals_holders_own_profile_across_the_matrix() {
    const T: &str = "on_demand_profile_equals_holders_own_profile_across_the_matrix";
    if !privileged::root(T) {
        return;
    }
    let Some(matrix) = gomatrix::matrix(T) else {
        return;
    };
    let cache = BinaryCache::default();
    let mut times = Vec::new();
    for tc in &matrix {
        for v in Variant::ALL {
            for rate in [Some(1), None] {
                let c = compare(tc, v, rate, &cache);
                eprintln!(
                    "go {} {:8} rate {:>6}: {} samples (Go {}; {} zero-valued only ours), {:.2?}",
                    tc.version,
                    v.name(),
                    rate.map_or("default".to_string(), |r| r.to_string()),
                    c.ours,
                    c.theirs,
                    c.zero_only_ours,
                    c.took
                );
                times.push(c.took);
            }
        }
    }
    times.sort();
    eprintln!(
        "on-demand wall time: median {:.2?}, max {:.2?}",
        times[times.len() / 2],
        times[times.len() - 1]
    );
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn noprof_is_diagnosed_not_profiled() {
    const T: &str = "noprof_is_diagnosed_not_profiled";
    if !privileged::root(T) {
        return;
    }
    let Some(matrix) = gomatrix::matrix(T) else {
        return;
    };
    for tc in &matrix {
        for v in [Variant::Default, Variant::Stripped] {
            let bin = fixtures::build("noprof", tc, v).unwrap();
            let mut p = Running::spawn(Command::new(&bin).arg("-hold")).unwrap();
            p.wait_line("ready", Duration::from_secs(30)).unwrap();
            match profile_pid(p.pid(), &OnDemandOptions::default(), None) {
                Err(e @ OnDemandError::ProfilingDisabled { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains("runtime.MemProfile"), "{msg}");
                }
                other => panic!("go {} {}: {other:?}", tc.version, v.name()),
            }
        }
    }
}

/// Children of `pid` (from /proc/PID/task/*/children).
fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in rd.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|x| x.parse::<i32>().ok()));
        }
    }
    out
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn on_demand_reaches_into_other_pid_and_mount_namespaces() {
    const T: &str = "on_demand_reaches_into_other_pid_and_mount_namespaces";
    if !privileged::root(T) {
        return;
    }
    if privileged::tool(T, "unshare").is_none() {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let bin = fixtures::build("holder", &tc, Variant::Stripped).unwrap();
    // A new pid and mount namespace whose holder runs from a tmpfs that exists only
    // inside it: its path means nothing on the host.
    let script = format!(
        "mkdir -p /tmp/oomprof-ns-$$ && mount -t tmpfs ns /tmp/oomprof-ns-$$ && \
         cp {} /tmp/oomprof-ns-$$/holder-in-ns && exec /tmp/oomprof-ns-$$/holder-in-ns",
        bin.display()
    );
    let mut p = Running::spawn(
        Command::new("unshare")
            .args(["--mount", "--pid", "--fork", "--mount-proc", "sh", "-c"])
            .arg(&script),
    )
    .unwrap();
    let ready = p.wait_line("ready", Duration::from_secs(30)).unwrap();
    assert!(
        ready.contains("pid=1 "),
        "not pid 1 in its namespace: {ready}"
    );
    let host_pid = children(p.pid())[0];
    let prof = profile_pid(host_pid, &OnDemandOptions::default(), None).unwrap();
    eprintln!(
        "pid {host_pid} (1 in its namespace), exe {}: top {:?}",
        prof.meta.exe.display(),
        prof.summary.top_function
    );
    assert!(prof.meta.exe.to_string_lossy().contains("holder-in-ns"));
    assert!(
        !prof.meta.exe.exists(),
        "the path should exist only in the namespace"
    );
    assert_eq!(
        prof.summary.top_function.as_deref(),
        Some("main.allocLarge")
    );
    drop(p); // kills unshare; the namespace's init (holder) dies with its parent's kill
             // SAFETY: kill on the holder we started (through unshare).
    unsafe { libc::kill(host_pid, libc::SIGKILL) };
    // The mount point was made on the host's /tmp (the tmpfs lived only inside).
    let _ = std::fs::remove_dir("/tmp/oomprof-ns-1");
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn many_processes_of_one_binary_cost_one_analysis() {
    const T: &str = "many_processes_of_one_binary_cost_one_analysis";
    if !privileged::root(T) {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let bin = fixtures::build("holder", &tc, Variant::Pie).unwrap();
    let mut procs = Vec::new();
    for _ in 0..20 {
        let mut p = Running::spawn(
            Command::new(&bin)
                .args(["-large", "1", "-small", "10"])
                .env("FIXTURE_MEMPROFILERATE", "1"),
        )
        .unwrap();
        p.wait_line("ready", Duration::from_secs(30)).unwrap();
        procs.push(p);
    }
    let cache = BinaryCache::default();
    for p in &procs {
        let prof = profile_pid(p.pid(), &OnDemandOptions::default(), Some(&cache)).unwrap();
        assert_eq!(
            prof.summary.top_function.as_deref(),
            Some("main.allocLarge")
        );
    }
    assert_eq!(cache.analyses(), 1, "20 processes of one binary");
    assert_eq!(cache.len(), 1);
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn the_summary_names_the_function_pprof_puts_on_top() {
    // The daemon's `top=`: pprof's flat attribution (return PC - 1, innermost inlined
    // function, leading runtime frames dropped), not the function at the return PC.
    const T: &str = "the_summary_names_the_function_pprof_puts_on_top";
    if !privileged::root(T) {
        return;
    }
    let Some(matrix) = gomatrix::matrix(T) else {
        return;
    };
    let cache = BinaryCache::default();
    for tc in &matrix {
        for fixture in ["holder", "inlined", "deep"] {
            let what = format!("go {} {fixture}", tc.version);
            let bin = fixtures::build(fixture, tc, Variant::Default).unwrap();
            let mut p =
                Running::spawn(Command::new(&bin).env("FIXTURE_MEMPROFILERATE", "1")).unwrap();
            p.wait_line("ready", Duration::from_secs(30)).unwrap();
            let prof = profile_pid(p.pid(), &OnDemandOptions::default(), Some(&cache))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let dir = std::env::temp_dir().join(format!("oomprof-top-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!("{fixture}-{}.pb.gz", tc.version));
            std::fs::write(&file, &prof.pprof_gz).unwrap();
            let raw = RawProfile::parse(&tc.pprof_raw(&bin, &file).unwrap()).unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            let (top, bytes) = raw.top_function("inuse_space").unwrap();
            eprintln!(
                "{what}: pprof's top {top} ({bytes} B); summary {:?} ({} B)",
                prof.summary.top_function, prof.summary.top_inuse_bytes
            );
            assert_eq!(
                prof.summary.top_function.as_deref(),
                Some(top.as_str()),
                "{what}"
            );
            assert_eq!(prof.summary.top_inuse_bytes, bytes, "{what}");
        }
    }
}
