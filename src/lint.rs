//! `lint`: check a finished image (or a rootfs directory) against its base,
//! read-only, with no container runtime.
//!
//! The image is read by [`crate::oci`] into the same [`Target`] that
//! `finalize` walks from a directory, and judged by the same
//! [`engine::evaluate`], so the same change gives the same findings. Lint
//! then adds what only the image can tell ([`crate::checks::labels`]): the
//! `ostree.override` label and the finalize record, and the layer
//! members the reader left out as malformed
//! ([`crate::checks::layers::MALFORMED_LAYER`], from
//! [`crate::oci::Contents::malformed`]).
//!
//! Flags are parsed by clap into [`LintArgs`], then resolved once into
//! [`Settings`] (references parsed, the base source chosen) before any
//! file is read.
//!
//! Against an ostree commit (`--base ostree:REPO[:REF]`), the commit's tree
//! is read first, as `finalize` reads it ([`engine::read_ostree`]); the
//! image's layers are then hashed against it in their one pass
//! ([`crate::oci::against`]), and the base package set is chosen last,
//! from the image's own records when it has them, as `finalize` chooses it
//! ([`crate::ostree::CommitBase::finish`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::{ArgGroup, Args};

use crate::checks::Finding;
use crate::checks::labels::{self, ImageFacts};
use crate::checks::layers::MALFORMED_LAYER;
use crate::checks::structural::NO_BASE_REFERENCE;
use crate::engine::{self, EvalOptions, Target};
use crate::manifest::{self, Manifest};
use crate::oci::against::Against;
use crate::oci::layout::{BASE_DIGEST, BASE_NAME};
use crate::oci::proxy::ProxyOptions;
use crate::oci::reference::{Reference, Transport};
use crate::oci::{Image, MalformedMember, Opener, ReadOptions};
use crate::policy::{Policy, RuleArgs, Setting};
use crate::report::emit::{OutputArgs, emit_report, exit_code};
use crate::report::{BaseSource, FoundBy, Report};
use crate::rootfs;

/// Flags of `lint`.
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("subject").required(true).args(["rootfs", "image"])),
    after_help = "Lint reads a policy only from --policy FILE, never from the image or \
rootfs it checks: those files are written by the build, and lint is the check a build \
cannot rewrite. Overrides allowed by --allow-overrides or a policy still need LABEL \
ostree.override=true on an image (override-unlabeled)."
)]
pub struct LintArgs {
    /// A root filesystem directory to lint. It has no image labels, so
    /// only the finalize record is checked beside the tree.
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// The image to lint, in skopeo's syntax. Read natively: oci:DIR,
    /// oci-archive:FILE (each with an optional :TAG), docker-archive:FILE
    /// (with an optional :NAME:TAG). Read through skopeo's image proxy:
    /// docker://HOST/NAME[:TAG], containers-storage:NAME,
    /// docker-daemon:NAME, dir:PATH.
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// The base image the image was built FROM (same syntax). Its layers
    /// must be the image's first layers. This is the authoritative check:
    /// the reference recorded inside an image can be rewritten by its build.
    /// Default: the image's org.opencontainers.image.base.name annotation
    /// (set by buildah and podman), checked against its base.digest; else
    /// the base reference recorded in the image.
    #[arg(long, value_name = "REF", conflicts_with = "base")]
    pub base_image: Option<String>,
    /// Registry credentials for images read through skopeo: a containers
    /// auth.json, as `skopeo login` writes it. Default: $REGISTRY_AUTH_FILE,
    /// else skopeo's default places ($XDG_RUNTIME_DIR/containers/auth.json,
    /// ~/.config/containers/auth.json, ~/.docker/config.json).
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Verify registries' TLS certificates; --tls-verify=false only for a
    /// test registry. Default: true.
    #[arg(
        long,
        value_name = "BOOL",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub tls_verify: bool,
    /// A directory of CA certificates (*.crt) and client keys (*.cert,
    /// *.key) for the registry, as skopeo's --cert-dir. Default: the
    /// system's, and /etc/containers/certs.d/HOST.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// The base reference: a file written by `ostree-finalize snapshot`,
    /// or ostree:REPO[:REF-OR-CHECKSUM], the ostree commit the image or
    /// rootfs was made from, in a host repository (the ref may be left out
    /// when the repository holds one commit). Default: the reference
    /// recorded in the image or rootfs, at
    /// /usr/lib/ostree-finalize/base.json; for a rootfs, else the commit of
    /// its /sysroot/ostree/repo when that holds exactly one.
    #[arg(long, value_name = "FILE|ostree:REPO[:REF]")]
    pub base: Option<PathBuf>,
    /// Policy and verdict flags (see the `after_help` above: no policy is
    /// read from the subject).
    #[command(flatten)]
    pub rules: RuleArgs,
    /// Output flags.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// What to lint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A directory (`--rootfs`).
    Rootfs(PathBuf),
    /// An image (`--image`).
    Image(Reference),
}

