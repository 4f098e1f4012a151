//! The product as it is really used: `RUN ostree container finalize` as the
//! last step of real Containerfiles built by the real buildah, and
//! `ostree-finalize lint` on the pushed images, in every transport.
//!
//! One base image is shared by the four builds of issue 5:
//!
//! - (a) a pure addition (a package with files in /usr, /etc and /var):
//!   the build passes, /var content lands in tmpfiles.d and the factory;
//! - (b) a base binary overwritten: the build fails, naming the path and
//!   the owning package;
//! - (c) the same override with `--allow-overrides` and
//!   `LABEL ostree.override=true`: the build and lint pass;
//! - (d) `--allow-overrides` without the label: the build passes, lint
//!   fails with `override-unlabeled`.
//!
//! Every Containerfile in `containerfiles/` (the examples users copy) is
//! built here too, with its `BASE` build arg pointed at the fixture base,
//! and the outcome its opening comment promises is asserted; the tool's own
//! image (`tool.Containerfile`) lints a mounted image and must agree with
//! the host binary byte for byte. [`every_containerfile_is_built_by_a_test`]
//! fails when a file there is built by no test.
//!
//! The base image ([`env`], built once per process) is a small tree with a
//! static busybox, the real rpm and ostree binaries with their libraries, a
//! real sqlite rpmdb, and the tool installed from its own RPM
//! (`packaging/build-rpm`, a statically linked binary), snapshotted with
//! that tool and committed with `buildah from scratch`. RUN steps execute
//! that RPM's binary through the real ostree's external-command dispatch.
//! Lint runs the same shipped binary.
//!
//! buildah runs as root with `--storage-driver vfs --isolation chroot` and
//! a private storage (`--root`, `--runroot`, storage.conf, signature
//! policy; see `common::buildah`) under a scratch dir, so the host's container storage is never
//! touched. The tests skip, saying why, only where buildah cannot run: not
//! root, or buildah not installed. In CI (`CI` set) a missing buildah is a
//! failure: `.ci/run` must install it.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use serde_json::Value;

use common::buildah::{Build, Buildah, Driver};

/// The base image's name in the private storage.
const BASE: &str = "localhost/ostree-finalize-e2e/base:latest";

/// The same base in the Fedora CoreOS layout (`opt -> var/opt`), built on
/// first use ([`Env::fcos_base`]).
const FCOS_BASE: &str = "localhost/ostree-finalize-e2e/base-fcos:latest";

/// What finalize generates for /var content (see `src/zones.rs`).
const TMPFILES: &str = "/usr/lib/tmpfiles.d/ostree-finalize-var.conf";

/// Where finalize records its verdict in the image.
const RECORD: &str = "/usr/lib/ostree-finalize/record.json";

/// The base file the override scenarios overwrite, and its package.
const BASE_TOOL: &str = "/usr/bin/base-tool";
const BASE_UTILS: &str = "base-utils-1.0-1.noarch";

/// The overwrite of a base binary, as a RUN step.
const OVERWRITE: &str = r#"RUN printf '#!/bin/sh\necho patched base-tool\n' > /usr/bin/base-tool"#;

/// The shared fixture: the base image in private storage, pushed in every
/// transport, and the tool's binary as its RPM ships it.
struct Env {
    buildah: Buildah,
    /// `packaging/build-rpm`'s RPMs: the tool, then its `ostree container`
    /// name.
    tool_rpms: [PathBuf; 2],
    /// `/usr/bin/ostree-finalize` from that RPM (copied out of the tree).
    tool: PathBuf,
    /// Where images are pushed.
    images: PathBuf,
    /// [`FCOS_BASE`], committed and pushed (as `base-fcos`) on first use.
    fcos: OnceLock<Result<(), String>>,
    /// The scratch dir, removed by a later test process (see `common::scratch_dir`).
    scratch: tempfile::TempDir,
}

/// The shared fixture, or `None` (after saying why) where buildah cannot
/// run.
fn env() -> Option<&'static Env> {
    static ENV: OnceLock<Result<Env, String>> = OnceLock::new();
    common::buildah::shared_fixture(&ENV, "buildah end-to-end tests", setup)
}

