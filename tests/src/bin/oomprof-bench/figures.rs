//! The ten figures of issue 7, each measured with the real `oomprof` binary, real Go
//! fixtures, real memory cgroups and real OOM kills.

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oom_tests::cgroup::MemCgroup;
use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix::Toolchain;
use oom_tests::process::Running;

use crate::daemon::{self, field, parse_duration, Daemon};
use crate::report::{Row, Stats};

/// What every figure needs.
#[derive(Debug)]
pub struct Ctx {
    /// The release `oomprof` binary.
    pub oomprof: PathBuf,
    /// The static musl build, if known.
    pub static_bin: Option<PathBuf>,
    /// The Go toolchain building the fixtures.
    pub go: Toolchain,
    /// Few iterations, short idle period.
    pub smoke: bool,
    /// Scratch directory (profiles, dumps); removed at the end.
    pub tmp: PathBuf,
}

impl Ctx {
    fn runs(&self, full: usize, smoke: usize) -> usize {
        if self.smoke {
            smoke
        } else {
            full
        }
    }

    fn fixture(&self, name: &str) -> Result<PathBuf, String> {
        fixtures::build(name, &self.go, Variant::Default)
    }

    fn profile_dir(&self) -> Result<PathBuf, String> {
        let d = self.tmp.join("profiles");
        std::fs::create_dir_all(&d).map_err(|e| format!("creating {}: {e}", d.display()))?;
        Ok(d)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Sum of `memlock` over the bpf maps a process holds open (from /proc/PID/fdinfo).
fn bpf_map_memlock(pid: i32) -> Result<u64, String> {
    let dir = format!("/proc/{pid}/fd");
    let rd = std::fs::read_dir(&dir).map_err(|e| format!("reading {dir}: {e}"))?;
    let mut total = 0;
    let mut maps = 0;
    for e in rd.flatten() {
        let Ok(link) = std::fs::read_link(e.path()) else {
            continue;
        };
        if link.to_string_lossy() != "anon_inode:bpf-map" {
            continue;
        }
        let info = std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            e.file_name().to_string_lossy()
        ))
        .unwrap_or_default();
        if let Some(v) = info
            .lines()
            .find_map(|l| l.strip_prefix("memlock:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            total += v;
            maps += 1;
        }
    }
    if maps == 0 {
        return Err(format!("pid {pid} holds no bpf maps"));
    }
    Ok(total)
}

/// 1 and 8: start → ready, shutdown, kernel memory at defaults.
pub fn start_stop(cx: &Ctx) -> Result<Vec<Row>, String> {
    let dir = cx.profile_dir()?;
    let (mut wall, mut own, mut stop, mut kmem, mut fdinfo) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..cx.runs(9, 3) {
        let mut d = Daemon::spawn(&cx.oomprof, false, &dir, &[])?;
        let (at, line) = d.ready(Duration::from_secs(30))?;
        wall.push(ms(at.duration_since(d.spawned)));
        if let Some(t) =
            field(&line, "ready in ").and_then(|s| parse_duration(s.trim_end_matches(':')))
        {
            own.push(ms(t));
        }
        if let Some(m) = field(&line, "kernel memory ").and_then(|s| s.parse::<f64>().ok()) {
            kmem.push(m);
        }
        fdinfo.push(bpf_map_memlock(d.pid())? as f64 / 1048576.0);
        stop.push(ms(d.stop()?));
    }
    // The same without the /proc scan: program load and attach alone.
    let mut noscan = Vec::new();
    for _ in 0..cx.runs(9, 2) {
        let mut d = Daemon::spawn(&cx.oomprof, false, &dir, &["--no-scan"])?;
        let (at, _) = d.ready(Duration::from_secs(30))?;
        noscan.push(ms(at.duration_since(d.spawned)));
        d.stop()?;
    }
    Ok(vec![
        Row::samples(1, "start → ready (spawn to ready line)", "ms", &wall)
            .bar(100.0, "≤ 100 ms", Some("1.9 s"))
            .note(format!(
                "wall time from spawning `oomprof run` (defaults, /proc scan on) to its ready line on stderr; the daemon's own figure (program load + attach + scan) median {}",
                Stats::of(&own).map_or("n/a".into(), |s| format!("{:.1} ms", s.median))
            )),
        Row::samples(1, "start → ready, --no-scan", "ms", &noscan).note(
            "as above without the /proc scan of running processes: BPF program load, verification and attach only",
        ),
        Row::samples(1, "shutdown (SIGTERM → exit)", "ms", &stop)
            .note("SIGTERM to process exit as seen by a pidfd; exit status 0 checked"),
        Row::samples(8, "kernel memory pinned, defaults", "MiB", &kmem)
            .bar(16.0, "≤ 16 MiB", Some("39.5 MiB"))
            .note(format!(
                "the daemon's ready line; cross-check, sum of memlock in /proc/PID/fdinfo of its bpf maps: median {:.2} MiB",
                Stats::of(&fdinfo).map_or(f64::NAN, |s| s.median)
            )),
    ])
}

/// The daemon's user-space stages of a profile line, in pipeline order (issue 16).
const STAGES: [&str; 6] = [
    "deliver",
    "assemble",
    "symbolize",
    "encode",
    "gzip",
    "write",
];

/// One OOM kill as the daemon reported it.
#[derive(Clone, Debug)]
struct Kill {
    written_ms: f64,
    walk_ms: f64,
    buckets: u64,
    /// `None` when complete; else the daemon's INCOMPLETE reason.
    problem: Option<String>,
    /// The stages of [`STAGES`] in ms, where the line has them (older daemons do not).
    stages: [Option<f64>; 6],
}

fn parse_kill(line: &str) -> Option<Kill> {
    let walk = field(line, "walk=")?.strip_suffix("ms")?.parse().ok()?;
    let written = field(line, "written=")?
        .strip_suffix("ms-after-kill")?
        .parse()
        .ok()?;
    let buckets = field(line, " complete (")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let problem = line
        .split_once(" INCOMPLETE: ")
        .map(|(_, r)| r.split(" walk=").next().unwrap_or(r).to_string());
    let stage = |name: &str| {
        field(line, &format!(" {name}="))
            .and_then(|v| v.strip_suffix("ms"))
            .and_then(|v| v.parse().ok())
    };
    Some(Kill {
        written_ms: written,
        walk_ms: walk,
        buckets,
        problem,
        stages: STAGES.map(stage),
    })
}

/// Median of each stage over `kills`, as one line: `deliver 0.20 · assemble 0.03 · …`.
fn stage_medians(kills: &[Kill]) -> String {
    let parts: Vec<String> = STAGES
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let v: Vec<f64> = kills.iter().filter_map(|k| k.stages[i]).collect();
            Stats::of(&v).map(|s| format!("{name} {:.3}", s.median))
        })
        .collect();
    if parts.is_empty() {
        "no stage figures in the daemon's lines (a daemon before issue 16)".into()
    } else {
        format!(
            "median stages (ms): walk {:.3} · {}",
            Stats::of(&kills.iter().map(|k| k.walk_ms).collect::<Vec<_>>())
                .map_or(f64::NAN, |s| s.median),
            parts.join(" · ")
        )
    }
}

