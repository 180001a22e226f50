//! `rmap-trace report FILE...`: the percentile table of each interval log.
use std::path::PathBuf;

use crate::export::{compare::report_table, read};

pub fn run(files: &[PathBuf]) -> anyhow::Result<()> {
    for f in files {
        print!("{}", report_table(&read::load(f)?));
    }
    Ok(())
}
