//! The memory region of a workload, unmapped (and its file removed) on drop.
use std::{fs::File, io, os::fd::AsRawFd as _};

use anyhow::Context as _;

pub const PAGE: usize = 4096;

pub struct Region {
    base: *mut u8,
    pages: usize,
    /// Kept open only while mapping; the file itself is unlinked at once.
    _file: Option<File>,
}

fn check(rc: i32, what: &str) -> anyhow::Result<()> {
    if rc != 0 {
        return Err(io::Error::last_os_error()).context(what.to_string());
    }
    Ok(())
}

impl Region {
    /// Private anonymous pages: identical content for KSM, distinct content otherwise.
    pub fn anon(pages: usize, identical: bool) -> anyhow::Result<Self> {
        // SAFETY: fresh anonymous mapping.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                pages * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error()).context("mmap of the anonymous region");
        }
        let r = Self {
            base: base.cast(),
            pages,
            _file: None,
        };
        // Base pages only: a THP would be split (with its own rmap walks) when the region is
        // split or merged, mixing unrelated walks into the measurement.
        // SAFETY: the whole mapping.
        check(
            unsafe { libc::madvise(base, pages * PAGE, libc::MADV_NOHUGEPAGE) },
            "madvise(MADV_NOHUGEPAGE)",
        )?;
        r.fill(identical);
        Ok(r)
    }

    /// Shared file pages, on a temporary file unlinked right after creation.
    pub fn file(pages: usize) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("rmap-trace-{}.data", std::process::id()));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        std::fs::remove_file(&path).with_context(|| format!("unlinking {}", path.display()))?;
        file.set_len((pages * PAGE) as u64)
            .context("sizing the temporary file")?;
        // SAFETY: mapping an open file of the right size.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                pages * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error()).context("mmap of the file region");
        }
        let r = Self {
            base: base.cast(),
            pages,
            _file: Some(file),
        };
        r.fill(false);
        Ok(r)
    }

    fn fill(&self, identical: bool) {
        for p in 0..self.pages {
            // SAFETY: inside the mapping.
            unsafe {
                let page = std::slice::from_raw_parts_mut(self.base.add(p * PAGE), PAGE);
                page.fill(0xaa);
                if !identical {
                    page[..8].copy_from_slice(&(p as u64 + 1).to_ne_bytes());
                }
            }
        }
    }

    pub fn addr(&self, page: usize) -> *mut u8 {
        // SAFETY: callers pass page < pages.
        unsafe { self.base.add(page * PAGE) }
    }

    pub fn pages(&self) -> usize {
        self.pages
    }

    /// mprotect(PROT_READ) on every other page: one VMA per page, all sharing one anon_vma.
    pub fn split(&mut self) -> anyhow::Result<usize> {
        for p in (1..self.pages).step_by(2) {
            // SAFETY: inside the mapping.
            check(
                unsafe { libc::mprotect(self.addr(p).cast(), PAGE, libc::PROT_READ) },
                "mprotect split",
            )?;
        }
        Ok(self.pages)
    }

    pub fn madvise_mergeable(&self) -> anyhow::Result<()> {
        // SAFETY: the whole mapping.
        check(
            unsafe { libc::madvise(self.base.cast(), self.pages * PAGE, libc::MADV_MERGEABLE) },
            "madvise(MADV_MERGEABLE)",
        )
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: our mapping.
        if unsafe { libc::munmap(self.base.cast(), self.pages * PAGE) } != 0 {
            log::warn!("munmap: {}", io::Error::last_os_error());
        }
    }
}
