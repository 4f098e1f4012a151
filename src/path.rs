//! Image paths: raw file-name bytes to the strings we store and print.
//!
//! A tree may hold names that are not UTF-8 (ostree refuses them, and the
//! `non-utf8-path` check says so), so paths cannot simply be `String`s. We
//! encode them losslessly: valid UTF-8 passes through, a backslash becomes
//! `\\`, and every byte of an invalid sequence becomes `\xNN`. Base and
//! current trees are encoded the same way, so encoded strings compare and
//! sort consistently, and the manifest round-trips.

/// Encode raw bytes. Returns the string and whether the input was UTF-8.
pub fn encode(bytes: &[u8]) -> (String, bool) {
    let mut out = String::with_capacity(bytes.len());
    let mut valid = true;
    for chunk in bytes.utf8_chunks() {
        let text = chunk.valid();
        if text.contains('\\') {
            out.push_str(&text.replace('\\', "\\\\"));
        } else {
            out.push_str(text);
        }
        for b in chunk.invalid() {
            valid = false;
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    (out, valid)
}

/// Decode a string made by [`encode`] back to raw bytes.
///
/// Returns `None` for any string [`encode`] never writes: an unknown
/// escape, and also `\x41` or `\xFF` where `encode` writes `A` or `\xff`.
/// Each byte string has exactly one encoding, so two spellings can never
/// name the same file (one as a base entry, one as a change).
pub fn decode(text: &str) -> Option<Vec<u8>> {
    if !text.contains('\\') {
        // UTF-8 without a backslash is its own encoding.
        return Some(text.as_bytes().to_vec());
    }
    let out = decode_escapes(text)?;
    (encode(&out).0 == text).then_some(out)
}

/// [`decode`] without the canonical-form check.
fn decode_escapes(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let hex = text.get(i + 2..i + 4)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 4;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// The root-relative host path of an encoded absolute image path, for
/// opening through a root directory handle.
pub fn relative(encoded: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let bytes = decode(encoded)?;
    let rel = bytes.strip_prefix(b"/")?;
    let rel = if rel.is_empty() { &b"."[..] } else { rel };
    Some(std::ffi::OsString::from_vec(rel.to_vec()).into())
}

/// Join an absolute directory path and a child name.
pub fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Is `path` equal to `prefix` or beneath it? Both absolute, no trailing `/`.
pub fn is_within(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Is `path` strictly beneath `prefix`?
pub fn is_beneath(path: &str, prefix: &str) -> bool {
    path != prefix && is_within(path, prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_passes_through_and_round_trips() {
        for raw in [
            &b"usr/bin/ls"[..],
            "caf\u{e9}".as_bytes(),
            b"a\\b",
            b"\\x41",
        ] {
            let (s, ok) = encode(raw);
            assert!(ok);
            assert_eq!(decode(&s).as_deref(), Some(raw));
        }
        assert_eq!(encode(b"a\\b").0, "a\\\\b");
    }

    #[test]
    fn invalid_bytes_are_escaped_and_flagged() {
        let (s, ok) = encode(b"bad\xff\xfename");
        assert!(!ok);
        assert_eq!(s, "bad\\xff\\xfename");
        assert_eq!(decode(&s).unwrap(), b"bad\xff\xfename");
    }

    #[test]
    fn escaped_backslash_x_is_not_confused_with_a_byte_escape() {
        let (s, ok) = encode(b"\\xff");
        assert!(ok);
        assert_eq!(decode(&s).unwrap(), b"\\xff");
        assert_ne!(decode(&s).unwrap(), b"\xff");
    }

    #[test]
    fn decode_rejects_unknown_escapes() {
        assert_eq!(decode("a\\q"), None);
        assert_eq!(decode("a\\x4"), None);
    }

    #[test]
    fn decode_rejects_spellings_encode_never_writes() {
        // Each would otherwise alias a path spelled another way.
        for alias in ["\\x41", "bad\\xFF", "\\x+1", "\\xc3\\xa9", "a\\x5c"] {
            assert_eq!(decode(alias), None, "{alias}");
        }
        assert_eq!(decode("bad\\xff").as_deref(), Some(&b"bad\xff"[..]));
    }

    #[test]
    fn within_and_beneath() {
        assert!(is_within("/etc", "/etc"));
        assert!(is_within("/etc/passwd", "/etc"));
        assert!(!is_within("/etcfoo", "/etc"));
        assert!(is_beneath("/etc/a", "/etc"));
        assert!(!is_beneath("/etc", "/etc"));
        assert!(is_within("/x", "/"));
        assert_eq!(join("/", "usr"), "/usr");
        assert_eq!(join("/usr", "bin"), "/usr/bin");
    }
}
