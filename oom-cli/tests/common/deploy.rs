//! The files of `deploy/` as the deployment tests read them: the DaemonSet's one
//! container (YAML), the systemd unit's `[Service]` keys, the Dockerfile's ENTRYPOINT,
//! and the Linux capability names both of them use.
//!
//! Each reader refuses keys it does not know, so that a setting added to a deployment
//! file fails the tests until they reproduce it (or say that they do not).

use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

/// `deploy/` in the repository.
pub fn deploy_dir() -> PathBuf {
    oom_tests::repo_root().join("deploy")
}

/// Linux capabilities by number (`include/uapi/linux/capability.h`, Linux 6.18),
/// without the `CAP_` prefix.
pub const CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The bit mask of capability names (with or without `CAP_`, any case).
///
/// # Panics
/// On a name that is no capability.
pub fn cap_mask<S: AsRef<str>>(names: &[S]) -> u64 {
    names.iter().fold(0, |m, n| {
        let n = n.as_ref().to_ascii_uppercase();
        let n = n.strip_prefix("CAP_").unwrap_or(&n);
        let bit = CAPS
            .iter()
            .position(|c| *c == n)
            .unwrap_or_else(|| panic!("{n} is no Linux capability"));
        m | 1 << bit
    })
}

/// The names of the capabilities in `mask`, `CAP_` prefixed.
pub fn cap_names(mask: u64) -> Vec<String> {
    (0..64)
        .filter(|b| mask & 1 << b != 0)
        .map(|b| match CAPS.get(b) {
            Some(c) => format!("CAP_{c}"),
            None => format!("cap{b}"),
        })
        .collect()
}

/// A process's capability sets and no_new_privs flag, from `/proc/PID/status`.
#[derive(Debug, PartialEq, Eq)]
pub struct ProcCaps {
    /// CapInh.
    pub inheritable: u64,
    /// CapPrm.
    pub permitted: u64,
    /// CapEff.
    pub effective: u64,
    /// CapBnd.
    pub bounding: u64,
    /// CapAmb.
    pub ambient: u64,
    /// NoNewPrivs.
    pub no_new_privs: bool,
    /// The effective uid.
    pub euid: u32,
}

/// Reads [`ProcCaps`] of `pid`.
///
/// # Panics
/// When the status file cannot be read or lacks a field.
pub fn proc_caps(pid: i32) -> ProcCaps {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {k} in /proc/{pid}/status"))
            .to_string()
    };
    let hex = |k: &str| u64::from_str_radix(&field(k), 16).unwrap();
    ProcCaps {
        inheritable: hex("CapInh:"),
        permitted: hex("CapPrm:"),
        effective: hex("CapEff:"),
        bounding: hex("CapBnd:"),
        ambient: hex("CapAmb:"),
        no_new_privs: field("NoNewPrivs:") == "1",
        euid: field("Uid:")
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap(),
    }
}

/// One mount of `/proc/PID/mountinfo`.
#[derive(Debug, Clone)]
pub struct MountEntry {
    /// Where it is mounted.
    pub target: String,
    /// The per-mount options (`ro`, `rw`, ...).
    pub options: Vec<String>,
    /// The filesystem type.
    pub fstype: String,
}

impl MountEntry {
    /// Whether the mount is read-only.
    pub fn read_only(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }
}

/// The mounts `pid` sees, in mount order.
///
/// # Panics
/// When mountinfo cannot be read.
pub fn mounts(pid: i32) -> Vec<MountEntry> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            Some(MountEntry {
                target: unescape(pre.get(4)?),
                options: pre.get(5)?.split(',').map(str::to_string).collect(),
                fstype: post.split(' ').next()?.to_string(),
            })
        })
        .collect()
}

/// mountinfo's octal escapes (`\040` for a space) undone.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (b[i], oct) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount `pid` sees at `target` (the topmost, when several are stacked).
pub fn mount_at(pid: i32, target: &str) -> Option<MountEntry> {
    mounts(pid).into_iter().rev().find(|m| m.target == target)
}

/// A Kubernetes memory quantity (`64Mi`, `1Gi`, `500M`, `1048576`) in bytes.
///
/// # Panics
/// On a form this reader does not know.
pub fn quantity(q: &str) -> u64 {
    let units: &[(&str, u64)] = &[
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    for (suffix, mul) in units {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<u64>().unwrap_or_else(|_| panic!("quantity {q}")) * mul;
        }
    }
    q.parse().unwrap_or_else(|_| panic!("quantity {q}"))
}

/// A hostPath volume mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMount {
    /// The node's path.
    pub host: PathBuf,
    /// Where the container sees it.
    pub path: PathBuf,
    /// `readOnly`.
    pub read_only: bool,
}

