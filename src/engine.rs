//! The pipeline shared by `finalize` and `diff`: walk the tree, read its
//! rpmdb, diff both against the base, run the checks, build the report.

use anyhow::{Context, Result};
use cap_std::fs::Dir;

use crate::checks::{self, Input, Resolve};
use crate::diff::{self, Change, DiffOptions};
use crate::layout::{self, PlanInput};
use crate::manifest::{self, Kind, Manifest, PackageRecord};
use crate::pkgdiff;
use crate::policy::Policy;
use crate::report::{PathChanges, Report};
use crate::rootfs::{self, Tree, WalkOptions};
use crate::rpmdb::{self, RpmDb};
use crate::zones::{Zone, zone};

/// How a tree is walked for comparison with a base: the tool's own state
/// is skipped, rpm database files are compared as packages instead, and
/// the text of small `/etc` files is kept for diffs.
pub fn walk_options() -> WalkOptions {
    WalkOptions {
        skip: vec![manifest::STATE_DIR.to_string()],
        opaque: crate::zones::RPMDB_DIRS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        keep_text: true,
    }
}

/// What is compared with a base: a tree and its rpm database, read from a
/// directory (`finalize`, `diff`, `lint --rootfs`) or from image layers
/// (`lint --image`).
#[derive(Debug)]
pub struct Target {
    /// Every path, sorted.
    pub tree: Tree,
    /// The rpm database, when the tree has one.
    pub rpmdb: Option<RpmDb>,
    /// The tree keeps its configuration in /usr/etc (an earlier `--usr-etc`
    /// run); its paths were mapped back to /etc for comparison.
    pub etc_in_usr: bool,
}

impl Target {
    /// Walk a directory tree and read its rpm database.
    pub fn from_dir(root: &Dir) -> Result<Target> {
        let progress = crate::progress::Progress::start("scanning the tree");
        let tree = rootfs::walk(root, &walk_options())?;
        drop(progress);
        Ok(Target {
            tree,
            rpmdb: rpmdb::read(root)?,
            etc_in_usr: false,
        })
    }

    /// A tree finalized with `--usr-etc` keeps /etc at /usr/etc: when the
    /// base has /etc and this tree has only /usr/etc, compare /usr/etc as
    /// /etc.
    pub fn map_usr_etc(&mut self, base: &Manifest) {
        let tree = &mut self.tree;
        let moved = base.get("/etc").is_some()
            && tree.get("/etc").is_none()
            && tree.get("/usr/etc").is_some_and(|e| e.kind == Kind::Dir);
        if !moved {
            return;
        }
        for e in &mut tree.entries {
            if let Some(rest) = e.path.strip_prefix("/usr/etc")
                && (rest.is_empty() || rest.starts_with('/'))
            {
                e.path = format!("/etc{rest}");
            }
        }
        tree.entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        self.etc_in_usr = true;
    }

    /// The packages as records (empty without an rpmdb).
    pub fn package_records(&self) -> Vec<PackageRecord> {
        self.rpmdb
            .iter()
            .flat_map(|db| db.packages.iter().map(PackageRecord::from))
            .collect()
    }
}

/// Switches for one evaluation.
#[derive(Debug, Clone, Copy, Default)]
pub struct EvalOptions<'a> {
    /// The policy (levels, waivers, package overrides); default when None.
    pub policy: Option<&'a Policy>,
    /// `--skip ID`.
    pub skip: &'a [String],
    /// `--allow-overrides`.
    pub allow_overrides: bool,
    /// List every changed path in the report (`diff`).
    pub list_changes: bool,
    /// Plan moving /etc to /usr/etc (`--usr-etc`).
    pub usr_etc: bool,
}

/// Diff `target` against `base` and judge it.
pub fn evaluate(
    target: &Target,
    base: &Manifest,
    base_origin: &str,
    command: &str,
    opts: EvalOptions,
) -> Report {
    let default_policy = Policy::default();
    let policy = opts.policy.unwrap_or(&default_policy);
    let packages = target.package_records();
    let pkg_changes = pkgdiff::diff_packages(&base.packages, &packages);
    let diff_opts = DiffOptions {
        compare_selinux: policy.compare_selinux,
    };
    let changes = diff::diff(&base.entries, &target.tree.entries, diff_opts);
    let plan = layout::plan(&PlanInput {
        tree: &target.tree,
        base,
        changes: &changes,
        rpmdb: target.rpmdb.as_ref().map(|d| d.location.as_str()),
        move_etc: opts.usr_etc && !target.etc_in_usr,
        extra_clean: &policy.clean,
    });
    let input = Input {
        base,
        current: &target.tree,
        changes: &changes,
        packages: &pkg_changes,
        plan: &plan,
    };
    let resolve = Resolve {
        allow_overrides: opts.allow_overrides,
        policy,
        skip: opts.skip,
    };
    let findings = checks::run(&input, resolve);
    let mut report = Report::new(command, base_origin.to_string(), findings, pkg_changes);
    report.skipped_mounts = target.tree.mounts.clone();
    report.plan = Some(plan);
    if opts.list_changes {
        report.changes = Some(path_changes(&changes));
    }
    report
}

fn path_changes(changes: &[Change]) -> PathChanges {
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

/// A loaded base reference.
#[derive(Debug)]
pub struct Base {
    /// The reference.
    pub manifest: Manifest,
    /// Where it came from, for messages and the report.
    pub origin: String,
    /// SHA-256 of the file, recorded by finalize.
    pub sha256: String,
}

/// Load the base reference: `--base FILE` (a host path, read at the CLI
/// edge), else the default location inside the root.
pub fn load_base(root: &Dir, base: Option<&std::path::Path>) -> Result<Base> {
    let (bytes, origin) = match base {
        Some(file) => (rootfs::read_ambient_file(file)?, file.display().to_string()),
        None => {
            let origin = manifest::DEFAULT_MANIFEST.to_string();
            let bytes = root.read(&origin[1..]).with_context(|| {
                format!(
                    "{origin}: no base reference in the root. Run `ostree-finalize snapshot` \
                     on the pristine base image (or pass --base FILE)"
                )
            })?;
            (bytes, origin)
        }
    };
    use sha2::Digest;
    Ok(Base {
        manifest: Manifest::from_json(&bytes, &origin)?,
        sha256: hex::encode(sha2::Sha256::digest(&bytes)),
        origin,
    })
}
