//! Helpers shared by the fuzz targets in `fuzz_targets/`.
//!
//! Each target is one file there, feeding libFuzzer's bytes to one parser
//! of `ostree-finalize` and asserting what must hold for *every* input:
//! no panic, and the target's own properties (a round trip, a tree left
//! untouched). Anything that needs a real tree on disk gets it from
//! [`ScratchRoot`] here, so targets stay a few lines long.
//!
//! The targets whose checks are more than a few lines keep them in a
//! module of their own here ([`manifest_json`], [`oci_layer`],
//! [`ostree_objects`], [`path_roundtrip`], [`policy_yaml`], [`rpm_header`],
//! [`tmpfiles_escape`]), which `tests/fuzz_regressions.rs` includes with
//! `#[path]`: the fuzzer and the regression test cannot drift apart.

pub mod manifest_json;
pub mod oci_layer;
pub mod ostree_objects;
pub mod path_roundtrip;
pub mod policy_yaml;
pub mod rpm_header;
pub mod tmpfiles_escape;

use std::path::{Path, PathBuf};

use cap_std::fs::Dir;

/// A tree in a private temporary directory holding one file at a fixed
/// path, rewritten with each fuzz input. Made once per fuzzing process: a
/// fresh tempdir per input would cost more than the parser under test.
///
/// The directory is not removed when the fuzzer exits (libFuzzer leaves
/// through `exit`); it is named `ostree-finalize-fuzz-*` under `$TMPDIR`.
pub struct ScratchRoot {
    /// Keeps the tree alive; never dropped in practice.
    _dir: tempfile::TempDir,
    /// The root, as the code under test receives it.
    root: Dir,
    /// The file's host path.
    file: PathBuf,
}

impl ScratchRoot {
    /// Make a root with the parent directories of `rel` (root-relative,
    /// e.g. `usr/lib/sysimage/rpm/rpmdb.sqlite`). Panics on I/O errors: the
    /// harness, not the input, is broken then.
    pub fn new(rel: &str) -> ScratchRoot {
        let dir = tempfile::Builder::new()
            .prefix("ostree-finalize-fuzz-")
            .tempdir()
            .expect("creating the scratch root");
        let file = dir.path().join(rel);
        let parent = file.parent().expect("a file path has a parent");
        std::fs::create_dir_all(parent).expect("creating the file's parents");
        let root = Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority())
            .expect("opening the scratch root");
        ScratchRoot {
            _dir: dir,
            root,
            file,
        }
    }

    /// The root directory handle.
    pub fn dir(&self) -> &Dir {
        &self.root
    }

    /// The file's host path.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Replace the file's content with `data`.
    pub fn write(&self, data: &[u8]) {
        std::fs::write(&self.file, data).expect("writing the fuzz input");
    }

    /// Assert that the code under test left the file's directory as
    /// [`ScratchRoot::write`] made it: the file alone, holding `data`.
    /// (Readers must never modify the tree, not even sqlite's `-shm`/`-wal`.)
    pub fn assert_untouched(&self, data: &[u8]) {
        let after = std::fs::read(&self.file).expect("re-reading the fuzz input");
        assert!(after == data, "the reader modified {}", self.file.display());
        let parent = self.file.parent().expect("a file path has a parent");
        let mut names: Vec<_> = std::fs::read_dir(parent)
            .expect("listing the file's directory")
            .map(|e| e.expect("listing the file's directory").file_name())
            .collect();
        names.sort();
        let expected = self.file.file_name().expect("a file path has a name");
        assert!(
            names == [expected],
            "the reader left files next to {}: {names:?}",
            self.file.display()
        );
    }
}

