//! Short, stable descriptions of attach failures for the one-line-per-mode report.
use aya::programs::ProgramError;

/// `EPERM`-style name of an errno, for the common BPF failures.
pub fn errno_name(code: i32) -> String {
    match code {
        libc::EPERM => "EPERM".into(),
        libc::ENOENT => "ENOENT".into(),
        libc::EINVAL => "EINVAL".into(),
        libc::EACCES => "EACCES".into(),
        libc::E2BIG => "E2BIG".into(),
        libc::EBUSY => "EBUSY".into(),
        libc::ENOSPC => "ENOSPC".into(),
        libc::EOPNOTSUPP => "EOPNOTSUPP".into(),
        libc::ESRCH => "ESRCH".into(),
        524 => "ENOTSUPP".into(),
        other => format!("errno {other}"),
    }
}

fn io(e: &std::io::Error) -> String {
    e.raw_os_error().map_or_else(|| e.to_string(), errno_name)
}

/// Lines the verifier appends to every log, after its verdict (kernel/bpf/verifier.c
/// `print_verification_stats`; newer kernels print more of them, in another order).
const STATISTICS: [&str; 4] = [
    "processed ",
    "verification time",
    "stack depth",
    "insns processed",
];

/// The verifier's verdict: the last line of its log that is not one of its statistics.
pub fn verdict(log: &str) -> Option<&str> {
    log.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty() && !STATISTICS.iter().any(|s| l.starts_with(s)))
}

/// Describes a program error in one line: `BPF_PROG_LOAD: EPERM`, with the verifier's last line
/// when the verifier rejected the program.
pub fn describe(err: &ProgramError) -> String {
    match err {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            log::debug!("verifier log:\n{log}");
            match verdict(&log) {
                Some(last) => format!("BPF_PROG_LOAD: {} (verifier: {last})", io(io_error)),
                None => format!("BPF_PROG_LOAD: {}", io(io_error)),
            }
        }
        ProgramError::SyscallError(e) => format!("{}: {}", e.call, io(&e.io_error)),
        other => {
            // Walk the source chain for an OS error so the reason ends in an errno name.
            let mut src: Option<&dyn std::error::Error> = std::error::Error::source(other);
            while let Some(s) = src {
                if let Some(e) = s.downcast_ref::<std::io::Error>() {
                    return format!("{other}: {}", io(e));
                }
                src = s.source();
            }
            other.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::verdict;

    /// Real logs of programs of ours rejected by Debian's kernels (their ends; the whole log
    /// is printed with `RUST_LOG=rmap_user=debug`).
    #[test]
    fn the_verdict_is_found_whatever_statistics_follow_it() {
        for (log, want) in [
            (
                include_str!("testdata/verifier-7.2.12+deb14.log"),
                "R7 pointer ^= pointer prohibited",
            ),
            (
                include_str!("testdata/verifier-5.10.0-46.log"),
                "BPF_STX uses reserved fields",
            ),
            (
                include_str!("testdata/verifier-6.1.0-56.log"),
                "invalid bpf_context access off=56 size=8",
            ),
        ] {
            assert_eq!(verdict(log), Some(want));
        }
        assert_eq!(verdict("verification time 3 usec\nstack depth 0\n"), None);
    }
}
