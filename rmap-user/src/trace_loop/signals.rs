//! SIGINT and SIGTERM, listened to for the whole run: a signal with no listener is lost once
//! tokio has installed its handler, so the listeners are made first and kept.
use anyhow::Context as _;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Both stop signals of a run.
pub struct Stop {
    int: Signal,
    term: Signal,
}

impl Stop {
    /// Installs the handlers; do it before anything that a signal should interrupt.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    /// Waits for the next SIGINT or SIGTERM.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}
