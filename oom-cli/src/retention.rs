//! What the profile directory keeps (`--max-files`, `--max-bytes`, `--max-age`), and
//! the debounce of repeated kills of one container or binary (`--debounce`).
//!
//! Pruning removes only files this daemon's naming produces (`*.pb.gz`, not hidden:
//! temporaries start with a dot), oldest first by modification time, and never the
//! profile just written. Each removal is logged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Limits on the profile directory; `None`: no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Most profiles kept.
    pub max_files: Option<usize>,
    /// Most bytes of profiles kept.
    pub max_bytes: Option<u64>,
    /// Profiles older than this are removed.
    pub max_age: Option<Duration>,
}

impl Retention {
    /// True when any limit is set.
    pub fn is_set(&self) -> bool {
        self.max_files.is_some() || self.max_bytes.is_some() || self.max_age.is_some()
    }

    /// Removes what the limits exclude from `dir`, never `keep`; returns the removed
    /// paths. Unreadable entries are skipped, a failed removal is logged.
    pub fn prune(&self, dir: &Path, keep: Option<&Path>, now: SystemTime) -> Vec<PathBuf> {
        if !self.is_set() {
            return Vec::new();
        }
        let Ok(rd) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        // (mtime, size, path) of our profiles, oldest first.
        let mut files: Vec<(SystemTime, u64, PathBuf)> = rd
            .flatten()
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.ends_with(".pb.gz") && !n.starts_with('.')
            })
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                m.is_file().then(|| {
                    (
                        m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                        m.len(),
                        e.path(),
                    )
                })
            })
            .collect();
        files.sort();
        let mut count = files.len();
        let mut bytes: u64 = files.iter().map(|f| f.1).sum();
        let mut removed = Vec::new();
        for (mtime, size, path) in files {
            if Some(path.as_path()) == keep {
                continue;
            }
            let too_old = self
                .max_age
                .is_some_and(|a| now.duration_since(mtime).unwrap_or_default() > a);
            let too_many = self.max_files.is_some_and(|m| count > m);
            let too_big = self.max_bytes.is_some_and(|m| bytes > m);
            if !(too_old || too_many || too_big) {
                // Sorted oldest first: nothing newer is too old, and the counts only
                // shrink as we go, so the rest stays.
                break;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    count -= 1;
                    bytes = bytes.saturating_sub(size);
                    removed.push(path);
                }
                Err(e) => log::warn!("retention: removing {}: {e}", path.display()),
            }
        }
        removed
    }
}

/// Suppresses profiles of repeated kills of one key (a container id, else the
/// executable) within a window: the first kill of a burst is written, the rest are
/// counted and logged, and the next one after the window says how many were skipped.
#[derive(Debug)]
pub struct Debounce {
    window: Duration,
    last: HashMap<String, (Instant, u64)>,
}

/// Keys remembered; the oldest half is forgotten beyond this.
const MAX_KEYS: usize = 4096;

