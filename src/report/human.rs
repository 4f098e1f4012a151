//! The human renderer: grouped by check, deny first, ending in one verdict
//! line that says how to fix it.

use std::fmt::Write;

use super::{FoundBy, Report, Verdict};
use crate::checks::Level;
use crate::layout::Action;

/// How the human report is laid out.
#[derive(Debug, Clone, Copy)]
pub struct HumanOptions {
    /// ANSI colour (only on a terminal, and not with NO_COLOR).
    pub color: bool,
    /// Items shown per check before "…and N more"; None shows all.
    pub max_items: Option<usize>,
}

impl Default for HumanOptions {
    fn default() -> Self {
        HumanOptions {
            color: false,
            max_items: Some(10),
        }
    }
}

fn paint(on: bool, code: &str, text: &str) -> String {
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

fn level_colour(level: Level) -> &'static str {
    match level {
        Level::Deny => "1;31",
        Level::Warn => "1;33",
        Level::Info => "1;36",
    }
}

/// Render for a build log.
pub fn render(report: &Report, opts: HumanOptions) -> String {
    let mut out = String::new();
    let mut last_check = "";
    let mut shown = 0usize;
    for (i, f) in report.findings.iter().enumerate() {
        if f.check != last_check {
            let head = format!("{} {}", f.level.as_str().to_uppercase(), f.check);
            let _ = writeln!(
                out,
                "\n{}:",
                paint(opts.color, level_colour(f.level), &head)
            );
            last_check = f.check;
            shown = 0;
        }
        shown += 1;
        if opts.max_items.is_some_and(|max| shown > max) {
            let next_differs = report
                .findings
                .get(i + 1)
                .is_none_or(|n| n.check != f.check);
            if next_differs {
                let hidden = shown - opts.max_items.unwrap_or(0);
                let _ = writeln!(out, "  …and {hidden} more (--no-truncate shows all)");
            }
            continue;
        }
        let _ = writeln!(out, "  - {}", f.message);
        if let Some(detail) = &f.detail {
            for line in detail.lines() {
                let _ = writeln!(out, "      {line}");
            }
        }
    }
    let p = &report.packages;
    if !p.added.is_empty() {
        let _ = writeln!(out, "\npackages added: {}", p.added.join(", "));
    }
    if let Some(c) = &report.changes {
        let _ = writeln!(
            out,
            "\npaths: {} added, {} modified, {} removed",
            c.added.len(),
            c.modified.len(),
            c.removed.len()
        );
        for (label, list) in [("+", &c.added), ("~", &c.modified), ("-", &c.removed)] {
            for path in list {
                let _ = writeln!(out, "  {label} {path}");
            }
        }
    }
    if let Some(plan) = report.plan.as_ref().filter(|p| !p.actions.is_empty()) {
        let n = plan.actions.len();
        let what = if report.command == "lint" {
            "layout rewrite finalize would still make (lint changes nothing)"
        } else {
            "layout rewrite"
        };
        let _ = writeln!(
            out,
            "\n{what} ({n} action{}):",
            if n == 1 { "" } else { "s" }
        );
        const SHOWN: usize = 20;
        let lines = describe_actions(plan);
        for line in lines.iter().take(SHOWN) {
            let _ = writeln!(out, "  {line}");
        }
        if lines.len() > SHOWN {
            let _ = writeln!(out, "  …and {} more", lines.len() - SHOWN);
        }
    }
    let verdict = verdict_sentence(report);
    if let Some(source) = &report.base_source {
        let how = match source.found_by {
            FoundBy::BaseImageFlag => "given by --base-image",
            FoundBy::BaseFlag => "given by --base",
            FoundBy::Annotation => "named by the image's org.opencontainers.image.base.name",
            FoundBy::Recorded => "recorded in the image",
        };
        let _ = writeln!(out, "\nbase: {} ({how})", source.reference);
    }
    let head = format!("ostree-finalize {}:", report.command);
    let colour = if report.verdict == Verdict::Pass {
        "1;32"
    } else {
        "1;31"
    };
    let _ = writeln!(out, "\n{} {verdict}", paint(opts.color, colour, &head));
    out.trim_start_matches('\n').to_string()
}

/// "3 denied, 2 warnings, 1 info".
pub(super) fn counts_text(report: &Report) -> String {
    let s = &report.summary;
    format!(
        "{} denied, {} warning{}, {} info",
        s.deny,
        s.warn,
        if s.warn == 1 { "" } else { "s" },
        s.info
    )
}

