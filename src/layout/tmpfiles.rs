//! tmpfiles.d lines: formatting with the escaping systemd requires, and
//! reading which paths existing tmpfiles.d files already declare. Pure.

use std::collections::BTreeSet;

/// One line of a generated tmpfiles.d file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Line {
    /// `d PATH MODE USER GROUP -`: create a directory.
    Dir {
        /// Absolute path (raw bytes, not escaped).
        path: Vec<u8>,
        /// Permission bits.
        mode: u32,
        /// Owner name or numeric uid.
        user: String,
        /// Group name or numeric gid.
        group: String,
    },
    /// `L PATH - - - - TARGET`: create a symlink.
    Symlink {
        /// Absolute path.
        path: Vec<u8>,
        /// Link target.
        target: Vec<u8>,
    },
    /// `C PATH - - - - SOURCE`: copy a file from the factory.
    Copy {
        /// Absolute path.
        path: Vec<u8>,
        /// Factory copy.
        source: Vec<u8>,
    },
}

impl Line {
    /// The path the line is about.
    pub fn path(&self) -> &[u8] {
        match self {
            Line::Dir { path, .. } | Line::Symlink { path, .. } | Line::Copy { path, .. } => path,
        }
    }

    /// The line as tmpfiles.d text, without a newline; `None` when a field
    /// cannot be written so that systemd-tmpfiles reads it back exactly:
    /// control characters or invalid UTF-8 anywhere, a path that is not
    /// clean and absolute, a path or argument longer than [`MAX_FIELD`],
    /// an owner named `-` or nothing, an empty argument.
    pub fn render(&self) -> Option<String> {
        Some(match self {
            Line::Dir {
                path,
                mode,
                user,
                group,
            } => format!(
                "d {} {mode:04o} {} {} -",
                quote_path(path)?,
                quote_owner(user)?,
                quote_owner(group)?
            ),
            Line::Symlink { path, target } => {
                format!("L {} - - - - {}", quote_path(path)?, escape_arg(target)?)
            }
            Line::Copy { path, source } => {
                format!("C {} - - - - {}", quote_path(path)?, escape_arg(source)?)
            }
        })
    }
}

/// The longest path or argument systemd-tmpfiles accepts (`PATH_MAX - 1`,
/// after specifier expansion). A longer one fails with `ENAMETOOLONG`,
/// and systemd 252 then skips *every* line of the file, not just that one.
pub const MAX_FIELD: usize = 4095;

/// systemd's `WHITESPACE`: the only characters that separate columns.
/// (Other Unicode whitespace, such as U+00A0, is part of a name.)
const WHITESPACE: [char; 4] = [' ', '\t', '\n', '\r'];

/// Is this text expressible at all? Config lines are UTF-8, one per line.
fn expressible(raw: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(raw).ok()?;
    (!text.chars().any(|c| c.is_control() && c != '\t')).then_some(text)
}

/// Is this `/` or an absolute path without empty, `.` or `..` components?
/// systemd simplifies `//`, `/./` and a trailing `/` away (so it would act
/// on another path than the one written) and refuses the rest.
fn clean_absolute(raw: &[u8]) -> bool {
    raw == b"/"
        || (raw.starts_with(b"/")
            && raw[1..]
                .split(|&b| b == b'/')
                .all(|c| !matches!(c, b"" | b"." | b"..")))
}

/// Quote a column field. systemd unquotes these fields — a backslash
/// escapes the next character, "double quotes" keep whitespace — but does
/// not C-unescape them (systemd 252). So a field with whitespace, quotes
/// or backslashes is double-quoted with `\` and `\"` inside; newer systemd,
/// which also C-unescapes, reads the same bytes back. With `specifiers`
/// (the path column), `%` becomes `%%`.
fn quote(raw: &[u8], specifiers: bool) -> Option<String> {
    let text = expressible(raw)?;
    let mut body = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' if specifiers => body.push_str("%%"),
            '\\' => body.push_str("\\\\"),
            '"' => body.push_str("\\\""),
            c => body.push(c),
        }
    }
    let plain = !text.is_empty()
        && !text
            .chars()
            .any(|c| c.is_whitespace() || "\"'\\".contains(c));
    Some(if plain { body } else { format!("\"{body}\"") })
}

