//! The tree as `apply` sees it, shared by every step and importing none of
//! them: read access through [`TreeView`], one [`Node`] per path, and the
//! files `apply` itself generates in the tree.

use anyhow::Result;

use crate::manifest::Kind;

/// The tmpfiles.d file `apply` writes (`/var` content, homes, SSH keys,
/// owners that exist only at boot).
pub const GENERATED_TMPFILES: &str = "/usr/lib/tmpfiles.d/ostree-finalize-apply.conf";

/// The sysusers.d file `apply` writes (users, groups, memberships).
pub const GENERATED_SYSUSERS: &str = "/usr/lib/sysusers.d/ostree-finalize-apply.conf";

/// One node of the tree, as the planner sees it (never followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// File type.
    pub kind: Kind,
    /// Permission bits.
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Symlink target, encoded like paths ([`crate::path::encode`]).
    pub target: Option<String>,
}

/// Read access to the tree. Paths are absolute and encoded; a path whose
/// parent is missing or not a directory simply does not exist.
pub trait TreeView {
    /// The node at `path`, not following a final symlink.
    fn node(&self, path: &str) -> Result<Option<Node>>;
    /// The contents of the regular file at `path`.
    fn read(&self, path: &str) -> Result<Vec<u8>>;
    /// The names in the directory at `path`, sorted; empty when missing.
    fn list(&self, path: &str) -> Result<Vec<String>>;
}
