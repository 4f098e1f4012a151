//! The JSON renderer: one object, sorted, byte-stable.

use super::Report;

/// Render as pretty JSON with a trailing newline.
pub fn render(report: &Report) -> String {
    // The model is plain data (strings, numbers, enums): serializing it
    // cannot fail.
    let mut s = serde_json::to_string_pretty(report).unwrap_or_else(|e| {
        format!(
            "{{\"version\":{},\"error\":\"{e}\"}}",
            super::REPORT_VERSION
        )
    });
    s.push('\n');
    s
}
