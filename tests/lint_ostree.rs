//! `lint --image REF --base ostree:REPO[:REF]`: an image judged against
//! the ostree commit it was made from.
//!
//! Each test commits the fixture base tree (a real rpmdb, see
//! [`common::base_tree`]) with the real `ostree commit` into a repository
//! made by `ostree init`, packs the same tree as an image's first layer
//! (as a plain tree, or the way ostree's container images carry it: the
//! content at the repository's object paths, every path a hardlink to it),
//! adds a change layer, and asserts what the user sees: the exit code, the
//! check and the path in the JSON report. Where a directory tree with the
//! same change can be built, its `finalize --dry-run --base ostree:REPO`
//! findings must equal lint's, byte for byte.
//!
//! Everything runs as root (ownership, the rpm installs).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::oci::{
    Layer, Z, add_oci_image, append_path, append_raw, header, lint, list, pack_diff, pack_tree,
    tree_findings,
};
use common::{BaseTree, Outcome, findings, rpm_in, rpm_path, run, sh};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The base tree, committed, and an OCI layout to add images to.
struct Fixture {
    /// The committed tree.
    base: BaseTree,
    /// The repository holding it, as `main`.
    repo: PathBuf,
    /// The OCI layout directory.
    oci: PathBuf,
    tmp: tempfile::TempDir,
}

impl Fixture {
    /// Commit a fresh base tree into a new `mode` repository.
    fn new(mode: &str) -> Fixture {
        Fixture::with(mode, |_| {})
    }

