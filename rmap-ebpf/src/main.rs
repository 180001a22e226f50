//! In-kernel half of rmap-trace: one program family per attach mode, all feeding the same
//! walk accounting (`walk.rs`), maps (`maps.rs`) and load-time options (`config.rs`).
//!
//! The crate is `no_std`/`no_main` only for the BPF target, so that `cargo check` of the
//! workspace on the host does not see a second panic handler.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// `core::intrinsics::atomic_xadd` for counters (maps.rs `add_one`): the pinned toolchain is a
// nightly (ebpf-toolchain.toml), and the BPF target's `core` lacks `AtomicU64::fetch_add`.
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(
    target_arch = "bpf",
    expect(
        internal_features,
        reason = "core_intrinsics is internal to the compiler; atomic_xadd is the only fetch-add the BPF target's core has"
    )
)]

#[cfg(target_arch = "bpf")]
mod config;
#[cfg(target_arch = "bpf")]
mod fentry;
#[cfg(target_arch = "bpf")]
mod inflight;
#[cfg(target_arch = "bpf")]
mod kprobe;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod owner;
#[cfg(target_arch = "bpf")]
mod purpose;
#[cfg(target_arch = "bpf")]
mod sched;
#[cfg(target_arch = "bpf")]
mod stall;
#[cfg(target_arch = "bpf")]
mod tracepoint;
#[cfg(target_arch = "bpf")]
mod walk;

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// The verifier lets only programs with a GPL-compatible license (a string the kernel's
/// `license_is_gpl_compatible()` accepts) call gpl_only helpers; we call `bpf_probe_read_kernel`.
/// Same licence as the crate's metadata, `MIT OR GPL-2.0-only` (checked by integration-test).
#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(target_arch = "bpf"))]
fn main() {}