/// Where the base reference comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseFrom {
    /// `--base FILE`.
    File(PathBuf),
    /// `--base ostree:REPO[:REF-OR-CHECKSUM]`.
    Ostree(crate::ostree::Spec),
    /// `--base-image REF`.
    Image(Reference),
    /// Neither: for an image, the base its annotations name
    /// ([`BASE_NAME`]), else the reference recorded in the subject.
    Recorded,
}

/// `lint`'s flags, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// What to lint.
    pub subject: Subject,
    /// Where the base reference comes from.
    pub base: BaseFrom,
    /// The policy (`--policy FILE`, else the default).
    pub policy: Policy,
    /// `--skip ID`.
    pub skip: Vec<String>,
    /// `--allow-overrides`.
    pub allow_overrides: bool,
    /// `--fatal-warnings`.
    pub fatal_warnings: bool,
    /// `--authfile`, `--tls-verify`, `--cert-dir`, for images read
    /// through skopeo.
    pub proxy: ProxyOptions,
}

impl Settings {
    /// Resolve the flags; a malformed reference or policy is an error here,
    /// before anything else is read.
    pub fn from_args(args: &LintArgs) -> Result<Settings> {
        let subject = match (&args.rootfs, &args.image) {
            (Some(dir), None) => Subject::Rootfs(dir.clone()),
            (None, Some(image)) => Subject::Image(image_reference("--image", image)?),
            _ => anyhow::bail!("give exactly one of --rootfs DIR and --image REF"),
        };
        let base = match (&args.base, &args.base_image) {
            (Some(arg), None) => match crate::ostree::Spec::parse(arg.as_os_str()) {
                Some(spec) => BaseFrom::Ostree(spec?),
                None => BaseFrom::File(arg.clone()),
            },
            (None, Some(image)) => BaseFrom::Image(image_reference("--base-image", image)?),
            (None, None) => BaseFrom::Recorded,
            (Some(_), Some(_)) => anyhow::bail!(
                "give at most one of --base and --base-image: the base is either the base \
                 image (--base-image REF) or a reference (--base FILE or --base \
                 ostree:REPO[:REF])"
            ),
        };
        Ok(Settings {
            subject,
            base,
            policy: crate::policy::load(None, args.rules.policy.as_deref())?,
            skip: args.rules.skip.clone(),
            allow_overrides: args.rules.allow_overrides,
            fatal_warnings: args.rules.fatal_warnings,
            proxy: ProxyOptions {
                authfile: args
                    .authfile
                    .clone()
                    .or_else(|| std::env::var_os("REGISTRY_AUTH_FILE").map(PathBuf::from))
                    .filter(|p| !p.as_os_str().is_empty()),
                tls_verify: args.tls_verify,
                cert_dir: args.cert_dir.clone(),
            },
        })
    }
}

/// Parse the image reference `flag` was given; an ostree commit there is
/// an error saying where it goes instead.
fn image_reference(flag: &str, text: &str) -> Result<Reference> {
    if text.starts_with(crate::ostree::SCHEME) {
        let instead = match flag {
            "--image" => {
                "To lint a commit, check it out (`ostree checkout`) and pass --rootfs DIR; \
                 to lint an image against a commit, pass --image REF --base"
            }
            _ => "Pass the commit the image was made from as --base",
        };
        anyhow::bail!(
            "{flag} {text}: an ostree commit is not an image reference (oci:DIR[:TAG], \
             oci-archive:FILE[:TAG] or docker-archive:FILE). {instead} ostree:REPO[:REF]."
        );
    }
    Reference::parse(text)
}

