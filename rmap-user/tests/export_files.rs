//! `--hlog` files and the commands that read them: a log written through the real writer reads
//! back to the same counts and max; each kind of bad input is one clear line and exit 1.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

use rmap_common::{PageType, WalkEvent};
use rmap_user::{export::hlog::HlogWriter, stats::Stats};

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("rmap-export-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).unwrap();
    }
}

fn walk(ty: PageType, ns: u64) -> WalkEvent {
    WalkEvent {
        page_type: ty as u32,
        duration_ns: ns,
        ..Default::default()
    }
}

/// Two intervals: ksm 1..=100 ms then 101..=200 ms; anon 10 us each.
fn write_log(path: &Path) {
    let mut w = HlogWriter::create(path).unwrap();
    let t0 = SystemTime::now();
    for part in 0..2u64 {
        let mut types: BTreeMap<PageType, Stats> = BTreeMap::new();
        for i in 1..=100 {
            types
                .entry(PageType::Ksm)
                .or_default()
                .record(&walk(PageType::Ksm, (part * 100 + i) * 1_000_000));
            types
                .entry(PageType::Anon)
                .or_default()
                .record(&walk(PageType::Anon, 10_000));
        }
        let from = t0 + Duration::from_secs(part);
        w.interval(from, from + Duration::from_secs(1), &types);
    }
    w.finish().unwrap();
}

fn rmap_trace(args: &[&Path]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rmap-trace"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn written_log_reads_back() {
    let d = Dir::new("roundtrip");
    let path = d.file("a.hlog");
    write_log(&path);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("#[Histogram log format version 1.3]"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("Tag=ksm,")).count(),
        2,
        "{text}"
    );
    let log = rmap_user::export::read::load(&path).unwrap();
    assert_eq!(log.intervals, 4);
    let ksm = &log.tags["ksm"];
    assert_eq!(ksm.len(), 200);
    // 3 significant digits: the max is within 0.1% of 200 ms.
    assert!(ksm.max().abs_diff(200_000_000) < 200_000, "{}", ksm.max());
    assert_eq!(log.tags["anon"].len(), 200);
    let (code, out, err) = rmap_trace(&[Path::new("report"), &path]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines().any(|l| l.starts_with("ksm") && l.contains(" 200 ")),
        "{out}"
    );
}

#[test]
fn compare_prints_ratios() {
    let d = Dir::new("compare");
    let (a, b) = (d.file("a.hlog"), d.file("b.hlog"));
    write_log(&a);
    write_log(&b);
    let (code, out, err) = rmap_trace(&[Path::new("compare"), &a, &b]);
    assert_eq!(code, 0, "{err}");
    for stat in ["count", "p50", "p90", "p99", "p99.9", "max"] {
        assert!(
            out.lines().any(|l| l.split_whitespace().any(|w| w == stat)),
            "{stat}: {out}"
        );
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("ksm") && l.trim_end().ends_with("1.000")),
        "{out}"
    );
}

/// Runs `rmap-trace ARGS` on a bad input: exit 1, nothing on stdout, one error line.
fn fails_with(args: &[&Path], expect: &str) {
    let (code, out, err) = rmap_trace(args);
    assert_eq!(code, 1, "exit code; stderr: {err}");
    assert!(out.is_empty(), "stdout: {out}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(
        lines[0].starts_with("rmap-trace: error: ") && lines[0].contains(expect),
        "{err}"
    );
    assert!(lines[0].matches("(os error").count() <= 1, "said twice: {err}");
}

