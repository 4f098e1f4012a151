//! Command-line flags (clap derive), parsed once into [`Settings`].
//!
//! The same binary is installed as `ostree-finalize` and as ostree's
//! external command `/usr/libexec/libostree/ext/ostree-container`, which
//! ostree runs with argv `container finalize …`; [`normalize_argv`] maps
//! that onto `ostree-finalize finalize …`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use crate::policy::RuleArgs;
pub use crate::report::{Format, OutputArgs};

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
    /// Record the base even when the structural checks deny it (no /sysroot,
    /// /var/run a directory, /etc beside /usr/etc, …), with a warning.
    /// Default: a base that fails them is refused (exit 1, nothing written).
    #[arg(long)]
    pub force: bool,
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
