//! Command-line errors: clap rejects them before anything touches the kernel, so they need no
//! privileges. Each is one error line naming the value and the bounds, and exit 2.
use std::process::Command;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rmap-trace"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Bad input: one error line, non-zero exit.
#[test]
fn bad_arguments() {
    let (code, stderr) = run(&["--attach-only", "--types", "huge"]);
    assert_eq!(code, Some(2));
    assert!(stderr.starts_with("error: invalid value 'huge'"), "{stderr}");
}

/// Every numeric option, just out of its bounds and at absurd values: rejected by clap with
/// the bounds in its one line, before anything is attached.
#[test]
fn numbers_out_of_bounds() {
    const LIVE: &[&str] = &["--attach-only"];
    const BENCH: &[&str] = &[];
    let table: &[(&[&str], &str, &[&str], &str)] = &[
        (
            LIVE,
            "--interval",
            &["1e300", "1e-10", "0.009", "86400.1", "0", "-1", "NaN", "inf", "x"],
            "from 0.01 to 86400",
        ),
        (
            LIVE,
            "--duration",
            &["1e20", "0", "-5", "nan", "-inf", "31536001"],
            "from 0.001 to 31536000",
        ),
        (
            LIVE,
            "--threshold-ms",
            &["-1", "-0.001", "NaN", "inf", "3600000.5", "1e300"],
            "from 0 to 3600000",
        ),
        (
            LIVE,
            "-p",
            &["0"],
            "pid 0 is not a process (leave out -p to watch every process)",
        ),
        (
            LIVE,
            "-p",
            &["-1", "4194305", "4294967296", "1.5"],
            "from 1 to 4194304",
        ),
        (
            LIVE,
            "--min-duration-us",
            &["60000001", "18446744073709551615", "-1"],
            "",
        ),
        (BENCH, "--min-duration-us", &["60000001"], "60000000"),
        (
            BENCH,
            "--merge-timeout",
            &["1e20", "0", "0.5", "86401", "nan"],
            "from 1 to 86400",
        ),
        (BENCH, "--pages", &["1", "1000001", "-3"], ""),
        (BENCH, "--sharers", &["0", "32769"], ""),
        (BENCH, "--max-page-sharing", &["1", "2147483648"], ""),
        (
            LIVE,
            "--prometheus",
            &["70000", "host:port"],
            "is not PORT or HOST:PORT",
        ),
    ];
    for (pre, opt, values, says) in table {
        for v in *values {
            assert_rejected(pre, opt, v, says);
        }
    }
}

/// `pre opt v` is exit 2 with one error line that names `v`, `opt` and says `says`.
fn assert_rejected(pre: &[&str], opt: &str, v: &str, says: &str) {
    // `--opt=-1`: a value starting with `-` is not taken for an option.
    let joined = format!("{opt}={v}");
    let mut args = pre.to_vec();
    if v.starts_with('-') {
        args.push(&joined);
    } else {
        args.extend([opt, v]);
    }
    let (code, stderr) = run(&args);
    let shown = if opt == "-p" { "--pid" } else { opt };
    let first = stderr.lines().next().unwrap_or("");
    assert_eq!(code, Some(2), "{args:?}: {stderr}");
    assert!(
        first.starts_with(&format!("error: invalid value '{v}' for '{shown}")),
        "{args:?}: {stderr}"
    );
    assert!(first.contains(says), "{args:?}: {first}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{args:?}: {stderr}"
    );
}

/// `-p` names a process of our pid namespace: in a child one (made here with unshare, as an
/// unprivileged user namespace allows) it is refused in one line, as is a pid with no process.
#[test]
fn pids_the_kernel_filter_cannot_match() {
    let bin = env!("CARGO_BIN_EXE_rmap-trace");
    let (code, stderr) = run(&["--attach-only", "-p", "4194304"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("-p 4194304: no such process")
            || stderr.contains("-p 4194304: rmap-trace runs in a child pid namespace"),
        "{stderr}"
    );
    let Some((code, stderr)) = in_child_pid_namespace(&[bin, "--attach-only", "-p", "1"]) else {
        return;
    };
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("rmap-trace: error: -p 1: rmap-trace runs in a child pid namespace"),
        "{stderr}"
    );
}

/// The benchmark filters in the kernel on its own host pid: in a child pid namespace it stops
/// in one line before it changes anything.
#[test]
fn benchmark_in_a_child_pid_namespace_is_refused() {
    let bin = env!("CARGO_BIN_EXE_rmap-trace");
    let Some((code, stderr)) = in_child_pid_namespace(&[bin, "--types", "ksm", "--pages", "2"]) else {
        return;
    };
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("rmap-trace: error: the benchmark runs in a child pid namespace"),
        "{stderr}"
    );
}

/// Runs `argv` as root of new user and pid namespaces (`unshare`): its exit code and stderr, or
/// `None` (said on stderr) where this host cannot make such namespaces.
fn in_child_pid_namespace(argv: &[&str]) -> Option<(Option<i32>, String)> {
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--pid", "--fork", "--mount-proc"])
        .args(argv)
        .output();
    let Ok(out) = out else {
        eprintln!("skipped: no unshare on this host");
        return None;
    };
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if stderr.starts_with("unshare:") {
        eprintln!("skipped: {stderr}");
        return None;
    }
    Some((out.status.code(), stderr))
}
