//! A Debian package's program for the guest: the package downloaded once and unpacked into the
//! cache (`apt-get download`, `dpkg-deb -x`), its binary and the libraries `ldd` says it links,
//! as initramfs entries (guest path, host file).
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{cache, cmd::status, debian::download};

/// `bin` (a path inside `package`, e.g. `usr/bin/prometheus`) as `bin/<name>` with its
/// libraries at their paths.
pub fn files(package: &str, bin: &str) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let dir = cache::dir()?;
    let root = dir.join(format!("{package}-pkg"));
    let host_bin = root.join(bin);
    if !host_bin.is_file() {
        let deb = download(&dir, package)?;
        if !status(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))? {
            bail!("dpkg-deb -x {} failed", deb.display());
        }
    }
    let name = Path::new(bin)
        .file_name()
        .and_then(|n| n.to_str())
        .context("a binary's name")?;
    let mut files = vec![(format!("bin/{name}"), host_bin.clone())];
    let out = Command::new("ldd")
        .arg(&host_bin)
        .output()
        .context("running ldd")?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = line
            .split("=>")
            .last()
            .and_then(|r| r.split_whitespace().next())
            .filter(|p| p.starts_with('/'));
        if let Some(p) = path {
            files.push((p.trim_start_matches('/').to_string(), fs::canonicalize(p)?));
        }
    }
    Ok(files)
}
