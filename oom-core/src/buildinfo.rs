//! Go identity: `.go.buildinfo` (Go version, module, build settings) and the ELF notes
//! that carry the Go build ID and the GNU build ID.
//!
//! Format: `cmd/link/internal/ld/data.go` `buildinfo()` and `debug/buildinfo` (Go 1.18+
//! inline format, the only one Go 1.19–1.27 write); notes: `cmd/link/internal/ld/elf.go`.

use crate::read::Reader;
use crate::Error;

/// The 14-byte magic that starts `.go.buildinfo`.
pub const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
/// Flag bit: the version and modinfo strings follow the header inline (Go 1.18+).
const FLAG_INLINE: u8 = 0x2;
/// Flag bit: big-endian target.
const FLAG_BIG_ENDIAN: u8 = 0x1;
const SENTINEL_LEN: usize = 16;

/// The parsed `.go.buildinfo` blob, borrowing from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildInfo<'a> {
    /// The Go version string, e.g. `go1.27.3`.
    pub go_version: &'a str,
    /// The module info text without its sentinels: tab-separated `path`, `mod`, `dep`,
    /// `=>` and `build` lines. Empty for binaries built without module support.
    pub modinfo: &'a str,
}

impl<'a> BuildInfo<'a> {
    /// Parses the contents of the `.go.buildinfo` section (starting at the magic).
    ///
    /// Returns an error if the magic is missing, the blob is big-endian, 32-bit or in the
    /// pre-1.18 pointer format, or a string runs past the end or is not UTF-8.
    pub fn parse(data: &'a [u8]) -> Result<BuildInfo<'a>, Error> {
        let r = Reader::new(data, "buildinfo");
        if r.bytes(0, MAGIC.len(), "magic")? != MAGIC {
            return Err(r.invalid("magic", 0, 0));
        }
        let ptr_size = r.u8(14, "ptrSize")?;
        let flags = r.u8(15, "flags")?;
        let unsupported = |field, offset, value| Error::Unsupported {
            structure: "buildinfo",
            field,
            offset,
            value,
        };
        if ptr_size != 8 {
            return Err(unsupported("ptrSize", 14, u64::from(ptr_size)));
        }
        if flags & FLAG_BIG_ENDIAN != 0 || flags & FLAG_INLINE == 0 {
            return Err(unsupported("flags", 15, u64::from(flags)));
        }
        let (version, at) = string(&r, HEADER_LEN, "version")?;
        let version = utf8(&r, version, at - version.len(), "version")?;
        let (mut modinfo, mod_end) = string(&r, at, "modinfo")?;
        let mod_at = mod_end - modinfo.len();
        // Sentinel-wrapped: 16 binary bytes before and after, the text ending in '\n'.
        let n = modinfo.len();
        if n > 2 * SENTINEL_LEN && modinfo.get(n - SENTINEL_LEN - 1) == Some(&b'\n') {
            modinfo = modinfo
                .get(SENTINEL_LEN..n - SENTINEL_LEN)
                .unwrap_or_default();
        }
        let modinfo = utf8(&r, modinfo, mod_at, "modinfo")?;
        Ok(BuildInfo {
            go_version: version,
            modinfo,
        })
    }

    /// Finds the buildinfo blob in `data` (e.g. a whole data segment) by its magic at
    /// 16-byte alignment, then parses it.
    ///
    /// Returns an error if no aligned magic is found or the blob does not parse.
    pub fn find(data: &'a [u8]) -> Result<BuildInfo<'a>, Error> {
        let mut off = 0usize;
        while let Some(chunk) = data.get(off..) {
            if chunk.starts_with(MAGIC) {
                return BuildInfo::parse(chunk);
            }
            off = off.checked_add(16).ok_or(Error::NotFound {
                what: "go buildinfo",
            })?;
        }
        Err(Error::NotFound {
            what: "go buildinfo",
        })
    }

    /// The main module path (`path` line), if present.
    pub fn main_path(&self) -> Option<&'a str> {
        self.lines().find_map(|l| l.strip_prefix("path\t"))
    }

    /// The main module's version (second column of the `mod` line), if present.
    pub fn main_version(&self) -> Option<&'a str> {
        let m = self.lines().find_map(|l| l.strip_prefix("mod\t"))?;
        m.split('\t').nth(1)
    }

