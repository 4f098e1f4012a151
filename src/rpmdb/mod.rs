//! rpm database readers: find the tree's rpmdb and turn it into packages and
//! file ownership.
//!
//! Two backends are read: sqlite (`rpmdb.sqlite`, the default since rpm
//! 4.16; the `sqlite` submodule) and Berkeley DB (`Packages`, RHEL/CentOS
//! 5–8 and RHEL CoreOS 4.x; [`bdb`], in Rust, read-only). The backend is
//! detected by the files present, as rpm does ([`find`]); ndb
//! (`Packages.db`) is recognised and refused. Either way each header blob
//! goes through the same bounded parser (the `header` submodule).
//!
//! The tree is never modified: an sqlite database is copied out before it
//! is opened, a Berkeley DB file is only read, and every path is looked up
//! through the root [`Dir`], with symlinks resolved inside the root.

use std::borrow::Cow;
use std::cmp::Ordering;

use anyhow::{Context, Result};
use cap_std::fs::Dir;

pub mod bdb;
pub mod find;
mod header;
mod sqlite;

pub use find::Backend;

#[cfg(test)]
mod tests;

/// One installed package, as read from a header blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// `NAME` tag.
    pub name: String,
    /// `EPOCH` tag; `None` when the header has none.
    pub epoch: Option<u32>,
    /// `VERSION` tag.
    pub version: String,
    /// `RELEASE` tag.
    pub release: String,
    /// `ARCH` tag (`noarch` etc.); empty for `gpg-pubkey` pseudo packages.
    pub arch: String,
    /// `SHA256HEADER` as lowercase hex, when present.
    pub sha256header: Option<String>,
    /// Absolute paths of the files the package owns (dirnames + basenames).
    pub files: Vec<String>,
}

impl Package {
    /// The package as rpm's `%{nevra}` prints it:
    /// `name-[epoch:]version-release[.arch]`.
    ///
    /// Like rpm, the epoch is shown whenever the header has one, even `0`,
    /// and the `.arch` suffix is left out when there is no arch (as for
    /// `gpg-pubkey`). (rpm would print `.src` for an arch-less header that
    /// also lacks `SOURCERPM`, i.e. a source package; those are never
    /// installed, so that case is not modelled.)
    pub fn nevra(&self) -> String {
        let mut out = format!("{}-", self.name);
        if let Some(epoch) = self.epoch {
            out.push_str(&format!("{epoch}:"));
        }
        out.push_str(&format!("{}-{}", self.version, self.release));
        if !self.arch.is_empty() {
            out.push('.');
            out.push_str(&self.arch);
        }
        out
    }
}

/// Compare two epoch:version-release triples the way rpm does (rpmvercmp
/// on each part, via the `rpm-version` crate). A missing epoch counts as 0.
pub fn compare_evr(a: (Option<u32>, &str, &str), b: (Option<u32>, &str, &str)) -> Ordering {
    fn evr<'a>((epoch, version, release): (Option<u32>, &'a str, &'a str)) -> rpm_version::Evr<'a> {
        rpm_version::Evr::new(
            Cow::Owned(epoch.unwrap_or(0).to_string()),
            Cow::Borrowed(version),
            Cow::Borrowed(release),
        )
    }
    evr(a).cmp(&evr(b))
}

/// Compare two packages' epoch-version-release as rpm does ([`compare_evr`]).
/// Names and arches are not compared.
pub fn evr_cmp(a: &Package, b: &Package) -> Ordering {
    compare_evr(
        (a.epoch, &a.version, &a.release),
        (b.epoch, &b.version, &b.release),
    )
}

/// The order packages are listed in: name, then EVR as rpm orders it, then
/// arch. Ties that rpm considers equal (`1.01` vs `1.1`, a missing vs a `0`
/// epoch, duplicate installs) are broken on the raw fields so the order is
/// total and the output byte-stable.
pub fn package_cmp(a: &Package, b: &Package) -> Ordering {
    a.name
        .cmp(&b.name)
        .then_with(|| evr_cmp(a, b))
        .then_with(|| a.arch.cmp(&b.arch))
        .then_with(|| a.epoch.cmp(&b.epoch))
        .then_with(|| a.version.cmp(&b.version))
        .then_with(|| a.release.cmp(&b.release))
        .then_with(|| a.sha256header.cmp(&b.sha256header))
        .then_with(|| a.files.cmp(&b.files))
}

/// The rpm database found in a tree.
#[derive(Debug, Clone)]
pub struct RpmDb {
    /// Where it was found, absolute inside the root (`/usr/lib/sysimage/rpm`).
    pub location: String,
    /// The packages, sorted by NEVRA.
    pub packages: Vec<Package>,
}

