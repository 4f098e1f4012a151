//! An ostree commit as the base reference, against the real `ostree` CLI.
//!
//! - Checksums: trees committed with `ostree commit` into `bare`,
//!   `bare-user`, `bare-user-only`, `archive` and (converted by hand, then
//!   accepted by `ostree fsck`) `bare-split-xattrs` repositories read back
//!   with the metadata and checksums `ostree ls -R -C` reports; the checksum
//!   the walk computes for every file of a checkout equals ostree's, and so
//!   does one computed from the file's own metadata.
//! - Diffs: a modified checkout gives the same changed paths as
//!   `ostree diff`.
//! - Verdicts: on checkouts made with `-H` (hardlinks into a bare
//!   repository) and `-U` (user mode, bare-user), changes give the same
//!   findings through `--base ostree:REPO:REF` as through a snapshot.
//!
//! Everything runs as root (ownership, setuid bits, `security.*` xattrs).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Outcome, rpm_in, rpm_path, run};
use ostree_finalize::engine::{self, Target};
use ostree_finalize::manifest::Kind;
use ostree_finalize::ostree::objects::{FileHeader, Meta, canonical_xattrs, file_checksum};
use ostree_finalize::rootfs;

/// Run `ostree ARGS…`; panics with its output unless it succeeds.
#[track_caller]
fn ostree(args: &[&str]) -> String {
    let out = Command::new("ostree")
        .args(args)
        .output()
        .expect("run ostree (apt-get install ostree)");
    assert!(
        out.status.success(),
        "ostree {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A repository of `mode` at `dir/NAME` with `tree` committed as `main`.
fn commit(dir: &Path, mode: &str, tree: &Path, extra: &[&str]) -> PathBuf {
    let repo = dir.join(format!("repo-{mode}"));
    let r = format!("--repo={}", s(&repo));
    ostree(&["init", &r, &format!("--mode={mode}")]);
    let mut args = vec!["commit", &r, "-b", "main", "-s", "base", "--no-bindings"];
    args.extend_from_slice(extra);
    let t = format!("--tree=dir={}", s(tree));
    args.push(&t);
    ostree(&args);
    repo
}

/// One line of `ostree ls -R -C`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    kind: char,
    mode: u32,
    uid: u32,
    gid: u32,
    /// Content checksum (files, symlinks) or dirtree checksum (directories).
    checksum: String,
    target: Option<String>,
}

/// `ostree ls -R -C main` of `repo`, by path.
fn ls(repo: &Path) -> BTreeMap<String, Listed> {
    let out = ostree(&["ls", &format!("--repo={}", s(repo)), "-R", "-C", "main"]);
    let mut map = BTreeMap::new();
    for line in out.lines() {
        let mut fields = line.split_whitespace();
        let mut next = || fields.next().expect("ls field");
        let tm = next();
        let (kind, mode) = tm.split_at(1);
        let uid = next().parse().expect("uid");
        let gid = next().parse().expect("gid");
        let _size = next();
        let checksum = next().to_string();
        let kind = kind.chars().next().expect("type");
        if kind == 'd' {
            let _dirmeta = next();
        }
        let rest: Vec<&str> = fields.collect();
        let rest = rest.join(" ");
        let (path, target) = match rest.split_once(" -> ") {
            Some((p, t)) if kind == 'l' => (p.to_string(), Some(t.to_string())),
            _ => (rest, None),
        };
        map.insert(
            path,
            Listed {
                kind,
                mode: u32::from_str_radix(mode, 8).expect("mode"),
                uid,
                gid,
                checksum,
                target,
            },
        );
    }
    map
}

/// A tree exercising what a file header holds: modes with setuid, other
/// owners, xattrs (user and security), symlinks (relative, absolute,
/// dangling), empty and large files, names with spaces and non-ASCII, a
/// directory big enough for 4-byte GVariant offsets, and /usr/etc.
fn rich_tree(root: &Path, xattrs: bool) {
    let w = |rel: &str, content: &[u8], mode: u32| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, content).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    w("usr/bin/tool", b"#!/bin/sh\necho tool\n", 0o755);
    w("usr/bin/suid", b"suid\n", 0o4755);
    let big: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    w("usr/lib/big.so", &big, 0o644);
    w("usr/lib/empty", b"", 0o644);
    w("usr/lib/owned", b"owned\n", 0o640);
    std::os::unix::fs::chown(root.join("usr/lib/owned"), Some(1000), Some(100)).expect("chown");
    w("usr/lib/xattr", b"x\n", 0o644);
    if xattrs {
        for (name, value) in [
            ("user.test", &b"value"[..]),
            ("user.other", b"\x00\x01binary"),
            (
                "security.capability",
                b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
            ),
        ] {
            rustix::fs::setxattr(
                root.join("usr/lib/xattr"),
                name,
                value,
                rustix::fs::XattrFlags::empty(),
            )
            .expect("setxattr");
        }
    }
    w("usr/share/with space.txt", b"space\n", 0o644);
    w("usr/share/\u{fc}n\u{ef}code", b"unicode\n", 0o644);
    w("usr/share/private/secret", b"s\n", 0o600);
    std::fs::set_permissions(
        root.join("usr/share/private"),
        std::fs::Permissions::from_mode(0o700),
    )
    .expect("chmod");
    std::os::unix::fs::chown(root.join("usr/share/private"), Some(1000), Some(1000))
        .expect("chown");
    for i in 0..3000 {
        w(
            &format!("usr/share/many/file-{i:05}"),
            format!("{i}\n").as_bytes(),
            0o644,
        );
    }
    std::os::unix::fs::symlink("tool", root.join("usr/bin/rel")).expect("symlink");
    std::os::unix::fs::symlink("/usr/bin/tool", root.join("usr/bin/abs")).expect("symlink");
    std::os::unix::fs::symlink("../nowhere", root.join("usr/bin/dangling")).expect("symlink");
    w("usr/etc/app.conf", b"level=info\nname=base\n", 0o644);
    std::fs::hard_link(
        root.join("usr/bin/tool"),
        root.join("usr/bin/tool-hardlink"),
    )
    .expect("link");
}

