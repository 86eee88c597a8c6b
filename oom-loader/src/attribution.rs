//! Which container and pod a process belongs to.
//!
//! Two sources, both on the node, no Kubernetes API:
//! - the process's cgroup path ([`parse_cgroup`]): every container runtime and both
//!   kubelet cgroup drivers name a container's cgroup by its id, and a pod's by its
//!   UID and QoS class (`/kubepods/burstable/pod<uid>/<id>` with cgroupfs,
//!   `kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope` with systemd);
//! - the runtime's own state for the names ([`Resolver`]): containerd's bundle
//!   `config.json` and CRI-O's carry the CRI annotations, Docker's `config.v2.json`
//!   the `io.kubernetes.*` labels (cri-dockerd) and the container's name.
//!
//! The Monitor resolves at discovery and keeps the result: at kill time the bundle may
//! already be gone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The container runtime named by a cgroup path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// containerd's CRI plugin (`cri-containerd-<id>.scope`).
    Containerd,
    /// CRI-O (`crio-<id>`).
    CriO,
    /// Docker (`docker-<id>.scope`, `/docker/<id>`).
    Docker,
    /// Podman (`libpod-<id>.scope`).
    Podman,
    /// A bare id under a pod (the cgroupfs driver): containerd or Docker; the runtime
    /// state that holds the id tells.
    Unknown,
}

impl Runtime {
    /// The name used in comments and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Docker => "docker",
            Runtime::Podman => "podman",
            Runtime::Unknown => "unknown",
        }
    }
}

/// A pod's Kubernetes QoS class, from the kubelet's cgroup layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qos {
    /// Directly under `kubepods`.
    Guaranteed,
    /// Under `kubepods/burstable` (`kubepods-burstable.slice`).
    Burstable,
    /// Under `kubepods/besteffort` (`kubepods-besteffort.slice`).
    BestEffort,
}

impl Qos {
    /// Kubernetes' spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Qos::Guaranteed => "Guaranteed",
            Qos::Burstable => "Burstable",
            Qos::BestEffort => "BestEffort",
        }
    }
}

/// What a cgroup path says about its process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupIds {
    /// The runtime that named the container's cgroup, when one did.
    pub runtime: Option<Runtime>,
    /// The container id (64 hex digits).
    pub container_id: Option<String>,
    /// The pod UID, with dashes (`8-4-4-4-12`), or 32 hex digits for a static pod.
    pub pod_uid: Option<String>,
    /// The pod's QoS class (only with a pod).
    pub qos: Option<Qos>,
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && is_hex(s)
}

/// A pod UID as written in a cgroup name: a UUID (`_` for `-` under the systemd
/// driver) or a static pod's 32-hex config hash. Returns it with dashes.
fn pod_uid(s: &str) -> Option<String> {
    let uid = s.replace('_', "-");
    let parts: Vec<&str> = uid.split('-').collect();
    let uuid = parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && is_hex(p));
    (uuid || (uid.len() == 32 && is_hex(&uid))).then_some(uid)
}

/// The container named by one path segment: `<prefix>-<id>.scope`, `<prefix>-<id>`
/// or a bare id.
fn container_segment(seg: &str) -> Option<(Option<Runtime>, &str)> {
    let name = seg.strip_suffix(".scope").unwrap_or(seg);
    if is_container_id(name) {
        return Some((None, name));
    }
    let (prefix, id) = name.rsplit_once('-')?;
    if !is_container_id(id) {
        return None;
    }
    let runtime = match prefix {
        "cri-containerd" => Runtime::Containerd,
        "crio" => Runtime::CriO,
        "docker" => Runtime::Docker,
        "libpod" => Runtime::Podman,
        // crio-conmon-<id>, libpod-conmon-<id>: the runtime's monitor, not the container.
        _ => return None,
    };
    Some((Some(runtime), id))
}

