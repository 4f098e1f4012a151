//! Reading rpm's sqlite backend without touching the tree.
//!
//! Opening `rpmdb.sqlite` in place would let sqlite create or rewrite the
//! `-shm` and `-wal` files next to it (and checkpoint into the database on
//! close), so the tree would no longer be byte-identical. Instead the
//! database and its write-ahead log are copied into a private temporary
//! directory and the copy is opened; sqlite replays committed transactions
//! that only live in the WAL when it opens the copy, so they are seen (and a
//! hot rollback journal is rolled back, as sqlite would in place).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use cap_std::fs::Dir;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::find::resolve;

/// Files sqlite keeps next to a database that can hold committed data:
/// the write-ahead log (rpm's mode) and a hot rollback journal.
const SIDECARS: [&str; 2] = ["-wal", "-journal"];

/// A private copy of an rpmdb, deleted when dropped.
pub struct DbCopy {
    /// Keeps the temporary directory alive.
    _dir: tempfile::TempDir,
    /// The open connection to the copy.
    conn: Connection,
    /// The database file as users know it, for error messages.
    name: String,
}

impl DbCopy {
    /// Copy `file` (relative to `root`, symlink-free) and its non-empty WAL,
    /// then open the copy. Errors start with `name`, the database file as
    /// users know it (`/usr/lib/sysimage/rpm/rpmdb.sqlite`).
    pub fn open(root: &Dir, file: &Path, name: &str) -> Result<Self> {
        Self::open_inner(root, file, name).with_context(|| format!("{name}: opening a copy"))
    }

    /// [`DbCopy::open`] without the context.
    fn open_inner(root: &Dir, file: &Path, name: &str) -> Result<Self> {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let local = dir.path().join("rpmdb.sqlite");
        let meta = root.metadata(file)?;
        ensure!(meta.is_file(), "not a regular file");
        copy_out(root, file, &local)?;
        for suffix in SIDECARS {
            if let Some(src) = sidecar(root, file, suffix)? {
                copy_out(root, &src, &with_suffix(&local, suffix))
                    .with_context(|| format!("copying {}", src.display()))?;
            }
        }
        // Read-write only on the private copy: sqlite writes the `-shm` index
        // to replay the WAL. Never create: an absent copy would be a bug.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&local, flags)?;
        bound_work(&mut conn)?;
        check_complete(&conn, &local)?;
        check_schema(&conn)?;
        Ok(DbCopy {
            _dir: dir,
            conn,
            name: name.to_owned(),
        })
    }

    /// Call `each(hnum, blob)` for every row of `Packages`, by `hnum`.
    ///
    /// Database errors are reported with the file's name; errors from `each`
    /// are passed on as they are.
    pub fn for_each_header(&self, mut each: impl FnMut(i64, &[u8]) -> Result<()>) -> Result<()> {
        let name = &self.name;
        let sql = |e: rusqlite::Error| {
            let looped = e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted);
            let what = if looped {
                "the database is corrupt (sqlite was stopped after 10^8 steps)"
            } else {
                "reading the Packages table"
            };
            anyhow::Error::new(e).context(format!("{name}: {what}"))
        };
        let mut stmt = self
            .conn
            .prepare("SELECT hnum, blob FROM Packages ORDER BY hnum")
            .map_err(sql)?;
        let mut rows = stmt.query([]).map_err(sql)?;
        while let Some(row) = rows.next().map_err(sql)? {
            let hnum: i64 = row.get(0).map_err(sql)?;
            let blob = row.get_ref(1).map_err(sql)?.as_blob().map_err(|e| {
                anyhow::Error::new(e).context(format!("{name}: header #{hnum}: not a blob"))
            })?;
            each(hnum, blob)?;
        }
        Ok(())
    }
}

/// sqlite virtual-machine steps between progress callbacks.
const STEPS_PER_CALL: i32 = 10_000;
/// Callbacks before a query is interrupted: about 10^8 steps, seconds of
/// work. Reading a real rpmdb of thousands of packages takes well under
/// 1% of it; a corrupt file that sends sqlite round in circles (found by
/// fuzzing) is stopped instead of hanging the build.
const MAX_CALLS: u32 = 10_000;

/// Interrupt any statement on `conn` that runs away.
fn bound_work(conn: &mut Connection) -> Result<()> {
    let mut calls = 0u32;
    conn.progress_handler(
        STEPS_PER_CALL,
        Some(move || {
            calls += 1;
            calls > MAX_CALLS
        }),
    )?;
    Ok(())
}

