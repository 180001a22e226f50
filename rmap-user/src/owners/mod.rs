//! Whose memory a walk touched: the memory cgroup its folio is charged to, read in the kernel
//! as a cgroup id (`WalkEvent::cgroup_id`) and named here by its path under the cgroup v2
//! mount ([`paths`]) or, for a Kubernetes pod's, by namespace, pod and container ([`pods`],
//! [`podlogs`], [`names`]); `--cgroup PATH` is resolved to the id the kernel filters on
//! ([`filter`]), `--pod`/`--namespace` to the set of pod cgroups it filters on
//! ([`pod_filter`]). The walker (thread, process, kernel thread or not) stays a separate column.
pub mod filter;
pub mod names;
pub mod paths;
pub mod pod_filter;
pub mod podlogs;
pub mod pods;

use rmap_common::{FLAG_KTHREAD, FLAG_OWNER_VALID, WalkEvent};

/// Where cgroup v2 is mounted on the hosts we support (systemd, containers).
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The owner key of a walk: its folio's cgroup id, or [`NOT_CHARGED`].
pub fn owner_of(ev: &WalkEvent) -> u64 {
    if ev.flags & FLAG_OWNER_VALID != 0 {
        ev.cgroup_id
    } else {
        NOT_CHARGED
    }
}

/// The key of walks whose folio was charged to no memory cgroup (or whose owner could not be
/// read): no cgroup has id 0.
pub const NOT_CHARGED: u64 = 0;

/// The walker as a table shows it: its process name, in brackets for a kernel thread (as `ps`
/// does: `[kswapd0]`). Written into `buf`, so no allocation per walk.
pub fn walker<'a>(ev: &WalkEvent, buf: &'a mut [u8; 18]) -> &'a str {
    let name = crate::events::process_comm(ev);
    let len = name.iter().position(|&b| b == 0).unwrap_or(16);
    let end = if ev.flags & FLAG_KTHREAD != 0 {
        buf[0] = b'[';
        buf[1..=len].copy_from_slice(&name[..len]);
        buf[len + 1] = b']';
        len + 2
    } else {
        buf[..len].copy_from_slice(&name[..len]);
        len
    };
    // A comm is bytes: keep its valid UTF-8 prefix rather than allocate a lossy copy.
    match std::str::from_utf8(&buf[..end]) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&buf[..e.valid_up_to()]).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use rmap_common::PageType;

    use super::*;
    use crate::events::tests::event;

    #[test]
    fn walkers_and_owners() {
        let mut ev = event(PageType::Ksm, 1_000, 1);
        let mut buf = [0u8; 18];
        assert_eq!(walker(&ev, &mut buf), "java");
        ev.process = *b"kswapd0\0\0\0\0\0\0\0\0\0";
        ev.flags |= FLAG_KTHREAD;
        assert_eq!(walker(&ev, &mut buf), "[kswapd0]");
        ev.process = *b"0123456789abcdef";
        assert_eq!(walker(&ev, &mut buf), "[0123456789abcdef]");
        assert_eq!(owner_of(&ev), NOT_CHARGED);
        ev.cgroup_id = 4242;
        ev.flags |= FLAG_OWNER_VALID;
        assert_eq!(owner_of(&ev), 4242);
    }
}
