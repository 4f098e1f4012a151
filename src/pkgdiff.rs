//! Pure: (base packages, current packages) → what was added, removed,
//! upgraded, downgraded or replaced, compared with real rpmvercmp.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::Serialize;

use crate::manifest::PackageRecord;

/// One package that changed version or build.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PackageChange {
    /// Package name.
    pub name: String,
    /// Architecture.
    pub arch: String,
    /// The base NEVRA.
    pub from: String,
    /// The current NEVRA.
    pub to: String,
}

/// The package-level diff. Every list is sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PackageChanges {
    /// NEVRAs of packages the build added.
    pub added: Vec<String>,
    /// NEVRAs of base packages that are gone.
    pub removed: Vec<String>,
    /// Base packages replaced by a newer EVR.
    pub upgraded: Vec<PackageChange>,
    /// Base packages replaced by an older EVR.
    pub downgraded: Vec<PackageChange>,
    /// Same NEVRA, different header (rebuilt or tampered package).
    pub replaced: Vec<PackageChange>,
}

impl PackageChanges {
    /// Did any base package change?
    pub fn base_changed(&self) -> bool {
        !(self.removed.is_empty()
            && self.upgraded.is_empty()
            && self.downgraded.is_empty()
            && self.replaced.is_empty())
    }
}

/// rpmvercmp order of two packages' epoch:version-release.
pub fn evr_cmp(a: &PackageRecord, b: &PackageRecord) -> Ordering {
    crate::rpmdb::compare_evr(
        (a.epoch, &a.version, &a.release),
        (b.epoch, &b.version, &b.release),
    )
}

/// Compare package sets, pairing by name and arch.
pub fn diff_packages(base: &[PackageRecord], current: &[PackageRecord]) -> PackageChanges {
    type Group<'a> = (Vec<&'a PackageRecord>, Vec<&'a PackageRecord>);
    let mut groups: BTreeMap<(&str, &str), Group> = BTreeMap::new();
    for p in base {
        groups.entry((&p.name, &p.arch)).or_default().0.push(p);
    }
    for p in current {
        groups.entry((&p.name, &p.arch)).or_default().1.push(p);
    }
    let mut out = PackageChanges::default();
    for ((name, arch), (mut before, mut after)) in groups {
        // Same NEVRA on both sides: unchanged, or rebuilt if the headers differ.
        before.retain(|b| {
            let Some(pos) = after.iter().position(|a| a.nevra == b.nevra) else {
                return true;
            };
            let a = after.remove(pos);
            if let (Some(x), Some(y)) = (&b.sha256header, &a.sha256header)
                && x != y
            {
                out.replaced.push(change(name, arch, b, a));
            }
            false
        });
        before.sort_by(|x, y| evr_cmp(x, y));
        after.sort_by(|x, y| evr_cmp(x, y));
        // gpg-pubkey "packages" are independent keys, never versions of one another.
        let pairs = if name == "gpg-pubkey" {
            0
        } else {
            before.len().min(after.len())
        };
        for (b, a) in before.iter().zip(after.iter()).take(pairs) {
            match evr_cmp(a, b) {
                Ordering::Less => out.downgraded.push(change(name, arch, b, a)),
                _ => out.upgraded.push(change(name, arch, b, a)),
            }
        }
        out.removed
            .extend(before[pairs..].iter().map(|p| p.nevra.clone()));
        out.added
            .extend(after[pairs..].iter().map(|p| p.nevra.clone()));
    }
    out.added.sort();
    out.removed.sort();
    out.upgraded.sort();
    out.downgraded.sort();
    out.replaced.sort();
    out
}

fn change(name: &str, arch: &str, from: &PackageRecord, to: &PackageRecord) -> PackageChange {
    PackageChange {
        name: name.to_string(),
        arch: arch.to_string(),
        from: from.nevra.clone(),
        to: to.nevra.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, epoch: Option<u32>, v: &str, r: &str, sha: &str) -> PackageRecord {
        let e = epoch.map(|e| format!("{e}:")).unwrap_or_default();
        PackageRecord {
            nevra: format!("{name}-{e}{v}-{r}.x86_64"),
            name: name.into(),
            epoch,
            version: v.into(),
            release: r.into(),
            arch: "x86_64".into(),
            sha256header: Some(sha.into()),
        }
    }

    #[test]
    fn unchanged_sets_have_no_changes() {
        let base = vec![pkg("a", None, "1", "1", "x")];
        assert_eq!(diff_packages(&base, &base), PackageChanges::default());
    }

    #[test]
    fn upgrade_downgrade_remove_add_replace() {
        let base = vec![
            pkg("up", None, "1.9", "1", "a"),
            pkg("down", None, "1.0", "1", "b"),
            pkg("gone", None, "1", "1", "c"),
            pkg("same", None, "1", "1", "d"),
        ];
        let current = vec![
            pkg("up", None, "1.10", "1", "e"),
            pkg("down", None, "1.0~rc1", "1", "f"),
            pkg("new", None, "1", "1", "g"),
            pkg("same", None, "1", "1", "tampered"),
        ];
        let d = diff_packages(&base, &current);
        assert_eq!(d.added, ["new-1-1.x86_64"]);
        assert_eq!(d.removed, ["gone-1-1.x86_64"]);
        assert_eq!(d.upgraded[0].to, "up-1.10-1.x86_64");
        assert_eq!(d.downgraded[0].to, "down-1.0~rc1-1.x86_64");
        assert_eq!(d.replaced[0].from, "same-1-1.x86_64");
        assert!(d.base_changed());
    }

    #[test]
    fn epoch_wins_over_version() {
        let base = vec![pkg("k", Some(2), "0.1", "1", "a")];
        let current = vec![pkg("k", Some(1), "9.9", "1", "b")];
        assert_eq!(diff_packages(&base, &current).downgraded.len(), 1);
    }

    #[test]
    fn an_added_second_kernel_is_an_addition() {
        let base = vec![pkg("kernel", None, "6.1", "1", "a")];
        let current = vec![
            pkg("kernel", None, "6.1", "1", "a"),
            pkg("kernel", None, "6.2", "1", "b"),
        ];
        let d = diff_packages(&base, &current);
        assert_eq!(d.added, ["kernel-6.2-1.x86_64"]);
        assert!(!d.base_changed());
    }
}
