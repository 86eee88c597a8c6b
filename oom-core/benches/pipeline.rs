//! Pipeline figures (not a timed test): parse, values, symbolize, encode and gzip for a
//! ~100,000-bucket capture read from a live `manysites` process built by the newest Go.
//!
//! Run: `cargo bench -p oom-core --bench pipeline` (as root: it reads /proc/PID/mem).
//! Prints buckets/s per stage, the median of 7 runs.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{mappings, GoBinary};
use oom_core::bucket::{GoBucket, GoBucketHeader, GO_BUCKET_HEADER};
use oom_core::pprof::{self, LocationSlot, Mapping, Profile, StringSlot, Tables};
use oom_core::values::{self, Exp, Policy, Scale};
use oom_tests::fixtures::{self, Variant};
use oom_tests::process::Running;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 7;

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn time<T>(mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut ts = Vec::new();
    let mut last = None;
    for _ in 0..RUNS {
        let t = Instant::now();
        let v = f();
        ts.push(t.elapsed());
        last = Some(v);
    }
    (median(ts), last.unwrap())
}

fn main() {
    if !oom_tests::privileged::is_root() {
        eprintln!("SKIP pipeline bench: needs root to read /proc/PID/mem");
        return;
    }
    let Some(tc) = oom_tests::gomatrix::newest("pipeline bench") else {
        return;
    };
    let n: usize = std::env::var("BENCH_BUCKETS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let path = fixtures::build("manysites", &tc, Variant::Default).unwrap();
    let bin = GoBinary::load(&path);
    let mut proc = Running::spawn(Command::new(&path).arg("-n").arg(n.to_string())).unwrap();
    proc.wait_line("ready", Duration::from_secs(300)).unwrap();
    let pid = proc.pid();
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let read = |addr: u64, len: usize| {
        let mut b = vec![0u8; len];
        mem.read_exact_at(&mut b, addr).unwrap();
        b
    };
    // The capture: every bucket's bytes back to back, as a ring-buffer consumer would hold them.
    let mut capture = Vec::new();
    let mut offsets = Vec::new();
    let mut at = u64::from_le_bytes(
        read(bin.symbol("runtime.mbuckets").unwrap(), 8)
            .try_into()
            .unwrap(),
    );
    while at != 0 {
        let h = GoBucketHeader::parse(&read(at, GO_BUCKET_HEADER), &bin.layout).unwrap();
        offsets.push(capture.len());
        capture.extend_from_slice(&read(at, h.total_len(&bin.layout)));
        at = h.allnext;
    }
    let maps = mappings(pid);
    drop(proc);
    let nb = offsets.len();
    println!(
        "go{} manysites: {nb} buckets, {} capture bytes",
        tc.version,
        capture.len()
    );

    let (t_parse, buckets) = time(|| {
        offsets
            .iter()
            .map(|&o| GoBucket::parse(&capture[o..], &bin.layout).unwrap().bucket)
            .collect::<Vec<_>>()
    });
    let words: usize = buckets.iter().map(|b| b.stack.len()).sum();
    let scale = Scale::new(1, Exp::Amd64 { fma: true }, bin.layout).unwrap();
    let scale4k = Scale::new(4096, Exp::Amd64 { fma: true }, bin.layout).unwrap();
    let (t_values, _) = time(|| {
        let fb = values::needs_fallback(buckets.iter().map(|b| &b.record), Some(0));
        let p = Policy::GoPublished {
            cycle: Some(0),
            fallback: fb,
        };
        buckets
            .iter()
            .map(|b| {
                scale4k
                    .values(values::counts(&b.record, p), b.size)
                    .alloc_space
            })
            .sum::<i64>()
    });
    let sym = bin.symbolizer(0);
    let (t_sym, _) = time(|| {
        let mut lines = 0i64;
        for b in &buckets {
            for pc in b.stack.iter() {
                lines += sym.frame(pc).unwrap().line;
            }
        }
        lines
    });
    let mapping: Vec<Mapping> = maps
        .iter()
        .map(|(s, l, o, f)| Mapping {
            start: *s,
            limit: *l,
            offset: *o,
            filename: f,
            build_id: "",
        })
        .collect();
    let profile = Profile {
        scale,
        policy: Policy::Latest,
        mappings: &mapping,
        time_nanos: 1,
        recent: false,
        default_sample_type: None,
        comments: &["bench"],
    };
    // Start small and double on TableFull, as a long-running caller would.
    let mut strings = vec![StringSlot::default(); 4096];
    let mut locs = vec![LocationSlot::default(); 4096];
    let mut out = vec![0u8; 64 << 20];
    let (t_enc, len) = time(|| loop {
        match pprof::encode(
            &mut out,
            Tables {
                strings: &mut strings,
                locations: &mut locs,
                frames: &[],
            },
            &sym,
            &profile,
            &buckets,
        ) {
            Err(oom_core::Error::TableFull {
                table: "strings",
                capacity,
            }) => strings.resize(2 * capacity, StringSlot::default()),
            Err(oom_core::Error::TableFull {
                table: "locations",
                capacity,
            }) => locs.resize(2 * capacity, LocationSlot::default()),
            Err(oom_core::Error::BufferTooSmall { needed }) => out.resize(needed, 0),
            r => break r.unwrap(),
        }
    });
    println!(
        "tables: {} string slots, {} location slots",
        strings.len(),
        locs.len()
    );
    let (t_gz, gz) = time(|| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&out[..len]).unwrap();
        e.finish().unwrap().len()
    });
    let rate = |t: Duration| nb as f64 / t.as_secs_f64();
    println!("{:<28} {:>10} {:>14}", "stage", "median", "buckets/s");
    for (name, t) in [
        ("parse (raw Go buckets)", t_parse),
        ("values (GoPublished, 4096)", t_values),
        ("symbolize (every PC, uncached)", t_sym),
        ("encode (incl. symbolize)", t_enc),
        ("gzip (fast)", t_gz),
    ] {
        println!("{name:<28} {:>10.2?} {:>14.0}", t, rate(t));
    }
    let total = t_parse + t_enc + t_gz;
    println!(
        "{:<28} {:>10.2?} {:>14.0}",
        "pipeline parse+encode+gzip",
        total,
        rate(total)
    );
    println!("profile: {len} bytes, {gz} gzipped, {words} stack words");
}
