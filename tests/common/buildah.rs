//! The real buildah on a private storage, under either storage driver.
//!
//! buildah runs as root with `--isolation chroot` and a private storage
//! (`--root`, `--runroot`, storage.conf, signature policy) under a scratch
//! dir, so the host's container storage is never touched. Calls are
//! serialized across the whole test process: the builds are short, and one
//! at a time keeps the storage's copying off both cores.
//!
//! The two drivers treat the hardlinks of ostree-native images differently:
//! `vfs` copies a layer with its hardlinks kept, so a RUN step that writes a
//! base file in place also writes every other name of that inode (the
//! embedded repository's object); `overlay`'s copy-up breaks the link. Both
//! are common, so tests that care run under both ([`Driver::ALL`]).
//! [`overlay_unavailable`] says why overlay cannot run here, if it cannot.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// A containers/storage driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// Full copies of each layer; hardlinks are kept.
    Vfs,
    /// The kernel's overlayfs; copy-up breaks hardlinks.
    Overlay,
}

impl Driver {
    pub const ALL: [Driver; 2] = [Driver::Vfs, Driver::Overlay];

    /// The name storage.conf and `--storage-driver` take.
    pub fn name(self) -> &'static str {
        match self {
            Driver::Vfs => "vfs",
            Driver::Overlay => "overlay",
        }
    }
}

/// A test file's shared buildah fixture, set up once per process by
/// `setup` and kept in `cell`; `None` (after saying why, once, naming
/// `tests`) where buildah cannot run. A failed setup is remembered, so that
/// each test reports it instead of building everything again.
pub fn shared_fixture<T: Sync + Send>(
    cell: &'static OnceLock<Result<T, String>>,
    tests: &str,
    setup: fn() -> T,
) -> Option<&'static T> {
    static SKIP: OnceLock<Option<String>> = OnceLock::new();
    let skip = SKIP.get_or_init(|| {
        let why = unavailable()?;
        // Straight to stderr: the test harness captures print macros only,
        // and a skip must be visible in the log.
        let _ = std::io::Write::write_fmt(
            &mut std::io::stderr().lock(),
            format_args!("SKIPPED the {tests}: {why}\n"),
        );
        Some(why)
    });
    if skip.is_some() {
        return None;
    }
    let env = cell.get_or_init(|| {
        std::panic::catch_unwind(setup).map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".to_string())
        })
    });
    match env {
        Ok(env) => Some(env),
        Err(msg) => panic!("setting up the {tests} failed: {msg}"),
    }
}

/// Why buildah cannot run here at all (not root, or not installed), or
/// `None`. In CI (`CI` set) a missing buildah is a failure: `.ci/run` must
/// install it.
pub fn unavailable() -> Option<String> {
    let uid = super::sh("id", &["-u"]);
    if uid.trim() != "0" {
        return Some(format!(
            "needs root (buildah --isolation chroot, rpm --root), running as uid {}",
            uid.trim()
        ));
    }
    match Command::new("buildah").arg("--version").output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => panic!(
            "buildah --version failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("CI").is_none(),
                "buildah is not installed, and CI must run this test: \
                 add buildah to the apt-get install line of .ci/run"
            );
            Some("buildah is not installed (apt-get install buildah)".to_string())
        }
        Err(e) => panic!("running buildah: {e}"),
    }
}

