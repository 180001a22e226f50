//! What the test binaries share; each uses a part, so the rest is dead code to it.
#![allow(
    dead_code,
    unused_imports,
    reason = "each test binary uses a different part of this module, so which items are unused differs per binary (not `expect`: a binary that used them all would fail it)"
)]

mod cancel;
mod server;

pub use cancel::{Canceller, maps, nameless, vmas_in};
pub use server::serve_on_thread;
