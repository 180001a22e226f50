//! rmap-trace: latency of the kernel's reverse-mapping walks, per folio, through eBPF.
pub mod agg;
pub mod attach;
pub mod bench;
pub mod cli;
pub mod counters;
pub mod events;
pub mod export;
pub mod kernel;
pub mod live;
pub mod probe;
pub mod report;
pub mod session;
pub mod workload;