/// Run a command that must succeed; its stdout. Panics with the output.
#[track_caller]
fn check(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Build the shared fixture. Panics on any failure.
fn setup() -> Env {
    let started = Instant::now();
    let scratch = common::scratch_dir("e2e-");
    let work = scratch.path();

    // The base tree; the tool from its RPM, built with the real rpmbuild
    // around the static binary.
    let tool_rpms = common::e2e::tool_rpms(&work.join("rpm"));
    let tree = work.join("base-tree");
    common::e2e::assemble_base(&tree, common::Layout::Bootc, &tool_rpms);
    // Image layers carry no entry for `/` (vfs gives a container's root
    // 0555): the base keeps 0755 here, and finalize must not mind.
    let tool = work.join("ostree-finalize");
    fs::copy(tree.join("usr/bin/ostree-finalize"), &tool).expect("copying the shipped binary");
    let buildah = Buildah::new(work, Driver::Vfs);
    commit_base(&buildah, &tool, &tree, BASE);

    let images = work.join("images");
    fs::create_dir(&images).unwrap();
    for reference in Transport::ALL.map(|t| t.reference(&images, "base")) {
        buildah.push(BASE, &reference);
    }
    eprintln!("e2e: base image ready in {:?}", started.elapsed());
    Env {
        buildah,
        tool_rpms,
        tool,
        images,
        fcos: OnceLock::new(),
        scratch,
    }
}

/// Snapshot the base tree at `tree` with `tool`, commit it as image `tag`
/// (owners, modes and xattrs kept by cp -a), then remove the tree.
fn commit_base(buildah: &Buildah, tool: &Path, tree: &Path, tag: &str) {
    check(Command::new(tool).args(["snapshot", "--root"]).arg(tree));
    buildah.commit_tree(tree, tag);
    check(Command::new("rm").arg("-rf").arg(tree));
}

/// The image transports lint reads (skopeo's syntax).
#[derive(Debug, Clone, Copy)]
enum Transport {
    Oci,
    OciArchive,
    DockerArchive,
}

impl Transport {
    const ALL: [Transport; 3] = [
        Transport::Oci,
        Transport::OciArchive,
        Transport::DockerArchive,
    ];

    /// Where image `name` is pushed in this transport.
    fn path(self, images: &Path, name: &str) -> PathBuf {
        images.join(match self {
            Transport::Oci => format!("{name}-oci"),
            Transport::OciArchive => format!("{name}.oci.tar"),
            Transport::DockerArchive => format!("{name}.docker.tar"),
        })
    }

    /// That place as a reference that both `buildah push` and `lint` take.
    fn reference(self, images: &Path, name: &str) -> String {
        let path = self.path(images, name);
        let path = path.display();
        match self {
            Transport::Oci => format!("oci:{path}:latest"),
            Transport::OciArchive => format!("oci-archive:{path}:latest"),
            Transport::DockerArchive => format!("docker-archive:{path}"),
        }
    }
}

/// Lint of one pushed image against the base in the same transport.
struct Linted {
    transport: Transport,
    /// The extra lint flags.
    flags: &'static [&'static str],
    outcome: common::Outcome,
}

impl Env {
    /// Run the shipped binary.
    fn tool(&self, args: &[&str]) -> common::Outcome {
        let out = Command::new(&self.tool)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.tool.display()));
        let outcome = common::Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(
            out.status.code().is_some(),
            "killed ({}):\n{outcome}",
            out.status
        );
        outcome
    }

    /// Push `tag` in every transport and lint each push against the base
    /// in the same transport, `--format json`, once per set of extra
    /// flags; then remove the pushes and the image.
    fn push_and_lint(
        &self,
        tag: &str,
        name: &str,
        flag_sets: &[&'static [&'static str]],
    ) -> Vec<Linted> {
        let mut linted = Vec::new();
        for transport in Transport::ALL {
            let image = transport.reference(&self.images, name);
            let base = transport.reference(&self.images, "base");
            self.buildah.push(tag, &image);
            for &flags in flag_sets {
                let mut args = vec!["lint", "--image", &image, "--base-image", &base];
                args.extend_from_slice(&["--format", "json"]);
                args.extend_from_slice(flags);
                let outcome = self.tool(&args);
                linted.push(Linted {
                    transport,
                    flags,
                    outcome,
                });
            }
            let pushed = transport.path(&self.images, name);
            let _ = fs::remove_dir_all(&pushed).or_else(|_| fs::remove_file(&pushed));
        }
        self.buildah.ok(&["rmi", tag]);
        // The intermediate images of `--layers` builds.
        self.buildah.ok(&["rmi", "--prune"]);
        linted
    }
}

