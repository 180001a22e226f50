//! What makes the kernel walk: page migration to another node (`move_pages`), cgroup reclaim
//! (memory.reclaim: `folio_referenced` + `try_to_unmap`), or compaction. Chosen before anything is
//! changed, so an impossible run stops with one line and leaves the host as it was.
use std::{fs, path::Path};

use serde::Serialize;

/// `--trigger`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerChoice {
    /// move-pages with two NUMA nodes, else reclaim with swap, else compact.
    Auto,
    MovePages,
    Reclaim,
    Compact,
}

/// The trigger a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    MovePages,
    Reclaim,
    Compact,
}

impl Trigger {
    pub const fn name(self) -> &'static str {
        match self {
            Trigger::MovePages => "move-pages",
            Trigger::Reclaim => "reclaim",
            Trigger::Compact => "compact",
        }
    }
}

/// What the host offers, read once (plain data so the choice is unit-tested).
#[derive(Clone, Debug, Default)]
pub struct HostCaps {
    pub numa_nodes: usize,
    pub swap: bool,
    pub memcg_v2: bool,
    pub compaction: bool,
}

impl HostCaps {
    pub fn read() -> Self {
        let controllers = fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default();
        Self {
            numa_nodes: crate::kernel::host::numa_nodes().len(),
            swap: fs::read_to_string("/proc/swaps").is_ok_and(|s| s.lines().count() > 1),
            memcg_v2: controllers.split_whitespace().any(|c| c == "memory"),
            compaction: Path::new("/proc/sys/vm/compact_memory").exists(),
        }
    }
}

/// Picks the trigger; `setup_swap` counts as swap (a zram device will be made).
pub fn choose(choice: TriggerChoice, caps: &HostCaps, setup_swap: bool) -> Result<Trigger, String> {
    let swap = caps.swap || setup_swap;
    let move_pages = || {
        if caps.numa_nodes >= 2 {
            Ok(Trigger::MovePages)
        } else {
            Err(format!(
                "move-pages needs two NUMA nodes; this host has {}",
                caps.numa_nodes
            ))
        }
    };
    let reclaim = || match (caps.memcg_v2, swap) {
        (false, _) => Err("reclaim needs cgroup v2 with the memory controller at /sys/fs/cgroup".to_string()),
        (true, false) => Err(
            "reclaim needs swap (anon and KSM pages are only reclaimed to swap): add --setup-swap"
                .to_string(),
        ),
        (true, true) => Ok(Trigger::Reclaim),
    };
    let compact = || {
        if caps.compaction {
            Ok(Trigger::Compact)
        } else {
            Err("compact needs /proc/sys/vm/compact_memory (CONFIG_COMPACTION)".to_string())
        }
    };
    match choice {
        TriggerChoice::MovePages => move_pages(),
        TriggerChoice::Reclaim => reclaim(),
        TriggerChoice::Compact => compact(),
        TriggerChoice::Auto => move_pages().or_else(|a| {
            reclaim().or_else(|b| compact().map_err(|c| format!("no trigger possible: {a}; {b}; {c}")))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_prefers_move_pages_then_reclaim_then_compact() {
        let two = HostCaps {
            numa_nodes: 2,
            swap: false,
            memcg_v2: true,
            compaction: true,
        };
        assert_eq!(choose(TriggerChoice::Auto, &two, false), Ok(Trigger::MovePages));
        let one = HostCaps {
            numa_nodes: 1,
            ..two.clone()
        };
        assert_eq!(choose(TriggerChoice::Auto, &one, true), Ok(Trigger::Reclaim));
        assert_eq!(choose(TriggerChoice::Auto, &one, false), Ok(Trigger::Compact));
        let bare = HostCaps {
            numa_nodes: 1,
            swap: false,
            memcg_v2: true,
            compaction: false,
        };
        let err = choose(TriggerChoice::Auto, &bare, false).unwrap_err();
        assert!(
            err.starts_with("no trigger possible: move-pages needs two NUMA nodes"),
            "{err}"
        );
        assert!(err.contains("add --setup-swap"), "{err}");
    }

    #[test]
    fn forced_triggers_say_why_not() {
        let one = HostCaps {
            numa_nodes: 1,
            swap: true,
            memcg_v2: false,
            compaction: true,
        };
        assert_eq!(
            choose(TriggerChoice::MovePages, &one, false).unwrap_err(),
            "move-pages needs two NUMA nodes; this host has 1"
        );
        assert!(
            choose(TriggerChoice::Reclaim, &one, false)
                .unwrap_err()
                .contains("cgroup v2")
        );
        assert_eq!(choose(TriggerChoice::Compact, &one, false), Ok(Trigger::Compact));
    }
}
