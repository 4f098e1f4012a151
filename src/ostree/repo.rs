//! An ostree repository on disk, read-only, through a directory handle.
//!
//! Objects live at `objects/XX/YYYY….TYPE` (the first two hex digits of
//! the checksum name the fan-out directory). Metadata objects are read
//! whole (bounded by [`MAX_METADATA`]) and verified against their name.
//! A content object's *header* (uid, gid, mode, symlink target, xattrs,
//! size) is found where the repository mode keeps it:
//!
//! | mode | ownership and mode | xattrs | symlinks |
//! |---|---|---|---|
//! | `bare` | the object file's own | the object file's own | symlinks |
//! | `bare-user` | `user.ostreemeta` xattr | inside `user.ostreemeta` | regular files holding the target |
//! | `bare-user-only` | uid and gid 0, the file's mode | none | symlinks |
//! | `bare-split-xattrs` | the object file's own | the `.file-xattrs` object reached through `.file-xattrs-link` | symlinks |
//! | `archive` | the `.filez` object's header | the header | the header |
//!
//! The object's content is never hashed here: the content checksum is its
//! name.

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use cap_std::fs::Dir;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, StatxFlags};

use super::gvariant::{self, Layout};
use super::objects::{self, Checksum, Commit, DirTree, Meta};

/// The largest metadata object read (ostree's own limit,
/// `OSTREE_MAX_METADATA_SIZE`, is 128 MiB).
pub const MAX_METADATA: u64 = 128 << 20;

/// The longest symlink target accepted (Linux's `PATH_MAX`).
const MAX_TARGET: u64 = 4096;

/// The largest `user.ostreemeta`, `.file-xattrs` or archive header read.
const MAX_XATTRS: u64 = 16 << 20;

/// Where a repository keeps file metadata (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoMode {
    /// `bare`.
    Bare,
    /// `bare-user`.
    BareUser,
    /// `bare-user-only`.
    BareUserOnly,
    /// `bare-split-xattrs`.
    BareSplitXattrs,
    /// `archive` (`archive-z2`).
    Archive,
}

impl RepoMode {
    fn parse(s: &str) -> Option<RepoMode> {
        Some(match s {
            "bare" => RepoMode::Bare,
            "bare-user" => RepoMode::BareUser,
            "bare-user-only" => RepoMode::BareUserOnly,
            "bare-split-xattrs" => RepoMode::BareSplitXattrs,
            "archive" | "archive-z2" => RepoMode::Archive,
            _ => return None,
        })
    }

    /// The suffix of content objects.
    fn file_suffix(self) -> &'static str {
        match self {
            RepoMode::Archive => "filez",
            _ => "file",
        }
    }
}

/// The type of a content object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A symbolic link.
    Symlink,
}

/// What a content object says about the file, without its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileObject {
    /// Regular file or symlink.
    pub kind: FileKind,
    /// Ownership, mode (with type bits) and xattrs, as the checksum saw them.
    pub meta: Meta,
    /// Symlink target (empty for regular files).
    pub target: Vec<u8>,
    /// Content size of a regular file.
    pub size: u64,
    /// Device and inode of the object file, for bare-type repositories:
    /// a file in a checkout that is this inode is this object.
    pub inode: Option<(u64, u64)>,
}

/// An open repository.
#[derive(Debug)]
pub struct Repo {
    /// The repository directory.
    dir: Dir,
    /// `objects/`.
    objects: Dir,
    /// Where objects keep file metadata.
    pub mode: RepoMode,
    /// The repository as users name it, for messages.
    pub name: String,
    /// Where the repository is in the tree being checked, when it is the
    /// image's own (`/sysroot/ostree/repo`), which the build can write: a
    /// content object it lacks is then a finding, not corrupt input.
    pub in_tree: Option<String>,
}

/// `ab` and `cdef….suffix` for an object.
fn object_path(sum: &Checksum, suffix: &str) -> (String, String) {
    let hex = hex::encode(sum);
    (hex[..2].to_string(), format!("{}.{suffix}", &hex[2..]))
}

/// Parse a 64-digit hex checksum.
pub fn parse_checksum(text: &str) -> Option<Checksum> {
    let text = text.trim();
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let bytes = hex::decode(text.to_ascii_lowercase()).ok()?;
    bytes.try_into().ok()
}

