//! Carry a [`Plan`] out. Every path is reached from the root one component
//! at a time with `O_NOFOLLOW`, so an entry swapped for a symlink between
//! plan and apply cannot redirect a write or a delete. Every file is
//! written to a temporary name, synced, then renamed into place. The plan's
//! order (copy, declare, remove, housekeeping) means a run killed at any
//! point can simply be run again.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};

use anyhow::{Context, Result, bail};
use cap_std::fs::Dir;
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::{Action, Item, Plan};
use crate::manifest::{Hex, Kind};
use crate::path::decode;

/// Environment variable naming an action count after which the applier
/// kills itself with SIGKILL: a fault-injection hook for crash-recovery
/// tests.
pub const FAULT_ENV: &str = "OSTREE_FINALIZE_FAULT_AFTER";

/// Environment variable naming a fifo the applier reads one byte from
/// before it starts: a hook for tests that change the tree between plan
/// and apply.
pub const PAUSE_ENV: &str = "OSTREE_FINALIZE_PAUSE_BEFORE_APPLY";

/// Apply every action in order.
pub fn apply(root: &Dir, plan: &Plan) -> Result<()> {
    let fault_after: Option<usize> = std::env::var(FAULT_ENV).ok().and_then(|v| v.parse().ok());
    if let Some(fifo) = std::env::var_os(PAUSE_ENV) {
        let mut byte = [0u8; 1];
        let _ = std::fs::File::open(fifo).and_then(|mut f| std::io::Read::read(&mut f, &mut byte));
    }
    for (done, action) in plan.actions.iter().enumerate() {
        if fault_after == Some(done) {
            eprintln!("ostree-finalize: {FAULT_ENV}={done}: simulating a crash");
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
        }
        run(root, action)?;
    }
    Ok(())
}

fn run(root: &Dir, action: &Action) -> Result<()> {
    match action {
        Action::CopyToFactory {
            source,
            dest,
            mode,
            uid,
            gid,
        } => copy_file(root, source, dest, (*mode, *uid, *gid), &Default::default()),
        Action::Relocate {
            source,
            dest,
            items,
        } => relocate(root, source, dest, items),
        Action::RestoreLink { path, target } => restore_link(root, path, target),
        Action::Write { path, content } => write_file(root, path, 0o644, 0, 0, |out| {
            out.write_all(content.as_bytes())
        }),
        Action::Remove { path, dir } => remove(root, path, *dir),
        Action::CheckpointRpmdb { dir } => checkpoint_rpmdb(root, dir),
        Action::Unshare { path } => unshare(root, path),
        Action::RebuildBaseDb { dir, from, drop } => rebuild_base_db(root, dir, from, drop),
        Action::MoveEtcToUsrEtc => {
            let usr = open_path(root, "/usr", false)?;
            match rustix::fs::statx(
                &usr,
                "etc",
                AtFlags::SYMLINK_NOFOLLOW,
                rustix::fs::StatxFlags::TYPE,
            ) {
                Ok(_) => bail!("/usr/etc already exists; cannot move /etc there"),
                Err(Errno::NOENT) => {}
                Err(e) => return Err(anyhow::Error::from(e).context("/usr/etc")),
            }
            rustix::fs::renameat(root, "etc", &usr, "etc").context("cannot move /etc to /usr/etc")
        }
    }
}

/// Open a directory by absolute image path, never following a symlink.
/// With `create`, missing components are made (0755).
pub(crate) fn open_path(root: &Dir, path: &str, create: bool) -> Result<OwnedFd> {
    let raw = decode(path).with_context(|| format!("{path}: bad path"))?;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut cur = rustix::fs::openat(root, ".", flags, Mode::empty())?;
    for comp in raw.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        if comp == b".." || comp == b"." {
            bail!("{path}: refusing a path with . or ..");
        }
        let next = match rustix::fs::openat(&cur, comp, flags, Mode::empty()) {
            Err(Errno::NOENT) if create => {
                match rustix::fs::mkdirat(&cur, comp, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(anyhow::Error::from(e).context(format!("{path}: mkdir"))),
                }
                rustix::fs::openat(&cur, comp, flags, Mode::empty())
            }
            other => other,
        };
        cur = next.with_context(|| {
            format!("{path}: cannot open (a component is missing or is a symlink)")
        })?;
    }
    Ok(cur)
}

