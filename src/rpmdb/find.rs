//! Finding a tree's rpm database the way rpm would, without leaving the tree.
//!
//! The candidate directories ([`CANDIDATES`]) are tried in order; the first
//! holding a database wins, and its backend is detected by the file
//! present, in rpm's order ([`Backend::DETECTION_ORDER`]).
//!
//! cap-std already refuses any path that would escape the root, but it also
//! refuses absolute symlinks outright (`/var/lib/rpm -> /usr/lib/sysimage/rpm`
//! is common) instead of resolving them against the root the way `chroot`
//! would. So symlinks are resolved here by hand, one component at a time:
//! absolute targets restart at the root, `..` stops at the root, and after
//! [`MAX_SYMLINKS`] links the lookup fails like `ELOOP`. Every filesystem
//! access still goes through the root [`Dir`].

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use cap_std::fs::Dir;

/// Where rpm keeps its database, most preferred first: the modern location,
/// rpm-ostree's, then the historical one.
pub const CANDIDATES: [&str; 3] = ["usr/lib/sysimage/rpm", "usr/share/rpm", "var/lib/rpm"];

/// The file that marks an sqlite rpmdb.
pub const SQLITE_FILE: &str = "rpmdb.sqlite";

/// Same limit as Linux's `MAXSYMLINKS`.
pub const MAX_SYMLINKS: u32 = 40;

/// An rpm database backend, known by the file it keeps its packages in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `rpmdb.sqlite`: rpm 4.16 and later (Fedora 33+, RHEL 9).
    Sqlite,
    /// `Packages.db`: rpm's own format (SUSE).
    Ndb,
    /// `Packages`: Berkeley DB hash (RHEL/CentOS 5–8, RHEL CoreOS 4.x).
    Bdb,
}

impl Backend {
    /// The order rpm tries backends in when detecting one
    /// (`dbDetectBackend`): sqlite, ndb, then Berkeley DB.
    pub const DETECTION_ORDER: [Backend; 3] = [Backend::Sqlite, Backend::Ndb, Backend::Bdb];

    /// The file holding the packages.
    pub fn file(self) -> &'static str {
        match self {
            Backend::Sqlite => SQLITE_FILE,
            Backend::Ndb => "Packages.db",
            Backend::Bdb => "Packages",
        }
    }

    /// The backend's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Ndb => "ndb",
            Backend::Bdb => "Berkeley DB",
        }
    }
}

/// An rpm database found in a tree.
#[derive(Debug, Clone)]
pub struct Found {
    /// The directory it was found through, absolute inside the root
    /// (`/usr/lib/sysimage/rpm`), even when that is a symlink.
    pub location: String,
    /// The packages file, resolved: relative to the root, free of symlinks.
    pub file: PathBuf,
    /// Which backend wrote it.
    pub backend: Backend,
}

impl Found {
    /// The database file as users know it: `{location}/rpmdb.sqlite`.
    pub fn display_name(&self) -> String {
        format!("{}/{}", self.location, self.backend.file())
    }
}

/// Find the rpm database of the tree at `root`.
///
/// The candidate directories are tried in order; the first holding a
/// database of any backend wins, and within it the backend is detected as
/// rpm does ([`Backend::DETECTION_ORDER`]). No database at all is
/// `Ok(None)`.
pub fn find(root: &Dir) -> Result<Option<Found>> {
    for candidate in CANDIDATES {
        if let Some(found) = find_in(root, &format!("/{candidate}"))? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// Detect the database in one directory (absolute inside the root, e.g.
/// `/usr/lib/sysimage/rpm-ostree-base-db`); `Ok(None)` when it holds none.
pub fn find_in(root: &Dir, dir: &str) -> Result<Option<Found>> {
    let rel = dir.trim_start_matches('/');
    for backend in Backend::DETECTION_ORDER {
        let path = format!("{rel}/{}", backend.file());
        if let Some(file) = resolve(root, Path::new(&path))? {
            return Ok(Some(Found {
                location: format!("/{rel}"),
                file,
                backend,
            }));
        }
    }
    Ok(None)
}

/// Resolve `path` inside `root` as if `root` were `/`, following symlinks.
///
/// Returns the symlink-free path relative to the root (`.` for the root
/// itself), or `None` when some component does not exist or is not a
/// directory. Other I/O errors, and symlink loops, are errors.
pub fn resolve(root: &Dir, path: &Path) -> Result<Option<PathBuf>> {
    let mut pending = Vec::new();
    push_steps(&mut pending, path);
    let mut resolved = PathBuf::new();
    let mut links = 0u32;
    while let Some(step) = pending.pop() {
        let name = match step {
            Step::Root => {
                resolved.clear();
                continue;
            }
            Step::Parent => {
                resolved.pop();
                continue;
            }
            Step::Name(name) => name,
        };
        let next = resolved.join(name);
        let meta = match root.symlink_metadata(&next) {
            Ok(meta) => meta,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("/{}", next.display())),
        };
        if !meta.is_symlink() {
            resolved = next;
            continue;
        }
        links += 1;
        if links > MAX_SYMLINKS {
            bail!("/{}: too many levels of symbolic links", path.display());
        }
        let target = root
            .read_link_contents(&next)
            .with_context(|| format!("reading symlink /{}", next.display()))?;
        push_steps(&mut pending, &target);
    }
    if resolved.as_os_str().is_empty() {
        resolved.push(".");
    }
    Ok(Some(resolved))
}

/// One step of a path walk.
enum Step {
    /// Back to the root (a leading `/`).
    Root,
    /// `..`: up one level, never above the root.
    Parent,
    /// Into the named entry.
    Name(OsString),
}

/// Queue `path`'s steps so that its first step is popped first.
fn push_steps(pending: &mut Vec<Step>, path: &Path) {
    let steps: Vec<Step> = path
        .components()
        .filter_map(|c| match c {
            Component::RootDir => Some(Step::Root),
            Component::ParentDir => Some(Step::Parent),
            Component::Normal(n) => Some(Step::Name(n.to_owned())),
            Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    pending.extend(steps.into_iter().rev());
}

/// Whether a lookup error means "this path does not exist here".
fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}
