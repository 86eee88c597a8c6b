//! Classic tracepoints: ids and record layouts from tracefs, attach through
//! `perf_event_open` plus a BPF link (5.15+) or the `SET_BPF` ioctl; and raw
//! tracepoints (`BPF_RAW_TRACEPOINT_OPEN`), which need neither tracefs nor the
//! RCU waits a classic detach makes.
//!
//! tracefs is often not mounted (it is not on our CI host). Then we mount it in a
//! private mount namespace that only a short-lived helper thread enters: the thread
//! unshares its mount namespace, makes it private recursively, mounts tracefs over
//! `/sys/kernel/tracing`, reads the ids and `format` files and exits, which frees the
//! namespace and its mount. The host's mounts are never touched. The perf events
//! opened afterwards need only the ids.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::sys::{self, LinkFd, PerfFd, ProgFd};

/// One field of a tracepoint record, from its `format` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// Field name.
    pub name: String,
    /// Byte offset in the record.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
}

/// A tracepoint's id and record layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracepoint {
    /// `category/name`.
    pub name: String,
    /// The perf event id.
    pub id: u64,
    /// Fields, common ones included.
    pub fields: Vec<Field>,
}

impl Tracepoint {
    /// True when the record has `name` at `offset` with `size`.
    pub fn has(&self, name: &str, offset: u32, size: u32) -> bool {
        self.fields
            .iter()
            .any(|f| f.name == name && f.offset == offset && f.size == size)
    }
}

/// Parses the `field:` lines of a tracefs `format` file.
///
/// Returns an error naming the line that does not parse.
pub fn parse_format(text: &str) -> std::result::Result<Vec<Field>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("field:") else {
            continue;
        };
        let mut name = None;
        let mut offset = None;
        let mut size = None;
        for part in rest.split(';') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("offset:") {
                offset = v.parse().ok();
            } else if let Some(v) = part.strip_prefix("size:") {
                size = v.parse().ok();
            } else if name.is_none() && !part.is_empty() && !part.contains(':') {
                // "unsigned long total_vm" or "char comm[16]": the last word, minus
                // any array suffix.
                let last = part.split_whitespace().last().unwrap_or(part);
                name = Some(last.split('[').next().unwrap_or(last).to_string());
            }
        }
        match (name, offset, size) {
            (Some(name), Some(offset), Some(size)) => out.push(Field { name, offset, size }),
            _ => return Err(format!("unparsable format line: {line:?}")),
        }
    }
    Ok(out)
}

fn read_from(root: &Path, names: &[&str]) -> Result<Vec<Tracepoint>> {
    let mut out = Vec::new();
    for name in names {
        let dir = root.join("events").join(name);
        let tp_err = |reason: String| Error::Tracepoint {
            tracepoint: name.to_string(),
            reason,
        };
        let id = std::fs::read_to_string(dir.join("id"))
            .map_err(|e| tp_err(format!("reading {}: {e}", dir.join("id").display())))?;
        let id = id
            .trim()
            .parse()
            .map_err(|_| tp_err(format!("bad id {id:?}")))?;
        let format = std::fs::read_to_string(dir.join("format"))
            .map_err(|e| tp_err(format!("reading format: {e}")))?;
        let fields = parse_format(&format).map_err(tp_err)?;
        out.push(Tracepoint {
            name: name.to_string(),
            id,
            fields,
        });
    }
    Ok(out)
}

/// Where tracefs is already mounted, if anywhere we look.
fn mounted_tracefs() -> Option<&'static Path> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("events").is_dir())
}

