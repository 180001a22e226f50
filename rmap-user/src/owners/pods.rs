//! Kubernetes pods in cgroup paths: the kubelet's layouts (systemd and cgroupfs drivers, the
//! QoS classes' slices) and the container runtimes' scope names (containerd, CRI-O, Docker)
//! decoded into a pod UID, a QoS class and a container id. Plain data, no I/O.
//!
//! What the kubelet makes (pkg/kubelet/cm, `cgroupName.ToSystemd`/`ToCgroupfs`):
//! - systemd driver: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<UID>.slice`
//!   with the UID's dashes written as underscores; a guaranteed pod sits directly under
//!   `kubepods.slice` (`kubepods-pod<UID>.slice`), a best-effort one under
//!   `kubepods-besteffort.slice`. The runtime adds the container's scope below it:
//!   `cri-containerd-<ID>.scope`, `crio-<ID>.scope` (and `crio-conmon-<ID>.scope` for its
//!   monitor), `docker-<ID>.scope`.
//! - cgroupfs driver: `/kubepods/burstable/pod<UID>/<ID>` (`crio-<ID>` for CRI-O), a guaranteed
//!   pod at `/kubepods/pod<UID>`.
//!
//! A kubelet started with another `--cgroup-root` puts all of it below that root (kind's nodes:
//! `/kubelet.slice/kubelet-kubepods.slice/…`), so the pod is found wherever it sits below a
//! `kubepods` level. Levels below the container's (a runtime's own sub-cgroup) belong to it.

/// A pod's QoS class, as its cgroup's place says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl Qos {
    /// As Kubernetes names the class in lower case (`kubectl get pod -o
    /// jsonpath={.status.qosClass}` says `BestEffort`).
    pub fn name(self) -> &'static str {
        match self {
            Qos::Guaranteed => "guaranteed",
            Qos::Burstable => "burstable",
            Qos::BestEffort => "besteffort",
        }
    }
}

/// The container runtime a container cgroup's name tells, where it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// `cri-containerd-<ID>.scope`.
    Containerd,
    /// `crio-<ID>.scope` / `crio-<ID>`.
    CriO,
    /// `crio-conmon-<ID>.scope`: CRI-O's monitor process of the container, not the container.
    CriOConmon,
    /// `docker-<ID>.scope`.
    Docker,
    /// A bare `<ID>` (cgroupfs driver): containerd or Docker.
    Unnamed,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::CriOConmon => "cri-o-conmon",
            Runtime::Docker => "docker",
            Runtime::Unnamed => "",
        }
    }
}

/// A container's cgroup below its pod's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ContainerCgroup {
    /// The runtime's container id: 64 hex digits.
    pub id: String,
    pub runtime: Runtime,
}

/// What a cgroup path says of a pod.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PodCgroup {
    /// The pod's UID with its dashes (`metadata.uid`; a static pod's is 32 hex digits).
    pub pod_uid: String,
    pub qos: Qos,
    /// The container, when the cgroup is one's (or below one); none for the pod's own level.
    pub container: Option<ContainerCgroup>,
}

/// Decodes a cgroup path as `/proc/PID/cgroup` shows it (`/kubepods.slice/…`, relative to the
/// cgroup v2 mount); `None` for a cgroup that is not a pod's or below one.
pub fn decode(path: &str) -> Option<PodCgroup> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let (at, pod_uid, qos) = parts.iter().enumerate().find_map(|(i, part)| {
        let (uid, qos) = pod_level(&parts[..i], part)?;
        Some((i, uid, qos))
    })?;
    let container = parts.get(at + 1).and_then(|c| container(c));
    Some(PodCgroup {
        pod_uid,
        qos,
        container,
    })
}

/// A pod's own level: its UID and QoS class, given the levels above it (`parents`).
fn pod_level(parents: &[&str], part: &str) -> Option<(String, Qos)> {
    if let Some(slice) = part.strip_suffix(".slice") {
        // systemd: the slice's name repeats its parents' ("kubepods-burstable-pod<UID>");
        // the UID has no dash (they became underscores), so the last dash ends the prefix.
        let (prefix, pod) = slice.rsplit_once('-')?;
        let uid = uid(&pod.strip_prefix("pod")?.replace('_', "-"))?;
        let segments: Vec<&str> = prefix.split('-').collect();
        if !segments.contains(&"kubepods") {
            return None;
        }
        return Some((uid, qos_of(segments.last().copied())));
    }
    let uid = uid(part.strip_prefix("pod")?)?;
    if !parents
        .iter()
        .any(|p| *p == "kubepods" || p.ends_with("-kubepods"))
    {
        return None;
    }
    Some((uid, qos_of(parents.last().copied())))
}

/// The QoS class of a pod whose parent level (or slice-name segment) is `parent`.
fn qos_of(parent: Option<&str>) -> Qos {
    match parent {
        Some("burstable") => Qos::Burstable,
        Some("besteffort") => Qos::BestEffort,
        _ => Qos::Guaranteed,
    }
}

/// A pod UID: 8-4-4-4-12 hex digits, or 32 (a static pod's, a hash of its manifest).
fn uid(s: &str) -> Option<String> {
    let hex = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_hexdigit());
    let groups: Vec<usize> = s.split('-').map(str::len).collect();
    let ok = s.split('-').all(hex) && (groups == [8, 4, 4, 4, 12] || groups == [32]);
    ok.then(|| s.to_ascii_lowercase())
}

