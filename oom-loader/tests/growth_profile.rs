//! The growth profile of this very process: stacks made of PCs inside two of its own
//! functions, symbolized through its real mappings (a PIE test binary: the load bias
//! matters) and `.symtab`, decoded with the CLI's pprof reader. No root needed.

use std::path::Path;
use std::time::{Duration, SystemTime};

use oom_cli::pprof_read;
use oom_core::abi::{GrowthCounters, GrowthEntry, GROWTH_MAX_DEPTH};
use oom_loader::growth_profile::{build, GrowthMeta, NOT_UNWOUND, UNWIND_STOPPED};
use oom_loader::procmaps;

#[no_mangle]
#[inline(never)]
pub extern "C" fn growth_test_leaf(x: u64) -> u64 {
    std::hint::black_box(x).wrapping_mul(31).rotate_left(7) ^ 0x5a5a_5a5a
}

#[no_mangle]
#[inline(never)]
pub extern "C" fn growth_test_caller(x: u64) -> u64 {
    growth_test_leaf(std::hint::black_box(x)).wrapping_add(growth_test_leaf(x ^ 1))
}

fn entry(tgid: u32, samples: u64, stack: &[u64]) -> GrowthEntry {
    let mut pcs = [0u64; GROWTH_MAX_DEPTH];
    pcs[..stack.len()].copy_from_slice(stack);
    GrowthEntry {
        tgid,
        samples,
        first_ns: 1,
        last_ns: 2,
        depth: stack.len(),
        pcs,
    }
}

#[test]
fn own_stacks_are_symbolized_and_unwinding_failures_marked() {
    assert_ne!(growth_test_caller(3), 0);
    let leaf = growth_test_leaf as *const () as u64 + 1;
    // A return address inside the caller (call PC = return − 1 stays inside).
    let ret = growth_test_caller as *const () as u64 + 5;
    let pid = std::process::id();
    let maps = procmaps::read(Path::new("/proc"), pid as i32).unwrap();
    let entries = [
        entry(pid, 10, &[leaf, ret]),
        entry(pid, 3, &[leaf]),
        entry(pid, 5, &[leaf, 0x10]),
    ];
    let meta = GrowthMeta {
        pid: pid as i32,
        comm: "growth_profile".into(),
        exe: std::env::current_exe().unwrap(),
        period: 64,
        duration: Duration::from_secs(2),
        counters: GrowthCounters {
            samples: 18,
            new_stacks: 3,
            dropped_full: 7,
            ..GrowthCounters::default()
        },
        time: SystemTime::now(),
    };
    let g = build(Path::new("/proc"), &entries, &maps, &meta);
    assert_eq!((g.samples, g.stacks, g.not_unwound_samples), (18, 3, 8));
    assert_eq!(g.top_function.as_deref(), Some("growth_test_leaf"));
    let p = pprof_read::parse(&g.pprof_gz).unwrap();
    let types: Vec<_> = p
        .sample_types
        .iter()
        .map(|t| (&*t.kind, &*t.unit))
        .collect();
    assert_eq!(types, [("faults", "count"), ("faulted_space", "bytes")]);
    assert_eq!(p.default_sample_type, "faulted_space");
    let page = 4096; // x86-64
    assert_eq!(p.period, 64 * page);
    let names = |s: &pprof_read::Sample| -> Vec<String> {
        s.locations
            .iter()
            .map(|&l| {
                let f = p.locations[l].lines[0].function.unwrap();
                p.functions[f].name.clone()
            })
            .collect()
    };
    let got: Vec<(Vec<String>, Vec<i64>)> = p
        .samples
        .iter()
        .map(|s| (names(s), s.values.clone()))
        .collect();
    let v = |n: i64| vec![n * 64, n * 64 * page];
    assert_eq!(
        got,
        [
            (
                vec!["growth_test_leaf".into(), "growth_test_caller".into()],
                v(10)
            ),
            (vec!["growth_test_leaf".into(), NOT_UNWOUND.into()], v(3)),
            (vec!["growth_test_leaf".into(), UNWIND_STOPPED.into()], v(5)),
        ]
    );
    // The real locations sit in the test binary's mapping, at their runtime address.
    let exe = std::env::current_exe().unwrap();
    let loc = &p.locations[p.samples[0].locations[0]];
    let m = &p.mappings[loc.mapping.unwrap()];
    assert_eq!(Path::new(&m.file), exe);
    assert_eq!(loc.address, leaf);
    let comments = p.comments.join("\n");
    assert!(comments.contains("8 of 18 samples"), "{comments}");
    assert!(
        comments.contains("5 stopped at an address outside code"),
        "{comments}"
    );
    assert!(comments.contains("lost: 7 samples"), "{comments}");
}

#[test]
fn no_samples_still_make_a_readable_profile() {
    let pid = std::process::id();
    let maps = procmaps::read(Path::new("/proc"), pid as i32).unwrap();
    let meta = GrowthMeta {
        pid: pid as i32,
        comm: "x".into(),
        exe: "/x".into(),
        period: 1,
        duration: Duration::from_millis(1),
        counters: GrowthCounters::default(),
        time: SystemTime::now(),
    };
    let g = build(Path::new("/proc"), &[], &maps, &meta);
    assert_eq!((g.samples, g.stacks, g.top_function), (0, 0, None));
    let p = pprof_read::parse(&g.pprof_gz).unwrap();
    assert!(p.samples.is_empty());
    assert_eq!(p.sample_types.len(), 2);
}
