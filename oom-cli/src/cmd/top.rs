//! `oomprof top`: a `go tool pprof -top` table of any heap profile.
//!
//! Profile → one node per function (pprof's default "functions" granularity: file,
//! line and address are dropped, inline frames kept) → flat (value of samples whose
//! leaf-most frame is the function) and cum (samples that contain the function, once
//! each) → pprof's trimming (nodes under 0.5% of the total cum are dropped, `-n` keeps
//! the first N) → pprof's ordering and unit choice → the same text `go tool pprof
//! -top -sample_index=X` prints. The rules are pprof's (internal/report, graph and
//! measurement at the Go 1.27 toolchain's vendored copy); the code is ours.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use anyhow::Context;
use argh::FromArgs;

use crate::cmd::usage;
use oom_cli::pprof_read::{self, Profile};

/// print the top functions of a heap profile, like `go tool pprof -top`
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "top",
    note = "Reads any pprof profile, gzipped or not, and prints the numbers and units \
            `go tool pprof -top -sample_index=X` prints (times in UTC). No Go needed.",
    example = "{command_name} holder-4242-20261122013000.pb.gz -n 10 --sample-index alloc_space"
)]
pub struct TopArgs {
    /// the profile (.pb.gz or uncompressed)
    #[argh(positional)]
    pub file: String,

    /// show only the first N functions (default: all above 0.5% of the total)
    #[argh(option, short = 'n')]
    pub nodecount: Option<usize>,

    /// which value to show: inuse_space, inuse_objects, alloc_space, alloc_objects
    /// (default: the profile's default, inuse_space for Go heap profiles)
    #[argh(option)]
    pub sample_index: Option<String>,
}

/// Runs `top`.
pub fn run(args: TopArgs) -> anyhow::Result<()> {
    let profile = load(&args.file)?;
    let index = sample_index(&profile, args.sample_index.as_deref())?;
    let text = render(&profile, index, args.nodecount.unwrap_or(0));
    let mut out = std::io::stdout().lock();
    // A closed pipe (`oomprof top f | head`) is not an error worth a message.
    let _ = std::io::Write::write_all(&mut out, text.as_bytes());
    Ok(())
}

/// Reads and decodes a profile file, with errors that name the file.
///
/// Returns an error if the file cannot be read or is not a pprof profile.
pub fn load(path: &str) -> anyhow::Result<Profile> {
    // Bounded read: a huge file is refused without being loaded whole.
    let file = std::fs::File::open(path).with_context(|| format!("reading {path}"))?;
    let mut data = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, pprof_read::MAX_DECOMPRESSED + 1),
        &mut data,
    )
    .with_context(|| format!("reading {path}"))?;
    pprof_read::parse(&data).with_context(|| path.to_string())
}

/// Resolves `--sample-index`; an unknown name is a usage error.
///
/// Returns a [`crate::cmd::UsageError`] when the profile has no such sample type.
pub fn sample_index(p: &Profile, name: Option<&str>) -> anyhow::Result<usize> {
    match p.sample_index(name.unwrap_or("")) {
        Ok(i) => Ok(i),
        Err(e) if p.sample_types.is_empty() => anyhow::bail!("{e}"),
        Err(e) => usage(format!("--sample-index: {e}")),
    }
}

// ---------------------------------------------------------------------------------
// Units and numbers, as pprof's measurement package prints them.

/// One unit of a family: canonical name, lower-case aliases, size in base units.
struct Unit {
    name: &'static str,
    aliases: &'static [&'static str],
    factor: f64,
}

/// A family of convertible units; the default is used when the target is unknown.
struct UnitFamily {
    units: &'static [Unit],
    default: usize,
}

