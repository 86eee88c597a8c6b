//! The `oomprof` command.
fn main() {}
