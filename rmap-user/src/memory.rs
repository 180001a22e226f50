//! The tracer's own memory: glibc's allocator statistics and the sizes of the long-lived
//! tables, logged at debug level under this module's target for `cargo xtask bench memory`'s
//! breakdown, and the heap freed after attaching (the parsed BTF) handed back to the system.
use std::fmt;

/// The log target of the reports: `RUST_LOG=rmap_user::memory=debug` shows them.
pub const TARGET: &str = "rmap_user::memory";

/// glibc's allocator statistics (`mallinfo2`), summed over its arenas, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Heap {
    /// Allocated: chunks in use in the arenas, and chunks mapped on their own.
    pub in_use: usize,
    /// Free chunks in the arenas: resident until trimmed or reused.
    pub free: usize,
    /// What the arenas hold from the system (`brk` heap and mapped heaps).
    pub arena: usize,
    /// Chunks mapped on their own (large allocations), part of `in_use`.
    pub mapped: usize,
}

impl Heap {
    /// The statistics now; `None` with an allocator other than glibc's.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    pub fn now() -> Option<Self> {
        // SAFETY: mallinfo2 takes no arguments and only reads the allocator's state.
        let m = unsafe { libc::mallinfo2() };
        Some(Self {
            in_use: m.uordblks + m.hblkhd,
            free: m.fordblks,
            arena: m.arena,
            mapped: m.hblkhd,
        })
    }

    /// The statistics now; `None` with an allocator other than glibc's.
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    pub fn now() -> Option<Self> {
        None
    }
}

impl fmt::Display for Heap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "heap_in_use={} heap_free={} heap_arena={} heap_mapped={}",
            self.in_use, self.free, self.arena, self.mapped
        )
    }
}

/// Hands the arenas' free pages back to the system (`malloc_trim`): after attaching, the
/// parsed BTF and the object's sections are freed, but glibc keeps freed chunks below the top
/// of its heap resident. Returns whether any memory was released.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() -> bool {
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Does nothing with an allocator other than glibc's.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() -> bool {
    false
}

/// Trims the heap at most once a [`Trimmer::period`]: called between ring-buffer slices, it
/// keeps what a run allocates and frees meanwhile (scrapes, process rows, the interval log's
/// encoding) from staying resident for long. A trim costs tens of µs.
#[derive(Debug)]
pub struct Trimmer {
    last: std::time::Instant,
    period: std::time::Duration,
}

impl Trimmer {
    /// Once a second.
    pub fn new() -> Self {
        Self::every(std::time::Duration::from_secs(1))
    }

    pub fn every(period: std::time::Duration) -> Self {
        Self {
            last: std::time::Instant::now(),
            period,
        }
    }

    pub fn period(&self) -> std::time::Duration {
        self.period
    }

    /// Trims when the period has passed since the last trim; returns whether it did.
    pub fn tick(&mut self) -> bool {
        if self.last.elapsed() < self.period {
            return false;
        }
        self.last = std::time::Instant::now();
        trim();
        true
    }
}

impl Default for Trimmer {
    fn default() -> Self {
        Self::new()
    }
}

/// `PR_SET_THP_DISABLE` (include/uapi/linux/prctl.h), which the libc crate lacks for Linux.
const PR_SET_THP_DISABLE: libc::c_int = 41;

/// Keeps this process's memory in small pages (`PR_SET_THP_DISABLE`): with transparent huge
/// pages `always`, khugepaged collapses stretches of the heap into 2 MiB pages, resident whole
/// however little of them is in use, and a trim must split them again. For a process that runs
/// no workload (the setting is the process's, and its children inherit it). Returns whether
/// the kernel took it.
pub fn small_pages() -> bool {
    // SAFETY: PR_SET_THP_DISABLE takes an integer flag and touches no memory of ours.
    unsafe { libc::prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0 }
}

/// Makes every thread allocate from glibc's main arena (`M_ARENA_MAX` 1); call before other
/// threads start. A thread otherwise gets an arena of its own, a mapping whose touched pages
/// stay resident and which [`trim`] shrinks only from its top; the tracer's few threads (the
/// interval log's writer, workloads) allocate rarely, so they do not contend. Returns whether
/// the allocator took the setting.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn one_arena() -> bool {
    // SAFETY: mallopt only sets an allocator parameter; M_ARENA_MAX takes any positive count.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) == 1 }
}

