//! 100,000 processes through the per-process table and the name cache, as the walks of a busy
//! host would come: the memory they hold stays bounded (the tracer's bound for everything but
//! the ring buffer: 32 MiB). Alone in its test binary, so that the resident size measured is this
//! test's.
use rmap_common::{FLAG_OFFCPU_VALID, PageType, Source, WalkEvent};
use rmap_user::{
    procs::{
        names::{NAMES_CAP, ProcessNames},
        table::{OTHER, TOP},
    },
    trace_loop::sink::Sink,
};

const PROCESSES: u32 = 100_000;
const BOUND: u64 = 32 << 20;

/// Resident bytes of this process (`/proc/self/statm`, second field, in pages).
fn resident() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("reading /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .expect("statm's resident field");
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).expect("page size is positive")
}

/// A process that exists for every tgid, with a long name, so that every lookup fills the cache.
fn synthetic(tgid: u32) -> (u64, String) {
    (u64::from(tgid) * 3 + 1, format!("synthetic-process-{tgid:08}"))
}

fn walk(tgid: u32, i: u64) -> WalkEvent {
    let mut comm = [0u8; 16];
    comm[..6].copy_from_slice(b"worker");
    WalkEvent {
        start_ns: i,
        // Spread over 1 µs .. 10 ms, so that each histogram touches many buckets.
        duration_ns: 1_000 + (u64::from(tgid) * 7919 + i * 104_729) % 10_000_000,
        rmap_one: 1,
        pid: tgid,
        tgid,
        page_type: PageType::Anon as u32,
        source: Source::Kprobe as u32,
        flags: FLAG_OFFCPU_VALID,
        comm,
        ..WalkEvent::default()
    }
}

#[test]
fn a_hundred_thousand_processes_stay_bounded() {
    let before = resident();
    let mut sink = Sink::default();
    let mut names = ProcessNames::with_reader(|tgid| Some(synthetic(tgid)));
    let mut walks = 0u64;
    for tgid in 1..=PROCESSES {
        // One in ten processes walks often, the others a few times.
        let n = if tgid % 10 == 0 { 20 } else { 3 };
        for i in 0..n {
            let ev = walk(tgid, i);
            sink.record(&ev, "migrate", names.lookup(&ev));
            walks += 1;
        }
        // A ring-buffer slice's worth of walks, then the lookups the session makes between
        // slices, and an interval every 10,000 processes.
        if tgid % 256 == 0 {
            names.resolve(64);
        }
        if tgid % 10_000 == 0 {
            let interval = sink.end_interval();
            assert!(interval.process_rows(usize::MAX).len() <= TOP + 1);
        }
    }
    let after = resident();
    let grown = after.saturating_sub(before);
    println!(
        "{PROCESSES} processes, {walks} walks: resident {:.1} MiB before, {:.1} MiB after, grown {:.1} MiB (bound {} MiB)",
        before as f64 / 1_048_576.0,
        after as f64 / 1_048_576.0,
        grown as f64 / 1_048_576.0,
        BOUND >> 20
    );
    let rows = sink.total.process_rows(usize::MAX);
    assert!(rows.len() <= TOP + 1, "{} rows", rows.len());
    assert_eq!(
        rows.iter().map(|r| r.count).sum::<u64>(),
        walks,
        "rows and other add up"
    );
    assert_eq!(rows.last().map(|r| r.key.as_str()), Some(OTHER));
    assert!(names.len() <= NAMES_CAP, "{} names", names.len());
    assert!(grown < BOUND, "grew {grown} bytes");
}
