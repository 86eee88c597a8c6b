//! Reading a profile for people: what `top` and `flame` share, and `top`'s table.
//!
//! File → [`load`] (a bounded read, `oom_cli::pprof_read`, the `--sample-index`
//! choice) → [`frames`] (one node per function, inline frames expanded) → for
//! `top`, [`graph`] (flat and cum per node, edges, pprof's order and trimming) →
//! [`table`] (header labels and rows, the text of `go tool pprof -top`); for `flame`,
//! folded stacks (`cmd/flame.rs`). [`units`] prints the values for both.

pub mod frames;
pub mod graph;
pub mod load;
pub mod table;
pub mod units;
