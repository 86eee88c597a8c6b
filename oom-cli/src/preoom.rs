//! Pre-OOM profiles in the daemon (`oomprof run --pre-oom-*`): the flags mapped to
//! `oom_loader::pressure`, the files' names (`{who}-{pid}-{time}.preoom.pb.gz`), and
//! the link from an OOM event back to the pre-OOM profile of the same process or
//! cgroup, with how long before the kill it was taken.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use oom_loader::pressure::{PressureConfig, PsiTrigger};
use oom_loader::profile::{Profile, Reason};
use serde_json::{json, Value};

/// What the name of a pre-OOM profile carries before `.pb.gz`.
pub const SUFFIX: &str = ".preoom";

/// Pre-OOM profiles remembered for linking, and for how long.
const MAX_REMEMBERED: usize = 1024;
const REMEMBER_FOR: Duration = Duration::from_secs(3600);

/// The `--pre-oom-*` flags as given.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flags<'a> {
    /// `--pre-oom-usage PCT`.
    pub usage: Option<u8>,
    /// `--pre-oom-psi SPEC`.
    pub psi: Option<&'a str>,
    /// `--pre-oom-system-psi SPEC`.
    pub system_psi: Option<&'a str>,
    /// `--pre-oom-high`.
    pub high: bool,
    /// `--pre-oom-debounce DURATION`.
    pub debounce: Option<&'a str>,
}

/// Validates the flags into the triggers' configuration (all off without flags).
///
/// Returns a usage error naming the flag if a percentage, PSI specification or
/// duration is malformed, or `--pre-oom-debounce` is given without a trigger.
pub fn config(f: Flags<'_>) -> anyhow::Result<PressureConfig> {
    let mut c = PressureConfig::default();
    if let Some(p) = f.usage {
        if !(1..=99).contains(&p) {
            return crate::cmd::usage(format!(
                "--pre-oom-usage {p}: want a percentage of the limit from 1 to 99, e.g. 90"
            ));
        }
        c.usage_percent = Some(p);
    }
    let psi = |flag: &str, spec: Option<&str>| -> anyhow::Result<Option<PsiTrigger>> {
        match spec {
            None => Ok(None),
            Some(s) => match s.parse::<PsiTrigger>() {
                Ok(t) => Ok(Some(t)),
                Err(e) => crate::cmd::usage(format!("{flag} {s}: {e}")),
            },
        }
    };
    c.psi = psi("--pre-oom-psi", f.psi)?;
    c.system_psi = psi("--pre-oom-system-psi", f.system_psi)?;
    c.memory_high = f.high;
    if let Some(d) = f.debounce {
        if !c.is_enabled() {
            return crate::cmd::usage(format!(
                "--pre-oom-debounce {d}: no pre-OOM trigger is on (--pre-oom-usage, --pre-oom-psi, --pre-oom-system-psi, --pre-oom-high)"
            ));
        }
        c.debounce = match crate::cmd::run::parse_duration(d) {
            Some(w) if !w.is_zero() => w,
            _ => {
                return crate::cmd::usage(format!(
                    "--pre-oom-debounce {d}: want a duration, e.g. 5m or 30s"
                ))
            }
        };
    }
    Ok(c)
}

/// True for a profile taken under pressure.
pub fn is_preoom(p: &Profile) -> bool {
    p.meta.reason == Reason::Pressure
}

/// [`SUFFIX`] for a pre-OOM profile, else "".
pub fn suffix(p: &Profile) -> &'static str {
    if is_preoom(p) {
        SUFFIX
    } else {
        ""
    }
}

/// ` trigger=usage cgroup=/a usage=… limit=…` for the daemon's log line, or "".
pub fn log_fields(p: &Profile) -> String {
    match &p.meta.pressure {
        Some(n) => format!(
            " trigger={} cgroup={} {}",
            n.trigger.as_str(),
            n.cgroup.as_deref().unwrap_or("-"),
            n.figures
        ),
        None => String::new(),
    }
}

