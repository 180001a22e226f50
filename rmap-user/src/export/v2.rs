//! HdrHistogram's V2 encoding (plain or zlib-compressed, as interval logs carry it), decoded as
//! untrusted input and added straight into a running total ([`Tally`]). The header is checked
//! before anything is allocated or inflated beyond it: at most [`MAX_SIGFIG`] significant
//! digits, a range within 1..=[`MAX_NS`], a payload no longer than that range's counts can
//! take. The crate's own deserializer allocates whatever length a header claims and builds a
//! whole histogram per interval; here each count is added to the total's counts as it is read,
//! so that reading a log costs time in its length and memory in its number of tags only.
use flate2::{Decompress, FlushDecompress, Status};
use hdrhistogram::Histogram;

use crate::stats::MAX_NS;

/// Significant digits of the finest histogram read (rmap-trace writes 3).
pub const MAX_SIGFIG: u8 = 3;

/// The cookies of a V2 histogram and of a compressed one (8-byte words).
const V2_COOKIE: u32 = 0x1c84_9313;
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9314;
/// Cookie, payload length, normalizing offset, digits, lowest, highest, int-to-double ratio.
const HEADER: usize = 40;
/// A count is at most 9 bytes of LEB128.
const MAX_VARINT: usize = 9;
/// Histogram shapes kept (each a table of its counts' values).
const MAX_LAYOUTS: usize = 8;

/// One histogram shape, with the value of each of its counts.
struct Layout {
    low: u64,
    high: u64,
    sigfig: u8,
    values: Vec<u64>,
}

impl Layout {
    fn new(low: u64, high: u64, sigfig: u8) -> Result<Self, String> {
        let h = Histogram::<u64>::new_with_bounds(low, high, sigfig)
            .map_err(|e| format!("histogram bounds {low}..{high}, {sigfig} digits: {e:?}"))?;
        let values: Vec<u64> = h
            .iter_all()
            .map(|v| h.lowest_equivalent(v.value_iterated_to()))
            .collect();
        debug_assert_eq!(values.len(), h.distinct_values());
        Ok(Self {
            low,
            high,
            sigfig,
            values,
        })
    }
}

/// The parameters of one decoded header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub low: u64,
    pub high: u64,
    pub sigfig: u8,
}

impl Shape {
    /// An empty histogram of this shape.
    ///
    /// # Panics
    /// Never for a shape that [`Decoder::header`] returned: it made a histogram of it.
    pub fn histogram(self) -> Histogram<u64> {
        Histogram::new_with_bounds(self.low, self.high, self.sigfig)
            .expect("the bounds were checked when the header was read")
    }
}

/// The counts of histograms added up, in the shape of the first one; those of another shape
/// are recorded value by value in `other`.
pub struct Tally {
    layout: usize,
    counts: Vec<u64>,
    other: Option<Histogram<u64>>,
    shape: Shape,
}

/// Decodes histograms one after another, reusing its buffers.
pub struct Decoder {
    inflater: Decompress,
    inflated: Vec<u8>,
    inflated_len: usize,
    layouts: Vec<Layout>,
    /// The layout and payload range of the last header read.
    current: Option<(usize, std::ops::Range<usize>)>,
    compressed: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Self {
            inflater: Decompress::new(true),
            inflated: Vec::new(),
            inflated_len: 0,
            layouts: Vec::new(),
            current: None,
            compressed: false,
        }
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The longest payload any accepted header may announce.
fn max_payload() -> usize {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        Histogram::<u64>::new_with_bounds(1, MAX_NS, MAX_SIGFIG)
            .map_or(0, |h| h.distinct_values() * MAX_VARINT)
    })
}

impl Decoder {
    /// Reads the header of the encoded histogram `raw` (inflating a compressed one, never
    /// beyond what a valid payload can be) and checks it; returns its shape.
    pub fn header(&mut self, raw: &[u8]) -> Result<Shape, String> {
        self.current = None;
        if raw.len() < 8 {
            return Err(format!("{} bytes, shorter than any histogram", raw.len()));
        }
        self.compressed = match be_u32(raw, 0) {
            V2_COOKIE => false,
            V2_COMPRESSED_COOKIE => true,
            c => return Err(format!("cookie {c:#010x} is not a V2 histogram's")),
        };
        if self.compressed {
            let len = be_u32(raw, 4) as usize;
            if len != raw.len() - 8 {
                return Err(format!(
                    "{len} compressed bytes announced, {} present",
                    raw.len() - 8
                ));
            }
            self.inflated_len = self.inflate(&raw[8..])?;
        }
        let bytes = if self.compressed {
            &self.inflated[..self.inflated_len]
        } else {
            raw
        };
        let (shape, payload_len) = check_header(bytes)?;
        let present = bytes.len().saturating_sub(HEADER);
        let layout = self.layout(shape)?;
        let counts = self.layouts[layout].values.len();
        if payload_len > counts * MAX_VARINT {
            return Err(format!(
                "a payload of {payload_len} bytes announced, where {counts} counts take at most {}",
                counts * MAX_VARINT
            ));
        }
        if present != payload_len {
            return Err(format!(
                "a payload of {payload_len} bytes announced, {present} present"
            ));
        }
        self.current = Some((layout, HEADER..HEADER + payload_len));
        Ok(shape)
    }

