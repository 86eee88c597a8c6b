//! Checked length-delimited reads, called by the generated decoder (`profiles.rs`)
//! in place of quick-protobuf's own (`oom-cli/proto/generate.sh` rewrites the calls).
//!
//! quick-protobuf 0.8.1's `BytesReader::read_len` takes a nested length on trust: it
//! sets the inner end to `start + len` without comparing it with the enclosing
//! message's end. An overlong length then reads the bytes after its parent as its
//! own, and leaves the parent's cursor past the parent's end, where `len()` and
//! `read_unknown` compute `end - start` and underflow: a panic with overflow checks
//! (tests, fuzzing), a wrapped cursor without.
//! <https://github.com/tafia/quick-protobuf/blob/v0.8.1/quick-protobuf/src/reader.rs>
//!
//! Here a length is compared with what is left of the enclosing message before
//! anything is read, and a nested message is decoded by a fresh reader over exactly
//! its own bytes. So every reader's end is the end of the slice it reads, which the
//! remaining unchecked reads (varints, fixed-width values, `read_unknown`, which
//! checks its own length) never pass.

use quick_protobuf::{BytesReader, Error, MessageRead, Result};

/// The next length-delimited field's bytes (after its length), consumed from `r`.
///
/// Returns an error if the length is malformed or longer than what is left of the
/// enclosing message.
pub(super) fn bytes<'a>(r: &mut BytesReader, bytes: &'a [u8]) -> Result<&'a [u8]> {
    // quick-protobuf reads the length as a varint32, dropping bits above 32; read it
    // whole first, so a length of 2^32 + 3 is too long rather than 3.
    let mut peek = r.clone();
    let len = peek.read_varint64(bytes)?;
    if len > peek.len() as u64 {
        return Err(Error::UnexpectedEndOfBuffer);
    }
    r.read_bytes(bytes)
}

/// The next nested message, decoded by a reader over exactly its bytes. Errors name
/// the message: `Sample: Label: Unexpected end of buffer`.
///
/// Returns an error if its length overruns the enclosing message or its bytes do not
/// decode.
pub(super) fn message<'a, M: MessageRead<'a>>(r: &mut BytesReader, bytes: &'a [u8]) -> Result<M> {
    let inner = self::bytes(r, bytes).map_err(within::<M>)?;
    M::from_reader(&mut BytesReader::from_bytes(inner), inner).map_err(within::<M>)
}

/// Appends the values of one packed run (a length-delimited run of varints) to `out`.
/// Several runs of one field concatenate, as protobuf requires.
///
/// Returns an error if the run's length overruns the enclosing message or a value in
/// it is malformed or cut off.
pub(super) fn packed<'a, T>(
    r: &mut BytesReader,
    bytes: &'a [u8],
    out: &mut Vec<T>,
    mut read: impl FnMut(&mut BytesReader, &'a [u8]) -> Result<T>,
) -> Result<()> {
    let run = self::bytes(r, bytes)?;
    let mut values = BytesReader::from_bytes(run);
    while !values.is_eof() {
        out.push(read(&mut values, run)?);
    }
    Ok(())
}

/// `e` as an error inside message `M`, named by its type's last path segment
/// (`type_name` is only for messages like this one: its format is not promised).
fn within<M>(e: Error) -> Error {
    let path = std::any::type_name::<M>();
    let path = path.split('<').next().unwrap_or(path); // `Profile<'_>`
    let name = path.rsplit("::").next().unwrap_or(path);
    Error::Message(format!("{name}: {}", detail(&e)))
}