/// A container's level: the runtime's name for it.
fn container(part: &str) -> Option<ContainerCgroup> {
    let (name, scope) = match part.strip_suffix(".scope") {
        Some(name) => (name, true),
        None => (part, false),
    };
    let prefixes: [(&str, Runtime); 4] = [
        ("cri-containerd-", Runtime::Containerd),
        ("crio-conmon-", Runtime::CriOConmon),
        ("crio-", Runtime::CriO),
        ("docker-", Runtime::Docker),
    ];
    let (id, runtime) = prefixes
        .iter()
        .find_map(|(p, r)| name.strip_prefix(p).map(|id| (id, *r)))
        .unwrap_or((name, Runtime::Unnamed));
    // A bare id is the cgroupfs driver's only; a scope always names its runtime.
    if scope && runtime == Runtime::Unnamed {
        return None;
    }
    let is_id = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
    is_id.then(|| ContainerCgroup {
        id: id.to_ascii_lowercase(),
        runtime,
    })
}

/// The first 12 hex digits of a container id, as `crictl ps` and `docker ps` show it.
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "1b4e3b8a-5c5e-4a6e-9f0e-2d3c4b5a6978";
    const UID_: &str = "1b4e3b8a_5c5e_4a6e_9f0e_2d3c4b5a6978";
    const ID: &str = "8f2d4c6b1a3e5f7d9c0b2a4e6f8d1c3b5a7e9f0d2c4b6a8e1f3d5c7b9a0e2f4d";

    fn pod(qos: Qos, runtime: Option<Runtime>) -> PodCgroup {
        PodCgroup {
            pod_uid: UID.into(),
            qos,
            container: runtime.map(|runtime| ContainerCgroup {
                id: ID.into(),
                runtime,
            }),
        }
    }

    /// The systemd driver, every QoS class and runtime, as the kubelet and the runtimes name
    /// their cgroups.
    #[test]
    fn systemd_driver() {
        let cases = [
            (
                format!("/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope"),
                pod(Qos::Guaranteed, Some(Runtime::Containerd)),
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope"
                ),
                pod(Qos::Burstable, Some(Runtime::Containerd)),
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/crio-{ID}.scope"
                ),
                pod(Qos::BestEffort, Some(Runtime::CriO)),
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-conmon-{ID}.scope"
                ),
                pod(Qos::Burstable, Some(Runtime::CriOConmon)),
            ),
            (
                // CRI-O's own sub-cgroup of a container belongs to it.
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-{ID}.scope/container"
                ),
                pod(Qos::Burstable, Some(Runtime::CriO)),
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/docker-{ID}.scope"
                ),
                pod(Qos::BestEffort, Some(Runtime::Docker)),
            ),
            (
                format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice"),
                pod(Qos::Burstable, None),
            ),
            (
                // kind: the kubelet's --cgroup-root=/kubelet.
                format!(
                    "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope"
                ),
                pod(Qos::BestEffort, Some(Runtime::Containerd)),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(decode(&path), Some(want), "{path}");
        }
    }

    #[test]
    fn cgroupfs_driver() {
        let cases = [
            (
                format!("/kubepods/pod{UID}/{ID}"),
                pod(Qos::Guaranteed, Some(Runtime::Unnamed)),
            ),
            (
                format!("/kubepods/burstable/pod{UID}/{ID}"),
                pod(Qos::Burstable, Some(Runtime::Unnamed)),
            ),
            (
                format!("/kubepods/besteffort/pod{UID}/crio-{ID}"),
                pod(Qos::BestEffort, Some(Runtime::CriO)),
            ),
            (
                format!("/kubepods/besteffort/pod{UID}"),
                pod(Qos::BestEffort, None),
            ),
            (
                format!("/kubelet/kubepods/burstable/pod{UID}/{ID}"),
                pod(Qos::Burstable, Some(Runtime::Unnamed)),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(decode(&path), Some(want), "{path}");
        }
    }

    /// A static pod's UID is the hash of its manifest: 32 hex digits, no dashes.
    #[test]
    fn static_pod_uid() {
        let uid = "6d3a0f5e8c1b2a4f9e7d6c5b4a3f2e1d";
        let p = decode(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/cri-containerd-{ID}.scope"
        ))
        .unwrap();
        assert_eq!(p.pod_uid, uid);
        assert_eq!(p.qos, Qos::Burstable);
    }

    /// Other cgroups keep their path: units, user sessions, containers outside Kubernetes, and
    /// names that only look like a pod's.
    #[test]
    fn other_cgroups_are_not_pods() {
        for path in [
            "/",
            "/system.slice/containerd.service",
            "/system.slice/kubelet.service",
            "/user.slice/user-1000.slice/session-3.scope",
            "/kubepods.slice",
            "/kubepods.slice/kubepods-burstable.slice",
            &format!("/system.slice/docker-{ID}.scope"),
            &format!("/podman/pod{UID}/{ID}"),
            &format!("/kubepods/burstable/pod{}/{ID}", &UID[..30]),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poddeadbeef.slice",
            &format!("/system.slice/app-pod{UID_}.slice"),
        ] {
            assert_eq!(decode(path), None, "{path}");
        }
        // Below a pod, a level that is no container's is the pod's alone.
        let p = decode(&format!("/kubepods/burstable/pod{UID}/not-a-container")).unwrap();
        assert_eq!(p.container, None);
        let p = decode(&format!("/kubepods/burstable/pod{UID}/{ID}.scope")).unwrap();
        assert_eq!(p.container, None, "a scope names its runtime");
        assert_eq!(short_id(ID), "8f2d4c6b1a3e");
    }
}
