//! Output files on the host, no root needed: a path that is a symbolic link or not a regular
//! file is refused in one line before anything is attached; a run that fails to attach leaves
//! old outputs as they were; CSV and interval log reach the file at every interval's end.
use std::{
    ffi::CString,
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use clap::Parser as _;
use rmap_common::{HIST_BUCKETS, HistKey, PageType, WalkEvent, hist_bucket};
use rmap_user::{cli::Cli, procs::Process, trace_loop::sink::Sink};

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("rmap-outputs-{name}-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        Self(d)
    }
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        fs::remove_dir_all(&self.0).unwrap();
    }
}

fn rmap_trace(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rmap-trace"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every output option, given a symbolic link, a FIFO, a directory, a device or a kernel
/// interface's file: exit 2 with one error line, and the link's target untouched.
#[test]
fn refuses_links_and_special_files() {
    let d = Dir::new("refuse");
    let target = d.file("target");
    fs::write(&target, "kept").unwrap();
    let link = d.file("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let fifo = d.file("fifo");
    let c = CString::new(s(&fifo)).unwrap();
    // SAFETY: `c` is a NUL-terminated path that lives for the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let nodir = d.file("no/such/dir.json");
    let cases: &[(&Path, &str)] = &[
        (&link, "is a symbolic link"),
        (&fifo, "is a FIFO, not a regular file"),
        (&d.0, "is a directory, not a regular file"),
        (Path::new("/dev/null"), "is a device, not a regular file"),
        (&nodir, "its directory does not exist"),
        (
            Path::new("/proc/sys/kernel/core_pattern"),
            "is on procfs, a kernel interface",
        ),
        (
            Path::new("/sys/kernel/mm/ksm/run"),
            "is on sysfs, a kernel interface",
        ),
        (Path::new("/proc/self/mem"), "is on procfs, a kernel interface"),
    ];
    for (path, says) in cases {
        let p = s(path);
        for args in [
            &["--attach-only", "--json", p][..],
            &["--attach-only", "--csv", p],
            &["--attach-only", "--hlog", p],
            &["--attach-only", "--plot", p],
            &["--json", p],
            &["probe", "--json", p],
            &["plot", "x.hlog", "-o", p],
        ] {
            let (code, stderr) = rmap_trace(args);
            assert_eq!(code, Some(2), "{args:?}: {stderr}");
            let first = stderr.lines().next().unwrap_or("");
            assert!(
                first.starts_with("error: invalid value") && first.contains(says),
                "{args:?}: {stderr}"
            );
        }
    }
    assert_eq!(fs::read_to_string(&target).unwrap(), "kept");
}

/// `--attach-only` cannot attach on this host (no attach mode works on the build host, nor
/// without root): the old outputs must come out of the failed run as they went in.
#[test]
fn failed_attach_leaves_old_outputs() {
    let d = Dir::new("attach");
    let files = ["old.json", "old.csv", "old.hlog", "old.svg"].map(|n| d.file(n));
    for f in &files {
        fs::write(f, format!("old contents of {}", f.display())).unwrap();
    }
    let (code, stderr) = rmap_trace(&[
        "--attach-only",
        "--duration",
        "1",
        "--json",
        s(&files[0]),
        "--csv",
        s(&files[1]),
        "--hlog",
        s(&files[2]),
        "--plot",
        s(&files[3]),
    ]);
    assert_eq!(
        code,
        Some(1),
        "the run attached here; this test needs a failed attach: {stderr}"
    );
    for f in &files {
        assert_eq!(
            fs::read_to_string(f).unwrap(),
            format!("old contents of {}", f.display()),
            "{stderr}"
        );
    }
    let left: Vec<_> = fs::read_dir(&d.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), files.len(), "{left:?}");
}

/// After each interval's end the CSV lines and the interval's histograms are in the files,
/// before the run ends.
#[test]
fn csv_and_hlog_reach_the_file_every_interval() {
    let d = Dir::new("flush");
    let (csv, hlog) = (d.file("walks.csv"), d.file("walks.hlog"));
    let cli = Cli::try_parse_from([
        "rmap-trace",
        "--attach-only",
        "--csv",
        s(&csv),
        "--hlog",
        s(&hlog),
    ])
    .unwrap();
    let mut sink = Sink::with_files(cli.trace.hlog.as_deref(), cli.trace.csv.as_deref(), false).unwrap();
    for interval in 1..=2 {
        sink.record(
            &WalkEvent {
                page_type: PageType::Ksm as u32,
                duration_ns: 1_000_000,
                ..Default::default()
            },
            "migrate",
            Process::named("java"),
        );
        // What the trace loop reads from the kernel's histograms at each interval's end
        // (cumulative): the interval log's latencies come from there, not from records.
        let mut buckets = vec![0u64; HIST_BUCKETS];
        buckets[hist_bucket(1_000_000) as usize] = interval as u64;
        let key = HistKey {
            rmap_one: 0,
            page_type: PageType::Ksm as u32,
            _pad: 0,
        };
        sink.set_latency(vec![(key, buckets)], |_| "migrate".to_string())
            .unwrap();
        sink.end_interval();
        let lines = fs::read_to_string(&csv).unwrap().lines().count();
        assert_eq!(lines, 1 + interval, "header and one line per walk so far");
        // The interval log is written by its own thread: wait for it, boundedly.
        let since = Instant::now();
        let histograms = loop {
            let n = fs::read_to_string(&hlog)
                .unwrap()
                .lines()
                .filter(|l| l.starts_with("Tag=ksm,"))
                .count();
            if n >= interval || since.elapsed() > Duration::from_secs(10) {
                break n;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(histograms, interval, "one histogram line per ended interval");
    }
    sink.finish(None).unwrap();
}
