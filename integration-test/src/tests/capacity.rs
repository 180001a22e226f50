//! The pipeline's short capacity check (the timed one is `cargo xtask bench capacity`): a ring
//! buffer filled past its capacity by the real programs while nothing reads, then drained
//! through the real decoder, aggregator and writers. Every record is read once, the drops are
//! exactly the walks that found no room, and the kernel's histograms count every walk.
use std::{collections::BTreeSet, fs};

use rmap_common::Counter;
use rmap_user::export::read;

use crate::{
    TempDir,
    capacity::{self, Rig, Stage},
    require_root,
};

/// 64 KiB: 630 records, filled in a few ms.
const RING_BYTES: u32 = 64 * 1024;
const EXTRA: u64 = 100;

#[test]
fn a_full_ring_drains_whole_and_drops_are_exact() {
    require_root();
    let dir = TempDir(std::env::temp_dir().join(format!("rmap-capacity-{}", std::process::id())));
    fs::create_dir_all(&dir.0).expect("temp dir");
    let mut rig = Rig::new(RING_BYTES).expect("object loads, programs load");
    let cap = capacity::capacity(RING_BYTES);
    let mut attempted = 0;
    // Twice: the second fill starts mid-buffer, so records wrap around its end.
    for round in 0..2 {
        let fill = rig.fill(cap + EXTRA).expect("test runs");
        attempted += fill.attempted;
        assert_eq!(fill.attempted, cap + EXTRA, "round {round}: {fill:?}");
        assert_eq!(fill.reserved, cap, "round {round}: {fill:?}");
        assert_eq!(
            fill.drops,
            fill.attempted - fill.reserved,
            "round {round}: {fill:?}"
        );
        let counts = rig.counts().expect("counters");
        let out = capacity::drain(&mut rig, Stage::All, &dir.0, &counts).expect("drain");
        let total = out.total.expect("a sink's aggregate");
        assert_eq!(out.records, fill.reserved, "round {round}");
        assert_eq!(total.records, fill.reserved, "round {round}");
        assert_eq!(rig.walks.decoder.decode_errors, 0);
        // Counts come from the kernel's histograms: every walk, dropped or not.
        assert_eq!(total.walks(), attempted, "round {round}");
        let log = read::load(&dir.0.join("capacity.hlog")).expect("interval log");
        let logged: u64 = log.tags.values().map(hdrhistogram::Histogram::len).sum();
        assert_eq!(logged, attempted, "round {round}: interval log");
        // One CSV line per record, each walk once: the first `cap` walks of the fill.
        let csv = fs::read_to_string(dir.0.join("capacity.csv")).expect("csv");
        let folios: Vec<u64> = csv
            .lines()
            .skip(1)
            .map(|l| {
                let f = l.split(',').nth(11).expect("folio column");
                u64::from_str_radix(f.trim_start_matches("0x"), 16).expect("hex folio")
            })
            .collect();
        let want: BTreeSet<u64> = (0..cap).map(|i| 0xffff_8880_0000_0000 + (i << 12)).collect();
        assert_eq!(folios.len() as u64, cap, "round {round}: csv lines");
        assert_eq!(
            folios.iter().copied().collect::<BTreeSet<_>>(),
            want,
            "round {round}"
        );
        let text = out
            .metrics
            .expect("metrics")
            .lock()
            .expect("metrics lock")
            .encode()
            .expect("encode");
        let drops = counts.get(Counter::RingbufDrops);
        assert!(
            text.contains(&format!("\nrmap_ringbuf_drops_total {drops}\n")),
            "{drops} drops: {text}"
        );
        // Nothing left: a second drain reads nothing.
        assert_eq!(rig.decode_only(), 0);
    }
}
