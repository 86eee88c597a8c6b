//! Test-only pprof fixtures: a tiny protobuf writer and a heap-like profile.
//!
//! One source, compiled into both crates' tests: the library's (`pprof_read`'s own
//! tests) and the binary's (`top` and `flame`), which cannot see the library's
//! `cfg(test)` items.

/// A tiny protobuf writer for fixtures.
#[derive(Default)]
pub struct W(pub Vec<u8>);

impl W {
    pub fn varint(&mut self, mut v: u64) -> &mut Self {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(b);
                return self;
            }
            self.0.push(b | 0x80);
        }
    }
    pub fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.varint(u64::from(field << 3)).varint(v as u64)
    }
    pub fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Self {
        self.varint(u64::from(field << 3 | 2))
            .varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    pub fn packed(&mut self, field: u32, vs: &[i64]) -> &mut Self {
        let mut inner = W::default();
        for &v in vs {
            inner.varint(v as u64);
        }
        self.bytes(field, &inner.0)
    }
}

/// A heap-like profile: strings
/// 0 "", 1 alloc_objects, 2 count, 3 alloc_space, 4 bytes, 5 main.leaf,
/// 6 main.inl, 7 main.main, 8 /bin/prog, 9 ctx comment, 10 inuse_space;
/// function 1 main.leaf, 2 main.inl, 3 main.main; location 1 = leaf with main.inl
/// inlined into it (two lines), location 2 = main.main; two samples.
pub fn fixture() -> Vec<u8> {
    let mut p = W::default();
    // sample_type alloc_objects/count, alloc_space/bytes, inuse_space/bytes
    p.bytes(1, &W::default().int(1, 1).int(2, 2).0);
    p.bytes(1, &W::default().int(1, 3).int(2, 4).0);
    p.bytes(1, &W::default().int(1, 10).int(2, 4).0);
    // sample: locations [1, 2] (packed), values [1, 1024, 512] (packed)
    p.bytes(
        2,
        &W::default().packed(1, &[1, 2]).packed(2, &[1, 1024, 512]).0,
    );
    // sample: locations [2] (unpacked), values unpacked, a numeric label bytes=2048
    let label = W::default().int(1, 4).int(3, 2048).0.clone();
    p.bytes(
        2,
        &W::default()
            .int(1, 2)
            .int(2, 3)
            .int(2, 6144)
            .int(2, 0)
            .bytes(3, &label)
            .0,
    );
    // mapping 1: /bin/prog
    p.bytes(3, &W::default().int(1, 1).int(2, 0x400000).int(5, 8).0);
    // location 1: mapping 1, address 0x401000, lines: main.inl:7 (inlined), main.leaf:12
    let l1 = W::default().int(1, 1).int(2, 7).0.clone();
    let l2 = W::default().int(1, 2).int(2, 12).0.clone();
    // (function ids: 1 = main.inl, 2 = main.leaf; see below)
    p.bytes(
        4,
        &W::default()
            .int(1, 1)
            .int(2, 1)
            .int(3, 0x401000)
            .bytes(4, &l1)
            .bytes(4, &l2)
            .0,
    );
    // location 2: main.main:30
    let l3 = W::default().int(1, 3).int(2, 30).0.clone();
    p.bytes(
        4,
        &W::default()
            .int(1, 2)
            .int(2, 1)
            .int(3, 0x402000)
            .bytes(4, &l3)
            .0,
    );
    // functions: 1 main.inl, 2 main.leaf, 3 main.main
    p.bytes(5, &W::default().int(1, 1).int(2, 6).0);
    p.bytes(5, &W::default().int(1, 2).int(2, 5).0);
    p.bytes(5, &W::default().int(1, 3).int(2, 7).0);
    for s in [
        "",
        "alloc_objects",
        "count",
        "alloc_space",
        "bytes",
        "main.leaf",
        "main.inl",
        "main.main",
        "/bin/prog",
        "oomprof: killed by the OOM killer",
        "inuse_space",
    ] {
        p.bytes(6, s.as_bytes());
    }
    p.int(9, 1_795_310_760_000_000_000); // time_nanos
    p.bytes(11, &W::default().int(1, 3).int(2, 4).0); // period_type space/bytes
    p.int(12, 524_288); // period
    p.int(13, 9); // comment (unpacked)
    p.int(14, 3); // default_sample_type alloc_space
    p.0
}
