//! `snapshot`: record the pristine base (every path, the package set, and
//! which package owns which path).

use crate::manifest::Manifest;
use crate::target::Target;

/// Turn a walked tree and its rpm database into a base reference (see
/// [`Manifest::record`]).
pub fn manifest_from(target: Target) -> Manifest {
    Manifest::record(target.tree.entries, target.rpmdb)
}
