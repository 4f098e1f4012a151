//! The Butane (YAML) and Ignition (JSON) config readers of `apply`: every
//! input is read as both, with a `--files-dir` holding one file for
//! Butane's `local`. Must return `Ok` or `Err`, never panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ostree_finalize::apply::resource::Local;
use ostree_finalize::apply::{butane, ignition};
use ostree_finalize_fuzz::ScratchRoot;

fuzz_target!(|data: &[u8]| {
    static FILES: OnceLock<ScratchRoot> = OnceLock::new();
    let files = FILES.get_or_init(|| {
        let files = ScratchRoot::new("logo.txt");
        files.write(b"  /\\_/\\\n ( o.o )  app\n");
        files
    });
    let local = Local {
        dir: Some(files.dir()),
    };
    if let Ok(config) = butane::parse(data, "config.bu", local) {
        let _ = config.without_locations();
    }
    if let Ok(config) = ignition::parse(data, "config.ign", local) {
        let _ = config.without_locations();
    }
});
