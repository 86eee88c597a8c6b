//! `oomprof check`: what this host offers and what oomprof needs.
//!
//! Each row asks the kernel directly (a program load, a map create, a tracefs read,
//! `/proc/self/status`), never infers from the version: distribution kernels
//! backport BPF features. The loader's own start-up probe (`oom_loader::probe`) gives
//! the verdict `run` would reach; the rows split it into one answer per feature.
//! Exit status 0 when every required row is ok, 1 otherwise.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use argh::FromArgs;
use oom_loader::probe::{self, BpfLoopMissing};

/// check this host's kernel features, privileges and cgroups for oomprof
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "check",
    note = "Each row is ok, missing (oomprof needs it; the fix follows) or optional. \
            Exit status: 0 when everything needed is present, 1 otherwise.",
    example = "sudo {command_name}"
)]
pub struct CheckArgs {}

/// A row's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Present.
    Ok,
    /// Absent, and oomprof needs it.
    Missing,
    /// Absent, but only some setups need it.
    Optional,
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// What is checked.
    pub name: &'static str,
    /// The verdict.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// How to fix it (shown when not ok).
    pub fix: String,
}

impl Row {
    fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: String::new(),
        }
    }

    fn missing(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Missing,
            detail: detail.into(),
            fix: fix.into(),
        }
    }

    fn optional(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            status: Status::Optional,
            ..Self::missing(name, detail, fix)
        }
    }
}

/// Runs `check`: prints the table; fails (exit 1) when something required is missing.
pub fn run(_args: CheckArgs) -> anyhow::Result<()> {
    let rows = gather();
    let mut text = table(&rows);
    let missing: Vec<&str> = rows
        .iter()
        .filter(|r| r.status == Status::Missing)
        .map(|r| r.name)
        .collect();
    if missing.is_empty() {
        text.push_str("\noomprof can run on this host.\n");
    }
    // A closed pipe (`oomprof check | head`) is not worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
    if missing.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("this host lacks what oomprof needs: {}", missing.join(", "))
    }
}

/// Formats the table: name, status, detail, and an indented fix under rows not ok.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:<22} {:<8} DETAIL", "CHECK", "STATUS");
    for r in rows {
        let status = match r.status {
            Status::Ok => "ok",
            Status::Missing => "missing",
            Status::Optional => "optional",
        };
        let _ = writeln!(out, "{:<22} {:<8} {}", r.name, status, r.detail);
        if r.status != Status::Ok && !r.fix.is_empty() {
            let _ = writeln!(out, "{:<22} {:<8} fix: {}", "", "", r.fix);
        }
    }
    out
}

// ---------------------------------------------------------------------------------
// Capabilities.

/// Capability numbers (linux/capability.h).
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_RESOURCE: u32 = 24;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The effective capability mask from `/proc/self/status` text.
pub fn cap_eff(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

fn has(mask: u64, cap: u32) -> bool {
    mask & (1u64 << cap) != 0
}

/// `RLIMIT_MEMLOCK`'s soft limit from `/proc/self/limits` text: `None` = unlimited.
pub fn memlock(limits: &str) -> Option<Option<u64>> {
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))?;
    let soft = line
        .strip_prefix("Max locked memory")?
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        Some(None)
    } else {
        soft.parse().ok().map(Some)
    }
}

/// `(major, minor)` of a kernel release string such as `6.18.0-1-amd64`.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.trim().split(['.', '-']);
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

// ---------------------------------------------------------------------------------
// BPF probes: `oom_loader::probe` loads the programs and creates the maps.

fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EPERM) => "EPERM (not permitted)".into(),
        Some(libc::EACCES) => "EACCES (not permitted)".into(),
        Some(libc::ENOSYS) => "ENOSYS (kernel built without BPF)".into(),
        _ => e.to_string(),
    }
}

/// `Err(text)` when the bpf_loop call is an unknown helper or the probe did not load;
/// `Ok` when the verifier knows it.
fn probe_bpf_loop() -> Result<(), String> {
    probe::bpf_loop().map_err(|e| match e {
        BpfLoopMissing::UnknownHelper(line) => line,
        BpfLoopMissing::NotLoaded(e) => format!("tracing program load: {}", errno_text(&e)),
    })
}

