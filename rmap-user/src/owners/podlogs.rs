//! Pod and container names from the node's kubelet log directories, the only place on a node
//! that names them without asking the API server:
//! - `/var/log/pods/<namespace>_<pod>_<uid>/<container>/`: each pod by its UID, with its
//!   containers' names;
//! - `/var/log/containers/<pod>_<namespace>_<container>-<id>.log` (the kubelet's links beside
//!   it): each container by its runtime id. Where the runtime is Docker's, the pod's own
//!   `<container>/<n>.log` is a link into `/var/lib/docker/containers/<id>/`, which names it too.
//!
//! Read when a UID or id is not known, at most once per [`RESCAN`]; what is read is
//! untrusted text: a name that breaks Kubernetes' rules for it is skipped.
use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// Where the kubelet writes pod logs.
pub const POD_LOGS: &str = "/var/log/pods";
/// Least time between two scans.
pub const RESCAN: Duration = Duration::from_secs(1);
/// Most pods and containers kept.
pub const MAX_ENTRIES: usize = 65_536;

/// A pod's names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodName {
    pub namespace: String,
    pub pod: String,
}

/// See the module's doc.
#[derive(Debug)]
pub struct PodLogs {
    pods: PathBuf,
    containers: PathBuf,
    by_uid: HashMap<String, PodName>,
    /// Container id → container name.
    by_id: HashMap<String, String>,
    scanned: Option<Instant>,
    /// Bumped by every scan: names cached elsewhere may be out of date.
    generation: u64,
}

impl Default for PodLogs {
    fn default() -> Self {
        Self::at(POD_LOGS)
    }
}

impl PodLogs {
    /// The pods' directory (`/var/log/pods`); the containers' links are read from its sibling
    /// `containers`.
    pub fn at(pods: impl Into<PathBuf>) -> Self {
        let pods = pods.into();
        let containers = pods.parent().unwrap_or(Path::new("/")).join("containers");
        Self {
            pods,
            containers,
            by_uid: HashMap::new(),
            by_id: HashMap::new(),
            scanned: None,
            generation: 0,
        }
    }

    /// The directory read.
    pub fn dir(&self) -> &Path {
        &self.pods
    }

    /// The names of the pod with this UID, reading the directories again if it is unknown.
    pub fn pod(&mut self, uid: &str) -> Option<&PodName> {
        if !self.by_uid.contains_key(uid) {
            self.scan_if_due();
        }
        self.by_uid.get(uid)
    }

    /// The name of the container with this id (64 hex digits).
    pub fn container(&mut self, id: &str) -> Option<&str> {
        if !self.by_id.contains_key(id) {
            self.scan_if_due();
        }
        self.by_id.get(id).map(String::as_str)
    }

    /// Every pod known, read again now (for filters: pods come and go).
    pub fn pods(&mut self) -> impl Iterator<Item = (&str, &PodName)> {
        self.scan();
        self.by_uid.iter().map(|(u, p)| (u.as_str(), p))
    }

    /// Changes with every scan.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn scan_if_due(&mut self) {
        if self.scanned.is_none_or(|t| t.elapsed() >= RESCAN) {
            self.scan();
        }
    }

    fn scan(&mut self) {
        self.scanned = Some(Instant::now());
        self.generation += 1;
        self.by_uid.clear();
        self.by_id.clear();
        let pods: Vec<String> = dir_names(&self.pods).collect();
        for name in pods {
            if let Some((uid, pod)) = pod_dir(&name) {
                self.docker_links(&name);
                self.by_uid.insert(uid, pod);
            }
        }
        let links: Vec<String> = dir_names(&self.containers).collect();
        for name in links {
            if let Some((id, container)) = container_link(&name) {
                self.by_id.insert(id, container);
            }
        }
    }

    /// Docker's logs: `<pod dir>/<container>/<n>.log` links to
    /// `/var/lib/docker/containers/<id>/<id>-json.log`.
    fn docker_links(&mut self, pod_dir: &str) {
        let dir = self.pods.join(pod_dir);
        for container in dir_names(&dir).filter(|c| dns_label(c)) {
            for log in dir_names(&dir.join(&container)) {
                let Ok(target) = fs::read_link(dir.join(&container).join(&log)) else {
                    continue;
                };
                let id = target
                    .parent()
                    .and_then(Path::file_name)
                    .and_then(|n| n.to_str())
                    .filter(|n| is_container_id(n));
                if let Some(id) = id
                    && self.by_id.len() < MAX_ENTRIES
                {
                    self.by_id.insert(id.to_string(), container.clone());
                }
            }
        }
    }
}

/// The entries of `dir` by name (none when it cannot be read), at most [`MAX_ENTRIES`].
fn dir_names(dir: &Path) -> impl Iterator<Item = String> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .take(MAX_ENTRIES)
}