/// Runs `manysites -n sites -oom` in a fresh memory cgroup until the OOM killer kills
/// it, and returns the daemon's report of the profile.
fn oom_kill(d: &mut Daemon, manysites: &Path, sites: usize) -> Result<Kill, String> {
    let limit = (64u64 << 20) + sites as u64 * 1024;
    let cg = MemCgroup::create(limit)?;
    let mut cmd = Command::new(manysites);
    cmd.args(["-n", &sites.to_string(), "-oom"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cg.spawn(&mut cmd)?;
    let pid = child.id() as i32;
    let tag = format!(" pid={pid} ");
    let dropped = format!("pid {pid} (");
    let timeout = Duration::from_secs(60 + sites as u64 / 10_000);
    let res = d.wait_for(timeout, "profile line", |l| {
        if l.contains("wrote ") && l.contains(&tag) {
            Some(Ok(l.to_string()))
        } else if l.contains(&dropped) && l.contains("no profile") {
            Some(Err(l.to_string()))
        } else {
            None
        }
    });
    let line = match res {
        Ok((_, Ok(l))) => l,
        Ok((_, Err(l))) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("no profile for the OOM kill: {l}"));
        }
        Err(e) => {
            let alive = child.try_wait().ok().flatten().is_none();
            let _ = child.kill();
            let _ = child.wait();
            let tail: Vec<&str> = d
                .log
                .iter()
                .rev()
                .take(6)
                .map(|(_, l)| l.as_str())
                .collect();
            return Err(format!(
                "{e} (manysites {pid} {}, cgroup oom_kill {:?}; the daemon's last lines: {tail:?})",
                if alive { "still running" } else { "had exited" },
                cg.oom_kills()
            ));
        }
    };
    let status = child
        .wait()
        .map_err(|e| format!("waiting for {pid}: {e}"))?;
    if status.signal() != Some(libc::SIGKILL) || cg.oom_kills()? < 1 {
        return Err(format!(
            "manysites {pid} was not OOM-killed ({status}, oom_kill {:?})",
            cg.oom_kills()
        ));
    }
    if !line.contains("reason=oom") {
        return Err(format!("profile not classified as an OOM kill: {line}"));
    }
    if let Some(path) = field(&line, "wrote ") {
        let _ = std::fs::remove_file(path);
    }
    parse_kill(&line).ok_or_else(|| format!("unparsable profile line: {line}"))
}

fn size_name(sites: usize) -> String {
    match sites {
        s if s >= 1_000_000 => format!("{}M", s / 1_000_000),
        s if s >= 1000 => format!("{}k", s / 1000),
        s => s.to_string(),
    }
}

fn incomplete(kills: &[Kill]) -> String {
    let bad: Vec<&str> = kills.iter().filter_map(|k| k.problem.as_deref()).collect();
    match bad.first() {
        None => "all complete".into(),
        Some(why) => format!("{} of {} INCOMPLETE ({why})", bad.len(), kills.len()),
    }
}

/// 2 and 3: OOM kill → file (p50/p99) and in-kernel walk time and rate.
pub fn oom_kills(cx: &Ctx) -> Result<Vec<Row>, String> {
    let manysites = cx.fixture("manysites")?;
    let dir = cx.profile_dir()?;
    // Defaults for 1k and 10k. A 100k capture does not fit the default 8 MiB ring
    // (one kill at defaults shows it), so 100k runs with a 64 MiB ring, and 1M with
    // 512 MiB and a bucket limit above 1M: a full ring only counts buckets, which
    // would make both the profile and the walk time meaningless.
    // The same kills with the profile directory on tmpfs: the write stage's fsync is
    // then free, which separates the pipeline from this host's disk.
    let shm = Path::new("/dev/shm");
    let tmpfs = shm
        .is_dir()
        .then(|| shm.join(format!("oomprof-bench-{}", std::process::id())));
    if let Some(t) = &tmpfs {
        std::fs::create_dir_all(t).map_err(|e| format!("creating {}: {e}", t.display()))?;
    }
    let res = oom_kill_plan(cx, &manysites, &dir, tmpfs.as_deref());
    if let Some(t) = &tmpfs {
        let _ = std::fs::remove_dir_all(t);
    }
    res
}

