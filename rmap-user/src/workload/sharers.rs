//! `--sharers K`: one page shared by K forked children (copy-on-write anon, or `MAP_SHARED` file),
//! so that one folio has K+1 mappings. Children only block on a pipe and exit; they are released
//! and reaped on drop.
use std::io;

use anyhow::Context as _;

use super::cancel;

pub struct Sharers {
    children: Vec<libc::pid_t>,
    /// Write end: closing it releases the children.
    release: Option<libc::c_int>,
}

impl Sharers {
    /// Forks `k` children (call it once the shared page is faulted in, so they inherit it);
    /// `tick` is called per child.
    pub fn fork(k: usize, mut tick: impl FnMut()) -> anyhow::Result<Self> {
        let mut fds = [0; 2];
        // SAFETY: valid array of two ints.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error()).context("pipe2");
        }
        let mut s = Self {
            children: Vec::with_capacity(k),
            release: Some(fds[1]),
        };
        let read_end = fds[0];
        for _ in 0..k {
            if let Err(e) = cancel::check() {
                // SAFETY: our fd.
                unsafe { libc::close(read_end) };
                return Err(e.into());
            }
            // SAFETY: the child only calls async-signal-safe functions (close, read, _exit).
            match unsafe { libc::fork() } {
                -1 => {
                    let e = io::Error::last_os_error();
                    // SAFETY: our fd.
                    unsafe { libc::close(read_end) };
                    return Err(e).context("fork of a sharer");
                }
                // SAFETY: the child of fork: only async-signal-safe calls (close, read, _exit)
                // on descriptors it owns.
                0 => unsafe {
                    libc::close(fds[1]);
                    let mut b = 0u8;
                    // Returns 0 (EOF) when the parent closes the write end or dies.
                    while libc::read(read_end, (&raw mut b).cast(), 1) < 0 {}
                    libc::_exit(0);
                },
                pid => s.children.push(pid),
            }
            tick();
        }
        // SAFETY: our fd; children hold their own copies.
        unsafe { libc::close(read_end) };
        Ok(s)
    }

    pub fn count(&self) -> usize {
        self.children.len()
    }
}

impl Drop for Sharers {
    fn drop(&mut self) {
        if let Some(fd) = self.release.take() {
            // SAFETY: our fd.
            unsafe { libc::close(fd) };
        }
        for pid in self.children.drain(..) {
            let mut status = 0;
            // SAFETY: our child.
            if unsafe { libc::waitpid(pid, &raw mut status, 0) } < 0 {
                log::warn!("waitpid({pid}): {}", io::Error::last_os_error());
            }
        }
    }
}
