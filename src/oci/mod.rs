//! Container images as `lint` reads them: no runtime, no daemon, nothing
//! unpacked to the host.
//!
//! The pipeline, in the order an image meets it:
//!
//! 1. [`mod@reference`] parses skopeo's transport syntax; [`source`] opens
//!    an `oci:` directory or indexes an `oci-archive:` or `docker-archive:`
//!    in place. Every other transport (`docker://`, `containers-storage:`,
//!    `docker-daemon:`, `dir:`) is opened through skopeo's image proxy
//!    ([`proxy`]), one proxy per run ([`Opener`]).
//! 2. [`layout`] reads and verifies the index, manifest and config: the
//!    labels, the manifest's annotations and the layer list with their
//!    digests and `diff_id`s.
//! 3. For each layer, once: [`stream`] decompresses it (detected by magic
//!    bytes) and hashes it, on a second thread; [`guard`] bounds tar
//!    metadata entries; [`layer`] turns the tar
//!    members into entries exactly as [`crate::rootfs::walk`] records files,
//!    hashing contents as they stream, and sets aside the members runtimes
//!    refuse or may read differently ([`layer::Malformed`], reported in
//!    [`Contents::malformed`]); [`merge`] applies the rest, whiteouts and
//!    opaque directories included, to an in-memory tree of metadata.
//! 4. [`Image::read`] turns the merged tree into an
//!    [`crate::target::Target`] (the same walk rules: the tool's state
//!    directory skipped, rpm database directories not entered, API
//!    filesystems never recorded) and reads its rpm database ([`imagedb`])
//!    from the few files kept in a private [`spool`].
//!
//! Against a base read from an ostree commit ([`Image::read_against`]),
//! regular files are hashed the way ostree checksums them, in the same
//! pass ([`against`]).
//!
//! Memory holds the merged metadata, about 350 bytes a path, and never
//! file contents (beside small `/etc` texts); see [`merge::MAX_ENTRIES`] and
//! [`stream::MAX_LAYER_BYTES`] for the limits on hostile input.

pub mod against;
pub mod guard;
pub mod imagedb;
pub mod layer;
pub mod layout;
pub mod merge;
pub mod proxy;
pub mod reference;
pub mod source;
pub mod spool;
pub mod stream;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};

use crate::manifest::{self, Kind};
use crate::path::{is_beneath, is_within};
use crate::rootfs::{NEVER_SCANNED, Tree};
use crate::target::Target;
use merge::Merged;
use reference::{Reference, Transport};
use source::Source;
use spool::Spool;
use stream::LayerStream;

/// Where `finalize` records what it did, inside the image.
pub const RECORD: &str = crate::manifest::RECORD;

/// How layers are read.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// Cap on each layer's decompressed size. Default:
    /// [`stream::MAX_LAYER_BYTES`] (64 GiB).
    pub max_layer_bytes: u64,
    /// Decompress on a second thread while the tar is parsed and hashed.
    /// Default: on.
    pub pipeline: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            max_layer_bytes: stream::MAX_LAYER_BYTES,
            pipeline: true,
        }
    }
}

/// Opens images: natively for `oci:`, `oci-archive:` and
/// `docker-archive:`, else through one skopeo image proxy, started on first
/// use and shared by every image opened here (the image and its base).
#[derive(Debug, Default)]
pub struct Opener {
    opts: proxy::ProxyOptions,
    proxy: Mutex<Option<Arc<proxy::Proxy>>>,
}

impl Opener {
    /// An opener whose proxy uses `opts` (auth and TLS).
    pub fn new(opts: proxy::ProxyOptions) -> Opener {
        Opener {
            opts,
            proxy: Mutex::new(None),
        }
    }

    /// Open an image and verify its metadata.
    pub fn open(&self, reference: &Reference) -> Result<Image> {
        if !reference.transport.proxied() {
            return Image::open(reference);
        }
        let proxy = {
            let mut slot = self.proxy.lock().unwrap_or_else(|e| e.into_inner());
            match &*slot {
                Some(p) => Arc::clone(p),
                None => {
                    let p = Arc::new(proxy::Proxy::start(&self.opts, reference)?);
                    *slot = Some(Arc::clone(&p));
                    p
                }
            }
        };
        let opened = proxy.open(reference)?;
        let located = layout::proxied(&opened, reference, &proxy)?;
        let sizes = located
            .layers
            .iter()
            .filter_map(|l| Some((l.blob.clone(), l.size?)))
            .collect();
        let source = Source::Proxy(source::Proxied {
            proxy,
            image: opened.id,
            name: reference.to_string(),
            sizes,
        });
        Ok(Image::located(reference, located, source))
    }
}