fn oom_kill_plan(
    cx: &Ctx,
    manysites: &Path,
    dir: &Path,
    tmpfs: Option<&Path>,
) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let mut plan: Vec<(usize, usize, &[&str], &str, bool)> = vec![
        (1000, cx.runs(20, 2), &[], "defaults", false),
        (10_000, cx.runs(20, 2), &[], "defaults", false),
        (100_000, 1, &[], "defaults", false),
        (
            100_000,
            cx.runs(20, 2),
            &["--ring-size", "64M"],
            "--ring-size 64M",
            false,
        ),
    ];
    if tmpfs.is_some() {
        plan.push((1000, cx.runs(20, 2), &[], "defaults, --dir on tmpfs", true));
        plan.push((
            10_000,
            cx.runs(20, 2),
            &[],
            "defaults, --dir on tmpfs",
            true,
        ));
        plan.push((
            100_000,
            cx.runs(10, 2),
            &["--ring-size", "64M"],
            "--ring-size 64M, --dir on tmpfs",
            true,
        ));
    }
    if !cx.smoke {
        plan.push((
            1_000_000,
            3,
            &["--ring-size", "512M", "--max-buckets", "2000000"],
            "--ring-size 512M --max-buckets 2000000",
            false,
        ));
    }
    let mut default_100k = String::new();
    for (sites, n, args, how, on_tmpfs) in plan {
        let dir = match (on_tmpfs, tmpfs) {
            (true, Some(t)) => t,
            _ => dir,
        };
        let mut d = Daemon::spawn(&cx.oomprof, false, dir, args)?;
        d.ready(Duration::from_secs(30))?;
        let mut kills = Vec::new();
        for _ in 0..n {
            kills.push(oom_kill(&mut d, manysites, sites)?);
        }
        d.stop()?;
        let name = size_name(sites);
        if on_tmpfs {
            let written: Vec<f64> = kills.iter().map(|k| k.written_ms).collect();
            let bar: (f64, &'static str) = match sites {
                1000 => (2.0, "≤ 2 ms"),
                10_000 => (10.0, "≤ 10 ms"),
                _ => (60.0, "≤ 60 ms"),
            };
            rows.push(
                Row {
                    value: Stats::percentile(&written, 50.0).ok_or("no samples".to_string()),
                    ..Row::samples(
                        2,
                        format!("OOM kill → file p50, {name}, tmpfs"),
                        "ms",
                        &written,
                    )
                }
                .bar(bar.0, bar.1, None)
                .note(format!(
                    "as the row without tmpfs, the profile directory on tmpfs (/dev/shm: its fsync costs nothing), {} kills, daemon {how}; {}; {}",
                    kills.len(),
                    incomplete(&kills),
                    stage_medians(&kills)
                )),
            );
            continue;
        }
        if sites == 100_000 && args.is_empty() {
            default_100k = format!(
                "; at defaults a 100k kill gives: {}, written {:.1} ms after the kill",
                incomplete(&kills),
                kills.first().map_or(f64::NAN, |k| k.written_ms)
            );
            continue;
        }
        let written: Vec<f64> = kills.iter().map(|k| k.written_ms).collect();
        let buckets = Stats::of(&kills.iter().map(|k| k.buckets as f64).collect::<Vec<_>>())
            .map_or(0.0, |s| s.median);
        let extra = if sites == 100_000 {
            default_100k.as_str()
        } else {
            ""
        };
        if sites < 1_000_000 {
            let note = format!(
                "{} OOM kills of manysites -n {sites} -oom (≈{buckets:.0} buckets), daemon {how}, profiles on {}; SIGKILL delivery (bpf_ktime at capture start) to the profile linked into place, the daemon's written= figure; {}; {}{extra}",
                kills.len(),
                dir.display(),
                incomplete(&kills),
                stage_medians(&kills)
            );
            let p50 = Row {
                value: Stats::percentile(&written, 50.0).ok_or("no samples".to_string()),
                ..Row::samples(2, format!("OOM kill → file p50, {name}"), "ms", &written)
            }
            .note(note);
            rows.push(match sites {
                1000 => p50.bar(2.0, "≤ 2 ms", Some("14.5 ms")),
                10_000 => p50.bar(10.0, "≤ 10 ms", None),
                _ => p50.bar(60.0, "≤ 60 ms", None),
            });
            // Everything but the write stage (create, write, fsync, link): what this
            // host's disk does not decide.
            let pipeline: Vec<f64> = kills
                .iter()
                .filter_map(|k| Some(k.written_ms - k.stages[5]?))
                .collect();
            if !pipeline.is_empty() {
                let w: Vec<f64> = kills.iter().filter_map(|k| k.stages[5]).collect();
                rows.push(
                    Row::samples(
                        2,
                        format!("OOM kill → file less the write, p50, {name}"),
                        "ms",
                        &pipeline,
                    )
                    .note(format!(
                        "written= less the daemon's write= stage (create, write, fsync, link of the file; median {:.3} ms, range {}) for the same kills",
                        Stats::of(&w).map_or(f64::NAN, |s| s.median),
                        Stats::of(&w).map_or("n/a".into(), |s| format!("{:.3}–{:.3}", s.min, s.max))
                    )),
                );
            }
            rows.push(Row {
                value: Stats::percentile(&written, 99.0).ok_or("no samples".to_string()),
                ..Row::samples(2, format!("OOM kill → file p99, {name}"), "ms", &written)
            });
        }
        let walk: Vec<f64> = kills.iter().map(|k| k.walk_ms).collect();
        let rate: Vec<f64> = kills
            .iter()
            .filter(|k| k.walk_ms > 0.0 && k.problem.is_none())
            .map(|k| k.buckets as f64 / k.walk_ms / 1e3)
            .collect();
        let row = Row::samples(3, format!("in-kernel walk, {name}"), "ms", &walk).note(format!(
            "walk time from the capture's end record (the daemon's walk=), {} OOM kills (≈{buckets:.0} buckets), daemon {how}; {}",
            kills.len(),
            incomplete(&kills)
        ));
        rows.push(if sites == 100_000 {
            row.bar(25.0, "≤ 25 ms", None)
        } else {
            row
        });
        rows.push(Row::samples(
            3,
            format!("walk rate, {name}"),
            "Mbuckets/s",
            &rate,
        ));
    }
    if cx.smoke {
        rows.push(Row::missing(
            3,
            "in-kernel walk, 1M",
            "ms",
            "skipped in smoke mode (building a 1M-site heap takes a while)".into(),
        ));
    }
    Ok(rows)
}

