//! Writing profiles safely: a temporary file created exclusively (never through a
//! symlink) with mode 0600, written and synced, then hard-linked to its final name
//! (which never replaces an existing file or follows a planted symlink) and unlinked.
//! A collision with a generated name gets a numeric suffix; a collision with a name
//! the user chose (`dump -o FILE`) is an error, since the file there is not ours to
//! replace and a `FILE-1` beside it would be easy to miss. On any error nothing
//! partial is left.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// `{comm}-{pid}-{YYYYmmddHHMMSS}`, with anything but `[A-Za-z0-9._-]` in comm made `_`.
///
/// The time is in UTC, whatever the local zone: names sort in capture order on every
/// host and never repeat or skip at a DST change; `oomprof top` shows the local time.
pub fn base_name(comm: &str, pid: i32, time: Timestamp) -> String {
    let comm: String = comm
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let comm = if comm.is_empty() || comm.starts_with('.') {
        format!("_{comm}")
    } else {
        comm
    };
    let t = TimeZone::UTC.to_datetime(time);
    format!(
        "{comm}-{pid}-{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Writes `data` as `dir/{base}.pb.gz` (or `dir/{base}-N.pb.gz` if taken); returns the path.
///
/// Returns an error (with nothing left behind) if the directory is not writable or the
/// disk is full.
pub fn write_profile(dir: &Path, base: &str, data: &[u8]) -> anyhow::Result<PathBuf> {
    via_temp(dir, base, data, |tmp| {
        for n in 0..1000u32 {
            let name = if n == 0 {
                format!("{base}.pb.gz")
            } else {
                format!("{base}-{n}.pb.gz")
            };
            let path = dir.join(name);
            match fs::hard_link(tmp, &path) {
                Ok(()) => return Ok(path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("linking {}", path.display())),
            }
        }
        anyhow::bail!("{}: 1000 profiles named {base} already", dir.display())
    })
}

/// Writes `data` as exactly `path` (`dump -o FILE`), the same safe way.
///
/// Returns an error (with nothing left behind) if `path` exists — even as a symlink or
/// a device such as `/dev/null`; it is never replaced — or has no file name, or its
/// directory is not writable.
pub fn write_file(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file name", path.display()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    via_temp(
        dir,
        &name.to_string_lossy(),
        data,
        |tmp| match fs::hard_link(tmp, path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => anyhow::bail!(
                "{} exists, not replacing it (remove it or choose another name)",
                path.display()
            ),
            Err(e) => Err(e).with_context(|| format!("linking {}", path.display())),
        },
    )
}

/// Writes and syncs `data` in a new `dir/.{stem}.{pid}.tmp` (exclusive, no symlink,
/// 0600), hands its path to `link`, and removes it whatever happens.
fn via_temp<T>(
    dir: &Path,
    stem: &str,
    data: &[u8],
    link: impl FnOnce(&Path) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let tmp = dir.join(format!(".{stem}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(data)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
        link(&tmp)
    })();
    let _ = fs::remove_file(&tmp);
    result
}

/// Checks at start that profiles can be written to `dir`: it exists, is a directory and
/// we can create files in it. Warns when others may write to it.
///
/// Returns an error naming the directory and the cause.
pub fn check_dir(dir: &Path) -> anyhow::Result<()> {
    let meta = fs::metadata(dir).with_context(|| format!("output directory {}", dir.display()))?;
    anyhow::ensure!(
        meta.is_dir(),
        "output directory {} is not a directory",
        dir.display()
    );
    let probe = dir.join(format!(".oomprof-write-test.{}", std::process::id()));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&probe)
        .with_context(|| format!("output directory {} is not writable", dir.display()))?;
    let _ = fs::remove_file(&probe);
    let mode = meta.permissions().mode();
    if mode & 0o002 != 0 {
        log::warn!(
            "output directory {} is writable by every user (mode {:o}{}): others can read your profiles' names and plant files there",
            dir.display(),
            mode & 0o7777,
            if mode & 0o1000 != 0 { ", sticky" } else { "" }
        );
    } else if mode & 0o020 != 0 && meta.gid() != 0 {
        log::warn!(
            "output directory {} is group-writable (gid {})",
            dir.display(),
            meta.gid()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("oomprof-out-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn names_are_sanitized() {
        let t = Timestamp::UNIX_EPOCH;
        assert_eq!(base_name("my app/x", 12, t), "my_app_x-12-19700101000000");
        assert_eq!(base_name("", 1, t), "_-1-19700101000000");
        assert_eq!(base_name("..", 1, t), "_..-1-19700101000000");
    }

    #[test]
    fn names_carry_the_utc_time_to_the_second() {
        let at = |s, ns| base_name("p", 1, Timestamp::new(s, ns).unwrap());
        assert_eq!(at(951_782_400, 0), "p-1-20000229000000");
        assert_eq!(at(1_795_310_760, 999_999_999), "p-1-20261122012600");
        assert_eq!(at(-1, 0), "p-1-19691231235959");
    }

    #[test]
    fn writes_0600_and_suffixes_collisions() {
        let d = tmpdir("collide");
        let a = write_profile(&d, "p-1-2", b"one").unwrap();
        let b = write_profile(&d, "p-1-2", b"two").unwrap();
        assert_eq!(a.file_name().unwrap(), "p-1-2.pb.gz");
        assert_eq!(b.file_name().unwrap(), "p-1-2-1.pb.gz");
        assert_eq!(fs::read(&a).unwrap(), b"one");
        assert_eq!(fs::read(&b).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&a).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Nothing else left behind.
        assert_eq!(fs::read_dir(&d).unwrap().count(), 2);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_planted_symlink_is_not_followed() {
        let d = tmpdir("symlink");
        let target = d.join("target");
        fs::write(&target, b"precious").unwrap();
        std::os::unix::fs::symlink(&target, d.join("p-1-2.pb.gz")).unwrap();
        let p = write_profile(&d, "p-1-2", b"profile").unwrap();
        assert_eq!(p.file_name().unwrap(), "p-1-2-1.pb.gz");
        assert_eq!(fs::read(&target).unwrap(), b"precious");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_explicit_file_is_0600_and_never_replaced() {
        let d = tmpdir("explicit");
        let f = d.join("out.pb.gz");
        write_file(&f, b"one").unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"one");
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let e = write_file(&f, b"two").unwrap_err();
        assert!(format!("{e:#}").contains("exists, not replacing"), "{e:#}");
        assert_eq!(fs::read(&f).unwrap(), b"one");
        // A planted symlink is not followed, and is an error too.
        let target = d.join("target");
        fs::write(&target, b"precious").unwrap();
        std::os::unix::fs::symlink(&target, d.join("link")).unwrap();
        assert!(write_file(&d.join("link"), b"x").is_err());
        assert_eq!(fs::read(&target).unwrap(), b"precious");
        // No temporary file left behind by any of it.
        let mut names: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["link", "out.pb.gz", "target"]);
        assert!(write_file(Path::new("/"), b"x").is_err());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_missing_directory_is_a_clear_error() {
        let e = check_dir(Path::new("/nonexistent/oomprof")).unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent/oomprof"), "{e:#}");
        let e = write_profile(Path::new("/nonexistent/oomprof"), "x", b"y").unwrap_err();
        assert!(format!("{e:#}").contains("creating"), "{e:#}");
    }
}
