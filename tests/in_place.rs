//! Builds that write base files in place through the image's hardlinks into
//! its own ostree repository, as buildah's vfs driver leaves them: the tree
//! is a hardlinked checkout of `/sysroot/ostree/repo`, so a write in place
//! changes the object too. (ostree-ext exports `bare-split-xattrs`, which
//! libostree 2022.7 cannot commit to; `bare` keeps the same hardlinks.)
//! The verdicts must be what they are on a tree whose hardlinks are broken.
//! (tests/real_format.rs proves the same with real buildah builds and the
//! real importer; these are the quick, in-process versions.)

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Layout, Outcome, rpm_in, rpm_path, run};

const REF: &str = "fedora/x86_64/coreos/stable";

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn ostree(args: &[&str]) -> String {
    let out = Command::new("ostree").args(args).output().expect("ostree");
    assert!(
        out.status.success(),
        "ostree {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// rpm-ostree's package list of the tree's rpmdb, in GVariant text.
fn pkglist(root: &Path) -> String {
    let out = Command::new("rpm")
        .args([
            "--root",
            s(root),
            "--dbpath",
            "/usr/lib/sysimage/rpm",
            "-qa",
        ])
        .args([
            "--qf",
            "('%{NAME}', '%{EPOCHNUM}', '%{VERSION}', '%{RELEASE}', '%{ARCH}')\n",
        ])
        .output()
        .expect("rpm -qa");
    assert!(out.status.success());
    let items: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    format!("@a(sssss) [{}]", items.join(", "))
}

/// An image tree: the FCOS-layout base committed into its own
/// `/sysroot/ostree/repo`, checked out over itself with hardlinks.
/// `basedb`: the base also carries rpm-ostree's copy of its rpmdb.
/// `with_pkglist`: the commit records `rpmostree.rpmdb.pkglist`.
fn image(basedb: bool, with_pkglist: bool) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = common::base_tree_of(Layout::Fcos);
    if basedb {
        let db = base.path("/usr/lib/sysimage/rpm-ostree-base-db");
        std::fs::create_dir_all(&db).expect("mkdir");
        std::fs::copy(
            base.path("/usr/lib/sysimage/rpm/rpmdb.sqlite"),
            db.join("rpmdb.sqlite"),
        )
        .expect("copy");
    }
    // Two base files with one content: one object, two hardlinks.
    std::fs::create_dir_all(base.path("/usr/share/doc/same")).expect("mkdir");
    for name in ["a", "b"] {
        std::fs::write(base.path(&format!("/usr/share/doc/same/{name}")), "same\n").expect("write");
    }
    let root = tmp.path().join("root");
    let repo = root.join("sysroot/ostree/repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    let r = format!("--repo={}", s(&repo));
    ostree(&["init", &r, "--mode=bare"]);
    let meta = format!(
        "--add-metadata=rpmostree.rpmdb.pkglist={}",
        pkglist(base.root())
    );
    // rpm's query left -shm/-wal behind; a composed base has none.
    for f in ["rpmdb.sqlite-shm", "rpmdb.sqlite-wal"] {
        let _ = std::fs::remove_file(base.path("/usr/lib/sysimage/rpm").join(f));
    }
    let t = format!("--tree=dir={}", s(base.root()));
    let mut args = vec!["commit", &r, "-b", REF, "-s", "base", &t];
    if with_pkglist {
        args.push(&meta);
    }
    ostree(&args);
    // Everything but /sysroot, hardlinked to the objects.
    ostree(&["checkout", &r, "-H", "--union", REF, s(&root)]);
    (tmp, root)
}

/// `rpm -i` of a package the base does not have, as a RUN step would:
/// the rpm database is written in place.
fn install_extra_tool(root: &Path) {
    rpm_in(
        root,
        &[
            "-i",
            "--nodeps",
            "--noscripts",
            s(&rpm_path("extra-tool-1.0-1")),
        ],
    );
}

fn finalize(root: &Path, extra: &[&str]) -> Outcome {
    let mut args = vec!["finalize", "--root", s(root), "--format", "json"];
    args.extend_from_slice(extra);
    run(&args)
}

fn nlink(p: &Path) -> u64 {
    std::fs::symlink_metadata(p).expect("stat").nlink()
}

fn objects(root: &Path) -> usize {
    walk_count(&root.join("sysroot/ostree/repo/objects"))
}

fn walk_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("readdir")
        .map(|e| {
            let e = e.expect("entry");
            if e.file_type().expect("type").is_dir() {
                walk_count(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn an_untouched_hardlinked_image_passes() {
    let (_tmp, root) = image(false, true);
    assert!(nlink(&root.join("usr/bin/base-tool")) >= 2);
    let out = finalize(&root, &["--dry-run"]);
    out.expect_code(0);
    let json = out.json();
    assert!(
        json["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .all(|f| f["level"] != "deny" && f["check"] != "base-packages-unknown")
    );
    assert_eq!(json["packages"]["added"], serde_json::json!([]), "{json:#}");
}

#[test]
fn chmod_and_overwrite_in_place_are_base_modified_once_per_object() {
    let (_tmp, root) = image(false, true);
    let tool = root.join("usr/bin/base-tool");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o4755)).expect("chmod");
    let out = finalize(&root, &["--dry-run"]);
    out.expect_code(1);
    let json = out.json();
    let f = common::finding(&json, "base-modified", "/usr/bin/base-tool");
    let msg = f["message"].as_str().expect("message");
    assert!(
        msg.contains("written in place") && msg.contains("mode 4755"),
        "{f}"
    );
    // chmod keeps the object's zero mtime: the importer's trap is named.
    assert!(msg.contains("kept the object's zero mtime"), "{f}");
    assert_eq!(f["package"], "base-utils-1.0-1.noarch", "{f}");

    // Two base paths with one content share one object: writing one in
    // place is one finding naming both.
    let (_tmp2, root) = image(false, true);
    assert_eq!(nlink(&root.join("usr/share/doc/same/a")), 3);
    std::fs::OpenOptions::new()
        .append(true)
        .open(root.join("usr/share/doc/same/b"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"more\n"))
        .expect("append");
    let out = finalize(&root, &["--dry-run"]);
    out.expect_code(1);
    let json = out.json();
    let denies: Vec<_> = common::findings(&json, "base-modified");
    assert_eq!(denies.len(), 1, "{json:#}");
    assert_eq!(denies[0]["path"], "/usr/share/doc/same/a", "{json:#}");
    let msg = denies[0]["message"].as_str().expect("message");
    // An append moves the mtime: no importer trap.
    assert!(!msg.contains("zero mtime"), "{msg}");
    assert!(
        msg.contains("Changed with it, through the same object: /usr/share/doc/same/b"),
        "{msg}"
    );
}

#[test]
fn rpm_install_in_place_passes_lists_the_package_and_repairs_the_repository() {
    let (_tmp, root) = image(false, true);
    let db = root.join("usr/lib/sysimage/rpm/rpmdb.sqlite");
    assert!(nlink(&db) >= 2, "the rpmdb is a hardlink to its object");
    install_extra_tool(&root);
    let before = objects(&root);
    let out = finalize(&root, &[]);
    out.expect_code(0);
    let json = out.json();
    assert_eq!(
        json["packages"]["added"],
        serde_json::json!(["extra-tool-1.0-1.noarch"]),
        "{json:#}"
    );
    common::assert_matches_schema(&json);
    assert!(
        json["base"]
            .as_str()
            .expect("base")
            .contains("rpmostree.rpmdb.pkglist"),
        "{json:#}"
    );
    // The rpmdb is its own file now, and the broken object is gone.
    assert_eq!(nlink(&db), 1);
    assert_eq!(objects(&root), before - 1, "{:#}", json["plan"]["in_place"]);
    let record =
        std::fs::read_to_string(root.join("usr/lib/ostree-finalize/record.json")).expect("record");
    assert!(record.contains("extra-tool-1.0-1.noarch"), "{record}");

    // Running it again changes nothing and says the same.
    let digest = common::tree_digest(&root);
    let again = finalize(&root, &[]);
    again.expect_code(0);
    assert_eq!(again.json()["packages"], json["packages"]);
    assert_eq!(common::tree_digest(&root), digest);
}

#[test]
fn without_a_package_list_a_written_rpmdb_leaves_the_base_packages_unknown() {
    let (_tmp, root) = image(false, false);
    install_extra_tool(&root);
    let out = finalize(&root, &["--dry-run"]);
    out.expect_code(0);
    let json = out.json();
    let f = &common::findings(&json, "base-packages-unknown")[0];
    assert_eq!(f["level"], "warn");
    assert!(
        f["message"]
            .as_str()
            .expect("msg")
            .contains("rpmostree.rpmdb.pkglist"),
        "{f}"
    );
    assert_eq!(json["packages"]["added"], serde_json::json!([]), "{json:#}");
}

#[test]
fn a_user_appended_in_place_gets_a_sysusers_entry() {
    let (_tmp, root) = image(false, true);
    for (file, line) in [
        ("etc/passwd", "app:x:1000:1000::/var/home/app:/bin/sh\n"),
        ("etc/group", "app:x:1000:\n"),
    ] {
        assert!(nlink(&root.join(file)) >= 2);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(root.join(file))
            .expect("open");
        std::io::Write::write_all(&mut f, line.as_bytes()).expect("append");
    }
    let out = finalize(&root, &[]);
    out.expect_code(0);
    let sysusers = std::fs::read_to_string(root.join("usr/lib/sysusers.d/ostree-finalize.conf"))
        .expect("sysusers.d written");
    assert!(sysusers.contains("u app 1000:1000"), "{sysusers}");
    assert!(sysusers.contains("g app 1000"), "{sysusers}");
    // The base's users are proven by the prefix of the file that hashes
    // to the base's checksum: they are not added.
    assert!(
        !sysusers.contains("u root") && !sysusers.contains("g wheel"),
        "{sysusers}"
    );
    assert_eq!(nlink(&root.join("etc/passwd")), 1);
}

#[test]
fn rpm_install_on_a_base_with_rpm_ostree_base_db_passes_and_rebuilds_the_record() {
    let (_tmp, root) = image(true, true);
    let record = root.join("usr/lib/sysimage/rpm-ostree-base-db/rpmdb.sqlite");
    let db = root.join("usr/lib/sysimage/rpm/rpmdb.sqlite");
    assert_eq!(
        std::fs::metadata(&record).expect("stat").ino(),
        std::fs::metadata(&db).expect("stat").ino(),
        "the record and the rpmdb are one object"
    );
    install_extra_tool(&root);
    let out = finalize(&root, &[]);
    out.expect_code(0);
    let json = out.json();
    common::assert_matches_schema(&json);
    assert!(
        common::findings(&json, "base-modified").is_empty(),
        "{json:#}"
    );
    assert_eq!(
        json["packages"]["added"],
        serde_json::json!(["extra-tool-1.0-1.noarch"]),
        "{json:#}"
    );
    // The record holds the base's packages again, read by the real rpm.
    let q = Command::new("rpm")
        .args(["--dbpath", s(record.parent().expect("dir")), "-qa"])
        .output()
        .expect("rpm -qa");
    let mut listed: Vec<String> = String::from_utf8_lossy(&q.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    listed.sort();
    assert_eq!(listed, ["base-lib-1.0-1.noarch", "base-utils-1.0-1.noarch"]);
    assert_ne!(
        std::fs::metadata(&record).expect("stat").ino(),
        std::fs::metadata(&db).expect("stat").ino()
    );
}

#[test]
fn the_exports_var_tmp_is_base_content() {
    let (_tmp, root) = image(false, true);
    // The commit has no /var/tmp (the fixture's is removed before the
    // commit below); ostree-ext's export adds one.
    let repo = root.join("sysroot/ostree/repo");
    let r = format!("--repo={}", s(&repo));
    let src = tempfile::tempdir().expect("tempdir");
    let co = src.path().join("co");
    ostree(&["checkout", &r, REF, s(&co)]);
    std::fs::remove_dir(co.join("var/tmp")).expect("rm var/tmp");
    let t = format!("--tree=dir={}", s(&co));
    ostree(&["commit", &r, "-b", REF, "-s", "no var/tmp", &t]);
    // Keep only the new commit, as an exported image has one.
    ostree(&["prune", &r, "--refs-only", "--depth=0"]);
    let out = finalize(&root, &["--dry-run"]);
    out.expect_code(0);
    let json = out.json();
    let removed_var_tmp = json["plan"]["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .any(|a| a["path"] == "/var/tmp");
    assert!(!removed_var_tmp, "{json:#}");
    assert!(root.join("var/tmp").is_dir());
}

#[test]
fn a_file_replaced_by_rename_names_ostree_checksums_and_the_real_sizes() {
    // As overlay storage does on the first write: a new inode, the object
    // untouched. The change is itemized, with ostree checksums.
    let (_tmp, root) = image(false, true);
    let tool = root.join("usr/bin/base-tool");
    let size = std::fs::metadata(&tool).expect("stat").len();
    let new = root.join("usr/bin/.base-tool.new");
    std::fs::write(&new, "replaced\n").expect("write");
    std::fs::set_permissions(&new, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::rename(&new, &tool).expect("rename");
    let out = finalize(&root, &["--dry-run"]);
    out.expect_code(1);
    let json = out.json();
    let f = common::finding(&json, "base-modified", "/usr/bin/base-tool");
    let msg = f["message"].as_str().expect("message");
    assert!(
        msg.contains("content of base path")
            && msg.contains(": ostree ")
            && msg.contains(&format!("({size} bytes) → "))
            && msg.contains("(9 bytes)")
            && !msg.contains("written in place"),
        "{msg}"
    );
}
