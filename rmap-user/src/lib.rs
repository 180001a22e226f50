//! rmap-trace: latency of the kernel's reverse-mapping walks, per folio, through eBPF.
//!
//! Layers, each using only those below it: `cli`; the commands (`cmd`), side by side; what
//! the tracing commands share (`trace_loop`); a tracing session (`session`), the workload
//! (`workload`), the outputs (`export`, `render`, `agg`); the eBPF object and the kernel
//! (`attach`, `counters`, `events`, `kernel`).
pub mod agg;
pub mod attach;
pub mod bounds;
pub mod cli;
pub mod cmd;
pub mod counters;
pub mod events;
pub mod export;
pub mod files;
pub mod host_state;
pub mod kernel;
pub mod latency;
pub mod memory;
pub mod owners;
pub mod printable;
pub mod privs;
pub mod procs;
pub mod render;
pub mod session;
pub mod stalls;
pub mod top;
pub mod trace_loop;
pub mod workload;
