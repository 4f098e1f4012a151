//! One layer's tar stream, member by member, into the merged tree.
//!
//! Every member becomes an [`Entry`] exactly as [`crate::rootfs::walk`]
//! would record the file on disk: the path encoded by
//! [`crate::path::encode`], `mode & 0o7777`, uid and gid from the header
//! (PAX overrides honoured), size and sha256 for regular files (hashed as
//! the bytes stream by, never held), the symlink target, the device number,
//! and xattrs from PAX `SCHILY.xattr.*` records (overlayfs internals left
//! out, as the walk does). Member names are data, resolved against the
//! image root; a member that container runtimes refuse, or may read
//! differently from this reader, is left out of the tree and returned as
//! [`Malformed`], and reading goes on (see [`classify`] and [`Problem`]).
//!
//! Only two kinds of content are kept: the text of the files the walk
//! keeps text of ([`crate::zones::text_kept`]: small `/etc` files for
//! diffs, the files the layout planner reads) and, in the [`Spool`], the
//! rpm database files and the recorded base reference; also the content
//! objects such files may be hardlinks to, in ostree's container layout
//! (see `keep_for`).
//!
//! Against a base read from an ostree commit ([`apply_against`]), a regular
//! file the base has is hashed behind the base's file header instead, as
//! the walk does (see [`super::against`]); against it, rpm-ostree's record
//! of the base's rpm database ([`crate::ostree::BASE_DB`]) is kept too.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use super::against::Against;
use super::guard::MetaGuard;
use super::merge::{Kept, Merged};
use super::spool::{MAX_KEPT, Spool};
use crate::manifest::{self, Checksum, Entry, Hex, Kind};
use crate::ostree::objects::FileHeader;
use crate::path;

/// The files of an rpm database that are kept: the packages file of each
/// backend (sqlite, ndb, Berkeley DB) and sqlite's side files that can hold
/// committed data.
pub const RPMDB_FILES: [&str; 5] = [
    "rpmdb.sqlite",
    "rpmdb.sqlite-wal",
    "rpmdb.sqlite-journal",
    "Packages.db",
    "Packages",
];

/// The whiteout prefix of the OCI image spec.
const WHITEOUT: &[u8] = b".wh.";

/// The opaque-directory marker of the OCI image spec.
const OPAQUE: &[u8] = b".wh..wh..opq";

/// What a member name means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// A path to put, absolute and encoded.
    Path(String),
    /// `.wh.NAME`: hide this path of the lower layers.
    Whiteout(String),
    /// `.wh..wh..opq`: hide the lower contents of this directory (the
    /// image root is [`Name::OpaqueRoot`]).
    Opaque(String),
    /// `.wh..wh..opq` in the image root: malformed. A plain unpack
    /// (docker's and containers/storage's `UnpackLayer`, the vfs driver)
    /// deletes every lower path; overlay storage marks its layer's root
    /// directory opaque, which overlayfs ignores for the root, so nothing is
    /// hidden. No standard tool writes it: a layer cannot replace the root.
    OpaqueRoot,
    /// Another `.wh..wh.` name (aufs metadata, `.wh..wh.plnk`, …) in this
    /// directory: malformed. Docker and containers/storage skip it in the
    /// root only and elsewhere read it as a whiteout of `.wh.NAME`;
    /// containerd's overlay converter makes a whiteout device for it
    /// anywhere. Exporters never write them.
    Reserved(String),
    /// A whiteout of no name, `.` or `..` (`.wh.`, `.wh..`, `.wh...`) in
    /// this directory: malformed. Runtimes read it as the removal of the
    /// directory itself or of its parent (a plain unpack), or refuse it
    /// (overlay's whiteout device cannot be made over a directory).
    WhiteoutOfDot(String),
    /// A name whose `..` climbs above the root: malformed. Runtimes refuse
    /// it as a breakout.
    Escapes,
    /// A name whose path (after cleaning) goes through a directory named
    /// `.wh.…` (this directory): malformed. The OCI image spec reserves
    /// such names for whiteouts, so no filesystem a layer describes can
    /// have that directory; its own member would be read as a whiteout
    /// (of `.` or `..` for `.wh..` and `.wh...`), and runtimes make it only
    /// as a side effect of creating the parents of this member.
    UnderWhiteout(String),
}

