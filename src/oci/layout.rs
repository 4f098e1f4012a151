//! From a reference to an image's config and layer list: the OCI image
//! layout (`index.json`, `blobs/sha256/…`) and `docker save`'s
//! `manifest.json` (the legacy `ID/layer.tar` form and the OCI-style form
//! newer Docker writes, with `blobs/sha256/…` names).
//!
//! Every small blob read (index, manifest, config) is checked against its
//! digest and size before it is believed. Layer blobs are checked while
//! they stream (see [`super::stream`]).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::reference::{Reference, Transport};
use super::source::Source;

/// The annotation that carries an image's tag in an OCI layout.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// One layer to stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The blob's file in the layout or archive.
    pub blob: String,
    /// sha256 (hex) the blob must have, when the format names one.
    pub digest: Option<String>,
    /// Size the blob must have, when the format names one.
    pub size: Option<u64>,
    /// sha256 (hex) of the uncompressed tar, from the config.
    pub diff_id: String,
}

/// What the image's metadata says.
#[derive(Debug, Clone)]
pub struct Located {
    /// `config.Labels`.
    pub labels: BTreeMap<String, String>,
    /// The manifest's annotations (buildah and podman record the base
    /// image there: [`BASE_NAME`], [`BASE_DIGEST`]); none for
    /// `docker-archive:`.
    pub annotations: BTreeMap<String, String>,
    /// The digest of the manifest, `sha256:HEX`, when the format has one.
    pub manifest_digest: Option<String>,
    /// The layers, lowest first.
    pub layers: Vec<Layer>,
}

/// The annotation naming the image a build started `FROM` (no transport).
pub const BASE_NAME: &str = "org.opencontainers.image.base.name";

/// The annotation with the digest of that base image's manifest.
pub const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

/// Read and check the image's metadata.
pub fn locate(source: &Source, reference: &Reference) -> Result<Located> {
    match reference.transport {
        Transport::Oci | Transport::OciArchive => oci(source, reference.tag.as_deref()),
        Transport::DockerArchive => docker(source, reference.tag.as_deref()),
        t => bail!(
            "{reference}: the {}: transport is read through skopeo",
            t.name()
        ),
    }
}

fn oci(source: &Source, tag: Option<&str>) -> Result<Located> {
    if !source.exists("oci-layout") {
        bail!(
            "{}: not an OCI image layout (no oci-layout file)",
            source.describe("")
        );
    }
    let bytes = source.read_small("index.json")?;
    let index = ImageIndex::from_reader(&bytes[..])
        .with_context(|| format!("{}: not an OCI image index", source.describe("index.json")))?;
    let mut desc = pick_tag(index.manifests(), tag, &source.describe("index.json"))?;
    for _ in 0..8 {
        let bytes = fetch(source, &desc)?;
        let name = source.describe(&blob_name(&desc)?);
        if !INDEX_TYPES.contains(&desc.media_type().to_string().as_str()) {
            let manifest = ImageManifest::from_reader(&bytes[..])
                .with_context(|| format!("{name}: not an image manifest"))?;
            let mut located = from_manifest(source, &manifest)?;
            located.manifest_digest = Some(format!("sha256:{}", sha256_of(&desc)?));
            return Ok(located);
        }
        let nested = ImageIndex::from_reader(&bytes[..])
            .with_context(|| format!("{name}: not an image index"))?;
        desc = pick_platform(nested.manifests(), &name)?;
    }
    bail!(
        "{}: image indexes nest too deeply",
        source.describe("index.json")
    )
}

/// The descriptor tagged `tag`, or the only one.
fn pick_tag(manifests: &[Descriptor], tag: Option<&str>, name: &str) -> Result<Descriptor> {
    let tag_of = |d: &Descriptor| {
        d.annotations()
            .as_ref()
            .and_then(|a| a.get(REF_NAME))
            .cloned()
    };
    let tags = || {
        let t: Vec<String> = manifests.iter().filter_map(tag_of).collect();
        if t.is_empty() {
            "none".to_string()
        } else {
            t.join(", ")
        }
    };
    match tag {
        Some(tag) => match manifests.iter().find(|d| tag_of(d).as_deref() == Some(tag)) {
            Some(d) => Ok(d.clone()),
            None => bail!("{name}: no image tagged {tag:?} (tags: {})", tags()),
        },
        None => match manifests {
            [one] => Ok(one.clone()),
            [] => bail!("{name}: the layout holds no image"),
            _ => bail!(
                "{name}: the layout holds {} images; name one with :TAG (tags: {})",
                manifests.len(),
                tags()
            ),
        },
    }
}

