//! Getting latency data out: HdrHistogram interval logs (`--hlog`) and the commands that read
//! them back (`report`, `compare`, `plot`).
pub mod compare;
pub mod csv;
pub mod hlog;
pub mod plot;
pub mod prometheus;
pub mod read;