/// An opened image: its metadata read and verified, its layers not yet.
#[derive(Debug)]
pub struct Image {
    /// The reference it was opened by, for messages.
    pub reference: String,
    /// The same, parsed.
    pub parsed: Reference,
    /// The config's labels (`config.Labels`).
    pub labels: BTreeMap<String, String>,
    /// The manifest's annotations (see [`layout::BASE_NAME`]).
    pub annotations: BTreeMap<String, String>,
    /// The digest of the image's manifest (`sha256:HEX`), when the format
    /// has one (not `docker-archive:`).
    pub manifest_digest: Option<String>,
    /// The layers, lowest first.
    pub layers: Vec<layout::Layer>,
    source: Source,
}

/// What the merged layers hold.
#[derive(Debug)]
pub struct Contents {
    /// The tree and rpm database, as `finalize` would see the image.
    pub target: Target,
    /// The bytes of the base reference recorded in the image
    /// (`/usr/lib/ostree-finalize/base.json`), when there is one.
    pub base_reference: Option<Vec<u8>>,
    /// Whether the image has a finalize record
    /// (`/usr/lib/ostree-finalize/record.json`).
    pub finalized: bool,
    /// Read against an ostree base ([`Image::read_against`]): rpm-ostree's
    /// record of the base's rpm database ([`crate::ostree::BASE_DB`]) in
    /// the image, when it has one.
    pub base_db: Option<crate::rpmdb::RpmDb>,
    /// Whether the image carries an ostree repository
    /// ([`crate::ostree::SYSROOT_REPO`]), as ostree-based images do.
    pub ostree_repo: bool,
    /// The members of the layers read that runtimes refuse or may read
    /// differently ([`layer::Malformed`]), lowest layer first, in tar
    /// order; they are not in [`Contents::target`].
    pub malformed: Vec<MalformedMember>,
}

/// A malformed member and the layer it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedMember {
    /// The layer: `sha256:HEX` of its blob as the manifest names it, else
    /// (docker-archive) of its uncompressed tar, the config's `diff_id`.
    pub layer: String,
    /// The layer's place in the image, from 1 (lowest).
    pub index: usize,
    /// The member.
    pub member: layer::Malformed,
}

impl Image {
    /// Open an image and verify its metadata; a proxied transport starts
    /// skopeo's proxy with the default options (see [`Opener`] to share
    /// one, with auth and TLS options).
    pub fn open(reference: &Reference) -> Result<Image> {
        let source = match reference.transport {
            Transport::Oci => Source::open_dir(&reference.path)?,
            Transport::OciArchive | Transport::DockerArchive => {
                Source::open_archive(&reference.path)?
            }
            _ => return Opener::default().open(reference),
        };
        let located = layout::locate(&source, reference)?;
        Ok(Image::located(reference, located, source))
    }

    /// The image `reference` names, with the metadata found for it and
    /// the source its blobs come from.
    fn located(reference: &Reference, located: layout::Located, source: Source) -> Image {
        Image {
            reference: reference.to_string(),
            parsed: reference.clone(),
            labels: located.labels,
            annotations: located.annotations,
            manifest_digest: located.manifest_digest,
            layers: located.layers,
            source,
        }
    }

    /// Check that this image was built `FROM` `base`: the base's layers
    /// (by `diff_id`) are the first layers of this one.
    pub fn check_derived_from(&self, base: &Image) -> Result<()> {
        if base.layers.len() > self.layers.len() {
            bail!(
                "{} was not built FROM {}: the base has {} layers, the image only {}",
                self.reference,
                base.reference,
                base.layers.len(),
                self.layers.len()
            );
        }
        for (i, (b, d)) in base.layers.iter().zip(&self.layers).enumerate() {
            if b.diff_id != d.diff_id {
                bail!(
                    "{} was not built FROM {} (layer {} differs: the base has sha256:{}, \
                     the image sha256:{}). Were the base layers rebuilt or squashed? Lint \
                     against the base the image was really built from.",
                    self.reference,
                    base.reference,
                    i + 1,
                    b.diff_id,
                    d.diff_id
                );
            }
        }
        Ok(())
    }

    /// Stream every layer once and return what the merged image holds.
    pub fn read(&self, opts: &ReadOptions) -> Result<Contents> {
        Ok(self.read_layers(None, opts, None)?.0)
    }

