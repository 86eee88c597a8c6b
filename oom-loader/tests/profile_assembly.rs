//! Profile assembly without root: [`assemble`] over a real Go binary and a capture
//! written here.
//!
//! The `holder` fixture, as built by every Go version of the matrix (plain and PIE,
//! the PIE one placed at a made-up load bias), is analysed as the daemon analyses a
//! victim's executable. Three bucket entries in the kernel's format (`oom_abi.h`:
//! u32 and u64 PCs, u32 and u64 counters, outer frames shared with the entry before)
//! carry return PCs inside known functions of it, found in its `.symtab`; they are
//! expanded as `Capture::for_each_bucket` expands them. Mappings are what
//! `/proc/PID/maps` would list for the binary. The gzipped pprof that comes out is
//! decoded with oom-cli's reader and checked field by field (sample types, values
//! scaled by hand from Go's formula, symbolized frames, mappings, comments with the
//! incomplete reasons), and `go tool pprof -raw` must read it to the same values and
//! stacks.

use oom_loader::attribution::{parse_cgroup, Attribution, Names, Runtime};
use std::fs::File;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use object::{Object, ObjectSymbol};
use oom_cli::pprof_read;
use oom_core::abi::{entry_flags, Entries, StackExpander, MAX_NSTK};
use oom_core::bucket::{Bucket, Cycle, MemRecord, Stack};
use oom_core::values::Policy;
use oom_loader::binary::GoBinary;
use oom_loader::ondemand::dev_pair;
use oom_loader::procmaps::{self, MapEntry};
use oom_loader::profile::{assemble, Incomplete, ProfileMeta, Reason, Rss};
use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix::{self, Toolchain};
use oom_tests::pprof_raw::RawProfile;

/// `runtime.MemProfileRate` of the capture: Go's default, so values are scaled.
/// A kubelet cgroupfs-driver path (pod UID, then container id).
const CGROUP: &str = "0::/kubepods/burstable/pod1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e/4f0c3a2b1d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a";

const RATE: i64 = 524_288;

/// The profiling cycle the capture read (`mProfCycle >> 1`): Go publishes
/// `active + future[7 % 3]`; `future[2]` and `future[0]` are the recent allocations.
const CYCLE: u32 = 7;

/// The line of `tests/go/holder/main.go` where `func NAME(` starts (the line of the
/// function's entry PC), read from the source so that editing the fixture moves it.
fn func_line(name: &str) -> i64 {
    let src = std::fs::read_to_string(oom_tests::fixtures::source_dir().join("holder/main.go"))
        .expect("reading tests/go/holder/main.go");
    let want = format!("func {name}(");
    src.lines()
        .position(|l| l.starts_with(&want))
        .map(|i| i as i64 + 1)
        .unwrap_or_else(|| panic!("no `{want}` in holder/main.go"))
}

/// A bucket entry in the kernel's format (`oom_abi.h`, "Bucket entries").
struct EntryWriter(Vec<u8>);

impl EntryWriter {
    /// Appends one entry: its own (innermost) PCs, u32 offsets from `pc_base` when
    /// `pc32`; the outermost `shared` PCs come from the entry before; `cycles[i]` is
    /// sent when not zero, u32 counters when `cnt32`.
    #[expect(clippy::too_many_arguments, reason = "one argument per entry field")]
    fn entry(
        &mut self,
        size: u64,
        own: &[u64],
        shared: u16,
        cycles: [Cycle; 4],
        pc32: Option<u64>,
        cnt32: bool,
        extra_flags: u8,
    ) -> &mut Self {
        let b = &mut self.0;
        let mask = (0..4).fold(0u8, |m, i| {
            if cycles[i] == Cycle::default() {
                m
            } else {
                m | 1 << i
            }
        });
        let mut flags = extra_flags;
        if pc32.is_some() {
            flags |= entry_flags::PC32;
        }
        if cnt32 {
            flags |= entry_flags::CNT32;
        }
        b.extend_from_slice(&size.to_le_bytes()); // off 0: size
        let nstk = own.len() as u16 + shared;
        b.extend_from_slice(&nstk.to_le_bytes()); // off 8: nstk
        b.extend_from_slice(&shared.to_le_bytes()); // off 10: shared
        b.push(mask); // off 12: cycles
        b.push(flags); // off 13: flags
        for &pc in own {
            match pc32 {
                Some(base) => b.extend_from_slice(&u32::try_from(pc - base).unwrap().to_le_bytes()),
                None => b.extend_from_slice(&pc.to_le_bytes()),
            }
        }
        for c in cycles.iter().filter(|c| **c != Cycle::default()) {
            if cnt32 {
                b.extend_from_slice(&u32::try_from(c.allocs).unwrap().to_le_bytes());
                b.extend_from_slice(&u32::try_from(c.frees).unwrap().to_le_bytes());
            } else {
                b.extend_from_slice(&c.allocs.to_le_bytes());
                b.extend_from_slice(&c.frees.to_le_bytes());
            }
        }
        self
    }
}

