//! The errors of the journal directory, its files and its locks ([`JournalError`]).
use std::{io, path::Path};

use crate::printable::printable;

/// Errors of the journal files.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A journal file or its directory could not be read, written or synced.
    #[error("{what} {path}: {error}")]
    Io {
        what: &'static str,
        path: String,
        error: io::Error,
    },
    /// The journal directory is not one only its owner can write.
    #[error("the journal directory {path} {why}: journals there are not trusted")]
    UnsafeDir { path: String, why: String },
    /// A journal file that is not read: not a safe file, not a journal, or naming a change
    /// this program does not make.
    #[error("{path}: {why}")]
    Bad { path: String, why: String },
    /// A journal could not be encoded (never expected).
    #[error("encoding the journal {path}: {error}")]
    Encode { path: String, error: serde_json::Error },
    /// This process's start time could not be read from /proc.
    #[error("reading the start time of pid {0} from /proc")]
    StartTime(u32),
    /// The lock file is not a private regular file of the directory's owner.
    #[error("{path}: {why}: not used as a lock")]
    BadLock { path: String, why: String },
    /// fcntl on the lock file failed.
    #[error("locking {path}: {error}")]
    Lock { path: String, error: io::Error },
    /// Another process holds KSM's lock.
    #[error("another rmap-trace (pid {pid}, {name}) is changing KSM's settings: run again when it has ended")]
    KsmBusy { pid: i32, name: String },
    /// An unprivileged process without a runtime directory of its own has nowhere to write.
    #[error(
        "no journal directory for uid {0}: rmap-trace changes host state as root (journals in /run/rmap-trace) or, unprivileged, in $RUNTIME_DIRECTORY"
    )]
    NoDir(u32),
}

impl JournalError {
    pub(super) fn io(what: &'static str, path: &Path, error: io::Error) -> Self {
        Self::Io {
            what,
            path: printable(&path.display().to_string()).into_owned(),
            error,
        }
    }
}
