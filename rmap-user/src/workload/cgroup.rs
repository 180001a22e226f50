//! A temporary cgroup v2 group for `memory.reclaim`: this process moves into it (so its pages
//! are charged there), and back out and the group removed on drop (or by the next run after a
//! SIGKILL: both changes are in the host-state journal).
use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

use crate::host_state::{self, Change, Token};

const ROOT: &str = "/sys/fs/cgroup";

pub struct TempCgroup {
    path: PathBuf,
    /// The group, journalled before it was made (undo: processes back, group removed).
    group: Option<Token>,
    /// `+memory` in the root's `subtree_control`, when this run enabled it.
    enabled_memory: Option<Token>,
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
        let path = parent.join(format!("rmap-trace-{}", std::process::id()));
        let mut cg = Self {
            path: path.clone(),
            group: None,
            enabled_memory: None,
        };
        let enabled =
            fs::read_to_string(&control).with_context(|| format!("reading {}", control.display()))?;
        if !enabled.split_whitespace().any(|c| c == "memory") {
            cg.enabled_memory = Some(journal(Change::SubtreeMemory {
                control: control.clone(),
            })?);
            fs::write(&control, "+memory")
                .with_context(|| format!("enabling the memory controller in {}", control.display()))?;
        }
        // A group of that name that we did not make (a run with our pid before a reboot
        // cannot leave one: cgroupfs is not persistent) is someone else's: refuse it.
        if path.exists() {
            anyhow::bail!("{} exists already and is not this run's", path.display());
        }
        cg.group = Some(journal(Change::Cgroup {
            path: path.clone(),
            parent: original,
        })?);
        fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        fs::write(path.join("cgroup.procs"), std::process::id().to_string())
            .with_context(|| format!("moving into {}", path.display()))?;
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
}

fn journal(change: Change) -> anyhow::Result<Token> {
    host_state::record(change).context("writing the host-state journal before changing cgroups")
}

impl Drop for TempCgroup {
    fn drop(&mut self) {
        // The group first (this process moves back out of it), then `+memory`: the controller
        // cannot be disabled while a child group uses it.
        for token in [self.group.take(), self.enabled_memory.take()]
            .into_iter()
            .flatten()
        {
            if let Err(errors) = host_state::undo(&token) {
                eprintln!(
                    "rmap-trace: error: cleaning up the cgroup {}: {} (run `rmap-trace restore`)",
                    self.path.display(),
                    errors.join("; ")
                );
            }
        }
    }
}
