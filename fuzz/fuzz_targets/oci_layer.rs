//! The OCI layer reader: layers (tar, plain or gzip or zstd, with
//! whiteouts, opaque markers, hardlinks, symlinks, PAX headers, `../` and
//! absolute names) merged over a small base layer, as `lint` reads an
//! image. Must return `Ok` or `Err` without panicking, and every path of
//! the merged tree must stay inside the image. The input format and the
//! checks are in `src/oci_layer.rs`, shared with the regression test.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ostree_finalize_fuzz::oci_layer::check(data);
});
