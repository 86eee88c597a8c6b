//! oom-core against real Go binaries of the whole matrix (test bed: `oom-tests`).
//!
//! - symbolization equals `runtime.CallersFrames` inside the process, 100 %;
//! - the stripped-binary finder gives the `.symtab` addresses, and in stripped builds
//!   its addresses hold live values (`mProfCycle` counts GCs, amd64 and arm64);
//! - our encoder's profile of a quiescent `holder` equals holder's own heap profile
//!   under `go tool pprof -raw`.

mod common;

use common::{load_bias, mappings, GoBinary};
use oom_core::bucket::{GoBucket, GoBucketHeader, GO_BUCKET_HEADER};
use oom_core::pclntab::print_name_pieces;
use oom_core::pprof::{self, LocationSlot, Mapping, Profile, StringSlot, Tables};
use oom_core::stripped::{self, Arch};
use oom_core::values::{self, Exp, Policy, Scale};
use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix::{self, Toolchain};
use oom_tests::pprof_raw::RawProfile;
use oom_tests::process::Running;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const SIGUSR2: i32 = 12;

struct Holder {
    proc: Running,
    profile: PathBuf,
    rate: i64,
    _dir: TempDir,
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir(tag: &str) -> TempDir {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("oom-core-{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

/// Fixtures with their arguments: a known heap (holder), inline decks, generics and
/// closures (inlined), stacks deeper than every limit (deep).
const FIXTURES: &[(&str, &[&str])] = &[
    ("holder", &["-large", "8", "-small", "3000"]),
    ("inlined", &["-n", "200"]),
    ("deep", &["-depth", "300", "-count", "16"]),
];

/// MemProfileRate for the encoder comparisons: low enough that every fixture has many
/// samples, not 1 (so scaling is exercised).
const COMPARE_RATE: &str = "64";

/// Starts a fixture, lets it profile itself, and returns it still running (quiescent).
fn holder(bin: &Path, args: &[&str], rate: &str) -> Holder {
    let dir = tempdir("fixture");
    let profile = dir.0.join("heap.pb.gz");
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("FIXTURE_PROFILE", &profile)
        .env("FIXTURE_MEMPROFILERATE", rate);
    let mut proc = Running::spawn(&mut cmd).unwrap();
    let ready = proc.wait_line("ready", Duration::from_secs(60)).unwrap();
    let rate = ready
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rate="))
        .unwrap()
        .parse()
        .unwrap();
    proc.signal(SIGUSR2).unwrap();
    proc.wait_line("profiled", Duration::from_secs(60)).unwrap();
    Holder {
        proc,
        profile,
        rate,
        _dir: dir,
    }
}

struct Record {
    pcs: Vec<u64>,
    frames: Vec<(u64, u64, String, String, i64)>,
}

fn parse_frames(text: &str) -> Vec<Record> {
    let mut out = Vec::new();
    let mut cur: Option<Record> = None;
    for l in text.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        match f[0] {
            "record" => {
                cur = Some(Record {
                    pcs: Vec::new(),
                    frames: Vec::new(),
                })
            }
            "pcs" => {
                cur.as_mut().unwrap().pcs = f[1..]
                    .iter()
                    .map(|x| u64::from_str_radix(x, 16).unwrap())
                    .collect()
            }
            "frame" => cur.as_mut().unwrap().frames.push((
                u64::from_str_radix(f[1], 16).unwrap(),
                u64::from_str_radix(f[2], 16).unwrap(),
                f[3].to_string(),
                f[4].to_string(),
                f[5].parse().unwrap(),
            )),
            "end" => out.push(cur.take().unwrap()),
            _ => panic!("bad frames line {l:?}"),
        }
    }
    out
}

fn print_name(layout: &oom_core::Layout, raw: &str) -> String {
    if layout.elides_shapes_for_print {
        print_name_pieces(raw).concat()
    } else {
        raw.to_string()
    }
}

fn matrix_or_skip(test: &str) -> Option<Vec<Toolchain>> {
    let m = gomatrix::matrix(test)?;
    Some(m)
}

#[test]
#[ignore = "needs the Go matrix: run tests/run"]
fn symbolization_equals_callers_frames() {
    let Some(matrix) = matrix_or_skip("symbolization_equals_callers_frames") else {
        return;
    };
    let mut total = 0usize;
    for tc in &matrix {
        for variant in Variant::ALL {
            for &(name, args) in FIXTURES {
                let path = fixtures::build(name, tc, variant).unwrap();
                let bin = GoBinary::load(&path);
                let h = holder(&path, args, "1");
                let bias = load_bias(h.proc.pid(), &bin);
                let sym = bin.symbolizer(bias);
                let text =
                    std::fs::read_to_string(format!("{}.frames", h.profile.display())).unwrap();
                let recs = parse_frames(&text);
                assert!(
                    recs.len() > 5,
                    "{name} go{} {:?}: only {} records",
                    tc.version,
                    variant,
                    recs.len()
                );
                for r in &recs {
                    let ours: Vec<_> = r
                        .pcs
                        .iter()
                        .map(|&pc| {
                            let f = sym.frame(pc).unwrap();
                            (
                                f.pc,
                                f.entry,
                                print_name(&bin.layout, f.function),
                                f.file.to_string(),
                                f.line,
                            )
                        })
                        .filter(|f| f.0 != 0 || !f.2.is_empty())
                        .collect();
                    assert_eq!(
                        ours, r.frames,
                        "{name} go{} {:?}: pcs {:x?}",
                        tc.version, variant, r.pcs
                    );
                    total += r.frames.len();
                }
                eprintln!(
                    "{name} go{} {:?}: {} records match",
                    tc.version,
                    variant,
                    recs.len()
                );
            }
        }
    }
    eprintln!("{total} frames matched");
}

/// Builds `name` for linux/arm64 (CGO off) into `dir`.
fn build_arm64(tc: &Toolchain, name: &str, dir: &Path, stripped: bool) -> PathBuf {
    let flags: &[&str] = if stripped { &["-ldflags=-s -w"] } else { &[] };
    build_arm64_with(tc, name, dir, flags)
}

/// Builds `name` for linux/arm64 (CGO off) into `dir` with extra `go build` flags.
fn build_arm64_with(tc: &Toolchain, name: &str, dir: &Path, flags: &[&str]) -> PathBuf {
    let out = dir.join(format!(
        "{name}-arm64{}",
        flags.concat().replace([' ', '='], "")
    ));
    let mut cmd = tc.command();
    cmd.current_dir(fixtures::source_dir())
        .env("GOARCH", "arm64")
        .env("CGO_ENABLED", "0")
        .args(["build", "-o"])
        .arg(&out)
        .args(flags);
    let st = cmd.arg(format!("./{name}")).status().unwrap();
    assert!(st.success());
    out
}

#[test]
#[ignore = "needs the Go matrix and qemu-aarch64: run tests/run"]
fn arm64_symbolization_under_qemu_equals_callers_frames() {
    let test = "arm64_symbolization_under_qemu_equals_callers_frames";
    let Some(matrix) = matrix_or_skip(test) else {
        return;
    };
    if Command::new("qemu-aarch64")
        .arg("--version")
        .output()
        .is_err()
    {
        oom_tests::privileged::skip(
            test,
            "qemu-aarch64 not installed (apt-get install qemu-user)",
        );
        return;
    }
    for tc in &matrix {
        for stripped in [false, true] {
            let dir = tempdir("arm64-frames");
            let exe = build_arm64(tc, "inlined", &dir.0, stripped);
            let bin = GoBinary::load(&exe);
            assert_eq!(bin.pclntab().quantum(), 4);
            let profile = dir.0.join("heap.pb.gz");
            let mut cmd = Command::new("qemu-aarch64");
            cmd.arg(&exe)
                .args(["-n", "50"])
                .env("FIXTURE_PROFILE", &profile)
                .env("FIXTURE_MEMPROFILERATE", "1");
            let mut proc = Running::spawn(&mut cmd).unwrap();
            proc.wait_line("ready", Duration::from_secs(120)).unwrap();
            proc.signal(SIGUSR2).unwrap();
            proc.wait_line("profiled", Duration::from_secs(120))
                .unwrap();
            let text = std::fs::read_to_string(format!("{}.frames", profile.display())).unwrap();
            let recs = parse_frames(&text);
            let sym = bin.symbolizer(0);
            for r in &recs {
                let ours: Vec<_> = r
                    .pcs
                    .iter()
                    .map(|&pc| {
                        let f = sym.frame(pc).unwrap();
                        (
                            f.pc,
                            f.entry,
                            print_name(&bin.layout, f.function),
                            f.file.to_string(),
                            f.line,
                        )
                    })
                    .filter(|f| f.0 != 0 || !f.2.is_empty())
                    .collect();
                assert_eq!(
                    ours, r.frames,
                    "arm64 go{} stripped={stripped}: pcs {:x?}",
                    tc.version, r.pcs
                );
            }
            assert!(recs.len() > 5);
            eprintln!(
                "arm64 go{} stripped={stripped}: {} records match",
                tc.version,
                recs.len()
            );
        }
    }
}

#[test]
#[ignore = "needs the Go matrix: run tests/run"]
fn stripped_finder_equals_symtab() {
    let Some(matrix) = matrix_or_skip("stripped_finder_equals_symtab") else {
        return;
    };
    for tc in &matrix {
        for variant in [Variant::Default, Variant::Pie, Variant::Cgo] {
            let bin = GoBinary::load(&fixtures::build("holder", tc, variant).unwrap());
            check_finder(&bin, &format!("go{} {:?}", tc.version, variant));
        }
        // arm64, statically: cross-compiled.
        let dir = tempdir("arm64");
        let out = build_arm64(tc, "holder", &dir.0, false);
        let bin = GoBinary::load(&out);
        assert_eq!(bin.arch, Arch::Arm64);
        check_finder(&bin, &format!("go{} arm64", tc.version));
        let out = build_arm64_with(tc, "holder", &dir.0, &["-buildmode=pie"]);
        let bin = GoBinary::load(&out);
        assert!(bin.is_pie);
        check_finder(&bin, &format!("go{} arm64 pie", tc.version));
        // Stripped arm64 has no .symtab to compare with: the finder must still succeed
        // and land in .bss or .noptrbss, 4-aligned.
        let out = build_arm64(tc, "holder", &dir.0, true);
        let bin = GoBinary::load(&out);
        assert!(bin.symbol("runtime.mProfCycle").is_none());
        let at = find_mprof_cycle(&bin).unwrap();
        let bss = bss_range(&bin);
        assert!(
            bss.contains(&at) && at.is_multiple_of(4),
            "go{} arm64 stripped: mProfCycle {at:#x} not in bss {bss:x?}",
            tc.version
        );
    }
}

fn find_mprof_cycle(bin: &GoBinary) -> Result<u64, oom_core::Error> {
    stripped::find_mprof_cycle(
        &bin.pclntab(),
        bin.moduledata.text,
        bin.code(),
        bin.arch,
        bin.data_range.clone(),
    )
}

/// Link-address range covering `.bss` and `.noptrbss` (adjacent in Go's layout).
fn bss_range(bin: &GoBinary) -> std::ops::Range<u64> {
    use object::{Object, ObjectSection};
    let f = object::File::parse(&*bin.data).unwrap();
    let (lo, hi) = [".bss", ".noptrbss"]
        .iter()
        .map(|n| f.section_by_name(n).unwrap())
        .fold((u64::MAX, 0), |(lo, hi), s| {
            (lo.min(s.address()), hi.max(s.address() + s.size()))
        });
    lo..hi
}

fn check_finder(bin: &GoBinary, what: &str) {
    let tab = bin.pclntab();
    let mb = stripped::find_mbuckets(
        &tab,
        bin.moduledata.text,
        bin.code(),
        bin.arch,
        bin.data_range.clone(),
    )
    .unwrap();
    assert_eq!(Some(mb), bin.symbol("runtime.mbuckets"), "{what}: mbuckets");
    let rate = stripped::find_mem_profile_rate(
        &tab,
        bin.moduledata.text,
        bin.code(),
        bin.arch,
        bin.data_range.clone(),
    );
    assert_eq!(
        rate.ok(),
        bin.symbol("runtime.MemProfileRate"),
        "{what}: MemProfileRate"
    );
    let want = bin
        .symbol("runtime.mProfCycle")
        .unwrap_or_else(|| panic!("{what}: no runtime.mProfCycle in .symtab"));
    assert_eq!(find_mprof_cycle(bin), Ok(want), "{what}: mProfCycle");
}

/// Reads `len` bytes of `pid`'s memory at `addr`.
fn read_mem(mem: &std::fs::File, addr: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    mem.read_exact_at(&mut buf, addr).unwrap();
    buf
}

fn u64_at(mem: &std::fs::File, addr: u64) -> u64 {
    u64::from_le_bytes(read_mem(mem, addr, 8).try_into().unwrap())
}

/// Walks `mbuckets` of a live process; returns each raw bucket's bytes.
fn walk(mem: &std::fs::File, head: u64, layout: &oom_core::Layout) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = u64_at(mem, head);
    while at != 0 {
        let h = read_mem(mem, at, GO_BUCKET_HEADER);
        let hdr = GoBucketHeader::parse(&h, layout).unwrap();
        out.push(read_mem(mem, at, hdr.total_len(layout)));
        at = hdr.allnext;
        assert!(out.len() < 1_000_000);
    }
    out
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn stripped_addresses_hold_live_values() {
    if !oom_tests::privileged::root("stripped_addresses_hold_live_values") {
        return;
    }
    let Some(matrix) = matrix_or_skip("stripped_addresses_hold_live_values") else {
        return;
    };
    for tc in &matrix {
        let path = fixtures::build("holder", tc, Variant::Stripped).unwrap();
        let bin = GoBinary::load(&path);
        assert!(bin.symbol("runtime.mbuckets").is_none());
        let tab = bin.pclntab();
        let mb = stripped::find_mbuckets(
            &tab,
            bin.moduledata.text,
            bin.code(),
            bin.arch,
            bin.data_range.clone(),
        )
        .unwrap();
        let rate_addr = stripped::find_mem_profile_rate(
            &tab,
            bin.moduledata.text,
            bin.code(),
            bin.arch,
            bin.data_range.clone(),
        )
        .unwrap();
        let cycle_addr = find_mprof_cycle(&bin).unwrap();
        let mut h = holder(&path, FIXTURES[0].1, "4096");
        let mem = std::fs::File::open(format!("/proc/{}/mem", h.proc.pid())).unwrap();
        assert_eq!(u64_at(&mem, rate_addr) as i64, h.rate, "go{}", tc.version);
        let buckets = walk(&mem, mb, &bin.layout);
        assert!(
            buckets.len() > 3,
            "go{}: {} buckets",
            tc.version,
            buckets.len()
        );
        // mProfCycle: cycle<<1 | flushed. Each profile trigger runs runtime.GC() twice,
        // and every GC's mark termination advances the cycle by one.
        let u32_at = |a| u32::from_le_bytes(read_mem(&mem, a, 4).try_into().unwrap());
        let before = u32_at(cycle_addr);
        h.proc.signal(SIGUSR2).unwrap();
        h.proc
            .wait_line("profiled", Duration::from_secs(60))
            .unwrap();
        let after = u32_at(cycle_addr);
        const WRAP: u32 = 3 * (2 << 24); // mProfCycleWrap, Go 1.19–1.27
        assert!(
            before >> 1 >= 2 && after >> 1 < WRAP && (after >> 1) >= (before >> 1) + 2,
            "go{}: mProfCycle {before:#x} then {after:#x} around two runtime.GC()",
            tc.version
        );
        eprintln!(
            "go{} stripped: mProfCycle at {cycle_addr:#x}: {before:#x} -> {after:#x}",
            tc.version
        );
    }
}

/// The arm64 finder's `mProfCycle` of a stripped build counts GCs in a live process
/// under qemu-user, which maps a static guest at its link addresses (checked), so
/// guest addresses can be read through qemu's `/proc/PID/mem`.
#[test]
#[ignore = "needs root, the Go matrix and qemu-aarch64: run tests/run"]
fn arm64_stripped_mprof_cycle_under_qemu_holds_live_value() {
    let test = "arm64_stripped_mprof_cycle_under_qemu_holds_live_value";
    if !oom_tests::privileged::root(test) {
        return;
    }
    let Some(matrix) = matrix_or_skip(test) else {
        return;
    };
    if Command::new("qemu-aarch64")
        .arg("--version")
        .output()
        .is_err()
    {
        oom_tests::privileged::skip(
            test,
            "qemu-aarch64 not installed (apt-get install qemu-user)",
        );
        return;
    }
    for tc in &matrix {
        let dir = tempdir("arm64-cycle");
        let exe = build_arm64(tc, "holder", &dir.0, true);
        let bin = GoBinary::load(&exe);
        let at = find_mprof_cycle(&bin).unwrap();
        let profile = dir.0.join("heap.pb.gz");
        let mut cmd = Command::new("qemu-aarch64");
        cmd.arg(&exe)
            .args(FIXTURES[0].1)
            .env("FIXTURE_PROFILE", &profile)
            .env("FIXTURE_MEMPROFILERATE", "4096");
        let mut proc = Running::spawn(&mut cmd).unwrap();
        proc.wait_line("ready", Duration::from_secs(120)).unwrap();
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", proc.pid())).unwrap();
        let exe_name = exe.display().to_string();
        assert!(
            maps.lines().any(|l| l.starts_with("00010000-")
                && l.split_whitespace().nth(2) == Some("00000000")
                && l.ends_with(&exe_name)),
            "go{}: qemu did not map the guest at its link address:\n{maps}",
            tc.version
        );
        let mem = std::fs::File::open(format!("/proc/{}/mem", proc.pid())).unwrap();
        let u32_at = |a| u32::from_le_bytes(read_mem(&mem, a, 4).try_into().unwrap());
        let mut seen = Vec::new();
        for _ in 0..2 {
            proc.signal(SIGUSR2).unwrap();
            proc.wait_line("profiled", Duration::from_secs(120))
                .unwrap();
            seen.push(u32_at(at));
        }
        let (before, after) = (seen[0], seen[1]);
        assert!(
            before >> 1 >= 2 && (after >> 1) >= (before >> 1) + 2 && after >> 1 < 3 * (2 << 24),
            "go{} arm64: mProfCycle {before:#x} then {after:#x} around two runtime.GC()",
            tc.version
        );
        eprintln!(
            "go{} arm64 stripped: mProfCycle at {at:#x}: {before:#x} -> {after:#x}",
            tc.version
        );
    }
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn encoder_output_equals_go_heap_profile() {
    if !oom_tests::privileged::root("encoder_output_equals_go_heap_profile") {
        return;
    }
    let Some(matrix) = matrix_or_skip("encoder_output_equals_go_heap_profile") else {
        return;
    };
    for tc in &matrix {
        for variant in Variant::ALL {
            for &(name, args) in FIXTURES {
                compare_with_go(tc, variant, name, args);
            }
        }
    }
}

/// Runs [`try_compare_with_go`] up to three times: a GC that runs after the fixture
/// wrote its profile (the profile writer's own garbage can trigger one) legitimately
/// changes the heap, so a mismatch is retried on a fresh process before it fails.
fn compare_with_go(tc: &Toolchain, variant: Variant, name: &str, args: &[&str]) {
    let mut errors = Vec::new();
    for _ in 0..3 {
        match try_compare_with_go(tc, variant, name, args) {
            Ok(msg) => {
                eprintln!(
                    "{msg}{}",
                    if errors.is_empty() {
                        String::new()
                    } else {
                        format!(" (after {} retries: {errors:?})", errors.len())
                    }
                );
                return;
            }
            Err(e) => errors.push(e),
        }
    }
    panic!("{errors:#?}");
}

fn try_compare_with_go(
    tc: &Toolchain,
    variant: Variant,
    name: &str,
    args: &[&str],
) -> Result<String, String> {
    let what = format!("{name} go{} {:?}", tc.version, variant);
    let path = fixtures::build(name, tc, variant).unwrap();
    let bin = GoBinary::load(&path);
    let h = holder(&path, args, COMPARE_RATE);
    let pid = h.proc.pid();
    let bias = load_bias(pid, &bin);
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mbuckets = bin.symbol("runtime.mbuckets").unwrap_or_else(|| {
        let tab = bin.pclntab();
        stripped::find_mbuckets(
            &tab,
            bin.moduledata.text,
            bin.code(),
            bin.arch,
            bin.data_range.clone(),
        )
        .unwrap()
    });
    let raw = walk(&mem, mbuckets + bias, &bin.layout);
    // mProfCycle from .symtab, else (stripped) from the code, as oom-loader does.
    let cycle = bin
        .symbol("runtime.mProfCycle")
        .or_else(|| find_mprof_cycle(&bin).ok())
        .map(|a| (u64_at(&mem, a + bias) as u32) >> 1);
    let buckets: Vec<_> = raw
        .iter()
        .map(|b| GoBucket::parse(b, &bin.layout).unwrap().bucket)
        .collect();
    let fallback = values::needs_fallback(buckets.iter().map(|b| &b.record), cycle);
    let sym = bin.symbolizer(bias);
    let maps = mappings(pid);
    let ids: Vec<String> = maps.iter().map(|m| common::file_build_id(&m.3)).collect();
    let mappings: Vec<Mapping> = maps
        .iter()
        .zip(&ids)
        .map(|((s, l, o, f), id)| Mapping {
            start: *s,
            limit: *l,
            offset: *o,
            filename: f,
            build_id: id,
        })
        .collect();
    let fma = std::is_x86_feature_detected!("avx") && std::is_x86_feature_detected!("fma");
    let profile = Profile {
        scale: Scale::new(h.rate, Exp::Amd64 { fma }, bin.layout).unwrap(),
        policy: Policy::GoPublished { cycle, fallback },
        mappings: &mappings,
        time_nanos: 1,
        recent: false,
        default_sample_type: None,
        comments: &["oomprof test"],
    };
    let words: usize = buckets.iter().map(|b| b.stack.len()).sum();
    let mut strings = vec![StringSlot::default(); 4 * words + 64];
    let mut locs = vec![LocationSlot::default(); 4 * words + 64];
    // The daemon's way: every distinct PC symbolized once, then the encoder.
    let mut frames = vec![pprof::FrameSlot::default(); 8 * words + 64];
    pprof::symbolize(&mut frames, &sym, &buckets).unwrap();
    let mut out = vec![0u8; 16];
    let n = match pprof::encode(
        &mut out,
        Tables {
            strings: &mut strings,
            locations: &mut locs,
            frames: &frames,
        },
        &sym,
        &profile,
        &buckets,
    ) {
        Err(oom_core::Error::BufferTooSmall { needed }) => {
            out = vec![0u8; needed];
            pprof::encode(
                &mut out,
                Tables {
                    strings: &mut strings,
                    locations: &mut locs,
                    frames: &frames,
                },
                &sym,
                &profile,
                &buckets,
            )
            .unwrap()
        }
        r => r.unwrap(),
    };
    assert_eq!(n, out.len(), "{what}: needed size is exact");
    // Without the frame cache: not one byte differs.
    let mut plain = vec![0u8; n];
    let m = pprof::encode(
        &mut plain,
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
    assert_eq!(
        (m, &plain),
        (n, &out),
        "{what}: the frame cache changed the profile"
    );
    let ours_path = h._dir.0.join("ours.pb");
    std::fs::write(&ours_path, &out).unwrap();
    check_decodes(&out);
    let ours = RawProfile::parse(&tc.pprof_raw(&path, &ours_path).unwrap()).unwrap();
    let go = RawProfile::parse(&tc.pprof_raw(&path, &h.profile).unwrap()).unwrap();
    assert_eq!(
        (ours.period, &ours.sample_types),
        (go.period, &go.sample_types),
        "{what}"
    );
    let key = |p: &RawProfile, s: &oom_tests::pprof_raw::Sample| {
        let stack: Vec<_> = s
            .locations
            .iter()
            .map(|id| {
                let l = &p.locations[id];
                (
                    l.address,
                    l.lines
                        .iter()
                        .map(|x| (x.function.clone(), x.position.clone()))
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        (stack, s.values.clone(), s.labels.clone())
    };
    let mut a: Vec<_> = ours.samples.iter().map(|s| key(&ours, s)).collect();
    let mut b: Vec<_> = go.samples.iter().map(|s| key(&go, s)).collect();
    a.sort();
    b.sort();
    // Buckets created after holder wrote its profile (by the frames dump) appear in our
    // read with zero published values; everything else must be identical.
    let extra: Vec<_> = a.iter().filter(|x| !b.contains(x)).collect();
    if !b.iter().all(|x| a.contains(x)) {
        return Err(format!(
            "{what}: go samples missing from ours: {:#?}",
            b.iter().filter(|x| !a.contains(x)).collect::<Vec<_>>()
        ));
    }
    if !extra.iter().all(|x| x.1.iter().all(|&v| v == 0)) {
        return Err(format!(
            "{what}: extra non-zero samples (a GC ran after the profile?): {extra:#?}"
        ));
    }

    // Byte for byte: buckets created after holder's profile sit at the head of the
    // list, so the last N buckets are the ones Go wrote, in Go's order.
    let go_bytes = {
        use std::io::Read;
        let mut d = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&h.profile).unwrap())
            .read_to_end(&mut d)
            .unwrap();
        d
    };
    let (go_samples, go_time) = top_level(&go_bytes);
    if go_samples == 0 {
        return Err(format!("{what}: Go's profile has no samples"));
    }
    let tail = &buckets[buckets.len() - go_samples..];
    let exact = Profile {
        time_nanos: go_time,
        comments: &[],
        ..profile
    };
    let mut out = vec![0u8; go_bytes.len() + 4096];
    let n = pprof::encode(
        &mut out,
        Tables {
            strings: &mut strings,
            locations: &mut locs,
            frames: &[],
        },
        &sym,
        &exact,
        tail,
    )
    .unwrap();
    if out[..n] != go_bytes[..] {
        let at = out
            .iter()
            .zip(&go_bytes)
            .position(|(a, b)| a != b)
            .unwrap_or(n.min(go_bytes.len()));
        return Err(format!(
            "{what}: not byte-identical to runtime/pprof: {n} vs {} bytes, first difference at {at}: ours {:02x?} go {:02x?}",
            go_bytes.len(),
            &out[at.saturating_sub(8)..(at + 24).min(n)],
            &go_bytes[at.saturating_sub(8)..(at + 24).min(go_bytes.len())]
        ));
    }
    Ok(format!(
        "{what}: {} samples, byte-identical to runtime/pprof ({n} bytes; {} extra zero samples in the live read)",
        b.len(),
        extra.len()
    ))
}

/// The mappings of an uncompressed profile: (start, limit, offset, file, build id).
fn profile_mappings(buf: &[u8]) -> Vec<(u64, u64, u64, String, String)> {
    use quick_protobuf::BytesReader;
    let mut r = BytesReader::from_bytes(buf);
    let mut strings = Vec::new();
    let mut raw = Vec::new();
    while !r.is_eof() {
        let tag = r.next_tag(buf).unwrap();
        match tag {
            0x1a => {
                let m = r.read_bytes(buf).unwrap();
                let mut mr = BytesReader::from_bytes(m);
                let mut f = [0u64; 7];
                while !mr.is_eof() {
                    let t = mr.next_tag(m).unwrap();
                    if t & 7 == 0 && (t >> 3) < 7 {
                        f[(t >> 3) as usize] = mr.read_uint64(m).unwrap();
                    } else {
                        mr.read_unknown(m, t).unwrap();
                    }
                }
                raw.push(f);
            }
            0x32 => strings.push(r.read_string(buf).unwrap().to_string()),
            t => r.read_unknown(buf, t).unwrap(),
        }
    }
    raw.iter()
        .map(|f| {
            (
                f[2],
                f[3],
                f[4],
                strings[f[5] as usize].clone(),
                strings[f[6] as usize].clone(),
            )
        })
        .collect()
}

#[test]
#[ignore = "needs root, the Go matrix and qemu-aarch64: run tests/run"]
fn arm64_encoder_output_under_qemu_equals_go_heap_profile() {
    let test = "arm64_encoder_output_under_qemu_equals_go_heap_profile";
    if !oom_tests::privileged::root(test) {
        return;
    }
    let Some(matrix) = matrix_or_skip(test) else {
        return;
    };
    if Command::new("qemu-aarch64")
        .arg("--version")
        .output()
        .is_err()
    {
        oom_tests::privileged::skip(
            test,
            "qemu-aarch64 not installed (apt-get install qemu-user)",
        );
        return;
    }
    for tc in &matrix {
        for &(name, args) in FIXTURES {
            let mut errors = Vec::new();
            let ok = (0..3).any(|_| match arm64_compare(tc, name, args) {
                Ok(msg) => {
                    eprintln!("{msg}");
                    true
                }
                Err(e) => {
                    errors.push(e);
                    false
                }
            });
            assert!(ok, "{errors:#?}");
        }
    }
}

/// qemu-user maps a static arm64 guest at its link addresses (guest base 0), so the
/// guest's buckets are readable at the same addresses through the qemu process.
fn arm64_compare(tc: &Toolchain, name: &str, args: &[&str]) -> Result<String, String> {
    let what = format!("arm64 {name} go{}", tc.version);
    let dir = tempdir("arm64-enc");
    let exe = build_arm64(tc, name, &dir.0, false);
    let bin = GoBinary::load(&exe);
    let profile_path = dir.0.join("heap.pb.gz");
    let mut cmd = Command::new("qemu-aarch64");
    cmd.arg(&exe)
        .args(args)
        .env("FIXTURE_PROFILE", &profile_path)
        .env("FIXTURE_MEMPROFILERATE", COMPARE_RATE);
    let mut proc = Running::spawn(&mut cmd).unwrap();
    proc.wait_line("ready", Duration::from_secs(120)).unwrap();
    proc.signal(SIGUSR2).unwrap();
    proc.wait_line("profiled", Duration::from_secs(120))
        .unwrap();
    let mem = std::fs::File::open(format!("/proc/{}/mem", proc.pid())).unwrap();
    let raw = walk(&mem, bin.symbol("runtime.mbuckets").unwrap(), &bin.layout);
    let cycle = Some((u64_at(&mem, bin.symbol("runtime.mProfCycle").unwrap()) as u32) >> 1);
    let rate = u64_at(&mem, bin.symbol("runtime.MemProfileRate").unwrap()) as i64;
    let buckets: Vec<_> = raw
        .iter()
        .map(|b| GoBucket::parse(b, &bin.layout).unwrap().bucket)
        .collect();
    let go_bytes = {
        use std::io::Read;
        let mut d = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&profile_path).unwrap())
            .read_to_end(&mut d)
            .unwrap();
        d
    };
    // The guest's view of its maps (qemu emulates /proc/self/maps), taken from Go's profile.
    let maps = profile_mappings(&go_bytes);
    let mappings: Vec<Mapping> = maps
        .iter()
        .map(|(s, l, o, f, b)| Mapping {
            start: *s,
            limit: *l,
            offset: *o,
            filename: f,
            build_id: b,
        })
        .collect();
    let (go_samples, go_time) = top_level(&go_bytes);
    if go_samples == 0 {
        return Err(format!("{what}: Go's profile has no samples"));
    }
    let tail = &buckets[buckets.len() - go_samples..];
    let fallback = values::needs_fallback(tail.iter().map(|b| &b.record), cycle);
    let profile = Profile {
        scale: Scale::new(rate, Exp::Arm64, bin.layout).unwrap(),
        policy: Policy::GoPublished { cycle, fallback },
        mappings: &mappings,
        time_nanos: go_time,
        recent: false,
        default_sample_type: None,
        comments: &[],
    };
    let words: usize = buckets.iter().map(|b| b.stack.len()).sum();
    let mut strings = vec![StringSlot::default(); 4 * words + 64];
    let mut locs = vec![LocationSlot::default(); 4 * words + 64];
    let mut out = vec![0u8; go_bytes.len() + 4096];
    let sym = bin.symbolizer(0);
    let n = pprof::encode(
        &mut out,
        Tables {
            strings: &mut strings,
            locations: &mut locs,
            frames: &[],
        },
        &sym,
        &profile,
        tail,
    )
    .unwrap();
    if out[..n] != go_bytes[..] {
        let at = out
            .iter()
            .zip(&go_bytes)
            .position(|(a, b)| a != b)
            .unwrap_or(n.min(go_bytes.len()));
        return Err(format!(
            "{what}: not byte-identical: {n} vs {} bytes, first difference at {at}",
            go_bytes.len()
        ));
    }
    Ok(format!(
        "{what}: {go_samples} samples, byte-identical to runtime/pprof ({n} bytes)"
    ))
}

/// (number of samples, time_nanos) of an uncompressed profile.
fn top_level(buf: &[u8]) -> (usize, i64) {
    use quick_protobuf::BytesReader;
    let mut r = BytesReader::from_bytes(buf);
    let (mut samples, mut time) = (0, 0);
    while !r.is_eof() {
        let tag = r.next_tag(buf).unwrap();
        match tag {
            0x12 => {
                r.read_bytes(buf).unwrap();
                samples += 1;
            }
            0x48 => time = r.read_int64(buf).unwrap(),
            t => r.read_unknown(buf, t).unwrap(),
        }
    }
    (samples, time)
}

/// Decodes with quick-protobuf's reader, independently of our encoder.
fn check_decodes(buf: &[u8]) {
    use quick_protobuf::BytesReader;
    let mut r = BytesReader::from_bytes(buf);
    let mut strings = 0;
    let mut samples = 0;
    while !r.is_eof() {
        let tag = r.next_tag(buf).unwrap();
        match (tag >> 3, tag & 7) {
            (6, 2) => {
                r.read_string(buf).unwrap();
                strings += 1;
            }
            (2, 2) => {
                let msg = r.read_bytes(buf).unwrap();
                let mut m = BytesReader::from_bytes(msg);
                while !m.is_eof() {
                    let t = m.next_tag(msg).unwrap();
                    m.read_unknown(msg, t).unwrap();
                }
                samples += 1;
            }
            (_, _) => r.read_unknown(buf, tag).unwrap(),
        }
    }
    assert!(strings > 7 && samples > 0);
}
