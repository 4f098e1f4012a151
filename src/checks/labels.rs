//! Image-level checks that only `lint` can make: the override label and
//! the finalize record. Pure: [`apply`] post-processes the findings of
//! [`super::run`] with what lint knows about the image.

use std::collections::BTreeMap;

use super::{Check, Finding, Level};

/// `override-unlabeled`.
pub const OVERRIDE_UNLABELED: Check = Check {
    id: "override-unlabeled",
    default_level: Level::Deny,
    overridable: false,
    needs_base: true,
    summary: "The image overrides base content but lacks LABEL ostree.override=true",
    description: "The image changes, replaces or removes base content (or base \
packages), which is only acceptable as a deliberate, visible decision: the image \
must carry LABEL ostree.override=true so that everyone deploying it can see it \
departs from the vendor's base. Fix: add LABEL ostree.override=true to the \
Containerfile, or remove the overriding changes.",
};

/// `override-label-unused`.
pub const OVERRIDE_LABEL_UNUSED: Check = Check {
    id: "override-label-unused",
    default_level: Level::Warn,
    overridable: false,
    needs_base: true,
    summary: "LABEL ostree.override=true is set but nothing overrides the base",
    description: "The image claims to override base content but does not. A stale \
label hides real overrides added later. Fix: remove the label.",
};

/// `not-finalized`.
pub const NOT_FINALIZED: Check = Check {
    id: "not-finalized",
    default_level: Level::Warn,
    overridable: false,
    needs_base: false,
    summary: "The image carries no finalize record",
    description: "The image has no /usr/lib/ostree-finalize/record.json, so its \
build never ran `ostree container finalize` as the last step: /var content, \
users and runtime leftovers were not converted and may be lost at deploy. Fix: \
add `RUN ostree container finalize` as the last step of the Containerfile.",
};

/// The image label that marks overrides of base content as deliberate.
pub const OVERRIDE_LABEL: &str = "ostree.override";

/// What an override allowed by the label carries in `allowed_by`.
pub const ALLOWED_BY_LABEL: &str = "LABEL ostree.override=true";

/// The text appended to an override that the label allowed.
pub const LABEL_ALLOWED: &str = "Allowed by LABEL ostree.override=true on the image.";

/// How many overrides `override-unlabeled` names before "…".
const NAMED: usize = 3;

/// What lint knows about an image beyond its tree.
#[derive(Debug, Clone, Copy)]
pub struct ImageFacts<'a> {
    /// The image config's labels; `None` for a rootfs directory, which has
    /// none (then no label finding is made).
    pub labels: Option<&'a BTreeMap<String, String>>,
    /// Whether the finalize record (`/usr/lib/ostree-finalize/record.json`)
    /// is there.
    pub finalized: bool,
}

/// Apply the image-level checks to the findings of
/// [`crate::checks::run`]. Pure.
///
/// - Overrides are findings of an overridable check at deny or warn (warn
///   when `--allow-overrides` allowed them).
/// - With `ostree.override=true`, overridable denies become warnings
///   allowed by the label; without overrides the label is
///   `override-label-unused`.
/// - Without the label (any other value counts as absent), overrides add
///   one `override-unlabeled` deny, which no flag turns off.
/// - Without a finalize record: `not-finalized`, and the content
///   finalize would have moved out of /var is a warning (stranded).
///
/// Returns the findings in the order `checks::run` sorts them (level,
/// check, path, message).
pub fn apply(mut findings: Vec<Finding>, facts: &ImageFacts) -> Vec<Finding> {
    let is_override = |f: &Finding| {
        super::lookup(f.check).is_some_and(|c| c.overridable)
            && matches!(f.level, Level::Deny | Level::Warn)
    };
    let overrides: Vec<String> = findings
        .iter()
        .filter(|f| is_override(f))
        .map(|f| {
            let what = f.path.as_deref().or(f.package.as_deref()).unwrap_or("-");
            format!("{} {what}", f.check)
        })
        .collect();
    if let Some(labels) = facts.labels {
        let value = labels.get(OVERRIDE_LABEL);
        if value.is_some_and(|v| v == "true") {
            for f in findings.iter_mut().filter(|f| f.level == Level::Deny) {
                if super::lookup(f.check).is_some_and(|c| c.overridable) {
                    allow_by_label(f);
                }
            }
            if overrides.is_empty() {
                findings.push(Finding::new(&OVERRIDE_LABEL_UNUSED, None, unused_message()));
            }
        } else if !overrides.is_empty() {
            let msg = unlabeled_message(&overrides, value.map(String::as_str));
            findings.push(Finding::new(&OVERRIDE_UNLABELED, None, msg));
        }
    }
    if !facts.finalized {
        findings.push(Finding::new(&NOT_FINALIZED, None, not_finalized_message()));
        // Without finalize nothing moved it: as the image stands, content
        // installed through a base link into /var is stranded there.
        for f in findings.iter_mut().filter(|f| {
            [super::layout::RELOCATED.id, super::layout::LINK_RESTORED.id].contains(&f.check)
                && f.level == Level::Info
        }) {
            f.level = Level::Warn;
            f.message = format!(
                "{}. The image was not finalized, so this has not happened: as the image \
                 stands, the content is stranded in /var (seeded once, never updated) or \
                 dropped by the importer. Run `ostree container finalize` as the last step.",
                f.message
            );
        }
    }
    super::sort(&mut findings);
    findings
}

