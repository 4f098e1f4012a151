//! A commit's tree as base entries: one [`Entry`] per path, exactly as
//! [`crate::rootfs::walk`] would record the checked-out tree, plus what the
//! walk needs to compare regular files by ostree checksum ([`BaseFiles`]).
//!
//! Directories take their metadata from dirmeta objects, files and
//! symlinks from their content objects' headers (see [`super::repo`]). The
//! walk's rules apply: the API filesystems, `/sysroot`, `/ostree` and the
//! paths the options skip are left out, rpm database directories are
//! recorded but not entered. A commit keeps `/etc` at `/usr/etc`; when it
//! has no `/etc` of its own, those paths are recorded as `/etc`, where a
//! container build has them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use anyhow::{Result, bail, ensure};
use rayon::prelude::*;

use super::objects::{Checksum, FileHeader, Meta};
use super::repo::{FileKind, FileObject, Repo};
use crate::manifest::{Entry, Hex, Kind};
use crate::path;
use crate::rootfs::{NEVER_SCANNED, WalkOptions};

/// The most paths a commit may hold (a hostile commit could otherwise
/// reuse one dirtree many times over to describe billions of paths). Real
/// OS commits hold a few hundred thousand; image layers have the same
/// limit in `lint`.
pub const MAX_PATHS: usize = 4_000_000;

/// The deepest directory nesting accepted (ostree's own
/// `OSTREE_MAX_RECURSION`).
pub const MAX_DEPTH: usize = 256;

/// Small files whose text is kept, like [`crate::zones::text_kept`] says.
const TEXT_MAX: u64 = 64 << 20;

/// One regular file of the base, as the walk needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseFile {
    /// The header its checksum covers, length-prefixed.
    pub header: Arc<FileHeader>,
    /// Its content checksum (the object's name).
    pub checksum: Checksum,
}

/// The base's regular files by path, for the walk (and by content object,
/// for image layers that carry the repository's objects, see
/// [`BaseFiles::object_header`]).
#[derive(Debug, Default)]
pub struct BaseFiles {
    by_path: HashMap<String, BaseFile>,
    by_object: HashMap<Checksum, Arc<FileHeader>>,
    /// Objects whose text is kept for some path.
    text_objects: HashSet<Checksum>,
    /// Files directly inside the rpm database directories (which are not
    /// entered), by commit path: `/usr/lib/sysimage/rpm/rpmdb.sqlite` → object.
    pub db_files: BTreeMap<String, Checksum>,
    /// Content objects the image's own repository no longer has (an
    /// earlier finalize removed them after the build wrote them in place).
    pub missing: HashSet<Checksum>,
}

impl crate::rootfs::HashPrefix for BaseFiles {
    fn prefix(&self, path: &str) -> Option<&[u8]> {
        self.get(path).map(|b| b.header.bytes())
    }
}

impl BaseFiles {
    /// The base file at `path` (as the walk names it). A tree that keeps
    /// `/etc` at `/usr/etc` finds the base's `/etc` files there too.
    pub fn get(&self, path: &str) -> Option<&BaseFile> {
        self.by_path.get(path).or_else(|| {
            let rest = path.strip_prefix("/usr/etc/")?;
            self.by_path.get(&format!("/etc/{rest}"))
        })
    }

    /// The header of the base's regular-file content object `object`, when
    /// the base has one: what a file claiming to be that object (an image
    /// layer's `/sysroot/ostree/repo/objects/…`) is hashed behind.
    pub fn object_header(&self, object: &Checksum) -> Option<&Arc<FileHeader>> {
        self.by_object.get(object)
    }

    /// Whether the walk keeps the text ([`crate::zones::text_kept`]) of
    /// some base path whose content is the object `object`.
    pub fn keeps_text(&self, object: &Checksum) -> bool {
        self.text_objects.contains(object)
    }

