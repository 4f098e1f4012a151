//! The rpm header parser: one `Packages.blob` value of an rpmdb, as
//! `rpmdb::read` hands it to the parser. Must return `Ok` or `Err`, never
//! panic, hang or allocate without bound.
//!
//! The parser first checks that the blob is exactly as long as its `il` and
//! `dl` fields say, so any mutation that inserts or erases bytes dies
//! there. Each input whose `dl` is off is therefore parsed twice: as it is,
//! and with `dl` fixed up to the real length, which lets the fuzzer grow
//! and shrink strings and add index entries.
//!
//! The parser runs the `rpm` crate under `catch_unwind`, but libFuzzer's
//! panic hook aborts first, so a panic the bounds checks in
//! `src/rpmdb/header.rs` missed is still reported here.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ostree_finalize_fuzz::with_fixed_dl;

fuzz_target!(|blob: &[u8]| {
    let _ = ostree_finalize::rpmdb::parse_header_blob(blob);
    if let Some(fixed) = with_fixed_dl(blob) {
        let _ = ostree_finalize::rpmdb::parse_header_blob(&fixed);
    }
});
