//! tmpfiles.d escaping: a line `layout::tmpfiles` renders must read back,
//! with systemd 252's quoting, C-unescaping and specifier rules, as the
//! very path, owner and argument it was asked to write (or the name must
//! be refused); the crate's own readers must agree and never panic. The
//! model of systemd and the input format are in `src/tmpfiles_escape.rs`,
//! shared with the regression test.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ostree_finalize_fuzz::tmpfiles_escape::check(data);
});
