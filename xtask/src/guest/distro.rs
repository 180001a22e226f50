//! Debian's kernels by series (`debian:5.10`, `6.1`, `6.12`, `7.2`, `latest`): the newest
//! package of the series in the suite that ships it, fetched through that suite's private apt
//! configuration (`apt.rs`) and unpacked once into the cache with its modules.
use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};

use super::Kernel;
use crate::{
    apt::{self, Archive, Suite},
    cache, debian, debroot,
};

/// A series and the suite whose kernel it is.
struct Series {
    name: &'static str,
    suite: &'static Suite,
    /// A package tried before the newest: the one the suites were last proven on.
    pinned: Option<&'static str>,
}

const SERIES: [Series; 4] = [
    Series {
        name: "5.10",
        suite: &apt::BULLSEYE,
        pinned: None,
    },
    Series {
        name: "6.1",
        suite: &apt::BOOKWORM,
        pinned: Some("linux-image-6.1.0-56-amd64"),
    },
    Series {
        name: "6.12",
        suite: &apt::TRIXIE,
        pinned: None,
    },
    Series {
        name: "7.2",
        suite: &apt::FORKY,
        pinned: None,
    },
];

/// Series names `debian:` takes, for messages.
pub const NAMES: &str = "5.10, 6.1, 6.12, 7.2 or latest";

/// What was fetched for a kernel: each package and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packages(pub Vec<(String, String)>);

impl std::fmt::Display for Packages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(p, v)| format!("{p} {v}")).collect();
        f.write_str(&parts.join(", "))
    }
}

/// Whether `series` names a kernel this module can find (`latest`, or `major.minor`).
pub fn valid_series(series: &str) -> bool {
    series == "latest"
        || series.split_once('.').is_some_and(|(a, b)| {
            [a, b]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
        })
}

/// Debian's kernel of `series`, downloaded and unpacked on first use.
pub fn kernel(series: &str) -> anyhow::Result<Kernel> {
    let (suite, pinned) = match SERIES.iter().find(|s| s.name == series) {
        Some(s) => (s.suite, s.pinned),
        // `latest` and series not listed: the testing distribution's.
        None => (&apt::FORKY, None),
    };
    let archive = Archive::Private(suite);
    let image = match pinned.filter(|p| has_package(archive, p)) {
        Some(p) => p.to_string(),
        None => newest(archive, series)?,
    };
    let release = release_of(&image);
    let mut names = vec![image.clone()];
    // Newer kernels split the image (`linux-binary-R`) from its modules (`linux-modules-R`).
    if image.starts_with("linux-binary-") {
        names.push(format!("linux-modules-{release}"));
    }
    let versions = debroot::versions(archive, &names)?;
    let packages = Packages(names.iter().map(|n| (n.clone(), versions[n].clone())).collect());
    eprintln!("xtask: debian:{series} is {packages} (Debian {})", suite.name);
    let root = unpacked(archive, &release, &names)?;
    let mut k = find(&root, &release)?;
    k.label = format!("Debian {release} ({packages})");
    k.packages = Some(packages);
    Ok(k)
}

/// `linux-image-R` or `linux-binary-R` → R.
fn release_of(package: &str) -> String {
    package
        .trim_start_matches("linux-image-")
        .trim_start_matches("linux-binary-")
        .to_string()
}

fn has_package(archive: Archive, name: &str) -> bool {
    package_names(archive).is_ok_and(|names| names.iter().any(|n| n == name))
}

/// Every package name of the archive starting with `linux-`.
fn package_names(archive: Archive) -> anyhow::Result<Vec<String>> {
    let out = archive
        .command("apt-cache")?
        .args(["pkgnames", "linux-"])
        .output()
        .context("running apt-cache pkgnames")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

/// The newest kernel image package of `series` (`latest`: of any) in the archive.
fn newest(archive: Archive, series: &str) -> anyhow::Result<String> {
    let names: Vec<String> = package_names(archive)?
        .into_iter()
        .filter(|n| is_image_of(n, series))
        .collect();
    if names.is_empty() {
        bail!(
            "Debian's {} archive has no kernel of series {series} for amd64 now (series: {NAMES})",
            archive.name()
        );
    }
    let versions = debroot::versions(archive, &names)?;
    names
        .into_iter()
        .max_by(|a, b| version_cmp(&versions[a], &versions[b]))
        .context("no kernel package")
}

/// Whether `name` is a kernel image package of `series` (`latest`: any) for plain amd64: not a
/// meta-package (`linux-image-6.1-amd64`: no ABI after the series), not cloud, rt or debug.
fn is_image_of(name: &str, series: &str) -> bool {
    let Some(rest) = name
        .strip_prefix("linux-image-")
        .or_else(|| name.strip_prefix("linux-binary-"))
    else {
        return false;
    };
    let Some(release) = rest.strip_suffix("-amd64") else {
        return false;
    };
    if release.contains("cloud") || release.contains("-rt") || release.ends_with("-dbg") {
        return false;
    }
    let abi = if series == "latest" {
        release
            .split_once('.')
            .and_then(|(_, r)| r.split_once(['.', '-']))
    } else {
        release
            .strip_prefix(series)
            .and_then(|r| r.strip_prefix('.').map(|a| ("", a)))
    };
    abi.is_some_and(|(_, a)| a.starts_with(|c: char| c.is_ascii_digit()))
}

/// Debian versions compared by their runs of digits, then as text: enough for kernel
/// packages (`6.12.117-1` after `6.12.43-1`).
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let nums = |v: &str| -> Vec<u64> {
        v.split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().unwrap_or(u64::MAX))
            .collect()
    };
    nums(a).cmp(&nums(b)).then_with(|| a.cmp(b))
}

