//! A parser for `go tool pprof -raw` output: the judge's view of a profile.

use std::collections::{BTreeMap, HashMap};

/// A sample as the judge compares it: values, labels, and each location's address and
/// frames (`function file:line:col`).
pub type SampleKey = (Vec<i64>, Vec<(String, String)>, Vec<(u64, Vec<String>)>);

/// One frame line of a location: function name and `file:line:column`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Function name.
    pub function: String,
    /// `file:line:column` as pprof prints it.
    pub position: String,
}

/// A location: address, mapping and its lines, innermost first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// Location address.
    pub address: u64,
    /// Mapping id.
    pub mapping: u64,
    /// Frames, innermost (inlined) first.
    pub lines: Vec<Line>,
}

/// A sample: values in `sample_types` order, location ids leaf first, labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Values.
    pub values: Vec<i64>,
    /// Location ids, leaf first.
    pub locations: Vec<u64>,
    /// Labels as printed (`key`, `[value]`).
    pub labels: Vec<(String, String)>,
}

/// A whole `-raw` dump.
#[derive(Clone, Debug, Default)]
pub struct RawProfile {
    /// `PeriodType:` line.
    pub period_type: String,
    /// `Period:` value.
    pub period: i64,
    /// Sample type names (`alloc_objects`, …), without units.
    pub sample_types: Vec<String>,
    /// Samples in file order.
    pub samples: Vec<Sample>,
    /// Locations by id.
    pub locations: HashMap<u64, Location>,
}

impl RawProfile {
    /// Parses `go tool pprof -raw` output.
    ///
    /// Returns an error naming the line that does not fit.
    pub fn parse(text: &str) -> Result<Self, String> {
        #[derive(PartialEq)]
        enum Sec {
            Head,
            Samples,
            Locations,
            Other,
        }
        let mut p = RawProfile::default();
        let mut sec = Sec::Head;
        let mut last_loc: Option<u64> = None;
        for (n, line) in text.lines().enumerate() {
            let bad = || format!("pprof -raw line {}: unexpected {line:?}", n + 1);
            if let Some(v) = line.strip_prefix("PeriodType: ") {
                p.period_type = v.to_string();
                continue;
            }
            if let Some(v) = line.strip_prefix("Period: ") {
                p.period = v.trim().parse().map_err(|_| bad())?;
                continue;
            }
            match line.trim_end() {
                "Samples:" => {
                    sec = Sec::Samples;
                    continue;
                }
                "Locations" => {
                    sec = Sec::Locations;
                    continue;
                }
                "Mappings" => {
                    sec = Sec::Other;
                    continue;
                }
                _ => {}
            }
            match sec {
                Sec::Head | Sec::Other => {}
                Sec::Samples => {
                    let t = line.trim();
                    if t.is_empty() {
                        continue;
                    }
                    if p.sample_types.is_empty() {
                        p.sample_types = t
                            .split_whitespace()
                            .map(|s| s.split('/').next().unwrap_or(s).to_string())
                            .collect();
                        continue;
                    }
                    let (left, right) = t.split_once(':').ok_or_else(bad)?;
                    let values: Result<Vec<i64>, _> =
                        left.split_whitespace().map(str::parse).collect();
                    match values {
                        Ok(values) => {
                            let locations = right
                                .split_whitespace()
                                .map(str::parse)
                                .collect::<Result<Vec<u64>, _>>()
                                .map_err(|_| bad())?;
                            p.samples.push(Sample {
                                values,
                                locations,
                                labels: Vec::new(),
                            });
                        }
                        Err(_) => {
                            let s = p.samples.last_mut().ok_or_else(bad)?;
                            s.labels.push((left.to_string(), right.to_string()));
                        }
                    }
                }
                Sec::Locations => {
                    let t = line.trim();
                    if t.is_empty() {
                        continue;
                    }
                    let head = t
                        .split_once(": 0x")
                        .and_then(|(id, rest)| id.parse::<u64>().ok().map(|id| (id, rest)));
                    if let Some((id, rest)) = head {
                        let (addr, rest) = rest.split_once(' ').unwrap_or((rest, ""));
                        let address = u64::from_str_radix(addr, 16).map_err(|_| bad())?;
                        let rest = rest.trim();
                        let (m, rest) = rest.split_once(' ').unwrap_or((rest, ""));
                        let mapping = m
                            .strip_prefix("M=")
                            .and_then(|m| m.parse().ok())
                            .ok_or_else(bad)?;
                        let mut loc = Location {
                            address,
                            mapping,
                            lines: Vec::new(),
                        };
                        if let Some(l) = parse_frame(rest) {
                            loc.lines.push(l);
                        }
                        p.locations.insert(id, loc);
                        last_loc = Some(id);
                    } else {
                        let loc = last_loc
                            .and_then(|id| p.locations.get_mut(&id))
                            .ok_or_else(bad)?;
                        loc.lines.push(parse_frame(t).ok_or_else(bad)?);
                    }
                }
            }
        }
        if p.sample_types.is_empty() {
            return Err("pprof -raw output has no Samples section".into());
        }
        Ok(p)
    }

