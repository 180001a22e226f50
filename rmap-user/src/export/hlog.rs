//! `--hlog FILE`: an HdrHistogram interval log (format 1.3), one compressed V2 histogram per
//! interval and page type, tagged `Tag=ksm|anon|file`, values in ns; readable by
//! HistogramLogAnalyzer and every HdrHistogram port. The hdrhistogram crate encodes the
//! histograms and writes their lines; a writer thread owns the file (the crate's log writer
//! borrows its output). Each interval is written whole, in one write, as soon as the thread has
//! encoded it, not only at exit (a reader or a crash sees every ended interval, never half).
use std::{
    cell::RefCell,
    collections::BTreeMap,
    fs::File,
    io::Write as _,
    path::{Path, PathBuf},
    rc::Rc,
    sync::mpsc,
    thread::JoinHandle,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, anyhow};
use hdrhistogram::{
    Histogram,
    serialization::{V2DeflateSerializer, interval_log},
};
use rmap_common::PageType;

use crate::{export::output, stats::Stats};

/// The log writer's lines, kept until a whole interval is there and then written in one
/// `write_all`, so that a crash never leaves half a histogram line in the file.
#[derive(Clone, Default)]
struct Staged(Rc<RefCell<Vec<u8>>>);

impl Staged {
    fn write_to(&self, out: &mut File) -> std::io::Result<()> {
        let bytes = std::mem::take(&mut *self.0.borrow_mut());
        out.write_all(&bytes)
    }
}

impl std::io::Write for Staged {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One interval: its start relative to the log's `StartTime`, its length, a histogram per tag.
struct Interval {
    start: Duration,
    length: Duration,
    hists: Vec<(&'static str, Histogram<u64>)>,
}

pub struct HlogWriter {
    path: PathBuf,
    tx: Option<mpsc::Sender<Interval>>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    started: SystemTime,
}

impl HlogWriter {
    /// Creates the file and writes the header now, so that a bad path fails before tracing.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let mut out = output::create(path)?;
        let started = SystemTime::now();
        let epoch = started
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        // The header lines the Java HistogramLogWriter writes (the crate's builder writes
        // comments and StartTime but not the format version or the legend).
        let header = format!(
            "#[Logged with rmap-trace {}]\n#[Histogram log format version 1.3]\n\
             #[StartTime: {epoch:.3} (seconds since epoch)]\n\
             \"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n",
            env!("CARGO_PKG_VERSION")
        );
        out.write_all(header.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        let (tx, rx) = mpsc::channel::<Interval>();
        let shown = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("rmap-trace-hlog".into())
            .spawn(move || -> anyhow::Result<()> {
                let mut serializer = V2DeflateSerializer::new();
                let staged = Staged::default();
                let mut lines = staged.clone();
                let mut log = interval_log::IntervalLogWriterBuilder::new()
                    .begin_log_with(&mut lines, &mut serializer)
                    .with_context(|| format!("writing {shown}"))?;
                staged
                    .write_to(&mut out)
                    .with_context(|| format!("writing {shown}"))?;
                for iv in rx {
                    for (tag, h) in &iv.hists {
                        log.write_histogram(h, iv.start, iv.length, interval_log::Tag::new(tag))
                            .map_err(|e| anyhow!("writing {shown}: {e}"))?;
                    }
                    staged
                        .write_to(&mut out)
                        .with_context(|| format!("writing {shown}"))?;
                }
                Ok(())
            })
            .context("starting the hlog writer thread")?;
        Ok(Self {
            path: path.to_path_buf(),
            tx: Some(tx),
            thread: Some(thread),
            started,
        })
    }

    /// Queues one interval, `[from, to]` in wall-clock time, with a histogram per page type
    /// that had walks.
    pub fn interval(&mut self, from: SystemTime, to: SystemTime, types: &BTreeMap<PageType, Stats>) {
        let hists: Vec<_> = types
            .iter()
            .filter(|(_, s)| !s.hist.is_empty())
            .map(|(t, s)| (t.name(), s.hist.clone()))
            .collect();
        if hists.is_empty() {
            return;
        }
        let start = from.duration_since(self.started).unwrap_or_default();
        let length = to.duration_since(from).unwrap_or_default();
        if let Some(tx) = &self.tx
            && tx.send(Interval { start, length, hists }).is_err()
        {
            log::warn!("the hlog writer for {} stopped early", self.path.display());
        }
    }

    /// Writes what is queued and closes the file; reports a write error.
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.close()
    }

    fn close(&mut self) -> anyhow::Result<()> {
        drop(self.tx.take());
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| anyhow!("the hlog writer thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for HlogWriter {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            eprintln!("rmap-trace: error: {e:#}");
        }
    }
}
