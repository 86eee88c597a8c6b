//! Writes the seeds of the `abi` and `pprof_read` targets into `fuzz/seeds/`:
//! `cd fuzz && cargo test --test write_seeds -- --ignored`.
//!
//! The ring records are the layouts of oom-core's abi unit tests (`oom_abi.h`), field
//! by field; the pprof profile is the reader's own unit-test fixture, plain and
//! gzipped. `seeds/pprof_read/holder-dump-gzip` is a real `oomprof dump` of
//! `tests/go/holder` (Go 1.27), committed as is, and `holder-dump` the same inflated.

use std::io::Write;
use std::path::{Path, PathBuf};

use oom_core::abi::{entry_flags, rec};

#[path = "../../oom-cli/src/pprof_fixture.rs"]
mod pprof_fixture;

/// Little-endian bytes, appended field by field.
#[derive(Default)]
struct B(Vec<u8>);

impl B {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A NUL-padded fixed-size string (comm, filename).
    fn text(&mut self, s: &[u8], len: usize) -> &mut Self {
        let start = self.0.len();
        self.0.extend_from_slice(s);
        self.0.resize(start + len, 0);
        self
    }
    /// An entry header: size, nstk, shared, cycles (bit i: cycle i present), flags.
    fn entry(&mut self, size: u64, nstk: u16, shared: u16, cycles: u8, flags: u8) -> &mut Self {
        self.u64(size).u16(nstk).u16(shared).u8(cycles).u8(flags)
    }
}

const PC32_CNT32: u8 = entry_flags::PC32 | entry_flags::CNT32;

/// The three entries of abi.rs's `deep_truncated_stacks_share_outer_frames_…` test,
/// as the kernel wrote them in a Go 1.27 capture of `deep -depth 300 -oom`.
fn deep_entries() -> Vec<u8> {
    const DESCEND: u32 = 0xe7ee9;
    let mut b = B::default();
    // growslice: 130 own PCs, future[1] = 1 alloc.
    b.entry(4096, 130, 0, 0b0100, PC32_CNT32);
    for pc in [0x7d1cc, 0x80987, 0xe820e, 0xe7edb] {
        b.u32(pc);
    }
    for _ in 0..126 {
        b.u32(DESCEND);
    }
    b.u32(1).u32(0); // future[1] allocs, frees

    // The same stack, another size: all 130 frames shared, none carried.
    b.entry(1792, 130, 130, 0b0010, PC32_CNT32);
    b.u32(1).u32(0); // future[0]

    // The leak: 5 own PCs, 125 shared; active, future[0], future[1].
    b.entry(1 << 20, 130, 125, 0b0111, PC32_CNT32);
    for pc in [0x7d1da, 0x803e9, 0xe7e65, 0xe81c5, 0xe7edb] {
        b.u32(pc);
    }
    for (allocs, frees) in [(36, 0), (36, 0), (54, 0)] {
        b.u32(allocs).u32(frees);
    }
    b.0
}

