//! `no-base-reference`: the run had no base to compare with, so only the
//! structural checks ran (see [`crate::engine::evaluate`]).

use super::{CHECKS, Check, Finding, Level};

/// `no-base-reference`.
pub const NO_BASE_REFERENCE: Check = Check {
    id: "no-base-reference",
    default_level: Level::Warn,
    overridable: false,
    needs_base: false,
    summary: "No base reference: the add-only rule was not enforced",
    description: "With no base to compare with (no /usr/lib/ostree-finalize/base.json \
in the tree or image, no ostree repository with one commit at /sysroot/ostree/repo, \
no --base or --base-image), only the checks that need no base ran: the whole tree \
is treated as the image's own (undeclared /var content converted, undeclared users \
given sysusers.d entries, runtime content cleaned, layout and bootc rules). Nothing \
checked that base content was left unmodified. Fix: run `ostree-finalize snapshot` \
on the pristine base image, or pass --base FILE (a snapshot), --base \
ostree:REPO[:REF] (the commit the image was made from) or, for lint, --base-image \
REF (the image it was built FROM).",
};

/// Say that the add-only rule was not enforced, and which checks did not run.
pub(super) fn check(out: &mut Vec<Finding>) {
    let skipped: Vec<&str> = CHECKS
        .iter()
        .filter(|c| c.needs_base)
        .map(|c| c.id)
        .collect();
    let msg = format!(
        "no base reference was found, so the add-only rule was not enforced: changes to \
         base content cannot be seen, and these checks did not run: {}. The whole tree \
         was treated as the image's own. To enforce add-only, run `ostree-finalize \
         snapshot` on the pristine base image, or pass --base FILE, --base \
         ostree:REPO[:REF], or (lint) --base-image REF",
        skipped.join(", ")
    );
    out.push(Finding::new(&NO_BASE_REFERENCE, None, msg));
}
