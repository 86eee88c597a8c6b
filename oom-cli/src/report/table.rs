//! The `-top` report: profile → [`Frames`] → [`Graph`] → pprof's trimming (nodes
//! under 0.5% of the total cum are dropped, `-n` keeps the first N) → pprof's
//! ordering and unit choice → header labels and rows → the same text `go tool pprof
//! -top -sample_index=X` prints. The rules are pprof's (internal/report, graph and
//! measurement at the Go 1.27 toolchain's vendored copy); the code is ours.

use std::fmt::Write as _;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use oom_cli::pprof_read::Profile;

use super::frames::Frames;
use super::graph::{inline_label, Graph};
use super::units::{percentage, scale, scaled_label};

/// pprof's `-nodefraction` and `-edgefraction` defaults for text reports.
const NODE_FRACTION: f64 = 0.005;
const EDGE_FRACTION: f64 = 0.001;

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Function name, with ` (inline)`/` (partial-inline)` as pprof marks it.
    pub name: String,
    /// Flat value.
    pub flat: i64,
    /// Cum value.
    pub cum: i64,
}

/// The report: header lines, rows, and how to format values.
#[derive(Debug)]
pub struct Report {
    /// Lines above the table (file, comments, type, time, totals, dropped nodes).
    pub labels: Vec<String>,
    /// Rows in pprof's order.
    pub rows: Vec<Row>,
    /// Sum of |value| over all samples: the percentages' base.
    pub total: i64,
    sample_unit: String,
    output_unit: String,
}

impl Report {
    /// A value in the report's unit.
    pub fn format(&self, v: i64) -> String {
        scaled_label(v, &self.sample_unit, &self.output_unit)
    }

    /// The whole text: labels, column header, rows.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for l in &self.labels {
            out.push_str(l);
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "{:>10} {:>5}% {:>5}% {:>10} {:>5}%",
            "flat", "flat", "sum", "cum", "cum"
        );
        let mut sum = 0i64;
        for r in &self.rows {
            sum = sum.wrapping_add(r.flat);
            let _ = writeln!(
                out,
                "{:>10} {} {} {:>10} {}  {}",
                self.format(r.flat),
                percentage(r.flat, self.total),
                percentage(sum, self.total),
                self.format(r.cum),
                percentage(r.cum, self.total),
                r.name
            );
        }
        out
    }
}

/// Formats a Unix time in nanoseconds like pprof's `Time:` line: Go's layout
/// `2006-01-02 15:04:05 MST` in `tz` (pprof's since Go 1.25; before, `Jan 2, 2006 at
/// 3:04pm (MST)`), the zone's abbreviation from its TZif data as Go prints it.
fn time_label(nanos: i64, tz: &TimeZone) -> String {
    // Every i64 of nanoseconds (years 1677 to 2262) is a valid jiff Timestamp.
    let Ok(t) = Timestamp::from_nanosecond(i128::from(nanos)) else {
        return nanos.to_string();
    };
    let d = tz.to_datetime(t);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {}",
        d.year(),
        d.month(),
        d.day(),
        d.hour(),
        d.minute(),
        d.second(),
        tz.to_offset_info(t).abbreviation()
    )
}

/// The zone pprof prints times in: Go's `time.Local`, which is `TZ` (a zone name or a
/// TZif path; empty means UTC), else `/etc/localtime`, else UTC.
///
/// jiff finds it the same way; where it finds none (no `/etc/localtime`, or `TZ`
/// names a zone the system's zoneinfo lacks) this is UTC, as it is for Go. One
/// difference: a POSIX rule such as `TZ=IST-5:30` is honoured here, as libc does,
/// where Go falls back to UTC.
pub fn local_zone() -> TimeZone {
    TimeZone::try_system().unwrap_or(TimeZone::UTC)
}

