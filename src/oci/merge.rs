//! The merged filesystem of an image's layers, in memory, metadata only.
//!
//! Pure: layers are applied as events ([`Merged::put`], [`Merged::hardlink`],
//! [`Merged::whiteout`], [`Merged::opaque`]) and nothing here touches the
//! disk. Paths are absolute, encoded by [`crate::path::encode`], and always
//! taken literally: a symlink in the merged tree is never followed while
//! applying a layer.
//!
//! The rules are the OCI image spec's ("Applying changesets"), read the way
//! overlayfs (the storage that container tools use) stacks layers, where
//! each layer is unpacked into a directory of its own:
//!
//! - A whiteout `.wh.NAME` hides `NAME` and everything beneath it in the
//!   lower layers; an opaque marker `.wh..wh..opq` hides everything beneath
//!   its directory in the lower layers. Neither touches what the same layer
//!   adds, whatever the order of the members, so an opaque marker acts as
//!   if applied before its siblings.
//! - Later members win over earlier ones. A directory over a directory
//!   only changes its metadata; anything else over a directory replaces it
//!   with all it held.
//! - A member's parent directories exist in its layer even when the layer
//!   has no member for them ("implied"). An implied directory takes the
//!   metadata of the directory it stacks over; where there is none, it is
//!   `0755 root:root`, as containers/storage and moby create missing parents
//!   when unpacking. Where a lower layer has a file or a symlink at that
//!   path, the layer's directory hides it (overlayfs does not merge a
//!   directory into a non-directory). So a whiteout or a member "under" a
//!   symlinked directory never reaches the symlink's target: it replaces
//!   the symlink, and that shows up as a changed base path.
//! - A hardlink takes the content and metadata of its target as the merged
//!   tree has it at that point: they are one inode. (What was kept of the
//!   target's content comes along; a link in `/etc` to a file elsewhere
//!   therefore has no text for an `etc-modified` diff, only its digest. So
//!   does the header its digest was computed behind, see
//!   [`super::against`].)

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use anyhow::{Result, bail};

use crate::manifest::{Entry, Kind};
use crate::ostree::objects::FileHeader;

/// The most paths the merged tree may hold: about 1.5 GiB of metadata.
/// Fedora CoreOS has about 120 000.
pub const MAX_ENTRIES: usize = 4_000_000;

/// Bytes kept for a path (rpm database files, the base reference), on disk
/// in a private temporary directory; deleted when the last holder goes.
pub type Kept = Arc<tempfile::TempPath>;

/// One path of the merged tree.
#[derive(Debug, Clone)]
pub struct Node {
    /// The metadata, as it will be compared. `path` is left empty here; the
    /// map key is the path.
    pub entry: Entry,
    /// The layer that last put this path (for whiteout scoping).
    pub layer: u32,
    /// The content, when it is kept.
    pub kept: Option<Kept>,
    /// For a regular file hashed against an ostree base: the file header
    /// its digest (`entry.ostree`) was computed behind. `None`: a plain
    /// SHA-256 (`entry.sha256`). See [`super::against`].
    pub hashed: Option<Arc<FileHeader>>,
}

/// The merged tree.
#[derive(Debug)]
pub struct Merged {
    nodes: BTreeMap<String, Node>,
    layer: u32,
    max_entries: usize,
}

impl Default for Merged {
    fn default() -> Self {
        Merged::new(MAX_ENTRIES)
    }
}

/// A directory entry with no member of its own: `0755 root:root`.
pub fn implied_dir() -> Entry {
    Entry::new(String::new(), Kind::Dir, 0o755, 0, 0)
}

