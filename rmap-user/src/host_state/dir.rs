//! Where journals live and whose they are: root's in [`ROOT_DIR`], a directory of root's that
//! nobody else can write; an unprivileged process's (the systemd unit's daemon) in its own
//! runtime directory (`$RUNTIME_DIRECTORY`, which systemd makes for the unit). A process only
//! ever reads the journals of its own user, so an unprivileged daemon neither replays root's
//! nor can plant what root replays.
use std::{
    fs::{self, File, OpenOptions},
    io,
    os::unix::{
        ffi::OsStrExt as _,
        fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _},
    },
    path::{Path, PathBuf},
};

use super::error::JournalError;

/// Root's journals: a tmpfs, emptied at boot, when the changes are gone anyway.
pub const ROOT_DIR: &str = "/run/rmap-trace";

/// Mode bits that let someone other than the owner write.
const OTHERS_WRITE: u32 = 0o022;

/// A journal directory and the user whose files alone are read from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalDir {
    pub path: PathBuf,
    pub owner: u32,
}

/// This process's effective user.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

impl JournalDir {
    /// The directory of this process's user: root's, or `$RUNTIME_DIRECTORY` (its first entry)
    /// for another user; None for an unprivileged user without one, who has no journals.
    pub fn current() -> Option<Self> {
        Self::for_user(euid(), std::env::var_os("RUNTIME_DIRECTORY").as_deref())
    }

    /// The directory of user `owner` given its `$RUNTIME_DIRECTORY` (a colon-separated list).
    pub fn for_user(owner: u32, runtime_directory: Option<&std::ffi::OsStr>) -> Option<Self> {
        if owner == 0 {
            return Some(Self {
                path: ROOT_DIR.into(),
                owner,
            });
        }
        let first = runtime_directory?
            .as_encoded_bytes()
            .split(|&b| b == b':')
            .next()
            .filter(|p| p.starts_with(b"/"))?;
        Some(Self {
            path: PathBuf::from(std::ffi::OsStr::from_bytes(first)),
            owner,
        })
    }

    /// Whether the directory exists; an error when it exists but is not safe to use (see
    /// [`Self::check`]).
    pub fn exists(&self) -> Result<bool, JournalError> {
        match fs::symlink_metadata(&self.path) {
            Ok(m) => self.check(&m).map(|()| true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(JournalError::io("reading", &self.path, e)),
        }
    }

    /// Makes the directory (mode 0700) when it is missing; checks it either way.
    pub fn create(&self) -> Result<(), JournalError> {
        if self.exists()? {
            return Ok(());
        }
        match fs::DirBuilder::new().mode(0o700).create(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(JournalError::io("creating", &self.path, e));
            }
            _ => {}
        }
        if self.exists()? {
            Ok(())
        } else {
            Err(JournalError::io(
                "creating",
                &self.path,
                io::ErrorKind::NotFound.into(),
            ))
        }
    }

    /// A real directory (not a link to one) of the owner that no one else may write.
    fn check(&self, m: &fs::Metadata) -> Result<(), JournalError> {
        let why = if m.file_type().is_symlink() {
            "is a symbolic link".to_string()
        } else if !m.is_dir() {
            "is not a directory".to_string()
        } else if m.uid() != self.owner {
            format!("is owned by uid {}, not {}", m.uid(), self.owner)
        } else if m.mode() & OTHERS_WRITE != 0 {
            format!("is writable by others (mode {:04o})", m.mode() & 0o7777)
        } else {
            return Ok(());
        };
        Err(JournalError::UnsafeDir {
            path: self.path.display().to_string(),
            why,
        })
    }

    /// Opens a journal file for reading without following a link or blocking on a FIFO, and
    /// checks it: a regular file of the owner, writable by no one else, at most `max` bytes.
    pub fn open_journal(&self, path: &Path, max: u64) -> Result<File, String> {
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => "is a symbolic link".to_string(),
                _ => e.to_string(),
            })?;
        let m = f.metadata().map_err(|e| e.to_string())?;
        if !m.is_file() {
            return Err(format!(
                "is a {}, not a regular file",
                crate::files::kind(m.file_type())
            ));
        }
        if m.uid() != self.owner {
            return Err(format!("is owned by uid {}, not {}", m.uid(), self.owner));
        }
        if m.mode() & OTHERS_WRITE != 0 {
            return Err(format!("is writable by others (mode {:04o})", m.mode() & 0o7777));
        }
        if m.len() > max {
            return Err(format!("is {} bytes, more than a journal's {max}", m.len()));
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use std::{ffi::OsStr, os::unix::fs::PermissionsExt as _};

    use super::*;
    use crate::host_state::test_dir::TestDir;

    fn dir(path: &Path) -> JournalDir {
        JournalDir {
            path: path.into(),
            owner: euid(),
        }
    }

    #[test]
    fn makes_a_private_directory_and_refuses_an_unsafe_one() {
        let t = TestDir::new("dir");
        let d = dir(&t.path().join("journals"));
        assert!(!d.exists().unwrap());
        d.create().unwrap();
        let mode = fs::metadata(&d.path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        fs::set_permissions(&d.path, fs::Permissions::from_mode(0o777)).unwrap();
        let e = d.exists().unwrap_err().to_string();
        assert!(e.contains("writable by others (mode 0777)"), "{e}");
        let other = JournalDir {
            owner: euid() + 1,
            ..dir(t.path())
        };
        let e = other.exists().unwrap_err().to_string();
        assert!(e.contains(&format!("is owned by uid {}", euid())), "{e}");
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&d.path, &link).unwrap();
        let e = dir(&link).create().unwrap_err().to_string();
        assert!(e.contains("is a symbolic link"), "{e}");
    }

    /// Root's journals are in root's directory whatever the environment says; another user's
    /// in its own runtime directory, or nowhere.
    #[test]
    fn each_user_has_its_own_directory() {
        let daemon = Some(OsStr::new("/run/rmap-trace-daemon:/run/other"));
        assert_eq!(JournalDir::for_user(0, daemon).unwrap().path, Path::new(ROOT_DIR));
        let d = JournalDir::for_user(61_234, daemon).unwrap();
        assert_eq!(
            (d.path.as_path(), d.owner),
            (Path::new("/run/rmap-trace-daemon"), 61_234)
        );
        assert_eq!(JournalDir::for_user(1000, None), None);
        assert_eq!(JournalDir::for_user(1000, Some(OsStr::new("relative"))), None);
    }

    /// The systemd unit's daemon (an unprivileged user of its own) has a runtime directory
    /// that is not root's journal directory: it can neither plant journals there nor have
    /// `systemctl stop` remove them.
    #[test]
    fn the_daemon_unit_keeps_its_state_apart_from_roots() {
        let unit = include_str!("../../../dist/rmap-trace.service");
        let value = |key: &str| {
            unit.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::trim)
        };
        assert_eq!(value("DynamicUser"), Some("yes"));
        let runtime = value("RuntimeDirectory").unwrap_or_default();
        for d in runtime.split_whitespace() {
            assert_ne!(
                Path::new("/run").join(d),
                Path::new(ROOT_DIR),
                "RuntimeDirectory={runtime}"
            );
        }
    }
}