    /// The value of build setting `key` (e.g. `vcs.revision`, `CGO_ENABLED`, `-buildmode`).
    pub fn setting(&self, key: &str) -> Option<&'a str> {
        self.settings().find(|&(k, _)| k == key).map(|(_, v)| v)
    }

    /// All `build key=value` settings in order.
    pub fn settings(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.lines()
            .filter_map(|l| l.strip_prefix("build\t")?.split_once('='))
    }

    fn lines(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.modinfo.split('\n')
    }
}

/// A uvarint-length-prefixed byte string at `at`; returns it and the offset after it.
fn string<'a>(r: &Reader<'a>, at: usize, field: &'static str) -> Result<(&'a [u8], usize), Error> {
    let (len, start) = r.uvarint(at, field)?;
    let len = usize::try_from(len).map_err(|_| r.invalid(field, at, len))?;
    let bytes = r.bytes(start, len, field)?;
    Ok((bytes, start + len))
}

fn utf8<'a>(r: &Reader<'a>, b: &'a [u8], at: usize, field: &'static str) -> Result<&'a str, Error> {
    core::str::from_utf8(b).map_err(|_| r.invalid(field, at, b.len() as u64))
}

/// One ELF note: name (without trailing NULs), type and descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Note<'a> {
    /// The note's owner name, e.g. `b"Go"` or `b"GNU"`.
    pub name: &'a [u8],
    /// The note type.
    pub kind: u32,
    /// The descriptor bytes.
    pub desc: &'a [u8],
}

/// Note type of the Go build ID (`ELF_NOTE_GOBUILDID_TAG`) under owner `Go`.
pub const NOTE_GO_BUILD_ID: u32 = 4;
/// Note type of the GNU build ID (`NT_GNU_BUILD_ID`) under owner `GNU`.
pub const NOTE_GNU_BUILD_ID: u32 = 3;

/// Iterates the notes of an SHT_NOTE section or PT_NOTE segment (64-bit ELF: 4-byte
/// aligned name and descriptor). Stops after the first error, which it yields.
pub fn notes(data: &[u8]) -> Notes<'_> {
    Notes {
        r: Reader::new(data, "elf note"),
        data_len: data.len(),
        off: 0,
        done: false,
    }
}

/// Iterator returned by [`notes`].
#[derive(Clone, Debug)]
pub struct Notes<'a> {
    r: Reader<'a>,
    data_len: usize,
    off: usize,
    done: bool,
}

impl<'a> Iterator for Notes<'a> {
    type Item = Result<Note<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.off >= self.data_len {
            return None;
        }
        let res = self.read();
        if res.is_err() {
            self.done = true;
        }
        Some(res)
    }
}

impl<'a> Notes<'a> {
    fn read(&mut self) -> Result<Note<'a>, Error> {
        let off = self.off;
        let namesz = self.r.u32(off, "namesz")? as usize;
        let descsz = self.r.u32(off + 4, "descsz")? as usize;
        let kind = self.r.u32(off + 8, "type")?;
        let name_off = off + 12;
        let name = self.r.bytes(name_off, namesz, "name")?;
        let desc_off = align4(name_off + namesz).ok_or(self.r.truncated("name", name_off))?;
        let desc = self.r.bytes(desc_off, descsz, "desc")?;
        self.off = align4(desc_off + descsz).ok_or(self.r.truncated("desc", desc_off))?;
        let name = match name.iter().position(|&b| b == 0) {
            Some(n) => name.get(..n).unwrap_or_default(),
            None => name,
        };
        Ok(Note { name, kind, desc })
    }
}

fn align4(x: usize) -> Option<usize> {
    Some(x.checked_add(3)? & !3)
}

/// The Go build ID string from a note section (owner `Go`, type 4), if present.
///
/// Returns an error if the notes are malformed or the ID is not UTF-8.
pub fn go_build_id(note_data: &[u8]) -> Result<Option<&str>, Error> {
    for n in notes(note_data) {
        let n = n?;
        if n.name == b"Go" && n.kind == NOTE_GO_BUILD_ID {
            let s = core::str::from_utf8(n.desc).map_err(|_| Error::Invalid {
                structure: "elf note",
                field: "desc",
                offset: 0,
                value: n.desc.len() as u64,
            })?;
            return Ok(Some(s));
        }
    }
    Ok(None)
}

