//! The YAML policy parser (`policy::parse`). Must return `Ok` or `Err`,
//! never panic; an error is the file's name, a count, and one
//! `FILE:LINE:COLUMN: message` per problem, pointing into the file. The
//! check is in `src/policy_yaml.rs`, shared with the regression test.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ostree_finalize_fuzz::policy_yaml::check(data);
});
