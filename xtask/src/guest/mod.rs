//! The QEMU guest harness: a kernel (Debian's 6.1 by default), an initramfs with busybox and a
//! static rmap-trace, and a QEMU run watched on the serial console for markers.
pub mod distro;
pub mod emulator;
pub mod home;
pub mod initramfs;
pub mod kernel;
pub mod qemu;
pub mod script;
pub mod tcg;
pub mod tsc;

use std::{path::PathBuf, time::Duration};

/// A kernel to boot and, where it has them, its modules.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub image: PathBuf,
    /// `lib/modules/<release>`.
    pub modules: Option<PathBuf>,
    pub label: String,
    /// Kernel command-line words this kernel needs.
    pub cmdline: Vec<String>,
    /// Debian's packages it came from, with their versions.
    pub packages: Option<distro::Packages>,
}

/// Options shared by `vm`, `vm-test` and `run --vm`.
#[derive(Debug, Clone, clap::Args)]
pub struct GuestArgs {
    /// The guest kernel: `debian:SERIES` (Debian's, from its archive: 5.10, 6.1, 6.12, 7.2 or
    /// latest; default debian:6.1), `ours[:PATCHES]` (built from Debian's linux-source-6.1 with
    /// these patches of kernel/patches/, comma-separated, or `none`; `ours` alone: all three),
    /// or the path of a bzImage.
    #[arg(long, value_name = "KERNEL", conflicts_with = "patches")]
    pub kernel: Option<kernel::KernelChoice>,
    /// `--kernel ours:LIST`.
    #[arg(long, value_name = "LIST")]
    pub patches: Option<String>,
    /// Kernel modules directory (lib/modules/<release>) for that kernel, where zram is a module.
    #[arg(long)]
    pub modules: Option<PathBuf>,
    /// NUMA nodes in the guest (2 lets `move_pages` migrate).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=4))]
    pub numa_nodes: u32,
    /// Guest memory in MiB, split evenly over the nodes.
    #[arg(long, default_value_t = 4096)]
    pub memory_mib: u32,
    /// Whole-run timeout in seconds.
    #[arg(long, default_value_t = 1500)]
    pub timeout: u64,
    /// Accelerator: tcg (always works here), kvm, auto (kvm if /dev/kvm works, falling back
    /// to tcg when the guest does not boot in time), or icount (tcg whose clock counts guest
    /// instructions: timings independent of the host's load).
    #[arg(long, value_enum, default_value_t = qemu::Accel::Tcg)]
    pub accel: qemu::Accel,
}

impl GuestArgs {
    /// The kernel chosen (`--kernel`, `--patches`), or Debian's default.
    pub fn choice(&self) -> kernel::KernelChoice {
        match (&self.kernel, &self.patches) {
            (Some(k), _) => k.clone(),
            (None, Some(list)) => kernel::KernelChoice::Ours(list.clone()),
            (None, None) => kernel::KernelChoice::default_debian(),
        }
    }

