//! `oomprof events`: the OOM event log, one readable line per kill.

use std::path::PathBuf;

use argh::FromArgs;

use crate::events;

/// print the OOM event log (every OOM kill of any process), one line per kill
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "events",
    example = "{command_name} --dir /var/lib/oomprof --since 1h"
)]
pub struct EventsArgs {
    /// the profile directory holding oomprof-events.jsonl (default: the current directory)
    #[argh(option)]
    pub dir: Option<String>,
    /// the event log itself (overrides --dir)
    #[argh(option)]
    pub file: Option<String>,
    /// only events of the last DURATION (e.g. 30m, 12h, 7d) or since an RFC 3339 time
    #[argh(option)]
    pub since: Option<String>,
}

/// Runs `events`.
pub fn run(args: EventsArgs) -> anyhow::Result<()> {
    let path = match (&args.file, &args.dir) {
        (Some(f), _) => PathBuf::from(f),
        (None, d) => PathBuf::from(d.as_deref().unwrap_or(".")).join(events::FILE_NAME),
    };
    let since = match &args.since {
        None => None,
        Some(s) => Some(match s.parse::<jiff::Timestamp>() {
            Ok(t) => t,
            Err(_) => match super::run::parse_duration(s) {
                Some(d) => jiff::Timestamp::now()
                    .checked_sub(jiff::SignedDuration::try_from(d)?)
                    .unwrap_or(jiff::Timestamp::MIN),
                None => {
                    return super::usage(format!(
                        "--since {s}: want a duration (30m, 12h, 7d) or an RFC 3339 time"
                    ))
                }
            },
        }),
    };
    events::print(&path, since)?;
    Ok(())
}