impl Env {
    /// [`FCOS_BASE`]: the base tree in the Fedora CoreOS layout, committed
    /// and pushed as `oci:IMAGES/base-fcos-oci:latest` once per process.
    fn fcos_base(&self) -> &'static str {
        let built = self.fcos.get_or_init(|| {
            std::panic::catch_unwind(|| {
                let started = Instant::now();
                let tree = self.scratch.path().join("base-fcos-tree");
                common::e2e::assemble_base(&tree, common::Layout::Fcos, &self.tool_rpms);
                commit_base(&self.buildah, &self.tool, &tree, FCOS_BASE);
                self.buildah.push(
                    FCOS_BASE,
                    &Transport::Oci.reference(&self.images, "base-fcos"),
                );
                eprintln!(
                    "e2e: FCOS-layout base image ready in {:?}",
                    started.elapsed()
                );
            })
            .map_err(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "(no message)".to_string())
            })
        });
        if let Err(msg) = built {
            panic!("building the FCOS-layout base image failed: {msg}");
        }
        FCOS_BASE
    }

    /// A build context holding `rpms/` with the fixture RPMs `rpms`
    /// (`NAME-VERSION-RELEASE`), as the Containerfiles in
    /// `containerfiles/` expect it.
    fn rpm_context(&self, rpms: &[&str]) -> tempfile::TempDir {
        let context = self.buildah.context();
        let dir = context.path().join("rpms");
        fs::create_dir(&dir).unwrap();
        for name in rpms {
            let rpm = common::rpm_path(name);
            fs::copy(&rpm, dir.join(rpm.file_name().unwrap())).unwrap();
        }
        context
    }

    /// Build `containerfiles/NAME` as a user would (`buildah bud -f`), on
    /// the fixture image `base`. `RPM_FLAGS=--nodeps`: the fixture base's
    /// rpmdb provides no /bin/sh for the packages' scripts.
    fn build_example(&self, name: &str, tag: &str, context: &Path, base: &str) -> Build {
        self.buildah.bud_file(
            tag,
            &example(name),
            context,
            &[("BASE", base), ("RPM_FLAGS", "--nodeps")],
        )
    }

    /// Push `tag` as `oci:IMAGES/NAME-oci:latest` and lint it, `--format
    /// json`, with `flags`; then remove the push and the image.
    fn push_oci_and_lint(&self, tag: &str, name: &str, flags: &[&str]) -> common::Outcome {
        let image = Transport::Oci.reference(&self.images, name);
        self.buildah.push(tag, &image);
        let mut args = vec!["lint", "--image", &image, "--format", "json"];
        args.extend_from_slice(flags);
        let outcome = self.tool(&args);
        fs::remove_dir_all(Transport::Oci.path(&self.images, name)).unwrap();
        self.buildah.ok(&["rmi", tag]);
        self.buildah.ok(&["rmi", "--prune"]);
        outcome
    }

    /// `--base-image` for the base pushed as `name` (oci).
    fn base_image(&self, name: &str) -> String {
        Transport::Oci.reference(&self.images, name)
    }
}

/// `containerfiles/NAME`, one of the files users copy. Every name passed
/// here as a string literal (directly or through [`Env::build_example`])
/// is counted as built by [`every_containerfile_is_built_by_a_test`],
/// which reads this file's source for those calls.
fn example(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("containerfiles")
        .join(name);
    assert!(path.is_file(), "no {}", path.display());
    path
}

/// Build and lint findings at `level`, as (check, path) pairs.
fn at_level(json: &Value, level: &str) -> Vec<(String, String)> {
    summary(json)
        .into_iter()
        .filter(|(_, l, _)| l == level)
        .map(|(check, _, path)| (check, path))
        .collect()
}

/// The check ids of the human report's `LEVEL check-id:` headings in a
/// build log (`level` is `"WARN "` or `"DENY "`), in order.
fn log_levels<'a>(log: &'a str, level: &str) -> Vec<&'a str> {
    log.lines()
        .filter_map(|l| l.strip_prefix(level)?.strip_suffix(':'))
        .collect()
}

/// `FROM` the shared base, then `steps`.
fn containerfile(steps: &[&str]) -> String {
    let mut text = format!("FROM {BASE}\n");
    for step in steps {
        text.push_str(step);
        text.push('\n');
    }
    text
}

