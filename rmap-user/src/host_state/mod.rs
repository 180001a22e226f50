//! Host state that a run changes (KSM knobs, the cgroup and `+memory`, zram, swap and its
//! module, a tracefs mount), written down in a journal (`dir`: root's in /run/rmap-trace)
//! before each change and struck once undone. A run killed with SIGKILL or by the OOM killer
//! cannot undo anything: the next run that changes host state (or `rmap-trace restore`) finds
//! its journal, sees that its writer is gone, and puts every value back before it reads any
//! "original" itself. A journal is untrusted input: a file that is not one only its directory's
//! owner could have written, or that names a change this program does not make (`allowed`), is
//! reported and left alone, and the others are replayed all the same. KSM's settings have one
//! owner at a time (`lock`).
pub mod allowed;
pub mod change;
pub mod dir;
pub mod error;
pub mod journal;
pub mod lock;
#[cfg(test)]
mod test_dir;

use std::{
    path::Path,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

pub use self::{
    allowed::Host,
    change::{Change, UndoError},
    dir::JournalDir,
};
use self::{
    error::JournalError,
    journal::{Entry, Journal},
};

/// This process's journal and its directory, made on the first change.
static JOURNAL: Mutex<Option<(JournalDir, Journal)>> = Mutex::new(None);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A change recorded in the journal, to be undone with [`undo`].
#[derive(Debug)]
pub struct Token(u64);

/// The journal directory of this process's user, or why there is none.
pub fn current_dir() -> Result<JournalDir, JournalError> {
    JournalDir::current().ok_or_else(|| JournalError::NoDir(dir::euid()))
}

/// Writes `change` down before it is made; make the change only when this succeeds.
pub fn record(change: Change) -> Result<Token, JournalError> {
    let mut guard = JOURNAL.lock().unwrap_or_else(PoisonError::into_inner);
    let (dir, journal) = if let Some(j) = guard.as_mut() {
        j
    } else {
        let dir = current_dir()?;
        dir.create()?;
        guard.insert((dir, Journal::for_self()?))
    };
    let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    journal.entries.push(Entry { id, change });
    if let Err(e) = journal.save(&dir.path) {
        journal.entries.pop();
        return Err(e);
    }
    Ok(Token(id))
}

/// Undoes a recorded change and strikes it from the journal; a change whose undo failed stays
/// there for `rmap-trace restore`.
pub fn undo(token: &Token) -> Result<String, Vec<String>> {
    let mut guard = JOURNAL.lock().unwrap_or_else(PoisonError::into_inner);
    let Some((dir, journal)) = guard.as_mut() else {
        return Ok(String::new());
    };
    let Some(pos) = journal.entries.iter().position(|e| e.id == token.0) else {
        return Ok(String::new());
    };
    let done = journal.entries[pos]
        .change
        .undo()
        .map_err(|errs| errs.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    journal.entries.remove(pos);
    journal.save(&dir.path).map_err(|e| vec![e.to_string()])?;
    Ok(done)
}

/// What was done with the journal of one process that is gone.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub pid: u32,
    /// What was put back, in words.
    pub done: Vec<String>,
    /// Every undo that failed (its entry stays in the journal).
    pub errors: Vec<String>,
}

/// What a replay of a journal directory did.
#[derive(Debug, Default)]
pub struct Recovery {
    /// One per journal of a process that is gone.
    pub runs: Vec<Recovered>,
    /// The files that were not read, each with why: left as they are.
    pub bad: Vec<JournalError>,
}

/// The journals in `dir` whose writers are gone (by `proc_root`): each change undone, newest
/// first, every one tried whatever the others do; the file that was read is then rewritten
/// with the changes that could not be undone, or removed. Journals of running processes
/// (another rmap-trace, or this one) are left alone, and so is every file that is not a
/// trustworthy journal (listed in [`Recovery::bad`]). One replay at a time per directory.
pub fn recover(dir: &JournalDir, host: &Host, proc_root: &Path) -> Result<Recovery, JournalError> {
    let mut out = Recovery::default();
    if !dir.exists()? {
        return Ok(out);
    }
    let _replaying = lock::recovery(dir)?;
    for path in journal::list(&dir.path)? {
        let mut j = match Journal::load(dir, host, &path) {
            Ok(j) => j,
            Err(e) => {
                out.bad.push(e);
                continue;
            }
        };
        if j.owner_alive(proc_root) {
            continue;
        }
        let mut r = replay(&mut j);
        if let Err(e) = j.save_at(&path) {
            r.errors.push(e.to_string());
        }
        out.runs.push(r);
    }
    Ok(out)
}

/// Undoes every change of `j`, newest first, leaving in it those whose undo failed.
fn replay(j: &mut Journal) -> Recovered {
    let mut r = Recovered {
        pid: j.pid,
        ..Recovered::default()
    };
    let mut failed = Vec::new();
    for entry in j.entries.iter().rev() {
        match entry.change.undo() {
            Ok(done) if done.is_empty() => {}
            Ok(done) => r.done.push(done),
            Err(errs) => {
                r.errors.extend(errs.iter().map(ToString::to_string));
                failed.push(entry.clone());
            }
        }
    }
    failed.reverse();
    j.entries = failed;
    r
}

/// What [`report`] makes of files that are not trustworthy journals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadFiles {
    /// One warning line each.
    Warn,
    /// Nothing (reported already).
    Quiet,
    /// One line each, and an error at the end.
    Fail,
}