/// The DaemonSet's one container and the pod settings that shape it.
#[derive(Debug)]
pub struct DaemonSet {
    /// `command` (replaces the image's ENTRYPOINT).
    pub command: Option<Vec<String>>,
    /// `args` (replace the image's CMD).
    pub args: Option<Vec<String>>,
    /// `hostPID`.
    pub host_pid: bool,
    /// `securityContext.runAsUser`.
    pub run_as_user: Option<i64>,
    /// `securityContext.privileged`.
    pub privileged: bool,
    /// `securityContext.allowPrivilegeEscalation` (Kubernetes' default: true).
    pub allow_privilege_escalation: bool,
    /// `securityContext.readOnlyRootFilesystem`.
    pub read_only_root: bool,
    /// `securityContext.seccompProfile.type` is `RuntimeDefault`.
    pub seccomp_runtime_default: bool,
    /// `capabilities.drop`.
    pub cap_drop: Vec<String>,
    /// `capabilities.add`.
    pub cap_add: Vec<String>,
    /// `resources.requests.memory` in bytes.
    pub memory_request: u64,
    /// `resources.limits.memory` in bytes.
    pub memory_limit: u64,
    /// The hostPath volumes, as mounted.
    pub mounts: Vec<HostMount>,
    /// `env`: a name and a plain `value`, or the `fieldPath` of a `valueFrom.fieldRef`
    /// (the kubelet fills those in from the pod).
    pub env: Vec<(String, EnvValue)>,
}

/// One `env` entry's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    /// `value`.
    Plain(String),
    /// `valueFrom.fieldRef.fieldPath`.
    Field(String),
}

