//! Raw Go buckets under every layout; values under every policy.
#![no_main]
use libfuzzer_sys::fuzz_target;
use oom_core::bucket::GoBucket;
use oom_core::layout::{GoVersion, Layout};
use oom_core::values::{self, Exp, Policy, Scale};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let layout = Layout::for_version(GoVersion { minor: 19 + u16::from(sel % 12), patch: 0 }).unwrap();
    if let Ok(g) = GoBucket::parse(rest, &layout) {
        g.bucket.stack.iter().for_each(drop);
        let _ = g.header.total_len(&layout);
        let rate = i64::from(sel) - 100;
        if let Ok(s) = Scale::new(rate, if sel & 1 == 0 { Exp::Amd64 { fma: sel & 2 == 0 } } else { Exp::Portable }, layout) {
            for p in [Policy::Latest, Policy::GoPublished { cycle: Some(u32::from(sel)), fallback: false }, Policy::GoPublished { cycle: None, fallback: true }] {
                let c = values::counts(&g.bucket.record, p);
                let _ = (s.values(c, g.bucket.size), s.bytes_label(c, g.bucket.size));
            }
        }
        let _ = values::needs_fallback([&g.bucket.record], Some(1));
    }
});
