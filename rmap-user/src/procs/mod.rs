//! Processes as walk tables key them, bounded: a process is its tgid and its start time, so
//! that a pid the kernel hands to a new process does not merge that process into the old
//! one's row; the per-process table keeps the top processes by walk count and folds the rest
//! into an "other" row ([`table`]); names come from a bounded cache filled off the event path
//! ([`names`]).
pub mod names;
pub mod table;

/// The process a walk belongs to, as known when the walk is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Process<'a> {
    /// Start time of the process (`/proc/<tgid>/stat` field 22, clock ticks after boot); 0
    /// while not yet read or when the process had exited before it could be.
    pub start: u64,
    /// Its name (`comm` of the thread group leader), or the walking thread's comm meanwhile.
    pub name: &'a str,
}

impl<'a> Process<'a> {
    /// A process known by name only (tests, and walks whose process cannot be looked up).
    pub const fn named(name: &'a str) -> Self {
        Self { start: 0, name }
    }
}

/// A process's identity in the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcKey {
    pub tgid: u32,
    /// [`Process::start`].
    pub start: u64,
}