/// `e` in words, without the "Error while parsing message" prefix quick-protobuf puts
/// on the errors [`message`] makes.
pub(super) fn detail(e: &Error) -> String {
    match e {
        Error::Message(m) => m.clone(),
        e => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message of one field: a length-delimited field 1 holding `inner`.
    #[derive(Debug, Default, PartialEq)]
    struct Holder<'a>(Option<&'a [u8]>);

    impl<'a> MessageRead<'a> for Holder<'a> {
        fn from_reader(r: &mut BytesReader, b: &'a [u8]) -> Result<Self> {
            let mut h = Holder::default();
            while !r.is_eof() {
                match r.next_tag(b)? {
                    10 => h.0 = Some(bytes(r, b)?),
                    t => r.read_unknown(b, t)?,
                }
            }
            Ok(h)
        }
    }

    fn decode<'a, M: MessageRead<'a>>(b: &'a [u8]) -> Result<M> {
        M::from_reader(&mut BytesReader::from_bytes(b), b)
    }

    #[test]
    fn bytes_within_the_parent_are_read() {
        // field 1, length 2, "ab"; then field 2 varint 7 (skipped)
        let data = [0x0a, 0x02, b'a', b'b', 0x10, 0x07];
        assert_eq!(decode::<Holder>(&data).unwrap(), Holder(Some(b"ab")));
    }

    #[test]
    fn bytes_past_the_buffer_are_an_error() {
        // field 1, length 5, only 2 bytes follow
        let data = [0x0a, 0x05, b'a', b'b'];
        assert!(matches!(
            decode::<Holder>(&data),
            Err(Error::UnexpectedEndOfBuffer)
        ));
    }

    #[test]
    fn length_above_32_bits_is_not_truncated() {
        // field 1, length 2^32 + 1 (varint 81 80 80 80 10), then one byte: quick-
        // protobuf's varint32 would read the length as 1 and take b"x".
        let data = [0x0a, 0x81, 0x80, 0x80, 0x80, 0x10, b'x'];
        assert!(decode::<Holder>(&data).is_err());
    }

    /// A message of one nested `Holder` in field 1, then any fields.
    #[derive(Debug, Default, PartialEq)]
    struct Outer<'a>(Option<Holder<'a>>, u64);

    impl<'a> MessageRead<'a> for Outer<'a> {
        fn from_reader(r: &mut BytesReader, b: &'a [u8]) -> Result<Self> {
            let mut o = Outer::default();
            while !r.is_eof() {
                match r.next_tag(b)? {
                    10 => o.0 = Some(message(r, b)?),
                    16 => o.1 = r.read_uint64(b)?,
                    t => r.read_unknown(b, t)?,
                }
            }
            Ok(o)
        }
    }

    #[test]
    fn length_past_the_parent_is_an_error_not_a_read_of_the_parent() {
        // Outer field 1: a Holder of 3 bytes [0a 04 'a'] whose field claims 4 bytes,
        // 3 more than the Holder has; the buffer has them (Outer's field 2 = 7, and
        // an unknown length-delimited field 3). quick-protobuf's own read_message
        // would take b"a\x10\x07\x1a" and then underflow in read_unknown.
        let data = [0x0a, 0x03, 0x0a, 0x04, b'a', 0x10, 0x07, 0x1a, 0x00];
        let e = decode::<Outer>(&data).unwrap_err();
        assert_eq!(detail(&e), "Holder: Unexpected end of buffer");
    }

    #[test]
    fn nested_messages_within_bounds_decode() {
        let data = [0x0a, 0x03, 0x0a, 0x01, b'a', 0x10, 0x07];
        assert_eq!(
            decode::<Outer>(&data).unwrap(),
            Outer(Some(Holder(Some(b"a"))), 7)
        );
    }

    /// Packed or unpacked varints in field 1.
    #[derive(Debug, Default, PartialEq)]
    struct Values(Vec<u64>);

    impl<'a> MessageRead<'a> for Values {
        fn from_reader(r: &mut BytesReader, b: &'a [u8]) -> Result<Self> {
            let mut v = Values::default();
            while !r.is_eof() {
                match r.next_tag(b)? {
                    10 => packed(r, b, &mut v.0, BytesReader::read_uint64)?,
                    8 => v.0.push(r.read_uint64(b)?),
                    t => r.read_unknown(b, t)?,
                }
            }
            Ok(v)
        }
    }

    #[test]
    fn packed_runs_concatenate_with_unpacked_values() {
        // run [1, 300], unpacked 5, run [2]
        let data = [0x0a, 0x03, 0x01, 0xac, 0x02, 0x08, 0x05, 0x0a, 0x01, 0x02];
        assert_eq!(decode::<Values>(&data).unwrap(), Values(vec![1, 300, 5, 2]));
    }

    #[test]
    fn packed_run_with_a_cut_varint_is_an_error() {
        // run of 1 byte holding the first byte of a two-byte varint; the next byte
        // (outside the run) would complete it.
        let data = [0x0a, 0x01, 0xac, 0x02];
        assert!(decode::<Values>(&data).is_err());
    }
}
