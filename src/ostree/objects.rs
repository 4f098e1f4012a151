//! ostree's object formats: commit, dirtree and dirmeta objects, the
//! bare-user metadata xattr, and the file header that content checksums
//! cover.
//!
//! | object | GVariant type |
//! |---|---|
//! | commit | `(a{sv}aya(say)sstayay)`: metadata, parent, related, subject, body, timestamp, root dirtree, root dirmeta |
//! | dirtree | `(a(say)a(sayay))`: files (name, checksum), subdirectories (name, dirtree, dirmeta) |
//! | dirmeta | `(uuua(ayay))`: uid, gid, mode, xattrs |
//! | `user.ostreemeta` (bare-user) | `(uuua(ayay))` |
//! | file header | `(uuuusa(ayay))`: uid, gid, mode, rdev, symlink target, xattrs |
//!
//! A content object's checksum is SHA-256 over the file header, prefixed
//! with its length (a big-endian u32 and four NUL bytes), followed by the
//! content (nothing for a symlink). Metadata objects are named by the
//! SHA-256 of their bytes.

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};

use super::gvariant::{self, Layout};

/// A SHA-256 object name.
pub type Checksum = [u8; 32];

/// The parts of a commit this tool uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Parent commit, when there is one.
    pub parent: Option<Checksum>,
    /// Subject line.
    pub subject: String,
    /// Seconds since the epoch.
    pub timestamp: u64,
    /// The root directory's dirtree object.
    pub root_tree: Checksum,
    /// The root directory's dirmeta object.
    pub root_meta: Checksum,
    /// The commit's metadata, an `a{sv}` (see [`Commit::pkglist`]).
    pub metadata: Vec<u8>,
}

/// The commit metadata key where rpm-ostree's compose records the package
/// set: an `a(sssss)` of name, epoch, version, release and arch.
pub const PKGLIST_KEY: &str = "rpmostree.rpmdb.pkglist";

/// One package of [`PKGLIST_KEY`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkgListEntry {
    /// Name.
    pub name: String,
    /// Epoch as rpm-ostree writes it (`"0"` when the header has none).
    pub epoch: String,
    /// Version.
    pub version: String,
    /// Release.
    pub release: String,
    /// Architecture.
    pub arch: String,
}

impl Commit {
    /// The package list rpm-ostree recorded in the commit metadata
    /// ([`PKGLIST_KEY`]), when there is one.
    pub fn pkglist(&self) -> Result<Option<Vec<PkgListEntry>>> {
        let Some((value, ty)) = gvariant::lookup_sv(&self.metadata, PKGLIST_KEY)? else {
            return Ok(None);
        };
        ensure!(
            ty == b"a(sssss)",
            "{PKGLIST_KEY} has type {:?}, not a(sssss)",
            String::from_utf8_lossy(ty)
        );
        let mut out = Vec::new();
        for item in gvariant::array(value, Layout::BYTES)? {
            let f = gvariant::tuple(item, &[Layout::BYTES; 5])?;
            let s = |i: usize| -> Result<String> {
                Ok(String::from_utf8_lossy(gvariant::string(f[i])?).into_owned())
            };
            out.push(PkgListEntry {
                name: s(0)?,
                epoch: s(1)?,
                version: s(2)?,
                release: s(3)?,
                arch: s(4)?,
            });
        }
        Ok(Some(out))
    }
}

/// One directory's listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirTree {
    /// Files and symlinks: (name, content object).
    pub files: Vec<(Vec<u8>, Checksum)>,
    /// Subdirectories: (name, dirtree, dirmeta).
    pub dirs: Vec<(Vec<u8>, Checksum, Checksum)>,
}

/// Ownership, mode and xattrs: a dirmeta object, or a file's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// `st_mode`, file type bits included.
    pub mode: u32,
    /// Extended attributes in stored order, names without their NUL.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A 32-byte `ay` checksum.
fn checksum(data: &[u8], what: &str) -> Result<Checksum> {
    data.try_into()
        .map_err(|_| anyhow::anyhow!("{what}: checksum of {} bytes, not 32", data.len()))
}

/// Parse a commit object.
pub fn parse_commit(data: &[u8]) -> Result<Commit> {
    let parts = gvariant::tuple(
        data,
        &[
            Layout::DICT_SV,
            Layout::BYTES,
            Layout::BYTES,
            Layout::BYTES,
            Layout::BYTES,
            Layout::U64,
            Layout::BYTES,
            Layout::BYTES,
        ],
    )
    .context("not a commit object")?;
    let parent = match parts[1] {
        [] => None,
        p => Some(checksum(p, "parent")?),
    };
    Ok(Commit {
        parent,
        subject: String::from_utf8_lossy(gvariant::string(parts[3]).context("subject")?)
            .into_owned(),
        timestamp: gvariant::u64_be(parts[5])?,
        root_tree: checksum(parts[6], "root dirtree")?,
        root_meta: checksum(parts[7], "root dirmeta")?,
        metadata: parts[0].to_vec(),
    })
}

/// Check a name from a dirtree: what ostree itself accepts
/// (`ostree_validate_filename`): not empty, not `.` or `..`, no `/`.
fn filename(raw: &[u8]) -> Result<Vec<u8>> {
    let name = gvariant::string(raw)?;
    ensure!(
        !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/'),
        "invalid file name {:?}",
        String::from_utf8_lossy(name)
    );
    Ok(name.to_vec())
}

