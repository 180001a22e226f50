//! Reading interval logs back (`report`, `compare`, `plot`) as untrusted input: a regular
//! file only (a FIFO or a device is refused before it is read), read a line at a time (at most
//! [`MAX_LINE`] bytes each), each histogram's header checked and its counts added straight
//! into one histogram per tag (at most [`MAX_TAGS`]; see `v2`): time linear in the file's
//! length, memory bounded whatever the file holds. A file that is empty, of another format,
//! cut off or corrupt is one clear error.
use std::{
    collections::{BTreeMap, btree_map::Entry},
    io::{BufRead, BufReader, Read as _},
    path::Path,
};

use base64::Engine as _;
use hdrhistogram::{Histogram, serialization::interval_log};

use super::v2::{Decoder, Tally};
use crate::{
    files::{self, InputError},
    printable::printable_bytes,
};

/// The longest line read (a histogram of rmap-trace's finest shape takes about 400 kB).
pub const MAX_LINE: usize = 1 << 20;
/// The most tags (page types) one log may have.
pub const MAX_TAGS: usize = 64;

/// Why a file is not a usable interval log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The file could not be opened or read, or is not a regular file.
    #[error("{path}: {why}")]
    Open { path: String, why: InputError },
    /// The file has no bytes.
    #[error("{path}: empty file, not an HdrHistogram interval log")]
    Empty { path: String },
    /// Nothing in the file parsed as an interval log: another format.
    #[error("{path}: not an HdrHistogram interval log (line {line}: `{text}`)")]
    Foreign { path: String, line: usize, text: String },
    /// A line after a valid start that the log grammar rejects: cut off or edited.
    #[error("{path}: line {line}: malformed interval line (truncated file?)")]
    Malformed { path: String, line: usize },
    /// A line longer than any interval line.
    #[error("{path}: line {line}: longer than {MAX_LINE} bytes, not an interval log line")]
    LongLine { path: String, line: usize },
    /// An interval line whose histogram does not decode.
    #[error("{path}: line {line}: corrupt histogram ({why})")]
    Corrupt { path: String, line: usize, why: String },
    /// More tags than any log of page types has.
    #[error("{path}: line {line}: more than {MAX_TAGS} tags")]
    TooManyTags { path: String, line: usize },
    /// A valid header with no interval histogram in it.
    #[error("{path}: no interval histograms in the log")]
    NoIntervals { path: String },
}

/// A log's histograms merged per tag (untagged intervals under "").
#[derive(Debug)]
pub struct Log {
    pub path: String,
    pub tags: BTreeMap<String, Histogram<u64>>,
    pub intervals: usize,
}

/// Loads and decodes a whole log.
pub fn load(path: &Path) -> Result<Log, LogError> {
    let shown = printable_bytes(path.as_os_str().as_encoded_bytes());
    let open_err = |why| LogError::Open {
        path: shown.clone(),
        why,
    };
    let f = files::open_input(path).map_err(open_err)?;
    read(&shown, BufReader::with_capacity(1 << 16, f))
}

/// Decodes a whole log held in memory.
pub fn parse(path: &str, bytes: &[u8]) -> Result<Log, LogError> {
    read(path, bytes)
}

/// Decodes a whole log read from `input`, a line at a time.
pub fn read(path: &str, mut input: impl BufRead) -> Result<Log, LogError> {
    let mut r = Reader::new(path);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut input)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| LogError::Open {
                path: r.path.clone(),
                why: InputError::Io(e),
            })?;
        if n == 0 {
            return r.finish();
        }
        r.line += 1;
        if line.len() > MAX_LINE {
            return Err(LogError::LongLine {
                path: r.path,
                line: r.line,
            });
        }
        r.entry(&line)?;
    }
}

/// The state of one log being read.
struct Reader {
    path: String,
    /// The number of the line being read (from 1).
    line: usize,
    /// The first line was a comment or the legend.
    header: bool,
    intervals: usize,
    tags: BTreeMap<String, Tally>,
    raw: Vec<u8>,
    decoder: Decoder,
}