/// Why the overlay driver cannot run here, or `None`: tried once per
/// process by mounting a tiny overlayfs, which is what the driver does for
/// every container.
pub fn overlay_unavailable() -> Option<String> {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    WHY.get_or_init(|| {
        let dir = super::scratch_dir("overlay-probe-");
        let [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map(|d| {
            let p = dir.path().join(d);
            fs::create_dir(&p).unwrap();
            p
        });
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        let out = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(&merged)
            .output();
        match out {
            Ok(out) if out.status.success() => {
                super::sh("umount", &[merged.to_str().unwrap()]);
                None
            }
            Ok(out) => Some(format!(
                "the kernel's overlayfs does not mount here ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => Some(format!("running mount: {e}")),
        }
    })
    .clone()
}

/// buildah with its storage under one scratch dir.
pub struct Buildah {
    pub driver: Driver,
    root: PathBuf,
    runroot: PathBuf,
    tmp: PathBuf,
    storage_conf: PathBuf,
    policy: PathBuf,
}

/// What a `buildah bud` did.
pub struct Build {
    pub ok: bool,
    /// stdout then stderr.
    pub log: String,
}

impl Buildah {
    /// A private storage for `driver` under `work` (which must exist):
    /// `storage/`, `runroot/`, `tmp/`, `storage.conf` and `policy.json`.
    pub fn new(work: &Path, driver: Driver) -> Buildah {
        let b = Buildah {
            driver,
            root: work.join("storage"),
            runroot: work.join("runroot"),
            tmp: work.join("tmp"),
            storage_conf: work.join("storage.conf"),
            policy: work.join("policy.json"),
        };
        fs::create_dir(&b.tmp).unwrap();
        // Nothing from the host's /etc/containers: the storage and the
        // signature policy are ours.
        fs::write(
            &b.storage_conf,
            format!("[storage]\ndriver = \"{}\"\n", driver.name()),
        )
        .unwrap();
        fs::write(
            &b.policy,
            r#"{"default": [{"type": "insecureAcceptAnything"}]}"#,
        )
        .unwrap();
        b
    }

    pub fn policy(&self) -> String {
        self.policy.display().to_string()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("buildah");
        cmd.env("CONTAINERS_STORAGE_CONF", &self.storage_conf)
            .env("TMPDIR", &self.tmp)
            .env("BUILDAH_ISOLATION", "chroot")
            .env_remove("LD_LIBRARY_PATH")
            .arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.runroot)
            .args(["--storage-driver", self.driver.name()])
            .args(args);
        cmd
    }

    fn lock() -> std::sync::MutexGuard<'static, ()> {
        static LOCK: Mutex<()> = Mutex::new(());
        LOCK.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `buildah ARGS…`, which must succeed; its stdout, trimmed.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let _one_at_a_time = Self::lock();
        let out = super::check(&mut self.command(args));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `buildah ARGS…`, whatever its exit code: the caller judges it.
    pub fn output(&self, args: &[&str]) -> std::process::Output {
        let _one_at_a_time = Self::lock();
        let mut cmd = self.command(args);
        cmd.output()
            .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
    }

    /// `buildah push -q IMAGE DEST`.
    #[track_caller]
    pub fn push(&self, image: &str, dest: &str) {
        self.ok(&[
            "push",
            "-q",
            "--signature-policy",
            &self.policy(),
            image,
            dest,
        ]);
    }

    /// Copy the image at `source` (e.g. `oci:DIR:TAG`) into the storage as
    /// `tag`, with skopeo on the same storage. (`buildah pull` would name
    /// it after the source's path, which must then be lowercase.)
    #[track_caller]
    pub fn pull(&self, source: &str, tag: &str) {
        let dest = format!(
            "containers-storage:[{}@{}+{}]{tag}",
            self.driver.name(),
            self.root.display(),
            self.runroot.display()
        );
        let _one_at_a_time = Self::lock();
        super::check(
            Command::new("skopeo")
                .env("CONTAINERS_STORAGE_CONF", &self.storage_conf)
                .env("TMPDIR", &self.tmp)
                .env_remove("LD_LIBRARY_PATH")
                .args(["copy", "-q", "--policy", &self.policy(), source, &dest]),
        );
    }

    /// Commit the tree at `tree` as image `tag`, `FROM scratch` (owners,
    /// modes and xattrs kept by `cp -a`).
    #[track_caller]
    pub fn commit_tree(&self, tree: &Path, tag: &str) {
        let policy = self.policy();
        let ctr = self.ok(&["from", "--signature-policy", &policy, "scratch"]);
        let mnt = self.ok(&["mount", &ctr]);
        super::sh("cp", &["-a", "--", &format!("{}/.", tree.display()), &mnt]);
        self.ok(&["umount", &ctr]);
        self.ok(&["commit", "-q", "--signature-policy", &policy, &ctr, tag]);
        self.ok(&["rm", &ctr]);
    }

    /// `buildah from IMAGE` then `buildah mount`: the container and where
    /// its root is. `buildah rm` it when done.
    #[track_caller]
    pub fn mount(&self, image: &str) -> (String, PathBuf) {
        let ctr = self.ok(&[
            "from",
            "--pull=never",
            "--signature-policy",
            &self.policy(),
            image,
        ]);
        let mnt = PathBuf::from(self.ok(&["mount", &ctr]));
        (ctr, mnt)
    }

    /// `buildah bud` of `containerfile` in a context dir holding `files`,
    /// tagged `tag`.
    pub fn bud(&self, tag: &str, containerfile: &str, files: &[&Path]) -> Build {
        let context = self.context();
        let file = context.path().join("Containerfile");
        fs::write(&file, containerfile).unwrap();
        for file in files {
            fs::copy(file, context.path().join(file.file_name().unwrap())).unwrap();
        }
        self.bud_file(tag, &file, context.path(), &[])
    }

    /// A fresh, empty build context dir, removed when dropped.
    pub fn context(&self) -> tempfile::TempDir {
        tempfile::tempdir_in(&self.tmp).unwrap()
    }

    /// `buildah bud -f CONTAINERFILE --build-arg NAME=VALUE… CONTEXT`,
    /// tagged `tag`: a Containerfile as a user builds it, from wherever it
    /// lives, with the context dir the caller filled.
    pub fn bud_file(
        &self,
        tag: &str,
        containerfile: &Path,
        context: &Path,
        build_args: &[(&str, &str)],
    ) -> Build {
        let policy = self.policy();
        let file_arg = containerfile.display().to_string();
        let context_arg = context.display().to_string();
        let build_args: Vec<String> = build_args
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        let mut args = vec![
            "bud",
            "--signature-policy",
            &policy,
            "--isolation",
            "chroot",
            "--pull=never",
            // One layer per step, as podman builds do (the last one holds
            // finalize's whiteouts); no container left by a failed build.
            "--layers",
            "--force-rm",
            "-f",
            &file_arg,
            "-t",
            tag,
        ];
        for arg in &build_args {
            args.extend_from_slice(&["--build-arg", arg]);
        }
        args.push(&context_arg);
        let started = Instant::now();
        let out = {
            let _one_at_a_time = Self::lock();
            self.command(&args).output().expect("running buildah bud")
        };
        eprintln!(
            "buildah ({}): bud {tag} took {:?}",
            self.driver.name(),
            started.elapsed()
        );
        Build {
            ok: out.status.success(),
            log: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
}