/// The GNU build ID bytes from a note section (owner `GNU`, type 3), if present.
///
/// Returns an error if the notes are malformed.
pub fn gnu_build_id(note_data: &[u8]) -> Result<Option<&[u8]>, Error> {
    for n in notes(note_data) {
        let n = n?;
        if n.name == b"GNU" && n.kind == NOTE_GNU_BUILD_ID {
            return Ok(Some(n.desc));
        }
    }
    Ok(None)
}

/// A build ID as lower-case hex, the form `Mapping.build_id` takes (at most 64 bytes of ID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HexId {
    buf: [u8; 128],
    len: usize,
}

impl HexId {
    /// Hex-encodes `id`.
    ///
    /// Returns an error if `id` is longer than 64 bytes.
    pub fn new(id: &[u8]) -> Result<HexId, Error> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 128];
        if id.len() > 64 {
            return Err(Error::Unsupported {
                structure: "build id",
                field: "length",
                offset: 0,
                value: id.len() as u64,
            });
        }
        for (pair, b) in buf.chunks_exact_mut(2).zip(id) {
            let hex = |n: u8| DIGITS.get(usize::from(n)).copied().unwrap_or(b'0');
            pair.copy_from_slice(&[hex(b >> 4), hex(b & 0xf)]);
        }
        Ok(HexId {
            buf,
            len: id.len() * 2,
        })
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        self.buf
            .get(..self.len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &[u8; 16] = b"\x30\x77\xaf\x0c\x92\x74\x08\x02\x41\xe1\xc1\x07\xe6\xd6\x18\xe6";
    const END: &[u8; 16] = b"\xf9\x32\x43\x31\x86\x18\x20\x72\x00\x82\x42\x10\x41\x16\xd8\xf2";

    fn blob(buf: &mut [u8; 256], version: &[u8], modinfo: &[u8]) -> usize {
        let mut n = 0;
        let mut put = |b: &[u8]| {
            buf[n..n + b.len()].copy_from_slice(b);
            n += b.len();
        };
        put(MAGIC); // "\xff Go buildinf:"
        put(&[8, 2]); // ptrSize 8, flags: inline
        put(&[0; 16]); // unused in the inline format
        put(&[version.len() as u8]); // uvarint length
        put(version);
        let mlen = if modinfo.is_empty() {
            0
        } else {
            modinfo.len() + 32
        };
        if mlen < 0x80 {
            put(&[mlen as u8]); // uvarint length, one byte
        } else {
            put(&[(mlen as u8) | 0x80, (mlen >> 7) as u8]); // uvarint length, two bytes
        }
        if !modinfo.is_empty() {
            put(START);
            put(modinfo);
            put(END);
        }
        n
    }

    const MODINFO: &[u8] = b"path\texample.com/holder\nmod\texample.com/holder\t(devel)\t\nbuild\t-buildmode=exe\nbuild\tvcs.revision=abc123\n";

    #[test]
    fn parses_inline_format() {
        let mut buf = [0u8; 256];
        let n = blob(&mut buf, b"go1.27.3", MODINFO);
        let bi = BuildInfo::parse(&buf[..n]).unwrap();
        assert_eq!(bi.go_version, "go1.27.3");
        assert_eq!(bi.main_path(), Some("example.com/holder"));
        assert_eq!(bi.main_version(), Some("(devel)"));
        assert_eq!(bi.setting("vcs.revision"), Some("abc123"));
        assert_eq!(bi.setting("-buildmode"), Some("exe"));
        assert_eq!(bi.setting("nope"), None);
        assert_eq!(bi.settings().count(), 2);
    }

    #[test]
    fn modinfo_must_be_utf8() {
        let mut buf = [0u8; 256];
        let n = blob(&mut buf, b"go1.27.3", b"path\t\xff\n");
        assert!(matches!(
            BuildInfo::parse(&buf[..n]),
            Err(Error::Invalid {
                field: "modinfo",
                offset: 42,
                ..
            })
        ));
    }

    #[test]
    fn finds_at_16_byte_alignment() {
        let mut buf = [0u8; 256];
        let n = blob(&mut buf, b"go1.19.8", b"");
        let mut big = [0u8; 512];
        big[32..32 + n].copy_from_slice(&buf[..n]);
        big[1..15].copy_from_slice(MAGIC); // unaligned decoy
        let bi = BuildInfo::find(&big).unwrap();
        assert_eq!((bi.go_version, bi.modinfo), ("go1.19.8", ""));
        assert_eq!(
            BuildInfo::find(&big[..16]),
            Err(Error::NotFound {
                what: "go buildinfo"
            })
        );
    }

    #[test]
    fn errors() {
        let mut buf = [0u8; 256];
        let n = blob(&mut buf, b"go1.27.3", MODINFO);
        let mut bad = buf;
        bad[0] = 0;
        assert!(matches!(
            BuildInfo::parse(&bad[..n]),
            Err(Error::Invalid { field: "magic", .. })
        ));
        assert!(matches!(
            BuildInfo::parse(&buf[..10]),
            Err(Error::Truncated { field: "magic", .. })
        ));
        let mut bad = buf;
        bad[14] = 4;
        assert!(matches!(
            BuildInfo::parse(&bad[..n]),
            Err(Error::Unsupported {
                field: "ptrSize",
                ..
            })
        ));
        let mut bad = buf;
        bad[15] = 3; // big-endian
        assert!(matches!(
            BuildInfo::parse(&bad[..n]),
            Err(Error::Unsupported {
                field: "flags",
                offset: 15,
                ..
            })
        ));
        bad[15] = 0; // pre-1.18 pointer format
        assert!(matches!(
            BuildInfo::parse(&bad[..n]),
            Err(Error::Unsupported { field: "flags", .. })
        ));
        assert!(matches!(
            BuildInfo::parse(&buf[..36]),
            Err(Error::Truncated {
                field: "version",
                offset: 33,
                ..
            })
        ));
        assert!(matches!(
            BuildInfo::parse(&buf[..43]),
            Err(Error::Truncated {
                field: "modinfo",
                offset: 43,
                ..
            })
        ));
        let mut bad = buf;
        bad[33] = 0xff; // invalid UTF-8 in the version
        assert!(matches!(
            BuildInfo::parse(&bad[..n]),
            Err(Error::Invalid {
                field: "version",
                ..
            })
        ));
        assert!(matches!(
            BuildInfo::parse(&buf[..15]),
            Err(Error::Truncated {
                field: "flags",
                offset: 15,
                ..
            })
        ));
    }

    fn note(out: &mut [u8], at: usize, name: &[u8], kind: u32, desc: &[u8]) -> usize {
        let mut n = at;
        out[n..n + 4].copy_from_slice(&(name.len() as u32).to_le_bytes()); // namesz
        out[n + 4..n + 8].copy_from_slice(&(desc.len() as u32).to_le_bytes()); // descsz
        out[n + 8..n + 12].copy_from_slice(&kind.to_le_bytes()); // type
        n += 12;
        out[n..n + name.len()].copy_from_slice(name);
        n = (n + name.len() + 3) & !3;
        out[n..n + desc.len()].copy_from_slice(desc);
        (n + desc.len() + 3) & !3
    }

    #[test]
    fn notes_and_build_ids() {
        let mut buf = [0u8; 128];
        let n = note(&mut buf, 0, b"Go\0\0", 4, b"abc/def/ghi/jkl");
        let n = note(&mut buf, n, b"GNU\0", 3, &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(go_build_id(&buf[..n]), Ok(Some("abc/def/ghi/jkl")));
        assert_eq!(
            gnu_build_id(&buf[..n]),
            Ok(Some(&[0xde, 0xad, 0xbe, 0xef][..]))
        );
        assert_eq!(HexId::new(&[0xde, 0xad, 0x0f]).unwrap().as_str(), "dead0f");
        assert!(matches!(
            gnu_build_id(&buf[..16]),
            Err(Error::Truncated { field: "desc", .. })
        ));
        assert!(matches!(
            go_build_id(&buf[..8]),
            Err(Error::Truncated { field: "type", .. })
        ));
        let mut bad = buf;
        bad[16] = 0xff;
        assert!(matches!(
            go_build_id(&bad[..n]),
            Err(Error::Invalid { field: "desc", .. })
        ));
        let m = note(&mut buf, 0, b"GNU\0", 1, b"x");
        assert_eq!(gnu_build_id(&buf[..m]), Ok(None));
        assert_eq!(go_build_id(&buf[..m]), Ok(None));
        assert!(HexId::new(&[0; 65]).is_err());
        let mut it = notes(&buf[..5]);
        assert!(matches!(
            it.next(),
            Some(Err(Error::Truncated {
                field: "descsz",
                ..
            }))
        ));
        assert!(it.next().is_none());
    }
}
