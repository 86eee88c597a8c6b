//! Analyses Go executables and prints what oomprof learns from each, with timings:
//! `cargo run --release -p oom-loader --example analyze -- BINARY...`
fn main() {
    for path in std::env::args().skip(1) {
        let t = std::time::Instant::now();
        let f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{path}: {e}");
                continue;
            }
        };
        match oom_loader::binary::GoBinary::analyze(&f, path.as_ref()) {
            Ok(b) => println!(
                "{path}: {:.2?} {} pie={} vars={:x?} via {:?} disabled={:?} gnu={}",
                t.elapsed(),
                b.info.go_version,
                b.info.pie,
                b.info.vars,
                b.info.var_source,
                b.info.profiling_disabled_by_linker,
                b.info.gnu_build_id
            ),
            Err(e) => println!("{path}: {:.2?} {e}", t.elapsed()),
        }
    }
}
