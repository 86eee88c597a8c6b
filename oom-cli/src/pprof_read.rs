//! Reading pprof profiles (ours or anyone's) for `top` and `flame`.
//!
//! File bytes → gunzip when they start with the gzip magic (bounded, so a gzip bomb
//! is an error, not an OOM) → one pass over the `perftools.profiles.Profile` message
//! with quick-protobuf's `BytesReader`, keeping string-table indices → resolution of
//! ids and strings into a [`Profile`] whose samples point at locations by index.
//!
//! Every nested message is decoded by a fresh reader over exactly its own bytes, so a
//! length that overruns its parent is an error, never a read past it. Nothing here
//! panics on hostile input; every failure is one [`ReadError`] line.
//!
//! Field numbers follow
//! <https://github.com/google/pprof/blob/v0.0.1/proto/profile.proto>.

use std::collections::HashMap;
use std::io::Read;

use quick_protobuf::BytesReader;

/// Profiles larger than this once decompressed are refused: Go's heap profiles of
/// very large programs are tens of MiB, and decoding multiplies the size (a one-byte
/// varint becomes an eight-byte id), so a bomb must stop here.
pub const MAX_DECOMPRESSED: u64 = 256 << 20;

/// Field numbers of `Profile`.
mod profile_field {
    pub const SAMPLE_TYPE: u32 = 1;
    pub const SAMPLE: u32 = 2;
    pub const MAPPING: u32 = 3;
    pub const LOCATION: u32 = 4;
    pub const FUNCTION: u32 = 5;
    pub const STRING_TABLE: u32 = 6;
    pub const DROP_FRAMES: u32 = 7;
    pub const KEEP_FRAMES: u32 = 8;
    pub const TIME_NANOS: u32 = 9;
    pub const DURATION_NANOS: u32 = 10;
    pub const PERIOD_TYPE: u32 = 11;
    pub const PERIOD: u32 = 12;
    pub const COMMENT: u32 = 13;
    pub const DEFAULT_SAMPLE_TYPE: u32 = 14;
    pub const DOC_URL: u32 = 15;
}

/// Field numbers of `ValueType`.
mod value_type_field {
    pub const TYPE: u32 = 1;
    pub const UNIT: u32 = 2;
}

/// Field numbers of `Sample`.
mod sample_field {
    pub const LOCATION_ID: u32 = 1;
    pub const VALUE: u32 = 2;
    pub const LABEL: u32 = 3;
}

/// Field numbers of `Label`.
mod label_field {
    pub const KEY: u32 = 1;
    pub const STR: u32 = 2;
    pub const NUM: u32 = 3;
    pub const NUM_UNIT: u32 = 4;
}

/// Field numbers of `Mapping`.
mod mapping_field {
    pub const ID: u32 = 1;
    pub const MEMORY_START: u32 = 2;
    pub const MEMORY_LIMIT: u32 = 3;
    pub const FILE_OFFSET: u32 = 4;
    pub const FILENAME: u32 = 5;
    pub const BUILD_ID: u32 = 6;
}

/// Field numbers of `Location`.
mod location_field {
    pub const ID: u32 = 1;
    pub const MAPPING_ID: u32 = 2;
    pub const ADDRESS: u32 = 3;
    pub const LINE: u32 = 4;
}

/// Field numbers of `Line`.
mod line_field {
    pub const FUNCTION_ID: u32 = 1;
    pub const LINE: u32 = 2;
}

/// Field numbers of `Function`.
mod function_field {
    pub const ID: u32 = 1;
    pub const NAME: u32 = 2;
    pub const SYSTEM_NAME: u32 = 3;
    pub const FILENAME: u32 = 4;
    pub const START_LINE: u32 = 5;
}

const WIRE_VARINT: u32 = 0;
const WIRE_LEN: u32 = 2;

