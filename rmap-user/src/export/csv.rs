//! `--csv FILE`: one line per walk event, with a header; buffered in whole lines and flushed
//! at the end of every interval, so that a crash loses at most the current interval.
use std::{
    fs::File,
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use rmap_common::{FLAG_KTHREAD, FLAG_OFFCPU_VALID, PageType, Source, WalkEvent};

use crate::{
    events,
    export::output,
    owners::{
        self,
        names::{OwnerNames, PodLabels},
    },
};

pub const HEADER: &str = "start_ns,duration_ns,offcpu_ns,page_type,purpose,locked,pid,tgid,comm,process,cpu,folio,rwc,source,kthread,cgroup_id,cgroup,namespace,pod,container,stall_waits";

/// Bytes buffered before they are written: lines are formatted straight into the buffer, and
/// written whole, in writes of this size (a write costs microseconds; a line, 150 bytes).
const BUFFER: usize = 64 * 1024;

pub struct CsvWriter {
    path: PathBuf,
    out: File,
    /// Whole lines not yet written (`buf[..len]`), then room for the next: grown, never
    /// shrunk, so that a line needs no allocation and no clearing.
    buf: Vec<u8>,
    len: usize,
    /// The first write error; later writes are skipped and `finish` reports it.
    failed: Option<std::io::Error>,
    /// Whether waits were counted (`--stalls`): the `stall_waits` column is empty otherwise,
    /// where 0 would claim that nobody waited.
    stalls: bool,
}

/// Room a line takes at most besides its text fields: ten decimal numbers of up to 20 digits,
/// two hex ones of 18, the page type's and the source's names, 20 commas and the newline.
const NUMBERS_MAX: usize = 10 * 20 + 2 * 18 + 2 * 16 + 21;

/// Room for a line with these text fields (each may be quoted, its quotes doubled).
fn room(cx: &Context<'_>, comm: &str) -> usize {
    let pod = cx
        .pod
        .map_or(0, |p| p.namespace.len() + p.pod.len() + p.container.len());
    let text = cx.purpose.len() + cx.process.len() + cx.cgroup.map_or(0, str::len) + comm.len();
    NUMBERS_MAX + 2 * (text + pod) + 7 * 2
}

/// A line written into room reserved for it (see [`room`]): each field is formatted in place,
/// without a capacity check or a copy from a scratch buffer.
struct Cursor<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Cursor<'_> {
    fn byte(&mut self, b: u8) {
        self.buf[self.at] = b;
        self.at += 1;
    }

    fn bytes(&mut self, s: &[u8]) {
        self.buf[self.at..self.at + s.len()].copy_from_slice(s);
        self.at += s.len();
    }

    /// A field that may hold commas or quotes (comm names are arbitrary bytes), quoted when
    /// it must be.
    fn quoted(&mut self, s: &str) {
        let s = s.as_bytes();
        if !s.iter().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
            self.bytes(s);
            return;
        }
        self.byte(b'"');
        for &b in s {
            if b == b'"' {
                self.byte(b'"');
            }
            self.byte(b);
        }
        self.byte(b'"');
    }

    /// `n` in decimal: a digit alone, or itoa's (four digits a step into a stack buffer) copied.
    /// Not `write!`, which costs about 30 ns a number (a line has ten).
    fn dec(&mut self, n: u64) {
        if n < 10 {
            self.byte(b'0' + n as u8);
        } else {
            self.bytes(itoa::Buffer::new().format(n).as_bytes());
        }
    }

    /// `n` as `{:#x}` does: `0x`, lower-case digits, no leading zeros.
    fn hex(&mut self, n: u64) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let nibbles = (64 - n.leading_zeros()).div_ceil(4).max(1) as usize;
        self.bytes(b"0x");
        for k in 0..nibbles {
            self.buf[self.at + nibbles - 1 - k] = DIGITS[((n >> (4 * k)) & 0xf) as usize];
        }
        self.at += nibbles;
    }
}

/// What a line says beside the event itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context<'a> {
    /// The walk's purpose (its `rmap_one` by name).
    pub purpose: &'a str,
    /// The walking process's name.
    pub process: &'a str,
    /// The owner cgroup's path, when known.
    pub cgroup: Option<&'a str>,
    /// The owner's pod, when its cgroup is a pod's.
    pub pod: Option<&'a PodLabels>,
    /// Whether `--stalls` counted the waits on the walk.
    pub stalls: bool,
}

