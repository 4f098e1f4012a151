//! Image references in skopeo's transport syntax. Pure: parsing only.
//!
//! - `oci:DIR[:TAG]`: an OCI image layout directory; `TAG` is matched
//!   against the `org.opencontainers.image.ref.name` annotation.
//! - `oci-archive:FILE[:TAG]`: the same layout, as a tar file.
//! - `docker-archive:FILE[:NAME:TAG]`: what `docker save` (and
//!   `skopeo copy … docker-archive:`) writes; the optional reference picks
//!   one image by its `RepoTags` entry when the archive holds several.
//!
//! As in skopeo, the path ends at the first `:` after the transport, so a
//! path cannot contain a colon.

use std::fmt;
use std::path::PathBuf;

use anyhow::{Result, bail};

/// The supported transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `oci:` — an OCI image layout directory.
    Oci,
    /// `oci-archive:` — an OCI image layout in a tar file.
    OciArchive,
    /// `docker-archive:` — a `docker save` tar file.
    DockerArchive,
}

impl Transport {
    /// The transport's prefix, without the colon.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Oci => "oci",
            Transport::OciArchive => "oci-archive",
            Transport::DockerArchive => "docker-archive",
        }
    }
}

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// How the image is stored.
    pub transport: Transport,
    /// The layout directory or archive file on the host.
    pub path: PathBuf,
    /// Which image: an OCI `ref.name` tag, or a docker `RepoTags` entry.
    /// `None`: the only image there is.
    pub tag: Option<String>,
}

impl Reference {
    /// Parse `TRANSPORT:PATH[:TAG]`. Errors name the reference and list
    /// the transports that are understood.
    pub fn parse(text: &str) -> Result<Reference> {
        let Some((prefix, rest)) = text.split_once(':') else {
            bail!("{text:?}: not an image reference; expected {}", EXPECTED);
        };
        let transport = match prefix {
            "oci" => Transport::Oci,
            "oci-archive" => Transport::OciArchive,
            "docker-archive" => Transport::DockerArchive,
            "docker" | "containers-storage" | "docker-daemon" | "dir" => bail!(
                "{text:?}: the {prefix}: transport is not supported (lint reads images \
                 without a registry, daemon or container storage); copy the image with \
                 `skopeo copy {text} oci:DIR:TAG` first. Expected {EXPECTED}"
            ),
            "ostree-unverified-registry"
            | "ostree-unverified-image"
            | "ostree-remote-registry"
            | "ostree-remote-image"
            | "ostree-image-signed" => bail!(
                "{text:?}: an rpm-ostree/bootc image reference; lint reads images without a \
                 registry: copy the image it names with `skopeo copy docker://… oci:DIR:TAG` \
                 first. Expected {EXPECTED}"
            ),
            _ => bail!("{text:?}: unknown transport {prefix:?}; expected {EXPECTED}"),
        };
        let (path, tag) = match rest.split_once(':') {
            Some((path, tag)) => (path, Some(tag)),
            None => (rest, None),
        };
        if path.is_empty() {
            bail!("{text:?}: the reference names no path; expected {EXPECTED}");
        }
        if tag.is_some_and(str::is_empty) {
            bail!("{text:?}: empty tag after the path; leave out the colon for the only image");
        }
        Ok(Reference {
            transport,
            path: PathBuf::from(path),
            tag: tag.map(str::to_string),
        })
    }
}

const EXPECTED: &str = "oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:NAME:TAG]";

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport.name(), self.path.display())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_paths_and_tags() {
        let r = Reference::parse("oci:/x/out:derived").unwrap();
        assert_eq!(r.transport, Transport::Oci);
        assert_eq!(r.path, PathBuf::from("/x/out"));
        assert_eq!(r.tag.as_deref(), Some("derived"));
        assert_eq!(r.to_string(), "oci:/x/out:derived");

        let r = Reference::parse("oci-archive:img.tar").unwrap();
        assert_eq!(r.transport, Transport::OciArchive);
        assert_eq!(r.tag, None);

        let r = Reference::parse("docker-archive:d.tar:example.com/os:1").unwrap();
        assert_eq!(r.transport, Transport::DockerArchive);
        assert_eq!(r.path, PathBuf::from("d.tar"));
        assert_eq!(r.tag.as_deref(), Some("example.com/os:1"));
    }

    #[test]
    fn bad_references_are_explained() {
        for (bad, hint) in [
            ("out", "not an image reference"),
            ("oci:", "no path"),
            ("oci:dir:", "empty tag"),
            ("tarball:x", "unknown transport"),
            ("docker://quay.io/x", "not supported"),
            (
                "ostree-unverified-registry:registry.example/os:1",
                "skopeo copy docker://",
            ),
        ] {
            let err = Reference::parse(bad).unwrap_err().to_string();
            assert!(err.contains(hint), "{bad}: {err}");
        }
    }
}
