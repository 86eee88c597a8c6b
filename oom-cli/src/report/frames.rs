//! Function nodes of a profile, at pprof's default "functions" granularity: file,
//! line and address are dropped, inline frames kept. Every location becomes its
//! frames' node ids, innermost (inlined callee) first; `top` counts over them and
//! `flame` draws them.

use std::collections::HashMap;

use oom_cli::pprof_read::Profile;

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

    /// How many nodes there are; ids run from 0 to this.
    pub fn count(&self) -> usize {
        self.keys.len()
    }

    /// The printable name of node `id`.
    pub fn name(&self, id: usize) -> &str {
        &self.printable[id]
    }

    /// Node ids of a location, innermost (inlined callee) first.
    pub fn of_location(&self, loc: usize) -> &[usize] {
        self.by_location.get(loc).map(Vec::as_slice).unwrap_or(&[])
    }

    /// pprof's last-resort order between nodes of equal name and values.
    pub fn tiebreak(&self, id: usize) -> String {
        self.keys[id].tiebreak()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pprof_fixture::fixture;
    use oom_cli::pprof_read;

    #[test]
    fn inline_frames_are_nodes_of_their_own_innermost_first() {
        let p = pprof_read::parse(&fixture()).unwrap();
        let f = Frames::new(&p);
        // Location 0: main.inl inlined into main.leaf; location 1: main.main.
        let names = |loc| -> Vec<&str> { f.of_location(loc).iter().map(|&n| f.name(n)).collect() };
        assert_eq!(names(0), ["main.inl", "main.leaf"]);
        assert_eq!(names(1), ["main.main"]);
        assert!(f.of_location(2).is_empty());
        assert_eq!(f.count(), 3);
    }
}
