//! Issue 8, hostile binaries: truncated files, absurd section headers, corrupted
//! gopclntab / buildinfo / notes, and a huge sparse file. Analysis must fail with a
//! clear error or succeed — never panic, never read a whole file, always quickly.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oom_loader::binary::GoBinary;
use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix;

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("oomprof-hostile-{}-{name}", std::process::id()))
}

/// Analyses `data` written to a file; returns the result text and how long it took.
fn analyze(name: &str, data: &[u8]) -> (Result<String, String>, Duration) {
    let p = tmp(name);
    fs::write(&p, data).unwrap();
    let r = analyze_path(&p);
    let _ = fs::remove_file(&p);
    r
}

fn analyze_path(p: &Path) -> (Result<String, String>, Duration) {
    let f = fs::File::open(p).unwrap();
    let t = Instant::now();
    let r = std::panic::catch_unwind(|| GoBinary::analyze(&f, p));
    let took = t.elapsed();
    match r {
        Ok(Ok(b)) => (Ok(b.info.go_version.clone()), took),
        Ok(Err(e)) => {
            let msg = e.to_string();
            assert_eq!(msg.lines().count(), 1, "multi-line error: {msg}");
            (Err(msg), took)
        }
        Err(_) => panic!("analysis of {} panicked", p.display()),
    }
}

fn real_binary(test: &str, v: Variant) -> Option<Vec<u8>> {
    let tc = gomatrix::newest(test)?;
    Some(fs::read(fixtures::build("holder", &tc, v).unwrap()).unwrap())
}

/// A deterministic xorshift so "random" corruption is reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
#[ignore = "needs the Go matrix: run tests/run"]
fn truncated_binaries_fail_cleanly() {
    let Some(bin) = real_binary("truncated_binaries_fail_cleanly", Variant::Stripped) else {
        return;
    };
    let mut failures = 0;
    for cut in [
        0,
        1,
        16,
        63,
        64,
        200,
        4096,
        bin.len() / 10,
        bin.len() / 3,
        bin.len() / 2,
        bin.len() - 1,
    ] {
        let (r, took) = analyze(&format!("cut{cut}"), &bin[..cut]);
        assert!(took < Duration::from_secs(2), "cut at {cut}: {took:?}");
        if r.is_err() {
            failures += 1;
        }
    }
    assert!(failures >= 8, "most truncations must be rejected");
}

#[test]
#[ignore = "needs the Go matrix: run tests/run"]
fn absurd_section_headers_and_random_corruption_never_panic() {
    let Some(bin) = real_binary(
        "absurd_section_headers_and_random_corruption_never_panic",
        Variant::Default,
    ) else {
        return;
    };
    // Every section header's sh_offset / sh_size set to huge values, one field at a time.
    let shoff = u64::from_le_bytes(bin[0x28..0x30].try_into().unwrap()) as usize;
    let shnum = u16::from_le_bytes(bin[0x3c..0x3e].try_into().unwrap()) as usize;
    for i in 0..shnum {
        for (field, value) in [
            (0x18usize, u64::MAX - 7),
            (0x20, u64::MAX),
            (0x20, 1 << 40),
            (0x10, u64::MAX),
        ] {
            let mut b = bin.clone();
            let at = shoff + i * 64 + field;
            b[at..at + 8].copy_from_slice(&value.to_le_bytes());
            let (_, took) = analyze(&format!("sh{i}-{field}"), &b);
            assert!(
                took < Duration::from_secs(2),
                "section {i} field {field:#x}: {took:?}"
            );
        }
    }
    // Random byte corruption anywhere.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..200 {
        let mut b = bin.clone();
        for _ in 0..(1 + rng.next() % 64) {
            let at = (rng.next() as usize) % b.len();
            b[at] = rng.next() as u8;
        }
        let (_, took) = analyze(&format!("rand{round}"), &b);
        assert!(took < Duration::from_secs(2), "round {round}: {took:?}");
    }
}