/// `file` with `suffix` appended to its name.
fn with_suffix(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The sidecar of `file` with `suffix`, resolved inside the root, when it is
/// a non-empty regular file (rpm leaves an empty `-wal` behind on exit).
fn sidecar(root: &Dir, file: &Path, suffix: &str) -> Result<Option<PathBuf>> {
    let path = with_suffix(file, suffix);
    let found = resolve(root, &path).with_context(|| format!("looking for {}", path.display()))?;
    let Some(found) = found else {
        return Ok(None);
    };
    let meta = root.metadata(&found)?;
    Ok((meta.is_file() && meta.len() > 0).then_some(found))
}

/// Fold any WAL into the copy, then check that the file holds every page
/// its header claims: sqlite itself reads a truncated tail as zeros and may
/// not notice when those pages belong to another table.
fn check_complete(conn: &Connection, local: &Path) -> Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let need = u64::try_from(pages)
        .ok()
        .zip(u64::try_from(page_size).ok())
        .and_then(|(p, s)| p.checked_mul(s))
        .context("nonsensical page count or size")?;
    let have = std::fs::metadata(local)?.len();
    ensure!(
        have >= need,
        "file is truncated: {have} bytes, but it should hold {pages} pages of {page_size} bytes"
    );
    Ok(())
}

/// The largest value sqlite may build: rpm's own limit on a header's data
/// (`HEADER_DATA_MAX`, 256 MiB). Nothing in a real rpmdb comes close.
const MAX_VALUE: i32 = 256 << 20;

/// Refuse a schema rpm never writes before running any query on it.
///
/// rpm's `Packages` is an ordinary table (`hnum INTEGER PRIMARY KEY, blob
/// BLOB`), whose rows are bounded by the file's size. A view, a virtual
/// table or generated columns are code the database brings along: a
/// recursive view can produce rows forever, each as large as it likes,
/// which sqlite would sort in a temporary file until the disk is full.
/// Schema code is also barred from functions with side effects
/// (`trusted_schema`), and no value may exceed [`MAX_VALUE`].
fn check_schema(conn: &Connection) -> Result<()> {
    conn.pragma_update(None, "trusted_schema", "OFF")?;
    conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, MAX_VALUE)?;
    let found: Option<(String, String)> = conn
        .query_row(
            "SELECT type, coalesce(sql, '') FROM sqlite_schema \
             WHERE name = 'Packages' COLLATE NOCASE",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((kind, sql)) = found else {
        anyhow::bail!("not an rpm database: it has no Packages table");
    };
    let virtual_table = sql
        .trim_start()
        .to_ascii_uppercase()
        .starts_with("CREATE VIRTUAL");
    ensure!(
        kind == "table" && !virtual_table,
        "not an rpm database: Packages is a {}, not an ordinary table",
        if virtual_table {
            "virtual table"
        } else {
            kind.as_str()
        }
    );
    let mut stmt = conn.prepare("SELECT name, hidden FROM pragma_table_xinfo('Packages')")?;
    let columns = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for want in ["hnum", "blob"] {
        let column = columns
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(want));
        match column {
            None => anyhow::bail!("not an rpm database: Packages has no {want} column"),
            Some((_, 0)) => {}
            Some(_) => anyhow::bail!(
                "not an rpm database: Packages.{want} is a generated column, not stored data"
            ),
        }
    }
    Ok(())
}

/// Copy one file out of the tree into a fresh private file.
fn copy_out(root: &Dir, from: &Path, to: &Path) -> Result<()> {
    let mut src = root.open(from)?;
    let mut dst = File::create_new(to)?;
    io::copy(&mut src, &mut dst)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_that_never_ends_is_interrupted() {
        // The schema check refuses views, so no rpmdb reaches this today;
        // the step limit stays as the bound for whatever sqlite does next.
        let mut conn = Connection::open_in_memory().unwrap();
        bound_work(&mut conn).unwrap();
        let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                       SELECT count(*) FROM c";
        let err = conn
            .query_row(endless, [], |r| r.get::<_, i64>(0))
            .unwrap_err();
        assert_eq!(
            err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::OperationInterrupted)
        );
    }

    #[test]
    fn values_past_rpms_header_limit_are_refused() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB)")
            .unwrap();
        check_schema(&conn).unwrap();
        let too_big = format!("SELECT length(zeroblob({}))", MAX_VALUE as i64 + 1);
        assert!(
            conn.query_row(&too_big, [], |r| r.get::<_, i64>(0))
                .is_err()
        );
    }
}
