//! The finalize record: what finalize decided and did, written into the
//! image for CI and audits. Only stable facts go in, so finalizing twice
//! writes the same record.

use serde::Serialize;

use crate::checks::Finding;
use crate::pkgdiff::PackageChanges;
use crate::report::{Report, Verdict};

pub use crate::manifest::RECORD;

/// Record format version.
pub const RECORD_VERSION: u32 = 1;

/// The record.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// Format version.
    pub version: u32,
    /// The tool and version that wrote it.
    pub generator: String,
    /// Always `pass`: finalize writes nothing on a failing verdict.
    pub verdict: Verdict,
    /// SHA-256 of the base reference used (for an ostree commit, its
    /// checksum); null when there was none (structural mode).
    pub base_sha256: Option<String>,
    /// Changes to base content that were allowed, and by what.
    pub overrides: Vec<Finding>,
    /// Package changes.
    pub packages: PackageChanges,
    /// Files the layout rewrite generated.
    pub generated: Vec<String>,
    /// Whether /etc was moved to /usr/etc.
    pub usr_etc: bool,
}

impl Record {
    /// Build the record from a passing report.
    pub fn new(report: &Report, base_sha256: Option<&str>, usr_etc: bool) -> Record {
        Record {
            version: RECORD_VERSION,
            generator: format!("ostree-finalize {}", env!("CARGO_PKG_VERSION")),
            verdict: report.verdict,
            base_sha256: base_sha256.map(str::to_string),
            overrides: report
                .findings
                .iter()
                .filter(|f| f.allowed_by.is_some())
                .cloned()
                .collect(),
            packages: report.packages.clone(),
            generated: report
                .plan
                .as_ref()
                .map(|p| p.generated.clone())
                .unwrap_or_default(),
            usr_etc,
        }
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        // Plain data: serializing cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}
