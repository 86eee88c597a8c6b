//! The CLI's logger for the `log` facade: one line per record on stderr, with an
//! RFC 3339 UTC timestamp to the second and the level. `--debug` shows debug records
//! (discovery details).

use jiff::Timestamp;
use log::{Level, LevelFilter, Log, Metadata, Record};

/// A log line's timestamp: RFC 3339 in UTC, whole seconds (`2026-11-22T01:26:00Z`).
fn stamp(t: Timestamp) -> String {
    format!("{t:.0}")
}

struct Stderr {
    max: Level,
}

impl Log for Stderr {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= self.max
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        eprintln!("{} {:5} {}", stamp(Timestamp::now()), r.level(), r.args());
    }

    fn flush(&self) {}
}

/// Installs the logger: info and up, or debug and up with `debug`.
pub fn init(debug: bool) {
    let max = if debug { Level::Debug } else { Level::Info };
    if log::set_logger(Box::leak(Box::new(Stderr { max }))).is_ok() {
        log::set_max_level(if debug {
            LevelFilter::Debug
        } else {
            LevelFilter::Info
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_rfc3339_utc_seconds() {
        let t = Timestamp::new(1_795_310_760, 999_999_999).unwrap();
        assert_eq!(stamp(t), "2026-11-22T01:26:00Z");
        assert_eq!(stamp(Timestamp::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            stamp(Timestamp::new(-1, 0).unwrap()),
            "1969-12-31T23:59:59Z"
        );
    }
}
