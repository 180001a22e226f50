//! Files named on the command line or found on disk, which a root process must not trust: the
//! kind of a file that is not a regular one, in words; the kernel interfaces (procfs, sysfs,
//! cgroupfs, debugfs, tracefs and their like) whose "files" are knobs, not storage; and opening
//! an input so that a FIFO cannot block and a device cannot be read.
use std::{
    fs::{self, File, OpenOptions},
    io,
    os::{
        fd::AsRawFd as _,
        unix::fs::{FileTypeExt as _, OpenOptionsExt as _},
    },
    path::Path,
};

/// File systems that are kernel interfaces, by `statfs` magic.
const KERNEL_FS: [(libc::c_long, &str); 14] = [
    (libc::PROC_SUPER_MAGIC, "procfs"),
    (libc::SYSFS_MAGIC, "sysfs"),
    (libc::CGROUP_SUPER_MAGIC, "cgroupfs"),
    (libc::CGROUP2_SUPER_MAGIC, "cgroup2fs"),
    (libc::DEBUGFS_MAGIC, "debugfs"),
    (libc::TRACEFS_MAGIC, "tracefs"),
    (libc::DEVPTS_SUPER_MAGIC, "devpts"),
    (libc::BPF_FS_MAGIC, "bpffs"),
    (libc::SECURITYFS_MAGIC, "securityfs"),
    (libc::SELINUX_MAGIC, "selinuxfs"),
    (libc::NSFS_MAGIC, "nsfs"),
    (0x6265_6570, "configfs"),
    (0xde5e_81e4, "efivarfs"),
    (0x6165_676c, "pstore"),
];

fn kernel_fs_of(st: &libc::statfs) -> Option<&'static str> {
    KERNEL_FS
        .iter()
        .find(|(magic, _)| *magic == st.f_type)
        .map(|(_, name)| *name)
}

/// The kernel interface `path` (which exists) is on, if it is on one.
pub fn kernel_fs(path: &Path) -> io::Result<Option<&'static str>> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: an all-zero statfs is a valid value of this plain C struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` writable, both live for the call.
    if unsafe { libc::statfs(c.as_ptr(), &raw mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(kernel_fs_of(&st))
}

/// The kernel interface the open file `f` is on, if it is on one.
pub fn kernel_fs_of_file(f: &File) -> io::Result<Option<&'static str>> {
    // SAFETY: an all-zero statfs is a valid value of this plain C struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `f` is an open descriptor and `st` writable for the call.
    if unsafe { libc::fstatfs(f.as_raw_fd(), &raw mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(kernel_fs_of(&st))
}

/// The kind of a file that is not a regular one, in words.
pub fn kind(t: fs::FileType) -> &'static str {
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() || t.is_char_device() {
        "device"
    } else if t.is_symlink() {
        "symbolic link"
    } else {
        "special file"
    }
}

/// Why an input is not read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The path could not be opened or examined.
    #[error("{0}")]
    Io(io::Error),
    /// The path is not a regular file (a FIFO would block, a device never ends).
    #[error("is a {0}, not a regular file")]
    NotRegular(&'static str),
}

/// Opens a regular file for reading, without blocking on a FIFO (`O_NONBLOCK`, which a regular
/// file ignores) and without reading anything else.
pub fn open_input(path: &Path) -> Result<File, InputError> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(InputError::Io)?;
    let t = f.metadata().map_err(InputError::Io)?.file_type();
    if t.is_file() {
        Ok(f)
    } else {
        Err(InputError::NotRegular(kind(t)))
    }
}

/// A FIFO at `path`, for tests of what must not block on one.
#[cfg(test)]
pub(crate) fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that lives for the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_regular_files_only_and_never_blocks() {
        let d = std::env::temp_dir().join(format!("rmap-files-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        let fifo = d.join("fifo");
        mkfifo(&fifo);
        let said = |p: &Path| open_input(p).map(drop).map_err(|e| e.to_string());
        assert_eq!(said(&fifo), Err("is a FIFO, not a regular file".into()));
        assert_eq!(said(&d), Err("is a directory, not a regular file".into()));
        assert_eq!(
            said(Path::new("/dev/zero")),
            Err("is a device, not a regular file".into())
        );
        fs::write(d.join("f"), "x").unwrap();
        assert_eq!(said(&d.join("f")), Ok(()));
        assert_eq!(kernel_fs(&d).unwrap(), None);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn knows_kernel_interfaces() {
        assert_eq!(
            kernel_fs(Path::new("/proc/sys/kernel/core_pattern")).unwrap(),
            Some("procfs")
        );
        assert_eq!(kernel_fs(Path::new("/sys/kernel")).unwrap(), Some("sysfs"));
        let f = File::open("/proc/self/status").unwrap();
        assert_eq!(kernel_fs_of_file(&f).unwrap(), Some("procfs"));
    }
}
