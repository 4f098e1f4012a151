//! The few file contents lint must read back after streaming (the rpm
//! database, the recorded base reference), kept in a private temporary
//! directory. Everything else is hashed and dropped.

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use super::merge::Kept;

/// The largest file kept: 1 GiB. A Fedora rpmdb is about 100 MiB.
pub const MAX_KEPT: u64 = 1 << 30;

/// The temporary directory; removed with everything in it when dropped.
#[derive(Debug)]
pub struct Spool {
    dir: tempfile::TempDir,
}

/// One file being kept.
pub struct Writer {
    file: tempfile::NamedTempFile,
    written: u64,
    limit: u64,
}

impl Spool {
    /// Create the directory.
    pub fn new() -> Result<Spool> {
        let dir = tempfile::Builder::new()
            .prefix("ostree-finalize-lint-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        Ok(Spool { dir })
    }

    /// Start keeping a file, refusing more than `limit` bytes.
    pub fn writer(&self, limit: u64) -> Result<Writer> {
        let file = tempfile::NamedTempFile::new_in(self.dir.path())
            .context("cannot create a temporary file")?;
        Ok(Writer {
            file,
            written: 0,
            limit,
        })
    }
}

impl Writer {
    /// Append bytes.
    pub fn write(&mut self, buf: &[u8]) -> Result<()> {
        self.written += buf.len() as u64;
        if self.written > self.limit {
            bail!(
                "larger than {} bytes, the most this tool keeps of one file",
                self.limit
            );
        }
        self.file
            .write_all(buf)
            .context("cannot write a temporary file")
    }

    /// Close the file and hand it over.
    pub fn finish(self) -> Result<Kept> {
        let path = self.file.into_temp_path();
        Ok(Arc::new(path))
    }
}
