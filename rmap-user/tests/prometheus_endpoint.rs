//! The `--prometheus` endpoint on its own (no root, no eBPF): the metrics registry and the
//! server are built directly, served on a current-thread runtime of their own like in a run,
//! and spoken to over loopback TCP.
mod common;

use std::{net::SocketAddr, sync::OnceLock, time::Duration};

use rmap_common::{HIST_BUCKETS, HistKey, PageType, hist_bucket};
use rmap_user::export::{endpoint::HEAD_TIMEOUT, prometheus::Metrics};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

const SLOW_CLIENTS: usize = 1_000;

/// One server for the whole test binary, on its own thread and runtime.
fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let metrics = Metrics::new("tracepoint", "6.1.0");
        let mut buckets = vec![0u64; HIST_BUCKETS];
        buckets[hist_bucket(3_000_000) as usize] = 1;
        let key = HistKey {
            rmap_one: 0,
            page_type: PageType::Ksm as u32,
            _pad: 0,
        };
        metrics.set_latency(&vec![(key, buckets)], |_| "migrate".to_string());
        common::serve_on_thread(metrics)
    })
}

fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Sends `request` as is and reads the whole answer (the server closes after one response).
async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

async fn get(addr: SocketAddr, path: &str) -> String {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
    )
    .await
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf reads a constant of the system; no memory is passed.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page / 1024
}

/// Room for the slow clients' sockets, the server's and the test harness's.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the call.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) }, 0);
    let want = (SLOW_CLIENTS as u64 + 512).min(lim.rlim_max);
    assert!(
        want > SLOW_CLIENTS as u64 + 100,
        "hard RLIMIT_NOFILE {} too low",
        lim.rlim_max
    );
    lim.rlim_cur = lim.rlim_cur.max(want);
    // SAFETY: `lim` is a valid rlimit, read above; the soft limit stays within the hard one.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) }, 0);
}

#[test]
fn serves_metrics_only() {
    let addr = server();
    client_runtime().block_on(async {
        let ok = get(addr, "/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("application/openmetrics-text"), "{ok}");
        assert!(ok.contains("# TYPE rmap_walk_duration_seconds histogram"), "{ok}");
        assert!(
            ok.contains("rmap_walk_duration_seconds_count{page_type=\"ksm\",purpose=\"migrate\"} 1"),
            "{ok}"
        );
        let query = get(addr, "/metrics?x=1").await;
        assert!(query.starts_with("HTTP/1.1 200 OK\r\n"), "{query}");
        for path in ["/", "/metric", "/metrics/x", "/favicon.ico"] {
            let r = get(addr, path).await;
            assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{path}: {r}");
        }
        for method in ["POST", "PUT", "DELETE", "HEAD"] {
            let r = exchange(
                addr,
                format!("{method} /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n").as_bytes(),
            )
            .await;
            assert!(
                r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
                "{method}: {r}"
            );
            assert!(r.to_ascii_lowercase().contains("allow: get\r\n"), "{method}: {r}");
        }
    });
}

#[test]
fn malformed_requests_get_400() {
    let addr = server();
    client_runtime().block_on(async {
        for bad in [
            &b"this is not http\r\n\r\n"[..],
            b"GET /metrics HTTP/9.9\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nHost\r\n\r\n",
            b"\x00\x01\x02\x03\r\n\r\n",
        ] {
            let r = exchange(addr, bad).await;
            assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{bad:?}: {r:?}");
        }
    });
}

/// A client that connects and says nothing is closed once the head timeout has passed.
#[test]
fn silent_connections_are_closed() {
    let addr = server();
    client_runtime().block_on(async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(HEAD_TIMEOUT * 2, s.read(&mut buf))
            .await
            .expect("a silent connection is still open after twice the head timeout");
        // Closed, possibly with hyper's 408 first.
        let n = n.unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    });
}

/// 1,000 clients that send half a request head and wait: a scraper still gets `/metrics` at
/// once, and memory stays put.
#[test]
fn slow_clients_do_not_starve_a_scraper() {
    raise_fd_limit();
    let addr = server();
    client_runtime().block_on(async {
        // Warm up: the first answer allocates the encoder's buffers.
        assert!(get(addr, "/metrics").await.starts_with("HTTP/1.1 200"));
        let before = rss_kib();
        let mut slow = Vec::with_capacity(SLOW_CLIENTS);
        for _ in 0..SLOW_CLIENTS {
            let mut s = TcpStream::connect(addr).await.unwrap();
            // Not a full head: no blank line.
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: slow\r\n")
                .await
                .unwrap();
            slow.push(s);
        }
        let scraped = tokio::time::timeout(Duration::from_secs(5), get(addr, "/metrics"))
            .await
            .expect("no answer within 5 s while 1,000 slow clients are connected");
        assert!(scraped.starts_with("HTTP/1.1 200 OK\r\n"), "{scraped}");
        let during = rss_kib();
        drop(slow);
        let again = tokio::time::timeout(Duration::from_secs(5), get(addr, "/metrics"))
            .await
            .expect("no answer within 5 s after the slow clients left");
        assert!(again.starts_with("HTTP/1.1 200 OK\r\n"), "{again}");
        let after = rss_kib();
        println!(
            "RSS: before {before} KiB, with {SLOW_CLIENTS} slow clients {during} KiB, after {after} KiB"
        );
        assert!(
            during.saturating_sub(before) < 4 * 1024,
            "RSS grew from {before} KiB to {during} KiB with {SLOW_CLIENTS} slow clients"
        );
    });
}