/// 4: profile build throughput per stage, over a live 100k-bucket heap.
pub fn pipeline(cx: &Ctx) -> Result<Vec<Row>, String> {
    use oom_core::bucket::{GoBucket, GoBucketHeader, GO_BUCKET_HEADER};
    use oom_core::pprof::{self, LocationSlot, Mapping, StringSlot, Tables};
    use oom_core::values::{self, Exp, Policy, Scale};
    use oom_loader::binary::GoBinary;
    use oom_loader::procmaps;
    use oom_loader::procmem::ProcMem;
    use std::io::Write;

    // Smoke runs may use a dev build of this harness: a smaller heap keeps them short.
    let sites = if cx.smoke { 10_000 } else { 100_000 };
    let path = cx.fixture("manysites")?;
    let bin = GoBinary::analyze(
        &File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?,
        &path,
    )
    .map_err(|e| format!("analysing {}: {e}", path.display()))?;
    if bin.info.pie {
        return Err("manysites is PIE; this figure reads link-time addresses".into());
    }
    let layout = bin.info.layout;
    let mut proc = Running::spawn(Command::new(&path).args(["-n", &sites.to_string()]))?;
    proc.wait_line("ready", Duration::from_secs(120))?;
    let pid = proc.pid();
    let mem =
        ProcMem::open(Path::new("/proc"), pid).map_err(|e| format!("/proc/{pid}/mem: {e}"))?;
    let rd = |what: &str, r: std::io::Result<u64>| r.map_err(|e| format!("reading {what}: {e}"));
    let rate = rd(
        "runtime.MemProfileRate",
        mem.u64(bin.info.vars.mem_profile_rate.ok_or("no MemProfileRate")?),
    )? as i64;
    // The capture: each bucket's bytes back to back, as the reader holds them.
    let mut capture = Vec::new();
    let mut offsets = Vec::new();
    let mut at = rd("runtime.mbuckets", mem.u64(bin.info.vars.mbuckets))?;
    let mut head = vec![0u8; GO_BUCKET_HEADER];
    while at != 0 {
        mem.read_exact(at, &mut head)
            .map_err(|e| format!("bucket at {at:#x}: {e}"))?;
        let h = GoBucketHeader::parse(&head, &layout).map_err(|e| format!("{e:?}"))?;
        let mut b = vec![0u8; h.total_len(&layout)];
        mem.read_exact(at, &mut b)
            .map_err(|e| format!("bucket at {at:#x}: {e}"))?;
        offsets.push(capture.len());
        capture.extend_from_slice(&b);
        at = h.allnext;
    }
    let maps = procmaps::read(Path::new("/proc"), pid).map_err(|e| format!("maps: {e}"))?;
    drop(proc);
    let nb = offsets.len() as f64;

    #[cfg(target_arch = "x86_64")]
    let exp = Exp::Amd64 {
        fma: std::arch::is_x86_feature_detected!("avx")
            && std::arch::is_x86_feature_detected!("fma"),
    };
    #[cfg(not(target_arch = "x86_64"))]
    let exp = Exp::Portable;
    let scale = Scale::new(rate, exp, layout).map_err(|e| format!("{e:?}"))?;
    let sym = bin.symbolizer(0).map_err(|e| format!("{e:?}"))?;
    let exe_maps: Vec<Mapping<'_>> = procmaps::executable(&maps)
        .map(|m| Mapping {
            start: m.start,
            limit: m.end,
            offset: m.offset,
            filename: &m.path,
            build_id: &bin.info.gnu_build_id,
        })
        .take(pprof::MAX_MAPPINGS)
        .collect();

    let stages = ["parse", "values", "symbolize", "encode", "gzip"];
    let mut t: Vec<Vec<f64>> = vec![Vec::new(); stages.len()];
    let mut total = Vec::new();
    let mut sizes = (0, 0);
    let mut npcs = 0;
    let mut last = Vec::new();
    for _ in 0..cx.runs(7, 3) {
        daemon::check_interrupted()?;
        let s = Instant::now();
        let buckets = offsets
            .iter()
            .map(|&o| {
                GoBucket::parse(capture.get(o..).unwrap_or_default(), &layout).map(|g| g.bucket)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("parse: {e:?}"))?;
        let parse = s.elapsed();

        let s = Instant::now();
        let fallback = values::needs_fallback(buckets.iter().map(|b| &b.record), Some(0));
        let policy = Policy::GoPublished {
            cycle: Some(0),
            fallback,
        };
        let sum: i64 = buckets
            .iter()
            .map(|b| {
                scale
                    .values(values::counts(&b.record, policy), b.size)
                    .inuse_space
            })
            .sum();
        std::hint::black_box(sum);
        let vals = s.elapsed();

        // As the daemon does it: every distinct PC once, into the frame cache.
        let s = Instant::now();
        let mut frames = vec![pprof::FrameSlot::default(); 4096];
        let distinct = loop {
            match pprof::symbolize(&mut frames, &sym, &buckets) {
                Ok(n) => break n,
                Err(oom_core::Error::TableFull { capacity, .. }) => {
                    frames = vec![pprof::FrameSlot::default(); capacity * 8]
                }
                Err(e) => return Err(format!("symbolize: {e:?}")),
            }
        };
        let symb = s.elapsed();
        npcs = distinct;

        let s = Instant::now();
        let words: usize = buckets.iter().map(|b| b.stack.len()).sum();
        let mut strings = vec![StringSlot::default(); 4 * distinct + 256];
        let mut locations = vec![LocationSlot::default(); 2 * distinct + 64];
        let mut out = vec![0u8; 256 + 48 * buckets.len() + 12 * words];
        let profile = pprof::Profile {
            scale,
            policy: Policy::Latest,
            mappings: &exe_maps,
            time_nanos: 1,
            recent: false,
            default_sample_type: None,
            comments: &["oomprof-bench"],
        };
        let len = pprof::encode(
            &mut out,
            Tables {
                strings: &mut strings,
                locations: &mut locations,
                frames: &frames,
            },
            &sym,
            &profile,
            buckets.iter(),
        )
        .map_err(|e| format!("encode: {e:?}"))?;
        let enc = s.elapsed();

        let s = Instant::now();
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(len / 3 + 64),
            flate2::Compression::fast(),
        );
        gz.write_all(&out[..len]).map_err(|e| e.to_string())?;
        let gzlen = gz.finish().map_err(|e| e.to_string())?.len();
        let gzt = s.elapsed();
        sizes = (len, gzlen);
        for (i, d) in [parse, vals, symb, enc, gzt].into_iter().enumerate() {
            t[i].push(d.as_secs_f64());
        }
        total.push(ms(parse + vals + symb + enc + gzt));
        last = out[..len].to_vec();
    }
    // The gzip level, by measurement: time and size of the same profile per level.
    let mut levels = Vec::new();
    for level in [1u32, 2, 3, 6, 9] {
        let mut ts = Vec::new();
        let mut size = 0;
        for _ in 0..cx.runs(3, 1) {
            let s = Instant::now();
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(last.len() / 3 + 64),
                flate2::Compression::new(level),
            );
            gz.write_all(&last).map_err(|e| e.to_string())?;
            size = gz.finish().map_err(|e| e.to_string())?.len();
            ts.push(ms(s.elapsed()));
        }
        levels.push(format!(
            "level {level}: {:.1} ms, {size} bytes",
            Stats::of(&ts).map_or(f64::NAN, |s| s.median)
        ));
    }
    let mut rows = Vec::new();
    // These stages run inside this harness, so its build profile decides their speed.
    let dev = if cfg!(debug_assertions) {
        "; HARNESS BUILT WITHOUT --release: not representative"
    } else {
        ""
    };
    for (i, name) in stages.iter().enumerate() {
        let rate: Vec<f64> = t[i].iter().map(|s| nb / s / 1e6).collect();
        let what = match *name {
            "parse" => "raw Go bucket bytes → Bucket",
            "values" => "counts + scaleHeapSample",
            "symbolize" => {
                "pprof::symbolize: every distinct PC through gopclntab once (the frame cache)"
            }
            "encode" => "pprof protobuf from the frame cache",
            _ => "flate2 level 1 (the daemon's, as Go's BestSpeed)",
        };
        rows.push(
            Row::samples(4, format!("build: {name}"), "Mbuckets/s", &rate).note(format!(
                "{what}; {} buckets read from a live manysites -n {sites}{dev}",
                nb as u64
            )),
        );
    }
    rows.push(
        Row::samples(
            4,
            format!("build: parse+values+symbolize+encode+gzip, {}", size_name(sites)),
            "ms",
            &total,
        )
        .note(format!(
            "one profile of {} buckets ({npcs} distinct PCs): {} bytes of pprof, {} gzipped; gzip by level (median): {}{dev}",
            nb as u64,
            sizes.0,
            sizes.1,
            levels.join(", ")
        )),
    );
    Ok(rows)
}