/// Startup of a command that changes host state: puts back what runs that died left changed,
/// one line per run; fails with every error when something could not be put back. A file that
/// is not a trustworthy journal is one warning line, and the start goes on.
pub fn recover_at_start() -> anyhow::Result<()> {
    let Some(dir) = JournalDir::current() else {
        return Ok(());
    };
    report(
        &recover(&dir, &Host::real(), Path::new("/proc"))?,
        &dir,
        BadFiles::Warn,
    )
}

/// Makes this process the one owner of KSM's settings until the returned lock is dropped:
/// refused, naming the owner, while another process owns them; then puts back what dead runs
/// left, so that the values read next are the host's own.
pub fn own_ksm() -> anyhow::Result<lock::Held> {
    let dir = current_dir()?;
    let held = lock::ksm(&dir)?;
    report(
        &recover(&dir, &Host::real(), Path::new("/proc"))?,
        &dir,
        BadFiles::Quiet,
    )?;
    Ok(held)
}

/// Prints one line per recovered journal (and per bad file, as `bad` says); an error naming
/// every failed undo.
pub fn report(recovery: &Recovery, dir: &JournalDir, bad: BadFiles) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    for r in &recovery.runs {
        if !r.done.is_empty() || r.errors.is_empty() {
            let what = if r.done.is_empty() {
                "nothing had to change".to_string()
            } else {
                r.done.join(", ")
            };
            eprintln!(
                "rmap-trace: restored the host state left by pid {} (no longer running): {what}",
                r.pid
            );
        }
        errors.extend(r.errors.iter().map(|e| format!("pid {}: {e}", r.pid)));
    }
    let shown = dir.path.display();
    if bad != BadFiles::Quiet {
        for e in &recovery.bad {
            eprintln!("rmap-trace: warning: ignoring the journal {e}");
        }
    }
    if !errors.is_empty() {
        anyhow::bail!(
            "could not restore the host state left by an earlier run ({}); fix it and run `rmap-trace restore` (journals in {shown})",
            errors.join("; ")
        )
    }
    if bad == BadFiles::Fail && !recovery.bad.is_empty() {
        anyhow::bail!(
            "{} file(s) in {shown} are not journals rmap-trace trusts (named above): nothing of them was applied; look at them and remove them",
            recovery.bad.len()
        )
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::{fs, os::unix::fs::PermissionsExt as _, path::PathBuf};

    use super::{dir::euid, journal::Entry, test_dir::TestDir, *};

    /// A host of plain directories under `root`, and a journal directory beside them.
    struct Fake {
        _root: TestDir,
        host: Host,
        dir: JournalDir,
    }

    impl Fake {
        fn new(name: &str) -> Self {
            let root = TestDir::new(name);
            let p = |n: &str| -> PathBuf {
                let d = root.path().join(n);
                fs::create_dir_all(&d).unwrap();
                d
            };
            let host = Host {
                ksm: p("ksm"),
                cgroup: p("cgroup"),
                block: p("block"),
                dev: p("dev"),
                tracefs: p("tracing"),
            };
            let dir = JournalDir {
                path: p("journals"),
                owner: euid(),
            };
            Self {
                _root: root,
                host,
                dir,
            }
        }

        fn knob(&self, k: &str) -> String {
            fs::read_to_string(self.host.ksm.join(k)).unwrap()
        }

        /// A journal of the dead pid `pid` putting `run` back to 0, saved as `name`.
        fn dead_ksm_journal(&self, pid: u32, name: &str) -> PathBuf {
            let j = dead(pid, vec![ksm(&self.host.ksm, &[("run", 0)])]);
            let path = self.dir.path.join(name);
            j.save_at(&path).unwrap();
            path
        }

        fn recover(&self) -> Recovery {
            recover(&self.dir, &self.host, Path::new("/proc")).unwrap()
        }
    }

    fn ksm(dir: &Path, knobs: &[(&str, u64)]) -> Change {
        Change::Ksm {
            dir: dir.into(),
            knobs: knobs.iter().map(|(k, v)| ((*k).to_string(), *v)).collect(),
        }
    }

    /// A journal of a process that is not running (pid beyond the kernel's `pid_max`).
    fn dead(pid: u32, changes: Vec<Change>) -> Journal {
        Journal {
            pid,
            start_time: 1,
            entries: changes
                .into_iter()
                .zip(1..)
                .map(|(change, id)| Entry { id, change })
                .collect(),
        }
    }

    #[test]
    fn recovers_a_dead_run_collecting_every_error() {
        let f = Fake::new("state");
        fs::write(f.host.ksm.join("run"), "1").unwrap();
        fs::write(f.host.ksm.join("sleep_millisecs"), "0").unwrap();
        let j = dead(
            4_194_400,
            vec![
                // pages_to_scan is missing from the knobs: an error.
                ksm(&f.host.ksm, &[("pages_to_scan", 100)]),
                ksm(&f.host.ksm, &[("sleep_millisecs", 20), ("run", 0)]),
                // No cgroup mount: an error.
                Change::SubtreeMemory {
                    control: f.host.cgroup.join("cgroup.subtree_control"),
                },
            ],
        );
        j.save(&f.dir.path).unwrap();
        fs::remove_dir(&f.host.cgroup).unwrap();
        let r = f.recover();
        assert!(r.bad.is_empty(), "{:?}", r.bad);
        assert_eq!(r.runs.len(), 1);
        assert_eq!(r.runs[0].pid, 4_194_400);
        assert_eq!(r.runs[0].errors.len(), 2, "{:?}", r.runs[0].errors);
        assert_eq!(
            r.runs[0].done,
            vec!["ksm sleep_millisecs 0→20, ksm run 1→0".to_string()]
        );
        assert_eq!(f.knob("sleep_millisecs"), "20");
        // The failed entries stay for `rmap-trace restore`; the undone one is struck.
        let left = Journal::load(&f.dir, &f.host, &j.path_in(&f.dir.path)).unwrap();
        assert_eq!(left.entries.iter().map(|e| e.id).collect::<Vec<_>>(), vec![1, 3]);
        assert!(report(&r, &f.dir, BadFiles::Warn).is_err());
    }

    #[test]
    fn leaves_a_running_writer_alone() {
        let f = Fake::new("running");
        fs::write(f.host.ksm.join("run"), "1").unwrap();
        let mut j = Journal::for_self().unwrap();
        j.entries.push(Entry {
            id: 1,
            change: ksm(&f.host.ksm, &[("run", 0)]),
        });
        j.save(&f.dir.path).unwrap();
        assert!(f.recover().runs.is_empty());
        assert_eq!(f.knob("run"), "1");
        // The same pid with another start time is a reused pid: its journal is recovered.
        j.start_time += 1;
        j.save(&f.dir.path).unwrap();
        let r = f.recover();
        assert_eq!(r.runs[0].done, vec!["ksm run 1→0".to_string()]);
        assert!(journal::list(&f.dir.path).unwrap().is_empty());
    }

    /// Files that are not trustworthy journals (not JSON, a directory, a FIFO, a link, a file
    /// others may write) are each reported, left as they are, and do not keep the valid
    /// journals from being replayed; the FIFO does not block.
    #[test]
    fn bad_files_are_reported_and_the_others_replayed() {
        let f = Fake::new("bad");
        fs::write(f.host.ksm.join("run"), "1").unwrap();
        let d = &f.dir.path;
        fs::write(d.join("1.json"), "{not json").unwrap();
        fs::create_dir(d.join("2.json")).unwrap();
        crate::files::mkfifo(&d.join("3.json"));
        let elsewhere = f.host.dev.join("9.json");
        dead(4_194_401, vec![ksm(&f.host.ksm, &[("run", 0)])])
            .save_at(&elsewhere)
            .unwrap();
        std::os::unix::fs::symlink(&elsewhere, d.join("4.json")).unwrap();
        let open = f.dead_ksm_journal(4_194_402, "5.json");
        fs::set_permissions(&open, fs::Permissions::from_mode(0o666)).unwrap();
        f.dead_ksm_journal(4_194_403, "6.json");
        let r = f.recover();
        let bad: Vec<String> = r.bad.iter().map(ToString::to_string).collect();
        assert_eq!(bad.len(), 5, "{bad:?}");
        for (name, says) in [
            ("1.json", "not a journal"),
            ("2.json", "is a directory, not a regular file"),
            ("3.json", "is a FIFO, not a regular file"),
            ("4.json", "is a symbolic link"),
            ("5.json", "is writable by others (mode 0666)"),
        ] {
            assert!(
                bad.iter().any(|b| b.contains(name) && b.contains(says)),
                "{name}: {says}: {bad:?}"
            );
        }
        assert_eq!(r.runs.len(), 1);
        assert_eq!(r.runs[0].pid, 4_194_403);
        assert_eq!(f.knob("run"), "0");
        // Bad files are left where they were; the replayed journal is gone.
        let left: Vec<_> = journal::list(d).unwrap();
        assert_eq!(left.len(), 5, "{left:?}");
        assert!(report(&r, &f.dir, BadFiles::Warn).is_ok());
        assert!(report(&r, &f.dir, BadFiles::Fail).is_err());
    }

    /// A journal whose changes reach outside the allowed places (traversal out of the KSM
    /// directory or the cgroup mount, a fake zram device) is refused whole: nothing outside
    /// changes, and the files it names keep their content.
    #[test]
    fn crafted_journals_change_nothing_outside() {
        let f = Fake::new("crafted");
        let out = f.host.ksm.parent().unwrap().join("outside");
        fs::create_dir_all(out.join("victim")).unwrap();
        fs::create_dir_all(out.join("zram0")).unwrap();
        for file in ["kn", "cgroup.procs", "zram0/reset"] {
            fs::write(out.join(file), "kept").unwrap();
        }
        let crafted = [
            ksm(&f.host.ksm, &[("../outside/kn", 7)]),
            ksm(&out, &[("run", 7)]),
            Change::Cgroup {
                path: f.host.cgroup.join("../outside/victim"),
                parent: out.clone(),
            },
            Change::Cgroup {
                path: f.host.cgroup.join("rmap-trace-1"),
                parent: out.clone(),
            },
            Change::Zram {
                sys: out.join("zram0"),
                dev: f.host.dev.join("zram0"),
                hot_added: None,
            },
            Change::SubtreeMemory {
                control: out.join("kn"),
            },
        ];
        for (i, c) in crafted.into_iter().enumerate() {
            dead(4_194_410 + i as u32, vec![c]).save(&f.dir.path).unwrap();
        }
        let r = f.recover();
        assert!(r.runs.is_empty(), "{:?}", r.runs);
        assert_eq!(r.bad.len(), 6, "{:?}", r.bad);
        assert!(out.join("victim").is_dir());
        for file in ["kn", "cgroup.procs", "zram0/reset"] {
            assert_eq!(fs::read_to_string(out.join(file)).unwrap(), "kept", "{file}");
        }
    }

    /// The file that was read is the one rewritten or removed, whatever pid it names.
    #[test]
    fn removes_the_journal_it_loaded() {
        let f = Fake::new("renamed");
        fs::write(f.host.ksm.join("run"), "1").unwrap();
        let path = f.dead_ksm_journal(4_194_420, "77.json");
        let r = f.recover();
        assert_eq!(r.runs.len(), 1, "{:?}", r.bad);
        assert!(!path.exists(), "the journal it replayed is still there");
        assert!(f.recover().runs.is_empty(), "replayed twice");
    }
}
