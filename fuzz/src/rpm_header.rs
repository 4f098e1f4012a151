//! The `rpm_header` target: one `Packages.blob` value of an rpmdb, as
//! `rpmdb::read` hands it to the parser. Must return `Ok` or `Err`, never
//! panic, hang or allocate without bound.
//!
//! The parser first checks that the blob is exactly as long as its `il` and
//! `dl` fields say, so any mutation that inserts or erases bytes dies
//! there. Each input whose `dl` is off is therefore parsed twice: as it is,
//! and with `dl` fixed up to the real length, which lets the fuzzer grow
//! and shrink strings and add index entries.
//!
//! Shared like [`crate::tmpfiles_escape`]: `tests/fuzz_regressions.rs`
//! includes this file with `#[path]`. It uses nothing but `std` and
//! `ostree_finalize`.

use ostree_finalize::rpmdb;

/// Parse `blob`, and again with its `dl` fixed (see the module docs).
pub fn check(blob: &[u8]) {
    let _ = rpmdb::parse_header_blob(blob);
    if let Some(fixed) = with_fixed_dl(blob) {
        let _ = rpmdb::parse_header_blob(&fixed);
    }
}

/// `blob` (an rpm header blob: `il`, `dl`, 16-byte index entries, data) with
/// its `dl` field set to the length the blob really has, or `None` when
/// `dl` is already right or no `dl` fits (the blob is shorter than its
/// index).
pub fn with_fixed_dl(blob: &[u8]) -> Option<Vec<u8>> {
    let il = u32::from_be_bytes(blob.get(0..4)?.try_into().ok()?);
    let data_start = usize::try_from(il).ok()?.checked_mul(16)?.checked_add(8)?;
    let dl = u32::try_from(blob.len().checked_sub(data_start)?).ok()?;
    if blob[4..8] == dl.to_be_bytes() {
        return None;
    }
    let mut fixed = blob.to_vec();
    fixed[4..8].copy_from_slice(&dl.to_be_bytes());
    Some(fixed)
}
