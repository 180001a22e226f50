//! `rmap-trace completions <SHELL>`: the shell's completion script, from the clap definitions.
use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::cli::Cli;

pub fn run(shell: Shell) -> anyhow::Result<()> {
    clap_complete::generate(shell, &mut Cli::command(), "rmap-trace", &mut std::io::stdout());
    Ok(())
}