/// A pre-OOM profile the daemon wrote, for the event of a later kill.
#[derive(Clone, Debug)]
pub struct Taken {
    /// The process.
    pub pid: i32,
    /// Its own cgroup's path (as the kernel's report writes `task_memcg`).
    pub cgroup: Option<String>,
    /// The cgroup the trigger fired for (the limit that neared, `oom_memcg`).
    pub scope: Option<String>,
    /// The trigger's name.
    pub trigger: &'static str,
    /// The file's name in the directory.
    pub file: String,
    /// When it was taken.
    pub at: Instant,
}

impl Taken {
    /// The link data of a pre-OOM profile (None for other profiles), once written as
    /// `file`; `now` is when the daemon got it, the time it was taken is in its meta.
    pub fn of(p: &Profile, file: &str, now: Instant) -> Option<Taken> {
        let n = p.meta.pressure.as_ref()?;
        let ago = std::time::SystemTime::now()
            .duration_since(p.meta.time)
            .unwrap_or_default();
        let at = now.checked_sub(ago).unwrap_or(now);
        Some(Taken {
            pid: p.meta.pid,
            // `ID:memory:/path` or `0::/path`: the path.
            cgroup: p
                .meta
                .cgroup
                .as_deref()
                .and_then(|l| l.splitn(3, ':').nth(2))
                .map(str::to_string),
            scope: n.cgroup.clone(),
            trigger: n.trigger.as_str(),
            file: file.to_string(),
            at,
        })
    }
}

/// The recent pre-OOM profiles, bounded.
#[derive(Debug, Default)]
pub struct Links {
    recent: VecDeque<Taken>,
}

impl Links {
    /// Remembers `t` (forgetting the oldest beyond [`MAX_REMEMBERED`]).
    pub fn add(&mut self, t: Taken) {
        if self.recent.len() >= MAX_REMEMBERED {
            self.recent.pop_front();
        }
        self.recent.push_back(t);
    }

    /// The `preoom` object of the event of kill `r` seen at `kill_at`: the newest
    /// pre-OOM profile of the same pid, else of the same cgroup (the victim's own, or
    /// the one whose limit was hit); `null` when there is none.
    pub fn for_kill(
        &mut self,
        pid: i32,
        oom_memcg: Option<&str>,
        task_memcg: Option<&str>,
        kill_at: Instant,
    ) -> Value {
        self.recent
            .retain(|t| kill_at.saturating_duration_since(t.at) < REMEMBER_FOR);
        let before = |t: &&Taken| t.at <= kill_at;
        let same_cg = |t: &&Taken| {
            (t.scope.is_some() && t.scope.as_deref() == oom_memcg)
                || (t.cgroup.is_some() && t.cgroup.as_deref() == task_memcg)
        };
        let (t, by) = match self
            .recent
            .iter()
            .rev()
            .filter(before)
            .find(|t| t.pid == pid)
        {
            Some(t) => (t, "pid"),
            None => match self.recent.iter().rev().filter(before).find(same_cg) {
                Some(t) => (t, "cgroup"),
                None => return Value::Null,
            },
        };
        let secs = kill_at.duration_since(t.at).as_secs_f64();
        json!({
            "profile": t.file,
            "pid": t.pid,
            "trigger": t.trigger,
            "linked_by": by,
            "seconds_before_kill": (secs * 10.0).round() / 10.0,
        })
    }
}

