//! `cargo xtask deploy-check`: the Kubernetes and Prometheus files of `deploy/` checked on
//! this host, with pinned tools from package registries: the manifests against the Kubernetes
//! API schema (`kubernetes-validate`, `PyPI`, strict: an unknown field fails, which a
//! deliberately broken copy proves each run), the rules with Debian's `promtool check rules`
//! and `promtool test rules`, the dashboard's queries parsed by promtool too (as recording
//! rules), and the places where the files must agree with each other and with the systemd unit.
use std::{fs, process::Command};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::{
    build::workspace_root,
    cmd,
    validator::{self, VALIDATOR, VALIDATOR_VERSION},
    vm_test::kubernetes::{prom, runtime},
};

/// Kubernetes versions the manifests are validated against: the oldest still common and the
/// validator's newest.
const KUBERNETES: [&str; 2] = ["1.29.0", "1.37.0"];
const SERVICE_MONITOR: &str = "deploy/kubernetes/servicemonitor.yaml";
const RULES_TEST: &str = "deploy/prometheus/rmap-trace.rules.test.yml";

pub fn run() -> anyhow::Result<()> {
    validator::ensure()?;
    crate::apt::install(&["prometheus"])?;
    manifests()?;
    consistency()?;
    rules()?;
    dashboard()?;
    eprintln!("xtask: deploy-check passed");
    Ok(())
}

/// The DaemonSet's file against each Kubernetes version; a copy with an unknown field must fail.
fn manifests() -> anyhow::Result<()> {
    let path = workspace_root().join(runtime::MANIFEST);
    let documents = runtime::manifest_documents()?.len();
    for k in KUBERNETES {
        let report = validator::validate(&path, k)?;
        let passed = report.lines().filter(|l| l.contains(" passed ")).count();
        if passed != documents {
            bail!("{VALIDATOR}: {passed} of {documents} resources passed:\n{report}");
        }
        eprintln!(
            "xtask: {VALIDATOR} {VALIDATOR_VERSION} --strict -k {k}:\n{}",
            report.trim_end()
        );
    }
    let text = fs::read_to_string(&path)?;
    let broken = text.replacen("          readinessProbe:", "          readinessProbes:", 1);
    if broken == text {
        bail!(
            "{}: no readinessProbe to misspell for the validator's control",
            runtime::MANIFEST
        );
    }
    let copy = workspace_root().join(format!("target/xtask/broken-{}.yaml", std::process::id()));
    fs::create_dir_all(copy.parent().context("target dir")?)?;
    fs::write(&copy, broken)?;
    let caught = validator::validate(&copy, KUBERNETES[1]);
    fs::remove_file(&copy)?;
    match caught {
        Ok(report) => bail!("{VALIDATOR} accepted a misspelt field (readinessProbes):\n{report}"),
        Err(e) => eprintln!(
            "xtask: {VALIDATOR} rejects a misspelt field, as it must: {}",
            e.to_string()
                .lines()
                .find(|l| l.contains("readinessProbes"))
                .unwrap_or("rejected")
        ),
    }
    Ok(())
}

