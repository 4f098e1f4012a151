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

/// A commit named on the command line (`--base ostree:REPO[:REF]`): its
/// host repository opened, the ref resolved.
#[derive(Debug)]
pub struct Opened {
    /// The repository.
    pub repo: Repo,
    /// The commit.
    pub commit: Checksum,
    /// `ostree:REPO[:REF]`, as the origin names it.
    pub label: String,
}

/// Open the host repository `spec` names and resolve its commit.
pub fn open(spec: &Spec) -> Result<Opened> {
    let dir = crate::rootfs::open_ambient_dir(&spec.repo, "the ostree repository")?;
    let name = spec.repo.display().to_string();
    let repo = open_repo(dir, &name)?;
    let commit = resolve(&repo, spec.rev.as_deref())?;
    let label = match &spec.rev {
        Some(rev) => format!("{SCHEME}{name}:{rev}"),
        None => format!("{SCHEME}{name}"),
    };
    Ok(Opened {
        repo,
        commit,
        label,
    })
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
/// in the origin. [`read`] then [`CommitBase::finish`] with the root's
/// [`tree_base_db`].
pub fn load(
    root: &Dir,
    repo: &Repo,
    commit: &Checksum,
    spec: &str,
    opts: &WalkOptions,
) -> Result<OstreeBase> {
    let base = read(repo, commit, spec, opts)?;
    base.finish(repo, tree_base_db(root)?)
}

/// A commit's tree, read, before the base package set is chosen: that
/// needs the tree compared with it, which an image only shows once its
/// layers have been read, and reading them needs [`CommitBase::files`].
#[derive(Debug)]
pub struct CommitBase {
    /// Every path, sorted, as the walk records them.
    entries: Vec<crate::manifest::Entry>,
    /// Files directly inside the rpm database directories.
    db_files: std::collections::BTreeMap<String, Checksum>,
    /// The base's regular files, for hashing the tree compared with it.
    pub files: Arc<BaseFiles>,
    /// The commit.
    pub commit: Checksum,
    /// How the origin names the base.
    spec: String,
}

/// Read the tree of commit `commit` of `repo` by the walk's rules
/// (`opts`); `spec` names the base in the origin.
pub fn read(repo: &Repo, commit: &Checksum, spec: &str, opts: &WalkOptions) -> Result<CommitBase> {
    let c = repo.commit(commit)?;
    let tree = tree::read(repo, &c.root_tree, &c.root_meta, opts)?;
    Ok(CommitBase {
        entries: tree.entries,
        db_files: tree.db_files,
        files: Arc::new(tree.files),
        commit: *commit,
        spec: spec.to_string(),
    })
}

impl CommitBase {
    /// The base, with its package set taken from `in_tree` (the compared
    /// tree's [`BASE_DB`], see [`tree_base_db`]) when there is one, else
    /// from the commit (see the module docs).
    pub fn finish(self, repo: &Repo, in_tree: Option<RpmDb>) -> Result<OstreeBase> {
        let (rpmdb, from) = match in_tree {
            Some(db) => (Some(db), format!("packages from {BASE_DB} in the tree")),
            None => committed_packages(repo, &self.entries, &self.db_files, &self.files)?,
        };
        let manifest = crate::snapshot::manifest_from(Target {
            tree: Tree {
                entries: self.entries,
                mounts: Vec::new(),
            },
            rpmdb,
            etc_in_usr: false,
        });
        let origin = format!(
            "{} (commit {}; {from})",
            self.spec,
            hex::encode(self.commit)
        );
        Ok(OstreeBase {
            manifest,
            files: self.files,
            commit: self.commit,
            origin,
        })
    }
}

/// rpm-ostree's record of the base's rpm database ([`BASE_DB`]) in the
/// tree at `root`, when it has one.
pub fn tree_base_db(root: &Dir) -> Result<Option<RpmDb>> {
    match rpmdb::find::find_in(root, BASE_DB)? {
        Some(found) => Ok(Some(rpmdb::read_found(root, &found)?)),
        None => Ok(None),
    }
}

/// What to do about an `archive` repository, whose objects' content this
/// module does not read: pull the commit into a bare-user one.
pub fn pull_hint(repo: &Repo) -> String {
    format!(
        "Pull the commit into a bare-user repository (`ostree init --mode=bare-user \
         --repo=DIR && ostree pull-local --repo=DIR {} REF`) and pass --base ostree:DIR:REF",
        repo.name
    )
}

/// SHA-256 of `prefix` followed by the content of `repo`'s regular-file
/// object `object`, streamed: whether some content, hashed behind
/// `prefix`, equals the object's, without holding either. `None` for an
/// `archive` repository, whose objects are compressed.
pub fn object_digest(repo: &Repo, object: &Checksum, prefix: &[u8]) -> Result<Option<Checksum>> {
    use sha2::Digest;
    use std::io::Read;
    let Some((objects, path)) = repo.content_file(object) else {
        return Ok(None);
    };
    let what = || format!("{}: content object {}", repo.name, path.display());
    let mut file = objects.open(&path).with_context(what)?.into_std();
    let mut hasher = sha2::Sha256::new();
    hasher.update(prefix);
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = file.read(&mut buf).with_context(what)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Some(hasher.finalize().into()))
}

/// The base package set from the commit itself, and where it came from.
fn committed_packages(
    repo: &Repo,
    entries: &[crate::manifest::Entry],
    db_files: &std::collections::BTreeMap<String, Checksum>,
    files: &BaseFiles,
) -> Result<(Option<RpmDb>, String)> {
    let committed = |dir: &str, opaque: bool| -> Option<(String, Backend, Checksum)> {
        let dir = tree::resolve(entries, dir)?;
        Backend::DETECTION_ORDER.into_iter().find_map(|backend| {
            let path = crate::path::join(&dir, backend.file());
            let sum = if opaque {
                db_files.get(&path).copied()
            } else {
                None
            }
            .or_else(|| files.get(&path).map(|f| f.checksum))?;
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
            "{}: {name}: reading an rpm database from an archive repository is not \
             supported. {}",
            repo.name,
            pull_hint(repo)
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
