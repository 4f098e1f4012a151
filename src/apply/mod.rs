//! `apply`: bake an Ignition or Butane config into the tree at build time,
//! add-only.
//!
//! ```text
//! COPY config.bu /tmp/
//! RUN ostree-finalize apply --butane /tmp/config.bu && ostree container finalize
//! ```
//!
//! The pipeline, one module per job:
//!
//! 1. [`ignition`] (Ignition 3.x, via the `ignition-config` crate) or
//!    [`butane`] (fcos spec 1.x, serde_yaml) reads the config into the one
//!    model of [`config`], with [`resource`] decoding contents. Anything
//!    that cannot be honoured at build time — remote URLs, disks, RAID,
//!    filesystems, LUKS, kernel arguments, passwords, unknown fields — is
//!    refused with exit 2, naming the field (a JSON pointer or a YAML
//!    path). Nothing is silently ignored.
//! 2. [`plan`] (pure, over a [`tree::TreeView`]) decides every write for
//!    the whole config, with [`users`] (sysusers.d, homes, SSH keys,
//!    against the tree's user database in [`userdb`]) and [`units`] (unit
//!    files, `systemctl enable`/`mask` symlinks). Each write is put to the
//!    add-only rules of [`decide`]: entries that would replace or change
//!    base content outside /etc become `base-modified` findings, judged by
//!    the normal policy: `--allow-overrides` turns them into recorded
//!    warnings.
//! 3. Only when the verdict passes (and not with `--dry-run`) does
//!    [`write`](mod@write) carry the plan out, no-follow, by temp file and rename.
//!
//! Dependencies inside `apply` point one way: [`users`] and [`units`]
//! extend the planner of [`plan`], which asks [`decide`] and [`userdb`];
//! [`write`](mod@write) carries out [`plan::Op`]s; all of them read the
//! tree through [`tree`], and the readers share the model of [`config`].
//!
//! Base content is what the base reference in the tree says (written by
//! `ostree-finalize snapshot`); without one, every existing path outside
//! /etc and /var counts as base content.
//!
//! `/var` is machine state that ostree never updates from an image, so
//! `apply` never writes there: `/var` entries become lines of
//! [`tree::GENERATED_TMPFILES`] (regular files preserved under
//! /usr/share/factory for `C` lines, as `finalize` does), and reach the
//! machine at boot through systemd-tmpfiles. Users and groups go to
//! [`tree::GENERATED_SYSUSERS`]; SSH keys go where Ignition puts them (see
//! [`users`]). Running `apply` again merges into both files, so several
//! configs can be applied in turn, and the same config twice changes
//! nothing — except an `append` to an existing file given no contents,
//! which appends again, as every Ignition run would.
//!
//! Not supported at build time, and refused by name: remote URLs, disks,
//! RAID, filesystems, LUKS, kernel arguments, `boot_device`, `grub`,
//! Butane `trees`, hard links, passwords, removing users or groups
//! (`should_exist: false`), changing an existing user, and the `ignition`
//! section (config merging, proxies, TLS, timeouts).

pub mod butane;
pub mod config;
pub mod decide;
pub mod ignition;
pub mod plan;
pub mod resource;
pub mod tree;
pub mod units;
pub mod userdb;
pub mod users;
pub mod write;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{ArgGroup, Args};

use crate::checks;
use crate::policy::Resolve;
use crate::report::emit::{self, Format, OutputArgs};
use crate::report::{Report, Verdict};
use crate::rootfs;
use resource::Local;
use tree::TreeView;

