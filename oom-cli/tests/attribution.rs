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

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix;
use oom_tests::privileged;

mod common;

use common::deploy::judge_oom_file;
use common::runtime::{KubeCgroups, Runtime, UID};
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

/// Podman, private to the test: its storage (vfs: plain directories) and state under
/// `dir`, runc's root there too, and `/var/lib` a tmpfs in its own mount namespace
/// (containers/image keeps a blob cache in /var/lib/containers otherwise).
struct Podman {
    dir: PathBuf,
    /// Whether /run/runc was there before: Podman has runc make it once despite
    /// `--runtime-flag root=`, and it is removed (when empty) if it was not.
    run_runc: bool,
}

impl Podman {
    fn new(test: &str) -> Self {
        let dir = PathBuf::from(format!(
            "/tmp/oomprof-podman-{}-{test:.8}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            dir,
            run_runc: Path::new("/run/runc").exists(),
        }
    }

    /// `podman ARGS` with every root in the test's directory.
    fn cmd(&self, args: &[&str]) -> Command {
        let d = self.dir.display();
        let mut c = Command::new("unshare");
        c.args(["-m", "--propagation", "private", "--", "sh", "-c"])
            .arg(format!(
            "mount -t tmpfs oomprof-test /var/lib && exec podman --root {d}/root --runroot {d}/run \
             --tmpdir {d}/tmp --cgroup-manager cgroupfs --events-backend none --runtime runc \
             --runtime-flag root={d}/runc --storage-driver vfs \"$@\"",
        ));
        // conmon writes an `oom` file into its working directory at the kill.
        c.arg("podman").args(args).current_dir(&self.dir);
        c
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd(&["rm", "--all", "--force"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
        if !self.run_runc {
            let _ = std::fs::remove_dir("/run/runc");
        }
    }
}

#[test]
#[ignore = "needs root, the Go matrix and podman: run tests/run"]
fn a_podman_container_oom_kill_names_its_pod_and_container_from_containers_storage() {
    // Podman keeps CRI-O's state format (containers/storage, the OCI config.json in
    // `<driver>-containers/<id>/userdata/` with io.kubernetes.* annotations) and
    // names the cgroup `libpod-<id>` under the parent given, here the kubelet's
    // cgroupfs layout.
    let test = "a_podman_container_oom_kill_names_its_pod_and_container_from_containers_storage";
    if !privileged::root(test) || privileged::tool(test, "podman").is_none() {
        return;
    }
    let Some(tc) = gomatrix::newest(test) else {
        return;
    };
    let _g = serial();
    let pm = Podman::new("attr");
    let oomer = fixtures::build("oomer", &tc, Variant::Default).unwrap();
    let ctx = pm.dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(&oomer, ctx.join("oomer")).unwrap();
    let st = Command::new("tar")
        .arg("-C")
        .arg(&ctx)
        .args(["-cf"])
        .arg(pm.dir.join("rootfs.tar"))
        .arg("oomer")
        .status()
        .unwrap();
    assert!(st.success());
    let tar = pm.dir.join("rootfs.tar");
    let out = pm
        .cmd(&[
            "import",
            "--change",
            "ENTRYPOINT [\"/oomer\"]",
            tar.to_str().unwrap(),
            "localhost/oomprof-victim:t",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let node = pm.dir.join("node");
    std::fs::create_dir_all(node.join("var/lib/containers")).unwrap();
    std::os::unix::fs::symlink(pm.dir.join("root"), node.join("var/lib/containers/storage"))
        .unwrap();
    let dir = tmpdir("podman");
    let mut d = daemon(&dir, &["--runtime-root", node.to_str().unwrap()]);

    let parent = format!("/kubepods/burstable/pod{UID}");
    let _kube = KubeCgroups::new(&parent);
    let limit = OOM_LIMIT.to_string();
    let out = pm
        .cmd(&[
            "run",
            "--name",
            "victim",
            "--network",
            "none",
            // Within the hard limits this host gives root (Podman asks for more).
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "--memory",
            &limit,
            "--memory-swap",
            &limit,
            "-e",
            "FIXTURE_MEMPROFILERATE=1",
            "--cgroup-parent",
            &parent,
            "--annotation",
            "io.kubernetes.pod.name=db-0",
            "--annotation",
            "io.kubernetes.pod.namespace=data",
            "--annotation",
            "io.kubernetes.container.name=pg",
            "localhost/oomprof-victim:t",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(137),
        "not OOM-killed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(
        pm.cmd(&["inspect", "victim", "--format", "{{.Id}}"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    assert_eq!(id.len(), 64, "{id}");
    let file = profile_prefixed(&dir, "data_db-0_pg-");
    let c = pprof_comments(&tc, &file);
    assert!(
        c.contains(&format!("pod: data/db-0 uid={UID} qos=Burstable")),
        "{c}"
    );
    assert!(
        c.contains(&format!("container: pg runtime=podman id={id}")),
        "{c}"
    );
    judge(&tc, &oomer, &file, &format!("{parent}/libpod-{id}"));
    d.wait_log("pod=data/db-0 container=pg", Duration::from_secs(10));
    d.sigterm();
    let _ = std::fs::remove_dir_all(&dir);
}
