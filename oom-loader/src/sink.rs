//! Delivering profiles off the node: a [`Sink`] (S3-compatible object storage,
//! [`crate::s3`]) behind a durable [`Spool`] and an [`Uploader`] thread.
//!
//! ```text
//! Profile ──ProfileInfo::of──▶ Spool::add (DIR/spool/: data + JSON sidecar, fsync'd,
//!     bounded, oldest dropped and reported) ──wake──▶ Uploader thread:
//!     Sink::put ──ok──▶ Spool::remove, Delivery::Uploaded
//!               ──err─▶ Delivery::Failed, retry with exponential backoff and jitter
//! restart ──Spool::open──▶ whatever was spooled is delivered (at least once)
//! ```
//!
//! The capture side only writes a local file ([`Spool::add`]): a slow or unreachable
//! endpoint never blocks it. The local directory itself (today's profile files) is
//! written by the CLI, unchanged.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::profile::Profile;

/// Who was killed and when: what a sink stores beside a profile's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileInfo {
    /// The profile's name in the local directory, without `.pb.gz`.
    pub name: String,
    /// The pod's namespace, when the runtime named it.
    pub namespace: Option<String>,
    /// The pod's name.
    pub pod: Option<String>,
    /// The container's name.
    pub container: Option<String>,
    /// The container id (64 hex digits), from the cgroup path.
    pub container_id: Option<String>,
    /// The pod UID.
    pub pod_uid: Option<String>,
    /// The victim's pid.
    pub pid: i32,
    /// The victim's command name.
    pub comm: String,
    /// Why it died (`oom`, `killed`).
    pub reason: String,
    /// When it was killed (wall clock).
    pub time: SystemTime,
}

impl ProfileInfo {
    /// The info of `p`, whose local name is `name`.
    pub fn of(p: &Profile, name: &str) -> Self {
        let a = p.meta.attribution.as_ref();
        let names = a.map(|a| &a.names);
        Self {
            name: name.to_string(),
            namespace: names.and_then(|n| n.namespace.clone()),
            pod: names.and_then(|n| n.pod.clone()),
            container: names.and_then(|n| n.container.clone()),
            container_id: a.and_then(|a| a.ids.container_id.clone()),
            pod_uid: a.and_then(|a| a.pod_uid().map(str::to_string)),
            pid: p.meta.pid,
            comm: p.meta.comm.clone(),
            reason: p.meta.reason.as_str().to_string(),
            time: p.meta.time,
        }
    }

    /// The spool's sidecar: one JSON object.
    pub fn to_json(&self) -> String {
        let ns = self
            .time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        json!({
            "name": self.name,
            "namespace": self.namespace,
            "pod": self.pod,
            "container": self.container,
            "container_id": self.container_id,
            "pod_uid": self.pod_uid,
            "pid": self.pid,
            "comm": self.comm,
            "reason": self.reason,
            "time_unix_ns": ns,
        })
        .to_string()
    }

    /// Reads a sidecar back.
    ///
    /// Returns an error naming what is missing or malformed.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let opt = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let need = |k: &str| opt(k).ok_or_else(|| format!("no {k:?}"));
        let pid = v
            .get("pid")
            .and_then(Value::as_i64)
            .and_then(|p| i32::try_from(p).ok())
            .ok_or("no \"pid\"")?;
        let ns = v
            .get("time_unix_ns")
            .and_then(Value::as_u64)
            .ok_or("no \"time_unix_ns\"")?;
        Ok(Self {
            name: need("name")?,
            namespace: opt("namespace"),
            pod: opt("pod"),
            container: opt("container"),
            container_id: opt("container_id"),
            pod_uid: opt("pod_uid"),
            pid,
            comm: need("comm")?,
            reason: need("reason")?,
            time: UNIX_EPOCH + Duration::from_nanos(ns),
        })
    }
}

/// Why a delivery failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The endpoint could not be reached or answered 5xx: every profile would fail
    /// alike, so the uploader pauses instead of trying the next one.
    Unreachable,
    /// The endpoint refused this request (4xx: credentials, permissions, bucket).
    Refused,
}

/// A failed delivery: one line saying what was tried and what came back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    /// E.g. `S3 PUT s3://b/k: 403 SignatureDoesNotMatch: …`.
    pub message: String,
    /// Whether to pause all uploads or only this one.
    pub kind: FailureKind,
}

