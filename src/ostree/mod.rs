//! An ostree commit as the base reference (`--base ostree:REPO[:REF]`).
//!
//! Images built from an ostree base carry what they were made from: the
//! commit, content-addressed, in `/sysroot/ostree/repo`. This module reads
//! it without libostree or GLib and turns it into the same [`Manifest`] a
//! `snapshot` records, so diffs, checks, the layout planner and the report
//! work unchanged:
//!
//! 1. [`gvariant`] decodes (and encodes) the few GVariant shapes ostree
//!    stores, bounded and strict; [`objects`] gives them meaning: commit,
//!    dirtree, dirmeta, the file header a content checksum covers.
//! 2. [`repo`] reads objects from `bare`, `bare-user`, `bare-user-only`,
//!    `bare-split-xattrs` and `archive` repositories.
//! 3. [`tree`] walks a commit into base entries, following the same rules
//!    as [`crate::rootfs::walk`], and keeps each regular file's header,
//!    checksum and repository inode ([`BaseFiles`]).
//! 4. The walk of the build tree, given those ([`crate::rootfs::WalkOptions`]),
//!    computes each base file's ostree checksum from the *base's* header and
//!    the *current* content: equal to the base's checksum exactly when the
//!    content is unchanged (ownership, mode and xattrs are compared field by
//!    field, as for any base). A file that is still a hardlink to the
//!    repository's object is that object, and is not read at all.
//!
//! The base package set comes from the image's own records:
//! `/usr/lib/sysimage/rpm-ostree-base-db` (rpm-ostree's copy of the base's
//! rpm database) in the tree, else in the commit, else the commit's own rpm
//! database. The report's base origin says which.

pub mod gvariant;
pub mod objects;
pub mod repo;
pub mod tree;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use cap_std::fs::Dir;

use crate::engine::Target;
use crate::manifest::Manifest;
use crate::rootfs::{Tree, WalkOptions};
use crate::rpmdb::{self, Backend, RpmDb};
pub use objects::Checksum;
use repo::Repo;
pub use tree::{BaseFile, BaseFiles};

/// The prefix that makes `--base` name an ostree commit.
pub const SCHEME: &str = "ostree:";

/// Where an ostree-based image keeps its repository.
pub const SYSROOT_REPO: &str = "/sysroot/ostree/repo";

/// rpm-ostree's record of the base's rpm database.
pub const BASE_DB: &str = "/usr/lib/sysimage/rpm-ostree-base-db";

/// `--base ostree:REPO[:REF-OR-CHECKSUM]`, parsed. REPO ends at the first
/// `:`; the rest (which may hold a `remote:ref`) is the ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The repository directory, a host path.
    pub repo: PathBuf,
    /// A ref or a full checksum; `None` means the repository's only commit.
    pub rev: Option<String>,
}

impl Spec {
    /// Parse a `--base` argument; `None` when it does not start with
    /// `ostree:` (a manifest file; write `./ostree:x` for a file so named).
    pub fn parse(arg: &OsStr) -> Option<Result<Spec>> {
        let rest = arg.as_bytes().strip_prefix(SCHEME.as_bytes())?;
        let (repo, rev) = match rest.iter().position(|&b| b == b':') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        if repo.is_empty() {
            return Some(Err(anyhow::anyhow!(
                "--base {}: no repository (expected ostree:REPO[:REF])",
                arg.to_string_lossy()
            )));
        }
        let rev = match rev.map(std::str::from_utf8) {
            Some(Ok("")) | None => None,
            Some(Ok(r)) => Some(r.to_string()),
            Some(Err(_)) => {
                return Some(Err(anyhow::anyhow!(
                    "--base {}: the ref is not UTF-8",
                    arg.to_string_lossy()
                )));
            }
        };
        Some(Ok(Spec {
            repo: PathBuf::from(OsStr::from_bytes(repo)),
            rev,
        }))
    }
}

/// A base read from an ostree commit.
#[derive(Debug)]
pub struct OstreeBase {
    /// The base entries and packages, as a snapshot would record them.
    pub manifest: Manifest,
    /// The base's regular files, for the walk of the tree compared with it.
    pub files: Arc<BaseFiles>,
    /// The commit.
    pub commit: Checksum,
    /// `ostree:REPO:REF (commit …; packages from …)`, for the report.
    pub origin: String,
}

/// Open a repository directory; `name` is how messages name it.
pub fn open_repo(dir: Dir, name: &str) -> Result<Repo> {
    Repo::open(dir, name)
}

