//! `--csv FILE`: one line per walk event, with a header; buffered in whole lines and flushed
//! at the end of every interval, so that a crash loses at most the current interval.
use std::{
    fs::File,
    io::{BufWriter, Write as _},
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

pub struct CsvWriter {
    path: PathBuf,
    out: BufWriter<File>,
    /// The line being formatted, kept from one walk to the next.
    line: Vec<u8>,
    /// The first write error; later writes are skipped and `finish` reports it.
    failed: Option<std::io::Error>,
    /// Whether waits were counted (`--stalls`): the `stall_waits` column is empty otherwise,
    /// where 0 would claim that nobody waited.
    stalls: bool,
}

/// Appends a field that may hold commas or quotes (comm names are arbitrary bytes), quoted
/// when it must be; no allocation either way.
fn quoted(out: &mut Vec<u8>, s: &str) {
    if !s.contains([',', '"', '\n', '\r']) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    out.push(b'"');
    for (i, part) in s.split('"').enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\"\"");
        }
        out.extend_from_slice(part.as_bytes());
    }
    out.push(b'"');
}

/// Appends `n` in decimal. By hand: `write!` costs about 30 ns a number, and a line has
/// twelve (the capacity bench measured 415 ns a line with it).
fn dec(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends `n` as `{:#x}` does: `0x`, lower-case digits, no leading zeros.
fn hex(out: &mut Vec<u8>, n: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"0x");
    let nibbles = (64 - n.leading_zeros()).div_ceil(4).max(1);
    for k in (0..nibbles).rev() {
        out.push(DIGITS[((n >> (4 * k)) & 0xf) as usize]);
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

/// Appends one CSV line and its newline to `out`: called per walk, so nothing is allocated
/// (`out` is reused). `offcpu_ns` is empty where it was not measured; `cgroup_id` is empty when
/// the folio's owner is unknown, `cgroup` when its path is; `namespace`, `pod` and `container`
/// unless the owner is a pod's (`PodLabels`); `stall_waits` (the last) without `--stalls`.
pub fn write_line(out: &mut Vec<u8>, ev: &WalkEvent, cx: Context<'_>) {
    let Context {
        purpose,
        process,
        cgroup,
        pod,
        stalls,
    } = cx;
    dec(out, ev.start_ns);
    out.push(b',');
    dec(out, ev.duration_ns);
    out.push(b',');
    if ev.flags & FLAG_OFFCPU_VALID != 0 {
        dec(out, ev.offcpu_ns);
    }
    out.push(b',');
    out.extend_from_slice(PageType::from_u32(ev.page_type).name().as_bytes());
    out.push(b',');
    quoted(out, purpose);
    for n in [ev.locked, ev.pid, ev.tgid] {
        out.push(b',');
        dec(out, u64::from(n));
    }
    out.push(b',');
    quoted(out, &String::from_utf8_lossy(events::comm_bytes(ev)));
    out.push(b',');
    quoted(out, process);
    out.push(b',');
    dec(out, u64::from(ev.cpu));
    out.push(b',');
    hex(out, ev.folio);
    out.push(b',');
    hex(out, ev.rwc);
    out.push(b',');
    out.extend_from_slice(
        Source::from_u32(ev.source)
            .map_or("unknown", Source::name)
            .as_bytes(),
    );
    out.push(b',');
    dec(out, u64::from(ev.flags & FLAG_KTHREAD != 0));
    out.push(b',');
    let owner = owners::owner_of(ev);
    if owner != owners::NOT_CHARGED {
        dec(out, owner);
    }
    out.push(b',');
    quoted(out, cgroup.unwrap_or(""));
    if let Some(p) = pod {
        for field in [&p.namespace, &p.pod, &p.container] {
            out.push(b',');
            quoted(out, field);
        }
    } else {
        out.extend_from_slice(b",,,");
    }
    out.push(b',');
    if stalls {
        dec(out, u64::from(ev.stall_waits));
    }
    out.push(b'\n');
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
        let mut out = BufWriter::new(output::create(path)?);
        out.write_all(format!("{HEADER}\n").as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            out,
            line: Vec::with_capacity(256),
            failed: None,
            stalls,
        })
    }

    /// One walk's line; `names` names its owner.
    pub fn write(&mut self, ev: &WalkEvent, purpose: &str, process: &str, names: &mut OwnerNames) {
        // Formatted into a reused buffer (no allocation per walk), then one write per line:
        // the BufWriter then only ever holds, and flushes, whole lines.
        let owner = owners::owner_of(ev);
        let (cgroup, pod) = if owner == owners::NOT_CHARGED {
            (None, None)
        } else {
            names.describe(owner)
        };
        self.line.clear();
        let cx = Context {
            purpose,
            process,
            cgroup,
            pod,
            stalls: self.stalls,
        };
        write_line(&mut self.line, ev, cx);
        if self.failed.is_none()
            && let Err(e) = self.out.write_all(&self.line)
        {
            self.failed = Some(e);
        }
    }

    /// Writes what is buffered (the end of an interval); an error is kept for `finish`.
    pub fn flush(&mut self) {
        if self.failed.is_none()
            && let Err(e) = self.out.flush()
        {
            self.failed = Some(e);
        }
    }

    pub fn finish(mut self) -> anyhow::Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e).with_context(|| format!("writing {}", self.path.display()));
        }
        self.out
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for n in [0, 1, 9, 10, 15, 16, 255, 4096, 0xffff_ea00_0010_0000, u64::MAX] {
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
}
