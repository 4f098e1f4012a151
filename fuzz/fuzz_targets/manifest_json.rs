//! The base manifest parser: no panic, and an accepted manifest round-trips
//! (see `src/manifest_json.rs`, shared with the regression test).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|json: &[u8]| {
    ostree_finalize_fuzz::manifest_json::check(json);
});
