//! The `path_roundtrip` target: for every byte string `x`,
//! `decode(encode(x)) == x`, and `encode` reports UTF-8 exactly when `x`
//! is UTF-8. `decode` must never panic, whatever string it is given.
//!
//! Shared like [`crate::tmpfiles_escape`]: `tests/fuzz_regressions.rs`
//! includes this file with `#[path]`. It uses nothing but `std` and
//! `ostree_finalize`.

use ostree_finalize::path::{decode, encode};

/// Check the round trip and the UTF-8 flag for `raw`.
pub fn check(raw: &[u8]) {
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
}