/// Why a file is not a readable profile. Displays as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// gzip data that does not inflate.
    Gzip(String),
    /// Inflated data above [`MAX_DECOMPRESSED`].
    TooLarge,
    /// Bytes that are not a protobuf `Profile` (truncated, bad wire type, …).
    Protobuf {
        /// The message being decoded.
        message: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// A well-formed message that breaks the profile's rules (dangling id, string
    /// index out of range, value count mismatch).
    Invalid(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Gzip(e) => write!(f, "not a pprof profile: bad gzip data: {e}"),
            ReadError::TooLarge => write!(
                f,
                "refusing to decode: larger than {} MiB (decompressed)",
                MAX_DECOMPRESSED >> 20
            ),
            ReadError::Protobuf { message, detail } => {
                write!(f, "not a pprof profile: {message}: {detail}")
            }
            ReadError::Invalid(e) => write!(f, "invalid pprof profile: {e}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// A sample type or period type: `inuse_space`/`bytes`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValueType {
    /// The type, e.g. `alloc_objects`.
    pub kind: String,
    /// The unit, e.g. `bytes`, `count`.
    pub unit: String,
}

/// A string or numeric label on a sample.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Label {
    /// The key, e.g. `bytes`.
    pub key: String,
    /// A string value (empty for numeric labels).
    pub text: String,
    /// A numeric value.
    pub num: i64,
    /// The numeric value's unit, if given.
    pub num_unit: String,
}

/// One stack with its values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    /// Indices into [`Profile::locations`], leaf first.
    pub locations: Vec<usize>,
    /// One value per sample type.
    pub values: Vec<i64>,
    /// Labels.
    pub labels: Vec<Label>,
}

/// A mapped object (the executable, a shared library).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapping {
    /// The id samples' locations use.
    pub id: u64,
    /// Start address.
    pub memory_start: u64,
    /// End address.
    pub memory_limit: u64,
    /// File offset of the start address.
    pub file_offset: u64,
    /// Path of the object.
    pub file: String,
    /// Build id.
    pub build_id: String,
}

/// One frame of a location: a function and a line (several when inlined, callee first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Line {
    /// Index into [`Profile::functions`]; `None` for function id 0.
    pub function: Option<usize>,
    /// Source line.
    pub line: i64,
}

/// A program counter with its frames.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// The id samples use.
    pub id: u64,
    /// Index into [`Profile::mappings`].
    pub mapping: Option<usize>,
    /// The address.
    pub address: u64,
    /// Frames, innermost (inlined callee) first.
    pub lines: Vec<Line>,
}

/// A function.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Function {
    /// The id lines use.
    pub id: u64,
    /// Name, e.g. `main.allocLarge`.
    pub name: String,
    /// System (mangled) name.
    pub system_name: String,
    /// Source file.
    pub filename: String,
    /// Line of the function's start.
    pub start_line: i64,
}

/// A decoded pprof profile with ids and strings resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// What each sample value means.
    pub sample_types: Vec<ValueType>,
    /// The samples.
    pub samples: Vec<Sample>,
    /// Mapped objects.
    pub mappings: Vec<Mapping>,
    /// Locations.
    pub locations: Vec<Location>,
    /// Functions.
    pub functions: Vec<Function>,
    /// Comments (our profiles put the capture context here).
    pub comments: Vec<String>,
    /// Frames matching this regexp are dropped by pprof (kept for completeness).
    pub drop_frames: String,
    /// Frames matching this regexp are kept by pprof.
    pub keep_frames: String,
    /// Collection time, nanoseconds since the epoch.
    pub time_nanos: i64,
    /// Collection duration.
    pub duration_nanos: i64,
    /// The sampling period's type.
    pub period_type: Option<ValueType>,
    /// The sampling period.
    pub period: i64,
    /// The sample type a viewer shows by default.
    pub default_sample_type: String,
    /// Documentation link.
    pub doc_url: String,
}

/// `ValueType` with string indices.
#[derive(Default)]
struct RawValueType {
    kind: i64,
    unit: i64,
}

#[derive(Default)]
struct RawLabel {
    key: i64,
    text: i64,
    num: i64,
    num_unit: i64,
}

#[derive(Default)]
struct RawSample {
    location_ids: Vec<u64>,
    values: Vec<i64>,
    labels: Vec<RawLabel>,
}

#[derive(Default)]
struct RawMapping {
    id: u64,
    memory_start: u64,
    memory_limit: u64,
    file_offset: u64,
    file: i64,
    build_id: i64,
}

#[derive(Default)]
struct RawLine {
    function_id: u64,
    line: i64,
}

#[derive(Default)]
struct RawLocation {
    id: u64,
    mapping_id: u64,
    address: u64,
    lines: Vec<RawLine>,
}

#[derive(Default)]
struct RawFunction {
    id: u64,
    name: i64,
    system_name: i64,
    filename: i64,
    start_line: i64,
}

