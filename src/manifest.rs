//! The base reference: what `snapshot` records and `finalize` compares with.
//!
//! One [`Entry`] per path (type, mode, owner, size, content digest, symlink
//! target, xattrs, owning packages) plus the rpm package set. The file is
//! JSON with a top-level `version`; a manifest written by a newer tool is
//! refused rather than half understood.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The manifest format this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Where the tool keeps its own state inside an image. Never scanned.
pub const STATE_DIR: &str = "/usr/lib/ostree-finalize";

/// Where finalize's record lives inside the image (see [`crate::record`]).
pub const RECORD: &str = "/usr/lib/ostree-finalize/record.json";

/// Default location of the base reference inside the root.
pub const DEFAULT_MANIFEST: &str = "/usr/lib/ostree-finalize/base.json";

/// The kind of a filesystem object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A character device.
    Char,
    /// A block device.
    Block,
    /// A named pipe.
    Fifo,
    /// A unix socket.
    Socket,
}

impl Kind {
    /// Short human name, as used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::File => "regular file",
            Kind::Dir => "directory",
            Kind::Symlink => "symlink",
            Kind::Char => "character device",
            Kind::Block => "block device",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
        }
    }

    /// Device nodes, fifos and sockets: what ostree cannot store.
    pub fn is_special(self) -> bool {
        matches!(self, Kind::Char | Kind::Block | Kind::Fifo | Kind::Socket)
    }
}

/// Bytes stored as lowercase hex (digests, xattr values).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hex(pub Vec<u8>);

impl Serialize for Hex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        hex::decode(text.as_bytes())
            .map(Hex)
            .map_err(serde::de::Error::custom)
    }
}

/// A 32-byte content digest (SHA-256 or ostree's checksum), stored inline
/// so an entry costs no allocation for it; written as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Checksum(pub [u8; 32]);

impl Checksum {
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Checksum {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 64];
        let text = hex::encode_to_slice(self.0, &mut buf)
            .ok()
            .and_then(|()| std::str::from_utf8(&buf).ok())
            .ok_or_else(|| serde::ser::Error::custom("hex encoding failed"))?;
        s.serialize_str(text)
    }
}

impl<'de> Deserialize<'de> for Checksum {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(text.as_bytes(), &mut out)
            .map_err(|e| serde::de::Error::custom(format!("not a 64-digit hex digest: {e}")))?;
        Ok(Checksum(out))
    }
}

/// One path of a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Absolute path in the image, encoded by [`crate::path::encode`].
    pub path: String,
    /// File type.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Permission bits including setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Size in bytes of a regular file; 0 otherwise.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    /// SHA-256 of a regular file's content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Checksum>,
    /// ostree's content checksum (SHA-256 over the file header — uid, gid,
    /// mode, symlink target, xattrs — and the content), for a base read
    /// from an ostree commit. In a tree compared with such a base, a base
    /// regular file's checksum computed from the *base's* header and this
    /// file's content, so it equals the base's exactly when the content is
    /// unchanged (see [`crate::ostree`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ostree: Option<Checksum>,
    /// Symlink target, encoded like paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Device number of a device node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdev: Option<u64>,
    /// Extended attributes (overlay internals excluded).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, Hex>,
    /// Indexes into [`Manifest::packages`] of the packages owning this path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<u32>,
    /// The text of a small `/etc` file, kept so `etc-modified` can show a diff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Entry {
    /// A path with its type, mode and owner; no size, digest, target,
    /// xattrs, owners or text yet (the reader fills in what it knows).
    pub fn new(path: String, kind: Kind, mode: u32, uid: u32, gid: u32) -> Entry {
        Entry {
            path,
            kind,
            mode,
            uid,
            gid,
            size: 0,
            sha256: None,
            ostree: None,
            target: None,
            rdev: None,
            xattrs: BTreeMap::new(),
            owners: Vec::new(),
            text: None,
        }
    }
}

/// A base package as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageRecord {
    /// `name-[epoch:]version-release.arch`.
    pub nevra: String,
    /// Package name.
    pub name: String,
    /// Epoch, when the header has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u32>,
    /// Version.
    pub version: String,
    /// Release.
    pub release: String,
    /// Architecture.
    pub arch: String,
    /// The header's SHA256HEADER, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256header: Option<String>,
}

impl From<&crate::rpmdb::Package> for PackageRecord {
    fn from(p: &crate::rpmdb::Package) -> Self {
        PackageRecord {
            nevra: p.nevra(),
            name: p.name.clone(),
            epoch: p.epoch,
            version: p.version.clone(),
            release: p.release.clone(),
            arch: p.arch.clone(),
            sha256header: p.sha256header.clone(),
        }
    }
}

/// The recorded base.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version; see [`FORMAT_VERSION`].
    pub version: u32,
    /// The tool and version that wrote it.
    pub generator: String,
    /// Where the rpmdb was found, if the base has one.
    #[serde(default)]
    pub rpmdb: Option<String>,
    /// Base packages, sorted.
    #[serde(default)]
    pub packages: Vec<PackageRecord>,
    /// Every path, sorted by path.
    pub entries: Vec<Entry>,
    /// Why the base's package set is unknown, when it is (an ostree base
    /// whose rpm database the build wrote in place, with no package list
    /// in the commit). Never recorded: a fact of this run.
    #[serde(skip)]
    pub packages_unknown: Option<String>,
}