    /// Like [`Image::read`], with regular files hashed against a base read
    /// from an ostree commit, as the walk of a directory does (see
    /// [`against`]), and rpm-ostree's record of the base's rpm database
    /// read ([`Contents::base_db`]).
    pub fn read_against(
        &self,
        base: &against::Against<'_>,
        opts: &ReadOptions,
    ) -> Result<Contents> {
        Ok(self.read_layers(None, opts, Some(base))?.0)
    }

    /// Like [`Image::read`], and also return what the first `base_layers`
    /// layers hold: the base image's contents, without reading its layers
    /// a second time. Use after [`Image::check_derived_from`].
    pub fn read_with_base(
        &self,
        base_layers: usize,
        opts: &ReadOptions,
    ) -> Result<(Contents, Contents)> {
        let (image, base) = self.read_layers(Some(base_layers), opts, None)?;
        match base {
            Some(base) => Ok((image, base)),
            None => bail!("{}: has fewer than {base_layers} layers", self.reference),
        }
    }

    fn read_layers(
        &self,
        checkpoint: Option<usize>,
        opts: &ReadOptions,
        against: Option<&against::Against<'_>>,
    ) -> Result<(Contents, Option<Contents>)> {
        let spool = Spool::new()?;
        let mut merged = Merged::default();
        let mut malformed = Vec::new();
        let mut at_checkpoint = None;
        if checkpoint == Some(0) {
            at_checkpoint = Some(contents(&merged, against, &malformed)?);
        }
        let _progress = crate::progress::Progress::layers(&format!("reading {}", self.reference));
        for (i, layer) in self.layers.iter().enumerate() {
            crate::progress::begin_layer(i + 1, self.layers.len(), layer.size);
            let name = self.source.describe(&layer.blob);
            let found = self
                .read_layer(layer, &mut merged, &spool, opts, against)
                .with_context(|| format!("{name}: layer {} of {}", i + 1, self.reference))?;
            let digest = layer.digest.as_deref().unwrap_or(&layer.diff_id);
            malformed.extend(found.into_iter().map(|member| MalformedMember {
                layer: format!("sha256:{digest}"),
                index: i + 1,
                member,
            }));
            if checkpoint == Some(i + 1) {
                at_checkpoint = Some(contents(&merged, against, &malformed)?);
            }
        }
        let mut image = into_contents(merged, against)?;
        image.malformed = malformed;
        Ok((image, at_checkpoint))
    }

    fn read_layer(
        &self,
        layer: &layout::Layer,
        merged: &mut Merged,
        spool: &Spool,
        opts: &ReadOptions,
        against: Option<&against::Against<'_>>,
    ) -> Result<Vec<layer::Malformed>> {
        let (blob, size) = self.source.open(&layer.blob)?;
        if let Some(want) = layer.size.filter(|&want| want != size) {
            bail!("the blob has {size} bytes, but the manifest says {want}");
        }
        let mut stream = LayerStream::open(blob, opts.pipeline, opts.max_layer_bytes)?;
        merged.begin_layer();
        let malformed = layer::apply_against(&mut stream, merged, spool, against)?;
        let summary = stream.finish()?;
        if let Some(want) = &layer.digest {
            let got = hex::encode(summary.blob_digest);
            if &got != want {
                bail!(
                    "digest mismatch: the manifest says sha256:{want}, the blob is \
                     sha256:{got}; the image is corrupt or was tampered with"
                );
            }
        }
        let got = hex::encode(summary.diff_id);
        if got != layer.diff_id {
            bail!(
                "diff_id mismatch: the config says sha256:{}, the uncompressed layer is \
                 sha256:{got}; the image is corrupt or was tampered with",
                layer.diff_id
            );
        }
        Ok(malformed)
    }
}

/// Whether the walk of a directory would record this path: not under an
/// API filesystem or the tool's state directory, not inside an rpm
/// database directory (see [`crate::engine::walk_options`]).
pub fn recorded(path: &str) -> bool {
    !(NEVER_SCANNED.iter().any(|p| is_within(path, p))
        || is_within(path, manifest::STATE_DIR)
        || crate::zones::RPMDB_DIRS.iter().any(|d| is_beneath(path, d)))
}

