//! `--stalls`: who waited for walks. The kernel side (rmap-ebpf stall.rs) sends a record per
//! wait on a lock held by a walk in flight and counts every wait in a histogram; here the
//! records are read (`reader`), aggregated per victim and per walk (`agg`), shown (`render`),
//! and the kernel's exact figures read (`kernel`).
pub mod agg;
pub mod kernel;
pub mod reader;
pub mod render;

pub use reader::StallReader;
