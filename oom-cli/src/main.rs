//! `oomprof`: heap profiles of Go processes killed by the OOM killer, and of running
//! Go processes on demand.
//!
//! Thin by design: argh structs → a validated config → oom-loader → files and exit
//! codes (0 ok, 1 runtime error, 2 usage). One file per subcommand under `cmd/`; the
//! pprof reader is in the `oom_cli` library (fuzzed).
#![forbid(unsafe_code)]

mod cmd;
mod config;
mod events;
mod logger;
mod metrics;
mod output;
#[cfg(test)]
mod pprof_fixture;
mod preoom;
mod report;
mod retention;

use argh::FromArgs;

/// oomprof: heap profiles of OOM-killed Go processes (and of running ones, on demand).
#[derive(FromArgs, Debug)]
struct Cli {
    /// verbose output: discovery details, verifier logs
    #[argh(switch)]
    debug: bool,

    /// profile these PIDs now (comma-separated) and exit, like the Go original's -p; not with a subcommand (use `dump PID...`)
    #[argh(option, short = 'p')]
    pids: Option<String>,

    /// directory for profiles (default: current directory); with a subcommand, give it after the subcommand
    #[argh(option)]
    dir: Option<String>,

    #[argh(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once at start; the run command's flags are the bulk, and boxing them is not argh's way"
)]
enum Cmd {
    Run(cmd::run::RunArgs),
    Dump(cmd::dump::DumpArgs),
    Top(cmd::top::TopArgs),
    Flame(cmd::flame::FlameArgs),
    Check(cmd::check::CheckArgs),
    Events(cmd::events::EventsArgs),
    Growth(cmd::growth::GrowthArgs),
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.first().map(String::as_str).unwrap_or("oomprof");
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let cli = match Cli::from_args(&[name], &rest) {
        Ok(c) => c,
        Err(early) => {
            // --help prints to stdout and succeeds; a usage error exits 2.
            match early.status {
                Ok(()) => {
                    println!("{}", early.output);
                    std::process::exit(0)
                }
                Err(()) => {
                    // argh's messages can span lines; errors here are one line.
                    let msg: Vec<&str> = early
                        .output
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .collect();
                    eprintln!("oomprof: {} (see --help)", msg.join(" "));
                    std::process::exit(2)
                }
            }
        }
    };
    logger::init(cli.debug);
    if let Err(e) = dispatch(cli) {
        match e.downcast_ref::<cmd::UsageError>() {
            Some(u) => {
                eprintln!("oomprof: {u}");
                std::process::exit(2)
            }
            None => {
                eprintln!("oomprof: {e:#}");
                std::process::exit(1)
            }
        }
    }
}

/// Runs the subcommand, or the Go original's forms (`oomprof [--dir D]`,
/// `oomprof -p PIDS [--dir D]`) without one.
///
/// Returns a usage error if a top-level `--dir` or `-p` comes with a subcommand, which
/// would not see it (`oomprof --dir /x dump 1` used to write to the current directory).
fn dispatch(cli: Cli) -> anyhow::Result<()> {
    if let Some(c) = &cli.cmd {
        let name = match c {
            Cmd::Run(_) => "run",
            Cmd::Dump(_) => "dump",
            Cmd::Top(_) => "top",
            Cmd::Flame(_) => "flame",
            Cmd::Check(_) => "check",
            Cmd::Events(_) => "events",
            Cmd::Growth(_) => "growth",
        };
        if cli.pids.is_some() {
            return cmd::usage(format!(
                "-p is a command of its own, not an option of {name}: use `oomprof -p PIDS` or `oomprof dump PID...`"
            ));
        }
        if cli.dir.is_some() {
            return match c {
                Cmd::Run(_) | Cmd::Dump(_) => cmd::usage(format!(
                    "--dir goes after the subcommand: `oomprof {name} --dir D ...`"
                )),
                _ => cmd::usage(format!("{name} has no --dir")),
            };
        }
    }
    match cli.cmd {
        Some(Cmd::Run(a)) => cmd::run::run(a, cli.debug),
        Some(Cmd::Dump(a)) => cmd::dump::run(a),
        Some(Cmd::Top(a)) => cmd::top::run(a),
        Some(Cmd::Flame(a)) => cmd::flame::run(a),
        Some(Cmd::Check(a)) => cmd::check::run(a),
        Some(Cmd::Events(a)) => cmd::events::run(a),
        Some(Cmd::Growth(a)) => cmd::growth::run(a),
        None => match cli.pids {
            Some(p) => cmd::dump::from_compat(&p, cli.dir),
            None => cmd::run::run(cmd::run::RunArgs::with_dir(cli.dir), cli.debug),
        },
    }
}
