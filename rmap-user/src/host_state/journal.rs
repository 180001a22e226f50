//! The journal file of one process: who wrote it (pid and start time, so that a reused pid is
//! not taken for its writer) and the changes it made, each written down before it is made.
//! Written whole to a new temporary file, synced, and renamed over the old one, so that a
//! reader sees either the old list or the new one, never half of one. Read back as untrusted
//! input: only from a file its directory's owner alone could have written, never through a link,
//! and only when every change in it is one this program makes (`allowed`).
use std::{
    fs::{self, OpenOptions},
    io::{self, Read as _, Write as _},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::{allowed::Host, change::Change, dir::JournalDir, error::JournalError};
use crate::printable::printable;

/// The largest journal file read (a real one is a few hundred bytes).
pub const MAX_JOURNAL_BYTES: u64 = 64 * 1024;

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> JournalError + 'a {
    move |error| JournalError::io(what, path, error)
}

/// One recorded change, with the id its guard uses to strike it once undone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: u64,
    pub change: Change,
}

/// The content of one journal file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    pub pid: u32,
    /// Field 22 of /proc/<pid>/stat (clock ticks since boot): with the pid, names one process.
    pub start_time: u64,
    pub entries: Vec<Entry>,
}

/// The start time of `pid` from `<proc_root>/<pid>/stat`, None if there is no such process.
pub fn start_time(proc_root: &Path, pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after the last
    // ')'; the fields there start with field 3, so field 22 is the 20th.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl Journal {
    /// A journal of this process (read from /proc/self).
    pub fn for_self() -> Result<Self, JournalError> {
        let pid = std::process::id();
        let start_time = start_time(Path::new("/proc"), pid).ok_or(JournalError::StartTime(pid))?;
        Ok(Self {
            pid,
            start_time,
            entries: Vec::new(),
        })
    }

    /// Its file in `dir`.
    pub fn path_in(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.json", self.pid))
    }

    /// Whether the process that wrote it still runs (same pid, same start time).
    pub fn owner_alive(&self, proc_root: &Path) -> bool {
        start_time(proc_root, self.pid) == Some(self.start_time)
    }

    /// Writes it to its own file in `dir` (see [`Self::save_at`]).
    pub fn save(&self, dir: &Path) -> Result<(), JournalError> {
        self.save_at(&self.path_in(dir))
    }

    /// Writes it to `path` atomically (a new temporary file beside it, never an existing one
    /// or a link, fsync, rename, fsync of the directory), or removes `path` when nothing is
    /// left to undo.
    pub fn save_at(&self, path: &Path) -> Result<(), JournalError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        if self.entries.is_empty() {
            return match fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("removing", path)(e)),
                _ => sync_dir(dir),
            };
        }
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = dir.join(format!(".{name}.tmp"));
        let text = serde_json::to_vec_pretty(self).map_err(|error| JournalError::Encode {
            path: path.display().to_string(),
            error,
        })?;
        // Left by a writer killed between create and rename: this name is ours to reuse.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err("removing", &tmp)(e)),
            _ => {}
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(io_err("creating", &tmp))?;
        f.write_all(&text).map_err(io_err("writing", &tmp))?;
        f.sync_all().map_err(io_err("syncing", &tmp))?;
        fs::rename(&tmp, path).map_err(io_err("renaming into", path))?;
        sync_dir(dir)
    }

    /// Reads the journal at `path` in `dir`, trusting nothing of it: the file must be one
    /// only the directory's owner could have written (see [`JournalDir::open_journal`]), a
    /// journal, and every change in it one that `host` allows.
    pub fn load(dir: &JournalDir, host: &Host, path: &Path) -> Result<Self, JournalError> {
        let bad = |why: String| JournalError::Bad {
            path: printable(&path.display().to_string()).into_owned(),
            why,
        };
        let f = dir.open_journal(path, MAX_JOURNAL_BYTES).map_err(bad)?;
        let mut text = Vec::new();
        f.take(MAX_JOURNAL_BYTES)
            .read_to_end(&mut text)
            .map_err(|e| bad(e.to_string()))?;
        let j: Self = serde_json::from_slice(&text).map_err(|e| bad(format!("not a journal ({e})")))?;
        for e in &j.entries {
            host.check(&e.change)
                .map_err(|why| bad(format!("change {}: {why}", e.id)))?;
        }
        Ok(j)
    }
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing", dir))
}

