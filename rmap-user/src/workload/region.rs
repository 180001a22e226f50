//! The memory region of a workload, unmapped (and its file removed) on drop.
use std::{fs::File, io, os::fd::AsRawFd as _};

use anyhow::Context as _;

pub const PAGE: usize = 4096;
/// A PMD-mapped transparent huge page on `x86_64`.
pub const HUGE: usize = 2 << 20;

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
        check(
            // SAFETY: the whole mapping.
            unsafe { libc::madvise(base, pages * PAGE, libc::MADV_NOHUGEPAGE) },
            "madvise(MADV_NOHUGEPAGE)",
        )?;
        r.fill(identical);
        Ok(r)
    }

    /// One transparent huge page: 2 MiB aligned, `MADV_HUGEPAGE`, faulted in; an error when the
    /// kernel gave base pages instead (THP disabled).
    pub fn thp() -> anyhow::Result<Self> {
        // SAFETY: fresh anonymous mapping of twice the size, trimmed to an aligned 2 MiB below.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                2 * HUGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(io::Error::last_os_error()).context("mmap for a huge page");
        }
        let start = raw as usize;
        let aligned = (start + HUGE - 1) & !(HUGE - 1);
        let r = Self {
            base: aligned as *mut u8,
            pages: HUGE / PAGE,
            _file: None,
        };
        // SAFETY: the unaligned head and tail of our own mapping.
        unsafe {
            if aligned > start {
                check(libc::munmap(raw, aligned - start), "munmap head")?;
            }
            let tail = aligned + HUGE;
            check(
                libc::munmap(tail as *mut libc::c_void, start + 2 * HUGE - tail),
                "munmap tail",
            )?;
            check(
                libc::madvise(r.base.cast(), HUGE, libc::MADV_HUGEPAGE),
                "madvise(MADV_HUGEPAGE)",
            )?;
        }
        r.fill(false);
        let huge_kb = anon_huge_kb(r.base)?;
        if huge_kb < (HUGE / 1024) as u64 {
            anyhow::bail!(
                "the kernel gave no transparent huge page (AnonHugePages {huge_kb} kB): \
                 THP disabled? (/sys/kernel/mm/transparent_hugepage/enabled)"
            );
        }
        Ok(r)
    }

    /// Splits the huge page: `MADV_COLD` on its first base page (mm/madvise.c,
    /// `madvise_cold_or_pageout_pte_range()` splits a THP covered only in part), which unmaps
    /// and remaps it through `rmap_walk_locked()` (`mm/huge_memory.c`, `split_huge_page_to_list()`).
    pub fn split_huge_page(&self) -> anyhow::Result<()> {
        check(
            // SAFETY: inside our mapping.
            unsafe { libc::madvise(self.base.cast(), PAGE, libc::MADV_COLD) },
            "madvise(MADV_COLD)",
        )?;
        let left = anon_huge_kb(self.base)?;
        if left != 0 {
            anyhow::bail!("the huge page was not split (AnonHugePages still {left} kB)");
        }
        Ok(())
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

    /// `mprotect(PROT_READ)` on every other page: one VMA per page, all sharing one `anon_vma`.
    /// `done` is told the calls made so far after each one.
    pub fn split(&mut self, mut done: impl FnMut(usize)) -> anyhow::Result<usize> {
        for (n, p) in (1..self.pages).step_by(2).enumerate() {
            // Thousands of calls, slow under emulation: stop soon after a signal.
            super::cancel::check()?;
            check(
                // SAFETY: inside the mapping.
                unsafe { libc::mprotect(self.addr(p).cast(), PAGE, libc::PROT_READ) },
                "mprotect split",
            )?;
            done(n + 1);
        }
        Ok(self.pages)
    }

    /// Moves every page, one `mremap(MREMAP_FIXED)` each, to the same offset in a new range:
    /// the VMAs keep their `vm_pgoff` (mm/mremap.c, `move_vma()` -> `copy_vma()`) while their
    /// addresses change, so a page's index no longer equals its address >> `PAGE_SHIFT`. Page
    /// by page, since mremap moves within one VMA only and a split region has one per page.
    /// Returns the pages moved; `done` is told the pages moved so far after each call. When
    /// stopped (cancelled or failed), both ranges are unmapped.
    pub fn mremap_away(&mut self, mut done: impl FnMut(usize)) -> anyhow::Result<usize> {
        let len = self.pages * PAGE;
        // Reserve the destination: MREMAP_FIXED replaces whatever is mapped there.
        // SAFETY: a fresh inaccessible mapping.
        let dest = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if dest == libc::MAP_FAILED {
            return Err(io::Error::last_os_error()).context("reserving the mremap destination");
        }
        let dest: *mut u8 = dest.cast();
        for p in 0..self.pages {
            let failed = if let Err(cancelled) = super::cancel::check() {
                Some(anyhow::Error::from(cancelled))
            } else {
                // SAFETY: page p of our mapping moves to page p of the reservation.
                let moved = unsafe {
                    libc::mremap(
                        self.addr(p).cast(),
                        PAGE,
                        PAGE,
                        libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                        dest.add(p * PAGE),
                    )
                };
                (moved == libc::MAP_FAILED).then(|| {
                    anyhow::Error::from(io::Error::last_os_error()).context(format!("mremap of page {p}"))
                })
            };
            if let Some(err) = failed {
                // Pages 0..p now live at dest, the rest at base: unmap both ranges.
                for range in [dest, self.base] {
                    // SAFETY: both ranges are ours.
                    if unsafe { libc::munmap(range.cast(), len) } != 0 {
                        log::warn!("munmap after a stopped mremap: {}", io::Error::last_os_error());
                    }
                }
                self.base = std::ptr::null_mut();
                return Err(err);
            }
            done(p + 1);
        }
        // Nothing is left at the old range: every page moved out of it.
        self.base = dest;
        Ok(self.pages)
    }

    pub fn madvise_mergeable(&self) -> anyhow::Result<()> {
        check(
            // SAFETY: the whole mapping.
            unsafe { libc::madvise(self.base.cast(), self.pages * PAGE, libc::MADV_MERGEABLE) },
            "madvise(MADV_MERGEABLE)",
        )
    }
}

/// `AnonHugePages` of the VMA holding `addr` (/proc/self/smaps), in kB: only that VMA, since
/// with THP "always" the process's heap has huge pages of its own.
fn anon_huge_kb(addr: *const u8) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string("/proc/self/smaps").context("reading /proc/self/smaps")?;
    let addr = addr as usize;
    let mut inside = false;
    for line in text.lines() {
        let range = line
            .split_whitespace()
            .next()
            .and_then(|r| r.split_once('-'))
            .and_then(|(a, b)| {
                Some((
                    usize::from_str_radix(a, 16).ok()?,
                    usize::from_str_radix(b, 16).ok()?,
                ))
            });
        if let Some((start, end)) = range {
            inside = start <= addr && addr < end;
        } else if inside && let Some(v) = line.strip_prefix("AnonHugePages:") {
            return v
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .context("parsing AnonHugePages in /proc/self/smaps");
        }
    }
    anyhow::bail!("no AnonHugePages for {addr:#x} in /proc/self/smaps (CONFIG_PROC_PAGE_MONITOR?)")
}

impl Drop for Region {
    fn drop(&mut self) {
        if self.base.is_null() {
            return;
        }
        // SAFETY: our mapping.
        if unsafe { libc::munmap(self.base.cast(), self.pages * PAGE) } != 0 {
            log::warn!("munmap: {}", io::Error::last_os_error());
        }
    }
}
