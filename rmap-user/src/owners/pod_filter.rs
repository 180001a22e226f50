//! `--pod [NAMESPACE/]NAME` and `--namespace NAMESPACE`: only walks of memory owned by the
//! matching pods' cgroups or below them (their containers). A namespace is no cgroup subtree
//! (its pods sit beside other namespaces' under the QoS slices), so the kernel filters on a
//! set of cgroup ids (`OWNER_FILTER`, at most [`OWNER_FILTER_ENTRIES`] pods): the pod-level
//! cgroups whose UID the node's pod logs name as a match, found when tracing starts and again
//! every interval, so that pods started later are added and those gone removed.
use aya::{Ebpf, maps::HashMap as BpfHashMap};
use rmap_common::{OWNER_FILTER_ENTRIES, maps};

use super::{
    names::OwnerNames,
    podlogs::{self, PodName},
};

/// A pod given on the command line: `NAME` or `NAMESPACE/NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodArg {
    pub namespace: Option<String>,
    pub name: String,
}

/// Parses `--pod`.
pub fn parse_pod(s: &str) -> Result<PodArg, String> {
    let (namespace, name) = match s.split_once('/') {
        Some((ns, name)) => (Some(parse_namespace(ns)?), name),
        None => (None, s),
    };
    if !podlogs::valid_pod(name) || name.is_empty() {
        return Err(format!(
            "`{name}` is not a pod name (lower-case letters, digits, '-' and '.', at most 253)"
        ));
    }
    Ok(PodArg {
        namespace,
        name: name.to_string(),
    })
}

/// Parses `--namespace`.
pub fn parse_namespace(s: &str) -> Result<String, String> {
    if podlogs::valid_namespace(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a namespace name (lower-case letters, digits and '-', at most 63)"
        ))
    }
}

/// Why a pod filter cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PodFilterError {
    #[error("--pod {pod} names namespace {given}, --namespace says {namespace}")]
    Conflict {
        pod: String,
        given: String,
        namespace: String,
    },
    #[error(
        "{0}: no such pod on this node (none of the pods named in {1} has a cgroup here; \
         is the kubelet's log directory mounted? see --pod-logs)"
    )]
    NoPod(String, String),
    #[error("{0}: {1} pods match, more than the kernel's filter holds ({OWNER_FILTER_ENTRIES})")]
    TooMany(String, usize),
    #[error("updating the kernel's pod filter: {0}")]
    Map(#[from] aya::maps::MapError),
}

/// The pods `--pod`/`--namespace` keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodFilter {
    pub namespace: Option<String>,
    pub pod: Option<String>,
}

impl PodFilter {
    /// The filter of `--pod` and `--namespace`, if either was given.
    pub fn of(pod: Option<&PodArg>, namespace: Option<&str>) -> Result<Option<Self>, PodFilterError> {
        if let (
            Some(PodArg {
                namespace: Some(given),
                name,
            }),
            Some(ns),
        ) = (pod, namespace)
            && given != ns
        {
            return Err(PodFilterError::Conflict {
                pod: format!("{given}/{name}"),
                given: given.clone(),
                namespace: ns.to_string(),
            });
        }
        if pod.is_none() && namespace.is_none() {
            return Ok(None);
        }
        Ok(Some(Self {
            namespace: namespace
                .map(str::to_string)
                .or_else(|| pod.and_then(|p| p.namespace.clone())),
            pod: pod.map(|p| p.name.clone()),
        }))
    }

    /// As the command line said it.
    pub fn describe(&self) -> String {
        match (&self.namespace, &self.pod) {
            (Some(ns), Some(p)) => format!("--pod {ns}/{p}"),
            (None, Some(p)) => format!("--pod {p}"),
            (Some(ns), None) => format!("--namespace {ns}"),
            (None, None) => "every pod".into(),
        }
    }

    pub fn matches(&self, name: &PodName) -> bool {
        self.namespace.as_ref().is_none_or(|ns| *ns == name.namespace)
            && self.pod.as_ref().is_none_or(|p| *p == name.pod)
    }

    /// The pod cgroups that match now, the node's tree and pod logs read again.
    pub fn ids(&self, names: &mut OwnerNames) -> Result<Vec<u64>, PodFilterError> {
        let mut ids: Vec<u64> = names
            .pod_cgroups()
            .into_iter()
            .filter(|(_, _, name)| name.as_ref().is_some_and(|n| self.matches(n)))
            .map(|(id, _, _)| id)
            .collect();
        ids.sort_unstable();
        if ids.len() > OWNER_FILTER_ENTRIES as usize {
            return Err(PodFilterError::TooMany(self.describe(), ids.len()));
        }
        Ok(ids)
    }

