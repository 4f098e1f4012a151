//! Image-level checks that only `lint` can make: the override label and
//! the finalize record. (Being built.)

use super::{Check, Level};

/// `override-unlabeled`.
pub const OVERRIDE_UNLABELED: Check = Check {
    id: "override-unlabeled",
    default_level: Level::Deny,
    overridable: false,
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
    summary: "LABEL ostree.override=true is set but nothing overrides the base",
    description: "The image claims to override base content but does not. A stale \
label hides real overrides added later. Fix: remove the label.",
};

/// `not-finalized`.
pub const NOT_FINALIZED: Check = Check {
    id: "not-finalized",
    default_level: Level::Warn,
    overridable: false,
    summary: "The image carries no finalize record",
    description: "The image has no /usr/lib/ostree-finalize/record.json, so its \
build never ran `ostree container finalize` as the last step: /var content, \
users and runtime leftovers were not converted and may be lost at deploy. Fix: \
add `RUN ostree container finalize` as the last step of the Containerfile.",
};
