//! Shared fixtures for the integration tests.
//!
//! - [`rpms`] builds the fixture RPMs (`fixtures/specs/`) once per test
//!   process with the real `rpmbuild`; [`rpm_path`] names one of them.
//! - [`base_tree`] hands each test its own copy of a pristine base OS tree
//!   (`fixtures/make-base-tree.sh`): base-utils-1.0-1 and
//!   base-lib-2:1.0-1 installed with the real `rpm` into a sqlite rpmdb at
//!   `/usr/lib/sysimage/rpm`. The pristine tree is built once per process and
//!   copied with `cp -a`.
//! - [`rpm_in`] runs `rpm` against a tree.
//! - [`tree_digest`] fingerprints a whole tree, for "nothing on disk changed"
//!   assertions.
//! - [`bin`] and [`run`] drive the `ostree-finalize` binary.
//! - [`buildah`] runs the real buildah on a private storage, under the vfs
//!   or the overlay driver; [`e2e`] makes the tool's RPMs and the base
//!   trees of real Containerfile builds.
//! - [`ostree_ext`] builds the real ostree-ext command line (a test-only
//!   package, `tests/ostree-ext-cli`) and composes, encapsulates, imports
//!   and deploys ostree-native images with it.
//!
//! Everything here must run as root (ownership, device nodes, rpm installs).
//! Scratch space lives under cargo's `CARGO_TARGET_TMPDIR`; the per-process
//! RPMs and pristine tree stay there after the process exits (`cargo clean`
//! removes them), per-test copies are removed when the test ends.
#![allow(dead_code)]

pub mod buildah;
pub mod e2e;
pub mod ostree_ext;
pub mod registry;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Where the rpmdb lives in every fixture tree.
pub const DBPATH: &str = "/usr/lib/sysimage/rpm";

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A scratch directory under cargo's per-target tmp dir, named
/// `fixture-PID-PREFIX…` so that later runs can sweep what a dead process
/// left behind.
pub fn scratch_dir(prefix: &str) -> tempfile::TempDir {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(sweep_stale_scratch);
    tempfile::Builder::new()
        .prefix(&format!("fixture-{}-{prefix}", std::process::id()))
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap_or_else(|e| panic!("creating a scratch dir: {e}"))
}

/// Remove `fixture-PID-…` scratch dirs whose process is gone: the
/// once-per-process RPMs and pristine tree are never dropped.
fn sweep_stale_scratch() {
    let Ok(entries) = fs::read_dir(env!("CARGO_TARGET_TMPDIR")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("fixture-"))
            .and_then(|n| n.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Run a command, panicking with its output unless it exits 0.
#[track_caller]
fn check(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n--- stdout\n{}--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// The directory holding the fixture RPMs, built once per test process:
/// `base-utils-{0.9,1.0,1.1}-1.noarch.rpm`, `base-utils-1.0-2.noarch.rpm` (a
/// rebuild of 1.0-1 with identical files), `base-lib-1.0-1.noarch.rpm`
/// (epoch 2), `extra-tool-1.0-1.noarch.rpm`, `optapp-{1.0,2.0}-1.noarch.rpm`
/// (files in /opt/optapp) and `app-seed-{1.0,2.0}-1.noarch.rpm` (owns
/// /var/lib/app/seed); see `fixtures/build-rpms.sh`.
pub fn rpms() -> &'static Path {
    static RPMS: OnceLock<tempfile::TempDir> = OnceLock::new();
    RPMS.get_or_init(|| {
        let dir = scratch_dir("rpms-");
        check(Command::new(fixtures_dir().join("build-rpms.sh")).arg(dir.path()));
        dir
    })
    .path()
}

/// The path of one fixture RPM, by `NAME-VERSION-RELEASE` (no epoch), e.g.
/// `rpm_path("base-utils-1.1-1")`. Panics if there is no such RPM.
#[track_caller]
pub fn rpm_path(name_ver: &str) -> PathBuf {
    let path = rpms().join(format!("{name_ver}.noarch.rpm"));
    assert!(path.is_file(), "no fixture rpm {}", path.display());
    path
}

/// A test's own copy of the base tree; removed when dropped.
pub struct BaseTree {
    pub dir: tempfile::TempDir,
}

impl BaseTree {
    /// The root of the tree.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// An absolute path inside the tree: `tree.path("/etc/passwd")`.
    pub fn path(&self, abs: &str) -> PathBuf {
        self.root().join(abs.trim_start_matches('/'))
    }
}

/// How a base tree lays out the places ostree keeps in /var (see
/// `fixtures/make-base-tree.sh --layout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// fedora-bootc: /opt, /usr/local and /root are real directories.
    Bootc,
    /// Fedora CoreOS: opt -> var/opt, usr/local -> ../var/usrlocal,
    /// home, root, srv, mnt and media are links too, plus
    /// ostree -> sysroot/ostree and var/run -> ../run.
    Fcos,
}

impl Layout {
    /// Both layouts, for tests that must hold on either kind of base.
    pub const ALL: [Layout; 2] = [Layout::Bootc, Layout::Fcos];

    /// The builder's `--layout` value.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Bootc => "bootc",
            Layout::Fcos => "fcos",
        }
    }
}

