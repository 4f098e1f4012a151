//! The `policy_yaml` target: `policy::parse` returns `Ok` or `Err`, never
//! panics, and an error says where each problem is.
//!
//! This file is shared: the fuzz crate has it as `policy_yaml`, and
//! `tests/fuzz_regressions.rs` includes it with `#[path]`. It uses only
//! `std` and `ostree_finalize`.

/// The name the policy is given in messages.
pub const ORIGIN: &str = "policy.yaml";

/// The target's check, for any input (text that is not UTF-8 is refused
/// before `policy::parse`, by `policy::load`).
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = ostree_finalize::policy::parse(text, ORIGIN) {
        check_error(text, &e.to_string());
    }
}

/// An error is `ORIGIN: invalid policy (N error[s]):` and then N lines
/// `ORIGIN:LINE:COLUMN: message`, each location inside the text. Lines are
/// counted as YAML (libyaml) counts them, where a lone `\r`, U+0085,
/// U+2028 and U+2029 also end a line, and the line after the last one
/// counts: YAML reports the end of input there (libyaml ends a last line
/// that has no line break before it reports the end).
pub fn check_error(text: &str, msg: &str) {
    let mut lines = msg.split("\n  ");
    let head = lines.next().unwrap_or_default();
    let count = head
        .strip_prefix(&format!("{ORIGIN}: invalid policy ("))
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("unexpected error heading: {msg:?}"));
    let errors: Vec<&str> = lines.collect();
    assert_eq!(errors.len(), count, "error count of {msg:?}");
    let breaks = text
        .replace("\r\n", "\n")
        .matches(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'])
        .count();
    let last_line = breaks.max(text.lines().count()) + 2;
    for e in errors {
        let loc = e
            .strip_prefix(&format!("{ORIGIN}:"))
            .and_then(|r| {
                let mut it = r.splitn(3, ':');
                let line = it.next()?.parse::<usize>().ok()?;
                let col = it.next()?.parse::<usize>().ok()?;
                it.next()?.strip_prefix(' ')?;
                Some((line, col))
            })
            .unwrap_or_else(|| panic!("error without a location: {e:?} in {msg:?}"));
        assert!(
            (1..=last_line).contains(&loc.0) && loc.1 >= 1,
            "location {loc:?} past the end of the text ({} line breaks): {e:?}",
            last_line - 2
        );
    }
}
