//! One change to the host, as the journal keeps it: enough to undo it from another process
//! after this one died (SIGKILL, OOM), and the undo itself, shared by the in-process guards and
//! `rmap-trace restore` so that both put back exactly the same thing.
use std::{
    ffi::CString,
    fs, io,
    path::{Path, PathBuf},
    process::Command,
};

use serde::{Deserialize, Serialize};

/// Errors of undoing one change.
#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    /// A sysfs, cgroupfs or procfs file could not be read or written.
    #[error("{what} {path}: {error}")]
    File {
        what: &'static str,
        path: String,
        error: io::Error,
    },
    /// A system call (swapoff, umount2) failed.
    #[error("{call} {path}: {error}")]
    Syscall {
        call: &'static str,
        path: String,
        error: io::Error,
    },
    /// `modprobe -r zram` did not succeed.
    #[error("modprobe -r zram: {0}")]
    Modprobe(String),
}

/// A host change made by a run, with the values from before it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// KSM knobs in `dir` (`/sys/kernel/mm/ksm`) with their original values; `run` is put back
    /// last, after any unmerge that `max_page_sharing` needs.
    Ksm { dir: PathBuf, knobs: Vec<(String, u64)> },
    /// `+memory` written to this `cgroup.subtree_control`.
    SubtreeMemory { control: PathBuf },
    /// A cgroup this run created; its processes go back to `parent` before it is removed.
    Cgroup { path: PathBuf, parent: PathBuf },
    /// The zram module, loaded by this run.
    ZramModule,
    /// A zram device this run set up (`hot_added`: it also created it).
    Zram {
        sys: PathBuf,
        dev: PathBuf,
        hot_added: Option<u32>,
    },
    /// tracefs, mounted by this run at `mount_point`.
    Tracefs { mount_point: PathBuf },
}

fn file_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> UndoError {
    let path = path.display().to_string();
    move |error| UndoError::File { what, path, error }
}

fn read_u64(path: &Path) -> Result<u64, UndoError> {
    let s = fs::read_to_string(path).map_err(file_err("reading", path))?;
    s.trim().parse().map_err(|e| UndoError::File {
        what: "parsing",
        path: path.display().to_string(),
        error: io::Error::new(io::ErrorKind::InvalidData, e),
    })
}

fn write(path: &Path, v: &str) -> Result<(), UndoError> {
    fs::write(path, v).map_err(file_err("writing", path))
}

/// Whether `mounts` (the text of /proc/self/mounts) has a tracefs at `point`.
pub fn tracefs_mounted_at(mounts: &str, point: &Path) -> bool {
    mounts.lines().any(|l| {
        let mut f = l.split_whitespace();
        let (_, at, fs) = (f.next(), f.next(), f.next());
        at.is_some_and(|a| Path::new(a) == point) && fs == Some("tracefs")
    })
}

impl Change {
    /// Puts the host back as it was before the change; returns what was done, in words (empty
    /// when nothing had to change). Every step is tried, so one failure does not keep the
    /// others from running; the errors are all returned.
    pub fn undo(&self) -> Result<String, Vec<UndoError>> {
        undo(self)
    }
}

