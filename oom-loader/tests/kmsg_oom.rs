//! The kernel's OOM report read back for a real OOM kill, from `/dev/kmsg` and through
//! `syslog(2)` (the containers' way): the right victim, the memory cgroup whose limit
//! was hit, the memcg constraint, and RSS figures the victim could have held.

use std::process::Command;
use std::time::{Duration, Instant};

use oom_loader::kmsg::{Assembler, KernelLog, OomReport, Reader, SyslogReader};
use oom_tests::cgroup::MemCgroup;
use oom_tests::fixtures::{self, Variant};
use oom_tests::process::Running;
use oom_tests::{gomatrix, privileged};

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn a_real_memcg_oom_kill_is_reported_with_its_cgroup_and_rss() {
    report_of_a_real_kill(
        "a_real_memcg_oom_kill_is_reported_with_its_cgroup_and_rss",
        || KernelLog::Dev(Reader::open().unwrap()),
    );
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn a_real_memcg_oom_kill_read_through_syslog_is_reported_the_same() {
    report_of_a_real_kill(
        "a_real_memcg_oom_kill_read_through_syslog_is_reported_the_same",
        || KernelLog::Syslog(SyslogReader::open().unwrap()),
    );
}

fn report_of_a_real_kill(test: &str, open: impl FnOnce() -> KernelLog) {
    if !privileged::root(test) {
        return;
    }
    let Some(tc) = gomatrix::newest(test) else {
        return;
    };
    let bin = fixtures::build("oomer", &tc, Variant::Default).unwrap();
    let mut reader = open();
    let limit = 64u64 << 20;
    let cg = MemCgroup::create(limit).unwrap();
    let mut p = Running::adopt(cg.spawn(&mut Command::new(&bin)).unwrap());
    p.wait_exit(Duration::from_secs(60)).unwrap();
    let pid = p.pid();

    // The hierarchy's own name for the cgroup: its path below the mount.
    let name = cg
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut asm = Assembler::new();
    let mut ours: Option<OomReport> = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while ours.is_none() && Instant::now() < deadline {
        reader
            .drain(|r| {
                if let Some(rep) = asm.push(r) {
                    if rep.pid == pid {
                        ours = Some(rep);
                    }
                }
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let rep = ours.unwrap_or_else(|| panic!("no OOM report for pid {pid} from {}", reader.kind()));
    assert_eq!(rep.comm, "oomer");
    assert_eq!(rep.constraint.as_deref(), Some("CONSTRAINT_MEMCG"));
    assert!(
        rep.oom_memcg
            .as_deref()
            .is_some_and(|m| m.ends_with(&format!("/{name}"))),
        "{rep:?}"
    );
    assert!(
        rep.task_memcg
            .as_deref()
            .is_some_and(|m| m.ends_with(&format!("/{name}"))),
        "{rep:?}"
    );
    assert_eq!(rep.memcg_limit_kb, Some(limit >> 10), "{rep:?}");
    // What the cgroup was charged for is within its limit (file-backed RSS may not
    // be: the binary's page cache was charged to whoever read it first), and most of
    // it is anonymous (the Go heap).
    let charged = rep.anon_rss_kb.unwrap() + rep.shmem_rss_kb.unwrap();
    assert!(charged <= limit >> 10, "{rep:?}");
    assert!(rep.anon_rss_kb.unwrap() > (limit >> 10) / 2, "{rep:?}");
    assert!(
        rep.trigger_comm.is_some() && rep.trigger_tid.is_some(),
        "{rep:?}"
    );
    // The memcg's own figures at the OOM: anonymous memory filled it.
    let b = rep
        .breakdown()
        .unwrap_or_else(|| panic!("no memory.stat in {rep:?}"));
    assert_eq!(b.dominant().0, "anon", "{b:?}");
    assert!(b.anon > limit * 9 / 10 && b.anon <= limit, "{b:?}");
    assert!(
        rep.tasks.iter().any(|t| t.pid == pid && t.name == "oomer"),
        "{:?}",
        rep.tasks
    );
    assert_eq!(reader.lost(), 0);
}
