//! Reading walk records out of the `EVENTS` ring buffer: the one per-record path of every run
//! (decode, purpose, process), below the session, which reads its ring buffer with it, and the
//! loop, which reads any source of walks ([`Walks`]); the capacity bench and test read a ring
//! buffer they filled themselves while nothing was reading it ([`RingWalks`]).
use aya::maps::{MapData, RingBuf};
use rmap_common::WalkEvent;

use crate::{
    events,
    kernel::kallsyms::Purposes,
    procs::{Process, names::ProcessNames},
};

/// Where walks come from: the session's ring buffer, or a test's synthetic stream.
pub trait Walks {
    /// Returns when walks may be waiting (at once when the last slice left some behind).
    fn readable(&mut self) -> impl Future<Output = anyhow::Result<()>>;
    /// Hands the next walk, with its purpose and process name, to `f`; false when none waits.
    fn next(&mut self, f: impl FnOnce(&WalkEvent, &str, Process<'_>)) -> bool;
}

/// Most /proc lookups between two ring-buffer slices (each a few µs).
pub const LOOKUPS_PER_SLICE: usize = 64;

/// What a record is turned into a walk with.
pub struct Decoder {
    pub purposes: Purposes,
    pub processes: ProcessNames,
    /// Records of the wrong size, skipped.
    pub decode_errors: u64,
}

impl Decoder {
    pub fn new(purposes: Purposes) -> Self {
        Self {
            purposes,
            processes: ProcessNames::default(),
            decode_errors: 0,
        }
    }

    /// Hands the next decodable record of `ring` to `f` with its purpose and process; false
    /// when the ring buffer is empty. A record that cannot be decoded is counted and skipped.
    /// No allocation or system call per record: the ring buffer is read from its mapping, and
    /// names come from caches (new processes are looked up between slices).
    pub fn next(
        &mut self,
        ring: &mut RingBuf<MapData>,
        f: impl FnOnce(&WalkEvent, &str, Process<'_>),
    ) -> bool {
        loop {
            let Some(item) = ring.next() else {
                return false;
            };
            match events::decode(&item) {
                Ok(ev) => {
                    // Released before `f`, so that the producer may reuse the space at once.
                    drop(item);
                    f(&ev, self.purposes.of(ev.rmap_one), self.processes.lookup(&ev));
                    return true;
                }
                Err(e) => {
                    self.decode_errors += 1;
                    log::warn!("{e}");
                }
            }
        }
    }
}

/// A ring buffer read without waiting: what is in it now.
pub struct RingWalks {
    pub ring: RingBuf<MapData>,
    pub decoder: Decoder,
}

impl Walks for RingWalks {
    async fn readable(&mut self) -> anyhow::Result<()> {
        self.decoder.processes.resolve(LOOKUPS_PER_SLICE);
        Ok(())
    }

    fn next(&mut self, f: impl FnOnce(&WalkEvent, &str, Process<'_>)) -> bool {
        self.decoder.next(&mut self.ring, f)
    }
}
