//! Output files (`--json`, `--csv`, `--hlog`, `--plot`, `probe --json`, `plot -o`). A path is
//! checked when the command line is parsed, and opened only once tracing is attached, so that a
//! run that fails to start leaves an old file as it was. As root, a path is never followed
//! through a symbolic link (`O_NOFOLLOW`: a link could point at any file of the host) and must
//! be, or become, a regular file (a FIFO would block the run, a device would be written into),
//! off the kernel's interfaces (procfs, sysfs, cgroupfs, debugfs, tracefs: their files are
//! knobs such as `/proc/sys/kernel/core_pattern`), and not read-only (mode 0444 says "keep").
//! Whole documents go to a temporary file in the same directory, renamed over the path: a
//! reader or a crash sees the old file or the new one, never half of one; the new file keeps
//! the mode and owner of the one it replaces.
use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write as _},
    os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use serde::Serialize;

use crate::files;

/// Why an output path cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The path is a symbolic link, which outputs never follow.
    #[error("{0}: is a symbolic link (outputs never follow links: give the file's own path)")]
    Symlink(PathBuf),
    /// The path exists and is not a regular file.
    #[error("{0}: is a {1}, not a regular file")]
    NotRegular(PathBuf, &'static str),
    /// The directory the file would go into does not exist.
    #[error("{0}: its directory does not exist")]
    NoDirectory(PathBuf),
    /// The path has no file name (`/`, `..`).
    #[error("{0}: not a file name")]
    NoFileName(PathBuf),
    /// The path is on a kernel interface, whose files are knobs.
    #[error("{0}: is on {1}, a kernel interface, not a place for an output file")]
    KernelFs(PathBuf, &'static str),
    /// The file exists and nobody may write it: it is meant to be kept.
    #[error("{0}: is read-only (mode {1:04o}): make it writable or remove it first")]
    ReadOnly(PathBuf, u32),
    /// A system call on the path failed.
    #[error("{path}: {error}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What failed.
        error: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OutputError + '_ {
    move |error| OutputError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Refuses `at` (the path or, for a new file, its directory) when it is on a kernel interface.
fn not_kernel_fs(path: &Path, at: &Path) -> Result<(), OutputError> {
    match files::kernel_fs(at).map_err(io_err(path))? {
        Some(fs) => Err(OutputError::KernelFs(path.to_path_buf(), fs)),
        None => Ok(()),
    }
}

/// Checks that `path` can be an output: absent with an existing directory, or a writable
/// regular file, never a symbolic link, never on a kernel interface.
pub fn check(path: &Path) -> Result<(), OutputError> {
    if path.file_name().is_none() {
        return Err(OutputError::NoFileName(path.to_path_buf()));
    }
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(OutputError::Symlink(path.to_path_buf())),
        Ok(m) if !m.file_type().is_file() => Err(OutputError::NotRegular(
            path.to_path_buf(),
            files::kind(m.file_type()),
        )),
        Ok(m) => {
            not_kernel_fs(path, path)?;
            if m.mode() & 0o222 == 0 {
                return Err(OutputError::ReadOnly(path.to_path_buf(), m.mode() & 0o7777));
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if directory(path).is_dir() {
                not_kernel_fs(path, directory(path))
            } else {
                Err(OutputError::NoDirectory(path.to_path_buf()))
            }
        }
        Err(e) => Err(io_err(path)(e)),
    }
}

/// The clap value parser of an output path.
pub fn parse(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    check(&path).map_err(|e| e.to_string())?;
    Ok(path)
}

fn directory(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Opens `path` for writing from its start (created or truncated), refusing a symbolic link
/// and anything that is not a regular file.
pub fn create(path: &Path) -> Result<File, OutputError> {
    check(path)?;
    // Checked again on the open file, against a swap since: O_NONBLOCK so that a FIFO does not
    // wait for a reader before it is refused.
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| refused(path, e))?;
    let t = file.metadata().map_err(io_err(path))?.file_type();
    if !t.is_file() {
        return Err(OutputError::NotRegular(path.to_path_buf(), files::kind(t)));
    }
    if let Some(fs) = files::kernel_fs_of_file(&file).map_err(io_err(path))? {
        return Err(OutputError::KernelFs(path.to_path_buf(), fs));
    }
    file.set_len(0).map_err(io_err(path))?;
    Ok(file)
}

/// Gives the new file `f` the mode of the file `old` it replaces, and its owner when that is
/// another (a process that may not give files away keeps its own, with a warning).
fn keep_mode_and_owner(f: &File, old: &fs::Metadata) -> io::Result<()> {
    f.set_permissions(fs::Permissions::from_mode(old.mode() & 0o777))?;
    let new = f.metadata()?;
    if (new.uid(), new.gid()) != (old.uid(), old.gid())
        && let Err(e) = std::os::unix::fs::fchown(f, Some(old.uid()), Some(old.gid()))
    {
        log::warn!(
            "keeping the owner {}:{} of the file replaced: {e}",
            old.uid(),
            old.gid()
        );
    }
    Ok(())
}

/// ELOOP from `O_NOFOLLOW` means a symbolic link.
fn refused(path: &Path, e: io::Error) -> OutputError {
    if e.raw_os_error() == Some(libc::ELOOP) {
        OutputError::Symlink(path.to_path_buf())
    } else {
        io_err(path)(e)
    }
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    check(path)?;
    let name = path
        .file_name()
        .ok_or_else(|| OutputError::NoFileName(path.to_path_buf()))?;
    let tmp = directory(path).join(format!(
        ".{}.rmap-trace-{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        if let Ok(old) = fs::symlink_metadata(path) {
            keep_mode_and_owner(&f, &old)?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    written.map_err(|e| {
        if let Err(rm) = fs::remove_file(&tmp)
            && rm.kind() != io::ErrorKind::NotFound
        {
            log::warn!("removing {}: {rm}", tmp.display());
        }
        io_err(path)(e)
    })
}

/// Writes `doc` as pretty JSON to `path`, replacing it whole (temporary file, then rename).
pub fn write_json(path: &Path, doc: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(doc).context("encoding the JSON document")?;
    write_atomic(path, text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Self {
            let d = std::env::temp_dir().join(format!("rmap-output-{name}-{}", std::process::id()));
            fs::create_dir_all(&d).unwrap();
            Self(d)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            fs::remove_dir_all(&self.0).unwrap();
        }
    }

    #[test]
    fn refuses_links_and_special_files() {
        let d = Dir::new("refuse");
        let target = d.0.join("target");
        fs::write(&target, "kept").unwrap();
        let link = d.0.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let fifo = d.0.join("fifo");
        crate::files::mkfifo(&fifo);
        assert!(matches!(check(&link), Err(OutputError::Symlink(_))));
        assert!(matches!(create(&link), Err(OutputError::Symlink(_))));
        assert!(matches!(write_atomic(&link, b"x"), Err(OutputError::Symlink(_))));
        assert!(matches!(check(&fifo), Err(OutputError::NotRegular(_, "FIFO"))));
        assert!(matches!(create(&fifo), Err(OutputError::NotRegular(_, "FIFO"))));
        assert!(matches!(
            check(&d.0),
            Err(OutputError::NotRegular(_, "directory"))
        ));
        assert!(matches!(
            check(Path::new("/dev/null")),
            Err(OutputError::NotRegular(_, "device"))
        ));
        assert!(matches!(
            create(Path::new("/dev/null")),
            Err(OutputError::NotRegular(_, "device"))
        ));
        assert!(matches!(
            check(&d.0.join("no/such")),
            Err(OutputError::NoDirectory(_))
        ));
        assert_eq!(fs::read_to_string(&target).unwrap(), "kept");
    }

    /// Files of procfs and sysfs (knobs, process memory) and new files in their directories
    /// are refused, and nothing is written to them.
    #[test]
    fn refuses_kernel_interfaces() {
        let pattern = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
        for (p, on) in [
            ("/proc/sys/kernel/core_pattern", "procfs"),
            ("/proc/self/mem", "procfs"),
            ("/proc/new.csv", "procfs"),
            ("/sys/kernel/new.csv", "sysfs"),
        ] {
            let p = Path::new(p);
            assert!(
                matches!(check(p), Err(OutputError::KernelFs(_, fs)) if fs == on),
                "{}: {:?}",
                p.display(),
                check(p)
            );
            assert!(create(p).is_err(), "{}", p.display());
            assert!(write_atomic(p, b"|/tmp/x").is_err(), "{}", p.display());
        }
        assert_eq!(
            fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
            pattern
        );
    }

    /// A read-only file is kept; a writable one is replaced with its mode kept.
    #[test]
    fn keeps_read_only_files_and_the_mode_of_replaced_ones() {
        let d = Dir::new("modes");
        let kept = d.0.join("kept.svg");
        fs::write(&kept, "kept").unwrap();
        fs::set_permissions(&kept, fs::Permissions::from_mode(0o444)).unwrap();
        let e = check(&kept).unwrap_err().to_string();
        assert!(
            e.ends_with("kept.svg: is read-only (mode 0444): make it writable or remove it first"),
            "{e}"
        );
        assert!(create(&kept).is_err());
        assert!(write_atomic(&kept, b"new").is_err());
        assert_eq!(fs::read_to_string(&kept).unwrap(), "kept");
        let private = d.0.join("private.svg");
        fs::write(&private, "old").unwrap();
        fs::set_permissions(&private, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&private, b"new").unwrap();
        assert_eq!(fs::read_to_string(&private).unwrap(), "new");
        assert_eq!(fs::metadata(&private).unwrap().mode() & 0o777, 0o640);
    }

    #[test]
    fn creates_truncates_and_replaces_whole() {
        let d = Dir::new("write");
        let p = d.0.join("out.json");
        check(&p).unwrap();
        fs::write(&p, "an older and longer document").unwrap();
        let mut f = create(&p).unwrap();
        f.write_all(b"new").unwrap();
        drop(f);
        assert_eq!(fs::read_to_string(&p).unwrap(), "new");
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
        let before = inode(&p);
        write_atomic(&p, b"{\"a\": 1}").unwrap();
        assert_ne!(inode(&p), before, "replaced by a rename, not rewritten in place");
        assert_eq!(fs::read_to_string(&p).unwrap(), "{\"a\": 1}");
        let left: Vec<_> = fs::read_dir(&d.0)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [std::ffi::OsString::from("out.json")]);
    }
}