#[test]
#[ignore = "needs the Go matrix: run tests/run"]
fn corrupted_go_structures_are_rejected_with_a_reason() {
    let Some(bin) = real_binary(
        "corrupted_go_structures_are_rejected_with_a_reason",
        Variant::Stripped,
    ) else {
        return;
    };
    let find = |needle: &[u8]| bin.windows(needle.len()).position(|w| w == needle).unwrap();
    // Buildinfo magic destroyed: not a Go program.
    let mut b = bin.clone();
    let at = find(b"\xff Go buildinf:");
    b[at + 1] = b'X';
    let (r, _) = analyze("nobuildinfo", &b);
    assert!(r.unwrap_err().contains("not a Go program"));
    // Go version string made unparseable.
    let mut b = bin.clone();
    b[at + 33..at + 35].copy_from_slice(b"zz");
    let (r, _) = analyze("badversion", &b);
    assert!(r.is_err(), "{r:?}");
    // gopclntab magic destroyed.
    let mut b = bin.clone();
    let at = find(&[0xf1, 0xff, 0xff, 0xff, 0, 0]);
    b[at] = 0x00;
    let (r, _) = analyze("nopclntab", &b);
    assert!(r.is_err(), "{r:?}");
    // Note sections with absurd name/desc sizes.
    let mut b = bin.clone();
    let at = find(b"Go\0\0");
    b[at - 12..at - 8].copy_from_slice(&u32::MAX.to_le_bytes());
    b[at - 8..at - 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let (r, took) = analyze("badnote", &b);
    assert!(took < Duration::from_secs(2));
    // A broken note alone does not make the binary unreadable.
    assert!(r.is_ok(), "{r:?}");
}

#[test]
#[ignore = "needs the Go matrix: run tests/run"]
fn a_huge_sparse_file_is_not_read_whole() {
    let p = tmp("sparse");
    let f = fs::File::create(&p).unwrap();
    f.set_len(2 << 30).unwrap(); // 2 GiB of holes
    drop(f);
    let before = rss_kb();
    let (r, took) = analyze_path(&p);
    let after = rss_kb();
    let _ = fs::remove_file(&p);
    assert!(r.unwrap_err().contains("not a 64-bit little-endian ELF"));
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(
        after.saturating_sub(before) < 64 * 1024,
        "RSS grew {} kB",
        after - before
    );
    // The same with a real ELF header in front: the scans stay bounded too.
    let Some(bin) = real_binary("a_huge_sparse_file_is_not_read_whole", Variant::Stripped) else {
        return;
    };
    let p = tmp("sparse-elf");
    fs::write(&p, &bin[..4096]).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let before = rss_kb();
    let (r, took) = analyze_path(&p);
    let after = rss_kb();
    let _ = fs::remove_file(&p);
    eprintln!(
        "1 GiB sparse file with an ELF header: {r:?} in {took:?}, RSS +{} kB",
        after.saturating_sub(before)
    );
    assert!(r.is_err());
    assert!(took < Duration::from_secs(1), "{took:?}");
}

fn rss_kb() -> u64 {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore = "needs the Go matrix: run tests/run"]
fn a_binary_rewritten_in_place_after_analysis_is_refused_not_read() {
    // The regression: once the last process running a binary exited, the file can be
    // truncated in place (`cp new old`), and symbolizing from the old mapping then
    // killed the daemon with SIGBUS.
    let Some(bin) = real_binary(
        "a_binary_rewritten_in_place_after_analysis_is_refused_not_read",
        Variant::Default,
    ) else {
        return;
    };
    let p = tmp("rewritten");
    fs::write(&p, &bin).unwrap();
    let f = fs::File::open(&p).unwrap();
    let b = GoBinary::analyze(&f, &p).unwrap();
    assert!(b.unchanged());
    assert!(b.symbolizer(0).is_ok());
    // Truncate it in place, as `cp` or `>` would.
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    assert!(!b.unchanged(), "a truncated file still counts as unchanged");
    let _ = fs::remove_file(&p);
}