    /// Every base path whose content is the object `object`: the walked
    /// files and the rpm database files, sorted. Scans every path: for the
    /// few objects a build wrote in place.
    pub fn paths_of(&self, object: &Checksum) -> Vec<String> {
        let mut out: Vec<String> = self
            .by_path
            .iter()
            .filter(|(_, f)| f.checksum == *object)
            .map(|(p, _)| p.clone())
            .chain(
                self.db_files
                    .iter()
                    .filter(|(_, o)| *o == object)
                    .map(|(p, _)| p.clone()),
            )
            .collect();
        out.sort();
        out
    }

    /// Every walked base file: (path, checksum).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Checksum)> {
        self.by_path.iter().map(|(p, f)| (p.as_str(), &f.checksum))
    }

    /// How many regular files the base has.
    pub fn len(&self) -> usize {
        self.by_path.len()
    }

    /// Whether the base has no regular files.
    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }
}

/// A commit's tree, read.
#[derive(Debug, Default)]
pub struct CommitTree {
    /// Every path, sorted, as the walk records them.
    pub entries: Vec<Entry>,
    /// Regular files for checksum comparison.
    pub files: BaseFiles,
}

/// A path found while traversing dirtrees.
enum Node {
    Dir { path: String, meta: Checksum },
    File { path: String, object: Checksum },
}

/// Read the tree whose root directory is the dirtree `root_tree` with the
/// dirmeta `root_meta` (a commit's), following `opts`' walk rules.
pub fn read(
    repo: &Repo,
    root_tree: &Checksum,
    root_meta: &Checksum,
    opts: &WalkOptions,
) -> Result<CommitTree> {
    let (nodes, db_files) = traverse(repo, root_tree, root_meta, opts)?;
    let mut dirmetas: HashMap<Checksum, Meta> = HashMap::new();
    let mut objects: Vec<Checksum> = Vec::new();
    for node in &nodes {
        match node {
            Node::Dir { meta, .. } => {
                if !dirmetas.contains_key(meta) {
                    dirmetas.insert(*meta, repo.dirmeta(meta)?);
                }
            }
            Node::File { object, .. } => objects.push(*object),
        }
    }
    objects.sort_unstable();
    objects.dedup();
    let read: Vec<(Checksum, Option<FileObject>)> = objects
        .par_iter()
        .map(|sum| file_object(repo, sum).map(|o| (*sum, o)))
        .collect::<Result<_>>()?;
    let mut missing = HashSet::new();
    let mut headers: HashMap<Checksum, (FileObject, Arc<FileHeader>)> = HashMap::new();
    for (sum, obj) in read {
        let obj = obj.unwrap_or_else(|| {
            missing.insert(sum);
            gone_object()
        });
        let header = Arc::new(FileHeader::new(&obj.meta, &obj.target));
        headers.insert(sum, (obj, header));
    }

    let etc_in_usr = nodes
        .iter()
        .any(|n| matches!(n, Node::Dir { path, .. } if path == "/usr/etc"))
        && !nodes.iter().any(|n| match n {
            Node::Dir { path, .. } | Node::File { path, .. } => path == "/etc",
        });
    let mapped = |p: &str| -> String {
        match p.strip_prefix("/usr/etc") {
            Some(rest) if etc_in_usr && (rest.is_empty() || rest.starts_with('/')) => {
                format!("/etc{rest}")
            }
            _ => p.to_string(),
        }
    };

    let mut tree = CommitTree::default();
    tree.files.db_files = db_files;
    tree.files.missing = missing;
    let mut texts = Vec::new();
    for node in nodes {
        match node {
            Node::Dir { path, meta } => {
                let m = &dirmetas[&meta];
                ensure!(
                    rustix::fs::FileType::from_raw_mode(m.mode) == rustix::fs::FileType::Directory,
                    "{}: dirmeta {} of {path} is not a directory's (mode {:o})",
                    repo.name,
                    hex::encode(meta),
                    m.mode
                );
                tree.entries
                    .push(entry(mapped(&path), Kind::Dir, m, None, 0));
            }
            Node::File { path, object } => {
                let (obj, header) = &headers[&object];
                let path = mapped(&path);
                let mut e = match obj.kind {
                    FileKind::Regular => {
                        tree.files
                            .by_object
                            .entry(object)
                            .or_insert_with(|| header.clone());
                        tree.files.by_path.insert(
                            path.clone(),
                            BaseFile {
                                header: header.clone(),
                                checksum: object,
                            },
                        );
                        entry(path, Kind::File, &obj.meta, None, obj.size)
                    }
                    FileKind::Symlink => {
                        let target = path::encode(&obj.target).0;
                        entry(path, Kind::Symlink, &obj.meta, Some(target), 0)
                    }
                };
                e.ostree = Some(crate::manifest::Checksum(object));
                if e.kind == Kind::File && crate::zones::text_kept(&e.path, e.size) {
                    tree.files.text_objects.insert(object);
                    texts.push((tree.entries.len(), object, e.size));
                }
                tree.entries.push(e);
            }
        }
    }
    let read_texts: Vec<(usize, Option<String>)> = texts
        .par_iter()
        .filter(|(_, object, _)| !tree.files.missing.contains(object))
        .map(|&(i, object, size)| {
            let bytes = repo.small_content(&object, size.min(TEXT_MAX))?;
            let text = (!bytes.contains(&0))
                .then(|| String::from_utf8(bytes).ok())
                .flatten();
            Ok((i, text))
        })
        .collect::<Result<_>>()?;
    for (i, text) in read_texts {
        tree.entries[i].text = text;
    }
    add_export_entries(&mut tree.entries);
    tree.entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    if let Some(pair) = tree.entries.windows(2).find(|p| p[0].path == p[1].path) {
        bail!(
            "{}: the commit has both /etc and /usr/etc content at {}",
            repo.name,
            pair[0].path
        );
    }
    Ok(tree)
}