/// Writes one CSV line and its newline at the start of `buf`, which holds at least
/// [`room`] bytes; returns its length. `offcpu_ns` is empty where it was not measured;
/// `cgroup_id` is empty when the folio's owner is unknown, `cgroup` when its path is;
/// `namespace`, `pod` and `container` unless the owner is a pod's (`PodLabels`);
/// `stall_waits` (the last) without `--stalls`.
fn format_line(buf: &mut [u8], ev: &WalkEvent, cx: Context<'_>, comm: &str) -> usize {
    let mut c = Cursor { buf, at: 0 };
    c.dec(ev.start_ns);
    c.byte(b',');
    c.dec(ev.duration_ns);
    c.byte(b',');
    if ev.flags & FLAG_OFFCPU_VALID != 0 {
        c.dec(ev.offcpu_ns);
    }
    c.byte(b',');
    c.bytes(PageType::from_u32(ev.page_type).name().as_bytes());
    c.byte(b',');
    c.quoted(cx.purpose);
    for n in [ev.locked, ev.pid, ev.tgid] {
        c.byte(b',');
        c.dec(u64::from(n));
    }
    c.byte(b',');
    c.quoted(comm);
    c.byte(b',');
    c.quoted(cx.process);
    c.byte(b',');
    c.dec(u64::from(ev.cpu));
    c.byte(b',');
    c.hex(ev.folio);
    c.byte(b',');
    c.hex(ev.rwc);
    c.byte(b',');
    c.bytes(
        Source::from_u32(ev.source)
            .map_or("unknown", Source::name)
            .as_bytes(),
    );
    c.byte(b',');
    c.dec(u64::from(ev.flags & FLAG_KTHREAD != 0));
    c.byte(b',');
    let owner = owners::owner_of(ev);
    if owner != owners::NOT_CHARGED {
        c.dec(owner);
    }
    c.byte(b',');
    c.quoted(cx.cgroup.unwrap_or(""));
    if let Some(p) = cx.pod {
        for field in [&p.namespace, &p.pod, &p.container] {
            c.byte(b',');
            c.quoted(field);
        }
    } else {
        c.bytes(b",,,");
    }
    c.byte(b',');
    if cx.stalls {
        c.dec(u64::from(ev.stall_waits));
    }
    c.byte(b'\n');
    c.at
}

/// Appends one CSV line and its newline to `out`, as the CSV file has it.
pub fn write_line(out: &mut Vec<u8>, ev: &WalkEvent, cx: Context<'_>) {
    let comm = events::text(&ev.comm);
    let start = out.len();
    out.resize(start + room(&cx, &comm), 0);
    let n = format_line(&mut out[start..], ev, cx, &comm);
    out.truncate(start + n);
}

/// One CSV line (no newline), as [`write_line`] writes it.
pub fn line(ev: &WalkEvent, cx: Context<'_>) -> String {
    let mut v = Vec::new();
    write_line(&mut v, ev, cx);
    v.pop();
    String::from_utf8_lossy(&v).into_owned()
}

impl CsvWriter {
    /// A CSV file at `path`, its `stall_waits` column filled when `stalls`.
    pub fn create(path: &Path, stalls: bool) -> anyhow::Result<Self> {
        let mut out = output::create(path)?;
        out.write_all(format!("{HEADER}\n").as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            out,
            buf: vec![0; BUFFER + NUMBERS_MAX],
            len: 0,
            failed: None,
            stalls,
        })
    }

    /// One walk's line; `names` names its owner.
    pub fn write(&mut self, ev: &WalkEvent, purpose: &str, process: &str, names: &mut OwnerNames) {
        // Formatted straight into the buffer (no allocation per walk), which is written when it
        // holds BUFFER bytes: the file only ever gets whole lines.
        let owner = owners::owner_of(ev);
        let (cgroup, pod) = if owner == owners::NOT_CHARGED {
            (None, None)
        } else {
            names.describe(owner)
        };
        let cx = Context {
            purpose,
            process,
            cgroup,
            pod,
            stalls: self.stalls,
        };
        let comm = events::text(&ev.comm);
        let need = self.len + room(&cx, &comm);
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
        self.len += format_line(&mut self.buf[self.len..], ev, cx, &comm);
        if self.len >= BUFFER {
            self.flush();
        }
    }

    /// Writes what is buffered (the end of an interval); an error is kept for `finish`, and
    /// after one, lines are dropped.
    pub fn flush(&mut self) {
        if self.failed.is_none()
            && let Err(e) = self.out.write_all(&self.buf[..self.len])
        {
            self.failed = Some(e);
        }
        self.len = 0;
    }

    pub fn finish(mut self) -> anyhow::Result<()> {
        self.flush();
        match self.failed.take() {
            Some(e) => Err(e).with_context(|| format!("writing {}", self.path.display())),
            None => Ok(()),
        }
    }
}

