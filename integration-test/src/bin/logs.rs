//! The interval-log reading bench's host part (`cargo xtask bench logs` runs it in release
//! mode, next to a release `rmap-trace`): writes the logs of docs/benchmarks.md's capacity
//! figures (a day-long one of `--mib` MiB: 1-s intervals of ksm/anon/file histograms of
//! rmap-trace's shape, each with some 1,500 distinct latencies; one histogram claiming a 4 GiB
//! payload; 40 tags of the widest histograms the format allows), then runs `rmap-trace report`
//! on each and prints its exit status, wall and CPU time and peak RSS. `logs [--mib N] [--dir
//! DIR]`.
//!
//! A child's peak RSS counts the memory of the process it was forked from (the kernel keeps the
//! larger of its RSS before and after exec): each `report` is therefore started by a fresh,
//! small copy of this program (`logs --measure BIN LOG`), which prints the figures.
use std::{
    fmt::Write as _,
    fs,
    io::{BufWriter, Write as _},
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use hdrhistogram::{
    Histogram,
    serialization::{V2DeflateSerializer, interval_log::IntervalLogWriterBuilder},
};
use rmap_user::stats::MAX_NS;

const HEADER: &str = "#[Histogram log format version 1.3]\n#[StartTime: 1764547200.000 (seconds since epoch)]\n\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n";
/// Distinct histograms the day-long log cycles through.
const DISTINCT: usize = 300;

fn parse() -> anyhow::Result<(u64, PathBuf)> {
    let (mut mib, mut dir) = (1024, PathBuf::from("target/bench-logs"));
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next().with_context(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--mib" => mib = value.parse().with_context(|| format!("--mib {value}"))?,
            "--dir" => dir = value.into(),
            other => bail!("unknown argument {other} (usage: logs [--mib N] [--dir DIR])"),
        }
    }
    if !(1..=16_384).contains(&mib) {
        bail!("--mib {mib}: 1 to 16384");
    }
    Ok((mib, dir))
}

/// `DISTINCT` interval lines' ends (`length,max,histogram`), each a histogram of latencies
/// spread log-normally around 10 µs (xorshift: the same every run).
fn distinct_lines() -> anyhow::Result<Vec<String>> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut text = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let mut log = IntervalLogWriterBuilder::new()
        .with_max_value_divisor(1e6)
        .begin_log_with(&mut text, &mut serializer)?;
    for _ in 0..DISTINCT {
        let mut h = Histogram::<u64>::new_with_bounds(1, MAX_NS, 3)?;
        for _ in 0..4_000 {
            // A sum of uniforms is about normal: e^(8.5 ± 0.9 * 3) ns, 1 µs .. 100 ms.
            let z = (0..12).map(|_| (next() % 1_000) as f64 / 1_000.0).sum::<f64>() - 6.0;
            let ns = (9.2 + 1.6 * z).exp() as u64;
            h.record_n(ns.clamp(1_000, 100_000_000), 1 + next() % 50)?;
        }
        log.write_histogram(&h, Duration::ZERO, Duration::from_secs(1), None)
            .map_err(|e| anyhow::anyhow!("encoding: {e}"))?;
    }
    drop(log);
    let text = String::from_utf8(text)?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(',').map(|(_, rest)| rest.to_string()))
        .collect())
}

/// The day-long log: 1-s intervals of three page types until `bytes` are written.
fn write_day(path: &Path, bytes: u64) -> anyhow::Result<(u64, u64)> {
    let ends = distinct_lines()?;
    let mut out = BufWriter::new(fs::File::create(path)?);
    out.write_all(HEADER.as_bytes())?;
    let (mut written, mut intervals, mut line) = (HEADER.len() as u64, 0u64, String::new());
    while written < bytes {
        for tag in ["ksm", "anon", "file"] {
            line.clear();
            let end = &ends[intervals as usize % ends.len()];
            writeln!(line, "Tag={tag},{}.000,{end}", intervals / 3)?;
            out.write_all(line.as_bytes())?;
            written += line.len() as u64;
            intervals += 1;
        }
    }
    out.flush()?;
    Ok((intervals, written))
}