/// Encode the path column: quoted (see `quote`), `%` doubled (systemd
/// expands specifiers there). `None` unless the path is clean and
/// absolute and at most [`MAX_FIELD`] bytes.
pub fn quote_path(raw: &[u8]) -> Option<String> {
    if !clean_absolute(raw) || raw.len() > MAX_FIELD {
        return None;
    }
    quote(raw, true)
}

/// Encode a user or group column: quoted (see `quote`), `%` kept as it
/// is (systemd does not expand specifiers there: `%u` is a user named
/// `%u`). `None` for `-` and the empty name, which systemd reads as
/// "unset" (root) whether quoted or not.
pub fn quote_owner(name: &str) -> Option<String> {
    if name.is_empty() || name == "-" {
        return None;
    }
    quote(name.as_bytes(), false)
}

/// Encode the argument field (symlink target, copy source): systemd takes
/// the rest of the line, C-unescapes it and then expands specifiers,
/// without unquoting. So whitespace, quotes and backslashes become `\xNN`,
/// and `%` becomes `%%`. A lone `-` (or nothing) means "no argument"
/// (for `L` and `C`: `/usr/share/factory/PATH`), so `-` is written
/// `\x2d`; an empty argument, or one longer than [`MAX_FIELD`], is `None`.
pub fn escape_arg(raw: &[u8]) -> Option<String> {
    let text = expressible(raw)?;
    if text.is_empty() || text.len() > MAX_FIELD {
        return None;
    }
    if text == "-" {
        return Some("\\x2d".to_string());
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' => out.push_str("%%"),
            c if c.is_whitespace() && c.is_ascii() || "\"'\\".contains(c) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// Undo `%%` doubling.
fn unpercent(text: &str) -> String {
    text.replace("%%", "%")
}

/// C-unescape (the subset systemd accepts that matters here).
fn cunescape(field: &str) -> Option<Vec<u8>> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let (byte, used) = match b.get(i + 1)? {
            b'x' => (u8::from_str_radix(field.get(i + 2..i + 4)?, 16).ok()?, 4),
            b'\\' => (b'\\', 2),
            b'"' => (b'"', 2),
            b'\'' => (b'\'', 2),
            b'n' => (b'\n', 2),
            b't' => (b'\t', 2),
            b's' => (b' ', 2),
            _ => return None,
        };
        out.push(byte);
        i += used;
    }
    Some(out)
}

/// Split a line into unquoted column fields the way systemd 252 does: on
/// [`WHITESPACE`], with "double" or 'single' quotes, a backslash escaping
/// the next character. Returns the fields and the raw rest after `n`
/// fields.
fn split_fields(line: &str, n: usize) -> (Vec<String>, &str) {
    let mut out = Vec::new();
    let mut chars = line.char_indices().peekable();
    while out.len() < n {
        while chars.peek().is_some_and(|(_, c)| WHITESPACE.contains(c)) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut cur = String::new();
        let mut quote: Option<char> = None;
        while let Some(&(_, c)) = chars.peek() {
            if quote.is_none() && WHITESPACE.contains(&c) {
                break;
            }
            chars.next();
            match (quote, c) {
                (_, '\\') => {
                    if let Some((_, next)) = chars.next() {
                        cur.push(next);
                    }
                }
                (Some(q), c) if c == q => quote = None,
                (None, '"' | '\'') => quote = Some(c),
                (_, c) => cur.push(c),
            }
        }
        out.push(cur);
    }
    let rest_at = chars.peek().map_or(line.len(), |&(i, _)| i);
    (out, line[rest_at..].trim_matches(WHITESPACE))
}

