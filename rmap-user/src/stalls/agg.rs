//! Waits on locks held by walks, aggregated per victim process (with its threads) and per
//! walk. Plain data, bounded: at most [`PROCESSES`] victim processes, [`THREADS`] threads
//! each and [`WALKS`] walks have their own entry; the rest is counted in "other" totals, so
//! that the totals always cover every record read. Victim processes are given rows by the time
//! they waited, as [`crate::rank`] says: a process without a row that has waited more than the
//! least-waiting row takes its place. Waits are also summed per victim cgroup (the
//! victim thread's, read in the kernel): the first [`CGROUPS`] seen have a row, the rest are
//! "other".
use std::collections::HashMap;

use rmap_common::{
    PageType,
    stall::{STALL_CHAINED, StallEvent},
};
use serde::Serialize;

use crate::{
    events::text,
    rank::{self, Candidates},
};

/// Most victim processes with a row.
pub const PROCESSES: usize = 64;
/// Most victim processes counted while waiting for a row; the set is emptied when full.
pub const CANDIDATES: usize = 16 * PROCESSES;
/// Most threads named under one victim process.
pub const THREADS: usize = 16;
/// Most walks with an entry; when full, the oldest (by start) goes to "other": the newest are
/// still collecting waits.
pub const WALKS: usize = 4096;
/// Most distinct victim threads remembered per walk (more are counted, not named).
pub const VICTIMS_PER_WALK: usize = 64;
/// Most victim process names listed per walk.
pub const PROCESSES_PER_WALK: usize = 4;
/// Most victim cgroups with a row.
pub const CGROUPS: usize = 64;

/// A count, sum and maximum of waits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Waits {
    pub count: u64,
    pub total_ns: u64,
    pub max_ns: u64,
}

impl Waits {
    pub fn add(&mut self, ns: u64) {
        self.count += 1;
        self.total_ns += ns;
        self.max_ns = self.max_ns.max(ns);
    }

    pub fn merge(&mut self, o: &Waits) {
        self.count += o.count;
        self.total_ns += o.total_ns;
        self.max_ns = self.max_ns.max(o.max_ns);
    }
}

#[derive(Clone, Debug)]
struct Thread {
    comm: String,
    waits: Waits,
}

#[derive(Clone, Debug, Default)]
struct Victim {
    process: String,
    /// The cgroup of its first wait's thread (0: unknown).
    cgroup_id: u64,
    waits: Waits,
    threads: HashMap<u32, Thread>,
    /// Waits of threads beyond [`THREADS`].
    other_threads: Waits,
    /// Nanoseconds waited for ranking: the row's, plus those counted while a candidate
    /// ([`crate::rank`]).
    rank_ns: u64,
}

#[derive(Clone, Debug)]
struct Walk {
    walker: String,
    walker_tgid: u32,
    page_type: u32,
    waits: Waits,
    victims: Vec<u32>,
    /// Waits of victims beyond the [`VICTIMS_PER_WALK`] remembered (a victim that waits
    /// twice is counted twice: an upper bound of the victims not named).
    more_victims: u64,
    processes: Vec<String>,
}

/// See the module's doc.
#[derive(Clone, Debug)]
pub struct StallAgg {
    /// Every wait read.
    pub total: Waits,
    /// Of them, waits behind another victim (`STALL_CHAINED`).
    pub chained: Waits,
    victims: HashMap<u32, Victim>,
    /// Waits of victim processes without a row.
    other_processes: Waits,
    /// Nanoseconds waited by victim processes without a row, by tgid (bounded: [`CANDIDATES`]).
    candidates: Candidates<u32>,
    walks: HashMap<(u32, u64), Walk>,
    /// Waits of walks that lost their entry.
    other_walks: Waits,
    /// Waits by the victim thread's cgroup id.
    cgroups: HashMap<u64, Waits>,
    /// Waits of cgroups without a row.
    other_cgroups: Waits,
}

