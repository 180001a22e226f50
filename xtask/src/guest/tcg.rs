//! TCG's threading: one host thread per vCPU (MTTCG) where QEMU is safe with it, else one
//! thread for all vCPUs.
//!
//! QEMU before 8.1 races, under MTTCG, between translating a block of guest code on one vCPU's
//! thread and invalidating it after a write by another ("accel/tcg: Fix race condition in tb
//! create/invalidate", QEMU 8.1). The guest kernel patches its own text whenever a tracer
//! detaches (arch/x86/kernel/alternative.c `text_poke_bp`: an `int3` over the call site, an IPI
//! to every CPU, the new bytes, the first byte back). One vCPU then keeps executing a stale
//! translation holding the `int3` and spins in `exc_int3` with interrupts off at the site
//! (`__schedule`), while the patching vCPU waits for it in `smp_call_function_many_cond`: the
//! soft-lockup panic seen in a CI run and, now and then, in vm-test runs and the overhead
//! bench. Debian 12 ships QEMU 7.2. With `thread=single` there is no concurrent translation:
//! vCPUs take turns on one thread (accel/tcg/tcg-accel-ops-rr.c), and a write invalidates the
//! translations of the page before any other vCPU runs again.
use std::{process::Command, sync::OnceLock};

/// The first QEMU without the race.
const FIXED: (u32, u32) = (8, 1);

/// The `-accel` value for TCG, and why, measured once per process.
pub fn accel() -> &'static Threading {
    static T: OnceLock<Threading> = OnceLock::new();
    T.get_or_init(|| {
        let out = Command::new("qemu-system-x86_64").arg("--version").output();
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        choose(text.as_deref().ok().and_then(version))
    })
}

/// TCG's threading for one QEMU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Threading {
    /// The `-accel` argument.
    pub arg: &'static str,
    /// Said beside the boot line.
    pub why: String,
}

fn choose(version: Option<(u32, u32)>) -> Threading {
    match version {
        Some(v) if v >= FIXED => Threading {
            arg: "tcg,thread=multi",
            why: format!("QEMU {}.{}: one thread per vCPU", v.0, v.1),
        },
        Some(v) => Threading {
            arg: "tcg,thread=single",
            why: format!(
                "QEMU {}.{} < {}.{}: vCPUs share one thread (MTTCG races with the kernel's text patching)",
                v.0, v.1, FIXED.0, FIXED.1
            ),
        },
        None => Threading {
            arg: "tcg,thread=single",
            why: "QEMU's version unknown: vCPUs share one thread".to_string(),
        },
    }
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
    fn single_thread_before_the_fix() {
        assert_eq!(choose(Some((7, 2))).arg, "tcg,thread=single");
        assert_eq!(choose(Some((8, 0))).arg, "tcg,thread=single");
        assert_eq!(choose(Some((8, 1))).arg, "tcg,thread=multi");
        assert_eq!(choose(Some((10, 0))).arg, "tcg,thread=multi");
        assert_eq!(choose(None).arg, "tcg,thread=single");
    }
}
