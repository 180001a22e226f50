//! Owners named for people: a cgroup id by its path ([`super::paths`]) and, where the path is
//! a pod's, by the pod's namespace, name and container ([`super::pods`] decodes the path,
//! [`super::podlogs`] names the UID and container id). Cached per cgroup id, so that a line
//! per walk borrows its names without allocating.
use std::{collections::HashMap, path::PathBuf, time::Instant};

use serde::Serialize;

use super::{
    paths::CgroupPaths,
    podlogs::{self, PodLogs},
    pods::{self, PodCgroup},
};

/// What a pod's cgroup is called.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PodLabels {
    /// The pod's namespace; empty when the node's pod logs do not name its UID.
    pub namespace: String,
    /// The pod's name; its UID when unnamed.
    pub pod: String,
    /// The container's name; the first 12 digits of its id when unnamed; empty for the pod's
    /// own level (memory charged to the pod, not to one of its containers).
    pub container: String,
    /// The pod's UID (`metadata.uid`).
    pub pod_uid: String,
    /// The runtime's container id (64 hex digits); empty for the pod's own level.
    pub container_id: String,
    /// `guaranteed`, `burstable` or `besteffort`.
    pub qos: &'static str,
}

impl PodLabels {
    /// `namespace/pod/container` (`namespace/pod` for the pod's own level); an unnamed pod is
    /// `pod:<UID>`.
    pub fn display(&self) -> String {
        let pod = if self.namespace.is_empty() {
            format!("pod:{}", self.pod_uid)
        } else {
            format!("{}/{}", self.namespace, self.pod)
        };
        if self.container.is_empty() {
            pod
        } else {
            format!("{pod}/{}", self.container)
        }
    }

    /// Names `p` from the node's pod logs; the second value says whether every name was found.
    fn of(p: &PodCgroup, logs: &mut PodLogs) -> (Self, bool) {
        let (namespace, pod) = logs.pod(&p.pod_uid).map_or_else(
            || (String::new(), p.pod_uid.clone()),
            |n| (n.namespace.clone(), n.pod.clone()),
        );
        let mut complete = !namespace.is_empty();
        let (container, container_id) = match &p.container {
            None => (String::new(), String::new()),
            Some(c) => {
                let name = logs.container(&c.id).map(str::to_string);
                complete &= name.is_some();
                (
                    name.unwrap_or_else(|| pods::short_id(&c.id).to_string()),
                    c.id.clone(),
                )
            }
        };
        let labels = Self {
            namespace,
            pod,
            container,
            pod_uid: p.pod_uid.clone(),
            container_id,
            qos: p.qos.name(),
        };
        (labels, complete)
    }
}

/// A cgroup's pod labels (none: not a pod's), and when they were named if some name was
/// missing (named again after [`podlogs::RESCAN`]).
type Named = (Option<PodLabels>, Option<Instant>);

/// See the module's doc.
#[derive(Debug)]
pub struct OwnerNames {
    paths: CgroupPaths,
    logs: PodLogs,
    pods: HashMap<u64, Named>,
}

impl Default for OwnerNames {
    fn default() -> Self {
        Self::new(podlogs::POD_LOGS)
    }
}

impl OwnerNames {
    /// Cgroups under the cgroup v2 mount, pods named from `pod_logs` (`/var/log/pods`).
    pub fn new(pod_logs: impl Into<PathBuf>) -> Self {
        Self::at(super::CGROUP_ROOT, pod_logs)
    }

    pub fn at(cgroup_root: impl Into<PathBuf>, pod_logs: impl Into<PathBuf>) -> Self {
        Self {
            paths: CgroupPaths::at(cgroup_root),
            logs: PodLogs::at(pod_logs),
            pods: HashMap::new(),
        }
    }

    /// The path of cgroup `id` (`(not charged)`, `cgroup id N` when it cannot be found).
    pub fn name(&mut self, id: u64) -> String {
        self.paths.name(id)
    }

    /// The path of cgroup `id` and its pod labels, borrowed.
    pub fn describe(&mut self, id: u64) -> (Option<&str>, Option<&PodLabels>) {
        self.resolve(id);
        let pod = self.pods.get(&id).and_then(|(l, _)| l.as_ref());
        (self.paths.cached(id), pod)
    }

    /// The pod labels of cgroup `id`, if it is a pod's.
    pub fn pod(&mut self, id: u64) -> Option<&PodLabels> {
        self.describe(id).1
    }

