//! The `--prometheus` endpoint under floods of clients that send a whole request head and never
//! read the answer (its own test binary, so its own servers): fast ones, connecting as fast as
//! they can while a scraper asks for `/metrics` now and then (they are no slower than the
//! scraper, so none may take its slot); and ones holding every slot with an answer too large
//! for the socket buffers (their connections are closed for the scraper's).
mod common;

use std::{net::SocketAddr, time::Duration};

use rmap_user::export::prometheus::Metrics;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

const FLOOD: usize = 1_500;
const SCRAPES: usize = 10;
const HEAD: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: flood\r\n\r\n";

/// Room for the flood's sockets, the server's and the test harness's.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the call.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) }, 0);
    let want = (FLOOD as u64 * 2 + 512).min(lim.rlim_max);
    assert!(
        want > FLOOD as u64 * 2,
        "hard RLIMIT_NOFILE {} too low",
        lim.rlim_max
    );
    lim.rlim_cur = lim.rlim_cur.max(want);
    // SAFETY: `lim` is a valid rlimit, read above; the soft limit stays within the hard one.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) }, 0);
}

async fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: scraper\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    // A connection closed on the scraper reads as a reset or as nothing.
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The flood, from a thread of its own: the connections it made (kept open, never read).
fn flood(addr: SocketAddr) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        runtime().block_on(async move {
            let mut kept = Vec::with_capacity(FLOOD);
            for _ in 0..FLOOD {
                let Ok(mut s) = TcpStream::connect(addr).await else {
                    continue;
                };
                if s.write_all(HEAD).await.is_ok() {
                    kept.push(s);
                }
            }
            kept.len()
        })
    })
}

#[test]
fn a_flood_of_clients_that_never_read_leaves_the_scraper_its_answer() {
    raise_fd_limit();
    let addr = common::serve_on_thread(Metrics::new("tracepoint", "6.1.0"));
    let flooding = flood(addr);
    let failed = runtime().block_on(async {
        let mut failed = Vec::new();
        for i in 0..SCRAPES {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let r = tokio::time::timeout(Duration::from_secs(20), scrape(addr))
                .await
                .expect("no answer within 20 s");
            if !r.starts_with("HTTP/1.1 200 OK\r\n") {
                failed.push((i, r.chars().take(40).collect::<String>()));
            }
        }
        failed
    });
    let kept = flooding.join().unwrap();
    println!("flood: {kept} connections sent a head and never read");
    assert!(
        failed.is_empty(),
        "scrapes not answered during the flood: {failed:?}"
    );
}

/// Metrics whose answer is larger than the socket buffers: a client that does not read it
/// leaves the server's write waiting.
fn big_metrics() -> Metrics {
    use rmap_common::{HIST_BUCKETS, HistKey, PageType, hist_bucket};
    let m = Metrics::new("tracepoint", "6.1.0");
    let mut buckets = vec![0u64; HIST_BUCKETS];
    for ns in [1_000, 10_000, 100_000, 1_000_000, 10_000_000] {
        buckets[hist_bucket(ns) as usize] = 1;
    }
    let latency: Vec<_> = (0..PURPOSES)
        .map(|i| {
            let key = HistKey {
                rmap_one: i,
                page_type: PageType::Ksm as u32,
                _pad: 0,
            };
            (key, buckets.clone())
        })
        .collect();
    m.set_latency(&latency, |i| format!("purpose_{i}"));
    m
}

const PURPOSES: u64 = 300;

/// A client that sends a whole request head and never reads the answer, through a receive
/// buffer as small as the kernel allows.
async fn never_reads(addr: SocketAddr) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(1).unwrap();
    let mut s = sock.connect(addr).await.unwrap();
    s.write_all(HEAD).await.unwrap();
    s
}

/// Every slot taken by clients that never read an answer too large for the socket buffers:
/// a scraper is still answered, within a scrape timeout.
#[test]
fn clients_that_never_read_their_answer_leave_the_scraper_its_answer() {
    raise_fd_limit();
    let m = big_metrics();
    let size = m.encode().unwrap().len();
    let addr = common::serve_on_thread(m);
    runtime().block_on(async {
        let mut held = Vec::new();
        for _ in 0..rmap_user::export::endpoint::MAX_CONNECTIONS + 16 {
            held.push(never_reads(addr).await);
        }
        let started = std::time::Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(10), scrape(addr))
            .await
            .expect("no answer within 10 s (Prometheus' default scrape timeout)");
        println!("answer of {size} bytes after {:?}", started.elapsed());
        assert!(
            r.starts_with("HTTP/1.1 200 OK\r\n"),
            "{:?}",
            r.chars().take(40).collect::<String>()
        );
        drop(held);
    });
}