impl Repo {
    /// Open the repository at `dir`; `name` is how messages name it.
    pub fn open(dir: Dir, name: &str) -> Result<Repo> {
        let config = read_small(&dir, Path::new("config"), 1 << 20)
            .with_context(|| format!("{name}: not an ostree repository (no readable config)"))?;
        let config = String::from_utf8_lossy(&config);
        let mode = core_mode(&config).unwrap_or("bare");
        let mode = RepoMode::parse(mode)
            .with_context(|| format!("{name}: unsupported ostree repository mode {mode:?}"))?;
        let objects = dir
            .open_dir("objects")
            .with_context(|| format!("{name}: no objects directory"))?;
        Ok(Repo {
            dir,
            objects,
            mode,
            name: name.to_string(),
            in_tree: None,
        })
    }

    /// Resolve a ref (`refs/heads/…`, `refs/remotes/…`, `refs/mirrors/…`)
    /// or a full checksum to a commit checksum.
    pub fn resolve(&self, rev: &str) -> Result<Checksum> {
        if let Some(sum) = parse_checksum(rev) {
            return Ok(sum);
        }
        let valid = !rev.is_empty()
            && rev
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..");
        ensure!(valid, "{}: invalid ref {rev:?}", self.name);
        // `remote:ref` names a ref under refs/remotes/remote/.
        let mut candidates = vec![format!("refs/heads/{rev}")];
        match rev.split_once(':') {
            Some((remote, r)) => candidates.push(format!("refs/remotes/{remote}/{r}")),
            None => {
                candidates.push(format!("refs/remotes/{rev}"));
                candidates.push(format!("refs/mirrors/{rev}"));
            }
        }
        for path in candidates {
            match read_small(&self.dir, Path::new(&path), 4096) {
                Ok(text) => {
                    return parse_checksum(&String::from_utf8_lossy(&text))
                        .with_context(|| format!("{}/{path}: not a checksum", self.name));
                }
                Err(e) if is_absent(&e) => continue,
                Err(e) => return Err(e.context(format!("{}/{path}", self.name))),
            }
        }
        bail!("{}: no ref {rev:?}", self.name)
    }

