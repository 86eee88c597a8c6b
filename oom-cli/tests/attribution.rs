//! Which pod and container died, with a real container runtime (Debian's containerd,
//! runc and dockerd, private to the test): a Go program OOM-killed inside a container
//! gives a profile whose name and comments say its pod, namespace, container and
//! container id, from the cgroup path and the runtime's own state.
//!
//! - containerd with the kubelet's cgroupfs layout (`/kubepods/burstable/pod<uid>/<id>`)
//!   and the CRI annotations on the bundle, the way the CRI plugin writes them;
//! - Docker with the `io.kubernetes.*` labels cri-dockerd sets.
//!
//! The daemon runs on the host with `--runtime-root` at a directory whose
//! `run/containerd` and `var/lib/docker` are the private runtimes' state.

use std::path::Path;
use std::time::Duration;

use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix;
use oom_tests::privileged;

mod common;

use common::deploy::judge_oom_file;
use common::runtime::{Runtime, UID};
use common::*;

/// The victim's profile, judged exactly (MemProfileRate 1 in the container): within
/// the container's 64 MiB, the culprit on top, the kill, pid and `cgroup` named. The
/// pid is the file name's (`{who}-{pid}-{time}.pb.gz`).
fn judge(tc: &gomatrix::Toolchain, bin: &Path, file: &Path, cgroup: &str) {
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let pid: i32 = name
        .rsplit('-')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap();
    judge_oom_file(
        tc,
        bin,
        file,
        (pid, cgroup),
        OOM_LIMIT,
        true,
        "main.allocChunk",
    );
}

#[test]
#[ignore = "needs root, the Go matrix, containerd, runc and docker.io: run tests/run"]
fn a_container_oom_kill_names_its_pod_and_container() {
    let test = "a_container_oom_kill_names_its_pod_and_container";
    if !privileged::root(test) {
        return;
    }
    let Some(tc) = gomatrix::newest(test) else {
        return;
    };
    let Some(rt) = Runtime::start(test) else {
        return;
    };
    let _g = serial();

    // An image with the Go victim.
    let oomer = fixtures::build("oomer", &tc, Variant::Default).unwrap();
    let (tag, image) = rt.victim_image(&oomer);

    // The node's runtime state, as the daemon would find it at /.
    let node = rt.dir.join("node");
    std::fs::create_dir_all(node.join("run")).unwrap();
    std::fs::create_dir_all(node.join("var/lib")).unwrap();
    std::os::unix::fs::symlink(rt.dir.join("containerd/state"), node.join("run/containerd"))
        .unwrap();
    std::os::unix::fs::symlink(rt.dir.join("docker"), node.join("var/lib/docker")).unwrap();

    let dir = tmpdir("attribution");
    let mut d = daemon(&dir, &["--runtime-root", node.to_str().unwrap()]);

    // containerd, as the CRI plugin runs a pod's container under the cgroupfs driver.
    let (id, _) = rt.run_cri_victim(&image, 1);
    let file = profile_prefixed(&dir, "shop_api-7d9f-x2_api-");
    let c = pprof_comments(&tc, &file);
    assert!(c.contains("reason=oom"), "{c}");
    assert!(
        c.contains(&format!("pod: shop/api-7d9f-x2 uid={UID} qos=Burstable")),
        "{c}"
    );
    assert!(
        c.contains(&format!("container: api runtime=containerd id={id}")),
        "{c}"
    );
    judge(
        &tc,
        &oomer,
        &file,
        &format!(":/kubepods/burstable/pod{UID}/{id}"),
    );
    d.wait_log(
        "pod=shop/api-7d9f-x2 container=api",
        Duration::from_secs(10),
    );

    // Docker with cri-dockerd's labels.
    let name = format!("k8s_web_web-0_prod_{}", std::process::id());
    let out = rt
        .docker()
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "-e",
            "FIXTURE_MEMPROFILERATE=1",
            "--memory",
            "64m",
            "--name",
            &name,
        ])
        .args(["--label", "io.kubernetes.pod.name=web-0"])
        .args(["--label", "io.kubernetes.pod.namespace=prod"])
        .args(["--label", "io.kubernetes.container.name=web"])
        .arg(&tag)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(137),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = profile_prefixed(&dir, "prod_web-0_web-");
    let c = pprof_comments(&tc, &file);
    assert!(c.contains("pod: prod/web-0"), "{c}");
    assert!(c.contains("container: web runtime=docker id="), "{c}");
    // dockerd runs its containers under --cgroup-parent (the runtime's name).
    judge(&tc, &oomer, &file, &format!("/{}/", rt.name));
    d.sigterm();
    let _ = std::fs::remove_dir_all(&dir);
}