/// Builds the `-top` report of sample type `index`, keeping at most `nodecount`
/// functions (0: all above the node fraction), with the profile's time in `tz`.
pub fn report(p: &Profile, index: usize, nodecount: usize, tz: &TimeZone) -> Report {
    let frames = Frames::new(p);
    let n = frames.count();
    // Sums wrap like Go's int64 arithmetic: hostile values must not panic.
    let total: i64 = p
        .samples
        .iter()
        .map(|s| s.values.get(index).copied().unwrap_or(0).wrapping_abs())
        .fold(0, i64::wrapping_add);

    let mut g = Graph::build(p, &frames, index, None);
    let flat_total: i64 = g
        .nodes
        .iter()
        .map(|&i| g.flat[i])
        .fold(0, i64::wrapping_add);
    let node_cutoff = ((flat_total as f64 * NODE_FRACTION) as i64).wrapping_abs();
    let edge_cutoff = ((flat_total as f64 * EDGE_FRACTION) as i64).wrapping_abs();
    let mut dropped = 0;
    if node_cutoff > 0 {
        let kept: Vec<usize> = g
            .nodes
            .iter()
            .copied()
            .filter(|&i| g.cum[i].wrapping_abs() >= node_cutoff)
            .collect();
        if kept.len() != g.nodes.len() {
            dropped = g.nodes.len() - kept.len();
            let mask = g.kept_mask(&kept, n);
            g = Graph::build(p, &frames, index, Some(&mask));
        }
    }
    let orig_count = g.nodes.len();
    g.sort(&frames);
    if nodecount > 0 && nodecount < g.nodes.len() {
        let mask = g.kept_mask(&g.nodes[..nodecount], n);
        g = Graph::build(p, &frames, index, Some(&mask));
        g.sort(&frames);
    }

    let st = &p.sample_types[index];
    let sample_unit = st.unit.to_lowercase();
    let output_unit = output_unit(&g, total, &sample_unit);
    let marks = g.inline_marks(edge_cutoff);
    let mut r = Report {
        labels: Vec::new(),
        rows: g
            .nodes
            .iter()
            .map(|&i| Row {
                name: format!("{}{}", frames.name(i), inline_label(&marks, i)),
                flat: g.flat[i],
                cum: g.cum[i],
            })
            .collect(),
        total,
        sample_unit,
        output_unit,
    };

    // Header lines, in pprof's order.
    let mut labels = Vec::new();
    if let Some(m) = p.mappings.first() {
        if let Some(f) = p.main_file() {
            labels.push(format!("File: {}", f.rsplit('/').next().unwrap_or(f)));
        }
        if !m.build_id.is_empty() {
            labels.push(format!("Build ID: {}", m.build_id));
        }
    }
    labels.extend(p.comments.iter().filter(|c| !c.starts_with('#')).cloned());
    labels.push(format!("Type: {}", st.kind));
    if !p.doc_url.is_empty() {
        labels.push(format!("Doc: {}", p.doc_url));
    }
    if p.time_nanos != 0 {
        labels.push(format!("Time: {}", time_label(p.time_nanos, tz)));
    }
    if p.duration_nanos != 0 {
        let duration = scaled_label(p.duration_nanos, "nanoseconds", "auto");
        let (nanos, unit) = scale(total, &r.sample_unit, "nanoseconds");
        let ratio = if unit == "ns" && nanos != 0.0 {
            format!("({})", percentage(nanos as i64, p.duration_nanos))
        } else {
            String::new()
        };
        labels.push(format!(
            "Duration: {duration}, Total samples = {} {ratio}",
            r.format(total)
        ));
    }
    let shown: i64 = g
        .nodes
        .iter()
        .map(|&i| g.flat[i])
        .fold(0, i64::wrapping_add);
    labels.push(format!(
        "Showing nodes accounting for {}, {} of {} total",
        r.format(shown),
        percentage(shown, total).trim(),
        r.format(total)
    ));
    if total != 0 {
        if dropped > 0 {
            labels.push(format!(
                "Dropped {dropped} node{} (cum <= {})",
                if dropped > 1 { "s" } else { "" },
                r.format(((total as f64 * NODE_FRACTION) as i64).wrapping_abs())
            ));
        }
        if !g.nodes.is_empty() && g.nodes.len() < orig_count {
            labels.push(format!(
                "Showing top {} nodes out of {orig_count}",
                g.nodes.len()
            ));
        }
    }
    r.labels = labels;
    r
}

/// pprof's unit choice: the unit of the smallest non-zero value, or one size up
/// when that is under 1% of the total and the total's unit differs.
fn output_unit(g: &Graph, total: i64, sample_unit: &str) -> String {
    if g.nodes.is_empty() {
        return "minimum".into();
    }
    let mut min = 0i64;
    for &i in &g.nodes {
        let mut v = g.flat[i].wrapping_abs();
        if v == 0 {
            v = g.cum[i].wrapping_abs();
        }
        if v > 0 && (min == 0 || v < min) {
            min = v;
        }
    }
    let max = total;
    if min == 0 {
        min = max;
    }
    let (_, min_unit) = scale(min, sample_unit, "minimum");
    let (_, max_unit) = scale(max, sample_unit, "minimum");
    let mut unit = min_unit.clone();
    if min_unit != max_unit && min.saturating_mul(100) < max {
        unit = scale(min.saturating_mul(100), sample_unit, "minimum").1;
    }
    if unit.is_empty() {
        sample_unit.to_string()
    } else {
        unit
    }
}

