//! Finding a tree's rpm database the way rpm would, without leaving the tree.
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

/// Files of the backends we cannot read yet, with their names for errors.
const UNSUPPORTED: [(&str, &str); 2] = [("Packages", "Berkeley DB"), ("Packages.db", "ndb")];

/// Same limit as Linux's `MAXSYMLINKS`.
pub const MAX_SYMLINKS: u32 = 40;

/// An sqlite rpmdb found in a tree.
#[derive(Debug, Clone)]
pub struct Found {
    /// The candidate directory it was found through, absolute inside the root
    /// (`/usr/lib/sysimage/rpm`), even when that is a symlink.
    pub location: String,
    /// `rpmdb.sqlite`, resolved: relative to the root, free of symlinks.
    pub file: PathBuf,
}

impl Found {
    /// The database file as users know it: `{location}/rpmdb.sqlite`.
    pub fn display_name(&self) -> String {
        format!("{}/{SQLITE_FILE}", self.location)
    }
}

/// Find the sqlite rpmdb of the tree at `root`.
///
/// The first candidate directory holding `rpmdb.sqlite` wins. When none
/// does, a Berkeley DB or ndb database in any candidate is an error (we
/// cannot read those yet); no database at all is `Ok(None)`.
pub fn find(root: &Dir) -> Result<Option<Found>> {
    for candidate in CANDIDATES {
        let path = format!("{candidate}/{SQLITE_FILE}");
        if let Some(file) = resolve(root, Path::new(&path))? {
            return Ok(Some(Found {
                location: format!("/{candidate}"),
                file,
            }));
        }
    }
    for candidate in CANDIDATES {
        for (name, backend) in UNSUPPORTED {
            let path = format!("{candidate}/{name}");
            if resolve(root, Path::new(&path))?.is_some() {
                bail!("/{path}: the {backend} rpmdb backend is not supported yet");
            }
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
