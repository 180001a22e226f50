//! Command-line errors: clap rejects them before anything touches the kernel, so they need no
//! privileges.
use std::process::Command;

/// Bad input: one error line, non-zero exit.
#[test]
fn bad_arguments() {
    let bin = env!("CARGO_BIN_EXE_rmap-trace");
    let out = Command::new(bin)
        .args(["--attach-only", "--types", "huge"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: invalid value 'huge'"), "{stderr}");
}