/// Everything `check` looks at, in table order.
pub fn gather() -> Vec<Row> {
    let mut rows = Vec::new();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let caps = cap_eff(&status).unwrap_or(0);
    let sys_admin = has(caps, CAP_SYS_ADMIN);

    // Kernel version: informational; the probes below decide.
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    rows.push(match kernel_version(&release) {
        Some(v) if v >= (5, 17) => Row::ok("kernel", format!("{release} (5.17+ has everything)")),
        Some(v) if v >= (5, 10) => Row::ok(
            "kernel",
            format!("{release}: 5.10+; before 5.17 the walk is the fallback without bpf_loop"),
        ),
        Some(_) => Row::optional(
            "kernel",
            format!("{release}: older than 5.10; fine only if the features below were backported"),
            "a 5.10 or newer kernel",
        ),
        None => Row::optional("kernel", format!("unknown release {release:?}"), ""),
    });

    // The loader's own start-up verdict (may raise RLIMIT_MEMLOCK on old kernels,
    // which the rows below then benefit from, exactly as `run` would).
    // Its warning about RLIMIT_MEMLOCK would repeat the memlock row: keep it quiet.
    let level = log::max_level();
    log::set_max_level(log::LevelFilter::Error);
    let features = probe::probe();
    log::set_max_level(level);

    // BPF at all.
    let bpf_ok = match probe::bpf_syscall() {
        Ok(()) => {
            rows.push(Row::ok("bpf syscall", "programs load"));
            true
        }
        Err(e) => {
            let unpriv = std::fs::read_to_string("/proc/sys/kernel/unprivileged_bpf_disabled")
                .map(|s| format!("; kernel.unprivileged_bpf_disabled={}", s.trim()))
                .unwrap_or_default();
            rows.push(Row::missing(
                "bpf syscall",
                format!("BPF_PROG_LOAD: {}{unpriv}", errno_text(&e)),
                "run as root or grant CAP_BPF and CAP_PERFMON (CAP_SYS_ADMIN before 5.8); \
                 a kernel with CONFIG_BPF_SYSCALL=y",
            ));
            false
        }
    };

    // Ring buffer.
    rows.push(match probe::ring_buffer() {
        Ok(()) => Row::ok("ring buffer", "BPF_MAP_TYPE_RINGBUF maps are created"),
        Err(e) if bpf_ok => Row::missing(
            "ring buffer",
            format!("BPF_MAP_CREATE(RINGBUF): {}", errno_text(&e)),
            "a 5.8 or newer kernel",
        ),
        Err(_) => Row::missing("ring buffer", "not probed: no BPF", "see bpf syscall"),
    });

    // bpf_loop: without it the walk falls back to bounded loops and tail calls.
    let fallback = oom_loader::WalkKind::Fallback;
    rows.push(match probe_bpf_loop() {
        Ok(()) => Row::ok("bpf_loop", "the verifier knows the bpf_loop helper"),
        Err(e) if bpf_ok => Row::optional(
            "bpf_loop",
            format!(
                "{e}; the fallback walk is used: {} steps, ~{} buckets of 44 frames",
                fallback.max_steps(),
                fallback.max_buckets(44)
            ),
            "a 5.17 or newer kernel walks up to 8M steps (not required)",
        ),
        Err(_) => Row::missing("bpf_loop", "not probed: no BPF", "see bpf syscall"),
    });

    // BPF links for perf events; the ioctl attach is the fallback, so optional.
    let perf_link = features
        .as_ref()
        .map(|f| f.perf_link)
        .unwrap_or_else(|_| probe::perf_link());
    rows.push(if perf_link {
        Row::ok("bpf perf links", "BPF_LINK_CREATE attaches to perf events")
    } else {
        Row::optional(
            "bpf perf links",
            "BPF_LINK_CREATE for perf events not available; the perf ioctl attach is used",
            "a 5.15 or newer kernel (not required)",
        )
    });

    // Growth sampling (`oomprof growth`): the perf_event program on page faults.
    rows.push(if !bpf_ok {
        Row::missing("growth sampling", "not probed: no BPF", "see bpf syscall")
    } else {
        match oom_loader::growth::probe() {
            Ok(()) => Row::ok(
                "growth sampling",
                "page-fault perf events take the growth program (oomprof growth)",
            ),
            Err(e) => Row::optional(
                "growth sampling",
                format!("oomprof growth will not work: {}", e.to_string().lines().next().unwrap_or("")),
                "a 4.18 or newer kernel with perf events (CONFIG_PERF_EVENTS), CAP_PERFMON (not required for OOM profiles)",
            ),
        }
    });

    // BTF: nothing oomprof loads needs it (classic tracepoints, no CO-RE).
    rows.push(if Path::new("/sys/kernel/btf/vmlinux").exists() {
        Row::ok("btf", "/sys/kernel/btf/vmlinux present")
    } else {
        Row::optional(
            "btf",
            "/sys/kernel/btf/vmlinux absent; oomprof does not need it",
            "CONFIG_DEBUG_INFO_BTF=y (not required)",
        )
    });

    // tracefs and the tracepoints oomprof attaches to.
    let mounted = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .find(|p| Path::new(p).join("events").is_dir());
    let names = [
        "oom/mark_victim",
        "signal/signal_deliver",
        "sched/sched_process_exec",
        "sched/sched_process_exit",
    ];
    rows.push(match oom_loader::attach::read_tracepoints(&names) {
        Ok(_) => Row::ok(
            "tracefs",
            match mounted {
                Some(p) => format!("mounted at {p}; {} found", names.join(", ")),
                None => format!(
                    "not mounted; mountable in a private namespace; {} found",
                    names.join(", ")
                ),
            },
        ),
        Err(e) => Row::missing(
            "tracefs",
            e.to_string(),
            if mounted.is_none() {
                "mount tracefs (mount -t tracefs nodev /sys/kernel/tracing) or grant CAP_SYS_ADMIN"
            } else {
                "a kernel with CONFIG_FTRACE and these tracepoints"
            },
        ),
    });

    // Capabilities.
    let cap_fix = |cap: &str| {
        format!(
            "run as root, or grant {cap} (setcap, systemd AmbientCapabilities=, \
             Kubernetes securityContext.capabilities.add)"
        )
    };
    let cap_row = |name: &'static str, cap: u32, why: &str, covered: bool, required: bool| {
        if has(caps, cap) {
            Row::ok(name, why.to_string())
        } else if covered {
            Row::ok(name, format!("not held; CAP_SYS_ADMIN covers it ({why})"))
        } else if required {
            Row::missing(name, format!("not held: {why}"), cap_fix(name))
        } else {
            Row::optional(name, format!("not held: {why}"), cap_fix(name))
        }
    };
    rows.push(cap_row(
        "CAP_BPF",
        CAP_BPF,
        "load BPF programs and maps",
        sys_admin,
        true,
    ));
    rows.push(cap_row(
        "CAP_PERFMON",
        CAP_PERFMON,
        "tracing programs, reading user memory in BPF, tracepoint perf events",
        sys_admin,
        true,
    ));
    rows.push(cap_row(
        "CAP_SYS_PTRACE",
        CAP_SYS_PTRACE,
        "read other processes' executables and memory (discovery, dump)",
        false,
        true,
    ));
    rows.push(cap_row(
        "CAP_DAC_READ_SEARCH",
        CAP_DAC_READ_SEARCH,
        "open binaries other users own through /proc/PID/exe",
        false,
        true,
    ));
    rows.push(cap_row(
        "CAP_SYS_ADMIN",
        CAP_SYS_ADMIN,
        "mount a private tracefs when none is mounted",
        false,
        mounted.is_none(),
    ));

    // RLIMIT_MEMLOCK versus memory-cgroup accounting.
    // Probed when BPF works; else the 5.11 release that brought it is the best guess.
    let (memcg, memcg_how) = match &features {
        Ok(f) => (f.memcg_accounting, ""),
        Err(_) if bpf_ok => (probe::memcg_accounting(), ""),
        Err(_) => (
            kernel_version(&release).is_some_and(|v| v >= (5, 11)),
            " (not probed without BPF; from the kernel version)",
        ),
    };
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let lock = memlock(&limits);
    let lock_text = match lock {
        Some(None) => "unlimited".to_string(),
        Some(Some(b)) => format!("{b} bytes"),
        None => "unknown".to_string(),
    };
    let resource = has(caps, CAP_SYS_RESOURCE);
    rows.push(if memcg {
        Row::ok(
            "memlock",
            format!(
                "BPF memory is charged to the memory cgroup; RLIMIT_MEMLOCK ({lock_text}) \
                 does not apply{memcg_how}"
            ),
        )
    } else if lock == Some(None) {
        Row::ok("memlock", "RLIMIT_MEMLOCK is unlimited")
    } else if resource {
        Row::ok(
            "memlock",
            format!("RLIMIT_MEMLOCK is {lock_text}; raised at start (CAP_SYS_RESOURCE)"),
        )
    } else {
        Row::missing(
            "memlock",
            format!(
                "this kernel charges BPF memory to RLIMIT_MEMLOCK ({lock_text}) and it \
                 cannot be raised{memcg_how}"
            ),
            "ulimit -l unlimited, systemd LimitMEMLOCK=infinity, or grant CAP_SYS_RESOURCE",
        )
    });
    rows.push(if memcg || resource {
        Row::ok(
            "CAP_SYS_RESOURCE",
            if resource {
                "held: raise RLIMIT_MEMLOCK on kernels before 5.11"
            } else {
                "not needed: memory-cgroup accounting of BPF memory"
            },
        )
    } else {
        Row::optional(
            "CAP_SYS_RESOURCE",
            "not held: raise RLIMIT_MEMLOCK on kernels before 5.11",
            cap_fix("CAP_SYS_RESOURCE"),
        )
    });

    // Cgroups: memory-cgroup OOM kills carry the cgroup; global ones work without.
    rows.push(cgroup_row());

    // The loader's own verdict, to catch anything the rows above split differently.
    rows.push(match &features {
        Ok(_) => Row::ok(
            "loader probe",
            "oom_loader::probe passes (what `run` checks at start)",
        ),
        Err(e) => Row::missing("loader probe", e.to_string(), "see the rows above"),
    });
    // Last, the real thing: "ok" means the verifier accepts oomprof's own programs and
    // they attach here (then everything is detached again).
    if features.is_ok() {
        let t = std::time::Instant::now();
        rows.push(
            match oom_loader::Kernel::load(&oom_loader::KernelConfig::default()) {
                Ok(k) => {
                    let placement = if k.walks_at_exit() {
                        "walks at exit, interrupts on"
                    } else {
                        "walks in the SIGKILL delivery, interrupts off"
                    };
                    let progs = k.programs().len();
                    let walk = k.walk();
                    drop(k);
                    Row::ok(
                        "oomprof program",
                        format!(
                            "{progs} programs and the walk verified, attached and detached in {:.0?} ({placement}; {walk}: ~{} buckets of 44 frames, ~{} of 1024)",
                            t.elapsed(),
                            walk.max_buckets(44),
                            walk.max_buckets(1024)
                        ),
                    )
                }
                Err(e) => Row::missing(
                    "oomprof program",
                    e.to_string().lines().next().unwrap_or("").to_string(),
                    "run with --debug for the verifier log; report it with `uname -r`",
                ),
            },
        );
    }
    rows
}