#[derive(Default)]
struct RawProfile {
    sample_types: Vec<RawValueType>,
    samples: Vec<RawSample>,
    mappings: Vec<RawMapping>,
    locations: Vec<RawLocation>,
    functions: Vec<RawFunction>,
    strings: Vec<String>,
    drop_frames: i64,
    keep_frames: i64,
    time_nanos: i64,
    duration_nanos: i64,
    period_type: Option<RawValueType>,
    period: i64,
    comments: Vec<i64>,
    default_sample_type: i64,
    doc_url: i64,
}

/// Decodes a profile from file bytes, gzipped or not.
///
/// Returns an error if the bytes are not a well-formed pprof profile.
pub fn parse(data: &[u8]) -> Result<Profile, ReadError> {
    if data.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        let mut dec = flate2::read::MultiGzDecoder::new(data).take(MAX_DECOMPRESSED + 1);
        dec.read_to_end(&mut out)
            .map_err(|e| ReadError::Gzip(e.to_string()))?;
        if out.len() as u64 > MAX_DECOMPRESSED {
            return Err(ReadError::TooLarge);
        }
        parse_uncompressed(&out)
    } else if data.len() as u64 > MAX_DECOMPRESSED {
        Err(ReadError::TooLarge)
    } else {
        parse_uncompressed(data)
    }
}

/// Decodes an uncompressed `Profile` message.
///
/// Returns an error if the bytes are not a well-formed pprof profile.
pub fn parse_uncompressed(data: &[u8]) -> Result<Profile, ReadError> {
    let raw = decode_profile(data)?;
    resolve(raw)
}

/// The reader for one message's bytes, with errors that name the message.
struct Msg<'a> {
    name: &'static str,
    bytes: &'a [u8],
    r: BytesReader,
}

impl<'a> Msg<'a> {
    fn new(name: &'static str, bytes: &'a [u8]) -> Self {
        Self {
            name,
            bytes,
            r: BytesReader::from_bytes(bytes),
        }
    }

    fn err(&self, e: impl std::fmt::Display) -> ReadError {
        ReadError::Protobuf {
            message: self.name,
            detail: e.to_string(),
        }
    }

    /// The next (field number, wire type), or `None` at the end.
    fn next(&mut self) -> Result<Option<(u32, u32)>, ReadError> {
        if self.r.is_eof() {
            return Ok(None);
        }
        let tag = self.r.next_tag(self.bytes).map_err(|e| self.err(e))?;
        if tag >> 3 == 0 {
            return Err(self.err("field number 0"));
        }
        Ok(Some((tag >> 3, tag & 7)))
    }

    fn expect(&self, field: u32, wire: u32, want: u32) -> Result<(), ReadError> {
        if wire == want {
            Ok(())
        } else {
            Err(self.err(format_args!(
                "field {field} has wire type {wire}, expected {want}"
            )))
        }
    }

    fn varint(&mut self, field: u32, wire: u32) -> Result<u64, ReadError> {
        self.expect(field, wire, WIRE_VARINT)?;
        self.r.read_varint64(self.bytes).map_err(|e| self.err(e))
    }

    fn int(&mut self, field: u32, wire: u32) -> Result<i64, ReadError> {
        self.varint(field, wire).map(|v| v as i64)
    }

    fn bytes(&mut self, field: u32, wire: u32) -> Result<&'a [u8], ReadError> {
        self.expect(field, wire, WIRE_LEN)?;
        let bytes = self.bytes;
        self.r.read_bytes(bytes).map_err(|e| self.err(e))
    }

    /// A repeated varint field, packed (one length-delimited run) or not (one value).
    fn repeated(&mut self, field: u32, wire: u32, out: &mut Vec<u64>) -> Result<(), ReadError> {
        if wire == WIRE_VARINT {
            out.push(self.varint(field, wire)?);
            return Ok(());
        }
        let run = self.bytes(field, wire)?;
        let mut inner = Msg::new(self.name, run);
        while !inner.r.is_eof() {
            let v = inner.r.read_varint64(run).map_err(|e| inner.err(e))?;
            out.push(v);
        }
        Ok(())
    }

    fn skip(&mut self, tag_field: u32, wire: u32) -> Result<(), ReadError> {
        self.r
            .read_unknown(self.bytes, (tag_field << 3) | wire)
            .map_err(|e| self.err(e))
    }
}