/// The pristine base tree of a layout, built once per process. Never hand
/// it to a test directly: tests get copies from [`base_tree_of`].
fn pristine_tree(layout: Layout) -> &'static Path {
    static PRISTINE: [OnceLock<tempfile::TempDir>; 2] = [OnceLock::new(), OnceLock::new()];
    PRISTINE[layout as usize]
        .get_or_init(|| {
            let dir = scratch_dir("pristine-");
            check(
                Command::new(fixtures_dir().join("make-base-tree.sh"))
                    .args(["--layout", layout.name()])
                    .arg(dir.path())
                    .arg(rpms()),
            );
            dir
        })
        .path()
}

/// A fresh copy of the bootc-layout base tree (see
/// `fixtures/make-base-tree.sh`).
pub fn base_tree() -> BaseTree {
    base_tree_of(Layout::Bootc)
}

/// A fresh copy of the base tree of `layout`, made with `cp -a`, so
/// ownership, modes, symlinks and xattrs are the pristine tree's.
pub fn base_tree_of(layout: Layout) -> BaseTree {
    let pristine = pristine_tree(layout);
    let dir = scratch_dir("base-tree-");
    // `SRC/.` into the existing DST also gives DST the root's mode and owner.
    check(
        Command::new("cp")
            .arg("-a")
            .arg("--")
            .arg(pristine.join("."))
            .arg(dir.path()),
    );
    BaseTree { dir }
}

/// Whether this rpm is Debian's, which warns "use Alien instead!" on installs
/// unless given `--force-debian`.
fn rpm_has_force_debian() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        Command::new("rpm")
            .arg("--help")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("--force-debian"))
            .unwrap_or(false)
    })
}

/// Run `rpm --root ROOT --dbpath /usr/lib/sysimage/rpm ARGS…`; panics with
/// rpm's stderr unless it exits 0.
///
/// Note: even a read-only query (`-qa`, `-qf`) rewrites
/// `rpmdb.sqlite-shm` (and recreates `-shm`/`-wal` if missing), so take a
/// [`tree_digest`] after, not before, querying a tree with rpm.
#[track_caller]
pub fn rpm_in(root: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new("rpm");
    cmd.arg("--root").arg(root).args(["--dbpath", DBPATH]);
    // Only the rpmdb modes reject --force-debian.
    let db_mode = args.iter().any(|a| {
        matches!(
            *a,
            "--initdb" | "--rebuilddb" | "--verifydb" | "--exportdb" | "--importdb"
        )
    });
    if rpm_has_force_debian() && !db_mode {
        cmd.arg("--force-debian");
    }
    check(cmd.args(args))
}