/// What the files must agree on: the DaemonSet's capabilities are the systemd unit's; the
/// ServiceMonitor selects the Service's pods by its port name and labels them with the node,
/// which the rules and the dashboard group by; the scrape job is the one the target-down
/// alert names.
fn consistency() -> anyhow::Result<()> {
    let pod = runtime::daemonset()?;
    let unit = fs::read_to_string(workspace_root().join("dist/rmap-trace.service"))?;
    let mut unit_caps = crate::dist::unit_capabilities(&unit)?;
    let mut caps = pod.caps.clone();
    unit_caps.sort();
    caps.sort();
    if caps != unit_caps {
        bail!("the DaemonSet adds {caps:?}, the systemd unit grants {unit_caps:?}");
    }
    let docs = runtime::manifest_documents()?;
    let service = docs
        .iter()
        .find(|d| d["kind"] == "Service")
        .context("no Service")?;
    let sm = yaml(SERVICE_MONITOR)?;
    let sm = sm.first().context("an empty ServiceMonitor file")?;
    let endpoint = &sm["spec"]["endpoints"][0];
    let want_port = &service["spec"]["ports"][0]["name"];
    let node_label = endpoint["relabelings"]
        .as_array()
        .is_some_and(|r| r.iter().any(|r| r["targetLabel"] == "node"));
    let selects = sm["spec"]["selector"]["matchLabels"]
        .as_object()
        .is_some_and(|m| m.iter().all(|(k, v)| service["metadata"]["labels"][k] == *v));
    let job = service["metadata"]["labels"][sm["spec"]["jobLabel"].as_str().unwrap_or("")].clone();
    if sm["kind"] != "ServiceMonitor"
        || endpoint["port"] != *want_port
        || !node_label
        || !selects
        || job != "rmap-trace"
    {
        bail!(
            "{SERVICE_MONITOR} does not select the Service's {want_port} port, label node, or name the job rmap-trace"
        );
    }
    eprintln!(
        "xtask: DaemonSet capabilities = the systemd unit's ({}); the ServiceMonitor scrapes port {want_port} as job {job} with a node label",
        caps.join(" ")
    );
    Ok(())
}

/// A YAML file of the repository as JSON documents.
fn yaml(rel: &str) -> anyhow::Result<Vec<Value>> {
    let out = cmd::stdout(
        Command::new("python3")
            .args([
                "-c",
                "import json, sys, yaml; json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)",
            ])
            .arg(workspace_root().join(rel)),
    )?;
    Ok(serde_json::from_str(&out)?)
}

/// promtool's checks and unit tests of the rules.
fn rules() -> anyhow::Result<()> {
    let dir = workspace_root();
    for args in [
        vec!["check", "rules", prom::RULES],
        vec!["test", "rules", RULES_TEST],
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .current_dir(&dir)
            .output()
            .context("running promtool")?;
        let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            bail!("promtool {}:\n{said}", args.join(" "));
        }
        let said: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
        eprintln!("xtask: promtool {}: {}", args.join(" "), said.join(" | "));
    }
    Ok(())
}

/// The dashboard: its panels' shape, and every query parsed by promtool (each one a
/// recording rule of a scratch rules file).
fn dashboard() -> anyhow::Result<()> {
    let text = fs::read_to_string(workspace_root().join(prom::DASHBOARD))?;
    let dash: Value = serde_json::from_str(&text)?;
    let panels = dash["panels"].as_array().context("no panels")?;
    let mut ids = std::collections::HashSet::new();
    for p in panels {
        let title = p["title"].as_str().unwrap_or("?");
        let ok = ids.insert(p["id"].as_u64().unwrap_or(0))
            && p["datasource"]["uid"] == "${datasource}"
            && p["gridPos"]["w"].as_u64().is_some_and(|w| w > 0 && w <= 24)
            && p["targets"].as_array().is_some_and(|t| !t.is_empty());
        if !ok {
            bail!(
                "{}: panel {title:?} lacks a unique id, the datasource variable, a place or a query",
                prom::DASHBOARD
            );
        }
    }
    let (queries, _) = prom::dashboard_queries()?;
    let mut scratch = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in queries.iter().enumerate() {
        scratch.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(&q.expr)?
        ));
    }
    let path = workspace_root().join(format!("target/xtask/dashboard-{}.rules.yml", std::process::id()));
    fs::create_dir_all(path.parent().context("target dir")?)?;
    fs::write(&path, scratch)?;
    let out = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&path)
        .output();
    fs::remove_file(&path)?;
    let out = out.context("running promtool")?;
    if !out.status.success() {
        bail!(
            "the dashboard's queries do not parse:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    eprintln!(
        "xtask: {}: {} panels, {} queries parsed by promtool",
        prom::DASHBOARD,
        panels.len(),
        queries.len()
    );
    Ok(())
}
