//! One module per kernel interface, and the embedded object (its licence, its sections).
//! Tests that load programs, mount or read kallsyms addresses start with `require_root`.
mod btf;
mod capacity;
mod embedded_object;
mod host_kernel;
mod host_state;
mod inflight;
mod kallsyms;
mod licence;
mod stalls;
mod tracefs;
