//! The kernels suite: the kernels a fleet runs — Debian 11's 5.10, 12's 6.1, 13's 6.12, the
//! newest (7.2) and ours — each booted once. On each, every attach mode the kernel offers
//! traces a workload while tracefs kretprobes on the same walkers count the same walks
//! (`script.rs`); the counts must equal each other and the workload's own (`verify.rs`). The
//! whole suite (`--suite kernels`) also checks purposes, owners, `--stalls`, off-CPU time, a
//! Prometheus scrape and `restore` after a SIGKILL, and writes the kernel × feature table: its
//! results in docs/tested-kernels.json and the table in the README (`table.rs`), which a unit
//! test keeps equal. The smoke (in `all`) runs the mode auto chooses and the count check.
mod script;
pub mod table;
mod verify;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Checks;
use crate::guest::{self, GuestArgs, kernel::KernelChoice};

/// How much of the suite runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    /// Every mode and feature; the table written.
    Full,
    /// `probe`, the mode auto chooses, the count check.
    Smoke,
}

/// The kernels, in the table's order.
pub fn matrix() -> Vec<KernelChoice> {
    ["debian:5.10", "debian:6.1", "debian:6.12", "debian:7.2", "ours"]
        .into_iter()
        .map(|k| k.parse().expect("a kernel of the matrix"))
        .collect()
}

/// A cell of the table: a feature that works (`✓` and what was seen), one this kernel lacks
/// (the reason), or one that failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    /// False only for a failure.
    pub ok: bool,
    pub text: String,
}

impl Cell {
    fn ok(text: &str) -> Self {
        Self {
            ok: true,
            text: text.to_string(),
        }
    }

    fn not_here(why: &str) -> Self {
        Self {
            ok: true,
            text: why.to_string(),
        }
    }

    fn fail(why: &str) -> Self {
        Self {
            ok: false,
            text: format!("✗ {why}"),
        }
    }
}

/// One kernel's row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelRow {
    /// As `--kernel` names it.
    pub kernel: String,
    /// `uname -r` and `uname -v` in the guest.
    pub release: String,
    pub build: String,
    pub cells: BTreeMap<String, Cell>,
}

/// Runs the suite on every kernel of the matrix; with `Full`, writes the results and the
/// README's table.
pub fn run(args: &GuestArgs, depth: Depth, c: &mut Checks) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for kernel in matrix() {
        let label = kernel.to_string();
        let g = args.with_kernel(kernel);
        let out = match guest::boot(&g, &script::script(depth), false) {
            Ok(out) => out,
            Err(e) => {
                c.check(&format!("kernels {label}: boots"), false, format!("{e:#}"));
                continue;
            }
        };
        eprintln!(
            "xtask: {label}: guest finished in {:.1} s",
            out.elapsed.as_secs_f64()
        );
        keep_outputs(&label, &out)?;
        for name in ["probe.txt", "kprobes"] {
            println!(
                "--- {label}: {name} ---\n{}",
                out.outputs.get(name).map_or("", |s| s.trim_end())
            );
        }
        let probe: serde_json::Value =
            serde_json::from_str(out.outputs.get("probe").map_or("", String::as_str)).unwrap_or_default();
        rows.push(KernelRow {
            kernel: label.clone(),
            release: probe["host"]["kernel"].as_str().unwrap_or("?").to_string(),
            build: out.outputs.get("build").map_or("?", |s| s.trim()).to_string(),
            cells: verify::kernel(&out, &label, depth, c),
        });
    }
    println!("{}", table::render(&rows, depth));
    if depth == Depth::Full && rows.len() == matrix().len() {
        table::record(&rows)?;
    }
    Ok(())
}

/// The guest's outputs in target/xtask/kernels/<kernel>/, to read when a check fails.
fn keep_outputs(label: &str, out: &guest::qemu::GuestRun) -> anyhow::Result<()> {
    let dir = crate::build::workspace_root()
        .join("target/xtask/kernels")
        .join(label.replace([':', '/', ','], "-"));
    std::fs::create_dir_all(&dir)?;
    for (name, text) in &out.outputs {
        std::fs::write(dir.join(name), text)?;
    }
    std::fs::write(dir.join("console"), out.console.join("\n"))?;
    Ok(())
}