/// ` preoom=FILE (4.2s before)` for an event's `preoom` object, or "".
pub fn describe(preoom: &Value) -> String {
    match (
        preoom["profile"].as_str(),
        preoom["seconds_before_kill"].as_f64(),
    ) {
        (Some(f), Some(s)) => format!(" preoom={f} ({s:.1}s before)"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage_of(f: Flags<'_>) -> String {
        let e = config(f).unwrap_err();
        assert!(
            e.downcast_ref::<crate::cmd::UsageError>().is_some(),
            "{e:#}"
        );
        e.to_string()
    }

    #[test]
    fn flags_map_to_the_triggers() {
        let c = config(Flags::default()).unwrap();
        assert!(!c.is_enabled(), "off by default");
        let c = config(Flags {
            usage: Some(90),
            psi: Some("some:150ms/2s"),
            system_psi: Some("full:1s/10s"),
            high: true,
            debounce: Some("30s"),
        })
        .unwrap();
        assert_eq!(c.usage_percent, Some(90));
        assert_eq!(c.psi.unwrap().to_string(), "some:150ms/2s");
        assert_eq!(c.system_psi.unwrap().to_string(), "full:1000ms/10s");
        assert!(c.memory_high);
        assert_eq!(c.debounce, Duration::from_secs(30));
        let c = config(Flags {
            high: true,
            ..Flags::default()
        })
        .unwrap();
        assert_eq!(c.debounce, oom_loader::pressure::DEFAULT_DEBOUNCE);
    }

    #[test]
    fn bad_flags_are_usage_errors_naming_the_flag() {
        for p in [0, 100, 255] {
            let e = usage_of(Flags {
                usage: Some(p),
                ..Flags::default()
            });
            assert!(e.starts_with(&format!("--pre-oom-usage {p}:")), "{e}");
        }
        let e = usage_of(Flags {
            psi: Some("some:150ms/1s"),
            ..Flags::default()
        });
        assert!(
            e.starts_with("--pre-oom-psi some:150ms/1s: the window must be 2s"),
            "{e}"
        );
        assert!(e.contains("CAP_SYS_RESOURCE"), "{e}");
        let e = usage_of(Flags {
            system_psi: Some("lots"),
            ..Flags::default()
        });
        assert!(
            e.starts_with("--pre-oom-system-psi lots: want KIND:STALL/WINDOW"),
            "{e}"
        );
        let e = usage_of(Flags {
            debounce: Some("5m"),
            ..Flags::default()
        });
        assert!(e.contains("no pre-OOM trigger is on"), "{e}");
        for bad in ["0", "soon", "5 m"] {
            let e = usage_of(Flags {
                high: true,
                debounce: Some(bad),
                ..Flags::default()
            });
            assert!(e.starts_with(&format!("--pre-oom-debounce {bad}:")), "{e}");
        }
    }

    fn taken(pid: i32, cgroup: &str, scope: &str, file: &str, at: Instant) -> Taken {
        Taken {
            pid,
            cgroup: Some(cgroup.into()),
            scope: Some(scope.into()),
            trigger: "usage",
            file: file.into(),
            at,
        }
    }

    #[test]
    fn a_kill_links_the_newest_preoom_profile_of_its_pid_else_its_cgroup() {
        let t0 = Instant::now();
        let mut l = Links::default();
        l.add(taken(7, "/pod/a", "/pod", "a-7-1.preoom.pb.gz", t0));
        l.add(taken(
            7,
            "/pod/a",
            "/pod",
            "a-7-2.preoom.pb.gz",
            t0 + Duration::from_secs(2),
        ));
        l.add(taken(
            8,
            "/pod/b",
            "/pod",
            "b-8-1.preoom.pb.gz",
            t0 + Duration::from_secs(3),
        ));
        let kill = t0 + Duration::from_millis(6500);
        let v = l.for_kill(7, Some("/pod"), Some("/pod/a"), kill);
        assert_eq!(v["profile"], "a-7-2.preoom.pb.gz", "{v}");
        assert_eq!(v["linked_by"], "pid");
        assert_eq!(v["seconds_before_kill"], 4.5);
        // Another victim of the same limit: the newest profile under it.
        let v = l.for_kill(9, Some("/pod"), Some("/pod/c"), kill);
        assert_eq!(
            (v["profile"].as_str(), v["linked_by"].as_str()),
            (Some("b-8-1.preoom.pb.gz"), Some("cgroup"))
        );
        // Elsewhere: nothing.
        assert!(l
            .for_kill(10, Some("/other"), Some("/other"), kill)
            .is_null());
        // A profile after the kill is not "before" it.
        assert!(l
            .for_kill(8, Some("/x"), Some("/x"), t0 + Duration::from_secs(1))
            .is_null());
        // Forgotten after an hour.
        assert!(l
            .for_kill(7, Some("/pod"), Some("/pod/a"), t0 + REMEMBER_FOR * 2)
            .is_null());
    }

    #[test]
    fn links_are_bounded() {
        let t0 = Instant::now();
        let mut l = Links::default();
        for i in 0..MAX_REMEMBERED + 10 {
            l.add(taken(i as i32, "/a", "/a", "f", t0));
        }
        assert_eq!(l.recent.len(), MAX_REMEMBERED);
        assert_eq!(l.recent.front().map(|t| t.pid), Some(10));
    }
}