/// Parse a dirtree object. Names must be sorted and unique (as ostree
/// writes them) so that a path can never appear twice.
pub fn parse_dirtree(data: &[u8]) -> Result<DirTree> {
    let parts =
        gvariant::tuple(data, &[Layout::BYTES, Layout::BYTES]).context("not a dirtree object")?;
    let mut tree = DirTree::default();
    for item in gvariant::array(parts[0], Layout::BYTES)? {
        let f = gvariant::tuple(item, &[Layout::BYTES, Layout::BYTES])?;
        tree.files.push((filename(f[0])?, checksum(f[1], "file")?));
    }
    for item in gvariant::array(parts[1], Layout::BYTES)? {
        let d = gvariant::tuple(item, &[Layout::BYTES, Layout::BYTES, Layout::BYTES])?;
        tree.dirs.push((
            filename(d[0])?,
            checksum(d[1], "dirtree")?,
            checksum(d[2], "dirmeta")?,
        ));
    }
    for pair in tree.files.windows(2) {
        ensure!(pair[0].0 < pair[1].0, "file names not sorted or duplicated");
    }
    for pair in tree.dirs.windows(2) {
        ensure!(
            pair[0].0 < pair[1].0,
            "directory names not sorted or duplicated"
        );
    }
    if let Some((name, ..)) = tree
        .dirs
        .iter()
        .find(|(d, ..)| tree.files.binary_search_by(|(f, _)| f.cmp(d)).is_ok())
    {
        bail!(
            "{:?} is both a file and a directory",
            String::from_utf8_lossy(name)
        );
    }
    Ok(tree)
}

/// Parse `(uuua(ayay))`: a dirmeta object or bare-user's `user.ostreemeta`.
pub fn parse_meta(data: &[u8]) -> Result<Meta> {
    let parts = gvariant::tuple(
        data,
        &[Layout::U32, Layout::U32, Layout::U32, Layout::BYTES],
    )
    .context("not (uuua(ayay)) metadata")?;
    Ok(Meta {
        uid: gvariant::u32_be(parts[0])?,
        gid: gvariant::u32_be(parts[1])?,
        mode: gvariant::u32_be(parts[2])?,
        xattrs: parse_xattrs(parts[3])?,
    })
}

/// Parse an `a(ayay)` xattr list (a bare-split-xattrs `.file-xattrs`
/// object, or part of the shapes above).
pub fn parse_xattrs(data: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    Ok(gvariant::xattrs(data)?
        .into_iter()
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect())
}

/// The header of a content object, length-prefixed, ready to be hashed
/// before the content: what [`file_checksum`] covers besides the content.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileHeader(Vec<u8>);

impl FileHeader {
    /// Build the header of a regular file (`target` empty) or symlink.
    /// `xattrs` are in the order ostree stored them.
    pub fn new(meta: &Meta, target: &[u8]) -> FileHeader {
        let list: Vec<(&[u8], &[u8])> = meta
            .xattrs
            .iter()
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
            .collect();
        let xattrs = gvariant::encode_xattrs(&list);
        let header = gvariant::encode_file_header(meta.uid, meta.gid, meta.mode, target, &xattrs);
        let mut out = Vec::with_capacity(8 + header.len());
        // The header's length as a big-endian u32, then NULs up to 8 bytes.
        out.extend_from_slice(&(header.len() as u32).to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&header);
        FileHeader(out)
    }

    /// The bytes hashed before the content.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// ostree's content checksum of a file: its header, then its content.
pub fn file_checksum(header: &FileHeader, content: &[u8]) -> Checksum {
    let mut h = Sha256::new();
    h.update(header.bytes());
    h.update(content);
    h.finalize().into()
}

/// The order ostree keeps xattrs in when it reads them from a file
/// (libglnx sorts names bytewise and drops empty values).
pub fn canonical_xattrs(mut list: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    list.retain(|(_, v)| !v.is_empty());
    list.sort();
    list
}

/// SHA-256 of a metadata object's bytes: its name.
pub fn metadata_checksum(data: &[u8]) -> Checksum {
    Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_dirtree_is_refused() {
        let enc = |files: &[(&[u8], [u8; 32])]| {
            // (a(say)a(sayay)) with no directories.
            let mut arr = Vec::new();
            let mut ends = Vec::new();
            for (name, sum) in files {
                let start = arr.len();
                arr.extend_from_slice(name);
                arr.push(0);
                let name_end = arr.len() - start;
                arr.extend_from_slice(sum);
                arr.push(name_end as u8);
                ends.push(arr.len());
            }
            for e in ends {
                arr.push(e as u8);
            }
            let mut out = arr.clone();
            out.push(arr.len() as u8);
            out
        };
        assert!(parse_dirtree(&enc(&[(b"a", [0; 32]), (b"b", [1; 32])])).is_ok());
        for bad in [&b".."[..], b".", b"", b"a/b"] {
            let err = parse_dirtree(&enc(&[(bad, [0; 32])])).unwrap_err();
            assert!(format!("{err:#}").contains("invalid file name"), "{err:#}");
        }
        let err = parse_dirtree(&enc(&[(b"b", [0; 32]), (b"a", [0; 32])])).unwrap_err();
        assert!(err.to_string().contains("sorted"), "{err:#}");
    }
}
