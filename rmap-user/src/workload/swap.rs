//! `--setup-swap`: a temporary zram swap device, swapped off and reset on drop.
use std::{
    ffi::CString,
    fs,
    io::{self, Write as _},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

pub struct ZramSwap {
    dev: PathBuf,
    sys: PathBuf,
    /// Device number we hot-added (removed again on drop).
    hot_added: Option<u32>,
    on: bool,
}

const PAGE: usize = 4096;

/// mm/swapfile.c reads a `union swap_header`: version 1, `last_page` and the "SWAPSPACE2" magic
/// in the last 10 bytes of the first page.
fn swap_header(size: u64) -> Vec<u8> {
    let mut page = vec![0u8; PAGE];
    page[1024..1028].copy_from_slice(&1u32.to_ne_bytes());
    let last_page = (size / PAGE as u64 - 1) as u32;
    page[1028..1032].copy_from_slice(&last_page.to_ne_bytes());
    page[PAGE - 10..].copy_from_slice(b"SWAPSPACE2");
    page
}

impl ZramSwap {
    pub fn create(size: u64) -> anyhow::Result<Self> {
        if !Path::new("/sys/class/zram-control").exists() && !Path::new("/sys/block/zram0").exists() {
            let loaded = Command::new("modprobe")
                .arg("zram")
                .status()
                .is_ok_and(|s| s.success());
            if !loaded {
                bail!("zram is not available (modprobe zram failed; CONFIG_ZRAM unset?)");
            }
        }
        let (n, hot_added) = match fs::read_to_string("/sys/class/zram-control/hot_add") {
            Ok(s) => {
                let n: u32 = s.trim().parse().context("parsing zram hot_add")?;
                (n, Some(n))
            }
            // Older kernels: use zram0 if it is unused.
            Err(_) => (0, None),
        };
        let sys = PathBuf::from(format!("/sys/block/zram{n}"));
        let dev = PathBuf::from(format!("/dev/zram{n}"));
        let mut z = Self {
            dev: dev.clone(),
            sys: sys.clone(),
            hot_added,
            on: false,
        };
        let current: u64 = fs::read_to_string(sys.join("disksize"))
            .context("reading zram disksize")?
            .trim()
            .parse()
            .unwrap_or(1);
        if current != 0 {
            bail!("{} is already in use", dev.display());
        }
        fs::write(sys.join("disksize"), size.to_string()).context("sizing the zram device")?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(&dev)
            .with_context(|| format!("opening {}", dev.display()))?;
        f.write_all(&swap_header(size))
            .context("writing the swap header")?;
        f.sync_all()?;
        drop(f);
        let path = CString::new(dev.to_string_lossy().as_bytes())?;
        // SAFETY: valid path string.
        if unsafe { libc::swapon(path.as_ptr(), 0) } != 0 {
            return Err(io::Error::last_os_error()).with_context(|| format!("swapon {}", dev.display()));
        }
        z.on = true;
        Ok(z)
    }

    fn remove(&mut self) -> anyhow::Result<()> {
        if self.on {
            let path = CString::new(self.dev.to_string_lossy().as_bytes())?;
            // SAFETY: valid path string.
            if unsafe { libc::swapoff(path.as_ptr()) } != 0 {
                return Err(io::Error::last_os_error())
                    .with_context(|| format!("swapoff {}", self.dev.display()));
            }
            self.on = false;
        }
        fs::write(self.sys.join("reset"), "1").context("resetting the zram device")?;
        if let Some(n) = self.hot_added.take() {
            fs::write("/sys/class/zram-control/hot_remove", n.to_string())
                .context("removing the zram device")?;
        }
        Ok(())
    }
}

impl Drop for ZramSwap {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            eprintln!("rmap-trace: error: removing the zram swap: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn header() {
        let h = super::swap_header(1 << 30);
        assert_eq!(&h[4086..], b"SWAPSPACE2");
        assert_eq!(u32::from_ne_bytes(h[1024..1028].try_into().unwrap()), 1);
        assert_eq!(
            u32::from_ne_bytes(h[1028..1032].try_into().unwrap()),
            (1 << 18) - 1
        );
    }
}