/// Convert a `bare` repository whose objects carry xattrs into
/// `bare-split-xattrs`: each content object's xattrs move into a
/// `.file-xattrs` object (named by the SHA-256 of its `a(ayay)` bytes),
/// reached through a `.file-xattrs-link` hardlink named like the object.
/// ostree 2022.7 reads this mode but refuses to write it.
fn split_xattrs(repo: &Path) {
    let config = repo.join("config");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace("mode=bare\n", "mode=bare-split-xattrs\n"),
    )
    .expect("config");
    let objects = repo.join("objects");
    let mut files = Vec::new();
    for fan in std::fs::read_dir(&objects).expect("objects") {
        for obj in std::fs::read_dir(fan.expect("fan").path()).expect("fan") {
            let p = obj.expect("obj").path();
            if p.extension().is_some_and(|e| e == "file") {
                files.push(p);
            }
        }
    }
    for p in files {
        let list = xattrs_of(&p);
        for (name, _) in &list {
            rustix::fs::lremovexattr(&p, name.as_slice()).expect("removexattr");
        }
        let pairs: Vec<(&[u8], &[u8])> = list
            .iter()
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
            .collect();
        let bytes = ostree_finalize::ostree::gvariant::encode_xattrs(&pairs);
        let sum = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        let dir = objects.join(&sum[..2]);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let xobj = dir.join(format!("{}.file-xattrs", &sum[2..]));
        if !xobj.exists() {
            std::fs::write(&xobj, &bytes).expect("write");
        }
        let stem = p.file_stem().expect("stem").to_str().expect("utf-8");
        std::fs::hard_link(&xobj, p.with_file_name(format!("{stem}.file-xattrs-link")))
            .expect("link");
    }
}

/// A path's xattrs as ostree reads them: sorted by name, empty values left
/// out; symlinks not followed.
fn xattrs_of(p: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut names = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(p, &mut names).expect("listxattr");
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let mut value = vec![0u8; 65536];
        let len = rustix::fs::lgetxattr(p, name, &mut value).expect("getxattr");
        value.truncate(len);
        out.push((name.to_vec(), value));
    }
    canonical_xattrs(out)
}

/// Load `ostree:REPO:main` the way finalize does, comparing with `root`.
fn load(root: &Path, repo: &Path) -> engine::Base {
    let dir = rootfs::open_root(root).expect("open root");
    let spec = format!("ostree:{}:main", s(repo));
    engine::load_base(&dir, Some(Path::new(&spec))).unwrap_or_else(|e| panic!("{spec}: {e:#}"))
}

