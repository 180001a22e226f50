//! `rmap-trace probe`: what this host can do.
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

use crate::{
    attach::load::{self, Filters, KernelFacts},
    kernel::host::HostInfo,
};

#[derive(Serialize)]
struct ProbeReport {
    host: HostInfo,
    offsets: Option<crate::kernel::btf::Offsets>,
    modes: Vec<ModeReport>,
}

#[derive(Serialize)]
struct ModeReport {
    mode: &'static str,
    available: bool,
    detail: String,
}

pub fn run(json: Option<&Path>) -> anyhow::Result<()> {
    let host = HostInfo::read();
    println!("kernel:   {}", host.kernel);
    println!(
        "btf:      {}",
        if host.btf {
            "yes (/sys/kernel/btf/vmlinux)"
        } else {
            "no"
        }
    );
    println!("tracefs:  {}", host.tracefs.as_deref().unwrap_or("not mounted"));
    println!(
        "clock:    {}{}",
        crate::kernel::host::clocksource().unwrap_or_else(|| "unknown".into()),
        if crate::kernel::host::coarse_clock_warning().is_some() {
            " (coarse: durations are multiples of a timer tick)"
        } else {
            ""
        }
    );
    match &host.ksm {
        Some(k) => println!(
            "ksm:      {}",
            k.iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        None => println!("ksm:      not built in (no /sys/kernel/mm/ksm)"),
    }
    println!(
        "numa:     {} node(s) {:?}{}",
        host.numa_nodes.len(),
        host.numa_nodes,
        if host.numa_nodes.len() < 2 {
            " (move_pages cannot migrate; use reclaim or compact)"
        } else {
            ""
        }
    );
    println!(
        "swap:     {}",
        if host.swap.is_empty() {
            "none".to_string()
        } else {
            host.swap.join(", ")
        }
    );
    let mut modes = Vec::new();
    let mut offsets = None;
    match KernelFacts::read() {
        Ok(facts) => {
            offsets = Some(facts.offsets);
            println!(
                "offsets:  folio.mapping={} rmap_walk_control.rmap_one={}",
                facts.offsets.folio_mapping, facts.offsets.rwc_rmap_one
            );
            let filters = Filters {
                type_mask: u32::MAX,
                ..Default::default()
            };
            for (mode, result) in load::probe_all(&facts, &filters)? {
                let (available, detail) = match result {
                    Ok(points) => (true, points.join(", ")),
                    Err(why) => (false, why),
                };
                println!(
                    "mode {mode:<14} {}: {detail}",
                    if available { "available" } else { "unavailable" }
                );
                modes.push(ModeReport {
                    mode,
                    available,
                    detail,
                });
            }
        }
        Err(e) => {
            for spec in &crate::attach::plan::PLAN {
                let detail = format!("{e:#}");
                println!("mode {:<14} unavailable: {detail}", spec.name);
                modes.push(ModeReport {
                    mode: spec.name,
                    available: false,
                    detail,
                });
            }
        }
    }
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&ProbeReport { host, offsets, modes })?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