const BYTE_UNITS: &[Unit] = &[
    Unit {
        name: "B",
        aliases: &["b", "byte"],
        factor: 1.0,
    },
    Unit {
        name: "kB",
        aliases: &["kb", "kbyte", "kilobyte"],
        factor: 1024.0,
    },
    Unit {
        name: "MB",
        aliases: &["mb", "mbyte", "megabyte"],
        factor: 1048576.0,
    },
    Unit {
        name: "GB",
        aliases: &["gb", "gbyte", "gigabyte"],
        factor: 1073741824.0,
    },
    Unit {
        name: "TB",
        aliases: &["tb", "tbyte", "terabyte"],
        factor: 1099511627776.0,
    },
    Unit {
        name: "PB",
        aliases: &["pb", "pbyte", "petabyte"],
        factor: 1125899906842624.0,
    },
];

const TIME_UNITS: &[Unit] = &[
    Unit {
        name: "ns",
        aliases: &["ns", "nanosecond"],
        factor: 1.0,
    },
    Unit {
        name: "us",
        aliases: &["μs", "us", "microsecond"],
        factor: 1e3,
    },
    Unit {
        name: "ms",
        aliases: &["ms", "millisecond"],
        factor: 1e6,
    },
    Unit {
        name: "s",
        aliases: &["s", "sec", "second"],
        factor: 1e9,
    },
    Unit {
        name: "hrs",
        aliases: &["hour", "hr"],
        factor: 3600e9,
    },
];

const GCU_UNITS: &[Unit] = &[
    Unit {
        name: "n*GCU",
        aliases: &["nanogcu"],
        factor: 1e-9,
    },
    Unit {
        name: "u*GCU",
        aliases: &["microgcu"],
        factor: 1e-6,
    },
    Unit {
        name: "m*GCU",
        aliases: &["milligcu"],
        factor: 1e-3,
    },
    Unit {
        name: "GCU",
        aliases: &["gcu"],
        factor: 1.0,
    },
    Unit {
        name: "k*GCU",
        aliases: &["kilogcu"],
        factor: 1e3,
    },
    Unit {
        name: "M*GCU",
        aliases: &["megagcu"],
        factor: 1e6,
    },
    Unit {
        name: "G*GCU",
        aliases: &["gigagcu"],
        factor: 1e9,
    },
    Unit {
        name: "T*GCU",
        aliases: &["teragcu"],
        factor: 1e12,
    },
    Unit {
        name: "P*GCU",
        aliases: &["petagcu"],
        factor: 1e15,
    },
];

const FAMILIES: &[UnitFamily] = &[
    UnitFamily {
        units: BYTE_UNITS,
        default: 0,
    },
    // Seconds are the time default.
    UnitFamily {
        units: TIME_UNITS,
        default: 3,
    },
    UnitFamily {
        units: GCU_UNITS,
        default: 3,
    },
];

impl UnitFamily {
    /// The unit a profile's unit string names: case-insensitive, a plural `s` dropped
    /// from names longer than two bytes (`bytes`, `nanoseconds`).
    fn sniff(&self, unit: &str) -> Option<&'static Unit> {
        let lower = unit.to_lowercase();
        let key = if lower.len() > 2 {
            lower.strip_suffix('s').unwrap_or(&lower)
        } else {
            &lower
        };
        self.units.iter().find(|u| u.aliases.contains(&key))
    }

    fn convert(&self, value: i64, from: &str, to: &str) -> Option<(f64, &'static str)> {
        let from = self.sniff(from)?;
        let v = value as f64 * from.factor;
        let default = &self.units[self.default];
        if to == "minimum" || to == "auto" {
            // The largest unit in which the value is at least 1.
            let best = self.units.iter().filter(|u| v / u.factor >= 1.0).fold(
                None::<&Unit>,
                |b, u| match b {
                    Some(b) if b.factor > u.factor => Some(b),
                    _ => Some(u),
                },
            );
            return Some(match best {
                Some(u) => (v / u.factor, u.name),
                None => (v / default.factor, default.name),
            });
        }
        Some(match self.sniff(to) {
            Some(u) => (v / u.factor, u.name),
            None => (v / default.factor, default.name),
        })
    }
}

