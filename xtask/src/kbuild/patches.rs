//! Our kernel patches (`kernel/patches/<name>.patch`), chosen by name, and how a set of them is
//! put on the cached work tree so that make rebuilds only what changed: every touched file is
//! computed from its pristine copy in a staging directory and written back only when its
//! content differs (make goes by mtime: a rewritten file with equal content would still be
//! recompiled, a restored file with an old mtime would not be).
use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

/// One patch of `kernel/patches/`.
#[derive(Debug, PartialEq, Eq)]
pub struct Patch {
    pub name: &'static str,
    /// Short name in the kernel release (`6.1.192-rmap-tp-tp4-pgoff`).
    pub tag: &'static str,
    /// Patches this one applies on top of.
    pub requires: &'static [&'static str],
    pub about: &'static str,
}

/// Every patch, in the order they are applied.
pub const PATCHES: &[Patch] = &[
    Patch {
        name: "rmap-tracepoints",
        tag: "tp",
        requires: &[],
        about: "rmap:rmap_walk_start/rmap_walk_end (the series' v5-v7 ABI)",
    },
    Patch {
        name: "rmap-tracepoint-v4",
        tag: "tp4",
        requires: &["rmap-tracepoints"],
        about: "rmap:rmap_walk with duration_ns (the series' v4 ABI)",
    },
    Patch {
        name: "ksm-rmap-pgoff",
        tag: "pgoff",
        requires: &[],
        about: "rmap_walk_ksm() searches only the page's pgoff in the anon_vma tree",
    },
];

/// The tracepoint kernel: what `cargo xtask kernel` builds by default.
pub const DEFAULT: &[&str] = &["rmap-tracepoints", "rmap-tracepoint-v4"];

/// Parses `a,b,c` (or `none`) into table order, checking names and requirements.
pub fn select(list: &str) -> anyhow::Result<Vec<&'static Patch>> {
    let known = || PATCHES.iter().map(|p| p.name).collect::<Vec<_>>().join(", ");
    let mut names = BTreeSet::new();
    if list.trim() != "none" {
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !PATCHES.iter().any(|p| p.name == name) {
                bail!("unknown kernel patch `{name}` (known: {}, or none)", known());
            }
            names.insert(name);
        }
    }
    let chosen: Vec<&Patch> = PATCHES.iter().filter(|p| names.contains(p.name)).collect();
    for p in &chosen {
        for r in p.requires {
            if !names.contains(r) {
                bail!("kernel patch `{}` requires `{r}`: add it to the list", p.name);
            }
        }
    }
    Ok(chosen)
}

/// `-rmap-<tags>` (or `-rmap` with no patches): the kernel release suffix.
pub fn local_version(set: &[&Patch]) -> String {
    let mut v = String::from("-rmap");
    for p in set {
        v.push('-');
        v.push_str(p.tag);
    }
    v
}

pub fn patch_path(root: &Path, p: &Patch) -> PathBuf {
    root.join("kernel/patches").join(format!("{}.patch", p.name))
}

/// The files a unified diff writes (`+++ b/<path>` lines).
pub fn touched_files(diff: &str) -> Vec<String> {
    diff.lines()
        .filter_map(|l| l.strip_prefix("+++ b/"))
        .map(|p| p.split('\t').next().unwrap_or(p).trim().to_string())
        .collect()
}

/// Where pristine copies of touched files are kept, and which files the tree has patched now.
pub struct Tree<'a> {
    pub root: &'a Path,
    /// `<path>` holds the file's original content; `<path>.absent` says it did not exist.
    pub pristine: PathBuf,
    /// One path per line: the files the currently applied set changed.
    pub applied: PathBuf,
}