    /// Inflates `z` into `inflated` (sized once, for the largest valid histogram), never
    /// beyond what a valid histogram can be; returns the length inflated.
    fn inflate(&mut self, z: &[u8]) -> Result<usize, String> {
        let limit = HEADER + max_payload() + 1;
        if self.inflated.len() < limit {
            self.inflated.resize(limit, 0);
        }
        self.inflater.reset(true);
        let status = self
            .inflater
            .decompress(z, &mut self.inflated[..limit], FlushDecompress::Finish)
            .map_err(|e| format!("inflating: {e}"))?;
        let n = self.inflater.total_out() as usize;
        match status {
            Status::StreamEnd => Ok(n),
            _ if n >= limit => Err(format!("inflates to more than {} bytes", limit - 1)),
            _ => Err("the compressed bytes end before the histogram".into()),
        }
    }

    /// An empty total in the shape of the histogram whose header was read last.
    pub fn tally(&self, shape: Shape) -> Result<Tally, String> {
        let (layout, _) = self.current.clone().ok_or("no header read")?;
        Ok(Tally {
            layout,
            counts: vec![0; self.layouts[layout].values.len()],
            other: None,
            shape,
        })
    }

    /// The histogram of all that was added to `tally`.
    pub fn histogram(&self, tally: &Tally) -> Result<Histogram<u64>, String> {
        let mut h = tally.shape.histogram();
        let values = &self.layouts[tally.layout].values;
        for (&value, &n) in values.iter().zip(&tally.counts).filter(|(_, n)| **n > 0) {
            h.record_n(value, n)
                .map_err(|e| format!("cannot merge {value}: {e:?}"))?;
        }
        if let Some(other) = &tally.other {
            h.add(other).map_err(|e| format!("cannot merge: {e:?}"))?;
        }
        Ok(h)
    }

    /// The index of the table of `shape`, made on first use.
    fn layout(&mut self, shape: Shape) -> Result<usize, String> {
        if let Some(i) = self
            .layouts
            .iter()
            .position(|l| (l.low, l.high, l.sigfig) == (shape.low, shape.high, shape.sigfig))
        {
            return Ok(i);
        }
        if self.layouts.len() >= MAX_LAYOUTS {
            return Err(format!("more than {MAX_LAYOUTS} histogram shapes in one log"));
        }
        self.layouts
            .push(Layout::new(shape.low, shape.high, shape.sigfig)?);
        Ok(self.layouts.len() - 1)
    }

    /// Adds the counts of the histogram whose header was read last (from the same `raw`) to
    /// `total`.
    pub fn add_to(&self, raw: &[u8], total: &mut Tally) -> Result<(), String> {
        let (layout, range) = self.current.clone().ok_or("no header read")?;
        let payload = if self.compressed {
            &self.inflated[range]
        } else {
            &raw[range]
        };
        let values = &self.layouts[layout].values;
        let same = layout == total.layout;
        let mut index = 0usize;
        let mut at = 0;
        while at < payload.len() {
            let (zz, used) = varint(&payload[at..]).ok_or("a count cut off")?;
            at += used;
            let n = ((zz >> 1) as i64) ^ -((zz & 1) as i64);
            if n < 0 {
                index = index.saturating_add(n.unsigned_abs() as usize);
                continue;
            }
            if n > 0 {
                let value = *values.get(index).ok_or("more counts than the histogram has")?;
                if same {
                    total.counts[index] = total.counts[index].saturating_add(n as u64);
                } else {
                    total
                        .other
                        .get_or_insert_with(|| total.shape.histogram())
                        .record_n(value, n as u64)
                        .map_err(|e| format!("cannot merge {value}: {e:?}"))?;
                }
            }
            index += 1;
        }
        Ok(())
    }
}

/// The shape and payload length of a V2 header, each field checked.
fn check_header(b: &[u8]) -> Result<(Shape, usize), String> {
    if b.len() < HEADER {
        return Err(format!("{} bytes, shorter than a V2 header", b.len()));
    }
    if be_u32(b, 0) != V2_COOKIE {
        return Err("the compressed histogram is not a V2 one".into());
    }
    let payload_len = be_u32(b, 4) as usize;
    if be_u32(b, 8) != 0 {
        return Err("a normalizing index offset (not supported)".into());
    }
    let sigfig = be_u32(b, 12);
    let (low, high) = (be_u64(b, 16), be_u64(b, 24));
    if be_u64(b, 32) != 1.0f64.to_bits() {
        return Err("an integer-to-double ratio other than 1 (not supported)".into());
    }
    if sigfig > u32::from(MAX_SIGFIG) {
        return Err(format!("{sigfig} significant digits, more than {MAX_SIGFIG}"));
    }
    if low == 0 || high > MAX_NS || high < low.saturating_mul(2) {
        return Err(format!(
            "the range {low}..{high}, not within 1..{MAX_NS} (the highest value tracked)"
        ));
    }
    let shape = Shape {
        low,
        high,
        sigfig: sigfig as u8,
    };
    Ok((shape, payload_len))
}

