//! The real ostree-ext, for tests of the format real bases ship.
//!
//! Fedora CoreOS and bootc bases are ostree commits encapsulated as OCI
//! images by ostree-ext; hosts import derived images with ostree-ext's own
//! importer. [`cli`] builds `tests/ostree-ext-cli` (a test-only package,
//! outside the main package's build, around `ostree_ext::cli`) once per
//! test process; the helpers here drive its `container encapsulate`,
//! `container image pull` and `container image deploy`, and the real
//! `ostree`, `systemd-sysusers` and `systemd-tmpfiles` around them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The `ostree-ext-cli` binary, built once per test process with
/// `cargo build --release --locked` into `target/ostree-ext-cli`. Panics
/// if the build fails.
pub fn cli() -> &'static Path {
    static CLI: OnceLock<PathBuf> = OnceLock::new();
    CLI.get_or_init(|| {
        let manifest = repo().join("tests/ostree-ext-cli/Cargo.toml");
        // CARGO_TARGET_TMPDIR is TARGET/tmp: build next to it.
        let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("CARGO_TARGET_TMPDIR has a parent")
            .join("ostree-ext-cli");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let started = Instant::now();
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--release",
            "--locked",
            "--quiet",
            "--manifest-path",
        ])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        // Nothing of the outer build's configuration leaks in.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS");
        super::check(&mut cmd);
        eprintln!(
            "ostree-ext-cli: built (or up to date) in {:?}",
            started.elapsed()
        );
        target.join("release/ostree-ext-cli")
    })
}

/// A command of ostree-ext's CLI: `ostree-ext-cli ARGS…`, with the host's
/// own library paths.
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(cli());
    cmd.args(args).env_remove("LD_LIBRARY_PATH");
    cmd
}

/// Run `cmd`, which must succeed; its stdout.
#[track_caller]
pub fn ok(cmd: &mut Command) -> String {
    let out: Output = super::check(cmd);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `fixtures/compose-ostree-base.sh [--base-db] TREE REPO REF`: the
/// tree composed as rpm-ostree does and committed with `--bootable` and
/// `rpmostree.rpmdb.pkglist`. Returns the commit checksum.
#[track_caller]
pub fn compose(tree: &Path, repo_dir: &Path, ostree_ref: &str, base_db: bool) -> String {
    let mut cmd = Command::new(repo().join("fixtures/compose-ostree-base.sh"));
    if base_db {
        cmd.arg("--base-db");
    }
    cmd.arg(tree).arg(repo_dir).arg(ostree_ref);
    ok(&mut cmd).trim().to_string()
}

/// A `--contentmeta` file for `container encapsulate` (ostree-ext's
/// `RawMeta`, version 1) that puts the content objects of `ostree_ref` in
/// several components, so the image has several layers: what the path
/// starts with picks the component.
pub fn contentmeta(repo_dir: &Path, ostree_ref: &str) -> serde_json::Value {
    const COMPONENTS: [(&str, &str); 5] = [
        ("/usr/lib/sysimage/", "rpmdb"),
        ("/usr/lib/modules/", "kernel"),
        ("/usr/bin/", "binaries"),
        ("/usr/lib/rpm/", "rpm"),
        ("/usr/lib", "libraries"),
    ];
    let repo_arg = format!("--repo={}", repo_dir.display());
    let listing = super::sh("ostree", &[&repo_arg, "ls", "-R", "-C", ostree_ref]);
    let mut mapping = serde_json::Map::new();
    for line in listing.lines() {
        // "-00644 0 0 53 CHECKSUM /path" or "l00777 0 0 0 CHECKSUM /path -> t";
        // directories list two checksums and carry no content object.
        let fields: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with('d') || fields.len() < 6 {
            continue;
        }
        let (checksum, path) = (fields[4], fields[5]);
        let component = COMPONENTS
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix))
            .map_or("unpackaged", |(_, c)| c);
        mapping.insert(checksum.to_string(), component.into());
    }
    let mut layers = serde_json::Map::new();
    for (_, c) in COMPONENTS {
        layers.insert(c.to_string(), format!("fixture {c}").into());
    }
    layers.insert("unpackaged".into(), "unpackaged files".into());
    serde_json::json!({"version": 1, "layers": layers, "mapping": mapping})
}

/// `ostree-ext-cli container encapsulate --repo REPO REF DEST` with the
/// labels real bases carry (`containers.bootc=1`; ostree-ext adds
/// `ostree.commit` itself), and `--contentmeta` when given.
#[track_caller]
pub fn encapsulate(repo_dir: &Path, ostree_ref: &str, dest: &str, contentmeta: Option<&Path>) {
    let repo_arg = repo_dir.display().to_string();
    let mut args = vec![
        "container",
        "encapsulate",
        "--repo",
        &repo_arg,
        "--label",
        "containers.bootc=1",
    ];
    let meta_arg;
    if let Some(meta) = contentmeta {
        meta_arg = meta.display().to_string();
        args.extend_from_slice(&["--contentmeta", &meta_arg]);
    }
    args.extend_from_slice(&[ostree_ref, dest]);
    ok(&mut command(&args));
}

