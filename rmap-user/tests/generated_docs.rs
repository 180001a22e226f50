//! `rmap-trace completions` and `rmap-trace manpage` come from the clap definitions: every
//! shell gets a script naming the options, the man page is roff with the options in it, and an
//! unknown shell is a clap error.
use std::process::Command;

fn rmap_trace(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rmap-trace"))
        .args(args)
        .output()
        .expect("rmap-trace runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = rmap_trace(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        for word in ["rmap-trace", "attach-only", "threshold-ms", "workload"] {
            assert!(out.contains(word), "{shell} completions lack {word}");
        }
    }
    let (code, _, err) = rmap_trace(&["completions", "tcsh"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with("error: invalid value 'tcsh'"), "{err}");
}

#[test]
fn man_page_is_roff() {
    let (code, out, err) = rmap_trace(&["manpage"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(".TH rmap-trace"), "no title line");
    for word in ["attach\\-only", "prometheus", "completions"] {
        assert!(out.contains(word), "the man page lacks {word}");
    }
    let (_, help, _) = rmap_trace(&["--help"]);
    assert!(!help.contains("manpage"), "manpage is hidden from --help");
}
