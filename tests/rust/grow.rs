//! grow.rs: a Rust program whose memory grows through `grow_vec` (1 MiB every 10 ms,
//! each page touched by grow_vec itself) up to `max_mib` (argument 1, default 160),
//! then idles until killed. The growth tests build it with
//! `-C force-frame-pointers=yes`.

use std::io::Write;
use std::time::Duration;

#[inline(never)]
fn grow_vec(kept: &mut Vec<Vec<u8>>) {
    // calloc'd: the pages fault here, at the first write.
    let mut b = vec![0u8; 1 << 20];
    for i in (0..b.len()).step_by(4096) {
        b[i] = 1;
    }
    kept.push(std::hint::black_box(b));
}

#[inline(never)]
fn serve(kept: &mut Vec<Vec<u8>>, max: usize) {
    loop {
        if kept.len() < max {
            grow_vec(kept);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn main() {
    let max = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(160);
    println!("ready pid={}", std::process::id());
    let _ = std::io::stdout().flush();
    let mut kept = Vec::new();
    serve(&mut kept, max);
}