    /// Index of sample type `name` (e.g. `"inuse_space"`).
    pub fn index(&self, name: &str) -> Option<usize> {
        self.sample_types.iter().position(|t| t == name)
    }

    /// Function names of a sample's stack, leaf first, inline frames expanded.
    pub fn functions(&self, s: &Sample) -> Vec<String> {
        s.locations
            .iter()
            .filter_map(|id| self.locations.get(id))
            .flat_map(|l| l.lines.iter().map(|x| x.function.clone()))
            .collect()
    }

    /// Sum of sample type `name` over samples whose leaf-most non-runtime function is
    /// `function`.
    pub fn total_for(&self, name: &str, function: &str) -> i64 {
        let Some(i) = self.index(name) else { return 0 };
        self.samples
            .iter()
            .filter(|s| {
                self.functions(s)
                    .iter()
                    .find(|f| !f.starts_with("runtime.") && !f.starts_with("internal/runtime/"))
                    .is_some_and(|f| f == function)
            })
            .map(|s| s.values.get(i).copied().unwrap_or(0))
            .sum()
    }

    /// Like [`RawProfile::total_for`], counting only samples whose `bytes` label (the
    /// object size) is `size`: runtime work done while `function` allocated (GC start,
    /// new goroutines) is attributed to it too, with other sizes.
    pub fn total_for_size(&self, name: &str, function: &str, size: u64) -> i64 {
        let Some(i) = self.index(name) else { return 0 };
        let label = format!("[{size}]");
        self.samples
            .iter()
            .filter(|s| s.labels.iter().any(|(k, v)| k == "bytes" && *v == label))
            .filter(|s| {
                self.functions(s)
                    .iter()
                    .find(|f| !f.starts_with("runtime.") && !f.starts_with("internal/runtime/"))
                    .is_some_and(|f| f == function)
            })
            .map(|s| s.values.get(i).copied().unwrap_or(0))
            .sum()
    }

    /// The leaf-most non-runtime function holding the most of sample type `name`
    /// (the function `pprof -top` lists first by flat value), with that total.
    pub fn top_function(&self, name: &str) -> Option<(String, i64)> {
        let i = self.index(name)?;
        let mut by: std::collections::BTreeMap<String, i64> = Default::default();
        for s in &self.samples {
            let fs = self.functions(s);
            let f = fs
                .iter()
                .find(|f| !f.starts_with("runtime.") && !f.starts_with("internal/runtime/"))
                .or(fs.first());
            if let Some(f) = f {
                *by.entry(f.clone()).or_default() += s.values.get(i).copied().unwrap_or(0);
            }
        }
        by.into_iter().max_by_key(|(_, v)| *v)
    }

