//! Where the base reference comes from, and loading it: a manifest written
//! by `snapshot`, an ostree commit, or none (structural mode). See
//! DESIGN.md, "Where the base reference comes from".

use anyhow::Result;
use cap_std::fs::Dir;

use crate::manifest::{self, Manifest};
use crate::rootfs::{self, WalkOptions};
use crate::target::{Target, walk_options};

impl Target {
    /// Walk a directory tree for comparison with `base`: against an ostree
    /// commit, base files are hashed the way ostree checksums them (see
    /// [`crate::ostree`]); otherwise as [`Target::from_dir`].
    pub fn from_dir_against(root: &Dir, base: &Base) -> Result<Target> {
        let mut opts = walk_options();
        opts.ostree = base
            .ostree
            .clone()
            .map(|f| f as std::sync::Arc<dyn rootfs::HashPrefix>);
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
}

/// The report's base when there is none: structural mode.
pub const NO_BASE: &str = "none (structural checks only)";

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
