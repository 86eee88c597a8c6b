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
