//! A tracing session: the object loaded with the filters, one mode attached, the ring buffer
//! read through `AsyncFd`, and the aya-log channel polled. Dropping it detaches everything,
//! then unmounts the tracefs that loading it mounted, if any.
use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{MapData, RingBuf},
};
use aya_log::EbpfLogger;
use rmap_common::{WalkEvent, maps};
use tokio::io::unix::AsyncFd;

use crate::{
    attach::{
        load::{self, Filters, KernelFacts},
        modes::{self, Attached},
        plan::{AttachChoice, Outcome, TpFlavor},
    },
    counters::{self, KernelCounts},
    kernel::{kallsyms::Purposes, tracefs::Tracefs},
    procs::Process,
    ring::{Decoder, LOOKUPS_PER_SLICE, Walks},
    stalls::StallReader,
};

/// How often the ring buffer is read when no record woke the reader: records are submitted
/// without a wakeup until a quarter of the ring is waiting (rmap-ebpf walk.rs `record`), so
/// that a walk does not cost a switch to this process.
pub const DRAIN_PERIOD: std::time::Duration = std::time::Duration::from_millis(50);

/// `--stalls`: the contention hooks attached and their ring buffer, or why they are not (the
/// run goes on without them, as without off-CPU time). A mode without walk starts is refused:
/// that is a choice of the user's that cannot work.
fn attach_stalls(
    ebpf: &mut Ebpf,
    facts: &KernelFacts,
    attached: &Attached,
) -> anyhow::Result<(Option<StallReader>, Option<String>)> {
    if !attached
        .outcome
        .chosen
        .as_ref()
        .is_some_and(|c| crate::attach::plan::spec(c.mode).has_start)
    {
        anyhow::bail!(
            "--stalls needs walks in flight, which the v4 tracepoint (whole walks only) does not show: \
             choose another --attach-mode"
        );
    }
    let points = match crate::attach::stalls::attach(ebpf, facts) {
        Ok(points) => points,
        Err(why) => {
            println!("  stalls not attributed: {why}");
            return Ok((None, Some(why)));
        }
    };
    println!("  stalls: {}", points.join(", "));
    let map = ebpf
        .take_map(maps::STALLS)
        .context("map STALLS missing from the eBPF object")?;
    let ring = RingBuf::try_from(map).context("STALLS is not a ring buffer")?;
    Ok((Some(StallReader::new(ring)), None))
}

/// No attach mode worked; the outcome says why for each.
#[derive(Debug, thiserror::Error)]
#[error("no attach mode works on this kernel ({})", .0.skipped.iter().map(|s| s.mode).collect::<Vec<_>>().join(", "))]
pub struct AttachFailed(pub Outcome);

pub struct Session {
    // Field order matters for drop: the ring buffer and logger go before the object.
    ring: AsyncFd<RingBuf<MapData>>,
    logger: Option<tokio::task::JoinHandle<()>>,
    pub ebpf: Ebpf,
    pub attached: Attached,
    /// Purposes, process names, decode errors.
    pub decoder: Decoder,
    /// The last read stopped before the ring buffer was empty: its readiness, cleared before
    /// that read, will not be signalled again for the records left, so do not wait for it.
    backlog: bool,
    /// `--stalls`: the stall ring buffer and what was read from it.
    pub stalls: Option<StallReader>,
    /// `--stalls` asked for but not attached: why (a kernel without the lock contention
    /// tracepoints).
    pub stalls_unavailable: Option<String>,
    /// Hands freed heap back to the system between slices, once a second.
    trimmer: crate::memory::Trimmer,
    /// Kept until the programs are detached (after `ebpf`): a tracefs this run mounted is
    /// unmounted when it is dropped.
    _tracefs: Option<Tracefs>,
}

