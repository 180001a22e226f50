//! `rmap-trace probe`: what this host can do, each attach mode tried and detached again.
use std::path::Path;

use serde::Serialize;

use crate::{
    attach::{
        load::{Filters, KernelFacts},
        modes,
        plan::PLAN,
    },
    kernel::{
        btf::Offsets,
        features::Features,
        host::{self, HostInfo},
    },
};

#[derive(Serialize)]
struct ProbeReport {
    host: HostInfo,
    offsets: Option<Offsets>,
    features: Option<Features>,
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
    print_host(&host);
    let (offsets, features, modes) = match KernelFacts::read() {
        Ok(facts) => {
            println!(
                "offsets:  {}.mapping={} rmap_walk_control.rmap_one={}",
                facts.offsets.walked, facts.offsets.folio_mapping, facts.offsets.rwc_rmap_one
            );
            match &facts.owner_source {
                Ok(member) => println!(
                    "owners:   yes ({member}={}, walks name their memory cgroup)",
                    facts.owner.folio_memcg_data
                ),
                Err(why) => println!("owners:   no ({why}); --cgroup is refused"),
            }
            println!("inflight: {}", facts.features.inflight_table());
            (Some(facts.offsets), Some(facts.features), try_modes(&facts)?)
        }
        Err(e) => (None, None, unavailable(&format!("{e:#}"))),
    };
    for m in &modes {
        let state = if m.available { "available" } else { "unavailable" };
        println!("mode {:<14} {state}: {}", m.mode, m.detail);
    }
    if let Some(path) = json {
        crate::export::output::write_json(
            path,
            &ProbeReport {
                host,
                offsets,
                features,
                modes,
            },
        )?;
    }
    Ok(())
}

fn print_host(host: &HostInfo) {
    println!("kernel:   {}", host.kernel);
    let btf = if host.btf {
        "yes (/sys/kernel/btf/vmlinux)"
    } else {
        "no"
    };
    println!("btf:      {btf}");
    println!("tracefs:  {}", host.tracefs.as_deref().unwrap_or("not mounted"));
    let coarse = if host::coarse_clock_warning().is_some() {
        " (coarse: durations are multiples of a timer tick)"
    } else {
        ""
    };
    let clock = host::clocksource().unwrap_or_else(|| "unknown".into());
    println!("clock:    {clock}{coarse}");
    match &host.ksm {
        Some(k) => {
            let knobs: Vec<String> = k.iter().map(|(n, v)| format!("{n}={v}")).collect();
            println!("ksm:      {}", knobs.join(" "));
        }
        None => println!("ksm:      not built in (no /sys/kernel/mm/ksm)"),
    }
    let one_node = if host.numa_nodes.len() < 2 {
        " (move_pages cannot migrate; use reclaim or compact)"
    } else {
        ""
    };
    println!(
        "numa:     {} node(s) {:?}{one_node}",
        host.numa_nodes.len(),
        host.numa_nodes
    );
    let swap = if host.swap.is_empty() {
        "none".to_string()
    } else {
        host.swap.join(", ")
    };
    println!("swap:     {swap}");
}

/// Every mode of the plan, loaded and attached on its own, then detached.
fn try_modes(facts: &KernelFacts) -> anyhow::Result<Vec<ModeReport>> {
    let filters = Filters {
        type_mask: u32::MAX,
        ..Default::default()
    };
    Ok(modes::probe_all(facts, &filters)?
        .into_iter()
        .map(|(mode, result)| {
            let (available, detail) = match result {
                Ok(points) => (true, points.join(", ")),
                Err(why) => (false, why),
            };
            ModeReport {
                mode,
                available,
                detail,
            }
        })
        .collect())
}

/// Every mode unavailable for one reason (the kernel facts could not be read).
fn unavailable(why: &str) -> Vec<ModeReport> {
    PLAN.iter()
        .map(|spec| ModeReport {
            mode: spec.name,
            available: false,
            detail: why.to_string(),
        })
        .collect()
}
