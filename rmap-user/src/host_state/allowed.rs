//! What a journal may ask to be undone, checked before anything of it is: only the KSM knobs
//! this program changes, under KSM's own directory; only `+memory` of the cgroup root, and
//! only groups that this program creates (`rmap-trace-<pid>` right under the cgroup mount);
//! only zram devices, by number; only the tracefs mount point this program mounts. A journal
//! naming any other path is refused whole.
use std::path::{Component, Path, PathBuf};

use super::change::Change;

/// The KSM knobs a run changes (and puts back), in that order.
pub const KSM_KNOBS: [&str; 4] = ["max_page_sharing", "sleep_millisecs", "pages_to_scan", "run"];

/// The prefix of the cgroups this program creates (then its pid).
pub const CGROUP_PREFIX: &str = "rmap-trace-";

/// The host's places that changes may name.
#[derive(Clone, Debug)]
pub struct Host {
    /// KSM's sysfs directory.
    pub ksm: PathBuf,
    /// The cgroup v2 mount.
    pub cgroup: PathBuf,
    /// Where block devices show in sysfs (`zram<N>` there).
    pub block: PathBuf,
    /// Where device nodes are (`zram<N>` there).
    pub dev: PathBuf,
    /// Where this program mounts tracefs.
    pub tracefs: PathBuf,
}

impl Host {
    /// This host's places.
    pub fn real() -> Self {
        Self {
            ksm: "/sys/kernel/mm/ksm".into(),
            cgroup: "/sys/fs/cgroup".into(),
            block: "/sys/block".into(),
            dev: "/dev".into(),
            tracefs: "/sys/kernel/tracing".into(),
        }
    }

    /// Why `change` is not one this program makes, or Ok.
    pub fn check(&self, change: &Change) -> Result<(), String> {
        match change {
            Change::Ksm { dir, knobs } => {
                same(dir, &self.ksm, "KSM directory")?;
                for (i, (k, _)) in knobs.iter().enumerate() {
                    if !KSM_KNOBS.contains(&k.as_str()) {
                        return Err(format!(
                            "`{}` is not a KSM knob rmap-trace changes",
                            k.escape_debug()
                        ));
                    }
                    if knobs[..i].iter().any(|(o, _)| o == k) {
                        return Err(format!("the KSM knob {k} is named twice"));
                    }
                }
                Ok(())
            }
            Change::SubtreeMemory { control } => same(
                control,
                &self.cgroup.join("cgroup.subtree_control"),
                "subtree_control",
            ),
            Change::Cgroup { path, parent } => {
                only_child(path, &self.cgroup)
                    .and_then(|n| numbered(n, CGROUP_PREFIX))
                    .ok_or_else(|| format!("{} is not a cgroup rmap-trace creates", shown(path)))?;
                if !under(parent, &self.cgroup) {
                    return Err(format!("{} is not a cgroup", shown(parent)));
                }
                if parent.starts_with(path) {
                    return Err(format!("{} is inside the group it replaces", shown(parent)));
                }
                Ok(())
            }
            Change::ZramModule => Ok(()),
            Change::Zram { sys, dev, hot_added } => {
                let n = only_child(sys, &self.block)
                    .and_then(|s| numbered(s, "zram"))
                    .ok_or_else(|| format!("{} is not a zram device", shown(sys)))?;
                same(dev, &self.dev.join(format!("zram{n}")), "zram device node")?;
                match hot_added {
                    Some(h) if *h != n => Err(format!("zram{h} is not the device zram{n}")),
                    _ => Ok(()),
                }
            }
            Change::Tracefs { mount_point } => same(mount_point, &self.tracefs, "tracefs mount point"),
        }
    }
}

fn shown(p: &Path) -> String {
    p.display().to_string().escape_debug().to_string()
}

fn same(p: &Path, want: &Path, what: &str) -> Result<(), String> {
    if p == want {
        Ok(())
    } else {
        Err(format!("{} is not the {what} {}", shown(p), want.display()))
    }
}

/// Whether `p` is `root` or below it through plain names only (no `..`, no `.`).
fn under(p: &Path, root: &Path) -> bool {
    p.strip_prefix(root)
        .is_ok_and(|rest| rest.components().all(|c| matches!(c, Component::Normal(_))))
}

