//! The pprof reader behind `top` and `flame`: file bytes as given (gzip or not) and
//! the same bytes gzipped, which must decode alike; then the sample-index lookup.
#![no_main]
use std::io::Write;

use libfuzzer_sys::fuzz_target;
use oom_cli::pprof_read;

fuzz_target!(|data: &[u8]| {
    let as_given = pprof_read::parse(data);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    let gzipped = pprof_read::parse(&gz.finish().unwrap());
    if !data.starts_with(&[0x1f, 0x8b]) {
        assert_eq!(as_given, gzipped);
    }
    for p in [as_given, gzipped].iter().flatten() {
        // What top and flame index without checking.
        let n = p.sample_types.len();
        for s in &p.samples {
            assert_eq!(s.values.len(), n);
            assert!(s.locations.iter().all(|&l| l < p.locations.len()));
        }
        for l in &p.locations {
            assert!(l.mapping.is_none_or(|m| m < p.mappings.len()));
            assert!(l
                .lines
                .iter()
                .all(|x| x.function.is_none_or(|f| f < p.functions.len())));
        }
        let _ = p.main_file();
        let names = p.sample_types.iter().map(|t| t.kind.clone());
        let tries = ["", "0", "1", "99", "inuse_space", "space", "inuse_"].map(String::from);
        for name in tries.into_iter().chain(names) {
            if let Ok(i) = p.sample_index(&name) {
                assert!(i < n, "{name:?} -> {i} of {n}");
            }
        }
    }
});