/// Flags of `apply`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("config").required(true).args(["ignition", "butane"])))]
pub struct ApplyArgs {
    /// An Ignition config (JSON, spec 3.0 to 3.6).
    #[arg(long, value_name = "FILE")]
    pub ignition: Option<PathBuf>,
    /// A Butane config (YAML, variant fcos, spec 1.0 to 1.6).
    #[arg(long, value_name = "FILE")]
    pub butane: Option<PathBuf>,
    /// Where Butane's `local` files are read from. Default: none, and a
    /// `local` file is an error.
    #[arg(long, value_name = "DIR")]
    pub files_dir: Option<PathBuf>,
    /// The tree to write into. Default: `/`.
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// Allow entries that replace or change base content: they are written
    /// and reported as warnings. The image must then carry
    /// LABEL ostree.override=true.
    #[arg(long)]
    pub allow_overrides: bool,
    /// Change nothing on disk; print what would be written.
    #[arg(long)]
    pub dry_run: bool,
    /// Output flags.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Run `apply`; returns the exit code.
pub fn run(args: &ApplyArgs) -> Result<u8> {
    let (file, is_butane) = match (&args.ignition, &args.butane) {
        (Some(f), None) => (f, false),
        (None, Some(f)) => (f, true),
        _ => anyhow::bail!("give exactly one of --ignition FILE and --butane FILE"),
    };
    let origin = file.display().to_string();
    let bytes = rootfs::read_ambient_file(file)?;
    let root = rootfs::open_root(&args.root)?;
    let files_dir = match &args.files_dir {
        Some(d) => {
            Some(rootfs::open_root(d).with_context(|| format!("--files-dir {}", d.display()))?)
        }
        None => None,
    };
    let local = Local {
        dir: files_dir.as_ref(),
    };
    let config = if is_butane {
        butane::parse(&bytes, &origin, local)?
    } else {
        ignition::parse(&bytes, &origin, local)?
    };

    let view = write::DirView::new(&root);
    let base = match view.node(crate::manifest::DEFAULT_MANIFEST)? {
        Some(_) => Some(crate::engine::load_base(&root, None)?),
        None => None,
    };
    let plan = plan::plan(&config, &view, base.as_ref().map(|b| &b.manifest), &origin)?;

    let policy = crate::policy::load(Some(&root), None)?;
    let mut findings = plan.findings;
    crate::policy::apply(
        &mut findings,
        Resolve {
            allow_overrides: args.allow_overrides,
            policy: &policy,
            skip: &[],
        },
    );
    // Stale waivers are finalize's business, not this config's.
    findings.retain(|f| f.check != checks::lookup("unused-waiver").map_or("", |c| c.id));
    checks::sort(&mut findings);
    let base_origin = base.map(|b| b.origin).unwrap_or_else(|| {
        "none (no base reference in the tree: every existing path outside /etc and /var \
         counts as base content)"
            .to_string()
    });
    let report = Report::new("apply", base_origin, findings, Default::default());

    let pass = report.verdict == Verdict::Pass;
    if pass && !args.dry_run {
        write::apply(&root, &plan.ops)?;
    }
    let summary = summary(
        &plan.ops,
        pass,
        args.dry_run,
        &args.root.display().to_string(),
    );
    if args.output.format == Format::Human {
        print!("{summary}");
    } else {
        eprint!("{summary}");
    }
    emit::emit_report(&report, &args.output)?;
    Ok(emit::exit_code(&report))
}

/// What was (or would be) written, one line per write.
fn summary(ops: &[plan::Op], pass: bool, dry_run: bool, root: &str) -> String {
    let n = ops.len();
    let s = if n == 1 { "" } else { "s" };
    let head = match (pass, dry_run, n) {
        (false, _, _) => {
            return format!("nothing written to {root}: the config would change base content\n\n");
        }
        (true, _, 0) => return format!("nothing to write: {root} already matches the config\n\n"),
        (true, true, _) => format!("would write {n} change{s} to {root} (--dry-run):"),
        (true, false, _) => format!("wrote {n} change{s} to {root}:"),
    };
    let mut out = head;
    out.push('\n');
    for op in ops {
        out.push_str("  ");
        out.push_str(&op.describe());
        out.push('\n');
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/apply_fixtures")
            .join(name)
    }

    #[test]
    fn the_butane_fixture_and_its_ignition_equivalent_read_to_the_same_model() {
        let files =
            cap_std::fs::Dir::open_ambient_dir(fixture("files"), cap_std::ambient_authority())
                .unwrap();
        let local = Local { dir: Some(&files) };
        let bu = std::fs::read(fixture("full.bu")).unwrap();
        let ign = std::fs::read(fixture("full.ign")).unwrap();
        let a = butane::parse(&bu, "full.bu", local).unwrap();
        let b = ignition::parse(&ign, "full.ign", Local { dir: None }).unwrap();
        assert_eq!(a.without_locations(), b.without_locations());
        assert_eq!(a.files[1].at.to_string(), "storage.files[1]");
        assert_eq!(b.files[1].at.to_string(), "/storage/files/1");
    }
}
