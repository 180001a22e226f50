//! The host's own `sched_switch` format, through tracefs (mounted if it is not).
use rmap_user::kernel::tracefs::{Tracefs, sched_next_pid};

use crate::require_root;

#[test]
fn host_sched_switch_format() {
    require_root();
    let t = Tracefs::find_or_mount().expect("tracefs mounted on the host");
    let fields = t.format("sched", "sched_switch").unwrap();
    let next = sched_next_pid(&fields).unwrap();
    let prev = fields.iter().find(|f| f.name == "prev_pid").unwrap().offset;
    let comm = fields.iter().find(|f| f.name == "next_comm").unwrap();
    assert_eq!(comm.size, 16);
    assert!(
        next > prev && next > comm.offset,
        "next_pid {next} after prev_pid {prev} and next_comm"
    );
    assert!(!t.has_event("rmap", "rmap_walk_no_such"));
}
