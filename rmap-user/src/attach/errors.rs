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
            // The verdict is the last line before the statistics the verifier appends.
            let last = log
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| {
                    !l.is_empty() && !l.starts_with("processed ") && !l.starts_with("verification time")
                })
                .unwrap_or("")
                .to_string();
            if last.is_empty() {
                format!("BPF_PROG_LOAD: {}", io(io_error))
            } else {
                format!("BPF_PROG_LOAD: {} (verifier: {last})", io(io_error))
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
