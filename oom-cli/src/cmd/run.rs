//! `oomprof run` (the default): watch every Go process and write a profile for every
//! OOM kill.

use argh::FromArgs;

/// watch Go processes and write a heap profile for every OOM kill (the default command)
#[derive(FromArgs, Debug, Default)]
#[argh(subcommand, name = "run")]
pub struct RunArgs {
    /// directory for profiles (default: current directory)
    #[argh(option)]
    pub dir: Option<String>,
}

impl RunArgs {
    /// Defaults, with the top-level `--dir`.
    pub fn with_dir(dir: Option<String>) -> Self {
        Self { dir }
    }
}

/// Runs the daemon.
pub fn run(_args: RunArgs, _debug: bool) -> anyhow::Result<()> {
    anyhow::bail!("run: not implemented yet")
}

/// Days since 1970-01-01 → (year, month, day), and seconds → time of day: UTC calendar
/// fields of a Unix timestamp (proleptic Gregorian; Howard Hinnant's days algorithm).
pub fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, tod / 3600, tod / 60 % 60, tod % 60)
}

#[cfg(test)]
mod tests {
    use super::civil;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(civil(1_795_310_760), (2026, 11, 22, 1, 26, 0));
        assert_eq!(civil(-1), (1969, 12, 31, 23, 59, 59));
    }
}
