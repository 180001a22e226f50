//! Process names and start times by tgid, from `/proc/<tgid>/stat`, in a bounded LRU cache.
//!
//! The event path only looks up the cache; a tgid it lacks is queued (a bounded set) and read
//! later in a batch ([`ProcessNames::resolve`], called between ring-buffer slices), the walk
//! meanwhile named after its process's comm as the kernel read it (`group_leader->comm`; the
//! thread's comm where that was unreadable: a JVM's threads each have their own) with start
//! time 0 (the tables merge that provisional
//! row into the process's own once the start time is known, see `table`). A cached entry is
//! read again once it is [`RECHECK`] old at a batch (the clock is read per batch, not per walk),
//! so a pid reused by a new process is told apart within that time plus two batches. Limit: the event carries no start time (the eBPF record has tgid only), so
//! walks of a process that exited and whose pid was reused before the next check are counted
//! under the new one; and a process that exits before its first lookup keeps start time 0.
use std::time::{Duration, Instant};

// Looked up for every walk record: see `top`.
use foldhash::HashMap;

use rmap_common::WalkEvent;

use super::Process;
use crate::events;

/// Most processes whose names are kept.
pub const NAMES_CAP: usize = 4096;
/// Most tgids waiting for a lookup; beyond, a walk keeps its thread's comm until a later one.
pub const PENDING_CAP: usize = 1024;
/// Age after which a cached entry is read again (to see a pid reused by a new process).
pub const RECHECK: Duration = Duration::from_secs(5);

/// What `/proc/<tgid>/stat` says: start time and name; `None` when the process is gone.
pub type Reader = fn(u32) -> Option<(u64, String)>;

struct Entry {
    start: u64,
    name: String,
    used: u64,
    read_at: Instant,
}

/// The cache; see the module's doc.
pub struct ProcessNames {
    cache: HashMap<u32, Entry>,
    /// Queued tgids with the process comm of the walk (the name if the process is gone).
    pending: HashMap<u32, [u8; 16]>,
    /// Use counter for LRU order.
    clock: u64,
    reader: Reader,
    /// The name handed out for a tgid not cached yet.
    provisional: String,
    /// The clock at the last [`Self::resolve`]: entries are aged against it, so that a lookup
    /// reads no clock (a walk record's whole handling costs a few clock reads).
    now: Instant,
}

impl Default for ProcessNames {
    fn default() -> Self {
        Self::with_reader(read_stat)
    }
}

impl ProcessNames {
    /// A cache that reads processes with `reader` instead of /proc (tests).
    pub fn with_reader(reader: Reader) -> Self {
        Self {
            cache: HashMap::default(),
            pending: HashMap::default(),
            clock: 0,
            reader,
            provisional: String::new(),
            now: Instant::now(),
        }
    }

    /// The process of `ev`, without I/O: cached, or provisional (start 0, the process comm the
    /// kernel read) and queued for [`Self::resolve`].
    pub fn lookup(&mut self, ev: &WalkEvent) -> Process<'_> {
        self.clock += 1;
        let clock = self.clock;
        if let Some(e) = self.cache.get_mut(&ev.tgid) {
            e.used = clock;
            if self.now.saturating_duration_since(e.read_at) >= RECHECK && self.pending.len() < PENDING_CAP {
                self.pending.entry(ev.tgid).or_insert(*events::process_comm(ev));
            }
            return Process {
                start: e.start,
                name: &e.name,
            };
        }
        let name = events::process_comm(ev);
        if self.pending.len() < PENDING_CAP {
            self.pending.entry(ev.tgid).or_insert(*name);
        }
        // Into the same buffer each time: no allocation per walk while the lookup waits.
        self.provisional.clear();
        self.provisional.push_str(&events::text(name));
        Process::named(&self.provisional)
    }

    /// Reads up to `max` queued processes; returns how many were read.
    pub fn resolve(&mut self, max: usize) -> usize {
        self.now = Instant::now();
        let batch: Vec<(u32, [u8; 16])> = self.pending.iter().take(max).map(|(t, c)| (*t, *c)).collect();
        for (tgid, comm) in &batch {
            self.pending.remove(tgid);
            let (start, name) = (self.reader)(*tgid).unwrap_or_else(|| (0, comm_text(comm)));
            self.insert(*tgid, start, name);
        }
        batch.len()
    }

    fn insert(&mut self, tgid: u32, start: u64, name: String) {
        if self.cache.len() >= NAMES_CAP && !self.cache.contains_key(&tgid) {
            self.evict_oldest();
        }
        self.cache.insert(
            tgid,
            Entry {
                start,
                name,
                used: self.clock,
                read_at: self.now,
            },
        );
    }

    /// Drops the least recently used eighth at once, so that eviction costs O(1) per insert
    /// on average.
    fn evict_oldest(&mut self) {
        let mut used: Vec<u64> = self.cache.values().map(|e| e.used).collect();
        let nth = used.len() / 8;
        let (_, cut, _) = used.select_nth_unstable(nth);
        let cut = *cut;
        self.cache.retain(|_, e| e.used > cut);
    }

    /// Bytes the cache and the queue hold on the heap.
    pub fn heap_bytes(&self) -> usize {
        let names: usize = self.cache.values().map(|e| e.name.capacity()).sum();
        self.cache.capacity() * size_of::<(u32, Entry)>()
            + names
            + self.pending.capacity() * size_of::<(u32, [u8; 16])>()
    }

    /// Processes cached.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// Tgids waiting for a lookup.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

