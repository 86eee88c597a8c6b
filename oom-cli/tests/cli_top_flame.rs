//! `oomprof top` and `oomprof flame`, driven as the built binary, against `go tool
//! pprof -top` of the same files: profiles Go's runtime/pprof wrote (holder and
//! inlined, every Go version of the matrix, every sample index) and profiles oomprof
//! wrote itself (on demand, as root).
//!
//! These tests live in oom-cli/tests/ rather than tests/tests/ because only here does
//! Cargo build the binary and hand its path over (`CARGO_BIN_EXE_oomprof`); the Go
//! matrix, fixtures and privileged policy come from the test bed crate.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix::{self, Toolchain};
use oom_tests::privileged;
use oom_tests::process::Running;

const OOMPROF: &str = env!("CARGO_BIN_EXE_oomprof");

/// The zone both `go tool pprof` and `oomprof top` run in: not UTC, so that a
/// `Time:` line in UTC where pprof prints local time fails the comparison. India has
/// no DST, so the abbreviation is IST all year.
const TZ: &str = "Asia/Kolkata";

/// The sample indices of a Go heap profile, and `None` for the default.
const INDICES: [Option<&str>; 5] = [
    None,
    Some("inuse_space"),
    Some("inuse_objects"),
    Some("alloc_space"),
    Some("alloc_objects"),
];

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oomprof-cli-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn oomprof(args: &[&str]) -> Output {
    Command::new(OOMPROF)
        .args(args)
        .output()
        .expect("running oomprof")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs fixture `name` built by `tc` and has it write its own runtime/pprof heap
/// profile to `out`; returns the binary and the still running process.
fn go_profile(tc: &Toolchain, name: &str, out: &Path) -> (PathBuf, Running) {
    let bin = fixtures::build(name, tc, Variant::Default).unwrap();
    let mut cmd = Command::new(&bin);
    cmd.env("FIXTURE_PROFILE", out);
    let mut p = Running::spawn(&mut cmd).unwrap();
    p.wait_line("ready", Duration::from_secs(60)).unwrap();
    p.signal(libc::SIGUSR2).unwrap();
    p.wait_line("profiled", Duration::from_secs(60)).unwrap();
    (bin, p)
}

/// `go tool pprof -top` of `file`, in [`TZ`] like ours.
fn pprof_top(tc: &Toolchain, file: &Path, index: Option<&str>, nodecount: Option<usize>) -> String {
    let mut c = tc.command();
    c.env("TZ", TZ).args(["tool", "pprof", "-top"]);
    if let Some(i) = index {
        c.arg(format!("-sample_index={i}"));
    }
    if let Some(n) = nodecount {
        c.arg(format!("-nodecount={n}"));
    }
    let o = c.arg(file).output().expect("running go tool pprof");
    assert!(
        o.status.success(),
        "go {} tool pprof -top {}: {}",
        tc.version,
        file.display(),
        stderr(&o)
    );
    stdout(&o)
}

fn our_top(file: &Path, index: Option<&str>, nodecount: Option<usize>) -> String {
    let mut args = vec!["top".to_string(), file.display().to_string()];
    if let Some(i) = index {
        args.extend(["--sample-index".into(), i.to_string()]);
    }
    if let Some(n) = nodecount {
        args.extend(["-n".into(), n.to_string()]);
    }
    let o = Command::new(OOMPROF)
        .env("TZ", TZ)
        .args(&args)
        .output()
        .expect("running oomprof");
    assert!(o.status.success(), "oomprof {args:?}: {}", stderr(&o));
    stdout(&o)
}

/// The table rows: (flat, flat%, sum%, cum, cum%, function).
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .skip_while(|l| !l.trim_start().starts_with("flat  flat%"))
        .skip(1)
        .map(|l| {
            let mut f: Vec<String> = l.split_whitespace().take(5).map(String::from).collect();
            let name = l.split_whitespace().skip(5).collect::<Vec<_>>().join(" ");
            f.push(name);
            f
        })
        .collect()
}