impl Default for StallAgg {
    fn default() -> Self {
        Self {
            total: Waits::default(),
            chained: Waits::default(),
            victims: HashMap::new(),
            other_processes: Waits::default(),
            candidates: Candidates::new(CANDIDATES),
            walks: HashMap::new(),
            other_walks: Waits::default(),
            cgroups: HashMap::new(),
            other_cgroups: Waits::default(),
        }
    }
}

impl StallAgg {
    pub fn record(&mut self, ev: &StallEvent) {
        self.total.add(ev.wait_ns);
        if ev.flags & STALL_CHAINED != 0 {
            self.chained.add(ev.wait_ns);
        }
        self.record_victim(ev);
        self.record_walk(ev);
        self.record_cgroup(ev);
    }

    fn record_cgroup(&mut self, ev: &StallEvent) {
        if let Some(w) = self.cgroups.get_mut(&ev.cgroup_id) {
            w.add(ev.wait_ns);
        } else if self.cgroups.len() < CGROUPS {
            let mut w = Waits::default();
            w.add(ev.wait_ns);
            self.cgroups.insert(ev.cgroup_id, w);
        } else {
            self.other_cgroups.add(ev.wait_ns);
        }
    }

    /// Waits per victim cgroup (`Some(id)`, 0: unknown), the most waiting first, then `None`
    /// for the cgroups without a row, when some waited.
    pub fn cgroup_rows(&self) -> Vec<(Option<u64>, Waits)> {
        let mut rows: Vec<(Option<u64>, Waits)> =
            self.cgroups.iter().map(|(id, w)| (Some(*id), *w)).collect();
        rows.sort_by(|a, b| b.1.total_ns.cmp(&a.1.total_ns).then(a.0.cmp(&b.0)));
        if self.other_cgroups.count > 0 {
            rows.push((None, self.other_cgroups));
        }
        rows
    }

    fn record_victim(&mut self, ev: &StallEvent) {
        // Waited before this wait, when the process gets a row now (then in "other").
        let mut earlier_ns = 0;
        if !self.victims.contains_key(&ev.tgid) && self.victims.len() >= PROCESSES {
            let Some(ns) = self.take_least_row(ev.tgid, ev.wait_ns) else {
                self.other_processes.add(ev.wait_ns);
                return;
            };
            earlier_ns = ns;
        }
        let v = self.victims.entry(ev.tgid).or_insert_with(|| Victim {
            process: text(&ev.process).into_owned(),
            cgroup_id: ev.cgroup_id,
            rank_ns: earlier_ns,
            ..Victim::default()
        });
        v.waits.add(ev.wait_ns);
        v.rank_ns += ev.wait_ns;
        if let Some(t) = v.threads.get_mut(&ev.pid) {
            t.waits.add(ev.wait_ns);
        } else if v.threads.len() < THREADS {
            let mut waits = Waits::default();
            waits.add(ev.wait_ns);
            v.threads.insert(
                ev.pid,
                Thread {
                    comm: text(&ev.comm).into_owned(),
                    waits,
                },
            );
        } else {
            v.other_threads.add(ev.wait_ns);
        }
    }

    /// Counts `wait_ns` for `tgid`, a process without a row while the table is full. When it
    /// has now waited more than the least-waiting row, that row goes to "other" and the time
    /// `tgid` waited before this wait is returned: it gets the row.
    fn take_least_row(&mut self, tgid: u32, wait_ns: u64) -> Option<u64> {
        let least = rank::least(self.victims.iter().map(|(t, v)| (*t, v.rank_ns)));
        let seen = self.candidates.admit(tgid, wait_ns, least)?;
        if let Some(v) = least.and_then(|(least, _)| self.victims.remove(&least)) {
            self.other_processes.merge(&v.waits);
        }
        Some(seen - wait_ns)
    }

