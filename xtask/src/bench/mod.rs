//! `cargo xtask bench`: what rmap-trace itself costs, measured, never part of CI (short smokes of
//! these are in `cargo xtask test`). One module per bench.
mod capacity;
mod logs;
mod memory;
mod overhead;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub bench: Bench,
}

#[derive(Debug, clap::Subcommand)]
pub enum Bench {
    /// Added time per walk of each tracer (none, rmap-trace's modes, tracefs `kprobe_events` text,
    /// bpftrace) on walk-heavy workloads, interleaved repetitions in one guest boot per kernel.
    Overhead(overhead::Args),
    /// The host's event pipeline, not emulated: a full ring buffer of real-format records drained
    /// through the real decoder, aggregator and writers; events/s and ns per event per stage.
    Capacity(capacity::Args),
    /// `--attach-only` with `--prometheus` and `--hlog` under continuous walks in the guest: RSS
    /// sampled every 10 s, the ring buffer's mapping reported apart from the rest.
    Memory(memory::Args),
    /// `rmap-trace report` on a day-long interval log (1 GiB by default) and on crafted ones
    /// (a 4 GiB payload claimed, 40 of the widest histograms): time and peak RSS of each.
    Logs(logs::Args),
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    crate::setup::ensure()?;
    match &args.bench {
        Bench::Overhead(a) => overhead::run(a),
        Bench::Capacity(a) => capacity::run(a),
        Bench::Memory(a) => memory::run(a),
        Bench::Logs(a) => logs::run(a),
    }
}

/// `cargo run --release` of the `integration-test` binary `bin`, in the workspace, its own
/// arguments still to come after a `--`.
fn integration_bin(bin: &str) -> std::process::Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(crate::build::workspace_root()).args([
        "run",
        "--release",
        "--package",
        "integration-test",
        "--bin",
        bin,
    ]);
    cmd
}
