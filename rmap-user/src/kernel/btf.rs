//! Struct member offsets from the kernel's BTF. Rust eBPF has no CO-RE field relocations, so
//! the offsets the programs need are read here and passed in as load-time globals.
use std::path::Path;

use btf_rs::{Btf, Type};
use rmap_common::{OwnerLayout, stall::StallLayout};

/// Where the kernel exposes its own BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Errors reading BTF.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    /// The BTF file could not be read or parsed.
    #[error("reading BTF from {path}: {source}")]
    Read { path: String, source: btf_rs::Error },
    /// The struct is not in the BTF.
    #[error("struct {0} not found in BTF")]
    NoStruct(String),
    /// The struct has no such member (also searched in anonymous unions/structs).
    #[error("struct {strukt} has no member {member} in BTF")]
    NoMember { strukt: String, member: String },
    /// Resolving a type failed.
    #[error("resolving BTF type: {0}")]
    Resolve(#[from] btf_rs::Error),
}

/// The kernel's BTF, opened once.
pub struct KernelBtf {
    btf: Btf,
}

/// Offsets the eBPF programs need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Offsets {
    /// The struct the walkers take: `folio`, or `page` on kernels older than folios.
    pub walked: &'static str,
    /// That struct → `mapping` (`include/linux/mm_types.h`).
    pub folio_mapping: u32,
    /// `struct rmap_walk_control` → `rmap_one` (include/linux/rmap.h).
    pub rwc_rmap_one: u32,
}

/// Where a walked folio (or page) names its memory cgroup, newest layout first: `memcg_data`
/// (a pointer with flag bits) of a folio or of a page, else `mem_cgroup` of a page (a plain
/// pointer; its `obj_cgroup` vector variant sets the same low bit `memcg_data` does).
/// Each as (struct, member, the two as reports name them).
const MEMCG_MEMBERS: [(&str, &str, &str); 3] = [
    ("folio", "memcg_data", "folio.memcg_data"),
    ("page", "memcg_data", "page.memcg_data"),
    ("page", "mem_cgroup", "page.mem_cgroup"),
];

impl KernelBtf {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, BtfError> {
        let path = path.as_ref();
        let btf = Btf::from_file(path).map_err(|source| BtfError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self { btf })
    }

    /// The offsets, from `struct folio` where the kernel has it, else from `struct page` (the
    /// walkers took pages before folios; `mapping` means the same in both).
    pub fn offsets(&self) -> Result<Offsets, BtfError> {
        let walked = if self.has_struct("folio") { "folio" } else { "page" };
        Ok(Offsets {
            walked,
            folio_mapping: self.member_offset(walked, "mapping")?,
            rwc_rmap_one: self.member_offset("rmap_walk_control", "rmap_one")?,
        })
    }

    /// Whether a struct of this name, with members, is in BTF.
    pub fn has_struct(&self, name: &str) -> bool {
        self.btf
            .resolve_types_by_name(name)
            .unwrap_or_default()
            .iter()
            .any(|t| matches!(t, Type::Struct(s) if !s.members.is_empty()))
    }

