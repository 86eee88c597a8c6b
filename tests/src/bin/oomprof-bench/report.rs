//! Figures, their statistics, the printed table and the JSON file.

use std::fmt::Write as _;

/// Median and range of a set of samples.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    /// The median (mean of the middle two for an even count).
    pub median: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Number of samples.
    pub runs: usize,
}

impl Stats {
    /// Statistics of `xs`; `None` when empty.
    pub fn of(xs: &[f64]) -> Option<Stats> {
        let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Stats {
            median,
            min: v[0],
            max: v[n - 1],
            runs: n,
        })
    }

    /// Like [`Stats::of`] but the central figure is the nearest-rank percentile `p`
    /// (0 < p ≤ 100); the range is still the samples' min–max.
    pub fn percentile(xs: &[f64], p: f64) -> Option<Stats> {
        let mut s = Stats::of(xs)?;
        let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
        s.median = v[rank.min(v.len()) - 1];
        Some(s)
    }
}

/// A bar from issue 7: the figure's median must be at most `limit`.
#[derive(Clone, Debug)]
pub struct Bar {
    /// Upper bound, in the row's unit.
    pub limit: f64,
    /// How the bar is written, e.g. "≤ 100 ms".
    pub text: &'static str,
    /// The Go original's figure on this machine, as issue 7 gives it.
    pub go_original: Option<&'static str>,
}

/// One line of the table.
#[derive(Clone, Debug)]
pub struct Row {
    /// Issue 7's figure number (1–10).
    pub figure: u32,
    /// What was measured.
    pub name: String,
    /// Unit of median/min/max.
    pub unit: &'static str,
    /// The measurement, or why there is none.
    pub value: Result<Stats, String>,
    /// The bar, if issue 7 sets one.
    pub bar: Option<Bar>,
    /// How it was measured, anything unusual.
    pub note: String,
}

impl Row {
    /// A row from samples (median and range); an error when there are none.
    pub fn samples(figure: u32, name: impl Into<String>, unit: &'static str, xs: &[f64]) -> Row {
        let name = name.into();
        Row {
            figure,
            value: Stats::of(xs).ok_or_else(|| "no samples".to_string()),
            name,
            unit,
            bar: None,
            note: String::new(),
        }
    }

    /// A row that could not be measured, and why.
    pub fn missing(figure: u32, name: impl Into<String>, unit: &'static str, why: String) -> Row {
        Row {
            figure,
            name: name.into(),
            unit,
            value: Err(why),
            bar: None,
            note: String::new(),
        }
    }

    /// Sets the bar.
    pub fn bar(mut self, limit: f64, text: &'static str, go: Option<&'static str>) -> Row {
        self.bar = Some(Bar {
            limit,
            text,
            go_original: go,
        });
        self
    }

    /// Sets the note.
    pub fn note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }

    /// "met", "MISSED", "not measured", "-" (no bar, or smoke mode), or for ratios
    /// whose pairs spread by more than 0.1, "inconclusive": the noise is larger than
    /// what the bar asks to see.
    pub fn verdict(&self, smoke: bool) -> &'static str {
        match (&self.value, &self.bar) {
            (Err(_), _) => "not measured",
            (Ok(_), None) => "-",
            (Ok(_), Some(_)) if smoke => "(smoke)",
            (Ok(s), Some(_)) if self.unit == "ratio" && s.max - s.min > 0.1 => "inconclusive",
            (Ok(s), Some(b)) if s.median <= b.limit => "met",
            (Ok(_), Some(_)) => "MISSED",
        }
    }
}

/// A number with about three significant digits.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a >= 0.01 {
        format!("{v:.3}")
    } else {
        format!("{v:.2e}")
    }
}

