//! Host state that a run changes (KSM knobs, the cgroup and `+memory`, zram, swap and its
//! module, a tracefs mount), written down in a journal under [`DIR`] before each change and
//! struck once undone. A run killed with SIGKILL or by the OOM killer cannot undo anything:
//! the next run that changes host state (or `rmap-trace restore`) finds its journal, sees that
//! its writer is gone, and puts every value back before it reads any "original" itself.
pub mod change;
pub mod journal;
#[cfg(test)]
mod test_dir;

use std::{
    path::Path,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

pub use self::change::{Change, UndoError};
use self::journal::{Entry, Journal, JournalError};

/// Where the journals are: a tmpfs, emptied at boot, when the changes are gone anyway (the
/// systemd unit in dist/ has `RuntimeDirectory=rmap-trace`).
pub const DIR: &str = "/run/rmap-trace";

/// This process's journal, made on the first change.
static JOURNAL: Mutex<Option<Journal>> = Mutex::new(None);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A change recorded in the journal, to be undone with [`undo`].
#[derive(Debug)]
pub struct Token(u64);

/// Writes `change` down before it is made; make the change only when this succeeds.
pub fn record(change: Change) -> Result<Token, JournalError> {
    let mut guard = JOURNAL.lock().unwrap_or_else(PoisonError::into_inner);
    let journal = match guard.as_mut() {
        Some(j) => j,
        None => guard.insert(Journal::for_self()?),
    };
    let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    journal.entries.push(Entry { id, change });
    if let Err(e) = journal.save(Path::new(DIR)) {
        journal.entries.pop();
        return Err(e);
    }
    Ok(Token(id))
}

/// Undoes a recorded change and strikes it from the journal; a change whose undo failed stays
/// there for `rmap-trace restore`.
pub fn undo(token: &Token) -> Result<String, Vec<String>> {
    let mut guard = JOURNAL.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(journal) = guard.as_mut() else {
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
    journal.save(Path::new(DIR)).map_err(|e| vec![e.to_string()])?;
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

/// The journals in `dir` whose writers are gone (by `proc_root`): each change undone, newest
/// first, every one tried whatever the others do. Journals of running processes (another
/// rmap-trace, or this one) are left alone.
pub fn recover(dir: &Path, proc_root: &Path) -> Result<Vec<Recovered>, JournalError> {
    let mut out = Vec::new();
    for path in journal::list(dir)? {
        let mut j = Journal::load(&path)?;
        if j.owner_alive(proc_root) {
            continue;
        }
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
        j.save(dir)?;
        out.push(r);
    }
    Ok(out)
}

/// A running process other than this one whose journal holds KSM settings: its "originals"
/// are in force only once it ends, so changing KSM now would save its values as ours.
pub fn live_ksm_owner(dir: &Path, proc_root: &Path) -> Result<Option<u32>, JournalError> {
    for path in journal::list(dir)? {
        let j = Journal::load(&path)?;
        if j.pid != std::process::id()
            && j.owner_alive(proc_root)
            && j.entries.iter().any(|e| matches!(e.change, Change::Ksm { .. }))
        {
            return Ok(Some(j.pid));
        }
    }
    Ok(None)
}

/// Startup of a command that changes host state: puts back what runs that died left changed,
/// one line per run; fails with every error when something could not be put back.
pub fn recover_at_start() -> anyhow::Result<()> {
    let recovered = recover(Path::new(DIR), Path::new("/proc"))?;
    report(&recovered)
}

/// Prints one line per recovered journal; an error naming every failed undo.
pub fn report(recovered: &[Recovered]) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    for r in recovered {
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
    if errors.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "could not restore the host state left by an earlier run ({}); fix it and run `rmap-trace restore` (journals in {DIR})",
            errors.join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::{journal::Entry, test_dir::TestDir, *};

    fn ksm(dir: &Path, knobs: &[(&str, u64)]) -> Change {
        Change::Ksm {
            dir: dir.into(),
            knobs: knobs.iter().map(|(k, v)| ((*k).to_string(), *v)).collect(),
        }
    }

    #[test]
    fn recovers_a_dead_run_collecting_every_error() {
        let state = TestDir::new("state");
        let proc_root = TestDir::new("proc");
        let knobs = TestDir::new("ksm");
        fs::write(knobs.path().join("run"), "1").unwrap();
        fs::write(knobs.path().join("sleep_millisecs"), "0").unwrap();
        let gone = knobs.path().join("missing");
        let j = Journal {
            pid: 4242,
            start_time: 1,
            entries: vec![
                Entry {
                    id: 1,
                    change: ksm(&gone, &[("run", 0)]),
                },
                Entry {
                    id: 2,
                    change: ksm(knobs.path(), &[("sleep_millisecs", 20), ("run", 0)]),
                },
                Entry {
                    id: 3,
                    change: Change::SubtreeMemory {
                        control: gone.join("cgroup.subtree_control"),
                    },
                },
            ],
        };
        j.save(state.path()).unwrap();
        let r = recover(state.path(), proc_root.path()).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].pid, 4242);
        assert_eq!(r[0].errors.len(), 2, "{:?}", r[0].errors);
        assert_eq!(
            r[0].done,
            vec!["ksm sleep_millisecs 0→20, ksm run 1→0".to_string()]
        );
        assert_eq!(
            fs::read_to_string(knobs.path().join("sleep_millisecs")).unwrap(),
            "20"
        );
        // The failed entries stay for `rmap-trace restore`; the undone one is struck.
        let left = Journal::load(&j.path_in(state.path())).unwrap();
        assert_eq!(left.entries.iter().map(|e| e.id).collect::<Vec<_>>(), vec![1, 3]);
        assert!(report(&r).is_err());
    }

    #[test]
    fn leaves_a_running_writer_alone() {
        let state = TestDir::new("state");
        let knobs = TestDir::new("ksm");
        fs::write(knobs.path().join("run"), "1").unwrap();
        let mut j = Journal::for_self().unwrap();
        j.pid = std::process::id();
        j.entries.push(Entry {
            id: 1,
            change: ksm(knobs.path(), &[("run", 0)]),
        });
        j.save(state.path()).unwrap();
        assert!(recover(state.path(), Path::new("/proc")).unwrap().is_empty());
        assert_eq!(fs::read_to_string(knobs.path().join("run")).unwrap(), "1");
        // The same pid with another start time is a reused pid: its journal is recovered.
        j.start_time += 1;
        j.save(state.path()).unwrap();
        let r = recover(state.path(), Path::new("/proc")).unwrap();
        assert_eq!(r[0].done, vec!["ksm run 1→0".to_string()]);
        assert!(journal::list(state.path()).unwrap().is_empty());
    }
}
