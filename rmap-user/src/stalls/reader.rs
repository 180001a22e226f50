//! The stall ring buffer, read without waiting each time the walk ring is (the kernel submits
//! stall records without a wakeup: the session's drain timer reads them).
use aya::maps::{MapData, RingBuf};
use rmap_common::stall::StallEvent;

use super::agg::StallAgg;
use crate::events::{BadRecord, read_record};

/// A stall record.
pub fn decode(bytes: &[u8]) -> Result<StallEvent, BadRecord> {
    read_record(bytes)
}

pub struct StallReader {
    ring: RingBuf<MapData>,
    pub agg: StallAgg,
    /// Records read.
    pub records: u64,
    /// Records that could not be decoded, skipped.
    pub decode_errors: u64,
}

impl StallReader {
    pub fn new(ring: RingBuf<MapData>) -> Self {
        Self {
            ring,
            agg: StallAgg::default(),
            records: 0,
            decode_errors: 0,
        }
    }

    /// Everything in the ring buffer now into the aggregate; the records read.
    pub fn drain(&mut self) -> u64 {
        let before = self.records;
        while let Some(item) = self.ring.next() {
            match decode(&item) {
                Ok(ev) => {
                    drop(item);
                    self.agg.record(&ev);
                    self.records += 1;
                }
                Err(e) => {
                    self.decode_errors += 1;
                    log::warn!("{e}");
                }
            }
        }
        self.records - before
    }
}

#[cfg(test)]
mod tests {
    use rmap_common::stall::STALL_EVENT_SIZE;

    use super::*;

    #[test]
    fn decodes_unaligned_records_and_rejects_short_ones() {
        let ev = StallEvent {
            wait_ns: 1234,
            pid: 7,
            ..StallEvent::default()
        };
        let mut buf = vec![0u8; STALL_EVENT_SIZE + 1];
        // SAFETY: the buffer holds the record's bytes from offset 1.
        unsafe { buf.as_mut_ptr().add(1).cast::<StallEvent>().write_unaligned(ev) };
        assert_eq!(decode(&buf[1..]), Ok(ev));
        assert_eq!(
            decode(&buf[..10]),
            Err(BadRecord {
                got: 10,
                want: STALL_EVENT_SIZE
            })
        );
    }
}