/// `value` in `from` units expressed in `to` (a unit, or `minimum`/`auto` for the
/// largest fitting one): the number and the unit's name (empty for plain counts).
pub fn scale(value: i64, from: &str, to: &str) -> (f64, String) {
    if value < 0 && value != i64::MIN {
        let (v, u) = scale(-value, from, to);
        return (-v, u);
    }
    for family in FAMILIES {
        if let Some((v, u)) = family.convert(value, from, to) {
            return (v, u.to_string());
        }
    }
    match to {
        "count" | "sample" | "unit" | "minimum" | "auto" => (value as f64, String::new()),
        _ => (value as f64, to.to_string()),
    }
}

/// `value` as pprof labels it: two decimals unless they are `.00`, then the unit;
/// zero is `0` without a unit.
pub fn scaled_label(value: i64, from: &str, to: &str) -> String {
    let (v, u) = scale(value, from, to);
    let s = format!("{v:.2}");
    let s = s.strip_suffix(".00").unwrap_or(&s);
    if s == "0" || s == "-0" {
        return "0".into();
    }
    format!("{s}{u}")
}

/// `value` as a share of `total`, six characters wide: `  100%`, `76.70%`, ` 0.92%`,
/// `0.015%`, `    0%` (two significant digits under 1%).
pub fn percentage(value: i64, total: i64) -> String {
    let ratio = if total != 0 {
        (value as f64 / total as f64).abs() * 100.0
    } else {
        0.0
    };
    if (99.95..=100.05).contains(&ratio) {
        "  100%".into()
    } else if ratio >= 1.0 {
        format!("{ratio:5.2}%")
    } else {
        format!("{:>5}%", two_significant(ratio))
    }
}

/// A non-negative number with two significant digits in the shortest of fixed or
/// exponent notation, trailing zeros dropped: `0.51`, `0.0012`, `1.2e-05`, `0`
/// (the `%.2g` rule: exponent form below 1e-4 or from 1e2).
fn two_significant(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return if x == 0.0 { "0".into() } else { format!("{x}") };
    }
    // `{:.1e}` rounds to two significant digits: "5.1e-1".
    let e = format!("{x:.1e}");
    let Some((mant, exp)) = e.split_once('e') else {
        return e;
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    if !(-4..2).contains(&exp) {
        let mut m = digits[..1].to_string();
        if digits.len() > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{m}e{sign}{:02}", exp.abs());
    }
    if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        format!("0.{zeros}{digits}")
    } else {
        // exp is 0 or 1: the point falls inside or after the digits.
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            format!("{digits}{}", "0".repeat(int_len - digits.len()))
        } else {
            format!("{}.{}", &digits[..int_len], &digits[int_len..])
        }
    }
}

// ---------------------------------------------------------------------------------
// The function graph.

/// What makes two frames the same node at function granularity: the name, or for
/// nameless frames the object file (and the function's start line, if any).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct NodeKey {
    name: String,
    objfile: String,
    start_line: i64,
}

impl NodeKey {
    /// The name pprof prints: the function, else `[object]`, else `<unknown>`.
    fn printable(&self) -> String {
        if !self.name.is_empty() {
            self.name.clone()
        } else if !self.objfile.is_empty() {
            let trimmed = self.objfile.trim_end_matches('/');
            let base = trimmed.rsplit('/').next().unwrap_or("");
            let base = if base.is_empty() { "/" } else { base };
            format!("[{base}]")
        } else {
            "<unknown>".into()
        }
    }

    /// pprof's last-resort tie-break: its node info struct printed with `%v`.
    fn tiebreak(&self) -> String {
        format!(
            "{{{}  0  {} 0 0 {}}}",
            self.name, self.start_line, self.objfile
        )
    }
}

