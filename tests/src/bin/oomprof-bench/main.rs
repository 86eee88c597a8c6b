//! `oomprof-bench`: every performance figure of issue 7 in one command.
//!
//! ```text
//! cargo run --release -p oom-tests --bin oomprof-bench -- [--smoke] [--json FILE]
//!     [--markdown FILE] [--oomprof PATH] [--static PATH] [--only 1,2,...]
//! ```
//!
//! Needs root (BPF, memory cgroups, other processes' memory) and a Go toolchain from
//! `tests/tools/go-matrix`; without them it says why and exits 0. It measures the real
//! release `oomprof` (built with cargo unless `--oomprof` names one), real Go fixtures,
//! real memory cgroups and real OOM kills, prints a table (median, min–max, runs, bar,
//! verdict) with the machine, and writes the same as JSON. `--smoke` takes few
//! iterations and a short idle period and judges nothing: CI runs it so the harness
//! cannot rot. Exit status 1 when a figure could not be measured because something
//! failed; bars never fail the run.

mod daemon;
mod figures;
mod growth;
mod report;

use std::path::{Path, PathBuf};
use std::process::Command;

use figures::Ctx;
use report::{Machine, Row};

struct Args {
    smoke: bool,
    json: Option<PathBuf>,
    markdown: Option<PathBuf>,
    oomprof: Option<PathBuf>,
    static_bin: Option<PathBuf>,
    only: Option<Vec<u32>>,
}

const USAGE: &str = "usage: oomprof-bench [--smoke] [--json FILE] [--markdown FILE] [--oomprof PATH] [--static PATH] [--only 1,2,...]";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        smoke: false,
        json: None,
        markdown: None,
        oomprof: None,
        static_bin: std::env::var_os("OOMPROF_STATIC_BIN").map(PathBuf::from),
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--smoke" => a.smoke = true,
            "--json" => a.json = Some(value("--json")?.into()),
            "--markdown" => a.markdown = Some(value("--markdown")?.into()),
            "--oomprof" => a.oomprof = Some(value("--oomprof")?.into()),
            "--static" => a.static_bin = Some(value("--static")?.into()),
            "--only" => {
                let v = value("--only")?;
                let figs = v
                    .split(',')
                    .map(|f| f.trim().parse::<u32>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| format!("--only {v}: want figure numbers like 1,5,10"))?;
                a.only = Some(figs);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(a)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| oom_tests::repo_root().join("target"))
}

/// `cargo build --release -p oom-cli [--target T]`; returns the binary.
fn cargo_build(target: Option<&str>) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(oom_tests::repo_root())
        .args(["build", "--release", "-p", "oom-cli"]);
    if let Some(t) = target {
        cmd.args(["--target", t]);
    }
    let st = cmd
        .status()
        .map_err(|e| format!("running cargo build: {e}"))?;
    if !st.success() {
        return Err(format!(
            "cargo build --release -p oom-cli{} failed: {st}",
            target.map(|t| format!(" --target {t}")).unwrap_or_default()
        ));
    }
    let mut p = target_dir();
    if let Some(t) = target {
        p.push(t);
    }
    p.push("release/oomprof");
    p.exists()
        .then_some(p.clone())
        .ok_or_else(|| format!("{} missing after the build", p.display()))
}

fn commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(oom_tests::repo_root())
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(c) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            format!("{c}{}", if dirty { "-dirty" } else { "" })
        }
        None => "unknown".into(),
    }
}

fn utc_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    out.unwrap_or_default()
}

type Figure = fn(&Ctx) -> Result<Vec<Row>, String>;

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("oomprof-bench: {e}");
            std::process::exit(2);
        }
    };
    if !oom_tests::privileged::is_root() {
        eprintln!(
            "SKIP oomprof-bench: needs root (BPF programs, memory cgroups, reading other processes' memory); nothing measured"
        );
        if oom_tests::privileged::required() {
            std::process::exit(1);
        }
        return;
    }
    let Some(go) = oom_tests::gomatrix::newest("oomprof-bench") else {
        return;
    };
    daemon::install_interrupt_handler();
    let oomprof = match args.oomprof.clone() {
        Some(p) => p,
        None => match cargo_build(None) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("oomprof-bench: {e} (or pass --oomprof PATH)");
                std::process::exit(1);
            }
        },
    };
    let static_bin =
        args.static_bin
            .clone()
            .or_else(|| match cargo_build(Some("x86_64-unknown-linux-musl")) {
                Ok(p) => Some(p),
                Err(e) => {
                    eprintln!("oomprof-bench: static binary: {e}");
                    None
                }
            });
    let tmp = std::env::temp_dir().join(format!("oomprof-bench-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&tmp) {
        eprintln!("oomprof-bench: creating {}: {e}", tmp.display());
        std::process::exit(1);
    }
    let mut machine = Machine::detect();
    machine.go = format!("Go {}", go.version);
    machine.oomprof = oomprof.display().to_string();
    machine.commit = commit();
    machine.date = utc_now();
    let cx = Ctx {
        oomprof,
        static_bin,
        go,
        smoke: args.smoke,
        tmp: tmp.clone(),
    };

    let figures: [(&[u32], &str, Figure); 10] = [
        (&[1, 8], "start/stop and kernel memory", figures::start_stop),
        (&[9], "binary size", figures::binary_size),
        (&[5], "on-demand dump", figures::dump),
        (&[4], "profile build throughput", figures::pipeline),
        (&[2, 3], "OOM kills and walks", figures::oom_kills),
        (&[6, 7], "discovery and idle cost", figures::idle),
        (&[10], "overhead", figures::overhead),
        (&[10], "exit storm", figures::exit_storm),
        (&[11], "growth sampling", growth::growth),
        (&[12], "OOM events", figures::events),
    ];
    let mut rows: Vec<Row> = Vec::new();
    let mut failed = false;
    for (nums, name, f) in figures {
        if let Some(only) = &args.only {
            if !nums.iter().any(|n| only.contains(n)) {
                continue;
            }
        }
        if daemon::check_interrupted().is_err() {
            break;
        }
        eprintln!("oomprof-bench: measuring {name} ...");
        let t = std::time::Instant::now();
        match f(&cx) {
            Ok(r) => rows.extend(r),
            Err(e) => {
                eprintln!("oomprof-bench: {name}: {e}");
                failed = true;
                rows.push(Row::missing(nums[0], name, "", e));
            }
        }
        eprintln!("oomprof-bench: {name} took {:.1?}", t.elapsed());
    }
    rows.sort_by_key(|r| r.figure);
    let _ = std::fs::remove_dir_all(&tmp);

    println!("{}", report::table(&machine, &rows, args.smoke));
    let write = |p: &Path, text: String| {
        if let Err(e) = std::fs::write(p, text) {
            eprintln!("oomprof-bench: writing {}: {e}", p.display());
            false
        } else {
            true
        }
    };
    if let Some(p) = &args.json {
        failed |= !write(p, report::json(&machine, &rows, args.smoke));
    }
    if let Some(p) = &args.markdown {
        failed |= !write(p, report::markdown(&rows, args.smoke));
    }
    if daemon::check_interrupted().is_err() {
        eprintln!("oomprof-bench: interrupted");
        std::process::exit(130);
    }
    if failed {
        std::process::exit(1);
    }
}
