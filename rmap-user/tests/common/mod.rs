//! What the test binaries share; each uses a part, so the rest is dead code to it.
#![allow(dead_code, unused_imports)]

mod cancel;
mod server;

pub use cancel::{Canceller, maps, nameless, vmas_in};
pub use server::serve_on_thread;
