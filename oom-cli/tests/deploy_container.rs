//! The shipped image, run as the shipped DaemonSet runs it, captures OOM kills on the
//! host (issue 17).
//!
//! `deploy/Dockerfile` is built by Debian's dockerd around the static musl binary;
//! the container runs on the same containerd and runc with what
//! `deploy/daemonset.yaml` says (see [`spec_of`]): the kubelet's command line rule,
//! the host PID namespace, `drop: [ALL]` plus exactly the listed capabilities, no
//! new privileges, a read-only root, containerd's default seccomp profile
//! (RuntimeDefault), the memory limit, and the hostPath volumes, the node's
//! `/var/lib/oomprof` being the test's own directory. Go programs are OOM-killed on
//! the host in memory cgroups of their own; their profiles must appear in the mounted
//! directory and satisfy `go tool pprof` and the OOM-time invariants.
//!
//! Not reproduced: the kubelet and CRI themselves (ctr builds the spec from
//! containerd's defaults, as CRI does, but it is not CRI), AppArmor (this kernel
//! has none: nodes with AppArmor put containers under a profile that denies mount,
//! which only matters on nodes without tracefs), the pod's pause container and
//! network, `priorityClassName`, `tolerations`, and the memory request, which only
//! schedules.

use std::path::Path;
use std::time::{Duration, Instant};

use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix;
use oom_tests::privileged;

mod common;

use common::deploy::{
    cap_mask, cap_names, deploy_dir, judge_oom_file, kubelet_argv, mount_at, oom_kill, proc_caps,
    static_bin, DaemonSet, EnvValue, HostMount, TempDir,
};
use common::runtime::{mem_figures, RunSpec, Runtime, UID};
use common::*;

/// Builds `deploy/Dockerfile` as its comment says: the static binary next to it in
/// the build context (a copy of deploy/, so the work tree is left alone).
fn build_image(rt: &Runtime, bin: &Path) -> String {
    let ctx = rt.dir.join("context");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(deploy_dir().join("Dockerfile"), ctx.join("Dockerfile")).unwrap();
    std::fs::copy(bin, ctx.join("oomprof")).unwrap();
    rt.build(&ctx)
}

/// The run the DaemonSet asks for, with the profiles volume's node path replaced by
/// `profiles`, the runtime-state volumes' by the private runtimes' own state (made
/// when missing, as `DirectoryOrCreate` does), and the memory limit when `limit`
/// (the manifest's own).
fn spec_of(ds: &DaemonSet, rt: &Runtime, tag: &str, profiles: &Path, limit: bool) -> RunSpec {
    let (entrypoint, cmd) = rt.image_config(tag);
    let argv = kubelet_argv(ds.command.as_deref(), ds.args.as_deref(), &entrypoint, &cmd);
    assert!(
        !ds.privileged,
        "a privileged container is not what is tested"
    );
    assert_eq!(ds.run_as_user, Some(0), "runAsUser");
    assert_eq!(ds.cap_drop, ["ALL"], "capabilities.drop");
    let mounts = ds
        .mounts
        .iter()
        .map(|m| {
            let host = match m.path.to_str().unwrap() {
                "/profiles" => profiles.to_path_buf(),
                "/run/containerd/io.containerd.runtime.v2.task" => rt
                    .dir
                    .join("containerd/state/io.containerd.runtime.v2.task"),
                "/var/lib/docker/containers" => rt.dir.join("docker/containers"),
                p if p.starts_with("/run/") || p.starts_with("/var/lib/") => {
                    panic!("{p}: a runtime-state volume the test does not map to its runtimes")
                }
                _ => m.host.clone(),
            };
            if !host.exists() {
                std::fs::create_dir_all(&host).unwrap();
            }
            HostMount { host, ..m.clone() }
        })
        .collect();
    RunSpec {
        image: rt.import(tag),
        argv,
        host_pid: ds.host_pid,
        caps: ds.cap_add.clone(),
        read_only_root: ds.read_only_root,
        seccomp: ds.seccomp_runtime_default,
        allow_new_privs: ds.allow_privilege_escalation,
        memory_limit: limit.then_some(ds.memory_limit),
        mounts,
        // What the kubelet fills in from the pod: this test's node is "node-a".
        env: ds
            .env
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    EnvValue::Plain(v) => v.clone(),
                    EnvValue::Field(f) if f == "spec.nodeName" => "node-a".into(),
                    EnvValue::Field(f) => panic!("env {k} from {f}: not reproduced"),
                };
                (k.clone(), v)
            })
            .collect(),
    }
}

