//! The container image of `cargo xtask dist`: the static binary on an empty base, as an OCI
//! image layout in one tar file (an "OCI archive", `skopeo`'s `oci-archive:` transport). One
//! gzip layer holds `usr/local/bin/rmap-trace` with the `DaemonSet`'s four capabilities as
//! permitted file capabilities (a non-root user gets added capabilities only so: Kubernetes sets
//! no ambient ones; rmap-trace makes them effective itself, so that a pod granting fewer still
//! starts) and the licences; the config runs it as user 65534 and is labelled with the version
//! and licence. Built from the commit's time, so that one commit makes one image.
use std::{fs, path::Path, process::Command};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::{build::workspace_root, cmd};

/// Where the binary is in the image.
pub const BINARY: &str = "usr/local/bin/rmap-trace";
/// The user the image runs as: nobody, by number (there is no /etc/passwd).
pub const USER: &str = "65534:65534";
/// The file capabilities of the binary (`setcap` syntax): the `DaemonSet`'s `capabilities.add`,
/// permitted, not effective (with the effective bit, a bounding set lacking one of them makes
/// `execve` fail with EPERM: the kernel's rule for programs that cannot tell).
pub const FILE_CAPS: &str = "cap_dac_read_search,cap_syslog,cap_perfmon,cap_bpf=p";
/// SPDX of the binary: the userspace crates' licence and the eBPF object's.
pub const LICENSES: &str = "(MIT OR Apache-2.0) AND (MIT OR GPL-2.0-only)";
const LICENSE_FILES: [&str; 3] = ["LICENSE-MIT", "LICENSE-APACHE", "LICENSE-GPL-2.0"];

/// The archive's name for `version`.
pub fn archive_name(version: &str) -> String {
    format!("rmap-trace-{version}-oci.tar")
}

/// Writes the OCI archive of `binary` (version `version`, made at `created`, a Unix time) into
/// `out`; returns its path. Needs root: the file capabilities are set with `setcap`.
pub fn build(binary: &Path, version: &str, created: u64, out: &Path) -> anyhow::Result<std::path::PathBuf> {
    if !crate::cmd::is_root() {
        bail!("the OCI image gives its binary file capabilities (setcap): run `cargo xtask dist` as root");
    }
    crate::apt::install(&["libcap2-bin"])?;
    let work = out.join(format!(".oci-{}", std::process::id()));
    let _cleanup = Removed(work.clone());
    let blobs = work.join("layout/blobs/sha256");
    fs::create_dir_all(&blobs)?;
    let layer = layer(binary, created, &work)?;
    let (layer_digest, layer_size) = blob(&blobs, &fs::read(&layer)?)?;
    let diff_id = sha256(&gunzip(&layer)?);
    let revision = cmd::stdout(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(workspace_root()),
    )?;
    let config = config(version, created, revision.trim(), &diff_id);
    let (config_digest, config_size) = blob(&blobs, &serde_json::to_vec(&config)?)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size}],
        "annotations": {"org.opencontainers.image.version": version},
    });
    let (manifest_digest, manifest_size) = blob(&blobs, &serde_json::to_vec(&manifest)?)?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": version},
        }],
    });
    fs::write(work.join("layout/index.json"), serde_json::to_vec(&index)?)?;
    fs::write(
        work.join("layout/oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let archive = out.join(archive_name(version));
    cmd::run_ok(
        Command::new("tar")
            .args(reproducible(created))
            .arg("--file")
            .arg(&archive)
            .arg("-C")
            .arg(work.join("layout"))
            .args(["oci-layout", "index.json", "blobs"]),
    )
    .with_context(|| format!("writing {}", archive.display()))?;
    Ok(archive)
}

/// The image config: who runs what, and the labels.
fn config(version: &str, created: u64, revision: &str, diff_id: &str) -> Value {
    let created =
        cmd::stdout(Command::new("date").args(["-u", "-d", &format!("@{created}"), "+%Y-%m-%dT%H:%M:%SZ"]))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
    json!({
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": USER,
            "Entrypoint": [format!("/{BINARY}")],
            "Cmd": ["--attach-only", "--prometheus", "0.0.0.0:9500"],
            "ExposedPorts": {"9500/tcp": {}},
            "Labels": {
                "org.opencontainers.image.title": "rmap-trace",
                "org.opencontainers.image.description": "Latency of the kernel's reverse-mapping walks, per folio, through eBPF",
                "org.opencontainers.image.version": version,
                "org.opencontainers.image.licenses": LICENSES,
                "org.opencontainers.image.revision": revision,
                "org.opencontainers.image.created": created,
            },
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": "cargo xtask dist"}],
    })
}

/// The layer: the binary with its file capabilities, the licences; a gzip tar.
fn layer(binary: &Path, created: u64, work: &Path) -> anyhow::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let root = work.join("rootfs");
    let bin = root.join(BINARY);
    fs::create_dir_all(bin.parent().context("binary path")?)?;
    fs::copy(binary, &bin).with_context(|| format!("copying {}", binary.display()))?;
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755))?;
    cmd::run_ok(Command::new("setcap").arg(FILE_CAPS).arg(&bin))?;
    let licenses = root.join("usr/share/licenses/rmap-trace");
    fs::create_dir_all(&licenses)?;
    for f in LICENSE_FILES {
        fs::copy(workspace_root().join(f), licenses.join(f))?;
    }
    let tar = work.join("layer.tar");
    cmd::run_ok(
        Command::new("tar")
            .args(reproducible(created))
            .args(["--xattrs", "--xattrs-include=security.capability"])
            .arg("--file")
            .arg(&tar)
            .arg("-C")
            .arg(&root)
            .arg("usr"),
    )?;
    cmd::run_ok(Command::new("gzip").args(["-n", "-9"]).arg(&tar))?;
    Ok(work.join("layer.tar.gz"))
}

