//! The `tmpfiles_escape` target: what `layout::tmpfiles` writes must mean
//! to systemd-tmpfiles exactly what it was asked to write.
//!
//! This file is shared: the fuzz crate has it as `tmpfiles_escape`, and
//! `tests/fuzz_regressions.rs` includes it with `#[path]`, so the fuzzer
//! and the regression test check the same property with the same model.
//! It uses nothing but `std` and `ostree_finalize`.
//!
//! The model ([`parse_line`]) is how systemd 252 (Debian 12, RHEL 9's
//! generation) reads a tmpfiles.d line, checked against the real
//! `systemd-tmpfiles --root=DIR --create` on this project's test machine:
//!
//! - the line is cut at `\n`, `\r` or NUL and stripped of ASCII whitespace
//!   (space, tab, `\n`, `\r`; nothing else); empty lines and lines starting
//!   with `#` are skipped;
//! - the first six columns (type, path, mode, user, group, age) are split
//!   on that whitespace and unquoted: `"…"` and `'…'` keep whitespace, a
//!   backslash takes the next byte literally (inside quotes too), and an
//!   unbalanced quote or a trailing backslash rejects the line. They are
//!   *not* C-unescaped (`\x41` is `x41`);
//! - the path column then has its `%` specifiers expanded (`%%` is `%`, a
//!   lone trailing `%` stays, anything else is a value this model does
//!   not know and rejects), must be absolute, and is simplified (`//`,
//!   `/./` and a trailing `/` dropped); the user, group, mode and age
//!   columns are taken as they are (no specifiers: `%u` is a user named
//!   `%u`), `-` or an empty field meaning "unset";
//! - the argument is the rest of the line after the whitespace that
//!   follows the sixth column. `-` (as written, before unescaping) or
//!   nothing means "unset", and a `L` or `C` line then uses
//!   `/usr/share/factory/PATH`. Otherwise, for `L` and `C`, it is
//!   C-unescaped *first* and has its specifiers expanded *second*, so
//!   `\x25n` is the specifier `%n`, not the text `%n`;
//! - a path or argument longer than 4095 bytes (`PATH_MAX - 1`) after
//!   expansion fails with `ENAMETOOLONG`, which makes systemd-tmpfiles
//!   skip *every* line of the file, not only that one.
//!
//! The target's input: the first byte picks a mode. `0`, `1`, `2` build a
//! [`Line::Dir`], [`Line::Symlink`] or [`Line::Copy`] from the rest (two
//! bytes of mode, then the path, the user or target or source, and the
//! group, separated by NUL bytes), render it, and check the round trip;
//! `3` feeds the rest, as one line of text, to the crate's own readers
//! ([`tmpfiles::declared_paths`], [`tmpfiles::parse_generated`]) and checks
//! that `declared_paths` finds the path systemd would.

use std::collections::BTreeSet;

use ostree_finalize::layout::tmpfiles::{self, Line};

/// The longest path or argument systemd-tmpfiles 252 accepts, after
/// specifier expansion: `PATH_MAX - 1`.
pub const MAX_FIELD: usize = 4095;

/// systemd's `WHITESPACE`.
const WHITESPACE: &[u8] = b" \t\n\r";

/// One line as systemd 252 reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The type column, modifiers included (`d`, `L+`, …).
    pub action: Vec<u8>,
    /// The path column, unquoted and with its specifiers expanded, before
    /// the absolute check and simplification (see [`Item::path`]).
    pub raw_path: Vec<u8>,
    /// The mode column, `None` when unset.
    pub mode: Option<Vec<u8>>,
    /// The user column, `None` when unset.
    pub user: Option<Vec<u8>>,
    /// The group column, `None` when unset.
    pub group: Option<Vec<u8>>,
    /// The age column, `None` when unset.
    pub age: Option<Vec<u8>>,
    /// The argument; for `L` and `C` C-unescaped and expanded. `None` when
    /// unset.
    pub argument: Option<Vec<u8>>,
}

impl Item {
    /// The path systemd acts on: [`Item::raw_path`] simplified.
    pub fn path(&self) -> Vec<u8> {
        simplify(&self.raw_path)
    }
}