fn decode_profile(data: &[u8]) -> Result<RawProfile, ReadError> {
    use profile_field as f;
    let mut m = Msg::new("Profile", data);
    let mut p = RawProfile::default();
    let mut scratch = Vec::new();
    while let Some((field, wire)) = m.next()? {
        match field {
            f::SAMPLE_TYPE => p
                .sample_types
                .push(decode_value_type(m.bytes(field, wire)?)?),
            f::SAMPLE => p.samples.push(decode_sample(m.bytes(field, wire)?)?),
            f::MAPPING => p.mappings.push(decode_mapping(m.bytes(field, wire)?)?),
            f::LOCATION => p.locations.push(decode_location(m.bytes(field, wire)?)?),
            f::FUNCTION => p.functions.push(decode_function(m.bytes(field, wire)?)?),
            f::STRING_TABLE => p
                .strings
                .push(String::from_utf8_lossy(m.bytes(field, wire)?).into_owned()),
            f::DROP_FRAMES => p.drop_frames = m.int(field, wire)?,
            f::KEEP_FRAMES => p.keep_frames = m.int(field, wire)?,
            f::TIME_NANOS => p.time_nanos = m.int(field, wire)?,
            f::DURATION_NANOS => p.duration_nanos = m.int(field, wire)?,
            f::PERIOD_TYPE => p.period_type = Some(decode_value_type(m.bytes(field, wire)?)?),
            f::PERIOD => p.period = m.int(field, wire)?,
            f::COMMENT => {
                scratch.clear();
                m.repeated(field, wire, &mut scratch)?;
                p.comments.extend(scratch.iter().map(|&v| v as i64));
            }
            f::DEFAULT_SAMPLE_TYPE => p.default_sample_type = m.int(field, wire)?,
            f::DOC_URL => p.doc_url = m.int(field, wire)?,
            _ => m.skip(field, wire)?,
        }
    }
    Ok(p)
}

fn decode_value_type(data: &[u8]) -> Result<RawValueType, ReadError> {
    use value_type_field as f;
    let mut m = Msg::new("ValueType", data);
    let mut v = RawValueType::default();
    while let Some((field, wire)) = m.next()? {
        match field {
            f::TYPE => v.kind = m.int(field, wire)?,
            f::UNIT => v.unit = m.int(field, wire)?,
            _ => m.skip(field, wire)?,
        }
    }
    Ok(v)
}

fn decode_sample(data: &[u8]) -> Result<RawSample, ReadError> {
    use sample_field as f;
    let mut m = Msg::new("Sample", data);
    let mut s = RawSample::default();
    let mut values = Vec::new();
    while let Some((field, wire)) = m.next()? {
        match field {
            f::LOCATION_ID => m.repeated(field, wire, &mut s.location_ids)?,
            f::VALUE => m.repeated(field, wire, &mut values)?,
            f::LABEL => s.labels.push(decode_label(m.bytes(field, wire)?)?),
            _ => m.skip(field, wire)?,
        }
    }
    s.values = values.into_iter().map(|v| v as i64).collect();
    Ok(s)
}

fn decode_label(data: &[u8]) -> Result<RawLabel, ReadError> {
    use label_field as f;
    let mut m = Msg::new("Label", data);
    let mut l = RawLabel::default();
    while let Some((field, wire)) = m.next()? {
        match field {
            f::KEY => l.key = m.int(field, wire)?,
            f::STR => l.text = m.int(field, wire)?,
            f::NUM => l.num = m.int(field, wire)?,
            f::NUM_UNIT => l.num_unit = m.int(field, wire)?,
            _ => m.skip(field, wire)?,
        }
    }
    Ok(l)
}

fn decode_mapping(data: &[u8]) -> Result<RawMapping, ReadError> {
    use mapping_field as f;
    let mut m = Msg::new("Mapping", data);
    let mut x = RawMapping::default();
    while let Some((field, wire)) = m.next()? {
        match field {
            f::ID => x.id = m.varint(field, wire)?,
            f::MEMORY_START => x.memory_start = m.varint(field, wire)?,
            f::MEMORY_LIMIT => x.memory_limit = m.varint(field, wire)?,
            f::FILE_OFFSET => x.file_offset = m.varint(field, wire)?,
            f::FILENAME => x.file = m.int(field, wire)?,
            f::BUILD_ID => x.build_id = m.int(field, wire)?,
            // has_functions/has_filenames/…: pprof's own hints, not needed here.
            _ => m.skip(field, wire)?,
        }
    }
    Ok(x)
}

