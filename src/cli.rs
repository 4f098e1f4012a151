//! Command-line flags (clap derive), parsed once into [`Settings`].
//!
//! The same binary is installed as `ostree-finalize` and as ostree's
//! external command `/usr/libexec/libostree/ext/ostree-container`, which
//! ostree runs with argv `container finalize …`; [`normalize_argv`] maps
//! that onto `ostree-finalize finalize …`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// For people and build logs.
    #[default]
    Human,
    /// One JSON object with a top-level "version" (see README).
    Json,
    /// SARIF 2.1.0, for code-scanning tools.
    Sarif,
    /// A Markdown summary for pull-request comments and
    /// $GITHUB_STEP_SUMMARY: verdict, counts, base, one table per check,
    /// package changes.
    Markdown,
    /// GitHub Actions workflow commands (::error/::warning/::notice), one
    /// per finding, so findings show as annotations; then the verdict.
    Github,
}

/// Formats of the check registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// JSON array.
    Json,
    /// YAML sequence.
    Yaml,
}

/// Guardrails and layout fixes for OS images derived from an ostree base.
#[derive(Debug, Parser)]
#[command(name = "ostree-finalize", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Record the pristine base reference (run by the base image maintainer).
    Snapshot(SnapshotArgs),
    /// Diff against the base, enforce add-only, record (last step of a build).
    Finalize(CheckArgs),
    /// Read-only report of every change against the base.
    Diff(CheckArgs),
    /// Write an Ignition or Butane config into the tree, add-only.
    Apply(crate::apply::ApplyArgs),
    /// Check a finished image or rootfs against its base (read-only, for CI).
    Lint(crate::lint::LintArgs),
    /// Print the registry of checks.
    ListChecks(ListChecksArgs),
    /// Print shell completions for SHELL.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

/// Flags of `snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The base tree. Default: `/`.
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// Where to write the reference. Default: /usr/lib/ostree-finalize/base.json
    /// inside the root, where `finalize` and `diff` look for it.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Flags of `finalize` and `diff`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The tree to check. Default: `/`.
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// The base reference: a manifest FILE written by `snapshot`, or
    /// `ostree:REPO[:REF-OR-CHECKSUM]`. Default: /usr/lib/ostree-finalize/base.json
    /// in the root, else the single commit in the root's /sysroot/ostree/repo.
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// Change nothing on disk; print the planned rewrite (finalize only;
    /// diff never writes).
    #[arg(long)]
    pub dry_run: bool,
    /// Also move /etc to /usr/etc, for trees fed straight to `ostree commit`
    /// (container imports map /etc themselves; bootc refuses /usr/etc).
    #[arg(long)]
    pub usr_etc: bool,
    /// Policy and verdict flags.
    #[command(flatten)]
    pub rules: RuleArgs,
    /// Output flags.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Flags that decide the verdict: shared by `finalize`, `diff` and `lint`.
#[derive(Debug, Args, Default)]
pub struct RuleArgs {
    /// Allow deliberate changes to base content: they become recorded
    /// warnings. The image must then carry LABEL ostree.override=true.
    #[arg(long)]
    pub allow_overrides: bool,
    /// The policy file (YAML). Default: /etc/ostree-finalize/policy.yaml in
    /// the tree, else /usr/lib/ostree-finalize/policy.yaml, else none.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Do not run this check (repeatable). See `list-checks`.
    #[arg(long, value_name = "ID")]
    pub skip: Vec<String>,
    /// Fail (exit 1) on warnings too.
    #[arg(long)]
    pub fatal_warnings: bool,
}

/// Where and how the report is written: shared by `finalize`, `diff` and `lint`.
#[derive(Debug, Args, Default)]
pub struct OutputArgs {
    /// Output format on stdout. Default: human.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Also write the JSON report to FILE.
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,
    /// Also write a SARIF 2.1.0 report to FILE (for code-scanning tools).
    #[arg(long, value_name = "FILE")]
    pub report_sarif: Option<PathBuf>,
    /// Also write the Markdown summary to FILE (e.g. "$GITHUB_STEP_SUMMARY",
    /// which it then replaces; append with `--format markdown >>` instead).
    #[arg(long, value_name = "FILE")]
    pub report_markdown: Option<PathBuf>,
    /// Show every item of every check (human and Markdown formats).
    /// Default: at most 10 per check, then "…and N more".
    #[arg(long)]
    pub no_truncate: bool,
}

/// Flags of `list-checks`.
#[derive(Debug, Args)]
pub struct ListChecksArgs {
    /// Output format. Default: json.
    #[arg(long, value_enum, default_value_t = ListFormat::Json)]
    pub format: ListFormat,
}

/// The name ostree's external-command dispatch runs us as.
pub const OSTREE_EXT_NAME: &str = "ostree-container";

/// Map `ostree-container container finalize …` (how ostree runs external
/// commands) onto `ostree-finalize finalize …`. Other argv pass through.
pub fn normalize_argv(mut argv: Vec<OsString>) -> Vec<OsString> {
    let invoked = argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|n| n == OSTREE_EXT_NAME);
    if invoked && argv.get(1).is_some_and(|a| a == "container") {
        argv.remove(1);
        argv[0] = OsString::from("ostree container");
    }
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn ostree_external_command_argv_is_mapped() {
        let argv = normalize_argv(os(&[
            "/usr/libexec/libostree/ext/ostree-container",
            "container",
            "finalize",
            "--dry-run",
        ]));
        let cli = Cli::try_parse_from(argv).unwrap();
        assert!(matches!(cli.command, Command::Finalize(ref a) if a.dry_run));
        let cli = Cli::try_parse_from(os(&[
            "x",
            "finalize",
            "--skip",
            "a",
            "--skip",
            "b",
            "--report-json",
            "r.json",
        ]))
        .unwrap();
        assert!(
            matches!(cli.command, Command::Finalize(ref a) if a.rules.skip == ["a", "b"] && a.output.report_json.is_some())
        );
    }

    #[test]
    fn plain_argv_passes_through() {
        let argv = os(&["ostree-finalize", "diff", "--root", "/x"]);
        assert_eq!(normalize_argv(argv.clone()), argv);
    }
}
