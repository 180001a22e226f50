//! `--mremap`'s page-by-page loop stops at its next check once cancelled from another thread,
//! and unmaps both ranges (the pages moved and the pages not yet moved): nothing of the
//! region is left mapped. No root needed.
mod common;

use common::{Canceller, nameless, vmas_in};
use rmap_user::workload::{
    cancel::Cancelled,
    region::{PAGE, Region},
};

/// Pages moved before the cancellation.
const AT: usize = 100;
/// Pages of the region.
const PAGES: usize = 2048;

#[test]
fn mremap_stops_after_a_cancel_from_another_thread_and_unmaps_both_ranges() {
    let canceller = Canceller::spawn();
    let before = nameless();
    let mut region = Region::anon(PAGES, false).expect("mapping the region");
    let (base, len) = (region.addr(0) as usize, region.pages() * PAGE);
    let mut moved = 0;
    // The new range's mappings, seen when the cancellation is raised.
    let mut new_range = Vec::new();
    let err = region
        .mremap_away(|n| {
            moved = n;
            if n == AT {
                // Fresh address space only: a malloc arena that grew changed its ranges too.
                new_range = nameless()
                    .into_iter()
                    .filter(|(a, b)| !before.iter().any(|(c, d)| a < d && c < b))
                    .collect();
                canceller.cancel_and_wait();
            }
        })
        .expect_err("mremap ran on to its end after the cancellation");
    assert!(
        err.downcast_ref::<Cancelled>().is_some(),
        "not cancelled: {err:#}"
    );
    assert_eq!(moved, AT, "pages moved after the cancellation");
    assert_eq!(vmas_in(base, len), 0, "the old range is still mapped");
    drop(region);
    assert!(!new_range.is_empty(), "no new mapping seen while moving");
    let left: Vec<_> = new_range.iter().filter(|(a, b)| vmas_in(*a, b - a) > 0).collect();
    assert!(left.is_empty(), "the new range is still mapped: {left:x?}");
}