/// Reads the ids and layouts of `names` (`category/name`), mounting tracefs in a
/// private mount namespace when it is not mounted.
///
/// Returns an error if a tracepoint does not exist or tracefs cannot be mounted.
pub fn read_tracepoints(names: &[&str]) -> Result<Vec<Tracepoint>> {
    if let Some(root) = mounted_tracefs() {
        return read_from(root, names);
    }
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    std::thread::Builder::new()
        .name("oomprof-tracefs".into())
        .spawn(move || -> Result<Vec<Tracepoint>> {
            use nix::mount::{mount, MsFlags};
            use nix::sched::{unshare, CloneFlags};
            // Only this thread moves to the new namespace (CLONE_NEWNS implies
            // CLONE_FS, which unshares the thread's fs context from the process).
            unshare(CloneFlags::CLONE_NEWNS)
                .map_err(|e| Error::sys("unshare(CLONE_NEWNS) for a private tracefs", e.into()))?;
            // Nothing we mount may propagate back to the host.
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .map_err(|e| Error::sys("mount(/, MS_REC|MS_PRIVATE)", e.into()))?;
            let root = Path::new("/sys/kernel/tracing");
            mount(
                Some("tracefs"),
                root,
                Some("tracefs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                None::<&str>,
            )
            .map_err(|e| {
                Error::sys(
                    "mount(tracefs, /sys/kernel/tracing) in a private namespace",
                    e.into(),
                )
            })?;
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            // The namespace, and the mount with it, goes away when the thread exits.
            read_from(root, &refs)
        })
        .map_err(|e| Error::sys("spawning the tracefs helper thread", e))?
        .join()
        .map_err(|_| Error::Tracepoint {
            tracepoint: "*".into(),
            reason: "the tracefs helper thread panicked".into(),
        })?
}

/// A program attached to a tracepoint. Dropping it detaches the program.
#[derive(Debug)]
#[expect(dead_code, reason = "the fds are held for Drop, never read")]
pub(crate) enum Attachment {
    /// Through a BPF link (Linux 5.15+); the link holds the perf event.
    Link {
        /// The link.
        link: LinkFd,
        /// The perf event.
        perf: PerfFd,
    },
    /// Through `PERF_EVENT_IOC_SET_BPF`.
    Ioctl {
        /// The perf event.
        perf: PerfFd,
    },
    /// A raw tracepoint (`BPF_RAW_TRACEPOINT_OPEN`).
    Raw {
        /// The link.
        link: LinkFd,
    },
}

/// Attaches a raw-tracepoint program to the tracepoint `name` (no tracefs needed).
/// Detaching it does not wait for RCU grace periods, unlike a classic one.
///
/// Returns an error if the kernel refuses, e.g. EINVAL when the program reads
/// more arguments than the tracepoint has.
pub(crate) fn attach_raw_tracepoint(prog: &ProgFd, name: &str) -> Result<Attachment> {
    let cname = std::ffi::CString::new(name).map_err(|_| Error::Tracepoint {
        tracepoint: name.into(),
        reason: "name contains NUL".into(),
    })?;
    let link = sys::raw_tracepoint_open(prog, &cname)
        .map_err(|e| Error::sys(format!("BPF_RAW_TRACEPOINT_OPEN({name})"), e))?;
    Ok(Attachment::Raw { link })
}

/// Attaches `prog` to the tracepoint with perf event id `id`.
///
/// Returns an error if perf_event_open or both attach methods fail. EACCES here
/// usually means the program reads past the tracepoint's record.
pub(crate) fn attach_tracepoint(
    prog: &ProgFd,
    tp: &Tracepoint,
    use_link: bool,
) -> Result<Attachment> {
    let perf = sys::perf_event_open_tracepoint(tp.id)
        .map_err(|e| Error::sys(format!("perf_event_open(tracepoint {})", tp.name), e))?;
    if use_link {
        match sys::link_create_perf_event(prog, &perf) {
            Ok(link) => return Ok(Attachment::Link { link, perf }),
            Err(e) => log::debug!("BPF_LINK_CREATE on {} failed ({e}); using ioctl", tp.name),
        }
    }
    sys::perf_attach_ioctl(&perf, prog)
        .map_err(|e| Error::sys(format!("PERF_EVENT_IOC_SET_BPF on {}", tp.name), e))?;
    Ok(Attachment::Ioctl { perf })
}

/// Tracepoints the program uses, `category/name`, with the fields each variant reads.
pub(crate) fn index(tps: Vec<Tracepoint>) -> HashMap<String, Tracepoint> {
    tps.into_iter().map(|t| (t.name.clone(), t)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARK_VICTIM: &str = "name: mark_victim
ID: 609
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;
\tfield:__data_loc char[] comm;\toffset:12;\tsize:4;\tsigned:0;
\tfield:unsigned long total_vm;\toffset:16;\tsize:8;\tsigned:0;
\tfield:char comm2[16];\toffset:24;\tsize:16;\tsigned:0;

print fmt: \"pid=%d\", REC->pid
";

    #[test]
    fn format_fields() {
        let f = parse_format(MARK_VICTIM).unwrap();
        assert_eq!(f.len(), 6);
        let tp = Tracepoint {
            name: "oom/mark_victim".into(),
            id: 609,
            fields: f,
        };
        assert!(tp.has("pid", 8, 4));
        assert!(tp.has("comm", 12, 4));
        assert!(tp.has("total_vm", 16, 8));
        assert!(tp.has("comm2", 24, 16));
        assert!(!tp.has("pid", 8, 8));
    }

    #[test]
    fn format_bad_line() {
        assert!(parse_format("\tfield:int x;\toffset:zz;\tsize:4;").is_err());
    }
}