fn decode_location(data: &[u8]) -> Result<RawLocation, ReadError> {
    use location_field as f;
    let mut m = Msg::new("Location", data);
    let mut l = RawLocation::default();
    while let Some((field, wire)) = m.next()? {
        match field {
            f::ID => l.id = m.varint(field, wire)?,
            f::MAPPING_ID => l.mapping_id = m.varint(field, wire)?,
            f::ADDRESS => l.address = m.varint(field, wire)?,
            f::LINE => l.lines.push(decode_line(m.bytes(field, wire)?)?),
            _ => m.skip(field, wire)?,
        }
    }
    Ok(l)
}

fn decode_line(data: &[u8]) -> Result<RawLine, ReadError> {
    use line_field as f;
    let mut m = Msg::new("Line", data);
    let mut l = RawLine::default();
    while let Some((field, wire)) = m.next()? {
        match field {
            f::FUNCTION_ID => l.function_id = m.varint(field, wire)?,
            f::LINE => l.line = m.int(field, wire)?,
            _ => m.skip(field, wire)?,
        }
    }
    Ok(l)
}

fn decode_function(data: &[u8]) -> Result<RawFunction, ReadError> {
    use function_field as f;
    let mut m = Msg::new("Function", data);
    let mut x = RawFunction::default();
    while let Some((field, wire)) = m.next()? {
        match field {
            f::ID => x.id = m.varint(field, wire)?,
            f::NAME => x.name = m.int(field, wire)?,
            f::SYSTEM_NAME => x.system_name = m.int(field, wire)?,
            f::FILENAME => x.filename = m.int(field, wire)?,
            f::START_LINE => x.start_line = m.int(field, wire)?,
            _ => m.skip(field, wire)?,
        }
    }
    Ok(x)
}

/// Maps ids to indices; id 0 is reserved and ids are unique.
fn index_ids(what: &str, ids: impl Iterator<Item = u64>) -> Result<HashMap<u64, usize>, ReadError> {
    let mut map = HashMap::new();
    for (i, id) in ids.enumerate() {
        if id == 0 {
            return Err(ReadError::Invalid(format!("{what} with id 0")));
        }
        if map.insert(id, i).is_some() {
            return Err(ReadError::Invalid(format!("duplicate {what} id {id}")));
        }
    }
    Ok(map)
}

fn resolve(raw: RawProfile) -> Result<Profile, ReadError> {
    let strings = &raw.strings;
    if strings.first().is_some_and(|s| !s.is_empty()) {
        return Err(ReadError::Invalid(
            "string table does not start with the empty string".into(),
        ));
    }
    let s = |i: i64| -> Result<String, ReadError> {
        usize::try_from(i)
            .ok()
            .and_then(|i| {
                if i == 0 {
                    Some(String::new())
                } else {
                    strings.get(i).cloned()
                }
            })
            .ok_or_else(|| {
                ReadError::Invalid(format!(
                    "string index {i} outside the string table of {} entries",
                    strings.len()
                ))
            })
    };
    let vt = |v: &RawValueType| -> Result<ValueType, ReadError> {
        Ok(ValueType {
            kind: s(v.kind)?,
            unit: s(v.unit)?,
        })
    };

    let mapping_ix = index_ids("mapping", raw.mappings.iter().map(|m| m.id))?;
    let function_ix = index_ids("function", raw.functions.iter().map(|f| f.id))?;
    let location_ix = index_ids("location", raw.locations.iter().map(|l| l.id))?;

    let mut p = Profile {
        sample_types: raw.sample_types.iter().map(vt).collect::<Result<_, _>>()?,
        comments: raw
            .comments
            .iter()
            .map(|&c| s(c))
            .collect::<Result<_, _>>()?,
        drop_frames: s(raw.drop_frames)?,
        keep_frames: s(raw.keep_frames)?,
        time_nanos: raw.time_nanos,
        duration_nanos: raw.duration_nanos,
        period_type: raw.period_type.as_ref().map(vt).transpose()?,
        period: raw.period,
        default_sample_type: s(raw.default_sample_type)?,
        doc_url: s(raw.doc_url)?,
        ..Profile::default()
    };
    for m in &raw.mappings {
        p.mappings.push(Mapping {
            id: m.id,
            memory_start: m.memory_start,
            memory_limit: m.memory_limit,
            file_offset: m.file_offset,
            file: s(m.file)?,
            build_id: s(m.build_id)?,
        });
    }
    for f in &raw.functions {
        p.functions.push(Function {
            id: f.id,
            name: s(f.name)?,
            system_name: s(f.system_name)?,
            filename: s(f.filename)?,
            start_line: f.start_line,
        });
    }
    for l in &raw.locations {
        let mapping = match l.mapping_id {
            0 => None,
            id => Some(*mapping_ix.get(&id).ok_or_else(|| {
                ReadError::Invalid(format!("location {} names unknown mapping {id}", l.id))
            })?),
        };
        let mut lines = Vec::with_capacity(l.lines.len());
        for line in &l.lines {
            let function = match line.function_id {
                0 => None,
                id => Some(*function_ix.get(&id).ok_or_else(|| {
                    ReadError::Invalid(format!("location {} names unknown function {id}", l.id))
                })?),
            };
            lines.push(Line {
                function,
                line: line.line,
            });
        }
        p.locations.push(Location {
            id: l.id,
            mapping,
            address: l.address,
            lines,
        });
    }
    let want = p.sample_types.len();
    for (n, smp) in raw.samples.iter().enumerate() {
        if smp.values.len() != want {
            return Err(ReadError::Invalid(format!(
                "sample {n} has {} values for {want} sample types",
                smp.values.len()
            )));
        }
        let locations = smp
            .location_ids
            .iter()
            .map(|id| {
                location_ix.get(id).copied().ok_or_else(|| {
                    ReadError::Invalid(format!("sample {n} names unknown location {id}"))
                })
            })
            .collect::<Result<_, _>>()?;
        let labels = smp
            .labels
            .iter()
            .map(|l| {
                Ok(Label {
                    key: s(l.key)?,
                    text: s(l.text)?,
                    num: l.num,
                    num_unit: s(l.num_unit)?,
                })
            })
            .collect::<Result<_, ReadError>>()?;
        p.samples.push(Sample {
            locations,
            values: smp.values.clone(),
            labels,
        });
    }
    Ok(p)
}