/// 5: on-demand `oomprof dump` of holder.
pub fn dump(cx: &Ctx) -> Result<Vec<Row>, String> {
    let holder = cx.fixture("holder")?;
    let mut proc = Running::spawn(&mut Command::new(&holder))?;
    proc.wait_line("ready", Duration::from_secs(60))?;
    let out = cx.tmp.join("dump.pb.gz");
    let mut wall = Vec::new();
    for _ in 0..cx.runs(11, 3) {
        daemon::check_interrupted()?;
        // `dump -o FILE` refuses to replace a file: each run writes a new one.
        let _ = std::fs::remove_file(&out);
        let t = Instant::now();
        let res = Command::new(&cx.oomprof)
            .arg("dump")
            .arg("-o")
            .arg(&out)
            .arg(proc.pid().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("running oomprof dump: {e}"))?;
        let d = t.elapsed();
        if !res.status.success() {
            return Err(format!(
                "oomprof dump {}: {}: {}",
                proc.pid(),
                res.status,
                String::from_utf8_lossy(&res.stderr).trim()
            ));
        }
        wall.push(ms(d));
    }
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&out);
    Ok(vec![Row::samples(5, "on-demand dump of holder", "ms", &wall)
        .bar(50.0, "≤ 50 ms", Some("2.0–2.2 s"))
        .note(format!(
            "wall time of `oomprof dump -o FILE PID` (process start to exit, analysis of the binary included) on holder (40×1 MiB + 10,000×1 KiB live); {size} bytes written"
        ))])
}

/// CPU time of a process: (utime+stime from /proc/PID/stat in seconds, sum of every
/// thread's schedstat run time in seconds).
fn cpu_seconds(pid: i32) -> Result<(f64, f64), String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    let rest = stat
        .rsplit_once(") ")
        .map(|(_, r)| r)
        .ok_or("bad /proc/PID/stat")?;
    let f: Vec<&str> = rest.split(' ').collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // Fields 14 and 15 of stat (utime, stime); `rest` starts at field 3.
    let ticks = (tick(11) + tick(12)) / hz;
    let mut sched = 0.0;
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.flatten() {
            let s = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            sched += s
                .split(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1e9;
        }
    }
    Ok((ticks, sched))
}

fn status_kib(pid: i32, key: &str) -> Result<f64, String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no {key} in /proc/{pid}/status"))
}

/// Where a process's resident memory is: the largest mappings by Rss (from smaps).
fn rss_breakdown(pid: i32) -> String {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut by: Vec<(String, u64)> = Vec::new();
    let mut cur = String::new();
    for l in smaps.lines() {
        let first = l.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            let name = l.split_whitespace().nth(5).unwrap_or("[anon]");
            cur = Path::new(name)
                .file_name()
                .map_or(name.to_string(), |f| f.to_string_lossy().into_owned());
        } else if let Some(v) = l.strip_prefix("Rss:") {
            let kb: u64 = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
            match by.iter_mut().find(|(n, _)| *n == cur) {
                Some(e) => e.1 += kb,
                None => by.push((cur.clone(), kb)),
            }
        }
    }
    by.sort_by_key(|e| std::cmp::Reverse(e.1));
    by.iter()
        .take(4)
        .map(|(n, kb)| format!("{n} {:.1} MiB", *kb as f64 / 1024.0))
        .collect::<Vec<_>>()
        .join(", ")
}

