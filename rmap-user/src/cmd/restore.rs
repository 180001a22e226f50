//! `rmap-trace restore`: puts back by hand what runs that are gone left changed on the host
//! (what every state-changing command also does when it starts), from their journals.
use std::path::Path;

use crate::host_state::{self, DIR};

pub fn run() -> anyhow::Result<()> {
    let recovered = host_state::recover(Path::new(DIR), Path::new("/proc"))?;
    if recovered.is_empty() {
        println!("rmap-trace: nothing to restore (no journal of a finished run in {DIR})");
    }
    host_state::report(&recovered)
}