/// Reads the container id, pod UID and QoS class out of a cgroup path, or a line of
/// `/proc/PID/cgroup` (`0::/path`, `4:memory:/path`). Segments it does not know are
/// skipped, so paths seen through a cgroup namespace (`/../..`) parse too.
pub fn parse_cgroup(path: &str) -> CgroupIds {
    let path = match path.splitn(3, ':').collect::<Vec<_>>()[..] {
        [_, _, p] if path.starts_with(|c: char| c.is_ascii_digit()) => p,
        _ => path,
    };
    let mut ids = CgroupIds::default();
    let mut kube = false;
    let mut parent = "";
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        match seg {
            "kubepods" | "kubepods.slice" => kube = true,
            "burstable" | "kubepods-burstable.slice" if kube => ids.qos = Some(Qos::Burstable),
            "besteffort" | "kubepods-besteffort.slice" if kube => ids.qos = Some(Qos::BestEffort),
            _ => {
                if kube && ids.pod_uid.is_none() {
                    // cgroupfs: pod<uid>; systemd: kubepods[-qos]-pod<uid_>.slice
                    let uid = seg.strip_prefix("pod").or_else(|| {
                        let s = seg.strip_suffix(".slice")?;
                        s.rsplit_once("-pod").map(|(_, u)| u)
                    });
                    if let Some(uid) = uid.and_then(pod_uid) {
                        ids.pod_uid = Some(uid);
                        ids.qos.get_or_insert(Qos::Guaranteed);
                        parent = seg;
                        continue;
                    }
                }
                if let Some((runtime, id)) = container_segment(seg) {
                    let runtime = runtime.or(match parent {
                        "docker" if !kube => Some(Runtime::Docker),
                        _ if ids.pod_uid.is_some() => Some(Runtime::Unknown),
                        _ => None,
                    });
                    // The innermost container wins (podman nests one more level).
                    ids.container_id = Some(id.to_string());
                    ids.runtime = runtime;
                }
            }
        }
        parent = seg;
    }
    if ids.pod_uid.is_none() {
        ids.qos = None;
    }
    ids
}

/// Names from the runtime's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    /// The pod's namespace.
    pub namespace: Option<String>,
    /// The pod's name.
    pub pod: Option<String>,
    /// The container's name (in the pod, or Docker's/Podman's own name).
    pub container: Option<String>,
    /// The pod UID the runtime recorded.
    pub pod_uid: Option<String>,
    /// The runtime whose state named the container.
    pub runtime: Option<Runtime>,
}

/// Who a process was: the ids its cgroup names and what its runtime calls them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attribution {
    /// From the cgroup path.
    pub ids: CgroupIds,
    /// From the runtime's state (empty when nothing on the node named the container).
    pub names: Names,
}

impl Attribution {
    /// The runtime, from the state when the path left it open.
    pub fn runtime(&self) -> Option<Runtime> {
        match (self.ids.runtime, self.names.runtime) {
            (Some(Runtime::Unknown) | None, Some(r)) => Some(r),
            (r, _) => r,
        }
    }

    /// The pod UID, from the path or else the runtime.
    pub fn pod_uid(&self) -> Option<&str> {
        self.ids
            .pod_uid
            .as_deref()
            .or(self.names.pod_uid.as_deref())
    }

    /// pprof comments: `pod: NAMESPACE/NAME uid=… qos=…` and
    /// `container: NAME runtime=… id=…`, each only when known.
    pub fn comments(&self) -> Vec<String> {
        let mut c = Vec::new();
        if self.names.pod.is_some() || self.pod_uid().is_some() {
            let mut s = format!(
                "pod: {}/{}",
                self.names.namespace.as_deref().unwrap_or("-"),
                self.names.pod.as_deref().unwrap_or("-")
            );
            if let Some(u) = self.pod_uid() {
                s.push_str(&format!(" uid={u}"));
            }
            if let Some(q) = self.ids.qos {
                s.push_str(&format!(" qos={}", q.as_str()));
            }
            c.push(s);
        }
        if self.ids.container_id.is_some() || self.names.container.is_some() {
            let mut s = format!(
                "container: {}",
                self.names.container.as_deref().unwrap_or("-")
            );
            if let Some(r) = self.runtime() {
                s.push_str(&format!(" runtime={}", r.as_str()));
            }
            if let Some(id) = &self.ids.container_id {
                s.push_str(&format!(" id={id}"));
            }
            c.push(s);
        }
        c
    }
}

/// Runtime state files larger than this are not read (Docker's config.v2.json is a
/// few KiB; a bigger file is not the runtime's).
const MAX_STATE_FILE: u64 = 4 << 20;

/// Container ids whose names are kept: the Monitor asks once per watched process.
const MAX_CACHED: usize = 4096;

/// Finds names in the runtime state under a root directory (`/` on the node, or
/// where a container mounted the node's `/run` and `/var/lib`), caching per id.
#[derive(Debug)]
pub struct Resolver {
    root: PathBuf,
    cache: HashMap<String, Names>,
}

