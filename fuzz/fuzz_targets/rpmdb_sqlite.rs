//! The sqlite rpmdb reader: the input is `rpmdb.sqlite` at rpm's default
//! location in an otherwise empty tree, read with `rpmdb::read`. Must return
//! `Ok` or `Err` without panicking, and leave the tree byte-identical.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ostree_finalize_fuzz::ScratchRoot;

fuzz_target!(|db: &[u8]| {
    static ROOT: OnceLock<ScratchRoot> = OnceLock::new();
    let root = ROOT.get_or_init(|| ScratchRoot::new("usr/lib/sysimage/rpm/rpmdb.sqlite"));
    root.write(db);
    let _ = ostree_finalize::rpmdb::read(root.dir());
    root.assert_untouched(db);
});
