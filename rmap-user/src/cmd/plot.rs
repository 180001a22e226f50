//! `rmap-trace plot FILE... -o OUT.svg`: latency by percentile, one line per file and page type.
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::export::{
    plot::{self, Series},
    read,
};

pub fn run(files: &[PathBuf], out: &Path) -> anyhow::Result<()> {
    let logs = files
        .iter()
        .map(|f| read::load(f))
        .collect::<Result<Vec<_>, _>>()?;
    let series: Vec<Series> = logs
        .iter()
        .flat_map(|log| {
            let name = Path::new(&log.path)
                .file_stem()
                .map_or(log.path.clone(), |s| s.to_string_lossy().into_owned());
            log.tags.iter().map(move |(tag, h)| Series {
                label: format!("{name} {tag} (n={})", h.len()),
                hist: h,
            })
        })
        .collect();
    plot::write(out, "rmap walk latency by percentile", &series)
        .with_context(|| format!("plotting to {}", out.display()))?;
    eprintln!("rmap-trace: wrote {}", out.display());
    Ok(())
}
