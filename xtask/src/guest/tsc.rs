//! The guest's clock: every guest kernel reads the TSC, as hosts do.
//!
//! Debian's kernel, left alone, runs on the HPET: QEMU's TCG CPU is not an Intel one and has
//! no `constant_tsc`, and arch/x86/kernel/tsc.c `unsynchronized_tsc()` assumes such a CPU
//! unsynchronized across sockets once there are two CPUs ("Marking TSC unstable due to TSCs
//! unsynchronized"). Every HPET read is an emulated MMIO access served by QEMU's device
//! model, so each `ktime_get_ns()` (and each `bpf_ktime_get_ns()` of a BPF tracer) costs
//! what no host's clock costs, while `sched_clock()` (tracefs's timestamps) still reads the
//! TSC: the overhead bench compared tracers on unequal clocks. `tsc=reliable` skips that
//! guess, the boot-time sync check between vCPUs and the clocksource watchdog, which TCG's
//! uneven vCPU progress trips now and then; the TSC is then the clocksource.
//!
//! The TSC frequency (`tsc_early_khz=`), given to every TCG guest (the host's; 1 GHz under
//! icount, see `clock_words`): our kernel has no ACPI, so
//! it has no HPET or ACPI PM timer; its only reference for calibrating the TSC is the emulated
//! PIT (arch/x86/kernel/tsc.c: `quick_pit_calibrate()` early, `pit_calibrate_tsc()` in
//! `tsc_init()`). Under TCG, with the host's cores busy, the
//! vCPU is descheduled between PIT reads and both calibrations fail ("Fast TSC calibration
//! failed", "Unable to calibrate against PIT", "No reference (HPET/PMTIMER) available"); the
//! kernel then marks the TSC unstable ("could not calculate TSC khz") and keeps
//! refined-jiffies as its clocksource, so every walk is timed in 4 ms ticks. `tsc=reliable`
//! does not help there: it only skips the sync check and the watchdog of a calibrated TSC.
//! With `tsc_early_khz` set, `determine_cpu_tsc_frequencies()` takes it instead of
//! calibrating, and the TSC is registered as the clocksource on every boot.
//!
//! QEMU's TCG guest reads the host's own TSC (`helper_rdtsc()` → `cpu_get_ticks()` →
//! `cpu_get_host_ticks()`), so the right value is the host's TSC frequency, measured here
//! against `CLOCK_MONOTONIC_RAW`. Under icount it reads the instruction clock instead.
use std::time::Duration;

use anyhow::bail;

use super::qemu::Accel;

/// The TSC's frequency under `-icount shift=0`: 1 tick per ns.
const ICOUNT_KHZ: u64 = 1_000_000;

/// One (TSC, `CLOCK_MONOTONIC_RAW` ns) pair, from the tightest of a few tries: a pair taken
/// across a preemption would shift the result.
fn sample() -> (u64, u64) {
    let mut best = (u64::MAX, 0, 0);
    for _ in 0..16 {
        let before = rdtsc();
        let ns = monotonic_raw_ns();
        let after = rdtsc();
        let gap = after.saturating_sub(before);
        if gap < best.0 {
            best = (gap, before + gap / 2, ns);
        }
    }
    (best.1, best.2)
}

fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no preconditions on x86_64; it reads the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

fn monotonic_raw_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_RAW always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_RAW, &raw mut ts) };
    ts.tv_sec.unsigned_abs() * 1_000_000_000 + ts.tv_nsec.unsigned_abs()
}

/// kHz of `ticks` over `ns` nanoseconds.
fn khz(ticks: u64, ns: u64) -> u64 {
    u64::try_from(u128::from(ticks) * 1_000_000 / u128::from(ns.max(1))).unwrap_or(u64::MAX)
}

/// Kernel command-line words for the guest's clock (see the module comment), under KVM too:
/// our kernel has no paravirtual clock to fall back on there.
/// The host's frequency is measured once per process (0.4 s), not once per boot: a `vm-test`
/// run boots many guests.
/// Under icount the TCG guest's TSC is the instruction clock instead, one tick per ns
/// (`cpu_get_ticks()` → `icount_get()`): 1 GHz.
pub fn clock_words(accel: Accel) -> anyhow::Result<Vec<String>> {
    static KHZ: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let khz = if accel == Accel::Icount {
        ICOUNT_KHZ
    } else if let Some(&k) = KHZ.get() {
        k
    } else {
        let k = host_khz(Duration::from_millis(200))?;
        *KHZ.get_or_init(|| k)
    };
    Ok(vec!["tsc=reliable".to_string(), format!("tsc_early_khz={khz}")])
}

/// The host's TSC frequency in kHz, measured over `window` (two measurements must agree
/// within 0.1 %, else the TSC is not a steady clock here and the guest cannot rely on it).
pub fn host_khz(window: Duration) -> anyhow::Result<u64> {
    let measure = || {
        let (t0, n0) = sample();
        std::thread::sleep(window);
        let (t1, n1) = sample();
        khz(t1.saturating_sub(t0), n1.saturating_sub(n0))
    };
    let (a, b) = (measure(), measure());
    if a == 0 || a.abs_diff(b) * 1000 > a {
        bail!("the host's TSC is not steady ({a} kHz, then {b} kHz): cannot tell the guest its frequency");
    }
    Ok(a.midpoint(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn khz_arithmetic() {
        assert_eq!(khz(2_100_000_000, 1_000_000_000), 2_100_000);
        assert_eq!(khz(420_000_000, 200_000_000), 2_100_000);
        assert_eq!(khz(5, 0), 5_000_000);
    }

    #[test]
    fn icount_guests_get_the_instruction_clock() {
        let words = clock_words(Accel::Icount).expect("no measurement needed");
        assert_eq!(words, ["tsc=reliable", "tsc_early_khz=1000000"]);
    }

    #[test]
    fn host_tsc_is_measured() {
        // Any x86_64 host of ours runs its TSC between 500 MHz and 10 GHz.
        let khz = host_khz(Duration::from_millis(50)).expect("steady TSC");
        assert!((500_000..10_000_000).contains(&khz), "{khz} kHz");
    }
}
