//! A temporary cgroup v2 group for `memory.reclaim`: this process moves into it (so its pages
//! are charged there), and back out and the group removed on drop.
use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

const ROOT: &str = "/sys/fs/cgroup";

pub struct TempCgroup {
    path: PathBuf,
    original: PathBuf,
    /// We enabled +memory in the parent's `subtree_control` and must disable it again.
    enabled_memory: Option<PathBuf>,
}

fn own_cgroup() -> anyhow::Result<PathBuf> {
    let text = fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .context("not in a cgroup v2 hierarchy")?;
    Ok(Path::new(ROOT).join(rel.trim_start_matches('/')))
}

impl TempCgroup {
    pub fn enter() -> anyhow::Result<Self> {
        let original = own_cgroup()?;
        // A process may only sit in a leaf: make the group a sibling under the root.
        let parent = PathBuf::from(ROOT);
        let control = parent.join("cgroup.subtree_control");
        let enabled =
            fs::read_to_string(&control).with_context(|| format!("reading {}", control.display()))?;
        let enabled_memory = if enabled.split_whitespace().any(|c| c == "memory") {
            None
        } else {
            fs::write(&control, "+memory")
                .with_context(|| format!("enabling the memory controller in {}", control.display()))?;
            Some(control)
        };
        let path = parent.join(format!("rmap-trace-{}", std::process::id()));
        let mut cg = Self {
            path: path.clone(),
            original,
            enabled_memory,
        };
        fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        fs::write(path.join("cgroup.procs"), std::process::id().to_string())
            .with_context(|| format!("moving into {}", path.display()))?;
        cg.path = path;
        Ok(cg)
    }

    /// Asks the kernel to reclaim `bytes` from the group. EAGAIN (less was reclaimed than
    /// asked) is not an error: the walks happened.
    pub fn reclaim(&self, bytes: u64) -> anyhow::Result<()> {
        let file = self.path.join("memory.reclaim");
        match fs::write(&file, bytes.to_string()) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("writing {}", file.display())),
        }
    }

    fn leave(&mut self) -> anyhow::Result<()> {
        let back = self.original.join("cgroup.procs");
        fs::write(&back, std::process::id().to_string())
            .with_context(|| format!("moving back to {}", self.original.display()))?;
        fs::remove_dir(&self.path).with_context(|| format!("removing {}", self.path.display()))?;
        if let Some(control) = self.enabled_memory.take() {
            fs::write(&control, "-memory")
                .with_context(|| format!("disabling memory in {}", control.display()))?;
        }
        Ok(())
    }
}

impl Drop for TempCgroup {
    fn drop(&mut self) {
        if let Err(e) = self.leave() {
            eprintln!("rmap-trace: error: cleaning up the cgroup: {e:#}");
        }
    }
}
