//! `snapshot`: record the pristine base (every path, the package set, and
//! which package owns which path).

use std::collections::HashMap;

use crate::engine::Target;
use crate::manifest::{FORMAT_VERSION, Manifest, PackageRecord};

/// Turn a walked tree and its rpm database into a base reference.
pub fn manifest_from(target: Target) -> Manifest {
    let mut entries = target.tree.entries;
    let mut packages = Vec::new();
    if let Some(db) = &target.rpmdb {
        let mut owners: HashMap<String, Vec<u32>> = HashMap::new();
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
        rpmdb: target.rpmdb.map(|d| d.location),
        packages,
        entries,
        packages_unknown: None,
    }
}
