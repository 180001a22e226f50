//! The in-flight table on this host's kernel, without any rmap hook: the `raw_tp` start and end
//! programs are run with `BPF_PROG_TEST_RUN`, which runs them in the calling thread (so
//! `bpf_get_current_pid_tgid` is that thread's), with the table shrunk to one slot at load time.
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

/// The object with an in-flight table of `inflight_entries` slots and a stale age of
/// `stale_ns` (`None`: the defaults), and the fds of its `raw_tp` walk start and end programs.
fn walk_programs(inflight_entries: Option<u32>, stale_ns: Option<u64>) -> (aya::Ebpf, i32, i32) {
    let facts = KernelFacts::read().expect("kernel facts");
    let filters = Filters {
        type_mask: u32::MAX,
        inflight_entries,
        inflight_stale_ns: stale_ns,
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

/// What the table's counters say, for a failed assertion.
fn detail(k: &counters::KernelCounts) -> String {
    format!(
        "full {}, evicted {}, overlapping {}, unpaired {}, walks {}",
        k.get(Counter::InflightFull),
        k.get(Counter::InflightEvicted),
        k.get(Counter::Overlapping),
        k.get(Counter::Unpaired),
        k.get(Counter::WalksSeen)
    )
}

/// One slot: a second thread's start finds it held by a live walk, is not measured (full) and
/// its end (on the same thread) is unpaired; once the first start is older than the stale age
/// (its end missed), a third thread takes the slot over (evicted) and its walk is counted; the
/// first thread's end, arriving after all, finds nothing: unpaired.
#[test]
fn a_full_table_refuses_and_a_stale_slot_is_taken_over() {
    require_root();
    let stale = std::time::Duration::from_secs(2);
    let (ebpf, start, end) = walk_programs(Some(1), Some(stale.as_nanos() as u64));
    let walk = [0xffff_8880_0000_1000_u64, 0xffff_8880_0000_2000, 0];
    let (first_start, first_end) = std::sync::mpsc::channel::<()>();
    let first = std::thread::spawn(move || {
        test_run(start, &walk);
        first_end.recv().expect("the test says when");
        test_run(end, &walk);
    });
    std::thread::sleep(std::time::Duration::from_millis(20));
    start_and_end(start, end, walk);
    let k = counters::read(&ebpf).expect("counters");
    assert_eq!(k.get(Counter::InflightFull), 1, "{}", detail(&k));
    assert_eq!(k.get(Counter::Unpaired), 1, "{}", detail(&k));
    assert_eq!(k.get(Counter::InflightEvicted), 0, "{}", detail(&k));
    assert_eq!(k.get(Counter::WalksSeen), 0, "{}", detail(&k));
    std::thread::sleep(stale + std::time::Duration::from_millis(200));
    start_and_end(start, end, walk);
    first_start.send(()).expect("first thread waits");
    first.join().expect("first thread");
    let k = counters::read(&ebpf).expect("counters");
    assert_eq!(k.get(Counter::InflightEvicted), 1, "{}", detail(&k));
    assert_eq!(k.get(Counter::WalksSeen), 1, "{}", detail(&k));
    assert_eq!(k.get(Counter::Unpaired), 2, "{}", detail(&k));
    assert_eq!(k.get(Counter::InflightFull), 1, "{}", detail(&k));
}

/// Two slots: three threads whose home slot is the same (`tid % 2`) start a walk each and hold
/// it. The second is stored in the slot after its home slot (probing); the third finds both
/// slots held and is refused, and its end is unpaired; the two others' ends find their slots
/// and count their walks. Threads of the other home slot, met on the way, end at once: before
/// the second holds its slot they are stored and counted, after it they are refused too.
#[test]
fn a_start_probes_past_a_held_slot() {
    require_root();
    let (ebpf, start, end) = walk_programs(Some(2), None);
    let walk = [0xffff_8880_0000_1000_u64, 0xffff_8880_0000_2000, 0];
    let first = Holder::start(start, end, walk);
    let same_home = |others: &mut u64| loop {
        let h = Holder::start(start, end, walk);
        if h.tid % 2 == first.tid % 2 {
            break h;
        }
        h.end();
        *others += 1;
    };
    let (mut counted, mut refused) = (0, 0);
    let second = same_home(&mut counted);
    let k = counters::read(&ebpf).expect("counters");
    assert_eq!(
        k.get(Counter::InflightFull),
        0,
        "the second start, its home slot held, was refused: {}",
        detail(&k)
    );
    let third = same_home(&mut refused);
    for h in [third, second, first] {
        h.end();
    }
    let k = counters::read(&ebpf).expect("counters");
    assert_eq!(k.get(Counter::InflightFull), 1 + refused, "{}", detail(&k));
    assert_eq!(k.get(Counter::WalksSeen), 2 + counted, "{}", detail(&k));
    assert_eq!(k.get(Counter::Unpaired), 1 + refused, "{}", detail(&k));
}

/// A thread that has started a walk and ends it when told.
struct Holder {
    tid: u32,
    go: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Holder {
    fn start(start: i32, end: i32, walk: [u64; 3]) -> Self {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            test_run(start, &walk);
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            tid_tx.send(tid.cast_unsigned()).expect("the test waits");
            wait.recv().expect("the test says when");
            test_run(end, &walk);
        });
        let tid = tid_rx.recv().expect("holder's tid");
        Self { tid, go, thread }
    }

    fn end(self) {
        self.go.send(()).expect("holder waits");
        self.thread.join().expect("holder");
    }
}

/// A walk's start and end on one new thread.
fn start_and_end(start: i32, end: i32, walk: [u64; 3]) {
    std::thread::spawn(move || {
        test_run(start, &walk);
        test_run(end, &walk);
    })
    .join()
    .expect("thread");
}

/// One thread starts a walk twice (a missed end, then a new walk): the second start finds its
/// own slot still held, counts it as overlapping and replaces it; nothing is full or evicted,
/// and the end then counts one walk.
#[test]
fn a_second_start_on_a_thread_overlaps_and_replaces() {
    require_root();
    let (ebpf, start, end) = walk_programs(None, None);
    let walk = [0xffff_8880_0000_1000_u64, 0xffff_8880_0000_2000, 0];
    std::thread::spawn(move || {
        test_run(start, &walk);
        test_run(start, &walk);
        test_run(end, &walk);
    })
    .join()
    .expect("thread");
    let k = counters::read(&ebpf).expect("counters");
    assert_eq!(k.get(Counter::Overlapping), 1, "{}", detail(&k));
    assert_eq!(k.get(Counter::InflightFull), 0, "{}", detail(&k));
    assert_eq!(k.get(Counter::InflightEvicted), 0, "{}", detail(&k));
    assert_eq!(k.get(Counter::Unpaired), 0, "{}", detail(&k));
    assert_eq!(k.get(Counter::WalksSeen), 1, "{}", detail(&k));
}
