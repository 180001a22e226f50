//! The locks of a journal directory, POSIX record locks on its file [`LOCK_FILE`]: held by a
//! process, released when it ends however it ends (SIGKILL too), not inherited by the children
//! it forks, and their holder's pid is known to whoever finds them taken. Byte 0 is KSM's: a
//! run holds it from before it reads KSM's settings until it has put them back, so one run at
//! a time owns them. Byte 1 is held while the journals of dead runs are replayed, so that two
//! replays never interleave.
use std::{
    fs::{File, OpenOptions},
    io,
    os::{
        fd::AsRawFd as _,
        unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    },
    path::PathBuf,
    sync::{Mutex, PoisonError},
};

use super::{dir::JournalDir, error::JournalError};
use crate::printable::printable;

/// The lock file's name in the journal directory.
pub const LOCK_FILE: &str = "lock";

const KSM_BYTE: i64 = 0;
const RECOVERY_BYTE: i64 = 1;

/// The lock file of each directory used, opened once and never closed: closing any
/// descriptor of a file drops every POSIX lock the process holds on it.
static FILES: Mutex<Vec<(PathBuf, File)>> = Mutex::new(Vec::new());

fn lock_fd(dir: &JournalDir) -> Result<(i32, String), JournalError> {
    let path = dir.path.join(LOCK_FILE);
    let shown = printable(&path.display().to_string()).into_owned();
    let mut files = FILES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, f)) = files.iter().find(|(p, _)| *p == path) {
        return Ok((f.as_raw_fd(), shown));
    }
    dir.create()?;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| JournalError::io("opening", &path, e))?;
    let m = f.metadata().map_err(|e| JournalError::io("reading", &path, e))?;
    let why = if !m.is_file() {
        Some("not a regular file".to_string())
    } else if m.uid() != dir.owner || m.mode() & 0o022 != 0 {
        Some(format!("uid {} mode {:04o}", m.uid(), m.mode() & 0o7777))
    } else {
        None
    };
    if let Some(why) = why {
        return Err(JournalError::BadLock { path: shown, why });
    }
    let fd = f.as_raw_fd();
    files.push((path, f));
    Ok((fd, shown))
}

fn flock(kind: i32, byte: i64) -> libc::flock {
    libc::flock {
        l_type: kind as i16,
        l_whence: libc::SEEK_SET as i16,
        l_start: byte,
        l_len: 1,
        l_pid: 0,
    }
}

/// fcntl with a lock description, retried when a signal interrupts it.
fn fcntl(fd: i32, cmd: i32, fl: &mut libc::flock) -> io::Result<()> {
    loop {
        // SAFETY: `fd` is an open descriptor owned by FILES; `fl` is a valid flock for the call.
        if unsafe { libc::fcntl(fd, cmd, &raw mut *fl) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A held lock byte, released on drop.
#[derive(Debug)]
pub struct Held {
    fd: i32,
    byte: i64,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Err(e) = fcntl(self.fd, libc::F_SETLK, &mut flock(libc::F_UNLCK, self.byte)) {
            log::warn!("releasing a journal lock: {e}");
        }
    }
}

/// Takes KSM's lock of `dir`, or says who holds it.
pub fn ksm(dir: &JournalDir) -> Result<Held, JournalError> {
    let (fd, path) = lock_fd(dir)?;
    let err = |error| JournalError::Lock {
        path: path.clone(),
        error,
    };
    // A holder that lets go between the two calls is tried again.
    for _ in 0..10 {
        let mut fl = flock(libc::F_WRLCK, KSM_BYTE);
        match fcntl(fd, libc::F_SETLK, &mut fl) {
            Ok(()) => return Ok(Held { fd, byte: KSM_BYTE }),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => {}
            Err(e) => return Err(err(e)),
        }
        fcntl(fd, libc::F_GETLK, &mut fl).map_err(err)?;
        if fl.l_type != libc::F_UNLCK as i16 {
            let name = std::fs::read_to_string(format!("/proc/{}/comm", fl.l_pid))
                .map_or_else(|_| "gone".to_string(), |c| printable(c.trim_end()).into_owned());
            return Err(JournalError::KsmBusy { pid: fl.l_pid, name });
        }
    }
    Err(err(io::ErrorKind::WouldBlock.into()))
}

/// Waits for the replay lock of `dir` and holds it.
pub fn recovery(dir: &JournalDir) -> Result<Held, JournalError> {
    let (fd, path) = lock_fd(dir)?;
    fcntl(fd, libc::F_SETLKW, &mut flock(libc::F_WRLCK, RECOVERY_BYTE))
        .map_err(|error| JournalError::Lock { path, error })?;
    Ok(Held {
        fd,
        byte: RECOVERY_BYTE,
    })
}

#[cfg(test)]
mod tests {
    use std::{
        io::{BufRead as _, BufReader, Lines, Read as _},
        path::Path,
        process::{Child, ChildStdout, Command, Stdio},
    };

    use super::*;
    use crate::host_state::{dir::euid, test_dir::TestDir};

    const HOLDER_ENV: &str = "RMAP_TRACE_TEST_LOCK_HOLDER";

    fn dir(path: &Path) -> JournalDir {
        JournalDir {
            path: path.into(),
            owner: euid(),
        }
    }

    /// Run by `other_processes_are_refused_until_the_holder_ends` in a child process: takes
    /// KSM's lock, says so, and holds it until its stdin closes.
    #[test]
    #[ignore = "a helper process of another test"]
    fn holder() {
        let Some(path) = std::env::var_os(HOLDER_ENV) else {
            return;
        };
        let _held = ksm(&dir(Path::new(&path))).unwrap();
        println!("held by {}", std::process::id());
        let mut sink = Vec::new();
        std::io::stdin().read_to_end(&mut sink).unwrap();
    }

    /// The holder, once it holds the lock, and its output (kept open until it has ended).
    #[expect(clippy::zombie_processes, reason = "the caller waits for it")]
    fn spawn_holder(path: &Path) -> (Child, Lines<BufReader<ChildStdout>>) {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "host_state::lock::tests::holder",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .env(HOLDER_ENV, path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        for line in out.by_ref() {
            if line.unwrap().starts_with("held by") {
                return (child, out);
            }
        }
        panic!("the holder ended without taking the lock");
    }

    /// A second process is refused KSM's lock with the holder's pid; the lock is free again
    /// once the holder ends, by exit or by SIGKILL.
    #[test]
    fn other_processes_are_refused_until_the_holder_ends() {
        let t = TestDir::new("lock");
        let d = dir(t.path());
        for kill in [false, true] {
            let (mut child, out) = spawn_holder(t.path());
            match ksm(&d) {
                Err(JournalError::KsmBusy { pid, .. }) => assert_eq!(pid as u32, child.id()),
                other => panic!("taken while another process holds it: {other:?}"),
            }
            // The replay lock is another byte: not held by the KSM owner.
            drop(recovery(&d).unwrap());
            if kill {
                child.kill().unwrap();
            } else {
                drop(child.stdin.take());
            }
            child.wait().unwrap();
            out.for_each(drop);
            drop(ksm(&d).unwrap());
        }
    }

    #[test]
    fn refuses_a_lock_file_others_may_write() {
        use std::os::unix::fs::PermissionsExt as _;
        let t = TestDir::new("lockmode");
        let p = t.path().join(LOCK_FILE);
        std::fs::write(&p, "").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = ksm(&dir(t.path())).unwrap_err().to_string();
        assert!(e.contains("mode 0666"), "{e}");
    }
}
