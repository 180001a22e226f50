//! The suite "kubernetes", on Debian's 6.1 kernel: rmap-trace deployed as the DaemonSet
//! would be, on a node laid out as the kubelet lays it out. The guest has a burstable
//! containerd pod's cgroup (systemd driver) with a `/var/log/pods` entry and the kubelet's
//! `/var/log/containers` link naming it. The image of `cargo xtask dist` is unpacked there by
//! umoci and run by Debian's runc with the DaemonSet's capabilities, mounts, user, read-only
//! root and memory limit ([`runtime`]): `probe` first (and once without `CAP_BPF`, which must
//! fail), then the DaemonSet's own command line, scraped by Debian's Prometheus with the
//! repository's rules while a KSM workload with a victim thread runs in the pod's cgroup. The
//! checks: the owner table, the JSON and `/metrics` name the pod's namespace, name and
//! container for its walks and for its stalled victim; every dashboard query returns series
//! ([`prom`]); every rule evaluates; the KSM alert fires and its control does not.
pub mod prom;
pub mod runtime;

use std::{fs, path::PathBuf};

use anyhow::Context as _;
use serde_json::Value;

use super::{Checks, export::percent_encode};
use crate::{
    build::workspace_root,
    guest::{self, GuestArgs},
    oci,
};

/// The pod: its UID, its container's id, names and QoS class.
const UID: &str = "5f0c2a9e-7b41-4c8e-9d3a-1e6b8f2c4a70";
/// A second pod of the namespace, with no workload.
const IDLE_UID: &str = "9a7c5e3b-1d2f-4a6c-8e0b-2c4d6f8a0b1c";
const CID: &str = "3e9a1c7f5b2d4e6a8c0f1b3d5e7a9c2b4d6f8e0a1c3b5d7f9e2a4c6b8d0f1e3a";
const NAMESPACE: &str = "shop";
const POD: &str = "web-0";
const CONTAINER: &str = "app";
/// KSM workloads run one after the other in the pod while the checks wait (at most this many).
const WORKLOADS: u32 = 6;

pub fn run(args: &GuestArgs, pages: u32, c: &mut Checks) -> anyhow::Result<()> {
    crate::validator::ensure()?;
    let dir = workspace_root().join("target/xtask/kubernetes");
    fs::create_dir_all(&dir)?;
    let binary = crate::build::static_binary()?;
    let version = crate::dist::version_of(&binary)?;
    let archive = oci::build(&binary, &version, crate::dist::commit_time()?, &dir)?;
    let unpacked = oci::check(&archive, &version)?;
    let umoci: Value = serde_json::from_slice(&fs::read(unpacked.bundle().join("config.json"))?)?;
    let pod = runtime::daemonset()?;
    let mut extra = files(&dir, &archive, &umoci, &pod)?;
    extra.extend(super::export::prometheus_files()?);
    extra.extend(super::debbin::files("runc", "usr/sbin/runc")?);
    extra.extend(super::debbin::files("umoci", "usr/bin/umoci")?);
    let debian = GuestArgs {
        patches: None,
        ..args.clone()
    };
    let run = guest::boot_with(&debian, &script(&version, pages), false, &extra)?;
    eprintln!(
        "xtask: guest (kubernetes) finished in {:.1} s",
        run.elapsed.as_secs_f64()
    );
    for name in [
        "setup.txt",
        "probe.txt",
        "probe-root.txt",
        "probe-nobpf.txt",
        "live.txt",
        "w.txt",
        "prom.tail",
        "ns.txt",
        "idle.txt",
        "nopod.txt",
    ] {
        if let Some(t) = run.outputs.get(name) {
            println!("--- guest {name} ---\n{}", t.trim_end());
        }
    }
    checks::all(&run, c)
}

