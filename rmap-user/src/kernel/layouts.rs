//! The record layouts that the classic tracepoint programs need, read from tracefs `format`
//! files. Each event is read on its own: a format file that lacks a field disables only the
//! mode (or hook) that reads that event, with the reason kept for the attach report and
//! `probe`; the other modes are still tried.
use rmap_common::TpLayout;

use super::tracefs::{self, Field, Tracefs};

/// The layouts found, and why each one that is absent could not be read.
#[derive(Clone, Debug)]
pub struct EventLayouts {
    /// Offsets for the classic tracepoint programs; `TpLayout::ABSENT` where unknown.
    pub layout: TpLayout,
    /// Why the `rmap_walk_start`/`rmap_walk_end` layout is absent when its format file exists.
    pub pair_error: Option<String>,
    /// Why the v4 `rmap_walk` layout is absent when its format file exists.
    pub v4_error: Option<String>,
    /// `next_pid` in `sched/sched_switch`, or why it is unknown.
    pub sched_next_pid: Result<u32, String>,
}

impl EventLayouts {
    /// No tracefs: no layouts, and no classic tracepoint can be attached anyway.
    pub fn none() -> Self {
        Self {
            layout: TpLayout::EMPTY,
            pair_error: None,
            v4_error: None,
            sched_next_pid: Err("tracefs is not mounted".into()),
        }
    }

    pub fn read(t: &Tracefs) -> Self {
        let mut layout = TpLayout::EMPTY;
        let pair_error = apply(t, "rmap_walk_start", &mut layout, tracefs::pair_layout);
        let v4_error = apply(t, "rmap_walk", &mut layout, tracefs::v4_layout);
        let sched_next_pid = t
            .format("sched", "sched_switch")
            .map_err(|e| e.to_string())
            .and_then(|f| tracefs::sched_next_pid(&f).map_err(|e| e.to_string()));
        Self {
            layout,
            pair_error,
            v4_error,
            sched_next_pid,
        }
    }
}

/// Fills `layout` from the format of `rmap/<event>` when every field is found; a half-read
/// layout is not kept (its first offset is what marks it usable).
fn apply(
    t: &Tracefs,
    event: &str,
    layout: &mut TpLayout,
    read: fn(&[Field], &mut TpLayout) -> Result<(), tracefs::TracefsError>,
) -> Option<String> {
    // No format file: the kernel lacks the event, which the attach step reports itself.
    let fields = t.format("rmap", event).ok()?;
    let mut candidate = *layout;
    match read(&fields, &mut candidate) {
        Ok(()) => {
            *layout = candidate;
            None
        }
        Err(e) => Some(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::{fs, path::Path};

    use super::*;

    const HEADER: &str = "format:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n";

    fn field(decl: &str, offset: u32) -> String {
        format!("\tfield:{decl};\toffset:{offset};\tsize:8;\tsigned:0;\n")
    }

    fn write(root: &Path, cat: &str, ev: &str, fields: &[(&str, u32)]) {
        let dir = root.join("events").join(cat).join(ev);
        fs::create_dir_all(&dir).unwrap();
        let body: String = fields.iter().map(|(d, o)| field(d, *o)).collect();
        fs::write(dir.join("format"), format!("name: {ev}\n{HEADER}{body}")).unwrap();
    }

    #[test]
    fn a_missing_field_disables_only_its_event() {
        let root = std::env::temp_dir().join(format!("rmap-layouts-{}", std::process::id()));
        // rmap_walk_start lacks `locked`; the v4 event and sched_switch are complete.
        write(
            &root,
            "rmap",
            "rmap_walk_start",
            &[
                ("unsigned long folio_addr", 8),
                ("unsigned long rwc_addr", 16),
                ("__data_loc char[] page_type", 24),
            ],
        );
        write(
            &root,
            "rmap",
            "rmap_walk",
            &[
                ("unsigned long folio_addr", 8),
                ("unsigned long rwc_addr", 16),
                ("u64 duration_ns", 24),
                ("__data_loc char[] page_type", 32),
                ("bool locked", 36),
            ],
        );
        write(&root, "sched", "sched_switch", &[("pid_t next_pid", 56)]);
        let got = EventLayouts::read(&Tracefs::at(&root));
        fs::remove_dir_all(&root).unwrap();
        assert_eq!(
            got.pair_error.as_deref(),
            Some("event rmap/rmap_walk_start has no field locked")
        );
        // Not half-filled: the classic pair programs must see the layout as absent.
        assert_eq!(got.layout.pair_folio, TpLayout::ABSENT);
        assert_eq!(got.layout.pair_rwc, TpLayout::ABSENT);
        assert_eq!(got.v4_error, None);
        assert_eq!(
            (got.layout.v4_folio, got.layout.v4_duration, got.layout.v4_locked),
            (8, 24, 36)
        );
        assert_eq!(got.sched_next_pid, Ok(56));
    }

    #[test]
    fn a_missing_sched_field_is_a_reason() {
        let root = std::env::temp_dir().join(format!("rmap-layouts-s-{}", std::process::id()));
        write(&root, "sched", "sched_switch", &[("pid_t prev_pid", 24)]);
        let got = EventLayouts::read(&Tracefs::at(&root));
        fs::remove_dir_all(&root).unwrap();
        assert_eq!(
            got.sched_next_pid,
            Err("event sched/sched_switch has no field next_pid".into())
        );
        assert_eq!((got.pair_error, got.v4_error), (None, None));
    }
}
