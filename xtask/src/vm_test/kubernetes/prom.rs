//! What the guest's Prometheus evaluates: the repository's rules, with the alerts' `for` and
//! the KSM alert's threshold shortened to what a short guest run can reach (and a control copy
//! of that alert that must not fire), and every query of the dashboard with its Grafana
//! variables given values (`$node`: every node; `$__rate_interval`: one minute).
use std::fs;

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::build::workspace_root;

pub const RULES: &str = "deploy/prometheus/rmap-trace.rules.yml";
pub const DASHBOARD: &str = "deploy/grafana/rmap-trace.json";
/// The KSM alert's condition in the rules, and in the guest (a guest's KSM walks of 2,000
/// VMAs take milliseconds, not the 100 ms the alert is for).
const KSM_ALERT: &str = r#"{page_type="ksm"} > 0.1"#;
const KSM_ALERT_GUEST: &str = r#"{page_type="ksm"} > 0.001"#;
/// Every alert waits this long in the guest instead of its 5 minutes.
const FOR_GUEST: &str = "for: 10s";
pub const KSM_ALERT_NAME: &str = "RmapKsmWalkP99High";
/// A copy of the KSM alert with a threshold no walk reaches: it must stay inactive.
pub const CONTROL_ALERT_NAME: &str = "RmapKsmWalkP99HighControl";

/// The rules as the guest loads them.
pub fn guest_rules() -> anyhow::Result<String> {
    let rules = fs::read_to_string(workspace_root().join(RULES)).with_context(|| RULES.to_string())?;
    if rules.matches(KSM_ALERT).count() != 1 || !rules.contains("for: 5m") {
        bail!("{RULES}: the KSM alert ({KSM_ALERT}) or the alerts' `for: 5m` moved: update this test");
    }
    let mut out = rules
        .replace(KSM_ALERT, KSM_ALERT_GUEST)
        .replace("for: 5m", FOR_GUEST);
    out.push_str(&format!(
        "      - alert: {CONTROL_ALERT_NAME}\n        expr: instance_page_type:rmap_walk_duration_seconds:p99_5m{{page_type=\"ksm\"}} > 3600\n        {FOR_GUEST}\n"
    ));
    Ok(out)
}

/// One query of a dashboard panel.
#[derive(Debug, Clone)]
pub struct Query {
    pub panel: String,
    pub expr: String,
}

/// Every panel's queries with the variables given values; and the node variable's query.
pub fn dashboard_queries() -> anyhow::Result<(Vec<Query>, String)> {
    let text = fs::read_to_string(workspace_root().join(DASHBOARD)).with_context(|| DASHBOARD.to_string())?;
    let dash: Value = serde_json::from_str(&text).with_context(|| format!("{DASHBOARD} is not JSON"))?;
    let mut queries = Vec::new();
    for p in dash["panels"].as_array().context("no panels")? {
        let title = p["title"].as_str().unwrap_or("?");
        for t in p["targets"]
            .as_array()
            .with_context(|| format!("panel {title}: no targets"))?
        {
            let expr = t["expr"]
                .as_str()
                .with_context(|| format!("panel {title}: a target without expr"))?;
            queries.push(Query {
                panel: title.to_string(),
                expr: expr.replace("$node", ".*").replace("$__rate_interval", "1m"),
            });
        }
    }
    let node = dash["templating"]["list"]
        .as_array()
        .and_then(|l| l.iter().find(|v| v["name"] == "node"))
        .and_then(|v| v["definition"].as_str())
        .context("the dashboard has no node variable")?
        .to_string();
    Ok((queries, node))
}

/// `label_values(METRIC, LABEL)` as (metric, label).
pub fn label_values(definition: &str) -> Option<(&str, &str)> {
    let inner = definition.strip_prefix("label_values(")?.strip_suffix(')')?;
    let (metric, label) = inner.split_once(',')?;
    Some((metric.trim(), label.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_and_queries_for_the_guest() {
        let rules = guest_rules().unwrap();
        assert!(rules.contains(KSM_ALERT_GUEST) && !rules.contains("for: 5m"));
        assert!(rules.contains(CONTROL_ALERT_NAME));
        let (queries, node) = dashboard_queries().unwrap();
        assert!(queries.len() >= 13, "{queries:?}");
        assert!(queries.iter().all(|q| !q.expr.contains('$')), "{queries:?}");
        assert_eq!(label_values(&node), Some(("rmap_trace_build_info", "node")));
    }
}