impl Debounce {
    /// A debounce of `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            last: HashMap::new(),
        }
    }

    /// Whether a kill of `key` at `now` is written. `Ok(skipped)`: write it, after
    /// `skipped` suppressed ones; `Err(n)`: suppress it, the `n`th within the window.
    pub fn admit(&mut self, key: &str, now: Instant) -> Result<u64, u64> {
        if self.last.len() >= MAX_KEYS && !self.last.contains_key(key) {
            let mut by_age: Vec<(Instant, String)> = self
                .last
                .iter()
                .map(|(k, (t, _))| (*t, k.clone()))
                .collect();
            by_age.sort();
            for (_, k) in by_age.into_iter().take(MAX_KEYS / 2) {
                self.last.remove(&k);
            }
        }
        match self.last.get_mut(key) {
            Some((at, skipped)) if now.duration_since(*at) < self.window => {
                *skipped += 1;
                Err(*skipped)
            }
            Some((at, skipped)) => {
                let n = *skipped;
                *at = now;
                *skipped = 0;
                Ok(n)
            }
            None => {
                self.last.insert(key.to_string(), (now, 0));
                Ok(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("oomprof-ret-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Files a..e, 100 bytes each, a the oldest (mtimes a minute apart).
    fn fill(d: &Path) -> SystemTime {
        let base = SystemTime::now() - Duration::from_secs(3600);
        for (i, n) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            let p = d.join(format!("{n}.pb.gz"));
            std::fs::write(&p, [0u8; 100]).unwrap();
            let f = std::fs::File::options().write(true).open(&p).unwrap();
            f.set_modified(base + Duration::from_secs(60 * i as u64))
                .unwrap();
        }
        // Not ours: never touched.
        std::fs::write(d.join("notes.txt"), "x").unwrap();
        std::fs::write(d.join(".e.pb.gz.123.tmp"), "x").unwrap();
        base
    }

    fn left(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn prunes_oldest_first_to_each_limit() {
        let d = dir("files");
        fill(&d);
        let r = Retention {
            max_files: Some(3),
            ..Retention::default()
        };
        assert_eq!(r.prune(&d, None, SystemTime::now()).len(), 2);
        assert_eq!(
            left(&d),
            [
                ".e.pb.gz.123.tmp",
                "c.pb.gz",
                "d.pb.gz",
                "e.pb.gz",
                "notes.txt"
            ]
        );

        let d = dir("bytes");
        fill(&d);
        let r = Retention {
            max_bytes: Some(250),
            ..Retention::default()
        };
        r.prune(&d, None, SystemTime::now());
        assert_eq!(
            left(&d),
            [".e.pb.gz.123.tmp", "d.pb.gz", "e.pb.gz", "notes.txt"]
        );

        let d = dir("age");
        let base = fill(&d);
        let r = Retention {
            max_age: Some(Duration::from_secs(150)),
            ..Retention::default()
        };
        // At base + 4 min: a (4 min old), b (3) are older than 150 s; c (2) is not.
        r.prune(&d, None, base + Duration::from_secs(240));
        assert_eq!(
            left(&d),
            [
                ".e.pb.gz.123.tmp",
                "c.pb.gz",
                "d.pb.gz",
                "e.pb.gz",
                "notes.txt"
            ]
        );
        for d in ["files", "bytes", "age"] {
            let _ = std::fs::remove_dir_all(dir(d));
        }
    }

    #[test]
    fn pre_oom_profiles_count_like_every_profile() {
        let d = dir("preoom");
        fill(&d);
        // Newer than a..e: the oldest go first, whichever kind they are.
        std::fs::write(d.join("x-1-20260101000000.preoom.pb.gz"), [0u8; 100]).unwrap();
        let r = Retention {
            max_files: Some(2),
            ..Retention::default()
        };
        assert_eq!(r.prune(&d, None, SystemTime::now()).len(), 4);
        assert_eq!(
            left(&d),
            [
                ".e.pb.gz.123.tmp",
                "e.pb.gz",
                "notes.txt",
                "x-1-20260101000000.preoom.pb.gz"
            ]
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn never_removes_the_profile_just_written() {
        let d = dir("keep");
        fill(&d);
        let r = Retention {
            max_files: Some(1),
            ..Retention::default()
        };
        let keep = d.join("a.pb.gz");
        r.prune(&d, Some(&keep), SystemTime::now());
        assert_eq!(left(&d), [".e.pb.gz.123.tmp", "a.pb.gz", "notes.txt"]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn debounce_writes_the_first_of_a_burst_and_counts_the_rest() {
        let mut db = Debounce::new(Duration::from_secs(60));
        let t = Instant::now();
        assert_eq!(db.admit("c1", t), Ok(0));
        assert_eq!(db.admit("c1", t + Duration::from_secs(1)), Err(1));
        assert_eq!(db.admit("c1", t + Duration::from_secs(2)), Err(2));
        assert_eq!(db.admit("c2", t + Duration::from_secs(2)), Ok(0));
        assert_eq!(db.admit("c1", t + Duration::from_secs(61)), Ok(2));
        assert_eq!(db.admit("c1", t + Duration::from_secs(62)), Err(1));
    }
}