/// Somewhere profiles are delivered to, one blocking call per profile.
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// The sink's name in metrics and logs (`s3`).
    fn name(&self) -> &'static str;

    /// Stores `data` (a gzipped pprof profile) described by `info`; returns where it
    /// went (`s3://bucket/key`).
    ///
    /// Returns an error if the store could not be reached or refused the profile.
    fn put(&self, info: &ProfileInfo, data: &[u8]) -> Result<String, SinkError>;
}

/// The spool's bounds; past either, the oldest waiting profiles are dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpoolLimits {
    /// Most profiles waiting.
    pub max_files: usize,
    /// Most bytes of profiles waiting.
    pub max_bytes: u64,
}

impl Default for SpoolLimits {
    fn default() -> Self {
        Self {
            max_files: 1000,
            max_bytes: 512 << 20,
        }
    }
}

/// One profile waiting in the spool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spooled {
    /// Its id (file stem): `{unix ns:020}-{pid}`, so ids sort by kill time.
    pub id: String,
    /// The profile's size in bytes.
    pub bytes: u64,
    /// What it is.
    pub info: ProfileInfo,
}

#[derive(Debug, Default)]
struct SpoolState {
    entries: BTreeMap<String, Spooled>,
    /// The entry the uploader is sending: never dropped under it.
    in_flight: Option<String>,
    dropped: u64,
}

/// Profiles waiting for a sink, on disk: `{id}.pb.gz` and its `{id}.json` sidecar.
///
/// The sidecar is written first and removed last, each through a synced temporary
/// file renamed into place, so a crash leaves either a whole entry or a lone sidecar
/// (removed at the next open: its data never became durable).
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    limits: SpoolLimits,
    state: Mutex<SpoolState>,
}

/// What [`Spool::open`] found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Profiles from before the restart, now waiting again.
    pub entries: usize,
    /// Files that were not a whole entry and were removed, with why.
    pub removed: Vec<(PathBuf, String)>,
}