/// The paths declared by the lines of a tmpfiles.d file. Lines end at
/// `\n`, `\r` or NUL, as systemd reads them.
pub fn declared_paths(text: &str) -> BTreeSet<Vec<u8>> {
    let mut out = BTreeSet::new();
    for line in text
        .split(['\n', '\r', '\0'])
        .map(|l| l.trim_matches(WHITESPACE))
    {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (fields, _) = split_fields(line, 2);
        if let Some(path) = fields.get(1) {
            out.insert(unpercent(path).into_bytes());
        }
    }
    out
}

/// Parse lines this module rendered (our own generated file), so a rerun
/// keeps what an earlier run converted.
pub fn parse_generated(text: &str) -> Vec<Line> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Line> {
    let (f, rest) = split_fields(line, 6);
    let path = unpercent(f.get(1)?).into_bytes();
    let mode = || u32::from_str_radix(f.get(2)?, 8).ok();
    let arg = || cunescape(&unpercent(rest));
    match f.first()?.as_str() {
        "d" => Some(Line::Dir {
            path,
            mode: mode()?,
            user: f.get(3)?.clone(),
            group: f.get(4)?.clone(),
        }),
        "L" => Some(Line::Symlink {
            path,
            target: arg()?,
        }),
        "C" => Some(Line::Copy {
            path,
            source: arg()?,
        }),
        _ => None,
    }
}

