//! The pipeline shared by `finalize` and `diff`: walk the tree, read its
//! rpmdb, diff both against the base, run the checks, build the report.

use anyhow::Result;
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
        ostree: None,
        read_files: true,
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
    /// Base objects of an ostree base that the build wrote in place
    /// (see [`crate::ostree::written_in_place`]).
    pub in_place: Vec<crate::ostree::InPlace>,
}

impl Target {
    /// Walk a directory tree and read its rpm database.
    pub fn from_dir(root: &Dir) -> Result<Target> {
        Target::walk(root, &walk_options())
    }

    /// Walk a directory tree for comparison with `base`: against an ostree
    /// commit, base files are hashed the way ostree checksums them (see
    /// [`crate::ostree`]); otherwise as [`Target::from_dir`].
    pub fn from_dir_against(root: &Dir, base: &Base) -> Result<Target> {
        let mut opts = walk_options();
        opts.ostree = base.ostree.clone();
        let mut target = Target::walk(root, &opts)?;
        if let (Some(files), Some(repo)) = (&base.ostree, &base.repo) {
            target.in_place = crate::ostree::written_in_place(repo, files, &target.tree.entries)?;
        }
        Ok(target)
    }

    /// Walk a tree that has no base to compare with (structural mode):
    /// names, metadata and the kept text; no file content is read.
    pub fn structural(root: &Dir) -> Result<Target> {
        let opts = WalkOptions {
            read_files: false,
            ..walk_options()
        };
        Target::walk(root, &opts)
    }

    /// Walk a tree for comparison with `base`, or structurally with none.
    pub fn from_dir_for(root: &Dir, base: Option<&Base>) -> Result<Target> {
        match base {
            Some(base) => Target::from_dir_against(root, base),
            None => Target::structural(root),
        }
    }