/// What the running container's process holds, checked against the manifest from the
/// host: uid 0, exactly the listed capabilities in every set (none inheritable or
/// ambient), no_new_privs, seccomp filtering, the host PID namespace, a read-only root
/// and /sys, the tracing volume read-only (tracefs there when the node has it), the
/// profiles directory writable.
fn check_confinement(pid: i32, ds: &DaemonSet, node_tracefs: bool) {
    let caps = proc_caps(pid);
    let want = cap_mask(&ds.cap_add);
    assert_eq!(caps.euid, 0, "runAsUser 0");
    for (set, got) in [
        ("effective", caps.effective),
        ("permitted", caps.permitted),
        ("bounding", caps.bounding),
    ] {
        assert_eq!(
            got,
            want,
            "{set} capabilities {:?}, the manifest lists {:?}",
            cap_names(got),
            cap_names(want)
        );
    }
    assert_eq!((caps.inheritable, caps.ambient), (0, 0), "{caps:?}");
    assert_eq!(caps.no_new_privs, !ds.allow_privilege_escalation);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    if ds.seccomp_runtime_default {
        assert!(
            status.lines().any(|l| l == "Seccomp:\t2"),
            "no seccomp filter"
        );
    }
    let ns = |p: String| std::fs::read_link(p).unwrap();
    assert_eq!(
        ns(format!("/proc/{pid}/ns/pid")) == ns("/proc/self/ns/pid".into()),
        ds.host_pid,
        "hostPID"
    );
    let root = mount_at(pid, "/").unwrap();
    assert_eq!(root.read_only(), ds.read_only_root, "root: {root:?}");
    let sys = mount_at(pid, "/sys").unwrap();
    assert!(sys.read_only(), "/sys: {sys:?}");
    for m in &ds.mounts {
        let path = m.path.to_str().unwrap();
        let seen = mount_at(pid, path).unwrap_or_else(|| panic!("nothing mounted at {path}"));
        assert_eq!(seen.read_only(), m.read_only, "{path}: {seen:?}");
    }
    // The environment the kubelet would give it (NODE_NAME from spec.nodeName).
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    for (k, _) in &ds.env {
        assert!(
            environ
                .split(|&b| b == 0)
                .any(|e| e.starts_with(format!("{k}=").as_bytes())),
            "{k} not in the container's environment"
        );
    }
    let tracing = mount_at(pid, "/sys/kernel/tracing").expect("the tracing volume");
    assert_eq!(
        tracing.fstype == "tracefs",
        node_tracefs,
        "/sys/kernel/tracing in the container: {tracing:?}"
    );
}

