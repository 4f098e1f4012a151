//! ostree's GVariant metadata objects: every input is parsed as a commit,
//! a dirtree, a dirmeta and an xattr list. Must return `Ok` or `Err`,
//! never panic; what is accepted must re-encode consistently. The checks
//! are in `src/ostree_objects.rs`, shared with the regression test.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ostree_finalize_fuzz::ostree_objects::check(data);
});