/// Run `lint`; returns the exit code.
pub fn run(args: &LintArgs) -> Result<u8> {
    let settings = Settings::from_args(args)?;
    let report = lint(&settings, &ReadOptions::default())?;
    emit_report(&report, &args.output)?;
    Ok(exit_code(&report))
}

/// Everything lint judges: the tree, its base, and the image facts.
struct Subjected {
    target: Target,
    /// None: no base reference (structural mode).
    base: Option<Manifest>,
    origin: String,
    /// Which base was used and how it was found (none: structural mode).
    source: Option<BaseSource>,
    labels: Option<BTreeMap<String, String>>,
    finalized: bool,
    /// The image's malformed layer members (none for a rootfs).
    malformed: Vec<MalformedMember>,
    /// With no base: why, beyond the usual (the image carries an ostree
    /// repository, its base annotation led nowhere), for the warning.
    no_base_note: Option<String>,
}

/// Lint as `settings` say and return the report.
pub fn lint(settings: &Settings, opts: &ReadOptions) -> Result<Report> {
    let opener = Opener::new(settings.proxy.clone());
    let s = match &settings.subject {
        Subject::Image(reference) => image_subject(reference, &settings.base, &opener, opts)?,
        Subject::Rootfs(dir) => rootfs_subject(dir, &settings.base, &opener, opts)?,
    };
    let eval = EvalOptions {
        policy: Some(&settings.policy),
        skip: &settings.skip,
        allow_overrides: settings.allow_overrides,
        ..EvalOptions::default()
    };
    let mut target = s.target;
    if let Some(base) = &s.base {
        target.map_usr_etc(base);
    }
    let mut report = engine::evaluate(&target, s.base.as_ref(), &s.origin, "lint", eval);
    let facts = ImageFacts {
        labels: s.labels.as_ref(),
        finalized: s.finalized,
    };
    let mut findings = labels::apply(std::mem::take(&mut report.findings), &facts);
    if let Some(note) = &s.no_base_note {
        for f in findings
            .iter_mut()
            .filter(|f| f.check == NO_BASE_REFERENCE.id)
        {
            f.message.push_str(note);
        }
    }
    findings.extend(s.malformed.iter().map(malformed_finding));
    apply_settings(&mut findings, settings);
    // Verdict and counts follow from the findings, as Report::new has them.
    let judged = Report::new("lint", String::new(), findings, Default::default());
    report.verdict = judged.verdict;
    report.summary = judged.summary;
    report.findings = judged.findings;
    report.base_source = s.source;
    if settings.fatal_warnings {
        report.make_warnings_fatal();
    }
    Ok(report)
}

/// `--skip` and the policy's per-check settings for the checks lint adds
/// (the engine applied them to the others).
fn apply_settings(findings: &mut Vec<Finding>, settings: &Settings) {
    let added = [
        labels::OVERRIDE_UNLABELED.id,
        labels::OVERRIDE_LABEL_UNUSED.id,
        labels::NOT_FINALIZED.id,
        MALFORMED_LAYER.id,
    ];
    let setting = |id: &str| settings.policy.settings.get(id);
    findings.retain(|f| {
        !added.contains(&f.check)
            || !(settings.skip.iter().any(|s| s == f.check)
                || setting(f.check) == Some(&Setting::Off))
    });
    for f in findings.iter_mut().filter(|f| added.contains(&f.check)) {
        if let Some(Setting::Level(level)) = setting(f.check) {
            f.level = *level;
        }
    }
    crate::checks::sort(findings);
}

/// The `malformed-layer` finding for one member: at the path it is about,
/// naming the layer and the raw member name.
fn malformed_finding(m: &MalformedMember) -> Finding {
    let msg = format!(
        "layer {} (layer {} of the image), member `{}`: {}. Container runtimes refuse \
         this layer or may read it differently; the member was left out. Rebuild the \
         image with a standard tool",
        m.layer,
        m.index,
        m.member.member,
        m.member.problem.describe()
    );
    Finding::new(&MALFORMED_LAYER, m.member.path.clone(), msg)
}

