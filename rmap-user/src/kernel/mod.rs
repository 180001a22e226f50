//! Facts read from the running kernel: BTF offsets, kallsyms, tracefs, host capabilities.
pub mod btf;
pub mod features;
pub mod host;
pub mod kallsyms;
pub mod layouts;
pub mod pidns;
pub mod tracefs;
