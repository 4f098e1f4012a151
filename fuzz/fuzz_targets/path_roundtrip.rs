//! Path encoding: for every byte string `x`, `decode(encode(x)) == x`, and
//! `encode` reports UTF-8 exactly when `x` is UTF-8. `decode` must never
//! panic, whatever string it is given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ostree_finalize::path::{decode, encode};

fuzz_target!(|raw: &[u8]| {
    let (text, utf8) = encode(raw);
    assert_eq!(
        utf8,
        std::str::from_utf8(raw).is_ok(),
        "utf-8 flag of {raw:?}"
    );
    assert_eq!(decode(&text).as_deref(), Some(raw), "round trip of {raw:?}");
    if let Ok(s) = std::str::from_utf8(raw) {
        let _ = decode(s);
    }
});
