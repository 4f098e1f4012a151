//! The I/O of `apply`: a read-only view of the tree for the planner, and
//! carrying the writes out. Every path is reached one component at a time
//! with `O_NOFOLLOW` from the root handle, so a symlink in the image can
//! never redirect a read or a write out of the tree; files and symlinks
//! are written to a temporary name and renamed into place.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use anyhow::{Context, Result, bail};
use cap_std::fs::Dir;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, StatxFlags};
use rustix::io::Errno;

use super::plan::Op;
use super::resource::MAX_SIZE;
use super::tree::{Node, TreeView};
use crate::layout::apply::{make_symlink, open_parent, write_file};
use crate::manifest::Kind;
use crate::path::{decode, encode};

/// The tree on disk, read without following symlinks.
pub struct DirView<'a> {
    root: &'a Dir,
}

impl<'a> DirView<'a> {
    /// A view of `root`.
    pub fn new(root: &'a Dir) -> DirView<'a> {
        DirView { root }
    }
}

/// Open the directory at an absolute image path, never following a
/// symlink; the errno tells a missing path from a broken one.
fn open_dir(root: &Dir, path: &str) -> rustix::io::Result<OwnedFd> {
    let raw = decode(path).ok_or(Errno::INVAL)?;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut cur = rustix::fs::openat(root, ".", flags, Mode::empty())?;
    for comp in raw.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        if comp == b".." || comp == b"." {
            return Err(Errno::INVAL);
        }
        cur = rustix::fs::openat(&cur, comp, flags, Mode::empty())?;
    }
    Ok(cur)
}

/// The parent directory and final name of a path; `None` when the parent
/// does not exist (or is not a directory).
fn parent_of(root: &Dir, path: &str) -> Result<Option<(OwnedFd, Vec<u8>)>> {
    let (parent, name) = path
        .rsplit_once('/')
        .with_context(|| format!("{path}: not absolute"))?;
    let name = decode(name).with_context(|| format!("{path}: bad path"))?;
    let parent = if parent.is_empty() { "/" } else { parent };
    match open_dir(root, parent) {
        Ok(fd) => Ok(Some((fd, name))),
        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => Ok(None),
        Err(e) => Err(anyhow::Error::from(e).context(format!("{parent}: cannot open"))),
    }
}

fn kind_of(mode: u32) -> Kind {
    match FileType::from_raw_mode(mode) {
        FileType::RegularFile => Kind::File,
        FileType::Directory => Kind::Dir,
        FileType::Symlink => Kind::Symlink,
        FileType::CharacterDevice => Kind::Char,
        FileType::BlockDevice => Kind::Block,
        FileType::Fifo => Kind::Fifo,
        _ => Kind::Socket,
    }
}

