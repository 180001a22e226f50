//! Debian packages used without installing them: downloaded once into the cache with
//! `apt-get download` and unpacked there by one unpack, atomic (`cache::atomic_dir`): a tree in
//! the cache is complete or absent.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{apt::Archive, cache, cmd};

/// What of a package becomes the unpacked tree.
#[derive(Debug, Clone, Copy)]
pub enum Layout<'a> {
    /// The package's files, laid out as `dpkg-deb -x` does.
    Files,
    /// The contents of one tarball the package ships (its path inside the package, e.g.
    /// `usr/src/linux-source-6.1.tar.xz`), its top directory stripped.
    Tarball(&'a str),
}

/// `package` downloaded into the cache and unpacked as `cache/<name>`, on first use.
pub fn cached_tree(package: &str, name: &str) -> anyhow::Result<PathBuf> {
    let dir = cache::dir()?;
    let target = dir.join(name);
    if !target.is_dir() {
        unpack(&download(&dir, package)?, &target, Layout::Files)?;
    }
    Ok(target)
}

/// Unpacks `deb` as `target`, unless `target` is already there (then it is complete).
pub fn unpack(deb: &Path, target: &Path, layout: Layout) -> anyhow::Result<()> {
    if target.is_dir() {
        return Ok(());
    }
    eprintln!("xtask: unpacking {} into {}", deb.display(), target.display());
    cache::atomic_dir(target, |tmp| {
        let ok = match layout {
            Layout::Files => return extract(deb, tmp),
            Layout::Tarball(member) => {
                // Streamed: the inner tarball is never written out whole. bash, as dash has
                // no pipefail.
                let script = "dpkg-deb --fsys-tarfile \"$1\" | tar -xO \"./$2\" \
                              | tar -x \"$3\" --strip-components=1 -C \"$4\"";
                cmd::status(
                    Command::new("bash")
                        .args(["-o", "pipefail", "-c", script, "unpack"])
                        .arg(deb)
                        .arg(member)
                        .arg(decompress_flag(member)?)
                        .arg(tmp),
                )?
            }
        };
        if !ok {
            bail!("unpacking {} failed", deb.display());
        }
        Ok(())
    })
}

/// `dpkg-deb -x`: the package's files under `into`.
pub fn extract(deb: &Path, into: &Path) -> anyhow::Result<()> {
    if !cmd::status(Command::new("dpkg-deb").arg("-x").arg(deb).arg(into))? {
        bail!("dpkg-deb -x {} failed", deb.display());
    }
    Ok(())
}

/// tar's flag for the compression a tarball's name says (tar cannot guess it on a pipe).
fn decompress_flag(member: &str) -> anyhow::Result<&'static str> {
    [
        (".tar.xz", "-J"),
        (".tar.gz", "-z"),
        (".tar.bz2", "-j"),
        (".tar", "--no-auto-compress"),
    ]
    .into_iter()
    .find(|(suffix, _)| member.ends_with(suffix))
    .map(|(_, flag)| flag)
    .with_context(|| format!("{member}: not a tarball name (.tar, .tar.xz, .tar.gz, .tar.bz2)"))
}

/// `apt-get download PACKAGE` into `dir` from the host's apt sources; see [`fetch`].
pub fn download(dir: &Path, package: &str) -> anyhow::Result<PathBuf> {
    fetch(Archive::Host, dir, package)
}

/// `apt-get download PACKAGE` from `archive` into `dir`, unless a .deb of it is there. Returns
/// its path. (From the host's sources, as the `_apt` sandbox user cannot write there, apt
/// warns and downloads as root; that is fine.)
pub fn fetch(archive: Archive, dir: &Path, package: &str) -> anyhow::Result<PathBuf> {
    if let Some(deb) = find_deb(dir, package) {
        return Ok(deb);
    }
    eprintln!("xtask: apt-get download {package} ({})", archive.name());
    let apt = |args: &[&str]| -> anyhow::Result<bool> {
        Ok(cmd::quiet_ok(
            archive.command("apt-get")?.args(args).current_dir(dir),
        ))
    };
    // The lists may be missing on a fresh machine: update once and try again.
    let fetched = apt(&["download", package])? || (archive.update()? && apt(&["download", package])?);
    if !fetched {
        bail!(
            "apt-get download {package} failed ({}; run: apt-get update && apt-get download {package})",
            archive.name()
        );
    }
    find_deb(dir, package)
        .with_context(|| format!("apt-get download {package} left no .deb in {}", dir.display()))
}

/// `PACKAGE_<version>_<arch>.deb` in `dir`.
fn find_deb(dir: &Path, package: &str) -> Option<PathBuf> {
    let prefix = format!("{package}_");
    fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).find(|p| {
        p.extension().is_some_and(|e| e == "deb")
            && p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-debian-{name}-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn tarball_flags_by_name() {
        assert_eq!(decompress_flag("usr/src/linux-source-6.1.tar.xz").unwrap(), "-J");
        assert_eq!(decompress_flag("a.tar.gz").unwrap(), "-z");
        assert!(decompress_flag("usr/src/linux-source-6.1.deb").is_err());
    }

    #[test]
    fn deb_found_by_package_name() {
        let dir = scratch("find");
        fs::write(dir.join("busybox-static_1.35_amd64.deb"), "").unwrap();
        fs::write(dir.join("busybox_1.35_amd64.deb.partial"), "").unwrap();
        assert!(find_deb(&dir, "busybox-static").is_some());
        assert!(find_deb(&dir, "busybox").is_none());
        fs::remove_dir_all(dir).unwrap();
    }
}
