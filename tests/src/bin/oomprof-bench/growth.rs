//! 11: the growth sampler (`oomprof growth`, issue 18): the cost of sampling on a
//! page-fault-heavy workload, with and without sampling in one run, and the kernel
//! memory its maps take at the defaults.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oom_tests::process::Running;

use crate::figures::Ctx;
use crate::report::Row;

/// Builds tests/c/faulter.c into `dir`.
fn faulter(dir: &Path) -> Result<PathBuf, String> {
    let src = oom_tests::repo_root().join("tests/c/faulter.c");
    let out = dir.join("faulter");
    let st = Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .map_err(|e| format!("running gcc: {e}"))?;
    if !st.success() {
        return Err(format!("gcc {} failed: {st}", src.display()));
    }
    Ok(out)
}

/// One run of the faulter, sampled by `oomprof growth` when `sampled`: its own timing
/// of the work, and the sampler's kernel memory (KiB) when sampled.
fn run(
    cx: &Ctx,
    bin: &Path,
    rounds: u32,
    sampled: bool,
) -> Result<(Duration, Option<u64>), String> {
    let mut p = Running::spawn(Command::new(bin).arg(rounds.to_string()))?;
    p.wait_line("ready", Duration::from_secs(10))?;
    let mut sampler = None;
    let mut kib = None;
    if sampled {
        let log = cx.tmp.join(format!("growth-{}.log", p.pid()));
        let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let child = Command::new(&cx.oomprof)
            .args(["growth", &p.pid().to_string(), "--duration", "1h", "--dir"])
            .arg(&cx.tmp)
            .stderr(Stdio::from(file))
            .spawn()
            .map_err(|e| format!("spawning oomprof growth: {e}"))?;
        let mut child = Guard(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(l) = text.lines().find(|l| l.contains("sampling page faults")) {
                kib = l
                    .split('(')
                    .next_back()
                    .and_then(|s| s.split_whitespace().next())
                    .and_then(|n| n.parse().ok());
                break;
            }
            if Instant::now() > deadline || child.0.try_wait().ok().flatten().is_some() {
                return Err(format!("oomprof growth did not start: {text}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        sampler = Some(child);
    }
    p.send_line("go")?;
    let l = p.wait_line("elapsed_ns=", Duration::from_secs(300))?;
    p.wait_exit(Duration::from_secs(10))?;
    drop(sampler);
    let ns: u64 = l
        .trim_start_matches("elapsed_ns=")
        .trim()
        .parse()
        .map_err(|_| format!("bad faulter output {l:?}"))?;
    Ok((Duration::from_nanos(ns), kib))
}

/// Kills and reaps the sampler on drop (it runs until killed).
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// 11: sampling cost (ratio, ABBA pairs) and kernel memory at the defaults.
pub fn growth(cx: &Ctx) -> Result<Vec<Row>, String> {
    let bin = faulter(&cx.tmp)?;
    let rounds: u32 = if cx.smoke { 4 } else { 32 };
    let pairs = if cx.smoke { 2 } else { 8 };
    run(cx, &bin, rounds / 4, false)?;
    let (mut ratio, mut on, mut off, mut mem) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        let order = if i % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        let mut pair = [Duration::ZERO; 2];
        for with in order {
            let (d, kib) = run(cx, &bin, rounds, with)?;
            if let Some(k) = kib {
                mem.push(k as f64 / 1024.0);
            }
            pair[usize::from(!with)] = d;
        }
        ratio.push(pair[0].as_secs_f64() / pair[1].as_secs_f64());
        on.push(pair[0].as_secs_f64() * 1e3);
        off.push(pair[1].as_secs_f64() * 1e3);
    }
    let med = |v: &[f64]| crate::report::Stats::of(v).map_or(f64::NAN, |s| s.median);
    let faults = u64::from(rounds) * (64 << 20) / 4096;
    Ok(vec![
        Row::samples(11, "growth sampling: page faults, with/without", "ratio", &ratio)
            .bar(1.02, "≤ 1.02", None)
            .note(format!(
                "faulter {rounds} x (mmap 64 MiB, touch every page, munmap) = {faults} faults, sampled 1 in 64 by `oomprof growth PID` (every CPU's page-fault event, filtered to the pid in BPF); per-pair ratio, ABBA; median {:.0} ms with, {:.0} ms without",
                med(&on),
                med(&off)
            )),
        Row::samples(11, "growth sampling: kernel memory at defaults", "MiB", &mem).note(
            "memlock of the growth maps (4096-stack hash map, per-CPU staging value, .rodata, .bss) as `oomprof growth` reports it",
        ),
    ])
}