/// A content object's header, or `None` when the image's own repository
/// no longer has it (see [`BaseFiles::missing`]). Any other failure, and a
/// missing object in a repository named on the command line, is an error.
fn file_object(repo: &Repo, sum: &Checksum) -> Result<Option<FileObject>> {
    match repo.file_object(sum) {
        Ok(obj) => Ok(Some(obj)),
        Err(e) if repo.in_tree.is_some() && super::repo::is_absent_chain(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What stands in for a content object that is gone: a regular file whose
/// header no content can match, so every path that was this object
/// compares as changed.
fn gone_object() -> FileObject {
    FileObject {
        kind: FileKind::Regular,
        meta: Meta {
            uid: 0,
            gid: 0,
            mode: 0o100000,
            xattrs: Vec::new(),
        },
        target: Vec::new(),
        size: 0,
        inode: None,
    }
}

/// Entries ostree-ext's export adds to every image that the commit does
/// not have: `/var/tmp` (mode 1777, root), which a container needs before
/// systemd-tmpfiles ever runs. They are base content of the image.
fn add_export_entries(entries: &mut Vec<Entry>) {
    let has = |p: &str| entries.iter().any(|e| e.path == p);
    if has("/var") && !has("/var/tmp") {
        entries.push(Entry::new("/var/tmp".to_string(), Kind::Dir, 0o1777, 0, 0));
    }
}

/// A base entry from ostree metadata.
fn entry(path: String, kind: Kind, meta: &Meta, target: Option<String>, size: u64) -> Entry {
    let mut xattrs = BTreeMap::new();
    for (name, value) in &meta.xattrs {
        // As the walk does: UTF-8 names only, overlay internals never.
        if let Ok(name) = std::str::from_utf8(name)
            && !name.starts_with("trusted.overlay.")
            && !name.starts_with("user.overlay.")
        {
            xattrs.insert(name.to_string(), Hex(value.clone()));
        }
    }
    let mut e = Entry::new(path, kind, meta.mode & 0o7777, meta.uid, meta.gid);
    e.size = size;
    e.target = target;
    e.xattrs = xattrs;
    e
}

/// Walk the dirtrees depth-first; return every path kept, and the files
/// directly inside opaque (rpm database) directories.
fn traverse(
    repo: &Repo,
    root_tree: &Checksum,
    root_meta: &Checksum,
    opts: &WalkOptions,
) -> Result<(Vec<Node>, BTreeMap<String, Checksum>)> {
    let skipped = |p: &str| NEVER_SCANNED.contains(&p) || opts.skip.iter().any(|s| s == p);
    let mut nodes = vec![Node::Dir {
        path: "/".to_string(),
        meta: *root_meta,
    }];
    let mut db_files = BTreeMap::new();
    let mut cache: HashMap<Checksum, Arc<super::objects::DirTree>> = HashMap::new();
    let mut stack = vec![("/".to_string(), *root_tree, 0usize)];
    while let Some((dir, sum, depth)) = stack.pop() {
        ensure!(
            depth < MAX_DEPTH,
            "{}: {dir}: directories nested deeper than {MAX_DEPTH}",
            repo.name
        );
        let listing = match cache.get(&sum) {
            Some(t) => t.clone(),
            None => {
                let t = Arc::new(repo.dirtree(&sum)?);
                cache.insert(sum, t.clone());
                t
            }
        };
        let opaque = dir != "/" && opts.opaque.contains(&dir);
        for (name, object) in &listing.files {
            let p = path::join(&dir, &path::encode(name).0);
            if opaque {
                db_files.insert(p, *object);
            } else if !skipped(&p) {
                nodes.push(Node::File {
                    path: p,
                    object: *object,
                });
            }
        }
        if opaque {
            continue;
        }
        for (name, tree, meta) in &listing.dirs {
            let p = path::join(&dir, &path::encode(name).0);
            if skipped(&p) {
                continue;
            }
            nodes.push(Node::Dir {
                path: p.clone(),
                meta: *meta,
            });
            stack.push((p, *tree, depth + 1));
        }
        ensure!(
            nodes.len() <= MAX_PATHS,
            "{}: the commit holds more than {MAX_PATHS} paths",
            repo.name
        );
    }
    Ok((nodes, db_files))
}

/// Resolve `path` (absolute, in the base) through the base's symlinks,
/// within the tree; `None` when a component is missing.
pub fn resolve(entries: &[Entry], path: &str) -> Option<String> {
    let get = |p: &str| {
        entries
            .binary_search_by(|e| e.path.as_str().cmp(p))
            .ok()
            .map(|i| &entries[i])
    };
    let mut pending: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(str::to_string)
        .collect();
    let mut cur = String::from("/");
    let mut links = 0;
    while let Some(comp) = pending.pop() {
        match comp.as_str() {
            "." => continue,
            ".." => {
                cur = match cur.rfind('/') {
                    Some(0) | None => "/".to_string(),
                    Some(i) => cur[..i].to_string(),
                };
                continue;
            }
            _ => {}
        }
        let next = path::join(&cur, &comp);
        let e = get(&next)?;
        if e.kind != Kind::Symlink {
            cur = next;
            continue;
        }
        links += 1;
        if links > crate::rpmdb::find::MAX_SYMLINKS {
            return None;
        }
        let target = e.target.as_deref().unwrap_or("");
        if target.starts_with('/') {
            cur = "/".to_string();
        }
        pending.extend(
            target
                .split('/')
                .filter(|c| !c.is_empty())
                .rev()
                .map(str::to_string),
        );
    }
    Some(cur)
}

/// The entry for a path, in sorted entries.
pub fn lookup<'a>(entries: &'a [Entry], path: &str) -> Option<&'a Entry> {
    entries
        .binary_search_by(|e| e.path.as_str().cmp(path))
        .ok()
        .map(|i| &entries[i])
}
