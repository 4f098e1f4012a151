//! The tree on disk: the one place with ambient authority, and the walk.
//!
//! [`open_root`] is the only call that opens a host path. Everything below
//! works on a [`Dir`] handle and opens each child by a single name relative
//! to its parent's descriptor with `O_NOFOLLOW`, so a symlink in the image
//! can never lead the walk out of the root. Mount points (bind-mounted
//! `/etc/hosts`, secrets, cache mounts) are detected with statx's
//! mount-root attribute and never entered or recorded.
//!
//! Regular files are hashed while walking, in parallel on all cores
//! (rayon), with large reads; sha2 uses the CPU's SHA extensions. Against a
//! base read from an ostree commit ([`WalkOptions::ostree`]), a base file
//! is hashed as ostree would, behind the base's file header. It is read
//! even when it is still a hardlink to the repository's object: a build
//! whose storage keeps hardlinks (buildah's vfs driver) writes in place
//! through exactly those links, changing the object with the file.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use cap_std::fs::Dir;
use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, StatxFlags};
use sha2::{Digest, Sha256};

use crate::manifest::{Checksum, Entry, Hex, Kind};
use crate::path;

/// Top-level paths never scanned: API filesystems and the ostree repo.
/// Their own entries are kept apart, in [`Tree::unscanned`], for the
/// checks of the root's layout; what lies beneath is never read.
pub const NEVER_SCANNED: &[&str] = &["/proc", "/sys", "/dev", "/sysroot", "/ostree"];

/// Open the root directory. The only use of ambient authority in the crate
/// (with [`open_ambient_dir`] for other directories named on the command
/// line).
pub fn open_root(path: &Path) -> Result<Dir> {
    open_ambient_dir(path, "the root directory")
}

/// Open a host directory named on the command line (`--base ostree:REPO`);
/// `what` names it in the error.
pub fn open_ambient_dir(path: &Path, what: &str) -> Result<Dir> {
    Dir::open_ambient_dir(path, cap_std::ambient_authority())
        .with_context(|| format!("{}: cannot open {what}", path.display()))
}

/// Read a host file named on the command line (`--base FILE`).
pub fn read_ambient_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))
}

/// Write a file inside the root atomically: a temporary file in the same
/// directory, synced, then renamed over the target. Parents are created.
pub fn write_atomic(root: &Dir, rel: &str, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let rel = rel.trim_start_matches('/');
    let (parent, name) = rel.rsplit_once('/').unwrap_or((".", rel));
    root.create_dir_all(parent)
        .with_context(|| format!("/{parent}: cannot create directory"))?;
    let dir = root
        .open_dir(parent)
        .with_context(|| format!("/{parent}: cannot open directory"))?;
    let tmp = format!(".{name}.tmp{}", std::process::id());
    let write = || -> std::io::Result<()> {
        let mut f = dir.create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        dir.rename(&tmp, &dir, name)
    };
    write().map_err(|e| {
        let _ = dir.remove_file(&tmp);
        anyhow::Error::from(e).context(format!("/{rel}: cannot write"))
    })
}

/// Write a host file named on the command line (`--output FILE`), atomically.
pub fn write_ambient_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("{}: cannot create a file beside it", path.display()))?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    // NamedTempFile is 0600; a reference is not secret.
    tmp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

/// What to walk and what to keep.
#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    /// Absolute paths neither recorded nor entered (beside [`NEVER_SCANNED`]).
    pub skip: Vec<String>,
    /// Absolute paths recorded but not entered (rpm database directories).
    pub opaque: Vec<String>,
    /// Keep the text of UTF-8 files that [`crate::zones::text_kept`] names.
    pub keep_text: bool,
    /// Compare with a base read from an ostree commit: a regular file the
    /// base has gets [`Entry::ostree`] (the base's header with this
    /// content) instead of a SHA-256.
    pub ostree: Option<std::sync::Arc<dyn HashPrefix>>,
    /// Read regular files (hash them) and every entry's xattrs. Off for a
    /// structural-only run, which needs names, metadata and the kept text;
    /// then only the files whose text is kept are opened.
    pub read_files: bool,
}

