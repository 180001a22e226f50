//! `rmap-trace manpage` (hidden): the man page in roff, from the clap definitions.
use anyhow::Context as _;
use clap::CommandFactory as _;

use crate::cli::Cli;

pub fn run() -> anyhow::Result<()> {
    clap_mangen::Man::new(Cli::command())
        .render(&mut std::io::stdout())
        .context("writing the man page")
}