/// `ostree checkout [EXTRA] main DEST`.
fn checkout(repo: &Path, dest: &Path, extra: &[&str]) {
    let r = format!("--repo={}", s(repo));
    let mut args = vec!["checkout", &r];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["main", s(dest)]);
    ostree(&args);
}

#[test]
fn checksums_and_metadata_match_ostree_ls_in_every_repo_mode() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    rich_tree(&src, true);
    let bare = commit(tmp.path(), "bare", &src, &[]);
    let listed = ls(&bare);
    assert!(listed.len() > 3000);

    // A faithful copy to walk (root checks out ownership, modes, xattrs).
    let co = tmp.path().join("co");
    checkout(&bare, &co, &["--force-copy"]);

    // 1. The checksum of each file from its own metadata and content.
    for (path, l) in &listed {
        if l.kind == 'd' {
            continue;
        }
        let p = co.join(&path[1..]);
        let meta = std::fs::symlink_metadata(&p).expect("stat");
        let own = Meta {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode(),
            xattrs: xattrs_of(&p),
        };
        let (target, content) = if meta.is_symlink() {
            let t = std::fs::read_link(&p).expect("readlink");
            (t.into_os_string().into_encoded_bytes(), Vec::new())
        } else {
            (Vec::new(), std::fs::read(&p).expect("read"))
        };
        let sum = file_checksum(&FileHeader::new(&own, &target), &content);
        assert_eq!(hex::encode(sum), l.checksum, "{path}");
    }

    let user = commit(tmp.path(), "bare-user", &src, &[]);
    let user_only = commit(tmp.path(), "bare-user-only", &src, &[]);
    let archive = commit(tmp.path(), "archive", &src, &[]);
    let split = tmp.path().join("repo-bare-split-xattrs");
    Command::new("cp")
        .args(["-a", s(&bare), s(&split)])
        .status()
        .expect("cp");
    split_xattrs(&split);
    ostree(&["fsck", &format!("--repo={}", s(&split))]);
    ostree(&["fsck", &format!("--repo={}", s(&archive))]);

    for repo in [&bare, &user, &user_only, &archive, &split] {
        let listed = ls(repo);
        let base = load(&co, repo);
        let m = &base.manifest;
        // 2. Metadata and checksums read from the repository.
        for (path, l) in &listed {
            let mapped = match path.strip_prefix("/usr/etc") {
                Some(rest) => format!("/etc{rest}"),
                None => path.clone(),
            };
            let e = m
                .get(&mapped)
                .unwrap_or_else(|| panic!("{}: {mapped} missing", repo.display()));
            let kind = match l.kind {
                'd' => Kind::Dir,
                'l' => Kind::Symlink,
                _ => Kind::File,
            };
            assert_eq!(e.kind, kind, "{}: {path}", repo.display());
            assert_eq!(
                (e.mode, e.uid, e.gid),
                (l.mode, l.uid, l.gid),
                "{}: {path}",
                repo.display()
            );
            assert_eq!(e.target, l.target, "{}: {path}", repo.display());
            if l.kind != 'd' {
                let sum = e.ostree.map(|h| h.to_hex());
                assert_eq!(
                    sum.as_deref(),
                    Some(l.checksum.as_str()),
                    "{}: {path}",
                    repo.display()
                );
            }
        }
        assert_eq!(m.entries.len(), listed.len(), "{}", repo.display());
        // Small /etc files keep their text, read from the repository.
        assert_eq!(
            m.get("/etc/app.conf").and_then(|e| e.text.as_deref()),
            Some("level=info\nname=base\n")
        );
        let xattrs = &m.get("/usr/lib/xattr").expect("xattr file").xattrs;
        if std::ptr::eq(repo, &user_only) {
            assert!(xattrs.is_empty());
        } else {
            assert_eq!(
                xattrs.get("user.test").map(|h| h.0.as_slice()),
                Some(&b"value"[..])
            );
            assert!(
                xattrs.contains_key("security.capability"),
                "{}",
                repo.display()
            );
        }

        // 3. The checksum the walk computes: the base's header (from this
        //    repository) with the checkout's content.
        let mut opts = engine::walk_options();
        opts.ostree = base
            .ostree
            .clone()
            .map(|f| f as std::sync::Arc<dyn ostree_finalize::rootfs::HashPrefix>);
        let dir = rootfs::open_root(&co).expect("open");
        let tree = rootfs::walk(&dir, &opts).expect("walk");
        let mut files = 0;
        for (path, l) in listed.iter().filter(|(_, l)| l.kind == '-') {
            let e = tree
                .get(path)
                .unwrap_or_else(|| panic!("{path} not walked"));
            let sum = e.ostree.map(|h| h.to_hex());
            assert_eq!(
                sum.as_deref(),
                Some(l.checksum.as_str()),
                "{}: {path}",
                repo.display()
            );
            assert!(e.sha256.is_none(), "{path}: hashed twice");
            files += 1;
        }
        assert!(files > 3000);
    }
}

