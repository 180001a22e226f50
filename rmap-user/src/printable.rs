//! Text from outside the program (input files, file names, process and thread names) made safe
//! for a terminal: control characters (C0, DEL, C1) and the bidirectional-text controls are
//! escaped Rust-style (`\u{1b}`, `\n`), everything else is kept as it is. Error lines go
//! through here too.
use std::borrow::Cow;

/// Whether `c` would act on a terminal instead of showing.
fn acts(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every character that acts on a terminal escaped; borrowed when there is none.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(acts) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if acts(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Bytes from outside as printable text (invalid UTF-8 as U+FFFD).
pub fn printable_bytes(b: &[u8]) -> String {
    printable(&String::from_utf8_lossy(b)).into_owned()
}

/// An error and its causes on one printable line, like anyhow's `{:#}`, except that a cause is
/// left out when the message before it already ends with it (an error type that shows its
/// source in its own message as well as returning it).
pub fn error_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    printable(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_acts_on_a_terminal_only() {
        assert!(matches!(printable("java GC Thread#0 ü"), Cow::Borrowed(_)));
        assert_eq!(printable("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(printable("x\ny\tz\r"), "x\\ny\\tz\\r");
        assert_eq!(printable("\u{7f}\u{9b}"), "\\u{7f}\\u{9b}");
        assert_eq!(printable("abc\u{202e}def"), "abc\\u{202e}def");
        assert_eq!(printable_bytes(b"ok\xff\x07"), "ok\u{fffd}\\u{7}");
    }

    /// An error type that shows its source and returns it too prints it once; a chain of
    /// contexts prints every one; a newline in a message stays on the line.
    #[test]
    fn error_lines_say_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("{path}: {source}")]
        struct Both {
            path: String,
            source: std::io::Error,
        }
        let io = || std::io::Error::from_raw_os_error(libc::EISDIR);
        let e = anyhow::Error::from(Both {
            path: "/tmp".into(),
            source: io(),
        });
        assert_eq!(error_line(&e), "/tmp: Is a directory (os error 21)");
        let e = anyhow::Error::from(io())
            .context("reading /tmp")
            .context("loading");
        assert_eq!(
            error_line(&e),
            "loading: reading /tmp: Is a directory (os error 21)"
        );
        let e = anyhow::anyhow!("bad name `a\nb`");
        assert_eq!(error_line(&e), "bad name `a\\nb`");
    }
}
