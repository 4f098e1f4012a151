//! Where an image's files live: a layout directory, or a tar archive read
//! in place.
//!
//! An archive is never unpacked: one pass over its headers (seeking past
//! the data) records where each member's bytes are, and blobs are then
//! read straight from the archive file with positional reads. Symlinks and
//! hardlinks between members (`docker save` links repeated layers) are
//! followed inside the archive only. Compressed archives are refused with
//! a hint: they cannot be read in place.
//!
//! Host paths are opened through [`crate::rootfs::open_root`], the crate's
//! one use of ambient authority; names inside a layout directory are
//! opened through its [`Dir`], so a symlink in the layout cannot leave it.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use cap_std::fs::Dir;

/// The most bytes of JSON (index, manifest, config) read into memory.
pub const MAX_JSON: u64 = 64 << 20;

/// How many links between archive members are followed.
const MAX_LINKS: u32 = 16;

/// A readable blob and its size in bytes.
pub type Blob = (Box<dyn Read + Send>, u64);

/// An image's files.
#[derive(Debug)]
pub enum Source {
    /// A directory (`oci:`).
    Dir {
        /// The directory.
        dir: Dir,
        /// How users named it, for messages.
        name: String,
    },
    /// A tar file (`oci-archive:`, `docker-archive:`).
    Archive(Archive),
    /// An image opened through skopeo's image proxy ([`super::proxy`]);
    /// its blobs are named by digest (`sha256:HEX`).
    Proxy(Proxied),
}

/// An image opened through skopeo's image proxy.
#[derive(Debug)]
pub struct Proxied {
    /// The running proxy.
    pub proxy: std::sync::Arc<super::proxy::Proxy>,
    /// The proxy's handle on the image.
    pub image: usize,
    /// The reference, for messages.
    pub name: String,
    /// Blob sizes the manifest gives, by digest (`sha256:HEX`).
    pub sizes: HashMap<String, u64>,
}

/// An indexed tar archive.
#[derive(Debug)]
pub struct Archive {
    file: Arc<std::fs::File>,
    members: HashMap<String, Member>,
    name: String,
}

#[derive(Debug, Clone)]
enum Member {
    Data { offset: u64, size: u64 },
    Symlink(String),
    Hardlink(String),
}

impl Source {
    /// Open a layout directory.
    pub fn open_dir(path: &Path) -> Result<Source> {
        let name = path.display().to_string();
        let dir = crate::rootfs::open_root(path)
            .with_context(|| format!("{name}: cannot open the image layout directory"))?;
        Ok(Source::Dir { dir, name })
    }

    /// Open and index an archive file.
    pub fn open_archive(path: &Path) -> Result<Source> {
        let name = path.display().to_string();
        let file = open_host_file(path).with_context(|| format!("{name}: cannot open"))?;
        let members =
            index(&file).with_context(|| format!("{name}: not a readable tar archive"))?;
        Ok(Source::Archive(Archive {
            file: Arc::new(file),
            members,
            name,
        }))
    }

    /// `LOCATION/NAME`, for messages.
    pub fn describe(&self, name: &str) -> String {
        let base = match self {
            Source::Dir { name, .. } => name,
            Source::Archive(a) => &a.name,
            Source::Proxy(p) => return format!("{} (blob {name})", p.name),
        };
        format!("{}/{name}", base.trim_end_matches('/'))
    }

    /// Whether a file exists.
    pub fn exists(&self, name: &str) -> bool {
        match self {
            Source::Dir { dir, .. } => dir.metadata(name).is_ok_and(|m| m.is_file()),
            Source::Archive(a) => a.resolve(name).is_ok(),
            Source::Proxy(_) => false,
        }
    }

    /// Open a file for streaming.
    pub fn open(&self, name: &str) -> Result<Blob> {
        let opened = match self {
            Source::Dir { dir, .. } => dir.open(name).map_err(anyhow::Error::from).and_then(|f| {
                let f = f.into_std();
                let meta = f.metadata()?;
                if !meta.is_file() {
                    bail!("not a regular file");
                }
                Ok((Box::new(f) as Box<dyn Read + Send>, meta.len()))
            }),
            Source::Archive(a) => a.resolve(name).map(|(offset, size)| {
                let reader = SpanReader {
                    file: Arc::clone(&a.file),
                    pos: offset,
                    end: offset + size,
                };
                (Box::new(reader) as Box<dyn Read + Send>, size)
            }),
            Source::Proxy(p) => {
                let size = p.sizes.get(name).copied();
                p.proxy
                    .blob(p.image, name, size)
                    .map(|reader| (Box::new(reader) as Box<dyn Read + Send>, size.unwrap_or(0)))
            }
        };
        opened.with_context(|| format!("{}: cannot open", self.describe(name)))
    }