/// What a regular file of the walked tree is hashed behind, by path: for a
/// base read from an ostree commit, the base file's ostree header
/// (implemented by [`crate::ostree::BaseFiles`]; the walk itself knows
/// nothing of ostree).
pub trait HashPrefix: std::fmt::Debug + Send + Sync {
    /// The bytes hashed before the content of the file at `path`, when the
    /// base has a file there.
    fn prefix(&self, path: &str) -> Option<&[u8]>;
}

/// The result of a walk.
#[derive(Debug, Default)]
pub struct Tree {
    /// Every path, sorted by path.
    pub entries: Vec<Entry>,
    /// Mount points found and left alone, sorted.
    pub mounts: Vec<String>,
    /// The entries of the [`NEVER_SCANNED`] paths that exist (never what
    /// lies beneath them), sorted: what the root's layout checks look at
    /// (`/sysroot` a directory, `/ostree` a link). Never compared with a
    /// base. A mount point there (a build runtime's `/proc`) is recorded as
    /// a directory.
    pub unscanned: Vec<Entry>,
}

impl Tree {
    /// Look a path up.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Look a path up among the entries and the [`NEVER_SCANNED`] ones.
    pub fn get_any(&self, path: &str) -> Option<&Entry> {
        self.get(path)
            .or_else(|| self.unscanned.iter().find(|e| e.path == path))
    }

    /// Whether a mount point was found at this path.
    pub fn is_mount(&self, path: &str) -> bool {
        self.mounts
            .binary_search_by(|m| m.as_str().cmp(path))
            .is_ok()
    }
}

/// Walk the whole tree under `root`.
pub fn walk(root: &Dir, opts: &WalkOptions) -> Result<Tree> {
    // The walk recurses once per directory level, and a hostile tree can
    // be thousands of levels deep: run it on threads with roomy stacks.
    let pool = rayon::ThreadPoolBuilder::new()
        .stack_size(WALK_STACK)
        .thread_name(|i| format!("walk-{i}"))
        .build()
        .context("cannot start the walk's threads")?;
    pool.install(|| walk_in_pool(root, opts))
}

/// Stack of each walk thread: enough for a tree 64k levels deep, far past
/// what a kernel path or any real image needs (and only reserved, not used).
const WALK_STACK: usize = 512 << 20;

fn walk_in_pool(root: &Dir, opts: &WalkOptions) -> Result<Tree> {
    let st = rustix::fs::statx(root, ".", AtFlags::empty(), StatxFlags::BASIC_STATS)
        .context("cannot stat the root directory")?;
    let ctx = Walker {
        opts,
        root_dev: (st.stx_dev_major, st.stx_dev_minor),
    };
    let mut top = entry_from_statx("/".to_string(), &st);
    // cap-std holds directories as O_PATH handles, which cannot read xattrs.
    let fd = open_child(root, OsStr::new("."), OFlags::DIRECTORY)
        .context("cannot open the root directory")?;
    top.xattrs = fd_xattrs(&fd).context("/: cannot read xattrs")?;
    let mut out = ctx.walk_dir(root, "/")?;
    out.entries.push(top);
    let mut tree = Tree {
        entries: out.entries,
        mounts: out.mounts,
        unscanned: out.unscanned,
    };
    tree.entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    tree.unscanned.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    // Growth by doubling leaves up to half the vector unused; give it back
    // (a large block is remapped, not copied).
    tree.entries.shrink_to_fit();
    tree.mounts.sort();
    Ok(tree)
}

/// What a part of the walk found. Directories' results are appended to
/// their parent's, so each entry is moved a few times but stored once.
#[derive(Default)]
struct Nodes {
    entries: Vec<Entry>,
    mounts: Vec<String>,
    unscanned: Vec<Entry>,
}