/// The parent directory of `path` (opened no-follow) and the final name.
pub(crate) fn open_parent(root: &Dir, path: &str, create: bool) -> Result<(OwnedFd, Vec<u8>)> {
    let (parent, name) = path.rsplit_once('/').context("not an absolute path")?;
    let name = decode(name).with_context(|| format!("{path}: bad path"))?;
    let parent = if parent.is_empty() { "/" } else { parent };
    Ok((open_path(root, parent, create)?, name))
}

/// Copy a regular file from `source` to `dest` (temp file and rename),
/// with `(mode, uid, gid)` and `xattrs` set before it becomes visible.
fn copy_file(
    root: &Dir,
    source: &str,
    dest: &str,
    (mode, uid, gid): (u32, u32, u32),
    xattrs: &std::collections::BTreeMap<String, Hex>,
) -> Result<()> {
    let (sdir, sname) = open_parent(root, source, false)?;
    let src = rustix::fs::openat(
        &sdir,
        sname.as_slice(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .with_context(|| format!("{source}: cannot open"))?;
    let st = rustix::fs::fstat(&src)?;
    if !rustix::fs::FileType::from_raw_mode(st.st_mode).is_file() {
        bail!("{source}: no longer a regular file; rerun finalize");
    }
    let mut reader = std::fs::File::from(src);
    // The copy keeps the source's mtime, which `rpm -V` compares.
    let times = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        },
    };
    write_file_with(root, dest, (mode, uid, gid), xattrs, |out| {
        std::io::copy(&mut reader, out)?;
        rustix::fs::futimens(&*out, &times).map_err(std::io::Error::from)
    })
}