/// The files the guest needs beside the programs: the image, the runtime configs, the rules,
/// the Prometheus config and the dashboard's queries.
fn files(
    dir: &std::path::Path,
    archive: &std::path::Path,
    umoci: &Value,
    pod: &runtime::Pod,
) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let write = |name: &str, data: &[u8]| -> anyhow::Result<(String, PathBuf)> {
        let path = dir.join(name);
        fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
        Ok((format!("k8s/{name}"), path))
    };
    let mut out = vec![("k8s/image.tar".to_string(), archive.to_path_buf())];
    // The DaemonSet's command line, its JSON written into its emptyDir and tables every 2 s
    // (its 10 s would make the run longer).
    let mut args = pod.args.clone();
    if let Some(i) = args.iter().position(|a| a == "--interval") {
        args[i + 1] = "2".into();
    }
    args.extend(["--json".into(), "/run/rmap-trace/live.json".into()]);
    let without_bpf: Vec<String> = pod.caps.iter().filter(|c| *c != "CAP_BPF").cloned().collect();
    for (name, args, caps) in [
        ("probe.json", vec!["probe".to_string()], &pod.caps),
        ("probe-nobpf.json", vec!["probe".to_string()], &without_bpf),
        ("tracer.json", args, &pod.caps),
    ] {
        let config = runtime::config(umoci, pod, &args, caps, "/tmp/ctr-run");
        out.push(write(name, &serde_json::to_vec_pretty(&config)?)?);
    }
    out.push(write("rules.yml", prom::guest_rules()?.as_bytes())?);
    out.push(write(
        "prom.yml",
        b"global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [/k8s/rules.yml]\nscrape_configs:\n  - job_name: rmap-trace\n    static_configs:\n      - targets: [127.0.0.1:9500]\n        labels: {node: guest}\n",
    )?);
    let (queries, node) = prom::dashboard_queries()?;
    let mut lines: Vec<String> = queries.iter().map(|q| percent_encode(&q.expr)).collect();
    let (metric, label) = prom::label_values(&node).context("the node variable is no label_values()")?;
    lines.push(format!("LABEL {label} {}", percent_encode(metric)));
    out.push(write("queries.txt", (lines.join("\n") + "\n").as_bytes())?);
    Ok(out)
}

/// The guest's script: the node, the container runs, Prometheus, the workloads, the queries.
fn script(version: &str, pages: u32) -> String {
    SCRIPT
        .replace("@UID_@", &UID.replace('-', "_"))
        .replace("@IDLE_UID_@", &IDLE_UID.replace('-', "_"))
        .replace("@IDLE_UID@", IDLE_UID)
        .replace("@UID@", UID)
        .replace("@CID@", CID)
        .replace("@NS@", NAMESPACE)
        .replace("@POD@", POD)
        .replace("@CTR@", CONTAINER)
        .replace("@VERSION@", version)
        .replace("@PAGES@", &pages.to_string())
        .replace("@WORKLOADS@", &WORKLOADS.to_string())
        .replace(
            "@FIRING@",
            &percent_encode(&format!(
                r#"ALERTS{{alertname="{}",alertstate="firing"}}"#,
                prom::KSM_ALERT_NAME
            )),
        )
}

const SCRIPT: &str = r#"ifconfig lo 127.0.0.1 up
phase node
# The node: a burstable pod's cgroup as the kubelet (systemd driver) and containerd make it,
# and the kubelet's log directories naming the pod and its container.
K=/sys/fs/cgroup/kubepods.slice
POD=$K/kubepods-burstable.slice/kubepods-burstable-pod@UID_@.slice
CTR=$POD/cri-containerd-@CID@.scope
echo +memory > /sys/fs/cgroup/cgroup.subtree_control
mkdir -p $CTR
for d in $K $K/kubepods-burstable.slice $POD; do echo +memory > $d/cgroup.subtree_control; done
mkdir -p /var/log/pods/@NS@_@POD@_@UID@/@CTR@ /var/log/containers
: > /var/log/pods/@NS@_@POD@_@UID@/@CTR@/0.log
ln -s /var/log/pods/@NS@_@POD@_@UID@/@CTR@/0.log /var/log/containers/@POD@_@NS@_@CTR@-@CID@.log
# A second pod of the namespace, besteffort, with no workload.
IDLE=$K/kubepods-besteffort.slice/kubepods-besteffort-pod@IDLE_UID_@.slice
mkdir -p $IDLE /var/log/pods/@NS@_idle-0_@IDLE_UID@/app
# The image, unpacked by umoci as a runtime's image service would, on a tmpfs (xattrs: the
# binary's file capabilities).
mkdir -p /ctr /tmp/ctr-run /run/runc
# An emptyDir is world-writable (0777); the container runs as 65534.
chmod 0777 /tmp/ctr-run
mount -t tmpfs ctr /ctr
mkdir /ctr/layout
tar -xf /k8s/image.tar -C /ctr/layout
umoci unpack --image /ctr/layout:@VERSION@ /ctr/bundle > /tmp/setup.txt 2>&1 || echo "umoci unpack failed" >> /tmp/setup.txt
ctr() { cp /k8s/$1.json /ctr/bundle/config.json; runc --root /run/runc run --no-pivot --bundle /ctr/bundle $1; }
phase probe
ctr probe > /tmp/probe.txt 2>&1; echo "exit $?" >> /tmp/probe.txt
ctr probe-nobpf > /tmp/probe-nobpf.txt 2>&1; echo "exit $?" >> /tmp/probe-nobpf.txt
rmap-trace probe > /tmp/probe-root.txt 2>&1
uname -r > /tmp/uname.txt
phase tracer
# The pod filters, in the kernel: the namespace (every KSM walk here is the pod's), the idle
# pod (none), a pod that is not on the node (an error).
F=""
for f in "ns --namespace @NS@" "idle --pod @NS@/idle-0"; do
  set -- $f; n=$1; shift
  rmap-trace --attach-only --attach-mode fentry --interval 2 --json /tmp/$n.json "$@" > /tmp/$n.txt 2>&1 &
  F="$F $!"
  for i in $(seq 300); do grep -q '^attach:' /tmp/$n.txt && break; sleep 0.2; done