/// A deterministic listing of a whole tree, one entry per line, sorted by
/// path, for `assert_eq!(tree_digest(a), tree_digest(b))`.
///
/// Each entry has: the path (absolute inside the tree, non-UTF-8 bytes
/// escaped), the type (`d f l b c p s`), the permission bits including
/// setuid/setgid/sticky, uid:gid, then per type the size and sha256
/// (files), the target (symlinks) or major:minor (devices). Each xattr
/// (all namespaces, via `getfattr`) follows its entry as an indented
/// `xattr NAME=0xHEX` line.
///
/// Ignored: atime, mtime, ctime, link count, inode numbers, directory sizes.
/// Symlinks are never followed.
pub fn tree_digest(root: &Path) -> String {
    let mut entries: BTreeMap<Vec<u8>, String> = BTreeMap::new();
    let mut files: Vec<(Vec<u8>, PathBuf)> = Vec::new();
    walk(root, b"/".to_vec(), &mut entries, &mut files);

    for (rel, sha) in sha256_files(&files) {
        let line = entries.get_mut(&rel).expect("hashed file was listed");
        line.push_str(" sha256=");
        line.push_str(&sha);
    }

    let mut out = String::new();
    let xattrs = xattrs(root);
    if xattrs.is_none() {
        out.push_str("# xattrs not compared: getfattr missing (apt-get install attr)\n");
    }
    let xattrs = xattrs.unwrap_or_default();
    for (rel, line) in &entries {
        out.push_str(line);
        out.push('\n');
        for attr in xattrs.get(rel).into_iter().flatten() {
            out.push_str("    xattr ");
            out.push_str(attr);
            out.push('\n');
        }
    }
    // xattrs reported for paths the walk did not see would be a bug here.
    for rel in xattrs.keys() {
        assert!(
            entries.contains_key(rel),
            "getfattr listed unknown path {}",
            show(rel)
        );
    }
    out
}

/// A path as shown in digests: UTF-8 as is, other bytes escaped.
fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

fn walk(
    path: &Path,
    rel: Vec<u8>,
    entries: &mut BTreeMap<Vec<u8>, String>,
    files: &mut Vec<(Vec<u8>, PathBuf)>,
) {
    let md = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        "d"
    } else if ft.is_file() {
        "f"
    } else if ft.is_symlink() {
        "l"
    } else if ft.is_block_device() {
        "b"
    } else if ft.is_char_device() {
        "c"
    } else if ft.is_fifo() {
        "p"
    } else if ft.is_socket() {
        "s"
    } else {
        "?"
    };
    let mut line = format!(
        "{} {kind} {:04o} {}:{}",
        show(&rel),
        md.mode() & 0o7777,
        md.uid(),
        md.gid()
    );
    if ft.is_file() {
        line.push_str(&format!(" size={}", md.size()));
        files.push((rel.clone(), path.to_path_buf()));
    } else if ft.is_symlink() {
        let target =
            fs::read_link(path).unwrap_or_else(|e| panic!("readlink {}: {e}", path.display()));
        line.push_str(&format!(" -> {}", show(target.as_os_str().as_bytes())));
    } else if ft.is_block_device() || ft.is_char_device() {
        let rdev = md.rdev();
        let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
        let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
        line.push_str(&format!(" rdev={major}:{minor}"));
    }
    entries.insert(rel.clone(), line);

    if ft.is_dir() {
        let mut names: Vec<OsString> = fs::read_dir(path)
            .unwrap_or_else(|e| panic!("readdir {}: {e}", path.display()))
            .map(|e| {
                e.unwrap_or_else(|e| panic!("readdir {}: {e}", path.display()))
                    .file_name()
            })
            .collect();
        names.sort();
        for name in names {
            let mut child = rel.clone();
            if child != b"/" {
                child.push(b'/');
            }
            child.extend_from_slice(name.as_bytes());
            walk(&path.join(&name), child, entries, files);
        }
    }
}

/// sha256 of regular files, with `sha256sum -z` in batches.
fn sha256_files(files: &[(Vec<u8>, PathBuf)]) -> Vec<(Vec<u8>, String)> {
    let mut out = Vec::with_capacity(files.len());
    for batch in files.chunks(512) {
        let o = check(
            Command::new("sha256sum")
                .arg("-z")
                .arg("--")
                .args(batch.iter().map(|(_, p)| p)),
        );
        // Records are "HASH  NAME\0", in argument order; with -z, names are
        // never escaped, but skip a leading '\' just in case.
        let records: Vec<&[u8]> = o
            .stdout
            .split(|&b| b == 0)
            .filter(|r| !r.is_empty())
            .collect();
        assert_eq!(records.len(), batch.len(), "sha256sum output count");
        for ((rel, _), rec) in batch.iter().zip(records) {
            let rec = rec.strip_prefix(b"\\").unwrap_or(rec);
            out.push((
                rel.clone(),
                String::from_utf8_lossy(&rec[..64]).into_owned(),
            ));
        }
    }
    out
}

