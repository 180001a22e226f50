//! The drop and error counters the programs keep per CPU, and the `RECORDS` slots.

/// Indices into the per-CPU counter array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Walks that ended and passed the filters. Not counted by the eBPF programs (its slot
    /// stays 0): userspace derives it, the latency histograms' total plus `HistFull`.
    WalksSeen = 0,
    /// Events written to the ring buffer. Counted in `RECORDS` (slot `RECORDS_SENT`), not in
    /// the per-CPU counters: userspace reads it from there.
    EventsSent = 1,
    /// `bpf_ringbuf_reserve` failures: events lost, counted here.
    RingbufDrops = 2,
    /// Walk ends with no matching start (or a start whose folio/rwc did not match).
    Unpaired = 3,
    /// Walk starts that found their own thread's earlier start still in flight (its end was
    /// never seen; replaced).
    Overlapping = 4,
    /// Walks that ended but were dropped by the pid/comm/type filters.
    Filtered = 5,
    /// Walk starts not measured: every slot of their thread in the in-flight table was held
    /// by a live walk (their ends then count as `Unpaired`).
    InflightFull = 6,
    /// Walk starts that took over another thread's slot held longer than the stale age
    /// (`globals::INFLIGHT_STALE_NS`): that walk's end was never seen.
    InflightEvicted = 7,
    /// Walks the latency histograms could not count (every purpose slot held by another
    /// purpose): the summary says so.
    HistFull = 8,
}

/// Slots of the `RECORDS` array (all CPUs together, atomic): records sent through the ring
/// buffer (what `Counter::EventsSent` reports), and the sequence that picks the records that
/// look whether to wake the reader.
pub const RECORDS_SLOTS: u32 = 2;
/// `RECORDS` slot: records sent.
pub const RECORDS_SENT: u32 = 0;
/// `RECORDS` slot: the reader wakeup sequence.
pub const RECORDS_WAKE_SEQ: u32 = 1;

/// Number of counters: the size of the per-CPU counter array.
pub const COUNTERS: usize = 9;

impl Counter {
    /// Every counter, in index order.
    pub const ALL: [Counter; COUNTERS] = [
        Counter::WalksSeen,
        Counter::EventsSent,
        Counter::RingbufDrops,
        Counter::Unpaired,
        Counter::Overlapping,
        Counter::Filtered,
        Counter::InflightFull,
        Counter::InflightEvicted,
        Counter::HistFull,
    ];

    /// Name in reports, JSON and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::WalksSeen => "walks",
            Counter::EventsSent => "events",
            Counter::RingbufDrops => "ringbuf_drops",
            Counter::Unpaired => "unpaired",
            Counter::Overlapping => "overlapping",
            Counter::Filtered => "filtered",
            Counter::InflightFull => "inflight_full",
            Counter::InflightEvicted => "inflight_evicted",
            Counter::HistFull => "hist_full",
        }
    }
}
