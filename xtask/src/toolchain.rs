//! The pinned toolchains (`rust-toolchain.toml`, `ebpf-toolchain.toml`) and what is installed:
//! the eBPF nightly's LLVM major must equal bpf-linker's, or bpf-linker fails on the object's
//! bitcode with `Invalid record` (a newer LLVM's bitcode) long after the build started.
use std::{
    fmt, fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::build::workspace_root;

/// `ebpf-toolchain.toml`.
#[derive(Debug, Deserialize)]
pub struct Pin {
    pub toolchain: PinnedToolchain,
    #[serde(rename = "bpf-linker")]
    pub bpf_linker: PinnedLinker,
}

#[derive(Debug, Deserialize)]
pub struct PinnedToolchain {
    /// A dated nightly, e.g. `nightly-2026-05-19`.
    pub channel: String,
    #[serde(rename = "llvm-major")]
    pub llvm_major: u32,
}

#[derive(Debug, Deserialize)]
pub struct PinnedLinker {
    pub version: String,
    /// Cargo features, one of them `llvm-N` or `rust-llvm-N`.
    pub features: Vec<String>,
}

impl Pin {
    pub fn load() -> anyhow::Result<Self> {
        let path = workspace_root().join("ebpf-toolchain.toml");
        let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let pin: Self = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let linker_llvm = llvm_major_from_features(&pin.bpf_linker.features);
        if linker_llvm != Some(pin.toolchain.llvm_major) {
            let m = pin.toolchain.llvm_major;
            bail!(
                "{}: bpf-linker features {:?} do not name LLVM {m} (llvm-{m} or rust-llvm-{m})",
                path.display(),
                pin.bpf_linker.features,
            );
        }
        Ok(pin)
    }

    /// The command that installs the pinned bpf-linker.
    pub fn linker_install_args(&self) -> Vec<String> {
        vec![
            "install".into(),
            "--locked".into(),
            "--force".into(),
            format!("bpf-linker@{}", self.bpf_linker.version),
            "--no-default-features".into(),
            "--features".into(),
            self.bpf_linker.features.join(","),
        ]
    }
}

/// The LLVM major of `rustc -vV` output (`LLVM version: 22.1.4`).
pub fn llvm_major_from_rustc(verbose_version: &str) -> Option<u32> {
    verbose_version
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version:"))
        .and_then(|v| v.trim().split('.').next())
        .and_then(|m| m.parse().ok())
}

/// The LLVM major a dynamically linked bpf-linker loads, from `ldd` output
/// (`libLLVM.so.22.1`, `libLLVM-22.so`, `libLLVM.so.22`).
pub fn llvm_major_from_ldd(ldd: &str) -> Option<u32> {
    ldd.lines().find_map(|line| {
        let name = line.split_whitespace().next()?;
        let rest = name.strip_prefix("libLLVM")?;
        let digits = rest.trim_start_matches(['.', '-', 's', 'o']);
        let major: String = digits.chars().take_while(char::is_ascii_digit).collect();
        major.parse().ok()
    })
}

/// The LLVM major named by cargo features (`llvm-22`, `rust-llvm-22`).
pub fn llvm_major_from_features(features: &[String]) -> Option<u32> {
    features.iter().find_map(|f| {
        f.strip_prefix("rust-llvm-")
            .or_else(|| f.strip_prefix("llvm-"))
            .and_then(|m| m.parse().ok())
    })
}

/// How `cargo install` built a crate, from `~/.cargo/.crates2.json`.
#[derive(Debug, PartialEq, Eq)]
pub struct InstallRecord {
    pub version: String,
    pub features: Vec<String>,
    pub no_default_features: bool,
}

/// The record of `krate` in the text of `.crates2.json`.
pub fn install_record(crates2: &str, krate: &str) -> Option<InstallRecord> {
    let json: serde_json::Value = serde_json::from_str(crates2).ok()?;
    let (key, entry) = json
        .get("installs")?
        .as_object()?
        .iter()
        .find(|(k, _)| k.split(' ').next() == Some(krate))?;
    Some(InstallRecord {
        version: key.split(' ').nth(1)?.to_string(),
        features: entry
            .get("features")?
            .as_array()?
            .iter()
            .filter_map(|f| f.as_str().map(str::to_owned))
            .collect(),
        no_default_features: entry.get("no_default_features")?.as_bool()?,
    })
}

/// An installed bpf-linker and the LLVM major it was built for, with how that was found.
#[derive(Debug)]
pub struct Linker {
    pub path: PathBuf,
    pub version: String,
    /// `None` when nothing says which LLVM it uses: such a linker is not trusted.
    pub llvm_major: Option<u32>,
    pub evidence: String,
}

impl fmt::Display for Linker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.llvm_major {
            Some(m) => write!(f, "bpf-linker {}, LLVM {m} ({})", self.version, self.evidence),
            None => write!(f, "bpf-linker {}, LLVM unknown ({})", self.version, self.evidence),
        }
    }
}

