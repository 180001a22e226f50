//! `--cgroup PATH`: the memory owner the kernel filters on, resolved to a cgroup id when the
//! command line is read, so a wrong path stops the run before anything attaches.
use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

/// `CGROUP2_SUPER_MAGIC` (include/uapi/linux/magic.h).
const CGROUP2_MAGIC: i64 = 0x6367_7270;

/// A cgroup given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupFilter {
    /// As shown in tables: relative to the cgroup v2 mount, "/" first.
    pub path: String,
    /// The directory's inode number: the id the kernel compares.
    pub id: u64,
}

/// Parses `--cgroup`: a path under the cgroup v2 mount, given whole (/sys/fs/cgroup/a/b) or as
/// /proc/<pid>/cgroup shows it (/a/b, or a/b).
pub fn parse(s: &str) -> Result<CgroupFilter, String> {
    resolve(Path::new(super::CGROUP_ROOT), s, true)
}

fn resolve(root: &Path, s: &str, check_fs: bool) -> Result<CgroupFilter, String> {
    if s.is_empty() {
        return Err("a cgroup path is required".into());
    }
    let rel = Path::new(s).strip_prefix(root).unwrap_or(Path::new(s));
    let rel = rel.strip_prefix("/").unwrap_or(rel);
    if rel
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(format!("{s}: a cgroup path may not contain `..` or `.`"));
    }
    let dir: PathBuf = root.join(rel);
    let meta =
        std::fs::metadata(&dir).map_err(|e| format!("{s}: no such cgroup under {} ({e})", root.display()))?;
    if !meta.is_dir() {
        return Err(format!("{s}: {} is not a cgroup directory", dir.display()));
    }
    if check_fs && !is_cgroup2(&dir) {
        return Err(format!(
            "{s}: {} is not on a cgroup v2 file system",
            dir.display()
        ));
    }
    Ok(CgroupFilter {
        path: format!("/{}", rel.display()),
        id: meta.ino(),
    })
}

fn is_cgroup2(dir: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs is plain data, valid all zero.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a statfs buffer of the right type.
    let rc = unsafe { libc::statfs(c.as_ptr(), &raw mut st) };
    rc == 0 && st.f_type == CGROUP2_MAGIC
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_as_given_or_as_proc_shows_them() {
        let root = std::env::temp_dir().join(format!("rmap-cgfilter-{}", std::process::id()));
        let unit = root.join("system.slice/java.service");
        std::fs::create_dir_all(&unit).unwrap();
        let id = std::fs::metadata(&unit).unwrap().ino();
        let want = CgroupFilter {
            path: "/system.slice/java.service".into(),
            id,
        };
        for given in [
            unit.to_string_lossy().into_owned(),
            "/system.slice/java.service".into(),
            "system.slice/java.service".into(),
        ] {
            assert_eq!(resolve(&root, &given, false), Ok(want.clone()), "{given}");
        }
        assert!(
            resolve(&root, "/nope", false)
                .unwrap_err()
                .contains("no such cgroup")
        );
        assert!(
            resolve(&root, "/system.slice/../x", false)
                .unwrap_err()
                .contains("..")
        );
        std::fs::remove_dir_all(&root).unwrap();
        // The real mount check: a temporary directory is not cgroup v2.
        assert!(parse("/").is_ok_and(|f| f.path == "/") || !is_cgroup2(Path::new(super::super::CGROUP_ROOT)));
        assert!(!is_cgroup2(&std::env::temp_dir()));
    }
}
