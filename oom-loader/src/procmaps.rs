//! `/proc/PID/maps`: a process's mappings, the executable ones pprof lists, and the
//! load bias of a PIE executable.

use std::path::Path;

/// One line of `/proc/PID/maps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapEntry {
    /// Start address.
    pub start: u64,
    /// End address (exclusive).
    pub end: u64,
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
    /// File offset of `start`.
    pub offset: u64,
    /// Device as `major:minor` numbers.
    pub dev: (u32, u32),
    /// Inode, 0 for anonymous mappings.
    pub inode: u64,
    /// Path or pseudo-name (`[vdso]`), with ` (deleted)` removed; may be empty.
    pub path: String,
    /// The file was deleted (the kernel appended ` (deleted)`).
    pub deleted: bool,
}

/// Parses the text of `/proc/PID/maps`; lines that do not parse are skipped.
pub fn parse(text: &str) -> Vec<MapEntry> {
    text.lines().filter_map(parse_line).collect()
}

/// Reads and parses `/proc/PID/maps`.
///
/// Returns an error if the file cannot be read (process gone, no permission).
pub fn read(proc_root: &Path, pid: i32) -> std::io::Result<Vec<MapEntry>> {
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("maps"))?;
    Ok(parse(&text))
}

fn parse_line(line: &str) -> Option<MapEntry> {
    // "start-end perms offset major:minor inode    path"
    let mut it = line.splitn(6, ' ');
    let range = it.next()?;
    let perms = it.next()?.as_bytes();
    let offset = u64::from_str_radix(it.next()?, 16).ok()?;
    let dev = it.next()?;
    let inode = it.next()?.parse().ok()?;
    let path = it.next().unwrap_or("").trim_start();
    let (start, end) = range.split_once('-')?;
    let (major, minor) = dev.split_once(':')?;
    let (path, deleted) = match path.strip_suffix(" (deleted)") {
        Some(p) => (p, true),
        None => (path, false),
    };
    Some(MapEntry {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        read: perms.first() == Some(&b'r'),
        write: perms.get(1) == Some(&b'w'),
        exec: perms.get(2) == Some(&b'x'),
        offset,
        dev: (
            u32::from_str_radix(major, 16).ok()?,
            u32::from_str_radix(minor, 16).ok()?,
        ),
        inode,
        path: path.to_string(),
        deleted,
    })
}

/// The mappings runtime/pprof lists: executable ones, skipping anonymous (inode 0,
/// no name) entries; `[vdso]` stays.
pub fn executable(maps: &[MapEntry]) -> impl Iterator<Item = &MapEntry> {
    maps.iter()
        .filter(|m| m.exec && !(m.inode == 0 && m.path.is_empty()))
}

/// A loadable segment of the executable file: (p_vaddr, p_offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Link-time virtual address.
    pub vaddr: u64,
    /// File offset.
    pub offset: u64,
    /// Size in the file.
    pub filesz: u64,
}

/// The load bias of the executable identified by (`dev`, `inode`): runtime address −
/// link-time address. 0 for a non-PIE executable.
///
/// Uses the first mapping of that file: `bias = start − offset − (p_vaddr − p_offset)`
/// for the PT_LOAD segment containing the mapping's file offset.
///
/// Returns `None` if the executable is not mapped or no segment covers the mapping.
pub fn load_bias(
    maps: &[MapEntry],
    dev: (u32, u32),
    inode: u64,
    segments: &[Segment],
) -> Option<u64> {
    let m = maps.iter().find(|m| m.inode == inode && m.dev == dev)?;
    let seg = segments.iter().find(|s| {
        let page = s.offset & !0xfff;
        m.offset >= page && m.offset < s.offset.saturating_add(s.filesz.max(1))
    })?;
    // runtime(start) corresponds to link address vaddr - (offset_in_seg)
    let link = seg.vaddr.wrapping_sub(seg.offset).wrapping_add(m.offset);
    Some(m.start.wrapping_sub(link))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
00400000-00401000 r--p 00000000 fe:01 1234                               /srv/app
00401000-004ec000 r-xp 00001000 fe:01 1234                               /srv/app
004ec000-005a0000 r--p 000ec000 fe:01 1234                               /srv/app
005a0000-005c0000 rw-p 001a0000 fe:01 1234                               /srv/app
005c0000-00600000 rw-p 00000000 00:00 0 
c000000000-c004000000 rw-p 00000000 00:00 0 
7f0000000000-7f0000001000 r-xp 00000000 00:00 0 
7ffd1000-7ffd3000 r-xp 00000000 00:00 0                          [vdso]
55d000000000-55d000100000 r-xp 00000000 fe:01 99 /tmp/old binary (deleted)
";

    #[test]
    fn parses_every_field() {
        let m = parse(MAPS);
        assert_eq!(m.len(), 9);
        assert_eq!(m[1].start, 0x401000);
        assert_eq!(m[1].end, 0x4ec000);
        assert!(m[1].read && !m[1].write && m[1].exec);
        assert_eq!(m[1].offset, 0x1000);
        assert_eq!(m[1].dev, (0xfe, 1));
        assert_eq!(m[1].inode, 1234);
        assert_eq!(m[1].path, "/srv/app");
        assert_eq!(m[4].path, "");
        assert_eq!(m[8].path, "/tmp/old binary");
        assert!(m[8].deleted);
    }

    #[test]
    fn executable_skips_anonymous_but_keeps_vdso() {
        let m = parse(MAPS);
        let names: Vec<_> = executable(&m).map(|e| e.path.as_str()).collect();
        assert_eq!(names, ["/srv/app", "[vdso]", "/tmp/old binary"]);
    }

    #[test]
    fn garbage_lines_are_skipped() {
        assert!(parse("not a maps line\nzz-yy r-xp 0 0:0 0\n").is_empty());
    }

    #[test]
    fn bias_is_zero_for_a_fixed_address_executable() {
        let m = parse(MAPS);
        let segs = [
            Segment {
                vaddr: 0x400000,
                offset: 0,
                filesz: 0x1000,
            },
            Segment {
                vaddr: 0x401000,
                offset: 0x1000,
                filesz: 0xeb000,
            },
        ];
        assert_eq!(load_bias(&m, (0xfe, 1), 1234, &segs), Some(0));
    }

    #[test]
    fn bias_of_an_internally_linked_pie() {
        // Go internal-link PIE: first PT_LOAD at vaddr 0x400000, offset 0.
        let maps = "555555554000-555555555000 r--p 00000000 fe:01 7 /srv/pie\n\
                    555555555000-555555600000 r-xp 00001000 fe:01 7 /srv/pie\n";
        let m = parse(maps);
        let segs = [Segment {
            vaddr: 0x400000,
            offset: 0,
            filesz: 0x100000,
        }];
        assert_eq!(
            load_bias(&m, (0xfe, 1), 7, &segs),
            Some(0x555555554000 - 0x400000)
        );
    }

    #[test]
    fn no_bias_without_the_executable_mapped() {
        let m = parse(MAPS);
        assert_eq!(load_bias(&m, (0xfe, 1), 4321, &[]), None);
    }
}