    /// [`Self::ids`], none being an error (at the start: a pod that is not on this node).
    pub fn ids_at_start(&self, names: &mut OwnerNames) -> Result<Vec<u64>, PodFilterError> {
        let ids = self.ids(names)?;
        if ids.is_empty() {
            return Err(PodFilterError::NoPod(
                self.describe(),
                names.pod_logs().display().to_string(),
            ));
        }
        Ok(ids)
    }
}

/// A pod filter in force: the kernel's set kept equal to the pods that match.
pub struct Tracked {
    pub filter: PodFilter,
    names: OwnerNames,
    /// The pod cgroups matching at the last look.
    pub ids: Vec<u64>,
}

impl Tracked {
    /// The pods that match now (an error when none does); `pod_logs` names them.
    pub fn start(filter: PodFilter, pod_logs: &std::path::Path) -> Result<Self, PodFilterError> {
        let mut names = OwnerNames::new(pod_logs);
        let ids = filter.ids_at_start(&mut names)?;
        Ok(Self { filter, names, ids })
    }

    /// Looks again (pods come and go) and updates the kernel's set; the pods added and removed.
    pub fn refresh(&mut self, ebpf: &mut Ebpf) -> Result<(usize, usize), PodFilterError> {
        self.ids = self.filter.ids(&mut self.names)?;
        sync(ebpf, &self.ids)
    }
}

/// Makes the kernel's set of pod cgroups `ids`; returns how many were added and removed.
pub fn sync(ebpf: &mut Ebpf, ids: &[u64]) -> Result<(usize, usize), PodFilterError> {
    let map = ebpf
        .map_mut(maps::OWNER_FILTER)
        .ok_or(aya::maps::MapError::InvalidName {
            name: maps::OWNER_FILTER.to_string(),
        })?;
    let mut set: BpfHashMap<_, u64, u8> = BpfHashMap::try_from(map)?;
    let now: Vec<u64> = set.keys().filter_map(Result::ok).collect();
    let mut removed = 0;
    for id in now.iter().filter(|id| !ids.contains(id)) {
        set.remove(id)?;
        removed += 1;
    }
    let mut added = 0;
    for id in ids.iter().filter(|id| !now.contains(id)) {
        set.insert(id, 1, 0)?;
        added += 1;
    }
    Ok((added, removed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::owners::names::tests::{ino, node};

    #[test]
    fn pods_and_namespaces_from_the_command_line() {
        assert_eq!(
            parse_pod("shop/web-0"),
            Ok(PodArg {
                namespace: Some("shop".into()),
                name: "web-0".into()
            })
        );
        assert!(parse_pod("web_0").is_err());
        assert!(parse_pod("Shop/web-0").is_err());
        assert!(parse_pod("").is_err());
        assert!(parse_namespace("kube-system").is_ok());
        let p = parse_pod("shop/web-0").unwrap();
        assert!(PodFilter::of(Some(&p), Some("other")).is_err());
        assert_eq!(PodFilter::of(None, None).unwrap(), None);
        let f = PodFilter::of(Some(&p), None).unwrap().unwrap();
        assert_eq!(f.describe(), "--pod shop/web-0");
        let ns = PodFilter::of(None, Some("shop")).unwrap().unwrap();
        assert_eq!(ns.describe(), "--namespace shop");
    }

    /// The pod's own cgroup is the filter's (the kernel climbs from a container's to it); a
    /// pod or namespace that is not on the node is an error at the start.
    #[test]
    fn the_matching_pod_cgroups() {
        let (root, _, pod, _) = node("filter");
        let mut names = OwnerNames::at(root.join("cgroup"), root.join("log/pods"));
        let want = vec![ino(&pod)];
        for (pod, ns) in [
            (Some("shop/web-0"), None),
            (Some("web-0"), None),
            (None, Some("shop")),
        ] {
            let arg = pod.map(|p| parse_pod(p).unwrap());
            let f = PodFilter::of(arg.as_ref(), ns).unwrap().unwrap();
            assert_eq!(f.ids_at_start(&mut names).unwrap(), want, "{}", f.describe());
        }
        for (pod, ns) in [
            (Some("web-1"), None),
            (None, Some("default")),
            (Some("web-0"), Some("x")),
        ] {
            let arg = pod.map(|p| parse_pod(p).unwrap());
            let f = PodFilter::of(arg.as_ref(), ns).unwrap().unwrap();
            let err = f.ids_at_start(&mut names).unwrap_err().to_string();
            assert!(err.contains("no such pod on this node"), "{err}");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
}
