//! `cargo xtask dist`: one tarball an operator unpacks at `/` to install rmap-trace as a system
//! daemon: the static binary (the eBPF object is inside it), the systemd unit of
//! `dist/rmap-trace.service`, the man page and shell completions the binary generates from its
//! clap definitions; beside it, the container image as an OCI archive ([`crate::oci`]). `check`
//! proves a tarball: the unit verifies, the page renders, the binary runs `--version` and
//! `probe` with only the unit's capabilities; and the image beside it: skopeo reads it, umoci
//! unpacks it, the unpacked binary has its file capabilities and runs.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{build, cmd, oci, setup};

/// The unit, relative to the repository.
const UNIT: &str = "dist/rmap-trace.service";
/// Where the files go, relative to `/`: the tarball holds exactly these paths.
const BIN: &str = "usr/local/bin/rmap-trace";
const UNIT_AT: &str = "etc/systemd/system/rmap-trace.service";
const MAN: &str = "usr/local/share/man/man1/rmap-trace.1";
/// Shell completions: (shell as `rmap-trace completions` names it, where it goes).
const COMPLETIONS: [(&str, &str); 3] = [
    ("bash", "usr/local/share/bash-completion/completions/rmap-trace"),
    ("zsh", "usr/local/share/zsh/site-functions/_rmap-trace"),
    (
        "fish",
        "usr/local/share/fish/vendor_completions.d/rmap-trace.fish",
    ),
];
/// What `check` needs beyond coreutils and tar.
const CHECK_PACKAGES: [&str; 3] = ["systemd", "man-db", "util-linux"];
/// The user `check` runs the binary as: nobody, so that only the unit's capabilities count.
const NOBODY: &str = "65534";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of the tarball.
    #[arg(long, default_value = "target/dist")]
    pub out: PathBuf,
    /// Build nothing: check this tarball.
    #[arg(long, value_name = "TARBALL")]
    pub check: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let tarball = if let Some(tarball) = args.check {
        tarball
    } else {
        setup::ensure()?;
        build(&args.out)?
    };
    check(&tarball)?;
    println!("dist: {}", tarball.display());
    Ok(())
}

/// Builds the static binary, its tarball and its OCI archive in `out` (relative to the
/// workspace); returns the tarball's path. The toolchains must be in place (`setup::ensure`).
pub fn build(out: &Path) -> anyhow::Result<PathBuf> {
    let binary = build::static_binary()?;
    let out = build::workspace_root().join(out);
    let tarball = package(&binary, &out)?;
    let archive = oci::build(&binary, &version_of(&binary)?, commit_time()?, &out)?;
    eprintln!("xtask: dist: {}", archive.display());
    Ok(tarball)
}

/// The version `binary --version` prints.
pub fn version_of(binary: &Path) -> anyhow::Result<String> {
    let version = cmd::stdout(Command::new(binary).arg("--version"))?;
    Ok(version
        .split_whitespace()
        .nth(1)
        .with_context(|| format!("{} --version printed no version", binary.display()))?
        .to_string())
}

/// Writes the tarball of `binary` into `out`; returns its path.
fn package(binary: &Path, out: &Path) -> anyhow::Result<PathBuf> {
    let version = version_of(binary)?;
    let stage = Scratch::new(out, "stage")?;
    let root = stage.path();
    put(
        root,
        BIN,
        &fs::read(binary).with_context(|| format!("reading {}", binary.display()))?,
        0o755,
    )?;
    let unit = build::workspace_root().join(UNIT);
    put(
        root,
        UNIT_AT,
        &fs::read(&unit).with_context(|| format!("reading {}", unit.display()))?,
        0o644,
    )?;
    put(
        root,
        MAN,
        cmd::stdout(Command::new(binary).arg("manpage"))?.as_bytes(),
        0o644,
    )?;
    for (shell, at) in COMPLETIONS {
        put(
            root,
            at,
            cmd::stdout(Command::new(binary).args(["completions", shell]))?.as_bytes(),
            0o644,
        )?;
    }
    let tarball = out.join(format!("rmap-trace-{version}-x86_64-linux.tar.gz"));
    // Files only, no directory entries: unpacked at `/`, the tarball must not reset the owner,
    // mode or mtime of /usr or /etc. Owned by root and dated by the commit, whoever builds it.
    cmd::run_ok(
        Command::new("tar")
            .args(["--create", "--gzip", "--no-recursion", "--sort=name"])
            .args(["--owner=0", "--group=0", "--numeric-owner"])
            .arg(format!("--mtime=@{}", commit_time()?))
            .arg("--file")
            .arg(&tarball)
            .arg("-C")
            .arg(root)
            .args(files()),
    )
    .with_context(|| format!("writing {}", tarball.display()))?;
    Ok(tarball)
}

