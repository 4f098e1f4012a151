//! The ostree layout rewrite: [`plan`] (pure: tree + base → the list of
//! actions) then [`apply`] (carries the plan out, no-follow, every file by
//! temp-file-and-rename, in an order that a rerun after a crash converges).

pub(crate) mod apply;
pub mod links;
mod plan;
mod relocate;
pub mod sysusers;
pub mod tmpfiles;

use serde::Serialize;

pub use apply::apply;
pub use plan::{INJECTED, PlanInput, plan};

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
    /// Copy one relocated entry (a file, symlink or whole directory tree)
    /// into /usr, keeping modes, owners and the xattrs the diff compares.
    /// The source is removed later, by `Remove` actions, once the tmpfiles.d
    /// line that points the old path at the copy is written.
    Relocate {
        /// Where the entry is now (`/var/opt/app`, or `/opt/app` when the
        /// build replaced the base's link with a directory).
        source: String,
        /// Where it goes (`/usr/lib/opt/app`).
        dest: String,
        /// What to copy, parents first.
        items: Vec<Item>,
    },
    /// Put a base symlink back in place of the empty directory (or
    /// nothing) the build left there.
    RestoreLink {
        /// The link (`/opt`).
        path: String,
        /// Its target, as the base has it (`var/opt`).
        target: String,
    },
}

/// One path of a relocated entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// Path relative to the entry (`bin/run`); empty for the entry itself.
    pub rel: String,
    /// File, directory or symlink.
    pub kind: crate::manifest::Kind,
    /// Permission bits.
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Symlink target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Extended attributes carried over (`security.capability`, `user.*`).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub xattrs: std::collections::BTreeMap<String, crate::manifest::Hex>,
}

/// Image content that reached /var through one of the base's links, moved
/// into /usr.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Relocation {
    /// The entry as programs and rpm name it (`/opt/app`).
    pub path: String,
    /// Where it was in the tree (`/var/opt/app`, or `/opt/app`).
    pub source: String,
    /// Where it moves (`/usr/lib/opt/app`).
    pub dest: String,
    /// The path of its tmpfiles.d `L` line (`/var/opt/app`).
    pub link: String,
    /// The base link it went through, as `PATH -> TARGET`.
    pub via: String,
    /// Paths moved, the entry included.
    pub entries: usize,
}

/// An entry that cannot be relocated, and why (denied).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refused {
    /// The entry as programs name it.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// A base link into /var the build replaced (or removed), restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoredLink {
    /// The link (`/opt`).
    pub path: String,
    /// Its target (`var/opt`).
    pub target: String,
    /// Whether the build had replaced it with a directory (else it was
    /// missing).
    pub replaced: bool,
    /// Entries relocated out of the directory.
    pub relocated: usize,
}

/// A file in /var that a package owns, converted to a seed-once copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageFile {
    /// The file.
    pub path: String,
    /// NEVRA of the package.
    pub package: String,
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
    /// Image content moved from /var into /usr (see [`links::RELOCATED`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub relocated: Vec<Relocation>,
    /// Content that should be relocated but cannot be (denied).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unrelocatable: Vec<Refused>,
    /// Base links into /var put back.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restored_links: Vec<RestoredLink>,
    /// Package-owned /var files converted to seed-once copies.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub package_var_files: Vec<PackageFile>,
    /// Empty files a build runtime injected into /etc, removed (see
    /// [`INJECTED`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub injected: Vec<String>,
}
