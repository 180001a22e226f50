//! The bounds of the numeric options, checked by clap before anything is attached: a value out
//! of range, NaN or infinite is one error line and exit 2, never a panic or a wrapped number
//! later (`Duration::from_secs_f64` panics past u64 seconds; tokio's interval on zero).
use std::ops::RangeInclusive;

/// `--interval`: from a hundredth of a second to a day.
pub const INTERVAL_S: RangeInclusive<f64> = 0.01..=86_400.0;
/// `--duration`: from a millisecond to a year.
pub const DURATION_S: RangeInclusive<f64> = 0.001..=31_536_000.0;
/// `--merge-timeout`: from a second to a day.
pub const MERGE_TIMEOUT_S: RangeInclusive<f64> = 1.0..=86_400.0;
/// `--threshold-ms`: 0 (every walk) to an hour.
pub const THRESHOLD_MS: RangeInclusive<f64> = 0.0..=3_600_000.0;
/// `--min-duration-us`: up to a minute (in ns it stays far below `u64::MAX`).
pub const MIN_DURATION_US: RangeInclusive<u64> = 0..=60_000_000;
/// `-p`: 1 to `PID_MAX_LIMIT` (2^22), the largest pid a kernel hands out.
pub const PID: RangeInclusive<u32> = 1..=4_194_304;
/// `--max-page-sharing`: KSM's own bounds (at least 2; the knob is a C int).
/// `--move-batch`: pages per `move_pages` call (the kernel takes any count; above this it is one
/// call for the whole region anyway).
pub const MOVE_BATCH: RangeInclusive<u64> = 1..=65_536;
pub const MAX_PAGE_SHARING: RangeInclusive<u64> = 2..=2_147_483_647;

/// A clap value parser of a finite number in `range`, `unit` naming it in the error.
pub fn number(
    range: RangeInclusive<f64>,
    unit: &'static str,
) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync + 'static {
    move |s: &str| match s.parse::<f64>() {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(format!(
            "`{s}` is not a number of {unit} from {} to {}",
            range.start(),
            range.end()
        )),
    }
}

/// `-p`: a pid, 0 refused with what it used to mean.
pub fn pid(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(0) => Err("pid 0 is not a process (leave out -p to watch every process)".into()),
        Ok(p) if PID.contains(&p) => Ok(p),
        _ => Err(format!(
            "`{s}` is not a pid from {} to {} (PID_MAX_LIMIT)",
            PID.start(),
            PID.end()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_inside_only() {
        let p = number(INTERVAL_S, "seconds");
        for ok in ["0.01", "1", "86400", "1e2"] {
            assert!(p(ok).is_ok(), "{ok}");
        }
        for bad in [
            "0.009", "0", "-1", "1e300", "1e-10", "NaN", "nan", "inf", "-inf", "x", "",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
        assert!(number(THRESHOLD_MS, "ms")("0").is_ok());
        assert!(number(THRESHOLD_MS, "ms")("-0.1").is_err());
    }

    #[test]
    fn pids() {
        assert_eq!(pid("1"), Ok(1));
        assert_eq!(pid("4194304"), Ok(4_194_304));
        assert!(pid("0").unwrap_err().contains("leave out -p"));
        for bad in ["4194305", "-1", "x", "1.5"] {
            assert!(pid(bad).is_err(), "{bad}");
        }
    }
}
