//! The cache directory outside the repository: downloaded packages, unpacked trees, built
//! kernels. A tree in it is complete or absent: it is filled in a temporary directory beside it
//! and renamed into place, so a run killed half-way leaves only a temporary directory that no
//! later run trusts (and the next one removes).
use std::{
    fs,
    path::{Path, PathBuf},
};

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

/// Creates `target` by `fill`ing a fresh temporary directory beside it and renaming that into
/// place. When another run renamed its own tree there first, that one is kept.
pub fn atomic_dir(target: &Path, fill: impl FnOnce(&Path) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let (parent, prefix) = partial_prefix(target)?;
    fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    remove_abandoned(&parent, &prefix)?;
    let tmp = parent.join(format!("{prefix}{}", std::process::id()));
    remove_dir_if_present(&tmp)?;
    fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    if let Err(e) = fill(&tmp) {
        remove_dir_if_present(&tmp)?;
        return Err(e);
    }
    match fs::rename(&tmp, target) {
        Ok(()) => Ok(()),
        Err(_) if target.is_dir() => remove_dir_if_present(&tmp),
        Err(e) => Err(e).with_context(|| format!("renaming {} to {}", tmp.display(), target.display())),
    }
}

/// The directory holding `target` and the name prefix of its temporary directories.
fn partial_prefix(target: &Path) -> anyhow::Result<(PathBuf, String)> {
    let name = target
        .file_name()
        .with_context(|| format!("{}: no directory name", target.display()))?;
    let parent = target.parent().unwrap_or(Path::new(".")).to_path_buf();
    Ok((parent, format!(".{}.partial-", name.to_string_lossy())))
}

/// Removes the temporary directories of runs that no longer exist (killed mid-unpack).
fn remove_abandoned(parent: &Path, prefix: &str) -> anyhow::Result<()> {
    for entry in fs::read_dir(parent).with_context(|| format!("reading {}", parent.display()))? {
        let path = entry?.path();
        let pid = path
            .file_name()
            .and_then(|n| n.to_str()?.strip_prefix(prefix)?.parse::<u32>().ok());
        if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
            eprintln!(
                "xtask: removing {}, left by a run that stopped half-way",
                path.display()
            );
            remove_dir_if_present(&path)?;
        }
    }
    Ok(())
}

fn remove_dir_if_present(dir: &Path) -> anyhow::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use anyhow::bail;

    use super::*;

    /// A fresh directory for one test and the tree to create in it.
    fn scratch(name: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("xtask-cache-{name}-{}", std::process::id()));
        remove_dir_if_present(&dir).unwrap();
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("tree");
        (dir, target)
    }

    fn fill(tmp: &Path) -> anyhow::Result<()> {
        fs::write(tmp.join("file"), "x")?;
        Ok(())
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_failed_fill_leaves_nothing() {
        let (dir, target) = scratch("failed");
        let err = atomic_dir(&target, |tmp| {
            fs::write(tmp.join("half"), "x")?;
            bail!("interrupted")
        });
        assert!(err.is_err());
        assert!(entries(&dir).is_empty(), "left {:?}", entries(&dir));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_filled_tree_appears_whole() {
        let (dir, target) = scratch("whole");
        atomic_dir(&target, |tmp| {
            assert!(!target.exists(), "the target appears only when complete");
            fill(tmp)
        })
        .unwrap();
        assert_eq!(entries(&dir), ["tree"]);
        assert_eq!(entries(&target), ["file"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_killed_run_is_cleaned_up_and_never_trusted() {
        let (dir, target) = scratch("killed");
        // What a run killed mid-unpack leaves: its temporary directory, its pid long gone
        // (above pid_max).
        let abandoned = dir.join(".tree.partial-99999999");
        fs::create_dir_all(abandoned.join("usr")).unwrap();
        let other = dir.join(".other.partial-99999999");
        fs::create_dir_all(&other).unwrap();
        assert!(!target.exists());
        atomic_dir(&target, fill).unwrap();
        assert_eq!(entries(&dir), [".other.partial-99999999", "tree"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_tree_renamed_first_by_another_run_is_kept() {
        let (dir, target) = scratch("race");
        atomic_dir(&target, |tmp| {
            fs::create_dir_all(target.join("theirs"))?;
            fs::write(tmp.join("ours"), "x").map_err(Into::into)
        })
        .unwrap();
        assert_eq!(entries(&dir), ["tree"]);
        assert_eq!(entries(&target), ["theirs"]);
        fs::remove_dir_all(dir).unwrap();
    }
}
