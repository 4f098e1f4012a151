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
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use cap_std::fs::Dir;

use crate::manifest::Manifest;
use crate::rootfs::WalkOptions;
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
/// None when there is no repository or it holds no commit; more than one
/// commit is an error (which is the base is ambiguous).
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
    let mut repo = Repo::open(dir, SYSROOT_REPO)?;
    let encoded = crate::path::encode(rel.as_os_str().as_bytes()).0;
    repo.in_tree = Some(format!("/{encoded}"));
    let commits = repo.commits()?;
    match commits.as_slice() {
        [one] => Ok(Some((repo, *one))),
        [] => Ok(None),
        many => bail!(
            "{SYSROOT_REPO} in the root holds {} commits, so which one is the base is \
             ambiguous; name it with --base ostree:ROOT{SYSROOT_REPO}:REF (or run \
             `ostree-finalize snapshot` on the pristine base and pass --base FILE)",
            many.len()
        ),
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
/// [`tree_base_db`], trusted only while it still is the commit's.
pub fn load(
    root: &Dir,
    repo: &Repo,
    commit: &Checksum,
    spec: &str,
    opts: &WalkOptions,
) -> Result<OstreeBase> {
    let base = read(repo, commit, spec, opts)?;
    let in_tree = tree_base_db(root)?.filter(|db| {
        base.files.db_unchanged(repo, &db.location, |path| {
            let rel = crate::path::decode(&path[1..])?;
            root.open(Path::new(OsStr::from_bytes(&rel))).ok()
        })
    });
    let current = rpmdb::read(root)?;
    base.finish(repo, in_tree, current.as_ref())
}

/// A commit's tree, read, before the base package set is chosen: that
/// needs the tree compared with it, which an image only shows once its
/// layers have been read, and reading them needs [`CommitBase::files`].
#[derive(Debug)]
pub struct CommitBase {
    /// Every path, sorted, as the walk records them.
    entries: Vec<crate::manifest::Entry>,
    /// The base's regular files, for hashing the tree compared with it.
    pub files: Arc<BaseFiles>,
    /// The commit.
    pub commit: Checksum,
    /// The commit object, for its package list.
    object: objects::Commit,
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
        files: Arc::new(tree.files),
        commit: *commit,
        object: c,
        spec: spec.to_string(),
    })
}

