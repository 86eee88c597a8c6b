//! Encoder round trip: arbitrary tables and buckets → encode → the output decodes
//! with quick-protobuf, a too-small buffer reports exactly the size needed, and the
//! frame cache of `pprof::symbolize` changes no byte.
#![no_main]
use libfuzzer_sys::fuzz_target;
use oom_core::bucket::{Bucket, Cycle, MemRecord, Stack};
use oom_core::layout::{GoVersion, Layout};
use oom_core::pclntab::{LoadBias, Pclntab, Symbolizer};
use oom_core::pprof::{self, LocationSlot, Mapping, Profile, StringSlot, Tables};
use oom_core::values::{Exp, Policy, Scale};
use quick_protobuf::BytesReader;

fuzz_target!(|data: &[u8]| {
    // 4 control bytes: table length (u16), Go minor selector, flags; then table, stacks.
    if data.len() < 8 {
        return;
    }
    let (ctl, rest) = data.split_at(4);
    let split = usize::from(u16::from_le_bytes([ctl[0], ctl[1]])).min(rest.len());
    let (tab, stacks) = rest.split_at(split);
    let Ok(t) = Pclntab::parse(tab) else { return };
    let layout = Layout::for_version(GoVersion { minor: 19 + u16::from(data[2] % 9), patch: 0 }).unwrap();
    let sym = Symbolizer::new(t, 0x1000, tab, LoadBias(0), layout);
    // Each bucket: up to 8 stack words from the input.
    let mut buckets = Vec::new();
    for (i, chunk) in stacks.chunks(64).enumerate() {
        let words = &chunk[..chunk.len() / 8 * 8];
        let c = Cycle { allocs: i as u64 + 1, frees: i as u64 / 2 };
        buckets.push(Bucket { size: 16 << (i % 8), stack: Stack::new(words).unwrap(), record: MemRecord { active: c, future: [c; 3] } });
    }
    let maps = [Mapping { start: 0x1000, limit: 0x10_0000, offset: 0, filename: "/bin/x", build_id: "ab" }];
    let profile = Profile {
        scale: Scale::new(4096, Exp::Portable, layout).unwrap(),
        policy: if data[3] & 2 == 0 { Policy::Latest } else { Policy::GoPublished { cycle: Some(u32::from(data[3] >> 4)), fallback: false } },
        mappings: if data[3] & 1 == 0 { &maps } else { &[] },
        time_nanos: 5,
        recent: data[3] & 4 != 0,
        default_sample_type: None,
        comments: &["fuzz"],
    };
    let mut strings = vec![StringSlot::default(); 4 * stacks.len() / 8 + 64];
    let mut locs = vec![LocationSlot::default(); 4 * stacks.len() / 8 + 64];
    let mut small = [0u8; 32];
    let needed = match pprof::encode(&mut small, Tables { strings: &mut strings, locations: &mut locs, frames: &[] }, &sym, &profile, &buckets) {
        Ok(n) => n,
        Err(oom_core::Error::BufferTooSmall { needed }) => needed,
        Err(_) => return,
    };
    let mut out = vec![0u8; needed];
    let n = pprof::encode(&mut out, Tables { strings: &mut strings, locations: &mut locs, frames: &[] }, &sym, &profile, &buckets).unwrap();
    assert_eq!(n, needed);
    let mut frames = vec![pprof::FrameSlot::default(); 2 * stacks.len() / 8 + 16];
    pprof::symbolize(&mut frames, &sym, &buckets).unwrap();
    let mut cached = vec![0u8; needed];
    let m = pprof::encode(&mut cached, Tables { strings: &mut strings, locations: &mut locs, frames: &frames }, &sym, &profile, &buckets).unwrap();
    assert_eq!((m, &cached), (n, &out));
    let mut r = BytesReader::from_bytes(&out);
    while !r.is_eof() {
        let tag = r.next_tag(&out).expect("tag");
        r.read_unknown(&out, tag).expect("field");
    }
});
