//! Guest kernels: Debian's `linux-image-6.1.0-*-amd64` (downloaded and unpacked once into the
//! cache), our patched build (`kbuild::build`), or a bzImage given with `--kernel`.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{cache, debian, kbuild};

/// The Debian 6.1 image known to work (KPROBES, BTF, KSM, NUMA); a newer ABI of the same
/// series is used when this one is no longer in the archive.
const DEFAULT_PACKAGE: &str = "linux-image-6.1.0-56-amd64";

/// A kernel to boot and, where it has them, its modules.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub image: PathBuf,
    /// `lib/modules/<release>`.
    pub modules: Option<PathBuf>,
    pub label: String,
    /// Kernel command-line words this kernel needs.
    pub cmdline: Vec<String>,
}

/// The kernel `args` ask for: a bzImage, our patched build, or Debian's.
pub fn for_guest(args: &super::GuestArgs) -> anyhow::Result<Kernel> {
    let mut kernel = if let Some(list) = &args.patches {
        let built = kbuild::build(Some(list))?;
        // Our kernel has zram and everything else built in: no modules. It has no ACPI, so
        // QEMU's -numa nodes (described in ACPI's SRAT) are invisible to it: NUMA emulation
        // splits its memory into the same number of nodes instead.
        let mut cmdline = Vec::new();
        if args.numa_nodes > 1 {
            cmdline.push(format!("numa=fake={}", args.numa_nodes));
        }
        Kernel {
            image: built.image,
            modules: None,
            label: format!("our kernel {} ({list})", built.release),
            cmdline,
        }
    } else {
        resolve(args.kernel.as_deref(), args.modules.as_deref())?
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

pub fn resolve(kernel: Option<&Path>, modules: Option<&Path>) -> anyhow::Result<Kernel> {
    if let Some(image) = kernel {
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
        return Ok(Kernel {
            image: image.to_path_buf(),
            modules: modules.map(Path::to_path_buf),
            label: image.display().to_string(),
            cmdline: Vec::new(),
        });
    }
    debian()
}

fn unpacked(root: &Path) -> Option<Kernel> {
    let boot = root.join("boot");
    let image = fs::read_dir(&boot).ok()?.flatten().map(|e| e.path()).find(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
    })?;
    let release = image
        .file_name()?
        .to_string_lossy()
        .trim_start_matches("vmlinuz-")
        .to_string();
    let modules = root.join("lib/modules").join(&release);
    Some(Kernel {
        image,
        modules: modules.is_dir().then_some(modules),
        label: format!("Debian {release}"),
        cmdline: Vec::new(),
    })
}

/// Debian's kernel from the cache, downloading and unpacking it on first use.
pub fn debian() -> anyhow::Result<Kernel> {
    let dir = cache::dir()?;
    let root = dir.join("debian-kernel");
    if !root.is_dir() {
        let deb = debian::download(&dir, DEFAULT_PACKAGE).or_else(|e| {
            eprintln!("xtask: {DEFAULT_PACKAGE}: {e:#}; looking for a newer 6.1 image");
            debian::download(&dir, &newest_61()?)
        })?;
        debian::unpack(&deb, &root, debian::Layout::Files)?;
    }
    unpacked(&root).with_context(|| format!("{} has no boot/vmlinuz-*", root.display()))
}

fn newest_61() -> anyhow::Result<String> {
    let out = Command::new("apt-cache")
        .args(["search", "--names-only", r"^linux-image-6\.1\.0-[0-9]+-amd64$"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .max_by_key(|n| {
            n.trim_start_matches("linux-image-6.1.0-")
                .trim_end_matches("-amd64")
                .parse::<u32>()
                .unwrap_or(0)
        })
        .map(String::from)
        .context("no linux-image-6.1.0-*-amd64 in the apt lists")
}