/// The JSON findings as (check, level, path) triples, for messages.
fn summary(json: &Value) -> Vec<(String, String, String)> {
    json["findings"]
        .as_array()
        .expect("findings array")
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap_or("?").to_string(),
                f["level"].as_str().unwrap_or("?").to_string(),
                f["path"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

#[test]
fn tool_rpms_ship_one_static_binary_and_its_ostree_container_name() {
    let Some(env) = env() else { return };
    let [main, ext] = &env.tool_rpms;
    let query = |rpm: &PathBuf, args: &[&str]| {
        let mut all = vec!["-qp"];
        all.extend_from_slice(args);
        all.push(rpm.to_str().unwrap());
        common::sh("rpm", &all)
    };
    assert_eq!(
        query(main, &["--qf", "[%{FILENAMES}\n]"])
            .lines()
            .filter(|f| f.contains("/bin/") || f.contains("/libexec/"))
            .collect::<Vec<_>>(),
        ["/usr/bin/ostree-finalize"],
        "the main package has the binary and never ostree's dispatch path"
    );
    // The dispatch path is a symlink to the binary, in a package that gives
    // way to rpm-ostree, which owns it on Fedora CoreOS and RHEL CoreOS.
    let links = query(ext, &["--qf", "[%{FILENAMES} -> %{FILELINKTOS}\n]"]);
    assert!(
        links
            .lines()
            .any(|l| l
                == "/usr/libexec/libostree/ext/ostree-container -> ../../../bin/ostree-finalize"),
        "{links}"
    );
    let conflicts = query(ext, &["--conflicts"]);
    assert!(
        conflicts.lines().any(|c| c.trim() == "rpm-ostree"),
        "{conflicts}"
    );
    let requires = query(ext, &["--requires"]);
    assert!(
        requires
            .lines()
            .any(|r| r.starts_with("ostree-finalize = ")),
        "{requires}"
    );
    // Static: nothing but rpmlib features is required, so it installs into
    // any base image.
    for req in query(main, &["--requires"]).lines() {
        assert!(req.starts_with("rpmlib("), "unexpected Requires {req:?}");
    }
    let file = common::sh("file", &["-b", env.tool.to_str().unwrap()]);
    assert!(
        file.contains("statically linked") || file.contains("static-pie linked"),
        "{file}"
    );
}

#[test]
fn pure_addition_builds_converts_var_and_lints_clean_in_every_transport() {
    let Some(env) = env() else { return };
    let tag = "localhost/ostree-finalize-e2e/addition:latest";
    let extra_tool = common::rpm_path("extra-tool-1.0-1");
    let build = env.buildah.bud(
        tag,
        &containerfile(&[
            "COPY extra-tool-1.0-1.noarch.rpm /tmp/",
            // /usr/bin/rpm, not rpm: Debian's static busybox runs its own
            // `rpm` applet first. --nodeps: the base's rpmdb provides no
            // /bin/sh for the package's script.
            "RUN /usr/bin/rpm -i --nodeps /tmp/extra-tool-1.0-1.noarch.rpm \
             && echo 'level=debug' >> /etc/extra-tool.conf",
            "RUN ostree container finalize",
        ]),
        &[&extra_tool],
    );
    assert!(build.ok, "the build failed:\n{}", build.log);
    assert!(
        build.log.contains("ostree-finalize finalize: PASS"),
        "{}",
        build.log
    );

    // What the image holds: /var content converted, nothing lost.
    let ctr = env.buildah.ok(&[
        "from",
        "--pull=never",
        "--signature-policy",
        &env.buildah.policy(),
        tag,
    ]);
    let mnt = PathBuf::from(env.buildah.ok(&["mount", &ctr]));
    let at = |abs: &str| mnt.join(abs.trim_start_matches('/'));
    let tmpfiles = fs::read_to_string(at(TMPFILES)).expect("the generated tmpfiles.d");
    for line in [
        "d /var/lib/extra-tool 0750 root root -\n",
        "C /var/lib/extra-tool/state - - - - /usr/share/factory/var/lib/extra-tool/state\n",
    ] {
        assert!(tmpfiles.contains(line), "{line:?} in {tmpfiles}");
    }
    assert_eq!(
        fs::read_to_string(at("/usr/share/factory/var/lib/extra-tool/state")).unwrap(),
        "state v1\n"
    );
    assert!(
        !at("/var/lib/extra-tool").exists(),
        "converted /var content is removed"
    );
    assert!(at(RECORD).is_file(), "finalize recorded its verdict");
    assert_eq!(
        fs::read_dir(at("/tmp")).unwrap().count(),
        0,
        "runtime content (the copied RPM) is cleaned"
    );
    let conf = fs::read_to_string(at("/etc/extra-tool.conf")).unwrap();
    assert_eq!(conf, "mode=add-on\nlevel=debug\n", "/etc stays /etc");
    // A fresh deployment's /var, rebuilt by the real systemd-tmpfiles.
    check(
        Command::new("systemd-tmpfiles")
            .arg("--create")
            .arg(format!("--root={}", mnt.display())),
    );
    assert_eq!(
        fs::read_to_string(at("/var/lib/extra-tool/state")).unwrap(),
        "state v1\n"
    );
    env.buildah.ok(&["rm", &ctr]);

    for Linted {
        transport, outcome, ..
    } in env.push_and_lint(tag, "addition", &[&[]])
    {
        outcome.expect_code(0);
        let json = outcome.json();
        assert_eq!(json["verdict"], "pass", "{transport:?}: {json:#}");
        let loud: Vec<_> = summary(&json)
            .into_iter()
            .filter(|(_, level, _)| level != "info")
            .collect();
        assert!(loud.is_empty(), "{transport:?}: {loud:?}");
        assert!(
            common::findings(&json, "var-content").is_empty()
                && common::findings(&json, "not-finalized").is_empty(),
            "{transport:?}: {json:#}"
        );
        assert_eq!(
            json["packages"]["added"],
            serde_json::json!(["extra-tool-1.0-1.noarch"]),
            "{transport:?}"
        );
    }
}

#[test]
fn overwritten_base_binary_fails_the_build_naming_path_and_package() {
    let Some(env) = env() else { return };
    let tag = "localhost/ostree-finalize-e2e/override-denied:latest";
    let build = env.buildah.bud(
        tag,
        &containerfile(&[OVERWRITE, "RUN ostree container finalize"]),
        &[],
    );
    assert!(!build.ok, "the build passed:\n{}", build.log);
    let log = &build.log;
    for needle in [
        "DENY base-modified",
        &format!("content of base path {BASE_TOOL} (owned by {BASE_UTILS}) changed"),
        "ostree-finalize finalize: FAIL",
        "--allow-overrides",
        r#"building at STEP "RUN ostree container finalize""#,
    ] {
        assert!(log.contains(needle), "{needle:?} in the build log:\n{log}");
    }
    let images = env
        .buildah
        .ok(&["images", "-q", "--filter", &format!("reference={tag}")]);
    assert!(images.is_empty(), "no image from a failed build: {images}");
}

#[test]
fn allowed_and_labelled_override_builds_and_lint_passes_in_every_transport() {
    let Some(env) = env() else { return };
    let tag = "localhost/ostree-finalize-e2e/override-labelled:latest";
    let build = env.buildah.bud(
        tag,
        &containerfile(&[
            "LABEL ostree.override=true",
            OVERWRITE,
            "RUN ostree container finalize --allow-overrides",
        ]),
        &[],
    );
    assert!(build.ok, "the build failed:\n{}", build.log);
    assert!(build.log.contains("WARN base-modified"), "{}", build.log);

    for Linted {
        transport, outcome, ..
    } in env.push_and_lint(tag, "override-labelled", &[&[]])
    {
        outcome.expect_code(0);
        let json = outcome.json();
        assert_eq!(json["verdict"], "pass", "{transport:?}: {json:#}");
        let f = common::finding(&json, "base-modified", BASE_TOOL);
        assert_eq!(f["level"], "warn", "{transport:?}: {f:#}");
        assert_eq!(f["package"], BASE_UTILS, "{transport:?}: {f:#}");
        assert_eq!(
            f["allowed_by"], "LABEL ostree.override=true",
            "{transport:?}"
        );
        let loud: Vec<_> = summary(&json)
            .into_iter()
            .filter(|(_, level, _)| level != "info")
            .collect();
        assert_eq!(
            loud,
            [("base-modified".into(), "warn".into(), BASE_TOOL.into())],
            "{transport:?}: the override is the only warning"
        );
    }
}

#[test]
fn allowed_but_unlabelled_override_builds_and_lint_fails_override_unlabeled() {
    let Some(env) = env() else { return };
    let tag = "localhost/ostree-finalize-e2e/override-unlabelled:latest";
    let build = env.buildah.bud(
        tag,
        &containerfile(&[OVERWRITE, "RUN ostree container finalize --allow-overrides"]),
        &[],
    );
    assert!(build.ok, "the build failed:\n{}", build.log);

    // --allow-overrides at lint time does not cover the missing label.
    let flag_sets: [&[&str]; 2] = [&[], &["--allow-overrides"]];
    for Linted {
        transport,
        flags,
        outcome,
    } in env.push_and_lint(tag, "override-unlabelled", &flag_sets)
    {
        outcome.expect_code(1);
        let json = outcome.json();
        let case = format!("{transport:?} {flags:?}");
        assert_eq!(json["verdict"], "fail", "{case}: {json:#}");
        let unlabeled = common::findings(&json, "override-unlabeled");
        assert_eq!(unlabeled.len(), 1, "{case}: {json:#}");
        assert_eq!(unlabeled[0]["level"], "deny", "{case}");
        assert!(unlabeled[0]["path"].is_null(), "{case}");
        let msg = unlabeled[0]["message"].as_str().unwrap();
        assert!(msg.contains(BASE_TOOL), "{case}: {msg}");
        let f = common::finding(&json, "base-modified", BASE_TOOL);
        assert_eq!(f["package"], BASE_UTILS, "{case}: {f:#}");
        let want = if flags.is_empty() { "deny" } else { "warn" };
        assert_eq!(f["level"], want, "{case}: {f:#}");
    }
}

/// The examples users copy: each file in `containerfiles/` must be built
/// by a test of this file, which passes its name to [`example`].
#[test]
fn every_containerfile_is_built_by_a_test() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("containerfiles");
    let on_disk: std::collections::BTreeSet<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    // The literal names passed to `example` (or `Env::build_example`) here.
    let source = include_str!("buildah_e2e.rs");
    let built: std::collections::BTreeSet<String> = source
        .split("example(\"")
        .skip(1)
        .filter_map(|rest| rest.split_once('"').map(|(name, _)| name.to_string()))
        .collect();
    let unbuilt: Vec<_> = on_disk.difference(&built).collect();
    assert!(
        unbuilt.is_empty(),
        "containerfiles/ holds files no test builds: {unbuilt:?}; \
         build each in tests/buildah_e2e.rs with env.build_example(\"NAME\", …)"
    );
    let missing: Vec<_> = built.difference(&on_disk).collect();
    assert!(
        missing.is_empty(),
        "built but not in containerfiles/: {missing:?}"
    );
    for name in &on_disk {
        assert!(
            name.ends_with(".Containerfile"),
            "{name}: containerfiles/ holds only NAME.Containerfile files"
        );
        let text = fs::read_to_string(dir.join(name)).unwrap();
        assert!(
            text.starts_with(&format!("# {name}: ")),
            "{name} opens with a comment saying what it shows"
        );
        assert!(
            text.contains("buildah bud -f ") && text.contains("Outcome: "),
            "{name}'s comment says how to build it and what to expect"
        );
    }
}

#[test]
fn minimal_containerfile_adds_a_package_and_config_and_passes() {
    let Some(env) = env() else { return };
    let tag = "localhost/ostree-finalize-e2e/example-minimal:latest";
    let context = env.rpm_context(&["extra-tool-1.0-1"]);
    fs::write(context.path().join("example.conf"), "answer=42\n").unwrap();
    let build = env.build_example("minimal.Containerfile", tag, context.path(), BASE);
    assert!(build.ok, "the build failed:\n{}", build.log);
    let log = &build.log;
    assert!(log.contains("ostree-finalize finalize: PASS"), "{log}");
    assert!(log_levels(log, "DENY ").is_empty(), "{log}");
    // The one warning the comment announces: extra-tool ships a file in /var.
    assert_eq!(log_levels(log, "WARN "), ["var-package-file"], "{log}");
    assert!(
        log.contains("/var/lib/extra-tool/state is owned by extra-tool-1.0-1.noarch"),
        "{log}"
    );

    let (ctr, mnt) = env.buildah.mount(tag);
    let at = |abs: &str| mnt.join(abs.trim_start_matches('/'));
    assert_eq!(
        fs::read_to_string(at("/etc/example.conf")).unwrap(),
        "answer=42\n"
    );
    assert!(at("/usr/bin/extra-tool").is_file());
    assert!(at(RECORD).is_file(), "finalize recorded its verdict");
    assert!(
        fs::read_to_string(at(TMPFILES))
            .unwrap()
            .contains("d /var/lib/extra-tool 0750 root root -\n"),
        "the package's /var content is converted"
    );
    assert_eq!(
        fs::read_dir(at("/tmp")).unwrap().count(),
        0,
        "/tmp/rpms is cleaned"
    );
    env.buildah.ok(&["rm", &ctr]);

    let outcome = env.push_oci_and_lint(
        tag,
        "example-minimal",
        &["--base-image", &env.base_image("base")],
    );
    outcome.expect_code(0);
    let json = outcome.json();
    assert_eq!(json["verdict"], "pass", "{json:#}");
    assert!(at_level(&json, "deny").is_empty(), "{json:#}");
    assert!(at_level(&json, "warn").is_empty(), "{json:#}");
    assert_eq!(
        json["packages"]["added"],
        serde_json::json!(["extra-tool-1.0-1.noarch"])
    );
}

#[test]
fn opt_package_containerfile_relocates_opt_into_usr_on_an_fcos_base() {
    let Some(env) = env() else { return };
    let base = env.fcos_base();
    let tag = "localhost/ostree-finalize-e2e/example-opt-package:latest";
    let context = env.rpm_context(&["optapp-1.0-1"]);
    let build = env.build_example("opt-package.Containerfile", tag, context.path(), base);
    assert!(build.ok, "the build failed:\n{}", build.log);
    let log = &build.log;
    assert!(log.contains("ostree-finalize finalize: PASS"), "{log}");
    assert!(!log.contains("WARN ") && !log.contains("DENY "), "{log}");

    let (ctr, mnt) = env.buildah.mount(tag);
    let at = |abs: &str| mnt.join(abs.trim_start_matches('/'));
    assert_eq!(
        fs::read_link(at("/opt")).ok(),
        Some(PathBuf::from("var/opt")),
        "/opt is still the base's link"
    );
    assert!(at("/usr/lib/opt/optapp").is_dir(), "optapp moved into /usr");
    assert!(at("/usr/lib/opt/optapp/bin/run").is_file());
    assert!(
        !at("/var/opt/optapp").exists() || at("/var/opt/optapp").is_symlink(),
        "no program files left in /var"
    );
    let tmpfiles = fs::read_to_string(at(TMPFILES)).unwrap();
    assert!(
        tmpfiles.contains("L /var/opt/optapp - - - - /usr/lib/opt/optapp\n"),
        "{tmpfiles}"
    );
    env.buildah.ok(&["rm", &ctr]);

    let outcome = env.push_oci_and_lint(
        tag,
        "example-opt-package",
        &["--base-image", &env.base_image("base-fcos")],
    );
    outcome.expect_code(0);
    let json = outcome.json();
    assert!(at_level(&json, "deny").is_empty(), "{json:#}");
    assert!(at_level(&json, "warn").is_empty(), "{json:#}");
}

#[test]
fn override_containerfile_passes_with_a_warning_and_fails_without_allow_overrides() {
    let Some(env) = env() else { return };
    let tag = "localhost/ostree-finalize-e2e/example-override:latest";
    let context = env.buildah.context();
    let patched = context.path().join("base-tool");
    fs::write(&patched, "#!/bin/sh\necho patched base-tool\n").unwrap();
    fs::set_permissions(&patched, fs::Permissions::from_mode(0o755)).unwrap();
    let base_only = [("BASE", BASE)];
    let named = format!("content of base path {BASE_TOOL} (owned by {BASE_UTILS}) changed");

    // As written: a pass, the override listed as a warning.
    let file = example("override.Containerfile");
    let build = env.buildah.bud_file(tag, &file, context.path(), &base_only);
    assert!(build.ok, "the build failed:\n{}", build.log);
    let log = &build.log;
    assert_eq!(log_levels(log, "WARN "), ["base-modified"], "{log}");
    assert!(log_levels(log, "DENY ").is_empty(), "{log}");
    for needle in [named.as_str(), "ostree-finalize finalize: PASS"] {
        assert!(log.contains(needle), "{needle:?} in the build log:\n{log}");
    }
    let outcome = env.push_oci_and_lint(
        tag,
        "example-override",
        &["--base-image", &env.base_image("base")],
    );
    outcome.expect_code(0);
    let json = outcome.json();
    assert_eq!(json["verdict"], "pass", "{json:#}");
    assert!(at_level(&json, "deny").is_empty(), "{json:#}");
    assert_eq!(
        at_level(&json, "warn"),
        [("base-modified".to_string(), BASE_TOOL.to_string())],
        "{json:#}"
    );
    let f = common::finding(&json, "base-modified", BASE_TOOL);
    assert_eq!(f["package"], BASE_UTILS, "{f:#}");
    assert_eq!(f["allowed_by"], "LABEL ostree.override=true", "{f:#}");

    // What the comment promises without the opt-in: the build fails at
    // finalize, naming the path and its package.
    let text = fs::read_to_string(&file).unwrap();
    let last = "RUN ostree container finalize --allow-overrides\n";
    assert!(text.ends_with(last), "{text}");
    let denied = context.path().join("denied.Containerfile");
    fs::write(
        &denied,
        text.replace(last, "RUN ostree container finalize\n"),
    )
    .unwrap();
    let tag = "localhost/ostree-finalize-e2e/example-override-denied:latest";
    let build = env
        .buildah
        .bud_file(tag, &denied, context.path(), &base_only);
    assert!(!build.ok, "the build passed:\n{}", build.log);
    let log = &build.log;
    assert_eq!(log_levels(log, "DENY "), ["base-modified"], "{log}");
    for needle in [
        named.as_str(),
        "ostree-finalize finalize: FAIL",
        r#"building at STEP "RUN ostree container finalize""#,
    ] {
        assert!(log.contains(needle), "{needle:?} in the build log:\n{log}");
    }
    env.buildah.ok(&["rmi", "--prune"]);
}

#[test]
fn snapshot_containerfile_records_the_base_and_lint_reads_it_from_the_image() {
    let Some(env) = env() else { return };
    let tag = "localhost/ostree-finalize-e2e/example-snapshot:latest";
    let context = env.rpm_context(&["extra-tool-1.0-1"]);
    let build = env.build_example("snapshot.Containerfile", tag, context.path(), BASE);
    assert!(build.ok, "the build failed:\n{}", build.log);

    let (ctr, mnt) = env.buildah.mount(tag);
    let manifest = fs::read_to_string(mnt.join("usr/lib/ostree-finalize/base.json"))
        .expect("the snapshot in the image");
    assert!(
        manifest.contains("extra-tool-1.0-1") && manifest.contains("/usr/bin/extra-tool"),
        "the package added in the same build is part of the base"
    );
    assert!(!manifest.contains("/tmp/rpms"), "the copied RPMs are not");
    env.buildah.ok(&["rm", &ctr]);

    // No base flag: lint takes the reference the image carries.
    let outcome = env.push_oci_and_lint(tag, "example-snapshot", &[]);
    outcome.expect_code(0);
    let json = outcome.json();
    assert_eq!(json["verdict"], "pass", "{json:#}");
    assert!(at_level(&json, "deny").is_empty(), "{json:#}");
    for (check, path) in at_level(&json, "warn") {
        assert_eq!(check, "not-finalized", "{path}: {json:#}");
    }
    assert!(
        json["packages"]["added"].as_array().unwrap().is_empty(),
        "{json:#}"
    );
}

#[test]
fn tool_containerfile_image_lints_a_mounted_image_like_the_host_binary() {
    let Some(env) = env() else { return };
    let tool_tag = "localhost/ostree-finalize-e2e/tool:latest";
    let context = env.buildah.context();
    check(
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/tool-image-context"))
            .arg(context.path())
            .env("OSTREE_FINALIZE_BINARY", &env.tool)
            .env_remove("LD_LIBRARY_PATH"),
    );
    let build = env.buildah.bud_file(
        tool_tag,
        &example("tool.Containerfile"),
        context.path(),
        &[],
    );
    assert!(build.ok, "the build failed:\n{}", build.log);
    let inspect: Value =
        serde_json::from_str(&env.buildah.ok(&["inspect", "--type", "image", tool_tag]))
            .expect("buildah inspect JSON");
    let entrypoint: Vec<String> =
        serde_json::from_value(inspect["OCIv1"]["config"]["Entrypoint"].clone()).unwrap();
    assert_eq!(entrypoint, ["/usr/bin/ostree-finalize"]);
    assert_eq!(inspect["OCIv1"]["config"]["WorkingDir"], "/work");

    // Something worth comparing: an override without the label, which lint
    // denies (exit 1) with warnings and package names.
    let tag = "localhost/ostree-finalize-e2e/tool-target:latest";
    let target = env.buildah.bud(
        tag,
        &containerfile(&[OVERWRITE, "RUN ostree container finalize --allow-overrides"]),
        &[],
    );
    assert!(target.ok, "the build failed:\n{}", target.log);
    env.buildah
        .push(tag, &Transport::Oci.reference(&env.images, "tool-target"));
    env.buildah.ok(&["rmi", tag]);
    env.buildah.ok(&["rmi", "--prune"]);

    // The same relative references from the host's images dir and from
    // /work in the container, where that dir is mounted as the README says.
    let args = [
        "lint",
        "--image",
        "oci:tool-target-oci:latest",
        "--base-image",
        "oci:base-oci:latest",
        "--format",
        "json",
    ];
    let host = Command::new(&env.tool)
        .args(args)
        .current_dir(&env.images)
        .output()
        .unwrap();
    let ctr = env.buildah.ok(&[
        "from",
        "--pull=never",
        "--signature-policy",
        &env.buildah.policy(),
        tool_tag,
    ]);
    let volume = format!("{}:/work:ro", env.images.display());
    let mut run = vec!["run", "--volume", &volume, &ctr, "--"];
    run.extend(entrypoint.iter().map(String::as_str));
    run.extend_from_slice(&args);
    let inside = env.buildah.output(&run);
    env.buildah.ok(&["rm", &ctr]);
    fs::remove_dir_all(Transport::Oci.path(&env.images, "tool-target")).unwrap();
    env.buildah.ok(&["rmi", tool_tag]);

    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert_eq!(
        inside.status.code(),
        Some(1),
        "lint in the tool's image:\n{}{}",
        text(&inside.stdout),
        text(&inside.stderr)
    );
    assert_eq!(host.status.code(), Some(1), "{}", text(&host.stderr));
    let json: Value = serde_json::from_slice(&host.stdout).expect("host JSON");
    assert!(
        !common::findings(&json, "override-unlabeled").is_empty(),
        "{json:#}"
    );
    assert_eq!(
        text(&inside.stdout),
        text(&host.stdout),
        "the same JSON, byte for byte"
    );
}

#[test]
fn a_build_from_an_image_with_no_base_reference_passes_structurally_and_lint_agrees() {
    let Some(env) = env() else { return };
    // An image nobody snapshotted: the base without its base.json.
    let unreferenced = "localhost/ostree-finalize-e2e/unreferenced:latest";
    let build = env.buildah.bud(
        unreferenced,
        &containerfile(&["RUN rm /usr/lib/ostree-finalize/base.json"]),
        &[],
    );
    assert!(build.ok, "{}", build.log);

    let tag = "localhost/ostree-finalize-e2e/structural:latest";
    let context = env.rpm_context(&["extra-tool-1.0-1"]);
    let file = context.path().join("Containerfile");
    fs::write(
        &file,
        format!(
            "FROM {unreferenced}\n\
             COPY rpms/ /tmp/rpms/\n\
             RUN /usr/bin/rpm -i --nodeps /tmp/rpms/*.rpm\n\
             RUN echo 'svc:x:990:990::/var/lib/svc:/sbin/nologin' >> /etc/passwd && \
             echo 'svc:x:990:' >> /etc/group && mkdir -p /var/lib/svc\n\
             RUN ostree container finalize\n"
        ),
    )
    .unwrap();
    let build = env.buildah.bud_file(tag, &file, context.path(), &[]);
    assert!(build.ok, "the build failed:\n{}", build.log);
    let log = &build.log;
    assert!(log.contains("ostree-finalize finalize: PASS"), "{log}");
    assert!(log_levels(log, "DENY ").is_empty(), "{log}");
    let mut warns = log_levels(log, "WARN ");
    warns.sort();
    assert_eq!(warns, ["no-base-reference", "var-package-file"], "{log}");

    // The image as a tree, linted with no base: what finalize left passes,
    // with only the no-base warning (the /var content is converted).
    let (ctr, mnt) = env.buildah.mount(tag);
    assert!(
        fs::read_to_string(mnt.join(TMPFILES.trim_start_matches('/')))
            .unwrap()
            .contains("d /var/lib/svc 0755 root root -\n")
    );
    let rootfs = env.tool(&[
        "lint",
        "--rootfs",
        mnt.to_str().unwrap(),
        "--format",
        "json",
    ]);
    env.buildah.ok(&["rm", &ctr]);
    rootfs.expect_code(0);
    let rootfs = rootfs.json();
    assert_eq!(
        rootfs["base"], "none (structural checks only)",
        "{rootfs:#}"
    );
    assert!(at_level(&rootfs, "deny").is_empty(), "{rootfs:#}");
    let warn: Vec<_> = at_level(&rootfs, "warn")
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(warn, ["no-base-reference"], "{rootfs:#}");
    assert!(
        rootfs["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["check"] == "users-added"
                && f["message"].as_str().unwrap().starts_with("user svc ")),
        "{rootfs:#}"
    );

    // The same image read from its layers, with no --base-image: the same
    // structural findings.
    let image = env.push_oci_and_lint(tag, "structural", &[]);
    image.expect_code(0);
    let image = image.json();
    assert_eq!(image["base"], rootfs["base"]);
    // The image also names its base (a local build, not in the oci: copy's
    // reach): the warning says where it looked. The rest is the same.
    let without_no_base = |json: &serde_json::Value| -> Vec<serde_json::Value> {
        json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["check"] != "no-base-reference")
            .cloned()
            .collect()
    };
    assert_eq!(
        without_no_base(&image),
        without_no_base(&rootfs),
        "{image:#}"
    );
    let note = image["findings"][0]["message"].as_str().unwrap();
    assert!(
        note.contains("org.opencontainers.image.base.name annotation led nowhere")
            && note.contains(unreferenced),
        "{note}"
    );
    env.buildah.ok(&["rmi", unreferenced]);
}
