//! Hashing an image's layers against a base read from an ostree commit
//! (`lint --image REF --base ostree:REPO[:REF]`), in the layers' one pass.
//!
//! The walk of a directory ([`crate::rootfs`]) hashes each base regular
//! file behind the *base's* file header, so that its checksum equals the
//! base's exactly when the content is unchanged (see [`crate::ostree`]).
//! Layers get the same, member by member, with nothing read twice and no
//! content held:
//!
//! - A regular-file member at a path the base has as a regular file is
//!   hashed behind that path's header; any other gets a SHA-256
//!   ([`Against::header_for`]).
//! - A member at `/sysroot/ostree/repo/objects/XX/YYYY….file` is hashed
//!   behind the header of the base object it is named after, when the base
//!   has that object. That is where ostree's container images keep each
//!   file's content, every checkout path (`/usr/bin/bash`) being a hardlink
//!   to it; those paths get their checksum through the hardlink. The name
//!   is only a claim: the content decides the checksum.
//! - Each node of the merged tree remembers the header its digest was
//!   computed behind ([`super::merge::Node::hashed`]); a hardlink takes its
//!   target's, as it takes its content, and a later member at the same
//!   path replaces both. When the tree becomes entries
//!   ([`Against::settle`]), a base file whose digest was computed behind
//!   another header (a hardlink to a file at another path) is settled by
//!   hashing the base's own object behind that header, from the host
//!   repository: equal digests mean equal content, so the file gets the
//!   base's checksum; different ones mean changed content. Only such
//!   hardlinks cost a read, of the base repository, never of the layer.

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::manifest::{Checksum, Entry, Kind};
use crate::ostree::objects::FileHeader;
use crate::ostree::repo::{Repo, parse_checksum};
use crate::ostree::{BaseFiles, object_digest};

/// Where ostree's container images keep content objects.
pub const OBJECTS: &str = "/sysroot/ostree/repo/objects/";

/// A base read from an ostree commit, as the layers are hashed against it.
#[derive(Debug, Clone, Copy)]
pub struct Against<'a> {
    /// The base's regular files.
    pub files: &'a BaseFiles,
    /// The host repository holding the commit (for [`Against::settle`]).
    pub repo: &'a Repo,
}

impl Against<'_> {
    /// The header a regular-file member at `path` is hashed behind: its
    /// base file's, or for a content object named after a base object,
    /// that object's. `None`: a plain SHA-256.
    pub fn header_for(&self, path: &str) -> Option<Arc<FileHeader>> {
        if let Some(base) = self.files.get(path) {
            return Some(base.header.clone());
        }
        let object = object_name(path)?;
        self.files.object_header(&object).cloned()
    }

    /// Whether the member at `path` is a content object holding the text
    /// the walk keeps of some base path ([`crate::zones::text_kept`]): a
    /// path of the image may be a hardlink to it.
    pub fn keeps_text(&self, path: &str) -> bool {
        object_name(path).is_some_and(|o| self.files.keeps_text(&o))
    }

    /// Give the regular file `e` at `path`, whose digest was computed
    /// behind `hashed` (in `e.ostree`; with no header, a SHA-256 in
    /// `e.sha256`), the digest it is compared with the base by:
    ///
    /// - a path the base lacks keeps its digest (it is compared with
    ///   nothing);
    /// - a base file hashed behind its own header keeps it;
    /// - any other base file (a hardlink to a file at another path) gets
    ///   the base's checksum when its content is the base object's, else a
    ///   digest that differs from it (see the module docs).
    pub fn settle(
        &self,
        path: &str,
        e: &mut Entry,
        hashed: Option<&Arc<FileHeader>>,
    ) -> Result<()> {
        if e.kind != Kind::File {
            return Ok(());
        }
        let Some(base) = self.files.get(path) else {
            return Ok(());
        };
        if hashed.is_some_and(|h| Arc::ptr_eq(h, &base.header) || h == &base.header) {
            return Ok(());
        }
        let (prefix, digest) = match hashed {
            Some(h) => (h.bytes(), e.ostree.take()),
            None => (&[][..], e.sha256.take()),
        };
        let digest = digest.with_context(|| format!("{path}: a regular file with no digest"))?;
        let object = object_digest(self.repo, &base.checksum, prefix)?;
        e.ostree = Some(if object == digest.0 {
            Checksum(base.checksum)
        } else {
            digest
        });
        Ok(())
    }
}

/// The object a path under [`OBJECTS`] names: `XX/` and 62 hex digits,
/// then `.file`.
fn object_name(path: &str) -> Option<crate::ostree::Checksum> {
    let rest = path.strip_prefix(OBJECTS)?.strip_suffix(".file")?;
    let (fan, name) = rest.split_once('/')?;
    if fan.len() != 2 || name.len() != 62 {
        return None;
    }
    parse_checksum(&format!("{fan}{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_content_object_paths_name_an_object() {
        let hex = "ab".to_string() + &"c".repeat(62);
        let path = format!("{OBJECTS}ab/{}.file", &hex[2..]);
        assert_eq!(object_name(&path), parse_checksum(&hex));
        for other in [
            format!("{OBJECTS}ab/{}.filez", &hex[2..]),
            format!("{OBJECTS}ab/{}.file-xattrs", &hex[2..]),
            format!("{OBJECTS}ab/{}.dirtree", &hex[2..]),
            format!("{OBJECTS}abc/{}.file", &hex[3..]),
            format!("{OBJECTS}ab/{}.file", &hex[3..]),
            format!("{OBJECTS}zz/{}.file", &hex[2..]),
            format!("/usr/ostree/repo/objects/ab/{}.file", &hex[2..]),
        ] {
            assert_eq!(object_name(&other), None, "{other}");
        }
    }
}
