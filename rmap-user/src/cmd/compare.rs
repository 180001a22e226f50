//! `rmap-trace compare A B`: two interval logs side by side, with B/A.
use std::path::Path;

use crate::export::{compare::compare_table, read};

pub fn run(a: &Path, b: &Path) -> anyhow::Result<()> {
    let (a, b) = (read::load(a)?, read::load(b)?);
    print!("{}", compare_table(&a, &b)?);
    Ok(())
}
