//! Guest kernels, chosen by `--kernel`: Debian's by series (`debian:6.1`, from its archive:
//! `distro.rs`), ours (`ours[:PATCHES]`, built by `kbuild`), or a bzImage path.
use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};

use super::{Kernel, distro};
use crate::kbuild;

/// The series of Debian's kernel booted when no kernel is chosen.
pub const DEFAULT_SERIES: &str = "6.1";

/// Our kernel's patches when `ours` names none: the rmap tracepoints and the series' KSM
/// optimization.
pub const OUR_PATCHES: &str = "rmap-tracepoints,rmap-tracepoint-v4,ksm-rmap-pgoff";

/// A guest kernel as `--kernel` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelChoice {
    /// `debian:SERIES`.
    Debian(String),
    /// `ours:PATCHES` (a comma-separated list of kernel/patches/, or `none`).
    Ours(String),
    /// A bzImage.
    Image(PathBuf),
}

impl std::str::FromStr for KernelChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(series) = s.strip_prefix("debian:") {
            if !distro::valid_series(series) {
                return Err(format!("debian:{series}: a series is {}", distro::NAMES));
            }
            return Ok(Self::Debian(series.to_string()));
        }
        if s == "ours" {
            return Ok(Self::Ours(OUR_PATCHES.to_string()));
        }
        if let Some(list) = s.strip_prefix("ours:") {
            if list.is_empty() {
                return Err("ours: names no patches (ours:none for none)".into());
            }
            return Ok(Self::Ours(list.to_string()));
        }
        if s.is_empty() || s.contains(':') {
            return Err(format!(
                "{s}: not a kernel (debian:SERIES with SERIES {}, ours[:PATCHES], or a bzImage path)",
                distro::NAMES
            ));
        }
        Ok(Self::Image(PathBuf::from(s)))
    }
}

impl std::fmt::Display for KernelChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Debian(series) => write!(f, "debian:{series}"),
            Self::Ours(list) => write!(f, "ours:{list}"),
            Self::Image(path) => write!(f, "{}", path.display()),
        }
    }
}

impl KernelChoice {
    /// Debian's kernel that is booted when none is chosen.
    pub fn default_debian() -> Self {
        Self::Debian(DEFAULT_SERIES.to_string())
    }

    /// A short name for tables and file names (`debian-6.1`, `ours`, the image's file name).
    pub fn short(&self) -> String {
        match self {
            Self::Debian(series) => format!("debian-{series}"),
            Self::Ours(_) => "ours".to_string(),
            Self::Image(p) => p
                .file_name()
                .map_or_else(|| "image".into(), |n| n.to_string_lossy().into_owned()),
        }
    }
}

/// The kernel `args` ask for: Debian's, our patched build, or a bzImage.
pub fn for_guest(args: &super::GuestArgs) -> anyhow::Result<Kernel> {
    let mut kernel = match args.choice() {
        KernelChoice::Ours(list) => ours(&list, args.numa_nodes)?,
        KernelChoice::Debian(series) => {
            if args.modules.is_some() {
                bail!("--modules goes with a bzImage path: Debian's kernels come with their own");
            }
            distro::kernel(&series)?
        }
        KernelChoice::Image(image) => image_file(&image, args.modules.as_deref())?,
    };
    kernel.cmdline.extend(super::tsc::clock_words(args.accel)?);
    if args.accel == super::qemu::Accel::Icount {
        // One CPU online: with two, Debian's kernel hung under icount at "Booting SMP
        // configuration" (seen with `sleep=on` and `sleep=off`), the boot CPU apparently
        // waiting for a second vCPU that QEMU's one thread did not run.
        // Node 1 keeps its memory, so `move_pages` still migrates.
        kernel.cmdline.push("maxcpus=1".to_string());
    }
    Ok(kernel)
}

/// Our kernel built with the patches of `list`.
fn ours(list: &str, numa_nodes: u32) -> anyhow::Result<Kernel> {
    let built = kbuild::build(Some(list))?;
    // Our kernel has zram and everything else built in: no modules. It has no ACPI, so
    // QEMU's -numa nodes (described in ACPI's SRAT) are invisible to it: NUMA emulation
    // splits its memory into the same number of nodes instead.
    let mut cmdline = Vec::new();
    if numa_nodes > 1 {
        cmdline.push(format!("numa=fake={numa_nodes}"));
    }
    Ok(Kernel {
        image: built.image,
        modules: None,
        label: format!("our kernel {} ({list})", built.release),
        cmdline,
        packages: None,
    })
}

/// A bzImage given by path, checked, with the modules directory given with it.
pub fn image_file(image: &Path, modules: Option<&Path>) -> anyhow::Result<Kernel> {
    let meta = fs::metadata(image).with_context(|| format!("kernel image {}", image.display()))?;
    if !meta.is_file() || meta.len() < 512 * 1024 {
        bail!(
            "kernel image {} is not a bzImage (not a file, or under 512 KiB)",
            image.display()
        );
    }
    let mut magic = [0u8; 4];
    fs::File::open(image).and_then(|mut f| {
        use std::io::{Read, Seek, SeekFrom};
        f.seek(SeekFrom::Start(0x202))?;
        f.read_exact(&mut magic)
    })?;
    if &magic != b"HdrS" {
        bail!(
            "kernel image {} has no x86 boot header (HdrS): not a bzImage",
            image.display()
        );
    }
    if let Some(m) = modules
        && !m.is_dir()
    {
        bail!("modules directory {} does not exist", m.display());
    }
    Ok(Kernel {
        image: image.to_path_buf(),
        modules: modules.map(Path::to_path_buf),
        label: image.display().to_string(),
        cmdline: Vec::new(),
        packages: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_choices() {
        let parse = |s: &str| s.parse::<KernelChoice>();
        assert_eq!(parse("debian:7.2"), Ok(KernelChoice::Debian("7.2".into())));
        assert_eq!(parse("debian:latest").unwrap().short(), "debian-latest");
        assert_eq!(parse("ours"), Ok(KernelChoice::Ours(OUR_PATCHES.into())));
        assert_eq!(parse("ours:none"), Ok(KernelChoice::Ours("none".into())));
        assert_eq!(
            parse("/boot/vmlinuz"),
            Ok(KernelChoice::Image("/boot/vmlinuz".into()))
        );
        for bad in ["debian:", "debian:7", "debian:sid", "ours:", "fedora:40", ""] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        for s in ["debian:6.12", "ours:rmap-tracepoints", "bzImage"] {
            assert_eq!(parse(s).unwrap().to_string(), s);
        }
    }
}