impl Profile {
    /// The sample type index for `name` the way pprof's `-sample_index` picks it: empty
    /// means `default_sample_type`, else the last type; a number is an index; a name
    /// matches a type (with `inuse_` optional, for old `space`/`objects` profiles).
    ///
    /// Returns an error naming the available types when nothing matches.
    pub fn sample_index(&self, name: &str) -> Result<usize, String> {
        if self.sample_types.is_empty() {
            return Err("the profile has no sample types".into());
        }
        if name.is_empty() {
            if !self.default_sample_type.is_empty() {
                if let Some(i) = self
                    .sample_types
                    .iter()
                    .position(|t| t.kind == self.default_sample_type)
                {
                    return Ok(i);
                }
            }
            return Ok(self.sample_types.len() - 1);
        }
        if let Ok(i) = name.parse::<usize>() {
            if i < self.sample_types.len() {
                return Ok(i);
            }
        }
        let short = name.strip_prefix("inuse_").unwrap_or(name);
        if let Some(i) = self
            .sample_types
            .iter()
            .position(|t| t.kind == name || t.kind == short)
        {
            return Ok(i);
        }
        let names: Vec<&str> = self.sample_types.iter().map(|t| t.kind.as_str()).collect();
        Err(format!(
            "unknown sample index {name:?}; this profile has: {}",
            names.join(", ")
        ))
    }