/// The packages unpacked together as `cache/debian-kernels/<release>`.
fn unpacked(archive: Archive, release: &str, names: &[String]) -> anyhow::Result<PathBuf> {
    let dir = cache::dir()?;
    let target = dir.join("debian-kernels").join(release);
    if target.is_dir() {
        return Ok(target);
    }
    let debs_dir = dir.join("debs-kernels");
    fs::create_dir_all(&debs_dir)?;
    let debs = names
        .iter()
        .map(|n| debian::fetch(archive, &debs_dir, n))
        .collect::<anyhow::Result<Vec<_>>>()?;
    eprintln!(
        "xtask: unpacking {} into {}",
        names.join(" and "),
        target.display()
    );
    cache::atomic_dir(&target, |tmp| {
        for deb in &debs {
            debian::extract(deb, tmp)?;
        }
        Ok(())
    })?;
    // The packages are large (about 100 MiB each) and unpacked now.
    for deb in debs {
        let _ = fs::remove_file(deb);
    }
    Ok(target)
}

/// The image and modules of `release` in an unpacked tree (`boot/vmlinuz-R` and `lib/modules/R`
/// before Debian moved both under `usr/lib/modules/R`).
fn find(root: &Path, release: &str) -> anyhow::Result<Kernel> {
    let image = [
        root.join("boot").join(format!("vmlinuz-{release}")),
        root.join("usr/lib/modules").join(release).join("vmlinuz"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .with_context(|| format!("{}: no vmlinuz of {release}", root.display()))?;
    let modules = [
        root.join("lib/modules").join(release),
        root.join("usr/lib/modules").join(release),
    ]
    .into_iter()
    .find(|p| p.join("kernel").is_dir());
    Ok(Kernel {
        image,
        modules,
        label: format!("Debian {release}"),
        cmdline: Vec::new(),
        packages: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_packages_of_a_series() {
        for (name, series, yes) in [
            ("linux-image-5.10.0-46-amd64", "5.10", true),
            ("linux-image-5.10.0-46-cloud-amd64", "5.10", false),
            ("linux-image-5.10.0-46-rt-amd64", "5.10", false),
            ("linux-image-5.10.0-46-amd64-dbg", "5.10", false),
            ("linux-image-6.1-amd64", "6.1", false),
            ("linux-image-6.1.0-56-amd64", "6.1", true),
            ("linux-image-6.12.117+deb13-amd64", "6.12", true),
            ("linux-image-6.12.117+deb13-amd64", "6.1", false),
            ("linux-binary-7.2.12+deb14-amd64", "7.2", true),
            ("linux-modules-7.2.12+deb14-amd64", "7.2", false),
            ("linux-binary-7.2.12+deb14-amd64", "latest", true),
            ("linux-image-amd64", "latest", false),
        ] {
            assert_eq!(is_image_of(name, series), yes, "{name} {series}");
        }
        assert_eq!(
            release_of("linux-binary-7.2.12+deb14-amd64"),
            "7.2.12+deb14-amd64"
        );
        assert!(valid_series("5.10") && valid_series("latest"));
        assert!(!valid_series("5") && !valid_series("x.1") && !valid_series("6."));
    }

    #[test]
    fn versions_by_number() {
        use std::cmp::Ordering::*;
        assert_eq!(version_cmp("6.12.117-1", "6.12.43-1"), Greater);
        assert_eq!(version_cmp("5.10.262-1", "5.10.262-1"), Equal);
        assert_eq!(version_cmp("7.2.12-1", "7.10.1-1"), Less);
    }
}
