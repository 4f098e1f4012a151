//! The rpm database of a merged image, found the way [`crate::rpmdb::find`]
//! finds it in a directory and read by [`crate::rpmdb::read_dbdir`] from
//! copies of its kept files.

use anyhow::{Context, Result, bail};

use super::layer::RPMDB_FILES;
use super::merge::Merged;
use crate::manifest::Kind;
use crate::rpmdb::{self, RpmDb, find};

/// The packages file of each backend, in rpm's detection order (sqlite,
/// ndb, Berkeley DB).
const PACKAGES_FILES: [&str; 3] = ["rpmdb.sqlite", "Packages.db", "Packages"];

/// Find and read the image's rpm database; `Ok(None)` when it has none.
///
/// The candidate directories are tried in rpm's order and the first that
/// holds a packages file wins, following symlinks inside the image
/// (`/usr/share/rpm -> ../lib/sysimage/rpm`). Only files in one of
/// [`crate::zones::RPMDB_DIRS`] are kept while streaming, so a candidate
/// that leads elsewhere is an error naming it.
pub fn read(merged: &Merged) -> Result<Option<RpmDb>> {
    for candidate in find::CANDIDATES {
        if let Some(db) = read_in(merged, &format!("/{candidate}"))? {
            return Ok(Some(db));
        }
    }
    Ok(None)
}

/// Read the database in the directory `location` (absolute, symlinks in
/// the image followed), the way [`crate::rpmdb::find::find_in`] finds one
/// in a directory; `Ok(None)` when it holds none. Only the files kept while
/// streaming can be read (see [`super::layer`]).
pub fn read_in(merged: &Merged, location: &str) -> Result<Option<RpmDb>> {
    let Some(dir) = merged.resolve(location)? else {
        return Ok(None);
    };
    let holds = |name: &str| merged.get(&format!("{dir}/{name}")).is_some();
    let Some(main) = PACKAGES_FILES.into_iter().find(|n| holds(n)) else {
        return Ok(None);
    };
    let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
    for name in RPMDB_FILES {
        let Some(node) = merged.get(&format!("{dir}/{name}")) else {
            continue;
        };
        let shown = format!("{location}/{name}");
        if node.entry.kind != Kind::File {
            if name == main {
                bail!("{shown}: not a regular file");
            }
            continue;
        }
        let Some(kept) = &node.kept else {
            bail!(
                "{shown}: resolves to {dir}/{name}, outside the rpm database \
                 directories ({}); lint cannot read a database kept there",
                crate::zones::RPMDB_DIRS.join(", ")
            );
        };
        std::fs::copy(kept.as_ref(), tmp.path().join(name))
            .with_context(|| format!("{shown}: cannot copy it out"))?;
    }
    let dbdir = crate::rootfs::open_root(tmp.path())?;
    rpmdb::read_dbdir(&dbdir, location).map(Some)
}
