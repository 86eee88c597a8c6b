//! The per-binary analysis cache: 1,000 processes of one binary cost one analysis.
//!
//! Keyed by (device, inode, size, mtime) of the executable. Negative results (not Go,
//! unreadable Go) are cached too, so a busy host's shells and sidecars are looked at
//! once. Bounded: least recently used entries go first, by count and by mapped bytes.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::binary::{AnalyzeError, BinaryKey, GoBinary};

/// Default bound on cached binaries (Go and not).
pub const DEFAULT_MAX_ENTRIES: usize = 4096;
/// Default bound on the total size of mapped Go executables (address space; resident
/// memory is only the touched pages).
pub const DEFAULT_MAX_MAPPED: usize = 4 << 30;

type Entry = Result<Arc<GoBinary>, Arc<str>>;

/// A bounded, thread-safe cache of binary analyses.
#[derive(Debug)]
pub struct BinaryCache {
    inner: Mutex<Inner>,
    max_entries: usize,
    max_mapped: usize,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<BinaryKey, (Entry, u64)>,
    tick: u64,
    mapped: usize,
    analyses: u64,
}

impl Default for BinaryCache {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ENTRIES, DEFAULT_MAX_MAPPED)
    }
}

impl BinaryCache {
    /// A cache holding at most `max_entries` binaries and `max_mapped` mapped bytes.
    pub fn new(max_entries: usize, max_mapped: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_entries: max_entries.max(1),
            max_mapped,
        }
    }

    /// The analysis of the executable open as `file`, from the cache or made now.
    ///
    /// Returns the (possibly cached) reason when it is not a Go binary oomprof reads,
    /// or an I/O error if the file cannot be examined.
    pub fn get(&self, file: &File, path: &Path) -> Result<Arc<GoBinary>, Arc<str>> {
        let key = BinaryKey::of(file).map_err(|e| Arc::from(format!("{}: {e}", path.display())))?;
        {
            let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            g.tick += 1;
            let tick = g.tick;
            if let Some((e, used)) = g.map.get_mut(&key) {
                *used = tick;
                return e.clone();
            }
        }
        // Analyse without holding the lock: other lookups go on meanwhile.
        let entry: Entry = match GoBinary::analyze(file, path) {
            Ok(b) => Ok(Arc::new(b)),
            Err(AnalyzeError::Io { path, source }) => {
                // Not cached: the next attempt may succeed.
                return Err(Arc::from(format!("{}: {source}", path.display())));
            }
            Err(e) => Err(Arc::from(e.to_string())),
        };
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.analyses += 1;
        g.tick += 1;
        let tick = g.tick;
        if let Ok(b) = &entry {
            g.mapped += b.mapped_len();
        }
        if let Some((Ok(old), _)) = g.map.insert(key, (entry.clone(), tick)) {
            g.mapped = g.mapped.saturating_sub(old.mapped_len());
        }
        while g.map.len() > self.max_entries || (g.mapped > self.max_mapped && g.map.len() > 1) {
            let Some(victim) = g
                .map
                .iter()
                .filter(|(k, _)| **k != key)
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            if let Some((Ok(b), _)) = g.map.remove(&victim) {
                g.mapped = g.mapped.saturating_sub(b.mapped_len());
            }
        }
        entry
    }

    /// The cached reason the executable with `key` is not a Go program oomprof reads,
    /// if it was examined before; `None` for Go programs and unknown files.
    pub fn rejected(&self, key: &BinaryKey) -> Option<Arc<str>> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.tick += 1;
        let tick = g.tick;
        match g.map.get_mut(key) {
            Some((Err(why), used)) => {
                *used = tick;
                Some(why.clone())
            }
            _ => None,
        }
    }

    /// How many analyses ran (cache misses) since creation.
    pub fn analyses(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .analyses
    }

    /// Number of cached entries.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files that are not Go programs: their negative verdicts are cached like
    /// analyses, each under its own (dev, inode) key.
    fn files(test: &str, n: usize) -> (std::path::PathBuf, Vec<std::path::PathBuf>) {
        let dir = std::env::temp_dir().join(format!("oomprof-cache-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let paths = (0..n)
            .map(|i| {
                let p = dir.join(format!("f{i}"));
                std::fs::write(&p, format!("not an ELF file {i}")).unwrap();
                p
            })
            .collect();
        (dir, paths)
    }

    fn get(c: &BinaryCache, p: &Path) -> Result<Arc<GoBinary>, Arc<str>> {
        c.get(&File::open(p).unwrap(), p)
    }

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let (dir, f) = files("lru", 3);
        let c = BinaryCache::new(2, DEFAULT_MAX_MAPPED);
        assert!(get(&c, &f[0]).unwrap_err().contains("not a 64-bit"));
        get(&c, &f[1]).unwrap_err();
        assert_eq!((c.len(), c.analyses()), (2, 2));
        // A hit refreshes f0; f2 then pushes out f1, the least recently used.
        get(&c, &f[0]).unwrap_err();
        assert_eq!(c.analyses(), 2, "a cached verdict is not analysed again");
        get(&c, &f[2]).unwrap_err();
        assert_eq!((c.len(), c.analyses()), (2, 3));
        get(&c, &f[0]).unwrap_err();
        assert_eq!(c.analyses(), 3, "f0 stayed");
        get(&c, &f[1]).unwrap_err();
        assert_eq!(c.analyses(), 4, "f1 was evicted");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_rewritten_file_is_analysed_again() {
        let (dir, f) = files("rewritten", 1);
        let c = BinaryCache::default();
        get(&c, &f[0]).unwrap_err();
        // Same inode, new size and mtime: another key.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&f[0], "a longer text, still not an ELF file").unwrap();
        get(&c, &f[0]).unwrap_err();
        assert_eq!(c.analyses(), 2);
        let _ = std::fs::remove_dir_all(dir);
    }
}
