//! `--csv FILE`: one line per walk event, with a header; buffered in whole lines and flushed
//! at the end of every interval, so that a crash loses at most the current interval.
use std::{
    fs::File,
    io::{BufWriter, Write as _},
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use rmap_common::{FLAG_KTHREAD, FLAG_OFFCPU_VALID, PageType, Source, WalkEvent};

use crate::{
    events,
    export::output,
    owners::{self, paths::CgroupPaths},
};

pub const HEADER: &str = "start_ns,duration_ns,offcpu_ns,page_type,purpose,locked,pid,tgid,comm,process,cpu,folio,rwc,source,kthread,cgroup_id,cgroup";

pub struct CsvWriter {
    path: PathBuf,
    out: BufWriter<File>,
    /// The first write error; later writes are skipped and `finish` reports it.
    failed: Option<std::io::Error>,
    /// Names the owner column.
    cgroups: CgroupPaths,
}

/// A field that may hold commas or quotes (comm names are arbitrary bytes).
fn quoted(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One CSV line (no newline). `offcpu_ns` is empty where it was not measured; `cgroup_id` is
/// empty when the folio's owner is unknown, `cgroup` when its path is.
pub fn line(ev: &WalkEvent, purpose: &str, process: &str, cgroup: Option<&str>) -> String {
    let offcpu = if ev.flags & FLAG_OFFCPU_VALID != 0 {
        ev.offcpu_ns.to_string()
    } else {
        String::new()
    };
    let owner = owners::owner_of(ev);
    let owner_id = if owner == owners::NOT_CHARGED {
        String::new()
    } else {
        owner.to_string()
    };
    format!(
        "{},{},{offcpu},{},{},{},{},{},{},{},{},{:#x},{:#x},{},{},{owner_id},{}",
        ev.start_ns,
        ev.duration_ns,
        PageType::from_u32(ev.page_type).name(),
        quoted(purpose),
        ev.locked,
        ev.pid,
        ev.tgid,
        quoted(&events::comm(ev)),
        quoted(process),
        ev.cpu,
        ev.folio,
        ev.rwc,
        Source::from_u32(ev.source).map_or("unknown", Source::name),
        u32::from(ev.flags & FLAG_KTHREAD != 0),
        quoted(cgroup.unwrap_or("")),
    )
}

impl CsvWriter {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let mut out = BufWriter::new(output::create(path)?);
        out.write_all(format!("{HEADER}\n").as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            out,
            failed: None,
            cgroups: CgroupPaths::default(),
        })
    }

    pub fn write(&mut self, ev: &WalkEvent, purpose: &str, process: &str) {
        // One write per line: the buffer then only ever holds, and flushes, whole lines.
        let cgroup = self.cgroups.lookup(owners::owner_of(ev));
        let mut l = line(ev, purpose, process, cgroup);
        l.push('\n');
        if self.failed.is_none()
            && let Err(e) = self.out.write_all(l.as_bytes())
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
        let l = line(&ev, "migrate", "java", None);
        assert_eq!(
            l,
            "5,1500,100,ksm,migrate,0,7,6,\"a,\"\"b\",java,0,0xffea,0x0,fentry,0,,"
        );
        ev.flags = FLAG_KTHREAD | rmap_common::FLAG_OWNER_VALID;
        ev.cgroup_id = 4242;
        let l = line(&ev, "migrate", "kswapd0", Some("/system.slice/java.service"));
        assert!(l.starts_with("5,1500,,ksm,"), "{l}");
        assert!(l.ends_with(",fentry,1,4242,/system.slice/java.service"), "{l}");
        assert_eq!(HEADER.split(',').count(), 17);
    }
}
