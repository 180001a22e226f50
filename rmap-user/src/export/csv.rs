//! `--csv FILE`: one line per walk event, with a header; buffered in whole lines and flushed
//! at the end of every interval, so that a crash loses at most the current interval.
use std::{
    fs::File,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use rmap_common::{FLAG_OFFCPU_VALID, PageType, Source, WalkEvent};

use crate::{events, export::output};

pub const HEADER: &str =
    "start_ns,duration_ns,offcpu_ns,page_type,purpose,locked,pid,tgid,comm,process,cpu,folio,rwc,source";

pub struct CsvWriter {
    path: PathBuf,
    out: BufWriter<File>,
    /// The line being formatted, kept from one walk to the next.
    line: Vec<u8>,
    /// The first write error; later writes are skipped and `finish` reports it.
    failed: Option<std::io::Error>,
}

/// Writes a field that may hold commas or quotes (comm names are arbitrary bytes), quoted
/// when it must be; no allocation either way.
fn quoted(out: &mut impl Write, s: &str) -> std::io::Result<()> {
    if !s.contains([',', '"', '\n', '\r']) {
        return out.write_all(s.as_bytes());
    }
    out.write_all(b"\"")?;
    for (i, part) in s.split('"').enumerate() {
        if i > 0 {
            out.write_all(b"\"\"")?;
        }
        out.write_all(part.as_bytes())?;
    }
    out.write_all(b"\"")
}

/// Writes one CSV line and its newline straight into `out`: called per walk, so nothing is
/// allocated. `offcpu_ns` is empty where it was not measured.
pub fn write_line(out: &mut impl Write, ev: &WalkEvent, purpose: &str, process: &str) -> std::io::Result<()> {
    write!(out, "{},{},", ev.start_ns, ev.duration_ns)?;
    if ev.flags & FLAG_OFFCPU_VALID != 0 {
        write!(out, "{}", ev.offcpu_ns)?;
    }
    write!(out, ",{},", PageType::from_u32(ev.page_type).name())?;
    quoted(out, purpose)?;
    write!(out, ",{},{},{},", ev.locked, ev.pid, ev.tgid)?;
    quoted(out, &String::from_utf8_lossy(events::comm_bytes(ev)))?;
    out.write_all(b",")?;
    quoted(out, process)?;
    writeln!(
        out,
        ",{},{:#x},{:#x},{}",
        ev.cpu,
        ev.folio,
        ev.rwc,
        Source::from_u32(ev.source).map_or("unknown", Source::name),
    )
}

/// One CSV line (no newline), as [`write_line`] writes it.
pub fn line(ev: &WalkEvent, purpose: &str, process: &str) -> String {
    let mut v = Vec::new();
    if let Err(e) = write_line(&mut v, ev, purpose, process) {
        // A Vec grows or aborts; it never returns a write error.
        unreachable!("writing to a Vec: {e}");
    }
    v.pop();
    String::from_utf8_lossy(&v).into_owned()
}

impl CsvWriter {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let mut out = BufWriter::new(output::create(path)?);
        out.write_all(format!("{HEADER}\n").as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            out,
            line: Vec::with_capacity(256),
            failed: None,
        })
    }

    pub fn write(&mut self, ev: &WalkEvent, purpose: &str, process: &str) {
        // Formatted into a reused buffer (no allocation per walk), then one write per line:
        // the BufWriter then only ever holds, and flushes, whole lines.
        self.line.clear();
        if let Err(e) = write_line(&mut self.line, ev, purpose, process) {
            unreachable!("writing to a Vec: {e}");
        }
        if self.failed.is_none()
            && let Err(e) = self.out.write_all(&self.line)
        {
            self.failed = Some(e);
        }
    }

    /// Writes what is buffered (the end of an interval); an error is kept for `finish`.
    pub fn flush(&mut self) {
        if self.failed.is_none()
            && let Err(e) = self.out.flush()
        {
            self.failed = Some(e);
        }
    }

    pub fn finish(mut self) -> anyhow::Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e).with_context(|| format!("writing {}", self.path.display()));
        }
        self.out
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_event_matching_the_header() {
        let mut ev = WalkEvent {
            start_ns: 5,
            duration_ns: 1_500,
            offcpu_ns: 100,
            flags: FLAG_OFFCPU_VALID,
            page_type: PageType::Ksm as u32,
            locked: 0,
            pid: 7,
            tgid: 6,
            folio: 0xffea,
            source: Source::Fentry as u32,
            ..Default::default()
        };
        ev.comm[..4].copy_from_slice(b"a,\"b");
        let l = line(&ev, "migrate", "java");
        assert_eq!(
            l,
            "5,1500,100,ksm,migrate,0,7,6,\"a,\"\"b\",java,0,0xffea,0x0,fentry"
        );
        ev.flags = 0;
        assert!(line(&ev, "migrate", "java").starts_with("5,1500,,ksm,"));
        assert_eq!(HEADER.split(',').count(), 14);
    }
}
