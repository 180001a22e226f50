//! A root directory of Debian packages and their dependency closure, for programs run in the
//! guest by chroot (bpftrace; later OpenJDK): the closure from `apt-cache depends --recurse`,
//! each package fetched with `apt-get download` into the cache and unpacked with `dpkg-deb -x`
//! into one tree, cached as `cache/debroot-<key>`, the key a hash of the package list and the
//! versions apt would fetch (a new version makes a new tree). Nothing is installed on the host.
use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    fmt::Write as _,
    path::PathBuf,
    process::Command,
};

use anyhow::{Context as _, bail};
use sha2::{Digest as _, Sha256};

use crate::{apt::Archive, cache, cmd, debian};

/// `apt-cache depends` flags: hard dependencies only.
const DEPENDS_FLAGS: [&str; 6] = [
    "--no-recommends",
    "--no-suggests",
    "--no-conflicts",
    "--no-breaks",
    "--no-replaces",
    "--no-enhances",
];

/// The root holding `packages` and everything they depend on, from the host's apt sources,
/// unpacked; built on first use.
pub fn root(packages: &[&str]) -> anyhow::Result<PathBuf> {
    root_from(Archive::Host, packages)
}

/// [`root`] with the packages of `archive`. Each archive's packages are downloaded into a
/// directory of their own: a package's .deb of one archive is not another's version.
pub fn root_from(archive: Archive, packages: &[&str]) -> anyhow::Result<PathBuf> {
    let closure = closure(archive, packages)?;
    let versions = versions(archive, &closure)?;
    let dir = cache::dir()?;
    let target = dir.join(format!("debroot-{}", key(packages, &versions)));
    if target.is_dir() {
        return Ok(target);
    }
    let debs_dir = match archive {
        Archive::Host => dir.join("debs"),
        Archive::Private(suite) => dir.join(format!("debs-{}", suite.name)),
    };
    std::fs::create_dir_all(&debs_dir)?;
    let debs = closure
        .iter()
        .map(|p| debian::fetch(archive, &debs_dir, p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    eprintln!(
        "xtask: unpacking {} packages ({}) into {}",
        debs.len(),
        packages.join(", "),
        target.display()
    );
    cache::atomic_dir(&target, |tmp| {
        for deb in &debs {
            if !cmd::status(Command::new("dpkg-deb").arg("-x").arg(deb).arg(tmp))? {
                bail!("dpkg-deb -x {} failed", deb.display());
            }
        }
        std::fs::write(tmp.join(".debroot-packages"), manifest(&versions))?;
        Ok(())
    })?;
    Ok(target)
}

/// The dependency closure of `packages` (Depends and Pre-Depends, no Recommends).
pub fn closure(archive: Archive, packages: &[&str]) -> anyhow::Result<Vec<String>> {
    let run = || -> anyhow::Result<String> {
        let out = archive
            .command("apt-cache")?
            .args(["depends", "--recurse"])
            .args(DEPENDS_FLAGS)
            .args(packages)
            .output()
            .context("running apt-cache depends")?;
        if !out.status.success() {
            bail!(
                "apt-cache depends {} failed: {}",
                packages.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let graph = parse_depends(&run()?);
    let roots: Vec<String> = packages.iter().map(|s| (*s).to_string()).collect();
    resolve(&graph, &roots).map_err(|e| anyhow::anyhow!(e))
}

/// `apt-cache depends` output as a graph.
#[derive(Debug, Default)]
pub struct Graph {
    /// Real package → its dependency groups (each a list of alternatives, in apt's order).
    deps: BTreeMap<String, Vec<Vec<String>>>,
    /// Virtual package → the packages providing it.
    providers: BTreeMap<String, Vec<String>>,
}

/// Parses `apt-cache depends --recurse` output: a package at column 0 (`<name>` when virtual),
/// then indented `Depends: x` / `PreDepends: x` lines (`|Depends:` when the next line is an
/// alternative of this one), and under a virtual package, its providers indented further.
pub fn parse_depends(text: &str) -> Graph {
    let mut g = Graph::default();
    let mut current: Option<(String, bool)> = None;
    let mut open_alternative = false;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            let name = line.trim();
            let virt = name.starts_with('<');
            let name = name.trim_start_matches('<').trim_end_matches('>').to_string();
            if virt {
                g.providers.entry(name.clone()).or_default();
            } else {
                g.deps.entry(name.clone()).or_default();
            }
            current = Some((name, virt));
            open_alternative = false;
            continue;
        }
        let Some((pkg, virt)) = &current else { continue };
        let t = line.trim();
        if *virt {
            let p = g.providers.entry(pkg.clone()).or_default();
            if !p.iter().any(|x| x == t) {
                p.push(t.to_string());
            }
            continue;
        }
        let (alt, rest) = match t.strip_prefix('|') {
            Some(r) => (true, r),
            None => (false, t),
        };
        let Some((kind, target)) = rest.split_once(':') else {
            // A provider of the virtual package of the dependency line above.
            if let Some(last) = g.deps.get(pkg).and_then(|gr| gr.last()?.last().cloned()) {
                let p = g.providers.entry(last).or_default();
                if !p.iter().any(|x| x == t) {
                    p.push(t.to_string());
                }
            }
            continue;
        };
        if kind != "Depends" && kind != "PreDepends" {
            continue;
        }
        let target = target
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string();
        let groups = g.deps.entry(pkg.clone()).or_default();
        match groups.last_mut() {
            Some(last) if open_alternative => last.push(target),
            _ => groups.push(vec![target]),
        }
        open_alternative = alt;
    }
    g
}

/// The closure from `roots`: in each group of alternatives the first that is a real package,
/// or a virtual one with a provider (its first provider); a group already satisfied by a
/// chosen package is not expanded again.
pub fn resolve(g: &Graph, roots: &[String]) -> Result<Vec<String>, String> {
    let mut chosen: BTreeSet<String> = BTreeSet::new();
    let mut queue: VecDeque<String> = roots.iter().cloned().collect();
    let real = |n: &str| -> Option<String> {
        if g.deps.contains_key(n) {
            Some(n.to_string())
        } else {
            g.providers.get(n).and_then(|p| p.first().cloned())
        }
    };
    while let Some(pkg) = queue.pop_front() {
        let Some(pkg) = real(&pkg) else {
            return Err(format!("{pkg}: no such package and nothing provides it"));
        };
        if !chosen.insert(pkg.clone()) {
            continue;
        }
        for group in g.deps.get(&pkg).into_iter().flatten() {
            if group.iter().any(|a| chosen.contains(a)) {
                continue;
            }
            match group.iter().find_map(|a| real(a)) {
                Some(p) => queue.push_back(p),
                None => return Err(format!("{pkg}: nothing satisfies {}", group.join(" | "))),
            }
        }
    }
    Ok(chosen.into_iter().collect())
}

/// The candidate version of each package (what `apt-get download` fetches).
pub fn versions(archive: Archive, packages: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let out = archive
        .command("apt-cache")?
        .args(["show", "--no-all-versions"])
        .args(packages)
        .output()
        .context("running apt-cache show")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = parse_versions(&text);
    if let Some(missing) = packages.iter().find(|p| !v.contains_key(*p)) {
        bail!(
            "apt-cache show gave no version of {missing:?} (of {}): {}",
            packages.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(v)
}

/// `Package:` / `Version:` pairs of `apt-cache show` stanzas.
pub fn parse_versions(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut pkg: Option<String> = None;
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("Package: ") {
            pkg = Some(p.trim().to_string());
        } else if let Some(v) = line.strip_prefix("Version: ")
            && let Some(p) = pkg.take()
        {
            out.insert(p, v.trim().to_string());
        }
    }
    out
}

fn manifest(versions: &BTreeMap<String, String>) -> String {
    versions.iter().fold(String::new(), |mut s, (p, v)| {
        let _ = writeln!(s, "{p}={v}");
        s
    })
}

/// The cache key: the asked packages and every version of the closure.
pub fn key(packages: &[&str], versions: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    h.update(packages.join(",").as_bytes());
    h.update(b"\n");
    h.update(manifest(versions).as_bytes());
    h.finalize()[..8].iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPENDS: &str = "bpftrace
  Depends: libbpf1
 |Depends: libc6
  Depends: libc-alt
  Depends: <awk>
    mawk
libbpf1
  Depends: libc6
  PreDepends: zlib1g
libc6
zlib1g
  Depends: libc6
libc-alt
<awk>
  gawk
mawk
gawk
";

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn alternatives_take_the_first_and_virtuals_their_first_provider() {
        let g = parse_depends(DEPENDS);
        assert_eq!(
            g.deps["bpftrace"],
            vec![
                names(&["libbpf1"]),
                names(&["libc6", "libc-alt"]),
                names(&["awk"])
            ]
        );
        assert_eq!(g.providers["awk"], names(&["mawk", "gawk"]));
        let got = resolve(&g, &names(&["bpftrace"])).unwrap();
        assert_eq!(got, names(&["bpftrace", "libbpf1", "libc6", "mawk", "zlib1g"]));
    }

    #[test]
    fn an_unsatisfiable_dependency_is_an_error() {
        let g = parse_depends("a\n  Depends: <nothing>\n<nothing>\n");
        assert!(
            resolve(&g, &names(&["a"]))
                .unwrap_err()
                .contains("nothing satisfies")
        );
    }

    #[test]
    fn versions_and_key() {
        let v = parse_versions(
            "Package: a\nVersion: 1.0\nArchitecture: amd64\n\nPackage: b\nSource: c\nVersion: 2:3-1\n",
        );
        assert_eq!(v["a"], "1.0");
        assert_eq!(v["b"], "2:3-1");
        let k = key(&["a"], &v);
        assert_eq!(k.len(), 16);
        let mut v2 = v.clone();
        v2.insert("b".into(), "2:3-2".into());
        assert_ne!(k, key(&["a"], &v2));
    }
}
