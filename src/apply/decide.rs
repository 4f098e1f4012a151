//! The add-only rules: what a config may do to the tree, and a
//! `base-modified` finding for each thing it may not. Decisions only: this
//! module plans no write and imports nothing of the planner, which asks it
//! about every path and every write.
//!
//! - A config may not write where the image carries nothing (API
//!   filesystems, the ostree repository), into runtime directories
//!   (finalize empties them and ostree never deploys them), or the files
//!   ostree-finalize manages itself: `refusal`, an error (exit 2).
//! - Outside `/etc` and `/var`, a write that would replace or change base
//!   content (its type, contents, symlink target, mode or owner) is a
//!   `base-modified` finding, and so is removing base content anywhere:
//!   `AddOnly`. The findings are judged by the normal policy.
//! - Base content is what the base reference says; without one, whatever
//!   the tree has at the path now.

use std::collections::BTreeMap;

use anyhow::Result;
use sha2::Digest;

use super::config::Loc;
use super::tree::{GENERATED_SYSUSERS, GENERATED_TMPFILES, Node, TreeView};
use crate::checks::{self, Finding};
use crate::manifest::{Kind, Manifest};
use crate::path::is_within;
use crate::zones::{self, Zone, zone};

/// Paths the tool itself manages: a config may not write them.
fn reserved(path: &str) -> bool {
    is_within(path, crate::manifest::STATE_DIR)
        || [
            GENERATED_TMPFILES,
            GENERATED_SYSUSERS,
            zones::GENERATED_TMPFILES,
            zones::GENERATED_SYSUSERS,
        ]
        .contains(&path)
}

/// Why a config may not write the resolved absolute path `resolved` at
/// all, or `None` when it may.
pub(super) fn refusal(resolved: &str) -> Option<String> {
    let top = format!("/{}", resolved.split('/').nth(1).unwrap_or_default());
    if crate::rootfs::NEVER_SCANNED.contains(&top.as_str()) {
        return Some(format!(
            "{resolved} is not part of the image ({top} is not carried)"
        ));
    }
    if zone(resolved) == Zone::Runtime {
        return Some(format!(
            "{resolved} is in a runtime directory: finalize empties it and ostree never \
             deploys it"
        ));
    }
    if reserved(resolved) {
        return Some(format!("{resolved} is managed by ostree-finalize"));
    }
    None
}

fn sha(bytes: &[u8]) -> Vec<u8> {
    sha2::Sha256::digest(bytes).to_vec()
}

/// The add-only rule for one run: the base to compare with, and the
/// `base-modified` findings so far (one per path, the first kept).
pub(super) struct AddOnly<'a> {
    view: &'a dyn TreeView,
    base: Option<&'a Manifest>,
    findings: BTreeMap<String, Finding>,
}

impl<'a> AddOnly<'a> {
    /// No findings yet. `base`: the base reference, when the tree has one.
    pub(super) fn new(view: &'a dyn TreeView, base: Option<&'a Manifest>) -> Self {
        AddOnly {
            view,
            base,
            findings: BTreeMap::new(),
        }
    }

    /// The findings, at their default level (deny), sorted.
    pub(super) fn into_findings(self) -> Vec<Finding> {
        let mut findings: Vec<Finding> = self.findings.into_values().collect();
        checks::sort(&mut findings);
        findings
    }

    /// A `base-modified` finding when removing the symlink at `path`
    /// (disabling or unmasking a unit) removes base content, even in /etc.
    pub(super) fn check_removal(&mut self, at: &Loc, path: &str) -> Result<()> {
        let in_base = match self.base {
            Some(m) => m.get(path).is_some(),
            None => self.base_ref(path)?.is_some(),
        };
        if in_base {
            self.finding(path, format!("{at} would remove the base's {path}"));
        }
        Ok(())
    }

    /// What the base has at `path`, for the add-only rule: from the base
    /// reference when there is one, else whatever the tree has there now
    /// (every existing path counts as base). `/etc` and `/var` are exempt.
    fn base_ref(&self, path: &str) -> Result<Option<(Node, Option<Vec<u8>>)>> {
        if matches!(zone(path), Zone::Etc | Zone::Var | Zone::Runtime) {
            return Ok(None);
        }
        if let Some(m) = self.base {
            return Ok(m.get(path).map(|e| {
                (
                    Node {
                        kind: e.kind,
                        mode: e.mode,
                        uid: e.uid,
                        gid: e.gid,
                        target: e.target.clone(),
                    },
                    e.sha256.map(|h| h.0.to_vec()),
                )
            }));
        }
        let Some(n) = self.view.node(path)? else {
            return Ok(None);
        };
        let digest = if n.kind == Kind::File {
            Some(sha(&self.view.read(path)?))
        } else {
            None
        };
        Ok(Some((n, digest)))
    }

    /// A `base-modified` finding when `planned` differs from base content.
    pub(super) fn check_base(
        &mut self,
        at: &Loc,
        path: &str,
        planned: &Node,
        content: Option<&[u8]>,
    ) -> Result<()> {
        let Some((base, digest)) = self.base_ref(path)? else {
            return Ok(());
        };
        let mut aspects = Vec::new();
        if base.kind != planned.kind {
            aspects.push(format!(
                "a {} would replace the base {}",
                planned.kind.name(),
                base.kind.name()
            ));
        } else {
            if let Some(c) = content
                && digest.as_deref() != Some(sha(c).as_slice())
            {
                aspects.push("contents".to_string());
            }
            if base.target != planned.target {
                aspects.push("symlink target".to_string());
            }
            if base.kind != Kind::Symlink && base.mode != planned.mode {
                aspects.push(format!("mode {:04o} → {:04o}", base.mode, planned.mode));
            }
            if (base.uid, base.gid) != (planned.uid, planned.gid) {
                aspects.push(format!(
                    "owner {}:{} → {}:{}",
                    base.uid, base.gid, planned.uid, planned.gid
                ));
            }
        }
        if aspects.is_empty() {
            return Ok(());
        }
        self.finding(
            path,
            format!(
                "{at} would change base content {path}: {}",
                aspects.join(", ")
            ),
        );
        Ok(())
    }

    fn finding(&mut self, path: &str, message: String) {
        let Some(check) = checks::lookup("base-modified") else {
            return;
        };
        let package = self.base.and_then(|m| {
            let e = m.get(path)?;
            let i = *e.owners.first()? as usize;
            Some(m.packages.get(i)?.nevra.clone())
        });
        let f =
            Finding::new(check, Some(path.to_string()), message).with_package(package.as_deref());
        self.findings.entry(path.to_string()).or_insert(f);
    }
}