/// The merged tree as the walk would see it, its rpm database, the
/// tool's own files and the malformed members so far (a copy: the tree
/// goes on).
fn contents(
    merged: &Merged,
    against: Option<&against::Against<'_>>,
    malformed: &[MalformedMember],
) -> Result<Contents> {
    let nodes = merged
        .iter()
        .map(|(path, node)| (path.clone(), node.clone()));
    let mut out = Extras::of(merged, against)?.finish(nodes, against)?;
    out.malformed = malformed.to_vec();
    Ok(out)
}

/// [`contents`], moving the metadata out of the tree instead of copying it.
fn into_contents(merged: Merged, against: Option<&against::Against<'_>>) -> Result<Contents> {
    let extras = Extras::of(&merged, against)?;
    extras.finish(merged.into_nodes(), against)
}

/// What [`contents`] reads from the tree beside the entries.
struct Extras {
    rpmdb: Option<crate::rpmdb::RpmDb>,
    base_reference: Option<Vec<u8>>,
    finalized: bool,
    base_db: Option<crate::rpmdb::RpmDb>,
    ostree_repo: bool,
}

impl Extras {
    fn of(merged: &Merged, against: Option<&against::Against<'_>>) -> Result<Extras> {
        let rpmdb = imagedb::read(merged)?;
        // rpm-ostree's record of the base's packages, trusted only while
        // it still is the commit's (a build can rewrite it, and under
        // storage that keeps hardlinks rpm -i writes it in place).
        let base_db = match against {
            Some(a) => imagedb::read_in(merged, crate::ostree::BASE_DB)?.filter(|db| {
                a.files.db_unchanged(a.repo, &db.location, |path| {
                    let kept = merged.get(path)?.kept.as_ref()?;
                    std::fs::File::open(kept.as_ref() as &std::path::Path).ok()
                })
            }),
            None => None,
        };
        let ostree_repo = merged
            .get(&format!("{}/config", crate::ostree::SYSROOT_REPO))
            .is_some_and(|n| n.entry.kind == Kind::File);
        let base_reference = match merged.get(manifest::DEFAULT_MANIFEST) {
            Some(node) if node.entry.kind == Kind::File => match &node.kept {
                Some(kept) => Some(std::fs::read(kept.as_ref()).with_context(|| {
                    format!("{}: cannot read it back", manifest::DEFAULT_MANIFEST)
                })?),
                None => None,
            },
            _ => None,
        };
        let finalized = merged
            .get(RECORD)
            .is_some_and(|n| n.entry.kind == Kind::File);
        Ok(Extras {
            rpmdb,
            base_reference,
            finalized,
            base_db,
            ostree_repo,
        })
    }

    /// Filter the entries as the walk records paths, settle their digests
    /// against an ostree base ([`against::Against::settle`]) and build the
    /// result.
    fn finish(
        self,
        all: impl Iterator<Item = (String, merge::Node)>,
        against: Option<&against::Against<'_>>,
    ) -> Result<Contents> {
        // Sized up front: growing by doubling would hold up to twice the
        // entries while the merged tree is still being freed.
        let mut entries = Vec::with_capacity(all.size_hint().0);
        let mut unscanned = Vec::new();
        for (path, node) in all {
            if NEVER_SCANNED.contains(&path.as_str()) {
                let mut e = node.entry;
                e.path = path;
                unscanned.push(e);
                continue;
            }
            if !recorded(&path) {
                continue;
            }
            let mut e = node.entry;
            if let Some(a) = against {
                a.settle(&path, &mut e, node.hashed.as_ref())?;
            }
            e.path = path;
            entries.push(e);
        }
        entries.shrink_to_fit();
        unscanned.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        let tree = Tree {
            entries,
            mounts: Vec::new(),
            unscanned,
        };
        Ok(Contents {
            target: Target {
                tree,
                rpmdb: self.rpmdb,
                etc_in_usr: false,
                in_place: Vec::new(),
            },
            base_reference: self.base_reference,
            finalized: self.finalized,
            base_db: self.base_db,
            ostree_repo: self.ostree_repo,
            malformed: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_follows_the_walk_rules() {
        for (path, want) in [
            ("/", true),
            ("/usr/bin/ls", true),
            ("/proc", false),
            ("/proc/1", false),
            ("/process", true),
            ("/usr/lib/ostree-finalize", false),
            ("/usr/lib/ostree-finalize/base.json", false),
            ("/usr/lib/sysimage/rpm", true),
            ("/usr/lib/sysimage/rpm/rpmdb.sqlite", false),
            ("/sysroot/ostree", false),
        ] {
            assert_eq!(recorded(path), want, "{path}");
        }
    }
}