impl Resolver {
    /// A resolver reading runtime state under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            cache: HashMap::new(),
        }
    }

    /// The attribution of a cgroup (a path or a `/proc/PID/cgroup` line); `None`
    /// when it names no container or pod.
    pub fn attribute(&mut self, cgroup: &str) -> Option<Attribution> {
        let ids = parse_cgroup(cgroup);
        if ids.container_id.is_none() && ids.pod_uid.is_none() {
            return None;
        }
        let names = match &ids.container_id {
            Some(id) => {
                if let Some(n) = self.cache.get(id) {
                    n.clone()
                } else {
                    let n = names_for(&self.root, id);
                    if self.cache.len() >= MAX_CACHED {
                        self.cache.clear();
                    }
                    self.cache.insert(id.clone(), n.clone());
                    n
                }
            }
            None => Names::default(),
        };
        Some(Attribution { ids, names })
    }
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    let f = std::fs::File::open(path).ok()?;
    if f.metadata().ok()?.len() > MAX_STATE_FILE {
        log::debug!(
            "{}: larger than {MAX_STATE_FILE} bytes, not read",
            path.display()
        );
        return None;
    }
    match serde_json::from_reader(std::io::BufReader::new(f)) {
        Ok(v) => Some(v),
        Err(e) => {
            log::debug!("{}: {e}", path.display());
            None
        }
    }
}

fn string_at(v: &serde_json::Value, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| v.get(k)?.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Names from an OCI `config.json`'s annotations (containerd's CRI plugin, CRI-O).
fn from_annotations(config: &serde_json::Value, runtime: Runtime) -> Names {
    let a = &config["annotations"];
    Names {
        namespace: string_at(
            a,
            &[
                "io.kubernetes.cri.sandbox-namespace",
                "io.kubernetes.pod.namespace",
            ],
        ),
        pod: string_at(
            a,
            &["io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"],
        ),
        container: string_at(
            a,
            &[
                "io.kubernetes.cri.container-name",
                "io.kubernetes.container.name",
            ],
        ),
        pod_uid: string_at(
            a,
            &["io.kubernetes.cri.sandbox-uid", "io.kubernetes.pod.uid"],
        ),
        runtime: Some(runtime),
    }
}

/// Looks the container up in each runtime's state; the first that holds it names it.
fn names_for(root: &Path, id: &str) -> Names {
    // containerd: /run/containerd/io.containerd.runtime.v2.task/<namespace>/<id>/
    // (k8s.io for Kubernetes, moby for Docker's containerd, default for ctr).
    for v in [
        "io.containerd.runtime.v2.task",
        "io.containerd.runtime.v1.linux",
    ] {
        let dir = root.join("run/containerd").join(v);
        let Ok(namespaces) = std::fs::read_dir(&dir) else {
            continue;
        };
        for ns in namespaces.flatten() {
            if let Some(c) = read_json(&ns.path().join(id).join("config.json")) {
                let mut n = from_annotations(&c, Runtime::Containerd);
                if ns.file_name() == "moby" {
                    // Docker's own containers: the names are in Docker's state.
                    let d = docker_names(root, id);
                    if d.container.is_some() {
                        return d;
                    }
                    n.runtime = Some(Runtime::Docker);
                }
                return n;
            }
        }
    }
    // CRI-O and Podman (containers/storage): `<driver>-containers/<id>/userdata/`,
    // overlay-containers usually, vfs-containers or btrfs-containers elsewhere.
    for dir in ["run/containers/storage", "var/lib/containers/storage"] {
        let Ok(drivers) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for d in drivers.flatten() {
            if !d.file_name().to_string_lossy().ends_with("-containers") {
                continue;
            }
            let path = d.path().join(id).join("userdata/config.json");
            let Some(c) = read_json(&path) else {
                continue;
            };
            let crio = c["annotations"]
                .get("io.kubernetes.cri-o.ContainerID")
                .is_some();
            let mut n = from_annotations(&c, if crio { Runtime::CriO } else { Runtime::Podman });
            if n.container.is_none() {
                n.container = string_at(&c["annotations"], &["io.podman.annotations.name"]);
            }
            return n;
        }
    }
    docker_names(root, id)
}

