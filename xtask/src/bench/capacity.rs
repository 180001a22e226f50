//! Placeholder until the capacity bench lands.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("the capacity bench is not written yet")
}