fn cycle(allocs: u64, frees: u64) -> Cycle {
    Cycle { allocs, frees }
}

/// Link-time entry address of every symbol the test needs, from `.symtab`.
struct Funcs {
    alloc_large: u64,
    alloc_small: u64,
    main: u64,
    runtime_main: u64,
    goexit: u64,
    mallocgc: u64,
}

fn funcs(path: &Path) -> Funcs {
    let data = std::fs::read(path).unwrap();
    let elf = object::File::parse(&*data).unwrap();
    // Assembly functions are `NAME.abi0` in .symtab (pclntab names them `NAME`).
    let addr = |name: &str| {
        let abi0 = format!("{name}.abi0");
        elf.symbols()
            .find(|s| s.name() == Ok(name) || s.name() == Ok(&abi0))
            .unwrap_or_else(|| panic!("{}: no symbol {name}", path.display()))
            .address()
    };
    Funcs {
        alloc_large: addr("main.allocLarge"),
        alloc_small: addr("main.allocSmall"),
        main: addr("main.main"),
        runtime_main: addr("runtime.main"),
        goexit: addr("runtime.goexit"),
        mallocgc: addr("runtime.mallocgc"),
    }
}

/// What `/proc/PID/maps` lists for `bin` loaded at `bias`: one mapping per PT_LOAD
/// segment (the first one executable, as Go's linker lays out text first), an
/// anonymous executable mapping (pprof leaves it out) and the vDSO.
fn maps(bin: &GoBinary, path: &Path, bias: u64) -> Vec<MapEntry> {
    let mut out: Vec<MapEntry> = bin
        .info
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let start = bias + (s.vaddr & !0xfff);
            MapEntry {
                start,
                end: (bias + s.vaddr + s.filesz + 0xfff) & !0xfff,
                read: true,
                write: i > 1,
                exec: i == 0,
                offset: s.offset & !0xfff,
                dev: dev_pair(bin.key.dev),
                inode: bin.key.ino,
                path: path.display().to_string(),
                deleted: false,
            }
        })
        .collect();
    let anon = |start: u64, path: &str| MapEntry {
        start,
        end: start + 0x2000,
        read: true,
        write: false,
        exec: true,
        offset: 0,
        dev: (0, 0),
        inode: 0,
        path: path.into(),
        deleted: false,
    };
    out.push(anon(0x7f00_0000_0000, ""));
    out.push(anon(0x7ffd_0000_0000, "[vdso]"));
    out
}

// The sample values of the two buckets with allocations, in the profile's
// sample-type order, scaled as Go's scaleHeapSample does: count / (1 - exp(-size /
// rate)), truncated. Computed by hand; each is at least 1e-11 of itself away from the
// next integer, far more than Go's `exp` and another one may differ by.

/// 1 MiB objects: 40 + 2 published allocations and 1 free, 3 recent allocations;
/// 1 / (1 - e^-2) = 1.1565176427496657.
const LARGE: [i64; 6] = [48, 50_933_259, 47, 49_720_562, 3, 3_638_089];
/// 1 KiB objects: 10000 allocations and 2000 frees, all published;
/// 1 / (1 - e^(-1/512)) = 512.50016276042.
const SMALL: [i64; 6] = [5_125_001, 5_248_001_666, 4_100_001, 4_198_401_333, 0, 0];

