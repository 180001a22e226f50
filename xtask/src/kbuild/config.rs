//! The kernel configuration: `make tinyconfig`, our fragment `kernel/rmap-guest.config` merged
//! over it, `make olddefconfig`, and a check that every line of the fragment survived (a
//! dependency the fragment forgot makes Kconfig drop an option silently).
use std::{fs, path::Path, process::Command};

use anyhow::{Context as _, bail};

/// What a fragment line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Want<'a> {
    Set(&'a str),
    Unset(&'a str),
}

fn wants(fragment: &str) -> Vec<Want<'_>> {
    fragment
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            if let Some(name) = l.strip_prefix("# ").and_then(|r| r.strip_suffix(" is not set")) {
                return Some(Want::Unset(name));
            }
            (l.starts_with("CONFIG_") && l.contains('=')).then_some(Want::Set(l))
        })
        .collect()
}

/// The fragment lines that `.config` does not honour.
pub fn dropped(fragment: &str, config: &str) -> Vec<String> {
    wants(fragment)
        .into_iter()
        .filter_map(|w| match w {
            Want::Set(line) => (!config.lines().any(|c| c == line)).then(|| line.to_string()),
            Want::Unset(name) => config
                .lines()
                .any(|c| c.starts_with(&format!("{name}=")))
                .then(|| format!("# {name} is not set")),
        })
        .collect()
}

/// Writes `<build>/.config` from tinyconfig plus the fragment.
pub fn configure(tree: &Path, build: &Path, fragment: &Path) -> anyhow::Result<()> {
    // Quiet unless it fails: tinyconfig reports every value its own fragments override.
    let make = |target: &str| -> anyhow::Result<()> {
        let out = Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(tree)
            .arg(format!("O={}", build.display()))
            .arg(target)
            .output()
            .context("running make (apt-get install make)")?;
        if !out.status.success() {
            bail!(
                "make {target} failed in {}: {}",
                tree.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    };
    make("tinyconfig")?;
    let merged = Command::new(tree.join("scripts/kconfig/merge_config.sh"))
        .current_dir(tree)
        .arg("-m")
        .arg("-O")
        .arg(build)
        .arg(build.join(".config"))
        .arg(fragment)
        .output()
        .context("running scripts/kconfig/merge_config.sh")?;
    if !merged.status.success() {
        bail!(
            "merge_config.sh failed: {}",
            String::from_utf8_lossy(&merged.stderr).trim()
        );
    }
    make("olddefconfig")?;
    let config = fs::read_to_string(build.join(".config"))?;
    let fragment_text = fs::read_to_string(fragment)?;
    let lost = dropped(&fragment_text, &config);
    if !lost.is_empty() {
        bail!(
            "{} asks for options Kconfig dropped (missing dependencies?): {}",
            fragment.display(),
            lost.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_options_are_named() {
        let fragment = "# comment\nCONFIG_KSM=y\nCONFIG_NR_CPUS=8\n# CONFIG_SOUND is not set\n";
        let good = "CONFIG_KSM=y\nCONFIG_NR_CPUS=8\n# CONFIG_SOUND is not set\n";
        assert!(dropped(fragment, good).is_empty());
        let bad = "# CONFIG_KSM is not set\nCONFIG_NR_CPUS=64\nCONFIG_SOUND=y\n";
        assert_eq!(
            dropped(fragment, bad),
            ["CONFIG_KSM=y", "CONFIG_NR_CPUS=8", "# CONFIG_SOUND is not set"]
        );
    }

    /// The fragment in the repository asks for what the guest and the tracer need.
    #[test]
    fn fragment_has_what_rmap_trace_needs() {
        let text = fs::read_to_string(crate::build::workspace_root().join(super::super::FRAGMENT)).unwrap();
        let w = wants(&text);
        for need in [
            "CONFIG_KSM=y",
            "CONFIG_NUMA=y",
            "CONFIG_MIGRATION=y",
            "CONFIG_MEMCG=y",
            "CONFIG_ZRAM=y",
            "CONFIG_BPF_SYSCALL=y",
            "CONFIG_BPF_EVENTS=y",
            "CONFIG_KPROBES=y",
            "CONFIG_DEBUG_INFO_BTF=y",
            "CONFIG_SERIAL_8250_CONSOLE=y",
            "CONFIG_BLK_DEV_INITRD=y",
        ] {
            assert!(w.contains(&Want::Set(need)), "fragment lacks {need}");
        }
    }
}