/// Compares our table with pprof's: every row field, then every line verbatim.
fn assert_same_top(what: &str, ours: &str, theirs: &str) {
    let (a, b) = (rows(ours), rows(theirs));
    assert_eq!(
        a, b,
        "{what}: rows differ\n--- ours\n{ours}\n--- pprof\n{theirs}"
    );
    // Every line verbatim. The Time line's layout changed in Go 1.25's pprof; ours is
    // the current one, so for older pprof it is compared in the old layout.
    let old = theirs
        .lines()
        .any(|l| l.starts_with("Time: ") && l.contains(" at "));
    let ours_lines: Vec<String> = ours
        .lines()
        .map(|l| match l.strip_prefix("Time: ") {
            Some(t) if old => format!(
                "Time: {}",
                old_time_layout(t).unwrap_or_else(|| t.to_string())
            ),
            _ => l.to_string(),
        })
        .collect();
    let theirs_lines: Vec<&str> = theirs.lines().collect();
    assert_eq!(ours_lines, theirs_lines, "{what}: text differs");
    // Local time, not UTC: on a host without zoneinfo both would fall back to UTC and
    // agree without proving anything.
    if let Some(t) = ours.lines().find_map(|l| l.strip_prefix("Time: ")) {
        assert!(
            t.ends_with(" IST"),
            "{what}: Time: {t} is not in TZ={TZ} (is tzdata installed?)"
        );
    }
}

/// Our `Time:` value (`2026-12-02 10:50:10 IST`, pprof's layout since Go 1.25) in the
/// layout older pprof prints (`Dec 2, 2026 at 10:50am (IST)`, Go's `Jan 2, 2006 at
/// 3:04pm (MST)`).
fn old_time_layout(t: &str) -> Option<String> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (clock, zone) = t.rsplit_once(' ')?;
    let mut f = clock.split([' ', '-', ':']);
    let year = f.next()?;
    let month = MONTHS.get(f.next()?.parse::<usize>().ok()?.checked_sub(1)?)?;
    let day: u32 = f.next()?.parse().ok()?;
    let hour: u32 = f.next()?.parse().ok()?;
    let minute = f.next()?;
    let (hour, half) = match hour {
        0 => (12, "am"),
        1..=11 => (hour, "am"),
        12 => (12, "pm"),
        _ => (hour - 12, "pm"),
    };
    Some(format!(
        "{month} {day}, {year} at {hour}:{minute}{half} ({zone})"
    ))
}

#[test]
fn old_pprof_time_layout() {
    assert_eq!(
        old_time_layout("2026-12-02 10:50:10 IST").as_deref(),
        Some("Dec 2, 2026 at 10:50am (IST)")
    );
    assert_eq!(
        old_time_layout("2026-11-22 00:05:00 UTC").as_deref(),
        Some("Nov 22, 2026 at 12:05am (UTC)")
    );
    assert_eq!(
        old_time_layout("2026-01-09 12:00:59 EST").as_deref(),
        Some("Jan 9, 2026 at 12:00pm (EST)")
    );
    assert_eq!(
        old_time_layout("2026-07-31 23:59:00 -03").as_deref(),
        Some("Jul 31, 2026 at 11:59pm (-03)")
    );
}

/// Checks that `svg` is well-formed XML with an `<svg>` root, and returns the text of
/// every `<title>` (inferno's per-frame tooltips).
fn svg_titles(svg: &str) -> Vec<String> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(svg);
    let mut depth = 0usize;
    let mut root = None;
    let mut in_title = false;
    let mut titles = Vec::new();
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if depth == 0 {
                    root = Some(name.clone());
                }
                in_title = name == "title";
                if in_title {
                    titles.push(String::new());
                }
                depth += 1;
            }
            Ok(Event::End(_)) => {
                depth = depth.checked_sub(1).expect("unbalanced end tag");
                in_title = false;
            }
            Ok(Event::Text(t)) if in_title => {
                titles
                    .last_mut()
                    .unwrap()
                    .push_str(&t.decode().expect("utf-8 title"));
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("SVG is not well-formed at {}: {e}", r.buffer_position()),
        }
    }
    assert_eq!(depth, 0, "unclosed elements");
    assert_eq!(root.as_deref(), Some("svg"));
    titles
}

