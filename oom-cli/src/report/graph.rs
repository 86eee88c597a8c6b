//! The function graph of one sample type: flat value (samples whose leaf-most frame
//! is the node), cum value (samples that contain the node, once each), and
//! caller→callee edges with their weights and whether every call was inlined.
//! pprof's rules (internal/graph at the Go 1.27 toolchain's vendored copy): order,
//! trimming to a set of kept nodes, `(inline)` marks; the code is ours.

use std::collections::{HashMap, HashSet};

use oom_cli::pprof_read::Profile;

use super::frames::Frames;

/// Flat and cum values per node, and caller→callee edges with weights.
pub struct Graph {
    /// Nodes with a non-zero flat or cum value.
    pub nodes: Vec<usize>,
    /// Flat value per node id.
    pub flat: Vec<i64>,
    /// Cum value per node id.
    pub cum: Vec<i64>,
    /// (caller, callee) → (weight, every occurrence was an inlined call).
    edges: HashMap<(usize, usize), (i64, bool)>,
}

impl Graph {
    /// Sums sample type `index` over the samples of `p`; with `kept`, only the nodes it
    /// marks count, and a sample's flat value goes to its leaf-most kept node only
    /// when no frame below that was trimmed (pprof's residual rule).
    pub fn build(p: &Profile, frames: &Frames, index: usize, kept: Option<&[bool]>) -> Graph {
        let n = frames.count();
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

    /// pprof's flat order: |flat| down, name up, |cum| down, then a total tie-break.
    pub fn sort(&mut self, frames: &Frames) {
        let (flat, cum) = (&self.flat, &self.cum);
        self.nodes.sort_by(|&a, &b| {
            flat[b]
                .unsigned_abs()
                .cmp(&flat[a].unsigned_abs())
                .then_with(|| frames.name(a).cmp(frames.name(b)))
                .then_with(|| cum[b].unsigned_abs().cmp(&cum[a].unsigned_abs()))
                .then_with(|| frames.tiebreak(a).cmp(&frames.tiebreak(b)))
        });
    }

    /// A mask of `n` node ids with exactly `nodes` set, for [`Graph::build`].
    pub fn kept_mask(&self, nodes: &[usize], n: usize) -> Vec<bool> {
        let mut k = vec![false; n];
        for &i in nodes {
            k[i] = true;
        }
        k
    }

    /// Per node: whether some heavy enough call into it was inlined, and whether some
    /// was not — pprof's `(inline)` / `(partial-inline)` marks. Edges lighter than
    /// `edge_cutoff` are trimmed first, as pprof does before printing.
    pub fn inline_marks(&self, edge_cutoff: i64) -> HashMap<usize, (bool, bool)> {
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

/// The mark after a node's name: ` (inline)`, ` (partial-inline)` or nothing.
pub fn inline_label(marks: &HashMap<usize, (bool, bool)>, node: usize) -> &'static str {
    match marks.get(&node) {
        Some((true, true)) => " (partial-inline)",
        Some((true, false)) => " (inline)",
        _ => "",
    }
}
