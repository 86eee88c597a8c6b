//! The pprof encoder: buckets + symbolizer + mappings → a `perftools.profiles.Profile`,
//! byte for byte what `runtime/pprof` writes for a heap profile of that Go version
//! (`runtime/pprof/protomem.go`, `proto.go`, `protobuf.go`, Go 1.19–1.27), plus
//! optional `comment` strings for the capture context.
//!
//! One pass, no allocation: each nested message is written as its body, then its key
//! and length, which are rotated in front of the body (Go's technique). Dedup tables
//! live in caller storage ([`Tables`]). If `out` is too small the encoder keeps
//! counting and returns [`Error::BufferTooSmall`] with the exact size needed; it never
//! returns truncated output. Gzip is the caller's job.

use crate::bucket::{Bucket, Cycle};
use crate::pclntab::{Frame, Symbolizer};
use crate::values::{counts, unpublished, Policy, Scale};
use crate::Error;

/// Field numbers of `perftools.profiles.Profile` and its messages (profile.proto).
mod tag {
    pub const PROFILE_SAMPLE_TYPE: u32 = 1;
    pub const PROFILE_SAMPLE: u32 = 2;
    pub const PROFILE_MAPPING: u32 = 3;
    pub const PROFILE_LOCATION: u32 = 4;
    pub const PROFILE_FUNCTION: u32 = 5;
    pub const PROFILE_STRING_TABLE: u32 = 6;
    pub const PROFILE_TIME_NANOS: u32 = 9;
    pub const PROFILE_PERIOD_TYPE: u32 = 11;
    pub const PROFILE_PERIOD: u32 = 12;
    pub const PROFILE_COMMENT: u32 = 13;
    pub const PROFILE_DEFAULT_SAMPLE_TYPE: u32 = 14;

    pub const VALUE_TYPE_TYPE: u32 = 1;
    pub const VALUE_TYPE_UNIT: u32 = 2;

    pub const SAMPLE_LOCATION: u32 = 1;
    pub const SAMPLE_VALUE: u32 = 2;
    pub const SAMPLE_LABEL: u32 = 3;

    pub const LABEL_KEY: u32 = 1;
    pub const LABEL_NUM: u32 = 3;

    pub const MAPPING_ID: u32 = 1;
    pub const MAPPING_START: u32 = 2;
    pub const MAPPING_LIMIT: u32 = 3;
    pub const MAPPING_OFFSET: u32 = 4;
    pub const MAPPING_FILENAME: u32 = 5;
    pub const MAPPING_BUILD_ID: u32 = 6;
    pub const MAPPING_HAS_FUNCTIONS: u32 = 7;

    pub const LOCATION_ID: u32 = 1;
    pub const LOCATION_MAPPING_ID: u32 = 2;
    pub const LOCATION_ADDRESS: u32 = 3;
    pub const LOCATION_LINE: u32 = 4;

    pub const LINE_FUNCTION_ID: u32 = 1;
    pub const LINE_LINE: u32 = 2;

    pub const FUNCTION_ID: u32 = 1;
    pub const FUNCTION_NAME: u32 = 2;
    pub const FUNCTION_SYSTEM_NAME: u32 = 3;
    pub const FUNCTION_FILENAME: u32 = 4;
    pub const FUNCTION_START_LINE: u32 = 5;
}

const WIRE_VARINT: u32 = 0;
const WIRE_BYTES: u32 = 2;

/// Most mappings a profile can have.
pub const MAX_MAPPINGS: usize = 256;
/// Most PCs one location (an inline deck) can merge, and most frames the final-frame
/// inline expansion can add.
pub const MAX_DECK: usize = 128;
/// Most locations one sample can have: the deepest Go stack plus a final expansion.
pub const MAX_SAMPLE_LOCATIONS: usize = 1024 + MAX_DECK;

/// Sample type of the allocated objects the runtime has not published yet (counted
/// since the last completed GC cycles; whether they are still live is unknown).
pub const RECENT_OBJECTS: &str = "recent_alloc_objects";
/// Sample type of the bytes of [`RECENT_OBJECTS`].
pub const RECENT_SPACE: &str = "recent_alloc_space";

/// One executable mapping of the target, as runtime/pprof reads it from
/// `/proc/PID/maps` (runtime addresses).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mapping<'a> {
    /// Start address.
    pub start: u64,
    /// End address (exclusive).
    pub limit: u64,
    /// File offset of `start`.
    pub offset: u64,
    /// Path, with any ` (deleted)` suffix removed.
    pub filename: &'a str,
    /// Lower-case hex GNU build ID, or "" (Go never uses its own build ID here).
    pub build_id: &'a str,
}

/// What to encode besides the buckets.
#[derive(Clone, Copy, Debug)]
pub struct Profile<'a, 'c> {
    /// Scaling (its `rate` is also the profile's `period`).
    pub scale: Scale,
    /// Which counters become sample values.
    pub policy: Policy,
    /// Also write the allocations `policy` leaves out (recorded, not yet published by
    /// the runtime) as two more sample types, [`RECENT_OBJECTS`] and [`RECENT_SPACE`],
    /// after Go's four.
    pub recent: bool,
    /// Executable mappings in `/proc/PID/maps` order; empty means Go's fake mapping.
    /// At most [`MAX_MAPPINGS`].
    pub mappings: &'c [Mapping<'a>],
    /// `time_nanos` (Go writes the profile start time; 0 omits it).
    pub time_nanos: i64,
    /// `default_sample_type`: `None` for `heap` profiles, `Some("alloc_space")` for `allocs`.
    pub default_sample_type: Option<&'a str>,
    /// Free-form `comment` strings (capture reason, trigger, cgroup, completeness).
    /// Go writes none; they come last, before the string table.
    pub comments: &'c [&'a str],
}

/// One slot of the string table. Allocate with `Default` and hand to [`Tables`].
#[derive(Clone, Copy, Debug, Default)]
pub struct StringSlot<'a> {
    s: &'a str,
    /// 1 + string index, 0 when unassigned.
    index: u32,
    /// 1 + function id of the function named `s`, 0 when none.
    func: u32,
    /// For string index k, slot k holds (1 + slot number) of that string's slot.
    order: u32,
    used: bool,
}

/// One slot of the location cache. Allocate with `Default` and hand to [`Tables`].
#[derive(Clone, Copy, Debug, Default)]
pub struct LocationSlot {
    pc: u64,
    id: u32,
    npcs: u32,
}