fn cgroup_row() -> Row {
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers");
    if let Ok(ctrl) = std::fs::read_to_string(v2) {
        return if ctrl.split_whitespace().any(|c| c == "memory") {
            Row::ok("cgroup", "v2 with the memory controller")
        } else {
            Row::optional(
                "cgroup",
                "v2 without the memory controller: only global OOM kills happen",
                "enable it (cgroup_enable=memory on the kernel command line)",
            )
        };
    }
    if Path::new("/sys/fs/cgroup/memory").is_dir() {
        return Row::ok("cgroup", "v1 with the memory controller");
    }
    Row::optional(
        "cgroup",
        "no memory cgroup found: only global OOM kills happen",
        "mount cgroup2 at /sys/fs/cgroup with the memory controller",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cap_eff() {
        let status = "Name:\tcat\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        let m = cap_eff(status).unwrap();
        assert!(has(m, CAP_BPF) && has(m, CAP_PERFMON) && has(m, CAP_SYS_ADMIN));
        let m = cap_eff("CapEff:\t0000000000080004\n").unwrap();
        assert!(has(m, CAP_SYS_PTRACE) && has(m, CAP_DAC_READ_SEARCH));
        assert!(!has(m, CAP_BPF));
        assert_eq!(cap_eff("Name: x\n"), None);
    }

    #[test]
    fn parses_memlock() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max locked memory         8388608              8388608              bytes     \n";
        assert_eq!(memlock(limits), Some(Some(8_388_608)));
        let limits = "Max locked memory         unlimited            unlimited            bytes\n";
        assert_eq!(memlock(limits), Some(None));
        assert_eq!(memlock(""), None);
    }

    #[test]
    fn parses_kernel_version() {
        assert_eq!(kernel_version("6.18.0-1-amd64\n"), Some((6, 18)));
        assert_eq!(kernel_version("5.4.0"), Some((5, 4)));
        assert_eq!(kernel_version("x"), None);
    }

    #[test]
    fn table_shows_fixes_only_when_not_ok() {
        let t = table(&[Row::ok("a", "fine"), Row::missing("b", "gone", "install b")]);
        assert!(t.contains("a                      ok       fine\n"));
        assert!(t.contains("b                      missing  gone\n"));
        assert!(t.contains("fix: install b"));
        assert_eq!(t.matches("fix:").count(), 1);
    }
}