/// Every path in the tarball.
fn files() -> Vec<&'static str> {
    let mut all = vec![BIN, UNIT_AT, MAN];
    all.extend(COMPLETIONS.iter().map(|(_, at)| *at));
    all
}

/// Writes `data` as `root/rel` with `mode`.
fn put(root: &Path, rel: &str, data: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = root.join(rel);
    fs::create_dir_all(path.parent().context("a path in the tarball")?)?;
    fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

/// The time of the commit built, so that two builds of one commit make the same tarball.
pub fn commit_time() -> anyhow::Result<u64> {
    let out = cmd::stdout(
        Command::new("git")
            .args(["log", "-1", "--format=%ct"])
            .current_dir(build::workspace_root()),
    )?;
    out.trim()
        .parse()
        .with_context(|| format!("git log -1 --format=%ct printed {out:?}"))
}

/// Checks a tarball: it holds exactly the expected files; the unit passes `systemd-analyze
/// verify`; the man page renders with `man -l`; the bash completion parses; the binary prints
/// its version and runs `probe` as nobody with the unit's capabilities and nothing else.
pub fn check(tarball: &Path) -> anyhow::Result<()> {
    // Absolute, as the unit's ExecStart will be.
    let tarball = &fs::canonicalize(tarball).with_context(|| format!("{}", tarball.display()))?;
    crate::apt::install(&CHECK_PACKAGES)?;
    let dir = Scratch::new(tarball.parent().unwrap_or(Path::new(".")), "check")?;
    let root = dir.path();
    let listing = cmd::stdout(Command::new("tar").arg("-tzf").arg(tarball))?;
    let mut listed: Vec<&str> = listing.lines().collect();
    let mut want = files();
    listed.sort_unstable();
    want.sort_unstable();
    if listed != want {
        bail!("{} holds {listed:?}, not {want:?}", tarball.display());
    }
    cmd::run_ok(Command::new("tar").arg("-xzf").arg(tarball).arg("-C").arg(root))?;
    let binary = root.join(BIN);
    verify_unit(root, &binary)?;
    render_man(&root.join(MAN))?;
    let bash = root.join(COMPLETIONS[0].1);
    cmd::stdout(Command::new("bash").arg("-n").arg(&bash))
        .with_context(|| format!("{} is not valid bash", bash.display()))?;
    let version = cmd::stdout(Command::new(&binary).arg("--version"))?;
    if !version.starts_with("rmap-trace ") {
        bail!("{} --version printed {version:?}", binary.display());
    }
    let caps = unit_capabilities(&fs::read_to_string(root.join(UNIT_AT))?)?;
    probe_with(&binary, &caps)?;
    let archive = tarball
        .parent()
        .unwrap_or(Path::new("."))
        .join(oci::archive_name(&version_of(&binary)?));
    if !archive.is_file() {
        bail!(
            "no container image beside {}: {} is missing",
            tarball.display(),
            archive.display()
        );
    }
    drop(oci::check(&archive, &version_of(&binary)?)?);
    eprintln!(
        "xtask: dist check passed: {} ({})",
        tarball.display(),
        version.trim()
    );
    Ok(())
}

/// `systemd-analyze verify` on a copy of the unit whose `ExecStart` is the unpacked binary:
/// verify insists that the program exists, and it is not installed on this host.
fn verify_unit(root: &Path, binary: &Path) -> anyhow::Result<()> {
    let unit = fs::read_to_string(root.join(UNIT_AT))?;
    let installed = format!("/{BIN}");
    if !unit
        .lines()
        .any(|l| l.starts_with(&format!("ExecStart={installed} ")))
    {
        bail!("{UNIT}: ExecStart does not start {installed}");
    }
    let copy = root.join("rmap-trace.service");
    fs::write(&copy, unit.replace(&installed, &binary.display().to_string()))?;
    // verify also looks up the man page of Documentation=: the unpacked one.
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .env("MANPATH", root.join("usr/local/share/man"))
        .output()
        .context("running systemd-analyze verify")?;
    let said = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    // Any complaint about our unit counts: verify exits 0 on some of them.
    if !out.status.success() || said.contains("rmap-trace.service") {
        bail!("systemd-analyze verify {UNIT}:\n{said}");
    }
    eprintln!("xtask: systemd-analyze verify {UNIT}: ok{}", indent(&said));
    Ok(())
}

/// `man -l` formats the page without warnings and it names the tool.
fn render_man(page: &Path) -> anyhow::Result<()> {
    let out = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
        .context("running man -l")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let warnings = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !warnings.trim().is_empty() || !text.contains("rmap-trace") {
        bail!(
            "man -l {} does not render cleanly:\n{warnings}{text}",
            page.display()
        );
    }
    let start: Vec<&str> = text.lines().take(6).collect();
    eprintln!(
        "xtask: man -l {}: ok{}",
        page.display(),
        indent(&start.join("\n"))
    );
    Ok(())
}

/// The capabilities the unit grants: its `AmbientCapabilities=`, which must equal its
/// `CapabilityBoundingSet=`.
pub fn unit_capabilities(unit: &str) -> anyhow::Result<Vec<String>> {
    let value = |key: &str| -> Vec<String> {
        let mut caps: Vec<String> = unit
            .lines()
            .filter_map(|l| l.trim().strip_prefix(key))
            .flat_map(|v| v.split_whitespace().map(String::from))
            .collect();
        caps.sort();
        caps
    };
    let ambient = value("AmbientCapabilities=");
    if ambient.is_empty() || ambient != value("CapabilityBoundingSet=") {
        bail!("{UNIT}: AmbientCapabilities= and CapabilityBoundingSet= must name the same capabilities");
    }
    Ok(ambient)
}

/// Runs `binary probe --json` as root and as nobody with exactly `caps` (ambient, inheritable
/// and bounding), as the unit would. Both must succeed, find tracefs alike and pick the same
/// attach mode, or the unit lacks a capability; other modes may differ (a kprobe needs
/// `CAP_SYS_ADMIN` under Debian's `perf_event_paranoid=3`) and are shown.
fn probe_with(binary: &Path, caps: &[String]) -> anyhow::Result<()> {
    if !crate::cmd::is_root() {
        bail!("the dist check compares `rmap-trace probe` as root and as nobody: run it as root");
    }
    let dir = Scratch::new(&std::env::temp_dir(), "probe")?;
    // nobody writes its report here too.
    fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777))?;
    let (root_json, nobody_json) = (dir.path().join("root.json"), dir.path().join("nobody.json"));
    cmd::stdout(Command::new(binary).arg("probe").arg("--json").arg(&root_json))?;
    let list: Vec<String> = caps
        .iter()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let set = format!("-all,{}", list.join(","));
    cmd::stdout(
        Command::new("setpriv")
            .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
            .args(["--inh-caps", &set, "--ambient-caps", &set, "--bounding-set", &set])
            .arg("--")
            .arg(binary)
            .args(["probe", "--json"])
            .arg(&nobody_json),
    )
    .with_context(|| format!("rmap-trace probe as nobody with {}", caps.join(" ")))?;
    let read = |p: &Path| -> anyhow::Result<View> {
        let text = fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        Ok(View::of(
            &serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))?,
        ))
    };
    let (root, nobody) = (read(&root_json)?, read(&nobody_json)?);
    let shown = |v: &View| indent(&v.lines.join("\n"));
    if root.tracefs != nobody.tracefs || root.chosen != nobody.chosen {
        bail!(
            "rmap-trace probe as nobody with {} sees{}\nbut as root{}",
            caps.join(" "),
            shown(&nobody),
            shown(&root)
        );
    }
    let same = if root.lines == nobody.lines {
        "the same as root"
    } else {
        "root's tracefs and mode"
    };
    eprintln!(
        "xtask: rmap-trace probe as nobody with {}: {same}{}",
        caps.join(" "),
        shown(&nobody)
    );
    Ok(())
}