/// Interpret a raw member name (or hardlink target).
///
/// Runtimes read a name relative to the root they unpack into: a leading
/// `/` is dropped, so `/etc/x` means `/etc/x`. `.` and empty parts are
/// dropped and `..` goes up one level; a `..` that would climb above the
/// root makes the whole name [`Name::Escapes`], absolute or not (`../x`,
/// `usr/../../x`, `/../x`, `..`). Moby and containers/storage refuse such
/// member names and hardlink targets as breakouts (moby cleans an absolute
/// member name before joining it, and lets `/../x` through as `/x`, but
/// not as a hardlink target; this reader refuses both alike).
///
/// Then, at every directory level: a name whose cleaned path goes through
/// a `.wh.…` directory is [`Name::UnderWhiteout`]; the last part decides
/// the rest (whiteout, opaque marker, reserved `.wh..wh.` name, whiteout of
/// `.` or `..`, or a plain path).
pub fn classify(raw: &[u8]) -> Name {
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if parts.pop().is_none() {
                    return Name::Escapes;
                }
            }
            p => parts.push(p),
        }
    }
    let Some(last) = parts.last().copied() else {
        return Name::Path("/".to_string());
    };
    let join = |parts: &[&[u8]]| {
        let mut out = Vec::new();
        for p in parts {
            out.push(b'/');
            out.extend_from_slice(p);
        }
        if out.is_empty() {
            out.push(b'/');
        }
        path::encode(&out).0
    };
    let parent = &parts[..parts.len() - 1];
    if let Some(at) = parent.iter().position(|p| p.starts_with(WHITEOUT)) {
        return Name::UnderWhiteout(join(&parent[..=at]));
    }
    if last == OPAQUE {
        if parent.is_empty() {
            return Name::OpaqueRoot;
        }
        return Name::Opaque(join(parent));
    }
    let Some(hidden) = last.strip_prefix(WHITEOUT) else {
        return Name::Path(join(&parts));
    };
    if matches!(hidden, b"" | b"." | b"..") {
        return Name::WhiteoutOfDot(join(parent));
    }
    if hidden.starts_with(WHITEOUT) {
        return Name::Reserved(join(parent));
    }
    let mut target = parent.to_vec();
    target.push(hidden);
    Name::Whiteout(join(&target))
}

/// A member that container runtimes refuse, or may read differently from
/// this reader. It is left out of the merged tree; reading goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// The member's name as the tar has it, encoded by [`path::encode`].
    pub member: String,
    /// The image path the member is about, when it names one inside the
    /// image: the hardlink, the opaque directory, the whiteout's directory.
    pub path: Option<String>,
    /// What is wrong with it.
    pub problem: Problem,
}

/// What makes a member malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The name climbs above the root after cleaning ([`Name::Escapes`]).
    NameEscapes,
    /// A whiteout of no name, `.` or `..` ([`Name::WhiteoutOfDot`]).
    WhiteoutOfDot,
    /// An opaque marker in the image root ([`Name::OpaqueRoot`]).
    OpaqueAtRoot,
    /// A `.wh..wh.` name other than the opaque marker ([`Name::Reserved`]).
    ReservedWhiteout,
    /// A path through a `.wh.…` directory ([`Name::UnderWhiteout`]).
    UnderWhiteout,
    /// An opaque marker that is not an empty regular file (a directory, a
    /// symlink, a hardlink, a file with content): what it is and what the
    /// runtime unpacks for it disagree.
    OpaqueNotEmptyFile,
    /// An opaque marker whose directory is a file, symlink or special file
    /// in the merged tree when the marker is met (this layer's or a lower
    /// one's): overlay storage marks that non-directory opaque or creates a
    /// directory in the layer, a plain unpack walks and removes it; the
    /// readings differ.
    OpaqueParentNotDir,
    /// A hardlink whose target (encoded) climbs above the root.
    LinkEscapes(String),
    /// A hardlink whose target (encoded) is nothing in the merged tree at
    /// that point, a whiteout name, or a directory: runtimes fail to make
    /// the link.
    LinkToNothing(String),
}