/// The repository at [`SYSROOT_REPO`] in the root, when there is one
/// holding exactly one commit (an ostree-based image's own): its commit.
pub fn detect(root: &Dir) -> Result<Option<(Repo, Checksum)>> {
    let Some(rel) = rpmdb::find::resolve(root, Path::new(&SYSROOT_REPO[1..]))? else {
        return Ok(None);
    };
    let Ok(dir) = root.open_dir(&rel) else {
        return Ok(None);
    };
    if !dir.exists("config") || !dir.exists("objects") {
        return Ok(None);
    }
    let repo = Repo::open(dir, SYSROOT_REPO)?;
    let commits = repo.commits()?;
    match commits.as_slice() {
        [one] => Ok(Some((repo, *one))),
        _ => Ok(None),
    }
}

/// Resolve `rev` in `repo`, or take its only commit.
pub fn resolve(repo: &Repo, rev: Option<&str>) -> Result<Checksum> {
    if let Some(rev) = rev {
        return repo.resolve(rev);
    }
    let commits = repo.commits()?;
    match commits.as_slice() {
        [one] => Ok(*one),
        [] => bail!("{}: the repository holds no commit", repo.name),
        many => bail!(
            "{}: the repository holds {} commits; name one (ostree:REPO:REF or :CHECKSUM)",
            repo.name,
            many.len()
        ),
    }
}

/// Read commit `commit` of `repo` as a base: entries by the walk's rules
/// (`opts`), packages from the image's own records (see the module docs).
/// `root` is the tree that will be compared with it; `spec` names the base
/// in the origin.
pub fn load(
    root: &Dir,
    repo: &Repo,
    commit: &Checksum,
    spec: &str,
    opts: &WalkOptions,
) -> Result<OstreeBase> {
    let c = repo.commit(commit)?;
    let tree = tree::read(repo, &c.root_tree, &c.root_meta, opts)?;
    let (rpmdb, from) = base_packages(root, repo, &tree)?;
    let manifest = crate::snapshot::manifest_from(Target {
        tree: Tree {
            entries: tree.entries,
            mounts: Vec::new(),
        },
        rpmdb,
        etc_in_usr: false,
    });
    let origin = format!("{spec} (commit {}; {from})", hex::encode(commit));
    Ok(OstreeBase {
        manifest,
        files: Arc::new(tree.files),
        commit: *commit,
        origin,
    })
}

/// The base package set and where it came from.
fn base_packages(
    root: &Dir,
    repo: &Repo,
    tree: &tree::CommitTree,
) -> Result<(Option<RpmDb>, String)> {
    if let Some(found) = rpmdb::find::find_in(root, BASE_DB)? {
        let db = rpmdb::read_found(root, &found)?;
        return Ok((Some(db), format!("packages from {BASE_DB} in the tree")));
    }
    let committed = |dir: &str, opaque: bool| -> Option<(String, Backend, Checksum)> {
        let dir = tree::resolve(&tree.entries, dir)?;
        Backend::DETECTION_ORDER.into_iter().find_map(|backend| {
            let path = crate::path::join(&dir, backend.file());
            let sum = if opaque {
                tree.db_files.get(&path).copied()
            } else {
                None
            }
            .or_else(|| tree.files.get(&path).map(|f| f.checksum))?;
            Some((dir.clone(), backend, sum))
        })
    };
    let mut found =
        committed(BASE_DB, false).map(|f| (f, format!("packages from {BASE_DB} in the commit")));
    if found.is_none() {
        found = rpmdb::find::CANDIDATES.iter().find_map(|c| {
            committed(&format!("/{c}"), true).map(|f| {
                let from = format!("packages from the commit's rpm database, {}", f.0);
                (f, from)
            })
        });
    }
    let Some(((dir, backend, sum), from)) = found else {
        return Ok((
            None,
            "no rpm database in the commit or the tree".to_string(),
        ));
    };
    let name = format!("{}/{}", dir, backend.file());
    let (objects, file) = repo.content_file(&sum).with_context(|| {
        format!(
            "{}: {name}: reading an rpm database from an archive repository is not supported",
            repo.name
        )
    })?;
    let packages = rpmdb::read_file(objects, &file, backend, &format!("{}:{name}", repo.name))?;
    Ok((
        Some(RpmDb {
            location: dir,
            packages,
        }),
        from,
    ))
}