impl CommitBase {
    /// The base, with its package set taken from `in_tree` (the compared
    /// tree's [`BASE_DB`], see [`tree_base_db`]) when there is one, else
    /// from the commit (see the module docs). `current` is the compared
    /// tree's rpm database: when the commit's own database was written in
    /// place, its package list names the base packages and `current`
    /// gives their files.
    pub fn finish(
        self,
        repo: &Repo,
        in_tree: Option<RpmDb>,
        current: Option<&RpmDb>,
    ) -> Result<OstreeBase> {
        let (rpmdb, from, unknown) = match in_tree {
            Some(db) => (
                Some(db),
                format!("packages from {BASE_DB} in the tree"),
                None,
            ),
            None => committed_packages(repo, &self, current)?,
        };
        let mut manifest = Manifest::record(self.entries, rpmdb);
        manifest.packages_unknown = unknown;
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

impl BaseFiles {
    /// Whether the rpm database in the directory `dir` (rpm-ostree's
    /// [`BASE_DB`]) of the tree or image compared with the commit still is
    /// what the commit holds there, file by file: each file `open` gives,
    /// hashed behind its object's header, has the object's checksum. A
    /// directory the commit does not have (made by the build's own
    /// rpm-ostree) is the tree's record and counts as unchanged.
    pub fn db_unchanged<R: Read>(
        &self,
        repo: &Repo,
        dir: &str,
        open: impl Fn(&str) -> Option<R>,
    ) -> bool {
        let prefix = format!("{dir}/");
        let mut files = self
            .db_files
            .iter()
            .filter(|(p, _)| p.starts_with(&prefix))
            .peekable();
        if files.peek().is_none() {
            return true;
        }
        files.all(|(path, sum)| {
            let Ok(obj) = repo.file_object(sum) else {
                return false;
            };
            let header = objects::FileHeader::new(&obj.meta, &obj.target);
            open(path)
                .and_then(|file| digest_after(header.bytes(), file).ok())
                .is_some_and(|digest| digest == *sum)
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

/// A base content object the build wrote in place: the paths that were it
/// share its inode in a container layer that kept the checkout's
/// hardlinks (buildah's vfs driver), so writing one wrote the object and
/// every other path with the same content.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InPlace {
    /// The object, by its (no longer true) checksum, in hex.
    pub object: String,
    /// Where it lives in the image's repository, when that is in the tree
    /// (`/sysroot/ostree/repo/objects/ab/cdef….file`).
    pub repo_path: Option<String>,
    /// Every base path that was this object, walked files and rpm database
    /// files alike, sorted.
    pub paths: Vec<String>,
    /// The base's text of a config file the build appended to in place
    /// (`>>`): the prefix of its text now, cut at a line end, that hashes,
    /// behind the object's header, to the object's checksum. Proven, not
    /// guessed; `None` when no prefix does.
    #[serde(skip)]
    pub base_text: Option<String>,
    /// The object in the image's repository still has ostree's zero mtime
    /// (chmod, chown and `cp -p` keep it): ostree-ext's importer drops such
    /// an object from the layer of the step that wrote it, leaving that
    /// layer's hardlinks to it dangling.
    #[serde(skip)]
    pub mtime_zero: bool,
}

/// The base's text of a file appended to in place: the prefix of `now`,
/// ending at a line end (or empty), whose ostree checksum behind `header`
/// is `object`.
fn appended_base_text(
    header: &objects::FileHeader,
    now: &str,
    object: &Checksum,
) -> Option<String> {
    let ends = std::iter::once(0).chain(now.match_indices('\n').map(|(i, _)| i + 1));
    ends.filter(|&end| end < now.len())
        .find(|&end| digest_after(header.bytes(), &now.as_bytes()[..end]).ok() == Some(*object))
        .map(|end| now[..end].to_string())
}

/// The base objects the build wrote in place. A regular file of the tree
/// whose checksum is not its base's is either changed on its own (a new
/// inode: copy-up, rename) or changed together with the object; only the
/// object itself tells, so it is verified, hashed as ostree does. The rpm
/// database files (never walked, and written in place by every `rpm -i`)
/// are always verified. Objects already gone from the image's repository
/// count as written in place (an earlier finalize removed them).
pub fn written_in_place(
    repo: &Repo,
    files: &BaseFiles,
    entries: &[crate::manifest::Entry],
) -> Result<Vec<InPlace>> {
    use rayon::prelude::*;
    let mut candidates: Vec<Checksum> = entries
        .iter()
        .filter(|e| e.kind == crate::manifest::Kind::File)
        .filter_map(|e| {
            let base = files.get(&e.path)?;
            (e.ostree.map(|c| c.0) != Some(base.checksum)).then_some(base.checksum)
        })
        .chain(files.db_files.values().copied())
        .collect();
    candidates.sort_unstable();
    candidates.dedup();
    let verdicts: Vec<(Checksum, bool)> = candidates
        .par_iter()
        .map(|sum| {
            let intact = !files.missing.contains(sum) && repo.verify_content(sum)?;
            Ok((*sum, intact))
        })
        .collect::<Result<_>>()?;
    Ok(verdicts
        .into_iter()
        .filter(|(_, intact)| !intact)
        .map(|(object, _)| {
            let paths = files.paths_of(&object);
            let base_text = paths.iter().find_map(|p| {
                let now = tree::lookup(entries, p)?.text.as_deref()?;
                appended_base_text(&files.get(p)?.header, now, &object)
            });
            (object, paths, base_text)
        })
        .map(|(object, paths, base_text)| InPlace {
            mtime_zero: repo.in_tree.is_some() && repo.content_mtime_is_zero(&object),
            object: hex::encode(object),
            repo_path: repo
                .in_tree
                .as_ref()
                .map(|dir| format!("{dir}/{}", repo.content_object_path(&object))),
            paths,
            base_text,
        })
        .collect())
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
/// `prefix`, equals the object's, without holding either.
pub fn object_digest(repo: &Repo, object: &Checksum, prefix: &[u8]) -> Result<Checksum> {
    digest_after(prefix, repo.open_content(object)?)
        .with_context(|| format!("{}: reading content object", repo.name))
}

/// SHA-256 of `prefix` followed by everything `content` yields.
pub fn digest_after(prefix: &[u8], mut content: impl Read) -> Result<Checksum> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(prefix);
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = content.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

/// The base package set from the commit itself, where it came from, and
/// why it is unknown when it is.
fn committed_packages(
    repo: &Repo,
    base: &CommitBase,
    current: Option<&RpmDb>,
) -> Result<(Option<RpmDb>, String, Option<String>)> {
    let (entries, files) = (&base.entries, &base.files);
    let committed = |dir: &str, opaque: bool| -> Option<(String, Backend, Checksum)> {
        let dir = tree::resolve(entries, dir)?;
        Backend::DETECTION_ORDER.into_iter().find_map(|backend| {
            let path = crate::path::join(&dir, backend.file());
            let sum = if opaque {
                files.db_files.get(&path).copied()
            } else {
                None
            }
            .or_else(|| files.get(&path).map(|f| f.checksum))?;
            Some((dir.clone(), backend, sum))
        })
    };
    let mut found =
        committed(BASE_DB, true).map(|f| (f, format!("packages from {BASE_DB} in the commit")));
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
            None,
        ));
    };
    let name = format!("{}/{}", dir, backend.file());
    if files.missing.contains(&sum) || !repo.verify_content(&sum)? {
        return pkglist_packages(base, &name, &sum, current);
    }
    let packages = read_db_object(repo, &sum, backend, &format!("{}:{name}", repo.name))?;
    Ok((
        Some(RpmDb {
            location: dir,
            packages,
        }),
        from,
        None,
    ))
}

/// Read an rpm database file that is a content object: in place in a
/// bare-type repository, decompressed into a private file from an
/// `archive` one.
fn read_db_object(
    repo: &Repo,
    sum: &Checksum,
    backend: Backend,
    name: &str,
) -> Result<Vec<rpmdb::Package>> {
    if let Some((objects, file)) = repo.content_file(sum) {
        return rpmdb::read_file(objects, &file, backend, name);
    }
    let scratch = tempfile::tempdir().context("cannot make a scratch directory")?;
    let file = std::path::Path::new(backend.file());
    let mut out = std::fs::File::create(scratch.path().join(file))
        .with_context(|| format!("{name}: cannot decompress into a scratch file"))?;
    std::io::copy(&mut repo.open_content(sum)?, &mut out)
        .with_context(|| format!("{name}: cannot decompress"))?;
    drop(out);
    let dir = crate::rootfs::open_ambient_dir(scratch.path(), "a scratch directory")?;
    rpmdb::read_file(&dir, file, backend, name)
}

/// The base package set when the commit's rpm database object `sum` (at
/// `name`) no longer verifies: the commit's package list (rpm-ostree's
/// [`objects::PKGLIST_KEY`]), each package's files from the same NEVRA
/// in `current`. Without a list the set is unknown, and says why.
fn pkglist_packages(
    base: &CommitBase,
    name: &str,
    sum: &Checksum,
    current: Option<&RpmDb>,
) -> Result<(Option<RpmDb>, String, Option<String>)> {
    let cause = format!(
        "the commit's rpm database {name} (ostree object {}) no longer matches its checksum: \
         the build wrote it in place through a hardlink its storage kept",
        hex::encode(sum)
    );
    let list = base
        .object
        .pkglist()
        .with_context(|| format!("commit {}", hex::encode(base.commit)))?;
    let Some(list) = list else {
        let why = format!(
            "{cause}, and the commit has no {} to name the base packages instead",
            objects::PKGLIST_KEY
        );
        return Ok((None, format!("base packages unknown: {why}"), Some(why)));
    };
    let mut packages: Vec<rpmdb::Package> = list
        .into_iter()
        .map(|p| {
            let mut pkg = rpmdb::Package {
                name: p.name,
                epoch: match p.epoch.as_str() {
                    "" | "0" => None,
                    e => e.parse().ok(),
                },
                version: p.version,
                release: p.release,
                arch: p.arch,
                sha256header: None,
                files: Vec::new(),
            };
            // The same NEVRA has the same header: its files are the
            // current database's. A base package the build replaced or
            // removed keeps none, and the path diff shows its files.
            if let Some(now) = current.and_then(|db| {
                db.packages.iter().find(|c| {
                    c.name == pkg.name
                        && c.arch == pkg.arch
                        && c.version == pkg.version
                        && c.release == pkg.release
                        && c.epoch.unwrap_or(0) == pkg.epoch.unwrap_or(0)
                })
            }) {
                pkg.epoch = now.epoch;
                pkg.files = now.files.clone();
            }
            pkg
        })
        .collect();
    packages.sort_by(rpmdb::package_cmp);
    let location = name.rsplit_once('/').map_or(name, |(d, _)| d).to_string();
    Ok((
        Some(RpmDb { location, packages }),
        format!(
            "packages from the commit's {} ({cause})",
            objects::PKGLIST_KEY
        ),
        None,
    ))
}