fn allow_by_label(f: &mut Finding) {
    let suffix = format!(" {}", super::OVERRIDE_FIX);
    let base = f.message.strip_suffix(&suffix).unwrap_or(&f.message);
    f.message = format!("{base} {LABEL_ALLOWED}");
    f.level = Level::Warn;
    f.allowed_by = Some(ALLOWED_BY_LABEL.to_string());
}

fn unlabeled_message(overrides: &[String], value: Option<&str>) -> String {
    let mut named = overrides[..overrides.len().min(NAMED)].join(", ");
    if overrides.len() > NAMED {
        named.push_str(&format!(" and {} more", overrides.len() - NAMED));
    }
    let found = match value {
        Some(v) => format!(" (it has {OVERRIDE_LABEL}={v:?}; only \"true\" counts)"),
        None => String::new(),
    };
    format!(
        "the image overrides base content ({named}) but lacks LABEL \
         {OVERRIDE_LABEL}=true{found}. Everyone deploying it must be able to see that it \
         departs from the base: add LABEL {OVERRIDE_LABEL}=true to the Containerfile if \
         the overrides are deliberate, or remove them."
    )
}

fn unused_message() -> String {
    format!(
        "LABEL {OVERRIDE_LABEL}=true is set, but the image overrides no base content. \
         Remove the label, so that a later override is not waved through unnoticed."
    )
}

fn not_finalized_message() -> String {
    format!(
        "the image has no finalize record ({}): its build did not end with `RUN ostree \
         container finalize`, so /var content, users and runtime leftovers were not \
         converted and may be lost at deploy. Add it as the last step of the Containerfile.",
        crate::manifest::RECORD
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{OVERRIDE_FIX, lookup};

    fn base_modified(level: Level) -> Finding {
        let mut f = Finding::new(
            lookup("base-modified").unwrap(),
            Some("/usr/bin/tool".into()),
            format!("content of base path /usr/bin/tool changed. {OVERRIDE_FIX}"),
        );
        f.level = level;
        f
    }

    fn info() -> Finding {
        Finding::new(
            lookup("etc-modified").unwrap(),
            Some("/etc/x".into()),
            "changed".into(),
        )
    }

    fn ids(findings: &[Finding]) -> Vec<(&str, Level)> {
        findings.iter().map(|f| (f.check, f.level)).collect()
    }

    fn labels(value: Option<&str>) -> BTreeMap<String, String> {
        value
            .map(|v| (OVERRIDE_LABEL.to_string(), v.to_string()))
            .into_iter()
            .collect()
    }

    #[test]
    fn the_label_allows_overrides_as_warnings() {
        let l = labels(Some("true"));
        let facts = ImageFacts {
            labels: Some(&l),
            finalized: true,
        };
        let out = apply(vec![info(), base_modified(Level::Deny)], &facts);
        assert_eq!(
            ids(&out),
            [
                ("base-modified", Level::Warn),
                ("etc-modified", Level::Info)
            ]
        );
        assert_eq!(out[0].allowed_by.as_deref(), Some(ALLOWED_BY_LABEL));
        assert!(
            out[0].message.ends_with(LABEL_ALLOWED),
            "{}",
            out[0].message
        );
        assert!(!out[0].message.contains("rerun"), "{}", out[0].message);
    }

    #[test]
    fn overrides_without_the_label_are_denied_even_when_allowed_by_flag() {
        for level in [Level::Deny, Level::Warn] {
            for value in [None, Some("yes")] {
                let l = labels(value);
                let facts = ImageFacts {
                    labels: Some(&l),
                    finalized: true,
                };
                let out = apply(vec![base_modified(level)], &facts);
                let unlabeled: Vec<_> = out
                    .iter()
                    .filter(|f| f.check == "override-unlabeled")
                    .collect();
                assert_eq!(unlabeled.len(), 1);
                assert_eq!(unlabeled[0].level, Level::Deny);
                assert!(unlabeled[0].message.contains("base-modified /usr/bin/tool"));
                assert_eq!(
                    value.is_some(),
                    unlabeled[0].message.contains("only \"true\"")
                );
            }
        }
    }

    #[test]
    fn an_unused_label_and_a_missing_record_are_warnings() {
        let l = labels(Some("true"));
        let facts = ImageFacts {
            labels: Some(&l),
            finalized: false,
        };
        let out = apply(vec![info()], &facts);
        assert_eq!(
            ids(&out),
            [
                ("not-finalized", Level::Warn),
                ("override-label-unused", Level::Warn),
                ("etc-modified", Level::Info)
            ]
        );
    }

    #[test]
    fn a_rootfs_gets_no_label_findings() {
        let facts = ImageFacts {
            labels: None,
            finalized: true,
        };
        let out = apply(vec![base_modified(Level::Deny)], &facts);
        assert_eq!(ids(&out), [("base-modified", Level::Deny)]);
    }
}
