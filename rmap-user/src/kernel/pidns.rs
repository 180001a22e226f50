//! `-p PID` against the kernel's view: the eBPF side compares tgids of the initial pid
//! namespace, and a pid on the command line is one of ours. Inside a child pid namespace our
//! `/proc` shows our namespace's pids only, so the host's pid of a process cannot be found;
//! such a `-p` is refused rather than matching nothing (or another process).
use std::{fs, io};

/// The inode of the initial pid namespace (`PROC_PID_INIT_INO`, fixed by the kernel).
const INIT_PID_NS: &str = "pid:[4026531836]";

/// Why `-p` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PidError {
    /// rmap-trace runs in a child pid namespace.
    #[error(
        "-p {0}: rmap-trace runs in a child pid namespace ({1}), whose pids are not the ones the \
         kernel filter compares: run it in the host's pid namespace (e.g. docker run --pid=host)"
    )]
    ChildNamespace(u32, String),
    /// The benchmark runs in a child pid namespace, where it cannot know its own host pid.
    #[error(
        "the benchmark runs in a child pid namespace ({0}): its walks are filtered in the kernel \
         by its host pid, which it cannot know there; run it in the host's pid namespace"
    )]
    BenchmarkInChild(String),
    /// No process has this pid.
    #[error("-p {0}: no such process")]
    NoProcess(u32),
    /// The pid is a thread's; the filter matches processes.
    #[error("-p {0}: a thread of process {1}; give the process id")]
    Thread(u32, u32),
    /// `/proc/self/ns/pid` could not be read.
    #[error("reading /proc/self/ns/pid: {0}")]
    Unreadable(io::Error),
}

/// Checks that `pid` names a process and means the same to the kernel filter.
pub fn check(pid: u32) -> Result<(), PidError> {
    if let Some(ns) = child_namespace()? {
        return Err(PidError::ChildNamespace(pid, ns));
    }
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return Err(PidError::NoProcess(pid));
    };
    match tgid(&status) {
        Some(t) if t != pid => Err(PidError::Thread(pid, t)),
        _ => Ok(()),
    }
}

/// Checks that the benchmark's in-kernel filter on its own pid can match.
pub fn check_own() -> Result<(), PidError> {
    match child_namespace()? {
        Some(ns) => Err(PidError::BenchmarkInChild(ns)),
        None => Ok(()),
    }
}

/// Our pid namespace (`pid:[INODE]`) when it is not the initial one.
fn child_namespace() -> Result<Option<String>, PidError> {
    namespace_of(fs::read_link("/proc/self/ns/pid"))
}

/// The child namespace named by the link `/proc/self/ns/pid`, if any. A kernel built without
/// `CONFIG_PID_NS` has no such link (`fs/proc/namespaces.c` lists only the configured namespaces'
/// operations) and only the initial pid namespace, like our tinyconfig guest kernel.
fn namespace_of(link: io::Result<std::path::PathBuf>) -> Result<Option<String>, PidError> {
    match link {
        Ok(ns) => {
            let ns = ns.to_string_lossy();
            Ok((ns != INIT_PID_NS).then(|| ns.into_owned()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PidError::Unreadable(e)),
    }
}

/// The `Tgid:` of a `/proc/PID/status`.
fn tgid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tgid_of_status() {
        assert_eq!(
            tgid("Name:\tx\nUmask:\t0022\nState:\tS\nTgid:\t4242\nNgid:\t0\n"),
            Some(4242)
        );
        assert_eq!(tgid("Name:\tx\n"), None);
    }

    #[test]
    fn namespace_links() {
        assert!(matches!(namespace_of(Ok(INIT_PID_NS.into())), Ok(None)));
        assert!(matches!(
            namespace_of(Ok("pid:[4026532201]".into())),
            Ok(Some(ns)) if ns == "pid:[4026532201]"
        ));
        // No CONFIG_PID_NS: no link, one namespace.
        let absent = io::Error::from(io::ErrorKind::NotFound);
        assert!(matches!(namespace_of(Err(absent)), Ok(None)));
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(matches!(namespace_of(Err(denied)), Err(PidError::Unreadable(_))));
    }

    #[test]
    fn our_own_process_passes_and_pid_max_does_not_exist() {
        let in_init = fs::read_link("/proc/self/ns/pid").unwrap().to_string_lossy() == INIT_PID_NS;
        match check(std::process::id()) {
            Ok(()) => assert!(in_init),
            Err(PidError::ChildNamespace(..)) => assert!(!in_init),
            Err(e) => panic!("{e}"),
        }
        if in_init {
            assert!(matches!(check(4_194_304), Err(PidError::NoProcess(_))));
        }
    }
}