fn image_subject(
    reference: &Reference,
    base: &BaseFrom,
    opener: &Opener,
    opts: &ReadOptions,
) -> Result<Subjected> {
    let image = opener.open(reference)?;
    let (contents, base, origin, found_by) = match base {
        BaseFrom::Image(base_ref) => {
            let base_image = opener.open(base_ref)?;
            let (contents, manifest) = read_with_base_image(&image, &base_image, opts)?;
            (
                contents,
                Some(manifest),
                base_ref.to_string(),
                FoundBy::BaseImageFlag,
            )
        }
        BaseFrom::Ostree(spec) => {
            // As finalize reads it (engine::load_ostree), in two steps: the
            // layers are hashed against the commit's tree, and the package
            // set may come from the image.
            let opened = crate::ostree::open(spec)?;
            check_commit_label(&image, &opened)?;
            let commit = engine::read_ostree(&opened)?;
            let against = Against {
                files: &commit.files,
                repo: &opened.repo,
            };
            let mut contents = image.read_against(&against, opts)?;
            let base_db = contents.base_db.take();
            let loaded = commit.finish(&opened.repo, base_db, contents.target.rpmdb.as_ref())?;
            (
                contents,
                Some(loaded.manifest),
                loaded.origin,
                FoundBy::BaseFlag,
            )
        }
        BaseFrom::File(file) => {
            // The base first: its file and parse are freed before the
            // layers are read, so the two never add up at the peak.
            let (manifest, origin) = load_file(file)?;
            let contents = image.read(opts)?;
            (contents, Some(manifest), origin, FoundBy::BaseFlag)
        }
        BaseFrom::Recorded => match annotated_base(&image, opener)? {
            Annotated::Found(base_image) => {
                let (contents, manifest) = read_with_base_image(&image, &base_image, opts)?;
                let origin = base_image.reference.clone();
                (contents, Some(manifest), origin, FoundBy::Annotation)
            }
            Annotated::NotFound(why) => {
                let contents = image.read(opts)?;
                let origin = format!("{} in {}", manifest::DEFAULT_MANIFEST, image.reference);
                let Some(bytes) = contents.base_reference.as_deref() else {
                    // No base anywhere: structural mode, the warning says why.
                    let note = no_base_note(contents.ostree_repo, why.as_deref());
                    return Ok(Subjected {
                        target: contents.target,
                        base: None,
                        origin: engine::NO_BASE.to_string(),
                        source: None,
                        labels: Some(image.labels),
                        finalized: contents.finalized,
                        malformed: contents.malformed,
                        no_base_note: note,
                    });
                };
                // A local build's name is looked for nowhere but in
                // containers-storage: nothing to say when it is not.
                if let Some(why) = why.filter(|w| !w.contains(LOCAL_BUILD)) {
                    eprintln!(
                        "ostree-finalize: {why}; using the base reference recorded in the \
                         image ({}) instead",
                        manifest::DEFAULT_MANIFEST
                    );
                }
                let manifest = Manifest::from_json(bytes, &origin)?;
                (contents, Some(manifest), origin, FoundBy::Recorded)
            }
        },
    };
    Ok(Subjected {
        target: contents.target,
        base,
        source: Some(BaseSource {
            reference: origin.clone(),
            found_by,
        }),
        origin,
        labels: Some(image.labels),
        finalized: contents.finalized,
        malformed: contents.malformed,
        no_base_note: None,
    })
}

/// Read `image` and, from the same pass, its base `base_image`, after
/// checking that the base's layers are the image's first ones.
fn read_with_base_image(
    image: &Image,
    base_image: &Image,
    opts: &ReadOptions,
) -> Result<(crate::oci::Contents, Manifest)> {
    image.check_derived_from(base_image)?;
    let (contents, at_base) = image.read_with_base(base_image.layers.len(), opts)?;
    Ok((contents, crate::snapshot::manifest_from(at_base.target)))
}

/// How [`annotated_base`] calls a base named `localhost/…`.
const LOCAL_BUILD: &str = "a local build";

/// What the image's base annotations gave.
enum Annotated {
    /// The base image they name, its manifest digest checked.
    Found(Box<Image>),
    /// No annotation (`None`), or why the image it names could not be
    /// opened anywhere it was looked for.
    NotFound(Option<String>),
}