fn stdout_of(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
}

/// The bpf-linker on PATH, or `None`.
pub fn find_linker() -> Option<Linker> {
    let path = PathBuf::from(stdout_of(Command::new("sh").args(["-c", "command -v bpf-linker"]))?.trim());
    let version = stdout_of(Command::new(&path).arg("--version"))
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "(unknown version)".into());
    if let Some(major) = stdout_of(Command::new("ldd").arg(&path))
        .as_deref()
        .and_then(llvm_major_from_ldd)
    {
        let evidence = format!("ldd: links libLLVM {major}");
        return Some(Linker {
            path,
            version,
            llvm_major: Some(major),
            evidence,
        });
    }
    // Statically linked, or loading the toolchain's libLLVM at run time (rust-llvm-N): only the
    // features it was built with say which LLVM, and only for the copy cargo installed there.
    let record = cargo_home()
        .filter(|home| path.starts_with(home.join("bin")))
        .and_then(|home| fs::read_to_string(home.join(".crates2.json")).ok())
        .and_then(|text| install_record(&text, "bpf-linker"));
    let (llvm_major, evidence) = match record {
        Some(r) if r.version == version => match llvm_major_from_features(&r.features) {
            Some(m) => (
                Some(m),
                format!("cargo install --features {}", r.features.join(",")),
            ),
            None if r.no_default_features => (None, "built with no LLVM feature".into()),
            None => (
                None,
                "built with its default features, which vary by version".into(),
            ),
        },
        Some(r) => (None, format!("cargo's record is of version {}", r.version)),
        None => (
            None,
            format!(
                "no libLLVM in ldd and no cargo install record for {}",
                path.display()
            ),
        ),
    };
    Some(Linker {
        path,
        version,
        llvm_major,
        evidence,
    })
}

/// What a bpf-linker lacks to build with the pin, or `None` when it fits.
pub fn linker_mismatch(pin: &Pin, linker: &Linker) -> Option<String> {
    let want = pin.toolchain.llvm_major;
    match linker.llvm_major {
        Some(m) if m != want => Some(format!(
            "{} at {} is built against LLVM {m}, but the eBPF toolchain {} has LLVM {want}",
            linker_name(linker),
            linker.path.display(),
            pin.toolchain.channel
        )),
        None => Some(format!(
            "{} at {}: cannot tell which LLVM it is built against ({}), the eBPF toolchain {} needs LLVM {want}",
            linker_name(linker),
            linker.path.display(),
            linker.evidence,
            pin.toolchain.channel
        )),
        Some(_) if linker.version != pin.bpf_linker.version => Some(format!(
            "{} at {} is not the pinned version {}",
            linker_name(linker),
            linker.path.display(),
            pin.bpf_linker.version
        )),
        Some(_) => None,
    }
}

fn linker_name(linker: &Linker) -> String {
    format!("bpf-linker {}", linker.version)
}

/// `rustc -vV` of a toolchain (`None`: the one rust-toolchain.toml selects here).
pub fn rustc_vv(toolchain: Option<&str>) -> anyhow::Result<String> {
    let mut cmd = Command::new("rustup");
    cmd.current_dir(workspace_root()).arg("run");
    match toolchain {
        Some(t) => cmd.arg(t),
        None => cmd.arg(active_stable()?),
    };
    cmd.args(["rustc", "-vV"]);
    stdout_of(&mut cmd).with_context(|| format!("running {cmd:?}"))
}

/// The channel of rust-toolchain.toml.
pub fn active_stable() -> anyhow::Result<String> {
    #[derive(Deserialize)]
    struct File {
        toolchain: Channel,
    }
    #[derive(Deserialize)]
    struct Channel {
        channel: String,
    }
    let path = workspace_root().join("rust-toolchain.toml");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let file: File = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(file.toolchain.channel)
}

