//! Runs a parsed command and decides the exit code (0, 1 or 2) in one place.

use std::process::ExitCode;

use anyhow::Result;

use crate::checks::CHECKS;
use crate::cli::{CheckArgs, Cli, Command, ListFormat, SnapshotArgs};
use crate::engine::{self, EvalOptions, Target};
use crate::layout;
use crate::manifest;
use crate::record::{RECORD, Record};
use crate::report::Verdict;
pub use crate::report::emit::{
    EXIT_ERROR, EXIT_FAIL, EXIT_PASS, emit, emit_report, exit_code, print_report,
};
use crate::rootfs;

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
    let target = Target::from_dir(&root)?;
    // A base that breaks the structural rules must never become the
    // reference silently: every derived image would inherit the fault.
    let findings = crate::checks::root_layout(&target.tree);
    let denied = findings
        .iter()
        .any(|f| f.level == crate::checks::Level::Deny);
    for f in &findings {
        eprintln!(
            "ostree-finalize snapshot: {} {}: {}",
            f.level.as_str(),
            f.check,
            f.message
        );
    }
    if denied && !args.force {
        eprintln!(
            "ostree-finalize snapshot: {} is not a sound base (denied above); nothing \
             was recorded. Fix the base, or pass --force to record it anyway.",
            args.root.display()
        );
        return Ok(EXIT_FAIL);
    }
    if denied {
        eprintln!(
            "ostree-finalize snapshot: warning: recording {} although the structural \
             checks deny it (--force); images derived from it inherit these faults",
            args.root.display()
        );
    }
    let m = crate::snapshot::manifest_from(target);
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
    let base = engine::find_base(&root, args.base.as_deref())?;
    let policy = crate::policy::load(Some(&root), args.rules.policy.as_deref())?;
    let opts = EvalOptions {
        policy: Some(&policy),
        skip: &args.rules.skip,
        allow_overrides: args.rules.allow_overrides,
        list_changes: command == "diff",
        usr_etc: args.usr_etc,
    };
    let mut target = Target::from_dir_for(&root, base.as_ref())?;
    if let Some(base) = &base {
        target.map_usr_etc(&base.manifest);
    }
    let origin = base.as_ref().map_or(engine::NO_BASE, |b| b.origin.as_str());
    let manifest = base.as_ref().map(|b| &b.manifest);
    let mut report = engine::evaluate(&target, manifest, origin, command, opts);
    if args.rules.fatal_warnings {
        report.make_warnings_fatal();
    }
    let writes = command == "finalize" && !args.dry_run;
    if writes && report.verdict == Verdict::Pass {
        if let Some(plan) = &report.plan {
            layout::apply(&root, plan)?;
        }
        let usr_etc = args.usr_etc || target.etc_in_usr;
        let record = Record::new(&report, base.as_ref().map(|b| b.sha256.as_str()), usr_etc);
        rootfs::write_atomic(&root, RECORD, record.to_json().as_bytes())?;
    }
    emit_report(&report, &args.output)?;
    Ok(exit_code(&report))
}
