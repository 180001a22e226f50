//! An error of the trace side (the ring buffer failing) cancels the workload it watches and
//! returns once the workload has stopped: the workload must not run on unattended with KSM at
//! full speed. The workload here is the wait of the KSM merge (`cancel::sleep`), 30 s long
//! unless cancelled.
use std::{
    sync::mpsc,
    time::{Duration, Instant},
};

use rmap_common::WalkEvent;
use rmap_user::{
    procs::Process,
    ring::Walks,
    trace_loop::{signals::Stop, sink::Sink, supervise},
    workload::cancel,
};

/// A ring buffer that fails after `after`.
struct Failing {
    at: Instant,
}

impl Walks for Failing {
    async fn readable(&mut self) -> anyhow::Result<()> {
        tokio::time::sleep_until(self.at.into()).await;
        anyhow::bail!("ring buffer: simulated failure")
    }

    fn next(&mut self, _f: impl FnOnce(&WalkEvent, &str, Process<'_>)) -> bool {
        false
    }
}

#[test]
fn a_trace_error_cancels_the_workload() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    let result = rt.block_on(async {
        let mut stop = Stop::new().expect("signal handlers");
        let mut sink = Sink::default();
        let mut src = Failing {
            at: Instant::now() + Duration::from_millis(200),
        };
        let work = move || {
            let waited = cancel::sleep(Duration::from_secs(30));
            tx.send(waited.is_err()).expect("the test waits");
            Ok(waited?)
        };
        supervise(work, Some(&mut src), &mut sink, &mut stop).await
    });
    let took = started.elapsed();
    let err = result.expect_err("the trace error was not returned");
    assert!(err.to_string().contains("simulated failure"), "{err:#}");
    let cancelled = rx
        .recv_timeout(Duration::from_secs(1))
        .expect("the workload ended");
    assert!(cancelled, "the workload was not cancelled");
    // Back within a second of the error (the wait checks every 50 ms), far from its 30 s.
    assert!(took < Duration::from_secs(5), "returned after {took:?}");
}
