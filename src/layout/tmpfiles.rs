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

    /// The line as tmpfiles.d text, without a newline; `None` when a name
    /// cannot be expressed in tmpfiles.d (control characters, not UTF-8).
    pub fn render(&self) -> Option<String> {
        Some(match self {
            Line::Dir {
                path,
                mode,
                user,
                group,
            } => format!(
                "d {} {mode:04o} {} {} -",
                quote_field(path)?,
                quote_field(user.as_bytes())?,
                quote_field(group.as_bytes())?
            ),
            Line::Symlink { path, target } => {
                format!("L {} - - - - {}", quote_field(path)?, escape_arg(target)?)
            }
            Line::Copy { path, source } => {
                format!("C {} - - - - {}", quote_field(path)?, escape_arg(source)?)
            }
        })
    }
}

/// Is this text expressible at all? Config lines are UTF-8, one per line.
fn expressible(raw: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(raw).ok()?;
    (!text.chars().any(|c| c.is_control() && c != '\t')).then_some(text)
}

/// Encode a column field (path, user, group). systemd unquotes these
/// fields — a backslash escapes the next character, "double quotes" keep
/// whitespace — and expands `%` specifiers, but does not C-unescape them
/// (systemd 252). So a field with whitespace, quotes or backslashes is
/// double-quoted with `\` and `\"` inside, and `%` becomes `%%`; newer
/// systemd, which also C-unescapes, reads the same bytes back.
pub fn quote_field(raw: &[u8]) -> Option<String> {
    let text = expressible(raw)?;
    let mut body = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' => body.push_str("%%"),
            '\\' => body.push_str("\\\\"),
            '"' => body.push_str("\\\""),
            c => body.push(c),
        }
    }
    let plain = !text
        .chars()
        .any(|c| c.is_whitespace() || "\"'\\".contains(c));
    Some(if plain { body } else { format!("\"{body}\"") })
}

/// Encode the argument field (symlink target, copy source): systemd takes
/// the rest of the line, C-unescapes it and expands specifiers, without
/// unquoting. So whitespace, quotes and backslashes become `\xNN`, and `%`
/// becomes `%%`.
pub fn escape_arg(raw: &[u8]) -> Option<String> {
    let text = expressible(raw)?;
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
/// whitespace, with "double" or 'single' quotes, a backslash escaping the
/// next character. Returns the fields and the raw rest after `n` fields.
fn split_fields(line: &str, n: usize) -> (Vec<String>, &str) {
    let mut out = Vec::new();
    let mut chars = line.char_indices().peekable();
    while out.len() < n {
        while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut cur = String::new();
        let mut quote: Option<char> = None;
        while let Some(&(_, c)) = chars.peek() {
            if quote.is_none() && c.is_whitespace() {
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
    (out, line[rest_at..].trim())
}

/// The paths declared by the lines of a tmpfiles.d file.
pub fn declared_paths(text: &str) -> BTreeSet<Vec<u8>> {
    let mut out = BTreeSet::new();
    for line in text.lines().map(str::trim) {
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
    let field = |i: usize| f.get(i).map(|s| unpercent(s));
    let path = field(1)?.into_bytes();
    let mode = || u32::from_str_radix(f.get(2)?, 8).ok();
    let arg = || cunescape(&unpercent(rest));
    match f.first()?.as_str() {
        "d" => Some(Line::Dir {
            path,
            mode: mode()?,
            user: field(3)?,
            group: field(4)?,
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
        assert_eq!(quote_field(b"/var/lib/a").unwrap(), "/var/lib/a");
        assert_eq!(quote_field(b"/var/lib/a b").unwrap(), "\"/var/lib/a b\"");
        assert_eq!(
            quote_field(b"/var/lib/back\\slash").unwrap(),
            "\"/var/lib/back\\\\slash\""
        );
        assert_eq!(quote_field(b"/var/lib/q\"").unwrap(), "\"/var/lib/q\\\"\"");
        assert_eq!(
            quote_field("/var/lib/caf\u{e9}".as_bytes()).unwrap(),
            "/var/lib/caf\u{e9}"
        );
        assert_eq!(quote_field(b"/var/lib/100%").unwrap(), "/var/lib/100%%");
        assert_eq!(quote_field(b"/var/lib/new\nline"), None);
        assert_eq!(quote_field(b"/var/lib/\xff"), None);
    }

    #[test]
    fn arguments_are_c_escaped_byte_for_byte() {
        assert_eq!(escape_arg(b"../a b").unwrap(), "../a\\x20b");
        assert_eq!(escape_arg(b"a\\b\"c%").unwrap(), "a\\x5cb\\x22c%%");
        assert_eq!(escape_arg(b"x\ny"), None);
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
}
