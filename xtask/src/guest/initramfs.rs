//! A newc cpio initramfs, written directly (no cpio tool): busybox, a static rmap-trace, the
//! init script and the command script.
use std::{fs, path::Path};

use anyhow::Context as _;

use crate::debian;

/// Entries of the archive.
#[derive(Default)]
pub struct Archive {
    out: Vec<u8>,
    ino: u32,
}

impl Archive {
    fn header(&mut self, name: &str, mode: u32, size: usize) {
        self.ino += 1;
        let namesize = name.len() + 1;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            size as u32,
            0,
            0,
            0,
            0,
            namesize as u32,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    pub fn dir(&mut self, name: &str) {
        self.header(name, libc::S_IFDIR | 0o755, 0);
    }

    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.header(name, libc::S_IFREG | mode, data.len());
        self.out.extend_from_slice(data);
        self.pad();
    }

    pub fn symlink(&mut self, name: &str, target: &str) {
        self.header(name, libc::S_IFLNK | 0o777, target.len());
        self.out.extend_from_slice(target.as_bytes());
        self.pad();
    }

    /// The tree under `root` as `prefix/...`: directories, files (their modes) and symlinks,
    /// without documentation (`usr/share/{doc,man,info,locale}`).
    pub fn tree(&mut self, prefix: &str, root: &Path) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let mut stack = vec![(prefix.to_string(), root.to_path_buf())];
        while let Some((name, path)) = stack.pop() {
            let meta = fs::symlink_metadata(&path).with_context(|| format!("{}", path.display()))?;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path)?;
                self.symlink(&name, &target.to_string_lossy());
            } else if meta.is_dir() {
                self.dir(&name);
                for e in fs::read_dir(&path)? {
                    let e = e?;
                    let child = format!("{name}/{}", e.file_name().to_string_lossy());
                    if SKIPPED.iter().any(|s| child.ends_with(s)) {
                        continue;
                    }
                    stack.push((child, e.path()));
                }
            } else if meta.is_file() {
                let data = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                self.file(&name, meta.permissions().mode() & 0o7777, &data);
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.header("TRAILER!!!", 0, 0);
        self.out
    }
}

/// What `Archive::tree` leaves out.
const SKIPPED: [&str; 4] = [
    "/usr/share/doc",
    "/usr/share/man",
    "/usr/share/info",
    "/usr/share/locale",
];

/// busybox from Debian's busybox-static package, unpacked in the cache (not installed).
pub fn busybox() -> anyhow::Result<std::path::PathBuf> {
    Ok(debian::cached_tree("busybox-static", "busybox-static")?.join("bin/busybox"))
}

/// What goes into the guest.
pub struct Contents<'a> {
    pub rmap_trace: &'a Path,
    pub cmd: &'a str,
    /// `lib/modules/<release>` of the kernel, for zram.
    pub modules: Option<&'a Path>,
    /// More files: (path in the guest, without the leading /; file on the host).
    pub extra: &'a [(String, std::path::PathBuf)],
    /// Whole trees: (directory in the guest, without the leading /, made with its parents
    /// absent from the fixed layout; directory on the host).
    pub trees: &'a [(String, std::path::PathBuf)],
}

/// Builds the initramfs bytes.
pub fn build(c: &Contents) -> anyhow::Result<Vec<u8>> {
    let mut a = Archive::default();
    for d in [
        "bin",
        "dev",
        "proc",
        "sys",
        "tmp",
        "run",
        "etc",
        "lib",
        "lib/modules",
    ] {
        a.dir(d);
    }
    let busybox = busybox()?;
    a.file(
        "bin/busybox",
        0o755,
        &fs::read(&busybox).with_context(|| format!("reading {}", busybox.display()))?,
    );
    a.file(
        "bin/rmap-trace",
        0o755,
        &fs::read(c.rmap_trace).with_context(|| format!("reading {}", c.rmap_trace.display()))?,
    );
    a.file("init", 0o755, super::script::INIT.as_bytes());
    a.file(
        "cmd.sh",
        0o644,
        format!("{}{}", super::script::PRELUDE, c.cmd).as_bytes(),
    );
    let mut made: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    // Parent directories first: the kernel's unpacker creates no missing ones.
    let mut parents = |a: &mut Archive, to: &str| {
        let mut parent = String::new();
        for part in to
            .rsplit_once('/')
            .map_or("", |(dir, _)| dir)
            .split('/')
            .filter(|p| !p.is_empty())
        {
            parent = if parent.is_empty() {
                part.to_string()
            } else {
                format!("{parent}/{part}")
            };
            if made.insert(parent.clone()) {
                a.dir(&parent);
            }
        }
    };
    for (to, from) in c.extra {
        parents(&mut a, to);
        let data = fs::read(from).with_context(|| format!("reading {}", from.display()))?;
        a.file(to, 0o755, &data);
    }
    for (to, from) in c.trees {
        parents(&mut a, to);
        a.tree(to, from)?;
    }
    if let Some(modules) = c.modules {
        // Only the modules the workloads may need (zram swap), not the whole tree.
        for rel in ["kernel/mm/zsmalloc.ko", "kernel/drivers/block/zram/zram.ko"] {
            let p = modules.join(rel);
            if p.is_file() {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                a.file(&format!("lib/modules/{name}"), 0o644, &fs::read(&p)?);
            }
        }
    }
    Ok(a.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout() {
        let mut a = Archive::default();
        a.dir("bin");
        a.file("bin/x", 0o755, b"hello");
        let out = a.finish();
        assert!(out.starts_with(b"070701"));
        assert_eq!(out.len() % 4, 0);
        // Each entry is a 110-byte header, its name with a NUL and its data, each padded to 4:
        // "bin" 110+4 → 116, "bin/x" 110+6 → 116 and 5 bytes → 8, the trailer 110+11 → 124.
        assert_eq!(out.len(), 116 + 116 + 8 + 124);
        let s = String::from_utf8_lossy(&out);
        assert!(s.contains("bin/x\0"));
        assert!(s.contains("hello"));
        assert!(s.contains("TRAILER!!!"));
        // mode of the file entry.
        assert!(s.contains(&format!("{:08x}", libc::S_IFREG | 0o755)));
    }
}