impl Tree<'_> {
    fn save_pristine(&self, rel: &str) -> anyhow::Result<()> {
        let saved = self.pristine.join(rel);
        let absent = self.pristine.join(format!("{rel}.absent"));
        if saved.exists() || absent.exists() {
            return Ok(());
        }
        fs::create_dir_all(saved.parent().context("pristine path")?)?;
        let live = self.root.join(rel);
        if live.exists() {
            fs::copy(&live, &saved).with_context(|| format!("saving pristine {rel}"))?;
        } else {
            fs::write(&absent, b"")?;
        }
        Ok(())
    }

    fn pristine_content(&self, rel: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let saved = self.pristine.join(rel);
        if saved.exists() {
            return Ok(Some(fs::read(&saved)?));
        }
        Ok(None)
    }

    /// Puts exactly `set` on the tree; returns the files whose content changed.
    pub fn apply(&self, root: &Path, set: &[&Patch], staging: &Path) -> anyhow::Result<Vec<String>> {
        let previous: BTreeSet<String> = fs::read_to_string(&self.applied)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect();
        let diffs = set
            .iter()
            .map(|p| Diff::read(root, p))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let now: BTreeSet<String> = diffs.iter().flat_map(|d| d.files.iter().cloned()).collect();
        let all: BTreeSet<&String> = previous.iter().chain(now.iter()).collect();
        for rel in &all {
            self.save_pristine(rel)?;
        }
        self.stage(staging, &now)?;
        for d in &diffs {
            d.patch(staging)?;
        }
        let mut changed = Vec::new();
        for rel in all {
            let want = if now.contains(rel) {
                let staged = staging.join(rel);
                staged.exists().then(|| fs::read(&staged)).transpose()?
            } else {
                self.pristine_content(rel)?
            };
            if self.write_back(rel, want)? {
                changed.push(rel.clone());
            }
        }
        let list = now.iter().fold(String::new(), |list, f| list + f + "\n");
        fs::write(&self.applied, list)?;
        fs::remove_dir_all(staging)?;
        Ok(changed)
    }

    /// A fresh `staging` holding the pristine copies of `files` (the ones that exist).
    fn stage(&self, staging: &Path, files: &BTreeSet<String>) -> anyhow::Result<()> {
        if staging.exists() {
            fs::remove_dir_all(staging)?;
        }
        fs::create_dir_all(staging)?;
        for rel in files {
            if let Some(content) = self.pristine_content(rel)? {
                let dst = staging.join(rel);
                fs::create_dir_all(dst.parent().context("staging path")?)?;
                fs::write(&dst, content)?;
            }
        }
        Ok(())
    }

    /// Makes the tree's `rel` hold `want` (`None`: absent), touching it only when it differs;
    /// true when it changed.
    fn write_back(&self, rel: &str, want: Option<Vec<u8>>) -> anyhow::Result<bool> {
        let live = self.root.join(rel);
        let have = live.exists().then(|| fs::read(&live)).transpose()?;
        if want == have {
            return Ok(false);
        }
        match want {
            Some(bytes) => {
                fs::create_dir_all(live.parent().context("tree path")?)?;
                let tmp = live.with_extension("rmap-tmp");
                fs::write(&tmp, bytes)?;
                fs::rename(&tmp, &live)?;
            }
            None => fs::remove_file(&live)?,
        }
        Ok(true)
    }
}

/// One patch file and the files it writes.
struct Diff {
    name: &'static str,
    path: PathBuf,
    files: Vec<String>,
}

impl Diff {
    fn read(root: &Path, p: &Patch) -> anyhow::Result<Self> {
        let path = patch_path(root, p);
        let diff = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let files = touched_files(&diff);
        if files.is_empty() {
            bail!("{}: no `+++ b/<file>` lines: not a unified diff", path.display());
        }
        Ok(Self {
            name: p.name,
            path,
            files,
        })
    }