impl Problem {
    /// One sentence, for the finding's message.
    pub fn describe(&self) -> String {
        match self {
            Problem::NameEscapes => {
                "its name climbs above the image root (a path breakout)".to_string()
            }
            Problem::WhiteoutOfDot => {
                "a whiteout of no name, `.` or `..`, which runtimes refuse or read as \
                 deleting the directory itself or its parent"
                    .to_string()
            }
            Problem::OpaqueAtRoot => {
                "an opaque-directory marker in the image root, which a plain unpack reads as \
                 deleting every lower layer's content and overlay storage ignores"
                    .to_string()
            }
            Problem::ReservedWhiteout => {
                "a `.wh..wh.` name that is not the opaque marker (aufs metadata), which \
                 runtimes skip in the root and elsewhere read as a whiteout of `.wh.NAME`"
                    .to_string()
            }
            Problem::UnderWhiteout => {
                "its path goes through a directory named `.wh.…`, a name the OCI image spec \
                 reserves for whiteouts (that directory's own member would delete a path)"
                    .to_string()
            }
            Problem::OpaqueNotEmptyFile => {
                "an opaque-directory marker that is not an empty regular file".to_string()
            }
            Problem::OpaqueParentNotDir => {
                "an opaque-directory marker whose directory is not a directory at that point"
                    .to_string()
            }
            Problem::LinkEscapes(t) => {
                format!("a hardlink to {t}, which climbs above the image root (a path breakout)")
            }
            Problem::LinkToNothing(t) => format!(
                "a hardlink to {t}, which is no file of the image at that point (missing, a \
                 whiteout name or a directory)"
            ),
        }
    }
}

/// Apply one layer's tar stream to `merged`; returns its malformed
/// members, in tar order, which are left out. Errors name the member. Tar
/// metadata entries are bounded by [`super::guard`].
pub fn apply(tar: impl Read, merged: &mut Merged, spool: &Spool) -> Result<Vec<Malformed>> {
    apply_against(tar, merged, spool, None)
}

/// [`apply`], hashing regular files against a base read from an ostree
/// commit when `against` is given (see the module docs).
pub fn apply_against(
    tar: impl Read,
    merged: &mut Merged,
    spool: &Spool,
    against: Option<&Against<'_>>,
) -> Result<Vec<Malformed>> {
    let mut archive = tar::Archive::new(MetaGuard::new(tar));
    let mut buf = vec![0u8; 256 << 10];
    let mut last_object = None;
    let mut malformed = Vec::new();
    for entry in archive.entries().context("not a tar stream")? {
        let mut entry = entry.context("corrupt tar stream")?;
        let raw = entry.path_bytes().into_owned();
        let problem = member(
            &mut entry,
            &raw,
            merged,
            spool,
            &mut buf,
            against,
            &mut last_object,
        )
        .with_context(|| format!("member {}", path::encode(&raw).0))?;
        if let Some((path, problem)) = problem {
            malformed.push(Malformed {
                member: path::encode(&raw).0,
                path,
                problem,
            });
        }
    }
    Ok(malformed)
}

/// The text of the content object read last (at most
/// [`LAST_OBJECT_TEXT_MAX`] bytes of UTF-8), for the hardlinks that follow
/// it. ostree-ext writes each content object, then at once the checkout
/// path that first uses it as a hardlink to it: `/etc/passwd` reaches its
/// text that way. Only the last object's text is held, so memory stays flat.
type LastObject = Option<(String, String)>;

/// The largest content object whose text is held for the hardlinks after
/// it: the config files the walk keeps text of are small.
const LAST_OBJECT_TEXT_MAX: u64 = 1 << 20;

