//! The check registry and the findings checks produce.
//!
//! Every check is named here, once, with its stable id, default level and
//! documentation; `list-checks` prints this list. Checks are pure functions
//! of an [`Input`] and return [`Finding`]s; only renderers print.

mod base;
mod files;
pub mod labels;
pub mod layers;
mod layout;
pub mod root;
mod rpm;
pub mod structural;
mod system;
pub mod waivers;

use serde::Serialize;

use crate::diff::Change;
use crate::layout::Plan;
use crate::manifest::Manifest;
use crate::pkgdiff::PackageChanges;
use crate::rootfs::Tree;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Forbidden: the verdict fails (exit 1).
    Deny,
    /// Allowed, but worth a look.
    Warn,
    /// For the record.
    Info,
}

impl Level {
    /// The lowercase name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Deny => "deny",
            Level::Warn => "warn",
            Level::Info => "info",
        }
    }
}

/// A registered check.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Check {
    /// Stable kebab-case id; public API.
    pub id: &'static str,
    /// Level when no policy or flag changes it.
    pub default_level: Level,
    /// Whether `--allow-overrides` turns a deny into a recorded warning.
    pub overridable: bool,
    /// Whether it compares with a base: it does not run in structural mode
    /// (no base reference), and `no-base-reference` says so.
    pub needs_base: bool,
    /// One line.
    pub summary: &'static str,
    /// What it checks, why it matters on ostree, how to fix it.
    pub description: &'static str,
}

/// The text appended to every overridable deny: the way out.
pub const OVERRIDE_FIX: &str = "Revert the change, or if it is deliberate, \
rerun with --allow-overrides and add LABEL ostree.override=true to the image.";

/// The text appended to an override that `--allow-overrides` allowed.
pub const OVERRIDE_ALLOWED: &str = "Allowed by --allow-overrides: the image \
must carry LABEL ostree.override=true.";

/// Every check, in a stable order.
pub const CHECKS: &[Check] = &[
    base::MODIFIED,
    base::REMOVED,
    rpm::BASE_CHANGED,
    files::SPECIAL,
    files::NON_UTF8,
    base::ETC_MODIFIED,
    layout::VAR_CONTENT,
    layout::USERS_ADDED,
    system::BOOT_NONEMPTY,
    layout::RUNTIME_CONTENT,
    system::KERNEL_INITRAMFS,
    system::SETUID_ADDED,
    system::WORLD_WRITABLE,
    labels::OVERRIDE_UNLABELED,
    labels::OVERRIDE_LABEL_UNUSED,
    labels::NOT_FINALIZED,
    waivers::UNUSED_WAIVER,
    layout::RELOCATED,
    layout::LINK_RESTORED,
    layout::VAR_PACKAGE_FILE,
    rpm::PACKAGES_UNKNOWN,
    layers::MALFORMED_LAYER,
    structural::NO_BASE_REFERENCE,
    root::KARGS_INVALID,
    root::ETC_AND_USR_ETC,
    root::VAR_RUN_NOT_LINK,
    layout::INJECTED_FILE,
    root::API_DIR_MISSING,
    root::OSTREE_ROOT_LAYOUT,
    root::COMPOSEFS_DISABLED,
];

/// Look a check up by id.
pub fn lookup(id: &str) -> Option<&'static Check> {
    CHECKS.iter().find(|c| c.id == id)
}

/// One reason, about one path or package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The check id.
    pub check: &'static str,
    /// The level after flags and policy.
    pub level: Level,
    /// Absolute path in the image, or null.
    pub path: Option<String>,
    /// What happened and how to fix it.
    pub message: String,
    /// NEVRA of the base package owning the path, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// Extra detail, e.g. a unified diff.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// What allowed a denied change (`--allow-overrides`), when something did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_by: Option<String>,
}

impl Finding {
    /// A finding at the check's default level.
    pub fn new(check: &Check, path: Option<String>, message: String) -> Finding {
        Finding {
            check: check.id,
            level: check.default_level,
            path,
            message,
            package: None,
            detail: None,
            allowed_by: None,
        }
    }

    /// Name the owning package.
    pub fn with_package(mut self, package: Option<&str>) -> Finding {
        self.package = package.map(str::to_string);
        self
    }
}

/// Everything the checks look at. Built by the driver; no I/O past here.
pub struct Input<'a> {
    /// The base reference.
    pub base: &'a Manifest,
    /// The current tree.
    pub current: &'a Tree,
    /// Path-level changes, sorted by path.
    pub changes: &'a [Change<'a>],
    /// Package-level changes.
    pub packages: &'a PackageChanges,
    /// The layout rewrite planned for this tree.
    pub plan: &'a Plan,
    /// No base reference (structural mode): `base` is empty, and the
    /// checks that need one do not run.
    pub structural: bool,
}

/// Run every check, at its default level (the policy and flags are
/// applied above, by [`crate::policy::apply`]).
pub fn run(input: &Input) -> Vec<Finding> {
    let mut out = Vec::new();
    base::check(input, &mut out);
    rpm::check(input, &mut out);
    files::check(input, &mut out);
    layout::check(input, &mut out);
    system::check(input, &mut out);
    root::check(input.current, &mut out);
    if input.structural {
        out.retain(|f| lookup(f.check).is_none_or(|c| !c.needs_base));
        structural::check(&mut out);
    }
    out
}

/// The checks of the root's own layout alone ([`root`]): what
/// `snapshot` runs on a base before it records it. Sorted; levels are the
/// defaults.
pub fn root_layout(tree: &Tree) -> Vec<Finding> {
    let mut out = Vec::new();
    root::check(tree, &mut out);
    sort(&mut out);
    out
}

/// The stable order of findings: level, check, path, message.
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (a.level, a.check, &a.path, &a.message).cmp(&(b.level, b.check, &b.path, &b.message))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_kebab_case_and_documented() {
        let mut ids: Vec<_> = CHECKS.iter().map(|c| c.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), CHECKS.len());
        for c in CHECKS {
            assert!(
                c.id.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-'),
                "{}",
                c.id
            );
            assert!(!c.summary.is_empty() && c.description.len() > c.summary.len());
        }
    }
}
