//! `snapshot`: record the pristine base (every path, the package set, and
//! which package owns which path).

use std::collections::HashMap;

use anyhow::Result;
use cap_std::fs::Dir;

use crate::engine;
use crate::manifest::{FORMAT_VERSION, Manifest, PackageRecord};
use crate::rootfs;

/// Build the base reference of the tree under `root`.
pub fn build(root: &Dir) -> Result<Manifest> {
    let tree = rootfs::walk(root, &engine::walk_options(true))?;
    let db = crate::rpmdb::read(root)?;
    let mut entries = tree.entries;
    let mut packages = Vec::new();
    if let Some(db) = &db {
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
    Ok(Manifest {
        version: FORMAT_VERSION,
        generator: format!("ostree-finalize {}", env!("CARGO_PKG_VERSION")),
        rpmdb: db.map(|d| d.location),
        packages,
        entries,
    })
}
