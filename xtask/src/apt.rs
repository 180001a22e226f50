//! Debian's archive through a private apt configuration per suite, kept in the cache: its own
//! sources, package lists, package cache and preferences (`APT_CONFIG`), so that other
//! suites' kernels and backports are fetched without touching the host's apt sources, lists or
//! locks. The host's own configuration ([`Archive::Host`]) serves what comes from the host's
//! release (busybox, bpftrace, `OpenJDK`, the kernel source).
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

use anyhow::{Context as _, bail};

use crate::{cache, cmd};

/// Installs the Debian packages of `packages` that are missing, or says what to run. apt
/// waits for a dpkg lock another apt holds (a fresh machine's unattended upgrade often does)
/// instead of failing.
pub fn install(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !dpkg_installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !cmd::is_root() || !cmd::have("apt-get") {
        bail!(
            "missing packages; run: sudo apt-get install -y {}",
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    let install = || {
        let mut c = Command::new("apt-get");
        c.args(["-o", APT_LOCK_TIMEOUT, "install", "-y", "-q"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    let fresh_lists = Path::new("/var/lib/apt/lists")
        .read_dir()
        .map_or(0, std::iter::Iterator::count)
        > 2;
    if !fresh_lists || !cmd::status(&mut install())? {
        // `apt-get update` takes the lists' lock, which `DPkg::Lock::Timeout` does not cover.
        wait_for_lock(Path::new("/var/lib/apt/lists/lock"))?;
        cmd::run_ok(Command::new("apt-get").args(["update", "-q"]))?;
        cmd::run_ok(&mut install())
            .with_context(|| format!("run: apt-get install -y {}", missing.join(" ")))?;
    }
    Ok(())
}

/// How long apt waits for the dpkg lock another apt holds.
const APT_LOCK_TIMEOUT: &str = "DPkg::Lock::Timeout=900";

fn dpkg_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// A Debian suite as a private apt configuration.
#[derive(Debug)]
pub struct Suite {
    /// The configuration's directory name in the cache.
    pub name: &'static str,
    /// `deb` lines: (archive path under deb.debian.org, distribution).
    pub lists: &'static [(&'static str, &'static str)],
    /// `APT::Default-Release`: the distribution whose versions apt prefers (backports).
    pub default_release: Option<&'static str>,
}

/// Debian 11: its kernel 5.10 gets its updates in the security archive.
pub const BULLSEYE: Suite = Suite {
    name: "bullseye",
    lists: &[("debian", "bullseye"), ("debian-security", "bullseye-security")],
    default_release: None,
};
/// Debian 12.
pub const BOOKWORM: Suite = Suite {
    name: "bookworm",
    lists: &[
        ("debian", "bookworm"),
        ("debian", "bookworm-updates"),
        ("debian-security", "bookworm-security"),
    ],
    default_release: None,
};
/// Debian 12 with its backports preferred (QEMU 10).
pub const BOOKWORM_BACKPORTS: Suite = Suite {
    name: "bookworm-backports",
    lists: &[
        ("debian", "bookworm"),
        ("debian", "bookworm-updates"),
        ("debian-security", "bookworm-security"),
        ("debian", "bookworm-backports"),
    ],
    default_release: Some("bookworm-backports"),
};
/// Debian 13.
pub const TRIXIE: Suite = Suite {
    name: "trixie",
    lists: &[
        ("debian", "trixie"),
        ("debian", "trixie-updates"),
        ("debian-security", "trixie-security"),
    ],
    default_release: None,
};
/// Debian's testing distribution: the newest kernels.
pub const FORKY: Suite = Suite {
    name: "forky",
    lists: &[("debian", "forky")],
    default_release: None,
};

/// Package lists older than this are fetched again before use.
const LISTS_MAX_AGE: Duration = Duration::from_hours(24);

/// The archive signing keys (Debian's `debian-archive-keyring` package).
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Where packages come from.
#[derive(Clone, Copy, Debug)]
pub enum Archive {
    /// The host's own apt configuration.
    Host,
    /// A suite through its private configuration.
    Private(&'static Suite),
}

impl Archive {
    /// `program` (`apt-get`, `apt-cache`) reading this archive's configuration, its lists
    /// fetched first when they are missing or a day old.
    pub fn command(self, program: &str) -> anyhow::Result<Command> {
        let mut c = Command::new(program);
        if let Archive::Private(suite) = self {
            let conf = configure(suite)?;
            c.env("APT_CONFIG", &conf);
            if lists_stale(&dir(suite)?) {
                update(suite, &conf)?;
            }
        }
        Ok(c)
    }

    /// `apt-get update`, for the host's lists (a fresh machine may have none).
    pub fn update(self) -> anyhow::Result<bool> {
        match self {
            Archive::Host => cmd::status(Command::new("apt-get").args(["update", "-q"])),
            Archive::Private(suite) => update(suite, &configure(suite)?).map(|()| true),
        }
    }

    /// The name printed with what comes from it.
    pub fn name(self) -> &'static str {
        match self {
            Archive::Host => "the host's apt sources",
            Archive::Private(suite) => suite.name,
        }
    }
}

/// The configuration's directory.
fn dir(suite: &Suite) -> anyhow::Result<PathBuf> {
    Ok(cache::dir()?.join("apt").join(suite.name))
}

/// Writes the suite's configuration (every time: it is small, and a changed source list takes
/// effect at once); returns the path of its `apt.conf`.
fn configure(suite: &Suite) -> anyhow::Result<PathBuf> {
    let d = dir(suite)?;
    for sub in [
        "etc/apt.conf.d",
        "etc/preferences.d",
        "etc/sources.list.d",
        "etc/trusted.gpg.d",
        "lists/partial",
        "archives/partial",
    ] {
        fs::create_dir_all(d.join(sub)).with_context(|| format!("creating {}", d.join(sub).display()))?;
    }
    let mut sources = String::new();
    for (path, dist) in suite.lists {
        sources.push_str(&format!(
            "deb [signed-by={KEYRING}] http://deb.debian.org/{path} {dist} main\n"
        ));
    }
    write_if_changed(&d.join("etc/sources.list"), &sources)?;
    let conf = d.join("apt.conf");
    write_if_changed(&conf, &apt_conf(&d, suite.default_release))?;
    Ok(conf)
}

/// The private `apt.conf`: every directory apt reads or writes under `d`, no installed
/// packages (`status` empty: nothing is installed through it), indexes of packages only. The
/// Release files' signatures are checked, not their `Valid-Until`: a testing suite's lapses
/// within weeks, and mirrors and snapshots serve it older than that.
fn apt_conf(d: &Path, default_release: Option<&str>) -> String {
    let d = d.display();
    let mut s = format!(
        "Dir::Etc \"{d}/etc\";\n\
         Dir::Etc::sourcelist \"{d}/etc/sources.list\";\n\
         Dir::State \"{d}\";\n\
         Dir::State::Lists \"{d}/lists\";\n\
         Dir::State::status \"/dev/null\";\n\
         Dir::Cache \"{d}\";\n\
         Dir::Cache::archives \"{d}/archives\";\n\
         Dir::Cache::pkgcache \"\";\n\
         Dir::Cache::srcpkgcache \"\";\n\
         Acquire::Languages \"none\";\n\
         Acquire::IndexTargets::deb::DEP-11::DefaultEnabled \"false\";\n\
         Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled \"false\";\n\
         Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled \"false\";\n\
         Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled \"false\";\n\
         APT::Sandbox::User \"root\";\n\
         Acquire::Check-Valid-Until \"false\";\n"
    );
    if let Some(release) = default_release {
        s.push_str(&format!("APT::Default-Release \"{release}\";\n"));
    }
    s
}

fn write_if_changed(path: &Path, text: &str) -> anyhow::Result<()> {
    if fs::read_to_string(path).ok().as_deref() != Some(text) {
        fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Whether the lists are missing or older than [`LISTS_MAX_AGE`].
fn lists_stale(d: &Path) -> bool {
    let newest = fs::read_dir(d.join("lists"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("_Packages"))
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .max();
    newest.is_none_or(|t| {
        SystemTime::now()
            .duration_since(t)
            .is_ok_and(|age| age > LISTS_MAX_AGE)
    })
}

fn update(suite: &Suite, conf: &Path) -> anyhow::Result<()> {
    eprintln!(
        "xtask: apt-get update ({}, a private configuration in the cache)",
        suite.name
    );
    let ok = cmd::quiet_ok(
        Command::new("apt-get")
            .env("APT_CONFIG", conf)
            .args(["update", "-q"]),
    );
    if !ok {
        bail!(
            "apt-get update of Debian {} failed (APT_CONFIG={}; is deb.debian.org reachable?)",
            suite.name,
            conf.display()
        );
    }
    // apt leaves the lists of a source it could not fetch as they were: touch nothing more.
    Ok(())
}

/// Waits (up to 15 minutes, saying so) while another process holds the apt lock file `path`
/// (apt takes it with `fcntl` locks: `F_GETLK` names the holder without taking it).
pub fn wait_for_lock(path: &Path) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_mins(15);
    let mut said = false;
    while let Some(pid) = lock_holder(path) {
        if std::time::Instant::now() > deadline {
            bail!(
                "{} is still held by process {pid} after 15 minutes",
                path.display()
            );
        }
        if !said {
            eprintln!(
                "xtask: waiting for process {pid}, which holds {} (an unattended upgrade?)",
                path.display()
            );
            said = true;
        }
        std::thread::sleep(Duration::from_secs(5));
    }
    Ok(())
}

/// The process holding a write lock on `path`, if any.
fn lock_holder(path: &Path) -> Option<i32> {
    use std::os::fd::AsRawFd as _;
    let file = fs::OpenOptions::new().read(true).write(true).open(path).ok()?;
    // SAFETY: a zeroed flock is a valid value of this plain C struct.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: `file` is open for the call; F_GETLK only fills `lock`.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &raw mut lock) };
    (rc == 0 && lock.l_type != libc::F_UNLCK as libc::c_short).then_some(lock.l_pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path apt would otherwise take from /etc/apt or /var is the private directory's.
    #[test]
    fn the_configuration_is_private() {
        let conf = apt_conf(Path::new("/c/apt/forky"), Some("bookworm-backports"));
        for line in conf.lines().filter(|l| l.starts_with("Dir::")) {
            let value = line.split('"').nth(1).unwrap();
            assert!(
                value.starts_with("/c/apt/forky") || value == "/dev/null" || value.is_empty(),
                "{line}"
            );
        }
        assert!(conf.contains("APT::Default-Release \"bookworm-backports\";"));
        assert!(!apt_conf(Path::new("/c"), None).contains("Default-Release"));
    }

    /// A lock held by another process (a child holding it with `flock`-compatible fcntl locks:
    /// python's `fcntl.lockf`) is seen; a free one is not.
    #[test]
    fn a_held_lock_names_its_holder() {
        let path = std::env::temp_dir().join(format!("xtask-apt-lock-{}", std::process::id()));
        fs::write(&path, "").unwrap();
        assert_eq!(lock_holder(&path), None);
        let mut child = Command::new("python3")
            .args([
                "-c",
                "import fcntl,sys,time; f=open(sys.argv[1],'w'); fcntl.lockf(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(30)",
            ])
            .arg(&path)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "held");
        assert_eq!(lock_holder(&path), Some(child.id() as i32));
        child.kill().unwrap();
        child.wait().unwrap();
        fs::remove_file(&path).unwrap();
    }
}
