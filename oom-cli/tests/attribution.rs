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
use std::time::Duration;

use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix;
use oom_tests::privileged;

mod common;

use common::deploy::judge_oom_file;
use common::runtime::Runtime;
use common::*;

const UID: &str = "3f2e1d0c-9b8a-4765-8432-10fedcba9876";

/// A 64-hex container id unique to this run.
fn container_id(tag: u8) -> String {
    format!("{:056x}{:08x}", 0xabcdu64 + tag as u64, std::process::id())
}

/// The kubelet-layout cgroups runc makes in every hierarchy (v1: memory, cpu, pids,
/// ...; v2: the unified one) for `rel`: those that did not exist before are removed
/// on drop, innermost first.
struct KubeCgroups(Vec<PathBuf>);

impl KubeCgroups {
    fn new(rel: &str) -> Self {
        let mut made = Vec::new();
        for h in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let h = h.path();
            if !h.is_dir() || h.is_symlink() {
                continue;
            }
            let mut p = h.clone();
            let mut chain = Vec::new();
            for part in rel.trim_start_matches('/').split('/') {
                p = p.join(part);
                if !p.exists() {
                    chain.push(p.clone());
                }
            }
            made.extend(chain.into_iter().rev());
        }
        Self(made)
    }
}

impl Drop for KubeCgroups {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir(d);
        }
    }
}

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

/// The profile whose file name starts with `prefix`, waiting for it.
fn profile_named(dir: &Path, prefix: &str) -> PathBuf {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(p) = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
            })
        {
            return p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {prefix}* profile in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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
    let ctx = rt.dir.join("victim-image");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(&oomer, ctx.join("oomer")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY oomer /oomer\nENTRYPOINT [\"/oomer\"]\n",
    )
    .unwrap();
    let tag = rt.build(&ctx);
    let image = rt.import(&tag);

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
    let id = container_id(1);
    let cgroup = format!("/kubepods/burstable/pod{UID}/{id}");
    let _kube = KubeCgroups::new(&cgroup);
    let mut ctr = rt.ctr();
    ctr.args(["run", "--rm", "--snapshotter", "native"])
        .arg("--fifo-dir")
        .arg(rt.dir.join("fifo"))
        .arg("--runc-root")
        .arg(rt.dir.join("runc"))
        .arg("--cgroup")
        .arg(&cgroup)
        .args(["--memory-limit", &OOM_LIMIT.to_string()])
        .args(["--env", "FIXTURE_MEMPROFILERATE=1"])
        .args(["--annotation", "io.kubernetes.cri.container-type=container"])
        .args(["--annotation", "io.kubernetes.cri.container-name=api"])
        .args(["--annotation", "io.kubernetes.cri.sandbox-name=api-7d9f-x2"])
        .args(["--annotation", "io.kubernetes.cri.sandbox-namespace=shop"])
        .args([
            "--annotation",
            &format!("io.kubernetes.cri.sandbox-uid={UID}"),
        ])
        .arg(&image)
        .arg(&id);
    let st = ctr.status().unwrap();
    assert_eq!(
        st.code(),
        Some(137),
        "the container was not OOM-killed: {st}"
    );
    let file = profile_named(&dir, "shop_api-7d9f-x2_api-");
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
    let file = profile_named(&dir, "prod_web-0_web-");
    let c = pprof_comments(&tc, &file);
    assert!(c.contains("pod: prod/web-0"), "{c}");
    assert!(c.contains("container: web runtime=docker id="), "{c}");
    // dockerd runs its containers under --cgroup-parent (the runtime's name).
    judge(&tc, &oomer, &file, &format!("/{}/", rt.name));
    d.sigterm();
    let _ = std::fs::remove_dir_all(&dir);
}
