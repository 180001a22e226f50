//! Placeholder until the overhead bench lands.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("the overhead bench is not written yet")
}
