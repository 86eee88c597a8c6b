//! The CLI's logger for the `log` facade: one line per record on stderr, with a UTC
//! timestamp and level. `--debug` shows debug records (discovery details).

use log::{Level, LevelFilter, Log, Metadata, Record};

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
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let (y, mo, d, h, mi, s) = crate::cmd::run::civil(now.as_secs() as i64);
        eprintln!(
            "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z {:5} {}",
            r.level(),
            r.args()
        );
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
