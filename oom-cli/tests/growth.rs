//! `oomprof growth PID`: page faults sampled in the kernel with their user stacks, as a
//! pprof profile that `go tool pprof` and `oomprof top` read. Real programs: a C
//! program leaking through one caller while churning buffers through another (built
//! with and without frame pointers), a C program leaking inside a shared library, a
//! Rust program built with frame pointers, and a Go program with memory profiling
//! disabled that grows until the OOM killer kills it in a memory cgroup.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use oom_tests::cgroup::MemCgroup;
use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix::{self, Toolchain};
use oom_tests::privileged;
use oom_tests::process::Running;

mod common;

use common::*;

/// Removes a test's directory when the test ends, passed or failed.
struct Tmp(PathBuf);

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `oomprof growth` with its stderr lines on a channel; SIGKILLed on drop if running.
struct Growth {
    child: Child,
    lines: Receiver<String>,
    log: Vec<String>,
}

impl Growth {
    fn start(args: &[&str]) -> Growth {
        let mut child = Command::new(OOMPROF)
            .arg("growth")
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[oomprof growth] {l}");
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Growth {
            child,
            lines: rx,
            log: Vec::new(),
        }
    }

    /// Waits for a line containing `needle`.
    fn wait_log(&mut self, needle: &str, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while !self.log.iter().any(|l| l.contains(needle)) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.log.push(l),
                Err(_) => panic!("no {needle:?} from oomprof growth; log: {:?}", self.log),
            }
        }
    }

    /// Waits for a successful exit and returns the whole log.
    fn finish(mut self, timeout: Duration) -> Vec<String> {
        let deadline = std::time::Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "oomprof growth still running after {timeout:?}; log: {:?}",
                self.log
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader thread ends at EOF once the process has exited.
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.log.push(l);
        }
        assert!(
            status.success(),
            "oomprof growth failed: {status}; log: {:?}",
            self.log
        );
        std::mem::take(&mut self.log)
    }
}

impl Drop for Growth {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn pprof(tc: &Toolchain, what: &str, file: &Path) -> String {
    let out = tc
        .command()
        .args(["tool", "pprof", what])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "go tool pprof {what} {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The rows of `go tool pprof -top`: (flat %, function), in order.
fn top_rows(top: &str) -> Vec<(f64, String)> {
    top.lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let pct = f.get(1)?.strip_suffix('%')?.parse().ok()?;
            Some((pct, f.get(5..)?.join(" ")))
        })
        .collect()
}