/// Apply one member; `Some` when it is malformed and was left out: the
/// image path it is about, if any, and what is wrong.
fn member<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    raw: &[u8],
    merged: &mut Merged,
    spool: &Spool,
    buf: &mut [u8],
    against: Option<&Against<'_>>,
    last_object: &mut LastObject,
) -> Result<Option<(Option<String>, Problem)>> {
    let kind = entry.header().entry_type();
    if kind.is_pax_global_extensions()
        || kind.is_pax_local_extensions()
        || kind.is_gnu_longname()
        || kind.is_gnu_longlink()
    {
        return Ok(None);
    }
    match classify(raw) {
        Name::Escapes => Ok(Some((None, Problem::NameEscapes))),
        Name::OpaqueRoot => Ok(Some((Some("/".to_string()), Problem::OpaqueAtRoot))),
        Name::Reserved(dir) => Ok(Some((Some(dir), Problem::ReservedWhiteout))),
        Name::UnderWhiteout(dir) => Ok(Some((Some(dir), Problem::UnderWhiteout))),
        Name::WhiteoutOfDot(dir) => Ok(Some((Some(dir), Problem::WhiteoutOfDot))),
        Name::Whiteout(p) => merged.whiteout(&p).map(|()| None),
        Name::Opaque(d) => {
            if !(kind.is_file() && entry.size() == 0) {
                return Ok(Some((Some(d), Problem::OpaqueNotEmptyFile)));
            }
            if merged.get(&d).is_some_and(|n| n.entry.kind != Kind::Dir) {
                return Ok(Some((Some(d), Problem::OpaqueParentNotDir)));
            }
            merged.opaque(&d).map(|()| None)
        }
        Name::Path(p) if kind.is_hard_link() => {
            let Some(target) = entry.link_name_bytes() else {
                bail!("hardlink without a target");
            };
            let shown = path::encode(&target).0;
            let t = match classify(&target) {
                Name::Path(t) => t,
                Name::Escapes => return Ok(Some((Some(p), Problem::LinkEscapes(shown)))),
                _ => return Ok(Some((Some(p), Problem::LinkToNothing(shown)))),
            };
            if merged.get(&t).is_none_or(|n| n.entry.kind == Kind::Dir) {
                return Ok(Some((Some(p), Problem::LinkToNothing(shown))));
            }
            merged.hardlink(&p, &t)?;
            if let Some((object, text)) = last_object.as_ref()
                && *object == t
                && merged
                    .get(&p)
                    .is_some_and(|n| crate::zones::text_kept(&p, n.entry.size))
            {
                merged.set_text(&p, text.clone());
            }
            Ok(None)
        }
        Name::Path(p) => {
            let header = against.and_then(|a| a.header_for(&p));
            let (mut e, kept) = read_entry(entry, &p, spool, buf, header.as_deref(), against)?;
            if against.is_none() && p.starts_with(super::against::OBJECTS) && e.kind == Kind::File {
                *last_object = e.text.take().map(|t| (p.clone(), t));
            }
            let hashed = header.filter(|_| e.kind == Kind::File);
            merged.put_hashed(&p, e, kept, hashed).map(|()| None)
        }
    }
}

/// What to keep of a regular file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    Nothing,
    Text,
    Spool,
    /// Spool it if it starts like an rpm database file ([`is_db_file`]):
    /// an ostree content object, which an rpm database path may be a
    /// hardlink to.
    SpoolIfDb,
    /// [`Keep::SpoolIfDb`], and its text for the hardlinks right after it
    /// (see [`LastObject`]): a small content object, with no ostree base.
    ObjectText,
}

/// What to keep of a regular file at `p` of `size` bytes: the rpm
/// database files (rpm-ostree's record of the base's among them), and,
/// against an ostree base, the text of content objects that hold the text
/// the walk keeps for some base path.
///
/// ostree's container images keep each file's content once, at its
/// content object's path (see [`super::against`]), every path of the
/// commit being a hardlink to it; the hardlink takes what was kept of the
/// object. So the objects a kept path may link to are kept too: those
/// that look like an rpm database file, and, against an ostree base,
/// those holding a base path's kept text.
fn keep_for(p: &str, size: u64, against: Option<&Against<'_>>) -> Keep {
    let spooled = p == manifest::DEFAULT_MANIFEST
        || p.rsplit_once('/').is_some_and(|(dir, name)| {
            crate::zones::RPMDB_DIRS.contains(&dir) && RPMDB_FILES.contains(&name)
        });
    if spooled {
        Keep::Spool
    } else if crate::zones::text_kept(p, size) {
        Keep::Text
    } else if !p.starts_with(super::against::OBJECTS) {
        Keep::Nothing
    } else if size <= OBJECT_TEXT_MAX && against.is_some_and(|a| a.keeps_text(p)) {
        Keep::Text
    } else if against.is_none() && size <= LAST_OBJECT_TEXT_MAX {
        Keep::ObjectText
    } else {
        Keep::SpoolIfDb
    }
}

