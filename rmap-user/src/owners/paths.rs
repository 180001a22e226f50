//! Cgroup ids to paths: on cgroup v2 a cgroup's id is its directory's inode number (the
//! kernfs node id, fs/kernfs/inode.c `kernfs_init_inode`: `i_ino = kernfs_ino(kn)`), so the
//! tree under the mount is scanned and kept by inode. The scan runs when a table is rendered
//! or a CSV line names an unknown id, at most once per [`RESCAN`], never per walk; a cgroup
//! removed before it was seen keeps its id as its name.
use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use super::NOT_CHARGED;

/// Least time between two scans of the tree.
pub const RESCAN: Duration = Duration::from_secs(1);
/// Most cgroups kept (a host with more has them scanned again as needed).
pub const MAX_CGROUPS: usize = 65_536;

/// See the module's doc.
#[derive(Debug)]
pub struct CgroupPaths {
    root: PathBuf,
    by_id: HashMap<u64, String>,
    scanned: Option<Instant>,
}

impl Default for CgroupPaths {
    fn default() -> Self {
        Self::at(super::CGROUP_ROOT)
    }
}

impl CgroupPaths {
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            by_id: HashMap::new(),
            scanned: None,
        }
    }

    /// The path of cgroup `id` ("/" for the root, "/system.slice/x.service"…), scanning the
    /// tree again if it is unknown and the last scan is old enough.
    pub fn name(&mut self, id: u64) -> String {
        if id == NOT_CHARGED {
            return "(not charged)".into();
        }
        self.lookup(id)
            .map_or_else(|| format!("cgroup id {id}"), str::to_string)
    }

    /// The path of cgroup `id`, borrowed (for a line per walk), if it can be found.
    pub fn lookup(&mut self, id: u64) -> Option<&str> {
        if id == NOT_CHARGED {
            return None;
        }
        if !self.by_id.contains_key(&id) && self.scanned.is_none_or(|t| t.elapsed() >= RESCAN) {
            self.scan();
        }
        self.by_id.get(&id).map(String::as_str)
    }

    /// The path of cgroup `id` as the last scan found it, without scanning.
    pub fn cached(&self, id: u64) -> Option<&str> {
        self.by_id.get(&id).map(String::as_str)
    }

    /// Scans the tree now, however recent the last scan.
    pub fn rescan(&mut self) {
        self.scan();
    }

    /// Every cgroup of the last scan: (id, path).
    pub fn entries(&self) -> impl Iterator<Item = (u64, &str)> {
        self.by_id.iter().map(|(id, p)| (*id, p.as_str()))
    }

    fn scan(&mut self) {
        self.scanned = Some(Instant::now());
        self.by_id.clear();
        let mut stack = vec![(self.root.clone(), String::from("/"))];
        while let Some((dir, name)) = stack.pop() {
            if self.by_id.len() >= MAX_CGROUPS {
                break;
            }
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue; // removed meanwhile
            };
            self.by_id.insert(meta.ino(), name.clone());
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let child = Path::new(&name).join(e.file_name());
                    stack.push((e.path(), child.to_string_lossy().into_owned()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory tree stands in for the cgroup mount: ids are inode numbers.
    #[test]
    fn ids_are_directory_inodes() {
        let root = std::env::temp_dir().join(format!("rmap-cgroups-{}", std::process::id()));
        let unit = root.join("system.slice/java.service");
        std::fs::create_dir_all(&unit).unwrap();
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        let mut paths = CgroupPaths::at(&root);
        assert_eq!(paths.name(ino(&unit)), "/system.slice/java.service");
        assert_eq!(paths.name(ino(&root)), "/");
        // Made after the scan: found by the next one, once RESCAN has passed.
        let pod = root.join("kubepods.slice");
        std::fs::create_dir(&pod).unwrap();
        assert_eq!(paths.name(ino(&pod)), format!("cgroup id {}", ino(&pod)));
        paths.scanned = paths.scanned.and_then(|t| t.checked_sub(RESCAN));
        assert_eq!(paths.name(ino(&pod)), "/kubepods.slice");
        assert_eq!(paths.name(NOT_CHARGED), "(not charged)");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
