//! The checks of the suite "kubernetes", on what the guest sent back.
use serde_json::Value;

use super::{CID, CONTAINER, NAMESPACE, POD, UID, prom};
use crate::vm_test::{Checks, json};

fn text<'a>(run: &'a GuestRun, name: &str) -> &'a str {
    run.outputs.get(name).map_or("", |s| s.trim())
}

use crate::guest::qemu::GuestRun;

pub fn all(run: &GuestRun, c: &mut Checks) -> anyhow::Result<()> {
    container(run, c);
    let live = json(run, "live")?;
    owners(run, &live, c);
    filters(run, &live, c)?;
    victims(run, &live, c);
    metrics(run, c);
    queries(run, c)?;
    rules(run, c)
}

/// The first attach mode `probe` says is available, and its tracefs line.
fn probe_view(probe: &str) -> (Option<&str>, Option<&str>) {
    let mode = probe
        .lines()
        .find(|l| l.starts_with("mode ") && l.contains(" available:"))
        .and_then(|l| l.split_whitespace().nth(1));
    (mode, probe.lines().find(|l| l.starts_with("tracefs:")))
}

/// The image's binary in the DaemonSet's container sees what root sees; without `CAP_BPF`
/// nothing attaches.
fn container(run: &GuestRun, c: &mut Checks) {
    let (probe, root, nobpf) = (
        text(run, "probe.txt"),
        text(run, "probe-root.txt"),
        text(run, "probe-nobpf.txt"),
    );
    let (mode, tracefs) = probe_view(probe);
    let (root_mode, root_tracefs) = probe_view(root);
    c.check(
        "kubernetes: probe in the DaemonSet's container (runc, its 4 capabilities, user 65534) picks root's mode and finds tracefs",
        probe.ends_with("exit 0") && mode.is_some() && mode == root_mode && tracefs == root_tracefs,
        format!("container: {mode:?}, {tracefs:?}; root: {root_mode:?}, {root_tracefs:?}"),
    );
    // The binary runs (its own error line, not the runtime's exec failing) and stops at its
    // first map: nothing is created or attached without CAP_BPF.
    let (nobpf_mode, _) = probe_view(nobpf);
    let error = nobpf
        .lines()
        .find(|l| l.starts_with("rmap-trace: error:"))
        .unwrap_or("");
    c.check(
        "kubernetes: the same container without CAP_BPF runs but attaches nothing",
        nobpf_mode.is_none() && error.contains("failed to create map") && nobpf.ends_with("exit 1"),
        if error.is_empty() {
            nobpf.lines().next().unwrap_or("no output")
        } else {
            error
        },
    );
    let live = text(run, "live.txt");
    c.check(
        "kubernetes: the DaemonSet's command line ran in the container and ended cleanly on SIGTERM",
        live.lines().any(|l| l.starts_with("attach:")) && live.ends_with("tracer exit 0"),
        live.lines()
            .find(|l| l.starts_with("attach:"))
            .unwrap_or("no attach line")
            .to_string(),
    );
}

fn pod_matches(p: &Value) -> bool {
    p["namespace"] == NAMESPACE
        && p["pod"] == POD
        && p["container"] == CONTAINER
        && p["qos"] == "burstable"
        && p["pod_uid"] == UID
        && p["container_id"] == CID
}

/// The owner table and JSON name the pod for the walks of its memory.
fn owners(run: &GuestRun, live: &Value, c: &mut Checks) {
    let row = live["owners"]
        .as_array()
        .and_then(|a| a.iter().find(|r| pod_matches(&r["pod"])));
    let count = row.and_then(|r| r["count"].as_u64()).unwrap_or(0);
    let key = row.and_then(|r| r["key"].as_str()).unwrap_or("");
    c.check(
        "kubernetes: JSON owners name the pod (namespace, pod, container, UID, container id, QoS) by its cgroup",
        count > 0 && key.ends_with(&format!("/cri-containerd-{CID}.scope")),
        format!("{count} walks, key {key}"),
    );
    let shown = format!("{NAMESPACE}/{POD}/{CONTAINER} (burstable)");
    let table_line = text(run, "live.txt").lines().find(|l| l.starts_with(&shown));
    c.check(
        "kubernetes: the live owner table names the pod",
        table_line.is_some(),
        table_line.unwrap_or("no owner line for the pod").to_string(),
    );
}

/// `--namespace` and `--pod`, filtered in the kernel on the pods' cgroups: the namespace's
/// tracer counted every KSM walk (all of them the pod's), an idle pod's none, and a pod that
/// is not on the node is one error line.
fn filters(run: &GuestRun, live: &Value, c: &mut Checks) -> anyhow::Result<()> {
    let all = crate::vm_test::kernel_walks(live, "ksm");
    let ns = crate::vm_test::kernel_walks(&json(run, "ns")?, "ksm");
    let idle = crate::vm_test::kernel_walks(&json(run, "idle")?, "ksm");
    c.check(
        "kubernetes: --namespace shop counted in the kernel every KSM walk of the pod, --pod shop/idle-0 none",
        all > 0 && ns == all && idle == 0,
        format!("--namespace shop {ns}, --pod shop/idle-0 {idle}, the DaemonSet's tracer {all}"),
    );
    let bad = text(run, "nopod.txt");
    c.check(
        "kubernetes: --pod of a pod not on the node is one error line before attaching",
        bad.lines()
            .next()
            .is_some_and(|l| l.contains("no such pod on this node"))
            && !bad.contains("attach:")
            && bad.ends_with("exit 1"),
        bad.replace('\n', " | "),
    );
    Ok(())
}