    /// Every commit object in the repository, sorted.
    pub fn commits(&self) -> Result<Vec<Checksum>> {
        let mut out = Vec::new();
        let list = |d: &Dir| -> std::io::Result<Vec<std::ffi::OsString>> {
            d.entries()?.map(|e| e.map(|e| e.file_name())).collect()
        };
        let fanouts =
            list(&self.objects).with_context(|| format!("{}: listing objects", self.name))?;
        for fan in fanouts {
            let Some(fan) = fan.to_str().filter(|f| f.len() == 2) else {
                continue;
            };
            let Ok(sub) = self.objects.open_dir(fan) else {
                continue;
            };
            let names =
                list(&sub).with_context(|| format!("{}: listing objects/{fan}", self.name))?;
            for name in names {
                if let Some(rest) = name.to_str().and_then(|n| n.strip_suffix(".commit"))
                    && let Some(sum) = parse_checksum(&format!("{fan}{rest}"))
                {
                    out.push(sum);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Read and verify a metadata object (`commit`, `dirtree`, `dirmeta`).
    fn metadata(&self, sum: &Checksum, suffix: &str) -> Result<Vec<u8>> {
        let (fan, name) = object_path(sum, suffix);
        let what = || format!("{}: {}{name}", self.name, &fan);
        let bytes = read_small(&self.objects, &Path::new(&fan).join(&name), MAX_METADATA)
            .with_context(what)?;
        ensure!(
            objects::metadata_checksum(&bytes) == *sum,
            "{}: corrupt object (its content does not match its name)",
            what()
        );
        Ok(bytes)
    }

    /// Read a commit object.
    pub fn commit(&self, sum: &Checksum) -> Result<Commit> {
        let bytes = self.metadata(sum, "commit")?;
        objects::parse_commit(&bytes)
            .with_context(|| format!("{}: commit {}", self.name, hex::encode(sum)))
    }

    /// Read a dirtree object.
    pub fn dirtree(&self, sum: &Checksum) -> Result<DirTree> {
        let bytes = self.metadata(sum, "dirtree")?;
        objects::parse_dirtree(&bytes)
            .with_context(|| format!("{}: dirtree {}", self.name, hex::encode(sum)))
    }

    /// Read a dirmeta object.
    pub fn dirmeta(&self, sum: &Checksum) -> Result<Meta> {
        let bytes = self.metadata(sum, "dirmeta")?;
        objects::parse_meta(&bytes)
            .with_context(|| format!("{}: dirmeta {}", self.name, hex::encode(sum)))
    }

    /// The fan-out directory and file name of a content object.
    fn content_path(&self, sum: &Checksum) -> (String, String) {
        object_path(sum, self.mode.file_suffix())
    }

    /// Read a content object's header (see the module docs).
    pub fn file_object(&self, sum: &Checksum) -> Result<FileObject> {
        let (fan, name) = self.content_path(sum);
        self.file_object_inner(sum, &fan, &name)
            .with_context(|| format!("{}: content object {fan}{name}", self.name))
    }

    fn file_object_inner(&self, sum: &Checksum, fan: &str, name: &str) -> Result<FileObject> {
        let dir = self.objects.open_dir(fan)?;
        if self.mode == RepoMode::Archive {
            return archive_header(&dir, name);
        }
        let st = rustix::fs::statx(
            &dir,
            name,
            AtFlags::SYMLINK_NOFOLLOW,
            StatxFlags::BASIC_STATS,
        )?;
        let ftype = FileType::from_raw_mode(u32::from(st.stx_mode));
        let inode = Some((
            u64::from(st.stx_dev_major) << 32 | u64::from(st.stx_dev_minor),
            st.stx_ino,
        ));
        let own = Meta {
            uid: st.stx_uid,
            gid: st.stx_gid,
            mode: u32::from(st.stx_mode),
            xattrs: Vec::new(),
        };
        let mut obj = match ftype {
            FileType::RegularFile => FileObject {
                kind: FileKind::Regular,
                meta: own,
                target: Vec::new(),
                size: st.stx_size,
                inode,
            },
            FileType::Symlink if self.mode != RepoMode::BareUser => {
                let target = rustix::fs::readlinkat(&dir, name, Vec::new())?.into_bytes();
                FileObject {
                    kind: FileKind::Symlink,
                    meta: own,
                    target,
                    size: 0,
                    inode,
                }
            }
            _ => bail!("not a regular file or symlink"),
        };
        match self.mode {
            RepoMode::Bare => {
                obj.meta.xattrs = if obj.kind == FileKind::Regular {
                    let fd = open_nofollow(&dir, name)?;
                    objects::canonical_xattrs(raw_xattrs(&fd)?)
                } else {
                    // As the walk does: without /proc, a symlink's xattrs
                    // cannot be read relative to a descriptor.
                    objects::canonical_xattrs(symlink_xattrs(&dir, name).unwrap_or_default())
                };
            }
            RepoMode::BareUser => {
                let fd = open_nofollow(&dir, name)?;
                let raw = fgetxattr_bounded(&fd, "user.ostreemeta")?
                    .context("no user.ostreemeta xattr (not a bare-user object)")?;
                obj.meta = objects::parse_meta(&raw).context("user.ostreemeta")?;
                if FileType::from_raw_mode(obj.meta.mode) == FileType::Symlink {
                    ensure!(st.stx_size <= MAX_TARGET, "symlink target too long");
                    let mut target = Vec::new();
                    std::fs::File::from(fd)
                        .take(MAX_TARGET + 1)
                        .read_to_end(&mut target)?;
                    // ostree writes the target with its terminating NUL.
                    if target.last() == Some(&0) {
                        target.pop();
                    }
                    ensure!(!target.contains(&0), "symlink target holds a NUL");
                    obj.kind = FileKind::Symlink;
                    obj.target = target;
                    obj.size = 0;
                }
            }
            RepoMode::BareUserOnly => {
                obj.meta.uid = 0;
                obj.meta.gid = 0;
            }
            RepoMode::BareSplitXattrs => {
                let (_, link) = object_path(sum, "file-xattrs-link");
                let raw = read_small(&dir, Path::new(&link), MAX_XATTRS)
                    .with_context(|| format!("its xattrs ({fan}{link})"))?;
                obj.meta.xattrs =
                    objects::parse_xattrs(&raw).with_context(|| format!("{fan}{link}"))?;
            }
            // Read from the `.filez` header above.
            RepoMode::Archive => {}
        }
        check_type(&obj)?;
        Ok(obj)
    }

    /// The content of a regular file object, when it has at most `max`
    /// bytes (small `/etc` files for diffs).
    pub fn small_content(&self, sum: &Checksum, max: u64) -> Result<Vec<u8>> {
        let (fan, name) = self.content_path(sum);
        let what = || format!("{}: content object {fan}{name}", self.name);
        let mut out = Vec::new();
        self.open_content(sum)?
            .take(max + 1)
            .read_to_end(&mut out)
            .with_context(what)?;
        ensure!(out.len() as u64 <= max, "{}: more than {max} bytes", what());
        Ok(out)
    }

    /// A regular file object's content, as a stream: the object file
    /// itself in bare-type repositories, decompressed in `archive` ones.
    pub fn open_content(&self, sum: &Checksum) -> Result<Box<dyn Read + Send>> {
        let (fan, name) = self.content_path(sum);
        let what = || format!("{}: content object {fan}{name}", self.name);
        let dir = self.objects.open_dir(&fan).with_context(what)?;
        if self.mode == RepoMode::Archive {
            let (_, file) = archive_parts(&dir, &name).with_context(what)?;
            return Ok(Box::new(flate2::read::DeflateDecoder::new(file)));
        }
        let fd = open_nofollow(&dir, &name).with_context(what)?;
        Ok(Box::new(std::fs::File::from(fd)))
    }

    /// Whether a regular file object still is what its name says: its
    /// header and content, hashed as ostree does, give its checksum. An
    /// object written in place (through a hardlink a container layer kept
    /// from the image's checkout) no longer does; neither does one that is
    /// gone. Only a read error is an `Err`.
    pub fn verify_content(&self, sum: &Checksum) -> Result<bool> {
        let obj = match self.file_object(sum) {
            Ok(obj) => obj,
            Err(e) if is_absent_chain(&e) => return Ok(false),
            Err(e) => return Err(e),
        };
        if obj.kind != FileKind::Regular {
            let header = objects::FileHeader::new(&obj.meta, &obj.target);
            return Ok(objects::file_checksum(&header, &[]) == *sum);
        }
        let header = objects::FileHeader::new(&obj.meta, &obj.target);
        let content = match self.open_content(sum) {
            Ok(c) => c,
            Err(e) if is_absent_chain(&e) => return Ok(false),
            Err(e) => return Err(e),
        };
        let digest = super::digest_after(header.bytes(), content)
            .with_context(|| format!("{}: reading content object", self.name))?;
        Ok(digest == *sum)
    }

    /// Whether a content object's file still has ostree's zero mtime (false
    /// when it is gone or cannot be read).
    pub fn content_mtime_is_zero(&self, sum: &Checksum) -> bool {
        let (fan, name) = self.content_path(sum);
        let Ok(dir) = self.objects.open_dir(&fan) else {
            return false;
        };
        rustix::fs::statx(
            &dir,
            name.as_str(),
            AtFlags::SYMLINK_NOFOLLOW,
            StatxFlags::MTIME,
        )
        .is_ok_and(|st| st.stx_mtime.tv_sec == 0 && st.stx_mtime.tv_nsec == 0)
    }

    /// The path of a content object inside the repository directory
    /// (`objects/ab/cdef….file`), for the rewrite that removes an object
    /// the build corrupted.
    pub fn content_object_path(&self, sum: &Checksum) -> String {
        let (fan, name) = self.content_path(sum);
        format!("objects/{fan}/{name}")
    }

    /// Open a regular file object for reading (an rpm database in the
    /// commit): the objects directory and the path inside it. Only for
    /// bare-type repositories, whose objects are the files themselves.
    pub fn content_file(&self, sum: &Checksum) -> Option<(&Dir, std::path::PathBuf)> {
        if self.mode == RepoMode::Archive {
            return None;
        }
        let (fan, name) = self.content_path(sum);
        Some((&self.objects, Path::new(&fan).join(name)))
    }
}

/// The header's file type must agree with the object's kind.
fn check_type(obj: &FileObject) -> Result<()> {
    let t = FileType::from_raw_mode(obj.meta.mode);
    match (obj.kind, t) {
        (FileKind::Regular, FileType::RegularFile) | (FileKind::Symlink, FileType::Symlink) => {
            Ok(())
        }
        _ => bail!(
            "header mode {:o} does not match the object type",
            obj.meta.mode
        ),
    }
}

/// `mode=` of the `[core]` section of a repository config.
fn core_mode(config: &str) -> Option<&str> {
    let mut in_core = false;
    for line in config.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_core = line == "[core]";
        } else if in_core
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == "mode"
        {
            return Some(v.trim());
        }
    }
    None
}

/// Read a `.filez` object's header: `(tuuuusa(ayay))` behind the length
/// prefix, then zlib-deflated content.
fn archive_header(dir: &Dir, name: &str) -> Result<FileObject> {
    let (header, _) = archive_parts(dir, name)?;
    let parts = gvariant::tuple(
        &header,
        &[
            Layout::U64,
            Layout::U32,
            Layout::U32,
            Layout::U32,
            Layout::U32,
            Layout::BYTES,
            Layout::BYTES,
        ],
    )
    .context("not an archive file header")?;
    let meta = Meta {
        uid: gvariant::u32_be(parts[1])?,
        gid: gvariant::u32_be(parts[2])?,
        mode: gvariant::u32_be(parts[3])?,
        xattrs: objects::parse_xattrs(parts[6])?,
    };
    let target = gvariant::string(parts[5])?.to_vec();
    let symlink = FileType::from_raw_mode(meta.mode) == FileType::Symlink;
    let obj = FileObject {
        kind: if symlink {
            FileKind::Symlink
        } else {
            FileKind::Regular
        },
        size: if symlink {
            0
        } else {
            gvariant::u64_be(parts[0])?
        },
        meta,
        target,
        inode: None,
    };
    check_type(&obj)?;
    Ok(obj)
}

/// The header bytes of a `.filez` object and the open file positioned at
/// the compressed content.
fn archive_parts(dir: &Dir, name: &str) -> Result<(Vec<u8>, std::fs::File)> {
    let mut file = dir.open(name)?.into_std();
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix)?;
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    ensure!(
        u64::from(len) <= MAX_XATTRS,
        "archive header of {len} bytes"
    );
    let mut header = Vec::new();
    (&mut file).take(u64::from(len)).read_to_end(&mut header)?;
    ensure!(header.len() == len as usize, "archive header is truncated");
    Ok((header, file))
}

/// Read a whole file of at most `max` bytes through `dir`.
fn read_small(dir: &Dir, path: &Path, max: u64) -> Result<Vec<u8>> {
    let file = dir.open(path)?;
    let meta = file.metadata()?;
    ensure!(meta.is_file(), "not a regular file");
    ensure!(
        meta.len() <= max,
        "{} bytes, more than the {max} accepted",
        meta.len()
    );
    let mut out = Vec::with_capacity(meta.len() as usize);
    file.into_std().take(max + 1).read_to_end(&mut out)?;
    ensure!(out.len() as u64 <= max, "grew past {max} bytes while read");
    Ok(out)
}

/// Whether an error, or any error in its chain, means "no such file".
pub(super) fn is_absent_chain(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|e| {
            matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            )
        }) || c
            .downcast_ref::<rustix::io::Errno>()
            .is_some_and(|e| *e == rustix::io::Errno::NOENT)
    })
}

