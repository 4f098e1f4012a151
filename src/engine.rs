//! The pipeline shared by `finalize`, `diff` and `lint`: diff a target
//! against its base (or none), plan the layout rewrite, run the checks and
//! the policy, build the report.

use crate::checks::{self, Input};
use crate::diff::{self, Change, DiffOptions};
use crate::layout::{self, PlanInput};
use crate::manifest::Manifest;
use crate::pkgdiff;
use crate::policy::{self, Policy, Resolve};
use crate::report::{PathChanges, Report};
use crate::zones::{Zone, zone};

pub use crate::base::{
    Base, NO_BASE, find_base, load_base, load_ostree, read_base_file, read_ostree,
};
pub use crate::target::{Target, walk_options};

/// Switches for one evaluation.
#[derive(Debug, Clone, Copy, Default)]
pub struct EvalOptions<'a> {
    /// The policy (levels, waivers, package overrides); default when None.
    pub policy: Option<&'a Policy>,
    /// `--skip ID`.
    pub skip: &'a [String],
    /// `--allow-overrides`.
    pub allow_overrides: bool,
    /// List every changed path in the report (`diff`).
    pub list_changes: bool,
    /// Plan moving /etc to /usr/etc (`--usr-etc`).
    pub usr_etc: bool,
}

/// Diff `target` against `base` and judge it. With no base (structural
/// mode) the whole tree is the image's own: every path counts as added, no
/// package change is reported, the base's links into /var are the tree's
/// own, and checks that need a base do not run (a `no-base-reference`
/// warning says so).
pub fn evaluate(
    target: &Target,
    base: Option<&Manifest>,
    base_origin: &str,
    command: &str,
    opts: EvalOptions,
) -> Report {
    let default_policy = Policy::default();
    let policy = opts.policy.unwrap_or(&default_policy);
    let structural = base.is_none();
    let empty;
    let base = match base {
        Some(base) => base,
        None => {
            empty = Manifest::of_entries(Vec::new());
            &empty
        }
    };
    let packages = target.package_records();
    // A base package set that is unknown is no base to compare with: no
    // package is called added or removed (the warning says why).
    let pkg_changes = match base.packages_unknown {
        _ if structural => pkgdiff::PackageChanges::default(),
        Some(_) => pkgdiff::PackageChanges::default(),
        None => pkgdiff::diff_packages(&base.packages, &packages),
    };
    // What the build wrote in place through the repository's hardlinks
    // changed the base's copy too: the base's text of those paths (read
    // from the object) is the build's. It is the base's only where a
    // prefix of it proves to be (an append), else unknown.
    let scrubbed;
    let base = if target.in_place.is_empty() {
        base
    } else {
        let mut copy = base.clone();
        for group in &target.in_place {
            for path in &group.paths {
                if let Ok(i) = copy.entries.binary_search_by(|e| e.path.as_str().cmp(path)) {
                    copy.entries[i].text = group.base_text.clone();
                }
            }
        }
        scrubbed = copy;
        &scrubbed
    };
    let diff_opts = DiffOptions {
        compare_selinux: policy.compare_selinux,
    };
    let changes = diff::diff(&base.entries, &target.tree.entries, diff_opts);
    let plan = layout::plan(&PlanInput {
        tree: &target.tree,
        base,
        changes: &changes,
        rpmdb: target.rpmdb.as_ref().map(|d| d.location.as_str()),
        move_etc: opts.usr_etc && !target.etc_in_usr,
        extra_clean: &policy.clean,
        in_place: &target.in_place,
        packages_added: &pkg_changes.added,
        keep_logs: &policy.keep_logs,
        packages: target.rpmdb.as_ref().map_or(&[], |d| d.packages.as_slice()),
        structural,
    });
    let input = Input {
        base,
        current: &target.tree,
        changes: &changes,
        packages: &pkg_changes,
        plan: &plan,
        structural,
    };
    let resolve = Resolve {
        allow_overrides: opts.allow_overrides,
        policy,
        skip: opts.skip,
    };
    let mut findings = checks::run(&input);
    policy::apply(&mut findings, resolve);
    checks::sort(&mut findings);
    let mut report = Report::new(command, base_origin.to_string(), findings, pkg_changes);
    report.skipped_mounts = target.tree.mounts.clone();
    report.plan = Some(plan);
    if opts.list_changes {
        report.changes = Some(path_changes(&changes));
    }
    report
}

fn path_changes(changes: &[Change]) -> PathChanges {
    let mut out = PathChanges::default();
    for c in changes {
        if zone(c.path()) == Zone::Runtime {
            continue;
        }
        let list = match c {
            Change::Added(_) => &mut out.added,
            Change::Modified { .. } => &mut out.modified,
            Change::Removed(_) => &mut out.removed,
        };
        list.push(c.path().to_string());
    }
    out
}
