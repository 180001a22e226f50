//! rmap-trace: latency of the kernel's reverse-mapping walks, per folio, through eBPF.
//!
//! Layers, each using only those below it: the commands (`cmd`); their arguments (`cli`); what
//! the tracing commands share (`trace_loop`); a tracing session (`session`) and the workload
//! (`workload`); the ring reader (`ring`), the lock waits (`stalls`), the outputs (`export`,
//! then `render`) and the aggregate (`agg`, then `latency`, `procs` and `top`, all holding the
//! statistics of `stats`; `top` and `stalls` give rows as `rank` says); the eBPF object and the
//! kernel (`attach`, `counters`, `events`, `kernel`, `owners`, `host_state`) and the helpers
//! (`memory`, `files`, `printable`, `bounds`). No module imports one that imports it back:
//! xtask's `import_circles` test fails on a circle.
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
pub mod rank;
pub mod render;
pub mod ring;
pub mod session;
pub mod stalls;
pub mod stats;
pub mod top;
pub mod trace_loop;
pub mod workload;
