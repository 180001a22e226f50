//! The end of a tracing run: the lines every run ends with, and the fields every run's JSON
//! document starts with (docs/json.md).
use std::time::Duration;

use serde::Serialize;

use crate::{
    attach::plan::{self, Outcome},
    counters::KernelCounts,
    render,
    session::Session,
};

/// The fields common to the JSON documents of the benchmark and of `--attach-only`.
#[derive(Serialize)]
pub struct RunJson<'a> {
    /// `uname -r`.
    pub kernel: String,
    /// `uname -v`: the build, with the distribution's package version where it has one.
    pub kernel_build: String,
    /// Which attach mode was chosen, which were skipped and why.
    pub attach: &'a Outcome,
    /// Why off-CPU time was not measured, if it was not.
    pub offcpu_unavailable: Option<&'a str>,
    /// Why waits were not attributed to walks although `--stalls` asked for it.
    pub stalls_unavailable: Option<&'a str>,
    /// Length of the run, in seconds.
    pub duration_s: f64,
    /// The kernel-side counters, exact even when events were dropped or filtered.
    pub kernel_counts: &'a KernelCounts,
    /// Ring buffer records that could not be decoded.
    pub decode_errors: u64,
}

impl<'a> RunJson<'a> {
    pub fn new(session: &'a Session, counts: &'a KernelCounts, elapsed: Duration) -> Self {
        Self {
            kernel: crate::kernel::host::kernel_release(),
            kernel_build: crate::kernel::host::kernel_build(),
            attach: &session.attached.outcome,
            offcpu_unavailable: session.attached.offcpu_unavailable.as_deref(),
            stalls_unavailable: session.stalls_unavailable.as_deref(),
            duration_s: elapsed.as_secs_f64(),
            kernel_counts: counts,
            decode_errors: session.decoder.decode_errors,
        }
    }
}

/// The name of the attach mode a run uses.
pub fn attach_name(outcome: &Outcome) -> &'static str {
    outcome
        .chosen
        .as_ref()
        .map_or("none", |c| plan::spec(c.mode).name)
}

/// The lines every run ends with: the kernel counters, then decode errors if any.
pub fn footer(session: &Session, counts: &KernelCounts) {
    println!("{}", render::counters_line(counts));
    if session.decoder.decode_errors > 0 {
        println!("decode errors: {}", session.decoder.decode_errors);
    }
}
