//! The OCI runtime config a container runtime would give the DaemonSet's container: umoci's
//! config for the image (its user, its default mounts), changed as the kubelet and containerd
//! change it for deploy/kubernetes/rmap-trace.yaml: its capabilities only (bounding, effective,
//! permitted; no ambient ones, as for any non-root user), no new privileges, a read-only root,
//! the node's pid namespace (`hostPID`), a cgroup namespace of its own, the memory limit, and
//! its volumes bind-mounted read-only where it mounts them (`emptyDir` from a guest directory).
use std::process::Command;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::{build::workspace_root, cmd};

/// The DaemonSet's manifest, relative to the repository.
pub const MANIFEST: &str = "deploy/kubernetes/rmap-trace.yaml";

/// What the test takes from the DaemonSet.
#[derive(Debug)]
pub struct Pod {
    /// `CAP_` names of `capabilities.add`.
    pub caps: Vec<String>,
    /// The container's args.
    pub args: Vec<String>,
    /// (mount path, host path or None for an emptyDir, read-only).
    pub mounts: Vec<(String, Option<String>, bool)>,
    pub memory_limit: u64,
    pub host_pid: bool,
}

/// The manifest's documents as JSON (`PyYAML`, which the pinned schema validator brings).
pub fn manifest_documents() -> anyhow::Result<Vec<Value>> {
    let path = workspace_root().join(MANIFEST);
    let out = cmd::stdout(
        Command::new("python3")
            .args([
                "-c",
                "import json, sys, yaml; json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)",
            ])
            .arg(&path),
    )
    .context("reading the DaemonSet with PyYAML (python3 -m pip install pyyaml)")?;
    Ok(serde_json::from_str(&out)?)
}

/// The DaemonSet's container as the test needs it.
pub fn daemonset() -> anyhow::Result<Pod> {
    let docs = manifest_documents()?;
    let ds = docs
        .iter()
        .find(|d| d["kind"] == "DaemonSet")
        .with_context(|| format!("{MANIFEST} has no DaemonSet"))?;
    let spec = &ds["spec"]["template"]["spec"];
    let c = &spec["containers"][0];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
            .unwrap_or_default()
    };
    let caps = strings(&c["securityContext"]["capabilities"]["add"])
        .iter()
        .map(|c| format!("CAP_{c}"))
        .collect();
    let volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
    let mut mounts = Vec::new();
    for m in c["volumeMounts"].as_array().cloned().unwrap_or_default() {
        let v = volumes
            .iter()
            .find(|v| v["name"] == m["name"])
            .with_context(|| format!("volume {} is not declared", m["name"]))?;
        let host = v["hostPath"]["path"].as_str().map(String::from);
        if host.is_none() && v["emptyDir"].is_null() {
            bail!("volume {} is neither a hostPath nor an emptyDir", v["name"]);
        }
        let at = m["mountPath"].as_str().context("mountPath")?.to_string();
        mounts.push((at, host, m["readOnly"] == true));
    }
    let memory = c["resources"]["limits"]["memory"].as_str().unwrap_or("");
    let memory_limit = memory
        .strip_suffix("Mi")
        .and_then(|n| n.parse::<u64>().ok())
        .map(|n| n << 20)
        .with_context(|| format!("the memory limit {memory:?} is not N Mi"))?;
    Ok(Pod {
        caps,
        args: strings(&c["args"]),
        mounts,
        memory_limit,
        host_pid: spec["hostPID"] == true,
    })
}

/// umoci's `config` changed into the DaemonSet container's: `args` run, `caps` granted,
/// `empty_dir` (a guest directory) standing for the emptyDir volumes.
pub fn config(umoci: &Value, pod: &Pod, args: &[String], caps: &[String], empty_dir: &str) -> Value {
    let mut c = umoci.clone();
    c["process"]["args"] = json!(
        std::iter::once("/usr/local/bin/rmap-trace".to_string())
            .chain(args.iter().cloned())
            .collect::<Vec<_>>()
    );
    c["process"]["terminal"] = json!(false);
    c["process"]["noNewPrivileges"] = json!(true);
    c["process"]["capabilities"] = json!({
        "bounding": caps, "effective": caps, "permitted": caps, "inheritable": [], "ambient": [],
    });
    c["root"] = json!({"path": "rootfs", "readonly": true});
    c["hostname"] = json!("rmap-trace");
    let keep_ns = |t: &str| t != "network" && (t != "pid" || !pod.host_pid);
    let mut namespaces: Vec<Value> = c["linux"]["namespaces"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n["type"].as_str().is_some_and(keep_ns))
        .collect();
    if !namespaces.iter().any(|n| n["type"] == "cgroup") {
        namespaces.push(json!({"type": "cgroup"}));
    }
    c["linux"]["namespaces"] = json!(namespaces);
    c["linux"]["cgroupsPath"] = json!("/rmap-trace-pod");
    c["linux"]["resources"] = json!({"memory": {"limit": pod.memory_limit}});
    c["linux"]["seccomp"] = Value::Null;
    let mut mounts: Vec<Value> = c["mounts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| {
            !pod.mounts
                .iter()
                .any(|(at, _, _)| m["destination"] == at.as_str())
        })
        .collect();
    for (at, host, ro) in &pod.mounts {
        let mut options = vec!["rbind"];
        if *ro {
            options.push("ro");
        }
        let source = host.as_deref().unwrap_or(empty_dir);
        mounts.push(json!({"destination": at, "type": "bind", "source": source, "options": options}));
    }
    c["mounts"] = json!(mounts);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The repository's DaemonSet gives the systemd unit's capabilities, mounts the node's
    /// cgroup tree, tracefs and pod logs read-only, and runs in the node's pid namespace.
    #[test]
    fn the_daemonset_as_the_runtime_sees_it() {
        let Ok(pod) = daemonset() else {
            // PyYAML missing: the vm-test suite installs it; this check is its guest's.
            eprintln!("PyYAML missing: skipped");
            return;
        };
        let mut caps = pod.caps.clone();
        caps.sort();
        assert_eq!(
            caps,
            ["CAP_BPF", "CAP_DAC_READ_SEARCH", "CAP_PERFMON", "CAP_SYSLOG"]
        );
        assert!(pod.host_pid);
        for at in [
            "/sys/fs/cgroup",
            "/sys/kernel/tracing",
            "/var/log/pods",
            "/var/log/containers",
        ] {
            assert!(
                pod.mounts
                    .iter()
                    .any(|(m, host, ro)| m == at && host.as_deref() == Some(at) && *ro),
                "{at}: {:?}",
                pod.mounts
            );
        }
        let umoci = json!({"process": {"user": {"uid": 65534}}, "linux": {"namespaces": [
            {"type": "pid"}, {"type": "network"}, {"type": "mount"}]},
            "mounts": [{"destination": "/sys/fs/cgroup", "type": "cgroup"}]});
        let c = config(&umoci, &pod, &["probe".into()], &pod.caps, "/tmp/run");
        assert_eq!(
            c["linux"]["namespaces"],
            json!([{"type": "mount"}, {"type": "cgroup"}])
        );
        assert_eq!(c["process"]["capabilities"]["ambient"], json!([]));
        let cgroup: Vec<&Value> = c["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["destination"] == "/sys/fs/cgroup")
            .collect();
        assert_eq!(cgroup.len(), 1);
        assert_eq!(cgroup[0]["type"], "bind");
    }
}
