//! Decoding ring-buffer records into `WalkEvent`s (and, with `read_record`, any record type).
use rmap_common::WalkEvent;

/// A record of the wrong size (an object/userspace mismatch).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("ring buffer record of {got} bytes, expected {want}")]
pub struct BadRecord {
    pub got: usize,
    pub want: usize,
}

/// Copies a record of type `T` out: ring-buffer data is only 8-byte aligned by convention, so
/// never cast.
pub fn read_record<T: aya::Pod>(bytes: &[u8]) -> Result<T, BadRecord> {
    let want = std::mem::size_of::<T>();
    if bytes.len() < want {
        return Err(BadRecord {
            got: bytes.len(),
            want,
        });
    }
    // SAFETY: length checked; `Pod` types are plain old data valid for any bit pattern.
    Ok(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

/// A walk record.
pub fn decode(bytes: &[u8]) -> Result<WalkEvent, BadRecord> {
    read_record(bytes)
}

/// The comm as text (NUL-terminated in the kernel).
pub fn comm(ev: &WalkEvent) -> String {
    text(&ev.comm).into_owned()
}

/// The comm's bytes, up to its NUL.
pub fn comm_bytes(ev: &WalkEvent) -> &[u8] {
    until_nul(&ev.comm)
}

/// The process's name as the kernel read it (`group_leader->comm`), or the thread's comm
/// where it could not (an all-zero field): what a walk is named by until `/proc` is read.
pub fn process_comm(ev: &WalkEvent) -> &[u8; 16] {
    if ev.process[0] == 0 { &ev.comm } else { &ev.process }
}

/// A kernel `comm` (NUL-terminated, at most 16 bytes) as text, borrowed when it is UTF-8.
/// Called for every walk record: `from_utf8` first, several times faster than the lossy
/// conversion's chunking on the valid names that nearly all are.
pub fn text(b: &[u8; 16]) -> std::borrow::Cow<'_, str> {
    let b = until_nul(b);
    match std::str::from_utf8(b) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(b),
    }
}

fn until_nul(b: &[u8; 16]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rmap_common::{FLAG_OFFCPU_VALID, PageType, Source, WALK_EVENT_SIZE};

    pub fn event(ty: PageType, duration_ns: u64, rmap_one: u64) -> WalkEvent {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"java");
        WalkEvent {
            start_ns: 1_000,
            duration_ns,
            offcpu_ns: duration_ns / 4,
            folio: 0xffff_ea00_0010_0000,
            rwc: 0xffff_c900_00ab_cdef,
            rmap_one,
            pid: 4242,
            tgid: 4240,
            cpu: 1,
            page_type: ty as u32,
            locked: 0,
            source: Source::Kprobe as u32,
            flags: FLAG_OFFCPU_VALID,
            stall_waits: 0,
            comm,
            process: comm,
            cgroup_id: 0,
        }
    }

    #[test]
    fn decodes_unaligned_bytes() {
        let ev = event(PageType::Ksm, 532_041_586, 0xffff_ffff_8123_4567);
        // SAFETY: reading the bytes of a POD value.
        let raw = unsafe { std::slice::from_raw_parts((&raw const ev).cast::<u8>(), WALK_EVENT_SIZE) };
        let mut buf = [0u8; WALK_EVENT_SIZE + 1];
        buf[1..].copy_from_slice(raw);
        let got = decode(&buf[1..]).unwrap();
        assert_eq!(got, ev);
        assert_eq!(comm(&got), "java");
        assert_eq!(PageType::from_u32(got.page_type), PageType::Ksm);
        assert_eq!(
            decode(&buf[..10]),
            Err(BadRecord {
                got: 10,
                want: WALK_EVENT_SIZE
            })
        );
    }
}
