//! The HTTP side of `--prometheus`: hyper's HTTP/1 server answering `GET /metrics` (404 for
//! another path, 405 for another method, 400 for what is not HTTP), hardened for a host where
//! anyone on the network may connect:
//! - at most [`MAX_CONNECTIONS`] at once, so that the tracer keeps its file descriptors; when
//!   all are taken, the oldest connection that waits on its client (a slow one, or one that
//!   does not read its answer) is closed for the next (see `conns`), so such clients cannot
//!   keep a scraper out, and fast ones cannot take its place; with none to close, the next
//!   connection waits in the kernel's backlog for a slot;
//! - the request head must arrive within [`HEAD_TIMEOUT`] of the connection (this is also the
//!   idle timeout: one request per connection), and the whole exchange, the response's write
//!   included, ends after [`CONNECTION_DEADLINE`];
//! - an accept error such as EMFILE backs off (up to a second) instead of spinning.
mod conns;

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header,
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
};

use self::conns::Conns;
use super::prometheus::Metrics;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Time from accept to a complete request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Time from accept to the end of the response.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(15);
/// Longest pause after failed accepts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How often a full server looks again for a connection waiting on its client.
const RECHECK: Duration = Duration::from_millis(10);

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `PORT` means 127.0.0.1:PORT (loopback unless told otherwise); else `HOST:PORT`.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| format!("`{s}` is not PORT or HOST:PORT (e.g. 9500 or 127.0.0.1:9500)"))
}

/// Binds now (a taken port is an error before tracing starts) and serves in a task; says so on
/// stderr when the address is every interface's.
pub async fn serve(addr: SocketAddr, metrics: Arc<Mutex<Metrics>>) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the Prometheus endpoint to {addr}"))?;
    let bound = listener.local_addr()?;
    if let Some(w) = exposure_warning(bound) {
        eprintln!("{w}");
    }
    tokio::spawn(accept_loop(listener, metrics));
    Ok(bound)
}

/// The warning line for an address that every interface answers on (`0.0.0.0`, `::`).
pub fn exposure_warning(addr: SocketAddr) -> Option<String> {
    addr.ip().is_unspecified().then(|| {
        format!(
            "rmap-trace: warning: the Prometheus endpoint {addr} is reachable on every interface \
             of this host (a bare port binds 127.0.0.1 only)"
        )
    })
}

async fn accept_loop(listener: TcpListener, metrics: Arc<Mutex<Metrics>>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let conns = Arc::new(Conns::default());
    let mut backoff = Duration::ZERO;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                backoff = Duration::ZERO;
                stream
            }
            Err(e) => {
                if backoff.is_zero() {
                    log::warn!("metrics endpoint: accept failed ({e}); backing off");
                }
                backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_BACKOFF);
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let Some(permit) = slot(&slots, &conns).await else {
            return;
        };
        tokio::spawn(connection(stream, permit, conns.clone(), metrics.clone()));
    }
}

/// A free slot: at once, or once a connection waiting on its client has been closed for it,
/// or once a connection has ended (meanwhile, new connections wait in the kernel's backlog).
async fn slot(slots: &Arc<Semaphore>, conns: &Conns) -> Option<OwnedSemaphorePermit> {
    loop {
        if let Ok(p) = slots.clone().try_acquire_owned() {
            return Some(p);
        }
        if conns.close_oldest_idle() {
            return slots.clone().acquire_owned().await.ok();
        }
        tokio::select! {
            p = slots.clone().acquire_owned() => return p.ok(),
            () = tokio::time::sleep(RECHECK) => {}
        }
    }
}

/// One connection, its slot held until it ends.
async fn connection(
    stream: TcpStream,
    permit: OwnedSemaphorePermit,
    conns: Arc<Conns>,
    metrics: Arc<Mutex<Metrics>>,
) {
    let (id, closed, watch, stream) = conns.add(stream);
    let service = service_fn(move |req: Request<Incoming>| {
        watch.head_read();
        let resp = respond(&req, &metrics);
        async move { Ok::<_, Infallible>(resp) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .keep_alive(false)
        .max_buf_size(16 * 1024)
        .serve_connection(TokioIo::new(stream), service);
    // Only a send closes (the sender is dropped when the connection ends).
    let evicted = async {
        if closed.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        r = tokio::time::timeout(CONNECTION_DEADLINE, conn) => match r {
            Ok(Err(e)) => log::debug!("metrics connection: {e}"),
            Err(_) => log::debug!("metrics connection: deadline passed"),
            Ok(Ok(())) => {}
        },
        () = evicted => log::debug!("metrics connection: closed for a newer one"),
    }
    conns.remove(id);
    drop(permit);
}

fn respond(req: &Request<Incoming>, metrics: &Mutex<Metrics>) -> Response<Full<Bytes>> {
    let (status, ctype, body) = if req.method() != Method::GET {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET /metrics\n".to_string(),
        )
    } else if req.uri().path() != "/metrics" {
        (
            StatusCode::NOT_FOUND,
            "text/plain",
            "only /metrics is served\n".to_string(),
        )
    } else {
        match metrics
            .lock()
            .map_err(|_| "metrics lock poisoned".to_string())
            .and_then(|m| m.encode().map_err(|e| format!("encoding metrics: {e}")))
        {
            Ok(text) => (StatusCode::OK, OPENMETRICS, text),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, "text/plain", format!("{e}\n")),
        }
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(ctype));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        resp.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_to_loopback() {
        assert_eq!(parse_addr("9500").unwrap(), "127.0.0.1:9500".parse().unwrap());
        assert_eq!(
            parse_addr("0.0.0.0:9500").unwrap(),
            "0.0.0.0:9500".parse().unwrap()
        );
        assert!(parse_addr("localhost").is_err());
    }

    #[test]
    fn warns_for_every_interface_only() {
        for all in ["0.0.0.0:9500", "[::]:9500"] {
            let w = exposure_warning(all.parse().unwrap()).unwrap();
            assert!(w.contains("reachable on every interface"), "{w}");
        }
        for one in ["127.0.0.1:9500", "[::1]:9500", "10.1.2.3:9500"] {
            assert_eq!(exposure_warning(one.parse().unwrap()), None, "{one}");
        }
    }
}