/// One line of `rustc -vV`: `rustc 1.95.0 (59807616e 2026-04-14), LLVM 22.1.2`.
pub fn describe_rustc(verbose_version: &str) -> String {
    let first = verbose_version.lines().next().unwrap_or("rustc ?");
    let llvm = verbose_version
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version:"))
        .map_or("?", str::trim);
    format!("{first}, LLVM {llvm}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rustc -vV` of the workspace's stable, as printed on our machines.
    const STABLE_1_95: &str = "rustc 1.95.0 (59807616e 2026-04-14)
binary: rustc
commit-hash: 59807616e1fa2540724bfbac14d7976d7e4a3860
commit-date: 2026-04-14
host: x86_64-unknown-linux-gnu
release: 1.95.0
LLVM version: 22.1.2
";
    /// The pinned eBPF nightly.
    const NIGHTLY_2026_05_19: &str = "rustc 1.97.0-nightly (9eb3be26b 2026-05-18)
binary: rustc
commit-hash: 9eb3be26b46eccea1de7448ea9cc3c1d20bb1a35
commit-date: 2026-05-18
host: x86_64-unknown-linux-gnu
release: 1.97.0-nightly
LLVM version: 22.1.4
";

    /// What plain `nightly` became on 2026-10-30: its LLVM 23 bitcode broke an LLVM 22 linker.
    const NIGHTLY_2026_10_29: &str = "rustc 1.101.0-nightly (92b5b8c87 2026-10-29)
binary: rustc
commit-hash: 92b5b8c87c61b20adc9001b41baf587634a74734
commit-date: 2026-10-29
host: x86_64-unknown-linux-gnu
release: 1.101.0-nightly
LLVM version: 23.1.4
";

    #[test]
    fn llvm_major_of_real_rustc_outputs() {
        assert_eq!(llvm_major_from_rustc(NIGHTLY_2026_10_29), Some(23));
        assert_eq!(llvm_major_from_rustc(STABLE_1_95), Some(22));
        assert_eq!(llvm_major_from_rustc(NIGHTLY_2026_05_19), Some(22));
        assert_eq!(llvm_major_from_rustc("rustc 1.0.0\nbinary: rustc\n"), None);
        assert_eq!(
            describe_rustc(NIGHTLY_2026_05_19),
            "rustc 1.97.0-nightly (9eb3be26b 2026-05-18), LLVM 22.1.4"
        );
    }

    #[test]
    fn llvm_major_of_ldd_outputs() {
        let debian = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibLLVM.so.22.1 => /lib/x86_64-linux-gnu/libLLVM.so.22.1 (0x7f)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n";
        assert_eq!(llvm_major_from_ldd(debian), Some(22));
        let older = "\tlibLLVM-19.so.1 => /usr/lib/llvm-19/lib/libLLVM-19.so.1 (0x7f)\n";
        assert_eq!(llvm_major_from_ldd(older), Some(19));
        let rust_llvm = "\tlinux-vdso.so.1 (0x00007f98)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x7f)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n";
        assert_eq!(llvm_major_from_ldd(rust_llvm), None);
    }

    #[test]
    fn install_record_and_features() {
        let crates2 = r#"{"installs":{"bpf-linker 0.10.3 (registry+https://github.com/rust-lang/crates.io-index)":{"version_req":"=0.10.3","bins":["bpf-linker"],"features":["rust-llvm-22"],"all_features":false,"no_default_features":true,"profile":"release"},"cargo-nextest 0.9.1 (registry+x)":{"features":[],"no_default_features":false}}}"#;
        let r = install_record(crates2, "bpf-linker").expect("record");
        assert_eq!(r.version, "0.10.3");
        assert!(r.no_default_features);
        assert_eq!(llvm_major_from_features(&r.features), Some(22));
        assert_eq!(llvm_major_from_features(&["llvm-23".into()]), Some(23));
        assert_eq!(llvm_major_from_features(&["llvm-link-static".into()]), None);
        assert!(install_record(crates2, "bpf").is_none());
    }

    fn linker(version: &str, llvm: Option<u32>) -> Linker {
        Linker {
            path: "/root/.cargo/bin/bpf-linker".into(),
            version: version.into(),
            llvm_major: llvm,
            evidence: "test".into(),
        }
    }

    #[test]
    fn mismatch_is_named() {
        let pin = Pin::load().expect("the repository's ebpf-toolchain.toml");
        let v = pin.bpf_linker.version.clone();
        let m = pin.toolchain.llvm_major;
        assert_eq!(linker_mismatch(&pin, &linker(&v, Some(m))), None);
        let other = linker_mismatch(&pin, &linker(&v, Some(m + 1))).expect("mismatch");
        assert!(other.contains(&format!("LLVM {}", m + 1)), "{other}");
        assert!(linker_mismatch(&pin, &linker(&v, None)).is_some());
        assert!(linker_mismatch(&pin, &linker("0.0.1", Some(m))).is_some());
    }
}