fn assert_flame_names(what: &str, file: &Path, index: Option<&str>, function: &str) {
    let svg_path = file.with_extension(format!("{}.svg", index.unwrap_or("default")));
    let svg_s = svg_path.display().to_string();
    let file_s = file.display().to_string();
    let mut args = vec!["flame", file_s.as_str(), "-o", svg_s.as_str()];
    if let Some(i) = index {
        args.extend(["--sample-index", i]);
    }
    let o = oomprof(&args);
    assert!(
        o.status.success(),
        "{what}: oomprof {args:?}: {}",
        stderr(&o)
    );
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let titles = svg_titles(&svg);
    assert!(
        titles.iter().any(|t| t.starts_with(function)),
        "{what}: no frame named {function} among {} titles",
        titles.len()
    );
}

#[test]
#[ignore = "needs the Go matrix: run tests/run"]
fn top_matches_go_tool_pprof_for_every_go_version_and_sample_index() {
    const T: &str = "top_matches_go_tool_pprof_for_every_go_version_and_sample_index";
    let Some(matrix) = gomatrix::matrix(T) else {
        return;
    };
    let dir = scratch("matrix");
    for tc in &matrix {
        // holder: the reference heap; inlined: `(inline)` marks and inline frames;
        // deep: recursion (a function counted once per sample); churn: frees, so
        // in-use and alloc differ; manysites: many functions, nodes dropped under 0.5%.
        for fixture in ["holder", "inlined", "deep", "churn", "manysites"] {
            let file = dir.join(format!("{fixture}-{}.pb.gz", tc.version));
            let (_bin, p) = go_profile(tc, fixture, &file);
            let mut rows_seen = 0;
            for index in INDICES {
                let what = format!("go {} {fixture} {index:?}", tc.version);
                let theirs = pprof_top(tc, &file, index, None);
                let ours = our_top(&file, index, None);
                assert_same_top(&what, &ours, &theirs);
                rows_seen += rows(&theirs).len();
            }
            // (churn may have freed everything: in-use tables can be empty.)
            assert!(rows_seen > 0, "go {} {fixture}: no rows at all", tc.version);
            // -n keeps the first N, and says so, the way -nodecount does.
            let theirs = pprof_top(tc, &file, Some("inuse_space"), Some(3));
            let ours = our_top(&file, Some("inuse_space"), Some(3));
            assert_same_top(&format!("go {} {fixture} -n 3", tc.version), &ours, &theirs);
            if fixture == "holder" {
                let top = our_top(&file, Some("inuse_space"), None);
                assert_eq!(rows(&top)[0][5], "main.allocLarge", "{top}");
                for index in INDICES {
                    assert_flame_names(&tc.version, &file, index, "main.alloc");
                }
                assert_flame_names(&tc.version, &file, Some("inuse_space"), "main.allocLarge");
            } else if fixture == "inlined" {
                // Inline frames are expanded: the inlined callee is a frame of its own.
                assert_flame_names(&tc.version, &file, Some("alloc_space"), "main.newBuf");
            }
            drop(p);
        }
        eprintln!("go {}: top and flame agree with pprof", tc.version);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn top_and_flame_read_oomprofs_own_profiles() {
    const T: &str = "top_and_flame_read_oomprofs_own_profiles";
    if !privileged::root(T) {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let dir = scratch("ours");
    let theirs_file = dir.join("theirs.pb.gz");
    let (_bin, p) = go_profile(&tc, "holder", &theirs_file);
    let cache = oom_loader::cache::BinaryCache::default();
    let prof = oom_loader::ondemand::profile_pid(
        p.pid(),
        &oom_loader::ondemand::OnDemandOptions::default(),
        Some(&cache),
    )
    .unwrap();
    let file = dir.join("ours.pb.gz");
    std::fs::write(&file, &prof.pprof_gz).unwrap();
    for index in INDICES {
        let what = format!("oomprof's profile, {index:?}");
        let theirs = pprof_top(&tc, &file, index, None);
        let ours = our_top(&file, index, None);
        assert_same_top(&what, &ours, &theirs);
    }
    // Same heap, same top function as the program's own profile.
    let ours = rows(&our_top(&file, Some("inuse_space"), None));
    let go = rows(&our_top(&theirs_file, Some("inuse_space"), None));
    assert_eq!(ours[0][5], "main.allocLarge");
    assert_eq!(ours[0][..2], go[0][..2], "top row: ours vs runtime/pprof");
    assert_flame_names("ours", &file, None, "main.allocLarge");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A minimal valid profile: one sample type, `inuse_space`/`bytes`, no samples.
fn tiny_profile(dir: &Path) -> PathBuf {
    // Profile { sample_type: {type: 1, unit: 2}, string_table: ["", "inuse_space", "bytes"] }
    let mut b = vec![0x0a, 0x04, 0x08, 0x01, 0x10, 0x02];
    for s in ["", "inuse_space", "bytes"] {
        b.push(0x32);
        b.push(s.len() as u8);
        b.extend_from_slice(s.as_bytes());
    }
    let f = dir.join("tiny.pb");
    std::fs::write(&f, b).unwrap();
    f
}

#[test]
fn error_paths_have_one_line_and_the_right_exit_code() {
    let dir = scratch("errors");
    let tiny = tiny_profile(&dir);
    let tiny_s = tiny.display().to_string();
    let text = dir.join("notes.txt");
    std::fs::write(&text, "this is not a profile\n").unwrap();
    let text_s = text.display().to_string();
    let gz = dir.join("broken.pb.gz");
    std::fs::write(&gz, [0x1f, 0x8b, 0x08, 0x00, 0x00]).unwrap();
    let gz_s = gz.display().to_string();
    let missing = dir.join("missing.pb.gz").display().to_string();
    let dir_s = dir.display().to_string();
    let svg = dir.join("x.svg").display().to_string();

    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["top", &missing], 1, "No such file"),
        (vec!["top", &dir_s], 1, "reading"),
        (vec!["top", &text_s], 1, "not a pprof profile"),
        (vec!["top", &gz_s], 1, "not a pprof profile"),
        (vec!["flame", &text_s, "-o", &svg], 1, "not a pprof profile"),
        (vec!["flame", &missing, "-o", &svg], 1, "No such file"),
        (
            vec!["top", &tiny_s, "--sample-index", "bogus"],
            2,
            "inuse_space",
        ),
        (
            vec!["top", &tiny_s, "--sample-index", "alloc_space"],
            2,
            "sample index",
        ),
        (
            vec!["flame", &tiny_s, "-o", &svg, "--sample-index", "x"],
            2,
            "sample index",
        ),
        (vec!["flame", &tiny_s], 2, "--output"),
        (vec!["top"], 2, "file"),
        (vec!["top", &tiny_s, "-n", "many"], 2, "-n"),
        // Nothing to draw is a runtime error, not a crash.
        (vec!["flame", &tiny_s, "-o", &svg], 1, "nothing to draw"),
    ];
    for (args, code, needle) in cases {
        let o = oomprof(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(code), "oomprof {args:?}: {err}");
        assert!(
            err.contains(needle),
            "oomprof {args:?}: {err:?} lacks {needle:?}"
        );
        // argh's own messages (missing or unparsable arguments) list the arguments on
        // further lines; every message of ours is one line.
        if !err.contains("not provided") && !err.contains("Unable to parse") {
            assert_eq!(err.trim_end().lines().count(), 1, "oomprof {args:?}: {err}");
        }
        assert!(
            o.stdout.is_empty(),
            "oomprof {args:?} printed {}",
            stdout(&o)
        );
    }

    // An empty profile is a table with no rows, not an error.
    let o = oomprof(&["top", &tiny_s]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("Showing nodes accounting for 0, 0% of 0 total"));

    // --help on each command: usage on stdout, exit 0.
    for cmd in ["top", "flame", "check"] {
        let o = oomprof(&[cmd, "--help"]);
        assert_eq!(o.status.code(), Some(0), "{cmd} --help");
        assert!(stdout(&o).contains("Usage: "), "{cmd} --help");
    }
    let o = oomprof(&["top", "--help"]);
    assert!(stdout(&o).contains("--sample-index"));
    let o = oomprof(&["flame", "--help"]);
    assert!(stdout(&o).contains("-o, --output"));
    let _ = std::fs::remove_dir_all(&dir);
}
