//! `rmap-trace restore`: puts back by hand what runs that are gone left changed on the host
//! (what every state-changing command also does when it starts), from their journals in the
//! journal directory of this user (root's: /run/rmap-trace). A file there that is not a
//! journal rmap-trace trusts is named, left alone, and makes the exit status 1.
use std::path::Path;

use crate::host_state::{self, BadFiles, Host, JournalDir};

pub fn run() -> anyhow::Result<()> {
    let Some(dir) = JournalDir::current() else {
        println!(
            "rmap-trace: nothing to restore (uid {} has no journal directory)",
            host_state::dir::euid()
        );
        return Ok(());
    };
    let recovery = host_state::recover(&dir, &Host::real(), Path::new("/proc"))?;
    if recovery.runs.is_empty() && recovery.bad.is_empty() {
        println!(
            "rmap-trace: nothing to restore (no journal of a finished run in {})",
            dir.path.display()
        );
    }
    host_state::report(&recovery, &dir, BadFiles::Fail)
}