/// [`Change::undo`], outside the impl: the type is deserialized from journal files, and the
/// unsafe calls (umount2, swapoff) are kept out of its methods.
fn undo(change: &Change) -> Result<String, Vec<UndoError>> {
    let mut errors = Vec::new();
    let mut done = Vec::new();
    match change {
        Change::Ksm { dir, knobs } => undo_ksm(dir, knobs, &mut done, &mut errors),
        Change::SubtreeMemory { control } => match write(control, "-memory") {
            Ok(()) => done.push(format!("-memory in {}", control.display())),
            Err(e) => errors.push(e),
        },
        Change::Cgroup { path, parent } => undo_cgroup(path, parent, &mut done, &mut errors),
        Change::ZramModule => match Command::new("modprobe").args(["-r", "zram"]).output() {
            Ok(o) if o.status.success() => done.push("unloaded zram".into()),
            Ok(o) => errors.push(UndoError::Modprobe(
                String::from_utf8_lossy(&o.stderr).trim().to_string(),
            )),
            Err(e) => errors.push(UndoError::Modprobe(e.to_string())),
        },
        Change::Zram { sys, dev, hot_added } => {
            undo_zram(sys, dev, *hot_added, &mut done, &mut errors);
        }
        Change::Tracefs { mount_point } => {
            let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
            if tracefs_mounted_at(&mounts, mount_point) {
                match syscall_path("umount2", mount_point, |p| {
                    // SAFETY: `p` is a valid NUL-terminated path; umount2 only reads it.
                    unsafe { libc::umount2(p, 0) }
                }) {
                    Ok(()) => done.push(format!("unmounted tracefs from {}", mount_point.display())),
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(done.join(", "))
    } else {
        Err(errors)
    }
}

fn syscall_path(
    call: &'static str,
    path: &Path,
    f: impl FnOnce(*const libc::c_char) -> libc::c_int,
) -> Result<(), UndoError> {
    let err = |error| UndoError::Syscall {
        call,
        path: path.display().to_string(),
        error,
    };
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| err(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    if f(c.as_ptr()) == 0 {
        Ok(())
    } else {
        Err(err(io::Error::last_os_error()))
    }
}

/// mm/ksm.c `max_page_sharing_store()` refuses a change while KSM pages exist (EBUSY): unmerge
/// (`run=2`) first, only when it must change. `run` goes back last.
fn undo_ksm(dir: &Path, knobs: &[(String, u64)], done: &mut Vec<String>, errors: &mut Vec<UndoError>) {
    for (k, orig) in knobs.iter().filter(|(k, _)| k != "run") {
        let p = dir.join(k);
        match read_u64(&p) {
            Ok(cur) if cur == *orig => {}
            Ok(cur) => {
                if k == "max_page_sharing"
                    && let Err(e) = write(&dir.join("run"), "2")
                {
                    errors.push(e);
                }
                match write(&p, &orig.to_string()) {
                    Ok(()) => done.push(format!("ksm {k} {cur}→{orig}")),
                    Err(e) => errors.push(e),
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if let Some((_, orig)) = knobs.iter().find(|(k, _)| k == "run") {
        let p = dir.join("run");
        let cur = read_u64(&p).ok();
        match write(&p, &orig.to_string()) {
            Ok(()) if cur != Some(*orig) => done.push(format!(
                "ksm run {}→{orig}",
                cur.map_or_else(|| "?".into(), |c| c.to_string())
            )),
            Ok(()) => {}
            Err(e) => errors.push(e),
        }
    }
}

/// Processes still in the group (our forked children, or ourselves) go to `parent` first:
/// kernel/cgroup/cgroup.c `cgroup_rmdir()` refuses a populated group (EBUSY).
fn undo_cgroup(path: &Path, parent: &Path, done: &mut Vec<String>, errors: &mut Vec<UndoError>) {
    if !path.exists() {
        return;
    }
    let procs = path.join("cgroup.procs");
    match fs::read_to_string(&procs) {
        Ok(text) => {
            for pid in text.split_whitespace() {
                // A process that exited meanwhile cannot be moved (ESRCH): not an error.
                match fs::write(parent.join("cgroup.procs"), pid) {
                    Err(e) if e.raw_os_error() != Some(libc::ESRCH) => {
                        errors.push(file_err("moving a process to", parent)(e));
                    }
                    _ => {}
                }
            }
        }
        Err(e) => errors.push(file_err("reading", &procs)(e)),
    }
    match fs::remove_dir(path) {
        Ok(()) => done.push(format!("removed cgroup {}", path.display())),
        Err(e) => errors.push(file_err("removing", path)(e)),
    }
}

fn undo_zram(
    sys: &Path,
    dev: &Path,
    hot_added: Option<u32>,
    done: &mut Vec<String>,
    errors: &mut Vec<UndoError>,
) {
    let swaps = fs::read_to_string("/proc/swaps").unwrap_or_default();
    if swaps
        .lines()
        .skip(1)
        .any(|l| l.split_whitespace().next() == Some(&*dev.to_string_lossy()))
    {
        match syscall_path("swapoff", dev, |p| {
            // SAFETY: `p` is a valid NUL-terminated path; swapoff only reads it.
            unsafe { libc::swapoff(p) }
        }) {
            Ok(()) => done.push(format!("swapoff {}", dev.display())),
            Err(e) => errors.push(e),
        }
    }
    if sys.exists() {
        match write(&sys.join("reset"), "1") {
            Ok(()) => done.push(format!("reset {}", dev.display())),
            Err(e) => errors.push(e),
        }
        if let Some(n) = hot_added {
            match write(Path::new("/sys/class/zram-control/hot_remove"), &n.to_string()) {
                Ok(()) => done.push(format!("removed zram{n}")),
                Err(e) => errors.push(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host_state::test_dir::TestDir;

    fn ksm_dir(values: &[(&str, u64)]) -> TestDir {
        let d = TestDir::new("ksm");
        for (k, v) in values {
            fs::write(d.path().join(k), v.to_string()).unwrap();
        }
        d
    }

    fn knobs(values: &[(&str, u64)]) -> Vec<(String, u64)> {
        values.iter().map(|(k, v)| ((*k).to_string(), *v)).collect()
    }

    fn read(d: &Path, k: &str) -> u64 {
        fs::read_to_string(d.join(k)).unwrap().trim().parse().unwrap()
    }

    #[test]
    fn ksm_knobs_go_back_run_last() {
        let d = ksm_dir(&[
            ("run", 1),
            ("sleep_millisecs", 0),
            ("pages_to_scan", 10_000),
            ("max_page_sharing", 2),
        ]);
        let c = Change::Ksm {
            dir: d.path().into(),
            knobs: knobs(&[
                ("max_page_sharing", 256),
                ("sleep_millisecs", 20),
                ("pages_to_scan", 100),
                ("run", 0),
            ]),
        };
        let said = c.undo().unwrap();
        assert_eq!(read(d.path(), "run"), 0);
        assert_eq!(read(d.path(), "sleep_millisecs"), 20);
        assert_eq!(read(d.path(), "pages_to_scan"), 100);
        assert_eq!(read(d.path(), "max_page_sharing"), 256);
        assert!(said.contains("ksm sleep_millisecs 0→20"), "{said}");
        // max_page_sharing needed an unmerge: run went to 2 before it went back to 0.
        assert!(said.contains("ksm run 2→0"), "{said}");
    }

    #[test]
    fn ksm_undo_tries_every_knob_and_reports_every_error() {
        let d = ksm_dir(&[("run", 1), ("pages_to_scan", 10_000)]);
        let c = Change::Ksm {
            dir: d.path().into(),
            knobs: knobs(&[
                ("sleep_millisecs", 20),
                ("pages_to_scan", 100),
                ("max_page_sharing", 256),
                ("run", 0),
            ]),
        };
        let errors = c.undo().unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(read(d.path(), "pages_to_scan"), 100);
        assert_eq!(read(d.path(), "run"), 0);
    }

    #[test]
    fn finds_tracefs_mounts() {
        let m = "proc /proc proc rw 0 0\nnodev /sys/kernel/tracing tracefs rw 0 0\n";
        assert!(tracefs_mounted_at(m, Path::new("/sys/kernel/tracing")));
        assert!(!tracefs_mounted_at(m, Path::new("/proc")));
    }
}