/// GNU tar's options for an archive that depends on its files' contents alone.
fn reproducible(created: u64) -> Vec<String> {
    [
        "--create",
        "--format=pax",
        "--sort=name",
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .chain([format!("--mtime=@{created}")])
    .collect()
}

fn sha256(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let mut out = String::from("sha256:");
    for b in hash {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Stores `data` as a blob; its digest and size.
fn blob(blobs: &Path, data: &[u8]) -> anyhow::Result<(String, usize)> {
    let digest = sha256(data);
    let name = digest.trim_start_matches("sha256:");
    fs::write(blobs.join(name), data)?;
    Ok((digest, data.len()))
}

fn gunzip(path: &Path) -> anyhow::Result<Vec<u8>> {
    let out = Command::new("gzip")
        .args(["-dc"])
        .arg(path)
        .output()
        .context("running gzip -dc")?;
    if !out.status.success() {
        bail!("gzip -dc {} failed", path.display());
    }
    Ok(out.stdout)
}

/// A directory removed on drop.
struct Removed(std::path::PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        if self.0.exists()
            && let Err(e) = fs::remove_dir_all(&self.0)
        {
            eprintln!("xtask: removing {}: {e}", self.0.display());
        }
    }
}

/// What `check` found in an archive: the unpacked bundle's directory (removed on drop).
pub struct Unpacked {
    dir: Removed,
}

impl Unpacked {
    /// The OCI runtime bundle (`config.json` and `rootfs/`) `umoci unpack` made.
    pub fn bundle(&self) -> std::path::PathBuf {
        self.dir.0.join("bundle")
    }
}

/// Inspects an archive with Debian's skopeo (its config and labels), copies it into an OCI
/// layout (which checks every digest), unpacks it with umoci as a runtime would and checks the
/// unpacked binary: its file capabilities and `--version`. Prints what it saw.
pub fn check(archive: &Path, version: &str) -> anyhow::Result<Unpacked> {
    crate::apt::install(&["skopeo", "umoci", "libcap2-bin"])?;
    let reference = format!("oci-archive:{}", archive.display());
    let inspect = cmd::stdout(Command::new("skopeo").args(["inspect", "--config", &reference]))?;
    eprintln!(
        "xtask: skopeo inspect --config {reference}:\n{}",
        inspect.trim_end()
    );
    let config: Value = serde_json::from_str(&inspect).context("skopeo's config is no JSON")?;
    let labels = &config["config"]["Labels"];
    let want = [
        (config["config"]["User"].as_str(), USER),
        (labels["org.opencontainers.image.version"].as_str(), version),
        (labels["org.opencontainers.image.licenses"].as_str(), LICENSES),
        (config["config"]["Entrypoint"][0].as_str(), &format!("/{BINARY}")),
    ];
    for (got, want) in want {
        if got != Some(want) {
            bail!(
                "{}: the image config has {got:?} where {want:?} belongs",
                archive.display()
            );
        }
    }
    let dir = Removed(archive.with_extension(format!("check-{}", std::process::id())));
    let layout = dir.0.join("layout");
    fs::create_dir_all(&dir.0)?;
    cmd::run_ok(
        Command::new("skopeo")
            .args(["copy", "--quiet", &reference])
            .arg(format!("oci:{}:{version}", layout.display())),
    )?;
    let bundle = dir.0.join("bundle");
    cmd::run_ok(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:{version}", layout.display()))
            .arg(&bundle),
    )?;
    let bin = bundle.join("rootfs").join(BINARY);
    let caps = cmd::stdout(Command::new("getcap").arg(&bin))?;
    eprintln!("xtask: getcap (unpacked by umoci): {}", caps.trim());
    if !caps.contains(FILE_CAPS) {
        bail!("the unpacked binary has capabilities {caps:?}, not {FILE_CAPS}");
    }
    let runtime: Value = serde_json::from_slice(&fs::read(bundle.join("config.json"))?)?;
    let user = &runtime["process"]["user"];
    eprintln!(
        "xtask: umoci's runtime config: uid {} gid {} args {}",
        user["uid"], user["gid"], runtime["process"]["args"]
    );
    if user["uid"] != 65534 || user["gid"] != 65534 {
        bail!("umoci's runtime config runs the image as {user}, not 65534");
    }
    let shown = cmd::stdout(Command::new(&bin).arg("--version"))?;
    if shown.trim() != format!("rmap-trace {version}") {
        bail!("the unpacked binary says {shown:?}");
    }
    Ok(Unpacked { dir })
}