/// One LEB128 number of at most 9 bytes (the 9th carries 8 bits) and its length.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(MAX_VARINT) {
        if i == MAX_VARINT - 1 {
            return Some((v | (u64::from(byte) << 56), MAX_VARINT));
        }
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer, V2Serializer};

    use super::*;

    fn sample(seed: u64, sigfig: u8) -> Histogram<u64> {
        let mut h = Histogram::<u64>::new_with_bounds(1, MAX_NS, sigfig).unwrap();
        let mut x = seed | 1;
        for _ in 0..5_000 {
            // xorshift: values spread over every magnitude, some counts large.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = 1 + (x % 1_000_000) * (1 << (x % 20));
            h.record_n(v.min(MAX_NS), 1 + x % 3).unwrap();
        }
        h
    }

    /// Every histogram decodes to exactly what the crate's deserializer gives, plain or
    /// compressed, alone or added to others.
    #[test]
    fn decodes_like_the_crate() {
        let mut d = Decoder::default();
        let mut total: Option<Tally> = None;
        let mut expected = Histogram::<u64>::new_with_bounds(1, MAX_NS, 3).unwrap();
        for (seed, sigfig) in [(1, 3), (2, 2), (3, 3), (4, 1)] {
            let h = sample(seed, sigfig);
            let mut raw = Vec::new();
            if seed % 2 == 0 {
                V2Serializer::new().serialize(&h, &mut raw).unwrap();
            } else {
                V2DeflateSerializer::new().serialize(&h, &mut raw).unwrap();
            }
            let shape = d.header(&raw).unwrap();
            assert_eq!((shape.low, shape.high, shape.sigfig), (1, MAX_NS, sigfig));
            let t = match &mut total {
                Some(t) => t,
                None => total.insert(d.tally(shape).unwrap()),
            };
            d.add_to(&raw, t).unwrap();
            let total = d.histogram(t).unwrap();
            let back: Histogram<u64> = Deserializer::new().deserialize(&mut raw.as_slice()).unwrap();
            expected.add(&back).unwrap();
            let counts = |h: &Histogram<u64>| -> Vec<(u64, u64)> {
                h.iter_recorded()
                    .map(|v| (v.value_iterated_to(), v.count_at_value()))
                    .collect()
            };
            assert_eq!(counts(&total), counts(&expected));
            assert_eq!(
                (total.len(), total.max(), total.min()),
                (expected.len(), expected.max(), expected.min())
            );
        }
    }

    fn header(sigfig: u32, low: u64, high: u64, payload_len: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(V2_COOKIE.to_be_bytes());
        b.extend(payload_len.to_be_bytes());
        b.extend(0u32.to_be_bytes());
        b.extend(sigfig.to_be_bytes());
        b.extend(low.to_be_bytes());
        b.extend(high.to_be_bytes());
        b.extend(1.0f64.to_bits().to_be_bytes());
        b
    }

    /// A header that claims a huge payload, too many digits or too wide a range is refused
    /// before anything is allocated for it.
    #[test]
    fn refuses_headers_beyond_the_limits() {
        let mut d = Decoder::default();
        for (raw, says) in [
            (
                header(3, 1, MAX_NS, u32::MAX),
                "a payload of 4294967295 bytes announced",
            ),
            (header(5, 1, MAX_NS, 0), "5 significant digits"),
            (header(3, 1, u64::MAX / 2, 0), "not within 1.."),
            (header(3, 0, MAX_NS, 0), "not within 1.."),
            (
                header(3, 1, MAX_NS, 10),
                "a payload of 10 bytes announced, 0 present",
            ),
            (vec![0, 0, 0, 0, 0, 0, 0, 0], "not a V2 histogram"),
        ] {
            let e = d.header(&raw).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
        // A counts array longer than the histogram: one zero run past the end, then a count.
        let mut raw = header(3, 1, MAX_NS, 4);
        // -40,000 zigzagged (79,999) in LEB128, then a count of 1.
        raw.extend([0xff, 0xf0, 0x04, 0x02]);
        let shape = d.header(&raw).unwrap();
        let e = d.add_to(&raw, &mut d.tally(shape).unwrap()).unwrap_err();
        assert_eq!(e, "more counts than the histogram has");
    }
}
