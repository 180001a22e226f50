//! `cargo xtask vm -- <rmap-trace args>`: one rmap-trace command line in the guest.
use anyhow::bail;

use crate::guest::{self, GuestArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub guest: GuestArgs,
    /// rmap-trace's arguments.
    #[arg(last = true)]
    pub rmap_args: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    crate::setup::ensure()?;
    let line: Vec<String> = args.rmap_args.iter().map(|a| guest::sh_quote(a)).collect();
    let cmd = format!("rmap-trace {}\n", line.join(" "));
    let out = guest::boot(&args.guest, &cmd, true)?;
    eprintln!("xtask: guest finished in {:.1} s", out.elapsed.as_secs_f64());
    if out.status != 0 {
        bail!("rmap-trace exited with status {} in the guest", out.status);
    }
    Ok(())
}