/// One slot of the frame cache: what the symbolizer says about one PC, worked out once
/// per profile by [`symbolize`] however many stacks the PC appears in. Allocate with
/// `Default` and hand to [`symbolize`], then to [`Tables`].
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameSlot<'a> {
    pc: u64,
    used: bool,
    /// `Symbolizer::frame(pc)`; `None` when it failed (the encoder then asks the
    /// symbolizer itself, and reports the error only if it needs that PC).
    frame: Option<Frame<'a>>,
    /// `Symbolizer::name_at(pc)`, when it succeeded.
    name: Option<Option<&'a str>>,
    /// As a stack's last PC: `Some(true)` when the call at pc − 1 is inlined (Go's
    /// final-frame expansion has work), `Some(false)` when not, `None` when not worked
    /// out (not a last PC, or the tables failed).
    final_inlined: Option<bool>,
}

/// The slot of `pc` in an open-addressing frame table: (index, found).
fn frame_pos(slots: &[FrameSlot<'_>], pc: u64) -> Option<(usize, bool)> {
    let n = slots.len();
    if n == 0 {
        return None;
    }
    let mut i = slot_of(hash_pc(pc), n);
    for _ in 0..n {
        let slot = slots.get(i)?;
        if !slot.used {
            return Some((i, false));
        }
        if slot.pc == pc {
            return Some((i, true));
        }
        i += 1;
        if i == n {
            i = 0;
        }
    }
    None
}

fn cached<'s, 'a>(slots: &'s [FrameSlot<'a>], pc: u64) -> Option<&'s FrameSlot<'a>> {
    match frame_pos(slots, pc) {
        Some((i, true)) => slots.get(i),
        _ => None,
    }
}

/// The frame of return PC `pc` from a table filled by [`symbolize`]: what
/// `Symbolizer::frame(pc)` returned, without looking it up again; `None` if `pc` is
/// not in the table or its lookup failed.
pub fn cached_frame<'a>(frames: &[FrameSlot<'a>], pc: u64) -> Option<Frame<'a>> {
    cached(frames, pc).and_then(|s| s.frame)
}

/// Symbolizes every distinct PC of `buckets` once into `frames`: its frame, its
/// function name, and for a stack's last PC whether Go's final inline expansion has
/// work. [`encode`] then looks PCs up there instead of decoding pclntab again for
/// every occurrence. PCs already in `frames` are kept (start from `Default` slots for
/// each binary). Returns the number of distinct PCs in `frames`, which also sizes
/// [`Tables`] (`strings` and `locations` need at most four slots per distinct PC
/// plus a few fixed ones).
///
/// A PC whose lookup fails (malformed tables) is recorded as failed, not reported:
/// [`encode`] reports it if the profile needs that PC.
///
/// Returns [`Error::TableFull`] when `frames` would be more than half full (the table
/// is open-addressed): move it into more slots with [`rehash`] and call again; the
/// PCs symbolized so far are not looked up again.
pub fn symbolize<'a, 'b>(
    frames: &mut [FrameSlot<'a>],
    sym: &Symbolizer<'a>,
    buckets: impl IntoIterator<Item = &'b Bucket<'b>>,
) -> Result<usize, Error> {
    let full = Error::TableFull {
        table: "frames",
        capacity: frames.len(),
    };
    let mut count = frames.iter().filter(|s| s.used).count();
    let mut add = |frames: &mut [FrameSlot<'a>], pc: u64| -> Result<usize, Error> {
        let (i, found) = frame_pos(frames, pc).ok_or(full)?;
        if !found {
            if (count + 1) * 2 > frames.len() {
                return Err(full);
            }
            count += 1;
            *frames.get_mut(i).ok_or(full)? = FrameSlot {
                pc,
                used: true,
                frame: sym.frame(pc).ok(),
                name: sym.name_at(pc).ok(),
                final_inlined: None,
            };
        }
        Ok(i)
    };
    for b in buckets {
        let mut last = None;
        for pc in b.stack.iter() {
            last = Some(add(frames, pc)?);
        }
        let Some(slot) = last.and_then(|i| frames.get_mut(i)) else {
            continue;
        };
        if slot.final_inlined.is_none() {
            let mut levels = 0usize;
            if sym
                .inline_levels(slot.pc.wrapping_sub(1), |_| levels += 1)
                .is_ok()
            {
                slot.final_inlined = Some(levels >= 2);
            }
        }
    }
    Ok(count)
}

/// Moves the frame cache `from` into the (larger) table `to`, cleared first.
///
/// Returns [`Error::TableFull`] when `to` would be more than half full.
pub fn rehash<'a>(from: &[FrameSlot<'a>], to: &mut [FrameSlot<'a>]) -> Result<(), Error> {
    for s in to.iter_mut() {
        *s = FrameSlot::default();
    }
    let full = Error::TableFull {
        table: "frames",
        capacity: to.len(),
    };
    let mut count = 0usize;
    for slot in from.iter().filter(|s| s.used) {
        count += 1;
        if count * 2 > to.len() {
            return Err(full);
        }
        let (i, _) = frame_pos(to, slot.pc).ok_or(full)?;
        *to.get_mut(i).ok_or(full)? = *slot;
    }
    Ok(())
}

/// Caller-provided dedup storage for one encode.
///
/// Sizing: `strings` needs more slots than the distinct strings (7 fixed, `bytes`, two
/// per distinct function, mapping names, build IDs, comments); `locations` more slots
/// than distinct locations (at most the distinct PCs). Both are open-addressing hash
/// tables: give them at least twice what they hold. `4 × distinct PCs + 64` slots each
/// never runs out (`4 × total stack words + 64` bounds that without counting). Or start
/// small (e.g. 4096 each; [`StringSlot`] is 32 bytes, [`LocationSlot`] 16) and double on
/// [`Error::TableFull`]: a full table is an error, nothing is truncated. [`encode`]
/// clears both tables first, so they can be reused across profiles.
///
/// `frames` is read only: filled by [`symbolize`] with the same symbolizer and
/// buckets, or empty (every PC is then looked up where it is needed).
#[derive(Debug)]
pub struct Tables<'s, 'a> {
    /// String table.
    pub strings: &'s mut [StringSlot<'a>],
    /// Location cache, keyed by a location's first return PC.
    pub locations: &'s mut [LocationSlot],
    /// Frame cache from [`symbolize`], or empty.
    pub frames: &'s [FrameSlot<'a>],
}

/// The output cursor. Past the end of the buffer it only counts.
struct Out<'o> {
    buf: &'o mut [u8],
    len: usize,
}