/// Find and read the rpm database of the tree rooted at `root`.
///
/// The candidate directories are tried in rpm's order (see
/// [`find::CANDIDATES`]); in the first holding a database the backend is
/// detected as rpm does ([`find::find`]). `Ok(None)` means the tree has no
/// rpm database. An unreadable or corrupt database, an ndb database, or a
/// corrupt header is an error naming the file (and the header's number).
/// The tree is left untouched.
pub fn read(root: &Dir) -> Result<Option<RpmDb>> {
    let Some(found) = find::find(root)? else {
        return Ok(None);
    };
    read_found(root, &found).map(Some)
}

/// Read a database that [`find::find`] or [`find::find_in`] found.
pub fn read_found(root: &Dir, found: &find::Found) -> Result<RpmDb> {
    let name = found.display_name();
    Ok(RpmDb {
        location: found.location.clone(),
        packages: read_file(root, &found.file, found.backend, &name)?,
    })
}

/// Read an rpmdb directory directly, e.g. a `--dbpath` outside any tree,
/// detecting its backend. `location` is only used for [`RpmDb::location`]
/// and error messages. Symlinks are resolved inside `dbdir`, as for
/// [`read`].
pub fn read_dbdir(dbdir: &Dir, location: &str) -> Result<RpmDb> {
    let found = find::find_in(dbdir, ".")?.with_context(|| {
        format!(
            "{}/{}: not found (nor any other rpm database)",
            location.trim_end_matches('/'),
            find::SQLITE_FILE
        )
    })?;
    let name = format!(
        "{}/{}",
        location.trim_end_matches('/'),
        found.backend.file()
    );
    Ok(RpmDb {
        location: location.to_owned(),
        packages: read_file(dbdir, &found.file, found.backend, &name)?,
    })
}

/// Read and sort all packages of the database file `file` (relative to
/// `dir`, symlink-free) written by `backend`. Every error's outermost
/// message starts with `name` (the file as users know it), and with the
/// header's number for a bad header.
pub fn read_file(
    dir: &Dir,
    file: &std::path::Path,
    backend: Backend,
    name: &str,
) -> Result<Vec<Package>> {
    let mut packages = match backend {
        Backend::Sqlite => read_sqlite(dir, file, name)?,
        Backend::Bdb => read_bdb(dir, file, name)?,
        Backend::Ndb => anyhow::bail!("{name}: the ndb rpmdb backend is not supported yet"),
    };
    packages.sort_by(package_cmp);
    Ok(packages)
}

/// Parse one header blob (a `Packages.blob` value) into a [`Package`].
///
/// Not part of the API: the entry point of the `rpm_header` fuzz target and
/// its regression test (`tests/fuzz_regressions.rs`).
#[doc(hidden)]
pub fn parse_header_blob(blob: &[u8]) -> Result<Package> {
    header::parse_blob(blob)
}

/// Read all packages of the sqlite database at `file` in `root`.
fn read_sqlite(root: &Dir, file: &std::path::Path, name: &str) -> Result<Vec<Package>> {
    let db = sqlite::DbCopy::open(root, file, name)?;
    let mut packages = Vec::new();
    db.for_each_header(|hnum, blob| {
        let package =
            header::parse_blob(blob).with_context(|| format!("{name}: header #{hnum}"))?;
        packages.push(package);
        Ok(())
    })?;
    Ok(packages)
}

/// Read all packages of the Berkeley DB `Packages` file at `file` in `dir`.
fn read_bdb(dir: &Dir, file: &std::path::Path, name: &str) -> Result<Vec<Package>> {
    let f = dir
        .open(file)
        .with_context(|| format!("{name}: cannot open"))?
        .into_std();
    let meta = f
        .metadata()
        .with_context(|| format!("{name}: cannot stat"))?;
    anyhow::ensure!(meta.is_file(), "{name}: not a regular file");
    bdb_packages(&f, meta.len(), name)
}

/// Read all packages of a Berkeley DB `Packages` file held in memory.
///
/// Not part of the API: the entry point of the mutation tests (and a fuzz
/// target). `name` starts every error message.
#[doc(hidden)]
pub fn read_bdb_bytes(bytes: &[u8], name: &str) -> Result<Vec<Package>> {
    bdb_packages(bytes, bytes.len() as u64, name)
}

/// Walk a `Packages` file and parse every header. A bad header is reported
/// with its instance number; a bad file structure as a corrupt database.
fn bdb_packages<S: bdb::ReadAt + ?Sized>(src: &S, len: u64, name: &str) -> Result<Vec<Package>> {
    let mut packages = Vec::new();
    let mut header_error = None;
    let walked = bdb::for_each_header(src, len, |instance, blob| {
        match header::parse_blob(blob) {
            Ok(p) => packages.push(p),
            Err(e) => {
                header_error = Some(e.context(format!("{name}: header #{instance}")));
                anyhow::bail!("stopped at a bad header");
            }
        }
        Ok(())
    });
    if let Some(e) = header_error {
        return Err(e);
    }
    walked.with_context(|| format!("{name}: corrupt Berkeley DB database"))?;
    packages.sort_by(package_cmp);
    Ok(packages)
}