done
rmap-trace --attach-only --pod @NS@/web-1 > /tmp/nopod.txt 2>&1; echo "exit $?" >> /tmp/nopod.txt
ctr tracer > /tmp/live.txt 2>&1 &
T=$!
for i in $(seq 300); do grep -q '^prometheus: serving' /tmp/live.txt && break; sleep 0.2; done
prometheus --config.file=/k8s/prom.yml --storage.tsdb.path=/tmp/prom --web.listen-address=127.0.0.1:9090 > /tmp/prom.log 2>&1 &
P=$!
for i in $(seq 600); do wget -qO- 'http://127.0.0.1:9090/api/v1/query?query=up' 2>/dev/null | grep -q '"1"\]' && break; sleep 0.5; done
phase workloads
# KSM workloads with a victim thread, one after the other, in the pod's container cgroup.
( n=0; while [ $n -lt @WORKLOADS@ ] && [ ! -f /tmp/stop ]; do
    n=$((n+1))
    sh -c "echo \$\$ > $CTR/cgroup.procs; exec rmap-trace workload --types ksm --layouts split --pages @PAGES@ --victims 1" >> /tmp/w.txt 2>&1
    echo "workload $n exit $?" >> /tmp/w.txt
  done ) &
W=$!
# Until the KSM alert fires (its `for` is 10 s here), at most 20 minutes.
for i in $(seq 1200); do
  wget -qO /tmp/firing.json 'http://127.0.0.1:9090/api/v1/query?query=@FIRING@' 2>/dev/null
  grep -q '"result":\[{' /tmp/firing.json && grep -q 'rmap_stall_victim' /tmp/metrics.txt 2>/dev/null && break
  wget -qO /tmp/metrics.txt http://127.0.0.1:9500/metrics 2>/dev/null
  sleep 1
done
echo "waited $i s for the alert" > /tmp/waited.txt
phase queries
wget -qO /tmp/metrics.txt http://127.0.0.1:9500/metrics
wget -qO /tmp/rules.json 'http://127.0.0.1:9090/api/v1/rules'
wget -qO /tmp/alerts.json 'http://127.0.0.1:9090/api/v1/alerts'
: > /tmp/queries.out
i=0
while read q; do
  i=$((i+1))
  case "$q" in
    LABEL*) set -- $q; url="http://127.0.0.1:9090/api/v1/label/$2/values?match[]=$3" ;;
    *) url="http://127.0.0.1:9090/api/v1/query?query=$q" ;;
  esac
  echo "Q $i $(wget -qO- "$url")" >> /tmp/queries.out
done < /k8s/queries.txt
touch /tmp/stop
wait $W
phase stop
runc --root /run/runc kill tracer TERM
wait $T; echo "tracer exit $?" >> /tmp/live.txt
kill -TERM $F; wait $F
kill $P; wait $P
tail -5 /tmp/prom.log > /tmp/prom.tail
for f in setup.txt probe.txt probe-nobpf.txt probe-root.txt uname.txt live.txt w.txt waited.txt metrics.txt queries.out prom.tail ns.txt idle.txt nopod.txt; do emit $f /tmp/$f; done
emit ns /tmp/ns.json
emit idle /tmp/idle.json
emit rules /tmp/rules.json
emit alerts /tmp/alerts.json
emit live /tmp/ctr-run/live.json
"#;

mod checks;
