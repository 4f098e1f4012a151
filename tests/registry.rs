//! `lint` of images where people have them: in a registry (`docker://`)
//! and in podman's and buildah's storage (`containers-storage:`), read
//! through skopeo's image proxy, with the base found from the image's own
//! `org.opencontainers.image.base.name` annotation.
//!
//! The real parts: Debian's `docker-registry` on 127.0.0.1 with htpasswd
//! auth and TLS ([`common::registry`]), the real buildah (vfs storage,
//! chroot isolation, a private storage: [`common::buildah`]) and the real
//! skopeo that lint starts.
//!
//! Built once per process ([`env`]):
//! - the fixture base tree (snapshotted), committed as a local image and
//!   pushed to the registry as `base`, then pulled back as buildah does
//!   for `FROM HOST/base` (so the derived image's annotations name the
//!   registry's base and its digest);
//! - `derived`: `FROM HOST/base` with a `COPY` over the base package's
//!   `/usr/bin/base-tool` (the override of `containerfiles/override`,
//!   without its label and `--allow-overrides`), pushed to the registry;
//! - the same pair as `tbase`/`tderived`, for the test that moves the
//!   base's tag (so it races no other test).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use serde_json::Value;

use common::buildah::{Buildah, Driver};
use common::registry::Registry;

/// The base file the derived image overwrites, and its package.
const BASE_TOOL: &str = "/usr/bin/base-tool";
const BASE_UTILS: &str = "base-utils-1.0-1.noarch";

struct Env {
    registry: Registry,
    buildah: Buildah,
    /// Where `oci:` copies go.
    images: PathBuf,
    _scratch: tempfile::TempDir,
}

fn env() -> Option<&'static Env> {
    static ENV: OnceLock<Result<Env, String>> = OnceLock::new();
    if let Some(why) = common::registry::unavailable() {
        eprintln!("SKIPPED the registry tests: {why}");
        return None;
    }
    common::buildah::shared_fixture(&ENV, "registry tests", setup)
}

fn setup() -> Env {
    let started = Instant::now();
    let scratch = common::scratch_dir("registry-images-");
    let work = scratch.path();
    let registry = Registry::start();
    let buildah = Buildah::new(work, Driver::Vfs);

    let tree = common::snapshotted();
    buildah.commit_tree(tree.root(), "localhost/reg/base:latest");

    let context = work.join("context");
    fs::create_dir(&context).unwrap();
    let tool = context.join("base-tool");
    fs::write(&tool, "#!/bin/sh\necho patched base-tool\n").unwrap();
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).unwrap();
    // The second base differs from the first by a label only: one image
    // under two names would be annotated with the first name.
    let ctr = buildah.ok(&[
        "from",
        "--pull=never",
        "--signature-policy",
        &buildah.policy(),
        "localhost/reg/base:latest",
    ]);
    buildah.ok(&["config", "--label", "second-base=true", &ctr]);
    buildah.ok(&[
        "commit",
        "-q",
        "--signature-policy",
        &buildah.policy(),
        &ctr,
        "localhost/reg/tbase:latest",
    ]);
    buildah.ok(&["rm", &ctr]);
    for (base, derived) in [("base", "derived"), ("tbase", "tderived")] {
        let base_ref = registry.reference(&format!("{base}:latest"));
        push(
            &buildah,
            &registry,
            &format!("localhost/reg/{base}:latest"),
            &base_ref,
        );
        buildah.ok(&[
            "pull",
            "-q",
            "--signature-policy",
            &buildah.policy(),
            "--cert-dir",
            registry.cert_dir.to_str().unwrap(),
            "--creds",
            &registry.creds(),
            &base_ref,
        ]);
        let containerfile = format!(
            "FROM {}/{base}:latest\nCOPY base-tool {BASE_TOOL}\n",
            registry.host
        );
        let tag = format!("localhost/reg/{derived}:latest");
        let built = buildah.bud(&tag, &containerfile, &[&tool]);
        assert!(built.ok, "building {tag}:\n{}", built.log);
        push(
            &buildah,
            &registry,
            &tag,
            &registry.reference(&format!("{derived}:latest")),
        );
    }
    let images = work.join("images");
    fs::create_dir(&images).unwrap();
    eprintln!(
        "registry: images built and pushed in {:?}",
        started.elapsed()
    );
    Env {
        registry,
        buildah,
        images,
        _scratch: scratch,
    }
}

fn push(buildah: &Buildah, registry: &Registry, image: &str, dest: &str) {
    buildah.ok(&[
        "push",
        "-q",
        "--signature-policy",
        &buildah.policy(),
        "--cert-dir",
        registry.cert_dir.to_str().unwrap(),
        "--creds",
        &registry.creds(),
        image,
        dest,
    ]);
}