/// The machine the figures were taken on.
#[derive(Clone, Debug, Default)]
pub struct Machine {
    /// `uname -r`.
    pub kernel: String,
    /// CPU model name.
    pub cpu: String,
    /// Online CPUs.
    pub cores: usize,
    /// MemTotal in MiB.
    pub memory_mib: u64,
    /// Go toolchain the fixtures were built with.
    pub go: String,
    /// The oomprof binary measured.
    pub oomprof: String,
    /// The commit measured, if known.
    pub commit: String,
    /// UTC date and time of the run.
    pub date: String,
}

impl Machine {
    /// Reads the machine's description from /proc.
    pub fn detect() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let memory_mib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024);
        Machine {
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_mib,
            ..Machine::default()
        }
    }
}

/// The table as text: machine, one line per row, then the notes.
pub fn table(machine: &Machine, rows: &[Row], smoke: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "machine: {} · {} cores · {} MiB · kernel {} · {}\noomprof: {} (commit {}) · fixtures built with {}{}",
        machine.cpu,
        machine.cores,
        machine.memory_mib,
        machine.kernel,
        machine.date,
        machine.oomprof,
        machine.commit,
        machine.go,
        if smoke { " · SMOKE MODE: few iterations, no thresholds" } else { "" }
    );
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            let (median, range, runs) = match &r.value {
                Ok(st) => (
                    format!("{} {}", num(st.median), r.unit),
                    format!("{}–{}", num(st.min), num(st.max)),
                    st.runs.to_string(),
                ),
                Err(_) => ("n/a".into(), "".into(), "0".into()),
            };
            let bar = r
                .bar
                .as_ref()
                .map_or(String::new(), |b| match b.go_original {
                    Some(g) => format!("{} [{g}]", b.text),
                    None => b.text.to_string(),
                });
            [
                r.figure.to_string(),
                r.name.clone(),
                median,
                range,
                runs,
                bar,
                r.verdict(smoke).to_string(),
            ]
        })
        .collect();
    let head = [
        "#",
        "figure",
        "median",
        "min–max",
        "runs",
        "bar [Go]",
        "verdict",
    ];
    let mut w = head.map(|h| h.chars().count());
    for c in &cells {
        for (i, x) in c.iter().enumerate() {
            w[i] = w[i].max(x.chars().count());
        }
    }
    let line = |c: &[String]| {
        let mut l = String::new();
        for (i, x) in c.iter().enumerate() {
            let pad = w[i] - x.chars().count();
            if i == 2 || i == 3 || i == 4 {
                l.push_str(&" ".repeat(pad));
                l.push_str(x);
            } else {
                l.push_str(x);
                l.push_str(&" ".repeat(pad));
            }
            l.push_str("  ");
        }
        l.trim_end().to_string()
    };
    let _ = writeln!(s, "{}", line(&head.map(String::from)));
    for c in &cells {
        let _ = writeln!(s, "{}", line(c));
    }
    let _ = writeln!(s, "\nnotes:");
    for r in rows {
        match &r.value {
            Err(why) => {
                let _ = writeln!(s, "  [{}] {}: NOT MEASURED: {why}", r.figure, r.name);
            }
            Ok(_) if !r.note.is_empty() => {
                let _ = writeln!(s, "  [{}] {}: {}", r.figure, r.name, r.note);
            }
            Ok(_) => {}
        }
    }
    s
}