/// The verdict with the counts and the way out: `PASS (…)`, `FAIL (…).
/// Revert …`. Every renderer ends with it.
pub(super) fn verdict_sentence(report: &Report) -> String {
    let counts = counts_text(report);
    let allowed = report
        .findings
        .iter()
        .filter(|f| f.level == Level::Warn && f.allowed_by.is_some())
        .count();
    let verdict = match report.verdict {
        Verdict::Pass if allowed > 0 => {
            let by_label = report
                .findings
                .iter()
                .any(|f| f.allowed_by.as_deref() == Some(crate::checks::labels::ALLOWED_BY_LABEL));
            let note = if by_label {
                "allowed by the image's LABEL ostree.override=true"
            } else {
                "The image must carry LABEL ostree.override=true"
            };
            format!(
                "PASS with {allowed} allowed override{} ({counts}). {note}.",
                if allowed == 1 { "" } else { "s" }
            )
        }
        Verdict::Pass => format!("PASS ({counts})"),
        Verdict::Fail if fixed_only_by_hand(report) => format!(
            "FAIL ({counts}). Fix each denied item as it says; --allow-overrides does \
             not cover {}.",
            hand_fixed_checks(report).join(", ")
        ),
        Verdict::Fail => format!(
            "FAIL ({counts}). Revert the denied changes, or if they are deliberate, rerun \
             with --allow-overrides and add LABEL ostree.override=true to the image."
        ),
    };
    if report.fatal_warnings {
        format!("FAIL: warnings are fatal (--fatal-warnings) ({counts}). Fix the warnings above.")
    } else {
        verdict
    }
}

/// Deny findings that no flag can allow, by check id.
fn hand_fixed_checks(report: &Report) -> Vec<&'static str> {
    let mut ids: Vec<&'static str> = report
        .findings
        .iter()
        .filter(|f| f.level == Level::Deny)
        .filter(|f| !crate::checks::lookup(f.check).is_some_and(|c| c.overridable))
        .map(|f| f.check)
        .collect();
    ids.dedup();
    ids
}

fn fixed_only_by_hand(report: &Report) -> bool {
    !hand_fixed_checks(report).is_empty()
}

/// One line per action, except that the removals of a relocated entry's
/// paths are one line for the entry: one line per relocated entry, not
/// per file.
pub(super) fn describe_actions(plan: &crate::layout::Plan) -> Vec<String> {
    let mut folded = std::collections::HashSet::new();
    let mut out = Vec::new();
    for a in &plan.actions {
        if let Action::Remove { path, .. } = a
            && let Some(r) = plan
                .relocated
                .iter()
                .find(|r| crate::path::is_within(path, &r.source))
        {
            if folded.insert(r.source.as_str()) {
                out.push(format!(
                    "remove {} ({} entr{}, moved to {})",
                    r.source,
                    r.entries,
                    if r.entries == 1 { "y" } else { "ies" },
                    r.dest
                ));
            }
            continue;
        }
        out.push(describe_action(a));
    }
    out
}

fn describe_action(a: &Action) -> String {
    match a {
        Action::CopyToFactory { source, dest, .. } => format!("copy {source} → {dest}"),
        Action::Write { path, content } => {
            format!("write {path} ({} lines)", content.lines().count())
        }
        Action::Remove { path, dir: true } => format!("remove directory {path}"),
        Action::Remove { path, dir: false } => format!("remove {path}"),
        Action::CheckpointRpmdb { dir } => {
            format!("checkpoint {dir}/rpmdb.sqlite, remove its -shm/-wal/lock files")
        }
        Action::MoveEtcToUsrEtc => "move /etc to /usr/etc".to_string(),
        Action::Unshare { path } => {
            format!("give {path} its own copy (it was a hardlink into the ostree repository)")
        }
        Action::RebuildBaseDb { dir, from, drop } => format!(
            "rebuild {dir}/rpmdb.sqlite from {from}/rpmdb.sqlite without the {} added package(s)",
            drop.len()
        ),
        Action::Relocate {
            source,
            dest,
            items,
        } => format!(
            "copy {source} → {dest} ({} entr{})",
            items.len(),
            if items.len() == 1 { "y" } else { "ies" }
        ),
        Action::RestoreLink { path, target } => format!("restore the link {path} -> {target}"),
    }
}