    fn record_walk(&mut self, ev: &StallEvent) {
        let key = (ev.walker_pid, ev.walk_start_ns);
        if !self.walks.contains_key(&key) && self.walks.len() >= WALKS {
            self.evict_least_walk();
        }
        let w = self.walks.entry(key).or_insert_with(|| Walk {
            walker: text(&ev.walker_comm).into_owned(),
            walker_tgid: ev.walker_tgid,
            page_type: ev.page_type,
            waits: Waits::default(),
            victims: Vec::new(),
            more_victims: 0,
            processes: Vec::new(),
        });
        w.waits.add(ev.wait_ns);
        if !w.victims.contains(&ev.pid) {
            if w.victims.len() < VICTIMS_PER_WALK {
                w.victims.push(ev.pid);
            } else {
                w.more_victims += 1;
            }
        }
        let process = text(&ev.process);
        if w.processes.len() < PROCESSES_PER_WALK && !w.processes.iter().any(|p| *p == process) {
            w.processes.push(process.into_owned());
        }
    }

    /// Folds the walk that began first into "other" (only when the table is full: a scan per
    /// new walk beyond [`WALKS`]). Not the least waiting one: that is nearly always the newest,
    /// still collecting waits, whose later waits would then start a second entry.
    fn evict_least_walk(&mut self) {
        let least = self
            .walks
            .keys()
            .min_by_key(|(pid, start)| (*start, *pid))
            .copied();
        if let Some(w) = least.and_then(|k| self.walks.remove(&k)) {
            self.other_walks.merge(&w.waits);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.total.count == 0
    }

    /// Victim processes, the most waiting first, then "other" when some had no row.
    pub fn victim_rows(&self) -> Vec<VictimRow> {
        let mut rows: Vec<VictimRow> = self
            .victims
            .iter()
            .map(|(tgid, v)| {
                let mut threads: Vec<ThreadRow> = v
                    .threads
                    .iter()
                    .map(|(pid, t)| ThreadRow::new(Some(*pid), &t.comm, &t.waits))
                    .collect();
                threads.sort_by(|a, b| b.total_wait_ns().cmp(&a.total_wait_ns()).then(a.pid.cmp(&b.pid)));
                if v.other_threads.count > 0 {
                    threads.push(ThreadRow::new(None, crate::top::OTHER, &v.other_threads));
                }
                VictimRow {
                    tgid: Some(*tgid),
                    process: v.process.clone(),
                    cgroup_id: v.cgroup_id,
                    cgroup: None,
                    pod: None,
                    waits: WaitFigures::from(&v.waits),
                    threads,
                }
            })
            .collect();
        rows.sort_by(|a, b| b.waits.total_ns.cmp(&a.waits.total_ns).then(a.tgid.cmp(&b.tgid)));
        if self.other_processes.count > 0 {
            rows.push(VictimRow {
                tgid: None,
                process: crate::top::OTHER.to_string(),
                cgroup_id: 0,
                cgroup: None,
                pod: None,
                waits: WaitFigures::from(&self.other_processes),
                threads: Vec::new(),
            });
        }
        rows
    }

    /// Walks, the most waiting first, at most `limit`.
    pub fn walk_rows(&self, limit: usize) -> Vec<WalkRow> {
        let mut rows: Vec<WalkRow> = self
            .walks
            .iter()
            .map(|((pid, start), w)| WalkRow {
                walker: w.walker.clone(),
                walker_pid: *pid,
                walker_tgid: w.walker_tgid,
                page_type: PageType::from_u32(w.page_type).name(),
                walk_start_ns: *start,
                victims: w.victims.len() as u64 + w.more_victims,
                victim_processes: w.processes.clone(),
                waits: WaitFigures::from(&w.waits),
            })
            .collect();
        rows.sort_by(|a, b| {
            b.waits
                .total_ns
                .cmp(&a.waits.total_ns)
                .then(a.walk_start_ns.cmp(&b.walk_start_ns))
        });
        rows.truncate(limit);
        rows
    }

    /// Walks with an entry, and the waits of those that lost theirs.
    pub fn walks(&self) -> (usize, Waits) {
        (self.walks.len(), self.other_walks)
    }
}

/// Count, total and maximum of waits, in ns and seconds (JSON).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct WaitFigures {
    pub waits: u64,
    #[serde(skip)]
    pub total_ns: u64,
    #[serde(skip)]
    pub max_ns: u64,
    pub total_wait_s: f64,
    pub max_wait_s: f64,
}

