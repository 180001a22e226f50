//! Who waited for a walk (`--stalls`): a thread that blocks on a read-write semaphore whose
//! recorded owner is a reader with a walk in flight is counted as that walk's victim.
//!
//! A walk holds the `anon_vma` (or `i_mmap`) rwsem for reading (mm/rmap.c: `rmap_walk_anon`,
//! `rmap_walk_file`; mm/ksm.c: `rmap_walk_ksm` takes and drops it per `rmap_item`); a thread
//! that needs it for writing (mprotect, munmap, mmap, fork, exit) sleeps until it is released.
//! `lock:contention_begin`/`contention_end` (include/trace/events/lock.h) bracket that sleep;
//! a reader-owned rwsem keeps its last reader in `sem->owner` with `RWSEM_READER_OWNED` set
//! (kernel/locking/rwsem.c: `__rwsem_set_reader_owned`). A wait on a writer-owned rwsem whose
//! writer is itself waiting for a walk is that walk's too ([`STALL_CHAINED`]).

/// `lock:contention_begin` flags (include/trace/events/lock.h): a spinning lock.
pub const LCB_F_SPIN: u32 = 1 << 0;
/// Waits to read.
pub const LCB_F_READ: u32 = 1 << 1;
/// Waits to write.
pub const LCB_F_WRITE: u32 = 1 << 2;
/// An `rt_mutex` based lock (`PREEMPT_RT`).
pub const LCB_F_RT: u32 = 1 << 3;
/// A per-CPU rwsem.
pub const LCB_F_PERCPU: u32 = 1 << 4;
/// A mutex.
pub const LCB_F_MUTEX: u32 = 1 << 5;
/// Flags that rule out a plain `struct rw_semaphore` (qrwlock, rt, per-CPU, mutex).
pub const LCB_NOT_RWSEM: u32 = LCB_F_SPIN | LCB_F_RT | LCB_F_PERCPU | LCB_F_MUTEX;

/// `sem->owner` bit: the rwsem is owned by readers, the pointer bits name the last one
/// (kernel/locking/rwsem.c: `RWSEM_READER_OWNED`).
pub const RWSEM_READER_OWNED: u64 = 1 << 0;
/// `sem->owner` bits that are flags, not pointer bits (`RWSEM_OWNER_FLAGS_MASK`).
pub const RWSEM_OWNER_FLAGS_MASK: u64 = 3;

/// Struct offsets the stall hooks follow, from BTF; [`StallLayout::ABSENT`] when missing.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StallLayout {
    /// `struct rw_semaphore` → `owner` (include/linux/rwsem.h).
    pub rwsem_owner: u32,
    /// `struct task_struct` → `pid` (the thread id: the key of the walks in flight).
    pub task_pid: u32,
    /// `struct task_struct` → `tgid`.
    pub task_tgid: u32,
    /// `struct task_struct` → `comm`.
    pub task_comm: u32,
}

impl StallLayout {
    /// Offset of a member this kernel's BTF lacks.
    pub const ABSENT: u32 = u32::MAX;
    /// Nothing known: no stall is attributed.
    pub const EMPTY: StallLayout = StallLayout {
        rwsem_owner: Self::ABSENT,
        task_pid: Self::ABSENT,
        task_tgid: Self::ABSENT,
        task_comm: Self::ABSENT,
    };

    /// Whether every member is known.
    pub const fn complete(&self) -> bool {
        self.rwsem_owner != Self::ABSENT
            && self.task_pid != Self::ABSENT
            && self.task_tgid != Self::ABSENT
            && self.task_comm != Self::ABSENT
    }
}

const _: () = assert!(core::mem::size_of::<StallLayout>() == 16);

/// A wait in progress, keyed by the waiting thread's id (`contention_begin` → `_end`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Waiting {
    /// `bpf_ktime_get_ns()` at `contention_begin`.
    pub start_ns: u64,
    /// Start of the walk waited for: with `walker_pid`, which walk it was.
    pub walk_start_ns: u64,
    /// Address of the rwsem.
    pub lock: u64,
    /// Thread id of the walker.
    pub walker_pid: u32,
    /// Process id of the walker.
    pub walker_tgid: u32,
    /// `LCB_F_*` flags of the wait.
    pub lock_flags: u32,
    /// [`super::PageType`] of the walk as known at its start (`Unknown` for `rmap_walk`).
    pub page_type: u32,
    /// [`STALL_CHAINED`] when the lock's holder was itself waiting for the walk.
    pub flags: u32,
    /// Explicit padding, always 0.
    #[expect(
        clippy::pub_underscore_fields,
        reason = "public so that both sides can build the struct"
    )]
    pub _pad: u32,
    /// Command name of the walking thread.
    pub walker_comm: [u8; 16],
}