/// The largest content object whose text is kept (the largest text the
/// walk keeps, of finalize's own generated files).
const OBJECT_TEXT_MAX: u64 = 64 << 20;

/// Bytes [`is_db_file`] looks at.
const DB_MAGIC_LEN: usize = 16;

/// Whether a file starting with `head` (its first [`DB_MAGIC_LEN`] bytes,
/// or all of a shorter file) looks like one of the [`RPMDB_FILES`]: an
/// sqlite database, write-ahead log or rollback journal, or a Berkeley DB
/// hash database (either byte order).
fn is_db_file(head: &[u8]) -> bool {
    const SQLITE: &[u8] = b"SQLite format 3\0";
    const JOURNAL: &[u8] = &[0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];
    const WAL: [[u8; 4]; 2] = [[0x37, 0x7f, 0x06, 0x82], [0x37, 0x7f, 0x06, 0x83]];
    const BDB_HASH: u32 = 0x0006_1561;
    let bdb = head
        .get(12..16)
        .and_then(|m| <[u8; 4]>::try_from(m).ok())
        .is_some_and(|m| u32::from_le_bytes(m) == BDB_HASH || u32::from_be_bytes(m) == BDB_HASH);
    head.starts_with(SQLITE)
        || head.starts_with(JOURNAL)
        || WAL.iter().any(|w| head.starts_with(w))
        || bdb
}

/// The entry of a member at `p`; a regular file's content is hashed behind
/// `behind` when there is one (see the module docs).
fn read_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    p: &str,
    spool: &Spool,
    buf: &mut [u8],
    behind: Option<&FileHeader>,
    against: Option<&Against<'_>>,
) -> Result<(Entry, Option<Kept>)> {
    let header = entry.header();
    let et = header.entry_type();
    let kind = if et.is_file() || et.is_contiguous() || et.is_gnu_sparse() {
        Kind::File
    } else if et.is_dir() {
        Kind::Dir
    } else if et.is_symlink() {
        Kind::Symlink
    } else if et.is_character_special() {
        Kind::Char
    } else if et.is_block_special() {
        Kind::Block
    } else if et.is_fifo() {
        Kind::Fifo
    } else {
        bail!("unsupported tar entry type {:?}", et.as_byte() as char);
    };
    let id = |v: u64| u32::try_from(v).context("owner id out of range");
    let mut e = Entry::new(
        String::new(),
        kind,
        header.mode().context("corrupt mode")? & 0o7777,
        id(header.uid().context("corrupt uid")?)?,
        id(header.gid().context("corrupt gid")?)?,
    );
    if matches!(kind, Kind::Char | Kind::Block) {
        let major = header
            .device_major()
            .context("corrupt device")?
            .unwrap_or(0);
        let minor = header
            .device_minor()
            .context("corrupt device")?
            .unwrap_or(0);
        e.rdev = Some(u64::from(major) << 32 | u64::from(minor));
    }
    e.xattrs = pax_xattrs(entry)?;
    let mut kept = None;
    match kind {
        Kind::Symlink => {
            let Some(target) = entry.link_name_bytes() else {
                bail!("symlink without a target");
            };
            e.target = Some(path::encode(&target).0);
        }
        Kind::File => {
            let keep = keep_for(p, entry.size(), against);
            kept = hash_content(entry, keep, &mut e, spool, buf, behind)?;
        }
        _ => {}
    }
    Ok((e, kept))
}

