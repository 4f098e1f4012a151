//! The base manifest parser (`Manifest::from_json`). Must return `Ok` or
//! `Err`, never panic; and a manifest it accepts must survive being written
//! back (`to_json`) and read again, unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ostree_finalize::manifest::Manifest;

fuzz_target!(|json: &[u8]| {
    let Ok(first) = Manifest::from_json(json, "fuzz.json") else {
        return;
    };
    let written = first.to_json().expect("writing an accepted manifest");
    let second = match Manifest::from_json(&written, "rewritten.json") {
        Ok(m) => m,
        Err(e) => panic!("an accepted manifest does not read back: {e:#}"),
    };
    assert_eq!(first.version, second.version);
    assert_eq!(first.generator, second.generator);
    assert_eq!(first.rpmdb, second.rpmdb);
    assert_eq!(first.packages, second.packages);
    assert_eq!(first.entries, second.entries);
});
