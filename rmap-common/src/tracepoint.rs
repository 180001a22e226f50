//! The classic `rmap` tracepoints' records: where their fields are, and their page-type string.

use crate::event::PageType;

/// Field offsets of the classic `rmap` tracepoint records, parsed from
/// `events/rmap/<event>/format` in userspace. An offset of `u32::MAX` means "absent".
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TpLayout {
    /// `folio_addr` of `rmap_walk_start` / `rmap_walk_end` (v5–v7).
    pub pair_folio: u32,
    /// `rwc_addr` of the pair.
    pub pair_rwc: u32,
    /// Offset of the pair's `__data_loc char[] page_type` word.
    pub pair_page_type: u32,
    /// `locked` of the pair.
    pub pair_locked: u32,
    /// `folio_addr` of `rmap_walk` (v4).
    pub v4_folio: u32,
    /// `rwc_addr` of v4.
    pub v4_rwc: u32,
    /// `duration_ns` of v4.
    pub v4_duration: u32,
    /// Offset of v4's `__data_loc char[] page_type` word.
    pub v4_page_type: u32,
    /// `locked` of v4.
    pub v4_locked: u32,
    /// Explicit padding, always 0.
    #[expect(
        clippy::pub_underscore_fields,
        reason = "public so that both sides can build the struct"
    )]
    pub _pad: u32,
}

impl TpLayout {
    /// Offset of a field this kernel's format file lacks.
    pub const ABSENT: u32 = u32::MAX;
    /// Every field absent: the starting point before the format files are read.
    pub const EMPTY: TpLayout = TpLayout {
        pair_folio: Self::ABSENT,
        pair_rwc: Self::ABSENT,
        pair_page_type: Self::ABSENT,
        pair_locked: Self::ABSENT,
        v4_folio: Self::ABSENT,
        v4_rwc: Self::ABSENT,
        v4_duration: Self::ABSENT,
        v4_page_type: Self::ABSENT,
        v4_locked: Self::ABSENT,
        _pad: 0,
    };
}

const _: () = assert!(core::mem::size_of::<TpLayout>() == 40);

/// Classifies the `page_type` string of the tracepoints ("ksm", "anon", "file").
pub fn page_type_from_str(s: &[u8]) -> PageType {
    match s {
        [b'k', b's', b'm', ..] => PageType::Ksm,
        [b'a', b'n', b'o', b'n', ..] => PageType::Anon,
        [b'f', b'i', b'l', b'e', ..] => PageType::File,
        _ => PageType::Unknown,
    }
}
