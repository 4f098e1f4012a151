//! Path encoding round trip (see `src/path_roundtrip.rs`, shared with the
//! regression test).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &[u8]| {
    ostree_finalize_fuzz::path_roundtrip::check(raw);
});
