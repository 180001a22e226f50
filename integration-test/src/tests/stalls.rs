//! `--stalls` on this host's kernel, without any rmap hook: the `lock:contention_*` hooks
//! attached for real, a reader of this process's `mmap_lock` posing as a walk in flight (its
//! thread id put in `INFLIGHT` from here), and a writer that contends with it. The writer's
//! waits must be attributed to that "walk", through the rwsem's owner word, the task's pid at
//! its BTF offset and the in-flight table, exactly as in the guest.
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use aya::maps::{Array, HashMap, RingBuf};
use rmap_common::{
    Inflight, PageType, maps,
    stall::{StallCounter, Waiting},
};
use rmap_user::{
    attach::{
        self,
        load::{self, Filters, KernelFacts},
    },
    stalls::{StallReader, kernel},
};

use crate::require_root;

/// The fake walk's start, to find in the records.
const WALK_START: u64 = 0x5eed_0000_1234;
/// Give up after this long without an attributed wait.
const PATIENCE: Duration = Duration::from_secs(20);

/// Holds `mmap_lock` for reading, again and again: `mincore` over a large mapping walks its
/// page tables under `mmap_read_lock` (mm/mincore.c).
fn reader(stop: &AtomicBool, tid: &AtomicU32) {
    // SAFETY: gettid cannot fail.
    tid.store(unsafe { libc::gettid() } as u32, Ordering::Release);
    let len = 1usize << 30;
    // SAFETY: a fresh anonymous mapping, never touched.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    assert_ne!(base, libc::MAP_FAILED, "mmap for mincore");
    let mut vec = vec![0u8; len / 4096];
    while !stop.load(Ordering::Acquire) {
        // SAFETY: `vec` has one byte per page of the mapping.
        let rc = unsafe { libc::mincore(base, len, vec.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore");
    }
    // SAFETY: our mapping.
    unsafe { libc::munmap(base, len) };
}

/// Takes `mmap_lock` for writing, again and again (`mmap` and `munmap` of a page).
fn writer(stop: &AtomicBool, tid: &AtomicU32) {
    // SAFETY: gettid cannot fail.
    tid.store(unsafe { libc::gettid() } as u32, Ordering::Release);
    while !stop.load(Ordering::Acquire) {
        // SAFETY: a fresh page, unmapped at once.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED, "mmap");
            libc::munmap(p, 4096);
        }
    }
}

/// Starts the reader and the writer; returns once both have their thread ids.
fn contend(
    stop: &Arc<AtomicBool>,
    reader_tid: &Arc<AtomicU32>,
    writer_tid: &Arc<AtomicU32>,
) -> [std::thread::JoinHandle<()>; 2] {
    let threads = [
        {
            let (s, t) = (stop.clone(), reader_tid.clone());
            std::thread::spawn(move || reader(&s, &t))
        },
        {
            let (s, t) = (stop.clone(), writer_tid.clone());
            std::thread::spawn(move || writer(&s, &t))
        },
    ];
    while reader_tid.load(Ordering::Acquire) == 0 || writer_tid.load(Ordering::Acquire) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    threads
}

/// Puts `walker` in the in-flight table as a KSM walk begun at [`WALK_START`], in its first
/// slot (`tid % slots`, rmap-ebpf inflight.rs).
fn pretend_walk(ebpf: &mut aya::Ebpf, walker: u32) {
    let map = ebpf.map_mut(maps::INFLIGHT).expect("INFLIGHT");
    let mut inflight = Array::<_, Inflight>::try_from(map).expect("an array");
    let walk = Inflight {
        owner: rmap_common::inflight_owner(walker, WALK_START),
        start_ns: WALK_START,
        folio: 0,
        rwc: 0,
        switched_out_ns: 0,
        offcpu_ns: 0,
        rmap_one: 0,
        kind: Inflight::kind(PageType::Ksm as u32, 0),
        stall_waits: 0,
    };
    let slot = walker % inflight.len();
    inflight.set(slot, walk, 0).expect("a walk in flight");
}

/// `contention_end`'s gate (`WAITS_OPEN`) and the entries in `WAITING` it counts.
fn gate(ebpf: &aya::Ebpf) -> (u64, u64) {
    let open = Array::<_, u64>::try_from(ebpf.map(maps::WAITS_OPEN).expect("WAITS_OPEN"))
        .expect("an array")
        .get(&0, 0)
        .expect("its entry");
    let in_progress = HashMap::<_, u32, Waiting>::try_from(ebpf.map(maps::WAITING).expect("WAITING"))
        .expect("a hash map")
        .keys()
        .count();
    (open, in_progress as u64)
}

#[test]
fn a_writer_behind_a_walks_read_lock_is_its_victim() {
    require_root();
    let facts = KernelFacts::read().expect("kernel facts");
    let filters = Filters {
        type_mask: u32::MAX,
        stalls: true,
        ..Filters::default()
    };
    let mut ebpf = load::load_object(&filters, &facts).expect("object loads");
    let points = attach::stalls::attach(&mut ebpf, &facts).expect("lock hooks attach");
    assert_eq!(points.len(), 2, "{points:?}");
    let stop = Arc::new(AtomicBool::new(false));
    let (reader_tid, writer_tid) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let threads = contend(&stop, &reader_tid, &writer_tid);
    let walker = reader_tid.load(Ordering::Acquire);
    pretend_walk(&mut ebpf, walker);
    let started = Instant::now();
    while kernel::read(&ebpf)
        .expect("stall counters")
        .get(StallCounter::Waits)
        == 0
        && started.elapsed() < PATIENCE
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Release);
    for t in threads {
        t.join().expect("thread");
    }
    let counts = kernel::read(&ebpf).expect("stall counters");
    let (open, in_progress) = gate(&ebpf);
    assert_eq!(
        open, in_progress,
        "contention_end's gate counts the waits in progress"
    );
    let ring = RingBuf::try_from(ebpf.take_map(maps::STALLS).expect("STALLS")).expect("a ring buffer");
    let mut reader = StallReader::new(ring);
    reader.drain();
    let waits = counts.get(StallCounter::Waits);
    assert!(
        waits > 0,
        "no wait attributed in {PATIENCE:?}: {:?}",
        counts.counters
    );
    assert_eq!(
        counts.waits(),
        waits,
        "every attributed wait is in the histogram: {:?}",
        counts.counters
    );
    // The writer waited; other threads of this test process (other tests run beside it)
    // that met the reader's `mmap_lock` while the writer was queued are victims too.
    let victims = reader.agg.victim_rows();
    let writer_tid = writer_tid.load(Ordering::Acquire);
    let writer_waits: u64 = victims
        .iter()
        .flat_map(|v| v.threads.iter())
        .filter(|t| t.pid == Some(writer_tid))
        .map(|t| t.waits.waits)
        .sum();
    let me = std::process::id();
    assert!(
        writer_waits > 0 && victims.iter().all(|v| v.tgid == Some(me)),
        "the writer waited ({writer_waits} waits), and only threads of this process: {victims:?}"
    );
    let walks = reader.agg.walk_rows(usize::MAX);
    assert!(
        walks
            .iter()
            .all(|w| w.walker_pid == walker && w.walk_start_ns == WALK_START && w.page_type == "ksm"),
        "every wait is for the fake walk: {walks:?}"
    );
    let map = ebpf.map(maps::INFLIGHT).expect("INFLIGHT");
    let inflight = Array::<_, Inflight>::try_from(map).expect("an array");
    let left = inflight
        .get(&(walker % inflight.len()), 0)
        .expect("the walk still in flight");
    assert_eq!(left.owner as u32, walker, "the walk's slot");
    assert_eq!(
        u64::from(left.stall_waits),
        waits,
        "the walk counted each wait it caused"
    );
}
