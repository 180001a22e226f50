//! Choosing and attaching an attach mode: the declarative plan (`plan`), the walker functions
//! that exist in this kernel (`targets`), loading the eBPF object (`load`) and attaching
//! its programs (`modes`).
pub mod errors;
pub mod load;
pub mod modes;
pub mod plan;
pub mod stalls;
pub mod targets;