/// Every xattr in the tree, by path, from one `getfattr -R` run; `None` when
/// getfattr is not installed.
fn xattrs(root: &Path) -> Option<BTreeMap<Vec<u8>, Vec<String>>> {
    let out = match Command::new("getfattr")
        .env("LC_ALL", "C")
        .args([
            "-R",
            "-P",
            "-h",
            "-d",
            "-m",
            "-",
            "-e",
            "hex",
            "--absolute-names",
            "--",
        ])
        .arg(root)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("running getfattr: {e}"),
    };
    assert!(
        out.status.success(),
        "getfattr -R {} failed: {}",
        root.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let root = root.as_os_str().as_bytes();
    let mut map: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
    let mut current: Option<Vec<u8>> = None;
    for line in out.stdout.split(|&b| b == b'\n') {
        if let Some(name) = line.strip_prefix(b"# file: ") {
            let abs = unescape_octal(name);
            let rel = abs
                .strip_prefix(root)
                .unwrap_or_else(|| panic!("getfattr path {} outside root", show(&abs)));
            let rel = if rel.is_empty() {
                b"/".to_vec()
            } else {
                rel.to_vec()
            };
            current = Some(rel);
        } else if !line.is_empty() {
            let rel = current
                .clone()
                .expect("getfattr: attribute before '# file:'");
            map.entry(rel)
                .or_default()
                .push(String::from_utf8_lossy(line).into_owned());
        }
    }
    for attrs in map.values_mut() {
        attrs.sort();
    }
    Some(map)
}

/// Undo getfattr's `\ooo` escapes (it escapes `\` itself as `\134`).
fn unescape_octal(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let oct = |b: u8| (b'0'..=b'7').contains(&b);
        if s[i] == b'\\' && i + 3 < s.len() && s[i + 1..i + 4].iter().all(|&b| oct(b)) {
            let v = s[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, &b| acc * 8 + u32::from(b - b'0'));
            out.push(v as u8);
            i += 4;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// The `ostree-finalize` binary cargo built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ostree-finalize"))
}

/// What a run of the binary did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The exit code.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// stdout parsed as JSON; panics with the output if it is not JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }

    /// Panics, showing the output, unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code:\n{self}");
        self
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Run `ostree-finalize ARGS…`. Panics if it cannot be started or dies from
/// a signal; any exit code is returned.
#[track_caller]
pub fn run<S: AsRef<OsStr>>(args: &[S]) -> Outcome {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let outcome = Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        out.status.code().is_some(),
        "{cmd:?} was killed ({}):\n{outcome}",
        out.status
    );
    outcome
}

/// A fresh base tree with its base reference recorded at the default
/// location by `ostree-finalize snapshot`.
pub fn snapshotted() -> BaseTree {
    snapshotted_of(Layout::Bootc)
}

/// [`snapshotted`] for a base of `layout`.
pub fn snapshotted_of(layout: Layout) -> BaseTree {
    let tree = base_tree_of(layout);
    run(&["snapshot", "--root", tree.root().to_str().unwrap()]).expect_code(0);
    tree
}

/// `ostree-finalize finalize --root TREE --format json EXTRA…`.
pub fn finalize(tree: &BaseTree, extra: &[&str]) -> Outcome {
    let mut args = vec![
        "finalize",
        "--root",
        tree.root().to_str().unwrap(),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// Run a host command that must succeed; its stdout.
pub fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every finding of `check` in a JSON report.
pub fn findings<'a>(json: &'a serde_json::Value, check: &str) -> Vec<&'a serde_json::Value> {
    json["findings"]
        .as_array()
        .expect("findings array")
        .iter()
        .filter(|f| f["check"] == check)
        .collect()
}

/// The single finding of `check` about `path`.
pub fn finding<'a>(json: &'a serde_json::Value, check: &str, path: &str) -> &'a serde_json::Value {
    let hits: Vec<_> = findings(json, check)
        .into_iter()
        .filter(|f| f["path"] == path)
        .collect();
    assert_eq!(hits.len(), 1, "one {check} finding for {path} in {json:#}");
    hits[0]
}

/// A `cp -a` copy of a whole tree (same rpm install times, owners, xattrs).
/// The report schema in the repository (`schema/report.schema.json`),
/// compiled once.
pub fn report_schema() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schema/report.schema.json"
        ))
        .expect("schema");
        let schema: serde_json::Value = serde_json::from_str(&text).expect("schema JSON");
        jsonschema::validator_for(&schema).expect("valid schema")
    })
}

