//! The event pipeline's capacity on this host, not emulated: the real
//! `raw_tp` start and end programs, run with `BPF_PROG_TEST_RUN` while nothing reads, fill the
//! real `EVENTS` ring buffer with real records (and, once it is full, drop exactly what does
//! not fit, counted by the kernel); then rmap-user's own drain path
//! (`rmap_user::ring`, the session's) reads them into a sink with the real
//! aggregator and writers. The short test checks that every record is counted once; the bench
//! (`cargo xtask bench capacity`, the `capacity` binary) times each stage.
//!
//! Test runs rather than a bench-only program in the object: the records come from the very
//! code that writes them under a real walk (`walk::record`: filters, histograms, reserve,
//! submit, the drop counter), and rmap-trace's object holds nothing it never attaches. The
//! cost is that every record has this process's tgid and comm, no page type (the fake folio
//! cannot be read: `unknown`) and no purpose (`unknown`): the lookups are at their cheapest.
use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use aya::{Ebpf, maps::RingBuf, programs::RawTracePoint};
use rmap_common::{Counter, WALK_EVENT_SIZE, maps};
use rmap_user::{
    agg::Aggregator,
    attach::load::{self, Filters, KernelFacts},
    counters::{self, KernelCounts},
    export::prometheus::Metrics,
    kernel::kallsyms::Purposes,
    ring::{Decoder, RingWalks},
    trace_loop::{drain::ring as drain_ring, sink::Sink},
};

/// A ring buffer record: the event and the kernel's 8-byte header
/// (kernel/bpf/ringbuf.c, `BPF_RINGBUF_HDR_SZ`), rounded up to 8 bytes.
pub const RECORD_BYTES: u64 = (WALK_EVENT_SIZE as u64 + 8).div_ceil(8) * 8;

/// The object loaded with a ring buffer of the given size, its start and end programs loaded
/// (not attached), and the ring buffer taken out to be read as a session reads it.
pub struct Rig {
    ebpf: Ebpf,
    start: i32,
    end: i32,
    pub walks: RingWalks,
    pub ring_bytes: u32,
}

/// What one fill did, from the kernel's counters (summed over CPUs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fill {
    /// Walk ends run.
    pub runs: u64,
    /// Walks the programs counted (`WalksSeen`): every one tried to reserve a record.
    pub attempted: u64,
    /// Records reserved and submitted (`EventsSent`).
    pub reserved: u64,
    /// Reservations refused (`RingbufDrops`).
    pub drops: u64,
    pub elapsed: Duration,
}

/// Records a ring buffer of `bytes` holds (a record may not make the producer position pass
/// the consumer's by the size or more: kernel/bpf/ringbuf.c, `__bpf_ringbuf_reserve`).
pub fn capacity(bytes: u32) -> u64 {
    (u64::from(bytes) - 1) / RECORD_BYTES
}

impl Rig {
    pub fn new(ring_bytes: u32) -> anyhow::Result<Self> {
        let facts = KernelFacts::read()?;
        let filters = Filters {
            type_mask: u32::MAX,
            ringbuf_bytes: Some(ring_bytes),
            ..Filters::default()
        };
        let mut ebpf = load::load_object(&filters, &facts)?;
        let mut fd = |name: &str| -> anyhow::Result<i32> {
            let p: &mut RawTracePoint = ebpf
                .program_mut(name)
                .with_context(|| format!("{name} missing from the object"))?
                .try_into()?;
            p.load().with_context(|| format!("loading {name}"))?;
            Ok(p.fd()?.as_fd().as_raw_fd())
        };
        let (start, end) = (fd("raw_rmap_walk_start")?, fd("raw_rmap_walk_end")?);
        let map = ebpf.take_map(maps::EVENTS).context("EVENTS missing")?;
        let ring = RingBuf::try_from(map).context("EVENTS is not a ring buffer")?;
        Ok(Self {
            ebpf,
            start,
            end,
            walks: RingWalks {
                ring,
                decoder: Decoder::new(Purposes::new(None)),
            },
            ring_bytes,
        })
    }

    pub fn counts(&self) -> anyhow::Result<KernelCounts> {
        Ok(counters::read(&self.ebpf)?)
    }