/// `<namespace>_<pod>_<uid>`.
fn pod_dir(name: &str) -> Option<(String, PodName)> {
    let mut parts = name.split('_');
    let (namespace, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
    let ok = parts.next().is_none() && dns_label(namespace) && dns_subdomain(pod) && pod_uid(uid);
    ok.then(|| {
        (
            uid.to_string(),
            PodName {
                namespace: namespace.to_string(),
                pod: pod.to_string(),
            },
        )
    })
}

/// `<pod>_<namespace>_<container>-<id>.log`: (id, container).
fn container_link(name: &str) -> Option<(String, String)> {
    let mut parts = name.strip_suffix(".log")?.split('_');
    let (pod, namespace, rest) = (parts.next()?, parts.next()?, parts.next()?);
    let (container, id) = rest.rsplit_once('-')?;
    let ok = parts.next().is_none()
        && dns_subdomain(pod)
        && dns_label(namespace)
        && dns_label(container)
        && is_container_id(id);
    ok.then(|| (id.to_string(), container.to_string()))
}

/// A DNS-1123 label: what namespaces and containers are named by.
fn dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain: what pods are named by.
fn dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(dns_label)
}

fn pod_uid(s: &str) -> bool {
    (s.len() == 36 || s.len() == 32) && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `s` is a valid namespace name (for `--namespace`).
pub fn valid_namespace(s: &str) -> bool {
    dns_label(s)
}

/// Whether `s` is a valid pod name (for `--pod`).
pub fn valid_pod(s: &str) -> bool {
    dns_subdomain(s)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    const UID: &str = "1b4e3b8a-5c5e-4a6e-9f0e-2d3c4b5a6978";
    const ID: &str = "8f2d4c6b1a3e5f7d9c0b2a4e6f8d1c3b5a7e9f0d2c4b6a8e1f3d5c7b9a0e2f4d";
    const DOCKER_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// A node's /var/log as the kubelet lays it out: a containerd pod (its container named by
    /// the /var/log/containers link), a Docker pod (its log a link into Docker's directory),
    /// and entries that are nobody's.
    #[test]
    fn names_from_a_kubelet_log_tree() {
        let root = std::env::temp_dir().join(format!("rmap-podlogs-{}", std::process::id()));
        let pods = root.join("pods");
        let web = pods.join(format!("shop_web-0_{UID}"));
        fs::create_dir_all(web.join("app")).unwrap();
        fs::write(web.join("app/0.log"), "").unwrap();
        fs::create_dir_all(root.join("containers")).unwrap();
        symlink(
            web.join("app/0.log"),
            root.join(format!("containers/web-0_shop_app-{ID}.log")),
        )
        .unwrap();
        let static_uid = "6d3a0f5e8c1b2a4f9e7d6c5b4a3f2e1d";
        let etcd = pods.join(format!("kube-system_etcd-node-1_{static_uid}/etcd"));
        fs::create_dir_all(&etcd).unwrap();
        symlink(
            format!("/var/lib/docker/containers/{DOCKER_ID}/{DOCKER_ID}-json.log"),
            etcd.join("0.log"),
        )
        .unwrap();
        for junk in ["README", "Bad_Name_x", "a_b_c_d", "ns_pod_not-a-uid"] {
            fs::create_dir_all(pods.join(junk)).unwrap();
        }
        fs::write(root.join("containers/odd_name.log"), "").unwrap();

        let mut logs = PodLogs::at(&pods);
        let web_name = PodName {
            namespace: "shop".into(),
            pod: "web-0".into(),
        };
        assert_eq!(logs.pod(UID), Some(&web_name));
        assert_eq!(logs.container(ID), Some("app"));
        assert_eq!(logs.container(DOCKER_ID), Some("etcd"));
        assert_eq!(logs.pod(static_uid).map(|p| p.pod.as_str()), Some("etcd-node-1"));
        assert_eq!(logs.pods().count(), 2, "the junk is skipped");
        // Unknown: looked for again only once RESCAN has passed.
        let generation = logs.generation();
        assert_eq!(logs.pod("00000000-0000-0000-0000-000000000000"), None);
        assert_eq!(logs.generation(), generation);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn kubernetes_name_rules() {
        assert!(valid_namespace("kube-system"));
        assert!(!valid_namespace("Kube"));
        assert!(!valid_namespace("-x"));
        assert!(valid_pod("web-0.shard-1"));
        assert!(!valid_pod("web_0"));
        assert_eq!(
            container_link(&format!("web-0_shop_app-{ID}.log")),
            Some((ID.into(), "app".into()))
        );
        assert_eq!(container_link(&format!("web-0_shop_app-{ID}")), None);
        assert_eq!(container_link("web-0_shop_app-1234.log"), None);
        assert_eq!(
            pod_dir(&format!("shop_web-0_{UID}")).map(|p| p.0),
            Some(UID.into())
        );
    }
}
