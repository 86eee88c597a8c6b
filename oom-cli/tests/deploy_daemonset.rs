//! `deploy/daemonset.yaml` on paper (issue 17): valid against the Kubernetes schemas,
//! offline, and one place for the command line. deploy_container.rs runs it.

use std::path::{Path, PathBuf};
use std::process::Command;

use oom_tests::privileged;

mod common;

use common::deploy::{
    cap_mask, cap_names, deploy_dir, dockerfile_exec_form, kubelet_argv, quantity, systemd_size,
    unescape, DaemonSet,
};

const OOMPROF: &str = env!("CARGO_BIN_EXE_oomprof");

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn deploy_file_readers_take_apart_what_they_meet() {
    assert_eq!(quantity("64Mi"), 64 << 20);
    assert_eq!(quantity("500M"), 500_000_000);
    assert_eq!(quantity("4096"), 4096);
    assert_eq!(systemd_size("96M"), 96 << 20);
    assert_eq!(cap_mask(&["BPF", "cap_perfmon"]), 3 << 38);
    assert_eq!(cap_names(1 << 21), ["CAP_SYS_ADMIN"]);
    assert_eq!(unescape(r"/a\040b"), "/a b");
    let ep = strings(&["/oomprof", "run", "--dir", "/profiles"]);
    assert_eq!(kubelet_argv(None, None, &ep, &[]), ep);
    assert_eq!(
        kubelet_argv(Some(&ep[..1]), None, &ep, &strings(&["x"])),
        ep[..1]
    );
    assert_eq!(
        kubelet_argv(None, Some(&strings(&["x"])), &ep, &strings(&["y"])),
        [&ep[..], &strings(&["x"])].concat()
    );
    assert_eq!(
        dockerfile_exec_form("FROM scratch\nENTRYPOINT [\"/a\", \"b\"]\n", "ENTRYPOINT"),
        Some(strings(&["/a", "b"]))
    );
    assert_eq!(dockerfile_exec_form("FROM scratch\n", "CMD"), None);
    // The reader refuses a setting the container test does not reproduce.
    let text = std::fs::read_to_string(deploy_dir().join("daemonset.yaml")).unwrap();
    let with = text.replace(
        "readOnlyRootFilesystem: true",
        "readOnlyRootFilesystem: true\n            procMount: Unmasked",
    );
    assert_ne!(with, text);
    let refused = std::panic::catch_unwind(|| DaemonSet::parse(&with));
    assert!(refused.is_err(), "an unknown securityContext key was taken");
}

#[test]
fn daemonset_args_do_not_repeat_the_image_entrypoint() {
    // Issue 17: the manifest's args ["run", "--dir", "/profiles"] came after an
    // ENTRYPOINT that already said them, so every node ran
    // `oomprof run --dir /profiles run --dir /profiles`, exited 2 and crash-looped.
    // The image's ENTRYPOINT is the one place: no command, no args, no CMD.
    let ds = DaemonSet::read();
    assert_eq!(ds.command, None, "command would replace the ENTRYPOINT");
    assert_eq!(ds.args, None, "args would be appended to the ENTRYPOINT");
    let dockerfile = std::fs::read_to_string(deploy_dir().join("Dockerfile")).unwrap();
    let entrypoint = dockerfile_exec_form(&dockerfile, "ENTRYPOINT").expect("an ENTRYPOINT");
    assert_eq!(dockerfile_exec_form(&dockerfile, "CMD"), None, "a CMD");
    let argv = kubelet_argv(None, None, &entrypoint, &[]);
    assert_eq!(argv, ["/oomprof", "run", "--dir", "/profiles"]);
    assert!(
        ds.mount_at("/profiles").is_some_and(|m| !m.read_only),
        "the --dir of the command line is a writable volume"
    );
    // What the old pair made of it: a usage error, exit 2.
    let old = Command::new(OOMPROF)
        .args(&argv[1..])
        .args(["run", "--dir", "/profiles"])
        .output()
        .unwrap();
    assert_eq!(old.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&old.stderr).contains("Unrecognized argument: run"));
    // The command line itself parses: without the volume it stops at the directory
    // (exit 1, naming it), not at a usage error.
    if !Path::new("/profiles").exists() {
        let now = Command::new(OOMPROF).args(&argv[1..]).output().unwrap();
        let err = String::from_utf8_lossy(&now.stderr);
        assert_eq!(now.status.code(), Some(1), "{err}");
        assert!(err.contains("/profiles"), "{err}");
    }
}

