//! The pieces of an end-to-end base image, shared by the suites that build
//! real Containerfiles (`tests/buildah_e2e.rs`, `tests/real_format.rs`):
//!
//! - [`tool_rpms`]: the tool's own RPMs, by `packaging/build-rpm` (a
//!   statically linked release binary, so it runs in any base);
//! - [`assemble_base`]: `fixtures/assemble-base.sh`, a base tree whose
//!   RUN steps have a shell, the real rpm and ostree, and the tool
//!   installed from those RPMs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::Layout;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `packaging/build-rpm OUTDIR`: the tool, then its `ostree container`
/// name. Panics on failure.
pub fn tool_rpms(outdir: &Path) -> [PathBuf; 2] {
    let started = Instant::now();
    let out = super::check(
        Command::new(repo().join("packaging/build-rpm"))
            .arg(outdir)
            .env_remove("LD_LIBRARY_PATH"),
    );
    let paths: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .collect();
    let rpms = paths
        .try_into()
        .unwrap_or_else(|p| panic!("build-rpm printed two RPM paths, not {p:?}"));
    eprintln!("e2e: tool RPM built in {:?}", started.elapsed());
    rpms
}

/// `fixtures/assemble-base.sh --layout LAYOUT TREE RPMDIR TOOL_RPMS…`:
/// the base tree at `tree` (which must not exist or be empty), with the
/// fixture packages from [`super::rpms`]. Panics on failure.
pub fn assemble_base(tree: &Path, layout: Layout, tool_rpms: &[PathBuf]) {
    super::check(
        Command::new(repo().join("fixtures/assemble-base.sh"))
            .args(["--layout", layout.name()])
            .arg(tree)
            .arg(super::rpms())
            .args(tool_rpms)
            // cargo test points this at the toolchain: ldd must see the
            // host's own library paths.
            .env_remove("LD_LIBRARY_PATH"),
    );
}
