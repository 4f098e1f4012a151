//! What is judged: a tree and its rpm database ([`Target`]), walked from a
//! directory by the walk's rules ([`walk_options`]). Image layers are read
//! into the same form by [`crate::oci`]; the base a target is compared
//! with is loaded by [`crate::base`].

use anyhow::Result;
use cap_std::fs::Dir;

use crate::manifest::{self, Kind, Manifest, PackageRecord};
use crate::rootfs::{self, Tree, WalkOptions};
use crate::rpmdb::{self, RpmDb};

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

    /// Walk with `opts` and read the tree's rpm database.
    pub fn walk(root: &Dir, opts: &WalkOptions) -> Result<Target> {
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
