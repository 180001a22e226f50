//! One module per kernel interface; tests that load programs, mount or read kallsyms
//! addresses start with `require_root`.
mod btf;
mod host_kernel;
mod kallsyms;
mod tracefs;
