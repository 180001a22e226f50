//! One module per kernel interface, and the object's licence. Tests that load programs, mount
//! or read kallsyms addresses start with `require_root`.
mod btf;
mod capacity;
mod host_kernel;
mod host_state;
mod inflight;
mod kallsyms;
mod licence;
mod stalls;
mod tracefs;
