//! Pure: (base, current) → the list of changes. No I/O.
//!
//! Both sides are sorted by path, so this is one merge pass. What counts as
//! a change follows DESIGN.md: type, mode, owner, content digest, symlink
//! target and the xattrs a build can set. Never mtime, ctime or link count;
//! never overlay internals or ostree's own `user.ostreemeta`;
//! `security.selinux` only when asked.
//!
//! The content digest is SHA-256, or, against a base read from an ostree
//! commit, ostree's content checksum: the walk computes it for the tree
//! from the base's file header, so it differs exactly when the content does
//! (see [`crate::ostree`]).

use std::cmp::Ordering;

use crate::manifest::{Entry, Kind};

/// What differs between a base path and the current one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Aspect {
    /// File type (file → symlink, directory → symlink, …).
    Kind,
    /// Permission bits, including setuid/setgid/sticky.
    Mode,
    /// Owner uid.
    Uid,
    /// Owner gid.
    Gid,
    /// Content digest of a regular file.
    Content,
    /// Symlink target.
    Target,
    /// Device number.
    Rdev,
    /// One extended attribute, by name.
    Xattr(String),
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<'a> {
    /// A path only the current tree has.
    Added(&'a Entry),
    /// A path only the base has.
    Removed(&'a Entry),
    /// A path both have, with differences.
    Modified {
        /// The base side.
        base: &'a Entry,
        /// The current side.
        current: &'a Entry,
        /// What differs, sorted.
        aspects: Vec<Aspect>,
    },
}

impl Change<'_> {
    /// The path this change is about.
    pub fn path(&self) -> &str {
        match self {
            Change::Added(e) | Change::Removed(e) => &e.path,
            Change::Modified { current, .. } => &current.path,
        }
    }
}

/// Comparison switches.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiffOptions {
    /// Also compare `security.selinux` (off by default: runtimes relabel).
    pub compare_selinux: bool,
}

/// Where a `bare-user` ostree repository keeps a file's real ownership and
/// xattrs; a checkout hardlinked from one carries it on every file.
pub const OSTREE_META_XATTR: &str = "user.ostreemeta";

/// Is this xattr one the comparison looks at?
pub fn compared_xattr(name: &str, opts: DiffOptions) -> bool {
    if name.starts_with("user.overlay.")
        || name.starts_with("trusted.overlay.")
        || name == OSTREE_META_XATTR
    {
        return false;
    }
    name == "security.capability"
        || name.starts_with("user.")
        || (opts.compare_selinux && name == "security.selinux")
}

/// Compare one path's two versions.
pub fn compare(base: &Entry, current: &Entry, opts: DiffOptions) -> Vec<Aspect> {
    let mut out = Vec::new();
    if base.kind != current.kind {
        out.push(Aspect::Kind);
    }
    if base.mode != current.mode {
        out.push(Aspect::Mode);
    }
    if base.uid != current.uid {
        out.push(Aspect::Uid);
    }
    if base.gid != current.gid {
        out.push(Aspect::Gid);
    }
    if base.kind == current.kind {
        if content_differs(base, current) {
            out.push(Aspect::Content);
        }
        if base.target != current.target {
            out.push(Aspect::Target);
        }
        if base.rdev != current.rdev {
            out.push(Aspect::Rdev);
        }
    }
    let names = base.xattrs.keys().chain(current.xattrs.keys());
    let mut xattrs: Vec<&String> = names.filter(|n| compared_xattr(n, opts)).collect();
    xattrs.sort();
    xattrs.dedup();
    for name in xattrs {
        if base.xattrs.get(name) != current.xattrs.get(name) {
            out.push(Aspect::Xattr(name.clone()));
        }
    }
    out
}

/// Whether the content digests of two entries of the same kind differ: the
/// ostree checksums when both have one (a tree walked against an ostree
/// base), else the SHA-256s. An entry with only an ostree checksum never
/// equals one with only a SHA-256, so a tree that was not walked against
/// its ostree base shows its files as changed rather than hiding a change.
fn content_differs(base: &Entry, current: &Entry) -> bool {
    match (&base.ostree, &current.ostree) {
        (Some(b), Some(c)) if base.kind == Kind::File => b != c,
        _ => base.sha256 != current.sha256,
    }
}