    /// [`Fixture::new`], the base tree changed by `prepare` first.
    fn with(mode: &str, prepare: impl FnOnce(&Path)) -> Fixture {
        let tmp = tempfile::Builder::new()
            .prefix("lint-ostree-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("tempdir");
        let base = common::base_tree();
        prepare(base.root());
        let repo = tmp.path().join("repo");
        let r = format!("--repo={}", s(&repo));
        sh("ostree", &["init", &r, &format!("--mode={mode}")]);
        let t = format!("--tree=dir={}", s(base.root()));
        sh(
            "ostree",
            &[
                "commit",
                &r,
                "-b",
                "main",
                "-s",
                "base",
                "--no-bindings",
                &t,
            ],
        );
        let oci = tmp.path().join("oci");
        Fixture {
            base,
            repo,
            oci,
            tmp,
        }
    }

    /// `--base ostree:REPO:main`.
    fn spec(&self) -> String {
        format!("ostree:{}:main", s(&self.repo))
    }

    /// Add an image of `layers` tagged `tag`; its reference.
    fn image(&self, tag: &str, layers: &[&[u8]]) -> String {
        add_oci_image(&self.oci, tag, layers, Z::Zstd, &[]);
        format!("oci:{}:{tag}", s(&self.oci))
    }

    /// `lint --format json --image IMAGE --base ostree:REPO:main`.
    fn lint(&self, image: &str) -> Outcome {
        lint(&["--image", image, "--base", &self.spec()])
    }

    /// A copy of the base tree to change, as a build's directory would be.
    fn copy(&self, name: &str) -> PathBuf {
        let dir = self.tmp.path().join(name);
        fs::create_dir(&dir).expect("mkdir");
        let src = format!("{}/.", s(self.base.root()));
        sh("cp", &["-a", &src, s(&dir)]);
        dir
    }
}

/// `finalize --dry-run --root ROOT --base BASE --format json`.
fn finalize(root: &Path, base: &str) -> Outcome {
    run(&[
        "finalize",
        "--dry-run",
        "--root",
        s(root),
        "--base",
        base,
        "--format",
        "json",
    ])
}

/// (check, path) of every finding.
fn found(out: &Outcome) -> BTreeSet<(String, String)> {
    out.json()["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings array:\n{out}"))
        .iter()
        .map(|f| {
            (
                f["check"].as_str().expect("check").to_string(),
                f["path"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

/// The findings about base content.
fn base_findings(out: &Outcome) -> BTreeSet<(String, String)> {
    found(out)
        .into_iter()
        .filter(|(check, _)| check.starts_with("base-"))
        .collect()
}

fn pair(check: &str, path: &str) -> (String, String) {
    (check.to_string(), path.to_string())
}

/// The content of the base's `/usr/bin/base-tool`.
fn base_tool(f: &Fixture) -> Vec<u8> {
    fs::read(f.base.path("/usr/bin/base-tool")).expect("read base-tool")
}

// ---------------------------------------------------------------------------
// Single changes: exit code, check and path

/// Lint the base tree as one layer plus `change` against the commit.
fn one_change(change: Layer) -> Outcome {
    let f = Fixture::new("bare-user");
    let base = pack_tree(f.base.root());
    let image = f.image("derived", &[&base, &change.tar()]);
    f.lint(&image)
}

#[test]
fn an_unchanged_image_passes_and_names_the_commit() {
    let f = Fixture::new("bare-user");
    let base = pack_tree(f.base.root());
    let image = f.image("base", &[&base]);
    let out = f.lint(&image);
    out.expect_code(0);
    assert_eq!(base_findings(&out), BTreeSet::new(), "{out}");
    let json = out.json();
    let origin = json["base"].as_str().expect("base");
    assert!(
        origin.starts_with(&format!("{} (commit ", f.spec()))
            && origin.contains("packages from the commit's rpm database"),
        "{origin}"
    );
    // The same findings as finalize on the tree itself.
    let fin = finalize(f.base.root(), &f.spec());
    fin.expect_code(0);
    assert_eq!(tree_findings(&json), tree_findings(&fin.json()));
}

#[test]
fn a_modified_base_file_is_base_modified() {
    let out =
        one_change(Layer::new().file("usr/bin/base-tool", b"#!/bin/sh\necho patched\n", 0o755));
    out.expect_code(1);
    assert_eq!(
        base_findings(&out),
        BTreeSet::from([pair("base-modified", "/usr/bin/base-tool")]),
        "{out}"
    );
    assert!(
        found(&out).contains(&pair("override-unlabeled", "-")),
        "{out}"
    );
}

#[test]
fn a_chmod_is_base_modified() {
    let f = Fixture::new("bare-user");
    let content = fs::read(f.base.path("/usr/lib/base-utils/data.txt")).expect("read");
    let change = Layer::new().file("usr/lib/base-utils/data.txt", &content, 0o600);
    let base = pack_tree(f.base.root());
    let out = f.lint(&f.image("derived", &[&base, &change.tar()]));
    out.expect_code(1);
    assert_eq!(
        base_findings(&out),
        BTreeSet::from([pair("base-modified", "/usr/lib/base-utils/data.txt")]),
        "{out}"
    );
    let json = out.json();
    let finding = common::finding(&json, "base-modified", "/usr/lib/base-utils/data.txt");
    let message = finding["message"].as_str().expect("message");
    // The mode changed, the content did not.
    assert!(message.contains("mode 0644 → 0600"), "{message}");
    assert!(!message.contains("sha256"), "{message}");
}

#[test]
fn a_whiteout_is_base_removed() {
    let out = one_change(Layer::new().whiteout("usr/lib/os-release"));
    out.expect_code(1);
    assert_eq!(
        base_findings(&out),
        BTreeSet::from([pair("base-removed", "/usr/lib/os-release")]),
        "{out}"
    );
}

#[test]
fn an_added_file_passes() {
    let out = one_change(
        Layer::new()
            .dir("usr/local", 0o755)
            .dir("usr/local/bin", 0o755)
            .file("usr/local/bin/added", b"added\n", 0o755),
    );
    out.expect_code(0);
    assert_eq!(base_findings(&out), BTreeSet::new(), "{out}");
    assert!(
        !found(&out).iter().any(|(_, p)| p == "/usr/local/bin/added"),
        "{out}"
    );
}

#[test]
fn the_last_layer_to_write_a_file_wins() {
    let f = Fixture::new("bare-user");
    let base = pack_tree(f.base.root());
    let patched = Layer::new()
        .file("usr/bin/base-tool", b"patched\n", 0o755)
        .tar();
    let restored = Layer::new()
        .file("usr/bin/base-tool", base_tool(&f), 0o755)
        .tar();
    let out = f.lint(&f.image("restored", &[&base, &patched, &restored]));
    out.expect_code(0);
    assert_eq!(base_findings(&out), BTreeSet::new(), "{out}");
    let out = f.lint(&f.image("patched", &[&base, &restored, &patched]));
    out.expect_code(1);
    assert_eq!(
        base_findings(&out),
        BTreeSet::from([pair("base-modified", "/usr/bin/base-tool")]),
        "{out}"
    );
}

// ---------------------------------------------------------------------------
// The same findings as finalize

/// What a Containerfile might do to a base: a package added with the real
/// rpm, a base binary rewritten, a base file chmod-ed, one removed, files
/// added, configuration changed, a user added.
fn build_changes(tree: &Path) {
    rpm_in(
        tree,
        &[
            "-i",
            "--nodeps",
            "--noscripts",
            s(&rpm_path("extra-tool-1.0-1")),
        ],
    );
    fs::write(tree.join("usr/bin/base-tool"), "#!/bin/sh\necho replaced\n").expect("write");
    fs::set_permissions(
        tree.join("usr/lib/base-utils/data.txt"),
        fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    fs::remove_file(tree.join("usr/lib/os-release")).expect("rm");
    let conf = fs::read_to_string(tree.join("etc/base-utils.conf")).expect("read");
    fs::write(tree.join("etc/base-utils.conf"), conf + "added=by build\n").expect("write");
    fs::write(tree.join("etc/agent.conf"), "level=debug\n").expect("write");
    let passwd = fs::read_to_string(tree.join("etc/passwd")).expect("read")
        + "agent:x:990:990:Agent:/var/lib/agent:/usr/sbin/nologin\n";
    fs::write(tree.join("etc/passwd"), passwd).expect("write");
    fs::create_dir_all(tree.join("usr/lib/agent")).expect("mkdir");
    fs::write(tree.join("usr/lib/agent/agent.bin"), b"\x7fELF").expect("write");
    fs::create_dir_all(tree.join("var/lib/agent")).expect("mkdir");
    fs::write(tree.join("var/lib/agent/state"), "0\n").expect("write");
}

#[test]
fn the_same_change_gives_the_same_findings_as_finalize_against_the_commit() {
    let f = Fixture::new("bare-user");
    let new = f.copy("new");
    build_changes(&new);

    let fin = finalize(&new, &f.spec());
    fin.expect_code(1);
    let fin = fin.json();

    let base = pack_tree(f.base.root());
    let top = pack_diff(f.base.root(), &new);
    let out = f.lint(&f.image("derived", &[&base, &top]));
    out.expect_code(1);
    let json = out.json();
    assert_eq!(
        serde_json::to_string_pretty(&tree_findings(&json)).unwrap(),
        serde_json::to_string_pretty(&tree_findings(&fin)).unwrap(),
        "lint:\n{out}"
    );
    assert_eq!(json["packages"], fin["packages"]);
    assert_eq!(json["plan"], fin["plan"]);
    assert_eq!(json["base"], fin["base"]);
    assert_eq!(
        json["packages"]["added"],
        serde_json::json!(["extra-tool-1.0-1.noarch"])
    );
    for want in [
        pair("base-modified", "/usr/bin/base-tool"),
        pair("base-modified", "/usr/lib/base-utils/data.txt"),
        pair("base-removed", "/usr/lib/os-release"),
    ] {
        assert!(found(&out).contains(&want), "{want:?}\n{out}");
    }
    assert_eq!(base_findings(&out).len(), 3, "{out}");
    for check in ["etc-modified", "users-added", "var-content"] {
        assert!(
            found(&out).iter().any(|(c, _)| c == check),
            "the change makes a {check} finding:\n{out}"
        );
    }
}

#[test]
fn rpm_ostree_base_db_in_the_image_is_the_base_package_set_as_finalize_has_it() {
    // rpm-ostree's record of the base packages, here without base-lib.
    let f = Fixture::new("bare-user");
    let new = f.copy("new");
    let scratch = f.tmp.path().join("db");
    fs::create_dir_all(scratch.join("usr/lib/sysimage")).expect("mkdir");
    sh(
        "cp",
        &[
            "-a",
            s(&new.join("usr/lib/sysimage/rpm")),
            s(&scratch.join("usr/lib/sysimage/rpm")),
        ],
    );
    rpm_in(
        &scratch,
        &["-e", "--nodeps", "--noscripts", "--justdb", "base-lib"],
    );
    let db = new.join("usr/lib/sysimage/rpm-ostree-base-db");
    fs::create_dir(&db).expect("mkdir");
    fs::copy(
        scratch.join("usr/lib/sysimage/rpm/rpmdb.sqlite"),
        db.join("rpmdb.sqlite"),
    )
    .expect("copy");

    let fin = finalize(&new, &f.spec()).json();
    let base = pack_tree(f.base.root());
    let top = pack_diff(f.base.root(), &new);
    let out = f.lint(&f.image("derived", &[&base, &top]));
    let json = out.json();
    let origin = json["base"].as_str().expect("base");
    assert!(
        origin.contains("packages from /usr/lib/sysimage/rpm-ostree-base-db in the tree"),
        "{origin}"
    );
    assert_eq!(json["base"], fin["base"]);
    assert_eq!(
        json["packages"]["added"],
        serde_json::json!(["base-lib-2:1.0-1.noarch"]),
        "{out}"
    );
    assert_eq!(json["packages"], fin["packages"]);
    assert_eq!(tree_findings(&json), tree_findings(&fin));
}

// ---------------------------------------------------------------------------
// Hardlinks

/// `ostree ls -R -C main`: each regular file's content checksum, by path.
fn content_checksums(repo: &Path) -> BTreeMap<String, String> {
    let out = sh(
        "ostree",
        &["ls", &format!("--repo={}", s(repo)), "-R", "-C", "main"],
    );
    out.lines()
        .filter(|l| l.starts_with('-'))
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (fields[5..].join(" "), fields[4].to_string())
        })
        .collect()
}

/// Where ostree's container images keep a content object.
fn object_path(checksum: &str) -> String {
    format!(
        "sysroot/ostree/repo/objects/{}/{}.file",
        &checksum[..2],
        &checksum[2..]
    )
}

/// The base tree the way ostree's container images carry a commit: each
/// regular file's content once, at its repository object path (named by
/// the content checksum the real `ostree` computed), and every path of the
/// tree a hardlink to it; empty files, directories and symlinks as
/// themselves; the repository's config beside the objects.
fn pack_as_ostree_container(root: &Path, repo: &Path) -> Vec<u8> {
    let sums = content_checksums(repo);
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(
        &fs::symlink_metadata(root).expect("stat"),
        tar::HeaderMode::Complete,
    );
    append_raw(&mut b, b"./", h, b"");
    let config = b"[core]\nrepo_version=1\nmode=bare-split-xattrs\n";
    let mut h = header(tar::EntryType::Regular, 0o644, config.len() as u64);
    b.append_data(&mut h, "sysroot/ostree/repo/config", &config[..])
        .unwrap();
    let mut written = BTreeSet::new();
    let mut paths = Vec::new();
    list(root, Path::new(""), &mut paths);
    for rel in paths {
        let full = root.join(&rel);
        let md = fs::symlink_metadata(&full).expect("stat");
        if !md.is_file() || md.len() == 0 {
            append_path(&mut b, root, &rel);
            continue;
        }
        let sum = &sums[&format!("/{}", s(&rel))];
        let object = object_path(sum);
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(&md, tar::HeaderMode::Complete);
        if written.insert(sum.clone()) {
            b.append_data(
                &mut h.clone(),
                &object,
                fs::File::open(&full).expect("open"),
            )
            .unwrap();
        }
        h.set_entry_type(tar::EntryType::Link);
        h.set_size(0);
        b.append_link(&mut h, &rel, &object).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn the_ostree_container_layout_of_objects_and_hardlinks_is_judged_by_content() {
    let f = Fixture::new("bare-user");
    let base = pack_as_ostree_container(f.base.root(), &f.repo);
    let out = f.lint(&f.image("base", &[&base]));
    out.expect_code(0);
    assert_eq!(base_findings(&out), BTreeSet::new(), "{out}");
    assert!(
        !found(&out).iter().any(|(_, p)| p.starts_with("/sysroot")),
        "{out}"
    );
    let fin = finalize(f.base.root(), &f.spec()).json();
    assert_eq!(tree_findings(&out.json()), tree_findings(&fin), "{out}");

    // /var content owned by a base user: the plan names the owner from
    // /etc/passwd, a hardlink to an object here, as finalize does from the
    // tree's own file.
    let new = f.copy("new");
    fs::create_dir_all(new.join("var/lib/agent")).expect("mkdir");
    fs::write(new.join("var/lib/agent/state"), "0\n").expect("write");
    for p in ["var/lib/agent", "var/lib/agent/state"] {
        std::os::unix::fs::chown(new.join(p), Some(2), Some(2)).expect("chown");
    }
    let fin = finalize(&new, &f.spec());
    fin.expect_code(0);
    let fin = fin.json();
    let top = pack_diff(f.base.root(), &new);
    let out = f.lint(&f.image("var", &[&base, &top]));
    out.expect_code(0);
    let json = out.json();
    assert_eq!(tree_findings(&json), tree_findings(&fin), "{out}");
    assert_eq!(json["packages"], fin["packages"]);
    assert_eq!(json["plan"], fin["plan"]);
    assert!(
        json["plan"].to_string().contains("daemon daemon"),
        "the owner is named: {:#}",
        json["plan"]
    );

    // A build that wrote through the hardlink (a storage driver that keeps
    // hardlinks, vfs) changes the object and the path; the layer carries
    // both, the path as a hardlink to the object.
    let sums = content_checksums(&f.repo);
    let object = object_path(&sums["/usr/bin/base-tool"]);
    let change = Layer::new()
        .file(&object, b"#!/bin/sh\necho patched\n", 0o755)
        .hardlink("usr/bin/base-tool", &object)
        .tar();
    let out = f.lint(&f.image("patched", &[&base, &change]));
    out.expect_code(1);
    assert_eq!(
        base_findings(&out),
        BTreeSet::from([pair("base-modified", "/usr/bin/base-tool")]),
        "{out}"
    );

    // The object claims to be another base file's: its content decides.
    let other = object_path(&sums["/usr/lib/os-release"]);
    let change = Layer::new()
        .file(&other, base_tool(&f), 0o755)
        .hardlink("usr/bin/base-tool", &other)
        .tar();
    let out = f.lint(&f.image("misnamed", &[&base, &change]));
    out.expect_code(0);
    assert_eq!(base_findings(&out), BTreeSet::new(), "{out}");
}

#[test]
fn a_base_path_hardlinked_to_a_new_file_is_compared_by_its_content() {
    // A build that runs `ln -f /opt/copy /usr/bin/base-tool`: the layer has
    // the new file first and the base path as a hardlink to it, so the
    // content streamed by as a new file's. The base object tells.
    let f = Fixture::new("bare-user");
    let base = pack_tree(f.base.root());
    let same = Layer::new()
        .dir("opt", 0o755)
        .file("opt/copy", base_tool(&f), 0o755)
        .hardlink("usr/bin/base-tool", "opt/copy")
        .tar();
    let out = f.lint(&f.image("same", &[&base, &same]));
    out.expect_code(0);
    assert_eq!(base_findings(&out), BTreeSet::new(), "{out}");

    let other = Layer::new()
        .dir("opt", 0o755)
        .file("opt/copy", b"#!/bin/sh\necho other\n", 0o755)
        .hardlink("usr/bin/base-tool", "opt/copy")
        .tar();
    let out = f.lint(&f.image("other", &[&base, &other]));
    out.expect_code(1);
    assert_eq!(
        base_findings(&out),
        BTreeSet::from([pair("base-modified", "/usr/bin/base-tool")]),
        "{out}"
    );

    // The other way round: a new path hardlinked to an unchanged base
    // file is an addition.
    let alias = Layer::new()
        .file("usr/bin/base-tool", base_tool(&f), 0o755)
        .dir("usr/local", 0o755)
        .dir("usr/local/bin", 0o755)
        .hardlink("usr/local/bin/alias", "usr/bin/base-tool")
        .tar();
    let out = f.lint(&f.image("alias", &[&base, &alias]));
    out.expect_code(0);
    assert_eq!(base_findings(&out), BTreeSet::new(), "{out}");
}

#[test]
fn against_an_archive_repository_a_hardlink_is_compared_with_the_decompressed_object() {
    let f = Fixture::with("archive", |root| {
        fs::remove_dir_all(root.join("usr/lib/sysimage/rpm")).expect("rm rpmdb")
    });
    let base = pack_tree(f.base.root());
    let out = f.lint(&f.image("base", &[&base]));
    out.expect_code(0);
    assert_eq!(base_findings(&out), BTreeSet::new(), "{out}");

    let same = Layer::new()
        .dir("opt", 0o755)
        .file("opt/copy", base_tool(&f), 0o755)
        .hardlink("usr/bin/base-tool", "opt/copy")
        .tar();
    let out = f.lint(&f.image("same", &[&base, &same]));
    out.expect_code(0);
    assert_eq!(base_findings(&out), BTreeSet::new(), "{out}");

    // The same hardlink to different content is a change.
    let other = Layer::new()
        .dir("opt", 0o755)
        .file("opt/copy", b"not the base tool\n", 0o755)
        .hardlink("usr/bin/base-tool", "opt/copy")
        .tar();
    let out = f.lint(&f.image("other", &[&base, &other]));
    out.expect_code(1);
    assert_eq!(
        base_findings(&out),
        BTreeSet::from([pair("base-modified", "/usr/bin/base-tool")]),
        "{out}"
    );
}

// ---------------------------------------------------------------------------
// What is not supported says what to pass instead

#[test]
fn misplaced_and_missing_bases_are_exit_2_saying_what_to_pass() {
    let f = Fixture::new("bare-user");
    let base = pack_tree(f.base.root());
    let image = f.image("base", &[&base]);
    let spec = f.spec();
    let repo = s(&f.repo).to_string();
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        // An ostree commit where an image goes.
        (
            vec![
                "--image".into(),
                image.clone(),
                "--base-image".into(),
                spec.clone(),
            ],
            vec!["not an image reference", "--base ostree:REPO"],
        ),
        (
            vec!["--image".into(), spec.clone()],
            vec!["not an image reference", "--rootfs DIR"],
        ),
        // An image where a base file goes.
        (
            vec![
                "--image".into(),
                image.clone(),
                "--base".into(),
                image.clone(),
            ],
            vec!["image reference", "--base-image"],
        ),
        // Both kinds of base.
        (
            vec![
                "--image".into(),
                image.clone(),
                "--base".into(),
                spec.clone(),
                "--base-image".into(),
                image.clone(),
            ],
            vec!["--base-image"],
        ),
        // Bad commits.
        (
            vec![
                "--image".into(),
                image.clone(),
                "--base".into(),
                "ostree:".into(),
            ],
            vec!["no repository"],
        ),
        (
            vec![
                "--image".into(),
                image.clone(),
                "--base".into(),
                format!("ostree:{repo}-missing"),
            ],
            vec!["cannot open the ostree repository"],
        ),
        (
            vec![
                "--image".into(),
                image.clone(),
                "--base".into(),
                format!("ostree:{repo}:no-such-ref"),
            ],
            vec!["no-such-ref"],
        ),
    ];
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = lint(&args);
        out.expect_code(2);
        for w in want {
            assert!(out.stderr.contains(w), "{args:?}: wants {w:?}\n{out}");
        }
        assert!(!out.stderr.contains("cannot read"), "{args:?}\n{out}");
    }

    // No base at all: structural checks only, and the warning says how to
    // give one.
    let no_base_warning = |image: &str| {
        let out = lint(&["--image", image]);
        assert_ne!(out.code, 2, "{out}");
        let json = out.json();
        findings(&json, "no-base-reference")[0]["message"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let warning = no_base_warning(&image);
    assert!(warning.contains("--base-image REF"), "{warning}");

    // An image that carries an ostree repository is told why that is not
    // taken as the base.
    let container = pack_as_ostree_container(f.base.root(), &f.repo);
    let warning = no_base_warning(&f.image("container", &[&container]));
    assert!(
        warning.contains("/sysroot/ostree/repo") && warning.contains("--base ostree:REPO"),
        "{warning}"
    );
}

#[test]
fn an_image_whose_ostree_commit_label_names_another_commit_is_exit_2_with_both() {
    let f = Fixture::new("bare-user");
    let base = pack_tree(f.base.root());
    let commit = sh(
        "ostree",
        &["rev-parse", &format!("--repo={}", s(&f.repo)), "main"],
    );
    let commit = commit.trim();
    // The label the base image carries, inherited by what derives from it.
    let same = format!("oci:{}:same", s(&f.oci));
    add_oci_image(
        &f.oci,
        "same",
        &[&base],
        Z::Zstd,
        &[("ostree.commit", commit)],
    );
    f.lint(&same).expect_code(0);

    let other = "0".repeat(64);
    let wrong = format!("oci:{}:wrong", s(&f.oci));
    add_oci_image(
        &f.oci,
        "wrong",
        &[&base],
        Z::Zstd,
        &[("ostree.commit", &other)],
    );
    let out = f.lint(&wrong);
    out.expect_code(2);
    assert!(
        out.stderr.contains(&other) && out.stderr.contains(commit),
        "{out}"
    );
}