fn abi_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();

    // struct oom_chunk (24 bytes) + payload.
    let payload = deep_entries();
    let mut b = B::default();
    b.u32(rec::CHUNK).u32(1234); // hdr: type, pid
    b.u32(7).u32(0).u32(3); // capture_id, seq, buckets
    b.u32(payload.len() as u32); // len
    b.0.extend_from_slice(&payload);
    out.push(("chunk-deep", b.0));

    // pc_base, then a bare payload: three entries sharing outer frames.
    let mut b = B::default();
    b.u64(0x1000); // pc_base
    b.entry(16, 3, 0, 0, entry_flags::PC32).u32(1).u32(2).u32(3);
    b.entry(32, 4, 2, 0, entry_flags::PC32).u32(8).u32(9);
    b.entry(48, 4, 3, 0, entry_flags::PC32).u32(7);
    out.push(("entries-shared", b.0));

    // u32 PCs and counts, active + future[1].
    let mut b = B::default();
    b.u64(0x40_0000); // pc_base
    b.entry(1 << 20, 2, 0, 0b0101, PC32_CNT32);
    b.u32(0x10).u32(0x20); // pc offsets
    b.u32(5).u32(1).u32(7).u32(0); // active, future[1]
    out.push(("entries-pc32-cnt32", b.0));

    // u64 PCs and counts, a truncated stack, future[2] only.
    let mut b = B::default();
    b.u64(0); // pc_base
    b.entry(32, 1, 0, 0b1000, entry_flags::TRUNC);
    b.u64(0x7fff_0000_1234); // pc
    b.u64(1 << 40).u64(3); // future[2] allocs, frees
    out.push(("entries-u64", b.0));

    // struct oom_end (120 bytes).
    let mut b = B::default();
    b.u32(rec::END).u32(1234); // hdr
    b.u32(7).u32(1235); // capture_id, tid
    b.u64(1_000_000).u64(2_500_000); // start_ns, elapsed_ns
    b.u64(0x40_0000).u64(524_288); // pc_base, mem_profile_rate
    b.u32(5).u32(0x200); // mprof_cycle, status (AT_EXIT)
    b.u32(1).u32(3).u32(3); // chunks, buckets_seen, buckets_emitted
    b.u32(0).u32(0).u32(0); // ring_full, read_fault, truncated_stacks
    b.u64(652); // bytes_emitted
    b.u32(150_000).u32(1024).u32(32).u32(0); // max_buckets, max_nstk, cycle_size, zero_tail
    b.text(b"oome", 16); // comm
    out.push(("end", b.0));

    // struct oom_victim (112 bytes), with details.
    let mut b = B::default();
    b.u32(rec::VICTIM).u32(42); // hdr
    b.u64(9_000_000); // ts_ns
    b.u32(77).u32(78).u64(5); // trigger pid, tid, cgroup id
    b.u64(1 << 20).u64(130_000).u64(2_000).u64(0).u64(300); // vm, anon, file, shmem, pgtables (kB)
    b.u32(1000).u16((-1000i16) as u16).u8(1).u8(0); // uid, oom_score_adj, has_details, pad
    b.text(b"oome", 16).text(b"stress", 16); // comm, trigger_comm
    out.push(("victim", b.0));

    // struct oom_exec (296 bytes).
    let mut b = B::default();
    b.u32(rec::EXEC).u32(500).u64(1); // hdr, ts_ns
    b.u32(501).u32(0); // old_pid, pad
    b.text(b"sh", 16).text(b"/bin/sh", 256); // comm, filename
    out.push(("exec", b.0));

    // struct oom_exit (40 bytes).
    let mut b = B::default();
    b.u32(rec::EXIT).u32(500).u64(2); // hdr, ts_ns
    b.u32(9).u32(0).text(b"sh", 16); // tid, pad, comm
    out.push(("exit", b.0));

    // struct oom_counters (72 bytes).
    let mut b = B::default();
    for v in [3u64, 2, 0, 4, 1, 3, 4, 5, 6] {
        // captures, lost_events, lost_ends, next_capture_id, kills during/after walk,
        // kill_marks, unmarked_deliveries, sigkills_marked
        b.u64(v);
    }
    out.push(("counters", b.0));
    out
}

fn pprof_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let plain = pprof_fixture::fixture();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    vec![("fixture", plain), ("fixture-gzip", gz.finish().unwrap())]
}

fn seeds_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target)
}

#[test]
#[ignore = "writes fuzz/seeds/: run by hand"]
fn write_seeds() {
    for (target, seeds) in [("abi", abi_seeds()), ("pprof_read", pprof_seeds())] {
        let dir = seeds_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in seeds {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

/// The seeds parse as what they claim to be (so a layout change shows up here).
#[test]
fn seeds_parse() {
    use oom_core::abi::{Counters, Entries, Record, StackExpander};
    for (name, b) in abi_seeds() {
        match name {
            "counters" => assert_eq!(Counters::parse(&b).unwrap().sigkills_marked, 6),
            n if n.starts_with("entries") => {
                let (base, payload) = b.split_first_chunk::<8>().unwrap();
                let mut x = StackExpander::new();
                let mut buf = [0u8; 8192];
                for e in Entries::new(payload, u64::from_le_bytes(*base)) {
                    x.bucket_into(&e.unwrap(), &mut buf).unwrap();
                }
            }
            _ => {
                let r = Record::parse(&b).unwrap_or_else(|e| panic!("{name}: {e}"));
                if let Record::Chunk(c) = r {
                    let mut x = StackExpander::new();
                    let mut buf = [0u8; 8192];
                    let mut n = 0;
                    for e in Entries::new(c.payload, 0x40_0000) {
                        assert_eq!(
                            x.bucket_into(&e.unwrap(), &mut buf).unwrap().stack.len(),
                            130
                        );
                        n += 1;
                    }
                    assert_eq!(n, 3);
                }
            }
        }
    }
    for (name, b) in pprof_seeds() {
        let p = oom_cli::pprof_read::parse(&b).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.samples.len(), 2);
    }
}
