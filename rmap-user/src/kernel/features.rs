//! BPF features of the running kernel that the object adapts to, probed by loading a tiny
//! program that uses each one (features are probed, never read off a version number).
use std::io;

/// What the kernel's BPF can do, as far as the object cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Features {
    /// The atomic compare-and-swap instruction (`BPF_ATOMIC | BPF_CMPXCHG`): the in-flight
    /// table is claimed with it; without it, the table is an LRU hash.
    pub cmpxchg: bool,
}

impl Features {
    /// Probes the running kernel. A probe that cannot tell (the control program does not load
    /// either: no BPF at all, or not allowed) assumes the feature, so that the modes report
    /// their own load errors.
    pub fn probe() -> Self {
        Self {
            cmpxchg: supported(&CMPXCHG_PROGRAM, &CONTROL_PROGRAM).unwrap_or(true),
        }
    }

    /// The suffix of the programs built for the in-flight table these features give
    /// (rmap-ebpf inflight.rs): `_lru` for the LRU hash.
    pub fn program_suffix(self) -> &'static str {
        if self.cmpxchg { "" } else { "_lru" }
    }

    /// The in-flight table these features give, for reports.
    pub fn inflight_table(self) -> &'static str {
        if self.cmpxchg {
            "array claimed by compare-and-swap"
        } else {
            "LRU hash by thread id (no BPF compare-and-swap in this kernel)"
        }
    }
}

/// One BPF instruction (`struct bpf_insn`, include/uapi/linux/bpf.h): the registers share a
/// byte, `dst` in the low nibble.
#[repr(C)]
#[derive(Clone, Copy)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// `r = imm` (`BPF_ALU64 | BPF_MOV | BPF_K`).
const fn mov(dst: u8, imm: i32) -> Insn {
    insn(0xb7, dst, 0, 0, imm)
}
/// `*(u64 *)(r10 - 8) = r1` (`BPF_STX | BPF_MEM | BPF_DW`).
const STORE: Insn = insn(0x7b, 10, 1, -8, 0);
/// `r0 = cmpxchg((u64 *)(r10 - 8), r0, r1)` (`BPF_STX | BPF_ATOMIC | BPF_DW`, imm
/// `BPF_CMPXCHG`).
const CMPXCHG: Insn = insn(0xdb, 10, 1, -8, 0xf1);
/// `exit`.
const EXIT: Insn = insn(0x95, 0, 0, 0, 0);

static CMPXCHG_PROGRAM: [Insn; 6] = [mov(1, 0), STORE, mov(0, 0), CMPXCHG, mov(0, 0), EXIT];
/// The same program without the instruction probed.
static CONTROL_PROGRAM: [Insn; 6] = [mov(1, 0), STORE, mov(0, 0), mov(0, 0), mov(0, 0), EXIT];

/// Whether `probe` loads, given that `control` (the same without the feature) does; `None`
/// when the control does not load.
fn supported(probe: &[Insn], control: &[Insn]) -> Option<bool> {
    load(control).ok()?;
    Some(load(probe).is_ok())
}

/// The leading members of `union bpf_attr` for `BPF_PROG_LOAD`, zero-padded to a size every
/// kernel accepts (the kernel checks that bytes past what it knows are zero).
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    pad: [u64; 8],
}

/// `BPF_PROG_TYPE_SOCKET_FILTER`: the simplest program type, loadable on every kernel.
const SOCKET_FILTER: u32 = 1;
const BPF_PROG_LOAD: libc::c_long = 5;

/// Loads `insns` as a socket filter and closes it again.
fn load(insns: &[Insn]) -> io::Result<()> {
    let license = c"GPL";
    let attr = ProgLoad {
        prog_type: SOCKET_FILTER,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..ProgLoad::default()
    };
    // SAFETY: `attr` is a valid bpf_attr prefix for BPF_PROG_LOAD, read by the kernel during
    // the call; the instructions and licence it points to outlive the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &raw const attr,
            size_of::<ProgLoad>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a file descriptor this call just opened and nothing else owns.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The instruction words as the kernel reads them.
    #[test]
    fn encodings() {
        assert_eq!(size_of::<Insn>(), 8);
        assert_eq!(
            (CMPXCHG.code, CMPXCHG.regs, CMPXCHG.off, CMPXCHG.imm),
            (0xdb, 0x1a, -8, 0xf1)
        );
        assert_eq!((STORE.code, STORE.regs), (0x7b, 0x1a));
        assert_eq!(mov(1, 0).regs, 0x01);
    }
}