impl Out<'_> {
    fn overflowed(&self) -> bool {
        self.len > self.buf.len()
    }

    fn byte(&mut self, b: u8) {
        if let Some(x) = self.buf.get_mut(self.len) {
            *x = b;
        }
        self.len += 1;
    }

    fn bytes(&mut self, b: &[u8]) {
        if let Some(dst) = self.buf.get_mut(self.len..self.len + b.len()) {
            dst.copy_from_slice(b);
        }
        self.len += b.len();
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.byte(v as u8 | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    fn key(&mut self, tag: u32, wire: u32) {
        self.varint(u64::from(tag << 3 | wire));
    }

    fn uint64(&mut self, tag: u32, v: u64) {
        self.key(tag, WIRE_VARINT);
        self.varint(v);
    }

    fn uint64_opt(&mut self, tag: u32, v: u64) {
        if v != 0 {
            self.uint64(tag, v);
        }
    }

    fn int64(&mut self, tag: u32, v: i64) {
        self.uint64(tag, v as u64);
    }

    fn int64_opt(&mut self, tag: u32, v: i64) {
        if v != 0 {
            self.int64(tag, v);
        }
    }

    fn string(&mut self, tag: u32, s: &str) {
        self.key(tag, WIRE_BYTES);
        self.varint(s.len() as u64);
        self.bytes(s.as_bytes());
    }

    /// Writes `key(tag) length` after the body that started at `start`, then rotates it
    /// in front of the body.
    fn end_message(&mut self, tag: u32, start: usize) {
        let body = self.len - start;
        let before = self.len;
        self.key(tag, WIRE_BYTES);
        self.varint(body as u64);
        let head = self.len - before;
        if !self.overflowed() {
            if let Some(msg) = self.buf.get_mut(start..self.len) {
                msg.rotate_right(head);
            }
        }
    }

    /// Go's `uint64s`/`int64s`: packed when more than two values.
    fn varints(&mut self, tag: u32, vals: impl Iterator<Item = u64> + Clone, n: usize) {
        if n > 2 {
            let start = self.len;
            for v in vals {
                self.varint(v);
            }
            self.end_message(tag, start);
        } else {
            for v in vals {
                self.uint64(tag, v);
            }
        }
    }
}

/// The slot of hash `h` in a table of `n` slots: the high half of `h × n`, which maps
/// hashes evenly onto any table size without a division.
fn slot_of(h: u64, n: usize) -> usize {
    ((u128::from(h) * n as u128) >> 64) as usize
}

/// The hash of a PC (Fibonacci hashing: consecutive PCs spread over the table).
fn hash_pc(pc: u64) -> u64 {
    pc.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in s.as_bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

struct Strings<'s, 'a> {
    slots: &'s mut [StringSlot<'a>],
    count: u32,
    funcs: u32,
}

impl<'a> Strings<'_, 'a> {
    /// The slot holding `s`, inserting it (without a string index) if new.
    fn slot(&mut self, s: &'a str) -> Result<usize, Error> {
        let n = self.slots.len();
        let full = Error::TableFull {
            table: "strings",
            capacity: n,
        };
        if n == 0 {
            return Err(full);
        }
        let mut i = slot_of(hash_str(s), n);
        for _ in 0..n {
            let slot = self.slots.get_mut(i).ok_or(full)?;
            if !slot.used {
                *slot = StringSlot {
                    s,
                    index: 0,
                    func: 0,
                    order: slot.order,
                    used: true,
                };
                return Ok(i);
            }
            if slot.s == s {
                return Ok(i);
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
        Err(full)
    }

    /// Go's `stringIndex`: the index of `s`, assigned in order of first use.
    fn index(&mut self, s: &'a str) -> Result<i64, Error> {
        let i = self.slot(s)?;
        let n = self.slots.len();
        let idx = self.slots.get(i).map_or(0, |x| x.index);
        if idx != 0 {
            return Ok(i64::from(idx - 1));
        }
        let k = self.count;
        let full = Error::TableFull {
            table: "strings",
            capacity: n,
        };
        self.slots.get_mut(k as usize).ok_or(full)?.order = i as u32 + 1;
        self.slots.get_mut(i).ok_or(full)?.index = k + 1;
        self.count += 1;
        Ok(i64::from(k))
    }

    /// The function id for name `s`, and whether it is new.
    fn func(&mut self, s: &'a str) -> Result<(u64, bool), Error> {
        let i = self.slot(s)?;
        let full = Error::TableFull {
            table: "strings",
            capacity: self.slots.len(),
        };
        let slot = self.slots.get_mut(i).ok_or(full)?;
        if slot.func != 0 {
            return Ok((u64::from(slot.func), false));
        }
        self.funcs += 1;
        slot.func = self.funcs;
        Ok((u64::from(self.funcs), true))
    }

    fn nth(&self, k: u32) -> &'a str {
        let slot = self.slots.get(k as usize).map_or(0, |x| x.order);
        slot.checked_sub(1)
            .and_then(|i| self.slots.get(i as usize))
            .map_or("", |x| x.s)
    }
}

struct Locations<'s> {
    slots: &'s mut [LocationSlot],
    count: u32,
}

impl Locations<'_> {
    fn pos(&self, pc: u64) -> Result<(usize, bool), Error> {
        let n = self.slots.len();
        let full = Error::TableFull {
            table: "locations",
            capacity: n,
        };
        if n == 0 {
            return Err(full);
        }
        let mut i = slot_of(hash_pc(pc), n);
        for _ in 0..n {
            let slot = self.slots.get(i).ok_or(full)?;
            if slot.id == 0 {
                return Ok((i, false));
            }
            if slot.pc == pc {
                return Ok((i, true));
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
        Err(full)
    }

    fn get(&self, pc: u64) -> Result<Option<LocationSlot>, Error> {
        let (i, found) = self.pos(pc)?;
        Ok(if found {
            self.slots.get(i).copied()
        } else {
            None
        })
    }
}

/// symbolizeFlag bits of runtime/pprof.
const LOOKUP_TRIED: u8 = 1;
const LOOKUP_FAILED: u8 = 2;

fn lookup_result(f: &Frame<'_>) -> u8 {
    if !f.is_known() || f.function.is_empty() || f.file.is_empty() || f.line == 0 {
        LOOKUP_TRIED | LOOKUP_FAILED
    } else {
        LOOKUP_TRIED
    }
}

struct Deck<'a> {
    pcs: [u64; MAX_DECK],
    frames: [Frame<'a>; MAX_DECK],
    n: usize,
    result: u8,
}

struct Encoder<'o, 's, 'a, 'c> {
    out: Out<'o>,
    strings: Strings<'s, 'a>,
    locs: Locations<'s>,
    sym: &'c Symbolizer<'a>,
    frames: &'s [FrameSlot<'a>],
    profile: &'c Profile<'a, 'c>,
    mem_flags: [u8; MAX_MAPPINGS],
    deck: Deck<'a>,
}

