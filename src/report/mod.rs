//! One report model, several renderers: human (build logs), JSON, SARIF
//! (code scanning), Markdown (pull-request comments, step summaries) and
//! GitHub workflow commands (annotations). Only renderers print.

pub mod emit;
mod github;
mod human;
mod json;
mod markdown;
mod sarif;

use serde::Serialize;

use crate::checks::{Finding, Level};
use crate::layout::Plan;
use crate::pkgdiff::PackageChanges;

pub use emit::{Format, OutputArgs};
pub use github::render as render_github;
pub use human::{HumanOptions, render as render_human};
pub use json::render as render_json;
pub use markdown::{MarkdownOptions, render as render_markdown};
pub use sarif::{render as render_sarif, sarif_level};

/// Version of the JSON report shape.
pub const REPORT_VERSION: u32 = 1;

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No deny finding.
    Pass,
    /// At least one deny finding.
    Fail,
}

/// Counts per level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Deny findings.
    pub deny: usize,
    /// Warnings.
    pub warn: usize,
    /// Info findings.
    pub info: usize,
}

/// Path-level changes, for `diff`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PathChanges {
    /// Paths the build added.
    pub added: Vec<String>,
    /// Base paths that changed.
    pub modified: Vec<String>,
    /// Base paths that are gone.
    pub removed: Vec<String>,
}

/// How the base was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FoundBy {
    /// `--base-image REF`.
    BaseImageFlag,
    /// `--base FILE` or `--base ostree:REPO[:REF]`.
    BaseFlag,
    /// The image's `org.opencontainers.image.base.name` annotation,
    /// checked against its `base.digest`.
    Annotation,
    /// The base reference recorded in the image or tree (`snapshot`'s
    /// base.json, or the commit of its ostree repository).
    Recorded,
}

impl FoundBy {
    /// The id, as JSON has it.
    pub fn as_str(self) -> &'static str {
        match self {
            FoundBy::BaseImageFlag => "base-image-flag",
            FoundBy::BaseFlag => "base-flag",
            FoundBy::Annotation => "annotation",
            FoundBy::Recorded => "recorded",
        }
    }
}

/// Which base was used, and how it was found (`lint`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaseSource {
    /// The base: an image reference, a file, or an ostree commit.
    pub reference: String,
    /// How it was found.
    pub found_by: FoundBy,
}

/// What a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Report format version.
    pub version: u32,
    /// `finalize`, `diff` or `lint`.
    pub command: String,
    /// Which base reference was used.
    pub base: String,
    /// Which base was used and how it was found (`lint` fills this in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_source: Option<BaseSource>,
    /// Pass or fail.
    pub verdict: Verdict,
    /// Counts per level.
    pub summary: Counts,
    /// Every finding, sorted.
    pub findings: Vec<Finding>,
    /// Package changes.
    pub packages: PackageChanges,
    /// Path changes (only `diff` fills this in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<PathChanges>,
    /// Mount points left alone (bind mounts of the build runtime).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_mounts: Vec<String>,
    /// The verdict failed on warnings alone (`--fatal-warnings`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fatal_warnings: bool,
    /// The layout rewrite planned (applied by `finalize` on a pass).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
}

impl Report {
    /// `--fatal-warnings`: a warning fails the verdict too.
    pub fn make_warnings_fatal(&mut self) {
        if self.summary.warn > 0 {
            self.verdict = Verdict::Fail;
            self.fatal_warnings = true;
        }
    }

    /// Build a report; the verdict and counts follow from the findings.
    pub fn new(
        command: &str,
        base: String,
        findings: Vec<Finding>,
        packages: PackageChanges,
    ) -> Report {
        let mut summary = Counts::default();
        for f in &findings {
            match f.level {
                Level::Deny => summary.deny += 1,
                Level::Warn => summary.warn += 1,
                Level::Info => summary.info += 1,
            }
        }
        Report {
            version: REPORT_VERSION,
            command: command.to_string(),
            base,
            base_source: None,
            verdict: if summary.deny > 0 {
                Verdict::Fail
            } else {
                Verdict::Pass
            },
            summary,
            findings,
            packages,
            changes: None,
            skipped_mounts: Vec::new(),
            fatal_warnings: false,
            plan: None,
        }
    }
}
