//! Getting latency data out of a run: CSV lines (`--csv`), HdrHistogram interval logs
//! (`--hlog`, written by `hlog`, read back by `read` through `v2`, tabled by `compare`), SVG plots
//! (`plot`), all through `output` (checked paths, atomic documents), and Prometheus metrics (`prometheus`, served by `endpoint`).
pub mod compare;
pub mod csv;
pub mod endpoint;
pub mod hlog;
pub mod output;
pub mod plot;
pub mod prom_hist;
pub mod prometheus;
pub mod read;
pub mod v2;