const _: () = assert!(core::mem::size_of::<Waiting>() == 64);

/// [`StallEvent::flags`]: the lock waited for was held by a thread that was itself waiting for
/// the walk (a thread in `mprotect` holds `mmap_lock` for writing while it waits for the
/// walk's `anon_vma` lock; every thread of the process that faults or maps memory meanwhile
/// waits for `mmap_lock`, so for the walk too).
pub const STALL_CHAINED: u32 = 8;

/// One wait of a thread on a lock held by a walk in flight, sent when the wait ends.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StallEvent {
    /// `bpf_ktime_get_ns()` when the wait began.
    pub start_ns: u64,
    /// Length of the wait, in ns (the sleep between `contention_begin` and `contention_end`;
    /// optimistic spinning before it is not included).
    pub wait_ns: u64,
    /// Start of the walk waited for (`bpf_ktime_get_ns()`, as `WalkEvent::start_ns`).
    pub walk_start_ns: u64,
    /// Address of the rwsem.
    pub lock: u64,
    /// Thread id of the waiting thread (the victim).
    pub pid: u32,
    /// Process id of the victim.
    pub tgid: u32,
    /// Thread id of the walker.
    pub walker_pid: u32,
    /// Process id of the walker.
    pub walker_tgid: u32,
    /// `LCB_F_*` flags of the wait (read or write).
    pub lock_flags: u32,
    /// [`super::PageType`] of the walk as known at its start.
    pub page_type: u32,
    /// 0 when the wait ended with the lock, else the error (`-EINTR`: a signal).
    pub ret: i32,
    /// `FLAG_KTHREAD` when the victim is a kernel thread, [`STALL_CHAINED`] when it waited
    /// behind another victim.
    pub flags: u32,
    /// Command name of the victim thread.
    pub comm: [u8; 16],
    /// Command name of the victim's process (thread-group leader).
    pub process: [u8; 16],
    /// Command name of the walking thread.
    pub walker_comm: [u8; 16],
    /// Id of the victim thread's cgroup (cgroup v2: its directory's inode number under
    /// /sys/fs/cgroup, as [`super::WalkEvent::cgroup_id`]); 0 when unknown.
    pub cgroup_id: u64,
}

/// Size of [`StallEvent`] in bytes, as userspace reads it from the ring buffer.
pub const STALL_EVENT_SIZE: usize = 120;
const _: () = assert!(core::mem::size_of::<StallEvent>() == STALL_EVENT_SIZE);
const _: () = assert!(core::mem::align_of::<StallEvent>() == 8);

/// Indices into the per-CPU stall counter array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StallCounter {
    /// Waits that began on a lock whose owner is a walker in flight.
    Waits = 0,
    /// Waits on rwsems held neither by a walk in flight nor by a thread waiting for one: not
    /// stalls by walks.
    Others = 1,
    /// Stall records lost because the stall ring buffer was full (the wait is still in the
    /// histogram and in `Waits`).
    Drops = 2,
    /// Waits whose entry vanished before their end. (`WAITING` is an LRU map: a wait whose
    /// entry was evicted ends unseen; `Waits` minus the histogram's count is those.)
    Unpaired = 3,
}

/// Number of stall counters.
pub const STALL_COUNTERS: usize = 4;

impl StallCounter {
    /// Every counter, in index order.
    pub const ALL: [StallCounter; STALL_COUNTERS] = [
        StallCounter::Waits,
        StallCounter::Others,
        StallCounter::Drops,
        StallCounter::Unpaired,
    ];

    /// Name in reports, JSON and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            StallCounter::Waits => "stall_waits",
            StallCounter::Others => "other_rwsem_waits",
            StallCounter::Drops => "stall_drops",
            StallCounter::Unpaired => "stall_unpaired",
        }
    }
}
