//! The kernel × feature table of the kernels suite: rendered from its rows, recorded by a whole
//! run in docs/tested-kernels.json, and written into the README between two markers. A unit
//! test renders the recorded results and compares them with the README, so the README's table
//! is always the suite's last results, never edited by hand.
use std::path::PathBuf;

use anyhow::Context as _;

use super::{Depth, KernelRow, verify::MODES};
use crate::build::workspace_root;

/// The README lines around the table.
const BEGIN: &str = "<!-- tested-kernels: begin (written by cargo xtask vm-test --suite kernels) -->";
const END: &str = "<!-- tested-kernels: end -->";

/// The feature columns after the modes, for the whole suite.
const FEATURES: [&str; 6] = ["purposes", "owners", "stalls", "off-CPU", "prometheus", "restore"];

/// Where a whole run records its rows.
fn results_path() -> PathBuf {
    workspace_root().join("docs/tested-kernels.json")
}

fn readme_path() -> PathBuf {
    workspace_root().join("README.md")
}

/// A cell's text fit for a Markdown table: one line, no `|`, a long reason cut before its
/// parenthesis.
fn cell_text(text: &str) -> String {
    let one = text.replace('|', "/").replace('\n', " ");
    match one.find(" (") {
        Some(at) if one.len() > 60 => one[..at].to_string(),
        _ => one,
    }
}

/// The table: a row per kernel, a column per attach mode and (whole suite) per feature.
pub fn render(rows: &[KernelRow], depth: Depth) -> String {
    let mut columns: Vec<&str> = MODES.to_vec();
    match depth {
        Depth::Full => columns.extend(FEATURES),
        Depth::Smoke => columns.push("auto"),
    }
    let mut s = format!("| kernel | build | {} |\n", columns.join(" | "));
    s += &format!("|{}\n", " --- |".repeat(columns.len() + 2));
    for r in rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| {
                r.cells
                    .get(*c)
                    .map_or_else(|| "?".to_string(), |cell| cell_text(&cell.text))
            })
            .collect();
        s += &format!(
            "| {} ({}) | {} | {} |\n",
            r.kernel,
            r.release,
            cell_text(&r.build),
            cells.join(" | ")
        );
    }
    s
}

/// Records a whole run: its rows, and the README's table rendered from them.
pub fn record(rows: &[KernelRow]) -> anyhow::Result<()> {
    let path = results_path();
    std::fs::create_dir_all(path.parent().expect("docs/"))?;
    std::fs::write(&path, serde_json::to_string_pretty(rows)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    let readme = std::fs::read_to_string(readme_path())?;
    let updated = with_table(&readme, &render(rows, Depth::Full))?;
    std::fs::write(readme_path(), updated)?;
    eprintln!(
        "xtask: kernels: results in {}, the README's table rewritten",
        path.display()
    );
    Ok(())
}

/// `readme` with the text between the markers replaced by `table`.
fn with_table(readme: &str, table: &str) -> anyhow::Result<String> {
    let (head, rest) = readme
        .split_once(BEGIN)
        .context("the README has no tested-kernels begin marker")?;
    let (_, tail) = rest
        .split_once(END)
        .context("the README has no tested-kernels end marker")?;
    Ok(format!("{head}{BEGIN}\n{table}{END}{tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's table is the suite's last recorded results.
    #[test]
    fn the_readme_table_is_the_last_results() {
        let recorded = std::fs::read_to_string(results_path()).expect("docs/tested-kernels.json");
        let rows: Vec<KernelRow> = serde_json::from_str(&recorded).expect("recorded rows");
        let readme = std::fs::read_to_string(readme_path()).unwrap();
        let want = with_table(&readme, &render(&rows, Depth::Full)).unwrap();
        assert!(
            readme == want,
            "README.md's tested-kernels table differs from docs/tested-kernels.json: run cargo xtask vm-test --suite kernels"
        );
        assert_eq!(rows.len(), super::super::matrix().len());
    }

    #[test]
    fn cells_fit_a_table() {
        assert_eq!(cell_text("a | b"), "a / b");
        let long =
            "no lock:contention_end/lock:contention_begin tracepoint in this kernel (they came in 5.19)";
        assert_eq!(
            cell_text(long),
            "no lock:contention_end/lock:contention_begin tracepoint in this kernel"
        );
        assert_eq!(cell_text("✓ (x)"), "✓ (x)");
    }
}