    /// Applies this patch to the files in `dir`.
    fn patch(&self, dir: &Path) -> anyhow::Result<()> {
        let out = Command::new("patch")
            .args([
                "-p1",
                "-s",
                "--forward",
                "--no-backup-if-mismatch",
                "-r",
                "-",
                "-d",
            ])
            .arg(dir)
            .arg("-i")
            .arg(&self.path)
            .output()
            .context("running patch (apt-get install patch)")?;
        if !out.status.success() {
            bail!(
                "kernel patch {} does not apply: {}",
                self.name,
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .next()
                    .unwrap_or("patch failed")
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_is_in_table_order_and_checked() {
        let names = |l: &str| select(l).map(|s| s.iter().map(|p| p.name).collect::<Vec<_>>());
        assert_eq!(
            names("ksm-rmap-pgoff,rmap-tracepoints").unwrap(),
            ["rmap-tracepoints", "ksm-rmap-pgoff"]
        );
        assert!(names("none").unwrap().is_empty());
        let e = names("rmap-tracepoint-v4").unwrap_err().to_string();
        assert!(e.contains("requires `rmap-tracepoints`"), "{e}");
        let e = names("pgoff").unwrap_err().to_string();
        assert!(e.contains("unknown kernel patch `pgoff`"), "{e}");
        assert_eq!(local_version(&select("ksm-rmap-pgoff").unwrap()), "-rmap-pgoff");
    }

    /// Every patch in the table exists, is a unified diff and says why in a header.
    #[test]
    fn patch_files_have_headers_and_diffs() {
        let root = crate::build::workspace_root();
        for p in PATCHES {
            let text = fs::read_to_string(patch_path(&root, p)).unwrap();
            assert!(text.starts_with("From: "), "{}: no commit-style header", p.name);
            assert!(text.contains("\nSubject: [PATCH] "), "{}: no subject", p.name);
            assert!(!touched_files(&text).is_empty(), "{}: no files", p.name);
        }
    }

    /// Switching sets rewrites only what differs, and going back restores the original bytes.
    #[test]
    fn apply_switches_sets_minimally() {
        let dir = std::env::temp_dir().join(format!("xtask-patches-{}", std::process::id()));
        let root = dir.join("repo");
        let tree = dir.join("tree");
        fs::create_dir_all(root.join("kernel/patches")).unwrap();
        fs::create_dir_all(tree.join("mm")).unwrap();
        fs::write(tree.join("mm/rmap.c"), "a\nb\nc\n").unwrap();
        fs::write(tree.join("mm/ksm.c"), "x\ny\n").unwrap();
        let diff_tp = "--- a/mm/rmap.c\n+++ b/mm/rmap.c\n@@ -1,3 +1,4 @@\n a\n+t\n b\n c\n\
                       --- /dev/null\n+++ b/include/new.h\n@@ -0,0 +1 @@\n+new\n";
        let diff_v4 = "--- a/mm/rmap.c\n+++ b/mm/rmap.c\n@@ -2,3 +2,4 @@\n t\n b\n+v4\n c\n";
        let diff_pg = "--- a/mm/ksm.c\n+++ b/mm/ksm.c\n@@ -1,2 +1,2 @@\n-x\n+p\n y\n";
        for (p, d) in PATCHES.iter().zip([diff_tp, diff_v4, diff_pg]) {
            fs::write(
                patch_path(&root, p),
                format!("From: t\nSubject: [PATCH] t\n\n{d}"),
            )
            .unwrap();
        }
        let t = Tree {
            root: &tree,
            pristine: dir.join("pristine"),
            applied: dir.join("applied"),
        };
        let staging = dir.join("staging");
        let all = select("rmap-tracepoints,rmap-tracepoint-v4,ksm-rmap-pgoff").unwrap();
        let changed = t.apply(&root, &all, &staging).unwrap();
        assert_eq!(changed, ["include/new.h", "mm/ksm.c", "mm/rmap.c"]);
        assert_eq!(
            fs::read_to_string(tree.join("mm/rmap.c")).unwrap(),
            "a\nt\nb\nv4\nc\n"
        );
        // Dropping pgoff touches only ksm.c; applying the same set again touches nothing.
        let tp = select("rmap-tracepoints,rmap-tracepoint-v4").unwrap();
        assert_eq!(t.apply(&root, &tp, &staging).unwrap(), ["mm/ksm.c"]);
        assert!(t.apply(&root, &tp, &staging).unwrap().is_empty());
        assert_eq!(fs::read_to_string(tree.join("mm/ksm.c")).unwrap(), "x\ny\n");
        // No patches: the tree is pristine again, the new header gone.
        t.apply(&root, &[], &staging).unwrap();
        assert_eq!(fs::read_to_string(tree.join("mm/rmap.c")).unwrap(), "a\nb\nc\n");
        assert!(!tree.join("include/new.h").exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
