//! `oomprof growth PID [--duration 30s] [-o FILE]`: which code makes a running
//! process's memory grow, from its page faults sampled in the kernel (any language;
//! stacks unwound by frame pointers).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use argh::FromArgs;
use oom_loader::growth::{Accumulator, GrowthConfig, Sampler};
use oom_loader::growth_profile::{self, GrowthMeta};
use oom_loader::{ondemand, procmaps};

use crate::output;

/// profile which code makes a running process's memory grow (sampled page faults)
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "growth")]
pub struct GrowthArgs {
    /// how long to sample, e.g. 30s or 500ms (default 30s; ends early if the process exits)
    #[argh(option, default = "String::from(\"30s\")")]
    pub duration: String,
    /// one sample per this many page faults (default 64)
    #[argh(option)]
    pub period: Option<u64>,
    /// directory for the profile (default: current directory)
    #[argh(option)]
    pub dir: Option<String>,
    /// write the profile to this new file instead (an existing file is an error, never replaced), or "-" for stdout
    #[argh(option, short = 'o')]
    pub output: Option<String>,
    /// process id
    #[argh(positional)]
    pub pid: String,
}

/// Runs `growth`.
pub fn run(args: GrowthArgs) -> anyhow::Result<()> {
    let pid = match args.pid.trim().parse::<i32>() {
        Ok(n) if n > 0 => n,
        _ => return super::usage(format!("{:?} is not a process id", args.pid)),
    };
    let duration = match super::run::parse_duration(&args.duration) {
        Some(d) if !d.is_zero() && d <= Duration::from_secs(24 * 3600) => d,
        _ => {
            return super::usage(format!(
                "--duration {}: want a duration of at most 24h, e.g. 30s",
                args.duration
            ))
        }
    };
    let period = args.period.unwrap_or(GrowthConfig::default().period);
    if period == 0 || period > oom_loader::growth::MAX_PERIOD {
        return super::usage(format!(
            "--period {period}: want 1..={}",
            oom_loader::growth::MAX_PERIOD
        ));
    }
    let dir = PathBuf::from(args.dir.as_deref().unwrap_or("."));
    if args.output.is_none() {
        output::check_dir(&dir)?;
    }
    let root = Path::new("/proc");
    let started =
        ondemand::start_time(root, pid).with_context(|| format!("pid {pid}: no such process"))?;
    let comm = ondemand::comm(root, pid);
    let exe = std::fs::read_link(root.join(pid.to_string()).join("exe")).unwrap_or_default();
    let mut maps = procmaps::read(root, pid)
        .with_context(|| format!("pid {pid}: reading /proc/{pid}/maps"))?;

    let sampler = Sampler::start(&GrowthConfig {
        period,
        tgid: pid as u32,
        ..GrowthConfig::default()
    })
    .context("starting the page-fault sampler")?;
    eprintln!(
        "oomprof: sampling page faults of pid {pid} ({comm}) 1 in {period} on {} CPUs for {:.1}s ({} KiB of kernel maps)",
        sampler.cpus(),
        duration.as_secs_f64(),
        sampler.kernel_memory() / 1024
    );
    let t0 = Instant::now();
    let alive = || ondemand::start_time(root, pid).ok() == Some(started);
    let mut acc = Accumulator::default();
    let mut drained = Instant::now();
    // Wake up to refresh the mappings (libraries loaded meanwhile), to see an exit, and
    // once a second to empty the kernel's bounded map before it fills.
    while t0.elapsed() < duration && alive() {
        std::thread::sleep((duration - t0.elapsed().min(duration)).min(Duration::from_millis(200)));
        if let Ok(m) = procmaps::read(root, pid) {
            if alive() {
                maps = m;
            }
        }
        if drained.elapsed() >= Duration::from_secs(1) {
            acc.add(sampler.drain().context("reading the sampled stacks")?);
            drained = Instant::now();
        }
    }
    let elapsed = t0.elapsed().min(duration);
    acc.add(sampler.drain().context("reading the sampled stacks")?);
    let counters = sampler
        .counters()
        .context("reading the sampler's counters")?;
    drop(sampler);
    let entries = acc.of(pid as u32);
    if !alive() {
        eprintln!(
            "oomprof: pid {pid} exited after {:.1}s; profiling what was sampled until then",
            elapsed.as_secs_f64()
        );
    }
    let meta = GrowthMeta {
        pid,
        comm: comm.clone(),
        exe,
        period,
        duration: elapsed,
        counters,
        time: SystemTime::now(),
    };
    let p = growth_profile::build(root, &entries, &maps, &meta);
    let summary = format!(
        "pid={pid} comm={comm} samples={} stacks={} faulted={:.1}MiB top={} not_unwound={}",
        p.samples,
        p.stacks,
        p.bytes as f64 / 1048576.0,
        p.top_function.as_deref().unwrap_or("-"),
        p.not_unwound_samples
    );
    match args.output.as_deref() {
        Some("-") => {
            let mut so = std::io::stdout().lock();
            so.write_all(&p.pprof_gz)
                .and_then(|()| so.flush())
                .context("writing the profile to stdout")?;
            eprintln!("oomprof: growth profile {summary}");
        }
        Some(file) => {
            output::write_file(file.as_ref(), &p.pprof_gz)?;
            eprintln!("oomprof: wrote growth profile {file} {summary}");
        }
        None => {
            let time = jiff::Timestamp::try_from(meta.time).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            let base = format!("{}.growth", output::base_name(&comm, pid, time));
            let path = output::write_profile(&dir, &base, &p.pprof_gz)?;
            eprintln!("oomprof: wrote growth profile {} {summary}", path.display());
        }
    }
    for c in p.comments.iter().skip(2) {
        eprintln!("oomprof: {c}");
    }
    if p.samples == 0 {
        eprintln!("oomprof: no page faults of pid {pid} were sampled (did its memory grow?)");
    }
    Ok(())
}