/// The base image named by the image's [`BASE_NAME`] annotation, looked
/// for where [`base_candidates`] says, and checked against its
/// [`BASE_DIGEST`] annotation: a base found with another digest is an
/// error (the tag was moved or the base tampered with).
fn annotated_base(image: &Image, opener: &Opener) -> Result<Annotated> {
    let Some(name) = image.annotations.get(BASE_NAME) else {
        return Ok(Annotated::NotFound(None));
    };
    let mut tried = Vec::new();
    for candidate in base_candidates(&image.parsed, name) {
        let base = match Reference::parse(&candidate).and_then(|r| opener.open(&r)) {
            Ok(base) => base,
            Err(e) => {
                tried.push(format!("{e:#}"));
                continue;
            }
        };
        if let (Some(want), Some(got)) = (image.annotations.get(BASE_DIGEST), &base.manifest_digest)
            && want != got
        {
            anyhow::bail!(
                "{}: its {BASE_DIGEST} annotation says the base {name} had manifest digest \
                 {want}, but {candidate} now has {got}. The base's tag was moved or the base \
                 was replaced; lint against the base the image was built FROM: --base-image \
                 {}@{want}, or the image you trust as its base",
                image.reference,
                untagged(&candidate)
            );
        }
        return Ok(Annotated::Found(Box::new(base)));
    }
    let why = if tried.is_empty() {
        format!(
            "{}: its base {name} ({BASE_NAME}) is {LOCAL_BUILD}, which is looked for only \
             in containers-storage",
            image.reference
        )
    } else {
        format!(
            "{}: the base its {BASE_NAME} annotation names was not found: {}",
            image.reference,
            tried.join("; ")
        )
    };
    Ok(Annotated::NotFound(Some(why)))
}

/// Where to look for the base `name` (an annotation: no transport) of an
/// image read from `image`: first where the image itself came from (the
/// same containers-storage, the same registry), then `docker://NAME`.
/// `localhost/…` names a local build, which no registry serves.
pub fn base_candidates(image: &Reference, name: &str) -> Vec<String> {
    let (registry, path) = split_registry(name);
    let mut out = Vec::new();
    match image.transport {
        Transport::ContainersStorage => {
            let rest = image.path.to_string_lossy();
            let store = match rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
                Some((spec, _)) => format!("[{spec}]"),
                None => String::new(),
            };
            out.push(format!("containers-storage:{store}{name}"));
        }
        Transport::Docker => {
            if let Some(host) = image.registry()
                && registry != Some(host.as_str())
            {
                out.push(format!("docker://{host}/{path}"));
            }
        }
        Transport::DockerDaemon => out.push(format!("docker-daemon:{name}")),
        _ => {}
    }
    if registry != Some("localhost") {
        out.push(format!("docker://{name}"));
    }
    out.dedup();
    out
}

/// A reference without its `:TAG` or `@DIGEST` (containers-image takes
/// one or the other, not both), for a `…@sha256:HEX` suggestion.
fn untagged(reference: &str) -> &str {
    let reference = reference.split('@').next().unwrap_or(reference);
    let name_at = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[name_at..].rfind(':') {
        Some(i) => &reference[..name_at + i],
        None => reference,
    }
}

/// `HOST[:PORT]` and the rest of an image name, when its first part names
/// a registry (has a `.` or `:`, or is `localhost`).
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

/// The label ostree-ext puts on the images it encapsulates (and that
/// derived images inherit): the checksum of the commit they carry.
const COMMIT_LABEL: &str = "ostree.commit";

/// An image that names the commit it was built from must be linted
/// against that commit: another one is the wrong base, whatever it holds.
fn check_commit_label(image: &Image, opened: &crate::ostree::Opened) -> Result<()> {
    let Some(label) = image.labels.get(COMMIT_LABEL) else {
        return Ok(());
    };
    let commit = hex::encode(opened.commit);
    anyhow::ensure!(
        label.trim() == commit,
        "{}: the image's {COMMIT_LABEL} label names commit {}, but {} is commit {commit}. \
         Lint against the commit the image was built from (--base ostree:REPO:{})",
        image.reference,
        label.trim(),
        opened.label,
        label.trim()
    );
    Ok(())
}

/// What the no-base warning adds for an image: that the ostree
/// repository it carries is not taken as its base (`ostree_repo`), and why
/// its base annotation led nowhere (`annotation`).
fn no_base_note(ostree_repo: bool, annotation: Option<&str>) -> Option<String> {
    let mut note = String::new();
    if let Some(why) = annotation {
        note.push_str(&format!(
            ". The image's {BASE_NAME} annotation led nowhere: {why}"
        ));
    }
    if ostree_repo {
        note.push_str(&format!(
            ". The image carries an ostree repository ({}), but lint does not take the base \
             from it: the layers are hashed against the base while they are read, and that \
             repository is itself in the layers. Lint against the image it was built FROM \
             (--base-image REF), or pull its commit into a host repository (--base \
             ostree:REPO[:REF])",
            crate::ostree::SYSROOT_REPO
        ));
    }
    (!note.is_empty()).then_some(note)
}