    /// Runs `runs` walks (a start and an end each, in this thread) while nothing reads.
    pub fn fill(&mut self, runs: u64) -> anyhow::Result<Fill> {
        let before = self.counts()?;
        let t = Instant::now();
        for i in 0..runs {
            // Distinct folios, so that the records differ as real ones do.
            let walk = [0xffff_8880_0000_0000 + (i << 12), 0xffff_c900_0000_1000, 0];
            crate::prog_run::raw_tp(self.start, &walk).context("BPF_PROG_TEST_RUN (start)")?;
            crate::prog_run::raw_tp(self.end, &walk).context("BPF_PROG_TEST_RUN (end)")?;
        }
        let elapsed = t.elapsed();
        let after = self.counts()?;
        let delta = |c| after.get(c) - before.get(c);
        Ok(Fill {
            runs,
            attempted: delta(Counter::WalksSeen),
            reserved: delta(Counter::EventsSent),
            drops: delta(Counter::RingbufDrops),
            elapsed,
        })
    }

    /// The kernel's latency histograms into `sink`, as the live loop does before an interval
    /// ends (`trace_loop::kernel_latency`).
    pub fn set_latency(&mut self, sink: &mut Sink) -> anyhow::Result<()> {
        let now = counters::read_latency(&self.ebpf)?;
        let purposes = &mut self.walks.decoder.purposes;
        sink.set_latency(now, |addr| purposes.of(addr).to_string())
    }

    /// Reads and decodes every record, handing it to nothing: the cost of the ring buffer
    /// read, the decoder and the purpose and process lookups alone.
    pub fn decode_only(&mut self) -> u64 {
        let mut n = 0;
        while self.walks.decoder.next(&mut self.walks.ring, |_, _, _| {}) {
            n += 1;
        }
        n
    }
}

/// What a drain goes through, each stage adding to the one before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Ring buffer read, decode, purpose and process lookups.
    Decode,
    /// … into the aggregators (`Sink` with no output): the run's process and owner tables,
    /// the interval's off-CPU and locked counts.
    Aggregate,
    /// … and the interval log (written at the interval's end).
    Hlog,
    /// … and the CSV.
    Csv,
    /// … and the Prometheus metrics (set from the kernel's histograms when the interval ends:
    /// nothing per event).
    Prometheus,
    /// Aggregators, interval log, CSV and Prometheus together: a whole drain.
    All,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Decode,
        Stage::Aggregate,
        Stage::Hlog,
        Stage::Csv,
        Stage::Prometheus,
        Stage::All,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Aggregate => "aggregate",
            Stage::Hlog => "hlog",
            Stage::Csv => "csv",
            Stage::Prometheus => "prometheus",
            Stage::All => "all",
        }
    }
}

/// A drain's outcome.
pub struct Drained {
    pub records: u64,
    pub elapsed: Duration,
    /// The sink's aggregate (none for [`Stage::Decode`]).
    pub total: Option<Aggregator>,
    pub metrics: Option<Arc<Mutex<Metrics>>>,
}

/// Drains the ring buffer through `stage`, writing files in `dir`; the time covers the drain,
/// reading the kernel's histograms, and ending the interval and the files.
pub fn drain(rig: &mut Rig, stage: Stage, dir: &Path, counts: &KernelCounts) -> anyhow::Result<Drained> {
    if stage == Stage::Decode {
        let t = Instant::now();
        let records = rig.decode_only();
        return Ok(Drained {
            records,
            elapsed: t.elapsed(),
            total: None,
            metrics: None,
        });
    }
    let hlog = matches!(stage, Stage::Hlog | Stage::All).then(|| dir.join("capacity.hlog"));
    let csv = matches!(stage, Stage::Csv | Stage::All).then(|| dir.join("capacity.csv"));
    let metrics = matches!(stage, Stage::Prometheus | Stage::All)
        .then(|| Arc::new(Mutex::new(Metrics::new("raw_tp", "host"))));
    let mut sink = Sink::with_files(hlog.as_deref(), csv.as_deref(), false)?.with_metrics(metrics.clone());
    let t = Instant::now();
    let records = drain_ring(&mut rig.walks, &mut sink);
    rig.set_latency(&mut sink)?;
    sink.publish(counts)?;
    let total = sink.finish(None)?;
    let elapsed = t.elapsed();
    Ok(Drained {
        records,
        elapsed,
        total: Some(total),
        metrics,
    })
}