impl Nodes {
    fn append(mut self, mut other: Nodes) -> Nodes {
        if self.entries.len() < other.entries.len() {
            std::mem::swap(&mut self.entries, &mut other.entries);
        }
        self.entries.append(&mut other.entries);
        self.mounts.append(&mut other.mounts);
        self.unscanned.append(&mut other.unscanned);
        self
    }
}

struct Walker<'a> {
    opts: &'a WalkOptions,
    root_dev: (u32, u32),
}

impl Walker<'_> {
    fn skipped(&self, path: &str) -> bool {
        NEVER_SCANNED.contains(&path) || self.opts.skip.iter().any(|s| s == path)
    }

    fn walk_dir(&self, dir: &Dir, dir_path: &str) -> Result<Nodes> {
        let mut names = Vec::new();
        for entry in dir
            .entries()
            .with_context(|| format!("{dir_path}: cannot list directory"))?
        {
            let entry = entry.with_context(|| format!("{dir_path}: cannot list directory"))?;
            names.push(entry.file_name());
        }
        names
            .par_iter()
            .try_fold(Nodes::default, |out, name| {
                self.visit(dir, dir_path, name, out)
            })
            .try_reduce(Nodes::default, |a, b| Ok(a.append(b)))
    }

    /// Record `name` (and, for a directory, everything under it) in `out`.
    fn visit(
        &self,
        parent: &Dir,
        parent_path: &str,
        name: &OsStr,
        mut out: Nodes,
    ) -> Result<Nodes> {
        let (encoded, _) = path::encode(name.as_bytes());
        let full = path::join(parent_path, &encoded);
        if NEVER_SCANNED.contains(&full.as_str()) {
            out.unscanned
                .push(self.unscanned_entry(parent, name, full)?);
            return Ok(out);
        }
        if self.skipped(&full) {
            return Ok(out);
        }
        let st = rustix::fs::statx(
            parent,
            name,
            AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT,
            StatxFlags::BASIC_STATS,
        )
        .with_context(|| format!("{full}: cannot stat"))?;
        if self.is_mount(&st) {
            out.mounts.push(full);
            return Ok(out);
        }
        let mut entry = entry_from_statx(full, &st);
        match entry.kind {
            Kind::Dir => {
                let fd = open_child(parent, name, OFlags::DIRECTORY)
                    .with_context(|| format!("{}: cannot open directory", entry.path))?;
                let sub = Dir::from_std_file(std::fs::File::from(fd));
                if self.opts.read_files {
                    entry.xattrs = fd_xattrs(&sub)
                        .with_context(|| format!("{}: cannot read xattrs", entry.path))?;
                }
                if !self.opts.opaque.contains(&entry.path) {
                    out = out.append(self.walk_dir(&sub, &entry.path)?);
                }
            }
            // Not reading files: only those whose text is kept are opened.
            Kind::File
                if !self.opts.read_files
                    && self.opts.keep_text
                    && crate::zones::text_kept(&entry.path, entry.size) =>
            {
                let fd = open_child(parent, name, OFlags::empty())
                    .with_context(|| format!("{}: cannot open", entry.path))?;
                let (_, text) = hash_file(fd, &st, true, &[])
                    .with_context(|| format!("{}: cannot read", entry.path))?;
                entry.text = text;
            }
            Kind::File if !self.opts.read_files => {}
            Kind::File => {
                let fd = open_child(parent, name, OFlags::empty())
                    .with_context(|| format!("{}: cannot open", entry.path))?;
                entry.xattrs = fd_xattrs(&fd)
                    .with_context(|| format!("{}: cannot read xattrs", entry.path))?;
                let keep = self.opts.keep_text && crate::zones::text_kept(&entry.path, entry.size);
                let base = self
                    .opts
                    .ostree
                    .as_deref()
                    .and_then(|b| b.prefix(&entry.path));
                let prefix = base.unwrap_or_default();
                let (digest, text) = hash_file(fd, &st, keep, prefix)
                    .with_context(|| format!("{}: cannot read", entry.path))?;
                let digest = Some(Checksum(digest));
                match base {
                    Some(_) => entry.ostree = digest,
                    None => entry.sha256 = digest,
                }
                entry.text = text;
            }
            Kind::Symlink => {
                let target = rustix::fs::readlinkat(parent, name, Vec::new())
                    .with_context(|| format!("{}: cannot read symlink", entry.path))?;
                entry.target = Some(path::encode(target.as_bytes()).0);
                if self.opts.read_files {
                    entry.xattrs = path_xattrs(parent, name);
                }
            }
            _ if self.opts.read_files => entry.xattrs = path_xattrs(parent, name),
            _ => {}
        }
        out.entries.push(entry);
        Ok(out)
    }

    /// The entry of a [`NEVER_SCANNED`] path: its type (a mount point
    /// counts as a directory) and a symlink's target; nothing beneath.
    fn unscanned_entry(&self, parent: &Dir, name: &OsStr, full: String) -> Result<Entry> {
        let st = rustix::fs::statx(
            parent,
            name,
            AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT,
            StatxFlags::BASIC_STATS,
        )
        .with_context(|| format!("{full}: cannot stat"))?;
        let mut entry = entry_from_statx(full, &st);
        if self.is_mount(&st) {
            entry.kind = Kind::Dir;
        } else if entry.kind == Kind::Symlink {
            let target = rustix::fs::readlinkat(parent, name, Vec::new())
                .with_context(|| format!("{}: cannot read symlink", entry.path))?;
            entry.target = Some(path::encode(target.as_bytes()).0);
        }
        Ok(entry)
    }

    fn is_mount(&self, st: &rustix::fs::Statx) -> bool {
        let mount_root = rustix::fs::StatxAttributes::MOUNT_ROOT.bits();
        if st.stx_attributes_mask.bits() & mount_root != 0 {
            return st.stx_attributes.bits() & mount_root != 0;
        }
        // Kernels before 5.8 lack the attribute: fall back to the device of
        // directories (regular files on overlayfs may report a lower dev).
        FileType::from_raw_mode(st.stx_mode.into()) == FileType::Directory
            && (st.stx_dev_major, st.stx_dev_minor) != self.root_dev
    }
}