/// The table as Markdown (for docs/benchmarks.md).
pub fn markdown(rows: &[Row], smoke: bool) -> String {
    let mut s = String::from(
        "| # | figure | median | min–max | runs | bar [Go original] | verdict |\n|---|---|---:|---:|---:|---|---|\n",
    );
    for r in rows {
        let (median, range, runs) = match &r.value {
            Ok(st) => (
                format!("{} {}", num(st.median), r.unit),
                format!("{}–{}", num(st.min), num(st.max)),
                st.runs.to_string(),
            ),
            Err(_) => ("n/a".into(), String::new(), "0".into()),
        };
        let bar = r
            .bar
            .as_ref()
            .map_or(String::new(), |b| match b.go_original {
                Some(g) => format!("{} [{g}]", b.text),
                None => b.text.to_string(),
            });
        let _ = writeln!(
            s,
            "| {} | {} | {median} | {range} | {runs} | {bar} | {} |",
            r.figure,
            r.name,
            r.verdict(smoke)
        );
    }
    s
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

/// The run as JSON: `{"machine": {...}, "smoke": bool, "figures": [...]}`.
pub fn json(machine: &Machine, rows: &[Row], smoke: bool) -> String {
    let mut s = String::from("{\n  \"machine\": {");
    let _ = write!(
        s,
        "\"kernel\": {}, \"cpu\": {}, \"cores\": {}, \"memory_mib\": {}, \"go\": {}, \"oomprof\": {}, \"commit\": {}, \"date\": {}",
        json_str(&machine.kernel),
        json_str(&machine.cpu),
        machine.cores,
        machine.memory_mib,
        json_str(&machine.go),
        json_str(&machine.oomprof),
        json_str(&machine.commit),
        json_str(&machine.date)
    );
    let _ = write!(s, "}},\n  \"smoke\": {smoke},\n  \"figures\": [");
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "\n    {{\"figure\": {}, \"name\": {}, \"unit\": {}, ",
            r.figure,
            json_str(&r.name),
            json_str(r.unit)
        );
        match &r.value {
            Ok(st) => {
                let _ = write!(
                    s,
                    "\"median\": {}, \"min\": {}, \"max\": {}, \"runs\": {}, \"error\": null, ",
                    json_num(st.median),
                    json_num(st.min),
                    json_num(st.max),
                    st.runs
                );
            }
            Err(e) => {
                let _ = write!(
                    s,
                    "\"median\": null, \"min\": null, \"max\": null, \"runs\": 0, \"error\": {}, ",
                    json_str(e)
                );
            }
        }
        match &r.bar {
            Some(b) => {
                let _ = write!(
                    s,
                    "\"bar\": {{\"max\": {}, \"text\": {}, \"go_original\": {}}}, ",
                    json_num(b.limit),
                    json_str(b.text),
                    b.go_original.map_or("null".into(), json_str)
                );
            }
            None => s.push_str("\"bar\": null, "),
        }
        let _ = write!(
            s,
            "\"verdict\": {}, \"note\": {}}}",
            json_str(r.verdict(smoke)),
            json_str(&r.note)
        );
    }
    s.push_str("\n  ]\n}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_range() {
        let s = Stats::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.runs), (2.0, 1.0, 3.0, 3));
        assert_eq!(Stats::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert!(Stats::of(&[]).is_none());
    }

    #[test]
    fn nearest_rank_percentiles() {
        let xs: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(Stats::percentile(&xs, 50.0).unwrap().median, 10.0);
        assert_eq!(Stats::percentile(&xs, 99.0).unwrap().median, 20.0);
        assert_eq!(Stats::percentile(&[5.0], 99.0).unwrap().median, 5.0);
    }

    #[test]
    fn verdicts() {
        let r = Row::samples(1, "x", "ms", &[50.0]).bar(100.0, "≤ 100 ms", None);
        assert_eq!(r.verdict(false), "met");
        assert_eq!(r.verdict(true), "(smoke)");
        let r = Row::samples(1, "x", "ms", &[150.0]).bar(100.0, "≤ 100 ms", None);
        assert_eq!(r.verdict(false), "MISSED");
        assert_eq!(
            Row::missing(1, "x", "ms", "why".into()).verdict(false),
            "not measured"
        );
        let r = Row::samples(10, "x", "ratio", &[0.9, 1.0, 1.3]).bar(1.02, "≤ 1.02", None);
        assert_eq!(r.verdict(false), "inconclusive");
        let r = Row::samples(10, "x", "ratio", &[0.99, 1.0, 1.01]).bar(1.02, "≤ 1.02", None);
        assert_eq!(r.verdict(false), "met");
    }

    #[test]
    fn json_escapes() {
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(json_num(f64::NAN), "null");
    }
}