impl Reader {
    fn new(path: &str) -> Self {
        Self {
            path: path.to_string(),
            line: 0,
            header: false,
            intervals: 0,
            tags: BTreeMap::new(),
            raw: Vec::new(),
            decoder: Decoder::default(),
        }
    }

    /// The start of `text`, printable, for an error message.
    fn excerpt(text: &[u8]) -> String {
        let first = text.split(|&b| b == b'\n').next().unwrap_or(&[]);
        printable_bytes(first).chars().take(60).collect()
    }

    /// One line: a comment, the legend, a time stamp or an interval.
    fn entry(&mut self, text: &[u8]) -> Result<(), LogError> {
        if self.line == 1 {
            self.header = text.starts_with(b"#") || text.starts_with(b"\"StartTimestamp\"");
        }
        match interval_log::IntervalLogIterator::new(text).next() {
            None | Some(Ok(interval_log::LogEntry::StartTime(_) | interval_log::LogEntry::BaseTime(_))) => {
                Ok(())
            }
            Some(Ok(interval_log::LogEntry::Interval(h))) => {
                self.intervals += 1;
                self.interval(&h)
            }
            Some(Err(_)) if !self.header && self.intervals == 0 => Err(LogError::Foreign {
                path: self.path.clone(),
                line: self.line,
                text: Self::excerpt(text),
            }),
            Some(Err(_)) => Err(LogError::Malformed {
                path: self.path.clone(),
                line: self.line,
            }),
        }
    }

    /// Adds one interval's histogram to its tag's.
    fn interval(&mut self, h: &interval_log::IntervalLogHistogram<'_>) -> Result<(), LogError> {
        let corrupt = |why: String| LogError::Corrupt {
            path: self.path.clone(),
            line: self.line,
            why,
        };
        self.raw.clear();
        base64::engine::general_purpose::STANDARD
            .decode_vec(h.encoded_histogram(), &mut self.raw)
            .map_err(|e| corrupt(format!("base64: {e}")))?;
        let shape = self.decoder.header(&self.raw).map_err(corrupt)?;
        let tag = h.tag().map_or("", |t| t.as_str());
        if !self.tags.contains_key(tag) && self.tags.len() >= MAX_TAGS {
            return Err(LogError::TooManyTags {
                path: self.path.clone(),
                line: self.line,
            });
        }
        let total = match self.tags.entry(tag.to_string()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(self.decoder.tally(shape).map_err(corrupt)?),
        };
        self.decoder.add_to(&self.raw, total).map_err(corrupt)
    }

