//! The format real bases ship, built with the real tools end to end
//! (issue 16).
//!
//! Fedora CoreOS and bootc bases are ostree commits encapsulated as OCI
//! images by ostree-ext: every base path in the image is a hardlink to its
//! content object under `/sysroot/ostree/repo/objects` (a `bare-split-xattrs`
//! repository holding the one commit), and `/usr/etc` is exported as
//! `/etc`. Under buildah's `vfs` driver the layer copies keep those
//! hardlinks, so a RUN step that writes a base file in place writes the
//! repository object too; `overlay`'s copy-up breaks the link. Every case
//! here runs under both drivers and must come out the same.
//!
//! The bases ([`env`], built once per process):
//!
//! - a tree in the Fedora CoreOS layout (`fixtures/assemble-base.sh
//!   --layout fcos`: compat links into /var, a real sqlite rpmdb, busybox,
//!   rpm, ostree, and the tool installed from its own RPMs);
//! - composed as rpm-ostree does (`fixtures/compose-ostree-base.sh`:
//!   /etc to /usr/etc, /var to tmpfiles.d, a kernel and initramfs,
//!   `ostree commit --bootable` with `rpmostree.rpmdb.pkglist`);
//! - encapsulated by the real ostree-ext (`tests/ostree-ext-cli`) as
//!   `plain`, `basedb` (with `rpm-ostree-base-db`, a copy of the rpmdb: one
//!   object, so hardlinks to each other in the image) and `chunked`
//!   (`--contentmeta`, several layers);
//! - pulled into a private buildah storage per driver.
//!
//! Each case is a Containerfile `FROM` one base whose RUN steps make the
//! change; its last step runs `ostree container finalize --format json`
//! between markers, so the report and exit code are read from the build
//! log. Then, per driver:
//!
//! - the verdict and the findings (check, level, path, package) are what
//!   the issue says, and the same under both drivers;
//! - `lint --image` of the result (the finalized image, or for a failed
//!   build the image of the step before finalize) against the base image,
//!   and against the base commit in a `bare-user` and an `archive`
//!   repository (`--base ostree:REPO:REF`), agrees with finalize;
//! - a passing image imports with ostree-ext's own importer
//!   (`container image pull`), deploys (`container image deploy`), and
//!   after the real `systemd-sysusers` and `systemd-tmpfiles --create
//!   --boot` the expected users and /var entries exist.
//!
//! overlay cases are skipped, with the reason on stderr, where the kernel's
//! overlayfs cannot mount; the whole file skips where buildah cannot run.
//!
//! What a vfs build's layer holds after an in-place write: both names of
//! the inode, as a tar hardlink pair (the object and the tree path). On
//! import, ostree-ext 0.15.3 (`tar::write::filter_tar`) drops every path
//! under `sysroot/ostree/repo`, except that it keeps a *modified* object
//! (tar mtime > 0) and makes the first tree path linked to it the real
//! file. ostree objects have mtime 0, and `chmod` and `cp -p` keep it 0,
//! so their layer links `usr/bin/base-tool` to a dropped path and the
//! import fails ("Processing deferred hardlink …: Failed to find
//! object"); writes that update the mtime (`>`, `>>`, sqlite) import.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use serde_json::Value;

use common::buildah::{Buildah, Driver};
use common::ostree_ext::{self, Imported};

/// What finalize generates for /var content and for users.
const TMPFILES: &str = "/usr/lib/tmpfiles.d/ostree-finalize-var.conf";
const SYSUSERS: &str = "/usr/lib/sysusers.d/ostree-finalize.conf";

/// Where finalize records its verdict in the image.
const RECORD: &str = "/usr/lib/ostree-finalize/record.json";

/// The base file the override cases change, and its package.
const BASE_TOOL: &str = "/usr/bin/base-tool";
const BASE_UTILS: &str = "base-utils-1.0-1.noarch";
const EXTRA_TOOL: &str = "extra-tool-1.0-1.noarch";

/// The rpmdb and rpm-ostree's copy of it in the `basedb` base.
const RPMDB: &str = "/usr/lib/sysimage/rpm";
const BASE_DB: &str = "/usr/lib/sysimage/rpm-ostree-base-db";

/// The last step of every case: finalize's JSON report and exit code
/// between markers in the build log, and the build fails when it does.
const FINALIZE: &str = "RUN echo '=== finalize report'; ostree container finalize --format json; \
                        rc=$?; echo \"=== finalize exit $rc\"; exit $rc";

/// The encapsulated bases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    /// One layer, no rpm-ostree-base-db.
    Plain,
    /// With `/usr/lib/sysimage/rpm-ostree-base-db`, a copy of the rpmdb.
    WithBaseDb,
    /// The `plain` commit in several layers (`--contentmeta`).
    Chunked,
}

impl Base {
    const ALL: [Base; 3] = [Base::Plain, Base::WithBaseDb, Base::Chunked];

    fn name(self) -> &'static str {
        match self {
            Base::Plain => "plain",
            Base::WithBaseDb => "basedb",
            Base::Chunked => "chunked",
        }
    }

    /// The ostree ref of its commit.
    fn ostree_ref(self) -> &'static str {
        match self {
            Base::Plain | Base::Chunked => "fixture/plain",
            Base::WithBaseDb => "fixture/basedb",
        }
    }

    /// Its name in the buildah storages.
    fn tag(self) -> String {
        format!("localhost/real-format/base:{}", self.name())
    }
}

