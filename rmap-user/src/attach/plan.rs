//! The attach plan: one table, tried in order; the first mode that loads and attaches wins.
use serde::Serialize;

/// `--attach-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachChoice {
    /// Try every mode in order.
    Auto,
    /// The rmap tracepoints (v5–v7 pair, then v4).
    Tracepoint,
    /// The v4 rmap tracepoint only (one event per walk with `duration_ns`).
    #[value(name = "tracepoint-v4")]
    TracepointV4,
    /// fentry/fexit on the walker functions.
    Fentry,
    /// kprobe/kretprobe on the walker functions.
    Kprobe,
}

/// An attach mode; serialized as its name in reports (`ModeSpec::name`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[serde(rename = "tracepoint")]
    TracepointPair,
    TracepointV4,
    Fentry,
    Kprobe,
}

pub struct ModeSpec {
    pub mode: Mode,
    /// The name printed in reports.
    pub name: &'static str,
    /// The `--attach-mode` value that selects it.
    pub choice: AttachChoice,
    /// What it attaches to.
    pub what: &'static str,
    /// Whether the mode sees walk starts (so off-CPU time can be measured).
    pub has_start: bool,
}

/// The order is the order of preference: the tracepoints are stable ABI and cheapest; fentry
/// is cheaper than kprobe; kprobe is the last resort.
pub const PLAN: [ModeSpec; 4] = [
    ModeSpec {
        mode: Mode::TracepointPair,
        name: "tracepoint",
        choice: AttachChoice::Tracepoint,
        what: "rmap:rmap_walk_start + rmap:rmap_walk_end (raw_tp, else classic)",
        has_start: true,
    },
    ModeSpec {
        mode: Mode::TracepointV4,
        name: "tracepoint-v4",
        choice: AttachChoice::TracepointV4,
        what: "rmap:rmap_walk with duration_ns (raw_tp, else classic)",
        has_start: false,
    },
    ModeSpec {
        mode: Mode::Fentry,
        name: "fentry",
        choice: AttachChoice::Fentry,
        what: "fentry/fexit on rmap_walk_{ksm,anon,file} or rmap_walk{,_locked}",
        has_start: true,
    },
    ModeSpec {
        mode: Mode::Kprobe,
        name: "kprobe",
        choice: AttachChoice::Kprobe,
        what: "kprobe/kretprobe on rmap_walk_{ksm,anon,file} or rmap_walk{,_locked}",
        has_start: true,
    },
];

/// The modes to try for a choice, in plan order (`tracepoint` means either tracepoint ABI).
pub fn modes(choice: AttachChoice) -> impl Iterator<Item = &'static ModeSpec> {
    PLAN.iter().filter(move |s| {
        choice == AttachChoice::Auto
            || s.choice == choice
            || (choice == AttachChoice::Tracepoint && s.choice == AttachChoice::TracepointV4)
    })
}

/// `--tracepoint-flavor`: which program type reads the rmap tracepoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TpFlavor {
    /// `raw_tp` (the arguments themselves, cheapest), else the classic tracepoint.
    #[default]
    Auto,
    /// `raw_tp` only.
    Raw,
    /// The classic tracepoint only (record fields at offsets from the event's format file).
    Classic,
}

/// # Panics
/// Never: PLAN has a row for every mode.
pub fn spec(mode: Mode) -> &'static ModeSpec {
    PLAN.iter()
        .find(|s| s.mode == mode)
        .expect("every mode is in PLAN")
}

/// The mode that attached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Chosen {
    pub mode: Mode,
    /// Its attach points (`kprobe:rmap_walk_ksm`, `raw_tp:rmap_walk_start`, ...).
    pub points: Vec<String>,
}

/// A mode tried that failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The mode's name (`ModeSpec::name`).
    pub mode: &'static str,
    /// Why it could not load or attach.
    pub reason: String,
}

/// What happened to each mode.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Outcome {
    /// The winning mode, if one attached.
    pub chosen: Option<Chosen>,
    /// Modes tried and failed, with the reason.
    pub skipped: Vec<Skipped>,
    /// Modes not tried (after the chosen one, or excluded by `--attach-mode`).
    pub not_tried: Vec<&'static str>,
    /// What the chosen mode measures less of on this kernel (a compiler clone attached to).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Outcome {
    /// One line for the chosen mode, one per skipped mode.
    pub fn report(&self) -> Vec<String> {
        let mut lines = Vec::new();
        match &self.chosen {
            Some(c) => lines.push(format!(
                "attach: {} via {}",
                spec(c.mode).name,
                c.points.join(", ")
            )),
            None => lines.push("attach: no mode could attach to rmap walks on this kernel".to_string()),
        }
        for s in &self.skipped {
            lines.push(format!("  skipped {}: {}", s.mode, s.reason));
        }
        for name in &self.not_tried {
            lines.push(format!("  not tried {name}"));
        }
        for note in &self.notes {
            lines.push(format!("  {note}"));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_choices() {
        let names: Vec<_> = modes(AttachChoice::Auto).map(|s| s.name).collect();
        assert_eq!(names, ["tracepoint", "tracepoint-v4", "fentry", "kprobe"]);
        let names: Vec<_> = modes(AttachChoice::Tracepoint).map(|s| s.name).collect();
        assert_eq!(names, ["tracepoint", "tracepoint-v4"]);
        let names: Vec<_> = modes(AttachChoice::TracepointV4).map(|s| s.name).collect();
        assert_eq!(names, ["tracepoint-v4"]);
        let names: Vec<_> = modes(AttachChoice::Kprobe).map(|s| s.name).collect();
        assert_eq!(names, ["kprobe"]);
        assert!(!spec(Mode::TracepointV4).has_start);
    }

    fn skipped(mode: &'static str, reason: &str) -> Skipped {
        Skipped {
            mode,
            reason: reason.into(),
        }
    }

    #[test]
    fn report_lines() {
        let o = Outcome {
            chosen: Some(Chosen {
                mode: Mode::Kprobe,
                points: vec!["kprobe:rmap_walk_ksm".into(), "kretprobe:rmap_walk_ksm".into()],
            }),
            skipped: vec![
                skipped("tracepoint", "no rmap:rmap_walk_start"),
                skipped("fentry", "BPF_PROG_LOAD fentry_ksm: EPERM"),
            ],
            not_tried: vec![],
            notes: vec![],
        };
        assert_eq!(
            o.report(),
            [
                "attach: kprobe via kprobe:rmap_walk_ksm, kretprobe:rmap_walk_ksm",
                "  skipped tracepoint: no rmap:rmap_walk_start",
                "  skipped fentry: BPF_PROG_LOAD fentry_ksm: EPERM",
            ]
        );
        let none = Outcome {
            skipped: vec![skipped("kprobe", "x")],
            ..Default::default()
        };
        assert_eq!(
            none.report()[0],
            "attach: no mode could attach to rmap walks on this kernel"
        );
    }
}
