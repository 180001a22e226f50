//! Placeholder until the memory bench lands.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("the memory bench is not written yet")
}
