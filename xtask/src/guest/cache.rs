//! The cache directory outside the repository: downloaded packages and unpacked kernels.
use std::path::PathBuf;

use anyhow::Context as _;

pub fn dir() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME not set")?).join(".cache"),
    };
    let dir = base.join("rmap-trace");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