/// The keys of a YAML mapping, as strings.
fn keys(y: &Yaml) -> Vec<String> {
    y.as_hash()
        .map(|h| {
            h.keys()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Panics naming a key of `y` that is not in `known`.
fn only_known(y: &Yaml, known: &[&str], what: &str) {
    for k in keys(y) {
        assert!(
            known.contains(&k.as_str()),
            "{what}.{k} is a setting the deployment tests do not know: reproduce it in \
             the container test (oom-cli/tests/deploy_container.rs) or list it there \
             as not reproduced"
        );
    }
}

fn strings(y: &Yaml) -> Option<Vec<String>> {
    y.as_vec().map(|v| {
        v.iter()
            .map(|s| s.as_str().expect("a list of strings").to_string())
            .collect()
    })
}

impl DaemonSet {
    /// Reads `deploy/daemonset.yaml`.
    ///
    /// # Panics
    /// When it is no DaemonSet of one container, or has settings this reader does not
    /// know.
    pub fn read() -> DaemonSet {
        let path = deploy_dir().join("daemonset.yaml");
        Self::parse(&std::fs::read_to_string(&path).unwrap())
    }

    /// Parses a DaemonSet manifest (see [`DaemonSet::read`]).
    ///
    /// # Panics
    /// As [`DaemonSet::read`].
    pub fn parse(text: &str) -> DaemonSet {
        let docs = YamlLoader::load_from_str(text).expect("daemonset.yaml is YAML");
        assert_eq!(docs.len(), 1, "one document");
        let d = &docs[0];
        assert_eq!(d["kind"].as_str(), Some("DaemonSet"));
        let pod = &d["spec"]["template"]["spec"];
        // Scheduling settings change where the pod runs, not what its container can do.
        only_known(
            pod,
            &[
                "hostPID",
                "priorityClassName",
                "tolerations",
                "containers",
                "volumes",
            ],
            "spec.template.spec",
        );
        let containers = pod["containers"].as_vec().expect("containers");
        assert_eq!(containers.len(), 1, "one container");
        let c = &containers[0];
        only_known(
            c,
            &[
                "name",
                "image",
                "command",
                "args",
                "securityContext",
                "resources",
                "volumeMounts",
                "env",
            ],
            "container",
        );
        let sc = &c["securityContext"];
        only_known(
            sc,
            &[
                "runAsUser",
                "privileged",
                "allowPrivilegeEscalation",
                "readOnlyRootFilesystem",
                "seccompProfile",
                "capabilities",
            ],
            "securityContext",
        );
        let seccomp = sc["seccompProfile"]["type"].as_str();
        assert!(
            matches!(seccomp, None | Some("RuntimeDefault")),
            "seccompProfile {seccomp:?}: only RuntimeDefault is reproduced"
        );
        let res = &c["resources"];
        only_known(res, &["requests", "limits"], "resources");
        let volumes = pod["volumes"].as_vec().cloned().unwrap_or_default();
        let mounts = c["volumeMounts"]
            .as_vec()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| {
                only_known(m, &["name", "mountPath", "readOnly"], "volumeMounts[]");
                let name = m["name"].as_str().unwrap();
                let v = volumes
                    .iter()
                    .find(|v| v["name"].as_str() == Some(name))
                    .unwrap_or_else(|| panic!("no volume {name}"));
                only_known(v, &["name", "hostPath"], "volumes[]");
                HostMount {
                    host: PathBuf::from(v["hostPath"]["path"].as_str().expect("hostPath")),
                    path: PathBuf::from(m["mountPath"].as_str().unwrap()),
                    read_only: m["readOnly"].as_bool().unwrap_or(false),
                }
            })
            .collect();
        let env = c["env"]
            .as_vec()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|e| {
                only_known(e, &["name", "value", "valueFrom"], "env[]");
                let name = e["name"].as_str().expect("env name").to_string();
                let value = match (e["value"].as_str(), &e["valueFrom"]) {
                    (Some(v), _) => EnvValue::Plain(v.to_string()),
                    (None, from) => {
                        only_known(from, &["fieldRef"], "env[].valueFrom");
                        only_known(
                            &from["fieldRef"],
                            &["fieldPath"],
                            "env[].valueFrom.fieldRef",
                        );
                        EnvValue::Field(
                            from["fieldRef"]["fieldPath"]
                                .as_str()
                                .expect("a fieldRef.fieldPath")
                                .to_string(),
                        )
                    }
                };
                (name, value)
            })
            .collect();
        DaemonSet {
            env,
            command: strings(&c["command"]),
            args: strings(&c["args"]),
            host_pid: pod["hostPID"].as_bool().unwrap_or(false),
            run_as_user: sc["runAsUser"].as_i64(),
            privileged: sc["privileged"].as_bool().unwrap_or(false),
            allow_privilege_escalation: sc["allowPrivilegeEscalation"].as_bool().unwrap_or(true),
            read_only_root: sc["readOnlyRootFilesystem"].as_bool().unwrap_or(false),
            seccomp_runtime_default: seccomp == Some("RuntimeDefault"),
            cap_drop: strings(&sc["capabilities"]["drop"]).unwrap_or_default(),
            cap_add: strings(&sc["capabilities"]["add"]).unwrap_or_default(),
            memory_request: quantity(
                res["requests"]["memory"]
                    .as_str()
                    .expect("a memory request"),
            ),
            memory_limit: quantity(res["limits"]["memory"].as_str().expect("a memory limit")),
            mounts,
        }
    }

    /// The hostPath volume mounted at `path`.
    pub fn mount_at(&self, path: &str) -> Option<&HostMount> {
        self.mounts.iter().find(|m| m.path == Path::new(path))
    }
}

/// The command line a kubelet starts from a container's `command`/`args` and the
/// image's ENTRYPOINT/CMD: `command` replaces the ENTRYPOINT (and drops the CMD),
/// `args` replace the CMD.
/// <https://kubernetes.io/docs/tasks/inject-data-application/define-command-argument-container/#notes>
pub fn kubelet_argv(
    command: Option<&[String]>,
    args: Option<&[String]>,
    entrypoint: &[String],
    cmd: &[String],
) -> Vec<String> {
    let head = command.unwrap_or(entrypoint);
    let tail = match (command, args) {
        (_, Some(a)) => a,
        (Some(_), None) => &[],
        (None, None) => cmd,
    };
    head.iter().chain(tail).cloned().collect()
}

/// The exec form of a Dockerfile instruction (`ENTRYPOINT ["a", "b"]`), or `None`
/// when the Dockerfile has none.
///
/// # Panics
/// On a shell form or escapes, which this reader does not take apart.
pub fn dockerfile_exec_form(dockerfile: &str, instruction: &str) -> Option<Vec<String>> {
    let line = dockerfile.lines().find(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case(instruction))
    })?;
    let rest = line.trim()[instruction.len()..].trim();
    let inner = rest
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or_else(|| panic!("{instruction} is not in exec form: {line}"));
    assert!(!inner.contains('\\'), "escapes in {line}");
    Some(
        inner
            .split(',')
            .map(|s| {
                s.trim()
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .unwrap_or_else(|| panic!("not a JSON string list: {line}"))
                    .to_string()
            })
            .collect(),
    )
}

/// The systemd unit's `[Service]` section, key by key in file order.
#[derive(Debug)]
pub struct Unit {
    /// (key, value) pairs; a key may repeat.
    pub service: Vec<(String, String)>,
}

