//! Shared by the endpoint tests: the `--prometheus` server on a thread and current-thread
//! runtime of its own, as in a run.
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use rmap_user::export::{endpoint, prometheus::Metrics};

/// Serves `metrics` on 127.0.0.1 (a free port) from a new thread; returns the address.
pub fn serve_on_thread(metrics: Metrics) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let metrics = Arc::new(Mutex::new(metrics));
            let addr = endpoint::serve("127.0.0.1:0".parse().unwrap(), metrics)
                .await
                .unwrap();
            tx.send(addr).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}