#[test]
fn bad_files_are_one_clear_error() {
    let d = Dir::new("bad");
    let good = d.file("good.hlog");
    write_log(&good);
    let text = std::fs::read_to_string(&good).unwrap();

    let empty = d.file("empty.hlog");
    std::fs::write(&empty, "").unwrap();
    fails_with(
        &[Path::new("report"), &empty],
        "empty file, not an HdrHistogram interval log",
    );

    let json = d.file("summary.json");
    std::fs::write(&json, "{\"kernel\": \"6.1\"}\n").unwrap();
    fails_with(
        &[Path::new("report"), &json],
        "not an HdrHistogram interval log (line 1: `{\"kernel\"",
    );

    // Cut in the middle of the last histogram line.
    let truncated = d.file("truncated.hlog");
    std::fs::write(&truncated, &text[..text.len() - 40]).unwrap();
    let last = text.lines().count();
    fails_with(
        &[Path::new("report"), &truncated],
        &format!("line {last}: malformed interval line (truncated file?)"),
    );

    // Damage the compressed bytes of the first histogram (base64 still valid).
    let first = text.lines().position(|l| l.starts_with("Tag=")).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let l = &mut lines[first];
    let cut = l.len() - 20;
    l.replace_range(cut..cut + 8, "AAAAAAAA");
    let corrupt = d.file("corrupt.hlog");
    std::fs::write(&corrupt, lines.join("\n") + "\n").unwrap();
    fails_with(
        &[Path::new("report"), &corrupt],
        &format!("line {}: corrupt histogram", first + 1),
    );

    let header_only = d.file("header.hlog");
    let mut header: String = text
        .lines()
        .take_while(|l| !l.starts_with("Tag="))
        .collect::<Vec<_>>()
        .join("\n");
    header.push('\n');
    std::fs::write(&header_only, header).unwrap();
    fails_with(
        &[Path::new("report"), &header_only],
        "no interval histograms in the log",
    );

    fails_with(
        &[Path::new("report"), &d.file("missing.hlog")],
        "missing.hlog: No such file or directory (os error 2)",
    );

    // Not regular files: refused before anything is read (a FIFO would block, a device
    // never ends).
    let fifo = d.file("log.fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that lives for the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    fails_with(
        &[Path::new("report"), &fifo],
        "log.fifo: is a FIFO, not a regular file",
    );
    for dev in ["/dev/zero", "/dev/urandom"] {
        fails_with(
            &[Path::new("compare"), Path::new(dev), &good],
            &format!("{dev}: is a device, not a regular file"),
        );
    }
    fails_with(&[Path::new("report"), &d.0], "is a directory, not a regular file");
}

/// Two logs with no page type in common, or an empty one, cannot be compared.
#[test]
fn compare_without_common_type_is_one_clear_error() {
    let d = Dir::new("disjoint");
    let good = d.file("good.hlog");
    write_log(&good);
    let empty = d.file("empty.hlog");
    std::fs::write(&empty, "").unwrap();
    let file_only = d.file("file.hlog");
    let mut w = HlogWriter::create(&file_only).unwrap();
    one_interval(&mut w, PageType::File, 5_000);
    w.finish().unwrap();
    fails_with(
        &[Path::new("compare"), &good, &file_only],
        "have no page type in common",
    );
    fails_with(&[Path::new("compare"), &good, &empty], "empty file");
}

/// Queues one interval of one second with one walk of `ty`.
fn one_interval(w: &mut HlogWriter, ty: PageType, ns: u64) {
    let mut types: BTreeMap<PageType, Stats> = BTreeMap::new();
    types.entry(ty).or_default().record(&walk(ty, ns));
    let t = SystemTime::now();
    w.interval(t, t + Duration::from_secs(1), &types);
}

/// An ended interval is in the file before the writer finishes (a live run's log can be read
/// while it runs, and survives a crash up to the last interval).
#[test]
fn intervals_reach_the_file_before_finish() {
    let dir = Dir::new("live");
    let path = dir.file("live.hlog");
    let mut w = HlogWriter::create(&path).unwrap();
    one_interval(&mut w, PageType::Ksm, 5_000_000);
    let interval_lines = || {
        std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("Tag=ksm,"))
            .count()
    };
    let waited = std::time::Instant::now();
    while interval_lines() == 0 && waited.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        interval_lines(),
        1,
        "the interval is not in the file before finish"
    );
    w.finish().unwrap();
}