impl Merged {
    /// An empty tree (just `/`, implied) holding at most `max_entries` paths.
    pub fn new(max_entries: usize) -> Merged {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "/".to_string(),
            Node {
                entry: implied_dir(),
                layer: 0,
                kept: None,
                hashed: None,
            },
        );
        Merged {
            nodes,
            layer: 0,
            max_entries,
        }
    }

    /// Start the next layer. Layers are numbered from 1.
    pub fn begin_layer(&mut self) {
        self.layer += 1;
    }

    /// Look a path up.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Every path and node, sorted by path.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.nodes.iter()
    }

    /// Every path and node, sorted by path, consuming the tree.
    pub fn into_nodes(self) -> impl Iterator<Item = (String, Node)> {
        self.nodes.into_iter()
    }

    /// Put a member at `path`: a file, directory, symlink or special file.
    pub fn put(&mut self, path: &str, entry: Entry, kept: Option<Kept>) -> Result<()> {
        self.put_hashed(path, entry, kept, None)
    }

    /// [`Merged::put`] a regular file whose digest was computed behind
    /// `hashed` (see [`Node::hashed`]).
    pub fn put_hashed(
        &mut self,
        path: &str,
        entry: Entry,
        kept: Option<Kept>,
        hashed: Option<Arc<FileHeader>>,
    ) -> Result<()> {
        if path == "/" {
            if entry.kind != Kind::Dir {
                bail!(
                    "the image root / is not a directory (it is a {})",
                    entry.kind.name()
                );
            }
        } else {
            self.ensure_parents(path)?;
        }
        match self.nodes.get(path) {
            Some(old) if old.entry.kind == Kind::Dir && entry.kind != Kind::Dir => {
                self.remove_beneath(path, false);
            }
            _ => {}
        }
        self.insert(path, entry, kept, hashed)
    }

    /// Put a hardlink at `path` to `target`, which must exist in the merged
    /// tree and not be a directory.
    pub fn hardlink(&mut self, path: &str, target: &str) -> Result<()> {
        let Some(node) = self.nodes.get(target) else {
            bail!("hardlink to {target}, which does not exist at that point");
        };
        if node.entry.kind == Kind::Dir {
            bail!("hardlink to {target}, which is a directory");
        }
        let (entry, kept, hashed) = (node.entry.clone(), node.kept.clone(), node.hashed.clone());
        if path == target {
            return Ok(());
        }
        self.put_hashed(path, entry, kept, hashed)
    }

    /// Give the file at `path` the text the walk would keep of it (a
    /// hardlink to a content object whose text was read as it streamed).
    pub fn set_text(&mut self, path: &str, text: String) {
        if let Some(node) = self.nodes.get_mut(path) {
            node.entry.text = Some(text);
        }
    }

    /// A whiteout: hide `path` and everything beneath it in lower layers.
    pub fn whiteout(&mut self, path: &str) -> Result<()> {
        if path == "/" {
            return Ok(());
        }
        self.ensure_parents(path)?;
        self.remove_beneath(path, true);
        if self.nodes.get(path).is_some_and(|n| n.layer != self.layer) {
            self.nodes.remove(path);
        }
        Ok(())
    }

    /// An opaque directory: `dir` stays (it is in this layer), everything
    /// beneath it from lower layers is hidden.
    pub fn opaque(&mut self, dir: &str) -> Result<()> {
        if dir != "/" {
            self.ensure_parents(dir)?;
            self.ensure_dir(dir)?;
        }
        self.remove_beneath(dir, true);
        Ok(())
    }

    /// Make every ancestor of `path` a directory of this layer.
    fn ensure_parents(&mut self, path: &str) -> Result<()> {
        let mut end = 0;
        while let Some(i) = path[end + 1..].find('/') {
            end += 1 + i;
            self.ensure_dir(&path[..end])?;
        }
        Ok(())
    }

    /// Make `dir` a directory of this layer: mark an existing directory,
    /// replace anything else with an implied directory.
    fn ensure_dir(&mut self, dir: &str) -> Result<()> {
        match self.nodes.get_mut(dir) {
            Some(node) if node.entry.kind == Kind::Dir => {
                node.layer = self.layer;
                Ok(())
            }
            _ => self.insert(dir, implied_dir(), None, None),
        }
    }

    fn insert(
        &mut self,
        path: &str,
        entry: Entry,
        kept: Option<Kept>,
        hashed: Option<Arc<FileHeader>>,
    ) -> Result<()> {
        let node = Node {
            entry,
            layer: self.layer,
            kept,
            hashed,
        };
        if self.nodes.insert(path.to_string(), node).is_none()
            && self.nodes.len() > self.max_entries
        {
            bail!(
                "the image has more than {} paths, the limit this tool holds in memory",
                self.max_entries
            );
        }
        Ok(())
    }

    /// Remove everything strictly beneath `dir`; with `lower_only`, only
    /// what this layer did not put.
    fn remove_beneath(&mut self, dir: &str, lower_only: bool) {
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        let doomed: Vec<String> = self
            .nodes
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, n)| k.as_str() != "/" && !(lower_only && n.layer == self.layer))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }

    /// Resolve `path` as if the merged tree were `/`, following symlinks:
    /// absolute targets restart at the root, `..` stops at the root, and
    /// more than [`crate::rpmdb::find::MAX_SYMLINKS`] links is an error.
    /// Returns the symlink-free path, or `None` when a component is missing
    /// or not a directory.
    pub fn resolve(&self, path: &str) -> Result<Option<String>> {
        let mut pending: Vec<Vec<u8>> = Vec::new();
        let Some(raw) = crate::path::decode(path) else {
            return Ok(None);
        };
        push_steps(&mut pending, &raw);
        let mut resolved: Vec<Vec<u8>> = Vec::new();
        let mut links = 0u32;
        while let Some(step) = pending.pop() {
            match step.as_slice() {
                b"/" => resolved.clear(),
                b".." => {
                    resolved.pop();
                }
                name => {
                    resolved.push(name.to_vec());
                    let here = encode_parts(&resolved);
                    let Some(node) = self.nodes.get(&here) else {
                        return Ok(None);
                    };
                    if node.entry.kind != Kind::Symlink {
                        if node.entry.kind != Kind::Dir && !pending.is_empty() {
                            return Ok(None);
                        }
                        continue;
                    }
                    links += 1;
                    if links > crate::rpmdb::find::MAX_SYMLINKS {
                        bail!("{path}: too many levels of symbolic links");
                    }
                    resolved.pop();
                    let target = node
                        .entry
                        .target
                        .as_deref()
                        .and_then(crate::path::decode)
                        .unwrap_or_default();
                    push_steps(&mut pending, &target);
                }
            }
        }
        Ok(Some(encode_parts(&resolved)))
    }
}