impl Drop for CsvWriter {
    /// Writes what is buffered when the run ends without `finish` (an error on the way out).
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file only ever holds whole lines: written in buffer-sized parts, the rest at an
    /// interval's flush, at `finish`, or when the writer is dropped.
    #[test]
    fn whole_lines_reach_the_file() {
        let dir = std::env::temp_dir().join(format!("rmap-csv-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("w.csv");
        let lines = |p: &Path| {
            let text = std::fs::read_to_string(p).expect("readable");
            assert!(
                text.ends_with('\n'),
                "a partial line: {:?}",
                &text[text.len().saturating_sub(40)..]
            );
            text.lines().count() - 1
        };
        let ev = WalkEvent {
            start_ns: 1_234_567_890_123,
            ..Default::default()
        };
        let mut w = CsvWriter::create(&path, false).expect("created");
        let mut names = OwnerNames::default();
        let n = 3 * BUFFER / line(&ev, Context::default()).len();
        for _ in 0..n {
            w.write(&ev, "migrate", "java", &mut names);
        }
        let written = lines(&path);
        assert!(written > 0 && written < n, "{written} of {n}");
        w.flush();
        assert_eq!(lines(&path), n);
        w.write(&ev, "migrate", "java", &mut names);
        drop(w);
        assert_eq!(lines(&path), n + 1);
        std::fs::remove_dir_all(&dir).expect("removed");
    }

    #[test]
    fn one_line_per_event_matching_the_header() {
        let mut ev = WalkEvent {
            start_ns: 5,
            duration_ns: 1_500,
            offcpu_ns: 100,
            flags: FLAG_OFFCPU_VALID,
            page_type: PageType::Ksm as u32,
            locked: 0,
            pid: 7,
            tgid: 6,
            folio: 0xffea,
            source: Source::Fentry as u32,
            ..Default::default()
        };
        ev.comm[..4].copy_from_slice(b"a,\"b");
        let cx = |purpose, process, cgroup, stalls| Context {
            purpose,
            process,
            cgroup,
            pod: None,
            stalls,
        };
        ev.stall_waits = 3;
        let l = line(&ev, cx("migrate", "java", None, false));
        assert_eq!(
            l,
            "5,1500,100,ksm,migrate,0,7,6,\"a,\"\"b\",java,0,0xffea,0x0,fentry,0,,,,,,"
        );
        let l = line(&ev, cx("migrate", "java", None, true));
        assert!(l.ends_with(",fentry,0,,,,,,3"), "{l}");
        ev.flags = FLAG_KTHREAD | rmap_common::FLAG_OWNER_VALID;
        ev.cgroup_id = 4242;
        let l = line(
            &ev,
            cx("migrate", "kswapd0", Some("/system.slice/java.service"), false),
        );
        assert!(l.starts_with("5,1500,,ksm,"), "{l}");
        assert!(
            l.ends_with(",fentry,1,4242,/system.slice/java.service,,,,"),
            "{l}"
        );
        let pod = PodLabels {
            namespace: "shop".into(),
            pod: "web-0".into(),
            container: "app".into(),
            pod_uid: String::new(),
            container_id: String::new(),
            qos: "burstable",
        };
        let l = line(
            &ev,
            Context {
                pod: Some(&pod),
                ..cx("migrate", "java", Some("/kubepods.slice/x"), true)
            },
        );
        assert!(l.ends_with(",/kubepods.slice/x,shop,web-0,app,3"), "{l}");
        // The hand-written numbers are those of `format!`, at their extremes too.
        let extremes = [0, 1, 9, 10, 15, 16, 99, 100, 101, 255, 999, 1000, 4096, 99_999];
        let large = [
            9_999_999_999_999_999_999,
            10_000_000_000_000_000_000,
            0xffff_ea00_0010_0000,
            u64::MAX,
        ];
        for n in extremes.into_iter().chain(large) {
            ev.start_ns = n;
            ev.folio = n;
            let l = line(&ev, cx("p", "q", None, false));
            assert!(l.starts_with(&format!("{n},")), "{l}");
            assert!(l.contains(&format!(",{n:#x},")), "{l}");
        }
        assert_eq!(HEADER.split(',').count(), 21);
        let plain = WalkEvent::default();
        assert_eq!(line(&plain, cx("p", "q", None, false)).split(',').count(), 21);
    }

    /// Text fields of any length, each of whose bytes needs doubling, fit their room.
    #[test]
    fn long_quoted_fields_fit() {
        let long = "\"".repeat(5000);
        let pod = PodLabels {
            namespace: long.clone(),
            pod: long.clone(),
            container: long.clone(),
            pod_uid: String::new(),
            container_id: String::new(),
            qos: "burstable",
        };
        let cx = Context {
            purpose: &long,
            process: &long,
            cgroup: Some(&long),
            pod: Some(&pod),
            stalls: false,
        };
        let mut ev = WalkEvent::default();
        ev.comm.fill(b'"');
        let l = line(&ev, cx);
        assert_eq!(l.matches(&format!("\"{}\"", "\"".repeat(10_000))).count(), 6);
        assert!(
            l.contains(&format!(",\"{}\",", "\"".repeat(2 * ev.comm.len()))),
            "{l}"
        );
    }
}