/// The stacks of `go tool pprof -traces`, each leaf first.
fn traces(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut started = false;
    for l in text.lines() {
        if l.starts_with("-----------+") {
            started = true;
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if !started {
            continue;
        }
        // "      68MB   grow_cache" starts a stack, "             caller" continues it.
        let t = l.trim();
        if t.is_empty() || !l.starts_with(' ') {
            continue;
        }
        let frame = if t.starts_with(|c: char| c.is_ascii_digit()) {
            t.split_once(char::is_whitespace)
                .map_or("", |(_, f)| f.trim())
        } else {
            t
        };
        cur.push(frame.to_string());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn build_c(test: &str, dir: &Path, name: &str, flags: &[&str]) -> Option<PathBuf> {
    privileged::tool(test, "gcc")?;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/c/leakchurn.c");
    let out = dir.join(name);
    let st = Command::new("gcc")
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success(), "gcc {flags:?} {}", src.display());
    Some(out)
}

/// Samples `bin` (leaking up to 160 MiB) for 3 s; the profile's path and the log.
fn sample_leakchurn(dir: &Path, bin: &Path) -> (PathBuf, Vec<String>) {
    let mut p = Running::spawn(Command::new(bin).arg("160")).unwrap();
    p.wait_line("ready", Duration::from_secs(10)).unwrap();
    let file = dir.join(format!(
        "{}.growth.pb.gz",
        bin.file_name().unwrap().to_string_lossy()
    ));
    let pid = p.pid().to_string();
    let g = Growth::start(&[&pid, "--duration", "3s", "-o", file.to_str().unwrap()]);
    let log = g.finish(Duration::from_secs(60));
    drop(p);
    assert!(file.exists(), "no profile; log: {log:?}");
    (file, log)
}

/// The heaviest sample of `file` as (function names leaf first, mapping file of the
/// leaf), read with oomprof's own pprof reader.
fn heaviest(file: &Path) -> (Vec<String>, String) {
    let p = oom_cli::pprof_read::parse(&std::fs::read(file).unwrap()).unwrap();
    let s = p
        .samples
        .iter()
        .max_by_key(|s| s.values[1])
        .expect("no samples");
    let names = s
        .locations
        .iter()
        .map(|&l| {
            let f = p.locations[l].lines[0].function.unwrap();
            p.functions[f].name.clone()
        })
        .collect();
    let leaf = &p.locations[s.locations[0]];
    let map = leaf
        .mapping
        .map(|m| p.mappings[m].file.clone())
        .unwrap_or_default();
    (names, map)
}

/// The share of `faulted_space` in samples marked as not unwound.
fn not_unwound_share(file: &Path) -> f64 {
    let p = oom_cli::pprof_read::parse(&std::fs::read(file).unwrap()).unwrap();
    let (mut marked, mut all) = (0i64, 0i64);
    for s in &p.samples {
        all += s.values[1];
        let is_marked = s.locations.iter().any(|&l| {
            p.locations[l].lines.iter().any(|line| {
                line.function
                    .is_some_and(|f| p.functions[f].name.starts_with("[not unwound"))
            })
        });
        if is_marked {
            marked += s.values[1];
        }
    }
    marked as f64 / all.max(1) as f64
}

#[test]
#[ignore = "needs root, the Go matrix and gcc: run tests/run"]
fn the_leaking_caller_tops_the_growth_profile_of_a_c_program_beside_buffer_churn() {
    const T: &str = "the_leaking_caller_tops_the_growth_profile_of_a_c_program_beside_buffer_churn";
    if !privileged::root(T) {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let dir = tmpdir("growth-c");
    let _cleanup = Tmp(dir.clone());
    // No sibling calls: handle_request's call to grow_cache stays a call, so its frame
    // is on the stack for the frame-pointer unwinder to find.
    let Some(bin) = build_c(
        T,
        &dir,
        "leakchurn-fp",
        &[
            "-O2",
            "-fno-omit-frame-pointer",
            "-fno-optimize-sibling-calls",
        ],
    ) else {
        return;
    };
    let (file, log) = sample_leakchurn(&dir, &bin);
    let top = pprof(&tc, "-top", &file);
    let rows = top_rows(&top);
    assert_eq!(
        rows.first().map(|r| r.1.as_str()),
        Some("grow_cache"),
        "{top}"
    );
    assert!(rows[0].0 >= 90.0, "grow_cache only {}%: {top}", rows[0].0);
    // The reused 64 KiB buffers faulted at most once each.
    let churn: f64 = rows
        .iter()
        .filter(|r| r.1 == "churn_buffer")
        .map(|r| r.0)
        .sum();
    assert!(churn < 5.0, "churn_buffer {churn}%: {top}");
    // ~25 MiB/s of leak for 3 s, each sample worth 64 pages.
    assert!(top.contains("Type: faulted_space"), "{top}");
    let tr = traces(&pprof(&tc, "-traces", &file));
    let leak = tr
        .iter()
        .find(|t| t.first().map(String::as_str) == Some("grow_cache"))
        .unwrap_or_else(|| panic!("no grow_cache stack: {tr:?}"));
    assert_eq!(
        leak.get(1..3),
        Some(&["handle_request".to_string(), "main".to_string()][..]),
        "{leak:?}"
    );
    // Only faults inside libc (malloc's own, built without frame pointers) may be
    // marked as not unwound.
    let share = not_unwound_share(&file);
    assert!(share < 0.05, "{:.1}% not unwound: {top}", share * 100.0);
    assert!(log.iter().any(|l| l.contains("top=grow_cache")), "{log:?}");
    // oomprof's own reader agrees.
    let ours = Command::new(OOMPROF)
        .arg("top")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let ours = String::from_utf8_lossy(&ours.stdout);
    let first = top_rows(&ours);
    assert_eq!(
        first.first().map(|r| r.1.as_str()),
        Some("grow_cache"),
        "{ours}"
    );
}

#[test]
#[ignore = "needs root, the Go matrix and gcc: run tests/run"]
fn stacks_without_frame_pointers_are_reported_as_not_unwound_never_misattributed() {
    const T: &str = "stacks_without_frame_pointers_are_reported_as_not_unwound_never_misattributed";
    if !privileged::root(T) {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let dir = tmpdir("growth-nofp");
    let _cleanup = Tmp(dir.clone());
    let Some(bin) = build_c(T, &dir, "leakchurn-nofp", &["-O2", "-fomit-frame-pointer"]) else {
        return;
    };
    let (file, log) = sample_leakchurn(&dir, &bin);
    let comments = pprof_comments(&tc, &file);
    assert!(
        comments.contains("stacks could not be unwound"),
        "{comments}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("stacks could not be unwound")),
        "{log:?}"
    );
    let tr = traces(&pprof(&tc, "-traces", &file));
    assert!(!tr.is_empty());
    for t in &tr {
        // Leaf, then only our marker: no caller was made up.
        let callers_made_up = t.iter().skip(1).any(|f| !f.starts_with("[not unwound"));
        assert!(
            !callers_made_up,
            "a stack without frame pointers has callers: {t:?}"
        );
    }
    // The leaf is still the faulting function (the program counter needs no unwinding).
    let top = pprof(&tc, "-top", &file);
    let rows = top_rows(&top);
    assert_eq!(
        rows.first().map(|r| r.1.as_str()),
        Some("grow_cache"),
        "{top}"
    );
    assert!(rows[0].0 >= 90.0, "{top}");
}

#[test]
#[ignore = "needs root, the Go matrix and memory cgroups: run tests/run"]
fn a_go_program_with_memory_profiling_disabled_is_profiled_until_its_oom_kill() {
    const T: &str = "a_go_program_with_memory_profiling_disabled_is_profiled_until_its_oom_kill";
    if !privileged::root(T) {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let dir = tmpdir("growth-go");
    let _cleanup = Tmp(dir.clone());
    for v in [Variant::Default, Variant::Pie] {
        let bin = fixtures::build("noprof", &tc, v).unwrap();
        let cg = MemCgroup::create(128 << 20).unwrap();
        let mut p = Running::adopt(
            cg.spawn(
                Command::new(&bin)
                    .arg("-wait")
                    .stdout(Stdio::piped())
                    .stdin(Stdio::piped()),
            )
            .unwrap(),
        );
        p.wait_line("ready", Duration::from_secs(10)).unwrap();
        let file = dir.join(format!("noprof-{}.growth.pb.gz", v.name()));
        let pid = p.pid().to_string();
        let mut g = Growth::start(&[&pid, "--duration", "60s", "-o", file.to_str().unwrap()]);
        g.wait_log("sampling page faults", Duration::from_secs(30));
        p.send_line("go").unwrap();
        p.wait_exit(Duration::from_secs(60)).unwrap();
        assert!(cg.oom_kills().unwrap() > 0, "noprof was not OOM-killed");
        let log = g.finish(Duration::from_secs(30));
        assert!(log.iter().any(|l| l.contains("exited after")), "{log:?}");
        let top = pprof(&tc, "-top", &file);
        let rows = top_rows(&top);
        assert_eq!(
            rows.first().map(|r| r.1.as_str()),
            Some("main.allocNoprof"),
            "{} {top}",
            v.name()
        );
        assert!(rows[0].0 >= 80.0, "{} {top}", v.name());
        // About the cgroup's 128 MiB were touched before the kill (sampled 1 in 64).
        let total = top
            .lines()
            .find_map(|l| l.split("Total samples = ").nth(1))
            .unwrap_or_else(|| panic!("{top}"))
            .trim()
            .to_string();
        let mb: f64 = total.trim_end_matches("MB").parse().unwrap_or(0.0);
        assert!(
            (60.0..=200.0).contains(&mb),
            "{} total {total}: {top}",
            v.name()
        );
        let tr = traces(&pprof(&tc, "-traces", &file));
        let main = tr
            .iter()
            .find(|t| t.first().map(String::as_str) == Some("main.allocNoprof"))
            .unwrap();
        assert_eq!(
            main.get(1).map(String::as_str),
            Some("main.main"),
            "{main:?}"
        );
        assert_eq!(
            main.last().map(String::as_str),
            Some("runtime.goexit"),
            "{main:?}"
        );
    }
}

#[test]
#[ignore = "needs root and gcc: run tests/run"]
fn a_leak_inside_a_shared_library_is_symbolized_through_the_library_mapping() {
    const T: &str = "a_leak_inside_a_shared_library_is_symbolized_through_the_library_mapping";
    if !privileged::root(T) || privileged::tool(T, "gcc").is_none() {
        return;
    }
    let dir = tmpdir("growth-so");
    let _cleanup = Tmp(dir.clone());
    let c = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/c");
    let lib = dir.join("libleak.so");
    let gcc = |args: &[&std::ffi::OsStr]| {
        let st = Command::new("gcc").args(args).status().unwrap();
        assert!(st.success(), "gcc {args:?}");
    };
    gcc(&[
        "-O2".as_ref(),
        "-fno-omit-frame-pointer".as_ref(),
        "-shared".as_ref(),
        "-fPIC".as_ref(),
        "-o".as_ref(),
        lib.as_os_str(),
        c.join("libleak.c").as_os_str(),
    ]);
    let bin = dir.join("libleak-main");
    let rpath = format!("-Wl,-rpath,{}", dir.display());
    let libdir = format!("-L{}", dir.display());
    gcc(&[
        "-O2".as_ref(),
        "-fno-omit-frame-pointer".as_ref(),
        "-fno-optimize-sibling-calls".as_ref(),
        "-o".as_ref(),
        bin.as_os_str(),
        c.join("libleak-main.c").as_os_str(),
        libdir.as_ref(),
        "-lleak".as_ref(),
        rpath.as_ref(),
    ]);
    let (file, _) = sample_leakchurn(&dir, &bin);
    let (names, map) = heaviest(&file);
    assert_eq!(
        names.get(..3),
        Some(
            &[
                "lib_grow".to_string(),
                "handle_request".into(),
                "main".into()
            ][..]
        ),
        "{names:?}"
    );
    assert_eq!(
        Path::new(&map),
        lib,
        "lib_grow's location is not in libleak.so's mapping"
    );
}

#[test]
#[ignore = "needs root and rustc: run tests/run"]
fn a_rust_program_built_with_frame_pointers_names_its_growing_function() {
    const T: &str = "a_rust_program_built_with_frame_pointers_names_its_growing_function";
    if !privileged::root(T) {
        return;
    }
    let Some(rustc) = privileged::tool(T, "rustc") else {
        return;
    };
    let dir = tmpdir("growth-rust");
    let _cleanup = Tmp(dir.clone());
    let bin = dir.join("grow");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/rust/grow.rs");
    let st = Command::new(rustc)
        .args(["-O", "-C", "force-frame-pointers=yes", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success(), "rustc {}", src.display());
    let (file, log) = sample_leakchurn(&dir, &bin);
    assert!(
        log.iter().any(|l| l.contains("top=grow::grow_vec")),
        "{log:?}"
    );
    let (names, map) = heaviest(&file);
    // Demangled, without the hash.
    assert_eq!(
        names.get(..3),
        Some(
            &[
                "grow::grow_vec".to_string(),
                "grow::serve".into(),
                "grow::main".into()
            ][..]
        ),
        "{names:?}"
    );
    assert_eq!(Path::new(&map), bin);
}

#[test]
#[ignore = "needs root and g++: run tests/run"]
fn a_cpp_program_built_with_frame_pointers_names_its_method_demangled() {
    const T: &str = "a_cpp_program_built_with_frame_pointers_names_its_method_demangled";
    if !privileged::root(T) {
        return;
    }
    let Some(gxx) = privileged::tool(T, "g++") else {
        return;
    };
    let dir = tmpdir("growth-cpp");
    let _cleanup = Tmp(dir.clone());
    let bin = dir.join("leakcpp");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/c/leak.cpp");
    let st = Command::new(gxx)
        .args([
            "-O2",
            "-fno-omit-frame-pointer",
            "-fno-optimize-sibling-calls",
            "-o",
        ])
        .arg(&bin)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success(), "g++ {}", src.display());
    let (file, _) = sample_leakchurn(&dir, &bin);
    let (names, map) = heaviest(&file);
    assert_eq!(
        names.get(..3),
        Some(
            &[
                "Cache::grow(unsigned long)".to_string(),
                "handle_request(Cache&)".into(),
                "main".into()
            ][..]
        ),
        "{names:?}"
    );
    assert_eq!(Path::new(&map), bin);
}
