//! What the tracing commands share, below them: the kernel-side filters of a run, the sink
//! every walk goes to (aggregators, CSV, interval log, Prometheus, slow-walk lines), the loop
//! that drains the ring buffer into it until the command's work ends, a tick or a signal, and
//! the end-of-run summary.
pub mod drain;
pub mod signals;
pub mod sink;
pub mod slow;
pub mod summary;

use std::{future::Future, time::Duration};

use anyhow::Context as _;

use self::{drain::Drained, signals::Stop, sink::Sink};
use crate::{
    ring::Walks,
    session::Session,
    workload::{self, Ran, Spec, cancel},
};

/// Reads the kernel's latency histograms into the sink: call before `Sink::end_interval` and
/// `Sink::finish`, so that counts and percentiles cover every walk.
pub fn kernel_latency(session: &mut Session, sink: &mut Sink) -> anyhow::Result<()> {
    let now = session.latency()?;
    sink.set_latency(now, |addr| session.decoder.purposes.of(addr).to_string())
}

/// When an interval ends: the heap freed during it handed back to the system (the interval's
/// aggregate, process rows replaced, the interval log's copies come and go; glibc would keep
/// every page they touched resident), then the tracer's memory reported (see
/// [`crate::memory`]): the heap and the long-lived tables.
pub fn interval_memory(session: &Session, sink: &Sink) {
    crate::memory::trim();
    if crate::memory::enabled() {
        crate::memory::report(
            "interval",
            &[
                ("aggregate", sink.total.heap_bytes()),
                ("purposes", session.decoder.purposes.heap_bytes()),
                ("process_names", session.decoder.processes.heap_bytes()),
            ],
        );
    }
}

/// What ended a wait of [`run_until`].
pub enum Woke<T> {
    /// The work finished with this output.
    Done(T),
    /// The tick fired.
    Tick,
    /// SIGINT or SIGTERM arrived.
    Signal,
}

/// Drains the walks of `session` (when tracing) into `sink`, in bounded slices
/// ([`drain::batch`]), until `work` finishes, `tick` fires or a signal arrives; what the ring
/// buffer still holds when `work` finishes is drained too, so that the last walks of the work
/// are counted.
pub async fn run_until<S: Walks, F: Future + Unpin>(
    mut session: Option<&mut S>,
    sink: &mut Sink,
    stop: &mut Stop,
    work: &mut F,
    mut tick: Option<&mut tokio::time::Interval>,
) -> anyhow::Result<Woke<F::Output>> {
    loop {
        tokio::select! {
            r = batch(session.as_deref_mut(), sink) => r?,
            out = &mut *work => {
                if let Some(s) = session {
                    final_drain(s, sink);
                }
                return Ok(Woke::Done(out));
            }
            () = ticked(tick.as_deref_mut()) => return Ok(Woke::Tick),
            () = stop.recv() => return Ok(Woke::Signal),
        }
    }
}

/// How long the end of a run may spend on the walks still in the ring buffer.
const FINAL_DRAIN: Duration = Duration::from_millis(500);

/// Hands the walks now in the ring buffer to the sink, for at most [`FINAL_DRAIN`]: walks of
/// other processes that keep arriving must not hold up the end of the run.
pub fn drain(session: &mut Session, sink: &mut Sink) {
    final_drain(session, sink);
    session.drain_stalls();
}

fn final_drain(src: &mut impl Walks, sink: &mut Sink) {
    if drain::until_empty(src, sink, FINAL_DRAIN) == Drained::More {
        log::info!("walks still arriving after {FINAL_DRAIN:?} of final drain: the rest are not read");
    }
}

/// Runs one scenario in a blocking task while its walks are traced ([`supervise`]).
pub async fn scenario(
    spec: Spec,
    session: Option<&mut Session>,
    sink: &mut Sink,
    stop: &mut Stop,
) -> anyhow::Result<Ran> {
    supervise(move || workload::run(&spec), session, sink, stop).await
}

/// Runs `work` in a blocking task while the walks of `session` are drained into `sink`;
/// SIGINT/SIGTERM cancel it (the workload's guards then undo its changes) and it ends with the
/// `interrupted` error. An error of the trace side cancels it too, and returns once the work
/// has ended.
pub async fn supervise<S: Walks, T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    mut session: Option<&mut S>,
    sink: &mut Sink,
    stop: &mut Stop,
) -> anyhow::Result<T> {
    let mut task = tokio::task::spawn_blocking(work);
    loop {
        let woke = match run_until(session.as_deref_mut(), sink, stop, &mut task, None).await {
            Ok(w) => w,
            Err(e) => {
                // The trace side failed: the workload must not run on unattended (KSM at full
                // speed); cancel it and wait until its guards have put the host back.
                cancel::request();
                match (&mut task).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(w)) => log::info!("the workload, cancelled after a trace error: {w:#}"),
                    Err(j) => log::warn!("the workload task failed: {j}"),
                }
                return Err(e);
            }
        };
        match woke {
            Woke::Done(ran) => return ran.context("the workload task failed")?,
            Woke::Signal => cancel::request(),
            Woke::Tick => {}
        }
    }
}

async fn batch(session: Option<&mut impl Walks>, sink: &mut Sink) -> anyhow::Result<()> {
    match session {
        Some(s) => drain::batch(s, sink).await,
        None => std::future::pending().await,
    }
}

async fn ticked(tick: Option<&mut tokio::time::Interval>) {
    match tick {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}