/// The one plain name by which `p` is below `root`.
fn only_child<'a>(p: &'a Path, root: &Path) -> Option<&'a str> {
    let rest = p.strip_prefix(root).ok()?;
    let mut c = rest.components();
    match (c.next(), c.next()) {
        (Some(Component::Normal(name)), None) => name.to_str(),
        _ => None,
    }
}

/// The number N of a name `<prefix>N` (decimal digits only).
fn numbered(name: &str, prefix: &str) -> Option<u32> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ksm(dir: &str, knobs: &[&str]) -> Change {
        Change::Ksm {
            dir: dir.into(),
            knobs: knobs.iter().map(|k| ((*k).to_string(), 1)).collect(),
        }
    }

    fn cgroup(path: &str, parent: &str) -> Change {
        Change::Cgroup {
            path: path.into(),
            parent: parent.into(),
        }
    }

    fn zram(sys: &str, dev: &str, hot_added: Option<u32>) -> Change {
        Change::Zram {
            sys: sys.into(),
            dev: dev.into(),
            hot_added,
        }
    }

    /// What this program writes is accepted.
    #[test]
    fn accepts_the_changes_rmap_trace_makes() {
        let h = Host::real();
        for ok in [
            ksm("/sys/kernel/mm/ksm", &KSM_KNOBS),
            Change::SubtreeMemory {
                control: "/sys/fs/cgroup/cgroup.subtree_control".into(),
            },
            cgroup(
                "/sys/fs/cgroup/rmap-trace-4242",
                "/sys/fs/cgroup/user.slice/session-1.scope",
            ),
            cgroup("/sys/fs/cgroup/rmap-trace-1", "/sys/fs/cgroup"),
            Change::ZramModule,
            zram("/sys/block/zram3", "/dev/zram3", Some(3)),
            zram("/sys/block/zram0", "/dev/zram0", None),
            Change::Tracefs {
                mount_point: "/sys/kernel/tracing".into(),
            },
        ] {
            assert_eq!(h.check(&ok), Ok(()), "{ok:?}");
        }
    }

    /// Every path by which a crafted journal would reach outside (traversal, other directories,
    /// other names) is refused.
    #[test]
    fn refuses_every_other_path() {
        let h = Host::real();
        for bad in [
            ksm("/sys/kernel/mm/ksm/../../../../tmp", &["run"]),
            ksm("/tmp/ksm", &["run"]),
            ksm("/sys/kernel/mm/ksm", &["../../../../tmp/kn"]),
            ksm("/sys/kernel/mm/ksm", &["run", "run"]),
            ksm("/sys/kernel/mm/ksm", &["merge_across_nodes"]),
            Change::SubtreeMemory {
                control: "/tmp/cgroup.subtree_control".into(),
            },
            cgroup("/sys/fs/cgroup/unified/../../../../tmp/x", "/sys/fs/cgroup"),
            cgroup("/sys/fs/cgroup/system.slice", "/sys/fs/cgroup"),
            cgroup("/sys/fs/cgroup/rmap-trace-12/x", "/sys/fs/cgroup"),
            cgroup("/sys/fs/cgroup/rmap-trace-", "/sys/fs/cgroup"),
            cgroup("/sys/fs/cgroup/rmap-trace-1", "/tmp"),
            cgroup("/sys/fs/cgroup/rmap-trace-1", "/sys/fs/cgroup/../../../tmp"),
            cgroup("/sys/fs/cgroup/rmap-trace-1", "/sys/fs/cgroup/rmap-trace-1/sub"),
            zram("/tmp/zram0", "/dev/zram0", None),
            zram("/sys/block/zram1", "/dev/zram2", None),
            zram("/sys/block/zram1", "/dev/sda", None),
            zram("/sys/block/sda", "/dev/sda", None),
            zram("/sys/block/zram1", "/dev/zram1", Some(2)),
            Change::Tracefs {
                mount_point: "/proc".into(),
            },
        ] {
            assert!(h.check(&bad).is_err(), "accepted {bad:?}");
        }
    }
}