    /// These options with `kernel` chosen instead.
    pub fn with_kernel(&self, kernel: kernel::KernelChoice) -> Self {
        Self {
            kernel: Some(kernel),
            patches: None,
            modules: None,
            ..self.clone()
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }
}

/// Builds the static rmap-trace and the initramfs, boots the guest with `cmd` as /cmd.sh.
pub fn boot(args: &GuestArgs, cmd: &str, echo: bool) -> anyhow::Result<qemu::GuestRun> {
    boot_with(args, cmd, echo, &[])
}

/// `boot` with more files in the initramfs (guest path, host file).
pub fn boot_with(
    args: &GuestArgs,
    cmd: &str,
    echo: bool,
    extra: &[(String, PathBuf)],
) -> anyhow::Result<qemu::GuestRun> {
    boot_with_trees(args, cmd, echo, extra, &[])
}

/// `boot_with` and whole directory trees (guest directory, host directory), e.g. a
/// `debroot` root to chroot into.
pub fn boot_with_trees(
    args: &GuestArgs,
    cmd: &str,
    echo: bool,
    extra: &[(String, PathBuf)],
    trees: &[(String, PathBuf)],
) -> anyhow::Result<qemu::GuestRun> {
    use anyhow::Context as _;
    let kernel = kernel::for_guest(args)?;
    let rmap_trace = crate::build::static_binary()?;
    let image = initramfs::build(&initramfs::Contents {
        rmap_trace: &rmap_trace,
        cmd,
        modules: kernel.modules.as_deref(),
        extra,
        trees,
    })?;
    let initrd = TempFile::new("initrd.cpio")?;
    std::fs::write(&initrd.0, image).with_context(|| format!("writing {}", initrd.0.display()))?;
    let clock = match args.accel {
        qemu::Accel::Icount => "; one CPU online, guest clock = 1 ns per guest instruction",
        qemu::Accel::Kvm | qemu::Accel::Tcg | qemu::Accel::Auto => "",
    };
    eprintln!(
        "xtask: booting {} ({} NUMA nodes, {} MiB, {:?}{clock})",
        kernel.label, args.numa_nodes, args.memory_mib, args.accel
    );
    qemu::Machine {
        kernel: &kernel.image,
        initrd: &initrd.0,
        numa_nodes: args.numa_nodes,
        memory_mib: args.memory_mib,
        timeout: args.timeout(),
        echo,
        cmdline: &kernel.cmdline,
    }
    .run(args.accel)
}

/// A file under target/xtask removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let dir = crate::build::workspace_root().join("target/xtask");
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir.join(format!("{}-{name}", std::process::id()))))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!("xtask: removing {}: {e}", self.0.display());
        }
    }
}

/// An rmap-trace command line and the guest to run it in: what `vm`, `run` and
/// `compare-kernels` take.
#[derive(Debug, Clone, clap::Args)]
pub struct RmapRun {
    #[command(flatten)]
    pub guest: GuestArgs,
    /// rmap-trace's arguments (none: the benchmark with its defaults).
    #[arg(last = true)]
    pub rmap_args: Vec<String>,
}

impl RmapRun {
    /// `rmap-trace ARGS`, quoted for the guest's sh.
    pub fn line(&self) -> String {
        line(&self.rmap_args)
    }

    /// `rmap-trace ARGS` with its output files written under /tmp/out in the guest, and the
    /// files to bring home afterwards (`home.rs`).
    pub fn line_home(&self) -> (String, Vec<home::HomeFile>) {
        let (args, files) = home::redirect(&self.rmap_args);
        (line(&args), files)
    }
}

fn line(args: &[String]) -> String {
    let quoted: Vec<String> = args.iter().map(|a| sh_quote(a)).collect();
    format!("rmap-trace {}", quoted.join(" "))
}

/// Boots the guest with `cmd`, its console echoed; a non-zero status of `cmd` is an error.
pub fn run_echoed(args: &GuestArgs, cmd: &str) -> anyhow::Result<()> {
    run_echoed_home(args, cmd, &[])
}

/// `run_echoed`, `files` brought home after `cmd` (whose status is kept).
pub fn run_echoed_home(args: &GuestArgs, cmd: &str, files: &[home::HomeFile]) -> anyhow::Result<()> {
    home::check(files)?;
    let mut script = if files.is_empty() {
        cmd.to_string()
    } else {
        format!(
            "mkdir -p /tmp/out\n{cmd}\nS=$?\n{}exit $S\n",
            home::send_lines(files)
        )
    };
    // The guest's console is a terminal: progress bars draw their frames on it, which a host
    // output that is no terminal (a file, a pipe) would keep line after line. Through a pipe
    // there, rmap-trace prints plain lines instead.
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        script = format!("set -o pipefail\n(\n{script}\n) 2>&1 | cat\n");
    }
    let out = boot(args, &script, true)?;
    eprintln!("xtask: guest finished in {:.1} s", out.elapsed.as_secs_f64());
    home::write(&out, files)?;
    if out.status != 0 {
        anyhow::bail!("rmap-trace exited with status {} in the guest", out.status);
    }
    Ok(())
}

/// Quotes an argument for the guest's sh.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
