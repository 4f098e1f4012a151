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
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use serde_json::Value;

use common::buildah::{Buildah, Driver};

/// The base image's name in the private storage.
const BASE: &str = "localhost/ostree-finalize-e2e/base:latest";

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
    /// The scratch dir, removed by a later test process (see `common::scratch_dir`).
    _scratch: tempfile::TempDir,
}

/// The shared fixture, or `None` (after saying why) where buildah cannot
/// run.
fn env() -> Option<&'static Env> {
    static SKIP: OnceLock<Option<String>> = OnceLock::new();
    let skip = SKIP.get_or_init(|| {
        let why = common::buildah::unavailable()?;
        // Straight to stderr: the test harness captures print macros only,
        // and a skip must be visible in the log.
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIPPED the buildah end-to-end tests: {why}"
        );
        Some(why)
    });
    if skip.is_some() {
        return None;
    }
    static ENV: OnceLock<Result<Env, String>> = OnceLock::new();
    // A failed setup is remembered, so that each test reports it instead
    // of building everything again.
    let env = ENV.get_or_init(|| {
        std::panic::catch_unwind(setup).map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".to_string())
        })
    });
    match env {
        Ok(env) => Some(env),
        Err(msg) => panic!("building the base image failed: {msg}"),
    }
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
    check(Command::new(&tool).args(["snapshot", "--root"]).arg(&tree));

    // Commit it as the base image, owners, modes and xattrs kept by cp -a.
    let buildah = Buildah::new(work, Driver::Vfs);
    let ctr = buildah.ok(&["from", "--signature-policy", &buildah.policy(), "scratch"]);
    let mnt = buildah.ok(&["mount", &ctr]);
    check(
        Command::new("cp")
            .args(["-a", "--"])
            .arg(tree.join("."))
            .arg(&mnt),
    );
    buildah.ok(&["umount", &ctr]);
    buildah.ok(&[
        "commit",
        "-q",
        "--signature-policy",
        &buildah.policy(),
        &ctr,
        BASE,
    ]);
    buildah.ok(&["rm", &ctr]);
    check(Command::new("rm").arg("-rf").arg(&tree));

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
        _scratch: scratch,
    }
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
