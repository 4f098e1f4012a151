//! How a report leaves the tool: the output flags, the report files, stdout,
//! and the exit code its verdict maps to.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};

use super::{Report, Verdict};
use crate::rootfs;

/// Exit code: passed.
pub const EXIT_PASS: u8 = 0;
/// Exit code: forbidden changes found.
pub const EXIT_FAIL: u8 = 1;
/// Exit code: the tool could not do its job.
pub const EXIT_ERROR: u8 = 2;

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

/// The exit code a report's verdict maps to.
pub fn exit_code(report: &Report) -> u8 {
    match report.verdict {
        Verdict::Pass => EXIT_PASS,
        Verdict::Fail => EXIT_FAIL,
    }
}

/// Write the report files asked for, then the report on stdout.
pub fn emit_report(report: &Report, output: &OutputArgs) -> Result<()> {
    if let Some(file) = &output.report_json {
        rootfs::write_ambient_file(file, super::render_json(report).as_bytes())?;
    }
    if let Some(file) = &output.report_sarif {
        rootfs::write_ambient_file(file, super::render_sarif(report).as_bytes())?;
    }
    let max_items = (!output.no_truncate).then_some(10);
    let markdown = || {
        super::render_markdown(
            report,
            super::MarkdownOptions {
                max_rows: max_items,
            },
        )
    };
    if let Some(file) = &output.report_markdown {
        rootfs::write_ambient_file(file, markdown().as_bytes())?;
    }
    let text = match output.format {
        Format::Human => {
            let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            super::render_human(report, super::HumanOptions { color, max_items })
        }
        Format::Json => super::render_json(report),
        Format::Sarif => super::render_sarif(report),
        Format::Markdown => markdown(),
        Format::Github => super::render_github(report),
    };
    emit(&text)
}

/// Render a report to stdout in the chosen format, with default options.
pub fn print_report(report: &Report, format: Format) -> Result<()> {
    emit_report(
        report,
        &OutputArgs {
            format,
            ..OutputArgs::default()
        },
    )
}

/// Print to stdout; a closed pipe (`| head`) is not an error.
pub fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
