//! Getting latency data out: HdrHistogram interval logs (`--hlog`) and the commands that read
//! them back (`report`, `compare`).
pub mod compare;
pub mod hlog;
pub mod read;