impl From<&Waits> for WaitFigures {
    fn from(w: &Waits) -> Self {
        Self {
            waits: w.count,
            total_ns: w.total_ns,
            max_ns: w.max_ns,
            total_wait_s: w.total_ns as f64 / 1e9,
            max_wait_s: w.max_ns as f64 / 1e9,
        }
    }
}

/// One victim thread (`pid` none: the threads without a row of their own).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ThreadRow {
    pub pid: Option<u32>,
    pub comm: String,
    #[serde(flatten)]
    pub waits: WaitFigures,
}

impl VictimRow {
    /// Fills `cgroup` and `pod` from the cgroup id.
    pub fn name(&mut self, names: &mut crate::owners::names::OwnerNames) {
        if self.cgroup_id != 0 {
            self.cgroup = Some(names.name(self.cgroup_id));
            self.pod = names.pod(self.cgroup_id).cloned();
        }
    }
}

impl ThreadRow {
    fn new(pid: Option<u32>, comm: &str, w: &Waits) -> Self {
        Self {
            pid,
            comm: comm.to_string(),
            waits: WaitFigures::from(w),
        }
    }

    /// For sorting.
    fn total_wait_ns(&self) -> u64 {
        self.waits.total_ns
    }
}

/// One victim process (`tgid` none: "other").
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VictimRow {
    pub tgid: Option<u32>,
    pub process: String,
    /// The cgroup id of its first wait's thread (0: unknown), named by [`Self::name`].
    #[serde(skip)]
    pub cgroup_id: u64,
    /// That cgroup's path (null: unknown, or "other").
    pub cgroup: Option<String>,
    /// Its pod, when the cgroup is a pod's (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<crate::owners::names::PodLabels>,
    #[serde(flatten)]
    pub waits: WaitFigures,
    pub threads: Vec<ThreadRow>,
}

