//! The human renderer: grouped by check, deny first, ending in one verdict
//! line that says how to fix it.

use std::fmt::Write;

use super::{Report, Verdict};
use crate::checks::Level;
use crate::layout::Action;

/// Render for a build log.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let mut last_check = "";
    for f in &report.findings {
        if f.check != last_check {
            let _ = writeln!(out, "\n{} {}:", f.level.as_str().to_uppercase(), f.check);
            last_check = f.check;
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
        let _ = writeln!(out, "\nlayout rewrite ({} actions):", plan.actions.len());
        const SHOWN: usize = 20;
        for a in plan.actions.iter().take(SHOWN) {
            let _ = writeln!(out, "  {}", describe_action(a));
        }
        if plan.actions.len() > SHOWN {
            let _ = writeln!(out, "  …and {} more", plan.actions.len() - SHOWN);
        }
    }
    let s = &report.summary;
    let counts = format!(
        "{} denied, {} warning{}, {} info",
        s.deny,
        s.warn,
        if s.warn == 1 { "" } else { "s" },
        s.info
    );
    let allowed = report
        .findings
        .iter()
        .filter(|f| f.level == Level::Warn && f.allowed_by.is_some())
        .count();
    let verdict = match report.verdict {
        Verdict::Pass if allowed > 0 => format!(
            "PASS with {allowed} allowed override{} ({counts}). The image must carry \
             LABEL ostree.override=true.",
            if allowed == 1 { "" } else { "s" }
        ),
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
    let _ = writeln!(out, "\nostree-finalize {}: {verdict}", report.command);
    out.trim_start_matches('\n').to_string()
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
    }
}