fn comm_text(comm: &[u8; 16]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

/// `/proc/<tgid>/stat`: the name between the first `(` and the last `)` (a comm may hold
/// both), the start time as field 22 (proc(5)), counted from the `)`: field 3 is the first after
/// it.
fn read_stat(tgid: u32) -> Option<(u64, String)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{tgid}/stat")).ok()?)
}

pub fn parse_stat(text: &str) -> Option<(u64, String)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_string();
    let start = text
        .get(close + 1..)?
        .split_whitespace()
        .nth(22 - 3)?
        .parse()
        .ok()?;
    Some((start, name))
}

#[cfg(test)]
mod tests {
    use rmap_common::PageType;

    use super::*;
    use crate::events::tests::event;

    #[test]
    fn stat_fields() {
        let line = "4240 (C2 (x) y) S 1 4240 4240 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 30 0 987654 123 45";
        assert_eq!(parse_stat(line), Some((987_654, "C2 (x) y".to_string())));
        assert_eq!(parse_stat("4240 (java) S 1"), None);
        let own = read_stat(std::process::id()).expect("own stat");
        assert!(own.0 > 0);
    }

    fn fake(tgid: u32) -> Option<(u64, String)> {
        tgid.is_multiple_of(2)
            .then(|| (u64::from(tgid) * 7, format!("p{tgid}")))
    }

    #[test]
    fn lookups_are_provisional_until_resolved() {
        let mut n = ProcessNames::with_reader(fake);
        let mut ev = event(PageType::Anon, 1, 1);
        ev.tgid = 10;
        assert_eq!(n.lookup(&ev), Process::named("java"));
        assert_eq!(n.pending(), 1);
        assert_eq!(n.resolve(64), 1);
        assert_eq!(
            n.lookup(&ev),
            Process {
                start: 70,
                name: "p10"
            }
        );
        // Gone before its lookup: the thread's comm, start unknown.
        ev.tgid = 11;
        n.lookup(&ev);
        n.resolve(64);
        assert_eq!(n.lookup(&ev), Process::named("java"));
    }

    /// A renamed thread's walk (a JVM's `C1 CompilerThre`) is named after its process, as the
    /// kernel read it, until /proc is read: never after the thread.
    #[test]
    fn provisional_names_are_the_process_comm() {
        let mut n = ProcessNames::with_reader(fake);
        let mut ev = event(PageType::Anon, 1, 1);
        ev.tgid = 13;
        ev.comm = *b"C1 CompilerThre\0";
        ev.process = *b"java\0\0\0\0\0\0\0\0\0\0\0\0";
        assert_eq!(n.lookup(&ev), Process::named("java"));
        // Gone before its lookup: still the process's name.
        n.resolve(64);
        assert_eq!(n.lookup(&ev), Process::named("java"));
        // No process comm read (all zero): the thread's.
        ev.tgid = 15;
        ev.process = [0; 16];
        assert_eq!(n.lookup(&ev), Process::named("C1 CompilerThre"));
    }

    /// An entry read [`RECHECK`] or more before the last batch is read again (a reused pid).
    #[test]
    fn old_entries_are_read_again() {
        let mut n = ProcessNames::with_reader(fake);
        let mut ev = event(PageType::Anon, 1, 1);
        ev.tgid = 10;
        n.lookup(&ev);
        n.resolve(64);
        n.lookup(&ev);
        assert_eq!(n.pending(), 0);
        let old = Instant::now()
            .checked_sub(RECHECK)
            .expect("the clock is past RECHECK");
        n.cache.get_mut(&10).expect("cached").read_at = old;
        n.resolve(0);
        assert_eq!(n.lookup(&ev).name, "p10");
        assert_eq!(n.pending(), 1);
        n.resolve(64);
        n.lookup(&ev);
        assert_eq!(n.pending(), 0);
    }

    #[test]
    fn cache_and_queue_are_bounded_and_keep_the_recent() {
        let mut n = ProcessNames::with_reader(fake);
        let mut ev = event(PageType::Anon, 1, 1);
        for tgid in 0..(3 * NAMES_CAP as u32) {
            ev.tgid = tgid * 2;
            n.lookup(&ev);
            // A hot process, looked up between all the others.
            ev.tgid = 2;
            n.lookup(&ev);
            assert!(n.pending() <= PENDING_CAP);
            if tgid.is_multiple_of(100) {
                n.resolve(usize::MAX);
            }
        }
        n.resolve(usize::MAX);
        assert!(n.len() <= NAMES_CAP, "{}", n.len());
        ev.tgid = 2;
        assert_eq!(n.lookup(&ev).name, "p2");
    }
}
