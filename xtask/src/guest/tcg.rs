//! A QEMU bug that hangs TCG guests now and then, recognized so that the run is booted again.
//!
//! QEMU before 8.1 races, under MTTCG (one host thread per vCPU), between translating a block
//! of guest code on one vCPU's thread and invalidating it after a write by another ("accel/tcg:
//! Fix race condition in tb create/invalidate", QEMU 8.1). The guest kernel patches its own
//! text whenever a tracer detaches (arch/x86/kernel/alternative.c `text_poke_bp`: an `int3`
//! over the call site, an IPI to every CPU, the new bytes, the first byte back). One vCPU then
//! keeps executing a stale translation holding the `int3` and spins in `exc_int3` with
//! interrupts off (at `__schedule`), while the patching vCPU waits for it in
//! `smp_call_function_many_cond`: a soft-lockup panic, seen once in CI and now and then in
//! vm-test runs and the overhead bench. Debian 12 ships QEMU 7.2; the guests run Debian 12's
//! backported QEMU 10 (`emulator.rs`), which has the fix, unless `RMAP_TRACE_QEMU` names another.
//!
//! MTTCG stays on: with `thread=single` the vCPUs take turns on one thread, and a vCPU spinning
//! on a lock whose holder's vCPU is not running spins until the round-robin kick, every 100 ms
//! (accel/tcg/tcg-accel-ops-rr.c `TCG_KICK_PERIOD`), an optimistic spin
//! (kernel/locking/rwsem.c `rwsem_optimistic_spin`) no contention hook sees: the `stalls`
//! suite's victim then measured 1,042 ms of waits where 529 ms were attributed. So a run that
//! dies of this hang's signature on such a QEMU is booted again, once, and says so.

/// The first QEMU without the race.
const FIXED: (u32, u32) = (8, 1);

/// What a retried run says.
pub const KNOWN_HANG: &str = "the guest hung in QEMU < 8.1's MTTCG race with the kernel's text patching \
     (a vCPU looping in exc_int3 while another waits in text_poke_bp; see xtask/src/guest/tcg.rs)";

/// Said in a failed run's error when the kernel's whole replayed log (not only the part the
/// error quotes) shows the hang.
const SIGNATURE_NOTE: &str = "(the backtraces show QEMU's MTTCG text-patching hang)";

/// `SIGNATURE_NOTE` when a failed run's replayed log shows the hang, else nothing.
pub fn signature_note(log: &[String]) -> &'static str {
    if has_signature(&log.join("\n")) {
        SIGNATURE_NOTE
    } else {
        ""
    }
}

/// Whether a failed TCG run whose replayed log shows the hang (`hang_signature`) died of it:
/// on a QEMU that has (or may have: its version unknown) the race.
pub fn known_hang(hang_signature: bool) -> bool {
    hang_signature && racy(qemu_version())
}

/// Whether a failed run's replayed log shows the hang.
pub fn shows_hang(log: &[String]) -> bool {
    has_signature(&log.join("\n"))
}

/// Both halves of the hang in the backtraces: the looping vCPU and the patching one.
fn has_signature(log: &str) -> bool {
    log.contains("exc_int3") && log.contains("text_poke_bp")
}

/// Whether this QEMU (major, minor; `None`: unknown) may have the race.
fn racy(version: Option<(u32, u32)>) -> bool {
    version.is_none_or(|v| v < FIXED)
}

/// The emulator's (major, minor), read once per process.
fn qemu_version() -> Option<(u32, u32)> {
    version(&super::emulator::version().ok()?)
}

/// (major, minor) from `qemu-system-x86_64 --version`'s "QEMU emulator version 7.2.22 (...)".
fn version(text: &str) -> Option<(u32, u32)> {
    let rest = text.split("version ").nth(1)?;
    let mut parts = rest.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_debian_and_upstream_banners() {
        let debian = "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b2)\nCopyright";
        assert_eq!(version(debian), Some((7, 2)));
        assert_eq!(version("QEMU emulator version 10.0.3\n"), Some((10, 0)));
        assert_eq!(version("no banner"), None);
    }

    #[test]
    fn only_qemu_before_the_fix_is_racy() {
        assert!(racy(Some((7, 2))));
        assert!(racy(Some((8, 0))));
        assert!(!racy(Some((8, 1))));
        assert!(!racy(Some((10, 0))));
        assert!(racy(None));
    }

    #[test]
    fn the_signature_needs_both_vcpus() {
        let looping =
            "CPU: 1 PID: 0 Comm: swapper/1\n RIP: 0010:__schedule+0x1bc/0x8a0\n  exc_int3+0x3b/0x90";
        let patching =
            "CPU: 0 PID: 212 Comm: rmap-trace\n  text_poke_bp_batch+0x1a0/0x2c0\n  text_poke_bp+0x44/0x70";
        assert!(has_signature(&format!("{looping}\n{patching}")));
        assert!(!has_signature(looping));
        assert!(!has_signature(patching));
        assert!(!has_signature(
            "watchdog: BUG: soft lockup - CPU#0 stuck for 61s!"
        ));
        let log: Vec<String> = format!("{looping}\n{patching}")
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(signature_note(&log), SIGNATURE_NOTE);
        assert_eq!(signature_note(&log[..3]), "");
    }
}