    fn walk(root: &Dir, opts: &WalkOptions) -> Result<Target> {
        let progress = crate::progress::Progress::start("scanning the tree");
        let tree = rootfs::walk(root, opts)?;
        drop(progress);
        Ok(Target {
            tree,
            rpmdb: rpmdb::read(root)?,
            etc_in_usr: false,
            in_place: Vec::new(),
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

/// The report's base when there is none: structural mode.
pub const NO_BASE: &str = "none (structural checks only)";

/// Diff `target` against `base` and judge it. With no base (structural
/// mode) the whole tree is the image's own: every path counts as added, no
/// package change is reported, the base's links into /var are the tree's
/// own, and checks that need a base do not run (a `no-base-reference`
/// warning says so).
pub fn evaluate(
    target: &Target,
    base: Option<&Manifest>,
    base_origin: &str,
    command: &str,
    opts: EvalOptions,
) -> Report {
    let default_policy = Policy::default();
    let policy = opts.policy.unwrap_or(&default_policy);
    let structural = base.is_none();
    let empty;
    let base = match base {
        Some(base) => base,
        None => {
            empty = Manifest::of_entries(Vec::new());
            &empty
        }
    };
    let packages = target.package_records();
    // A base package set that is unknown is no base to compare with: no
    // package is called added or removed (the warning says why).
    let pkg_changes = match base.packages_unknown {
        _ if structural => pkgdiff::PackageChanges::default(),
        Some(_) => pkgdiff::PackageChanges::default(),
        None => pkgdiff::diff_packages(&base.packages, &packages),
    };
    // What the build wrote in place through the repository's hardlinks
    // changed the base's copy too: the base's text of those paths (read
    // from the object) is the build's. It is the base's only where a
    // prefix of it proves to be (an append), else unknown.
    let scrubbed;
    let base = if target.in_place.is_empty() {
        base
    } else {
        let mut copy = base.clone();
        for group in &target.in_place {
            for path in &group.paths {
                if let Ok(i) = copy.entries.binary_search_by(|e| e.path.as_str().cmp(path)) {
                    copy.entries[i].text = group.base_text.clone();
                }
            }
        }
        scrubbed = copy;
        &scrubbed
    };
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
        in_place: &target.in_place,
        packages_added: &pkg_changes.added,
        keep_logs: &policy.keep_logs,
        packages: target.rpmdb.as_ref().map_or(&[], |d| d.packages.as_slice()),
        structural,
    });
    let input = Input {
        base,
        current: &target.tree,
        changes: &changes,
        packages: &pkg_changes,
        plan: &plan,
        structural,
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
    /// SHA-256 of the file, recorded by finalize; for an ostree commit, the
    /// commit checksum (the SHA-256 of the commit object).
    pub sha256: String,
    /// For an ostree commit: its regular files, which the tree compared
    /// with it must be walked against ([`Target::from_dir_against`]).
    pub ostree: Option<std::sync::Arc<crate::ostree::BaseFiles>>,
    /// For an ostree commit: its repository, whose objects tell what the
    /// build wrote in place.
    pub repo: Option<std::sync::Arc<crate::ostree::repo::Repo>>,
}

/// Load the base reference:
///
/// - `--base ostree:REPO[:REF-OR-CHECKSUM]`: an ostree commit, read from a
///   host repository (see [`crate::ostree`]);
/// - `--base FILE`: a manifest written by `snapshot` (a host path, read at
///   the CLI edge);
/// - else the manifest at the default location inside the root;
/// - else, when `/sysroot/ostree/repo` in the root holds exactly one
///   commit (an ostree-based image), that commit.
pub fn load_base(root: &Dir, base: Option<&std::path::Path>) -> Result<Base> {
    find_base(root, base)?.ok_or_else(|| {
        anyhow::anyhow!(
            "{}: no base reference in the root, and no ostree repository with one commit \
             at {}. Run `ostree-finalize snapshot` on the pristine base image (or pass \
             --base FILE or --base ostree:REPO[:REF])",
            manifest::DEFAULT_MANIFEST,
            crate::ostree::SYSROOT_REPO
        )
    })
}

/// As [`load_base`], but a root with no base reference of its own (and no
/// `--base`) is `None`: judged structurally. A reference that is there but
/// unreadable or malformed is still an error.
pub fn find_base(root: &Dir, base: Option<&std::path::Path>) -> Result<Option<Base>> {
    if let Some(arg) = base
        && let Some(spec) = crate::ostree::Spec::parse(arg.as_os_str())
    {
        return load_ostree(root, &spec?).map(Some);
    }
    let (bytes, origin) = match base {
        Some(file) => (read_base_file(file)?, file.display().to_string()),
        None => {
            let origin = manifest::DEFAULT_MANIFEST.to_string();
            match root.read(&origin[1..]) {
                Ok(bytes) => (bytes, origin),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if let Some((repo, commit)) = crate::ostree::detect(root)? {
                        let label =
                            format!("{}{}", crate::ostree::SCHEME, crate::ostree::SYSROOT_REPO);
                        return ostree_base(root, repo, &commit, &label).map(Some);
                    }
                    return Ok(None);
                }
                Err(e) => {
                    return Err(anyhow::Error::from(e).context(format!("{origin}: cannot read")));
                }
            }
        }
    };
    use sha2::Digest;
    Ok(Some(Base {
        manifest: Manifest::from_json(&bytes, &origin)?,
        sha256: hex::encode(sha2::Sha256::digest(&bytes)),
        origin,
        ostree: None,
        repo: None,
    }))
}

/// `--base ostree:REPO[:REF-OR-CHECKSUM]`: the commit, read from a host
/// repository, compared with the tree at `root`.
pub fn load_ostree(root: &Dir, spec: &crate::ostree::Spec) -> Result<Base> {
    let opened = crate::ostree::open(spec)?;
    ostree_base(root, opened.repo, &opened.commit, &opened.label)
}

/// Read an ostree commit's tree by the walk's rules ([`walk_options`]),
/// before its package set is chosen: for `lint --image`, which hashes the
/// image's layers against it and then finishes it with the image's own
/// records ([`crate::ostree::CommitBase::finish`]).
pub fn read_ostree(opened: &crate::ostree::Opened) -> Result<crate::ostree::CommitBase> {
    let progress = crate::progress::Progress::start("reading the base commit");
    let base = crate::ostree::read(&opened.repo, &opened.commit, &opened.label, &walk_options())?;
    drop(progress);
    Ok(base)
}

/// Read an ostree commit as the base.
fn ostree_base(
    root: &Dir,
    repo: crate::ostree::repo::Repo,
    commit: &crate::ostree::Checksum,
    label: &str,
) -> Result<Base> {
    let progress = crate::progress::Progress::start("reading the base commit");
    let loaded = crate::ostree::load(root, &repo, commit, label, &walk_options())?;
    drop(progress);
    Ok(Base {
        manifest: loaded.manifest,
        origin: loaded.origin,
        sha256: hex::encode(loaded.commit),
        ostree: Some(loaded.files),
        repo: Some(std::sync::Arc::new(repo)),
    })
}

/// `--base FILE`: a host file named on the command line. A missing file
/// whose name is an image reference (`oci:DIR`, `docker://…`, an
/// rpm-ostree `ostree-unverified-registry:…`) is an error saying so.
pub fn read_base_file(file: &std::path::Path) -> Result<Vec<u8>> {
    if !file.exists()
        && let Some(hint) = misplaced_reference(&file.to_string_lossy())
    {
        anyhow::bail!("--base {}: {hint}", file.display());
    }
    rootfs::read_ambient_file(file)
}

/// What to pass instead when `--base` names an image, not a file.
fn misplaced_reference(arg: &str) -> Option<String> {
    let (prefix, _) = arg.split_once(':')?;
    let image = "--base takes a file written by `ostree-finalize snapshot` or an ostree \
                 commit (ostree:REPO[:REF]);";
    match prefix {
        "oci" | "oci-archive" | "docker-archive" => Some(format!(
            "this is an image reference. {image} lint the image against its base image \
             with `ostree-finalize lint --image REF --base-image {arg}`"
        )),
        "docker" | "containers-storage" | "docker-daemon" | "registry" => Some(format!(
            "this is an image reference. {image} copy the base image with `skopeo copy \
             {arg} oci:DIR:TAG` and lint against it with --base-image oci:DIR:TAG"
        )),
        "ostree-unverified-registry"
        | "ostree-unverified-image"
        | "ostree-remote-registry"
        | "ostree-remote-image"
        | "ostree-image-signed" => Some(format!(
            "this is an ostree container image reference. {image} copy the image it names \
             with `skopeo copy docker://… oci:DIR:TAG` and lint against it with \
             --base-image oci:DIR:TAG, or pass the commit it was made from as \
             --base ostree:REPO[:REF]"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_base_file_named_like_an_image_says_what_to_pass() {
        for (arg, want) in [
            ("oci:/tmp/none:base", "--base-image oci:/tmp/none:base"),
            (
                "docker://registry.example/os:1",
                "skopeo copy docker://registry.example/os:1",
            ),
            (
                "ostree-unverified-registry:registry.example/os:1",
                "--base ostree:REPO[:REF]",
            ),
        ] {
            let err = read_base_file(std::path::Path::new(arg)).unwrap_err();
            assert!(format!("{err:#}").contains(want), "{arg}: {err:#}");
        }
        let err = read_base_file(std::path::Path::new("/nonexistent/base.json")).unwrap_err();
        assert!(format!("{err:#}").contains("cannot read"), "{err:#}");
    }
}
