//! Pass or fail for each scenario a guest reported, decided on the host: profiles go
//! through `go tool pprof` (`-raw` for values, `-comments` for oomprof's metadata).

use std::path::{Path, PathBuf};

use oom_tests::gomatrix::Toolchain;
use oom_tests::pprof_raw::RawProfile;

use crate::report::{Case, Report};

/// The fixture binaries as built on the host, for symbolization by `go tool pprof`.
pub struct Fixtures {
    pub oomer: PathBuf,
    pub oomer_pie_stripped: PathBuf,
    pub holder: PathBuf,
}

impl Fixtures {
    fn binary(&self, name: &str) -> Option<&Path> {
        Some(match name {
            "oomer" => &self.oomer,
            "oomer-pie-stripped" => &self.oomer_pie_stripped,
            "holder" => &self.holder,
            _ => return None,
        })
    }
}

/// One judged scenario.
#[derive(Debug)]
pub struct Verdict {
    pub scenario: String,
    pub ok: bool,
    /// "n/a" scenarios (the kernel lacks the feature) are neither.
    pub not_applicable: bool,
    pub detail: String,
}

impl Verdict {
    fn new(scenario: &str, r: Result<String, String>) -> Self {
        let (ok, detail) = match r {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        Self {
            scenario: scenario.to_string(),
            ok,
            not_applicable: false,
            detail,
        }
    }
}

/// Everything the guest reported, judged. `dir` holds the guest's files.
pub fn judge(
    report: &Report,
    cgroup: &str,
    dir: &Path,
    tc: &Toolchain,
    fx: &Fixtures,
) -> Vec<Verdict> {
    let mut out = Vec::new();
    if let Some(t) = &report.timeout {
        out.push(Verdict::new("guest", Err(t.clone())));
    } else if !report.done {
        out.push(Verdict::new(
            "guest",
            Err("the guest stopped before its last line (crash or host timeout)".into()),
        ));
    }
    for e in &report.errors {
        out.push(Verdict::new("report", Err(e.clone())));
    }
    let log = report
        .files
        .get("daemon.log")
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .unwrap_or_default();
    for case in &report.cases {
        let v = match case.name.as_str() {
            "check" => Verdict::new("check", check(case, report)),
            "daemon_start" => Verdict::new(
                "daemon start",
                if case.get("ready") == "yes" {
                    ready(&log)
                } else {
                    Err(format!("not ready within 60 s: {}", last_lines(&log, 3)))
                },
            ),
            "daemon_stop" => Verdict::new(
                "daemon stop",
                match case.get("status") {
                    "0" => Ok(daemon_health(&log)),
                    s => Err(format!("exit status {s}: {}", last_lines(&log, 3))),
                },
            ),
            _ => match case.get("kind") {
                "oom" | "killed" | "global" => {
                    let v = victim(case, cgroup, dir, tc, fx, &log);
                    Verdict::new(&case.name, v.and_then(|d| event(case, report, d)))
                }
                "exit" => Verdict::new(&case.name, normal_exit(case, &log)),
                "preoom" => {
                    let log = report
                        .files
                        .get(&format!("daemon-{}.log", case.name))
                        .map(|d| String::from_utf8_lossy(d).into_owned())
                        .unwrap_or_default();
                    let v = victim(case, cgroup, dir, tc, fx, &log);
                    Verdict::new(
                        &case.name,
                        v.and_then(|d| preoom(case, report, dir, tc, fx, d)),
                    )
                }
                "absent" => Verdict {
                    scenario: case.name.clone(),
                    ok: true,
                    not_applicable: true,
                    detail: format!("n/a: {}", case.get("why")),
                },
                k => Verdict::new(&case.name, Err(format!("unknown kind {k:?}"))),
            },
        };
        out.push(v);
    }
    for needed in ["check", "daemon_start", "oom_default", "daemon_stop"] {
        if report.case(needed).is_none() {
            out.push(Verdict::new(needed, Err("not reported".into())));
        }
    }
    out
}

fn last_lines(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

fn check(case: &Case, report: &Report) -> Result<String, String> {
    let text = report
        .files
        .get("check.txt")
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .unwrap_or_default();
    let walk = text
        .lines()
        .find(|l| l.starts_with("bpf_loop"))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    match case.get("rc") {
        "0" => Ok(format!("ok; bpf_loop: {walk}")),
        rc => Err(format!(
            "rc {rc}: {}",
            text.lines()
                .filter(|l| l.contains("missing") || l.starts_with("oomprof:"))
                .collect::<Vec<_>>()
                .join(" | ")
        )),
    }
}

/// The daemon's ready line, whose kernel-memory figure must at least cover the
/// default 8 MiB ring (on 6.1 fdinfo alone said 0.4 MiB).
fn ready(log: &str) -> Result<String, String> {
    let line = log
        .lines()
        .find_map(|l| {
            l.split_once("ready in ")
                .map(|(_, r)| format!("ready in {r}"))
        })
        .unwrap_or_default();
    let mib: f64 = line
        .split_once("kernel memory ")
        .and_then(|(_, r)| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    if mib < 8.0 {
        return Err(format!(
            "kernel memory {mib} MiB is less than the 8 MiB ring: {line}"
        ));
    }
    Ok(line)
}

/// Lost events or errors in the daemon's log fail the run.
fn daemon_health(log: &str) -> String {
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains("lost"))
        .collect();
    if bad.is_empty() {
        "clean exit, no errors or lost events logged".into()
    } else {
        format!("clean exit; LOGGED: {}", bad.join(" | "))
    }
}

/// The daemon's `wrote ...` line for `pid`.
fn wrote_line<'a>(log: &'a str, pid: &str) -> Option<&'a str> {
    let key = format!(" pid={pid} ");
    log.lines()
        .find(|l| l.contains(" wrote ") && l.contains(&key))
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key))
}