/// A plain V2 histogram: its header only, claiming `payload_len` bytes.
fn v2_header(sigfig: u32, high: u64, payload_len: u32) -> String {
    let mut b = Vec::new();
    for word in [0x1c84_9313_u32, payload_len, 0, sigfig] {
        b.extend(word.to_be_bytes());
    }
    for long in [1, high, 1.0f64.to_bits()] {
        b.extend(long.to_be_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// One histogram that claims a 4 GiB payload; 40 tags of the widest histograms.
fn write_crafted(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let huge = dir.join("huge.hlog");
    let claim = v2_header(3, MAX_NS, u32::MAX);
    fs::write(&huge, format!("{HEADER}Tag=ksm,0.000,1.000,0.0,{claim}\n"))?;
    let tags = dir.join("tags.hlog");
    let widest = v2_header(5, u64::MAX / 2, 0);
    let mut text = String::from("#[Histogram log format version 1.3]\n");
    for i in 0..40 {
        writeln!(text, "Tag=t{i},0.000,1.000,0.0,{widest}")?;
    }
    fs::write(&tags, text)?;
    Ok((huge, tags))
}

/// `rmap-trace report PATH`: exit status, wall time, CPU time, peak RSS (kB), error line.
fn measure(bin: &Path, path: &Path) -> anyhow::Result<(i32, Duration, Duration, i64, String)> {
    let started = Instant::now();
    let child = Command::new(bin)
        .arg("report")
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", bin.display()))?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: our child's pid; `status` and `ru` are writable for the call.
    if unsafe { libc::wait4(child.id() as i32, &raw mut status, 0, &raw mut ru) } < 0 {
        return Err(std::io::Error::last_os_error()).context("wait4");
    }
    let wall = started.elapsed();
    let mut err = String::new();
    if let Some(mut e) = child.stderr {
        std::io::Read::read_to_string(&mut e, &mut err)?;
    }
    let cpu =
        Duration::from_secs(ru.ru_utime.tv_sec as u64) + Duration::from_micros(ru.ru_utime.tv_usec as u64);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok((
        code,
        wall,
        cpu,
        ru.ru_maxrss,
        err.lines().next().unwrap_or("").to_string(),
    ))
}

/// The figures of `measure`, from a fresh small copy of this program.
fn measured(bin: &Path, path: &Path) -> anyhow::Result<(i32, f64, f64, i64, String)> {
    let out = Command::new(std::env::current_exe()?)
        .arg("--measure")
        .args([bin, path])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut f = text.splitn(5, '\t');
    let mut next = || f.next().context("a line of --measure");
    Ok((
        next()?.parse()?,
        next()?.parse()?,
        next()?.parse()?,
        next()?.parse()?,
        next()?.trim_end().to_string(),
    ))
}

fn run() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("--measure") {
        let (bin, path) = (args.next().context("BIN")?, args.next().context("LOG")?);
        let (code, wall, cpu, rss, err) = measure(Path::new(&bin), Path::new(&path))?;
        println!(
            "{code}\t{}\t{}\t{rss}\t{err}",
            wall.as_secs_f64(),
            cpu.as_secs_f64()
        );
        return Ok(());
    }
    let (mib, dir) = parse()?;
    fs::create_dir_all(&dir)?;
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name("rmap-trace");
    let day = dir.join("day.hlog");
    let (intervals, bytes) = write_day(&day, mib << 20)?;
    let (huge, tags) = write_crafted(&dir)?;
    println!("  log                                   bytes  exit      wall   CPU (user)  peak RSS");
    for (name, path) in [
        (format!("day-long, {intervals} intervals"), &day),
        ("4 GiB claimed".into(), &huge),
        ("40 widest tags".into(), &tags),
    ] {
        let size = if *path == day {
            bytes
        } else {
            fs::metadata(path)?.len()
        };
        let (code, wall, cpu, rss, err) = measured(&bin, path)?;
        println!("  {name:<32} {size:>10} {code:>5} {wall:>8.2} s {cpu:>8.2} s {rss:>7} kB  {err}");
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("logs: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