/// Whether an error means "no such file".
fn is_absent(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>().is_some_and(|e| {
        matches!(
            e.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
        )
    })
}

fn open_nofollow(dir: &Dir, name: &str) -> Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY;
    Ok(rustix::fs::openat(dir, name, flags, Mode::empty())?)
}

/// All xattrs of an open file: (name, value), in listing order.
pub fn raw_xattrs(fd: impl AsFd) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let fd = fd.as_fd();
    xattr_list(
        |buf| rustix::fs::flistxattr(fd, buf),
        |name, buf| rustix::fs::fgetxattr(fd, name, buf),
    )
}

/// All xattrs of a symlink in `dir`, through `/proc/self/fd` so the lookup
/// stays relative to the directory's descriptor.
fn symlink_xattrs(dir: &Dir, name: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    use std::os::fd::AsRawFd;
    let p = format!("/proc/self/fd/{}/{name}", dir.as_fd().as_raw_fd());
    xattr_list(
        |buf| rustix::fs::llistxattr(p.as_str(), buf),
        |n, buf| rustix::fs::lgetxattr(p.as_str(), n, buf),
    )
}

/// One xattr of an open file, at most [`MAX_XATTRS`] bytes; `None` when
/// the file does not have it.
fn fgetxattr_bounded(fd: impl AsFd, name: &str) -> Result<Option<Vec<u8>>> {
    let fd = fd.as_fd();
    let mut buf = vec![0u8; 4096];
    loop {
        match rustix::fs::fgetxattr(fd, name, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(rustix::io::Errno::RANGE) if (buf.len() as u64) < MAX_XATTRS => {
                let len = buf.len() * 4;
                buf.resize(len, 0);
            }
            Err(rustix::io::Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

fn xattr_list(
    list: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
    get: impl Fn(&OsStr, &mut [u8]) -> rustix::io::Result<usize>,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    use std::os::unix::ffi::OsStrExt;
    let mut names = vec![0u8; 1024];
    let n = loop {
        match list(&mut names) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) if names.len() < 1 << 20 => {
                let len = names.len() * 4;
                names.resize(len, 0);
            }
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    };
    let mut out = Vec::new();
    for raw in names[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let name = OsStr::from_bytes(raw);
        let mut value = vec![0u8; 256];
        loop {
            match get(name, &mut value) {
                Ok(len) => {
                    value.truncate(len);
                    out.push((raw.to_vec(), value));
                    break;
                }
                Err(rustix::io::Errno::RANGE) if (value.len() as u64) < MAX_XATTRS => {
                    let len = value.len() * 4;
                    value.resize(len, 0);
                }
                Err(rustix::io::Errno::NODATA) => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(out)
}
