//! The Kubernetes schema validator (`kubernetes-validate`, pinned, from `PyPI`): installed when
//! missing, and run strict on a manifest. `deploy-check` validates `deploy/` with it; the guest's
//! Kubernetes suite needs the `PyYAML` it brings.
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::cmd;

/// The schema validator, pinned.
pub const VALIDATOR: &str = "kubernetes-validate";
pub const VALIDATOR_VERSION: &str = "1.37.0";

/// Installs the pinned validator (and with it `PyYAML`) with pip when it is missing.
pub fn ensure() -> anyhow::Result<()> {
    let version = || {
        Command::new(VALIDATOR)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if version().is_some_and(|v| v.ends_with(VALIDATOR_VERSION)) {
        return Ok(());
    }
    let pin = format!("{VALIDATOR}=={VALIDATOR_VERSION}");
    eprintln!("xtask: pip install {pin} (the Kubernetes schema validator)");
    let ok = cmd::status(Command::new("python3").args(["-m", "pip", "install", "-q", &pin]))?;
    if !ok || !version().is_some_and(|v| v.ends_with(VALIDATOR_VERSION)) {
        bail!("{VALIDATOR} {VALIDATOR_VERSION} is missing; run: python3 -m pip install {pin}");
    }
    Ok(())
}

/// `kubernetes-validate --strict` on a file; its report, or an error with it.
pub fn validate(path: &std::path::Path, kubernetes: &str) -> anyhow::Result<String> {
    let out = Command::new(VALIDATOR)
        .args(["--strict", "-k", kubernetes])
        .arg(path)
        .output()
        .with_context(|| format!("running {VALIDATOR}"))?;
    let report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let passed = report
        .lines()
        .filter(|l| l.starts_with("INFO") && l.contains(" passed "))
        .count();
    // A resource whose kind it has no schema for is a WARN and exit 0: not a pass here.
    if !out.status.success() || report.contains("WARN") || report.contains("ERROR") || passed == 0 {
        bail!(
            "{VALIDATOR} --strict -k {kubernetes} {}:\n{report}",
            path.display()
        );
    }
    Ok(report)
}