/// 6 and 7: discovery latency while 50 Go processes start, then the idle cost.
pub fn idle(cx: &Ctx) -> Result<Vec<Row>, String> {
    let holder = cx.fixture("holder")?;
    let dir = cx.profile_dir()?;
    let nproc = 50;
    let nforeign = if cx.smoke { 50 } else { 500 };
    let (mut per_exec, mut examined) = (Vec::new(), Vec::new());
    let idle = Duration::from_secs(if cx.smoke { 5 } else { 60 });
    let mut breakdown = String::new();
    let (mut others, mut anon, mut file) = (Vec::new(), Vec::new(), Vec::new());
    let (mut lat, mut rss, mut hwm, mut cpu, mut sched, mut total) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for _ in 0..cx.runs(3, 1) {
        let mut d = Daemon::spawn(&cx.oomprof, true, &dir, &[])?;
        d.ready(Duration::from_secs(30))?;
        let mut procs = Vec::new();
        for _ in 0..nproc {
            let mut cmd = Command::new(&holder);
            cmd.args(["-large", "1", "-small", "100"]);
            let p = Running::spawn(&mut cmd)?;
            let tag = format!("watch pid {} (", p.pid());
            let (_, l) = d.wait_for(Duration::from_secs(10), "watch line", |l| {
                l.contains(&tag).then(|| l.to_string())
            })?;
            let after = l
                .rsplit_once(", ")
                .and_then(|(_, t)| t.strip_suffix(" after exec"))
                .and_then(parse_duration)
                .ok_or_else(|| format!("no exec latency in {l:?}"))?;
            lat.push(ms(after));
            procs.push(p);
        }
        for p in &mut procs {
            p.wait_line("ready", Duration::from_secs(30))?;
        }
        daemon::sleep(Duration::from_secs(2))?;
        let pid = d.pid();
        d.drain();
        let seen = d.log.len();
        let (c0, s0) = cpu_seconds(pid)?;
        daemon::sleep(idle)?;
        let (c1, s1) = cpu_seconds(pid)?;
        d.drain();
        // This machine is shared: Go processes others start (go build's compile, test
        // binaries) are discovered and analysed during the window too. Count them.
        others.push(
            d.log[seen..]
                .iter()
                .filter(|(_, l)| l.contains("watch pid ") || l.contains("skip pid "))
                .count() as f64,
        );
        anon.push(status_kib(pid, "RssAnon:")? / 1024.0);
        file.push(status_kib(pid, "RssFile:")? / 1024.0);
        let per_min = 60.0 / idle.as_secs_f64();
        cpu.push((c1 - c0) * per_min);
        sched.push((s1 - s0) * per_min);
        total.push(c1);
        rss.push(status_kib(pid, "VmRSS:")? / 1024.0);
        breakdown = rss_breakdown(pid);
        hwm.push(status_kib(pid, "VmHWM:")? / 1024.0);
        // Foreign execs: non-Go programs started one after another. The daemon's CPU
        // over them, less its idle rate over the same time, per exec.
        let idle_rate = (s1 - s0) / idle.as_secs_f64();
        let (_, x0) = cpu_seconds(pid)?;
        let t = Instant::now();
        let mut ours = std::collections::HashSet::new();
        for _ in 0..nforeign {
            daemon::check_interrupted()?;
            let st = Command::new("/bin/true")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("running /bin/true: {e}"))?;
            ours.insert(st.id());
            let mut st = st;
            st.wait()
                .map_err(|e| format!("waiting for /bin/true: {e}"))?;
        }
        // Let the daemon take the last exec events before reading its CPU.
        daemon::sleep(Duration::from_millis(200))?;
        let (_, x1) = cpu_seconds(pid)?;
        let span = t.elapsed().as_secs_f64();
        d.drain();
        let seen_ours = d
            .log
            .iter()
            .filter(|(_, l)| {
                l.split_once("skip pid ")
                    .and_then(|(_, r)| r.split(' ').next()?.parse::<u32>().ok())
                    .is_some_and(|p| ours.contains(&p))
            })
            .count();
        // A /bin/true may be gone (reaped) before the daemon looks at it: that exec
        // still cost its event, and a failed /proc read instead of the skip line. The
        // slower the daemon, the fewer it sees alive: the count is in the note.
        if seen_ours == 0 {
            return Err(format!(
                "the daemon examined none of the {nforeign} /bin/true execs (exec events lost?)"
            ));
        }
        examined.push(seen_ours as f64);
        per_exec.push(((x1 - x0) - idle_rate * span).max(0.0) / nforeign as f64 * 1e3);
        d.stop()?;
    }
    let window = format!("{} s", idle.as_secs());
    let med = |v: &[f64]| Stats::of(v).map_or(f64::NAN, |s| s.median);
    Ok(vec![
        Row {
            value: Stats::percentile(&lat, 50.0).ok_or("no samples".to_string()),
            ..Row::samples(6, "discovery exec → watched p50", "ms", &lat)
        }
        .note(format!(
            "{} Go processes (holder) started one after another under a running daemon; the daemon's own exec → watch figure (--debug line); range is over all samples",
            lat.len()
        )),
        Row {
            value: Stats::percentile(&lat, 99.0).ok_or("no samples".to_string()),
            ..Row::samples(6, "discovery exec → watched p99", "ms", &lat)
        },
        Row::samples(7, "idle VmRSS, 50 Go processes", "MiB", &rss)
            .bar(4.0, "≤ 4 MiB", Some("16 MB"))
            .note(format!(
                "/proc/PID/status after {window} idle with {nproc} watched Go processes; RssAnon median {:.1} MiB, RssFile {:.1} MiB; largest mappings by Rss (smaps, last run): {breakdown}",
                med(&anon),
                med(&file)
            )),
        Row::samples(7, "idle VmHWM, 50 Go processes", "MiB", &hwm)
            .note("peak RSS over the daemon's life, including discovering the 50 processes"),
        Row::samples(7, "idle CPU, 50 Go processes", "s/min", &cpu)
            .bar(0.01, "≈ 0 (≤ 0.01 s/min)", Some("0.1 s/min"))
            .note(format!(
                "utime+stime from /proc/PID/stat over {window}, per minute (10 ms ticks); per-thread schedstat run time: median {:.4} s/min; CPU since start incl. discovery: median {:.2} s; NOT a quiet machine: per run, CPU s/min with the number of other users' execs the daemon examined in the window (watch + skip lines): {}",
                med(&sched),
                med(&total),
                cpu.iter()
                    .zip(&others)
                    .map(|(c, o)| format!("{c:.3} with {o:.0}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        Row::samples(7, "idle CPU per foreign exec", "ms", &per_exec)
            .bar(0.1, "≤ 0.1 ms", None)
            .note(format!(
                "{nforeign} /bin/true (not Go) run one after another under the same daemon (with its 50 watched processes); its per-thread schedstat run time over them less its idle rate from the window before, per exec; the daemon logged a skip line for {} of them (median; the others had exited before it looked); the first is analysed, the rest hit the cached verdict",
                med(&examined)
            )),
    ])
}

/// 9: the static musl binary's size.
pub fn binary_size(cx: &Ctx) -> Result<Vec<Row>, String> {
    use object::Object;
    let path = cx.static_bin.clone().ok_or(
        "no static binary: pass --static PATH or set OOMPROF_STATIC_BIN (cargo build --release --target x86_64-unknown-linux-musl -p oom-cli)",
    )?;
    let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let obj = object::File::parse(&*data).map_err(|e| format!("{}: {e}", path.display()))?;
    let stripped = obj.section_by_name(".symtab").is_none();
    let interp = obj.section_by_name(".interp").is_some();
    let note = format!(
        "{} ({} bytes): {}, {}",
        path.display(),
        data.len(),
        if interp {
            "DYNAMIC (has .interp)"
        } else {
            "static (no .interp)"
        },
        if stripped { "stripped" } else { "NOT stripped" }
    );
    if interp || !stripped {
        return Err(note);
    }
    Ok(vec![Row::samples(
        9,
        "binary size, static musl, stripped",
        "MiB",
        &[data.len() as f64 / 1048576.0],
    )
    .bar(3.0, "≤ 3 MiB", Some("6.3 MB"))
    .note(note)])
}

extern "C" fn count_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

static SIGNALS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Delivers `n` SIGUSR1s to this thread, each handled by a sigaction handler; returns
/// the wall time.
fn signal_loop(n: u64) -> Result<Duration, String> {
    // SAFETY: a zeroed sigaction is valid; the handler only touches an atomic.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = count_signal as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()) != 0 {
            return Err(format!("sigaction: {}", std::io::Error::last_os_error()));
        }
    }
    let before = SIGNALS.load(std::sync::atomic::Ordering::Relaxed);
    let t = Instant::now();
    for _ in 0..n {
        // SAFETY: raise has no memory-safety preconditions; the handler is installed.
        unsafe { libc::raise(libc::SIGUSR1) };
    }
    let d = t.elapsed();
    let got = SIGNALS.load(std::sync::atomic::Ordering::Relaxed) - before;
    if got != n {
        return Err(format!("delivered {got} of {n} signals"));
    }
    Ok(d)
}

/// Runs allocbench once and returns its own timing of the work.
fn alloc_run(bin: &Path, n: u64) -> Result<Duration, String> {
    let mut p = Running::spawn(Command::new(bin).args(["-n", &n.to_string()]))?;
    let l = p.wait_line("elapsed_ns=", Duration::from_secs(120))?;
    p.wait_exit(Duration::from_secs(10))?;
    l.trim_start_matches("elapsed_ns=")
        .trim()
        .parse()
        .map(Duration::from_nanos)
        .map_err(|_| format!("bad allocbench output {l:?}"))
}

/// 10: overhead on processes that are not killed, with/without the daemon, interleaved.
pub fn overhead(cx: &Ctx) -> Result<Vec<Row>, String> {
    let alloc = cx.fixture("allocbench")?;
    let dir = cx.profile_dir()?;
    let nsig: u64 = if cx.smoke { 50_000 } else { 300_000 };
    let nalloc: u64 = if cx.smoke { 1_000_000 } else { 5_000_000 };
    let (mut sig_ratio, mut alloc_ratio) = (Vec::new(), Vec::new());
    let (mut sig_on, mut sig_off, mut alloc_on, mut alloc_off) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Warm up: page cache, the fixture build, CPU frequency.
    signal_loop(nsig / 10)?;
    alloc_run(&alloc, nalloc / 10)?;
    for i in 0..cx.runs(8, 2) {
        let mut pair = [(Duration::ZERO, Duration::ZERO); 2];
        // ABBA order: even pairs measure with the daemon first, odd pairs without.
        let order = if i % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for with in order {
            let d = if with {
                let mut d = Daemon::spawn(&cx.oomprof, false, &dir, &[])?;
                d.ready(Duration::from_secs(30))?;
                Some(d)
            } else {
                None
            };
            let s = signal_loop(nsig)?;
            let a = alloc_run(&alloc, nalloc)?;
            if let Some(d) = d {
                d.stop()?;
            }
            pair[usize::from(!with)] = (s, a);
        }
        let ((s1, a1), (s0, a0)) = (pair[0], pair[1]);
        sig_ratio.push(s1.as_secs_f64() / s0.as_secs_f64());
        alloc_ratio.push(a1.as_secs_f64() / a0.as_secs_f64());
        sig_on.push(s1.as_secs_f64() * 1e9 / nsig as f64);
        sig_off.push(s0.as_secs_f64() * 1e9 / nsig as f64);
        alloc_on.push(ms(a1));
        alloc_off.push(ms(a0));
    }
    let med = |v: &[f64]| Stats::of(v).map_or(f64::NAN, |s| s.median);
    Ok(vec![
        Row::samples(10, "overhead: signal loop, with/without", "ratio", &sig_ratio)
            .bar(1.02, "≤ 1.02", None)
            .note(format!(
                "{nsig} SIGUSR1s raised to itself and handled by a sigaction handler (non-Go process, passes the signal_deliver hook); per-pair ratio, pairs interleaved ABBA; median {:.0} ns/signal with, {:.0} ns without",
                med(&sig_on),
                med(&sig_off)
            )),
        Row::samples(10, "overhead: Go allocation, with/without", "ratio", &alloc_ratio)
            .bar(1.02, "≤ 1.02", None)
            .note(format!(
                "allocbench -n {nalloc} (2 goroutines, 16 B–1 KiB objects; watched by the daemon, so its SIGURG preemption signals pass the hook too); per-pair ratio; median {:.0} ms with, {:.0} ms without",
                med(&alloc_on),
                med(&alloc_off)
            )),
    ])
}

/// 10: an exit storm of watched Go programs costs no walks. `manysites -n 1000 -then
/// exit` (1k buckets, 4 extra threads locked to goroutines) in batches, each program
/// watched (the Monitor's `watch_info` of its binary) before a whole batch is released
/// to exit at once. Their exit_group kills their other threads through the SIGKILL
/// delivery path the capture hooks; no SIGKILL is generated, so nothing may walk. A
/// `Kernel` of its own, not the daemon: only the pids watched here can move its
/// counters (a daemon would also watch, and walk, other users' killed Go programs).
pub fn exit_storm(cx: &Ctx) -> Result<Vec<Row>, String> {
    use oom_loader::binary::GoBinary;
    use oom_loader::{Event, Kernel, KernelConfig};

    let manysites = cx.fixture("manysites")?;
    let bin = GoBinary::analyze(
        &File::open(&manysites).map_err(|e| format!("{}: {e}", manysites.display()))?,
        &manysites,
    )
    .map_err(|e| format!("analysing {}: {e}", manysites.display()))?;
    if bin.info.pie {
        return Err("manysites is PIE; this figure watches with link-time addresses".into());
    }
    let info = oom_loader::monitor::watch_info(&bin, 0);
    let total = cx.runs(1000, 50);
    let batch = 25;
    let mut k = Kernel::load(&KernelConfig::default()).map_err(|e| format!("Kernel::load: {e}"))?;
    let counters = |k: &Kernel| k.counters().map_err(|e| format!("kernel counters: {e}"));
    let before = counters(&k)?;
    let mut ours = std::collections::HashSet::new();
    let (mut exits, mut captures) = (0usize, 0usize);
    let mut count = |events: Vec<Event>, ours: &std::collections::HashSet<u32>| {
        for e in events {
            match e {
                Event::Exit(x) if ours.contains(&x.pid) => exits += 1,
                Event::Capture(_) => captures += 1,
                _ => {}
            }
        }
    };
    let t0 = Instant::now();
    let mut done = 0;
    while done < total {
        daemon::check_interrupted()?;
        let n = batch.min(total - done);
        let mut procs = Vec::with_capacity(n);
        for _ in 0..n {
            let mut p =
                Running::spawn(Command::new(&manysites).args(["-n", "1000", "-then", "exit"]))?;
            p.wait_line("ready", Duration::from_secs(30))?;
            let pid = p.pid() as u32;
            k.watch(pid, &info)
                .map_err(|e| format!("watching {pid}: {e}"))?;
            ours.insert(pid);
            procs.push(p);
        }
        for p in &mut procs {
            p.send_line("go")?;
        }
        for p in &mut procs {
            let st = p.wait_exit(Duration::from_secs(30))?;
            if !st.success() {
                return Err(format!("manysites {} exited with {st}", p.pid()));
            }
        }
        count(
            k.poll(Some(Duration::ZERO))
                .map_err(|e| format!("poll: {e}"))?,
            &ours,
        );
        done += n;
    }
    let took = t0.elapsed();
    // Longer than the classification window: a capture would have surfaced by now.
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        count(
            k.poll(Some(Duration::from_millis(50)))
                .map_err(|e| format!("poll: {e}"))?,
            &ours,
        );
    }
    let after = counters(&k)?;
    let walks = after.captures - before.captures;
    Ok(vec![Row::samples(
        10,
        format!("exit storm: walks per {total} watched Go exits"),
        "walks",
        &[walks as f64],
    )
    .note(format!(
        "{total} manysites -n 1000 -then exit (os.Exit with 4 extra threads), watched in batches of {batch} that are released to exit together; the kernel program's captures counter over the storm (only these pids are watched); {exits} exit events of watched pids, {captures} captures yielded; SIGKILL deliveries to their other threads with no SIGKILL generated (unmarked_deliveries): {}; kill marks {}; {:.1} s in all",
        after.unmarked_deliveries - before.unmarked_deliveries,
        after.kill_marks - before.kill_marks,
        took.as_secs_f64()
    ))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_daemons_profile_line() {
        let l = "2026-11-22T01:00:00Z INFO  wrote /t/manysites-9-1.pb.gz pid=9 comm=manysites reason=oom inuse=61.0MiB top=main.allocChunk (60.0MiB) complete (1012 buckets) walk=0.211ms written=3.104ms-after-kill";
        let k = parse_kill(l).unwrap();
        assert_eq!(k.buckets, 1012);
        assert!(k.problem.is_none());
        assert!((k.walk_ms - 0.211).abs() < 1e-9);
        assert!((k.written_ms - 3.104).abs() < 1e-9);
        assert_eq!(k.stages, [None; 6], "a daemon before issue 16");
        let l = "wrote /t/x pid=9 comm=m reason=oom inuse=1MiB top=- (0MiB) INCOMPLETE: ring full walk=1.0ms written=2.0ms-after-kill";
        assert_eq!(parse_kill(l).unwrap().problem.as_deref(), Some("ring full"));
        let l = "wrote /t/x pid=9 comm=m reason=oom inuse=1MiB top=- (0MiB) complete (3 buckets) walk=1.0ms written=9.0ms-after-kill deliver=1.5ms assemble=0.25ms symbolize=0.5ms encode=2ms gzip=0.75ms write=3ms";
        let k = parse_kill(l).unwrap();
        assert_eq!(
            k.stages,
            [
                Some(1.5),
                Some(0.25),
                Some(0.5),
                Some(2.0),
                Some(0.75),
                Some(3.0)
            ]
        );
        assert!(stage_medians(&[k]).starts_with("median stages (ms): walk 1.000 · deliver 1.500"));
    }

    #[test]
    fn signal_loop_counts_every_signal() {
        assert!(signal_loop(100).is_ok());
    }
}
