//! Facts read from the running kernel: BTF offsets, kallsyms, tracefs, host capabilities, its
//! monotonic clock.
pub mod btf;
pub mod clock;
pub mod features;
pub mod host;
pub mod kallsyms;
pub mod layouts;
pub mod pidns;
pub mod tracefs;
