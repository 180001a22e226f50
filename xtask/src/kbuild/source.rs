//! Debian's `linux-source-6.1`: the .deb (by `apt-get download`) and its tarball unpacked once
//! into the cache as the work tree `kernel/tree-<version>/`, never into the repository.
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::{cache, debian};

const PACKAGE: &str = "linux-source-6.1";

/// An unpacked source tree.
#[derive(Debug)]
pub struct Source {
    /// Debian's package version, e.g. `6.1.192-2`: part of every build's cache key.
    pub version: String,
    pub tree: PathBuf,
}

/// The version from a file name `linux-source-6.1_<version>_all.deb`.
fn deb_version(deb: &Path) -> anyhow::Result<String> {
    let name = deb.file_name().unwrap_or_default().to_string_lossy();
    name.strip_prefix(&format!("{PACKAGE}_"))
        .and_then(|r| r.strip_suffix("_all.deb"))
        .map(|v| v.replace("%3a", ":"))
        .with_context(|| format!("{name}: not a {PACKAGE} package file name"))
}

/// The cached tree, downloading and unpacking it the first time (about a minute).
pub fn ensure(kernel_dir: &Path) -> anyhow::Result<Source> {
    let deb = debian::download(&cache::dir()?, PACKAGE)?;
    let version = deb_version(&deb)?;
    let tree = kernel_dir.join(format!("tree-{version}"));
    let tarball = format!("usr/src/{PACKAGE}.tar.xz");
    debian::unpack(&deb, &tree, debian::Layout::Tarball(&tarball))?;
    if !tree.join("Makefile").is_file() {
        bail!("{} holds no kernel tree (no Makefile): remove it", tree.display());
    }
    Ok(Source { version, tree })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_from_file_name() {
        let v = deb_version(Path::new("/c/linux-source-6.1_6.1.192-2_all.deb")).unwrap();
        assert_eq!(v, "6.1.192-2");
        assert!(deb_version(Path::new("/c/linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb")).is_err());
    }
}
