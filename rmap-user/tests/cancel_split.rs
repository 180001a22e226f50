//! The workload's long loops stop at their next check once cancelled from another thread (the
//! async side does it on SIGINT/SIGTERM or a trace error): the mprotect split makes no call
//! after the cancellation, its region is unmapped when dropped; `move_pages`, once cancelled,
//! makes none at all. No root needed: no call below migrates anything.
mod common;

use common::{Canceller, vmas_in};
use rmap_user::workload::{
    cancel::Cancelled,
    migrate,
    region::{PAGE, Region},
};

/// mprotect calls made before the cancellation.
const AT: usize = 100;

#[test]
fn split_and_move_pages_stop_after_a_cancel_from_another_thread() {
    let canceller = Canceller::spawn();
    let mut region = Region::anon(2000, false).expect("mapping the region");
    let (base, len) = (region.addr(0) as usize, region.pages() * PAGE);
    let mut calls = 0;
    let err = region
        .split(|n| {
            calls = n;
            if n == AT {
                canceller.cancel_and_wait();
            }
        })
        .expect_err("the split ran on to its end after the cancellation");
    assert!(
        err.downcast_ref::<Cancelled>().is_some(),
        "not cancelled: {err:#}"
    );
    assert_eq!(calls, AT, "mprotect calls made after the cancellation");
    // AT read-only pages split out of the first 2·AT pages, then the rest in one VMA.
    assert_eq!(vmas_in(base, len), 2 * AT + 1);
    drop(region);
    assert_eq!(vmas_in(base, len), 0, "the region is still mapped after its drop");

    let region = Region::anon(8, false).expect("mapping the region");
    let mut calls = 0;
    let err = migrate::move_pages(&region, 8, 0, 1, |n| calls = n)
        .expect_err("move_pages ran after the cancellation");
    assert!(
        err.downcast_ref::<Cancelled>().is_some(),
        "not cancelled: {err:#}"
    );
    assert_eq!(calls, 0, "move_pages calls made after the cancellation");
}