/// Docker: `/var/lib/docker/containers/<id>/config.v2.json`.
fn docker_names(root: &Path, id: &str) -> Names {
    let path = root
        .join("var/lib/docker/containers")
        .join(id)
        .join("config.v2.json");
    let Some(c) = read_json(&path) else {
        return Names::default();
    };
    let labels = &c["Config"]["Labels"];
    Names {
        namespace: string_at(labels, &["io.kubernetes.pod.namespace"]),
        pod: string_at(labels, &["io.kubernetes.pod.name"]),
        container: string_at(labels, &["io.kubernetes.container.name"])
            .or_else(|| string_at(&c, &["Name"]).map(|n| n.trim_start_matches('/').to_string())),
        pod_uid: string_at(labels, &["io.kubernetes.pod.uid"]),
        runtime: Some(Runtime::Docker),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f0c3a2b1d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a";
    const UID: &str = "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e";

    fn ids(runtime: Option<Runtime>, uid: Option<&str>, qos: Option<Qos>) -> CgroupIds {
        CgroupIds {
            runtime,
            container_id: Some(ID.to_string()),
            pod_uid: uid.map(str::to_string),
            qos,
        }
    }

    #[test]
    fn kubelet_systemd_driver_every_qos_and_runtime() {
        let u = UID.replace('-', "_");
        for (runtime, prefix) in [
            (Runtime::Containerd, "cri-containerd"),
            (Runtime::CriO, "crio"),
            (Runtime::Docker, "docker"),
        ] {
            let cases = [
                (
                    format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice/{prefix}-{ID}.scope"),
                    Qos::Burstable,
                ),
                (
                    format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u}.slice/{prefix}-{ID}.scope"),
                    Qos::BestEffort,
                ),
                (
                    format!("/kubepods.slice/kubepods-pod{u}.slice/{prefix}-{ID}.scope"),
                    Qos::Guaranteed,
                ),
            ];
            for (path, qos) in cases {
                for line in [
                    format!("0::{path}"),
                    format!("9:memory:{path}"),
                    path.clone(),
                ] {
                    assert_eq!(
                        parse_cgroup(&line),
                        ids(Some(runtime), Some(UID), Some(qos)),
                        "{line}"
                    );
                }
            }
        }
    }

    #[test]
    fn kubelet_cgroupfs_driver() {
        assert_eq!(
            parse_cgroup(&format!("/kubepods/burstable/pod{UID}/{ID}")),
            ids(Some(Runtime::Unknown), Some(UID), Some(Qos::Burstable))
        );
        assert_eq!(
            parse_cgroup(&format!("/kubepods/besteffort/pod{UID}/{ID}")),
            ids(Some(Runtime::Unknown), Some(UID), Some(Qos::BestEffort))
        );
        assert_eq!(
            parse_cgroup(&format!("/kubepods/pod{UID}/{ID}")),
            ids(Some(Runtime::Unknown), Some(UID), Some(Qos::Guaranteed))
        );
        // CRI-O under cgroupfs prefixes the id.
        assert_eq!(
            parse_cgroup(&format!("/kubepods/burstable/pod{UID}/crio-{ID}")),
            ids(Some(Runtime::CriO), Some(UID), Some(Qos::Burstable))
        );
    }

    #[test]
    fn static_pod_uids_are_32_hex() {
        let hash = "6b1e9f0a1c2d3e4f5a6b7c8d9e0f1a2b";
        assert_eq!(
            parse_cgroup(&format!("/kubepods/burstable/pod{hash}/{ID}"))
                .pod_uid
                .as_deref(),
            Some(hash)
        );
        assert_eq!(
            parse_cgroup(&format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{hash}.slice/cri-containerd-{ID}.scope"
            ))
            .pod_uid
            .as_deref(),
            Some(hash)
        );
    }

    #[test]
    fn plain_docker_and_podman() {
        assert_eq!(
            parse_cgroup(&format!("/docker/{ID}")),
            ids(Some(Runtime::Docker), None, None)
        );
        assert_eq!(
            parse_cgroup(&format!("0::/system.slice/docker-{ID}.scope")),
            ids(Some(Runtime::Docker), None, None)
        );
        assert_eq!(
            parse_cgroup(&format!("0::/machine.slice/libpod-{ID}.scope")),
            ids(Some(Runtime::Podman), None, None)
        );
        // Rootless podman, with the container's own init cgroup below its scope.
        assert_eq!(
            parse_cgroup(&format!(
                "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container"
            )),
            ids(Some(Runtime::Podman), None, None)
        );
    }

    #[test]
    fn monitors_hosts_and_garbage_name_no_container() {
        let none = CgroupIds::default();
        for path in [
            "0::/",
            "0::/system.slice/containerd.service",
            "0::/user.slice/user-1000.slice/session-3.scope",
            &format!("0::/system.slice/crio-conmon-{ID}.scope"),
            &format!("0::/machine.slice/libpod-conmon-{ID}.scope"),
            "0::/kubepods.slice/kubepods-burstable.slice",
            "/docker/abc",
            "",
            ":::",
            "0::/kubepods/burstable/podnot-a-uid/xyz",
        ] {
            assert_eq!(parse_cgroup(path), none, "{path}");
        }
        // A pod's own cgroup (the kubelet's, no container yet).
        let pod = parse_cgroup(&format!("/kubepods/burstable/pod{UID}"));
        assert_eq!(pod.pod_uid.as_deref(), Some(UID));
        assert_eq!(pod.container_id, None);
        // Seen through a cgroup namespace.
        assert_eq!(
            parse_cgroup(&format!("0::/../../kubepods/pod{UID}/{ID}"))
                .container_id
                .as_deref(),
            Some(ID)
        );
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn resolver_reads_each_runtime_state() {
        let root = std::env::temp_dir().join(format!("oomprof-attr-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let cri = r#"{"ociVersion":"1.1.0","annotations":{
            "io.kubernetes.cri.container-type":"container",
            "io.kubernetes.cri.container-name":"api",
            "io.kubernetes.cri.sandbox-name":"api-7d9f-x2",
            "io.kubernetes.cri.sandbox-namespace":"shop",
            "io.kubernetes.cri.sandbox-uid":"1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e"}}"#;
        write(
            &root.join(format!(
                "run/containerd/io.containerd.runtime.v2.task/k8s.io/{ID}/config.json"
            )),
            cri,
        );
        let mut r = Resolver::new(&root);
        let u = UID.replace('-', "_");
        let a = r
            .attribute(&format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice/cri-containerd-{ID}.scope"
            ))
            .unwrap();
        assert_eq!(a.names.namespace.as_deref(), Some("shop"));
        assert_eq!(a.names.pod.as_deref(), Some("api-7d9f-x2"));
        assert_eq!(a.names.container.as_deref(), Some("api"));
        assert_eq!(
            a.comments(),
            [
                format!("pod: shop/api-7d9f-x2 uid={UID} qos=Burstable"),
                format!("container: api runtime=containerd id={ID}"),
            ]
        );
        // Cached: the bundle may be gone at kill time.
        std::fs::remove_dir_all(root.join("run")).unwrap();
        assert_eq!(
            r.attribute(&format!("/kubepods/burstable/pod{UID}/{ID}"))
                .unwrap()
                .names,
            a.names
        );

        // Docker (cri-dockerd labels), under the cgroupfs driver: the bare id's
        // runtime comes from the state that held it.
        let id2 = ID.replace('4', "5");
        write(
            &root.join(format!("var/lib/docker/containers/{id2}/config.v2.json")),
            r#"{"ID":"x","Name":"/k8s_web_web-0_prod_uid_0","Config":{"Labels":{
                "io.kubernetes.pod.name":"web-0","io.kubernetes.pod.namespace":"prod",
                "io.kubernetes.container.name":"web"}}}"#,
        );
        let a = r.attribute(&format!("/kubepods/pod{UID}/{id2}")).unwrap();
        assert_eq!(a.runtime(), Some(Runtime::Docker));
        assert_eq!(
            (
                a.names.namespace.as_deref(),
                a.names.pod.as_deref(),
                a.names.container.as_deref()
            ),
            (Some("prod"), Some("web-0"), Some("web"))
        );
        // Plain Docker: its own name.
        let id3 = ID.replace('4', "6");
        write(
            &root.join(format!("var/lib/docker/containers/{id3}/config.v2.json")),
            r#"{"Name":"/redis-cache","Config":{"Labels":{}}}"#,
        );
        let a = r
            .attribute(&format!("0::/system.slice/docker-{id3}.scope"))
            .unwrap();
        assert_eq!(a.names.container.as_deref(), Some("redis-cache"));
        assert_eq!(
            a.comments(),
            [format!("container: redis-cache runtime=docker id={id3}")]
        );

        // CRI-O.
        let id4 = ID.replace('4', "7");
        write(
            &root.join(format!(
                "run/containers/storage/overlay-containers/{id4}/userdata/config.json"
            )),
            r#"{"annotations":{"io.kubernetes.cri-o.ContainerID":"x",
                "io.kubernetes.pod.name":"db-0","io.kubernetes.pod.namespace":"data",
                "io.kubernetes.container.name":"postgres","io.kubernetes.pod.uid":"u"}}"#,
        );
        let a = r
            .attribute(&format!("/kubepods/burstable/pod{UID}/crio-{id4}"))
            .unwrap();
        assert_eq!(a.runtime(), Some(Runtime::CriO));
        assert_eq!(a.names.container.as_deref(), Some("postgres"));

        // Malformed or missing state: ids only, never a panic.
        let id5 = ID.replace('4', "8");
        write(
            &root.join(format!("var/lib/docker/containers/{id5}/config.v2.json")),
            "{not json",
        );
        let a = r.attribute(&format!("/docker/{id5}")).unwrap();
        assert_eq!(a.names, Names::default());
        assert_eq!(
            a.comments(),
            [format!("container: - runtime=docker id={id5}")]
        );
        assert!(r.attribute("0::/user.slice").is_none());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