/// The shared fixture.
struct Env {
    /// buildah per driver; overlay only where it mounts.
    builders: Vec<Buildah>,
    /// `/usr/bin/ostree-finalize` as its RPM ships it.
    tool: PathBuf,
    /// OCI layouts: `base-NAME` for the bases, then the cases' pushes.
    images: PathBuf,
    /// The compose's archive repository and a bare-user copy of it, both
    /// with every base ref.
    archive_repo: PathBuf,
    bare_user_repo: PathBuf,
    /// The composed plain tree (its /usr/etc is the base's /etc).
    plain_tree: PathBuf,
    work: PathBuf,
    _scratch: tempfile::TempDir,
}

impl Env {
    fn base_image(&self, base: Base) -> String {
        format!(
            "oci:{}:latest",
            self.images.join(format!("base-{}", base.name())).display()
        )
    }
}

/// The shared fixture, or `None` (after saying why) where buildah cannot
/// run.
fn env() -> Option<&'static Env> {
    static ENV: OnceLock<Result<Env, String>> = OnceLock::new();
    common::buildah::shared_fixture(&ENV, "real-format tests", setup)
}

/// Run a command that must succeed; its stdout.
#[track_caller]
fn check(cmd: &mut Command) -> String {
    ostree_ext::ok(cmd)
}

fn setup() -> Env {
    let started = Instant::now();
    let scratch = common::scratch_dir("real-format-");
    let work = scratch.path().to_path_buf();
    let cli = ostree_ext::cli();
    eprintln!("real-format: ostree-ext-cli at {}", cli.display());

    let tool_rpms = common::e2e::tool_rpms(&work.join("rpm"));
    let assembled = work.join("assembled");
    common::e2e::assemble_base(&assembled, common::Layout::Fcos, &tool_rpms);
    let tool = work.join("ostree-finalize");
    fs::copy(assembled.join("usr/bin/ostree-finalize"), &tool).expect("copying the shipped binary");

    // Compose the two commits into one archive repository, as composes do.
    let archive_repo = work.join("archive-repo");
    for (base, base_db) in [(Base::Plain, false), (Base::WithBaseDb, true)] {
        let tree = work.join(format!("tree-{}", base.name()));
        check(Command::new("cp").arg("-a").arg(&assembled).arg(&tree));
        ostree_ext::compose(&tree, &archive_repo, base.ostree_ref(), base_db);
    }
    let bare_user_repo = work.join("bare-user-repo");
    let bare_user_arg = format!("--repo={}", bare_user_repo.display());
    common::sh("ostree", &[&bare_user_arg, "init", "--mode=bare-user"]);
    common::sh(
        "ostree",
        &[
            &bare_user_arg,
            "pull-local",
            archive_repo.to_str().unwrap(),
            Base::Plain.ostree_ref(),
            Base::WithBaseDb.ostree_ref(),
        ],
    );

    // Encapsulate each base with the real ostree-ext.
    let images = work.join("images");
    fs::create_dir(&images).unwrap();
    let meta = work.join("contentmeta.json");
    fs::write(
        &meta,
        ostree_ext::contentmeta(&archive_repo, Base::Chunked.ostree_ref()).to_string(),
    )
    .unwrap();
    for base in Base::ALL {
        let dest = format!(
            "oci:{}:latest",
            images.join(format!("base-{}", base.name())).display()
        );
        let contentmeta = (base == Base::Chunked).then_some(meta.as_path());
        ostree_ext::encapsulate(&archive_repo, base.ostree_ref(), &dest, contentmeta);
    }
    let layers = oci_layers(&images.join("base-chunked"));
    assert!(
        layers >= 3,
        "the chunked base has {layers} layers, not several"
    );

    // A private storage per driver, each with every base.
    let mut builders = Vec::new();
    for driver in Driver::ALL {
        if driver == Driver::Overlay
            && let Some(why) = common::buildah::overlay_unavailable()
        {
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED the overlay-driver half of the real-format tests: {why}"
            );
            continue;
        }
        let dir = work.join(format!("buildah-{}", driver.name()));
        fs::create_dir(&dir).unwrap();
        let buildah = Buildah::new(&dir, driver);
        for base in Base::ALL {
            let source = format!(
                "oci:{}:latest",
                images.join(format!("base-{}", base.name())).display()
            );
            buildah.pull(&source, &base.tag());
        }
        builders.push(buildah);
    }
    eprintln!("real-format: bases ready in {:?}", started.elapsed());
    Env {
        builders,
        tool,
        images,
        archive_repo,
        bare_user_repo,
        plain_tree: work.join("tree-plain"),
        work,
        _scratch: scratch,
    }
}

/// How many layers the one image of an OCI layout has.
fn oci_layers(layout: &Path) -> usize {
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let blob = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let manifest: Value = serde_json::from_slice(&fs::read(blob).unwrap()).unwrap();
    manifest["layers"].as_array().unwrap().len()
}

/// One case: a base, RUN steps, and files for the build context.
struct Case {
    name: &'static str,
    base: Base,
    steps: &'static [&'static str],
    /// Fixture RPMs (`NAME-VERSION-RELEASE`) copied into the context.
    rpms: &'static [&'static str],
    /// Package files in /var that finalize must warn about (they become
    /// seed-once copies that do not follow the image).
    seed_once: &'static [&'static str],
    /// Base paths the case overrides on purpose: the build runs finalize
    /// with --allow-overrides and carries LABEL ostree.override=true, and
    /// each path is a base-modified warning.
    overridden: &'static [&'static str],
    /// Run the last step in the same RUN as finalize (one layer for both).
    same_step: bool,
    /// A known failure of ostree-ext 0.15's importer on this case (the
    /// error text it gives): the import must fail so, and the deployment
    /// is not checked. Each one is a gap written in the README.
    import_fails: Option<&'static str>,
}

