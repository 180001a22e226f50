//! `cargo xtask kernel`: our guest kernel, built from Debian's `linux-source-6.1` with the
//! config fragment `kernel/rmap-guest.config` over tinyconfig and a set of our patches
//! (`kernel/patches/`). Everything lives in the cache (`~/.cache/rmap-trace/kernel/`): one
//! work tree, one build directory per configuration (so switching patch sets rebuilds only the
//! files they touch), and finished images keyed by a hash of source version, config and
//! patches (so asking again for a built kernel runs no make at all).
mod config;
pub mod patches;
mod source;

use std::{
    fs,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, bail};
use sha2::{Digest as _, Sha256};

use crate::{build::workspace_root, cache, cmd};

/// The config fragment, relative to the repository.
pub const FRAGMENT: &str = "kernel/rmap-guest.config";
/// Bumped when the way a kernel is built changes, so old cached images are not reused.
const RECIPE: &str = "rmap-trace kernel recipe 1: tinyconfig + fragment, bzImage";
/// What building a kernel needs beyond gcc and make (pahole is in dwarves).
const PACKAGES: [&str; 9] = [
    "make",
    "gcc",
    "flex",
    "bison",
    "bc",
    "libelf-dev",
    "zlib1g-dev",
    "dwarves",
    "patch",
];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Comma-separated patches of kernel/patches/ (or `none`). Default: the tracepoint kernel,
    /// rmap-tracepoints,rmap-tracepoint-v4.
    #[arg(long, value_name = "LIST")]
    pub patches: Option<String>,
    /// List the patches and exit.
    #[arg(long)]
    pub list: bool,
}

/// A built kernel.
#[derive(Debug, Clone)]
pub struct Built {
    pub image: PathBuf,
    /// `uname -r` in the guest, e.g. `6.1.192-rmap-tp-tp4`.
    pub release: String,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.list {
        for p in patches::PATCHES {
            println!("{:<20} {}", p.name, p.about);
        }
        return Ok(());
    }
    let built = build(args.patches.as_deref())?;
    println!("kernel: {} ({})", built.image.display(), built.release);
    Ok(())
}

/// Held while a kernel is configured or built: two builds in one tree would corrupt it.
struct Lock {
    _file: fs::File,
}

impl Lock {
    fn take(dir: &Path) -> anyhow::Result<Self> {
        let f = fs::File::create(dir.join("lock"))?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            bail!("locking {}: {}", dir.display(), std::io::Error::last_os_error());
        }
        Ok(Self { _file: f })
    }
}

fn hex16(h: Sha256) -> String {
    let digest = h.finalize();
    let mut hex = String::with_capacity(16);
    for b in &digest[..8] {
        hex += &format!("{b:02x}");
    }
    hex
}

