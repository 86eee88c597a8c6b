//! Ring-buffer records, chunk entries expanded into whole stacks, the counters, and
//! the growth sampler's map entries and counters.
#![no_main]
use libfuzzer_sys::fuzz_target;
use oom_core::abi::{
    Counters, Entries, Error, GrowthCounters, GrowthEntry, Record, StackExpander, MAX_NSTK,
};

/// Every entry of `payload`, expanded in order as the monitor does.
fn drain(payload: &[u8], pc_base: u64) {
    let mut x = StackExpander::new();
    let mut buf = [0u8; MAX_NSTK as usize * 8];
    let mut entries = Entries::new(payload, pc_base);
    while let Some(e) = entries.next() {
        let Ok(e) = e else {
            assert!(entries.next().is_none(), "an error ends the entries");
            return;
        };
        assert_eq!(e.own_pcs().count(), e.nstk() - e.shared());
        let _ = e.truncated();
        match x.bucket_into(&e, &mut buf) {
            Ok(b) => assert_eq!(b.stack.len(), e.nstk()),
            Err(Error::BufferTooSmall { needed }) => panic!("{needed} > MAX_NSTK words"),
            Err(_) => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match Record::parse(data) {
        Ok(Record::Chunk(c)) => drain(c.payload, 0x40_0000),
        Ok(Record::End(e)) => {
            let _ = e.is_complete();
        }
        Ok(Record::Exec(e)) => assert!(!e.filename.contains(&0)),
        Ok(_) | Err(_) => {}
    }
    let _ = Counters::parse(data);
    let _ = GrowthCounters::parse(data);
    // A growth map entry: a 16-byte key, then the value.
    if let Some((key, value)) = data.split_first_chunk::<16>() {
        if let Ok(e) = GrowthEntry::parse(key, value) {
            assert!((1..=oom_core::abi::GROWTH_MAX_DEPTH).contains(&e.stack().len()));
        }
    }
    // A bare chunk payload after its capture's 8-byte pc_base.
    if let Some((base, payload)) = data.split_first_chunk::<8>() {
        drain(payload, u64::from_le_bytes(*base));
    }
});
