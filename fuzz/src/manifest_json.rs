//! The `manifest_json` target: `Manifest::from_json` returns `Ok` or
//! `Err`, never panics; and a manifest it accepts survives being written
//! back (`to_json`) and read again, unchanged.
//!
//! Shared like [`crate::tmpfiles_escape`]: `tests/fuzz_regressions.rs`
//! includes this file with `#[path]`. It uses nothing but `std` and
//! `ostree_finalize`.

use ostree_finalize::manifest::Manifest;

/// Parse `json`; if accepted, write it back and compare.
pub fn check(json: &[u8]) {
    let Ok(first) = Manifest::from_json(json, "fuzz.json") else {
        return;
    };
    let written = first.to_json().expect("writing an accepted manifest");
    let second = Manifest::from_json(&written, "rewritten.json")
        .unwrap_or_else(|e| panic!("an accepted manifest does not read back: {e:#}"));
    assert_eq!(first.version, second.version);
    assert_eq!(first.generator, second.generator);
    assert_eq!(first.rpmdb, second.rpmdb);
    assert_eq!(first.packages, second.packages);
    assert_eq!(first.entries, second.entries);
}