/// Render a whole generated file: a header, then sorted, unique lines.
pub fn render_file(lines: &BTreeSet<Line>) -> String {
    let mut out = String::from(
        "# Generated by ostree-finalize: /var content added by the image build.\n\
         # ostree does not update /var from the image; these lines recreate it.\n",
    );
    for rendered in lines.iter().filter_map(Line::render) {
        out.push_str(&rendered);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_fields_are_quoted_byte_for_byte() {
        assert_eq!(quote_path(b"/var/lib/a").unwrap(), "/var/lib/a");
        assert_eq!(quote_path(b"/var/lib/a b").unwrap(), "\"/var/lib/a b\"");
        assert_eq!(
            quote_path(b"/var/lib/back\\slash").unwrap(),
            "\"/var/lib/back\\\\slash\""
        );
        assert_eq!(quote_path(b"/var/lib/q\"").unwrap(), "\"/var/lib/q\\\"\"");
        assert_eq!(
            quote_path("/var/lib/caf\u{e9}".as_bytes()).unwrap(),
            "/var/lib/caf\u{e9}"
        );
        assert_eq!(quote_path(b"/var/lib/100%").unwrap(), "/var/lib/100%%");
        assert_eq!(quote_path(b"/var/lib/new\nline"), None);
        assert_eq!(quote_path(b"/var/lib/\xff"), None);
    }

    #[test]
    fn paths_systemd_would_read_as_another_path_are_refused() {
        // Relative, empty, or not clean: systemd refuses the line or
        // simplifies the path to another one.
        for bad in [
            &b""[..],
            b"var/lib/a",
            b"-",
            b"/var//lib",
            b"/var/lib/",
            b"/var/./lib",
            b"/var/../etc",
        ] {
            assert_eq!(quote_path(bad), None, "{bad:?}");
        }
        assert_eq!(quote_path(b"/").unwrap(), "/");
        // PATH_MAX - 1 bytes is the most; one more and systemd 252 skips
        // the whole file (ENAMETOOLONG).
        let longest = format!("/{}", "a".repeat(MAX_FIELD - 1));
        assert!(quote_path(longest.as_bytes()).is_some());
        assert_eq!(quote_path(format!("{longest}b").as_bytes()), None);
    }

    #[test]
    fn owners_are_quoted_without_specifiers_and_never_unset() {
        // systemd does not expand specifiers in the user and group columns.
        assert_eq!(quote_owner("a%b").unwrap(), "a%b");
        assert_eq!(quote_owner("app user").unwrap(), "\"app user\"");
        // "-" and "" mean "unset" (root), quoted or not.
        assert_eq!(quote_owner("-"), None);
        assert_eq!(quote_owner(""), None);
        let dir = |group: &str| Line::Dir {
            path: b"/var/lib/a".to_vec(),
            mode: 0o755,
            user: "we%ird".into(),
            group: group.into(),
        };
        assert_eq!(dir("-").render(), None);
        let line = dir("we%ird");
        let text = line.render().unwrap();
        assert_eq!(text, "d /var/lib/a 0755 we%ird we%ird -");
        assert_eq!(parse_generated(&text), [line]);
    }

    #[test]
    fn arguments_are_c_escaped_byte_for_byte() {
        assert_eq!(escape_arg(b"../a b").unwrap(), "../a\\x20b");
        assert_eq!(escape_arg(b"a\\b\"c%").unwrap(), "a\\x5cb\\x22c%%");
        assert_eq!(escape_arg(b"x\ny"), None);
    }

    #[test]
    fn arguments_systemd_would_read_as_unset_are_escaped_or_refused() {
        // A lone "-" means "no argument": `/usr/share/factory/PATH`. It is
        // compared before unescaping, so `\x2d` is the target "-".
        assert_eq!(escape_arg(b"-").unwrap(), "\\x2d");
        assert_eq!(escape_arg(b"--").unwrap(), "--");
        assert_eq!(escape_arg(b""), None);
        assert!(escape_arg("x".repeat(MAX_FIELD).as_bytes()).is_some());
        assert_eq!(escape_arg("x".repeat(MAX_FIELD + 1).as_bytes()), None);
        let line = Line::Symlink {
            path: b"/var/lib/dash".to_vec(),
            target: b"-".to_vec(),
        };
        let text = line.render().unwrap();
        assert_eq!(text, "L /var/lib/dash - - - - \\x2d");
        assert_eq!(parse_generated(&text), [line]);
    }

    #[test]
    fn lines_render_and_parse_back() {
        let lines = [
            Line::Dir {
                path: b"/var/lib/my app\\x \"q\" 100%".to_vec(),
                mode: 0o750,
                user: "app".into(),
                group: "app".into(),
            },
            Line::Symlink {
                path: b"/var/lib/link".to_vec(),
                target: b"../x y\\z%".to_vec(),
            },
            Line::Copy {
                path: "/var/lib/f \u{e9}".as_bytes().to_vec(),
                source: "/usr/share/factory/var/lib/f \u{e9}".as_bytes().to_vec(),
            },
        ];
        assert_eq!(
            lines[0].render().unwrap(),
            "d \"/var/lib/my app\\\\x \\\"q\\\" 100%%\" 0750 app app -"
        );
        assert_eq!(
            lines[1].render().unwrap(),
            "L /var/lib/link - - - - ../x\\x20y\\x5cz%%"
        );
        let text: String = lines.iter().map(|l| l.render().unwrap() + "\n").collect();
        assert_eq!(parse_generated(&text), lines);
    }

    #[test]
    fn declared_paths_reads_quoted_and_escaped_fields() {
        let text = "# comment\n\nd /var/lib/a 0755 root root -\n\
                    L+ \"/var/lib/b c\" - - - - /x\nd /var/lib/d\\ e - - - -\n";
        let paths = declared_paths(text);
        assert!(paths.contains(&b"/var/lib/a"[..]));
        assert!(paths.contains(&b"/var/lib/b c"[..]));
        assert!(paths.contains(&b"/var/lib/d e"[..]));
        assert_eq!(paths.len(), 3);
    }

    #[test]
    fn only_ascii_whitespace_separates_columns_and_lines_end_at_cr() {
        // systemd splits on " \t\n\r" only: a no-break space is part of
        // the name, and `\r` ends a line.
        let text = "d /var/lib/a\u{a0}b 0755 root root -\rd /var/lib/c 0755 - - -\n";
        let paths = declared_paths(text);
        let want: BTreeSet<Vec<u8>> = [
            "/var/lib/a\u{a0}b".as_bytes().to_vec(),
            b"/var/lib/c".to_vec(),
        ]
        .into();
        assert_eq!(paths, want);
    }
}