impl Unit {
    /// Reads `deploy/oomprof.service`.
    ///
    /// # Panics
    /// When it cannot be read.
    pub fn read() -> Unit {
        let text = std::fs::read_to_string(deploy_dir().join("oomprof.service")).unwrap();
        let mut section = String::new();
        let mut service = Vec::new();
        for l in text.lines().map(str::trim) {
            if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
                continue;
            }
            if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                section = s.to_string();
                continue;
            }
            let (k, v) = l.split_once('=').expect("key=value");
            if section == "Service" {
                service.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        Unit { service }
    }

    /// The last value of `key` (systemd's rule for single-valued settings).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.service
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a list setting `key`, split on whitespace.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.service
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split_whitespace().map(str::to_string))
            .collect()
    }
}

/// A systemd size (`256M`, `1G`, `64K`, bytes): base 1024.
///
/// # Panics
/// On a form this reader does not know.
pub fn systemd_size(s: &str) -> u64 {
    let (n, mul) = match s.as_bytes().last() {
        Some(b'K') => (&s[..s.len() - 1], 1 << 10),
        Some(b'M') => (&s[..s.len() - 1], 1 << 20),
        Some(b'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    n.parse::<u64>().unwrap_or_else(|_| panic!("size {s}")) * mul
}

/// A directory for a test's profiles (mode 0700), removed on drop, also when the test
/// panics.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh `/tmp/oomprof-deploy-PID-name`.
    pub fn new(name: &str) -> TempDir {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("oomprof-deploy-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The static musl `oomprof` (`OOMPROF_STATIC_BIN`, which tests/run builds), or `None`
/// after [`oom_tests::privileged::skip`]: the image and the systemd unit ship it.
pub fn static_bin(test: &str) -> Option<PathBuf> {
    match std::env::var_os("OOMPROF_STATIC_BIN") {
        Some(b) if Path::new(&b).is_file() => Some(PathBuf::from(b)),
        _ => {
            oom_tests::privileged::skip(
                test,
                "OOMPROF_STATIC_BIN does not name the static musl oomprof (tests/run builds it)",
            );
            None
        }
    }
}

/// An OOM kill on the host: `bin args` in a fresh memory cgroup of `limit` bytes until
/// the kernel's OOM killer kills it. Returns its pid and its cgroup's directory name.
///
/// # Panics
/// When it is not OOM-killed within 120 s.
pub fn oom_kill(bin: &Path, args: &[&str], limit: u64) -> (i32, String) {
    use oom_tests::cgroup::MemCgroup;
    use oom_tests::process::Running;
    let cg = MemCgroup::create(limit).unwrap();
    let name = cg
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut cmd = std::process::Command::new(bin);
    cmd.args(args).stdout(std::process::Stdio::piped());
    let mut p = Running::adopt(cg.spawn(&mut cmd).unwrap());
    p.wait_exit(std::time::Duration::from_secs(120)).unwrap();
    assert!(
        cg.oom_kills().unwrap() > 0,
        "{}: not OOM-killed",
        bin.display()
    );
    (p.pid(), name)
}

/// Judges a profile file written for the OOM kill of `pid` (binary `bin`, in cgroup
/// `cgroup`, limit `limit`): mode 0600; `go tool pprof -raw` of the victim's Go
/// reads it; Go's four sample types and the two recent ones, no more in use than the
/// cgroup held (with `exact`, MemProfileRate 1); the culprit `top` on top of
/// inuse_space; and its comments name the kill, the pid and the cgroup. Returns the
/// in-use total.
///
/// # Panics
/// When any of that does not hold.
pub fn judge_oom_file(
    tc: &oom_tests::gomatrix::Toolchain,
    bin: &Path,
    file: &Path,
    (pid, cgroup): (i32, &str),
    limit: u64,
    exact: bool,
    top: &str,
) -> i64 {
    use std::os::unix::fs::PermissionsExt;
    let what = file.display().to_string();
    let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{what}: mode {mode:o}");
    let raw = oom_tests::pprof_raw::RawProfile::parse(&tc.pprof_raw(bin, file).unwrap()).unwrap();
    let inuse = oom_tests::watch::check_oom_invariants(&raw, limit, exact, &what);
    let first = raw.top_function("inuse_space").map(|(f, _)| f);
    assert_eq!(
        first.as_deref(),
        Some(top),
        "{what}: the culprit is not on top"
    );
    let comments = super::pprof_comments(tc, file);
    assert!(
        comments.contains(&format!("reason=oom pid={pid} ")),
        "{what}: comments do not name the OOM kill of {pid}:\n{comments}"
    );
    assert!(
        comments
            .lines()
            .any(|l| l.starts_with("cgroup: ") && l.contains(cgroup)),
        "{what}: comments do not name cgroup {cgroup}:\n{comments}"
    );
    inuse
}
