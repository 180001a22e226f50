//! tracefs: where it is mounted, which events exist, and the record layout of an event from
//! its `format` file (the classic tracepoint programs read fields at those offsets).
use std::{
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use rmap_common::TpLayout;

/// Errors about tracefs and event formats.
#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    /// No tracefs mount was found.
    #[error("tracefs not mounted (tried /sys/kernel/tracing and /sys/kernel/debug/tracing)")]
    NotMounted,
    /// tracefs was not mounted and mounting it failed.
    #[error("tracefs not mounted and mounting it at /sys/kernel/tracing failed: {0}")]
    Mount(std::io::Error),
    /// The host-state journal could not be written before mounting tracefs.
    #[error("writing the host-state journal before mounting tracefs: {0}")]
    Journal(crate::host_state::error::JournalError),
    /// The event's format file could not be read.
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    /// The format file lacks a field the program needs.
    #[error("event {event} has no field {field}")]
    NoField { event: String, field: String },
}

/// One field of an event record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub decl: String,
    pub offset: u32,
    pub size: u32,
}

/// A tracefs mount.
#[derive(Clone, Debug)]
pub struct Tracefs {
    pub root: PathBuf,
    /// Set when this run mounted it: unmounted when the last clone is dropped.
    mounted: Option<Arc<Mounted>>,
}

/// The mount point of a tracefs that this run mounted.
const MOUNT_POINT: &std::ffi::CStr = c"/sys/kernel/tracing";

/// A tracefs mount made by this run, unmounted on drop so that the run leaves the host's
/// mounts as it found them (journalled before the mount: after a SIGKILL the next run, or
/// `rmap-trace restore`, unmounts it).
#[derive(Debug)]
struct Mounted(crate::host_state::Token);

impl Drop for Mounted {
    fn drop(&mut self) {
        match crate::host_state::undo(&self.0) {
            Ok(done) => log::info!("{done}"),
            Err(errors) => log::warn!(
                "unmounting the tracefs this run mounted at /sys/kernel/tracing: {}",
                errors.join("; ")
            ),
        }
    }
}

impl Tracefs {
    pub fn find() -> Result<Self, TracefsError> {
        ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.join("events").is_dir())
            .map(|root| Self { root, mounted: None })
            .ok_or(TracefsError::NotMounted)
    }

    /// Finds tracefs, mounting it at /sys/kernel/tracing when nothing is mounted (as systemd
    /// would at boot; minimal hosts and initramfs guests often lack it). A mount made here is
    /// undone when the last clone of the returned value is dropped: keep it for as long as
    /// programs attached through tracefs (classic tracepoints, tracefs kprobes) stay attached.
    pub fn find_or_mount() -> Result<Self, TracefsError> {
        if let Ok(t) = Self::find() {
            return Ok(t);
        }
        let token = crate::host_state::record(crate::host_state::Change::Tracefs {
            mount_point: PathBuf::from(MOUNT_POINT.to_string_lossy().as_ref()),
        })
        .map_err(TracefsError::Journal)?;
        // Struck from the journal again when the mount fails (the undo finds nothing mounted).
        let mounted = Arc::new(Mounted(token));
        // SAFETY: valid NUL-terminated strings; no data argument.
        let rc = unsafe {
            libc::mount(
                c"nodev".as_ptr(),
                MOUNT_POINT.as_ptr(),
                c"tracefs".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(TracefsError::Mount(std::io::Error::last_os_error()));
        }
        log::info!("mounted tracefs at /sys/kernel/tracing");
        let mut t = Self::find()?;
        t.mounted = Some(mounted);
        Ok(t)
    }

    /// A tracefs already mounted at `root` (a test's synthetic tree, or a known mount).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            mounted: None,
        }
    }

    pub fn has_event(&self, category: &str, name: &str) -> bool {
        self.root
            .join("events")
            .join(category)
            .join(name)
            .join("format")
            .is_file()
    }

    pub fn format(&self, category: &str, name: &str) -> Result<Vec<Field>, TracefsError> {
        let path = self.root.join("events").join(category).join(name).join("format");
        let text = fs::read_to_string(&path).map_err(|source| TracefsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Ok(parse_format(&text))
    }
}

/// Kprobe support: the kprobe PMU (what `perf_event_open` kprobes use) or tracefs `kprobe_events`.
pub fn has_kprobes(tracefs: Option<&Tracefs>) -> bool {
    Path::new("/sys/bus/event_source/devices/kprobe").exists()
        || tracefs.is_some_and(|t| t.root.join("kprobe_events").exists())
}

