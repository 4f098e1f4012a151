//! The Berkeley DB rpmdb reader (`rpmdb::read_bdb_bytes`): the input is a
//! whole `Packages` file, every header in it parsed. Must return `Ok` or
//! `Err`, never panic, loop or allocate more than the file allows; an
//! error names the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Err(e) = ostree_finalize::rpmdb::read_bdb_bytes(bytes, "Packages") {
        let msg = e.to_string();
        assert!(
            msg.starts_with("Packages: "),
            "error without the file name: {msg}"
        );
    }
});