impl Manifest {
    /// The base reference of a walked tree (its entries, sorted) and its
    /// rpm database: each entry names the packages that own it.
    pub fn record(mut entries: Vec<Entry>, rpmdb: Option<crate::rpmdb::RpmDb>) -> Manifest {
        let mut packages = Vec::new();
        if let Some(db) = &rpmdb {
            let mut owners: std::collections::HashMap<String, Vec<u32>> = Default::default();
            for (i, pkg) in db.packages.iter().enumerate() {
                packages.push(PackageRecord::from(pkg));
                for file in &pkg.files {
                    let (path, _) = crate::path::encode(file.as_bytes());
                    owners.entry(path).or_default().push(i as u32);
                }
            }
            for e in &mut entries {
                if let Some(o) = owners.remove(&e.path) {
                    e.owners = o;
                }
            }
        }
        Manifest {
            version: FORMAT_VERSION,
            generator: format!("ostree-finalize {}", env!("CARGO_PKG_VERSION")),
            rpmdb: rpmdb.map(|d| d.location),
            packages,
            entries,
            packages_unknown: None,
        }
    }

    /// Serialize to compact JSON.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        let mut out = serde_json::to_vec(self)?;
        out.push(b'\n');
        Ok(out)
    }

    /// Parse, refusing newer formats and anything malformed. `origin` names
    /// the file in error messages.
    pub fn from_json(bytes: &[u8], origin: &str) -> Result<Manifest> {
        #[derive(Deserialize)]
        struct Probe {
            version: Option<u32>,
        }
        let probe: Probe = serde_json::from_slice(bytes)
            .with_context(|| format!("{origin}: not a base reference (invalid JSON)"))?;
        match probe.version {
            None => bail!("{origin}: not a base reference (no \"version\" field)"),
            Some(v) if v > FORMAT_VERSION => bail!(
                "{origin}: base reference format {v} was written by a newer ostree-finalize; \
                 this one reads up to format {FORMAT_VERSION}. Upgrade ostree-finalize."
            ),
            Some(0) => bail!("{origin}: base reference format 0 is not valid"),
            Some(_) => {}
        }
        let mut manifest: Manifest = serde_json::from_slice(bytes)
            .with_context(|| format!("{origin}: corrupt base reference"))?;
        manifest.validate(origin)?;
        // Growth by doubling leaves up to half the vector unused.
        manifest.entries.shrink_to_fit();
        Ok(manifest)
    }

    /// Structural checks that serde cannot express.
    fn validate(&self, origin: &str) -> Result<()> {
        for pair in self.entries.windows(2) {
            if pair[0].path >= pair[1].path {
                bail!(
                    "{origin}: corrupt base reference: entries not sorted or duplicated at {}",
                    pair[1].path
                );
            }
        }
        for e in &self.entries {
            if !e.path.starts_with('/') || crate::path::decode(&e.path).is_none() {
                bail!("{origin}: corrupt base reference: bad path {:?}", e.path);
            }
            if let Some(&bad) = e
                .owners
                .iter()
                .find(|&&i| i as usize >= self.packages.len())
            {
                bail!(
                    "{origin}: corrupt base reference: {} names package #{bad}, which does not exist",
                    e.path
                );
            }
            if e.kind == Kind::File && e.sha256.is_none() && e.ostree.is_none() {
                bail!(
                    "{origin}: corrupt base reference: {} has no valid sha256",
                    e.path
                );
            }
        }
        Ok(())
    }

    /// Look a path up (entries are sorted).
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// The NEVRA of the first package owning `entry`, if any.
    pub fn owner_of(&self, entry: &Entry) -> Option<&str> {
        entry
            .owners
            .first()
            .and_then(|&i| self.packages.get(i as usize))
            .map(|p| p.nevra.as_str())
    }
}

impl Manifest {
    /// A base of these entries (sorted here), no packages: for unit tests,
    /// and empty for structural mode.
    pub(crate) fn of_entries(mut entries: Vec<Entry>) -> Manifest {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Manifest {
            version: FORMAT_VERSION,
            generator: String::new(),
            rpmdb: None,
            packages: vec![],
            entries,
            packages_unknown: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest::of_entries(vec![Entry::new("/".into(), Kind::Dir, 0o755, 0, 0)])
    }

    #[test]
    fn an_entry_stays_compact() {
        // 133k of these per tree, two trees in memory: every word counts
        // against the 150 MB budget for a whole OS.
        assert!(
            std::mem::size_of::<Entry>() <= 224,
            "{}",
            std::mem::size_of::<Entry>()
        );
    }

    #[test]
    fn round_trips() {
        let m = sample();
        let back = Manifest::from_json(&m.to_json().unwrap(), "m").unwrap();
        assert_eq!(back.entries, m.entries);
    }

    #[test]
    fn newer_format_is_refused_with_a_clear_message() {
        let err = Manifest::from_json(br#"{"version": 99, "entries": []}"#, "/x/base.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/x/base.json"), "{err}");
        assert!(err.contains("newer ostree-finalize"), "{err}");
    }

    #[test]
    fn garbage_and_unknown_fields_are_errors_naming_the_file() {
        for bad in [
            &b"not json"[..],
            br#"{"entries": []}"#,
            br#"{"version":1,"generator":"x","entries":[],"surprise":1}"#,
            br#"{"version":1,"generator":"x","entries":[{"path":"/a","type":"file","mode":420,"uid":0,"gid":0}]}"#,
            br#"{"version":1,"generator":"x","entries":[{"path":"/a","type":"dir","mode":420,"uid":0,"gid":0,"owners":[3]}]}"#,
        ] {
            let err = format!("{:#}", Manifest::from_json(bad, "/m.json").unwrap_err());
            assert!(err.contains("/m.json"), "{err}");
        }
    }
}