/// What ostree-ext's importer made of an image.
#[derive(Debug)]
pub struct Imported {
    /// `container image pull` into a fresh bare repository: its combined
    /// output, or the error.
    pub pull: Result<String, String>,
    /// `container image deploy` into a fresh sysroot, then
    /// `systemd-sysusers` and `systemd-tmpfiles --create --boot` on the
    /// deployment: where it is, or the error.
    pub deploy: Result<Deployment, String>,
}

/// A deployment made by `container image deploy`.
#[derive(Debug)]
pub struct Deployment {
    /// The deployment's root (`sysroot/ostree/deploy/STATEROOT/deploy/…`).
    pub root: PathBuf,
    /// The stateroot's `/var`, which the booted deployment mounts at `/var`.
    pub var: PathBuf,
}

impl Deployment {
    /// An absolute path of the booted system: under `/var`, in the
    /// stateroot's var; elsewhere, in the deployment.
    pub fn path(&self, abs: &str) -> PathBuf {
        match abs.strip_prefix("/var/") {
            Some(rest) => self.var.join(rest),
            None => self.root.join(abs.trim_start_matches('/')),
        }
    }
}

/// Run `cmd`; its output, or an error naming the command and its output.
fn attempt(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("running {cmd:?}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{cmd:?} failed ({}):\n{text}", out.status))
    }
}

/// The stateroot deployments go to.
pub const STATEROOT: &str = "fixture";

/// Import the image at `imgref` (`oci:DIR:TAG`) as a host would, under
/// `work` (which must exist and be empty):
///
/// - `container image pull work/repo ostree-unverified-image:IMGREF`
///   into a fresh `bare` repository;
/// - `ostree admin init-fs` and `os-init` of a sysroot at `work/sysroot`,
///   then `container image deploy` of the image into it;
/// - the deployment's `/var` is the stateroot's (a bind mount, as
///   ostree-prepare-root does at boot), and the real `systemd-sysusers
///   --root` and `systemd-tmpfiles --create --boot --root` run on it;
/// - the deployment's immutable bit is cleared, so it can be removed.
///
/// Never panics on the importer's failures: they are data for the test.
pub fn import(work: &Path, imgref: &str) -> Imported {
    let unverified = format!("ostree-unverified-image:{imgref}");
    let repo_dir = work.join("repo");
    let repo_arg = format!("--repo={}", repo_dir.display());
    let pull =
        attempt(Command::new("ostree").args([&repo_arg, "init", "--mode=bare"])).and_then(|_| {
            attempt(&mut command(&[
                "container",
                "image",
                "pull",
                "--quiet",
                repo_dir.to_str().unwrap(),
                &unverified,
            ]))
        });
    let deploy = deploy(work, &unverified);
    Imported { pull, deploy }
}

fn deploy(work: &Path, unverified: &str) -> Result<Deployment, String> {
    let sysroot = work.join("sysroot");
    fs::create_dir(&sysroot).map_err(|e| e.to_string())?;
    let sysroot_arg = format!("--sysroot={}", sysroot.display());
    attempt(Command::new("ostree").args(["admin", "init-fs", sysroot.to_str().unwrap()]))?;
    attempt(Command::new("ostree").args(["admin", &sysroot_arg, "os-init", STATEROOT]))?;
    attempt(&mut command(&[
        "container",
        "image",
        "deploy",
        "--sysroot",
        sysroot.to_str().unwrap(),
        "--stateroot",
        STATEROOT,
        "--imgref",
        unverified,
    ]))?;
    let stateroot = sysroot.join("ostree/deploy").join(STATEROOT);
    let deployment = fs::read_dir(stateroot.join("deploy"))
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.is_dir())
        .ok_or("no deployment directory")?;
    // ostree makes a deployment's root immutable (chattr +i): lift that, so
    // the scratch dir can be removed (by the test, the sweep of stale
    // scratch dirs, or cargo clean).
    attempt(Command::new("chattr").arg("-i").arg(&deployment))?;
    // /var of a booted deployment is the stateroot's var.
    let var = deployment.join("var");
    attempt(
        Command::new("mount")
            .arg("--bind")
            .arg(stateroot.join("var"))
            .arg(&var),
    )?;
    let root_arg = format!("--root={}", deployment.display());
    let setup = attempt(Command::new("systemd-sysusers").arg(&root_arg)).and_then(|_| {
        attempt(Command::new("systemd-tmpfiles").args(["--create", "--boot", &root_arg]))
    });
    // What the tests read under /var is the stateroot's: unmount either way.
    attempt(Command::new("umount").arg(&var))?;
    setup?;
    Ok(Deployment {
        root: deployment,
        var: stateroot.join("var"),
    })
}