/// Paths that `ostree diff COMMIT DIR` reports, as (letter, absolute path).
fn ostree_diff(repo: &Path, dir: &Path) -> BTreeSet<(char, String)> {
    let out = ostree(&["diff", &format!("--repo={}", s(repo)), "main", s(dir)]);
    out.lines()
        .map(|l| {
            let (letter, path) = l.split_once(char::is_whitespace).expect("diff line");
            let path = path.trim();
            let path = if path.starts_with('/') {
                path.to_string()
            } else {
                format!("/{path}")
            };
            (letter.chars().next().expect("letter"), path)
        })
        .collect()
}

/// Our `diff` of `dir` against `ostree:REPO:main`, in `ostree diff`'s form:
/// a removed directory stands for everything beneath it.
fn our_diff(repo: &Path, dir: &Path) -> BTreeSet<(char, String)> {
    let spec = format!("ostree:{}:main", s(repo));
    let out = run(&[
        "diff",
        "--root",
        s(dir),
        "--base",
        &spec,
        "--format",
        "json",
    ]);
    let json = out.json();
    let list = |key: &str| -> Vec<String> {
        json["changes"][key]
            .as_array()
            .unwrap_or_else(|| panic!("no changes.{key}: {out}"))
            .iter()
            .map(|v| v.as_str().expect("path").to_string())
            .collect()
    };
    let removed = list("removed");
    let beneath = |p: &str| removed.iter().any(|r| p.starts_with(&format!("{r}/")));
    let mut set = BTreeSet::new();
    set.extend(list("added").into_iter().map(|p| ('A', p)));
    set.extend(list("modified").into_iter().map(|p| ('M', p)));
    set.extend(
        removed
            .iter()
            .filter(|p| !beneath(p))
            .map(|p| ('D', p.clone())),
    );
    set
}

#[test]
fn diff_of_a_modified_checkout_equals_ostree_diff() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    rich_tree(&src, true);
    std::fs::remove_dir_all(src.join("usr/etc")).expect("rm");
    for mode in ["bare", "bare-user", "archive"] {
        let repo = commit(tmp.path(), mode, &src, &[]);
        let co = tmp.path().join(format!("co-{mode}"));
        checkout(&repo, &co, &["--force-copy"]);
        assert!(
            our_diff(&repo, &co).is_empty(),
            "{mode}: pristine checkout differs"
        );
        assert!(ostree_diff(&repo, &co).is_empty());

        let p = |rel: &str| co.join(rel);
        std::fs::write(p("usr/bin/tool"), b"changed\n").expect("write");
        std::fs::set_permissions(p("usr/lib/owned"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
        std::os::unix::fs::chown(p("usr/lib/empty"), Some(5), Some(5)).expect("chown");
        rustix::fs::setxattr(
            p("usr/lib/xattr"),
            "user.test",
            b"other",
            rustix::fs::XattrFlags::empty(),
        )
        .expect("setxattr");
        std::fs::remove_file(p("usr/share/with space.txt")).expect("rm");
        std::fs::remove_dir_all(p("usr/share/private")).expect("rm");
        std::fs::remove_file(p("usr/bin/rel")).expect("rm");
        std::os::unix::fs::symlink("suid", p("usr/bin/rel")).expect("symlink");
        std::fs::create_dir_all(p("usr/local/bin")).expect("mkdir");
        std::fs::write(p("usr/local/bin/new"), b"new\n").expect("write");
        std::fs::set_permissions(p("usr/share"), std::fs::Permissions::from_mode(0o750))
            .expect("chmod");
        std::fs::write(p("usr/share/many/file-00042"), b"42 changed\n").expect("write");

        let theirs = ostree_diff(&repo, &co);
        assert_eq!(theirs.len(), 12, "{theirs:?}");
        assert_eq!(our_diff(&repo, &co), theirs, "{mode}");
    }
}

/// The findings of a report, without their messages (which show different
/// digests for the two kinds of base): check, level, path, package, and
/// the unified diff of `etc-modified`.
fn verdict(out: &Outcome) -> (String, BTreeSet<String>, String) {
    let json = out.json();
    let findings = json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            format!(
                "{} {} {} {} {}",
                f["check"], f["level"], f["path"], f["package"], f["detail"]
            )
        })
        .collect();
    (
        json["verdict"].to_string(),
        findings,
        json["packages"].to_string(),
    )
}