    /// The file of the first mapping (the main executable in Go's profiles).
    pub fn main_file(&self) -> Option<&str> {
        self.mappings
            .first()
            .map(|m| m.file.as_str())
            .filter(|f| !f.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pprof_fixture::{fixture, W};

    #[test]
    fn decodes_every_field() {
        let p = parse(&fixture()).unwrap();
        assert_eq!(p.sample_types.len(), 3);
        assert_eq!(p.sample_types[1].kind, "alloc_space");
        assert_eq!(p.sample_types[1].unit, "bytes");
        assert_eq!(p.samples.len(), 2);
        assert_eq!(p.samples[0].locations, vec![0, 1]);
        assert_eq!(p.samples[0].values, vec![1, 1024, 512]);
        assert_eq!(p.samples[1].values, vec![3, 6144, 0]);
        assert_eq!(p.samples[1].labels[0].key, "bytes");
        assert_eq!(p.samples[1].labels[0].num, 2048);
        assert_eq!(p.main_file(), Some("/bin/prog"));
        assert_eq!(p.locations[0].lines.len(), 2);
        assert_eq!(p.locations[0].address, 0x401000);
        assert_eq!(
            p.functions[p.locations[0].lines[0].function.unwrap()].name,
            "main.inl"
        );
        assert_eq!(p.comments, vec!["oomprof: killed by the OOM killer"]);
        assert_eq!(p.period, 524_288);
        assert_eq!(p.period_type.as_ref().unwrap().kind, "alloc_space");
        assert_eq!(p.default_sample_type, "alloc_space");
        assert_eq!(p.time_nanos, 1_795_310_760_000_000_000);
    }

    #[test]
    fn gzipped_and_plain_decode_the_same() {
        use std::io::Write;
        let plain = fixture();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(parse(&gz).unwrap(), parse(&plain).unwrap());
    }

    #[test]
    fn sample_index_like_pprof() {
        let mut p = parse(&fixture()).unwrap();
        assert_eq!(p.sample_index(""), Ok(1)); // default_sample_type
        assert_eq!(p.sample_index("inuse_space"), Ok(2));
        assert_eq!(p.sample_index("0"), Ok(0));
        assert!(p
            .sample_index("inuse_objects")
            .unwrap_err()
            .contains("alloc_objects, alloc_space"));
        p.default_sample_type.clear();
        assert_eq!(p.sample_index(""), Ok(2)); // the last type
        p.sample_types[0].kind = "space".into();
        assert_eq!(p.sample_index("inuse_space"), Ok(0)); // legacy names
    }

    #[test]
    fn empty_input_is_an_empty_profile() {
        let p = parse(&[]).unwrap();
        assert!(p.sample_types.is_empty());
        assert!(p.sample_index("").is_err());
    }

    #[test]
    fn text_is_not_a_profile() {
        let e = parse(b"hello, this is not a profile\n").unwrap_err();
        assert!(e.to_string().starts_with("not a pprof profile"), "{e}");
    }

    #[test]
    fn bad_gzip_is_an_error() {
        let e = parse(&[0x1f, 0x8b, 8, 0, 0, 0]).unwrap_err();
        assert!(matches!(e, ReadError::Gzip(_)), "{e}");
    }

    #[test]
    fn every_truncation_fails_cleanly() {
        let data = fixture();
        for n in 0..data.len() {
            // Must not panic; most prefixes are errors, a few are valid shorter profiles.
            let _ = parse(&data[..n]);
        }
    }

    #[test]
    fn every_byte_flip_fails_cleanly() {
        let data = fixture();
        for i in 0..data.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let mut d = data.clone();
                d[i] ^= x;
                let _ = parse(&d);
            }
        }
    }

    #[test]
    fn nested_length_past_parent_is_an_error() {
        // Profile.sample (len 3) holding Sample.location_id packed run claiming 10 bytes.
        let data = [0x12, 0x03, 0x0a, 0x0a, 0x01, 0x00, 0x00, 0x00];
        assert!(parse(&data).is_err());
    }

    #[test]
    fn dangling_ids_and_strings_are_errors() {
        let mut p = W::default();
        p.bytes(2, &W::default().packed(1, &[9]).0);
        p.bytes(6, b"");
        assert!(parse(&p.0)
            .unwrap_err()
            .to_string()
            .contains("unknown location 9"));

        let mut p = W::default();
        p.bytes(1, &W::default().int(1, 5).0);
        p.bytes(6, b"");
        assert!(parse(&p.0)
            .unwrap_err()
            .to_string()
            .contains("string index 5"));

        let mut p = W::default();
        p.bytes(1, &W::default().int(1, 0).0);
        p.bytes(2, &W::default().packed(2, &[1, 2]).0);
        assert!(parse(&p.0)
            .unwrap_err()
            .to_string()
            .contains("2 values for 1"));

        let mut p = W::default();
        p.bytes(6, b"x");
        assert!(parse(&p.0)
            .unwrap_err()
            .to_string()
            .contains("empty string"));

        let mut p = W::default();
        p.bytes(
            4,
            &W::default().int(1, 1).bytes(4, &W::default().int(1, 4).0).0,
        );
        assert!(parse(&p.0)
            .unwrap_err()
            .to_string()
            .contains("unknown function 4"));
    }

    #[test]
    fn wrong_wire_type_is_an_error() {
        // Profile.sample_type as a varint.
        let e = parse(&[0x08, 0x01]).unwrap_err();
        assert!(e.to_string().contains("wire type 0"), "{e}");
    }
}
