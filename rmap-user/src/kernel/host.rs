//! What `rmap-trace probe` reports about the host besides attach modes.
use std::{fs, path::Path};

use serde::Serialize;

const KSM: &str = "/sys/kernel/mm/ksm";

#[derive(Debug, Serialize)]
pub struct HostInfo {
    pub kernel: String,
    pub btf: bool,
    pub tracefs: Option<String>,
    /// KSM sysfs knobs and counters, `None` without `CONFIG_KSM`.
    pub ksm: Option<Vec<(String, String)>>,
    pub numa_nodes: Vec<u32>,
    /// Swap devices from /proc/swaps.
    pub swap: Vec<String>,
}

pub fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |s| s.trim().to_string())
}

/// `uname -v`: the kernel's build, which on distribution kernels names the package version
/// (`#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-03-05)`).
pub fn kernel_build() -> String {
    fs::read_to_string("/proc/sys/kernel/version").map_or_else(|_| "unknown".into(), |s| s.trim().to_string())
}

/// The clocksource in use (`bpf_ktime_get_ns` reads it): `tsc`, `hpet`, `kvm-clock`, … or
/// `jiffies`, whose resolution (1-10 ms) makes every walk 0 or a multiple of a tick.
pub fn clocksource() -> Option<String> {
    fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .ok()
        .map(|s| s.trim().to_string())
}

/// A warning when the clock cannot time walks (see [`clocksource`]).
pub fn coarse_clock_warning() -> Option<String> {
    let cs = clocksource()?;
    cs.contains("jiffies").then(|| {
        format!(
            "warning: the kernel's clocksource is {cs}: walk durations are multiples of a \
             timer tick (see /sys/devices/system/clocksource/clocksource0)"
        )
    })
}

pub fn numa_nodes() -> Vec<u32> {
    let mut nodes: Vec<u32> = fs::read_dir("/sys/devices/system/node")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("node")?.parse().ok())
        .collect();
    nodes.sort_unstable();
    nodes
}

impl HostInfo {
    pub fn read() -> Self {
        let ksm = Path::new(KSM).is_dir().then(|| {
            [
                "run",
                "pages_to_scan",
                "sleep_millisecs",
                "max_page_sharing",
                "merge_across_nodes",
                "pages_shared",
                "pages_sharing",
                "full_scans",
            ]
            .iter()
            .filter_map(|k| {
                Some((
                    k.to_string(),
                    fs::read_to_string(Path::new(KSM).join(k))
                        .ok()?
                        .trim()
                        .to_string(),
                ))
            })
            .collect()
        });
        let swap = fs::read_to_string("/proc/swaps")
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next().map(String::from))
            .collect();
        Self {
            kernel: kernel_release(),
            btf: Path::new(super::btf::VMLINUX_BTF).exists(),
            // Where it is mounted now; a run mounts it only for its own time (`find_or_mount`).
            tracefs: super::tracefs::Tracefs::find()
                .ok()
                .map(|t| t.root.display().to_string()),
            ksm,
            numa_nodes: numa_nodes(),
            swap,
        }
    }
}
