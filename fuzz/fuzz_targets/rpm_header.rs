//! The rpm header parser; the property and why each input is parsed twice
//! are in `src/rpm_header.rs`, shared with the regression test.
//!
//! The parser runs the `rpm` crate under `catch_unwind`, but libFuzzer's
//! panic hook aborts first, so a panic the bounds checks in
//! `src/rpmdb/header.rs` missed is still reported here.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|blob: &[u8]| {
    ostree_finalize_fuzz::rpm_header::check(blob);
});
