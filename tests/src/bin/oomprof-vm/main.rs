//! `oomprof-vm`: oomprof on the kernels fleets run, with cgroup v2 and v1.
//!
//! ```text
//! oomprof-vm --oomprof STATIC_BIN --kernel NAME=VMLINUZ... [--run NAME:v2|v1]...
//!            [--out DIR] [--timeout SECS]
//! ```
//!
//! Builds one initramfs (busybox, the static oomprof, static Go fixtures, and
//! tests/vm/guest.sh as /init), boots every run under qemu with software emulation
//! (TCG: KVM hangs on the hosts this is made for), collects what the guest reports on
//! its second serial port, and judges it here (see `judge`). Without `--run`, every
//! kernel runs with cgroup v2, and 6.1 also with v1. Prints a table of kernel × cgroup
//! × scenario with times; exits 1 when anything failed. `tests/vm/run` fetches the
//! kernels and calls this.

mod initramfs;
mod judge;
mod report;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix;

const USAGE: &str = "usage: oomprof-vm --oomprof STATIC_BIN --kernel NAME=VMLINUZ... [--run NAME:v2|v1]... [--out DIR] [--timeout SECS]";

struct Args {
    oomprof: PathBuf,
    kernels: Vec<(String, PathBuf)>,
    runs: Vec<(String, String)>,
    out: PathBuf,
    timeout: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        oomprof: PathBuf::new(),
        kernels: Vec::new(),
        runs: Vec::new(),
        out: oom_tests::repo_root().join("target").join("vm"),
        timeout: Duration::from_secs(300),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |what: &str| it.next().ok_or(format!("{what} needs a value"));
        match arg.as_str() {
            "--oomprof" => a.oomprof = value("--oomprof")?.into(),
            "--kernel" => {
                let v = value("--kernel")?;
                let (n, p) = v
                    .split_once('=')
                    .ok_or(format!("--kernel {v}: want NAME=VMLINUZ"))?;
                a.kernels.push((n.to_string(), p.into()));
            }
            "--run" => {
                let v = value("--run")?;
                match v.split_once(':') {
                    Some((k, cg @ ("v1" | "v2"))) => a.runs.push((k.to_string(), cg.to_string())),
                    _ => return Err(format!("--run {v}: want KERNEL:v2 or KERNEL:v1")),
                }
            }
            "--out" => a.out = value("--out")?.into(),
            "--timeout" => {
                let v = value("--timeout")?;
                a.timeout = Duration::from_secs(
                    v.parse()
                        .map_err(|_| format!("--timeout {v}: want seconds"))?,
                );
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.oomprof.as_os_str().is_empty() || a.kernels.is_empty() {
        return Err(USAGE.into());
    }
    if a.runs.is_empty() {
        for (k, _) in &a.kernels {
            a.runs.push((k.clone(), "v2".into()));
        }
        if a.kernels.iter().any(|(k, _)| k == "6.1") {
            a.runs.push(("6.1".into(), "v1".into()));
        }
    }
    for (k, _) in &a.runs {
        if !a.kernels.iter().any(|(n, _)| n == k) {
            return Err(format!("--run {k}: no --kernel {k}=..."));
        }
    }
    Ok(a)
}

/// PT_INTERP of an ELF file, if it has one.
fn interpreter(path: &Path) -> Result<Option<PathBuf>, String> {
    use object::read::elf::{ElfFile64, ProgramHeader};
    let data = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let elf = ElfFile64::<object::Endianness>::parse(&*data)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let endian = elf.endian();
    for ph in elf.elf_program_headers() {
        if ph.p_type(endian) == object::elf::PT_INTERP {
            let bytes = ph
                .data(endian, &*data)
                .map_err(|()| format!("{}: bad PT_INTERP", path.display()))?;
            let s = String::from_utf8_lossy(bytes);
            return Ok(Some(s.trim_end_matches('\0').into()));
        }
    }
    Ok(None)
}

fn build_initramfs(args: &Args, fx: &judge::Fixtures) -> Result<Vec<u8>, String> {
    let busybox = Path::new("/bin/busybox");
    if interpreter(busybox)?.is_some() {
        return Err("/bin/busybox is dynamically linked: install busybox-static".into());
    }
    if let Some(i) = interpreter(&args.oomprof)? {
        return Err(format!(
            "{} is dynamically linked ({}): build the musl target",
            args.oomprof.display(),
            i.display()
        ));
    }
    let io = |e: std::io::Error| format!("building the initramfs: {e}");
    let mut a = initramfs::Archive::new();
    for d in ["bin", "fx", "proc", "sys", "dev", "tmp", "lib64"] {
        a.dir(d).map_err(io)?;
    }
    a.copy("bin/busybox", busybox)?;
    a.copy("bin/oomprof", &args.oomprof)?;
    a.copy("fx/oomer", &fx.oomer)?;
    a.copy("fx/oomer-pie-stripped", &fx.oomer_pie_stripped)?;
    a.copy("fx/holder", &fx.holder)?;
    // A PIE Go binary names the host's dynamic loader even without libraries.
    if let Some(interp) = interpreter(&fx.oomer_pie_stripped)? {
        let name = interp.to_string_lossy().trim_start_matches('/').to_string();
        if !name.starts_with("lib64/") || name.matches('/').count() != 1 {
            return Err(format!("unexpected interpreter {}", interp.display()));
        }
        a.copy(&name, &std::fs::canonicalize(&interp).map_err(io)?)?;
    }
    let guest = oom_tests::repo_root().join("tests/vm/guest.sh");
    a.copy("init", &guest)?;
    a.finish().map_err(io)
}

/// Boots one guest; returns the wall time and whether the host timeout struck.
fn boot(
    vmlinuz: &Path,
    initrd: &Path,
    cgroup: &str,
    dir: &Path,
    timeout: Duration,
) -> Result<(Duration, bool), String> {
    let mut append = format!(
        "console=ttyS0 loglevel=5 panic=-1 psi=1 oomvm.cgroup={cgroup} oomvm.watchdog={}",
        timeout.as_secs().saturating_sub(20).max(30)
    );
    if cgroup == "v2" {
        append.push_str(" cgroup_no_v1=all");
    }
    let start = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-machine",
            "q35,accel=tcg",
            "-cpu",
            "max",
            "-smp",
            "2",
            "-m",
            "1024",
        ])
        .args(["-display", "none", "-monitor", "none", "-no-reboot"])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", &append])
        .arg("-serial")
        .arg(format!("file:{}", dir.join("console.txt").display()))
        .arg("-serial")
        .arg(format!("file:{}", dir.join("report.txt").display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("qemu.stderr")).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("starting qemu-system-x86_64: {e} (install qemu-system-x86)"))?;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return Ok((start.elapsed(), false)),
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Ok((start.elapsed(), true));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("waiting for qemu: {e}")),
        }
    }
}

