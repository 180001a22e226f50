//! The commands, side by side: none uses another; what they share is below them
//! (`trace_loop`, `session`, `workload`, `export`, `render`).
pub mod bench;
pub mod bpf_stats;
pub mod compare;
pub mod completions;
pub mod live;
pub mod manpage;
pub mod plot;
pub mod probe;
pub mod report;
pub mod restore;
pub mod workload;

use crate::cli::{Cli, Command};

/// Runs the command of the command line (the benchmark without one).
pub async fn run(cli: &Cli) -> anyhow::Result<()> {
    // Commands that may change host state (KSM, cgroup, zram, a tracefs mount) first put back
    // what runs of the same user killed before them left changed, so that they never take a
    // changed value for an original (the unprivileged daemon reads only its own journals).
    match &cli.command {
        None | Some(Command::Workload { .. }) => crate::host_state::recover_at_start()?,
        // probe only reports (its tracefs mount is journalled like any other): an unreadable
        // journal, e.g. when run without root, is a warning there, not the end of the report.
        Some(Command::Probe { .. }) => {
            if let Err(e) = crate::host_state::recover_at_start() {
                eprintln!("rmap-trace: warning: {e:#}");
            }
        }
        Some(_) => {}
    }
    match &cli.command {
        Some(Command::Restore) => restore::run(),
        Some(Command::Probe { json }) => probe::run(json.as_deref()),
        Some(Command::Report { files }) => report::run(files),
        Some(Command::Compare { a, b }) => compare::run(a, b),
        Some(Command::Plot { files, output }) => plot::run(files, output),
        Some(Command::Workload { types, bench }) => workload::run(types, bench).await,
        Some(Command::Completions { shell }) => completions::run(*shell),
        Some(Command::Manpage) => manpage::run(),
        Some(Command::BpfStats) => bpf_stats::run(),
        None if cli.attach_only => live::run(&cli.types, &cli.trace, &cli.live).await,
        None => bench::run(&cli.types, &cli.trace, &cli.bench).await,
    }
}