/// The stalled victim thread is named by its pod.
fn victims(run: &GuestRun, live: &Value, c: &mut Checks) {
    let row = live["stalls"]["victims"]
        .as_array()
        .and_then(|a| a.iter().find(|r| pod_matches(&r["pod"])));
    let waits = row.and_then(|r| r["waits"].as_u64()).unwrap_or(0);
    c.check(
        "kubernetes: JSON stall victims name the pod of the waiting thread",
        waits > 0,
        format!(
            "{waits} waits of process {}",
            row.and_then(|r| r["process"].as_str()).unwrap_or("?")
        ),
    );
    let shown = format!("  pod: {NAMESPACE}/{POD}/{CONTAINER} (burstable)");
    c.check(
        "kubernetes: the live stall table names the victim's pod",
        text(run, "live.txt").lines().any(|l| l == shown),
        shown.trim().to_string(),
    );
}

/// `/metrics` lines of a family labelled with the pod; their values.
fn pod_lines<'a>(metrics: &'a str, family: &str) -> Vec<(&'a str, f64)> {
    let labels = format!(
        "cgroup=\"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CID}.scope\",namespace=\"{NAMESPACE}\",pod=\"{POD}\",container=\"{CONTAINER}\"}}",
        UID.replace('-', "_")
    );
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(&labels))
        .filter_map(|l| Some((l, l.rsplit(' ').next()?.parse().ok()?)))
        .collect()
}

fn metrics(run: &GuestRun, c: &mut Checks) {
    let m = text(run, "metrics.txt");
    for family in [
        "rmap_owner_walks_total",
        "rmap_owner_walk_seconds_total",
        "rmap_stall_victim_waits_total",
        "rmap_stall_victim_wait_seconds_total",
    ] {
        let lines = pod_lines(m, family);
        c.check(
            &format!("kubernetes: /metrics {family} names the pod"),
            lines.len() == 1 && lines[0].1 > 0.0,
            lines.first().map_or("no line", |l| l.0).to_string(),
        );
    }
    let kernel = format!("kernel=\"{}\"", text(run, "uname.txt"));
    let info = m.lines().find(|l| l.starts_with("rmap_trace_build_info{"));
    c.check(
        "kubernetes: rmap_trace_build_info carries the kernel release",
        info.is_some_and(|l| l.contains(&kernel)),
        info.unwrap_or("no rmap_trace_build_info").to_string(),
    );
}

/// Every dashboard query returned series from the guest's Prometheus; the node variable has
/// the guest's node.
fn queries(run: &GuestRun, c: &mut Checks) -> anyhow::Result<()> {
    let (queries, node) = prom::dashboard_queries()?;
    let answers: Vec<Value> = text(run, "queries.out")
        .lines()
        .map(|l| {
            let json = l.splitn(3, ' ').nth(2).unwrap_or("");
            serde_json::from_str(json).unwrap_or(Value::Null)
        })
        .collect();
    for (i, q) in queries.iter().enumerate() {
        let a = answers.get(i).unwrap_or(&Value::Null);
        let series = a["data"]["result"].as_array().map_or(0, Vec::len);
        c.check(
            &format!("kubernetes: dashboard \"{}\" returns data", q.panel),
            a["status"] == "success" && series > 0,
            format!("{series} series: {}", q.expr),
        );
    }
    let values = answers
        .get(queries.len())
        .map_or(Value::Null, |a| a["data"].clone());
    c.check(
        "kubernetes: the dashboard's node variable lists the guest's node",
        values.as_array().is_some_and(|v| v.iter().any(|n| n == "guest")),
        format!("{node}: {values}"),
    );
    Ok(())
}

/// Every rule evaluated without error; the KSM alert fires, its control does not.
fn rules(run: &GuestRun, c: &mut Checks) -> anyhow::Result<()> {
    let rules = json(run, "rules")?;
    let all: Vec<&Value> = rules["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .collect();
    let bad: Vec<String> = all
        .iter()
        .filter(|r| r["health"] != "ok" || r["lastError"].as_str().is_some_and(|e| !e.is_empty()))
        .map(|r| format!("{} {} {}", r["name"], r["health"], r["lastError"]))
        .collect();
    c.check(
        "kubernetes: every recording and alerting rule evaluated by the guest's Prometheus",
        all.len() >= 11 && bad.is_empty(),
        format!("{} rules, unhealthy: {bad:?}", all.len()),
    );
    let alerts = json(run, "alerts")?;
    let state = |name: &str| -> Vec<String> {
        alerts["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["labels"]["alertname"] == name)
            .map(|a| {
                format!(
                    "{} {} node={} value={}",
                    name, a["state"], a["labels"]["node"], a["value"]
                )
            })
            .collect()
    };
    let ksm = state(prom::KSM_ALERT_NAME);
    c.check(
        "kubernetes: the KSM walk p99 alert fired during the KSM workload",
        ksm.iter()
            .any(|s| s.contains("\"firing\"") && s.contains("node=\"guest\"")),
        format!("{ksm:?}; {}", text(run, "waited.txt")),
    );
    let control = state(prom::CONTROL_ALERT_NAME);
    c.check(
        "kubernetes: its control copy (threshold 3600 s) did not",
        control.is_empty(),
        format!("{control:?}"),
    );
    Ok(())
}