/// The profile of `pid` in `dir`, once the daemon has said it wrote it (its log so far
/// is in the panic message when it does not).
fn waited_profile(d: &mut Daemon, dir: &Path, pid: i32) -> std::path::PathBuf {
    d.wait_log(&format!(".pb.gz pid={pid} "), Duration::from_secs(60));
    profile_of(dir, pid, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no profile for pid {pid} in {}", dir.display()))
}

#[test]
#[ignore = "needs root, containerd, dockerd, runc, the Go matrix and OOMPROF_STATIC_BIN: run tests/run"]
fn the_image_run_as_the_daemonset_says_captures_an_oom_kill_on_a_node_without_tracefs() {
    // This host has no tracefs mounted, nor has containerd's namespace: the daemon
    // mounts a private one inside the container, with the manifest's CAP_SYS_ADMIN,
    // under containerd's default seccomp profile.
    const T: &str =
        "the_image_run_as_the_daemonset_says_captures_an_oom_kill_on_a_node_without_tracefs";
    if !privileged::root(T) {
        return;
    }
    let Some(bin) = static_bin(T) else { return };
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let _g = serial();
    let ds = DaemonSet::read();
    let t0 = Instant::now();
    let Some(mut rt) = Runtime::start(T) else {
        return;
    };
    let tag = build_image(&rt, &bin);
    let (entrypoint, cmd) = rt.image_config(&tag);
    assert_eq!(entrypoint, ["/oomprof", "run", "--dir", "/profiles"]);
    assert!(cmd.is_empty(), "CMD {cmd:?}");
    rt.node_tracefs(false);
    let profiles = TempDir::new("a");
    let spec = spec_of(&ds, &rt, &tag, &profiles.0, false);
    assert_eq!(spec.argv, entrypoint, "the kubelet's command line");
    eprintln!("runtime up and image built in {:.1?}", t0.elapsed());
    let mut d = Daemon::start(&mut rt.run("oomprof-a", &spec));
    let pid = rt.container_pid("oomprof-a");
    check_confinement(pid, &ds, false);
    let oomer = fixtures::build("oomer", &tc, Variant::Stripped).unwrap();
    let limit = 64 << 20;
    let (victim, cgroup) = oom_kill(&oomer, &[], limit);
    let file = waited_profile(&mut d, &profiles.0, victim);
    judge_oom_file(
        &tc,
        &oomer,
        &file,
        (victim, &cgroup),
        limit,
        false,
        "main.allocChunk",
    );
    // The event of that kill, with the kernel's report read through syslog(2): the
    // container has no /dev/kmsg.
    let ev = event_of(&profiles.0, victim);
    assert_eq!(
        ev["sources"],
        serde_json::json!(["mark_victim", "kernel_log"]),
        "{ev}"
    );
    assert_eq!(ev["constraint"], "CONSTRAINT_MEMCG", "{ev}");
    assert_eq!(ev["memcg"]["bytes"]["dominant"], "anon", "{ev}");

    // A pod's container OOM-killed on the same containerd: the mounted runtime state
    // names it in the profile's name and comments and in its event.
    let oomer_rate1 = fixtures::build("oomer", &tc, Variant::Default).unwrap();
    let (_, image) = rt.victim_image(&oomer_rate1);
    let (id, _) = rt.run_cri_victim(&image, 2);
    let file = profile_prefixed(&profiles.0, "shop_api-7d9f-x2_api-");
    let c = pprof_comments(&tc, &file);
    assert!(
        c.contains(&format!("pod: shop/api-7d9f-x2 uid={UID} qos=Burstable")),
        "{c}"
    );
    assert!(
        c.contains(&format!("container: api runtime=containerd id={id}")),
        "{c}"
    );
    let pid: i32 = file
        .file_name()
        .unwrap()
        .to_string_lossy()
        .rsplit('-')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap();
    judge_oom_file(
        &tc,
        &oomer_rate1,
        &file,
        (pid, &format!(":/kubepods/burstable/pod{UID}/{id}")),
        OOM_LIMIT,
        true,
        "main.allocChunk",
    );
    let ev = event_of(&profiles.0, pid);
    assert_eq!(
        (
            ev["namespace"].as_str(),
            ev["pod"].as_str(),
            ev["container"].as_str()
        ),
        (Some("shop"), Some("api-7d9f-x2"), Some("api")),
        "{ev}"
    );
    assert_eq!(ev["container_id"], id.as_str(), "{ev}");
    d.sigterm();
    eprintln!("{T}: {:.1?}", t0.elapsed());
}

/// `kernel memory X MiB` of the daemon's ready line, in MiB.
fn kernel_mib(ready: &str) -> f64 {
    ready
        .split("kernel memory ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no kernel memory figure in {ready:?}"))
}

