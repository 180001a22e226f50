//! Reading interval logs back (`report`, `compare`, `plot`): every histogram decoded and merged
//! per tag. A file that is empty, of another format, cut off or corrupt is one clear error.
use std::{collections::BTreeMap, path::Path};

use base64::Engine as _;
use hdrhistogram::{
    Histogram,
    serialization::{Deserializer, interval_log},
};

/// Why a file is not a usable interval log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// The file has no bytes.
    #[error("{path}: empty file, not an HdrHistogram interval log")]
    Empty { path: String },
    /// Nothing in the file parsed as an interval log: another format.
    #[error("{path}: not an HdrHistogram interval log (line {line}: `{text}`)")]
    Foreign { path: String, line: usize, text: String },
    /// A line after a valid start that the log grammar rejects: cut off or edited.
    #[error("{path}: line {line}: malformed interval line (truncated file?)")]
    Malformed { path: String, line: usize },
    /// An interval line whose histogram does not decode.
    #[error("{path}: line {line}: corrupt histogram ({why})")]
    Corrupt { path: String, line: usize, why: String },
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

#[expect(clippy::naive_bytecount, reason = "counted once per error message")]
fn line_of(text: &[u8], offset: usize) -> usize {
    text[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Loads and decodes a whole log.
pub fn load(path: &Path) -> Result<Log, LogError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| LogError::Io {
        path: shown.clone(),
        source,
    })?;
    parse(&shown, &bytes)
}

pub fn parse(path: &str, bytes: &[u8]) -> Result<Log, LogError> {
    let path = path.to_string();
    if bytes.is_empty() {
        return Err(LogError::Empty { path });
    }
    let header = bytes.starts_with(b"#") || bytes.starts_with(b"\"StartTimestamp\"");
    let mut tags: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    let mut intervals = 0;
    let mut deserializer = Deserializer::new();
    let engine = base64::engine::general_purpose::STANDARD;
    for entry in interval_log::IntervalLogIterator::new(bytes) {
        let entry = match entry {
            Ok(e) => e,
            Err(interval_log::LogIteratorError::ParseError { offset }) => {
                let line = line_of(bytes, offset);
                if !header && intervals == 0 {
                    let rest = &bytes[offset.min(bytes.len())..];
                    let text = String::from_utf8_lossy(rest.split(|&b| b == b'\n').next().unwrap_or(&[]));
                    let text: String = text.chars().take(60).collect();
                    return Err(LogError::Foreign { path, line, text });
                }
                return Err(LogError::Malformed { path, line });
            }
        };
        let interval_log::LogEntry::Interval(h) = entry else {
            continue;
        };
        intervals += 1;
        let encoded = h.encoded_histogram();
        let offset = encoded.as_ptr() as usize - bytes.as_ptr() as usize;
        let line = line_of(bytes, offset);
        let raw = engine.decode(encoded).map_err(|e| LogError::Corrupt {
            path: path.clone(),
            line,
            why: format!("base64: {e}"),
        })?;
        let hist: Histogram<u64> =
            deserializer
                .deserialize(&mut raw.as_slice())
                .map_err(|e| LogError::Corrupt {
                    path: path.clone(),
                    line,
                    why: format!("{e:?}"),
                })?;
        let tag = h.tag().map_or(String::new(), |t| t.as_str().to_string());
        match tags.get_mut(&tag) {
            Some(total) => total.add(&hist).map_err(|e| LogError::Corrupt {
                path: path.clone(),
                line,
                why: format!("cannot merge: {e:?}"),
            })?,
            None => {
                tags.insert(tag, hist);
            }
        }
    }
    if intervals == 0 {
        if !header {
            let text: String = String::from_utf8_lossy(bytes)
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(60)
                .collect();
            return Err(LogError::Foreign { path, line: 1, text });
        }
        return Err(LogError::NoIntervals { path });
    }
    Ok(Log {
        path,
        tags,
        intervals,
    })
}