    /// The samples as the judge compares them: the first `nvalues` values, the labels,
    /// and each location's address and frames, counted; with `nonzero` samples whose
    /// compared values are all zero are left out. Mapping ids are left out (two writers
    /// list the same maps under other ids).
    pub fn keyed_samples(&self, nvalues: usize, nonzero: bool) -> BTreeMap<SampleKey, usize> {
        let mut m = BTreeMap::new();
        for s in &self.samples {
            let values: Vec<i64> = s.values.iter().take(nvalues).copied().collect();
            if nonzero && values.iter().all(|v| *v == 0) {
                continue;
            }
            let locs = s
                .locations
                .iter()
                .map(|id| {
                    let l = self.locations.get(id);
                    (
                        l.map_or(0, |l| l.address),
                        l.map(|l| {
                            l.lines
                                .iter()
                                .map(|x| format!("{} {}", x.function, x.position))
                                .collect()
                        })
                        .unwrap_or_default(),
                    )
                })
                .collect();
            *m.entry((values, s.labels.clone(), locs)).or_default() += 1;
        }
        m
    }

    /// Sum of sample type `name` over all samples.
    pub fn total(&self, name: &str) -> i64 {
        let Some(i) = self.index(name) else { return 0 };
        self.samples
            .iter()
            .map(|s| s.values.get(i).copied().unwrap_or(0))
            .sum()
    }
}

/// `func file:line:col s=N` → Line. The function may contain spaces (generic shapes),
/// the position may not.
fn parse_frame(text: &str) -> Option<Line> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    let t = match t.rsplit_once(' ') {
        Some((head, tail)) if tail.starts_with("s=") => head,
        _ => t,
    };
    let (function, position) = t.rsplit_once(' ')?;
    Some(Line {
        function: function.trim().to_string(),
        position: position.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "PeriodType: space bytes
Period: 524288
Time: 2026-11-22 01:10:14.372747386 +0000 UTC
Samples:
alloc_objects/count alloc_space/bytes inuse_objects/count inuse_space/bytes
          3     633337          0          0: 1 2 
                bytes:[204800]
         40   42444382         40   42444382: 3 2 
                bytes:[1048576]
Locations
     1: 0x4eacf8 M=1 main.main /src/holder/main.go:43:0 s=34
     2: 0x44c5e6 M=1 runtime.main /go/src/runtime/proc.go:302:0 s=153
     3: 0x4eaa64 M=1 main.newBox[go.shape.struct { a int }] /src/main.go:20:0 s=19
             main.allocLarge /src/holder/main.go:40:0 s=34
Mappings
1: 0x402000/0x4ec000/0x2000 ./holder-cgo bbb9 [FN]
";

    #[test]
    fn parses_samples_labels_and_inline_locations() {
        let p = RawProfile::parse(SAMPLE).unwrap();
        assert_eq!(p.period, 524288);
        assert_eq!(p.sample_types[3], "inuse_space");
        assert_eq!(p.samples.len(), 2);
        assert_eq!(p.samples[1].values, vec![40, 42444382, 40, 42444382]);
        assert_eq!(
            p.samples[1].labels,
            vec![("bytes".into(), "[1048576]".into())]
        );
        let l = &p.locations[&3];
        assert_eq!(l.address, 0x4eaa64);
        assert_eq!(
            l.lines[0].function,
            "main.newBox[go.shape.struct { a int }]"
        );
        assert_eq!(l.lines[1].function, "main.allocLarge");
        assert_eq!(
            p.functions(&p.samples[1]),
            vec![
                "main.newBox[go.shape.struct { a int }]",
                "main.allocLarge",
                "runtime.main"
            ]
        );
        assert_eq!(
            p.total_for("inuse_space", "main.newBox[go.shape.struct { a int }]"),
            42444382
        );
        assert_eq!(p.total("alloc_objects"), 43);
    }

    #[test]
    fn rejects_output_without_samples() {
        assert!(RawProfile::parse("hello\n").is_err());
    }
}