/// Every journal file in `dir` (`*.json`, not hidden), whatever its kind: each is checked
/// when it is loaded.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>, JournalError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("reading", dir)(e)),
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p
                    .file_name()
                    .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
        })
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host_state::test_dir::TestDir;

    fn fake_proc(root: &Path, pid: u32, comm: &str, start: u64) {
        let d = root.join(pid.to_string());
        fs::create_dir_all(&d).unwrap();
        // Fields 3..21 as zeros, then the start time (field 22), then a few more.
        let mut fields = vec!["S".to_string()];
        fields.extend(std::iter::repeat_n("0".to_string(), 18));
        fields.push(start.to_string());
        fields.extend(["1", "2"].map(String::from));
        fs::write(d.join("stat"), format!("{pid} ({comm}) {}\n", fields.join(" "))).unwrap();
    }

    #[test]
    fn reads_the_start_time_after_an_odd_comm() {
        let d = TestDir::new("proc");
        fake_proc(d.path(), 7, "a) b (c", 12_345);
        assert_eq!(start_time(d.path(), 7), Some(12_345));
        assert_eq!(start_time(d.path(), 8), None);
        // And the real one of this process.
        assert!(start_time(Path::new("/proc"), std::process::id()).is_some());
    }

    #[test]
    fn dead_pid_and_reused_pid_are_not_alive() {
        let d = TestDir::new("proc");
        let j = Journal {
            pid: 42,
            start_time: 1000,
            entries: Vec::new(),
        };
        assert!(!j.owner_alive(d.path()), "no /proc entry: gone");
        fake_proc(d.path(), 42, "rmap-trace", 2000);
        assert!(!j.owner_alive(d.path()), "pid 42 reused by a later process");
        fake_proc(d.path(), 42, "rmap-trace", 1000);
        assert!(j.owner_alive(d.path()));
        assert!(Journal::for_self().unwrap().owner_alive(Path::new("/proc")));
    }

    #[test]
    fn saves_atomically_loads_and_removes_when_empty() {
        let d = TestDir::new("journal");
        let mut j = Journal {
            pid: 99,
            start_time: 5,
            entries: vec![Entry {
                id: 1,
                change: Change::Ksm {
                    dir: "/sys/kernel/mm/ksm".into(),
                    knobs: vec![("run".into(), 0), ("pages_to_scan".into(), 100)],
                },
            }],
        };
        j.save(d.path()).unwrap();
        assert_eq!(list(d.path()).unwrap(), vec![d.path().join("99.json")]);
        let dir = JournalDir {
            path: d.path().into(),
            owner: super::super::dir::euid(),
        };
        let loaded = Journal::load(&dir, &Host::real(), &d.path().join("99.json")).unwrap();
        assert_eq!(loaded, j);
        // No temporary file is left beside it.
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
        j.entries.clear();
        j.save(d.path()).unwrap();
        assert!(list(d.path()).unwrap().is_empty());
    }

    /// A link planted where the temporary file goes is replaced, never written through.
    #[test]
    fn never_writes_through_a_planted_link() {
        let d = TestDir::new("tmplink");
        let target = d.path().join("target");
        fs::write(&target, "kept").unwrap();
        let j = Journal {
            pid: 98,
            start_time: 5,
            entries: vec![Entry {
                id: 1,
                change: Change::ZramModule,
            }],
        };
        std::os::unix::fs::symlink(&target, d.path().join(".98.json.tmp")).unwrap();
        j.save(d.path()).unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "kept");
        let written = fs::symlink_metadata(d.path().join("98.json")).unwrap();
        assert!(written.is_file(), "{written:?}");
        let mode = std::os::unix::fs::PermissionsExt::mode(&written.permissions()) & 0o777;
        assert_eq!(mode, 0o600);
    }
}