impl Spool {
    /// Opens (creating, mode 0700) the spool directory `dir` and takes over what a
    /// previous run left in it.
    ///
    /// Returns an error if the directory cannot be created or read.
    pub fn open(dir: &Path, limits: SpoolLimits) -> io::Result<(Self, Recovered)> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut rec = Recovered::default();
        let mut entries = BTreeMap::new();
        let mut names: Vec<String> = fs::read_dir(dir)?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in &names {
            let path = dir.join(n);
            if n.starts_with('.') && n.ends_with(".tmp") {
                // A write a crash interrupted: never renamed into place.
                let _ = fs::remove_file(&path);
                rec.removed.push((path, "an interrupted write".to_string()));
                continue;
            }
            let Some(id) = n.strip_suffix(".json") else {
                continue;
            };
            let data = dir.join(format!("{id}.pb.gz"));
            let bytes = match fs::metadata(&data) {
                Ok(m) => m.len(),
                Err(_) => {
                    let _ = fs::remove_file(&path);
                    rec.removed
                        .push((path, "its profile was never written".to_string()));
                    continue;
                }
            };
            match fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| ProfileInfo::from_json(&t))
            {
                Ok(info) => {
                    entries.insert(
                        id.to_string(),
                        Spooled {
                            id: id.to_string(),
                            bytes,
                            info,
                        },
                    );
                }
                Err(e) => {
                    // Kept: the profile is still there for a person to look at.
                    rec.removed
                        .push((path, format!("unreadable sidecar ({e}); left in place")));
                }
            }
        }
        rec.entries = entries.len();
        Ok((
            Self {
                dir: dir.to_path_buf(),
                limits,
                state: Mutex::new(SpoolState {
                    entries,
                    ..SpoolState::default()
                }),
            },
            rec,
        ))
    }

    fn lock(&self) -> MutexGuard<'_, SpoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The spool's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a profile durably and enqueues it; returns its id and the entries
    /// dropped (oldest first) to stay within the limits.
    ///
    /// Returns an error (leaving nothing behind) if the files cannot be written, or if
    /// the profile alone is larger than the spool may hold.
    pub fn add(&self, info: &ProfileInfo, data: &[u8]) -> io::Result<(String, Vec<Spooled>)> {
        if data.len() as u64 > self.limits.max_bytes {
            return Err(io::Error::other(format!(
                "{} bytes: larger than the spool's limit of {} bytes",
                data.len(),
                self.limits.max_bytes
            )));
        }
        let ns = info
            .time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut st = self.lock();
        let mut id = format!("{ns:020}-{}", info.pid);
        let mut n = 1;
        while st.entries.contains_key(&id) || self.dir.join(format!("{id}.json")).exists() {
            id = format!("{ns:020}-{}-{n}", info.pid);
            n += 1;
        }
        let sidecar = self.dir.join(format!("{id}.json"));
        write_durably(&self.dir, &sidecar, info.to_json().as_bytes())?;
        if let Err(e) = write_durably(&self.dir, &self.dir.join(format!("{id}.pb.gz")), data) {
            let _ = fs::remove_file(&sidecar);
            return Err(e);
        }
        st.entries.insert(
            id.clone(),
            Spooled {
                id: id.clone(),
                bytes: data.len() as u64,
                info: info.clone(),
            },
        );
        let mut dropped = Vec::new();
        loop {
            let files = st.entries.len();
            let bytes: u64 = st.entries.values().map(|e| e.bytes).sum();
            if files <= self.limits.max_files && bytes <= self.limits.max_bytes {
                break;
            }
            let victim = st
                .entries
                .keys()
                .find(|k| **k != id && st.in_flight.as_ref() != Some(*k))
                .cloned();
            let Some(v) = victim else { break };
            if let Some(e) = st.entries.remove(&v) {
                self.remove_files(&v);
                st.dropped += 1;
                dropped.push(e);
            }
        }
        Ok((id, dropped))
    }

    /// What is waiting, oldest first.
    pub fn entries(&self) -> Vec<Spooled> {
        self.lock().entries.values().cloned().collect()
    }

    /// (profiles, bytes) waiting.
    pub fn usage(&self) -> (usize, u64) {
        let st = self.lock();
        (st.entries.len(), st.entries.values().map(|e| e.bytes).sum())
    }

    /// Profiles dropped so far to stay within the limits.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Marks `id` as being sent (it is not dropped meanwhile) and reads its bytes;
    /// `None` if it is gone (dropped).
    ///
    /// Returns an error if the file cannot be read.
    fn take(&self, id: &str) -> io::Result<Option<Vec<u8>>> {
        let mut st = self.lock();
        if !st.entries.contains_key(id) {
            return Ok(None);
        }
        st.in_flight = Some(id.to_string());
        drop(st);
        let r = fs::read(self.dir.join(format!("{id}.pb.gz")));
        if r.as_ref()
            .is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
        {
            // Removed behind our back: nothing left to send or to retry.
            let mut st = self.lock();
            st.in_flight = None;
            if st.entries.remove(id).is_some() {
                st.dropped += 1;
                self.remove_files(id);
            }
        }
        r.map(Some)
    }

    /// Ends what [`Self::take`] began: removes the entry if `delivered`.
    fn release(&self, id: &str, delivered: bool) {
        let mut st = self.lock();
        st.in_flight = None;
        if delivered && st.entries.remove(id).is_some() {
            self.remove_files(id);
        }
    }

    fn remove_files(&self, id: &str) {
        // Data first, sidecar last: a crash in between leaves a lone sidecar, which
        // the next open removes.
        for ext in ["pb.gz", "json"] {
            let p = self.dir.join(format!("{id}.{ext}"));
            if let Err(e) = fs::remove_file(&p) {
                if e.kind() != io::ErrorKind::NotFound {
                    log::warn!("spool: removing {}: {e}", p.display());
                }
            }
        }
        sync_dir(&self.dir);
    }
}

/// Writes `path` through a synced `.{name}.tmp` beside it, renamed into place, and
/// syncs the directory.
fn write_durably(dir: &Path, path: &Path, data: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let r = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r.map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))?;
    sync_dir(dir);
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// How the uploader retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first retry's delay.
    pub min: Duration,
    /// The longest delay (the doubling stops there).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            min: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The delay before attempt `failures + 1`: `min · 2^(failures-1)`, capped at
    /// `max`, then scaled by `jitter` in [0, 1] to between half and all of it.
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let base = self
            .min
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20))
            .min(self.max);
        base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