/// What `probe --json` says rmap-trace can attach to.
#[derive(Debug)]
struct View {
    /// `host.tracefs`: where tracefs is, if anywhere.
    tracefs: Option<String>,
    /// The mode an attach would use: the first available one.
    chosen: Option<String>,
    /// Each mode as a line, for messages.
    lines: Vec<String>,
}

impl View {
    fn of(probe: &serde_json::Value) -> Self {
        let modes = probe["modes"].as_array().map(Vec::as_slice).unwrap_or_default();
        let lines = modes
            .iter()
            .map(|m| {
                let state = if m["available"] == true {
                    "available"
                } else {
                    "unavailable"
                };
                format!(
                    "mode {} {state}: {}",
                    m["mode"].as_str().unwrap_or("?"),
                    m["detail"].as_str().unwrap_or("")
                )
            })
            .collect();
        Self {
            tracefs: probe["host"]["tracefs"].as_str().map(String::from),
            chosen: modes
                .iter()
                .find(|m| m["available"] == true)
                .and_then(|m| m["mode"].as_str())
                .map(String::from),
            lines,
        }
    }
}

/// `text`'s non-blank lines, each on a new line indented by two.
fn indent(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        out.push_str("\n  ");
        out.push_str(line);
    }
    out
}

/// A fresh directory `<parent>/.<name>-<pid>`, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(parent: &Path, name: &str) -> anyhow::Result<Self> {
        let dir = parent.join(format!(".{name}-{}", std::process::id()));
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.0) {
            eprintln!("xtask: removing {}: {e}", self.0.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_unit_grants_matching_capabilities() {
        let unit = fs::read_to_string(build::workspace_root().join(UNIT)).unwrap();
        let caps = unit_capabilities(&unit).unwrap();
        assert!(caps.iter().any(|c| c == "CAP_BPF"), "{caps:?}");
        assert!(unit.contains(&format!("ExecStart=/{BIN} --attach-only")));
    }

    #[test]
    fn the_chosen_mode_is_the_first_available() {
        let probe = serde_json::json!({
            "host": { "tracefs": "/sys/kernel/tracing" },
            "modes": [
                { "mode": "tracepoint", "available": false, "detail": "no rmap:rmap_walk_start" },
                { "mode": "fentry", "available": true, "detail": "fentry+fexit:rmap_walk_ksm" },
                { "mode": "kprobe", "available": true, "detail": "kprobe+kretprobe:rmap_walk_ksm" },
            ]
        });
        let view = View::of(&probe);
        assert_eq!(view.chosen.as_deref(), Some("fentry"));
        assert_eq!(view.tracefs.as_deref(), Some("/sys/kernel/tracing"));
        assert_eq!(view.lines.len(), 3);
        assert_eq!(
            view.lines[0],
            "mode tracepoint unavailable: no rmap:rmap_walk_start"
        );
        assert_eq!(View::of(&serde_json::json!({ "host": {} })).chosen, None);
    }

    #[test]
    fn capabilities_must_match_the_bounding_set() {
        let unit = "CapabilityBoundingSet=CAP_BPF\nAmbientCapabilities=CAP_BPF CAP_SYS_ADMIN\n";
        assert!(unit_capabilities(unit).is_err());
        assert!(unit_capabilities("[Service]\n").is_err());
    }
}