/// Merge two sorted entry lists into the changes between them.
pub fn diff<'a>(base: &'a [Entry], current: &'a [Entry], opts: DiffOptions) -> Vec<Change<'a>> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < base.len() || j < current.len() {
        let order = match (base.get(i), current.get(j)) {
            (Some(b), Some(c)) => b.path.cmp(&c.path),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match order {
            Ordering::Less => {
                out.push(Change::Removed(&base[i]));
                i += 1;
            }
            Ordering::Greater => {
                out.push(Change::Added(&current[j]));
                j += 1;
            }
            Ordering::Equal => {
                let aspects = compare(&base[i], &current[j], opts);
                if !aspects.is_empty() {
                    out.push(Change::Modified {
                        base: &base[i],
                        current: &current[j],
                        aspects,
                    });
                }
                i += 1;
                j += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Checksum, Hex};

    fn file(path: &str, content: u8) -> Entry {
        let mut e = Entry::new(path.into(), Kind::File, 0o644, 0, 0);
        e.size = 1;
        e.sha256 = Some(Checksum([content; 32]));
        e
    }

    #[test]
    fn identical_trees_have_no_changes() {
        let a = vec![file("/a", 1), file("/b", 2)];
        assert!(diff(&a, &a.clone(), DiffOptions::default()).is_empty());
    }

    #[test]
    fn added_removed_and_modified_are_found_in_one_pass() {
        let base = vec![file("/a", 1), file("/b", 2), file("/c", 3)];
        let mut b2 = file("/b", 9);
        b2.mode = 0o4755;
        let current = vec![file("/a", 1), b2, file("/d", 4)];
        let changes = diff(&base, &current, DiffOptions::default());
        let paths: Vec<_> = changes.iter().map(|c| c.path()).collect();
        assert_eq!(paths, ["/b", "/c", "/d"]);
        assert!(matches!(&changes[0], Change::Modified { aspects, .. }
            if aspects == &[Aspect::Mode, Aspect::Content]));
        assert!(matches!(changes[1], Change::Removed(_)));
        assert!(matches!(changes[2], Change::Added(_)));
    }

    #[test]
    fn selinux_and_overlay_xattrs_are_ignored_by_default() {
        let base = file("/a", 1);
        let mut cur = base.clone();
        cur.xattrs
            .insert("security.selinux".into(), Hex(b"x".to_vec()));
        cur.xattrs
            .insert("trusted.overlay.origin".into(), Hex(b"y".to_vec()));
        assert!(compare(&base, &cur, DiffOptions::default()).is_empty());
        let strict = DiffOptions {
            compare_selinux: true,
        };
        assert_eq!(
            compare(&base, &cur, strict),
            [Aspect::Xattr("security.selinux".into())]
        );
        cur.xattrs
            .insert("security.capability".into(), Hex(vec![1]));
        assert_eq!(
            compare(&base, &cur, DiffOptions::default()),
            [Aspect::Xattr("security.capability".into())]
        );
    }

    #[test]
    fn against_an_ostree_base_content_is_compared_by_ostree_checksum() {
        let mut base = file("/a", 1);
        base.sha256 = None;
        base.ostree = Some(Checksum([7; 32]));
        // The walk computed the base's checksum for this file: unchanged,
        // whatever its SHA-256 would be.
        let mut cur = file("/a", 9);
        cur.sha256 = None;
        cur.ostree = Some(Checksum([7; 32]));
        assert!(compare(&base, &cur, DiffOptions::default()).is_empty());
        cur.ostree = Some(Checksum([8; 32]));
        assert_eq!(
            compare(&base, &cur, DiffOptions::default()),
            [Aspect::Content]
        );
        // A tree not walked against the ostree base cannot hide a change.
        let plain = file("/a", 1);
        assert_eq!(
            compare(&base, &plain, DiffOptions::default()),
            [Aspect::Content]
        );
        // ostree's own metadata xattr on hardlinked bare-user checkouts.
        let mut linked = cur.clone();
        linked.ostree = base.ostree;
        linked
            .xattrs
            .insert(OSTREE_META_XATTR.into(), Hex(b"meta".to_vec()));
        assert!(compare(&base, &linked, DiffOptions::default()).is_empty());
    }

    #[test]
    fn a_type_change_does_not_also_report_content() {
        let base = file("/a", 1);
        let mut cur = base.clone();
        cur.kind = Kind::Symlink;
        cur.sha256 = None;
        cur.target = Some("x".into());
        assert_eq!(compare(&base, &cur, DiffOptions::default()), [Aspect::Kind]);
    }
}