impl TreeView for DirView<'_> {
    fn node(&self, path: &str) -> Result<Option<Node>> {
        let (dir, name) = if path == "/" {
            let fd = open_dir(self.root, "/").context("cannot open the root")?;
            (fd, b".".to_vec())
        } else {
            match parent_of(self.root, path)? {
                Some(x) => x,
                None => return Ok(None),
            }
        };
        let st = match rustix::fs::statx(
            &dir,
            name.as_slice(),
            AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT,
            StatxFlags::BASIC_STATS,
        ) {
            Ok(st) => st,
            Err(Errno::NOENT | Errno::NOTDIR) => return Ok(None),
            Err(e) => return Err(anyhow::Error::from(e).context(format!("{path}: cannot stat"))),
        };
        let kind = kind_of(u32::from(st.stx_mode));
        let target = if kind == Kind::Symlink {
            let t = rustix::fs::readlinkat(&dir, name.as_slice(), Vec::new())
                .with_context(|| format!("{path}: cannot read symlink"))?;
            Some(encode(t.as_bytes()).0)
        } else {
            None
        };
        Ok(Some(Node {
            kind,
            mode: u32::from(st.stx_mode) & 0o7777,
            uid: st.stx_uid,
            gid: st.stx_gid,
            target,
        }))
    }

    fn read(&self, path: &str) -> Result<Vec<u8>> {
        let Some((dir, name)) = parent_of(self.root, path)? else {
            bail!("{path}: no such file");
        };
        let fd = rustix::fs::openat(
            &dir,
            name.as_slice(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )
        .with_context(|| format!("{path}: cannot open"))?;
        let st = rustix::fs::fstat(&fd)?;
        if !FileType::from_raw_mode(st.st_mode).is_file() {
            bail!("{path}: not a regular file");
        }
        let mut out = Vec::new();
        std::fs::File::from(fd)
            .take(MAX_SIZE + 1)
            .read_to_end(&mut out)
            .with_context(|| format!("{path}: cannot read"))?;
        if out.len() as u64 > MAX_SIZE {
            bail!("{path}: larger than {MAX_SIZE} bytes");
        }
        Ok(out)
    }

    fn list(&self, path: &str) -> Result<Vec<String>> {
        let fd = match open_dir(self.root, path) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(Vec::new()),
            Err(e) => return Err(anyhow::Error::from(e).context(format!("{path}: cannot open"))),
        };
        let dir = Dir::from_std_file(std::fs::File::from(fd));
        let mut names = Vec::new();
        for entry in dir
            .entries()
            .with_context(|| format!("{path}: cannot list"))?
        {
            let entry = entry.with_context(|| format!("{path}: cannot list"))?;
            names.push(encode(entry.file_name().as_bytes()).0);
        }
        names.sort();
        Ok(names)
    }
}

/// Carry the writes out, in order.
pub fn apply(root: &Dir, ops: &[Op]) -> Result<()> {
    for op in ops {
        run(root, op)?;
    }
    Ok(())
}

fn run(root: &Dir, op: &Op) -> Result<()> {
    match op {
        Op::File {
            path,
            content,
            mode,
            uid,
            gid,
        } => write_file(root, path, *mode, *uid, *gid, |f| f.write_all(content)),
        Op::Dir {
            path,
            mode,
            uid,
            gid,
            replace,
        } => {
            let (dir, name) = open_parent(root, path, true)?;
            if *replace {
                match rustix::fs::unlinkat(&dir, name.as_slice(), AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => {}
                    Err(e) => {
                        return Err(
                            anyhow::Error::from(e).context(format!("{path}: cannot remove"))
                        );
                    }
                }
            }
            match rustix::fs::mkdirat(&dir, name.as_slice(), Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(anyhow::Error::from(e).context(format!("{path}: mkdir"))),
            }
            let fd = rustix::fs::openat(
                &dir,
                name.as_slice(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .with_context(|| format!("{path}: not a directory (or a symlink)"))?;
            rustix::fs::fchown(
                &fd,
                Some(rustix::fs::Uid::from_raw(*uid)),
                Some(rustix::fs::Gid::from_raw(*gid)),
            )
            .with_context(|| format!("{path}: chown"))?;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(*mode & 0o7777))
                .with_context(|| format!("{path}: chmod"))?;
            Ok(())
        }
        Op::Symlink {
            path,
            target,
            uid,
            gid,
        } => make_symlink(root, path, target.as_bytes(), *uid, *gid),
        Op::Remove { path } => {
            let Some((dir, name)) = parent_of(root, path)? else {
                return Ok(());
            };
            match rustix::fs::statx(
                &dir,
                name.as_slice(),
                AtFlags::SYMLINK_NOFOLLOW,
                StatxFlags::TYPE,
            ) {
                Ok(st) if kind_of(u32::from(st.stx_mode)) == Kind::Symlink => {}
                Ok(_) => bail!("{path}: no longer a symlink; rerun apply"),
                Err(Errno::NOENT) => return Ok(()),
                Err(e) => {
                    return Err(anyhow::Error::from(e).context(format!("{path}: cannot stat")));
                }
            }
            match rustix::fs::unlinkat(&dir, name.as_slice(), AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => Ok(()),
                Err(e) => Err(anyhow::Error::from(e).context(format!("{path}: cannot remove"))),
            }
        }
    }
}