/// Copy one relocated entry into place, parents first. Every step can be
/// repeated: directories already there get their mode and owner set
/// again, files and symlinks are replaced by rename. A source path that is
/// already gone was moved by an earlier, interrupted run.
fn relocate(root: &Dir, source: &str, dest: &str, items: &[Item]) -> Result<()> {
    for item in items {
        let (from, to) = if item.rel.is_empty() {
            (source.to_string(), dest.to_string())
        } else {
            (
                format!("{source}/{}", item.rel),
                format!("{dest}/{}", item.rel),
            )
        };
        let owner = (item.mode, item.uid, item.gid);
        match item.kind {
            Kind::Dir => {
                let (parent, name) = open_parent(root, &to, true)?;
                match rustix::fs::mkdirat(&parent, name.as_slice(), Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(anyhow::Error::from(e).context(format!("{to}: mkdir"))),
                }
                let fd = open_path(root, &to, false)?;
                set_meta(&fd, owner, &item.xattrs).with_context(|| format!("{to}: cannot set"))?;
            }
            Kind::File => copy_file(root, &from, &to, owner, &item.xattrs)?,
            Kind::Symlink => {
                let target = item
                    .target
                    .as_deref()
                    .and_then(decode)
                    .with_context(|| format!("{from}: bad symlink target"))?;
                make_symlink(root, &to, &target, item.uid, item.gid)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Owner, then mode (chown clears setuid bits and capabilities), then
/// xattrs, on an open file or directory.
fn set_meta(
    fd: &impl AsFd,
    (mode, uid, gid): (u32, u32, u32),
    xattrs: &std::collections::BTreeMap<String, Hex>,
) -> Result<()> {
    rustix::fs::fchown(fd, Some(uid_of(uid)), Some(gid_of(gid)))?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode & 0o7777))?;
    for (name, value) in xattrs {
        rustix::fs::fsetxattr(fd, name.as_str(), &value.0, rustix::fs::XattrFlags::empty())
            .with_context(|| format!("xattr {name}"))?;
    }
    Ok(())
}

/// Create or replace the symlink `path` → `target` by temp name and rename.
pub(crate) fn make_symlink(
    root: &Dir,
    path: &str,
    target: &[u8],
    uid: u32,
    gid: u32,
) -> Result<()> {
    let (dir, name) = open_parent(root, path, true)?;
    let tmp = temp_name(&name);
    match rustix::fs::unlinkat(&dir, tmp.as_slice(), AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => return Err(anyhow::Error::from(e).context(format!("{path}: stale temp file"))),
    }
    let result = (|| -> Result<()> {
        rustix::fs::symlinkat(target, &dir, tmp.as_slice())?;
        rustix::fs::chownat(
            &dir,
            tmp.as_slice(),
            Some(uid_of(uid)),
            Some(gid_of(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        rustix::fs::renameat(&dir, tmp.as_slice(), &dir, name.as_slice())?;
        Ok(())
    })();
    if result.is_err() {
        let _ = rustix::fs::unlinkat(&dir, tmp.as_slice(), AtFlags::empty());
    }
    result.with_context(|| format!("{path}: cannot make the symlink"))
}

/// Put a base link back: the build's directory there is empty by now
/// (its content was relocated and removed), or the path is missing (a
/// run stopped between the two steps). A link already there is left.
fn restore_link(root: &Dir, path: &str, target: &str) -> Result<()> {
    let (dir, name) = open_parent(root, path, false)?;
    let target = decode(target).with_context(|| format!("{path}: bad symlink target"))?;
    match rustix::fs::readlinkat(&dir, name.as_slice(), Vec::new()) {
        Ok(t) if t.as_bytes() == target.as_slice() => return Ok(()),
        Ok(_) | Err(Errno::NOENT) | Err(Errno::INVAL) => {}
        Err(e) => return Err(anyhow::Error::from(e).context(format!("{path}: cannot read"))),
    }
    match rustix::fs::unlinkat(&dir, name.as_slice(), AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(Errno::NOTDIR) => {
            rustix::fs::unlinkat(&dir, name.as_slice(), AtFlags::empty())
                .with_context(|| format!("{path}: cannot remove"))?;
        }
        Err(Errno::NOTEMPTY) => {
            bail!("{path}: the directory is not empty after its content was moved; rerun finalize")
        }
        Err(e) => return Err(anyhow::Error::from(e).context(format!("{path}: cannot remove"))),
    }
    rustix::fs::symlinkat(target.as_slice(), &dir, name.as_slice())
        .with_context(|| format!("{path}: cannot restore the link"))
}

fn temp_name(name: &[u8]) -> Vec<u8> {
    let mut tmp = b".".to_vec();
    tmp.extend_from_slice(name);
    tmp.extend_from_slice(b".ostree-finalize-tmp");
    tmp
}

/// Write a file by temp-file-and-rename, with its mode and owner set
/// before it becomes visible.
pub(crate) fn write_file(
    root: &Dir,
    path: &str,
    mode: u32,
    uid: u32,
    gid: u32,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    write_file_with(root, path, (mode, uid, gid), &Default::default(), fill)
}

/// [`write_file`], also setting `xattrs`.
fn write_file_with(
    root: &Dir,
    path: &str,
    (mode, uid, gid): (u32, u32, u32),
    xattrs: &std::collections::BTreeMap<String, Hex>,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let (dir, name) = open_parent(root, path, true)?;
    let tmp = temp_name(&name);
    match rustix::fs::unlinkat(&dir, tmp.as_slice(), AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => return Err(anyhow::Error::from(e).context(format!("{path}: stale temp file"))),
    }
    let fd = rustix::fs::openat(
        &dir,
        tmp.as_slice(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .with_context(|| format!("{path}: cannot create"))?;
    let mut file = std::fs::File::from(fd);
    let result = (|| -> Result<()> {
        fill(&mut file)?;
        // Mode after chown, which clears setuid/setgid bits.
        set_meta(&file, (mode, uid, gid), xattrs)?;
        file.sync_all()?;
        rustix::fs::renameat(&dir, tmp.as_slice(), &dir, name.as_slice())?;
        Ok(())
    })();
    if result.is_err() {
        let _ = rustix::fs::unlinkat(&dir, tmp.as_slice(), AtFlags::empty());
    }
    result.with_context(|| format!("{path}: cannot write"))
}

fn uid_of(n: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(n)
}

fn gid_of(n: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(n)
}

/// Remove one entry. Already gone is fine (a rerun); a directory that is
/// not empty or is busy (a mount below it) is left in place.
fn remove(root: &Dir, path: &str, dir: bool) -> Result<()> {
    let (parent, name) = match open_parent(root, path, false) {
        Ok(p) => p,
        Err(_) => return Ok(()), // parent gone or swapped for a symlink: nothing of ours left
    };
    let flags = if dir {
        AtFlags::REMOVEDIR
    } else {
        AtFlags::empty()
    };
    match rustix::fs::unlinkat(&parent, name.as_slice(), flags) {
        Ok(()) | Err(Errno::NOENT) | Err(Errno::NOTEMPTY) | Err(Errno::BUSY) => Ok(()),
        Err(Errno::NOTDIR) | Err(Errno::ISDIR) => {
            bail!("{path}: changed type since it was planned; rerun finalize")
        }
        Err(e) => Err(anyhow::Error::from(e).context(format!("{path}: cannot remove"))),
    }
}

/// Give `path` its own inode: the same content, owner, mode and xattrs,
/// written next to it and renamed over it. Already alone is fine (a rerun
/// writes the same file again), and so is gone.
fn unshare(root: &Dir, path: &str) -> Result<()> {
    let (dir, name) = open_parent(root, path, false)?;
    let src = match rustix::fs::openat(
        &dir,
        name.as_slice(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    ) {
        // Gone (an rpm database's -shm, removed by the checkpoint): no
        // hardlink left to break.
        Err(Errno::NOENT) => return Ok(()),
        other => other.with_context(|| format!("{path}: cannot open"))?,
    };
    let st = rustix::fs::fstat(&src)?;
    if !rustix::fs::FileType::from_raw_mode(st.st_mode).is_file() {
        bail!("{path}: no longer a regular file; rerun finalize");
    }
    // Every xattr the file has (not only those the diff compares): the copy
    // must be the same file.
    let xattrs = crate::ostree::repo::raw_xattrs(&src)
        .with_context(|| format!("{path}: xattrs"))?
        .into_iter()
        .filter_map(|(n, v)| Some((String::from_utf8(n).ok()?, Hex(v))))
        .collect();
    let mut reader = std::fs::File::from(src);
    write_file_with(
        root,
        path,
        (st.st_mode, st.st_uid, st.st_gid),
        &xattrs,
        |out| std::io::copy(&mut reader, out).map(|_| ()),
    )
}

/// Rebuild rpm-ostree's record of the base's rpm database in `dir` from
/// the rpm database in `from`, leaving out the headers of `drop` (the
/// packages the build added): exactly the base's package set, every index
/// table with it. Written beside the old file and renamed over it.
fn rebuild_base_db(root: &Dir, dir: &str, from: &str, added: &[String]) -> Result<()> {
    use std::os::fd::AsRawFd;
    const DB: &str = "rpmdb.sqlite";
    const TMP: &str = ".rpmdb.sqlite.ostree-finalize-tmp";
    let what = || format!("{dir}/{DB}: cannot rebuild from {from}/{DB}");
    let dst = open_path(root, dir, false).with_context(what)?;
    let old = rustix::fs::statx(
        &dst,
        DB,
        AtFlags::SYMLINK_NOFOLLOW,
        rustix::fs::StatxFlags::BASIC_STATS,
    )
    .with_context(what)?;
    let src_dir = open_path(root, from, false).with_context(what)?;
    let src = rustix::fs::openat(
        &src_dir,
        DB,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(what)?;
    for stale in [
        TMP,
        ".rpmdb.sqlite.ostree-finalize-tmp-wal",
        ".rpmdb.sqlite.ostree-finalize-tmp-shm",
        ".rpmdb.sqlite.ostree-finalize-tmp-journal",
    ] {
        match rustix::fs::unlinkat(&dst, stale, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(anyhow::Error::from(e).context(what())),
        }
    }
    let fd = rustix::fs::openat(
        &dst,
        TMP,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .with_context(what)?;
    let mut out = std::fs::File::from(fd);
    std::io::copy(&mut std::fs::File::from(src), &mut out).with_context(what)?;
    let result = (|| -> Result<()> {
        let via = format!("/proc/self/fd/{}/{TMP}", dst.as_fd().as_raw_fd());
        let conn = rusqlite::Connection::open_with_flags(
            &via,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let mut dropped = Vec::new();
        {
            let mut stmt = conn.prepare("SELECT hnum, blob FROM Packages")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let hnum: i64 = row.get(0)?;
                let blob: Vec<u8> = row.get(1)?;
                let pkg = crate::rpmdb::parse_header_blob(&blob)
                    .with_context(|| format!("header {hnum}"))?;
                if added.contains(&pkg.nevra()) {
                    dropped.push(hnum);
                }
            }
        }
        let tables: Vec<String> = {
            let mut stmt = conn.prepare(
                "SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) c \
                 WHERE m.type = 'table' AND c.name = 'hnum'",
            )?;
            let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
            let mut names: Vec<String> = names.collect::<rusqlite::Result<_>>()?;
            // The index tables refer to Packages: it goes last.
            names.sort_by_key(|n| n == "Packages");
            names
        };
        let tx = conn.unchecked_transaction()?;
        for table in &tables {
            let sql = format!(
                "DELETE FROM \"{}\" WHERE hnum = ?1",
                table.replace('"', "\"\"")
            );
            let mut stmt = tx.prepare(&sql)?;
            for hnum in &dropped {
                stmt.execute([hnum])?;
            }
        }
        tx.commit()?;
        conn.execute_batch("VACUUM")?;
        drop(conn);
        rustix::fs::fchown(&out, Some(uid_of(old.stx_uid)), Some(gid_of(old.stx_gid)))?;
        rustix::fs::fchmod(&out, Mode::from_raw_mode(u32::from(old.stx_mode) & 0o7777))?;
        out.sync_all()?;
        rustix::fs::renameat(&dst, TMP, &dst, DB)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = rustix::fs::unlinkat(&dst, TMP, AtFlags::empty());
    }
    result.with_context(what)
}

/// Fold committed WAL data into the rpmdb, then drop the -shm/-wal and
/// lock files rpm leaves behind.
fn checkpoint_rpmdb(root: &Dir, dir: &str) -> Result<()> {
    use std::os::fd::AsRawFd;
    let fd = open_path(root, dir, false)?;
    let db_file = "rpmdb.sqlite";
    if rustix::fs::statx(
        &fd,
        db_file,
        AtFlags::SYMLINK_NOFOLLOW,
        rustix::fs::StatxFlags::TYPE,
    )
    .is_ok()
    {
        // Reach the file through the directory descriptor, not a host path.
        let via = format!("/proc/self/fd/{}/{db_file}", fd.as_fd().as_raw_fd());
        let conn = rusqlite::Connection::open_with_flags(
            &via,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("{dir}/{db_file}: cannot open to checkpoint"))?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            row.get::<_, i64>(0)
        })
        .with_context(|| format!("{dir}/{db_file}: checkpoint failed"))
        .and_then(|busy| {
            if busy != 0 {
                bail!("{dir}/{db_file}: database busy; is rpm still running?");
            }
            Ok(())
        })?;
        drop(conn);
    }
    for leftover in [
        "rpmdb.sqlite-shm",
        "rpmdb.sqlite-wal",
        ".rpm.lock",
        ".dbenv.lock",
    ] {
        match rustix::fs::unlinkat(&fd, leftover, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => {
                return Err(
                    anyhow::Error::from(e).context(format!("{dir}/{leftover}: cannot remove"))
                );
            }
        }
    }
    Ok(())
}