/// Hash a regular file's content as it streams, behind `header` when there
/// is one (into `e.ostree`, else `e.sha256`); keep text or spool it as
/// `keep` says.
fn hash_content<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    keep: Keep,
    e: &mut Entry,
    spool: &Spool,
    buf: &mut [u8],
    header: Option<&FileHeader>,
) -> Result<Option<Kept>> {
    let declared = entry.size();
    let mut text = matches!(keep, Keep::Text | Keep::ObjectText).then(Vec::new);
    let keep = match keep {
        Keep::ObjectText => Keep::SpoolIfDb,
        k => k,
    };
    let mut writer = match keep {
        Keep::Spool => Some(spool.writer(MAX_KEPT)?),
        _ => None,
    };
    // For SpoolIfDb: the first bytes, until they tell.
    let mut head = (keep == Keep::SpoolIfDb).then(Vec::new);
    let mut hasher = Sha256::new();
    if let Some(h) = header {
        hasher.update(h.bytes());
    }
    let mut total = 0u64;
    loop {
        let n = entry.read(buf).context("cannot read the content")?;
        if n == 0 {
            break;
        }
        total += n as u64;
        let chunk = &buf[..n];
        hasher.update(chunk);
        if let Some(t) = text.as_mut() {
            t.extend_from_slice(chunk);
        }
        if keep == Keep::SpoolIfDb && total > MAX_KEPT {
            // Too big to be kept: not a database lint reads.
            writer = None;
        }
        if let Some(w) = writer.as_mut() {
            w.write(chunk)?;
        } else if let Some(h) = head.as_mut() {
            let want = DB_MAGIC_LEN - h.len();
            h.extend_from_slice(&chunk[..want.min(n)]);
            if h.len() == DB_MAGIC_LEN {
                if is_db_file(h) {
                    let mut w = spool.writer(MAX_KEPT)?;
                    w.write(h)?;
                    w.write(&chunk[want..])?;
                    writer = Some(w);
                }
                head = None;
            }
        }
    }
    if let Some(h) = head.filter(|h| is_db_file(h)) {
        // Shorter than the magic: hardly a database, but kept as one.
        let mut w = spool.writer(MAX_KEPT)?;
        w.write(&h)?;
        writer = Some(w);
    }
    e.size = total;
    let digest = Some(Checksum(hasher.finalize().into()));
    match header {
        Some(_) => e.ostree = digest,
        None => e.sha256 = digest,
    }
    e.text = text
        .filter(|t| t.len() as u64 == declared && !t.contains(&0))
        .and_then(|t| String::from_utf8(t).ok());
    writer.map(|w| w.finish()).transpose()
}

