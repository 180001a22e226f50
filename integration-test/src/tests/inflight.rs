//! The in-flight map on this host's kernel, without any rmap hook: the `raw_tp` start and end
//! programs are run with `BPF_PROG_TEST_RUN`, which runs them in the calling thread (so
//! `bpf_get_current_pid_tgid` is that thread's), with the map shrunk to one entry at load time.
use std::os::fd::{AsFd as _, AsRawFd as _};

use aya::programs::RawTracePoint;
use rmap_common::Counter;
use rmap_user::{
    attach::load::{self, Filters, KernelFacts},
    counters,
};

use crate::require_root;

/// Runs a `raw_tp` program once in this thread.
fn test_run(prog_fd: i32, args: &[u64; 3]) {
    if let Err(e) = crate::prog_run::raw_tp(prog_fd, args) {
        panic!("BPF_PROG_TEST_RUN: {e}");
    }
}

/// Three threads start a walk each and never end it (a missed return probe); with one entry,
/// the LRU map keeps the newest and evicts the two others, and the summary counts them. The
/// first thread's end then finds nothing: unpaired.
/// The object with an in-flight map of `inflight_entries` (0: its default), and the fds of
/// its `raw_tp` walk start and end programs.
fn walk_programs(inflight_entries: u32) -> (aya::Ebpf, i32, i32) {
    let facts = KernelFacts::read().expect("kernel facts");
    let filters = Filters {
        type_mask: u32::MAX,
        inflight_entries,
        ..Filters::default()
    };
    let mut ebpf = load::load_object(&filters, &facts).expect("object loads");
    let start = load_raw_tp(&mut ebpf, "raw_rmap_walk_start");
    let end = load_raw_tp(&mut ebpf, "raw_rmap_walk_end");
    (ebpf, start, end)
}

/// Loads the `raw_tp` program `name`; its fd, to run it with `BPF_PROG_TEST_RUN`.
fn load_raw_tp(ebpf: &mut aya::Ebpf, name: &str) -> i32 {
    let p: &mut RawTracePoint = ebpf
        .program_mut(name)
        .expect("program in the object")
        .try_into()
        .expect("a raw_tp program");
    p.load().expect("loads");
    p.fd().expect("loaded").as_fd().as_raw_fd()
}

#[test]
fn shrunk_inflight_map_evicts_and_counts() {
    require_root();
    let (ebpf, start, end) = walk_programs(1);
    let walk = [0xffff_8880_0000_1000_u64, 0xffff_8880_0000_2000, 0];
    for _ in 0..3 {
        // One thread per walk: the map is keyed by thread id.
        std::thread::spawn(move || test_run(start, &walk))
            .join()
            .expect("thread");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let k = counters::read(&ebpf).expect("counters");
    let detail = format!(
        "stored {}, taken {}, full {}, live {}, evicted {}",
        k.get(Counter::InflightStored),
        k.get(Counter::InflightTaken),
        k.get(Counter::InflightFull),
        k.inflight_live,
        k.inflight_evicted
    );
    assert_eq!(k.get(Counter::InflightStored), 3, "{detail}");
    assert_eq!(k.inflight_live, 1, "{detail}");
    assert_eq!(k.inflight_evicted, 2, "{detail}");
    // A thread whose start was evicted (or never seen) ends: unpaired, not a walk.
    std::thread::spawn(move || test_run(end, &walk))
        .join()
        .expect("thread");
    let k = counters::read(&ebpf).expect("counters");
    assert_eq!(k.get(Counter::Unpaired), 1);
    assert_eq!(k.get(Counter::WalksSeen), 0);
}

/// One thread starts a walk twice (a missed end, then a new walk): the second start finds the
/// first in flight (`BPF_NOEXIST` fails with -EEXIST), counts it as overlapping and replaces it;
/// nothing is evicted, and the end then counts one walk.
#[test]
fn a_second_start_on_a_thread_overlaps_and_replaces() {
    require_root();
    let (ebpf, start, end) = walk_programs(0);
    let walk = [0xffff_8880_0000_1000_u64, 0xffff_8880_0000_2000, 0];
    std::thread::spawn(move || {
        test_run(start, &walk);
        test_run(start, &walk);
        test_run(end, &walk);
    })
    .join()
    .expect("thread");
    let k = counters::read(&ebpf).expect("counters");
    let detail = format!(
        "stored {}, taken {}, overlapping {}, full {}, live {}, evicted {}, walks {}",
        k.get(Counter::InflightStored),
        k.get(Counter::InflightTaken),
        k.get(Counter::Overlapping),
        k.get(Counter::InflightFull),
        k.inflight_live,
        k.inflight_evicted,
        k.get(Counter::WalksSeen)
    );
    assert_eq!(k.get(Counter::Overlapping), 1, "{detail}");
    assert_eq!(k.get(Counter::InflightStored), 2, "{detail}");
    assert_eq!(k.get(Counter::InflightFull), 0, "{detail}");
    assert_eq!(k.get(Counter::InflightTaken), 1, "{detail}");
    assert_eq!(k.inflight_evicted, 0, "{detail}");
    assert_eq!(k.get(Counter::WalksSeen), 1, "{detail}");
}
