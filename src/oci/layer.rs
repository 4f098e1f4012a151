//! One layer's tar stream, member by member, into the merged tree.
//!
//! Every member becomes an [`Entry`] exactly as [`crate::rootfs::walk`]
//! would record the file on disk: the path encoded by
//! [`crate::path::encode`], `mode & 0o7777`, uid and gid from the header
//! (PAX overrides honoured), size and sha256 for regular files (hashed as
//! the bytes stream by, never held), the symlink target, the device number,
//! and xattrs from PAX `SCHILY.xattr.*` records (overlayfs internals left
//! out, as the walk does). Member names are data: `..` and a leading `/`
//! are resolved against the image root and can never climb above it.
//!
//! Only two kinds of content are kept: the text of the files the walk
//! keeps text of ([`crate::zones::text_kept`]: small `/etc` files for
//! diffs, the files the layout planner reads) and, in the [`Spool`], the
//! rpm database files and the recorded base reference.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use super::guard::MetaGuard;
use super::merge::{Kept, Merged};
use super::spool::{MAX_KEPT, Spool};
use crate::manifest::{self, Checksum, Entry, Hex, Kind};
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
    /// `.wh..wh..opq`: hide the lower contents of this directory.
    Opaque(String),
    /// Other `.wh..wh.` metadata (aufs), or a whiteout of `.` or `..`.
    Ignored,
}

/// Interpret a raw member name. `.` and empty parts are dropped and `..`
/// goes up one level but never above the root, so `../../etc/x` and
/// `/etc/x` both mean `/etc/x`.
pub fn classify(raw: &[u8]) -> Name {
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
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
    if last == OPAQUE {
        return Name::Opaque(join(parent));
    }
    let Some(hidden) = last.strip_prefix(WHITEOUT) else {
        return Name::Path(join(&parts));
    };
    if hidden.starts_with(WHITEOUT) || matches!(hidden, b"" | b"." | b"..") {
        return Name::Ignored;
    }
    let mut target = parent.to_vec();
    target.push(hidden);
    Name::Whiteout(join(&target))
}

/// Apply one layer's tar stream to `merged`. Errors name the member. Tar
/// metadata entries are bounded by [`super::guard`].
pub fn apply(tar: impl Read, merged: &mut Merged, spool: &Spool) -> Result<()> {
    let mut archive = tar::Archive::new(MetaGuard::new(tar));
    let mut buf = vec![0u8; 256 << 10];
    for entry in archive.entries().context("not a tar stream")? {
        let mut entry = entry.context("corrupt tar stream")?;
        let raw = entry.path_bytes().into_owned();
        member(&mut entry, &raw, merged, spool, &mut buf)
            .with_context(|| format!("member {}", path::encode(&raw).0))?;
    }
    Ok(())
}

fn member<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    raw: &[u8],
    merged: &mut Merged,
    spool: &Spool,
    buf: &mut [u8],
) -> Result<()> {
    let kind = entry.header().entry_type();
    if kind.is_pax_global_extensions()
        || kind.is_pax_local_extensions()
        || kind.is_gnu_longname()
        || kind.is_gnu_longlink()
    {
        return Ok(());
    }
    match classify(raw) {
        Name::Ignored => Ok(()),
        Name::Whiteout(p) => merged.whiteout(&p),
        Name::Opaque(d) => merged.opaque(&d),
        Name::Path(p) if kind.is_hard_link() => {
            let Some(target) = entry.link_name_bytes() else {
                bail!("hardlink without a target");
            };
            match classify(&target) {
                Name::Path(t) => merged.hardlink(&p, &t),
                _ => bail!("hardlink to a whiteout name"),
            }
        }
        Name::Path(p) => {
            let (e, kept) = read_entry(entry, &p, spool, buf)?;
            merged.put(&p, e, kept)
        }
    }
}

/// What to keep of a regular file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    Nothing,
    Text,
    Spool,
}

fn keep_for(p: &str, size: u64) -> Keep {
    let spooled = p == manifest::DEFAULT_MANIFEST
        || p.rsplit_once('/').is_some_and(|(dir, name)| {
            crate::zones::RPMDB_DIRS.contains(&dir) && RPMDB_FILES.contains(&name)
        });
    if spooled {
        Keep::Spool
    } else if crate::zones::text_kept(p, size) {
        Keep::Text
    } else {
        Keep::Nothing
    }
}

fn read_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    p: &str,
    spool: &Spool,
    buf: &mut [u8],
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
        Kind::File => kept = hash_content(entry, p, &mut e, spool, buf)?,
        _ => {}
    }
    Ok((e, kept))
}

/// Hash a regular file's content as it streams; keep text or spool it as
/// [`keep_for`] says.
fn hash_content<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    p: &str,
    e: &mut Entry,
    spool: &Spool,
    buf: &mut [u8],
) -> Result<Option<Kept>> {
    let declared = entry.size();
    let keep = keep_for(p, declared);
    let mut text = (keep == Keep::Text).then(Vec::new);
    let mut writer = match keep {
        Keep::Spool => Some(spool.writer(MAX_KEPT)?),
        _ => None,
    };
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    loop {
        let n = entry.read(buf).context("cannot read the content")?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
        if let Some(t) = text.as_mut() {
            t.extend_from_slice(&buf[..n]);
        }
        if let Some(w) = writer.as_mut() {
            w.write(&buf[..n])?;
        }
    }
    e.size = total;
    e.sha256 = Some(Checksum(hasher.finalize().into()));
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
        assert_eq!(classify(b"../../../etc/evil"), p("/etc/evil"));
        assert_eq!(classify(b"usr/../../usr//lib/./x"), p("/usr/lib/x"));
        assert_eq!(classify(b"./"), p("/"));
        assert_eq!(classify(b".."), p("/"));
        assert_eq!(classify(b"bad\xffname"), p("/bad\\xffname"));
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
        assert_eq!(classify(b".wh..wh..opq"), Name::Opaque("/".into()));
        assert_eq!(classify(b"usr/.wh...."), Name::Whiteout("/usr/...".into()));
        for ignored in [
            &b"usr/.wh.."[..],
            b"usr/.wh...",
            b"usr/.wh.",
            b".wh..wh.plnk",
        ] {
            assert_eq!(classify(ignored), Name::Ignored, "{ignored:?}");
        }
    }

    #[test]
    fn what_is_kept() {
        assert_eq!(keep_for("/etc/passwd", 100), Keep::Text);
        assert_eq!(keep_for("/etc/big", 64 * 1024 + 1), Keep::Nothing);
        assert_eq!(keep_for("/etc", 1), Keep::Nothing);
        assert_eq!(
            keep_for("/usr/lib/sysimage/rpm/rpmdb.sqlite", 1),
            Keep::Spool
        );
        assert_eq!(keep_for("/var/lib/rpm/rpmdb.sqlite-wal", 1), Keep::Spool);
        assert_eq!(
            keep_for("/usr/lib/sysimage/rpm/rpmdb.sqlite-shm", 1),
            Keep::Nothing
        );
        assert_eq!(keep_for("/srv/rpmdb.sqlite", 1), Keep::Nothing);
        assert_eq!(keep_for("/var/lib/rpm/Packages", 1), Keep::Spool);
        assert_eq!(keep_for(manifest::DEFAULT_MANIFEST, 1 << 40), Keep::Spool);
    }
}