/// Frame names of a profile: every location's frames as node ids, innermost first.
#[derive(Debug)]
pub struct Frames {
    keys: Vec<NodeKey>,
    printable: Vec<String>,
    /// Per location (by index), its node ids; one for a location without lines.
    by_location: Vec<Vec<usize>>,
}

impl Frames {
    /// Interns the nodes of every location of `p`.
    pub fn new(p: &Profile) -> Self {
        let mut ids: HashMap<NodeKey, usize> = HashMap::new();
        let mut keys = Vec::new();
        let mut by_location = Vec::with_capacity(p.locations.len());
        for loc in &p.locations {
            let objfile = loc
                .mapping
                .and_then(|m| p.mappings.get(m))
                .map(|m| m.file.clone())
                .unwrap_or_default();
            let mut line_keys = Vec::new();
            if loc.lines.is_empty() {
                line_keys.push(NodeKey {
                    name: String::new(),
                    objfile: objfile.clone(),
                    start_line: 0,
                });
            }
            for line in &loc.lines {
                let key = match line.function.and_then(|f| p.functions.get(f)) {
                    None => NodeKey {
                        name: String::new(),
                        objfile: objfile.clone(),
                        start_line: 0,
                    },
                    Some(f) if f.name.is_empty() && f.system_name.is_empty() => NodeKey {
                        name: String::new(),
                        objfile: objfile.clone(),
                        start_line: f.start_line,
                    },
                    Some(f) => NodeKey {
                        name: f.name.clone(),
                        objfile: String::new(),
                        start_line: 0,
                    },
                };
                line_keys.push(key);
            }
            let nodes = line_keys
                .into_iter()
                .map(|k| {
                    *ids.entry(k.clone()).or_insert_with(|| {
                        keys.push(k);
                        keys.len() - 1
                    })
                })
                .collect();
            by_location.push(nodes);
        }
        let printable = keys.iter().map(NodeKey::printable).collect();
        Self {
            keys,
            printable,
            by_location,
        }
    }

    /// The printable name of node `id`.
    pub fn name(&self, id: usize) -> &str {
        &self.printable[id]
    }

