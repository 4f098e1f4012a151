//! The pipeline shared by `finalize` and `diff`: walk the tree, read its
//! rpmdb, diff both against the base, run the checks, build the report.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context, Result};
use cap_std::fs::Dir;

use crate::checks::{self, Input, Resolve};
use crate::diff::{self, Aspect, Change, DiffOptions};
use crate::manifest::{self, Manifest, PackageRecord};
use crate::pkgdiff;
use crate::report::{PathChanges, Report};
use crate::rootfs::{self, Tree, WalkOptions};
use crate::rpmdb;
use crate::zones::{Zone, zone};

/// How a tree is walked for comparison with a base: the tool's own state
/// is skipped, rpm database files are compared as packages instead.
pub fn walk_options(keep_etc_text: bool) -> WalkOptions {
    WalkOptions {
        skip: vec![manifest::STATE_DIR.to_string()],
        opaque: crate::zones::RPMDB_DIRS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        keep_etc_text,
    }
}

/// The packages of the tree's rpmdb as records (empty without an rpmdb).
pub fn read_packages(root: &Dir) -> Result<(Option<String>, Vec<PackageRecord>)> {
    Ok(match rpmdb::read(root)? {
        Some(db) => (
            Some(db.location),
            db.packages.iter().map(PackageRecord::from).collect(),
        ),
        None => (None, Vec::new()),
    })
}

/// Switches for one evaluation.
#[derive(Debug, Clone, Copy, Default)]
pub struct EvalOptions {
    /// `--allow-overrides`.
    pub allow_overrides: bool,
    /// List every changed path in the report (`diff`).
    pub list_changes: bool,
}

/// Diff `root` against `base` and judge it.
pub fn evaluate(
    root: &Dir,
    base: &Manifest,
    base_origin: &str,
    command: &str,
    opts: EvalOptions,
) -> Result<Report> {
    let tree = rootfs::walk(root, &walk_options(false))?;
    let (_, packages) = read_packages(root)?;
    let pkg_changes = pkgdiff::diff_packages(&base.packages, &packages);
    let changes = diff::diff(&base.entries, &tree.entries, DiffOptions::default());
    let etc_texts = read_etc_texts(root, &changes)?;
    let input = Input {
        base,
        current: &tree,
        changes: &changes,
        packages: &pkg_changes,
        etc_texts: &etc_texts,
    };
    let resolve = Resolve {
        allow_overrides: opts.allow_overrides,
    };
    let findings = checks::run(&input, resolve);
    let mut report = Report::new(command, base_origin.to_string(), findings, pkg_changes);
    report.skipped_mounts = tree.mounts.clone();
    if opts.list_changes {
        report.changes = Some(path_changes(&changes, &tree));
    }
    Ok(report)
}

fn path_changes(changes: &[Change], _tree: &Tree) -> PathChanges {
    let mut out = PathChanges::default();
    for c in changes {
        if zone(c.path()) == Zone::Runtime {
            continue;
        }
        let list = match c {
            Change::Added(_) => &mut out.added,
            Change::Modified { .. } => &mut out.modified,
            Change::Removed(_) => &mut out.removed,
        };
        list.push(c.path().to_string());
    }
    out
}

/// The current text of `/etc` files whose content changed and whose base
/// text was recorded, so `etc-modified` can show a diff.
fn read_etc_texts(root: &Dir, changes: &[Change]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for c in changes {
        let Change::Modified {
            base,
            current,
            aspects,
        } = c
        else {
            continue;
        };
        if zone(&base.path) != Zone::Etc
            || base.text.is_none()
            || !aspects.contains(&Aspect::Content)
            || current.size > 1 << 20
        {
            continue;
        }
        let Some(rel) = crate::path::relative(&current.path) else {
            continue;
        };
        let mut text = String::new();
        let read = root
            .open(&rel)
            .and_then(|mut f| f.read_to_string(&mut text));
        if read.is_ok() {
            out.insert(base.path.clone(), text);
        }
    }
    Ok(out)
}

/// Load the base reference: `--base FILE` (a host path, read at the CLI
/// edge), else the default location inside the root.
pub fn load_base(root: &Dir, base: Option<&std::path::Path>) -> Result<(Manifest, String)> {
    match base {
        Some(file) => {
            let origin = file.display().to_string();
            let bytes = rootfs::read_ambient_file(file)?;
            Ok((Manifest::from_json(&bytes, &origin)?, origin))
        }
        None => {
            let origin = manifest::DEFAULT_MANIFEST.to_string();
            let bytes = root.read(&origin[1..]).with_context(|| {
                format!(
                    "{origin}: no base reference in the root. Run `ostree-finalize snapshot` \
                     on the pristine base image (or pass --base FILE)"
                )
            })?;
            Ok((Manifest::from_json(&bytes, &origin)?, origin))
        }
    }
}
