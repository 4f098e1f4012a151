//! Policy bookkeeping as findings: `unused-waiver`.

use super::{Check, Level};

/// `unused-waiver`.
pub const UNUSED_WAIVER: Check = Check {
    id: "unused-waiver",
    default_level: Level::Warn,
    overridable: false,
    needs_base: false,
    summary: "A policy waiver or package override matched nothing",
    description: "Every waiver in the policy should be there for a reason that \
still holds. One that matches no finding is stale: it hides nothing today and may \
hide something unintended tomorrow. Fix: remove it from the policy.",
};
