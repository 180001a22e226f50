//! `cargo xtask bench capacity`: the host's event pipeline, not emulated.
//! The real programs fill a real ring buffer past its capacity while nothing reads; it is then
//! drained through rmap-user's decoder, aggregator and writers, stage by stage, timed. The
//! work is in `integration-test/src/capacity.rs` (shared with its short test in `cargo xtask
//! test`); this builds its `capacity` binary in release mode and runs it as root.
use anyhow::Context as _;

use crate::cmd::run_ok;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Ring buffer size (rmap-trace's --ringbuf-kib): a power of two from 4 to 1048576.
    #[arg(long, default_value_t = 16_384)]
    pub ringbuf_kib: u32,
    /// Rounds of every stage; the table shows the fastest of each.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if !args.ringbuf_kib.is_power_of_two() || !(4..=1 << 20).contains(&args.ringbuf_kib) {
        anyhow::bail!(
            "--ringbuf-kib {}: a power of two from 4 to 1048576",
            args.ringbuf_kib
        );
    }
    let mut cmd = super::integration_bin("capacity");
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        cmd.args(["--config", "target.'cfg(all())'.runner = ['sudo', '-E']"]);
    }
    cmd.args([
        "--",
        "--ringbuf-kib",
        &args.ringbuf_kib.to_string(),
        "--rounds",
        &args.rounds.to_string(),
    ]);
    run_ok(&mut cmd).context("the capacity bench")
}