fn entry_from_statx(path: String, st: &rustix::fs::Statx) -> Entry {
    let raw = u32::from(st.stx_mode);
    let kind = match FileType::from_raw_mode(raw) {
        FileType::RegularFile => Kind::File,
        FileType::Directory => Kind::Dir,
        FileType::Symlink => Kind::Symlink,
        FileType::CharacterDevice => Kind::Char,
        FileType::BlockDevice => Kind::Block,
        FileType::Fifo => Kind::Fifo,
        _ => Kind::Socket,
    };
    let rdev = matches!(kind, Kind::Char | Kind::Block)
        .then(|| u64::from(st.stx_rdev_major) << 32 | u64::from(st.stx_rdev_minor));
    let mut e = Entry::new(path, kind, raw & 0o7777, st.stx_uid, st.stx_gid);
    e.size = if kind == Kind::File { st.stx_size } else { 0 };
    e.rdev = rdev;
    e
}

/// Open one child by name, never following a symlink and never blocking on
/// a fifo that was swapped in.
fn open_child(parent: &Dir, name: &OsStr, extra: OFlags) -> std::io::Result<OwnedFd> {
    if name.as_bytes().contains(&b'/') {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    }
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | extra;
    Ok(rustix::fs::openat(parent, name, flags, Mode::empty())?)
}