fn check(tc: &Toolchain, variant: Variant, bias: u64) {
    let what = format!("go{} {}", tc.version, variant.name());
    let path = fixtures::build("holder", tc, variant).unwrap();
    let bin = GoBinary::analyze(&File::open(&path).unwrap(), &path).unwrap();
    assert_eq!(bin.info.pie, variant == Variant::Pie, "{what}");
    let f = funcs(&path);
    let maps = maps(&bin, &path, bias);
    // The bias the daemon would compute from these mappings is the one they were
    // made with.
    assert_eq!(
        procmaps::load_bias(
            &maps,
            dev_pair(bin.key.dev),
            bin.key.ino,
            &bin.info.segments
        ),
        Some(bias),
        "{what}"
    );

    // Return PCs one past each function's entry: looked up at PC - 1, the entry, which
    // is no inlined call's. Runtime addresses.
    let pc = |link: u64| bias + link + 1;
    let outer = [pc(f.main), pc(f.runtime_main), pc(f.goexit)];
    // The kernel's base for u32 PCs: the start of the text mapping.
    let pc_base = maps[0].start;
    let mut payload = EntryWriter(Vec::new());
    // Large: mallocgc (a leading runtime frame, which pprof hides), allocLarge, then
    // the outer frames; u32 PCs, u32 counters; active, future[1] (published) and
    // future[2] (recent) set, future[0] all zero so not sent.
    let mut large = vec![pc(f.mallocgc), pc(f.alloc_large)];
    large.extend(outer);
    payload.entry(
        1 << 20,
        &large,
        0,
        [cycle(40, 0), cycle(0, 0), cycle(2, 1), cycle(3, 0)],
        Some(pc_base),
        true,
        0,
    );
    // Small: allocSmall, sharing its three outer frames with the entry before; u64
    // PCs and counters; only the active cycle.
    payload.entry(
        1024,
        &[pc(f.alloc_small)],
        3,
        [
            cycle(10_000, 2000),
            Cycle::default(),
            Cycle::default(),
            Cycle::default(),
        ],
        None,
        false,
        0,
    );
    // An all-zero bucket whose stack the kernel cut: a sample of zeros all the same.
    payload.entry(
        64,
        &[pc(f.main)],
        0,
        [Cycle::default(); 4],
        None,
        false,
        entry_flags::TRUNC,
    );

    // Expanded as Capture::for_each_bucket does, into one arena as the monitor does.
    let mut arena = Vec::new();
    let mut parts = Vec::new();
    let mut x = Box::new(StackExpander::new());
    let mut buf = vec![0u8; MAX_NSTK as usize * 8];
    for e in Entries::new(&payload.0, pc_base) {
        let b = x.bucket_into(&e.unwrap(), &mut buf).unwrap();
        let start = arena.len();
        arena.extend_from_slice(b.stack.as_bytes());
        parts.push((b.size, start..arena.len(), b.record));
    }
    let buckets: Vec<Bucket<'_>> = parts
        .iter()
        .map(|(size, r, record)| Bucket {
            size: *size,
            stack: Stack::new(&arena[r.clone()]).unwrap(),
            record: *record,
        })
        .collect();
    assert_eq!(buckets.len(), 3, "{what}");
    assert_eq!(buckets[1].stack.len(), 4, "{what}: shared frames expanded");
    assert_eq!(
        buckets[0].record,
        MemRecord {
            active: cycle(40, 0),
            future: [Cycle::default(), cycle(2, 1), cycle(3, 0)],
        },
        "{what}"
    );

    let info = &bin.info;
    let incomplete = vec![
        Incomplete::StacksCut {
            count: 1,
            frames: 4,
        },
        Incomplete::ChunksLost { count: 2 },
    ];
    let time = UNIX_EPOCH + Duration::new(1_795_310_760, 123_456_789);
    let meta = ProfileMeta {
        pid: 4242,
        comm: "holder".into(),
        exe: path.clone(),
        go_version: info.go_version.clone(),
        main_module: info.main_path.clone(),
        main_version: info.main_version.clone(),
        vcs_revision: info.vcs_revision.clone(),
        go_build_id: info.go_build_id.clone(),
        gnu_build_id: info.gnu_build_id.clone(),
        reason: Reason::Oom,
        trigger: Some((4300, "stress".into())),
        pressure: None,
        rss: Some(Rss {
            total_vm_kb: 2_097_152,
            anon_kb: 1_048_576,
            file_kb: 2048,
            shmem_kb: 0,
            oom_score_adj: 0,
        }),
        cgroup: Some(CGROUP.into()),
        attribution: Some(Attribution {
            ids: parse_cgroup(CGROUP),
            names: Names {
                namespace: Some("shop".into()),
                pod: Some("api-0".into()),
                container: Some("api".into()),
                pod_uid: None,
                runtime: Some(Runtime::Containerd),
            },
        }),
        mem_profile_rate: RATE,
        buckets: buckets.len(),
        incomplete: incomplete.clone(),
        buckets_seen: Some(5),
        kill_mono_ns: Some(1_000_000),
        walk_ns: Some(1_500_000),
        walk_irqs_off: Some(false),
        time,
        event_log: Some("oomprof-events.jsonl".into()),
    };
    let policy = Policy::GoPublished {
        cycle: Some(CYCLE),
        fallback: false,
    };
    let out = assemble(&bin, bias, &buckets, &maps, policy, true, meta)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(out.meta.incomplete, incomplete, "{what}");
    assert!(!out.meta.is_complete(), "{what}");

    let p = pprof_read::parse(&out.pprof_gz).unwrap_or_else(|e| panic!("{what}: {e}"));

    // Go's six heap types (recent ones included), inuse_space shown first.
    let types: Vec<(&str, &str)> = p
        .sample_types
        .iter()
        .map(|t| (t.kind.as_str(), t.unit.as_str()))
        .collect();
    assert_eq!(
        types,
        [
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("inuse_objects", "count"),
            ("inuse_space", "bytes"),
            ("recent_alloc_objects", "count"),
            ("recent_alloc_space", "bytes"),
        ],
        "{what}"
    );
    assert_eq!(p.default_sample_type, "inuse_space", "{what}");
    let period_type = p.period_type.as_ref().unwrap();
    assert_eq!(
        (period_type.kind.as_str(), period_type.unit.as_str()),
        ("space", "bytes")
    );
    assert_eq!(p.period, RATE, "{what}");
    assert_eq!(p.time_nanos, 1_795_310_760_123_456_789, "{what}");

    // One sample per bucket, in bucket order, zero values included.
    assert_eq!(p.samples.len(), 3, "{what}");
    assert_eq!(p.samples[0].values, LARGE, "{what}: large");
    assert_eq!(p.samples[1].values, SMALL, "{what}: small");
    assert_eq!(p.samples[2].values, [0; 6], "{what}: zero");

    // Frames: the leading runtime.mallocgc is gone, and so is runtime.goexit (Go's
    // allFrames drops it); each location is the PC looked up (PC - 1) in the
    // executable's mapping, one line of the function at its first line.
    let exe_file = path.display().to_string();
    let frames = |s: &pprof_read::Sample| -> Vec<(String, i64, u64)> {
        s.locations
            .iter()
            .map(|&l| {
                let loc = &p.locations[l];
                assert_eq!(loc.lines.len(), 1, "{what}: {loc:?}");
                let m = &p.mappings[loc.mapping.unwrap()];
                assert_eq!(m.file, exe_file, "{what}: {loc:?} outside the executable");
                let func = &p.functions[loc.lines[0].function.unwrap()];
                (func.name.clone(), loc.lines[0].line, loc.address)
            })
            .collect()
    };
    let at = |name: &str, line: i64, link: u64| (name.to_string(), line, bias + link);
    let main_frame = at("main.main", func_line("main"), f.main);
    let frames_large = frames(&p.samples[0]);
    assert_eq!(
        frames_large[..2],
        [
            at("main.allocLarge", func_line("allocLarge"), f.alloc_large),
            main_frame.clone()
        ],
        "{what}: large"
    );
    let names = |fr: &[(String, i64, u64)]| fr.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&frames_large),
        ["main.allocLarge", "main.main", "runtime.main"],
        "{what}: large"
    );
    let frames_small = frames(&p.samples[1]);
    assert_eq!(
        frames_small[..2],
        [
            at("main.allocSmall", func_line("allocSmall"), f.alloc_small),
            main_frame.clone()
        ],
        "{what}: small"
    );
    assert_eq!(
        frames_small[1..],
        frames_large[1..],
        "{what}: shared frames"
    );
    assert_eq!(frames(&p.samples[2]), [main_frame], "{what}: zero");
    for func in &p.functions {
        if func.name.starts_with("main.") {
            assert!(
                func.filename.ends_with("tests/go/holder/main.go"),
                "{what}: {func:?}"
            );
            // runtime/pprof writes start lines from Go 1.20 on.
            let start = match func.name.as_str() {
                "main.allocLarge" => func_line("allocLarge"),
                "main.allocSmall" => func_line("allocSmall"),
                _ => func_line("main"),
            };
            let want = if tc.minor() >= 20 { start } else { 0 };
            assert_eq!(func.start_line, want, "{what}: {func:?}");
        }
    }

    // The `bytes` label: always from Go 1.27, else only on buckets with allocations.
    let label = |s: &pprof_read::Sample| {
        s.labels
            .iter()
            .map(|l| (l.key.clone(), l.num))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        label(&p.samples[0]),
        [("bytes".to_string(), 1 << 20)],
        "{what}"
    );
    assert_eq!(
        label(&p.samples[1]),
        [("bytes".to_string(), 1024)],
        "{what}"
    );
    let zero_label = if tc.minor() >= 27 {
        vec![("bytes".to_string(), 64)]
    } else {
        vec![]
    };
    assert_eq!(label(&p.samples[2]), zero_label, "{what}");

    // Mappings as runtime/pprof lists them: the executable's text with its GNU build
    // ID, then the vDSO; the anonymous executable mapping is left out.
    let listed: Vec<(&str, u64, &str)> = p
        .mappings
        .iter()
        .map(|m| (m.file.as_str(), m.memory_start, m.build_id.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            (exe_file.as_str(), maps[0].start, info.gnu_build_id.as_str()),
            ("[vdso]", 0x7ffd_0000_0000, ""),
        ],
        "{what}"
    );
    assert_eq!(p.main_file(), Some(exe_file.as_str()));

    // The capture context, incomplete reasons included, in pprof comments.
    let mut comments = vec![
        "oomprof: reason=oom pid=4242 comm=holder".to_string(),
        format!("exe: {exe_file}"),
        format!(
            "go: {} module: {} {}",
            info.go_version,
            info.main_path.as_deref().unwrap_or("-"),
            info.main_version.as_deref().unwrap_or("-")
        ),
    ];
    if let Some(r) = &info.vcs_revision {
        comments.push(format!("vcs.revision: {r}"));
    }
    comments.extend([
        format!(
            "build-id: go={} gnu={}",
            info.go_build_id.as_deref().unwrap_or("-"),
            if info.gnu_build_id.is_empty() {
                "-"
            } else {
                &info.gnu_build_id
            }
        ),
        "trigger: pid=4300 comm=stress".into(),
        "rss: total_vm=2097152kB anon=1048576kB file=2048kB shmem=0kB oom_score_adj=0".into(),
        format!("cgroup: {CGROUP}"),
        "event: oomprof-events.jsonl (the line with \"pid\":4242)".into(),
        "pod: shop/api-0 uid=1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e qos=Burstable".into(),
        "container: api runtime=containerd \
         id=4f0c3a2b1d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a"
            .into(),
        "memprofilerate: 524288".into(),
        "capture: INCOMPLETE, 3 of 5 buckets, walked in 1500 us with interrupts on: \
         1 stacks cut at 4 frames; 2 chunks lost"
            .into(),
    ]);
    assert_eq!(p.comments, comments, "{what}");

    // The summary the daemon logs agrees with the samples.
    assert_eq!(out.summary.inuse_bytes, LARGE[3] + SMALL[3], "{what}");
    assert_eq!(out.summary.inuse_objects, LARGE[2] + SMALL[2], "{what}");
    assert_eq!(
        out.summary.top_function.as_deref(),
        Some("main.allocSmall"),
        "{what}"
    );
    assert_eq!(out.summary.top_inuse_bytes, SMALL[3], "{what}");
    assert_eq!(out.summary.recent_bytes, LARGE[5], "{what}");
    assert_eq!(
        out.summary.recent_top_function.as_deref(),
        Some("main.allocLarge")
    );

    // Go's own pprof reads the same values and stacks. (Some of its versions leave out
    // the all-zero sample, some keep it: compared without.)
    let file = std::env::temp_dir().join(format!(
        "oomprof-assembly-{}-{}-{}.pb.gz",
        std::process::id(),
        tc.version,
        variant.name()
    ));
    std::fs::write(&file, &out.pprof_gz).unwrap();
    let raw = tc.pprof_raw(&path, &file);
    let _ = std::fs::remove_file(&file);
    let raw = RawProfile::parse(&raw.unwrap_or_else(|e| panic!("{what}: {e}"))).unwrap();
    let theirs: Vec<(Vec<i64>, Vec<String>)> = raw
        .samples
        .iter()
        .map(|s| (s.values.clone(), raw.functions(s)))
        .filter(|(values, _)| values.iter().any(|&v| v != 0))
        .collect();
    let ours: Vec<(Vec<i64>, Vec<String>)> = [&frames_large, &frames_small, &frames(&p.samples[2])]
        .iter()
        .zip(&p.samples)
        .map(|(fr, s)| (s.values.clone(), names(fr)))
        .filter(|(values, _)| values.iter().any(|&v| v != 0))
        .collect();
    assert_eq!(theirs, ours, "{what}: go tool pprof -raw");
}

#[test]
#[ignore = "needs the Go matrix: run tests/run"]
fn assembles_a_symbolized_scaled_profile_from_kernel_entries() {
    let test = "assembles_a_symbolized_scaled_profile_from_kernel_entries";
    let Some(matrix) = gomatrix::matrix(test) else {
        return;
    };
    for tc in &matrix {
        check(tc, Variant::Default, 0);
        // A PIE where the kernel might load one: the bias moves every address.
        check(tc, Variant::Pie, 0x5555_5555_4000);
    }
}
