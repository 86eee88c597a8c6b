//! A private container runtime for the deployment tests: Debian's containerd, dockerd
//! (docker.io) and runc, started by the test on sockets, roots and state under one
//! temporary directory, each daemon in a private mount namespace of its own, and
//! everything they made removed on drop (also when the test panics): containers,
//! daemons, cgroups, directories.
//!
//! dockerd builds the image. The container runs through containerd's own client,
//! `ctr`, on the same containerd and runc: Debian 12's dockerd (20.10) refuses
//! `--cap-add BPF` and `--cap-add PERFMON` (it caps its capability list at
//! CAP_AUDIT_READ for runc releases older than its own), while Kubernetes hands the
//! capability names to containerd (CRI), which takes every capability the kernel has.
//! `ctr run` builds the spec with containerd's own defaults, as CRI does.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use oom_tests::cgroup::{memory_controller, Version};
use oom_tests::privileged;

use super::deploy::{HostMount, CAPS};

/// Host paths containerd and dockerd create whatever their roots say (shim sockets,
/// plugin sockets); removed at the end when they did not exist before and are empty.
const HOST_DIRS: &[&str] = &[
    "/run/containerd",
    "/run/containerd/s",
    "/run/containerd/fifo",
    "/run/containerd/runc",
    "/run/docker",
    "/run/docker/plugins",
];

/// How a container is run: what the DaemonSet's pod and container spec say, in
/// `ctr run` terms.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The containerd image reference.
    pub image: String,
    /// The whole command line (the kubelet's ENTRYPOINT/CMD/command/args rule applied).
    pub argv: Vec<String>,
    /// Share the test's (the host's) PID namespace (`hostPID`).
    pub host_pid: bool,
    /// The capabilities the container gets, every other one dropped (`drop: [ALL]`).
    pub caps: Vec<String>,
    /// `readOnlyRootFilesystem`.
    pub read_only_root: bool,
    /// containerd's default seccomp profile (`seccompProfile: RuntimeDefault`).
    pub seccomp: bool,
    /// no_new_privs off (`allowPrivilegeEscalation: true`).
    pub allow_new_privs: bool,
    /// The memory cgroup limit in bytes (`limits.memory`), if any.
    pub memory_limit: Option<u64>,
    /// The container's environment.
    pub env: Vec<(String, String)>,
    /// Bind mounts from the host (hostPath volumes).
    pub mounts: Vec<HostMount>,
}

