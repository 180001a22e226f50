//! `--setup-swap`: a temporary zram swap device, swapped off and reset on drop (or by the next
//! run after a SIGKILL: the device and the module are in the host-state journal).
use std::{
    ffi::CString,
    fs,
    io::{self, Write as _},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::host_state::{self, Change, Token};

pub struct ZramSwap {
    dev: PathBuf,
    /// The device, once this run has taken it (journalled: swapped off, reset and, when we
    /// hot-added it, removed on drop or by the next run).
    device: Option<Token>,
    /// The zram module, when this run loaded it (unloaded on drop, after the device).
    module: Option<Token>,
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
        let mut z = Self {
            dev: PathBuf::new(),
            device: None,
            module: None,
        };
        if !Path::new("/sys/class/zram-control").exists() && !Path::new("/sys/block/zram0").exists() {
            z.module = Some(journal(Change::ZramModule)?);
            let loaded = Command::new("modprobe")
                .arg("zram")
                .status()
                .is_ok_and(|s| s.success());
            if !loaded {
                bail!("zram is not available (modprobe zram failed; CONFIG_ZRAM unset?)");
            }
        }
        let (n, hot_added) = match fs::read_to_string("/sys/class/zram-control/hot_add") {
            // A new device, ours alone: journalled at once (its number is known only now).
            Ok(s) => {
                let n: u32 = s.trim().parse().context("parsing zram hot_add")?;
                (n, Some(n))
            }
            // Older kernels: use zram0 if it is unused.
            Err(_) => (0, None),
        };
        let sys = PathBuf::from(format!("/sys/block/zram{n}"));
        let dev = PathBuf::from(format!("/dev/zram{n}"));
        z.dev.clone_from(&dev);
        let take = Change::Zram {
            sys: sys.clone(),
            dev: dev.clone(),
            hot_added,
        };
        if hot_added.is_some() {
            z.device = Some(journal(take.clone())?);
        }
        // A device someone else set up is never touched: check before taking it, so that the
        // guard cannot reset it.
        let current: u64 = fs::read_to_string(sys.join("disksize"))
            .context("reading zram disksize")?
            .trim()
            .parse()
            .context("parsing zram disksize")?;
        if current != 0 {
            bail!("{} is already in use", dev.display());
        }
        if z.device.is_none() {
            z.device = Some(journal(take)?);
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
        // SAFETY: valid NUL-terminated path; swapon only reads it.
        if unsafe { libc::swapon(path.as_ptr(), 0) } != 0 {
            return Err(io::Error::last_os_error()).with_context(|| format!("swapon {}", dev.display()));
        }
        eprintln!("rmap-trace: swap on {} (temporary zram device)", dev.display());
        Ok(z)
    }
}

fn journal(change: Change) -> anyhow::Result<Token> {
    host_state::record(change).context("writing the host-state journal before setting up zram swap")
}

impl Drop for ZramSwap {
    fn drop(&mut self) {
        // The device first: the module cannot be unloaded while a device is in use.
        for (what, token) in [
            ("the zram swap", self.device.take()),
            ("the zram module", self.module.take()),
        ] {
            let Some(token) = token else { continue };
            match host_state::undo(&token) {
                Ok(done) if !done.is_empty() => log::info!("{done}"),
                Ok(_) => {}
                Err(errors) => eprintln!(
                    "rmap-trace: error: removing {what} ({}): {} (run `rmap-trace restore`)",
                    self.dev.display(),
                    errors.join("; ")
                ),
            }
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