/// One walk that made others wait.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WalkRow {
    /// Command name of the walking thread.
    pub walker: String,
    pub walker_pid: u32,
    pub walker_tgid: u32,
    /// Page type as known at the walk's start (`unknown` for `rmap_walk` hooks).
    pub page_type: &'static str,
    /// `bpf_ktime_get_ns()` at the walk's start (matches `WalkEvent::start_ns`).
    pub walk_start_ns: u64,
    /// Distinct threads that waited.
    pub victims: u64,
    /// Their processes, the first few.
    pub victim_processes: Vec<String>,
    #[serde(flatten)]
    pub waits: WaitFigures,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comm(s: &str) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..s.len()].copy_from_slice(s.as_bytes());
        b
    }

    fn wait(pid: u32, tgid: u32, walker: u32, walk_start: u64, ns: u64) -> StallEvent {
        StallEvent {
            wait_ns: ns,
            walk_start_ns: walk_start,
            pid,
            tgid,
            walker_pid: walker,
            walker_tgid: walker,
            page_type: PageType::Ksm as u32,
            comm: comm(&format!("victim-{pid}")),
            process: comm("java"),
            walker_comm: comm("kcompactd0"),
            ..StallEvent::default()
        }
    }

    #[test]
    fn waits_add_up_per_thread_process_and_walk() {
        let mut a = StallAgg::default();
        a.record(&wait(11, 10, 7, 100, 3_000));
        a.record(&wait(11, 10, 7, 100, 5_000));
        a.record(&wait(12, 10, 7, 100, 1_000));
        a.record(&wait(21, 20, 7, 900, 2_000));
        assert_eq!(
            a.total,
            Waits {
                count: 4,
                total_ns: 11_000,
                max_ns: 5_000
            }
        );
        let v = a.victim_rows();
        assert_eq!(v[0].tgid, Some(10));
        assert_eq!(
            (v[0].waits.waits, v[0].waits.total_ns, v[0].waits.max_ns),
            (3, 9_000, 5_000)
        );
        assert_eq!(v[0].threads[0].pid, Some(11));
        assert_eq!(v[0].threads[0].waits.total_ns, 8_000);
        assert_eq!(v[0].threads[0].comm, "victim-11");
        let w = a.walk_rows(10);
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].walk_start_ns, w[0].victims, w[0].waits.waits), (100, 2, 3));
        assert_eq!(w[0].victim_processes, vec!["java".to_string()]);
        assert_eq!(w[0].walker, "kcompactd0");
    }

    #[test]
    fn bounded_tables_keep_every_wait_in_the_totals() {
        let mut a = StallAgg::default();
        for i in 0..(WALKS as u64 + 10) {
            // One process per wait beyond the bound, one thread each, one walk each.
            a.record(&wait(1_000 + i as u32, 1_000 + i as u32, 7, i, 1_000 + i));
        }
        let rows = a.victim_rows();
        assert_eq!(rows.len(), PROCESSES + 1, "the top processes and other");
        let sum: u64 = rows.iter().map(|r| r.waits.waits).sum();
        assert_eq!(sum, WALKS as u64 + 10);
        let (kept, lost) = a.walks();
        assert_eq!(kept, WALKS);
        assert_eq!(kept as u64 + lost.count, WALKS as u64 + 10);
        // The walks that began first went.
        assert!(a.walk_rows(usize::MAX).iter().all(|w| w.walk_start_ns >= 10));
    }

    #[test]
    fn a_process_that_waits_more_takes_the_least_waiting_row() {
        let mut a = StallAgg::default();
        for i in 0..PROCESSES as u32 {
            // Process 100 waits least.
            a.record(&wait(100 + i, 100 + i, 7, 1, 1_000 + u64::from(i)));
        }
        // A late process: its first wait alone is less than any row's, its second puts it
        // above the least-waiting one.
        a.record(&wait(900, 900, 7, 1, 600));
        assert!(a.victim_rows().iter().all(|r| r.tgid != Some(900)));
        a.record(&wait(900, 900, 7, 1, 600));
        let rows = a.victim_rows();
        assert_eq!(rows.len(), PROCESSES + 1, "the top processes and other");
        let late = rows
            .iter()
            .find(|r| r.tgid == Some(900))
            .map(|r| r.waits.total_ns);
        assert_eq!(late, Some(600), "the row holds its waits since it was given");
        assert!(
            rows.iter().all(|r| r.tgid != Some(100)),
            "the least-waiting row went"
        );
        let other = rows.last().map(|r| (r.tgid, r.waits.waits, r.waits.total_ns));
        assert_eq!(other, Some((None, 2, 1_000 + 600)));
        let sum: u64 = rows.iter().map(|r| r.waits.total_ns).sum();
        assert_eq!(sum, a.total.total_ns);
    }

    #[test]
    fn waits_per_victim_cgroup_are_bounded() {
        let mut a = StallAgg::default();
        for i in 0..(CGROUPS as u64 + 2) {
            a.record(&StallEvent {
                cgroup_id: 100 + i,
                ..wait(1, 1, 7, 1, 1_000 + i)
            });
        }
        a.record(&StallEvent {
            cgroup_id: 100,
            ..wait(1, 1, 7, 1, 10_000)
        });
        let rows = a.cgroup_rows();
        assert_eq!(rows.len(), CGROUPS + 1);
        assert_eq!(
            (rows[0].0, rows[0].1.count, rows[0].1.total_ns),
            (Some(100), 2, 11_000)
        );
        let other = rows.last().map(|r| (r.0, r.1.count));
        assert_eq!(other, Some((None, 2)));
        let total: u64 = rows.iter().map(|r| r.1.total_ns).sum();
        assert_eq!(total, a.total.total_ns);
        assert_eq!(a.victim_rows()[0].cgroup_id, 100, "the first wait's cgroup");
    }

    #[test]
    fn threads_beyond_the_bound_are_other() {
        let mut a = StallAgg::default();
        for pid in 0..(THREADS as u32 + 3) {
            a.record(&wait(100 + pid, 10, 7, 1, 10));
        }
        let v = a.victim_rows();
        assert_eq!(v[0].threads.len(), THREADS + 1);
        let other = v[0].threads.last().map(|t| (t.pid, t.waits.waits));
        assert_eq!(other, Some((None, 3)));
    }
}