/// From a multi-platform index, the manifest for this machine (linux and
/// this CPU), or the only one.
fn pick_platform(manifests: &[Descriptor], name: &str) -> Result<Descriptor> {
    if let [one] = manifests {
        return Ok(one.clone());
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    };
    manifests
        .iter()
        .find(|d| {
            d.platform().as_ref().is_some_and(|p| {
                p.os().to_string() == "linux" && p.architecture().to_string() == arch
            })
        })
        .cloned()
        .with_context(|| format!("{name}: no image for linux/{arch} in this index"))
}

fn from_manifest(source: &Source, manifest: &ImageManifest) -> Result<Located> {
    let config_name = source.describe(&blob_name(manifest.config())?);
    let bytes = fetch(source, manifest.config())?;
    let config = parse_config(&bytes, &config_name)?;
    let diff_ids = diff_ids(&config, manifest.layers().len(), &config_name)?;
    let mut layers = Vec::new();
    for (desc, diff_id) in manifest.layers().iter().zip(diff_ids) {
        layers.push(Layer {
            blob: blob_name(desc)?,
            digest: Some(sha256_of(desc)?.to_string()),
            size: Some(desc.size()),
            diff_id,
        });
    }
    Ok(Located {
        labels: labels(&config),
        annotations: annotations(manifest),
        manifest_digest: None,
        layers,
    })
}

/// An image opened through skopeo's image proxy: its OCI manifest and
/// config as the proxy gives them (the config checked against the
/// manifest's digest). From `containers-storage:`, layers are fetched by
/// `diff_id` (the storage keeps them uncompressed); elsewhere by the
/// manifest's digest and size.
pub fn proxied(
    opened: &super::proxy::Opened,
    reference: &Reference,
    proxy: &super::proxy::Proxy,
) -> Result<Located> {
    let name = reference.to_string();
    let manifest = ImageManifest::from_reader(&opened.manifest[..])
        .with_context(|| format!("{name}: the proxy's manifest is not an OCI image manifest"))?;
    let config_name = format!("{name} (config {})", manifest.config().digest());
    let desc = manifest.config();
    if desc.size() > super::source::MAX_JSON {
        bail!(
            "{config_name}: {} bytes, more than the {} allowed for image metadata",
            desc.size(),
            super::source::MAX_JSON
        );
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(
            proxy.blob(
                opened.id,
                &format!("sha256:{}", sha256_of(desc)?),
                Some(desc.size()),
            )?,
            super::source::MAX_JSON,
        ),
        &mut bytes,
    )
    .with_context(|| format!("{config_name}: cannot read it"))?;
    check_digest(&bytes, sha256_of(desc)?, &config_name)?;
    let config = parse_config(&bytes, &config_name)?;
    let diff_ids = diff_ids(&config, manifest.layers().len(), &config_name)?;
    let by_diff_id = reference.transport == Transport::ContainersStorage;
    let mut layers = Vec::new();
    for (desc, diff_id) in manifest.layers().iter().zip(diff_ids) {
        layers.push(if by_diff_id {
            // The size is known only when the manifest names the layer
            // uncompressed (a local build); see `proxy::Proxy::blob`.
            let size = (sha256_of(desc)? == diff_id).then(|| desc.size());
            Layer {
                blob: format!("sha256:{diff_id}"),
                digest: None,
                size,
                diff_id,
            }
        } else {
            Layer {
                blob: format!("sha256:{}", sha256_of(desc)?),
                digest: Some(sha256_of(desc)?.to_string()),
                size: Some(desc.size()),
                diff_id,
            }
        });
    }
    Ok(Located {
        labels: labels(&config),
        annotations: annotations(&manifest),
        manifest_digest: Some(opened.manifest_digest.clone()),
        layers,
    })
}