impl Env {
    /// `lint --format json --image IMAGE --cert-dir D EXTRA…`.
    fn lint(&self, image: &str, extra: &[&str]) -> common::Outcome {
        let mut args = vec![
            "lint",
            "--format",
            "json",
            "--image",
            image,
            "--cert-dir",
            self.registry.cert_dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        common::run(&args)
    }

    fn authfile(&self) -> &str {
        self.registry.authfile.to_str().unwrap()
    }

    /// `containers-storage:[vfs@ROOT+RUNROOT]NAME` for the private storage.
    fn storage(&self, name: &str) -> String {
        let root = self._scratch.path();
        format!(
            "containers-storage:[vfs@{}+{}]{name}",
            root.join("storage").display(),
            root.join("runroot").display()
        )
    }
}

/// The deny finding for the overwritten base binary, with its package.
fn assert_override_found(json: &Value) {
    common::assert_matches_schema(json);
    let f = common::finding(json, "base-modified", BASE_TOOL);
    assert_eq!(f["level"], "deny", "{f:#}");
    assert_eq!(f["package"], BASE_UTILS, "{f:#}");
}

#[test]
fn a_registry_image_is_linted_against_its_base_with_auth_and_tls() {
    let Some(env) = env() else { return };
    let out = env.lint(
        &env.registry.reference("derived:latest"),
        &[
            "--base-image",
            &env.registry.reference("base:latest"),
            "--authfile",
            env.authfile(),
        ],
    );
    out.expect_code(1);
    let json = out.json();
    assert_override_found(&json);
    assert_eq!(
        json["base_source"]["found_by"], "base-image-flag",
        "{json:#}"
    );
}

#[test]
fn the_authfile_also_comes_from_registry_auth_file() {
    let Some(env) = env() else { return };
    let out = run_with_env(
        &[
            "lint",
            "--format",
            "json",
            "--image",
            &env.registry.reference("derived:latest"),
            "--cert-dir",
            env.registry.cert_dir.to_str().unwrap(),
        ],
        &[("REGISTRY_AUTH_FILE", env.authfile())],
    );
    out.expect_code(1);
    assert_override_found(&out.json());
}

#[test]
fn the_base_is_found_from_the_image_annotation_alone() {
    let Some(env) = env() else { return };
    let out = env.lint(
        &env.registry.reference("derived:latest"),
        &["--authfile", env.authfile()],
    );
    out.expect_code(1);
    let json = out.json();
    assert_override_found(&json);
    // Looked for in the registry the image came from.
    assert_eq!(
        json["base_source"],
        serde_json::json!({
            "reference": env.registry.reference("base:latest"),
            "found_by": "annotation",
        }),
        "{json:#}"
    );
    assert_eq!(json["base"], env.registry.reference("base:latest"));
    // Every format says so.
    let human = common::run(&[
        "lint",
        "--image",
        &env.registry.reference("derived:latest"),
        "--authfile",
        env.authfile(),
        "--cert-dir",
        env.registry.cert_dir.to_str().unwrap(),
    ]);
    human.expect_code(1);
    assert!(
        human.stdout.contains(&format!(
            "base: {} (named by the image's org.opencontainers.image.base.name)",
            env.registry.reference("base:latest")
        )),
        "{human}"
    );
    let sarif = common::run(&[
        "lint",
        "--format",
        "sarif",
        "--image",
        &env.registry.reference("derived:latest"),
        "--authfile",
        env.authfile(),
        "--cert-dir",
        env.registry.cert_dir.to_str().unwrap(),
    ]);
    let sarif = sarif.json();
    assert_eq!(
        sarif["runs"][0]["properties"]["baseSource"]["foundBy"], "annotation",
        "{sarif:#}"
    );
}

#[test]
fn a_refused_login_names_the_registry_and_what_to_do() {
    let Some(env) = env() else { return };
    let wrong = env.registry.authfile_with("not-the-password");
    let out = env.lint(
        &env.registry.reference("derived:latest"),
        &["--authfile", wrong.to_str().unwrap()],
    );
    out.expect_code(2);
    assert!(out.stdout.is_empty(), "{out}");
    let refused = format!("registry {} refused the login", env.registry.host);
    for hint in [refused.as_str(), "--authfile", "skopeo login"] {
        assert!(out.stderr.contains(hint), "{hint}: {out}");
    }
}

#[test]
fn an_unknown_image_and_an_untrusted_certificate_are_exit_2_with_what_to_do() {
    let Some(env) = env() else { return };
    let missing = env.registry.reference("no-such-image:latest");
    let out = env.lint(&missing, &["--authfile", env.authfile()]);
    out.expect_code(2);
    assert!(out.stderr.contains(&missing), "{out}");
    assert!(out.stderr.contains("no such image"), "{out}");

    // No --cert-dir: the self-signed certificate is not trusted.
    let out = common::run(&[
        "lint",
        "--image",
        &env.registry.reference("derived:latest"),
        "--authfile",
        env.authfile(),
    ]);
    out.expect_code(2);
    assert!(out.stderr.contains("--cert-dir"), "{out}");
    // --tls-verify=false gets past it (a test registry only).
    let out = common::run(&[
        "lint",
        "--format",
        "json",
        "--image",
        &env.registry.reference("derived:latest"),
        "--authfile",
        env.authfile(),
        "--tls-verify=false",
    ]);
    out.expect_code(1);
    assert_override_found(&out.json());
}

#[test]
fn a_base_tag_moved_after_the_build_is_refused_with_both_digests() {
    let Some(env) = env() else { return };
    let derived = env.registry.reference("tderived:latest");
    // Before: the annotation's digest is the base's.
    env.lint(&derived, &["--authfile", env.authfile()])
        .expect_code(1);
    let base_digest = inspect_digest(env, &env.registry.reference("tbase:latest"));
    // Another image under the base's tag.
    push(
        &env.buildah,
        &env.registry,
        "localhost/reg/derived:latest",
        &env.registry.reference("tbase:latest"),
    );
    let moved = inspect_digest(env, &env.registry.reference("tbase:latest"));
    assert_ne!(moved, base_digest);
    let out = env.lint(&derived, &["--authfile", env.authfile()]);
    out.expect_code(2);
    assert!(out.stdout.is_empty(), "{out}");
    for part in [base_digest.as_str(), moved.as_str(), derived.as_str()] {
        assert!(out.stderr.contains(part), "{part}: {out}");
    }
}

/// The manifest digest of a registry image, by skopeo.
fn inspect_digest(env: &Env, reference: &str) -> String {
    let out = common::sh(
        "skopeo",
        &[
            "inspect",
            "--format",
            "{{.Digest}}",
            "--authfile",
            env.authfile(),
            "--cert-dir",
            env.registry.cert_dir.to_str().unwrap(),
            reference,
        ],
    );
    out.trim().to_string()
}

#[test]
fn containers_storage_gives_the_same_findings_as_the_oci_copy() {
    let Some(env) = env() else { return };
    // Straight from storage, the base from the annotation (found in the
    // same storage, where buildah pulled it).
    let stored = env.lint(&env.storage("localhost/reg/derived:latest"), &[]);
    stored.expect_code(1);
    let stored = stored.json();
    assert_override_found(&stored);
    assert_eq!(
        stored["base_source"]["reference"],
        env.storage(&format!("{}/base:latest", env.registry.host)),
        "{stored:#}"
    );
    assert_eq!(stored["base_source"]["found_by"], "annotation");

    // The oci: copies, by buildah push.
    let copy = |image: &str, name: &str| {
        let dest = format!("oci:{}:latest", env.images.join(name).display());
        env.buildah.push(image, &dest);
        dest
    };
    let derived = copy("localhost/reg/derived:latest", "derived");
    let base = copy(&format!("{}/base:latest", env.registry.host), "base");
    let copied = env.lint(&derived, &["--base-image", &base]);
    copied.expect_code(1);
    let copied = copied.json();
    for field in ["findings", "packages", "summary", "verdict"] {
        assert_eq!(
            serde_json::to_string_pretty(&stored[field]).unwrap(),
            serde_json::to_string_pretty(&copied[field]).unwrap(),
            "{field} differ between containers-storage: and oci:"
        );
    }
}

#[test]
fn a_missing_skopeo_says_to_install_it_or_copy_the_image() {
    let Some(env) = env() else { return };
    let image = env.registry.reference("derived:latest");
    let out = run_with_env(&["lint", "--image", &image], &[("PATH", "/nonexistent")]);
    out.expect_code(2);
    for hint in [
        image.as_str(),
        "Install skopeo",
        "skopeo copy",
        "oci:DIR:TAG",
    ] {
        assert!(out.stderr.contains(hint), "{hint}: {out}");
    }
}

/// [`common::run`] with extra environment variables.
fn run_with_env(args: &[&str], vars: &[(&str, &str)]) -> common::Outcome {
    let out = Command::new(common::bin())
        .args(args)
        .envs(vars.iter().copied())
        .output()
        .expect("running ostree-finalize");
    common::Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