/// Does nothing with an allocator other than glibc's.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn one_arena() -> bool {
    false
}

/// Whether the reports are logged: sizes need only be counted then.
pub fn enabled() -> bool {
    log::log_enabled!(target: TARGET, log::Level::Debug)
}

/// Logs `what` with the heap statistics and `parts` (name, bytes) at debug level under
/// [`TARGET`], one line: `<what>: heap_in_use=N … name=N …`.
pub fn report(what: &str, parts: &[(&str, usize)]) {
    if enabled() {
        log::debug!(target: TARGET, "{}", line(what, Heap::now(), parts));
    }
}

fn line(what: &str, heap: Option<Heap>, parts: &[(&str, usize)]) -> String {
    let mut s = format!("{what}:");
    if let Some(h) = heap {
        s += &format!(" {h}");
    }
    for (name, bytes) in parts {
        s += &format!(" {name}={bytes}");
    }
    s
}

/// Bytes of an HdrHistogram's counts (what it holds on the heap, its few fields aside).
pub fn hist_bytes(h: &hdrhistogram::Histogram<u64>) -> usize {
    h.distinct_values() * size_of::<u64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An allocation counts as in use until freed; the arenas hold what is in use and free.
    #[test]
    fn statistics_follow_allocations() {
        // 128 MiB in chunks below the mmap threshold (they come from an arena); the margin
        // (a quarter) is for the tests running meanwhile in other threads.
        const CHUNK: usize = 32 * 1024;
        const TOTAL: usize = 4096 * CHUNK;
        let Some(before) = Heap::now() else {
            return;
        };
        let v: Vec<Vec<u8>> = (0..4096).map(|i| vec![i as u8; CHUNK]).collect();
        let held = Heap::now().expect("glibc");
        assert!(
            held.in_use + TOTAL / 4 >= before.in_use + TOTAL,
            "{before} then {held}"
        );
        drop(v);
        let freed = Heap::now().expect("glibc");
        assert!(
            freed.in_use + TOTAL <= held.in_use + TOTAL / 4,
            "{held} then {freed}"
        );
        assert!(
            freed.free + freed.in_use <= freed.arena + freed.mapped + TOTAL / 4,
            "{freed}"
        );
    }

    fn resident_bytes() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
        let pages: usize = statm
            .split_whitespace()
            .nth(1)
            .expect("resident")
            .parse()
            .expect("a number");
        // SAFETY: sysconf has no preconditions.
        pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
    }

    /// Freed chunks below a live one stay resident until trimmed; trimming hands them back.
    #[test]
    fn trim_hands_freed_heap_back() {
        const CHUNK: usize = 32 * 1024;
        const TOTAL: usize = 2048 * CHUNK;
        if Heap::now().is_none() {
            return;
        }
        let v: Vec<Vec<u8>> = (0..2048).map(|i| vec![i as u8 | 1; CHUNK]).collect();
        let keep = vec![1u8; CHUNK];
        drop(v);
        let before = resident_bytes();
        trim();
        let after = resident_bytes();
        assert!(after + TOTAL / 2 <= before, "resident {before} then {after}");
        drop(keep);
    }

    #[test]
    fn trims_at_most_once_a_period() {
        let mut t = Trimmer::every(std::time::Duration::from_millis(50));
        assert!(!t.tick(), "trimmed before its period");
        std::thread::sleep(t.period());
        assert!(t.tick());
        assert!(!t.tick(), "trimmed twice in one period");
    }

    #[test]
    fn small_pages_are_taken() {
        assert!(small_pages());
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        // Kernels since 5.0 say so in /proc/PID/status.
        if let Some(l) = status.lines().find(|l| l.starts_with("THP_enabled:")) {
            assert_eq!(l.split_whitespace().nth(1), Some("0"), "{l}");
        }
    }

    #[test]
    fn one_arena_is_taken() {
        if Heap::now().is_some() {
            assert!(one_arena());
        }
    }

    #[test]
    fn report_lines() {
        let h = Heap {
            in_use: 1,
            free: 2,
            arena: 3,
            mapped: 4,
        };
        assert_eq!(
            line("attached", Some(h), &[("kallsyms", 5)]),
            "attached: heap_in_use=1 heap_free=2 heap_arena=3 heap_mapped=4 kallsyms=5"
        );
        assert_eq!(line("interval", None, &[]), "interval:");
    }
}
