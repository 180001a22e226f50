//! Whose memory a walk touched and who walked: the folio's memory cgroup and the walking
//! task's process, found by following kernel structs at offsets read from BTF in userspace.

/// [`super::WalkEvent::flags`]: the walker is a kernel thread (`PF_KTHREAD` in `task->flags`):
/// kswapd, kcompactd, ksmd, khugepaged…
pub const FLAG_KTHREAD: u32 = 2;
/// [`super::WalkEvent::flags`]: [`super::WalkEvent::cgroup_id`] is the folio's memory cgroup
/// (without it the folio was not charged to one, or the owner could not be read).
pub const FLAG_OWNER_VALID: u32 = 4;

/// `PF_KTHREAD` (include/linux/sched.h).
pub const PF_KTHREAD: u32 = 0x0020_0000;
/// Low bits of `folio->memcg_data` that are flags, not pointer bits (include/linux/memcontrol.h:
/// `MEMCG_DATA_OBJCGS` = 1, `MEMCG_DATA_KMEM` = 2). With either set the word is no
/// `struct mem_cgroup *` (slab object vectors, kernel memory charged through an `obj_cgroup`);
/// user folios, which rmap walks, have neither.
pub const MEMCG_DATA_FLAGS: u64 = 3;
/// Ancestors the `--cgroup` filter climbs from the folio's cgroup (cgroup v2 trees are shallow:
/// a systemd slice, a pod, a container).
pub const CGROUP_MAX_DEPTH: u32 = 16;
/// `FILTER_CGROUP` value meaning: the folio's cgroup or an ancestor must be in the
/// `OWNER_FILTER` set (`--pod`, `--namespace`: many pods' cgroups). No cgroup has this id.
pub const OWNER_FILTER_SET: u64 = u64::MAX;
/// Cgroups the `OWNER_FILTER` set holds at most.
pub const OWNER_FILTER_ENTRIES: u32 = 1024;

/// Offsets of the struct members followed from a folio to its cgroup's id and from the current
/// task to its process's name; [`OwnerLayout::ABSENT`] for what this kernel's BTF lacks (no
/// memory cgroups: no owners).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnerLayout {
    /// `struct folio` → `memcg_data` (`include/linux/mm_types.h`).
    pub folio_memcg_data: u32,
    /// `struct mem_cgroup` → `css` (include/linux/memcontrol.h).
    pub memcg_css: u32,
    /// `struct cgroup_subsys_state` → `cgroup` (include/linux/cgroup-defs.h).
    pub css_cgroup: u32,
    /// `struct cgroup_subsys_state` → `parent`.
    pub css_parent: u32,
    /// `struct cgroup` → `kn`.
    pub cgroup_kn: u32,
    /// `struct kernfs_node` → `id` (include/linux/kernfs.h): the cgroup directory's inode
    /// number on 64-bit kernels, what `stat` shows under /sys/fs/cgroup.
    pub kn_id: u32,
    /// `struct task_struct` → `group_leader` (include/linux/sched.h).
    pub task_group_leader: u32,
    /// `struct task_struct` → `comm`.
    pub task_comm: u32,
    /// `struct task_struct` → `flags`.
    pub task_flags: u32,
    /// Explicit padding, always 0.
    #[expect(
        clippy::pub_underscore_fields,
        reason = "public so that both sides can build the struct"
    )]
    pub _pad: u32,
}

impl OwnerLayout {
    /// Offset of a member this kernel's BTF lacks.
    pub const ABSENT: u32 = u32::MAX;
    /// Nothing known: no owner, no process name, no kernel-thread flag.
    pub const EMPTY: OwnerLayout = OwnerLayout {
        folio_memcg_data: Self::ABSENT,
        memcg_css: Self::ABSENT,
        css_cgroup: Self::ABSENT,
        css_parent: Self::ABSENT,
        cgroup_kn: Self::ABSENT,
        kn_id: Self::ABSENT,
        task_group_leader: Self::ABSENT,
        task_comm: Self::ABSENT,
        task_flags: Self::ABSENT,
        _pad: 0,
    };

    /// Whether every member from a folio to its cgroup's id is known.
    pub const fn has_owner(&self) -> bool {
        self.folio_memcg_data != Self::ABSENT
            && self.memcg_css != Self::ABSENT
            && self.css_cgroup != Self::ABSENT
            && self.css_parent != Self::ABSENT
            && self.cgroup_kn != Self::ABSENT
            && self.kn_id != Self::ABSENT
    }

    /// Whether the walking task's process name can be read.
    pub const fn has_process(&self) -> bool {
        self.task_group_leader != Self::ABSENT && self.task_comm != Self::ABSENT
    }
}

const _: () = assert!(core::mem::size_of::<OwnerLayout>() == 40);