/// The text `oomprof top` prints.
pub fn render(p: &Profile, index: usize, nodecount: usize, tz: &TimeZone) -> String {
    report(p, index, nodecount, tz).text()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pprof_fixture::fixture;
    use oom_cli::pprof_read;

    #[test]
    fn fixture_table() {
        let p = pprof_read::parse(&fixture()).unwrap();
        // alloc_space: sample A 1024 at [leaf(inl inlined), main], sample B 6144 at [main].
        let r = report(&p, 1, 0, &TimeZone::UTC);
        let rows: Vec<(&str, i64, i64)> = r
            .rows
            .iter()
            .map(|r| (r.name.as_str(), r.flat, r.cum))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("main.main", 6144, 7168),
                ("main.inl (inline)", 1024, 1024),
                ("main.leaf", 0, 1024),
            ]
        );
        assert_eq!(r.total, 7168);
        let text = r.text();
        assert_eq!(
            text,
            "File: prog\n\
             oomprof: killed by the OOM killer\n\
             Type: alloc_space\n\
             Time: 2026-11-22 01:26:00 UTC\n\
             Showing nodes accounting for 7kB, 100% of 7kB total\n      \
             flat  flat%   sum%        cum   cum%\n       \
             6kB 85.71% 85.71%        7kB   100%  main.main\n       \
             1kB 14.29%   100%        1kB 14.29%  main.inl (inline)\n         \
             0     0%   100%        1kB 14.29%  main.leaf\n"
        );
    }

    #[test]
    fn time_is_printed_in_the_given_zone_like_pprof() {
        let t = 1_795_310_760_000_000_000;
        assert_eq!(time_label(t, &TimeZone::UTC), "2026-11-22 01:26:00 UTC");
        // POSIX rules, so that the test needs no zoneinfo: India (+05:30, no DST), and
        // New York, whose abbreviation follows DST.
        let ist = TimeZone::posix("IST-5:30").unwrap();
        assert_eq!(time_label(t, &ist), "2026-11-22 06:56:00 IST");
        let ny = TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap();
        assert_eq!(time_label(t, &ny), "2026-11-21 20:26:00 EST");
        let july = 1_783_000_000_000_000_000;
        assert_eq!(time_label(july, &ny), "2026-07-02 09:46:40 EDT");
        // Before 1970 the second is floored, as Go's time.Unix does; an i64 of
        // nanoseconds spans 1677 to 2262.
        assert_eq!(time_label(-1, &TimeZone::UTC), "1969-12-31 23:59:59 UTC");
        assert_eq!(
            time_label(i64::MIN, &TimeZone::UTC),
            "1677-09-21 00:12:43 UTC"
        );
        assert_eq!(
            time_label(i64::MAX, &TimeZone::UTC),
            "2262-04-11 23:47:16 UTC"
        );
    }

    #[test]
    fn nodecount_limits_rows() {
        let p = pprof_read::parse(&fixture()).unwrap();
        let r = report(&p, 1, 1, &TimeZone::UTC);
        assert_eq!(r.rows.len(), 1);
        assert!(r.labels.iter().any(|l| l == "Showing top 1 nodes out of 3"));
    }

    #[test]
    fn extreme_values_do_not_panic() {
        let mut p = pprof_read::parse(&fixture()).unwrap();
        for s in &mut p.samples {
            s.values = vec![i64::MIN, i64::MAX, -1];
        }
        for i in 0..3 {
            let _ = render(&p, i, 0, &TimeZone::UTC);
            let _ = render(&p, i, 1, &TimeZone::UTC);
        }
    }

    #[test]
    fn zero_samples_give_an_empty_table() {
        let p = pprof_read::parse(&fixture()).unwrap();
        // inuse_space: 512 at sample A only.
        let r = report(&p, 2, 0, &TimeZone::UTC);
        assert_eq!(r.rows[0].flat, 512);
        let mut empty = p.clone();
        empty.samples.clear();
        let r = report(&empty, 2, 0, &TimeZone::UTC);
        assert!(r.rows.is_empty());
        assert!(r
            .text()
            .contains("Showing nodes accounting for 0, 0% of 0 total"));
    }
}