/// `finalize --dry-run` of `root` against `base` (a file or ostree:…).
fn finalize(root: &Path, base: &str) -> Outcome {
    run(&[
        "finalize",
        "--root",
        s(root),
        "--base",
        base,
        "--dry-run",
        "--format",
        "json",
    ])
}

/// Replace a file by a copy of itself (what overlayfs does on the first
/// write to a lower file), so a hardlink into the repository is broken
/// before the file is changed.
fn copy_up(path: &Path) {
    let tmp = path.with_extension("copy-up");
    let ok = Command::new("cp")
        .args(["-a", "--no-dereference", s(path), s(&tmp)])
        .status()
        .expect("cp");
    assert!(ok.success());
    std::fs::rename(&tmp, path).expect("rename");
}

/// The changes every verdict test makes, as a derived image build would.
fn build_changes(root: &Path) {
    let p = |rel: &str| root.join(rel);
    // Changed content of a base file.
    copy_up(&p("usr/bin/base-tool"));
    std::fs::write(p("usr/bin/base-tool"), b"#!/bin/sh\necho patched\n").expect("write");
    // A removed base file.
    std::fs::remove_file(p("usr/lib/os-release")).expect("rm");
    // chmod and chown of base files.
    copy_up(&p("usr/lib/base-utils/data.txt"));
    std::fs::set_permissions(
        p("usr/lib/base-utils/data.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    copy_up(&p("usr/share/doc/base-lib/README"));
    std::os::unix::fs::chown(p("usr/share/doc/base-lib/README"), Some(1), Some(1)).expect("chown");
    // Added files, one setuid.
    std::fs::create_dir_all(p("usr/local/bin")).expect("mkdir");
    std::fs::write(p("usr/local/bin/added"), b"added\n").expect("write");
    std::fs::set_permissions(
        p("usr/local/bin/added"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .expect("chmod");
    // Configuration.
    copy_up(&p("etc/base-utils.conf"));
    let mut conf = std::fs::read_to_string(p("etc/base-utils.conf")).expect("read");
    conf.push_str("added=by build\n");
    std::fs::write(p("etc/base-utils.conf"), conf).expect("write");
    // A package added with the real rpm (its database copied up first).
    let db = p("usr/lib/sysimage/rpm");
    for f in std::fs::read_dir(&db).expect("rpmdb") {
        copy_up(&f.expect("entry").path());
    }
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

/// Commit the fixture base tree into a `mode` repository (with `extra`
/// commit flags), check it out with `co_flags`, snapshot the pristine
/// checkout, make the build's changes, and compare both verdicts.
fn same_verdicts(
    mode: &str,
    extra: &[&str],
    co_flags: &[&str],
    prepare: impl FnOnce(&Path),
) -> (Outcome, Outcome) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = common::base_tree();
    prepare(base.root());
    let repo = commit(tmp.path(), mode, base.root(), extra);
    let co = tmp.path().join("co");
    checkout(&repo, &co, co_flags);
    let spec = format!("ostree:{}:main", s(&repo));
    let snapshot = tmp.path().join("base.json");
    run(&["snapshot", "--root", s(&co), "--output", s(&snapshot)]).expect_code(0);

    // Untouched, both bases agree there is nothing to report but runtime
    // content the fixture has.
    let pristine_file = finalize(&co, s(&snapshot));
    let pristine_ostree = finalize(&co, &spec);
    pristine_ostree.expect_code(0);
    assert_eq!(
        verdict(&pristine_ostree),
        verdict(&pristine_file),
        "{pristine_ostree}"
    );

    build_changes(&co);
    let by_file = finalize(&co, s(&snapshot));
    let by_ostree = finalize(&co, &spec);
    by_ostree.expect_code(1);
    assert_eq!(
        verdict(&by_ostree),
        verdict(&by_file),
        "{by_ostree}\n---\n{by_file}"
    );
    (by_file, by_ostree)
}

#[test]
fn hardlinked_checkout_of_a_bare_repo_gives_the_snapshot_verdicts() {
    let (_, out) = same_verdicts("bare", &[], &["-H"], |_| {});
    let json = out.json();
    let base = json["base"].as_str().expect("base");
    assert!(
        base.starts_with("ostree:") && base.contains("commit "),
        "{base}"
    );
    assert!(base.contains("/usr/lib/sysimage/rpm"), "{base}");
    let modified = common::findings(&json, "base-modified");
    let paths: BTreeSet<&str> = modified
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        BTreeSet::from([
            "/usr/bin/base-tool",
            "/usr/lib/base-utils/data.txt",
            "/usr/share/doc/base-lib/README"
        ])
    );
    common::finding(&json, "base-removed", "/usr/lib/os-release");
    let etc = common::finding(&json, "etc-modified", "/etc/base-utils.conf");
    assert!(
        etc["detail"]
            .as_str()
            .unwrap_or("")
            .contains("+added=by build"),
        "{etc}"
    );
    assert_eq!(
        json["packages"]["added"][0], "extra-tool-1.0-1.noarch",
        "{json:#}"
    );
}

#[test]
fn user_mode_checkout_of_a_bare_user_repo_gives_the_snapshot_verdicts() {
    // A user-mode checkout cannot restore ownership, setuid bits or xattrs,
    // and makes every file readable by its owner: commit with bare-user's
    // canonical permissions, and no mode-0000 file, so that the checkout
    // is faithful to the commit. (Where it is not, the ostree base rightly
    // reports the difference, which a snapshot of the checkout cannot.)
    same_verdicts("bare-user", &["--canonical-permissions"], &["-U"], |root| {
        let shadow = root.join("etc/shadow");
        std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o400)).expect("chmod");
    });
}

#[test]
fn a_write_in_place_through_a_repository_hardlink_is_still_seen() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    rich_tree(&src, false);
    let repo = commit(tmp.path(), "bare", &src, &[]);
    let co = tmp.path().join("co");
    checkout(&repo, &co, &["-H"]);
    assert_eq!(
        std::fs::metadata(co.join("usr/lib/big.so"))
            .expect("stat")
            .nlink(),
        2
    );
    let spec = format!("ostree:{}:main", s(&repo));
    finalize(&co, &spec).expect_code(0);
    // Appending to a hardlinked file changes the repository's object too:
    // the file is hashed all the same, and the object no longer verifies.
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(co.join("usr/lib/big.so"))
        .expect("open");
    f.write_all(b"tail").expect("write");
    drop(f);
    let out = finalize(&co, &spec);
    out.expect_code(1);
    let json = out.json();
    let f = common::finding(&json, "base-modified", "/usr/lib/big.so");
    let msg = f["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("was written in place") && msg.contains("1048580 bytes"),
        "{f}"
    );
}

