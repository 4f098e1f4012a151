//! The Markdown renderer: a summary for pull-request comments and
//! `$GITHUB_STEP_SUMMARY` (GitHub-flavoured Markdown).
//!
//! It has the verdict, a table of counts per level, the base used, one
//! table per check (at most [`MarkdownOptions::max_rows`] rows, then "…and N
//! more") with each shown finding's detail folded under it, the package
//! changes, and for `diff` the path counts. Every cell is escaped, so a
//! path or message carrying `|`, a newline, backticks or Markdown syntax
//! stays in its cell as text: see [`text`] and [`code`].

use std::fmt::Write;

use super::Report;
use super::human::{describe_actions, verdict_sentence};
use crate::checks::{Finding, Level};

/// How the Markdown summary is laid out.
#[derive(Debug, Clone, Copy)]
pub struct MarkdownOptions {
    /// Rows per table before "…and N more"; None shows all. Default: 10,
    /// as in the human report.
    pub max_rows: Option<usize>,
}

impl Default for MarkdownOptions {
    fn default() -> Self {
        MarkdownOptions { max_rows: Some(10) }
    }
}

/// Render the summary.
pub fn render(report: &Report, opts: MarkdownOptions) -> String {
    let mut out = String::new();
    let mark = match report.verdict {
        super::Verdict::Pass => "✅",
        super::Verdict::Fail => "❌",
    };
    let verdict = verdict_sentence(report);
    let word = verdict.split([' ', ':']).next().unwrap_or_default();
    let _ = writeln!(
        out,
        "## {mark} ostree-finalize {}: {word}\n",
        text(&report.command)
    );
    let _ = writeln!(out, "{}\n", text(&verdict));
    let s = &report.summary;
    out.push_str("| Level | Findings |\n|---|---:|\n");
    for (level, n) in [("deny", s.deny), ("warn", s.warn), ("info", s.info)] {
        let _ = writeln!(out, "| {level} | {n} |");
    }
    let _ = writeln!(out, "\n**Base:** {}", code(&report.base));
    for group in by_check(&report.findings) {
        check_table(&mut out, &group, opts);
    }
    packages(&mut out, report, opts);
    if let Some(c) = &report.changes {
        let _ = writeln!(
            out,
            "\n### Paths\n\n{} added, {} modified, {} removed.",
            c.added.len(),
            c.modified.len(),
            c.removed.len()
        );
    }
    if let Some(plan) = report.plan.as_ref().filter(|p| !p.actions.is_empty()) {
        let lines = describe_actions(plan);
        let what = if report.command == "lint" {
            "Layout rewrite finalize would still make"
        } else {
            "Layout rewrite"
        };
        let _ = writeln!(out, "\n### {what}\n");
        let shown = shown(lines.len(), opts);
        for line in &lines[..shown] {
            let _ = writeln!(out, "- {}", text(line));
        }
        more(&mut out, lines.len() - shown);
    }
    out
}

/// Findings grouped by check, in report order (so the worst level first).
fn by_check(findings: &[Finding]) -> Vec<Vec<&Finding>> {
    let mut groups: Vec<Vec<&Finding>> = Vec::new();
    for f in findings {
        match groups.iter_mut().find(|g| g[0].check == f.check) {
            Some(g) => g.push(f),
            None => groups.push(vec![f]),
        }
    }
    groups
}

/// How many of `total` rows are shown.
fn shown(total: usize, opts: MarkdownOptions) -> usize {
    opts.max_rows.map_or(total, |max| total.min(max))
}

/// The "…and N more" line after a capped table or list.
fn more(out: &mut String, hidden: usize) {
    if hidden > 0 {
        let _ = writeln!(
            out,
            "\n…and {hidden} more (`--no-truncate` shows all; the JSON and SARIF reports \
             always have every item)."
        );
    }
}

/// One check: a heading with its counts, its summary, and a table.
fn check_table(out: &mut String, group: &[&Finding], opts: MarkdownOptions) {
    let id = group[0].check;
    let per_level: Vec<String> = [Level::Deny, Level::Warn, Level::Info]
        .into_iter()
        .filter_map(|l| {
            let n = group.iter().filter(|f| f.level == l).count();
            (n > 0).then(|| format!("{n} {}", l.as_str()))
        })
        .collect();
    let _ = writeln!(out, "\n### {} ({})\n", text(id), per_level.join(", "));
    if let Some(check) = crate::checks::lookup(id) {
        let _ = writeln!(out, "{}\n", text(check.summary));
    }
    out.push_str("| Level | Path | Package | Message |\n|---|---|---|---|\n");
    let n = shown(group.len(), opts);
    for f in &group[..n] {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            f.level.as_str(),
            f.path.as_deref().map_or_else(|| "—".to_string(), code),
            f.package.as_deref().map_or_else(|| "—".to_string(), text),
            text(&f.message)
        );
    }
    more(out, group.len() - n);
    for f in &group[..n] {
        if let Some(detail) = &f.detail {
            let fence = fence_for(detail);
            let _ = writeln!(
                out,
                "\n<details><summary>{}</summary>\n\n{fence}diff\n{}\n{fence}\n\n</details>",
                html(f.path.as_deref().unwrap_or(id)),
                detail.trim_end_matches('\n')
            );
        }
    }
}