/// The venv `tests/tools/kubernetes-validate` installs (pinned kubernetes-validate).
fn kubernetes_validate(test: &str) -> Option<PathBuf> {
    let bin = oom_tests::cache_dir().join("kubernetes-validate/bin/kubernetes-validate");
    if bin.is_file() {
        Some(bin)
    } else {
        privileged::skip(
            test,
            &format!(
                "{} missing (tests/tools/kubernetes-validate installs it)",
                bin.display()
            ),
        );
        None
    }
}

/// The Kubernetes versions whose strict schemas the package bundles (`1.25.0`, ...).
fn bundled_versions(kv: &Path) -> Vec<String> {
    let venv = kv.parent().unwrap().parent().unwrap();
    let mut versions: Vec<String> = std::fs::read_dir(venv.join("lib"))
        .unwrap()
        .flatten()
        .map(|py| {
            py.path()
                .join("site-packages/kubernetes_validate/kubernetes-json-schema")
        })
        .filter(|d| d.is_dir())
        .flat_map(|d| std::fs::read_dir(d).unwrap().flatten())
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_prefix('v')?
                .strip_suffix("-local-strict")
                .map(str::to_string)
        })
        .collect();
    versions.sort_by_key(|v| {
        v.split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0))
            .collect::<Vec<_>>()
    });
    versions
}

/// `kubernetes-validate --strict -k VERSION FILE` with no network at all (a new,
/// empty network namespace): the schemas must come from the package.
fn validate_offline(kv: &Path, version: &str, file: &Path) -> (bool, String) {
    let out = Command::new("unshare")
        .args(["--net", "--"])
        .arg(kv)
        .args(["--strict", "-k", version])
        .arg(file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
#[ignore = "needs root (a network namespace) and kubernetes-validate (PyPI): run tests/run"]
fn daemonset_validates_offline_against_every_bundled_kubernetes_schema() {
    const T: &str = "daemonset_validates_offline_against_every_bundled_kubernetes_schema";
    if !privileged::root(T) {
        return;
    }
    if privileged::tool(T, "unshare").is_none() {
        return;
    }
    let Some(kv) = kubernetes_validate(T) else {
        return;
    };
    let versions = bundled_versions(&kv);
    assert!(
        versions.iter().any(|v| v.starts_with("1.25."))
            && versions.iter().any(|v| v.starts_with("1.37.")),
        "bundled schemas: {versions:?}"
    );
    let manifest = deploy_dir().join("daemonset.yaml");
    for v in &versions {
        let (ok, out) = validate_offline(&kv, v, &manifest);
        assert!(ok, "Kubernetes {v}: {out}");
        assert!(out.contains("passed"), "Kubernetes {v}: {out}");
    }
    // No rubber stamp: a misspelt field (strict) and a wrong type fail, offline too.
    let dir = common::deploy::TempDir::new("kv");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let newest = versions.last().unwrap();
    for (what, bad) in [
        (
            "unknown field",
            text.replace("readOnlyRootFilesystem:", "readOnlyRootFilesystm:"),
        ),
        (
            "wrong type",
            text.replace("hostPID: true", "hostPID: \"yes\""),
        ),
    ] {
        assert_ne!(bad, text, "{what}: nothing replaced");
        let f = dir.0.join("bad.yaml");
        std::fs::write(&f, bad).unwrap();
        let (ok, out) = validate_offline(&kv, newest, &f);
        assert!(!ok, "{what} passed validation: {out}");
    }
    eprintln!(
        "daemonset.yaml valid against Kubernetes {}",
        versions.join(", ")
    );
}