fn rootfs_subject(
    dir: &std::path::Path,
    base: &BaseFrom,
    opener: &Opener,
    opts: &ReadOptions,
) -> Result<Subjected> {
    let root = rootfs::open_root(dir)?;
    let found_by = match base {
        BaseFrom::Image(_) => FoundBy::BaseImageFlag,
        BaseFrom::Ostree(_) | BaseFrom::File(_) => FoundBy::BaseFlag,
        BaseFrom::Recorded => FoundBy::Recorded,
    };
    let (manifest, origin, target) = match base {
        BaseFrom::Image(base_ref) => {
            let contents = opener.open(base_ref)?.read(opts)?;
            (
                Some(crate::snapshot::manifest_from(contents.target)),
                base_ref.to_string(),
                Target::from_dir(&root)?,
            )
        }
        BaseFrom::Ostree(spec) => {
            let loaded = engine::load_ostree(&root, spec)?;
            let target = Target::from_dir_against(&root, &loaded)?;
            (Some(loaded.manifest), loaded.origin, target)
        }
        // As finalize loads it; none found is structural mode.
        BaseFrom::File(_) | BaseFrom::Recorded => {
            let file = match base {
                BaseFrom::File(file) => Some(file.as_path()),
                _ => None,
            };
            let found = engine::find_base(&root, file)?;
            let target = Target::from_dir_for(&root, found.as_ref())?;
            match found {
                Some(b) => (Some(b.manifest), b.origin, target),
                None => (None, engine::NO_BASE.to_string(), target),
            }
        }
    };
    let record = crate::record::RECORD.trim_start_matches('/');
    let finalized = root.symlink_metadata(record).is_ok_and(|m| m.is_file());
    Ok(Subjected {
        target,
        source: manifest.is_some().then(|| BaseSource {
            reference: origin.clone(),
            found_by,
        }),
        base: manifest,
        origin,
        labels: None,
        finalized,
        malformed: Vec::new(),
        no_base_note: None,
    })
}

/// `--base FILE`: a host file named on the command line.
fn load_file(file: &std::path::Path) -> Result<(Manifest, String)> {
    let origin = file.display().to_string();
    let bytes = engine::read_base_file(file)?;
    Ok((Manifest::from_json(&bytes, &origin)?, origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_is_looked_for_where_the_image_came_from_then_in_its_registry() {
        let storage =
            Reference::parse("containers-storage:[vfs@/s+/r]localhost/os/derived").unwrap();
        assert_eq!(
            base_candidates(&storage, "localhost/os/base:latest"),
            ["containers-storage:[vfs@/s+/r]localhost/os/base:latest"]
        );
        assert_eq!(
            base_candidates(&storage, "localhost:5000/os/base:1"),
            [
                "containers-storage:[vfs@/s+/r]localhost:5000/os/base:1",
                "docker://localhost:5000/os/base:1"
            ]
        );
        let pushed = Reference::parse("docker://127.0.0.1:5000/os/derived:1").unwrap();
        assert_eq!(
            base_candidates(&pushed, "localhost/os/base:latest"),
            ["docker://127.0.0.1:5000/os/base:latest"]
        );
        assert_eq!(
            base_candidates(&pushed, "127.0.0.1:5000/os/base:latest"),
            ["docker://127.0.0.1:5000/os/base:latest"]
        );
        let oci = Reference::parse("oci:/x:derived").unwrap();
        assert!(base_candidates(&oci, "localhost/os/base:latest").is_empty());
    }

    #[test]
    fn a_suggested_digest_reference_has_no_tag() {
        assert_eq!(
            untagged("docker://127.0.0.1:5000/os/base:latest"),
            "docker://127.0.0.1:5000/os/base"
        );
        assert_eq!(
            untagged("docker://127.0.0.1:5000/os/base"),
            "docker://127.0.0.1:5000/os/base"
        );
        assert_eq!(
            untagged("containers-storage:localhost/base:1@sha256:ab"),
            "containers-storage:localhost/base"
        );
    }
}