/// The package changes: one row per package, capped.
fn packages(out: &mut String, report: &Report, opts: MarkdownOptions) {
    let p = &report.packages;
    let mut rows: Vec<(&str, &str, &str)> = Vec::new();
    rows.extend(p.added.iter().map(|n| ("added", "—", n.as_str())));
    rows.extend(p.removed.iter().map(|n| ("removed", n.as_str(), "—")));
    for (what, list) in [
        ("upgraded", &p.upgraded),
        ("downgraded", &p.downgraded),
        ("replaced", &p.replaced),
    ] {
        rows.extend(list.iter().map(|c| (what, c.from.as_str(), c.to.as_str())));
    }
    out.push_str("\n### Package changes\n\n");
    if rows.is_empty() {
        out.push_str("None.\n");
        return;
    }
    let _ = writeln!(
        out,
        "{} added, {} removed, {} changed.\n",
        p.added.len(),
        p.removed.len(),
        p.upgraded.len() + p.downgraded.len() + p.replaced.len()
    );
    out.push_str("| Change | Base | Image |\n|---|---|---|\n");
    let n = shown(rows.len(), opts);
    for (what, from, to) in &rows[..n] {
        let cell = |s: &str| if s == "—" { s.to_string() } else { text(s) };
        let _ = writeln!(out, "| {what} | {} | {} |", cell(from), cell(to));
    }
    more(out, rows.len() - n);
}

/// Plain text for a table cell or a line: every ASCII punctuation
/// character Markdown (or GitHub's extensions: `$` math, `~` strikethrough)
/// could read as syntax is backslash-escaped, `|` included so it cannot
/// end a table cell; a line break becomes `<br>`, so a row stays one line.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&' | '$' => {
                out.push('\\');
                out.push(c);
            }
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push_str("<br>");
                }
            }
            '\n' => out.push_str("<br>"),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

/// A code span of `s` that survives a table cell: fenced with more
/// backticks than any run inside, padded when `s` starts or ends with a
/// backtick or a space, `|` escaped (GitHub's table syntax unescapes it
/// before the span is read), and control characters (a newline in a file
/// name) shown as escapes, since a code span cannot hold a line break.
pub fn code(s: &str) -> String {
    let mut body = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' => body.push_str("\\|"),
            c if c.is_control() => body.extend(c.escape_default()),
            c => body.push(c),
        }
    }
    let longest = longest_run(&body, '`');
    let ticks = "`".repeat(longest + 1);
    let pad = body.starts_with('`')
        || body.ends_with('`')
        || (body.starts_with(' ') && body.ends_with(' ') && !body.trim().is_empty());
    if body.is_empty() {
        return "—".to_string();
    }
    if pad {
        format!("{ticks} {body} {ticks}")
    } else {
        format!("{ticks}{body}{ticks}")
    }
}

/// A code fence longer than any backtick run in `s` (at least three).
fn fence_for(s: &str) -> String {
    "`".repeat((longest_run(s, '`') + 1).max(3))
}

fn longest_run(s: &str, c: char) -> usize {
    let (mut best, mut run) = (0, 0);
    for ch in s.chars() {
        run = if ch == c { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

/// Text for inside an HTML element (`<summary>`).
fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' | '\r' => out.push(' '),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_escapes_what_markdown_would_read_as_syntax() {
        assert_eq!(text("a|b"), "a\\|b");
        assert_eq!(text("x\ny"), "x<br>y");
        assert_eq!(text("x\r\ny"), "x<br>y");
        assert_eq!(
            text("`rm` *all* [x](y) <b>"),
            "\\`rm\\` \\*all\\* \\[x\\](y) \\<b\\>"
        );
        assert_eq!(text("/usr/lib/base_utils"), "/usr/lib/base\\_utils");
        assert_eq!(text("$x$ ~y~"), "\\$x\\$ \\~y\\~");
        assert_eq!(text("a-b: c"), "a-b: c");
    }

    #[test]
    fn code_spans_hold_backticks_pipes_and_newlines() {
        assert_eq!(code("/usr/bin/x"), "`/usr/bin/x`");
        assert_eq!(code("/a`b"), "``/a`b``");
        assert_eq!(code("`x"), "`` `x ``");
        assert_eq!(code("/a|b"), "`/a\\|b`");
        assert_eq!(code("/a\nb"), "`/a\\nb`");
        assert_eq!(code(" x "), "`  x  `");
        assert_eq!(code(""), "—");
    }

    #[test]
    fn fences_outrun_the_backticks_inside() {
        assert_eq!(fence_for("plain"), "```");
        assert_eq!(fence_for("a ```` b"), "`````");
    }
}