/// The check that warns about package files in /var.
const SEED_ONCE: &str = "var-package-file";

/// What one case did under one driver.
struct Run {
    driver: Driver,
    /// finalize's exit code and JSON report.
    code: i32,
    report: Value,
    /// The lints of the result: (how the base was named, outcome).
    lints: Vec<(String, common::Outcome)>,
    /// For a passing build: the record finalize wrote into the image, and
    /// what the importer made of it.
    record: Option<Value>,
    imported: Option<Imported>,
    /// For a passing build: whether the image has /var/tmp (the export
    /// adds it to the base).
    has_var_tmp: bool,
    /// The pushed image and the import's repository and sysroot, removed
    /// when the case is done (about 200 MB each).
    scratch: Vec<PathBuf>,
}

impl Drop for Run {
    fn drop(&mut self) {
        for path in &self.scratch {
            let _ = fs::remove_dir_all(path);
        }
    }
}

impl Run {
    fn label(&self, case: &Case) -> String {
        format!("{} under {}", case.name, self.driver.name())
    }
}

/// finalize's report and exit code from a build log.
fn report_of(log: &str) -> Option<(i32, Value)> {
    let start = log.find("=== finalize report\n")? + "=== finalize report\n".len();
    let end = log[start..].find("=== finalize exit ")? + start;
    let code = log[end + "=== finalize exit ".len()..]
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()?;
    let json = serde_json::from_str(log[start..end].trim()).ok()?;
    Some((code, json))
}

/// The image ID of the last step buildah committed (`--> ID` lines).
fn last_step_image(log: &str) -> Option<String> {
    log.lines()
        .filter(|l| l.starts_with("--> "))
        .filter_map(|l| l.split_whitespace().next_back())
        .next_back()
        .map(str::to_string)
}

/// The findings as (check, level, path, package), sorted.
fn keyed(json: &Value) -> BTreeSet<(String, String, String, String)> {
    json["findings"]
        .as_array()
        .expect("findings array")
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or("-").to_string();
            (s("check"), s("level"), s("path"), s("package"))
        })
        .collect()
}

/// The deny and warn findings.
fn loud(json: &Value) -> BTreeSet<(String, String, String, String)> {
    keyed(json)
        .into_iter()
        .filter(|(_, level, _, _)| level != "info")
        .collect()
}

/// The deny findings as (check, path, package).
fn denied(json: &Value) -> BTreeSet<(String, String, String)> {
    keyed(json)
        .into_iter()
        .filter(|(_, level, _, _)| level == "deny")
        .map(|(c, _, p, k)| (c, p, k))
        .collect()
}

/// Who the `users-added` findings name ("user u", "group u").
fn users_added(json: &Value) -> BTreeSet<String> {
    json["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["check"] == "users-added")
        .filter_map(|f| f["message"].as_str()?.split(" was added").next())
        .map(String::from)
        .collect()
}

fn deny(check: &str, path: &str, package: &str) -> (String, String, String) {
    (check.into(), path.into(), package.into())
}

impl Env {
    fn tool(&self, args: &[&str]) -> common::Outcome {
        let out = Command::new(&self.tool)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.tool.display()));
        common::Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Build `case` under every available driver, lint the result, and
    /// import a passing one.
    fn run(&self, case: &Case) -> Vec<Run> {
        let mut containerfile = format!("FROM {}\n", case.base.tag());
        for rpm in case.rpms {
            containerfile.push_str(&format!("COPY {rpm}.noarch.rpm /tmp/\n"));
        }
        let (steps, joined) = match case.steps.split_last() {
            Some((last, rest)) if case.same_step => (rest, last.strip_prefix("RUN ")),
            _ => (case.steps, None),
        };
        for step in steps {
            containerfile.push_str(step);
            containerfile.push('\n');
        }
        let mut finalize = FINALIZE.to_string();
        if !case.overridden.is_empty() {
            containerfile.push_str("LABEL ostree.override=true\n");
            finalize = finalize.replace("--format json", "--format json --allow-overrides");
        }
        if let Some(step) = joined {
            finalize = finalize.replacen("RUN ", &format!("RUN {step}; "), 1);
        }
        containerfile.push_str(&finalize);
        containerfile.push('\n');
        let rpms: Vec<PathBuf> = case.rpms.iter().map(|r| common::rpm_path(r)).collect();
        let files: Vec<&Path> = rpms.iter().map(PathBuf::as_path).collect();

        let mut runs = Vec::new();
        for buildah in &self.builders {
            let driver = buildah.driver.name();
            let tag = format!("localhost/real-format/{}-{driver}:latest", case.name);
            let build = buildah.bud(&tag, &containerfile, &files);
            let (code, report) = report_of(&build.log).unwrap_or_else(|| {
                panic!(
                    "{} under {driver}: no finalize report in the build log:\n{}",
                    case.name, build.log
                )
            });
            assert_eq!(
                build.ok,
                code == 0,
                "{} under {driver}: the build's outcome follows finalize's exit code {code}:\n{}",
                case.name,
                build.log
            );
            // A failed build leaves the image of the step before finalize
            // (the base itself when finalize is the only step).
            let image = if build.ok {
                tag.clone()
            } else {
                last_step_image(&build.log).unwrap_or_else(|| case.base.tag())
            };
            let name = format!("{}-{driver}", case.name);
            let layout = self.images.join(&name);
            let imgref = format!("oci:{}:latest", layout.display());
            buildah.push(&image, &imgref);

            let base_image = self.base_image(case.base);
            let archive = format!(
                "ostree:{}:{}",
                self.archive_repo.display(),
                case.base.ostree_ref()
            );
            let bare_user = format!(
                "ostree:{}:{}",
                self.bare_user_repo.display(),
                case.base.ostree_ref()
            );
            let mut lints = Vec::new();
            for (how, flag, base) in [
                ("--base-image", "--base-image", &base_image),
                ("--base ostree: (archive)", "--base", &archive),
                ("--base ostree: (bare-user)", "--base", &bare_user),
            ] {
                let outcome =
                    self.tool(&["lint", "--format", "json", "--image", &imgref, flag, base]);
                lints.push((how.to_string(), outcome));
            }

            let mut scratch = vec![layout.clone()];
            let (mut record, mut imported, mut has_var_tmp) = (None, None, false);
            if build.ok {
                let (ctr, mnt) = buildah.mount(&tag);
                record = fs::read(mnt.join(RECORD.trim_start_matches('/')))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                has_var_tmp = mnt.join("var/tmp").is_dir();
                buildah.ok(&["rm", &ctr]);
                let dir = self.work.join(format!("import-{name}"));
                fs::create_dir(&dir).unwrap();
                imported = Some(ostree_ext::import(&dir, &imgref));
                scratch.push(dir);
                buildah.ok(&["rmi", &tag]);
            }
            // The step images (vfs keeps a full copy of the tree for each):
            // safe, as cases run one at a time and the bases are tagged.
            buildah.ok(&["rmi", "--prune"]);
            runs.push(Run {
                driver: buildah.driver,
                code,
                report,
                lints,
                record,
                imported,
                has_var_tmp,
                scratch,
            });
        }
        runs
    }
}