#[test]
fn hardlinked_files_and_the_etc_mapping() {
    // A checkout keeps /etc at /usr/etc; a container build has it at /etc.
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    rich_tree(&src, false);
    let repo = commit(tmp.path(), "bare", &src, &[]);
    let co = tmp.path().join("co");
    checkout(&repo, &co, &["-H"]);
    std::fs::rename(co.join("usr/etc"), co.join("etc")).expect("mv");
    let dir = rootfs::open_root(&co).expect("open");
    let base = engine::load_base(&dir, Some(Path::new(&format!("ostree:{}:main", s(&repo)))))
        .expect("base");
    assert!(base.manifest.get("/etc/app.conf").is_some());
    assert!(base.manifest.get("/usr/etc").is_none());
    let target = Target::from_dir_against(&dir, &base).expect("walk");
    // Hardlinked files are read like any other (a write in place would
    // have changed the object with them) and carry the base checksum; the
    // small /etc file keeps its text.
    let big = target.tree.get("/usr/lib/big.so").expect("big");
    assert_eq!(
        big.ostree,
        base.manifest.get("/usr/lib/big.so").expect("base").ostree
    );
    let conf = target.tree.get("/etc/app.conf").expect("conf");
    assert_eq!(conf.text.as_deref(), Some("level=info\nname=base\n"));

    copy_up(&co.join("etc/app.conf"));
    std::fs::write(co.join("etc/app.conf"), "level=debug\nname=base\n").expect("write");
    let out = finalize(&co, &format!("ostree:{}:main", s(&repo)));
    out.expect_code(0);
    let json = out.json();
    let f = common::finding(&json, "etc-modified", "/etc/app.conf");
    let detail = f["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("-level=info") && detail.contains("+level=debug"),
        "{f}"
    );
}