impl Session {
    /// Loads and attaches; prints the attach report (chosen mode, skipped modes).
    pub fn start(filters: &Filters, choice: AttachChoice, flavor: TpFlavor) -> anyhow::Result<Self> {
        crate::memory::report("start", &[]);
        let mut facts = KernelFacts::read()?;
        if let (true, Err(why)) = (filters.cgroup_id != 0, &facts.owner_source) {
            anyhow::bail!("--cgroup needs the folio's memory cgroup, which this kernel's BTF lacks: {why}");
        }
        let mut ebpf = load::load_object(filters, &facts)?;
        crate::memory::report("object loaded", &[]);
        let attached = match modes::attach(&mut ebpf, &facts, choice, flavor, !filters.no_offcpu) {
            Ok(a) => a,
            Err(outcome) => return Err(AttachFailed(outcome).into()),
        };
        crate::memory::report("attached", &[]);
        for line in attached.outcome.report() {
            println!("{line}");
        }
        if let Some(w) = crate::kernel::host::coarse_clock_warning() {
            eprintln!("rmap-trace: {w}");
        }
        if let Some(why) = &attached.offcpu_unavailable {
            println!("  off-CPU time not measured: {why}");
        }
        if let Err(why) = &facts.owner_source {
            println!("  memory owners (cgroups) not shown: {why}");
        }
        let (stalls, stalls_unavailable) = if filters.stalls {
            attach_stalls(&mut ebpf, &facts, &attached)?
        } else {
            (None, None)
        };
        let logger = match EbpfLogger::init(&mut ebpf) {
            Ok(logger) => Some(tokio::spawn(poll_logger(logger))),
            Err(e) => {
                log::warn!("eBPF log channel unavailable: {e}");
                None
            }
        };
        let map = ebpf
            .take_map("EVENTS")
            .context("map EVENTS missing from the eBPF object")?;
        let ring = RingBuf::try_from(map).context("EVENTS is not a ring buffer")?;
        // SAFETY: the AsyncFd owns the RingBuf, whose map fd stays open and the same until drop.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|e| e.into_parts().1)
            .context("polling the ring buffer")?;
        let decoder = Decoder::new(Purposes::new(facts.kallsyms.take()));
        let tracefs = facts.tracefs.take();
        // The parsed BTF (twice: ours and aya's) is the start's peak: freed, it would stay
        // resident in the heap, below what the run allocates later, unless handed back.
        drop(facts);
        crate::memory::trim();
        crate::memory::report("kernel facts dropped, heap trimmed", &[]);
        Ok(Self {
            ring,
            logger,
            ebpf,
            attached,
            decoder,
            backlog: false,
            stalls,
            stalls_unavailable,
            trimmer: crate::memory::Trimmer::new(),
            _tracefs: tracefs,
        })
    }

    /// Hands the next decodable record to `f` with its purpose and process name; false when
    /// the ring buffer is empty.
    fn next_walk(&mut self, f: impl FnOnce(&WalkEvent, &str, Process<'_>)) -> bool {
        self.backlog = self.decoder.next(self.ring.get_mut(), f);
        self.backlog
    }

    pub fn counts(&self) -> anyhow::Result<KernelCounts> {
        Ok(counters::read(&self.ebpf)?)
    }

    /// Reads the stall records waiting (`--stalls`), without waiting for more.
    pub fn drain_stalls(&mut self) {
        if let Some(s) = self.stalls.as_mut() {
            s.drain();
        }
    }

    /// The kernel's stall counters and wait histogram, with `--stalls`.
    pub fn stall_counts(&self) -> anyhow::Result<Option<crate::stalls::kernel::StallCounts>> {
        if self.stalls.is_none() {
            return Ok(None);
        }
        Ok(Some(crate::stalls::kernel::read(&self.ebpf)?))
    }

    /// The kernel's latency histograms so far (cumulative), per page type and purpose.
    pub fn latency(&self) -> anyhow::Result<counters::Latency> {
        Ok(counters::read_latency(&self.ebpf)?)
    }
}

impl Walks for Session {
    /// The readiness is cleared before the records are read (a record that arrives during the
    /// read sets it again), so no record is left unsignalled.
    /// Between slices, the processes first seen in the last one are looked up in /proc, a
    /// bounded batch at a time ([`ProcessNames::resolve`]).
    async fn readable(&mut self) -> anyhow::Result<()> {
        self.decoder.processes.resolve(LOOKUPS_PER_SLICE);
        self.drain_stalls();
        self.trimmer.tick();
        if self.backlog {
            return Ok(());
        }
        tokio::select! {
            ready = self.ring.readable_mut() => {
                ready.context("waiting on the ring buffer")?.clear_ready();
            }
            () = tokio::time::sleep(DRAIN_PERIOD) => {}
        }
        Ok(())
    }

    fn next(&mut self, f: impl FnOnce(&WalkEvent, &str, Process<'_>)) -> bool {
        self.next_walk(f)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(task) = self.logger.take() {
            task.abort();
        }
    }
}

async fn poll_logger(logger: EbpfLogger<&'static dyn log::Log>) {
    // SAFETY: the AsyncFd owns the logger, whose ring buffer fd stays open until drop.
    let Ok(mut fd) = (unsafe { AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE) })
    else {
        log::warn!("cannot poll the eBPF log channel");
        return;
    };
    loop {
        let Ok(mut guard) = fd.readable_mut().await else {
            return;
        };
        guard.get_inner_mut().flush();
        guard.clear_ready();
    }
}
