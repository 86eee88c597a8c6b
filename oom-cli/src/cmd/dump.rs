//! `oomprof dump PID...` (and the Go original's `-p PID,PID`): on-demand profiles,
//! read from the processes' memory without signalling them.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use argh::FromArgs;
use oom_loader::cache::BinaryCache;
use oom_loader::ondemand::{profile_pid, OnDemandOptions};

use crate::output;

/// profile running Go processes now, without signalling them
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "dump")]
pub struct DumpArgs {
    /// directory for profiles (default: current directory)
    #[argh(option)]
    pub dir: Option<String>,
    /// write the profile to this new file instead (mode 0600; an existing file is an error, never replaced), or "-" for stdout; one PID only
    #[argh(option, short = 'o')]
    pub output: Option<String>,
    /// process ids
    #[argh(positional)]
    pub pids: Vec<String>,
}

fn parse_pids<'a>(items: impl IntoIterator<Item = &'a str>) -> anyhow::Result<Vec<i32>> {
    let mut pids = Vec::new();
    for p in items {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        match p.parse::<i32>() {
            Ok(n) if n > 0 => pids.push(n),
            _ => return super::usage(format!("{p:?} is not a process id")),
        }
    }
    if pids.is_empty() {
        return super::usage("no process id given");
    }
    Ok(pids)
}

/// Runs `dump`.
pub fn run(args: DumpArgs) -> anyhow::Result<()> {
    let pids = parse_pids(args.pids.iter().map(String::as_str))?;
    if args.output.is_some() && pids.len() != 1 {
        return super::usage("-o takes exactly one process id");
    }
    dump(&pids, args.dir, args.output)
}

/// `oomprof -p 1234,5678 [--dir D]`.
pub fn from_compat(pids: &str, dir: Option<String>) -> anyhow::Result<()> {
    let pids = parse_pids(pids.split(','))?;
    dump(&pids, dir, None)
}

fn dump(pids: &[i32], dir: Option<String>, out: Option<String>) -> anyhow::Result<()> {
    let dir = PathBuf::from(dir.as_deref().unwrap_or("."));
    if out.is_none() {
        output::check_dir(&dir)?;
    }
    let cache = BinaryCache::default();
    let opts = OnDemandOptions::default();
    let mut failed = 0;
    for &pid in pids {
        let p = match profile_pid(pid, &opts, Some(&cache)) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("oomprof: {e}");
                failed += 1;
                continue;
            }
        };
        match out.as_deref() {
            Some("-") => {
                let mut so = std::io::stdout().lock();
                so.write_all(&p.pprof_gz)
                    .and_then(|()| so.flush())
                    .context("writing the profile to stdout")?;
            }
            Some(file) => {
                output::write_file(file.as_ref(), &p.pprof_gz)?;
                crate::cmd::run::log_profile(&p, file.as_ref(), false);
            }
            None => {
                let base = crate::cmd::run::name_of(&p);
                match output::write_profile(&dir, &base, &p.pprof_gz) {
                    Ok(path) => crate::cmd::run::log_profile(&p, &path, false),
                    Err(e) => {
                        eprintln!("oomprof: pid {pid}: {e:#}");
                        failed += 1;
                    }
                }
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} profiles failed", pids.len());
    }
    Ok(())
}