/// A tree with its own ostree repository at /sysroot/ostree/repo holding
/// one commit: the tree checked out from it.
fn ostree_image() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = common::base_tree();
    let root = tmp.path().join("root");
    let repo = root.join("sysroot/ostree/repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    let r = format!("--repo={}", s(&repo));
    ostree(&["init", &r, "--mode=bare"]);
    let t = format!("--tree=dir={}", s(base.root()));
    ostree(&[
        "commit",
        &r,
        "-b",
        "fedora/x86_64/coreos/stable",
        "-s",
        "base",
        &t,
    ]);
    ostree(&[
        "checkout",
        &r,
        "-H",
        "--union",
        "fedora/x86_64/coreos/stable",
        s(&root),
    ]);
    (tmp, root)
}

#[test]
fn the_image_repository_is_the_base_when_nothing_else_is_given() {
    let (_tmp, root) = ostree_image();
    let out = run(&["diff", "--root", s(&root), "--format", "json"]);
    out.expect_code(0);
    let json = out.json();
    let base = json["base"].as_str().expect("base");
    assert!(
        base.starts_with("ostree:/sysroot/ostree/repo (commit "),
        "{base}"
    );
    assert_eq!(
        json["changes"]["modified"],
        serde_json::json!([]),
        "{json:#}"
    );

    // A second commit makes the choice ambiguous: no silent pick.
    let r = format!("--repo={}", s(&root.join("sysroot/ostree/repo")));
    let t = format!("--tree=dir={}", s(&root.join("usr/lib")));
    ostree(&["commit", &r, "-b", "other", "-s", "other", &t]);
    let out = run(&["diff", "--root", s(&root), "--format", "json"]);
    out.expect_code(2);
    assert!(out.stderr.contains("holds 2 commits"), "{out}");
    assert!(out.stderr.contains("ambiguous"), "{out}");
}

#[test]
fn rpm_ostree_base_db_is_the_base_package_set_and_is_named() {
    let (_tmp, root) = ostree_image();
    let repo = root.join("sysroot/ostree/repo");
    let spec = format!("ostree:{}:fedora/x86_64/coreos/stable", s(&repo));
    // rpm-ostree's record of the base packages, here without base-lib.
    let db = root.join("usr/lib/sysimage/rpm-ostree-base-db");
    std::fs::create_dir_all(&db).expect("mkdir");
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(tmp.path().join("usr/lib/sysimage/rpm")).expect("mkdir");
    for f in std::fs::read_dir(root.join("usr/lib/sysimage/rpm")).expect("rpmdb") {
        let f = f.expect("entry").path();
        std::fs::copy(
            &f,
            tmp.path()
                .join("usr/lib/sysimage/rpm")
                .join(f.file_name().unwrap()),
        )
        .expect("copy");
    }
    rpm_in(
        tmp.path(),
        &["-e", "--nodeps", "--noscripts", "--justdb", "base-lib"],
    );
    std::fs::copy(
        tmp.path().join("usr/lib/sysimage/rpm/rpmdb.sqlite"),
        db.join("rpmdb.sqlite"),
    )
    .expect("copy");
    let out = run(&[
        "diff",
        "--root",
        s(&root),
        "--base",
        &spec,
        "--format",
        "json",
    ]);
    let json = out.json();
    let base = json["base"].as_str().expect("base");
    assert!(
        base.contains("packages from /usr/lib/sysimage/rpm-ostree-base-db in the tree"),
        "{base}"
    );
    assert_eq!(
        json["packages"]["added"][0], "base-lib-2:1.0-1.noarch",
        "{json:#}"
    );
}