    fn finish(self) -> Result<Log, LogError> {
        let path = self.path;
        if self.line == 0 {
            return Err(LogError::Empty { path });
        }
        if self.intervals == 0 {
            return Err(LogError::NoIntervals { path });
        }
        let mut tags = BTreeMap::new();
        for (tag, tally) in self.tags {
            let h = self.decoder.histogram(&tally).map_err(|why| LogError::Corrupt {
                path: path.clone(),
                line: self.line,
                why,
            })?;
            tags.insert(tag, h);
        }
        Ok(Log {
            path,
            tags,
            intervals: self.intervals,
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    const HEADER: &str = "#[Histogram log format version 1.3]\n\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n";

    /// A plain V2 histogram header (no payload follows unless added).
    fn v2(sigfig: u32, high: u64, payload_len: u32) -> Vec<u8> {
        let mut b = Vec::new();
        for word in [0x1c84_9313u32, payload_len, 0, sigfig] {
            b.extend(word.to_be_bytes());
        }
        for long in [1u64, high, 1.0f64.to_bits()] {
            b.extend(long.to_be_bytes());
        }
        b
    }

    fn line(tag: &str, raw: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        format!("Tag={tag},0.000,1.000,0.0,{b64}\n")
    }

    /// Peak resident memory of this process (`VmHWM`), in kB.
    fn peak_kb() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    }

    /// A histogram that claims a 4 GiB payload is refused from its header: nothing near that
    /// is allocated.
    #[test]
    fn a_claimed_huge_payload_is_refused_from_its_header() {
        let text = format!("{HEADER}{}", line("ksm", &v2(3, crate::stats::MAX_NS, u32::MAX)));
        let before = peak_kb();
        let e = parse("huge.hlog", text.as_bytes()).unwrap_err().to_string();
        assert!(
            e.contains("line 3: corrupt histogram (a payload of 4294967295 bytes announced"),
            "{e}"
        );
        let grew = peak_kb() - before;
        assert!(grew < 64 * 1024, "peak memory grew by {grew} kB");
    }

    /// Forty tags of the largest histograms the format allows are refused (more significant
    /// digits and a wider range than rmap-trace's), and more tags than page types have
    /// are refused too; memory stays put either way.
    #[test]
    fn maximal_histograms_and_many_tags_stay_bounded() {
        let before = peak_kb();
        let mut text = HEADER.to_string();
        for i in 0..40 {
            text += &line(&format!("t{i}"), &v2(5, u64::MAX / 2, 0));
        }
        let e = parse("wide.hlog", text.as_bytes()).unwrap_err().to_string();
        assert!(
            e.contains("line 3: corrupt histogram (5 significant digits"),
            "{e}"
        );
        let mut text = HEADER.to_string();
        for i in 0..=MAX_TAGS {
            text += &line(&format!("t{i}"), &v2(3, crate::stats::MAX_NS, 0));
        }
        let e = parse("tags.hlog", text.as_bytes()).unwrap_err().to_string();
        assert!(
            e.contains(&format!("line {}: more than 64 tags", MAX_TAGS + 3)),
            "{e}"
        );
        let grew = peak_kb() - before;
        assert!(grew < 64 * 1024, "peak memory grew by {grew} kB");
    }

    /// A FIFO or a device is refused before anything is read: nothing blocks, nothing grows.
    #[test]
    fn refuses_what_is_not_a_regular_file() {
        let d = std::env::temp_dir().join(format!("rmap-read-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let fifo = d.join("log.fifo");
        files::mkfifo(&fifo);
        let e = load(&fifo).unwrap_err().to_string();
        std::fs::remove_dir_all(&d).unwrap();
        assert!(e.ends_with("log.fifo: is a FIFO, not a regular file"), "{e}");
        for dev in ["/dev/zero", "/dev/urandom"] {
            let e = load(Path::new(dev)).unwrap_err().to_string();
            assert_eq!(e, format!("{dev}: is a device, not a regular file"));
        }
    }

    /// A line longer than any interval line ends the read at that line, and control bytes of
    /// a foreign file are shown escaped.
    #[test]
    fn long_lines_and_control_bytes() {
        let mut text = HEADER.as_bytes().to_vec();
        text.extend(std::iter::repeat_n(b'A', MAX_LINE + 10));
        let e = parse("long.hlog", &text).unwrap_err().to_string();
        assert!(e.contains("line 3: longer than 1048576 bytes"), "{e}");
        let e = parse("esc.txt", b"\x1b[2J\x1b]0;owned\x07\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "esc.txt: not an HdrHistogram interval log (line 1: `\\u{1b}[2J\\u{1b}]0;owned\\u{7}`)"
        );
    }

    /// A long log (5 MB) is read in one pass: its last line's number is right after 50,000
    /// lines.
    #[test]
    fn reads_a_long_log_in_one_pass() {
        let mut h = Histogram::<u64>::new_with_bounds(1, crate::stats::MAX_NS, 3).unwrap();
        h.record_n(5_000, 3).unwrap();
        let mut raw = Vec::new();
        hdrhistogram::serialization::Serializer::serialize(
            &mut hdrhistogram::serialization::V2DeflateSerializer::new(),
            &h,
            &mut raw,
        )
        .unwrap();
        let one = line("anon", &raw);
        let mut text = HEADER.to_string();
        for _ in 0..50_000 {
            text += &one;
        }
        let log = parse("long.hlog", text.as_bytes()).unwrap();
        assert_eq!((log.intervals, log.tags["anon"].len()), (50_000, 150_000));
        text += "Tag=anon,0.0";
        let e = parse("cut.hlog", text.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("line 50003: malformed interval line"), "{e}");
    }
}
