//! Choosing and attaching an attach mode: the declarative plan (`plan`), the walker functions
//! that exist in this kernel (`targets`), and loading/attaching the eBPF object (`load`).
pub mod errors;
pub mod load;
pub mod plan;
pub mod stalls;
pub mod targets;
