//! The `--prometheus` endpoint out of file descriptors (its own test binary: it lowers the
//! process's `RLIMIT_NOFILE`): accept fails with EMFILE while a connection waits, and the server
//! must back off rather than retry at once (a spin would burn a core of a production host), then
//! serve the waiting client once descriptors are free again.
mod common;

use std::{
    io::{Read as _, Write as _},
    time::Duration,
};

use rmap_user::export::prometheus::Metrics;

fn cpu_time() -> Duration {
    // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage for the call.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut ru) }, 0);
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(us(ru.ru_utime) + us(ru.ru_stime))
}

fn set_soft_nofile(n: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the call.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) }, 0);
    let old = lim.rlim_cur;
    lim.rlim_cur = n;
    // SAFETY: `lim` is a valid rlimit; the soft limit stays within the hard one.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) }, 0);
    old
}

/// The lowest descriptor number not in use: the next socket gets it.
fn next_fd() -> u64 {
    // SAFETY: dup of stdin returns a new descriptor (the lowest free) or -1; it is closed at once.
    let fd = unsafe { libc::dup(0) };
    assert!(fd >= 0);
    // SAFETY: `fd` was just returned by dup and is owned here.
    assert_eq!(unsafe { libc::close(fd) }, 0);
    fd as u64
}

#[test]
fn accept_errors_back_off_and_recover() {
    let addr = common::serve_on_thread(Metrics::new("tracepoint", "6.1.0"));
    // Room for the client's socket and nothing more: the server's accept gets EMFILE.
    let old = set_soft_nofile(next_fd() + 1);
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    let before = cpu_time();
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_time().saturating_sub(before);
    set_soft_nofile(old);
    assert!(
        used < Duration::from_millis(250),
        "the server used {used:?} of CPU in 1 s of EMFILE: it spins on accept"
    );
    client
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    println!("CPU during 1 s of EMFILE: {used:?}");
}