#[test]
fn bad_specs_refs_and_corrupt_objects_are_exit_2_naming_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    rich_tree(&src, false);
    let repo = commit(tmp.path(), "bare", &src, &[]);
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).expect("mkdir");
    let diff = |base: &str| {
        run(&[
            "diff",
            "--root",
            s(&root),
            "--base",
            base,
            "--format",
            "json",
        ])
    };

    let out = diff("ostree:");
    out.expect_code(2);
    assert!(out.stderr.contains("no repository"), "{out}");
    let out = diff(&format!("ostree:{}:nosuchref", s(&repo)));
    out.expect_code(2);
    assert!(
        out.stderr.contains("nosuchref") && out.stderr.contains(s(&repo)),
        "{out}"
    );
    let out = diff(&format!("ostree:{}/nosuchdir", s(&repo)));
    out.expect_code(2);
    assert!(out.stderr.contains("nosuchdir"), "{out}");
    let out = diff(&format!("ostree:{}:{}", s(&repo), "0".repeat(64)));
    out.expect_code(2);
    assert!(out.stderr.contains("00000000"), "{out}");

    // Flip a byte of every dirtree object in turn.
    let mut dirtrees = Vec::new();
    for fan in std::fs::read_dir(repo.join("objects")).expect("objects") {
        for obj in std::fs::read_dir(fan.expect("fan").path()).expect("fan") {
            let p = obj.expect("obj").path();
            if p.extension()
                .is_some_and(|e| e == "dirtree" || e == "dirmeta" || e == "commit")
            {
                dirtrees.push(p);
            }
        }
    }
    assert!(dirtrees.len() > 5);
    for p in dirtrees {
        let good = std::fs::read(&p).expect("read");
        let mut bad = good.clone();
        let at = bad.len() / 2;
        bad[at] ^= 0x55;
        std::fs::write(&p, &bad).expect("write");
        let out = diff(&format!("ostree:{}:main", s(&repo)));
        std::fs::write(&p, &good).expect("restore");
        out.expect_code(2);
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(
            out.stderr.contains(&name[..20]) && out.stderr.contains("corrupt"),
            "{out}"
        );
    }
}

#[test]
fn mutated_metadata_objects_never_panic() {
    use ostree_finalize::ostree::objects;
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    rich_tree(&src, true);
    std::fs::remove_dir_all(src.join("usr/share/many")).expect("rm");
    let repo = commit(tmp.path(), "bare-user", &src, &[]);
    let mut samples: Vec<(String, Vec<u8>)> = Vec::new();
    for fan in std::fs::read_dir(repo.join("objects")).expect("objects") {
        for obj in std::fs::read_dir(fan.expect("fan").path()).expect("fan") {
            let p = obj.expect("obj").path();
            let ext = p
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("")
                .to_string();
            match ext.as_str() {
                "dirtree" | "dirmeta" | "commit" => {
                    samples.push((ext, std::fs::read(&p).expect("read")))
                }
                "file" => {
                    let mut v = vec![0u8; 4096];
                    if let Ok(n) = rustix::fs::lgetxattr(&p, "user.ostreemeta", &mut v) {
                        v.truncate(n);
                        samples.push(("dirmeta".into(), v));
                    }
                }
                _ => {}
            }
        }
    }
    let parse = |kind: &str, b: &[u8]| -> bool {
        match kind {
            "dirtree" => objects::parse_dirtree(b).is_ok(),
            "commit" => objects::parse_commit(b).is_ok(),
            _ => objects::parse_meta(b).is_ok(),
        }
    };
    let mut tried = 0;
    for (kind, bytes) in &samples {
        assert!(parse(kind, bytes), "{kind} does not parse");
        for cut in 0..bytes.len() {
            let _ = parse(kind, &bytes[..cut]);
            tried += 1;
        }
        for at in 0..bytes.len() {
            for v in [0u8, 0xff, 0x01, 0x80] {
                let mut b = bytes.clone();
                b[at] = v;
                let _ = parse(kind, &b);
                tried += 1;
            }
        }
    }
    assert!(tried > 3000, "{tried}");
}