fn normal_exit(case: &Case, log: &str) -> Result<String, String> {
    if case.get("watched") != "yes" {
        return Err("the daemon never watched the process".into());
    }
    if case.get("status") != "0" {
        return Err(format!("exit status {}", case.get("status")));
    }
    if case.get("profile") != "none" {
        return Err(format!("a normal exit wrote {}", case.get("profile")));
    }
    if let Some(l) = wrote_line(log, case.get("pid")) {
        return Err(format!("the daemon wrote a profile: {l}"));
    }
    Ok("watched, exited 0, no profile".into())
}

fn victim(
    case: &Case,
    cgroup: &str,
    dir: &Path,
    tc: &Toolchain,
    fx: &Fixtures,
    log: &str,
) -> Result<String, String> {
    let kind = case.get("kind");
    if case.get("watched") != "yes" {
        return Err("the daemon never watched the process".into());
    }
    if case.get("status") != "137" {
        return Err(format!(
            "exit status {} (want 137: SIGKILL)",
            case.get("status")
        ));
    }
    if kind == "oom" && case.get("oom_kill").parse::<u64>().unwrap_or(0) == 0 {
        return Err("the cgroup counted no OOM kill".into());
    }
    let name = case.get("profile");
    if name == "none" || name.is_empty() {
        return Err(format!(
            "no profile; the daemon said: {}",
            log.lines()
                .filter(|l| l.contains(case.get("pid")) && !l.contains("DEBUG"))
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    let path = dir.join(name);
    if !path.exists() {
        return Err(format!("{name} reported but not shipped"));
    }
    let bin = fx
        .binary(case.get("fixture"))
        .ok_or_else(|| format!("unknown fixture {}", case.get("fixture")))?;

    // oomprof's metadata, as pprof reads it.
    let out = tc
        .command()
        .args(["tool", "pprof", "-comments"])
        .arg(&path)
        .output()
        .map_err(|e| format!("go tool pprof -comments: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "go tool pprof -comments {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let comments = String::from_utf8_lossy(&out.stdout).into_owned();
    let want_reason = if kind == "killed" { "killed" } else { "oom" };
    let reason = comments
        .lines()
        .find_map(|l| field(l, "reason="))
        .unwrap_or("-");
    if reason != want_reason {
        return Err(format!("reason={reason}, want {want_reason}"));
    }
    let cg_line = comments
        .lines()
        .find_map(|l| l.trim().strip_prefix("cgroup: "))
        .ok_or("no cgroup comment")?;
    let want_cg = case.get("cgroup");
    let cg_ok = if cgroup == "v2" {
        cg_line == format!("0::{want_cg}")
    } else {
        cg_line
            .split(':')
            .nth(1)
            .is_some_and(|c| c.split(',').any(|c| c == "memory"))
            && cg_line.ends_with(&format!(":{want_cg}"))
    };
    if !cg_ok {
        return Err(format!(
            "cgroup comment {cg_line:?}, want {want_cg} ({cgroup})"
        ));
    }
    let capture = comments
        .lines()
        .find_map(|l| l.trim().strip_prefix("capture: "))
        .unwrap_or("-");
    if !capture.starts_with("complete") {
        return Err(format!("capture: {capture}"));
    }

    // The values, as pprof reads them.
    let raw = tc.pprof_raw(bin, &path)?;
    let raw = RawProfile::parse(&raw)?;
    let want = [
        "alloc_objects",
        "alloc_space",
        "inuse_objects",
        "inuse_space",
        oom_core::pprof::RECENT_OBJECTS,
        oom_core::pprof::RECENT_SPACE,
    ];
    if raw.sample_types != want {
        return Err(format!("sample types {:?}", raw.sample_types));
    }
    let inuse = raw.total("inuse_space");
    let mut detail = format!("reason={reason}, {cg_line}, {capture}");
    if kind != "killed" {
        let limit: i64 = case.get("limit").parse().unwrap_or(0);
        // MemProfileRate is 1 in the guest: totals are counts, not estimates.
        if inuse < 0 || inuse > limit {
            return Err(format!(
                "in-use {inuse} B outside 0..={limit} B (the cgroup limit): garbage counted"
            ));
        }
        if inuse < 1 << 20 {
            return Err(format!("in-use {inuse} B: the kept chunks are missing"));
        }
        match raw.top_function("inuse_space") {
            Some((f, _)) if f == "main.allocChunk" => {}
            other => {
                return Err(format!(
                    "top in-use function {other:?}, want main.allocChunk"
                ))
            }
        }
        detail = format!(
            "{detail}; in-use {:.1} of {:.0} MiB, top main.allocChunk",
            inuse as f64 / 1048576.0,
            limit as f64 / 1048576.0
        );
    }
    if let Some(l) = wrote_line(log, case.get("pid")) {
        if let (Some(w), Some(after)) = (field(l, "walk="), field(l, "written=")) {
            detail = format!("{detail}; walk {w}, file {after}");
        }
    }
    Ok(detail)
}

/// The guest kernel's own complaints on the console: a BUG, an oops, a soft lockup,
/// an RCU stall or a WARNING while oomprof ran fail the run. (The OOM killer's report
/// has a call trace too; it is not a complaint.)
pub fn kernel_health(console: &str) -> Verdict {
    const SIGNS: [&str; 6] = [
        "BUG:",
        "Oops",
        "soft lockup",
        "self-detected stall",
        "rcu_sched detected stall",
        "WARNING: CPU:",
    ];
    let bad: Vec<&str> = console
        .lines()
        .filter(|l| SIGNS.iter().any(|s| l.contains(s)))
        .take(3)
        .collect();
    Verdict::new(
        "kernel log",
        if bad.is_empty() {
            Ok("no BUG, oops, lockup, stall or WARNING".into())
        } else {
            Err(bad.join(" | "))
        },
    )
}

/// The OOM event log's line for an OOM case: its constraint, the memory that filled a
/// cgroup, and the link to the case's profile. (A kill -9 has no event: not an OOM.)
fn event(case: &Case, report: &Report, detail: String) -> Result<String, String> {
    let kind = case.get("kind");
    if kind == "killed" {
        return Ok(detail);
    }
    let log = report
        .files
        .get("oomprof-events.jsonl")
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .unwrap_or_default();
    let pid = case.get("pid");
    let key = format!("\"pid\":{pid},");
    let line = log
        .lines()
        .find(|l| l.contains(&key))
        .ok_or_else(|| format!("{detail}; NO OOM EVENT for pid {pid}"))?;
    let want = if kind == "global" {
        "CONSTRAINT_NONE"
    } else {
        "CONSTRAINT_MEMCG"
    };
    if !line.contains(&format!("\"constraint\":\"{want}\"")) {
        return Err(format!("{detail}; event constraint is not {want}: {line}"));
    }
    if kind == "oom" && !line.contains("\"dominant\":\"anon\"") {
        return Err(format!("{detail}; event does not name anon memory: {line}"));
    }
    if !line.contains(&format!("\"profile\":\"{}\"", case.get("profile"))) {
        return Err(format!("{detail}; event does not name the profile: {line}"));
    }
    Ok(format!("{detail}; event {want} linked"))
}

/// A pre-OOM case (cgroup v2): a profile of the trigger the case's daemon ran with was
/// written while the process still ran, before the OOM kill (judged by `victim`);
/// `go tool pprof` reads it (reason=pressure, the trigger and cgroup named, in-use
/// within the limit, the leak on top); the OOM event names it, with the seconds
/// before the kill.
fn preoom(
    case: &Case,
    report: &Report,
    dir: &Path,
    tc: &Toolchain,
    fx: &Fixtures,
    detail: String,
) -> Result<String, String> {
    let name = case.get("preoom");
    if name == "none" || name.is_empty() {
        return Err(format!(
            "{detail}; NO pre-OOM profile while the process ran (trigger {})",
            case.get("trigger")
        ));
    }
    let (pre_s, kill_s): (f64, f64) =
        match (case.get("preoom_s").parse(), case.get("kill_s").parse()) {
            (Ok(p), Ok(k)) => (p, k),
            _ => {
                return Err(format!(
                    "{detail}; times {} and {}",
                    case.get("preoom_s"),
                    case.get("kill_s")
                ))
            }
        };
    if pre_s >= kill_s {
        return Err(format!(
            "{detail}; pre-OOM profile at {pre_s} s, not before the kill at {kill_s} s"
        ));
    }
    let path = dir.join(name);
    if !path.exists() {
        return Err(format!("{detail}; {name} reported but not shipped"));
    }
    let out = tc
        .command()
        .args(["tool", "pprof", "-comments"])
        .arg(&path)
        .output()
        .map_err(|e| format!("go tool pprof -comments: {e}"))?;
    let comments = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "go tool pprof -comments {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let pid = case.get("pid");
    if !comments.contains(&format!("reason=pressure pid={pid} ")) {
        return Err(format!(
            "{name}: not a pressure profile of {pid}: {comments}"
        ));
    }
    let note = comments
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("pressure: "))
        .ok_or_else(|| format!("{name}: no pressure comment"))?;
    let want = format!(
        "pressure: trigger={} cgroup={} ",
        case.get("trigger"),
        case.get("cgroup")
    );
    if !note.starts_with(&want) {
        return Err(format!("{name}: {note:?}, want it to start {want:?}"));
    }
    let bin = fx
        .binary(case.get("fixture"))
        .ok_or_else(|| format!("unknown fixture {}", case.get("fixture")))?;
    let raw = RawProfile::parse(&tc.pprof_raw(bin, &path)?)?;
    let inuse = raw.total("inuse_space");
    let limit: i64 = case.get("limit").parse().unwrap_or(0);
    if !(1..=limit).contains(&inuse) {
        return Err(format!("{name}: in-use {inuse} B outside 1..={limit} B"));
    }
    match raw.top_function("inuse_space") {
        Some((f, _)) if f == "main.allocChunk" => {}
        other => {
            return Err(format!(
                "{name}: top in-use function {other:?}, want main.allocChunk"
            ))
        }
    }
    let events = report
        .files
        .get(case.get("events"))
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .unwrap_or_default();
    let key = format!("\"pid\":{pid},");
    let line = events
        .lines()
        .find(|l| l.contains(&key))
        .ok_or_else(|| format!("{detail}; NO OOM EVENT for pid {pid}"))?;
    let ev: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("{line}: {e}"))?;
    let pre = &ev["preoom"];
    if pre["profile"].as_str() != Some(name) || pre["linked_by"] != "pid" {
        return Err(format!("the OOM event does not name {name}: {line}"));
    }
    let secs = pre["seconds_before_kill"].as_f64().unwrap_or(-1.0);
    // The guest saw the file at pre_s (polling every 0.1 s) and the kill by kill_s.
    if secs <= 0.0 || secs > kill_s - pre_s + 1.0 {
        return Err(format!(
            "the event says {secs} s before the kill; the guest saw {:.1} s: {line}",
            kill_s - pre_s
        ));
    }
    Ok(format!(
        "{detail}; pre-OOM {} profile {:.1} s before the kill (event: {secs} s), in-use {:.1} MiB, top main.allocChunk",
        case.get("trigger"),
        kill_s - pre_s,
        inuse as f64 / 1048576.0
    ))
}
