//! Runs a parsed command and decides the exit code (0, 1 or 2) in one place.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Result;

use crate::checks::CHECKS;
use crate::cli::{CheckArgs, Cli, Command, Format, ListFormat, OutputArgs, SnapshotArgs};
use crate::engine::{self, EvalOptions, Target};
use crate::layout;
use crate::manifest;
use crate::record::{RECORD, Record};
use crate::report::{self, HumanOptions, MarkdownOptions, Report, Verdict};
use crate::rootfs;

/// Exit code: passed.
pub const EXIT_PASS: u8 = 0;
/// Exit code: forbidden changes found.
pub const EXIT_FAIL: u8 = 1;
/// Exit code: the tool could not do its job.
pub const EXIT_ERROR: u8 = 2;

/// Run and map the outcome to an exit code.
pub fn main(cli: Cli) -> ExitCode {
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ostree-finalize: error: {e:#}");
            if let Some(hint) = hint(&e) {
                eprintln!("ostree-finalize: hint: {hint}");
            }
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// What to do about an error whose cause says nothing about the fix.
fn hint(e: &anyhow::Error) -> Option<&'static str> {
    let io_kind = e
        .chain()
        .find_map(|c| c.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind);
    match io_kind {
        Some(std::io::ErrorKind::StorageFull) => Some(
            "the filesystem is full. Free space and run the same command again: \
             a rewrite stopped part-way resumes where it stopped, and no /var data is lost",
        ),
        _ => None,
    }
}

fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Snapshot(args) => snapshot(&args),
        Command::Finalize(args) => check(&args, "finalize"),
        Command::Diff(args) => check(&args, "diff"),
        Command::Lint(args) => crate::lint::run(&args),
        Command::Apply(args) => crate::apply::run(&args),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "ostree-finalize", &mut buf);
            emit(&String::from_utf8_lossy(&buf))?;
            Ok(EXIT_PASS)
        }
        Command::Man => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut buf)?;
            emit(&String::from_utf8_lossy(&buf))?;
            Ok(EXIT_PASS)
        }
        Command::ListChecks(args) => {
            let text = match args.format {
                ListFormat::Json => serde_json::to_string_pretty(CHECKS)? + "\n",
                ListFormat::Yaml => serde_yaml::to_string(CHECKS)?,
            };
            emit(&text)?;
            Ok(EXIT_PASS)
        }
    }
}

fn snapshot(args: &SnapshotArgs) -> Result<u8> {
    let root = rootfs::open_root(&args.root)?;
    let m = crate::snapshot::manifest_from(Target::from_dir(&root)?);
    let bytes = m.to_json()?;
    let place = match &args.output {
        Some(out) => {
            rootfs::write_ambient_file(out, &bytes)?;
            out.display().to_string()
        }
        None => {
            rootfs::write_atomic(&root, manifest::DEFAULT_MANIFEST, &bytes)?;
            format!("{} in {}", manifest::DEFAULT_MANIFEST, args.root.display())
        }
    };
    eprintln!(
        "ostree-finalize snapshot: recorded {} paths and {} packages to {place}",
        m.entries.len(),
        m.packages.len()
    );
    Ok(EXIT_PASS)
}

fn check(args: &CheckArgs, command: &str) -> Result<u8> {
    let root = rootfs::open_root(&args.root)?;
    let base = engine::load_base(&root, args.base.as_deref())?;
    let policy = crate::policy::load(Some(&root), args.rules.policy.as_deref())?;
    let opts = EvalOptions {
        policy: Some(&policy),
        skip: &args.rules.skip,
        allow_overrides: args.rules.allow_overrides,
        list_changes: command == "diff",
        usr_etc: args.usr_etc,
    };
    let mut target = Target::from_dir_against(&root, &base)?;
    target.map_usr_etc(&base.manifest);
    let mut report = engine::evaluate(&target, &base.manifest, &base.origin, command, opts);
    if args.rules.fatal_warnings {
        report.make_warnings_fatal();
    }
    let writes = command == "finalize" && !args.dry_run;
    if writes && report.verdict == Verdict::Pass {
        if let Some(plan) = &report.plan {
            layout::apply(&root, plan)?;
        }
        let usr_etc = args.usr_etc || target.etc_in_usr;
        let record = Record::new(&report, &base.sha256, usr_etc);
        rootfs::write_atomic(&root, RECORD, record.to_json().as_bytes())?;
    }
    emit_report(&report, &args.output)?;
    Ok(exit_code(&report))
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
        rootfs::write_ambient_file(file, report::render_json(report).as_bytes())?;
    }
    if let Some(file) = &output.report_sarif {
        rootfs::write_ambient_file(file, report::render_sarif(report).as_bytes())?;
    }
    let max_items = (!output.no_truncate).then_some(10);
    let markdown = || {
        report::render_markdown(
            report,
            MarkdownOptions {
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
            report::render_human(report, HumanOptions { color, max_items })
        }
        Format::Json => report::render_json(report),
        Format::Sarif => report::render_sarif(report),
        Format::Markdown => markdown(),
        Format::Github => report::render_github(report),
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
fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