    /// Node ids of a location, innermost (inlined callee) first.
    pub fn of_location(&self, loc: usize) -> &[usize] {
        self.by_location.get(loc).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Flat and cum values per node, and caller→callee edges with weights.
struct Graph {
    /// Nodes with a non-zero flat or cum value.
    nodes: Vec<usize>,
    flat: Vec<i64>,
    cum: Vec<i64>,
    /// (caller, callee) → (weight, every occurrence was an inlined call).
    edges: HashMap<(usize, usize), (i64, bool)>,
}

fn build_graph(p: &Profile, frames: &Frames, index: usize, kept: Option<&[bool]>) -> Graph {
    let n = frames.keys.len();
    let mut flat = vec![0i64; n];
    let mut cum = vec![0i64; n];
    let mut edges: HashMap<(usize, usize), (i64, bool)> = HashMap::new();
    // Per-sample "seen" marks by generation, so clearing is free.
    let mut seen = vec![0usize; n];
    let mut seen_edges: HashSet<(usize, usize)> = HashSet::new();
    for (gen, s) in p.samples.iter().enumerate() {
        let gen = gen + 1;
        let w = s.values.get(index).copied().unwrap_or(0);
        if w == 0 {
            continue;
        }
        seen_edges.clear();
        let mut parent: Option<usize> = None;
        // True while the frames since `parent` were all trimmed away.
        let mut residual = false;
        for &loc in s.locations.iter().rev() {
            let nodes = frames.of_location(loc);
            for (ni, &node) in nodes.iter().enumerate().rev() {
                if kept.is_some_and(|k| !k[node]) {
                    residual = true;
                    continue;
                }
                if seen[node] != gen {
                    seen[node] = gen;
                    cum[node] = cum[node].wrapping_add(w);
                }
                if let Some(par) = parent {
                    if par != node && seen_edges.insert((par, node)) {
                        let inline = ni != nodes.len() - 1;
                        let e = edges.entry((par, node)).or_insert((0, inline));
                        e.0 = e.0.wrapping_add(w);
                        e.1 &= inline;
                    }
                }
                parent = Some(node);
                residual = false;
            }
        }
        if let (Some(leaf), false) = (parent, residual) {
            flat[leaf] = flat[leaf].wrapping_add(w);
        }
    }
    let nodes = (0..n)
        .filter(|&i| kept.is_none_or(|k| k[i]) && (flat[i] != 0 || cum[i] != 0))
        .collect();
    Graph {
        nodes,
        flat,
        cum,
        edges,
    }
}

impl Graph {
    /// pprof's flat order: |flat| down, name up, |cum| down, then a total tie-break.
    fn sort(&mut self, frames: &Frames) {
        let (flat, cum) = (&self.flat, &self.cum);
        self.nodes.sort_by(|&a, &b| {
            flat[b]
                .unsigned_abs()
                .cmp(&flat[a].unsigned_abs())
                .then_with(|| frames.name(a).cmp(frames.name(b)))
                .then_with(|| cum[b].unsigned_abs().cmp(&cum[a].unsigned_abs()))
                .then_with(|| frames.keys[a].tiebreak().cmp(&frames.keys[b].tiebreak()))
        });
    }

    fn kept_mask(&self, nodes: &[usize], n: usize) -> Vec<bool> {
        let mut k = vec![false; n];
        for &i in nodes {
            k[i] = true;
        }
        k
    }

    /// Per node: whether some heavy enough call into it was inlined, and whether some
    /// was not — pprof's `(inline)` / `(partial-inline)` marks. Edges lighter than
    /// `edge_cutoff` are trimmed first, as pprof does before printing.
    fn inline_marks(&self, edge_cutoff: i64) -> HashMap<usize, (bool, bool)> {
        let mut marks: HashMap<usize, (bool, bool)> = HashMap::new();
        for (&(_, callee), &(weight, inline)) in &self.edges {
            if weight.unsigned_abs() < edge_cutoff.unsigned_abs() {
                continue;
            }
            let m = marks.entry(callee).or_default();
            if inline {
                m.0 = true;
            } else {
                m.1 = true;
            }
        }
        marks
    }
}

fn inline_label(marks: &HashMap<usize, (bool, bool)>, node: usize) -> &'static str {
    match marks.get(&node) {
        Some((true, true)) => " (partial-inline)",
        Some((true, false)) => " (inline)",
        _ => "",
    }
}

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

/// Formats a Unix time in nanoseconds like pprof's `Time:` line, in UTC.
fn time_label(nanos: i64) -> String {
    let (y, mo, d, h, mi, s) = crate::cmd::run::civil(nanos.div_euclid(1_000_000_000));
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC")
}

/// Builds the `-top` report of sample type `index`, keeping at most `nodecount`
/// functions (0: all above the node fraction).
pub fn report(p: &Profile, index: usize, nodecount: usize) -> Report {
    let frames = Frames::new(p);
    let n = frames.keys.len();
    // Sums wrap like Go's int64 arithmetic: hostile values must not panic.
    let total: i64 = p
        .samples
        .iter()
        .map(|s| s.values.get(index).copied().unwrap_or(0).wrapping_abs())
        .fold(0, i64::wrapping_add);

    let mut g = build_graph(p, &frames, index, None);
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
            g = build_graph(p, &frames, index, Some(&mask));
        }
    }
    let orig_count = g.nodes.len();
    g.sort(&frames);
    if nodecount > 0 && nodecount < g.nodes.len() {
        let mask = g.kept_mask(&g.nodes[..nodecount], n);
        g = build_graph(p, &frames, index, Some(&mask));
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
        labels.push(format!("Time: {}", time_label(p.time_nanos)));
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
pub fn render(p: &Profile, index: usize, nodecount: usize) -> String {
    report(p, index, nodecount).text()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pprof_fixture::fixture;

    #[test]
    fn labels_like_pprof() {
        assert_eq!(scaled_label(0, "bytes", "MB"), "0");
        assert_eq!(scaled_label(40 << 20, "bytes", "MB"), "40MB");
        assert_eq!(scaled_label(66_584_576, "bytes", "MB"), "63.50MB");
        assert_eq!(scaled_label(524_861, "bytes", "kB"), "512.56kB");
        assert_eq!(scaled_label(671_088, "bytes", "MB"), "0.64MB");
        assert_eq!(scaled_label(12881, "count", "count"), "12881");
        assert_eq!(scaled_label(-2048, "bytes", "kB"), "-2kB");
        assert_eq!(scaled_label(1_500_000, "nanoseconds", "auto"), "1.50ms");
        assert_eq!(scaled_label(30_000_000_000, "nanoseconds", "auto"), "30s");
        assert_eq!(scaled_label(3, "bytes", "minimum"), "3B");
        assert_eq!(scaled_label(7, "widgets", "widgets"), "7widgets");
    }

    #[test]
    fn scale_picks_the_largest_fitting_unit() {
        assert_eq!(scale(1023, "bytes", "minimum").1, "B");
        assert_eq!(scale(1024, "bytes", "minimum").1, "kB");
        assert_eq!(scale(5 << 30, "bytes", "minimum").1, "GB");
        assert_eq!(scale(0, "bytes", "minimum").1, "B");
        assert_eq!(scale(12, "count", "minimum").1, "");
        assert_eq!(scale(1, "kilobytes", "B"), (1024.0, "B".into()));
    }

    #[test]
    fn percentages_like_pprof() {
        assert_eq!(percentage(100, 100), "  100%");
        assert_eq!(percentage(9996, 10000), "  100%");
        assert_eq!(percentage(7670, 10000), "76.70%");
        assert_eq!(percentage(92, 10000), " 0.92%");
        assert_eq!(percentage(2, 12922), "0.015%");
        assert_eq!(percentage(0, 12922), "    0%");
        assert_eq!(percentage(1, 10_000_000), "1e-05%");
        assert_eq!(percentage(12, 10_000_000), "0.00012%");
        assert_eq!(percentage(5, 0), "    0%");
        assert_eq!(percentage(-50, 100), "50.00%");
        assert_eq!(percentage(995, 100_000), "    1%");
        assert_eq!(percentage(9996, 1_000_000), "    1%");
    }

    #[test]
    fn two_significant_digits() {
        assert_eq!(two_significant(0.51234), "0.51");
        assert_eq!(two_significant(0.5), "0.5");
        assert_eq!(two_significant(0.0012), "0.0012");
        assert_eq!(two_significant(0.000012), "1.2e-05");
        assert_eq!(two_significant(0.00001), "1e-05");
        assert_eq!(two_significant(0.996), "1");
        assert_eq!(two_significant(0.0999), "0.1");
    }

    #[test]
    fn fixture_table() {
        let p = pprof_read::parse(&fixture()).unwrap();
        // alloc_space: sample A 1024 at [leaf(inl inlined), main], sample B 6144 at [main].
        let r = report(&p, 1, 0);
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
    fn nodecount_limits_rows() {
        let p = pprof_read::parse(&fixture()).unwrap();
        let r = report(&p, 1, 1);
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
            let _ = render(&p, i, 0);
            let _ = render(&p, i, 1);
        }
    }

    #[test]
    fn zero_samples_give_an_empty_table() {
        let p = pprof_read::parse(&fixture()).unwrap();
        // inuse_space: 512 at sample A only.
        let r = report(&p, 2, 0);
        assert_eq!(r.rows[0].flat, 512);
        let mut empty = p.clone();
        empty.samples.clear();
        let r = report(&empty, 2, 0);
        assert!(r.rows.is_empty());
        assert!(r
            .text()
            .contains("Showing nodes accounting for 0, 0% of 0 total"));
    }
}