/// xattrs from PAX `SCHILY.xattr.NAME` records, overlayfs internals left
/// out.
fn pax_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<BTreeMap<String, Hex>> {
    let mut out = BTreeMap::new();
    let Some(exts) = entry.pax_extensions().context("corrupt PAX header")? else {
        return Ok(out);
    };
    for ext in exts {
        let ext = ext.context("corrupt PAX header")?;
        let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") else {
            continue;
        };
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
            continue;
        }
        out.insert(name.to_string(), Hex(ext.value_bytes().to_vec()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Name {
        Name::Path(s.into())
    }

    #[test]
    fn names_are_resolved_against_the_image_root() {
        assert_eq!(classify(b"./usr/bin/ls"), p("/usr/bin/ls"));
        assert_eq!(classify(b"/usr/bin/ls"), p("/usr/bin/ls"));
        assert_eq!(classify(b"usr/../etc//./x"), p("/etc/x"));
        assert_eq!(classify(b"./"), p("/"));
        assert_eq!(classify(b"usr/.."), p("/"));
        assert_eq!(classify(b"bad\xffname"), p("/bad\\xffname"));
    }

    #[test]
    fn names_that_climb_above_the_root_escape() {
        for raw in [
            &b"../../../etc/evil"[..],
            b"usr/../../usr//lib/./x",
            b"..",
            b"./..",
            b"/../etc/x",
            b"usr/../../.wh.x",
            b"../.wh..wh..opq",
        ] {
            assert_eq!(classify(raw), Name::Escapes, "{raw:?}");
        }
    }

    #[test]
    fn whiteouts_and_opaque_markers() {
        assert_eq!(
            classify(b"usr/lib/.wh.libx.so"),
            Name::Whiteout("/usr/lib/libx.so".into())
        );
        assert_eq!(classify(b".wh.opt"), Name::Whiteout("/opt".into()));
        assert_eq!(
            classify(b"usr/share/.wh..wh..opq"),
            Name::Opaque("/usr/share".into())
        );
        assert_eq!(classify(b".wh..wh..opq"), Name::OpaqueRoot);
        assert_eq!(classify(b"./usr/../.wh..wh..opq"), Name::OpaqueRoot);
        assert_eq!(classify(b"usr/.wh...."), Name::Whiteout("/usr/...".into()));
        assert_eq!(classify(b".wh..wh.plnk"), Name::Reserved("/".into()));
        assert_eq!(
            classify(b"usr/lib/.wh..wh.aufs"),
            Name::Reserved("/usr/lib".into())
        );
        for dot in [&b"usr/.wh.."[..], b"usr/.wh...", b"usr/.wh."] {
            assert_eq!(classify(dot), Name::WhiteoutOfDot("/usr".into()), "{dot:?}");
        }
        assert_eq!(classify(b".wh.."), Name::WhiteoutOfDot("/".into()));
    }

    #[test]
    fn a_path_through_a_whiteout_named_directory_is_refused_at_every_level() {
        for (raw, dir) in [
            (&b"usr/.wh../x"[..], "/usr/.wh.."),
            (b".wh.../etc/passwd", "/.wh..."),
            (b"usr/share/.wh..wh..opq/x", "/usr/share/.wh..wh..opq"),
            (b"usr/.wh.lib/a/.wh.b/c", "/usr/.wh.lib"),
            (b"a/.wh.x/.wh.y", "/a/.wh.x"),
        ] {
            assert_eq!(classify(raw), Name::UnderWhiteout(dir.into()), "{raw:?}");
        }
        // Cleaned first, as runtimes clean it: a `..` takes the part away.
        assert_eq!(classify(b"usr/.wh.x/../y"), p("/usr/y"));
    }

    /// A tar of empty `(name, type, link target)` members, names written byte for byte.
    fn tar_of(members: &[(&[u8], tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, link) in members {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(0);
            let old = h.as_old_mut();
            old.name.fill(0);
            old.name[..name.len()].copy_from_slice(name);
            old.linkname.fill(0);
            old.linkname[..link.len()].copy_from_slice(link);
            h.set_cksum();
            b.append(&h, &[][..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn malformed_members_are_left_out_and_reading_goes_on() {
        use tar::EntryType::{Directory, Link, Regular};
        let tar = tar_of(&[
            (b"usr/", Directory, b""),
            (b"usr/file", Regular, b""),
            (b"../../tmp/x", Regular, b""),
            (b"usr/.wh..", Regular, b""),
            (b"usr/file/.wh..wh..opq", Regular, b""),
            (b"usr/d/.wh..wh..opq", Directory, b""),
            (b"usr/out", Link, b"../../etc/shadow"),
            (b"usr/none", Link, b"usr/missing"),
            (b"usr/dir", Link, b"usr"),
            (b"usr/ok", Link, b"/usr/file"),
            (b".wh..wh..opq", Regular, b""),
            (b"usr/.wh..wh.plnk", Regular, b""),
            (b"usr/.wh../x", Regular, b""),
            (b"usr/last", Regular, b""),
        ]);
        let spool = Spool::new().unwrap();
        let mut merged = Merged::default();
        merged.begin_layer();
        let got = apply(&tar[..], &mut merged, &spool).unwrap();
        let m = |member: &str, path: Option<&str>, problem| Malformed {
            member: member.into(),
            path: path.map(str::to_string),
            problem,
        };
        assert_eq!(
            got,
            [
                m("../../tmp/x", None, Problem::NameEscapes),
                m("usr/.wh..", Some("/usr"), Problem::WhiteoutOfDot),
                m(
                    "usr/file/.wh..wh..opq",
                    Some("/usr/file"),
                    Problem::OpaqueParentNotDir
                ),
                m(
                    "usr/d/.wh..wh..opq",
                    Some("/usr/d"),
                    Problem::OpaqueNotEmptyFile
                ),
                m(
                    "usr/out",
                    Some("/usr/out"),
                    Problem::LinkEscapes("../../etc/shadow".into())
                ),
                m(
                    "usr/none",
                    Some("/usr/none"),
                    Problem::LinkToNothing("usr/missing".into())
                ),
                m(
                    "usr/dir",
                    Some("/usr/dir"),
                    Problem::LinkToNothing("usr".into())
                ),
                m(".wh..wh..opq", Some("/"), Problem::OpaqueAtRoot),
                m("usr/.wh..wh.plnk", Some("/usr"), Problem::ReservedWhiteout),
                m("usr/.wh../x", Some("/usr/.wh.."), Problem::UnderWhiteout),
            ]
        );
        let paths: Vec<&str> = merged.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["/", "/usr", "/usr/file", "/usr/last", "/usr/ok"]);
        assert_eq!(merged.get("/usr/file").unwrap().entry.kind, Kind::File);
    }

    #[test]
    fn what_is_kept() {
        assert_eq!(keep_for("/etc/passwd", 100, None), Keep::Text);
        assert_eq!(keep_for("/etc/big", 64 * 1024 + 1, None), Keep::Nothing);
        assert_eq!(keep_for("/etc", 1, None), Keep::Nothing);
        assert_eq!(
            keep_for("/usr/lib/sysimage/rpm/rpmdb.sqlite", 1, None),
            Keep::Spool
        );
        assert_eq!(
            keep_for("/var/lib/rpm/rpmdb.sqlite-wal", 1, None),
            Keep::Spool
        );
        assert_eq!(
            keep_for("/usr/lib/sysimage/rpm/rpmdb.sqlite-shm", 1, None),
            Keep::Nothing
        );
        assert_eq!(keep_for("/srv/rpmdb.sqlite", 1, None), Keep::Nothing);
        assert_eq!(keep_for("/var/lib/rpm/Packages", 1, None), Keep::Spool);
        assert_eq!(
            keep_for(manifest::DEFAULT_MANIFEST, 1 << 40, None),
            Keep::Spool
        );
        // rpm-ostree's copy of the base's database.
        let base_db = "/usr/lib/sysimage/rpm-ostree-base-db/rpmdb.sqlite";
        assert_eq!(keep_for(base_db, 1, None), Keep::Spool);
        // Content objects an rpm database path may be a hardlink to.
        let object = format!(
            "{}ab/{}.file",
            super::super::against::OBJECTS,
            "c".repeat(62)
        );
        // With no ostree base, a small one's text is held for the config
        // file hardlinks that follow it; a big one's is not.
        assert_eq!(keep_for(&object, 1, None), Keep::ObjectText);
        assert_eq!(
            keep_for(&object, LAST_OBJECT_TEXT_MAX + 1, None),
            Keep::SpoolIfDb
        );
    }

    #[test]
    fn rpm_database_files_are_known_by_their_first_bytes() {
        let mut sqlite = b"SQLite format 3\0".to_vec();
        sqlite.extend_from_slice(&[0x10, 0, 1, 1]);
        let mut bdb_le = vec![0u8; 16];
        bdb_le[12..16].copy_from_slice(&0x0006_1561u32.to_le_bytes());
        let mut bdb_be = vec![0u8; 16];
        bdb_be[12..16].copy_from_slice(&0x0006_1561u32.to_be_bytes());
        let wal = [0x37, 0x7f, 0x06, 0x82, 0, 0, 0, 0];
        let journal = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7, 0];
        for db in [&sqlite[..16], &bdb_le, &bdb_be, &wal, &journal] {
            assert!(is_db_file(db), "{db:?}");
        }
        for other in [
            &b"#!/bin/sh\necho hello\n"[..],
            b"",
            b"SQLite format 2\0",
            &[0u8; 16],
        ] {
            assert!(!is_db_file(other), "{other:?}");
        }
    }
}
