//! Reading walks in bounded slices: a slice ends after [`Budget::records`] walks or
//! [`Budget::time`], so that a walk stream faster than the consumer cannot keep the loop from
//! its interval ticks, signals and the Prometheus handler (all on the same runtime). The loop
//! yields to the runtime after a slice that did not empty the source.
use std::time::{Duration, Instant};

use super::sink::Sink;
use crate::ring::{LOOKUPS_PER_SLICE, RingWalks, Walks};

/// How much one slice may read.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// At most this many walks.
    pub records: u64,
    /// At most about this long (the clock is read every [`CLOCK_EVERY`] walks).
    pub time: Duration,
}

/// Records between two clock reads: a read costs tens of ns, a walk's handling about as much.
const CLOCK_EVERY: u64 = 256;

impl Default for Budget {
    /// 10 ms or 65,536 walks: short beside the smallest interval, long enough that the
    /// per-slice cost (a yield, a wakeup) stays negligible beside the walks' handling.
    fn default() -> Self {
        Self {
            records: 65_536,
            time: Duration::from_millis(10),
        }
    }
}

/// How a slice ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drained {
    /// The source had nothing more.
    Empty,
    /// The budget ran out with walks possibly still waiting.
    More,
}

/// Reads walks from `src` into `sink` until it is empty or `budget` is spent.
pub fn slice(src: &mut impl Walks, sink: &mut Sink, budget: Budget) -> Drained {
    let started = Instant::now();
    let mut n = 0u64;
    while src.next(|ev, purpose, process| sink.record(ev, purpose, process)) {
        n += 1;
        if n >= budget.records || (n.is_multiple_of(CLOCK_EVERY) && started.elapsed() >= budget.time) {
            return Drained::More;
        }
    }
    Drained::Empty
}

/// Reads slices until the source is empty or `limit` has passed: the end of a run, where the
/// walks already in the ring buffer should be counted but a stream that goes on (other
/// processes) must not delay the exit.
pub fn until_empty(src: &mut impl Walks, sink: &mut Sink, limit: Duration) -> Drained {
    let started = Instant::now();
    loop {
        let left = limit.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Drained::More;
        }
        let budget = Budget {
            time: left.min(Budget::default().time),
            ..Budget::default()
        };
        if slice(src, sink, budget) == Drained::Empty {
            return Drained::Empty;
        }
    }
}

/// Waits for walks, reads one slice, and yields to the runtime when walks are left, so that
/// the other branches of the loop's `select!` (tick, signal) and other tasks get their turn:
/// tokio's cooperative budget would otherwise keep reporting them not ready.
pub async fn batch(src: &mut impl Walks, sink: &mut Sink) -> anyhow::Result<()> {
    src.readable().await?;
    if slice(src, sink, Budget::default()) == Drained::More {
        tokio::task::yield_now().await;
    }
    Ok(())
}

/// Everything in `walks`'s ring buffer into `sink`, in the live loop's slices, with its /proc
/// lookups between them; returns the records read.
pub fn ring(walks: &mut RingWalks, sink: &mut Sink) -> u64 {
    let before = sink.total.records;
    loop {
        walks.decoder.processes.resolve(LOOKUPS_PER_SLICE);
        if slice(walks, sink, Budget::default()) == Drained::Empty {
            return sink.total.records - before;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::mpsc,
        time::{Duration, Instant},
    };

    use rmap_common::{PageType, WalkEvent};

    use super::*;
    use crate::{
        events::tests::event,
        procs::Process,
        trace_loop::{Woke, run_until, signals::Stop},
    };

    /// A source that never runs dry: the fastest stream there can be.
    struct Endless(WalkEvent, u64);

    impl Walks for Endless {
        async fn readable(&mut self) -> anyhow::Result<()> {
            Ok(())
        }

        fn next(&mut self, f: impl FnOnce(&WalkEvent, &str, Process<'_>)) -> bool {
            self.1 += 1;
            f(&self.0, "migrate", Process::named("java"));
            true
        }
    }

    #[test]
    fn a_slice_stops_at_its_budget() {
        let mut src = Endless(event(PageType::Anon, 1_000, 1), 0);
        let mut sink = Sink::default();
        let budget = Budget {
            records: 1000,
            time: Duration::from_secs(30),
        };
        assert_eq!(slice(&mut src, &mut sink, budget), Drained::More);
        assert_eq!(src.1, 1000);
        // Counts and percentiles come from the kernel's histograms; records are counted apart.
        assert_eq!(sink.total.records, 1000);
        let limit = Duration::from_millis(50);
        assert_eq!(until_empty(&mut src, &mut sink, limit), Drained::More);
    }

    /// Under an endless stream, an interval tick and then SIGINT each end `run_until` within a
    /// second. Runs on its own thread so that a loop that never yields fails the test instead
    /// of hanging it.
    #[test]
    fn tick_and_sigint_arrive_under_a_full_stream() {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let mut stop = Stop::new().expect("signal handlers");
                let mut src = Endless(event(PageType::Anon, 1_000, 1), 0);
                let mut sink = Sink::default();
                let mut work = std::pin::pin!(std::future::pending::<()>());
                let mut tick = tokio::time::interval(Duration::from_millis(300));
                tick.tick().await;
                let t0 = Instant::now();
                let woke = run_until(Some(&mut src), &mut sink, &mut stop, &mut work, Some(&mut tick)).await;
                let tick_after = t0.elapsed();
                assert!(matches!(woke, Ok(Woke::Tick)));
                // SAFETY: kill(2) on our own pid with a signal whose handler tokio installed.
                let rc = unsafe { libc::kill(libc::getpid(), libc::SIGINT) };
                assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
                let t1 = Instant::now();
                let woke = run_until(Some(&mut src), &mut sink, &mut stop, &mut work, None).await;
                assert!(matches!(woke, Ok(Woke::Signal)));
                let signal_after = t1.elapsed();
                tx.send((tick_after, signal_after, src.1))
                    .expect("test thread waits");
            });
        });
        let (tick_after, signal_after, walks) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the loop did not return within 10 s: the stream starves it");
        assert!(tick_after < Duration::from_secs(1), "tick after {tick_after:?}");
        assert!(
            signal_after < Duration::from_secs(1),
            "SIGINT after {signal_after:?}"
        );
        assert!(walks > 10_000, "only {walks} walks read");
    }
}