/// Hash a regular file, after `prefix` (an ostree file header, or nothing).
/// Fails if it changes while being read, so a racing writer can never
/// produce a wrong verdict.
fn hash_file(
    fd: OwnedFd,
    before: &rustix::fs::Statx,
    keep_text: bool,
    prefix: &[u8],
) -> Result<([u8; 32], Option<String>)> {
    let now = rustix::fs::fstat(&fd)?;
    if now.st_ino != before.stx_ino || !FileType::from_raw_mode(now.st_mode).is_file() {
        bail!("replaced while being read");
    }
    let mut file = std::fs::File::from(fd);
    let mut hasher = Sha256::new();
    hasher.update(prefix);
    let mut kept = keep_text.then(Vec::new);
    let mut total = 0u64;
    // Read no more than the size seen before: a file that keeps growing
    // must not keep us reading forever (the check below reports it).
    let expected = before.stx_size;
    BUF.with_borrow_mut(|buf| -> Result<()> {
        while total < expected {
            let want = (expected - total).min(buf.len() as u64) as usize;
            let n = file.read(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            total += n as u64;
            hasher.update(&buf[..n]);
            if let Some(k) = kept.as_mut() {
                k.extend_from_slice(&buf[..n]);
            }
        }
        Ok(())
    })?;
    let after = rustix::fs::fstat(&file)?;
    if total != before.stx_size
        || after.st_size as u64 != total
        || after.st_mtime != before.stx_mtime.tv_sec
        || after.st_mtime_nsec as u32 != before.stx_mtime.tv_nsec
    {
        bail!("changed while being read (size or mtime moved); rerun once the build is done");
    }
    crate::progress::add_file(total);
    let text = kept
        .filter(|k| !k.contains(&0))
        .and_then(|k| String::from_utf8(k).ok());
    Ok((hasher.finalize().into(), text))
}

thread_local! {
    static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 1 << 20]);
}

/// xattrs that are never recorded: overlayfs internals.
fn recorded_xattr(name: &str) -> bool {
    !(name.starts_with("trusted.overlay.") || name.starts_with("user.overlay."))
}

fn fd_xattrs(fd: impl AsFd) -> Result<BTreeMap<String, Hex>> {
    let fd = fd.as_fd();
    read_xattrs(
        |buf| rustix::fs::flistxattr(fd, buf),
        |name, buf| rustix::fs::fgetxattr(fd, name, buf),
    )
}

/// xattrs of a symlink or special file, through `/proc/self/fd` so the
/// lookup stays relative to the parent's descriptor. Empty without /proc.
fn path_xattrs(parent: &Dir, name: &OsStr) -> BTreeMap<String, Hex> {
    use std::os::fd::AsRawFd;
    let mut p = format!("/proc/self/fd/{}/", parent.as_fd().as_raw_fd()).into_bytes();
    p.extend_from_slice(name.as_bytes());
    let p = std::ffi::OsString::from_vec(p);
    read_xattrs(
        |buf| rustix::fs::llistxattr(p.as_os_str(), buf),
        |n, buf| rustix::fs::lgetxattr(p.as_os_str(), n, buf),
    )
    .unwrap_or_default()
}

use std::os::unix::ffi::OsStringExt;

fn read_xattrs(
    list: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
    get: impl Fn(&str, &mut [u8]) -> rustix::io::Result<usize>,
) -> Result<BTreeMap<String, Hex>> {
    let mut out = BTreeMap::new();
    let mut names = vec![0u8; 1024];
    let n = loop {
        match list(&mut names) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) if names.len() < 1 << 20 => {
                names.resize(names.len() * 4, 0)
            }
            Err(rustix::io::Errno::NOTSUP) => return Ok(out),
            Err(e) => return Err(e.into()),
        }
    };
    for raw in names[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let Ok(name) = std::str::from_utf8(raw) else {
            continue;
        };
        if !recorded_xattr(name) {
            continue;
        }
        let mut value = vec![0u8; 256];
        let len = loop {
            match get(name, &mut value) {
                Ok(len) => break len,
                Err(rustix::io::Errno::RANGE) if value.len() < 1 << 20 => {
                    value.resize(value.len() * 4, 0)
                }
                Err(rustix::io::Errno::NODATA) => break usize::MAX,
                Err(e) => return Err(anyhow::Error::from(e).context(format!("xattr {name}"))),
            }
        };
        if len != usize::MAX {
            value.truncate(len);
            out.insert(name.to_string(), Hex(value));
        }
    }
    Ok(out)
}