/// The private containerd + dockerd. Stopped and removed on drop.
pub struct Runtime {
    /// The temporary directory holding every socket, root and log.
    pub dir: PathBuf,
    /// A name unique to this run (pid and sequence): cgroup parent, image tag,
    /// containerd namespace.
    pub name: String,
    containerd: Option<Child>,
    dockerd: Option<Child>,
    containers: Vec<String>,
    existed: Vec<bool>,
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while !ok() {
        if Instant::now() > deadline {
            return Err(format!("{what}: not ready within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout; panics with its stderr when it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Runtime {
    /// Starts containerd and dockerd, or returns `None` after [`privileged::skip`]
    /// when a tool is missing.
    ///
    /// # Panics
    /// When a daemon does not come up.
    pub fn start(test: &str) -> Option<Runtime> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        for tool in [
            "containerd",
            "ctr",
            "runc",
            "dockerd",
            "docker",
            "unshare",
            "nsenter",
        ] {
            privileged::tool(test, tool)?;
        }
        let name = format!(
            "oomprof-deploy-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        // Short: unix socket paths must fit in 108 bytes.
        let dir = PathBuf::from("/tmp").join(&name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let existed = HOST_DIRS.iter().map(|d| Path::new(d).exists()).collect();
        let mut rt = Runtime {
            dir,
            name,
            containerd: None,
            dockerd: None,
            containers: Vec::new(),
            existed,
        };
        let d = rt.dir.display().to_string();
        // No CRI plugin (nothing here talks CRI); every root under the test directory.
        fs::write(
            rt.dir.join("containerd.toml"),
            format!(
                r#"version = 2
root = "{d}/containerd/root"
state = "{d}/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"#
            ),
        )
        .unwrap();
        rt.containerd = Some(
            rt.spawn_logged(
                "containerd",
                Command::new("containerd")
                    .arg("--config")
                    .arg(rt.dir.join("containerd.toml")),
            ),
        );
        let ready = wait_until("containerd", Duration::from_secs(30), || {
            rt.ctr()
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        if let Err(e) = ready {
            panic!("{e}\n{}", rt.log_tail("containerd"));
        }
        // The trust key (else /etc/docker/key.json) and every root in the test directory.
        fs::write(
            rt.dir.join("daemon.json"),
            format!(r#"{{"deprecated-key-path": "{d}/docker-key.json"}}"#),
        )
        .unwrap();
        let mut dockerd = Command::new("dockerd");
        dockerd
            .arg("--config-file")
            .arg(rt.dir.join("daemon.json"))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                "--bridge=none",
                // vfs: a plain directory per layer, whatever the filesystem under /tmp.
                "--storage-driver=vfs",
            ])
            .arg(format!("--host=unix://{d}/docker.sock"))
            .arg(format!("--data-root={d}/docker"))
            .arg(format!("--exec-root={d}/docker-exec"))
            .arg(format!("--pidfile={d}/docker.pid"))
            .arg(format!("--containerd={d}/containerd.sock"))
            .arg(format!("--cgroup-parent={}", rt.name));
        rt.dockerd = Some(rt.spawn_logged("dockerd", &mut dockerd));
        let ready = wait_until("dockerd", Duration::from_secs(60), || {
            rt.docker()
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        if let Err(e) = ready {
            panic!("{e}\n{}", rt.log_tail("dockerd"));
        }
        Some(rt)
    }

    /// Spawns `cmd` in a private mount namespace (`unshare -m`, which execs in place:
    /// the child's pid is the daemon's), logging to `<name>.log`.
    fn spawn_logged(&self, name: &str, cmd: &mut Command) -> Child {
        let log = fs::File::create(self.dir.join(format!("{name}.log"))).unwrap();
        let mut un = Command::new("unshare");
        un.args(["-m", "--propagation", "private", "--"])
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        un.spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"))
    }

    /// The last lines of a daemon's log, for failure messages.
    pub fn log_tail(&self, name: &str) -> String {
        let text = fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "--- last lines of {name}.log:\n{}",
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }

    /// A `docker` command talking to this dockerd only. The client is the one that
    /// ships with it (Debian's `/usr/bin/docker` next to `/usr/sbin/dockerd`), not
    /// whatever other `docker` comes first on PATH.
    pub fn docker(&self) -> Command {
        let client = ["/usr/bin/docker", "docker"]
            .into_iter()
            .find(|p| !p.starts_with('/') || Path::new(p).exists())
            .unwrap();
        let mut c = Command::new(client);
        c.env(
            "DOCKER_HOST",
            format!("unix://{}/docker.sock", self.dir.display()),
        )
        .env("DOCKER_CONFIG", self.dir.join("docker-cli"))
        .env("DOCKER_BUILDKIT", "0");
        c
    }

    /// A `ctr` command talking to this containerd, in this run's namespace.
    pub fn ctr(&self) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(self.dir.join("containerd.sock"))
            .arg("--namespace")
            .arg(&self.name);
        c
    }

    /// Builds `context` (a directory holding a Dockerfile) with dockerd; returns the
    /// image's tag.
    ///
    /// # Panics
    /// When the build fails.
    pub fn build(&self, context: &Path) -> String {
        let tag = format!("{}:test", self.name);
        run_ok(self.docker().args(["build", "-q", "-t", &tag]).arg(context));
        tag
    }

    /// The image's ENTRYPOINT and CMD, as dockerd recorded them.
    pub fn image_config(&self, tag: &str) -> (Vec<String>, Vec<String>) {
        let field = |f: &str| -> Vec<String> {
            run_ok(self.docker().args([
                "image",
                "inspect",
                "--format",
                &format!("{{{{range .Config.{f}}}}}{{{{println .}}}}{{{{end}}}}"),
                tag,
            ]))
            // `docker inspect --format` ends its output with a newline of its own.
            .strip_suffix('\n')
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
        };
        (field("Entrypoint"), field("Cmd"))
    }

    /// Moves the image from dockerd to containerd (`docker save`, `ctr images import`);
    /// returns its containerd reference.
    pub fn import(&self, tag: &str) -> String {
        let tar = self.dir.join("image.tar");
        run_ok(self.docker().args(["save", "-o"]).arg(&tar).arg(tag));
        run_ok(
            self.ctr()
                .args(["images", "import", "--snapshotter", "native"])
                .arg(&tar),
        );
        format!("docker.io/library/{tag}")
    }

    fn containerd_pid(&self) -> u32 {
        self.containerd.as_ref().unwrap().id()
    }

    /// Makes the node (containerd's mount namespace, never the host's) have tracefs
    /// mounted at `/sys/kernel/tracing`, or not.
    ///
    /// # Panics
    /// When mount or umount fails.
    pub fn node_tracefs(&self, mounted: bool) {
        let ns = format!("--mount=/proc/{}/ns/mnt", self.containerd_pid());
        let is = || {
            run_ok(Command::new("nsenter").arg(&ns).args([
                "--",
                "sh",
                "-c",
                "test -d /sys/kernel/tracing/events && echo yes || echo no",
            ]))
            .trim()
                == "yes"
        };
        if is() == mounted {
            return;
        }
        let action: &[&str] = if mounted {
            &["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"]
        } else {
            &["umount", "/sys/kernel/tracing"]
        };
        run_ok(Command::new("nsenter").arg(&ns).arg("--").args(action));
        assert_eq!(is(), mounted, "tracefs in containerd's namespace");
    }

    /// The cgroup path (relative to each hierarchy's root) of container `id`.
    pub fn cgroup_of(&self, id: &str) -> String {
        format!("/{}/{id}", self.name)
    }

    /// Container `id`'s memory cgroup directory.
    pub fn memory_cgroup(&self, id: &str) -> PathBuf {
        memory_controller().unwrap().1.join(&self.name).join(id)
    }

    /// A foreground `ctr run --rm` of container `id` as `spec` says: its stderr and
    /// stdout are the container's; SIGTERM to it is forwarded to the container. The
    /// container is removed on drop of the runtime in any case.
    pub fn run(&mut self, id: &str, spec: &RunSpec) -> Command {
        self.containers.push(id.to_string());
        let mut c = self.ctr();
        c.args(["run", "--rm", "--snapshotter", "native"])
            .arg("--fifo-dir")
            .arg(self.dir.join("fifo"))
            .arg("--runc-root")
            .arg(self.dir.join("runc"))
            .arg("--cgroup")
            .arg(self.cgroup_of(id))
            .arg("--pid-file")
            .arg(self.pid_file(id));
        if spec.host_pid {
            // The test's own namespace: the one the victims run in. (runc resolves the
            // path itself, so not /proc/self.)
            c.arg("--with-ns")
                .arg(format!("pid:/proc/{}/ns/pid", std::process::id()));
        }
        if spec.read_only_root {
            c.arg("--read-only");
        }
        if spec.seccomp {
            c.arg("--seccomp");
        }
        if spec.allow_new_privs {
            c.arg("--allow-new-privs");
        }
        if let Some(limit) = spec.memory_limit {
            c.arg("--memory-limit").arg(limit.to_string());
        }
        for (k, v) in &spec.env {
            c.arg("--env").arg(format!("{k}={v}"));
        }
        let wanted: Vec<String> = spec
            .caps
            .iter()
            .map(|c| format!("CAP_{}", c.trim_start_matches("CAP_")))
            .collect();
        for cap in CAPS.iter().map(|c| format!("CAP_{c}")) {
            if wanted.contains(&cap) {
                c.arg("--cap-add").arg(&cap);
            } else {
                // drop: [ALL]: every capability the kernel has, not only ctr's defaults.
                c.arg("--cap-drop").arg(&cap);
            }
        }
        for m in &spec.mounts {
            c.arg("--mount").arg(format!(
                "type=bind,src={},dst={},options=rbind:{}",
                m.host.display(),
                m.path.display(),
                if m.read_only { "ro" } else { "rw" }
            ));
        }
        c.arg(&spec.image).arg(id).args(&spec.argv);
        c.stdin(Stdio::null());
        c
    }

    fn pid_file(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.pid"))
    }

    /// The host pid of container `id`'s process, once runc has started it.
    ///
    /// # Panics
    /// When there is none within 10 s.
    pub fn container_pid(&self, id: &str) -> i32 {
        let mut pid = None;
        wait_until("container pid file", Duration::from_secs(10), || {
            pid = fs::read_to_string(self.pid_file(id))
                .ok()
                .and_then(|s| s.trim().parse().ok());
            pid.is_some()
        })
        .unwrap();
        pid.unwrap()
    }

    fn stop(child: &mut Option<Child>) {
        let Some(mut c) = child.take() else { return };
        // SAFETY: kill on our own, not yet reaped child.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Removes the cgroups runc made under this run's parent, in every hierarchy,
    /// killing what is left in them first (only our containers can be there).
    fn remove_cgroups(&self) {
        let mut roots: Vec<PathBuf> = fs::read_dir("/sys/fs/cgroup")
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        roots.push(PathBuf::from("/sys/fs/cgroup"));
        for root in roots {
            let parent = root.join(&self.name);
            if !parent.is_dir() {
                continue;
            }
            let children: Vec<PathBuf> = fs::read_dir(&parent)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.path())
                        .filter(|p| p.is_dir())
                        .collect()
                })
                .unwrap_or_default();
            for dir in children.iter().chain([&parent]) {
                let deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    for pid in fs::read_to_string(dir.join("cgroup.procs"))
                        .unwrap_or_default()
                        .lines()
                        .filter_map(|l| l.trim().parse::<i32>().ok())
                    {
                        // SAFETY: kill has no memory-safety preconditions; the cgroup
                        // is this run's own.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                    if fs::remove_dir(dir).is_ok() || Instant::now() > deadline {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "{}\n{}",
                self.log_tail("containerd"),
                self.log_tail("dockerd")
            );
        }
        for id in std::mem::take(&mut self.containers) {
            let quiet = |c: &mut Command| {
                let _ = c.stdout(Stdio::null()).stderr(Stdio::null()).status();
            };
            quiet(
                self.ctr()
                    .args(["task", "kill", "--signal", "SIGKILL", &id]),
            );
            let _ = wait_until("task exit", Duration::from_secs(5), || {
                !self
                    .ctr()
                    .args(["task", "ls", "--quiet"])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l == id))
            });
            quiet(self.ctr().args(["task", "delete", "--force", &id]));
            quiet(self.ctr().args(["container", "delete", &id]));
        }
        Self::stop(&mut self.dockerd);
        Self::stop(&mut self.containerd);
        self.remove_cgroups();
        for (d, existed) in HOST_DIRS.iter().zip(&self.existed).rev() {
            if !existed {
                let _ = fs::remove_dir(d);
            }
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("warning: removing {}: {e}", self.dir.display());
        }
    }
}

/// The memory figures of a container's memory cgroup, cgroup v1 or v2.
#[derive(Debug)]
pub struct MemFigures {
    /// Charged now (v1 usage_in_bytes, v2 memory.current), bytes.
    pub usage: u64,
    /// The most ever charged (v1 max_usage_in_bytes, v2 memory.peak), bytes.
    pub peak: u64,
    /// Kernel memory now (v1 kmem.usage_in_bytes, v2 memory.stat kernel), bytes.
    pub kernel: u64,
    /// The most kernel memory ever charged (v1 only; v2: `None`).
    pub kernel_peak: Option<u64>,
    /// Anonymous memory now (memory.stat rss / anon).
    pub anon: u64,
    /// Page cache now (memory.stat cache / file).
    pub file: u64,
    /// OOM kills in the cgroup.
    pub oom_kills: u64,
    /// Times the limit was hit (v1 failcnt, v2 memory.events max).
    pub limit_hits: u64,
}

/// The figures of the memory cgroup at `dir` (in the hierarchy of the host's memory
/// controller).
///
/// # Panics
/// When its files cannot be read.
pub fn mem_figures(dir: &Path) -> MemFigures {
    let (version, _) = memory_controller().unwrap();
    let read = |f: &str| {
        fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{}/{f}: {e}", dir.display()))
    };
    let num = |f: &str| read(f).trim().parse::<u64>().unwrap();
    let keyed = |f: &str, k: &str| {
        read(f)
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k} ")))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    match version {
        Version::V1 => MemFigures {
            usage: num("memory.usage_in_bytes"),
            peak: num("memory.max_usage_in_bytes"),
            kernel: num("memory.kmem.usage_in_bytes"),
            kernel_peak: Some(num("memory.kmem.max_usage_in_bytes")),
            anon: keyed("memory.stat", "rss"),
            file: keyed("memory.stat", "cache"),
            oom_kills: keyed("memory.oom_control", "oom_kill"),
            limit_hits: num("memory.failcnt"),
        },
        Version::V2 => MemFigures {
            usage: num("memory.current"),
            peak: num("memory.peak"),
            kernel: keyed("memory.stat", "kernel"),
            kernel_peak: None,
            anon: keyed("memory.stat", "anon"),
            file: keyed("memory.stat", "file"),
            oom_kills: keyed("memory.events", "oom_kill"),
            limit_hits: keyed("memory.events", "max"),
        },
    }
}

/// The pod UID of the CRI victims ([`Runtime::run_cri_victim`]).
pub const UID: &str = "3f2e1d0c-9b8a-4765-8432-10fedcba9876";

/// A 64-hex container id unique to this run.
pub fn container_id(tag: u8) -> String {
    format!("{:056x}{:08x}", 0xabcdu64 + tag as u64, std::process::id())
}

/// The kubelet-layout cgroups runc makes in every hierarchy (v1: memory, cpu, pids,
/// ...; v2: the unified one) for `rel`: those that did not exist before are removed
/// on drop, innermost first.
pub struct KubeCgroups(Vec<PathBuf>);

impl KubeCgroups {
    /// Notes the cgroups of `rel` that do not exist yet.
    pub fn new(rel: &str) -> Self {
        let mut made = Vec::new();
        for h in fs::read_dir("/sys/fs/cgroup")
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

/// Removes `d` and the cgroups below it (all empty of processes by now).
fn remove_cgroup_tree(d: &Path) {
    for e in fs::read_dir(d).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_tree(&e.path());
        }
    }
    let _ = fs::remove_dir(d);
}

impl Drop for KubeCgroups {
    fn drop(&mut self) {
        // A runtime may leave its container's cgroup behind in one hierarchy (runc
        // under Podman, in v1's companion unified one): those below ours go too.
        for d in &self.0 {
            remove_cgroup_tree(d);
        }
    }
}

impl Runtime {
    /// Builds and imports an image whose ENTRYPOINT is the Go program `bin`; returns
    /// its docker tag and containerd reference.
    pub fn victim_image(&self, bin: &Path) -> (String, String) {
        let ctx = self.dir.join("victim-image");
        fs::create_dir_all(&ctx).unwrap();
        fs::copy(bin, ctx.join("oomer")).unwrap();
        fs::write(
            ctx.join("Dockerfile"),
            "FROM scratch\nCOPY oomer /oomer\nENTRYPOINT [\"/oomer\"]\n",
        )
        .unwrap();
        let tag = self.build(&ctx);
        let image = self.import(&tag);
        (tag, image)
    }

    /// Runs `image` as the CRI plugin runs pod `shop/api-7d9f-x2`'s container `api`
    /// (pod UID [`UID`]) under the cgroupfs driver: `/kubepods/burstable/pod<uid>/<id>`,
    /// the CRI annotations on the bundle, a 64 MiB limit, MemProfileRate 1; waits
    /// until it is OOM-killed (exit 137). Returns the container id and cgroup.
    ///
    /// # Panics
    /// When it was not OOM-killed.
    pub fn run_cri_victim(&self, image: &str, tag: u8) -> (String, String) {
        let id = container_id(tag);
        let cgroup = format!("/kubepods/burstable/pod{UID}/{id}");
        let _kube = KubeCgroups::new(&cgroup);
        let mut ctr = self.ctr();
        ctr.args(["run", "--rm", "--snapshotter", "native"])
            .arg("--fifo-dir")
            .arg(self.dir.join("fifo"))
            .arg("--runc-root")
            .arg(self.dir.join("runc"))
            .arg("--cgroup")
            .arg(&cgroup)
            .args(["--memory-limit", &super::OOM_LIMIT.to_string()])
            .args(["--env", "FIXTURE_MEMPROFILERATE=1"])
            .args(["--annotation", "io.kubernetes.cri.container-type=container"])
            .args(["--annotation", "io.kubernetes.cri.container-name=api"])
            .args(["--annotation", "io.kubernetes.cri.sandbox-name=api-7d9f-x2"])
            .args(["--annotation", "io.kubernetes.cri.sandbox-namespace=shop"])
            .args([
                "--annotation",
                &format!("io.kubernetes.cri.sandbox-uid={UID}"),
            ])
            .arg(image)
            .arg(&id);
        let st = ctr.status().unwrap();
        assert_eq!(
            st.code(),
            Some(137),
            "the container was not OOM-killed: {st}"
        );
        (id, cgroup)
    }
}