/// Everything a case found wrong, collected so that one run shows every
/// problem of every driver (the cases are slow to rebuild).
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }

    fn eq<T: PartialEq + std::fmt::Debug>(
        &mut self,
        got: T,
        want: T,
        what: impl FnOnce() -> String,
    ) {
        if got != want {
            self.0
                .push(format!("{}:\n    got  {got:?}\n    want {want:?}", what()));
        }
    }

    /// Panic with every problem, if there is any.
    fn finish(self, case: &Case) {
        assert!(
            self.0.is_empty(),
            "{}: {} problem(s):\n- {}",
            case.name,
            self.0.len(),
            self.0.join("\n- ")
        );
    }
}

/// The deny and warn findings with their messages, for problem reports.
fn loud_messages(json: &Value) -> String {
    json["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["level"] != "info")
        .map(|f| {
            format!(
                "\n      {} {} {}: {}",
                f["level"].as_str().unwrap_or("?"),
                f["check"].as_str().unwrap_or("?"),
                f["path"].as_str().unwrap_or("-"),
                f["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// One row of the case table on stderr: verdict, loud findings, import.
fn table_row(case: &Case, run: &Run) {
    let import = match &run.imported {
        None => "not imported (build failed)".to_string(),
        Some(i) => format!(
            "pull {}, deploy {}",
            i.pull
                .as_ref()
                .map_or_else(|e| format!("FAILED: {}", first_error(e)), |_| "ok".into()),
            i.deploy
                .as_ref()
                .map_or_else(|e| format!("FAILED: {}", first_error(e)), |_| "ok".into()),
        ),
    };
    let lints: Vec<String> = run
        .lints
        .iter()
        .map(|(how, o)| format!("{how}: exit {}", o.code))
        .collect();
    let _ = writeln!(
        std::io::stderr().lock(),
        "real-format: {} [{}] finalize exit {}; loud {:?}; {import}; lint {}",
        case.name,
        run.driver.name(),
        run.code,
        loud(&run.report),
        lints.join(", ")
    );
}

/// The line of an error that says what went wrong (ostree-ext prints
/// "Error: …" then causes).
fn first_error(e: &str) -> String {
    e.lines()
        .filter(|l| {
            let l = l.trim();
            l.starts_with("Error")
                || l.starts_with("0:")
                || l.starts_with("1:")
                || l.starts_with("2:")
                || l.starts_with("3:")
        })
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" / ")
        .chars()
        .take(400)
        .collect()
}

/// What every case checks whatever its verdict: the same verdict and
/// findings under both drivers, and lint agreeing with finalize.
fn common_checks(case: &Case, runs: &[Run], p: &mut Problems) {
    for pair in runs.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        p.eq(
            (a.code, keyed(&a.report)),
            (b.code, keyed(&b.report)),
            || {
                format!(
                    "the verdict and findings under {} (got) and {} (want) are the same",
                    a.driver.name(),
                    b.driver.name()
                )
            },
        );
    }
    for run in runs {
        let label = run.label(case);
        for (how, outcome) in &run.lints {
            if outcome.code == 2 {
                p.check(false, || {
                    format!(
                        "{label}: lint {how} failed (exit 2): {}",
                        outcome.stderr.trim()
                    )
                });
                continue;
            }
            p.eq(outcome.code, run.code, || {
                format!("{label}: lint {how} exits as finalize did")
            });
            let Ok(json) = serde_json::from_str::<Value>(&outcome.stdout) else {
                p.check(false, || {
                    format!("{label}: lint {how} printed no JSON:\n{outcome}")
                });
                continue;
            };
            let compared = |json: &Value| -> BTreeSet<_> {
                loud(json)
                    .into_iter()
                    .filter(|(c, _, _, _)| {
                        // Image facts only lint sees, and the seed-once
                        // warning, about a /var file finalize has converted
                        // by the time the image is linted.
                        ![
                            "override-unlabeled",
                            "override-label-unused",
                            "not-finalized",
                            SEED_ONCE,
                        ]
                        .contains(&c.as_str())
                    })
                    .collect()
            };
            let lint_loud = compared(&json);
            p.eq(users_added(&json), users_added(&run.report), || {
                format!("{label}: lint {how} (got) agrees with finalize (want) on the users added")
            });
            p.eq(lint_loud, compared(&run.report), || {
                format!(
                    "{label}: lint {how} (got) agrees with finalize (want) on deny and warn findings; lint's:{}",
                    loud_messages(&json)
                )
            });
        }
    }
}

/// A passing case: exit 0, nothing denied or warned, /var/tmp kept, and
/// the image imports and deploys with ostree-ext's importer.
fn check_passes(case: &Case, run: &Run, p: &mut Problems) -> bool {
    let label = run.label(case);
    p.eq(run.code, 0, || {
        format!(
            "{label}: finalize passes; its loud findings:{}",
            loud_messages(&run.report)
        )
    });
    let unexpected: BTreeSet<_> = loud(&run.report)
        .into_iter()
        .filter(|(c, level, path, _)| {
            let expected = match c.as_str() {
                SEED_ONCE => case.seed_once,
                "base-modified" => case.overridden,
                _ => &[],
            };
            !(level == "warn" && expected.contains(&path.as_str()))
        })
        .collect();
    p.eq(unexpected, BTreeSet::new(), || {
        format!(
            "{label}: no deny or warn findings but the seed-once warnings:{}",
            loud_messages(&run.report)
        )
    });
    for path in case.seed_once {
        p.check(
            common::findings(&run.report, SEED_ONCE)
                .iter()
                .any(|f| f["path"] == *path && f["level"] == "warn"),
            || format!("{label}: {SEED_ONCE} warns that {path} will not follow the image"),
        );
    }
    let want_users: BTreeSet<String> = if case.name.starts_with("user-") {
        ["group u", "user u"].map(String::from).into()
    } else {
        BTreeSet::new()
    };
    p.eq(users_added(&run.report), want_users, || {
        format!("{label}: the users finalize reports as added")
    });
    let Some(imported) = &run.imported else {
        return false;
    };
    if let Some(known) = case.import_fails {
        let failed = [imported.pull.as_ref().err(), imported.deploy.as_ref().err()]
            .into_iter()
            .flatten()
            .any(|e| e.contains(known));
        p.check(failed, || {
            format!("{label}: the importer's known failure ({known}) is gone: drop import_fails")
        });
        return false;
    }
    p.check(run.has_var_tmp, || {
        format!("{label}: /var/tmp, which the export adds to the base, is base content and stays in the image")
    });
    p.check(run.record.is_some(), || {
        format!("{label}: finalize wrote {RECORD}")
    });
    if let Err(e) = &imported.pull {
        p.check(false, || {
            format!(
                "{label}: container image pull of the result: {}",
                first_error(e)
            )
        });
    }
    if let Err(e) = &imported.deploy {
        p.check(false, || {
            format!(
                "{label}: container image deploy of the result: {}",
                first_error(e)
            )
        });
    }
    imported.deploy.is_ok()
}

/// A failing case: exit 1 and exactly these deny findings.
fn check_fails(case: &Case, run: &Run, want: &[(String, String, String)], p: &mut Problems) {
    let label = run.label(case);
    p.eq(run.code, 1, || format!("{label}: finalize fails"));
    p.eq(
        denied(&run.report),
        want.iter().cloned().collect::<BTreeSet<_>>(),
        || {
            format!(
                "{label}: the deny findings (check, path, package); all loud:{}",
                loud_messages(&run.report)
            )
        },
    );
}

fn deployment(run: &Run) -> &ostree_ext::Deployment {
    run.imported
        .as_ref()
        .and_then(|i| i.deploy.as_ref().ok())
        .expect("a deployment")
}

/// On an upgraded host the 3-way /etc merge keeps the machine's passwd and
/// group (here: the base's), so users only exist if sysusers.d creates
/// them: put the base's files back, run the real systemd-sysusers, and
/// return the resulting passwd.
fn passwd_on_upgraded_host(env: &Env, run: &Run) -> String {
    let deployment = deployment(run);
    for file in ["passwd", "group", "shadow"] {
        let base = env.plain_tree.join("usr/etc").join(file);
        let dest = deployment.root.join("etc").join(file);
        check(Command::new("cp").arg("-p").arg(&base).arg(&dest));
    }
    check(Command::new("systemd-sysusers").arg(format!("--root={}", deployment.root.display())));
    fs::read_to_string(deployment.root.join("etc/passwd")).unwrap()
}

/// `rpm -qa` of the database at `dbpath` under `root`, sorted NEVRAs.
fn packages_in(root: &Path, dbpath: &str) -> Vec<String> {
    let out = common::sh(
        "rpm",
        &[
            "--root",
            root.to_str().unwrap(),
            "--dbpath",
            dbpath,
            "-qa",
            "--qf",
            "%{NEVRA}\n",
        ],
    );
    let mut v: Vec<String> = out.lines().map(String::from).collect();
    v.sort();
    v
}

/// Build `case` under every driver, print its table rows, and run the
/// checks every case shares. `None` where buildah cannot run.
fn run_case(case: &Case) -> Option<(&'static Env, Vec<Run>, Problems)> {
    let env = env()?;
    // One case at a time: builds are serialized anyway, and the cleanup
    // of step images must not race another case's build.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let started = Instant::now();
    let runs = {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        env.run(case)
    };
    eprintln!("real-format: {} took {:?}", case.name, started.elapsed());
    for run in &runs {
        table_row(case, run);
    }
    let mut problems = Problems::default();
    common_checks(case, &runs, &mut problems);
    Some((env, runs, problems))
}

const INSTALL_EXTRA_TOOL: &str =
    // /usr/bin/rpm, not rpm: Debian's static busybox runs its own `rpm`
    // applet first. --nodeps: the base's rpmdb provides no /bin/sh.
    "RUN /usr/bin/rpm -i --nodeps /tmp/extra-tool-1.0-1.noarch.rpm";

#[test]
fn no_change_passes_imports_and_keeps_var_tmp() {
    let case = Case {
        name: "no-change",
        base: Base::Plain,
        steps: &[],
        rpms: &[],
        seed_once: &[],
        overridden: &[],
        same_step: false,
        import_fails: None,
    };
    let Some((_, runs, mut p)) = run_case(&case) else {
        return;
    };
    for run in &runs {
        if check_passes(&case, run, &mut p) {
            let d = deployment(run);
            p.check(d.path("/var/tmp").is_dir(), || {
                format!("{}: /var/tmp after systemd-tmpfiles", run.label(&case))
            });
        }
    }
    p.finish(&case);
}

/// The rpm-install cases: pass, record the package as added, and deploy
/// its /var content through tmpfiles.d.
fn check_rpm_install(case: &Case, runs: &[Run], p: &mut Problems) {
    for run in runs {
        let label = run.label(case);
        let deployed = check_passes(case, run, p);
        p.eq(
            &run.report["packages"]["added"],
            &serde_json::json!([EXTRA_TOOL]),
            || format!("{label}: the report lists the package as added"),
        );
        if let Some(record) = &run.record {
            p.eq(
                &record["packages"]["added"],
                &serde_json::json!([EXTRA_TOOL]),
                || format!("{label}: record.json lists the package as added"),
            );
        }
        if !deployed {
            continue;
        }
        let d = deployment(run);
        p.eq(
            fs::read_to_string(d.path("/var/lib/extra-tool/state")).ok(),
            Some("state v1\n".to_string()),
            || format!("{label}: the package's /var content after systemd-tmpfiles"),
        );
        p.check(
            fs::read_to_string(d.root.join(TMPFILES.trim_start_matches('/')))
                .is_ok_and(|t| t.contains("/var/lib/extra-tool")),
            || format!("{label}: {TMPFILES} in the deployment declares /var/lib/extra-tool"),
        );
        let deployed_packages = packages_in(&d.root, RPMDB);
        p.check(
            deployed_packages.iter().any(|p| p == EXTRA_TOOL)
                && deployed_packages.iter().any(|p| p == BASE_UTILS),
            || format!("{label}: the deployed rpmdb has the base and the added package: {deployed_packages:?}"),
        );
    }
}

#[test]
fn rpm_install_with_var_content_passes_and_records_the_package() {
    let case = Case {
        name: "rpm-install",
        base: Base::Plain,
        steps: &[INSTALL_EXTRA_TOOL],
        rpms: &["extra-tool-1.0-1"],
        seed_once: &["/var/lib/extra-tool/state"],
        overridden: &[],
        same_step: false,
        import_fails: None,
    };
    let Some((_, runs, mut p)) = run_case(&case) else {
        return;
    };
    check_rpm_install(&case, &runs, &mut p);
    p.finish(&case);
}

#[test]
fn rpm_install_on_a_chunked_base_passes_and_imports() {
    let case = Case {
        name: "rpm-install-chunked",
        base: Base::Chunked,
        steps: &[INSTALL_EXTRA_TOOL],
        rpms: &["extra-tool-1.0-1"],
        seed_once: &["/var/lib/extra-tool/state"],
        overridden: &[],
        same_step: false,
        import_fails: None,
    };
    let Some((_, runs, mut p)) = run_case(&case) else {
        return;
    };
    check_rpm_install(&case, &runs, &mut p);
    p.finish(&case);
}

#[test]
fn rpm_install_on_a_base_with_rpm_ostree_base_db_passes_and_keeps_the_base_db() {
    let case = Case {
        name: "rpm-install-basedb",
        base: Base::WithBaseDb,
        steps: &[INSTALL_EXTRA_TOOL],
        rpms: &["extra-tool-1.0-1"],
        seed_once: &["/var/lib/extra-tool/state"],
        overridden: &[],
        same_step: false,
        import_fails: None,
    };
    let Some((_, runs, mut p)) = run_case(&case) else {
        return;
    };
    for run in &runs {
        let label = run.label(&case);
        p.check(
            !keyed(&run.report)
                .iter()
                .any(|(c, _, path, _)| c == "base-modified" && path.starts_with(BASE_DB)),
            || {
                format!(
                    "{label}: rpm-ostree-base-db is not reported modified:{}",
                    loud_messages(&run.report)
                )
            },
        );
    }
    check_rpm_install(&case, &runs, &mut p);
    for run in &runs {
        if let Some(Imported { deploy: Ok(d), .. }) = &run.imported {
            let base_db = packages_in(&d.root, BASE_DB);
            p.check(
                !base_db.iter().any(|p| p == EXTRA_TOOL) && base_db.iter().any(|p| p == BASE_UTILS),
                || {
                    format!(
                        "{}: the deployed rpm-ostree-base-db is the base's database: {base_db:?}",
                        run.label(&case)
                    )
                },
            );
        }
    }
    p.finish(&case);
}

#[test]
fn overwritten_base_binary_fails_base_modified() {
    let case = Case {
        name: "overwrite",
        base: Base::Plain,
        steps: &["RUN echo x > /usr/bin/base-tool"],
        rpms: &[],
        seed_once: &[],
        overridden: &[],
        same_step: false,
        import_fails: None,
    };
    let Some((_, runs, mut p)) = run_case(&case) else {
        return;
    };
    for run in &runs {
        check_fails(
            &case,
            run,
            &[deny("base-modified", BASE_TOOL, BASE_UTILS)],
            &mut p,
        );
    }
    p.finish(&case);
}

#[test]
fn chmod_setuid_of_a_base_binary_fails_base_modified() {
    let case = Case {
        name: "chmod",
        base: Base::Plain,
        // busybox has no chmod link in the base: call the applet.
        steps: &["RUN busybox chmod 4755 /usr/bin/base-tool"],
        rpms: &[],
        seed_once: &[],
        overridden: &[],
        same_step: false,
        import_fails: None,
    };
    let Some((_, runs, mut p)) = run_case(&case) else {
        return;
    };
    for run in &runs {
        check_fails(
            &case,
            run,
            &[deny("base-modified", BASE_TOOL, BASE_UTILS)],
            &mut p,
        );
    }
    p.finish(&case);
}

#[test]
fn cp_p_of_one_base_binary_over_another_fails_base_modified() {
    let case = Case {
        name: "cp-p",
        base: Base::Plain,
        steps: &["RUN cp -p /usr/lib64/libbase.so.1 /usr/bin/base-tool"],
        rpms: &[],
        seed_once: &[],
        overridden: &[],
        same_step: false,
        import_fails: None,
    };
    let Some((_, runs, mut p)) = run_case(&case) else {
        return;
    };
    for run in &runs {
        check_fails(
            &case,
            run,
            &[deny("base-modified", BASE_TOOL, BASE_UTILS)],
            &mut p,
        );
    }
    p.finish(&case);
}

#[test]
fn rpm_upgrade_to_a_rebuild_with_identical_files_fails_rpm_base_changed() {
    let case = Case {
        name: "rpm-upgrade",
        base: Base::Plain,
        steps: &["RUN /usr/bin/rpm -U --nodeps /tmp/base-utils-1.0-2.noarch.rpm"],
        rpms: &["base-utils-1.0-2"],
        seed_once: &[],
        overridden: &[],
        same_step: false,
        import_fails: None,
    };
    let Some((_, runs, mut p)) = run_case(&case) else {
        return;
    };
    for run in &runs {
        check_fails(
            &case,
            run,
            &[deny("rpm-base-changed", "-", BASE_UTILS)],
            &mut p,
        );
    }
    p.finish(&case);
}

/// The user cases: pass, a sysusers.d entry for `u`, and `u` exists on an
/// upgraded host after systemd-sysusers.
fn check_user_added(env: &Env, case: &Case, runs: &[Run], p: &mut Problems) {
    for run in runs {
        let label = run.label(case);
        if !check_passes(case, run, p) {
            continue;
        }
        let d = deployment(run);
        let sysusers =
            fs::read_to_string(d.root.join(SYSUSERS.trim_start_matches('/'))).unwrap_or_default();
        p.check(sysusers.lines().any(|l| l.starts_with("u u 1000")), || {
            format!("{label}: a sysusers.d entry for u in {SYSUSERS}:\n{sysusers}")
        });
        let passwd = passwd_on_upgraded_host(env, run);
        p.check(
            passwd.lines().any(|l| l.starts_with("u:x:1000:1000:")),
            || format!("{label}: u exists on an upgraded host after systemd-sysusers:\n{passwd}"),
        );
    }
}

#[test]
fn user_appended_to_etc_passwd_passes_with_a_sysusers_entry() {
    let case = Case {
        name: "user-append",
        base: Base::Plain,
        steps: &[
            "RUN echo 'u:x:1000:1000::/var/home/u:/bin/sh' >> /etc/passwd \
                  && echo 'u:x:1000:' >> /etc/group",
        ],
        rpms: &[],
        seed_once: &[],
        overridden: &[],
        same_step: false,
        import_fails: None,
    };
    let Some((env, runs, mut p)) = run_case(&case) else {
        return;
    };
    check_user_added(env, &case, &runs, &mut p);
    p.finish(&case);
}

#[test]
fn user_added_by_write_and_rename_passes_with_a_sysusers_entry() {
    let case = Case {
        name: "user-rename",
        base: Base::Plain,
        steps: &["RUN cat /etc/passwd > /etc/passwd.new \
                  && echo 'u:x:1000:1000::/var/home/u:/bin/sh' >> /etc/passwd.new \
                  && mv /etc/passwd.new /etc/passwd \
                  && cat /etc/group > /etc/group.new \
                  && echo 'u:x:1000:' >> /etc/group.new \
                  && mv /etc/group.new /etc/group"],
        rpms: &[],
        seed_once: &[],
        overridden: &[],
        same_step: false,
        import_fails: None,
    };
    let Some((env, runs, mut p)) = run_case(&case) else {
        return;
    };
    check_user_added(env, &case, &runs, &mut p);
    p.finish(&case);
}

/// The /opt cases: the build passes, the image's /opt is the base's link
/// again, optapp lives in /usr/lib/opt, and on the deployed system /opt
/// resolves to the image's copy through the tmpfiles.d `L` line.
fn check_opt_relocated(case: &Case, runs: &[Run], p: &mut Problems) {
    for run in runs {
        let label = run.label(case);
        let relocated: Vec<&str> = run.report["plan"]["relocated"]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r["path"].as_str()).collect())
            .unwrap_or_default();
        p.eq(relocated, vec!["/opt/optapp"], || {
            format!("{label}: the relocated entries")
        });
        p.eq(
            run.report["packages"]["added"].clone(),
            serde_json::json!(["optapp-1.0-1.noarch"]),
            || format!("{label}: the packages added"),
        );
        if !check_passes(case, run, p) {
            continue;
        }
        let d = deployment(run);
        p.eq(
            fs::read_link(d.root.join("opt")).ok(),
            Some(PathBuf::from("var/opt")),
            || format!("{label}: /opt in the deployment is the base's link"),
        );
        p.eq(
            fs::read_link(d.path("/var/opt/optapp")).ok(),
            Some(PathBuf::from("/usr/lib/opt/optapp")),
            || format!("{label}: /var/opt/optapp after systemd-tmpfiles"),
        );
        p.check(d.path("/usr/lib/opt/optapp/bin/run").is_file(), || {
            format!("{label}: /usr/lib/opt/optapp/bin/run in the deployment")
        });
        p.check(
            d.path("/usr/lib/opt/optapp/share/read me/notes.txt")
                .is_file(),
            || format!("{label}: a name with a space survives the move"),
        );
    }
}

#[test]
fn opt_package_installed_through_the_base_link_is_relocated_and_imports() {
    let case = Case {
        name: "opt-through-link",
        base: Base::Plain,
        steps: &["RUN busybox mkdir -p /var/opt \
                  && /usr/bin/rpm -i --nodeps /tmp/optapp-1.0-1.noarch.rpm"],
        rpms: &["optapp-1.0-1"],
        seed_once: &[],
        overridden: &[],
        same_step: false,
        import_fails: None,
    };
    let Some((_, runs, mut p)) = run_case(&case) else {
        return;
    };
    check_opt_relocated(&case, &runs, &mut p);
    p.finish(&case);
}

#[test]
fn the_rm_opt_mkdir_opt_workaround_is_undone_and_the_composefs_import_gap_is_pinned() {
    let case = Case {
        name: "opt-workaround",
        base: Base::Plain,
        steps: &["RUN busybox rm /opt && busybox mkdir /opt \
                  && /usr/bin/rpm -i --nodeps /tmp/optapp-1.0-1.noarch.rpm"],
        rpms: &["optapp-1.0-1"],
        seed_once: &[],
        overridden: &[],
        same_step: false,
        // On a base with composefs enabled in prepare-root.conf, the
        // importer cannot check out the layers where /opt went from a link
        // to a directory and back (finalize's layer restores the link).
        import_fails: Some("opendir(opt): No such file or directory"),
    };
    let Some((_, runs, mut p)) = run_case(&case) else {
        return;
    };
    for run in &runs {
        p.check(
            !common::findings(&run.report, "var-link-restored").is_empty(),
            || format!("{}: var-link-restored is reported", run.label(&case)),
        );
    }
    check_opt_relocated(&case, &runs, &mut p);
    p.finish(&case);
}

#[test]
fn an_allowed_chmod_in_place_is_repaired_so_the_image_imports() {
    // Under vfs the chmod writes the repository's object too, and ostree's
    // importer drops objects whose mtime is 0 (chmod keeps it), leaving the
    // layer's hardlinks to it dangling. In a step of its own that layer
    // cannot be mended by a later one (finalize says so); in the RUN step
    // of finalize itself, finalize gives the path its own copy and drops
    // the object, and the image imports.
    let case = Case {
        name: "chmod-allowed",
        base: Base::Plain,
        steps: &["RUN busybox chmod 4755 /usr/bin/base-tool"],
        rpms: &[],
        seed_once: &[],
        overridden: &[BASE_TOOL],
        same_step: true,
        import_fails: None,
    };
    let Some((_, runs, mut p)) = run_case(&case) else {
        return;
    };
    for run in &runs {
        let label = run.label(&case);
        if !check_passes(&case, run, &mut p) {
            continue;
        }
        let mode = fs::metadata(deployment(run).path(BASE_TOOL))
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
            .ok();
        p.eq(mode, Some(0o4755), || {
            format!("{label}: {BASE_TOOL}'s mode in the deployment")
        });
    }
    p.finish(&case);
}