/// Queue a path's steps (`/` for a leading slash, `..`, names) so the
/// first is popped first.
fn push_steps(pending: &mut Vec<Vec<u8>>, path: &[u8]) {
    let mut steps: Vec<Vec<u8>> = Vec::new();
    if path.starts_with(b"/") {
        steps.push(b"/".to_vec());
    }
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            p => steps.push(p.to_vec()),
        }
    }
    pending.extend(steps.into_iter().rev());
}

fn encode_parts(parts: &[Vec<u8>]) -> String {
    let mut raw = Vec::new();
    for p in parts {
        raw.push(b'/');
        raw.extend_from_slice(p);
    }
    if raw.is_empty() {
        raw.push(b'/');
    }
    crate::path::encode(&raw).0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(mode: u32) -> Entry {
        Entry {
            kind: Kind::File,
            mode,
            ..implied_dir()
        }
    }

    fn dir(mode: u32) -> Entry {
        Entry {
            mode,
            ..implied_dir()
        }
    }

    fn link(target: &str) -> Entry {
        Entry {
            kind: Kind::Symlink,
            mode: 0o777,
            target: Some(target.into()),
            ..implied_dir()
        }
    }

    fn paths(m: &Merged) -> Vec<String> {
        m.iter().map(|(k, _)| k.clone()).collect()
    }

    /// /usr/lib/{a,b}, /lib -> usr/lib, /usr/bin/tool, all in layer 1.
    fn base() -> Merged {
        let mut m = Merged::default();
        m.begin_layer();
        m.put("/usr", dir(0o755), None).unwrap();
        m.put("/usr/lib/a", file(0o644), None).unwrap();
        m.put("/usr/lib/b", file(0o644), None).unwrap();
        m.put("/usr/bin/tool", file(0o755), None).unwrap();
        m.put("/lib", link("usr/lib"), None).unwrap();
        m
    }

    #[test]
    fn implied_parents_are_0755_root_and_explicit_dirs_keep_children() {
        let mut m = base();
        assert_eq!(m.get("/usr/lib").unwrap().entry.mode, 0o755);
        m.begin_layer();
        m.put("/usr/lib", dir(0o700), None).unwrap();
        assert_eq!(m.get("/usr/lib").unwrap().entry.mode, 0o700);
        assert!(
            m.get("/usr/lib/a").is_some(),
            "a directory over a directory merges"
        );
    }

    #[test]
    fn whiteout_hides_lower_subtree_but_not_this_layer() {
        let mut m = base();
        m.begin_layer();
        m.put("/usr/lib/c", file(0o644), None).unwrap();
        m.whiteout("/usr/lib/a").unwrap();
        m.whiteout("/usr/lib/c").unwrap();
        assert!(m.get("/usr/lib/a").is_none());
        assert!(
            m.get("/usr/lib/c").is_some(),
            "same-layer files survive a whiteout"
        );
        m.whiteout("/usr/lib").unwrap();
        assert!(m.get("/usr/lib/b").is_none());
        assert!(m.get("/usr/lib/c").is_some());
    }

    #[test]
    fn opaque_applies_before_its_siblings_in_either_order() {
        for marker_first in [true, false] {
            let mut m = base();
            m.begin_layer();
            if marker_first {
                m.opaque("/usr/lib").unwrap();
            }
            m.put("/usr/lib/b", file(0o600), None).unwrap();
            if !marker_first {
                m.opaque("/usr/lib").unwrap();
            }
            assert!(m.get("/usr/lib/a").is_none());
            assert_eq!(m.get("/usr/lib/b").unwrap().entry.mode, 0o600);
            assert!(m.get("/usr/bin/tool").is_some());
        }
    }

    #[test]
    fn whiteout_under_a_symlink_replaces_the_symlink_and_spares_its_target() {
        let mut m = base();
        m.begin_layer();
        m.whiteout("/lib/a").unwrap();
        assert!(m.get("/usr/lib/a").is_some());
        assert_eq!(m.get("/lib").unwrap().entry.kind, Kind::Dir);
        // A whiteout of the root is ignored.
        m.whiteout("/").unwrap();
        assert!(m.get("/usr/bin/tool").is_some());
    }

    #[test]
    fn a_file_over_a_directory_replaces_it_whole() {
        let mut m = base();
        m.begin_layer();
        m.put("/usr/lib", file(0o644), None).unwrap();
        assert_eq!(
            paths(&m),
            ["/", "/lib", "/usr", "/usr/bin", "/usr/bin/tool", "/usr/lib"]
        );
        assert!(m.put("/", file(0o644), None).is_err());
    }

    #[test]
    fn hardlinks_copy_the_target_as_it_is_now() {
        let mut m = base();
        m.begin_layer();
        m.hardlink("/usr/bin/alias", "/usr/bin/tool").unwrap();
        m.put("/usr/bin/tool", file(0o700), None).unwrap();
        assert_eq!(m.get("/usr/bin/alias").unwrap().entry.mode, 0o755);
        assert!(m.hardlink("/x", "/missing").is_err());
        assert!(m.hardlink("/x", "/usr").is_err());
    }

    #[test]
    fn a_hardlink_takes_the_header_its_target_was_hashed_behind() {
        let meta = crate::ostree::objects::Meta {
            uid: 0,
            gid: 0,
            mode: 0o100644,
            xattrs: Vec::new(),
        };
        let header = Arc::new(FileHeader::new(&meta, b""));
        let mut m = base();
        m.begin_layer();
        m.put_hashed("/usr/bin/x", file(0o644), None, Some(header.clone()))
            .unwrap();
        m.hardlink("/usr/bin/y", "/usr/bin/x").unwrap();
        let hashed = |m: &Merged, p: &str| m.get(p).unwrap().hashed.clone();
        assert!(hashed(&m, "/usr/bin/y").is_some_and(|h| Arc::ptr_eq(&h, &header)));
        // The last member at a path wins, its digest and header with it.
        m.put("/usr/bin/x", file(0o644), None).unwrap();
        assert!(hashed(&m, "/usr/bin/x").is_none());
        assert!(hashed(&m, "/usr/bin/y").is_some());
    }

    #[test]
    fn entry_limit_is_enforced() {
        let mut m = Merged::new(3);
        m.begin_layer();
        m.put("/a", file(0o644), None).unwrap();
        m.put("/b", file(0o644), None).unwrap();
        let err = m.put("/c", file(0o644), None).unwrap_err();
        assert!(err.to_string().contains("more than 3 paths"), "{err}");
    }

    #[test]
    fn resolve_follows_symlinks_inside_the_tree() {
        let mut m = base();
        m.put("/usr/share/rpm", link("../lib/sysimage/rpm"), None)
            .unwrap();
        m.put("/usr/lib/sysimage/rpm/rpmdb.sqlite", file(0o644), None)
            .unwrap();
        m.put("/var/lib/rpm", link("/usr/share/rpm"), None).unwrap();
        m.put("/loop", link("/loop"), None).unwrap();
        let want = Some("/usr/lib/sysimage/rpm/rpmdb.sqlite".to_string());
        assert_eq!(m.resolve("/usr/share/rpm/rpmdb.sqlite").unwrap(), want);
        assert_eq!(m.resolve("/var/lib/rpm/rpmdb.sqlite").unwrap(), want);
        assert_eq!(
            m.resolve("/lib/../../../usr/lib/a").unwrap().unwrap(),
            "/usr/lib/a"
        );
        assert_eq!(m.resolve("/usr/lib/a/x").unwrap(), None);
        assert_eq!(m.resolve("/nope/x").unwrap(), None);
        assert!(m.resolve("/loop/x").is_err());
    }
}
