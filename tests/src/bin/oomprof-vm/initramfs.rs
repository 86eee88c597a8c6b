//! A gzip-compressed newc cpio archive, the format the kernel unpacks as its
//! initramfs (Documentation/driver-api/early-userspace/buffer-format.rst): per entry a
//! 110-byte ASCII header of 13 hex fields, the NUL-terminated name padded to 4 bytes,
//! the data padded to 4 bytes; a `TRAILER!!!` entry ends it.

use std::io::Write;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;

/// An archive being built in memory.
pub struct Archive {
    out: GzEncoder<Vec<u8>>,
    ino: u32,
}

impl Archive {
    pub fn new() -> Self {
        Self {
            out: GzEncoder::new(Vec::new(), Compression::fast()),
            ino: 1,
        }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) -> std::io::Result<()> {
        let namesize = name.len() + 1;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0, // uid
            0, // gid
            1, // nlink
            0, // mtime
            data.len(),
            0, // devmajor
            0, // devminor
            0, // rdevmajor
            0, // rdevminor
            namesize,
            0, // check
        );
        self.ino += 1;
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        pad(&mut self.out, header.len() + namesize)?;
        self.out.write_all(data)?;
        pad(&mut self.out, data.len())
    }

    /// A directory (parents first).
    pub fn dir(&mut self, name: &str) -> std::io::Result<()> {
        self.entry(name, 0o040755, &[])
    }

    /// A regular file with `mode` (permission bits) holding `data`.
    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> std::io::Result<()> {
        self.entry(name, 0o100000 | (mode & 0o7777), data)
    }

    /// A copy of the host file `from`, executable.
    pub fn copy(&mut self, name: &str, from: &Path) -> Result<(), String> {
        let data = std::fs::read(from).map_err(|e| format!("reading {}: {e}", from.display()))?;
        self.file(name, 0o755, &data)
            .map_err(|e| format!("archiving {name}: {e}"))
    }

    /// The finished archive.
    pub fn finish(mut self) -> std::io::Result<Vec<u8>> {
        self.entry("TRAILER!!!", 0, &[])?;
        self.out.finish()
    }
}

fn pad(w: &mut impl Write, len: usize) -> std::io::Result<()> {
    let n = (4 - len % 4) % 4;
    w.write_all(&[0; 3][..n])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn entries_are_aligned_and_terminated() {
        let mut a = Archive::new();
        a.dir("bin").unwrap();
        a.file("bin/x", 0o755, b"hello").unwrap();
        let gz = a.finish().unwrap();
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(raw.len() % 4, 0);
        assert!(raw.starts_with(b"070701"));
        // "bin": header 110 + name 4 = 114, padded to 116; then "bin/x" 110 + 6 = 116.
        assert_eq!(&raw[116..122], b"070701");
        assert_eq!(&raw[116 + 110..116 + 115], b"bin/x");
        assert_eq!(&raw[232..237], b"hello");
        assert!(raw.windows(b"TRAILER!!!".len()).any(|w| w == b"TRAILER!!!"));
    }
}
