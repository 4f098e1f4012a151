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
//!
//! Every other containers-image transport is read through skopeo's image
//! proxy ([`super::proxy`]); its reference is kept as written and handed to
//! skopeo, which parses it:
//!
//! - `docker://HOST/NAME[:TAG|@DIGEST]`: a registry;
//! - `containers-storage:[[DRIVER@ROOT+RUNROOT]]NAME`: podman's and
//!   buildah's local storage;
//! - `docker-daemon:NAME[:TAG]`: a Docker daemon;
//! - `dir:PATH`: skopeo's own directory layout.

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
    /// `docker://` — a registry, through skopeo.
    Docker,
    /// `containers-storage:` — podman's and buildah's storage, through
    /// skopeo.
    ContainersStorage,
    /// `docker-daemon:` — a Docker daemon, through skopeo.
    DockerDaemon,
    /// `dir:` — skopeo's directory layout, through skopeo.
    Dir,
}

impl Transport {
    /// The transport's prefix, without the colon.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Oci => "oci",
            Transport::OciArchive => "oci-archive",
            Transport::DockerArchive => "docker-archive",
            Transport::Docker => "docker",
            Transport::ContainersStorage => "containers-storage",
            Transport::DockerDaemon => "docker-daemon",
            Transport::Dir => "dir",
        }
    }

    /// Whether images in this transport are read through skopeo's image
    /// proxy rather than natively.
    pub fn proxied(self) -> bool {
        !matches!(
            self,
            Transport::Oci | Transport::OciArchive | Transport::DockerArchive
        )
    }
}

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// How the image is stored.
    pub transport: Transport,
    /// The layout directory or archive file on the host; for a proxied
    /// transport ([`Transport::proxied`]), everything after `TRANSPORT:`,
    /// as skopeo takes it (`//HOST/NAME:TAG` for `docker:`).
    pub path: PathBuf,
    /// Which image: an OCI `ref.name` tag, or a docker `RepoTags` entry.
    /// `None`: the only image there is (and always, when proxied: the tag
    /// is part of [`Reference::path`]).
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
            "docker" => Transport::Docker,
            "containers-storage" => Transport::ContainersStorage,
            "docker-daemon" => Transport::DockerDaemon,
            "dir" => Transport::Dir,
            "ostree-unverified-registry"
            | "ostree-unverified-image"
            | "ostree-remote-registry"
            | "ostree-remote-image"
            | "ostree-image-signed" => bail!(
                "{text:?}: an rpm-ostree/bootc image reference; lint takes the image it \
                 names in skopeo's syntax: docker://HOST/NAME:TAG for a registry. \
                 Expected {EXPECTED}"
            ),
            _ => bail!("{text:?}: unknown transport {prefix:?}; expected {EXPECTED}"),
        };
        if transport.proxied() {
            return proxied(text, transport, rest);
        }
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

/// A proxied reference: checked only enough to give a clear message here;
/// skopeo parses the rest.
fn proxied(text: &str, transport: Transport, rest: &str) -> Result<Reference> {
    let name = match transport {
        Transport::Docker => match rest.strip_prefix("//") {
            Some(name) => name,
            None => bail!("{text:?}: a registry reference is docker://HOST/NAME[:TAG]"),
        },
        _ => rest,
    };
    if name.is_empty() {
        bail!("{text:?}: the reference names no image; expected {EXPECTED}");
    }
    Ok(Reference {
        transport,
        path: PathBuf::from(rest),
        tag: None,
    })
}

const EXPECTED: &str = "oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG], \
                        or through skopeo docker://HOST/NAME[:TAG], containers-storage:NAME, \
                        docker-daemon:NAME or dir:PATH";

impl Reference {
    /// For a `docker://` reference, the registry host (with its port):
    /// the part before the first `/`, when it names a host (it has a `.`
    /// or a `:`, or is `localhost`), as containers-image decides.
    pub fn registry(&self) -> Option<String> {
        if self.transport != Transport::Docker {
            return None;
        }
        let name = self.path.to_str()?.strip_prefix("//")?;
        let (first, _) = name.split_once('/')?;
        (first.contains('.') || first.contains(':') || first == "localhost")
            .then(|| first.to_string())
    }
}

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
    fn proxied_references_are_kept_as_written() {
        for (text, transport) in [
            ("docker://127.0.0.1:5000/os/derived:1", Transport::Docker),
            (
                "containers-storage:[vfs@/s+/r]localhost/os:latest",
                Transport::ContainersStorage,
            ),
            ("docker-daemon:os:latest", Transport::DockerDaemon),
            ("dir:/tmp/x", Transport::Dir),
        ] {
            let r = Reference::parse(text).unwrap();
            assert_eq!(r.transport, transport);
            assert!(transport.proxied());
            assert_eq!(r.tag, None);
            assert_eq!(r.to_string(), text);
        }
        let r = Reference::parse("docker://127.0.0.1:5000/os/derived:1").unwrap();
        assert_eq!(r.registry().as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(Reference::parse("docker://os").unwrap().registry(), None);
        assert!(!Transport::Oci.proxied());
    }

    #[test]
    fn bad_references_are_explained() {
        for (bad, hint) in [
            ("out", "not an image reference"),
            ("oci:", "no path"),
            ("oci:dir:", "empty tag"),
            ("tarball:x", "unknown transport"),
            ("docker:x/y", "docker://HOST/NAME"),
            ("containers-storage:", "names no image"),
            (
                "ostree-unverified-registry:registry.example/os:1",
                "docker://HOST/NAME:TAG",
            ),
        ] {
            let err = Reference::parse(bad).unwrap_err().to_string();
            assert!(err.contains(hint), "{bad}: {err}");
        }
    }
}
