//! `oomprof run --metrics-addr`: what it serves passes `promtool check metrics`, and a
//! real Prometheus (Debian's, started here on 127.0.0.1) scraping the daemon sees
//! `oomprof_oom_kills_total` go from 0 to 1 across a real OOM kill.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix;
use oom_tests::privileged;
use oom_tests::process::Running;

mod common;

use common::deploy::judge_oom_file;
use common::*;

/// A plain HTTP/1.1 GET: the body of a 200, else what went wrong.
fn try_get(addr: &str, path: &str) -> Result<String, String> {
    let mut c = TcpStream::connect(addr).map_err(|e| format!("connecting {addr}: {e}"))?;
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut resp = String::new();
    c.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("GET {path}: {head}"));
    }
    Ok(body.to_string())
}

fn get(addr: &str, path: &str) -> String {
    try_get(addr, path).unwrap_or_else(|e| panic!("{e}"))
}

/// The value of a Prometheus instant query that returns one sample, or None.
fn query(prom: &str, q: &str) -> Option<f64> {
    let enc: String = q
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    // Err while Prometheus is still starting.
    let body = try_get(prom, &format!("/api/v1/query?query={enc}")).ok()?;
    // {"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[t,"1"]}]}}
    let v = body.split("\"value\":[").nth(1)?;
    let s = v.split(',').nth(1)?.trim_start_matches('"');
    s.split('"').next()?.parse().ok()
}

/// The value of the exposition line for `series` (name with its labels, exactly).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A free 127.0.0.1 port (the kernel picks; closed again at once).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn promtool_check(text: &str) {
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian prometheus): run tests/run --install-only");
    p.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- served:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start_prometheus(dir: &Path, target: &str) -> (Running, String) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: oomprof\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .expect("prometheus (Debian): run tests/run --install-only");
    (Running::adopt(child), addr)
}

/// Removes the test's directory however the test ends.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
#[ignore = "needs root, the Go matrix and prometheus: run tests/run"]
fn prometheus_scrapes_the_oom_kill_counter() {
    let test = "prometheus_scrapes_the_oom_kill_counter";
    if !privileged::root(test)
        || privileged::tool(test, "prometheus").is_none()
        || privileged::tool(test, "promtool").is_none()
    {
        return;
    }
    let Some(tc) = gomatrix::newest(test) else {
        return;
    };
    let _g = serial();
    let dir = tmpdir("metrics");
    let _cleanup = RemoveOnDrop(dir.clone());
    let bin = fixtures::build("oomer", &tc, Variant::Default).unwrap();
    let mut d = daemon(&dir, &["--metrics-addr", "127.0.0.1:0"]);
    let line = d
        .log
        .iter()
        .find(|l| l.contains("metrics at http://"))
        .cloned()
        .unwrap_or_else(|| panic!("no metrics address in the log: {:#?}", d.log));
    let target = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap()
        .to_string();

    // The host may run other OOM kills meanwhile (every Go process is watched): the
    // checks are on increases and on this kill's own log line, not on exact totals.
    let before = get(&target, "/metrics");
    promtool_check(&before);
    let node_before = value(&before, "oomprof_oom_kills_node_total").unwrap();

    let (prom, prom_addr) = start_prometheus(&dir, &target);
    wait_for(
        "Prometheus to scrape the daemon",
        Duration::from_secs(30),
        || query(&prom_addr, "up{job=\"oomprof\"}") == Some(1.0),
    );
    let scraped_before = query(&prom_addr, "oomprof_oom_kills_node_total").unwrap();

    let kill = oom_exact(&mut Command::new(&bin));
    let pid = kill.pid;
    let file = profile_of(&dir, pid, Duration::from_secs(10)).expect("no profile");
    judge_oom_file(
        &tc,
        &bin,
        &file,
        (kill.pid, &kill.cgroup),
        OOM_LIMIT,
        true,
        "main.allocChunk",
    );
    d.wait_log(&format!("pid={pid} "), Duration::from_secs(5));

    let after = get(&target, "/metrics");
    promtool_check(&after);
    assert!(
        value(&after, "oomprof_oom_kills_node_total").unwrap() > node_before,
        "{after}"
    );
    let oomer = "oomprof_oom_kills_total{namespace=\"\",pod=\"\",container=\"\",comm=\"oomer\"}";
    assert!(value(&after, oomer).is_some_and(|v| v >= 1.0), "{after}");
    let ok = "oomprof_profiles_written_total{sink=\"dir\",result=\"ok\"}";
    assert!(value(&after, ok).is_some_and(|v| v >= 1.0), "{after}");
    assert!(value(&after, "oomprof_walk_seconds_count").is_some_and(|v| v >= 1.0));
    wait_for(
        "Prometheus to see the kill",
        Duration::from_secs(30),
        || query(&prom_addr, "oomprof_oom_kills_node_total").is_some_and(|v| v > scraped_before),
    );
    // A node's first kill, as an alert on increase() sees it.
    let inc = query(&prom_addr, "increase(oomprof_oom_kills_node_total[5m])");
    assert!(inc.is_some_and(|v| v > 0.0), "increase() = {inc:?}");

    drop(prom);
    d.sigterm();
}