    /// Read a small file (JSON) whole, refusing more than [`MAX_JSON`].
    pub fn read_small(&self, name: &str) -> Result<Vec<u8>> {
        let (reader, size) = self.open(name)?;
        if size > MAX_JSON {
            bail!(
                "{}: {size} bytes, more than the {MAX_JSON} allowed for image metadata",
                self.describe(name)
            );
        }
        let mut out = Vec::with_capacity(size as usize);
        reader
            .take(MAX_JSON)
            .read_to_end(&mut out)
            .with_context(|| format!("{}: cannot read", self.describe(name)))?;
        Ok(out)
    }
}

impl Archive {
    /// Find a member's data, following links inside the archive.
    fn resolve(&self, name: &str) -> Result<(u64, u64)> {
        let mut current = normalize(name);
        for _ in 0..=MAX_LINKS {
            match self.members.get(&current) {
                None => bail!("no such member in the archive"),
                Some(Member::Data { offset, size }) => return Ok((*offset, *size)),
                Some(Member::Hardlink(target)) => current = target.clone(),
                Some(Member::Symlink(target)) => {
                    let dir = current.rsplit_once('/').map_or("", |(d, _)| d);
                    current = if target.starts_with('/') {
                        normalize(target)
                    } else {
                        normalize(&format!("{dir}/{target}"))
                    };
                }
            }
        }
        bail!("too many links between archive members")
    }
}

/// A member name as a clean relative path: no `.`, `..` or empty parts.
fn normalize(name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// Open a host file named on the command line through its parent
/// directory, so the one ambient call stays in `rootfs`.
fn open_host_file(path: &Path) -> Result<std::fs::File> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Some(file_name) = path.file_name() else {
        bail!("not a file name");
    };
    let dir = crate::rootfs::open_root(parent)?;
    let file = dir.open(file_name)?.into_std();
    if !file.metadata()?.is_file() {
        bail!("not a regular file");
    }
    Ok(file)
}

/// One pass over the archive's headers, seeking past the data.
fn index(file: &std::fs::File) -> Result<HashMap<String, Member>> {
    let mut magic = [0u8; 6];
    let n = file.read_at(&mut magic, 0)?;
    if let Some(kind) = super::stream::compression_name(&magic[..n]) {
        bail!(
            "the archive is {kind}-compressed; decompress it first (lint reads archives in \
             place and cannot seek in a compressed stream)"
        );
    }
    let mut archive = tar::Archive::new(file);
    let mut members = HashMap::new();
    for entry in archive.entries_with_seek()? {
        let entry = entry?;
        let name = normalize(&String::from_utf8_lossy(&entry.path_bytes()));
        let kind = entry.header().entry_type();
        let link = || {
            entry
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default()
        };
        let member = if kind.is_file() {
            Member::Data {
                offset: entry.raw_file_position(),
                size: entry.size(),
            }
        } else if kind.is_symlink() {
            Member::Symlink(link())
        } else if kind.is_hard_link() {
            Member::Hardlink(normalize(&link()))
        } else {
            continue;
        };
        members.insert(name, member);
    }
    Ok(members)
}

/// Reads `[pos, end)` of a shared file with positional reads.
struct SpanReader {
    file: Arc<std::fs::File>,
    pos: u64,
    end: u64,
}

impl Read for SpanReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside a member",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_are_normalized_inside_the_archive() {
        assert_eq!(normalize("./blobs/sha256/ab"), "blobs/sha256/ab");
        assert_eq!(normalize("/x/../../index.json"), "index.json");
        assert_eq!(normalize("a//b/./c"), "a/b/c");
    }

    #[test]
    fn archive_members_and_links_are_read_in_place() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "a/layer.tar", &b"hello"[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "b/layer.tar", "../a/layer.tar")
            .unwrap();
        let bytes = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.tar");
        std::fs::write(&path, bytes).unwrap();
        let src = Source::open_archive(&path).unwrap();
        for name in ["a/layer.tar", "./b/layer.tar"] {
            assert_eq!(src.read_small(name).unwrap(), b"hello");
        }
        assert!(src.exists("b/layer.tar"));
        let err = format!("{:#}", src.open("c").err().unwrap());
        assert!(err.contains("x.tar/c"), "{err}");
    }
}
