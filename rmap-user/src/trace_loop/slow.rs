//! `--threshold-ms`: one line per slow walk, stamped with the time of day it started.
use std::time::{SystemTime, UNIX_EPOCH};

use rmap_common::{FLAG_OFFCPU_VALID, PageType, WalkEvent};

use crate::{events, render::fmt_ns};

/// Prints the walks at least `threshold_ns` long.
pub struct SlowWalks {
    threshold_ns: u64,
    clock: Clock,
}

impl SlowWalks {
    pub fn new(threshold_ms: f64) -> Self {
        Self {
            threshold_ns: (threshold_ms * 1e6) as u64,
            clock: Clock::new(),
        }
    }

    pub fn record(&self, ev: &WalkEvent, purpose: &str) {
        if ev.duration_ns >= self.threshold_ns {
            println!("{}", line(&self.clock, ev, purpose));
        }
    }
}

/// Converts `bpf_ktime_get_ns` (`CLOCK_MONOTONIC`) to wall-clock time of day.
struct Clock {
    offset_ns: i128,
}

impl Clock {
    fn new() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec for the call's duration.
        if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) } != 0 {
            log::warn!(
                "CLOCK_MONOTONIC unreadable ({}): slow-walk times are uptime, not time of day",
                std::io::Error::last_os_error()
            );
            return Self { offset_ns: 0 };
        }
        let mono = i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec);
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        Self {
            offset_ns: wall - mono,
        }
    }

    /// `HH:MM:SS.mmm` (UTC).
    fn time_of_day(&self, ktime_ns: u64) -> String {
        let ns = (i128::from(ktime_ns) + self.offset_ns).max(0) as u128;
        let ms = (ns / 1_000_000) % 86_400_000;
        format!(
            "{:02}:{:02}:{:02}.{:03}",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        )
    }
}

/// One line for a slow walk.
fn line(clock: &Clock, ev: &WalkEvent, purpose: &str) -> String {
    let offcpu = if ev.flags & FLAG_OFFCPU_VALID != 0 {
        fmt_ns(ev.offcpu_ns)
    } else {
        "n/a".into()
    };
    format!(
        "{} {}/{} {} {} {} offcpu {} folio {:#x}",
        clock.time_of_day(ev.start_ns),
        crate::printable::printable(&events::comm(ev)),
        ev.pid,
        PageType::from_u32(ev.page_type).name(),
        purpose,
        fmt_ns(ev.duration_ns),
        offcpu,
        ev.folio
    )
}