impl<'a> Encoder<'_, '_, 'a, '_> {
    /// `Symbolizer::frame`, from the frame cache when it holds `pc`.
    fn frame(&self, pc: u64) -> Result<Frame<'a>, Error> {
        match cached(self.frames, pc).and_then(|s| s.frame) {
            Some(f) => Ok(f),
            None => self.sym.frame(pc),
        }
    }

    /// `Symbolizer::name_at`, from the frame cache when it holds `pc`.
    fn name_at(&self, pc: u64) -> Result<Option<&'a str>, Error> {
        match cached(self.frames, pc).and_then(|s| s.name) {
            Some(n) => Ok(n),
            None => self.sym.name_at(pc),
        }
    }

    fn value_type(&mut self, tag: u32, typ: &'a str, unit: &'a str) -> Result<(), Error> {
        let start = self.out.len;
        let t = self.strings.index(typ)?;
        self.out.int64(tag::VALUE_TYPE_TYPE, t);
        let u = self.strings.index(unit)?;
        self.out.int64(tag::VALUE_TYPE_UNIT, u);
        self.out.end_message(tag, start);
        Ok(())
    }

    /// `pcDeck.tryAdd`.
    fn try_add(&mut self, pc: u64, frame: Frame<'a>) -> Result<bool, Error> {
        let d = &mut self.deck;
        if let Some(last) = d.n.checked_sub(1).and_then(|i| d.frames.get(i)) {
            if !last.inlined
                || last.entry == 0
                || frame.entry == 0
                || last.entry != frame.entry
                || last.function == frame.function
            {
                return Ok(false);
            }
        }
        let full = Error::TableFull {
            table: "deck",
            capacity: MAX_DECK,
        };
        *d.pcs.get_mut(d.n).ok_or(full)? = pc;
        *d.frames.get_mut(d.n).ok_or(full)? = frame;
        d.n += 1;
        d.result |= lookup_result(&frame);
        Ok(true)
    }

    /// `emitLocation`: writes the deck as a Location (and its new Functions); 0 if empty.
    fn emit_location(&mut self) -> Result<u64, Error> {
        let n = self.deck.n;
        if n == 0 {
            return Ok(0);
        }
        self.deck.n = 0;
        let result = core::mem::take(&mut self.deck.result);
        let addr = self.deck.pcs.first().copied().unwrap_or(0);
        let (pos, _) = self.locs.pos(addr)?;
        self.locs.count += 1;
        let id = self.locs.count;
        if let Some(slot) = self.locs.slots.get_mut(pos) {
            *slot = LocationSlot {
                pc: addr,
                id,
                npcs: n as u32,
            };
        }
        let mut new_funcs = 0usize;
        let mut new_mask = [false; MAX_DECK];
        let start = self.out.len;
        self.out.uint64_opt(tag::LOCATION_ID, u64::from(id));
        self.out.uint64_opt(
            tag::LOCATION_ADDRESS,
            self.deck.frames.first().map_or(0, |f| f.pc),
        );
        for k in 0..n {
            let f = self
                .deck
                .frames
                .get(k)
                .copied()
                .unwrap_or(Frame::unknown(0));
            let (fid, new) = self.strings.func(f.function)?;
            if new {
                new_funcs += 1;
                if let Some(m) = new_mask.get_mut(k) {
                    *m = true;
                }
            }
            let ls = self.out.len;
            self.out.uint64_opt(tag::LINE_FUNCTION_ID, fid);
            self.out.int64_opt(tag::LINE_LINE, f.line);
            self.out.end_message(tag::LOCATION_LINE, ls);
        }
        let maps = self.profile.mappings;
        let m = if maps.is_empty() {
            Some(0)
        } else {
            maps.iter().position(|m| m.start <= addr && addr < m.limit)
        };
        if let Some(i) = m {
            self.out.uint64_opt(tag::LOCATION_MAPPING_ID, i as u64 + 1);
            if let Some(fl) = self.mem_flags.get_mut(i) {
                *fl |= result;
            }
        }
        self.out.end_message(tag::PROFILE_LOCATION, start);
        if new_funcs > 0 {
            for k in 0..n {
                if !new_mask.get(k).copied().unwrap_or(false) {
                    continue;
                }
                let f = self
                    .deck
                    .frames
                    .get(k)
                    .copied()
                    .unwrap_or(Frame::unknown(0));
                let (fid, _) = self.strings.func(f.function)?;
                let start = self.out.len;
                self.out.uint64_opt(tag::FUNCTION_ID, fid);
                let name = self.strings.index(f.function)?;
                self.out.int64_opt(tag::FUNCTION_NAME, name);
                self.out.int64_opt(tag::FUNCTION_SYSTEM_NAME, name);
                let file = self.strings.index(f.file)?;
                self.out.int64_opt(tag::FUNCTION_FILENAME, file);
                if self.sym.layout().writes_start_line {
                    self.out.int64_opt(tag::FUNCTION_START_LINE, f.start_line);
                }
                self.out.end_message(tag::PROFILE_FUNCTION, start);
            }
        }
        Ok(u64::from(id))
    }

    /// `runtime_expandFinalInlineFrame`: the inline parents of the last PC, if inlined.
    /// Returns the replacement tail (its length in `tail`), or `None` to keep the stack.
    fn expand_final(&self, last: u64, tail: &mut [u64; MAX_DECK]) -> Result<Option<usize>, Error> {
        if cached(self.frames, last).and_then(|s| s.final_inlined) == Some(false) {
            return Ok(None); // known not inlined: the common case, no table walk
        }
        let sym = self.sym;
        let call = last.wrapping_sub(1);
        let mut levels = [crate::pclntab::InlineLevel { pc: 0, func_id: 0 }; MAX_DECK + 1];
        let mut n = 0usize;
        let mut over = false;
        sym.inline_levels(call, |l| {
            if let Some(x) = levels.get_mut(n) {
                *x = l;
                n += 1;
            } else {
                over = true;
            }
        })?;
        if over {
            return Err(Error::TableFull {
                table: "deck",
                capacity: MAX_DECK,
            });
        }
        if n < 2 {
            return Ok(None); // not inlined (or not Go)
        }
        // Go 1.21+ applies the wrapper rule to the physical frame too; 1.19/1.20 always keep it.
        let unwinder = sym.layout().version.minor >= 21;
        let normal = 0u8;
        let mut callee = normal;
        let mut k = 0usize;
        for (i, l) in levels.iter().take(n).enumerate() {
            let physical = i + 1 == n;
            let skip = sym.elides_wrapper(l.func_id, callee) && (unwinder || !physical);
            if !skip {
                *tail.get_mut(k).ok_or(Error::TableFull {
                    table: "deck",
                    capacity: MAX_DECK,
                })? = l.pc.wrapping_add(1);
                k += 1;
            }
            callee = l.func_id;
        }
        Ok(Some(k))
    }

    /// `appendLocsForStack`: location ids of `stk` into `locs`, returning how many.
    fn locations_for(
        &mut self,
        stk: &[u64],
        locs: &mut [u64; MAX_SAMPLE_LOCATIONS],
    ) -> Result<usize, Error> {
        let mut nlocs = 0usize;
        let full = Error::TableFull {
            table: "sample locations",
            capacity: MAX_SAMPLE_LOCATIONS,
        };
        let mut push = |locs: &mut [u64; MAX_SAMPLE_LOCATIONS], id: u64| -> Result<(), Error> {
            *locs.get_mut(nlocs).ok_or(full)? = id;
            nlocs += 1;
            Ok(())
        };
        self.deck.n = 0;
        self.deck.result = 0;
        let mut tail = [0u64; MAX_DECK];
        let (head, ntail) = match stk.split_last() {
            Some((&last, head)) => match self.expand_final(last, &mut tail)? {
                Some(k) => (head, k),
                None => (stk, 0),
            },
            None => (stk, 0),
        };
        let total = head.len() + ntail;
        let word = |i: usize| -> u64 {
            if i < head.len() {
                head.get(i).copied().unwrap_or(0)
            } else {
                tail.get(i - head.len()).copied().unwrap_or(0)
            }
        };
        let mut i = 0usize;
        while i < total {
            let addr = word(i);
            if let Some(l) = self.locs.get(addr)? {
                if self.deck.n > 0 {
                    let f = self.frame(addr)?;
                    if self.try_add(addr, f)? {
                        i += 1;
                        continue;
                    }
                }
                let id = self.emit_location()?;
                if id > 0 {
                    push(locs, id)?;
                }
                push(locs, u64::from(l.id))?;
                i = i.saturating_add(l.npcs as usize);
                continue;
            }
            let f = self.frame(addr)?;
            if f.function == "runtime.goexit" {
                let id = self.emit_location()?;
                if id > 0 {
                    push(locs, id)?;
                }
                i += 1;
                continue;
            }
            if self.try_add(addr, f)? {
                i += 1;
                continue;
            }
            let id = self.emit_location()?;
            if id > 0 {
                push(locs, id)?;
            }
            if let Some(l) = self.locs.get(addr)? {
                push(locs, u64::from(l.id))?;
                i = i.saturating_add(l.npcs as usize);
            } else {
                self.try_add(addr, f)?;
                i += 1;
            }
        }
        let id = self.emit_location()?;
        if id > 0 {
            push(locs, id)?;
        }
        Ok(nlocs)
    }

    fn hidden(&self, name: &str) -> bool {
        name.starts_with("runtime.")
            || (self.sym.layout().hides_internal_runtime && name.starts_with("internal/runtime/"))
    }

    fn sample(
        &mut self,
        b: &Bucket<'_>,
        stk: &mut [u64; 1024],
        locs: &mut [u64; MAX_SAMPLE_LOCATIONS],
    ) -> Result<(), Error> {
        let n = b.stack.len();
        if n > stk.len() {
            return Err(Error::Invalid {
                structure: "bucket",
                field: "stack",
                offset: 0,
                value: n as u64,
            });
        }
        for (dst, pc) in stk.iter_mut().zip(b.stack.iter()) {
            *dst = pc;
        }
        let words = stk.get(..n).unwrap_or_default();
        let mut nlocs = 0;
        for hide in [true, false] {
            let mut s = words;
            if hide {
                for (i, &pc) in words.iter().enumerate() {
                    match self.name_at(pc)? {
                        Some(name) if self.hidden(name) => continue,
                        _ => {}
                    }
                    s = words.get(i..).unwrap_or_default();
                    break;
                }
            }
            nlocs = self.locations_for(s, locs)?;
            if nlocs > 0 {
                break;
            }
        }
        let c = counts(&b.record, self.profile.policy);
        let v = self.profile.scale.values(c, b.size).to_array();
        let recent = if self.profile.recent {
            let u = unpublished(&b.record, self.profile.policy);
            let r = self.profile.scale.values(
                Cycle {
                    allocs: u.allocs,
                    frees: 0,
                },
                b.size,
            );
            [r.alloc_objects, r.alloc_space]
        } else {
            [0; 2]
        };
        let nrecent = if self.profile.recent { 2 } else { 0 };
        let start = self.out.len;
        let all = v.iter().chain(recent.iter().take(nrecent));
        self.out
            .varints(tag::SAMPLE_VALUE, all.map(|&x| x as u64), v.len() + nrecent);
        let ids = locs.get(..nlocs).unwrap_or_default();
        self.out
            .varints(tag::SAMPLE_LOCATION, ids.iter().copied(), ids.len());
        if let Some(num) = self.profile.scale.bytes_label(c, b.size) {
            let ls = self.out.len;
            let key = self.strings.index("bytes")?;
            self.out.int64_opt(tag::LABEL_KEY, key);
            self.out.int64_opt(tag::LABEL_NUM, num);
            self.out.end_message(tag::SAMPLE_LABEL, ls);
        }
        self.out.end_message(tag::PROFILE_SAMPLE, start);
        Ok(())
    }
}