/// Parses the `field:` lines of an event `format` file.
pub fn parse_format(text: &str) -> Vec<Field> {
    let mut fields = Vec::new();
    for line in text.lines() {
        let mut decl = None;
        let (mut offset, mut size) = (None, None);
        for part in line.trim().split(';') {
            let part = part.trim();
            if let Some(d) = part.strip_prefix("field:") {
                decl = Some(d.trim().to_string());
            } else if let Some(v) = part.strip_prefix("offset:") {
                offset = v.trim().parse().ok();
            } else if let Some(v) = part.strip_prefix("size:") {
                size = v.trim().parse().ok();
            }
        }
        let (Some(decl), Some(offset), Some(size)) = (decl, offset, size) else {
            continue;
        };
        // The name is the last word of the declaration, without an array suffix:
        // "__data_loc char[] page_type", "unsigned long folio_addr", "char prev_comm[16]".
        let last = decl.split_whitespace().last().unwrap_or_default();
        let name = last.split('[').next().unwrap_or_default().to_string();
        fields.push(Field {
            name,
            decl,
            offset,
            size,
        });
    }
    fields
}

fn offset_of(fields: &[Field], event: &str, name: &str) -> Result<u32, TracefsError> {
    fields
        .iter()
        .find(|f| f.name == name)
        .map(|f| f.offset)
        .ok_or_else(|| TracefsError::NoField {
            event: event.into(),
            field: name.into(),
        })
}

/// Record layout of `rmap_walk_start`/`rmap_walk_end` (one event class, one layout).
pub fn pair_layout(start: &[Field], layout: &mut TpLayout) -> Result<(), TracefsError> {
    let ev = "rmap/rmap_walk_start";
    layout.pair_folio = offset_of(start, ev, "folio_addr")?;
    layout.pair_rwc = offset_of(start, ev, "rwc_addr")?;
    layout.pair_page_type = offset_of(start, ev, "page_type")?;
    layout.pair_locked = offset_of(start, ev, "locked")?;
    Ok(())
}

/// Record layout of the v4 `rmap_walk` event.
pub fn v4_layout(fields: &[Field], layout: &mut TpLayout) -> Result<(), TracefsError> {
    let ev = "rmap/rmap_walk";
    layout.v4_folio = offset_of(fields, ev, "folio_addr")?;
    layout.v4_rwc = offset_of(fields, ev, "rwc_addr")?;
    layout.v4_duration = offset_of(fields, ev, "duration_ns")?;
    layout.v4_page_type = offset_of(fields, ev, "page_type")?;
    layout.v4_locked = offset_of(fields, ev, "locked")?;
    Ok(())
}

/// Offset of `next_pid` in `sched/sched_switch`.
pub fn sched_next_pid(fields: &[Field]) -> Result<u32, TracefsError> {
    offset_of(fields, "sched/sched_switch", "next_pid")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The format file the kernel generates for the series' `rmap_walk_template` class
    /// (`TP_STRUCT__entry`: unsigned long `folio_addr`, unsigned long `rwc_addr`,
    /// __`string(page_type)`, bool locked).
    const PAIR_FORMAT: &str = "name: rmap_walk_start
ID: 1234
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:unsigned long folio_addr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:unsigned long rwc_addr;\toffset:16;\tsize:8;\tsigned:0;
\tfield:__data_loc char[] page_type;\toffset:24;\tsize:4;\tsigned:0;
\tfield:bool locked;\toffset:28;\tsize:1;\tsigned:0;

print fmt: \"folio=%lx rwc=%lx type=%s locked=%d\", REC->folio_addr, REC->rwc_addr, __get_str(page_type), REC->locked
";

    #[test]
    fn parses_pair_format() {
        let fields = parse_format(PAIR_FORMAT);
        assert_eq!(fields.len(), 8);
        let mut l = TpLayout::EMPTY;
        pair_layout(&fields, &mut l).unwrap();
        assert_eq!(
            (l.pair_folio, l.pair_rwc, l.pair_page_type, l.pair_locked),
            (8, 16, 24, 28)
        );
        assert_eq!(l.v4_folio, TpLayout::ABSENT);
        let f = fields.iter().find(|f| f.name == "page_type").unwrap();
        assert_eq!(f.decl, "__data_loc char[] page_type");
    }

    #[test]
    fn v4_format_needs_duration() {
        let mut l = TpLayout::EMPTY;
        let err = v4_layout(&parse_format(PAIR_FORMAT), &mut l).unwrap_err();
        assert_eq!(err.to_string(), "event rmap/rmap_walk has no field duration_ns");
    }
}