/// Panic, listing every error and where it is, unless `json` is valid
/// against [`report_schema`].
#[track_caller]
pub fn assert_matches_schema(json: &serde_json::Value) {
    let errors: Vec<String> = report_schema()
        .iter_errors(json)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{json:#}");
}

pub fn clone_tree(tree: &BaseTree) -> BaseTree {
    let dir = tempfile::tempdir().unwrap();
    let src = format!("{}/.", tree.root().display());
    sh("cp", &["-a", &src, dir.path().to_str().unwrap()]);
    BaseTree { dir }
}

/// OCI image layouts built in the test with the `tar` crate: layers packed
/// from host trees (whole, or as the diff a container build would commit)
/// and images written as `oci:DIR:TAG`.
///
/// A copy of the helpers `tests/lint.rs` defines for itself (the same
/// code), shared here for `tests/lint_ostree.rs`.
pub mod oci {
    use std::collections::BTreeMap;
    use std::fs;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};

    use serde_json::{Value, json};
    use sha2::{Digest, Sha256};

    /// A tar header with owner root, a fixed mtime and `mode`.
    pub fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(size);
        h
    }

    /// Append a member whose name is written byte for byte, unchecked.
    pub fn append_raw(b: &mut tar::Builder<Vec<u8>>, name: &[u8], mut h: tar::Header, data: &[u8]) {
        let field = &mut h.as_old_mut().name;
        field.fill(0);
        field[..name.len()].copy_from_slice(name);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    /// How a layer blob is stored.
    #[derive(Clone, Copy, Debug)]
    pub enum Z {
        Plain,
        /// Several gzip members, split at arbitrary offsets (inside headers).
        GzipMembers,
        /// Several zstd frames.
        Zstd,
    }

    pub fn compress(tar: &[u8], z: Z) -> Vec<u8> {
        let thirds = [0, tar.len() / 3 + 7, 2 * tar.len() / 3 + 3, tar.len()];
        match z {
            Z::Plain => tar.to_vec(),
            Z::GzipMembers => {
                let mut out = Vec::new();
                for w in thirds.windows(2) {
                    let mut e =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                    e.write_all(&tar[w[0]..w[1]]).unwrap();
                    out.extend(e.finish().unwrap());
                }
                out
            }
            Z::Zstd => {
                let mut out = Vec::new();
                for w in thirds.windows(2) {
                    out.extend(zstd::encode_all(&tar[w[0]..w[1]], 3).unwrap());
                }
                out
            }
        }
    }

    pub fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    /// Write a blob into `dir/blobs/sha256/`; returns its descriptor.
    pub fn blob(dir: &Path, media_type: &str, bytes: &[u8]) -> Value {
        let digest = sha(bytes);
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).unwrap();
        fs::write(blobs.join(&digest), bytes).unwrap();
        json!({"mediaType": media_type, "digest": format!("sha256:{digest}"), "size": bytes.len()})
    }

    pub fn config_json(tars: &[&[u8]], labels: &[(&str, &str)]) -> Vec<u8> {
        let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
        let diff_ids: Vec<String> = tars.iter().map(|t| format!("sha256:{}", sha(t))).collect();
        serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": labels},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap()
    }

    /// Add an image tagged `tag` to the OCI layout at `dir` (created as
    /// needed): `layers` are tars, stored compressed as `z` says.
    pub fn add_oci_image(dir: &Path, tag: &str, layers: &[&[u8]], z: Z, labels: &[(&str, &str)]) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let media = match z {
            Z::Plain => "application/vnd.oci.image.layer.v1.tar",
            Z::GzipMembers => "application/vnd.oci.image.layer.v1.tar+gzip",
            Z::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        };
        let layer_descs: Vec<Value> = layers
            .iter()
            .map(|t| blob(dir, media, &compress(t, z)))
            .collect();
        let config = blob(
            dir,
            "application/vnd.oci.image.config.v1+json",
            &config_json(layers, labels),
        );
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config,
            "layers": layer_descs,
        }))
        .unwrap();
        let mut desc = blob(dir, "application/vnd.oci.image.manifest.v1+json", &manifest);
        desc["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        let index_path = dir.join("index.json");
        let mut index: Value = match fs::read(&index_path) {
            Ok(b) => serde_json::from_slice(&b).unwrap(),
            Err(_) => json!({"schemaVersion": 2, "manifests": []}),
        };
        index["manifests"].as_array_mut().unwrap().push(desc);
        fs::write(index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    }

    /// Append `root` (a host directory) as a whole layer: every path, with
    /// its owner and mode, symlinks as symlinks.
    pub fn pack_tree(root: &Path) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(
            &fs::symlink_metadata(root).unwrap(),
            tar::HeaderMode::Complete,
        );
        append_raw(&mut b, b"./", h, b"");
        let mut paths = Vec::new();
        list(root, Path::new(""), &mut paths);
        for rel in paths {
            append_path(&mut b, root, &rel);
        }
        b.into_inner().unwrap()
    }

    /// Every path under `dir`, parents first, sorted.
    pub fn list(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
        let mut names: Vec<_> = fs::read_dir(root.join(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            let child = rel.join(&name);
            out.push(child.clone());
            if fs::symlink_metadata(root.join(&child)).unwrap().is_dir() {
                list(root, &child, out);
            }
        }
    }

    pub fn append_path(b: &mut tar::Builder<Vec<u8>>, root: &Path, rel: &Path) {
        let full = root.join(rel);
        let md = fs::symlink_metadata(&full).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(&md, tar::HeaderMode::Complete);
        if md.file_type().is_symlink() {
            b.append_link(&mut h, rel, fs::read_link(&full).unwrap())
                .unwrap();
        } else if md.is_file() {
            b.append_data(&mut h, rel, fs::File::open(&full).unwrap())
                .unwrap();
        } else {
            h.set_size(0);
            b.append_data(&mut h, rel, std::io::empty()).unwrap();
        }
    }

    /// What a container build's diff layer between two trees holds: every
    /// path of `new` that is new or differs from `old`, and a whiteout for
    /// every topmost path of `old` that `new` lacks.
    pub fn pack_diff(old: &Path, new: &Path) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut new_paths = Vec::new();
        list(new, Path::new(""), &mut new_paths);
        for rel in &new_paths {
            if differs(&old.join(rel), &new.join(rel)) {
                append_path(&mut b, new, rel);
            }
        }
        let mut old_paths = Vec::new();
        list(old, Path::new(""), &mut old_paths);
        for rel in &old_paths {
            let gone = fs::symlink_metadata(new.join(rel)).is_err();
            let parent = rel.parent().unwrap_or(Path::new(""));
            let parent_is_dir = fs::symlink_metadata(new.join(parent)).is_ok_and(|m| m.is_dir());
            if gone && parent_is_dir {
                let name = format!(".wh.{}", rel.file_name().unwrap().to_str().unwrap());
                let mut h = header(tar::EntryType::Regular, 0o644, 0);
                b.append_data(&mut h, parent.join(name), std::io::empty())
                    .unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    pub fn differs(old: &Path, new: &Path) -> bool {
        let (Ok(a), Ok(b)) = (fs::symlink_metadata(old), fs::symlink_metadata(new)) else {
            return true;
        };
        if a.mode() != b.mode() || a.uid() != b.uid() || a.gid() != b.gid() {
            return true;
        }
        if a.is_file() {
            return fs::read(old).unwrap() != fs::read(new).unwrap();
        }
        if a.file_type().is_symlink() {
            return fs::read_link(old).unwrap() != fs::read_link(new).unwrap();
        }
        false
    }

    /// A layer's tar, member by member.
    pub struct Layer {
        b: tar::Builder<Vec<u8>>,
    }

    impl Layer {
        pub fn new() -> Layer {
            Layer {
                b: tar::Builder::new(Vec::new()),
            }
        }

        /// A member whose name is written byte for byte, unchecked (`../`,
        /// absolute names, the root `./`).
        pub fn raw(mut self, name: &[u8], h: tar::Header, data: &[u8]) -> Layer {
            append_raw(&mut self.b, name, h, data);
            self
        }

        pub fn dir(mut self, path: &str, mode: u32) -> Layer {
            let mut h = header(tar::EntryType::Directory, mode, 0);
            self.b.append_data(&mut h, path, std::io::empty()).unwrap();
            self
        }

        pub fn file(mut self, path: &str, content: impl AsRef<[u8]>, mode: u32) -> Layer {
            let content = content.as_ref();
            let mut h = header(tar::EntryType::Regular, mode, content.len() as u64);
            self.b.append_data(&mut h, path, content).unwrap();
            self
        }

        /// A file with PAX `SCHILY.xattr.*` records.
        pub fn file_xattrs(
            mut self,
            path: &str,
            content: &str,
            mode: u32,
            xattrs: &[(&str, &[u8])],
        ) -> Layer {
            let keys: Vec<String> = xattrs
                .iter()
                .map(|(k, _)| format!("SCHILY.xattr.{k}"))
                .collect();
            let pax: Vec<(&str, &[u8])> = keys
                .iter()
                .zip(xattrs)
                .map(|(k, (_, v))| (k.as_str(), *v))
                .collect();
            self.b.append_pax_extensions(pax).unwrap();
            self.file(path, content, mode)
        }

        pub fn symlink(mut self, path: &str, target: &str) -> Layer {
            let mut h = header(tar::EntryType::Symlink, 0o777, 0);
            self.b.append_link(&mut h, path, target).unwrap();
            self
        }

        pub fn hardlink(mut self, path: &str, target: &str) -> Layer {
            let mut h = header(tar::EntryType::Link, 0o644, 0);
            self.b.append_link(&mut h, path, target).unwrap();
            self
        }

        /// An empty regular file, as whiteouts are written.
        pub fn marker(self, path: &str) -> Layer {
            self.file(path, "", 0o644)
        }

        /// The whiteout of `path` (`DIR/.wh.NAME`).
        pub fn whiteout(self, path: &str) -> Layer {
            let (dir, name) = path.rsplit_once('/').expect("a path with a directory");
            self.marker(&format!("{dir}/.wh.{name}"))
        }

        /// The finalize record, as a finalized build has it.
        pub fn finalized(self) -> Layer {
            self.dir("usr/lib/ostree-finalize", 0o755).file(
                "usr/lib/ostree-finalize/record.json",
                "{}\n",
                0o644,
            )
        }

        pub fn tar(self) -> Vec<u8> {
            self.b.into_inner().unwrap()
        }
    }

    /// `ostree-finalize lint --format json ARGS…`.
    pub fn lint(args: &[&str]) -> super::Outcome {
        let mut all = vec!["lint", "--format", "json"];
        all.extend_from_slice(args);
        super::run(&all)
    }

    /// The findings of the checks on the tree (those `finalize` makes
    /// too): everything but the label and record checks only lint makes.
    pub fn tree_findings(json: &Value) -> Vec<Value> {
        json["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .filter(|f| {
                ![
                    "override-unlabeled",
                    "override-label-unused",
                    "not-finalized",
                ]
                .contains(&f["check"].as_str().expect("check"))
            })
            .cloned()
            .collect()
    }
}

/// A fresh deployment of a finalized tree: `var_dir` emptied, `user_line`
/// gone from /etc/passwd (the base's user database); then the real
/// systemd-sysusers must bring the user back and systemd-tmpfiles
/// `--create` rebuilds /var.
#[track_caller]
pub fn redeploy_with_systemd(tree: &BaseTree, var_dir: &str, user_line: &str) {
    std::fs::remove_dir_all(tree.path(var_dir)).unwrap();
    std::fs::create_dir(tree.path(var_dir)).unwrap();
    let passwd = std::fs::read_to_string(tree.path("/etc/passwd")).unwrap();
    assert!(passwd.contains(user_line), "{passwd}");
    std::fs::write(tree.path("/etc/passwd"), passwd.replace(user_line, "")).unwrap();
    let root_arg = format!("--root={}", tree.root().display());
    sh("systemd-sysusers", &[&root_arg]);
    let passwd = std::fs::read_to_string(tree.path("/etc/passwd")).unwrap();
    assert!(passwd.contains(user_line), "systemd-sysusers: {passwd}");
    sh("systemd-tmpfiles", &[&root_arg, "--create"]);
}

/// Run `script` with `sh -c` in a private mount namespace (`unshare -m`),
/// where its bind mounts stay; its outcome. Where no namespace can be made,
/// stderr says "unshare failed".
pub fn in_private_mounts(script: &str) -> Outcome {
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .output()
        .expect("running unshare");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