    /// The first of [`MEMCG_MEMBERS`] the kernel has: its offset and `struct.member` name, or
    /// why there is none (the last one's error: a kernel without `CONFIG_MEMCG`).
    fn memcg_member(&self) -> Result<(u32, &'static str), BtfError> {
        let mut last = None;
        for (strukt, member, name) in MEMCG_MEMBERS {
            match self.member_offset(strukt, member) {
                Ok(off) => return Ok((off, name)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| BtfError::NoStruct("page".into())))
    }

    /// The members followed from a folio to its memory cgroup's id and from a task to its
    /// process; absent ones are `OwnerLayout::ABSENT`. With them, the `struct.member` the
    /// memory cgroup is read from, or the first one missing on the way to the cgroup: the
    /// reason owners are not shown (a kernel without `CONFIG_MEMCG`).
    pub fn owner_layout(&self) -> (OwnerLayout, Result<&'static str, String>) {
        let at = |strukt: &str, member: &str| self.member_offset(strukt, member);
        let memcg = self.memcg_member();
        let source = memcg.as_ref().map(|(_, name)| *name).map_err(ToString::to_string);
        let owner = [
            memcg.map(|(off, _)| off),
            at("mem_cgroup", "css"),
            at("cgroup_subsys_state", "cgroup"),
            at("cgroup_subsys_state", "parent"),
            at("cgroup", "kn"),
            at("kernfs_node", "id"),
        ];
        let source = match owner.iter().find_map(|r| r.as_ref().err()) {
            Some(e) => Err(e.to_string()),
            None => source,
        };
        let [memcg_data, css, cgroup, parent, kn, id] = owner.map(|r| r.unwrap_or(OwnerLayout::ABSENT));
        let task = |member: &str| at("task_struct", member).unwrap_or(OwnerLayout::ABSENT);
        let layout = OwnerLayout {
            folio_memcg_data: memcg_data,
            memcg_css: css,
            css_cgroup: cgroup,
            css_parent: parent,
            cgroup_kn: kn,
            kn_id: id,
            task_group_leader: task("group_leader"),
            task_comm: task("comm"),
            task_flags: task("flags"),
            _pad: 0,
        };
        (layout, source)
    }

    /// The members the lock-contention hooks follow (`--stalls`): from a reader-owned rwsem to
    /// its last reader, and from that task to its thread id, process id and name; or the
    /// first that is missing.
    pub fn stall_layout(&self) -> Result<StallLayout, BtfError> {
        Ok(StallLayout {
            rwsem_owner: self.member_offset("rw_semaphore", "owner")?,
            task_pid: self.member_offset("task_struct", "pid")?,
            task_tgid: self.member_offset("task_struct", "tgid")?,
            task_comm: self.member_offset("task_struct", "comm")?,
        })
    }

    /// Byte offset of `member` in `struct strukt`, descending into anonymous members (struct
    /// folio wraps its page-overlay fields in an anonymous union of anonymous structs).
    pub fn member_offset(&self, strukt: &str, member: &str) -> Result<u32, BtfError> {
        let no_member = || BtfError::NoMember {
            strukt: strukt.into(),
            member: member.into(),
        };
        for ty in self.btf.resolve_types_by_name(strukt).unwrap_or_default() {
            if let Type::Struct(s) = ty {
                if s.members.is_empty() {
                    continue; // a forward-declared or empty duplicate
                }
                return self.find_member(&s, member, 0)?.ok_or_else(no_member);
            }
        }
        Err(BtfError::NoStruct(strukt.into()))
    }

    fn find_member(&self, s: &btf_rs::Struct, member: &str, base_bits: u32) -> Result<Option<u32>, BtfError> {
        for m in &s.members {
            let bits = base_bits + m.bit_offset();
            let name = self.btf.resolve_name(m).unwrap_or_default();
            if name == member {
                return Ok(Some(bits / 8));
            }
            if name.is_empty() {
                let mut ty = self.btf.resolve_chained_type(m)?;
                // Anonymous members may sit behind const/volatile/typedef.
                while let Type::Const(_) | Type::Volatile(_) | Type::Typedef(_) = ty {
                    let Some(inner) = ty.as_btf_type() else { break };
                    ty = self.btf.resolve_chained_type(inner)?;
                }
                if let Type::Struct(inner) | Type::Union(inner) = ty
                    && let Some(off) = self.find_member(&inner, member, bits)?
                {
                    return Ok(Some(off));
                }
            }
        }
        Ok(None)
    }

    /// Whether a function of this name is in BTF (what fentry/fexit need to load).
    pub fn has_function(&self, name: &str) -> bool {
        self.btf
            .resolve_types_by_name(name)
            .unwrap_or_default()
            .iter()
            .any(|t| matches!(t, Type::Func(_)))
    }

    /// Whether a typedef of this name exists: every tracepoint has `btf_trace_<name>`, which is
    /// what `raw_tp` programs are checked against.
    pub fn has_typedef(&self, name: &str) -> bool {
        self.btf
            .resolve_types_by_name(name)
            .unwrap_or_default()
            .iter()
            .any(|t| matches!(t, Type::Typedef(_)))
    }
}