/// A uniformly random number in [0, 1) from the system's generator (0.5 if it fails).
fn jitter() -> f64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    match ring::rand::SystemRandom::new().fill(&mut b) {
        Ok(()) => (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

/// What the uploader did, for the caller's log and metrics.
#[derive(Debug)]
pub enum Delivery<'a> {
    /// Delivered and removed from the spool.
    Uploaded {
        /// The profile.
        info: &'a ProfileInfo,
        /// Where it went.
        location: &'a str,
        /// From the kill to the end of the upload (wall clock).
        after_kill: Duration,
        /// Attempts it took (1: the first).
        attempts: u32,
    },
    /// An attempt failed; it stays spooled.
    Failed {
        /// The profile.
        info: &'a ProfileInfo,
        /// What went wrong.
        error: &'a SinkError,
        /// Failed attempts so far.
        failures: u32,
        /// When the next attempt is.
        retry_in: Duration,
    },
    /// The spooled file could not be read: retried later, or, if it is gone
    /// (`NotFound`), dropped from the spool.
    Unreadable {
        /// The profile.
        info: &'a ProfileInfo,
        /// What went wrong.
        error: &'a io::Error,
    },
}

/// The thread that delivers what the spool holds. Dropping it stops the thread
/// after its current attempt (without waiting for it).
#[derive(Debug)]
pub struct Uploader {
    wake: Sender<()>,
    stop: Arc<AtomicBool>,
}

impl Uploader {
    /// Starts the thread; it sends what is spooled at once, then whatever is added
    /// (call [`Self::wake`] after [`Spool::add`]). `report` sees every outcome.
    ///
    /// Returns an error if the thread cannot be started.
    pub fn start(
        spool: Arc<Spool>,
        sink: Box<dyn Sink>,
        backoff: Backoff,
        mut report: Box<dyn FnMut(Delivery<'_>) + Send>,
    ) -> io::Result<Self> {
        let (wake, rx) = channel::<()>();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name(format!("upload-{}", sink.name()))
            .spawn(move || {
                // id → (failures, next attempt).
                let mut tries: HashMap<String, (u32, Instant)> = HashMap::new();
                let mut paused_until: Option<Instant> = None;
                while !stopped.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    let entries = spool.entries();
                    tries.retain(|id, _| entries.iter().any(|e| &e.id == id));
                    let mut next: Option<Instant> = None;
                    if paused_until.is_some_and(|p| p > now) {
                        next = paused_until;
                    } else {
                        paused_until = None;
                        for e in &entries {
                            if stopped.load(Ordering::Relaxed) {
                                return;
                            }
                            let (failures, at) = tries.get(&e.id).copied().unwrap_or((0, now));
                            if at > now {
                                next = Some(next.map_or(at, |n| n.min(at)));
                                continue;
                            }
                            let data = match spool.take(&e.id) {
                                Ok(Some(d)) => d,
                                Ok(None) => continue,
                                Err(error) => {
                                    spool.release(&e.id, false);
                                    report(Delivery::Unreadable {
                                        info: &e.info,
                                        error: &error,
                                    });
                                    let at = Instant::now() + backoff.max;
                                    tries.insert(e.id.clone(), (failures + 1, at));
                                    next = Some(next.map_or(at, |n| n.min(at)));
                                    continue;
                                }
                            };
                            match sink.put(&e.info, &data) {
                                Ok(location) => {
                                    spool.release(&e.id, true);
                                    tries.remove(&e.id);
                                    report(Delivery::Uploaded {
                                        info: &e.info,
                                        location: &location,
                                        after_kill: SystemTime::now()
                                            .duration_since(e.info.time)
                                            .unwrap_or_default(),
                                        attempts: failures + 1,
                                    });
                                }
                                Err(error) => {
                                    spool.release(&e.id, false);
                                    let failures = failures + 1;
                                    let retry_in = backoff.delay(failures, jitter());
                                    let at = Instant::now() + retry_in;
                                    tries.insert(e.id.clone(), (failures, at));
                                    report(Delivery::Failed {
                                        info: &e.info,
                                        error: &error,
                                        failures,
                                        retry_in,
                                    });
                                    next = Some(next.map_or(at, |n| n.min(at)));
                                    if error.kind == FailureKind::Unreachable {
                                        // The rest would fail alike: wait, then
                                        // start again from the oldest.
                                        paused_until = Some(at);
                                        break;
                                    }
                                }
                            }
                        }
                    }
                    let wait = next.map_or(Duration::from_secs(60), |n| {
                        n.saturating_duration_since(Instant::now())
                    });
                    match rx.recv_timeout(wait) {
                        // A new profile: its first attempt is now, even while paused
                        // (the endpoint may be back); older ones keep their backoff.
                        Ok(()) => paused_until = None,
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })?;
        Ok(Self { wake, stop })
    }

    /// Tells the thread something was added to the spool.
    pub fn wake(&self) {
        let _ = self.wake.send(());
    }
}

impl Drop for Uploader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.wake.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("oomprof-spool-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn info(pid: i32, secs: u64) -> ProfileInfo {
        ProfileInfo {
            name: format!("p-{pid}"),
            namespace: Some("ns".into()),
            pod: Some("pod-1".into()),
            container: None,
            container_id: Some("ab".repeat(32)),
            pod_uid: None,
            pid,
            comm: "oomer".into(),
            reason: "oom".into(),
            time: UNIX_EPOCH + Duration::from_secs(secs),
        }
    }

    fn files(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn sidecars_round_trip() {
        let i = info(7, 1_700_000_000);
        assert_eq!(ProfileInfo::from_json(&i.to_json()).unwrap(), i);
        for bad in [
            "",
            "{}",
            "{\"name\":\"x\",\"comm\":\"c\",\"reason\":\"oom\",\"pid\":1}",
        ] {
            assert!(ProfileInfo::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_spool_is_bounded_by_files_and_bytes_dropping_the_oldest() {
        let d = tmpdir("bounds");
        let limits = SpoolLimits {
            max_files: 3,
            max_bytes: 100,
        };
        let (s, rec) = Spool::open(&d, limits).unwrap();
        assert_eq!(rec.entries, 0);
        for pid in 1..=3 {
            let (_, dropped) = s.add(&info(pid, pid as u64), &[0; 20]).unwrap();
            assert!(dropped.is_empty());
        }
        // A fourth file: the oldest goes.
        let (_, dropped) = s.add(&info(4, 4), &[0; 20]).unwrap();
        assert_eq!(dropped.iter().map(|e| e.info.pid).collect::<Vec<_>>(), [1]);
        // 60 bytes held; 50 more make 4 files and 110 bytes: the oldest goes.
        let (_, dropped) = s.add(&info(5, 5), &[0; 50]).unwrap();
        assert_eq!(dropped.iter().map(|e| e.info.pid).collect::<Vec<_>>(), [2]);
        assert_eq!(s.usage(), (3, 90));
        // 90 more: only the newest fits.
        let (_, dropped) = s.add(&info(6, 6), &[0; 90]).unwrap();
        assert_eq!(
            dropped.iter().map(|e| e.info.pid).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert_eq!(s.usage(), (1, 90));
        assert_eq!(s.dropped(), 5);
        // Larger than the whole spool: refused, nothing written.
        let e = s.add(&info(7, 7), &[0; 101]).unwrap_err();
        assert!(e.to_string().contains("larger than the spool"), "{e}");
        assert_eq!(files(&d).len(), 2, "{:?}", files(&d));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_reopened_spool_has_its_entries_and_no_debris() {
        let d = tmpdir("reopen");
        let (s, _) = Spool::open(&d, SpoolLimits::default()).unwrap();
        let (a, _) = s.add(&info(1, 10), b"one").unwrap();
        let (b, _) = s.add(&info(2, 20), b"two").unwrap();
        assert!(a < b, "{a} {b}");
        drop(s);
        // A crash's leftovers: a sidecar without data, and a temporary file.
        fs::write(d.join("00000000000000000001-9.json"), info(9, 1).to_json()).unwrap();
        fs::write(d.join(".x.pb.gz.tmp"), b"partial").unwrap();
        let (s, rec) = Spool::open(&d, SpoolLimits::default()).unwrap();
        assert_eq!(rec.entries, 2);
        assert_eq!(rec.removed.len(), 2, "{:?}", rec.removed);
        let e = s.entries();
        assert_eq!(e.iter().map(|e| e.info.pid).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(e[0].info, info(1, 10));
        assert_eq!(s.take(&a).unwrap().unwrap(), b"one");
        s.release(&a, true);
        assert_eq!(
            files(&d),
            [format!("{b}.json"), format!("{b}.pb.gz")],
            "delivered files are removed"
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_entry_removed_behind_the_spools_back_is_forgotten() {
        let d = tmpdir("gone");
        let (s, _) = Spool::open(&d, SpoolLimits::default()).unwrap();
        let (a, _) = s.add(&info(1, 1), b"a").unwrap();
        fs::remove_file(d.join(format!("{a}.pb.gz"))).unwrap();
        let e = s.take(&a).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!((s.usage(), s.dropped()), ((0, 0), 1));
        assert!(files(&d).is_empty(), "{:?}", files(&d));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_entry_being_sent_is_not_dropped() {
        let d = tmpdir("inflight");
        let (s, _) = Spool::open(
            &d,
            SpoolLimits {
                max_files: 1,
                max_bytes: 1000,
            },
        )
        .unwrap();
        let (a, _) = s.add(&info(1, 1), b"a").unwrap();
        s.take(&a).unwrap().unwrap();
        let (_, dropped) = s.add(&info(2, 2), b"b").unwrap();
        assert!(dropped.is_empty(), "the sent one stays");
        s.release(&a, true);
        assert_eq!(s.usage(), (1, 1));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter_between_half_and_all() {
        let b = Backoff {
            min: Duration::from_secs(1),
            max: Duration::from_secs(300),
        };
        assert_eq!(b.delay(1, 1.0), Duration::from_secs(1));
        assert_eq!(b.delay(2, 1.0), Duration::from_secs(2));
        assert_eq!(b.delay(5, 1.0), Duration::from_secs(16));
        assert_eq!(b.delay(10, 1.0), Duration::from_secs(300));
        assert_eq!(b.delay(u32::MAX, 1.0), Duration::from_secs(300));
        assert_eq!(b.delay(3, 0.0), Duration::from_secs(2));
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }

    /// A sink that fails its first `fail` calls, then records what it is given.
    #[derive(Debug)]
    struct Flaky {
        fail: Mutex<u32>,
        got: Mutex<mpsc::Sender<(i32, Vec<u8>)>>,
    }

    impl Sink for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        fn put(&self, info: &ProfileInfo, data: &[u8]) -> Result<String, SinkError> {
            let mut f = self.fail.lock().unwrap();
            if *f > 0 {
                *f -= 1;
                return Err(SinkError {
                    message: "down".into(),
                    kind: FailureKind::Unreachable,
                });
            }
            let _ = self.got.lock().unwrap().send((info.pid, data.to_vec()));
            Ok(format!("flaky://{}", info.pid))
        }
    }

    /// The uploader's own logic (retry, removal, order) with an in-process sink; the
    /// real S3 path is oom-cli/tests/s3.rs against SeaweedFS.
    #[test]
    fn the_uploader_retries_then_delivers_in_order_and_empties_the_spool() {
        let d = tmpdir("uploader");
        let (s, _) = Spool::open(&d, SpoolLimits::default()).unwrap();
        let s = Arc::new(s);
        s.add(&info(1, 1), b"first").unwrap();
        s.add(&info(2, 2), b"second").unwrap();
        let (tx, rx) = mpsc::channel();
        let (rtx, rrx) = mpsc::channel();
        let up = Uploader::start(
            s.clone(),
            Box::new(Flaky {
                fail: Mutex::new(2),
                got: Mutex::new(tx),
            }),
            Backoff {
                min: Duration::from_millis(10),
                max: Duration::from_millis(40),
            },
            Box::new(move |d| {
                let _ = rtx.send(match d {
                    Delivery::Uploaded { attempts, .. } => format!("ok {attempts}"),
                    Delivery::Failed { failures, .. } => format!("failed {failures}"),
                    Delivery::Unreadable { .. } => "unreadable".into(),
                });
            }),
        )
        .unwrap();
        let t = Duration::from_secs(10);
        assert_eq!(rx.recv_timeout(t).unwrap(), (1, b"first".to_vec()));
        assert_eq!(rx.recv_timeout(t).unwrap(), (2, b"second".to_vec()));
        let reports: Vec<String> = (0..4).map(|_| rrx.recv_timeout(t).unwrap()).collect();
        assert_eq!(reports, ["failed 1", "failed 2", "ok 3", "ok 1"]);
        s.add(&info(3, 3), b"third").unwrap();
        up.wake();
        assert_eq!(rx.recv_timeout(t).unwrap(), (3, b"third".to_vec()));
        let deadline = Instant::now() + t;
        while s.usage().0 > 0 {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(files(&d).is_empty(), "{:?}", files(&d));
        drop(up);
        fs::remove_dir_all(&d).unwrap();
    }
}