/// VmHWM (peak resident set) of `pid`, bytes.
fn vm_hwm(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

#[test]
#[ignore = "needs root, containerd, dockerd, runc, the Go matrix and OOMPROF_STATIC_BIN: run tests/run"]
fn the_daemonset_memory_limit_holds_through_the_kills_it_reports_on_a_node_with_tracefs() {
    // The node has tracefs mounted (in containerd's mount namespace only: the host's
    // mounts stay as they are), so the read-only tracing volume carries it. The
    // container runs under the manifest's memory limit, which BPF map memory is
    // charged to, and reports three OOM kills: a small one, the largest capture the
    // defaults allow (150,000 buckets, --max-buckets), and another small one after it.
    // It must survive them all (no OOM kill in its own cgroup) and peak at no more than
    // half its limit. The figures it prints are the manifest's.
    const T: &str =
        "the_daemonset_memory_limit_holds_through_the_kills_it_reports_on_a_node_with_tracefs";
    if !privileged::root(T) {
        return;
    }
    let Some(bin) = static_bin(T) else { return };
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let _g = serial();
    let ds = DaemonSet::read();
    let t0 = Instant::now();
    let Some(mut rt) = Runtime::start(T) else {
        return;
    };
    let tag = build_image(&rt, &bin);
    rt.node_tracefs(true);
    let profiles = TempDir::new("b");
    let spec = spec_of(&ds, &rt, &tag, &profiles.0, true);
    let mut d = Daemon::start(&mut rt.run("oomprof-b", &spec));
    let ready = d.log.last().cloned().unwrap();
    let pid = rt.container_pid("oomprof-b");
    check_confinement(pid, &ds, true);
    let cgroup = rt.memory_cgroup("oomprof-b");
    std::thread::sleep(Duration::from_millis(500));
    let idle = mem_figures(&cgroup);
    let oomer = fixtures::build("oomer", &tc, Variant::Stripped).unwrap();
    let oomer_pie = fixtures::build("oomer", &tc, Variant::Pie).unwrap();
    let many = fixtures::build("manysites", &tc, Variant::Default).unwrap();
    let mut sizes = Vec::new();
    // manysites records its 100,000 sites at MemProfileRate 1, then sets the default
    // rate before allocating the chunks that kill it: Go scales every sample by the
    // rate in force (as runtime/pprof would), so allocSite tops inuse_space and the
    // totals are estimates.
    for (what, bin, args, limit, top) in [
        ("oomer", &oomer, &[][..], 64 << 20, "main.allocChunk"),
        (
            "manysites 150k",
            &many,
            &["-n", "150000", "-oom"][..],
            512 << 20,
            "main.allocSite",
        ),
        (
            "oomer pie",
            &oomer_pie,
            &[][..],
            64 << 20,
            "main.allocChunk",
        ),
    ] {
        let (victim, cg) = oom_kill(bin, args, limit);
        let file = waited_profile(&mut d, &profiles.0, victim);
        judge_oom_file(&tc, bin, &file, (victim, &cg), limit, false, top);
        let size = std::fs::metadata(&file).unwrap().len();
        eprintln!("{what}: {} bytes of profile", size);
        sizes.push(size);
        assert!(
            d.child.try_wait().unwrap().is_none(),
            "the daemon died after the {what} kill"
        );
    }
    let after = mem_figures(&cgroup);
    let hwm = vm_hwm(pid);
    eprintln!(
        "deploy figures (container memory cgroup, limit {}): ready line says kernel memory \
         {:.1} MiB; idle: usage {}, kernel {}, anon {}, file {}; after the three kills: \
         usage {}, peak {}, kernel {} (peak {}), anon {}, file {}; daemon VmHWM {}; \
         limit hits {}, OOM kills {}; largest profile {}",
        mib(ds.memory_limit),
        kernel_mib(&ready),
        mib(idle.usage),
        mib(idle.kernel),
        mib(idle.anon),
        mib(idle.file),
        mib(after.usage),
        mib(after.peak),
        mib(after.kernel),
        after.kernel_peak.map(mib).unwrap_or_else(|| "n/a".into()),
        mib(after.anon),
        mib(after.file),
        mib(hwm),
        after.limit_hits,
        after.oom_kills,
        mib(sizes.iter().copied().max().unwrap()),
    );
    assert_eq!(
        after.oom_kills, 0,
        "the daemon's own cgroup saw an OOM kill"
    );
    // The headroom the manifest's comment claims: re-measure and update it if not.
    assert!(
        after.peak * 2 <= ds.memory_limit,
        "peak {} is more than half the manifest's limit {}",
        mib(after.peak),
        mib(ds.memory_limit)
    );
    d.sigterm();
    eprintln!("{T}: {:.1?}", t0.elapsed());
}