/// Encodes a heap profile of `buckets` into `out`; returns the number of bytes written.
///
/// Samples come in bucket order (runtime order is newest first), one per bucket, zero
/// values included, as runtime/pprof does.
///
/// Returns [`Error::BufferTooSmall`] with the exact size needed if `out` is too small,
/// [`Error::TableFull`] if a table in `tables` is, and symbolization errors from
/// malformed tables.
pub fn encode<'a, 'b>(
    out: &mut [u8],
    tables: Tables<'_, 'a>,
    sym: &Symbolizer<'a>,
    profile: &Profile<'a, '_>,
    buckets: impl IntoIterator<Item = &'b Bucket<'b>>,
) -> Result<usize, Error> {
    if profile.mappings.len() > MAX_MAPPINGS {
        return Err(Error::TableFull {
            table: "mappings",
            capacity: MAX_MAPPINGS,
        });
    }
    for s in tables.strings.iter_mut() {
        *s = StringSlot::default();
    }
    for l in tables.locations.iter_mut() {
        *l = LocationSlot::default();
    }
    let mut e = Encoder {
        out: Out { buf: out, len: 0 },
        strings: Strings {
            slots: tables.strings,
            count: 0,
            funcs: 0,
        },
        locs: Locations {
            slots: tables.locations,
            count: 0,
        },
        sym,
        frames: tables.frames,
        profile,
        mem_flags: [0; MAX_MAPPINGS],
        deck: Deck {
            pcs: [0; MAX_DECK],
            frames: [Frame::unknown(0); MAX_DECK],
            n: 0,
            result: 0,
        },
    };
    e.strings.index("")?;
    e.value_type(tag::PROFILE_PERIOD_TYPE, "space", "bytes")?;
    e.out.int64_opt(tag::PROFILE_PERIOD, profile.scale.rate);
    e.value_type(tag::PROFILE_SAMPLE_TYPE, "alloc_objects", "count")?;
    e.value_type(tag::PROFILE_SAMPLE_TYPE, "alloc_space", "bytes")?;
    e.value_type(tag::PROFILE_SAMPLE_TYPE, "inuse_objects", "count")?;
    e.value_type(tag::PROFILE_SAMPLE_TYPE, "inuse_space", "bytes")?;
    if profile.recent {
        e.value_type(tag::PROFILE_SAMPLE_TYPE, RECENT_OBJECTS, "count")?;
        e.value_type(tag::PROFILE_SAMPLE_TYPE, RECENT_SPACE, "bytes")?;
    }
    if let Some(d) = profile.default_sample_type {
        let i = e.strings.index(d)?;
        e.out.int64_opt(tag::PROFILE_DEFAULT_SAMPLE_TYPE, i);
    }
    let mut stk = [0u64; 1024];
    let mut locs = [0u64; MAX_SAMPLE_LOCATIONS];
    for b in buckets {
        e.sample(b, &mut stk, &mut locs)?;
    }
    e.out.int64_opt(tag::PROFILE_TIME_NANOS, profile.time_nanos);
    let fake = [Mapping::default()];
    let maps = if profile.mappings.is_empty() {
        &fake[..]
    } else {
        profile.mappings
    };
    for (i, m) in maps.iter().enumerate() {
        let start = e.out.len;
        e.out.uint64_opt(tag::MAPPING_ID, i as u64 + 1);
        e.out.uint64_opt(tag::MAPPING_START, m.start);
        e.out.uint64_opt(tag::MAPPING_LIMIT, m.limit);
        e.out.uint64_opt(tag::MAPPING_OFFSET, m.offset);
        let f = e.strings.index(m.filename)?;
        e.out.int64_opt(tag::MAPPING_FILENAME, f);
        let b = e.strings.index(m.build_id)?;
        e.out.int64_opt(tag::MAPPING_BUILD_ID, b);
        if e.mem_flags.get(i).copied() == Some(LOOKUP_TRIED) {
            e.out.uint64(tag::MAPPING_HAS_FUNCTIONS, 1);
        }
        e.out.end_message(tag::PROFILE_MAPPING, start);
    }
    let mut ncomments = 0usize;
    let mut comment_ids = [0u64; 16];
    for &c in profile.comments.iter() {
        let i = e.strings.index(c)?;
        *comment_ids.get_mut(ncomments).ok_or(Error::TableFull {
            table: "comments",
            capacity: 16,
        })? = i as u64;
        ncomments += 1;
    }
    let ids = comment_ids.get(..ncomments).unwrap_or_default();
    e.out
        .varints(tag::PROFILE_COMMENT, ids.iter().copied(), ids.len());
    for k in 0..e.strings.count {
        let s = e.strings.nth(k);
        e.out.string(tag::PROFILE_STRING_TABLE, s);
    }
    if e.out.overflowed() {
        return Err(Error::BufferTooSmall { needed: e.out.len });
    }
    Ok(e.out.len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::{Cycle, MemRecord, Stack};
    use crate::layout::{GoVersion, Layout};
    use crate::pclntab::{testdata, Pclntab};
    use crate::values::Exp;
    use quick_protobuf::BytesReader;
    use std::vec::Vec;

    fn layout(minor: u16) -> Layout {
        Layout::for_version(GoVersion { minor, patch: 0 }).unwrap()
    }

    fn words(pcs: &[u64]) -> Vec<u8> {
        pcs.iter().flat_map(|p| p.to_le_bytes()).collect()
    }

    fn bucket(stack: &[u8], size: u64, allocs: u64, frees: u64) -> Bucket<'_> {
        let active = Cycle { allocs, frees };
        Bucket {
            size,
            stack: Stack::new(stack).unwrap(),
            record: MemRecord {
                active,
                future: [Cycle::default(); 3],
            },
        }
    }

    /// Top-level fields: (field number, varint value or nested bytes).
    #[derive(Debug)]
    enum V<'a> {
        Int(u64),
        Bytes(&'a [u8]),
    }

    fn fields(buf: &[u8]) -> Vec<(u32, V<'_>)> {
        let mut r = BytesReader::from_bytes(buf);
        let mut out = Vec::new();
        while !r.is_eof() {
            let tag = r.next_tag(buf).unwrap();
            let v = match tag & 7 {
                0 => V::Int(r.read_uint64(buf).unwrap()),
                2 => V::Bytes(r.read_bytes(buf).unwrap()),
                w => panic!("wire type {w}"),
            };
            out.push((tag >> 3, v));
        }
        out
    }

    fn strings_of(buf: &[u8]) -> Vec<&str> {
        fields(buf)
            .into_iter()
            .filter_map(|(f, v)| match (f, v) {
                (6, V::Bytes(b)) => Some(core::str::from_utf8(b).unwrap()),
                _ => None,
            })
            .collect()
    }

    fn encode_with(
        minor: u16,
        buckets: &[Bucket<'_>],
        maps: &[Mapping<'_>],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let (t, g) = testdata::tables();
        let sym = Symbolizer::new(
            Pclntab::parse(&t).unwrap(),
            0x1000,
            &g,
            crate::pclntab::LoadBias(0),
            layout(minor),
        );
        let profile = Profile {
            scale: Scale::new(4096, Exp::Portable, layout(minor)).unwrap(),
            policy: Policy::Latest,
            mappings: maps,
            time_nanos: 0,
            recent: false,
            default_sample_type: None,
            comments: &[],
        };
        let mut strings = [StringSlot::default(); 64];
        let mut locs = [LocationSlot::default(); 64];
        let plain = encode(
            out,
            Tables {
                strings: &mut strings,
                locations: &mut locs,
                frames: &[],
            },
            &sym,
            &profile,
            buckets,
        );
        // Every test also checks that the frame cache changes no byte.
        let mut frames = [FrameSlot::default(); 256];
        let distinct = symbolize(&mut frames, &sym, buckets).unwrap();
        let words: std::collections::BTreeSet<u64> =
            buckets.iter().flat_map(|b| b.stack.iter()).collect();
        assert_eq!(distinct, words.len());
        let mut again = std::vec![0u8; out.len()];
        let cached = encode(
            &mut again,
            Tables {
                strings: &mut strings,
                locations: &mut locs,
                frames: &frames,
            },
            &sym,
            &profile,
            buckets,
        );
        assert_eq!(plain, cached, "with the frame cache");
        if let Ok(n) = plain {
            assert_eq!(out[..n], again[..n], "with the frame cache");
        }
        plain
    }

    #[test]
    fn symbolize_refuses_a_table_more_than_half_full() {
        let (t, g) = testdata::tables();
        let sym = Symbolizer::new(
            Pclntab::parse(&t).unwrap(),
            0x1000,
            &g,
            crate::pclntab::LoadBias(0),
            layout(27),
        );
        let stack = words(&[0x1010, 0x1020, 0x1030]);
        let b = [bucket(&stack, 8, 1, 0)];
        let mut small = [FrameSlot::default(); 5];
        assert!(matches!(
            symbolize(&mut small, &sym, &b),
            Err(Error::TableFull {
                table: "frames",
                capacity: 5
            })
        ));
        let mut enough = [FrameSlot::default(); 6];
        assert_eq!(symbolize(&mut enough, &sym, &b), Ok(3));
        assert_eq!(cached_frame(&enough, 0x1020), sym.frame(0x1020).ok());
        assert_eq!(cached_frame(&enough, 0x1040), None);
        // What the small table took moves over, and the rest is added.
        let mut tiny = [FrameSlot::default(); 2];
        assert!(symbolize(&mut tiny, &sym, &b).is_err());
        assert_eq!(tiny.iter().filter(|s| s.used).count(), 1);
        assert!(rehash(&enough, &mut tiny).is_err());
        let mut grown = [FrameSlot::default(); 8];
        rehash(&tiny, &mut grown).unwrap();
        assert_eq!(symbolize(&mut grown, &sym, &b), Ok(3));
        for pc in [0x1010, 0x1020, 0x1030] {
            assert_eq!(cached_frame(&grown, pc), sym.frame(pc).ok());
        }
        // An empty table holds nothing.
        assert!(symbolize(&mut [], &sym, &b).is_err());
        assert_eq!(symbolize(&mut [], &sym, &[]), Ok(0));
    }

    #[test]
    fn empty_profile_bytes() {
        let mut out = [0u8; 256];
        let n = encode_with(27, &[], &[], &mut out).unwrap();
        #[rustfmt::skip]
        let want: &[u8] = &[
            0x5a, 0x04, 0x08, 0x01, 0x10, 0x02,       // period_type {type: 1 "space", unit: 2 "bytes"}
            0x60, 0x80, 0x20,                         // period 4096
            0x0a, 0x04, 0x08, 0x03, 0x10, 0x04,       // sample_type {3 "alloc_objects", 4 "count"}
            0x0a, 0x04, 0x08, 0x05, 0x10, 0x02,       // sample_type {5 "alloc_space", 2 "bytes"}
            0x0a, 0x04, 0x08, 0x06, 0x10, 0x04,       // sample_type {6 "inuse_objects", 4 "count"}
            0x0a, 0x04, 0x08, 0x07, 0x10, 0x02,       // sample_type {7 "inuse_space", 2 "bytes"}
            0x1a, 0x02, 0x08, 0x01,                   // mapping {id 1} (Go's fake mapping)
            0x32, 0x00,                               // string_table[0] ""
        ];
        assert_eq!(&out[..want.len()], want);
        assert_eq!(
            strings_of(&out[..n]),
            [
                "",
                "space",
                "bytes",
                "alloc_objects",
                "count",
                "alloc_space",
                "inuse_objects",
                "inuse_space"
            ]
        );
    }

    #[test]
    fn inline_decks_hidden_runtime_and_final_expansion() {
        let (s1, s2, s3, s4) = (
            words(&[0x1015, 0x1031]),
            words(&[0x1050, 0x1008]),
            words(&[0x1050]),
            words(&[0x1008, 0x1015]),
        );
        let buckets = [
            bucket(&s1, 48, 2, 1),
            bucket(&s2, 16, 1, 0),
            bucket(&s3, 32, 0, 0),
            bucket(&s4, 48, 1, 1),
        ];
        let maps = [Mapping {
            start: 0x1000,
            limit: 0x2000,
            offset: 0,
            filename: "/bin/x",
            build_id: "abcd",
        }];
        let mut out = [0u8; 1024];
        let n = encode_with(27, &buckets, &maps, &mut out).unwrap();
        let f = fields(&out[..n]);
        let locs: Vec<&[u8]> = f
            .iter()
            .filter_map(|(k, v)| matches!(k, 4).then_some(v))
            .map(|v| if let V::Bytes(b) = v { *b } else { &[] })
            .collect();
        // 0x1015+0x1031 (one deck), 0x1008, 0x1050: three locations.
        assert_eq!(locs.len(), 3);
        let l1 = fields(locs[0]);
        assert!(matches!(l1[0], (1, V::Int(1))) && matches!(l1[1], (3, V::Int(0x1014))));
        assert_eq!(
            l1.iter().filter(|(k, _)| *k == 4).count(),
            2,
            "two lines: main.inner, main.outer"
        );
        assert!(
            matches!(l1.last(), Some((2, V::Int(1)))),
            "mapping_id comes last"
        );
        let samples: Vec<Vec<u64>> = f
            .iter()
            .filter_map(|(k, v)| match (k, v) {
                (2, V::Bytes(b)) => Some(b),
                _ => None,
            })
            .map(|b| {
                fields(b)
                    .into_iter()
                    .filter_map(|(k, v)| match (k, v) {
                        (1, V::Int(id)) => Some(id),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        assert_eq!(
            samples,
            [std::vec![1], std::vec![2], std::vec![3], std::vec![2, 1]]
        );
        assert_eq!(
            strings_of(&out[..n]),
            [
                "",
                "space",
                "bytes",
                "alloc_objects",
                "count",
                "alloc_space",
                "inuse_objects",
                "inuse_space",
                "main.inner",
                "/src/main.go",
                "main.outer",
                "runtime.malg",
                "/bin/x",
                "abcd"
            ]
        );
        // has_functions: every location symbolized.
        let m = f
            .iter()
            .find_map(|(k, v)| {
                if let (3, V::Bytes(b)) = (k, v) {
                    Some(*b)
                } else {
                    None
                }
            })
            .unwrap();
        assert!(fields(m)
            .iter()
            .any(|(k, v)| matches!((k, v), (7, V::Int(1)))));
    }

    #[test]
    fn go119_omits_start_line_and_zero_bytes_label() {
        let s = words(&[0x1008]);
        let buckets = [bucket(&s, 48, 0, 0)];
        let mut out = [0u8; 512];
        let n = encode_with(19, &buckets, &[], &mut out).unwrap();
        let f = fields(&out[..n]);
        let func = f
            .iter()
            .find_map(|(k, v)| {
                if let (5, V::Bytes(b)) = (k, v) {
                    Some(*b)
                } else {
                    None
                }
            })
            .unwrap();
        assert!(
            fields(func).iter().all(|(k, _)| *k != 5),
            "no start_line in 1.19"
        );
        assert!(
            !strings_of(&out[..n])[8..].contains(&"bytes"),
            "no label without allocations"
        );
        let n27 = encode_with(27, &buckets, &[], &mut out).unwrap();
        assert!(
            strings_of(&out[..n27])
                .iter()
                .filter(|s| **s == "bytes")
                .count()
                == 1
        );
    }

    #[test]
    fn stacks_deeper_than_go_allows_are_errors() {
        let s = words(&[0x1008; 1025]);
        let buckets = [bucket(&s, 48, 1, 0)];
        let mut out = [0u8; 256];
        assert_eq!(
            encode_with(27, &buckets, &[], &mut out),
            Err(Error::Invalid {
                structure: "bucket",
                field: "stack",
                offset: 0,
                value: 1025
            })
        );
    }

    #[test]
    fn too_small_reports_exact_size() {
        let s = words(&[0x1015, 0x1031, 0x2000]);
        let buckets = [bucket(&s, 48, 3, 1)];
        let mut big = [0u8; 1024];
        let n = encode_with(27, &buckets, &[], &mut big).unwrap();
        for len in [0, 1, n / 2, n - 1] {
            let mut small = std::vec![0u8; len];
            assert_eq!(
                encode_with(27, &buckets, &[], &mut small),
                Err(Error::BufferTooSmall { needed: n })
            );
        }
        let mut exact = std::vec![0u8; n];
        assert_eq!(encode_with(27, &buckets, &[], &mut exact), Ok(n));
        assert_eq!(&exact[..], &big[..n]);
    }

    #[test]
    fn full_tables_are_errors() {
        let (t, g) = testdata::tables();
        let sym = Symbolizer::new(
            Pclntab::parse(&t).unwrap(),
            0x1000,
            &g,
            crate::pclntab::LoadBias(0),
            layout(27),
        );
        let s = words(&[0x1008]);
        let buckets = [bucket(&s, 48, 3, 1)];
        let profile = Profile {
            scale: Scale::new(4096, Exp::Portable, layout(27)).unwrap(),
            policy: Policy::Latest,
            mappings: &[],
            time_nanos: 0,
            recent: false,
            default_sample_type: Some("alloc_space"),
            comments: &["reason=oom"],
        };
        let mut out = [0u8; 1024];
        let mut strings = [StringSlot::default(); 5];
        let mut locs = [LocationSlot::default(); 8];
        let r = encode(
            &mut out,
            Tables {
                strings: &mut strings,
                locations: &mut locs,
                frames: &[],
            },
            &sym,
            &profile,
            &buckets,
        );
        assert_eq!(
            r,
            Err(Error::TableFull {
                table: "strings",
                capacity: 5
            })
        );
        let mut strings = [StringSlot::default(); 32];
        let r = encode(
            &mut out,
            Tables {
                strings: &mut strings,
                locations: &mut [],
                frames: &[],
            },
            &sym,
            &profile,
            &buckets,
        );
        assert_eq!(
            r,
            Err(Error::TableFull {
                table: "locations",
                capacity: 0
            })
        );
        let maps = [Mapping::default(); MAX_MAPPINGS + 1];
        let p2 = Profile {
            mappings: &maps,
            ..profile
        };
        let r = encode(
            &mut out,
            Tables {
                strings: &mut strings,
                locations: &mut locs,
                frames: &[],
            },
            &sym,
            &p2,
            &buckets,
        );
        assert_eq!(
            r,
            Err(Error::TableFull {
                table: "mappings",
                capacity: MAX_MAPPINGS
            })
        );
        let many = ["c"; 17];
        let p3 = Profile {
            comments: &many,
            ..profile
        };
        let r = encode(
            &mut out,
            Tables {
                strings: &mut strings,
                locations: &mut locs,
                frames: &[],
            },
            &sym,
            &p3,
            &buckets,
        );
        assert_eq!(
            r,
            Err(Error::TableFull {
                table: "comments",
                capacity: 16
            })
        );
        let n = encode(
            &mut out,
            Tables {
                strings: &mut strings,
                locations: &mut locs,
                frames: &[],
            },
            &sym,
            &profile,
            &buckets,
        )
        .unwrap();
        let all = strings_of(&out[..n]);
        assert!(all.contains(&"alloc_space") && all.last() == Some(&"reason=oom"));
    }

    #[test]
    fn unknown_pcs_get_an_empty_function_and_no_has_functions() {
        let s = words(&[0x9000]);
        let buckets = [bucket(&s, 16, 1, 0)];
        let maps = [Mapping {
            start: 0x1000,
            limit: 0x10000,
            offset: 0,
            filename: "/bin/x",
            build_id: "",
        }];
        let mut out = [0u8; 512];
        let n = encode_with(27, &buckets, &maps, &mut out).unwrap();
        let f = fields(&out[..n]);
        let m = f
            .iter()
            .find_map(|(k, v)| {
                if let (3, V::Bytes(b)) = (k, v) {
                    Some(*b)
                } else {
                    None
                }
            })
            .unwrap();
        assert!(fields(m).iter().all(|(k, _)| *k != 7));
        let loc = f
            .iter()
            .find_map(|(k, v)| {
                if let (4, V::Bytes(b)) = (k, v) {
                    Some(*b)
                } else {
                    None
                }
            })
            .unwrap();
        assert!(matches!(fields(loc)[1], (3, V::Int(0x8fff))));
    }
}