fn run() -> Result<bool, String> {
    let args = parse_args()?;
    let tc = gomatrix::toolchains()
        .into_iter()
        .max_by_key(gomatrix::Toolchain::minor)
        .ok_or("no Go toolchain installed (run tests/tools/go-matrix)")?;
    let fx = judge::Fixtures {
        oomer: fixtures::build("oomer", &tc, Variant::Default)?,
        oomer_pie_stripped: fixtures::build("oomer", &tc, Variant::PieStripped)?,
        holder: fixtures::build("holder", &tc, Variant::Default)?,
    };
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let initrd = args.out.join("initramfs.cpio.gz");
    std::fs::write(&initrd, build_initramfs(&args, &fx)?)
        .map_err(|e| format!("{}: {e}", initrd.display()))?;
    println!(
        "oomprof-vm: Go {} fixtures, {} run(s), initramfs {} KiB, results in {}",
        tc.version,
        args.runs.len(),
        std::fs::metadata(&initrd).map_or(0, |m| m.len() / 1024),
        args.out.display()
    );

    let mut all_ok = true;
    let mut table = Vec::new();
    for (kernel, cgroup) in &args.runs {
        let vmlinuz = &args.kernels.iter().find(|(n, _)| n == kernel).unwrap().1;
        let dir = args.out.join(format!("{kernel}-{cgroup}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (took, host_timeout) = boot(vmlinuz, &initrd, cgroup, &dir, args.timeout)?;
        let text = std::fs::read(dir.join("report.txt")).unwrap_or_default();
        let rep = report::parse(&String::from_utf8_lossy(&text));
        for (name, data) in &rep.files {
            let _ = std::fs::write(dir.join(name), data);
        }
        let mut verdicts = judge::judge(&rep, cgroup, &dir, &tc, &fx);
        if host_timeout {
            verdicts.push(judge::Verdict {
                scenario: "guest".into(),
                ok: false,
                not_applicable: false,
                detail: format!("killed at the host timeout ({} s)", args.timeout.as_secs()),
            });
        }
        let console = std::fs::read(dir.join("console.txt")).unwrap_or_default();
        verdicts.push(judge::kernel_health(&String::from_utf8_lossy(&console)));
        let release = rep
            .info
            .get("kernel")
            .cloned()
            .unwrap_or_else(|| "?".into());
        let failed = verdicts.iter().filter(|v| !v.ok).count();
        all_ok &= failed == 0;
        println!(
            "\n== {kernel} ({release}), cgroup {cgroup}: {} in {:.1} s",
            if failed == 0 {
                "PASS".to_string()
            } else {
                format!("FAIL ({failed})")
            },
            took.as_secs_f64()
        );
        for v in &verdicts {
            let mark = match (v.ok, v.not_applicable) {
                (_, true) => "n/a ",
                (true, _) => "ok  ",
                (false, _) => "FAIL",
            };
            println!("  {mark} {:<18} {}", v.scenario, v.detail);
        }
        table.push((kernel.clone(), release, cgroup.clone(), verdicts, took));
    }

    println!("\n| kernel | cgroup | scenarios passed | time |\n|---|---|---|---|");
    for (kernel, release, cgroup, verdicts, took) in &table {
        let ok = verdicts
            .iter()
            .filter(|v| v.ok && !v.not_applicable)
            .count();
        let na = verdicts.iter().filter(|v| v.not_applicable).count();
        println!(
            "| {kernel} ({release}) | {cgroup} | {ok}/{}{} | {:.1} s |",
            verdicts.len() - na,
            if na > 0 {
                format!(" (+{na} n/a)")
            } else {
                String::new()
            },
            took.as_secs_f64()
        );
    }
    Ok(all_ok)
}

fn main() {
    match run() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("oomprof-vm: {e}");
            std::process::exit(2);
        }
    }
}