    fn resolve(&mut self, id: u64) {
        let fresh = match self.pods.get(&id) {
            Some((_, None)) => true,
            Some((_, Some(at))) => at.elapsed() < podlogs::RESCAN,
            None => false,
        };
        if fresh {
            return;
        }
        let Some(path) = self.paths.lookup(id) else {
            return;
        };
        let named = match pods::decode(path) {
            None => (None, None),
            Some(p) => {
                let (labels, complete) = PodLabels::of(&p, &mut self.logs);
                (Some(labels), (!complete).then(Instant::now))
            }
        };
        if self.pods.len() >= super::paths::MAX_CGROUPS {
            self.pods.clear();
        }
        self.pods.insert(id, named);
    }

    /// The pod-level cgroups on the node now (ids), with their pod's UID and names: the tree
    /// and the pod logs read again.
    pub fn pod_cgroups(&mut self) -> Vec<(u64, String, Option<podlogs::PodName>)> {
        let names: HashMap<String, podlogs::PodName> = self
            .logs
            .pods()
            .map(|(u, n)| (u.to_string(), n.clone()))
            .collect();
        self.paths.rescan();
        self.paths
            .entries()
            .filter_map(|(id, path)| {
                let p = pods::decode(path)?;
                p.container
                    .is_none()
                    .then(|| (id, p.pod_uid.clone(), names.get(&p.pod_uid).cloned()))
            })
            .collect()
    }

    /// Where pods are named from.
    pub fn pod_logs(&self) -> &std::path::Path {
        self.logs.dir()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::{os::unix::fs::MetadataExt as _, path::Path};

    use super::*;

    pub const UID: &str = "1b4e3b8a-5c5e-4a6e-9f0e-2d3c4b5a6978";
    pub const ID: &str = "8f2d4c6b1a3e5f7d9c0b2a4e6f8d1c3b5a7e9f0d2c4b6a8e1f3d5c7b9a0e2f4d";

    /// A node in a temporary directory: a cgroup tree with a burstable containerd pod (systemd
    /// driver) and a unit, and the kubelet's log tree naming the pod and its container.
    /// Returns (root, container cgroup, pod cgroup, unit cgroup).
    pub fn node(tag: &str) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
        let root = std::env::temp_dir().join(format!("rmap-node-{tag}-{}", std::process::id()));
        let pod = root.join(format!(
            "cgroup/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
            UID.replace('-', "_")
        ));
        let container = pod.join(format!("cri-containerd-{ID}.scope"));
        let unit = root.join("cgroup/system.slice/java.service");
        for d in [&container, &unit] {
            std::fs::create_dir_all(d).unwrap();
        }
        let logs = root.join(format!("log/pods/shop_web-0_{UID}/app"));
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::create_dir_all(root.join("log/containers")).unwrap();
        std::os::unix::fs::symlink(
            logs.join("0.log"),
            root.join(format!("log/containers/web-0_shop_app-{ID}.log")),
        )
        .unwrap();
        (root, container, pod, unit)
    }

    pub fn ino(p: &Path) -> u64 {
        std::fs::metadata(p).unwrap().ino()
    }

    #[test]
    fn pods_by_name_other_cgroups_by_path() {
        let (root, container, pod, unit) = node("names");
        let mut names = OwnerNames::at(root.join("cgroup"), root.join("log/pods"));
        let (path, labels) = names.describe(ino(&container));
        assert!(
            path.is_some_and(|p| p.ends_with(&format!("cri-containerd-{ID}.scope"))),
            "{path:?}"
        );
        let labels = labels.unwrap().clone();
        assert_eq!(labels.display(), "shop/web-0/app");
        assert_eq!(
            (labels.qos, labels.pod_uid.as_str(), labels.container_id.as_str()),
            ("burstable", UID, ID)
        );
        assert_eq!(
            names.pod(ino(&pod)).map(PodLabels::display),
            Some("shop/web-0".into())
        );
        assert_eq!(
            names.describe(ino(&unit)),
            (Some("/system.slice/java.service"), None)
        );
        let pods = names.pod_cgroups();
        assert_eq!(pods.len(), 1);
        assert_eq!((pods[0].0, pods[0].1.as_str()), (ino(&pod), UID));
        assert_eq!(pods[0].2.as_ref().map(|n| n.pod.as_str()), Some("web-0"));
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// Without the pod logs the pod is still told apart, by UID and short container id.
    #[test]
    fn unnamed_pods_keep_their_ids() {
        let (root, container, _, _) = node("unnamed");
        let mut names = OwnerNames::at(root.join("cgroup"), root.join("nowhere/pods"));
        let labels = names.pod(ino(&container)).unwrap();
        assert_eq!(labels.display(), format!("pod:{UID}/8f2d4c6b1a3e"));
        assert_eq!((labels.namespace.as_str(), labels.pod.as_str()), ("", UID));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
