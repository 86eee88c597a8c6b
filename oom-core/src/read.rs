//! A small bounds-checked little-endian reader: every read is `get(..)`, never `[..]`.

use crate::Error;

/// A position in a byte slice plus the structure name used in errors.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    structure: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8], structure: &'static str) -> Self {
        Self { data, structure }
    }

    pub(crate) fn truncated(&self, field: &'static str, offset: usize) -> Error {
        Error::Truncated {
            structure: self.structure,
            field,
            offset,
        }
    }

    pub(crate) fn invalid(&self, field: &'static str, offset: usize, value: u64) -> Error {
        Error::Invalid {
            structure: self.structure,
            field,
            offset,
            value,
        }
    }

    pub(crate) fn bytes(
        &self,
        off: usize,
        len: usize,
        field: &'static str,
    ) -> Result<&'a [u8], Error> {
        off.checked_add(len)
            .and_then(|end| self.data.get(off..end))
            .ok_or(self.truncated(field, off))
    }

    pub(crate) fn u8(&self, off: usize, field: &'static str) -> Result<u8, Error> {
        self.data
            .get(off)
            .copied()
            .ok_or(self.truncated(field, off))
    }

    pub(crate) fn u32(&self, off: usize, field: &'static str) -> Result<u32, Error> {
        let b = self.bytes(off, 4, field)?;
        let mut w = [0u8; 4];
        w.copy_from_slice(b);
        Ok(u32::from_le_bytes(w))
    }

    pub(crate) fn u64(&self, off: usize, field: &'static str) -> Result<u64, Error> {
        let b = self.bytes(off, 8, field)?;
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        Ok(u64::from_le_bytes(w))
    }

    /// A NUL-terminated string starting at `off` (the NUL is not included).
    pub(crate) fn cstr(&self, off: usize, field: &'static str) -> Result<&'a [u8], Error> {
        let rest = self.data.get(off..).ok_or(self.truncated(field, off))?;
        let n = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(self.truncated(field, off))?;
        Ok(rest.get(..n).unwrap_or_default())
    }

    /// An unsigned LEB128 varint at `off`; returns the value and the offset after it.
    pub(crate) fn uvarint(&self, off: usize, field: &'static str) -> Result<(u64, usize), Error> {
        let mut v: u64 = 0;
        let mut shift = 0u32;
        let mut at = off;
        loop {
            let b = self.u8(at, field)?;
            at += 1;
            if shift == 63 && b > 1 {
                return Err(self.invalid(field, off, v));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((v, at));
            }
            shift += 7;
            if shift > 63 {
                return Err(self.invalid(field, off, v));
            }
        }
    }
}

/// Reads a little-endian u32 at `off` of `data`, if it fits.
pub(crate) fn le32(data: &[u8], off: usize) -> Option<u32> {
    let b = data.get(off..off.checked_add(4)?)?;
    let mut w = [0u8; 4];
    w.copy_from_slice(b);
    Some(u32::from_le_bytes(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_bounds() {
        let r = Reader::new(&[0x01, 0x02, 0x03, 0x04, 0xff, 0xff, 0xff, 0xff, 0x00], "t");
        assert_eq!(r.u32(0, "a"), Ok(0x0403_0201));
        assert_eq!(r.u64(0, "a"), Ok(0xffff_ffff_0403_0201));
        assert_eq!(
            r.u64(2, "b"),
            Err(Error::Truncated {
                structure: "t",
                field: "b",
                offset: 2
            })
        );
        assert_eq!(
            r.bytes(usize::MAX, 2, "c"),
            Err(r.truncated("c", usize::MAX))
        );
        assert_eq!(r.cstr(4, "s"), Ok(&[0xff, 0xff, 0xff, 0xff][..]));
        assert!(Reader::new(b"ab", "t").cstr(0, "s").is_err());
    }

    #[test]
    fn uvarint_forms() {
        // 0xac 0x02 = 300
        assert_eq!(
            Reader::new(&[0xac, 0x02], "v").uvarint(0, "n"),
            Ok((300, 2))
        );
        // unterminated
        assert!(Reader::new(&[0x80], "v").uvarint(0, "n").is_err());
        // 11 bytes: overflow
        let long = [0xffu8; 11];
        assert!(matches!(
            Reader::new(&long, "v").uvarint(0, "n"),
            Err(Error::Invalid { .. })
        ));
        // 10th byte > 1 overflows u64
        let mut ten = [0xffu8; 10];
        ten[9] = 0x02;
        assert!(matches!(
            Reader::new(&ten, "v").uvarint(0, "n"),
            Err(Error::Invalid { .. })
        ));
        ten[9] = 0x01;
        assert_eq!(Reader::new(&ten, "v").uvarint(0, "n"), Ok((u64::MAX, 10)));
    }
}
