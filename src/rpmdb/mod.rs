//! rpm database readers: find the tree's rpmdb and turn it into packages and
//! file ownership. (Interface stub: being filled in.)

use anyhow::Result;
use cap_std::fs::Dir;

/// One installed package, as read from a header blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// `NAME` tag.
    pub name: String,
    /// `EPOCH` tag; `None` when the header has none.
    pub epoch: Option<u32>,
    /// `VERSION` tag.
    pub version: String,
    /// `RELEASE` tag.
    pub release: String,
    /// `ARCH` tag (`noarch` etc.); empty for `gpg-pubkey` pseudo packages.
    pub arch: String,
    /// `SHA256HEADER` as lowercase hex, when present.
    pub sha256header: Option<String>,
    /// Absolute paths of the files the package owns (dirnames + basenames).
    pub files: Vec<String>,
}

/// The rpm database found in a tree.
#[derive(Debug, Clone)]
pub struct RpmDb {
    /// Where it was found, absolute inside the root (`/usr/lib/sysimage/rpm`).
    pub location: String,
    /// The packages, sorted by NEVRA.
    pub packages: Vec<Package>,
}

/// Find and read the rpm database of the tree rooted at `root`.
pub fn read(_root: &Dir) -> Result<Option<RpmDb>> {
    anyhow::bail!("rpmdb reader not implemented yet")
}
