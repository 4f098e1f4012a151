//! The GitHub Actions renderer: one workflow command per finding, so each
//! shows as an annotation on the run (and on the pull request), then the
//! verdict line.
//!
//! deny → `::error`, warn → `::warning`, info → `::notice`, each with
//! `title=<check id>` and, when the finding has one, `file=<image path>`.
//! Values are escaped exactly as GitHub's own toolkit (`@actions/core`)
//! escapes them: `%`, `\r` and `\n` in the message; those and `:` and `,`
//! in a property. So a hostile path or message cannot end the command
//! early, start another one, or add a property.

use std::fmt::Write;

use super::Report;
use super::human::verdict_sentence;
use crate::checks::Level;

/// The workflow command for a level.
pub fn command(level: Level) -> &'static str {
    match level {
        Level::Deny => "error",
        Level::Warn => "warning",
        Level::Info => "notice",
    }
}

/// Render as workflow commands, one line per finding, then the verdict
/// line (plain text, with the base used).
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let mut props = format!("title={}", escape_property(f.check));
        if let Some(path) = &f.path {
            let _ = write!(props, ",file={}", escape_property(path));
        }
        let mut message = f.message.clone();
        if let Some(detail) = &f.detail {
            message.push('\n');
            message.push_str(detail.trim_end_matches('\n'));
        }
        let _ = writeln!(
            out,
            "::{} {props}::{}",
            command(f.level),
            escape_data(&message)
        );
    }
    let _ = writeln!(
        out,
        "ostree-finalize {} against {}: {}",
        report.command,
        report.base.replace(['\r', '\n'], " "),
        verdict_sentence(report)
    );
    out
}

/// A command's message, as `escapeData` in `@actions/core` escapes it.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A command's property value, as `escapeProperty` in `@actions/core`
/// escapes it.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_follows_the_actions_toolkit() {
        assert_eq!(escape_data("50% a\r\nb:c,d"), "50%25 a%0D%0Ab:c,d");
        assert_eq!(escape_property("/a:b,c%\n"), "/a%3Ab%2Cc%25%0A");
        // Already-escaped text is escaped again, not passed through.
        assert_eq!(escape_data("%0A"), "%250A");
    }
}