fn annotations(manifest: &ImageManifest) -> BTreeMap<String, String> {
    manifest
        .annotations()
        .as_ref()
        .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// `docker save`'s manifest.json: one object per image.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerImage {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn docker(source: &Source, tag: Option<&str>) -> Result<Located> {
    let name = source.describe("manifest.json");
    let bytes = source.read_small("manifest.json")?;
    let images: Vec<DockerImage> = serde_json::from_slice(&bytes)
        .with_context(|| format!("{name}: not a docker-archive manifest"))?;
    let tags_of = |i: &DockerImage| i.repo_tags.clone().unwrap_or_default();
    let image = match tag {
        Some(tag) => images
            .iter()
            .find(|i| tags_of(i).iter().any(|t| t == tag))
            .with_context(|| {
                let all: Vec<String> = images.iter().flat_map(tags_of).collect();
                format!("{name}: no image tagged {tag:?} (tags: {})", all.join(", "))
            })?,
        None => match &images[..] {
            [one] => one,
            [] => bail!("{name}: the archive holds no image"),
            _ => bail!(
                "{name}: the archive holds {} images; name one with :NAME:TAG",
                images.len()
            ),
        },
    };
    let config_name = source.describe(&image.config);
    let bytes = source.read_small(&image.config)?;
    if let Some(want) = digest_in_name(&image.config) {
        check_digest(&bytes, want, &config_name)?;
    }
    let config = parse_config(&bytes, &config_name)?;
    let diff_ids = diff_ids(&config, image.layers.len(), &config_name)?;
    let layers = image
        .layers
        .iter()
        .zip(diff_ids)
        .map(|(blob, diff_id)| Layer {
            blob: blob.clone(),
            digest: digest_in_name(blob).map(str::to_string),
            size: None,
            diff_id,
        })
        .collect();
    Ok(Located {
        labels: labels(&config),
        annotations: BTreeMap::new(),
        manifest_digest: None,
        layers,
    })
}

/// The digest a docker-archive member name carries: `blobs/sha256/HEX`
/// (newer Docker) or `HEX.json` (a legacy config).
fn digest_in_name(name: &str) -> Option<&str> {
    let name = name.trim_start_matches("./");
    let hex = name
        .strip_prefix("blobs/sha256/")
        .or_else(|| name.strip_suffix(".json"))?;
    is_sha256_hex(hex).then_some(hex)
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn sha256_of(desc: &Descriptor) -> Result<&str> {
    desc.as_digest_sha256()
        .with_context(|| format!("{}: only sha256 digests are supported", desc.digest()))
}

fn blob_name(desc: &Descriptor) -> Result<String> {
    Ok(format!("blobs/sha256/{}", sha256_of(desc)?))
}

/// Read a small blob named by a descriptor, checking size and digest.
fn fetch(source: &Source, desc: &Descriptor) -> Result<Vec<u8>> {
    let blob = blob_name(desc)?;
    let name = source.describe(&blob);
    let bytes = source.read_small(&blob)?;
    if bytes.len() as u64 != desc.size() {
        bail!(
            "{name}: {} bytes, but the descriptor says {}: the layout is corrupt",
            bytes.len(),
            desc.size()
        );
    }
    check_digest(&bytes, sha256_of(desc)?, &name)?;
    Ok(bytes)
}

fn check_digest(bytes: &[u8], want: &str, name: &str) -> Result<()> {
    let got = hex::encode(Sha256::digest(bytes));
    if got != want {
        bail!("{name}: digest mismatch: expected sha256:{want}, the content is sha256:{got}");
    }
    Ok(())
}

fn parse_config(bytes: &[u8], name: &str) -> Result<ImageConfiguration> {
    ImageConfiguration::from_reader(bytes)
        .with_context(|| format!("{name}: not an image configuration"))
}

/// `rootfs.diff_ids` as hex, one per layer.
fn diff_ids(config: &ImageConfiguration, layers: usize, name: &str) -> Result<Vec<String>> {
    let ids = config.rootfs().diff_ids();
    if ids.len() != layers {
        bail!(
            "{name}: the config lists {} diff_ids for {layers} layers",
            ids.len()
        );
    }
    ids.iter()
        .map(|id| match id.strip_prefix("sha256:") {
            Some(hex) if is_sha256_hex(hex) => Ok(hex.to_string()),
            _ => bail!("{name}: diff_id {id:?} is not a sha256 digest"),
        })
        .collect()
}

fn labels(config: &ImageConfiguration) -> BTreeMap<String, String> {
    config
        .config()
        .as_ref()
        .and_then(|c| c.labels().as_ref())
        .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_in_docker_archive_names() {
        let hex = "a".repeat(64);
        assert_eq!(
            digest_in_name(&format!("blobs/sha256/{hex}")),
            Some(&hex[..])
        );
        assert_eq!(digest_in_name(&format!("{hex}.json")), Some(&hex[..]));
        assert_eq!(digest_in_name("abc/layer.tar"), None);
        assert_eq!(digest_in_name("blobs/sha256/../../x"), None);
    }
}