/// Removes the build directories of other configurations (a few GB each with debug info):
/// only the current configuration is rebuilt incrementally.
fn prune_builds(dir: &Path, keep: &Path) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir)?.flatten() {
        let path = entry.path();
        let is_build = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("build-"));
        if is_build && path != keep {
            eprintln!(
                "xtask: removing the build of an older configuration, {}",
                path.display()
            );
            fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

/// Builds (or finds in the cache) the kernel with the patches in `list` (default: tracepoints).
pub fn build(list: Option<&str>) -> anyhow::Result<Built> {
    let set = patches::select(list.unwrap_or(&patches::DEFAULT.join(",")))?;
    crate::apt::install(&PACKAGES)?;
    let root = workspace_root();
    let dir = cache::dir()?.join("kernel");
    fs::create_dir_all(&dir)?;
    let _lock = Lock::take(&dir)?;
    let src = source::ensure(&dir)?;
    let fragment = root.join(FRAGMENT);
    let keys = Keys::of(&root, &src, &fragment, &set)?;
    let images = dir.join("images").join(&keys.image);
    if let Some(built) = cached(&images) {
        eprintln!(
            "xtask: kernel {} is up to date (cached): nothing to rebuild",
            built.release
        );
        return Ok(built);
    }
    let started = Instant::now();
    apply_patches(&root, &dir, &src, &set)?;
    let build_dir = dir.join(format!("build-{}", keys.config));
    let cold = configure(&dir, &src, &build_dir, &fragment, &keys.config)?;
    make(&src.tree, &build_dir, &patches::local_version(&set), cold)?;
    let names: Vec<&str> = set.iter().map(|p| p.name).collect();
    let built = store(&build_dir, &images, &names)?;
    eprintln!(
        "xtask: kernel {} built in {:.0} s",
        built.release,
        started.elapsed().as_secs_f64()
    );
    Ok(built)
}

/// The cache keys of a kernel: its configuration (recipe, source, fragment) and its image
/// (that and the patches).
struct Keys {
    config: String,
    image: String,
}

impl Keys {
    fn of(
        root: &Path,
        src: &source::Source,
        fragment: &Path,
        set: &[&patches::Patch],
    ) -> anyhow::Result<Self> {
        let fragment_bytes = fs::read(fragment).with_context(|| format!("reading {}", fragment.display()))?;
        let mut config = Sha256::new();
        config.update(RECIPE);
        config.update(&src.version);
        config.update(&fragment_bytes);
        let mut image = config.clone();
        for p in set {
            image.update(p.name);
            image.update(fs::read(patches::patch_path(root, p))?);
        }
        Ok(Self {
            config: hex16(config),
            image: hex16(image),
        })
    }
}

/// The finished kernel stored in `images`, if there is one.
fn cached(images: &Path) -> Option<Built> {
    let release = fs::read_to_string(images.join("release")).ok()?;
    let image = images.join("bzImage");
    image.is_file().then(|| Built {
        image,
        release: release.trim().to_string(),
    })
}

/// Puts exactly `set` on the work tree and says what changed.
fn apply_patches(
    root: &Path,
    dir: &Path,
    src: &source::Source,
    set: &[&patches::Patch],
) -> anyhow::Result<()> {
    let tree = patches::Tree {
        root: &src.tree,
        pristine: dir.join(format!("pristine-{}", src.version)),
        applied: dir.join(format!("tree-{}.applied", src.version)),
    };
    let changed = tree.apply(root, set, &dir.join("staging"))?;
    let names: Vec<&str> = set.iter().map(|p| p.name).collect();
    eprintln!(
        "xtask: kernel linux-source {} with [{}]: {} file(s) changed in the tree{}",
        src.version,
        names.join(", "),
        changed.len(),
        if changed.is_empty() {
            String::new()
        } else {
            format!(" ({})", changed.join(", "))
        }
    );
    Ok(())
}

/// Configures `build_dir` unless it already has this configuration; true when it was
/// configured now (the build that follows is cold).
fn configure(
    dir: &Path,
    src: &source::Source,
    build_dir: &Path,
    fragment: &Path,
    key: &str,
) -> anyhow::Result<bool> {
    let stamp = build_dir.join(".rmap-config-key");
    if fs::read_to_string(&stamp).ok().as_deref() == Some(key) {
        return Ok(false);
    }
    eprintln!(
        "xtask: configuring {} (tinyconfig + {FRAGMENT})",
        build_dir.display()
    );
    prune_builds(dir, build_dir)?;
    fs::create_dir_all(build_dir)?;
    config::configure(&src.tree, build_dir, fragment)?;
    fs::write(&stamp, key)?;
    Ok(true)
}

/// `make bzImage` of `tree` into `build_dir`.
fn make(tree: &Path, build_dir: &Path, local: &str, cold: bool) -> anyhow::Result<()> {
    let jobs = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    eprintln!(
        "xtask: make -j{jobs} bzImage (LOCALVERSION={local}): {}",
        if cold {
            "a cold build, about 10 minutes on 2 cores"
        } else {
            "incremental, only what the changed files affect"
        }
    );
    let ok = cmd::status(
        Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(tree)
            .arg(format!("O={}", build_dir.display()))
            .arg(format!("-j{jobs}"))
            .arg(format!("LOCALVERSION={local}"))
            .arg("bzImage"),
    )?;
    if !ok {
        bail!("kernel build failed (make in {})", build_dir.display());
    }
    Ok(())
}

/// Copies the built image, its config, patch list and release into `images`, atomically.
fn store(build_dir: &Path, images: &Path, names: &[&str]) -> anyhow::Result<Built> {
    let release = fs::read_to_string(build_dir.join("include/config/kernel.release"))
        .context("the build wrote no include/config/kernel.release")?
        .trim()
        .to_string();
    if images.exists() {
        // Incomplete (`cached` found no image in it): replaced whole.
        fs::remove_dir_all(images).with_context(|| format!("removing {}", images.display()))?;
    }
    cache::atomic_dir(images, |tmp| {
        fs::copy(build_dir.join("arch/x86/boot/bzImage"), tmp.join("bzImage"))?;
        fs::copy(build_dir.join(".config"), tmp.join("config"))?;
        fs::write(tmp.join("patches"), names.join("\n"))?;
        fs::write(tmp.join("release"), &release)?;
        Ok(())
    })?;
    cached(images).context("the stored kernel image is missing")
}
