//! The ostree layout rewrite: [`plan`] (pure: tree + base → the list of
//! actions) then [`apply`] (carries the plan out, no-follow, every file by
//! temp-file-and-rename, in an order that a rerun after a crash converges).

pub(crate) mod apply;
mod plan;
pub mod sysusers;
pub mod tmpfiles;

use serde::Serialize;

pub use apply::apply;
pub use plan::{PlanInput, plan};

/// Where `/var` files are preserved for tmpfiles.d `C` lines.
pub const FACTORY: &str = "/usr/share/factory";

/// One step of the rewrite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Copy a `/var` file to the factory, keeping mode and owner.
    CopyToFactory {
        /// The `/var` file.
        source: String,
        /// Its factory copy.
        dest: String,
        /// Permission bits.
        mode: u32,
        /// Owner uid.
        uid: u32,
        /// Owner gid.
        gid: u32,
    },
    /// Write a generated file (tmpfiles.d, sysusers.d), mode 0644.
    Write {
        /// Absolute path.
        path: String,
        /// Full content.
        content: String,
    },
    /// Remove a file, symlink or (empty) directory.
    Remove {
        /// Absolute path.
        path: String,
        /// Whether it is a directory.
        dir: bool,
    },
    /// Fold the rpmdb's WAL into the database with sqlite, then remove the
    /// `-shm`/`-wal` and lock files.
    CheckpointRpmdb {
        /// The rpmdb directory.
        dir: String,
    },
    /// Move `/etc` to `/usr/etc` (`--usr-etc`).
    MoveEtcToUsrEtc,
    /// Give a file its own inode, same content, owner, mode and xattrs: it
    /// was a hardlink to a base ostree object the build wrote in place.
    Unshare {
        /// Absolute path.
        path: String,
    },
    /// Rebuild rpm-ostree's record of the base's rpm database, written in
    /// place together with the rpm database through a shared ostree
    /// object: the current database without the packages the build added.
    RebuildBaseDb {
        /// The record's directory (`/usr/lib/sysimage/rpm-ostree-base-db`).
        dir: String,
        /// The rpm database directory it is rebuilt from.
        from: String,
        /// NEVRAs of the packages the build added, left out.
        drop: Vec<String>,
    },
}

/// Runtime content cleaned below one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cleaned {
    /// The top path cleaned (a child of a runtime directory, or a leftover).
    pub path: String,
    /// Entries removed, itself included.
    pub entries: usize,
}

/// The full rewrite, decided before any byte is written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// What to do, in order.
    pub actions: Vec<Action>,
    /// `/var` paths converted to tmpfiles.d lines.
    pub converted: Vec<String>,
    /// `/var` paths whose names tmpfiles.d cannot express (left in place,
    /// denied).
    pub unconvertible: Vec<String>,
    /// Base `/var` paths the build changed or removed (not carried to
    /// existing deployments).
    pub var_changed: Vec<String>,
    /// Runtime content cleaned.
    pub cleaned: Vec<Cleaned>,
    /// Users and groups given sysusers.d entries ("user NAME", "group NAME").
    pub users_added: Vec<String>,
    /// Files the plan writes.
    pub generated: Vec<String>,
    /// Base ostree objects the build wrote in place, repaired: each path
    /// gets its own copy and the object leaves the image's repository.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub in_place: Vec<crate::ostree::InPlace>,
}