/// systemd's `path_simplify`: no `//`, no `.` component, no trailing `/`
/// (`..` is kept). `path` is absolute.
pub fn simplify(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    for part in path.split(|&b| b == b'/') {
        if part.is_empty() || part == b"." {
            continue;
        }
        out.push(b'/');
        out.extend_from_slice(part);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// The lines of a file as systemd 252 reads them: one result per line that
/// is not empty or a comment.
pub fn parse_file(text: &[u8]) -> Vec<Result<Item, String>> {
    text.split(|&b| matches!(b, b'\n' | b'\r' | 0))
        .map(strip)
        .filter(|l| !l.is_empty() && l[0] != b'#')
        .map(parse_line)
        .collect()
}

fn strip(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s
        && WHITESPACE.contains(first)
    {
        s = rest;
    }
    while let [rest @ .., last] = s
        && WHITESPACE.contains(last)
    {
        s = rest;
    }
    s
}

/// Parse one line (already cut at line ends; stripped here).
pub fn parse_line(line: &[u8]) -> Result<Item, String> {
    let mut rest = strip(line);
    let mut words: Vec<Vec<u8>> = Vec::new();
    while words.len() < 6 {
        match extract_word(&mut rest)? {
            Some(w) => words.push(w),
            None => break,
        }
    }
    if words.len() < 2 {
        return Err("syntax error: no path column".into());
    }
    let action = words[0].clone();
    check_action(&action)?;
    let raw_path = specifiers(&words[1])?;
    if raw_path.len() > MAX_FIELD {
        return Err("path longer than PATH_MAX - 1 (the whole file is skipped)".into());
    }
    if !raw_path.starts_with(b"/") {
        return Err("path not absolute".into());
    }
    let column = |i: usize| {
        words
            .get(i)
            .filter(|w| !w.is_empty() && w.as_slice() != b"-")
            .cloned()
    };
    let arg = strip(rest);
    let argument = if arg.is_empty() || arg == b"-" {
        None
    } else if matches!(action[0], b'L' | b'C') {
        let expanded = specifiers(&cunescape(arg)?)?;
        if expanded.len() > MAX_FIELD {
            return Err("argument longer than PATH_MAX - 1 (the whole file is skipped)".into());
        }
        Some(expanded)
    } else {
        Some(arg.to_vec())
    };
    Ok(Item {
        action,
        raw_path,
        mode: column(2),
        user: column(3),
        group: column(4),
        age: column(5),
        argument,
    })
}

/// The type letters and modifiers systemd 252 knows; anything else makes
/// it ignore the line.
fn check_action(action: &[u8]) -> Result<(), String> {
    let known = b"fFwdDevqQpLcbCxXrRzZtThHaAm";
    let modifiers = b"+!-=~^";
    match action.split_first() {
        Some((t, mods)) if known.contains(t) && mods.iter().all(|m| modifiers.contains(m)) => {
            Ok(())
        }
        _ => Err(format!(
            "unknown command type {:?}",
            String::from_utf8_lossy(action)
        )),
    }
}

/// systemd's `extract_first_word(…, WHITESPACE, EXTRACT_UNQUOTE)`.
fn extract_word(p: &mut &[u8]) -> Result<Option<Vec<u8>>, String> {
    let s = *p;
    let mut i = 0;
    while i < s.len() && WHITESPACE.contains(&s[i]) {
        i += 1;
    }
    if i == s.len() {
        *p = &s[i..];
        return Ok(None);
    }
    let mut word = Vec::new();
    let mut quote: Option<u8> = None;
    while i < s.len() {
        let c = s[i];
        match quote {
            None if WHITESPACE.contains(&c) => break,
            _ if c == b'\\' => {
                i += 1;
                let Some(&next) = s.get(i) else {
                    return Err("trailing backslash".into());
                };
                word.push(next);
            }
            Some(q) if c == q => quote = None,
            None if c == b'"' || c == b'\'' => quote = Some(c),
            _ => word.push(c),
        }
        i += 1;
    }
    if quote.is_some() {
        return Err("unbalanced quotes".into());
    }
    *p = &s[i..];
    Ok(Some(word))
}

/// systemd's `specifier_printf`, knowing only `%%`.
fn specifiers(s: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut it = s.iter();
    while let Some(&c) = it.next() {
        if c != b'%' {
            out.push(c);
            continue;
        }
        match it.next() {
            None | Some(b'%') => out.push(b'%'),
            Some(&x) => return Err(format!("specifier %{}", x as char)),
        }
    }
    Ok(out)
}

fn hex(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

/// systemd's `cunescape(…, 0, …)`.
fn cunescape(s: &[u8]) -> Result<Vec<u8>, String> {
    let bad = |what: &str| Err(format!("cannot unescape: {what}"));
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'\\' {
            out.push(s[i]);
            i += 1;
            continue;
        }
        let Some(&e) = s.get(i + 1) else {
            return bad("trailing backslash");
        };
        i += 2;
        let simple = match e {
            b'a' => Some(7),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(11),
            b'\\' | b'"' | b'\'' => Some(e),
            b's' => Some(b' '),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            continue;
        }
        match e {
            b'x' => {
                let v = s
                    .get(i..i + 2)
                    .and_then(|h| Some(hex(h[0])? << 4 | hex(h[1])?));
                match v {
                    Some(0) | None => return bad("\\x"),
                    Some(v) => out.push(v as u8),
                }
                i += 2;
            }
            b'u' | b'U' => {
                let n = if e == b'u' { 4 } else { 8 };
                let v = s
                    .get(i..i + n)
                    .and_then(|h| h.iter().try_fold(0u32, |acc, &d| Some(acc << 4 | hex(d)?)));
                match v.filter(|&v| v != 0).and_then(char::from_u32) {
                    Some(c) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    None => return bad("\\u"),
                }
                i += n;
            }
            b'0'..=b'7' => {
                let v = s.get(i - 1..i + 2).and_then(|o| {
                    o.iter().try_fold(0u32, |acc, &d| {
                        (b'0'..=b'7')
                            .contains(&d)
                            .then(|| acc << 3 | u32::from(d - b'0'))
                    })
                });
                match v {
                    Some(v) if v != 0 && v <= 0xff => out.push(v as u8),
                    _ => return bad("octal"),
                }
                i += 2;
            }
            _ => return bad("unknown escape"),
        }
    }
    Ok(out)
}

/// The target's check, for any input.
pub fn check(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        3 => check_reader(rest),
        kind => check_writer(kind, rest),
    }
}

/// Build a line from the input: two bytes of mode, then NUL-separated
/// path, second field (user, target or source) and group.
pub fn line_from(kind: u8, rest: &[u8]) -> Line {
    let (mode, rest) = match rest {
        [a, b, rest @ ..] => (u32::from(u16::from_le_bytes([*a, *b])) & 0o7777, rest),
        _ => (0o755, rest),
    };
    let mut fields = rest.splitn(3, |&b| b == 0);
    let path = fields.next().unwrap_or_default().to_vec();
    let second = fields.next().unwrap_or_default();
    let third = fields.next().unwrap_or_default();
    match kind {
        0 => Line::Dir {
            path,
            mode,
            user: String::from_utf8_lossy(second).into_owned(),
            group: String::from_utf8_lossy(third).into_owned(),
        },
        1 => Line::Symlink {
            path,
            target: second.to_vec(),
        },
        _ => Line::Copy {
            path,
            source: second.to_vec(),
        },
    }
}

/// What the writer writes, systemd reads back as the same line; and so
/// does the crate's own reader.
fn check_writer(kind: u8, rest: &[u8]) {
    let line = line_from(kind, rest);
    let Some(text) = line.render() else {
        return; // Refusing a name is allowed.
    };
    assert!(
        !text.contains(['\n', '\r', '\0']),
        "{line:?} rendered as more than one line: {text:?}"
    );
    let item = parse_line(text.as_bytes())
        .unwrap_or_else(|e| panic!("systemd 252 rejects {text:?} (from {line:?}): {e}"));
    assert_eq!(
        item.raw_path,
        line.path(),
        "path column of {text:?} (from {line:?})"
    );
    assert_eq!(
        item.path(),
        line.path(),
        "systemd simplifies the path of {text:?}"
    );
    match &line {
        Line::Dir {
            mode, user, group, ..
        } => {
            assert_eq!(item.action, b"d", "{text:?}");
            let read = item
                .mode
                .as_deref()
                .and_then(|m| u32::from_str_radix(std::str::from_utf8(m).ok()?, 8).ok());
            assert_eq!(read, Some(*mode), "mode column of {text:?}");
            assert_eq!(
                item.user.as_deref(),
                Some(user.as_bytes()),
                "user column of {text:?}"
            );
            assert_eq!(
                item.group.as_deref(),
                Some(group.as_bytes()),
                "group column of {text:?}"
            );
            assert_eq!(item.argument, None, "{text:?}");
        }
        Line::Symlink { target: arg, .. } | Line::Copy { source: arg, .. } => {
            let action: &[u8] = if matches!(line, Line::Symlink { .. }) {
                b"L"
            } else {
                b"C"
            };
            assert_eq!(item.action, action, "{text:?}");
            assert_eq!(
                item.argument.as_deref(),
                Some(arg.as_slice()),
                "argument of {text:?}"
            );
        }
    }
    // The whole generated file: one line for systemd, and the crate's own
    // reader (used on a rerun) gets the line back.
    let file = tmpfiles::render_file(&BTreeSet::from([line.clone()]));
    let items = parse_file(file.as_bytes());
    assert!(
        items.len() == 1 && items[0].as_ref() == Ok(&item),
        "the file {file:?} reads as {items:?}"
    );
    assert_eq!(
        tmpfiles::parse_generated(&file),
        std::slice::from_ref(&line),
        "our reader on {file:?}"
    );
    assert_eq!(
        tmpfiles::declared_paths(&file),
        BTreeSet::from([line.path().to_vec()]),
        "declared paths of {file:?}"
    );
}

/// The crate's readers never panic, and where systemd accepts a line,
/// `declared_paths` finds the path column systemd reads.
fn check_reader(rest: &[u8]) {
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let declared = tmpfiles::declared_paths(text);
    let _ = tmpfiles::parse_generated(text);
    if text.contains(['\n', '\r', '\0']) {
        return;
    }
    let stripped = strip(text.as_bytes());
    if stripped.is_empty() || stripped[0] == b'#' {
        return;
    }
    if let Ok(item) = parse_line(text.as_bytes()) {
        assert_eq!(
            declared,
            BTreeSet::from([item.raw_path.clone()]),
            "declared_paths({text:?}); systemd reads {item:?}"
        );
    }
}
