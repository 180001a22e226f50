//! The metrics endpoint's connections, and which one may be closed when a new connection needs
//! its slot: only one that waits on its client. That is a connection that has read all its
//! client sent and still lacks a request head (a slow client), or one whose answer its client
//! has not read for [`WRITE_STALL`] (a client that never reads). A connection whose client's
//! bytes are there but not read yet (its task has not run since) is as fast as the newcomer and
//! keeps its place, so a flood of fast clients cannot take a scraper's slot; the oldest of the
//! idle ones goes first.
use std::{
    collections::VecDeque,
    io,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::oneshot,
};

/// How long a client may leave its answer unread before its connection may be closed.
pub const WRITE_STALL: Duration = Duration::from_secs(1);

/// What a connection's stream tells of its client.
#[derive(Debug, Default)]
pub struct Watch {
    /// The request head has been read.
    head: AtomicBool,
    /// The last read found nothing: the client has sent nothing more than what was read.
    starved: AtomicBool,
    /// Since when (ms after the endpoint started, at least 1) writes wait for the client to
    /// read; 0 while they do not.
    write_stalled_ms: AtomicU64,
}

impl Watch {
    /// The request head has come: the connection no longer waits for it.
    pub fn head_read(&self) {
        self.head.store(true, Ordering::Relaxed);
    }

    fn idle(&self, now_ms: u64) -> bool {
        let stalled = self.write_stalled_ms.load(Ordering::Relaxed);
        (!self.head.load(Ordering::Relaxed) && self.starved.load(Ordering::Relaxed))
            || (stalled != 0 && now_ms.saturating_sub(stalled) >= WRITE_STALL.as_millis() as u64)
    }
}

/// A connection's stream, telling its [`Watch`] what its reads and writes find.
pub struct Watched {
    stream: TcpStream,
    watch: Arc<Watch>,
    epoch: Instant,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.stream).poll_read(cx, buf);
        self.watch.starved.store(r.is_pending(), Ordering::Relaxed);
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.stream).poll_write(cx, buf);
        let stalled = &self.watch.write_stalled_ms;
        if r.is_pending() {
            let now = (self.epoch.elapsed().as_millis() as u64).max(1);
            // The first refused write of a stall starts it.
            let _ = stalled.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        } else {
            stalled.store(0, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

struct Conn {
    id: u64,
    close: oneshot::Sender<()>,
    watch: Arc<Watch>,
}

/// The connections being served, oldest first, each with the sender that closes it.
pub struct Conns {
    epoch: Instant,
    inner: Mutex<(u64, VecDeque<Conn>)>,
}

impl Default for Conns {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            inner: Mutex::new((0, VecDeque::new())),
        }
    }
}

impl Conns {
    /// A new connection on `stream`: its id, what closes it, and its watched stream.
    pub fn add(&self, stream: TcpStream) -> (u64, oneshot::Receiver<()>, Arc<Watch>, Watched) {
        let (id, closed, watch) = self.register();
        let watched = Watched {
            stream,
            watch: watch.clone(),
            epoch: self.epoch,
        };
        (id, closed, watch, watched)
    }

    fn register(&self) -> (u64, oneshot::Receiver<()>, Arc<Watch>) {
        let (close, closed) = oneshot::channel();
        let watch = Arc::new(Watch::default());
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let id = g.0;
        g.0 += 1;
        g.1.push_back(Conn {
            id,
            close,
            watch: watch.clone(),
        });
        (id, closed, watch)
    }

    /// The connection has ended.
    pub fn remove(&self, id: u64) {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.1.retain(|c| c.id != id);
    }

    /// Closes the oldest connection that waits on its client; false when there is none.
    pub fn close_oldest_idle(&self) -> bool {
        self.close_oldest_idle_at(self.epoch.elapsed().as_millis() as u64)
    }

    fn close_oldest_idle_at(&self, now_ms: u64) -> bool {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(pos) = g.1.iter().position(|c| c.watch.idle(now_ms)) else {
            return false;
        };
        let Some(c) = g.1.remove(pos) else {
            return false;
        };
        // A connection that ended meanwhile has dropped its receiver: its slot is free too.
        if c.close.send(()).is_err() {
            log::debug!("metrics connection ended before it was closed");
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only connections that wait on their client are closed, the oldest first: a slow
    /// client's (all read, no head), then one whose answer has waited a second to be read;
    /// never one not polled yet, nor one answering a client that reads.
    #[test]
    fn closes_only_connections_waiting_on_their_client() {
        let c = Conns::default();
        let conns: Vec<_> = (0..5).map(|_| c.register()).collect();
        let watch = |i: usize| &conns[i].2;
        // 0: accepted, not polled yet (its head may be in the socket).
        // 1: head read, answer being written to a client that reads.
        watch(1).head_read();
        // 2: answer unread since 100 ms.
        watch(2).head_read();
        watch(2).write_stalled_ms.store(100, Ordering::Relaxed);
        // 3: read all its client sent, no head: slow.
        watch(3).starved.store(true, Ordering::Relaxed);
        // 4: its head was read, and then nothing more: not waiting for a head any more.
        watch(4).head_read();
        watch(4).starved.store(true, Ordering::Relaxed);
        assert!(c.close_oldest_idle_at(500));
        assert!(
            !c.close_oldest_idle_at(500),
            "the unread answer has waited 400 ms only"
        );
        assert!(c.close_oldest_idle_at(1_100));
        assert!(!c.close_oldest_idle_at(60_000));
        let closed: Vec<bool> = conns
            .into_iter()
            .map(|(_, mut rx, _)| rx.try_recv().is_ok())
            .collect();
        assert_eq!(closed, [false, false, true, true, false]);
    }
}
