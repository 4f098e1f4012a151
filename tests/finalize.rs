//! `snapshot` then `finalize`/`diff` on real trees: a base assembled with
//! the real rpm, changed the way a Containerfile would change it.

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

use common::*;

#[test]
fn added_package_and_files_pass_and_are_listed() {
    for layout in Layout::ALL {
        added_package_and_files_pass_and_are_listed_on(layout);
    }
}

fn added_package_and_files_pass_and_are_listed_on(layout: Layout) {
    eprintln!("layout: {layout:?}");
    let tree = snapshotted_of(layout);
    rpm_in(
        tree.root(),
        &[
            "-i",
            "--nodeps",
            "--noscripts",
            rpm_path("extra-tool-1.0-1").to_str().unwrap(),
        ],
    );
    fs::create_dir_all(tree.path("/usr/lib/agent")).unwrap();
    fs::write(tree.path("/usr/lib/agent/agent.bin"), b"\x7fELF").unwrap();
    fs::write(tree.path("/etc/agent.conf"), "level=debug\n").unwrap();

    let out = finalize(&tree, &[]);
    out.expect_code(0);
    let json = out.json();
    assert_eq!(json["verdict"], "pass");
    assert_eq!(
        json["packages"]["added"],
        serde_json::json!(["extra-tool-1.0-1.noarch"])
    );
    assert_eq!(json["summary"]["deny"], 0);
    assert!(
        tree.path("/usr/lib/ostree-finalize/record.json").is_file(),
        "a passing finalize records what it did"
    );
}

#[test]
fn overwriting_a_base_binary_is_denied_naming_the_owner_and_the_fix() {
    for layout in Layout::ALL {
        overwriting_a_base_binary_is_denied_naming_the_owner_and_the_fix_on(layout);
    }
}

fn overwriting_a_base_binary_is_denied_naming_the_owner_and_the_fix_on(layout: Layout) {
    eprintln!("layout: {layout:?}");
    let tree = snapshotted_of(layout);
    fs::write(
        tree.path("/usr/bin/base-tool"),
        "#!/bin/sh\necho replaced\n",
    )
    .unwrap();
    let before = tree_digest(tree.root());

    let out = finalize(&tree, &[]);
    out.expect_code(1);
    let json = out.json();
    let f = finding(&json, "base-modified", "/usr/bin/base-tool");
    assert_eq!(f["level"], "deny");
    assert_eq!(f["package"], "base-utils-1.0-1.noarch");
    let msg = f["message"].as_str().unwrap();
    assert!(msg.contains("content"), "{msg}");
    assert!(msg.contains("base-utils-1.0-1.noarch"), "{msg}");
    assert!(
        msg.contains("--allow-overrides") && msg.contains("ostree.override=true"),
        "{msg}"
    );
    assert_eq!(
        tree_digest(tree.root()),
        before,
        "a failing finalize changes nothing"
    );
}

/// A forbidden change: what it is, the check and path it must produce, and
/// how to make it in a fresh tree.
type ForbiddenChange = (&'static str, &'static str, &'static str, fn(&BaseTree));

fn forbidden_changes() -> Vec<ForbiddenChange> {
    vec![
        ("chmod", "base-modified", "/usr/bin/base-tool", |t| {
            fs::set_permissions(
                t.path("/usr/bin/base-tool"),
                fs::Permissions::from_mode(0o4755),
            )
            .unwrap()
        }),
        (
            "chown",
            "base-modified",
            "/usr/lib/base-utils/data.txt",
            |t| {
                std::os::unix::fs::chown(
                    t.path("/usr/lib/base-utils/data.txt"),
                    Some(1000),
                    Some(1000),
                )
                .unwrap()
            },
        ),
        ("rm", "base-removed", "/usr/lib64/libbase.so.1", |t| {
            fs::remove_file(t.path("/usr/lib64/libbase.so.1")).unwrap()
        }),
        ("retarget symlink", "base-modified", "/usr/bin/bt", |t| {
            fs::remove_file(t.path("/usr/bin/bt")).unwrap();
            symlink("/usr/bin/extra-tool", t.path("/usr/bin/bt")).unwrap();
        }),
        ("setcap", "base-modified", "/usr/bin/base-tool", |t| {
            sh(
                "setcap",
                &[
                    "cap_net_raw+ep",
                    t.path("/usr/bin/base-tool").to_str().unwrap(),
                ],
            );
        }),
        (
            "dir to symlink",
            "base-modified",
            "/usr/lib/base-utils",
            |t| {
                fs::remove_dir_all(t.path("/usr/lib/base-utils")).unwrap();
                symlink("/opt/elsewhere", t.path("/usr/lib/base-utils")).unwrap();
            },
        ),
    ]
}

#[test]
fn every_kind_of_base_change_is_denied_then_allowed_with_overrides() {
    for (layout, (what, check, path, change)) in Layout::ALL
        .into_iter()
        .flat_map(|l| forbidden_changes().into_iter().map(move |c| (l, c)))
    {
        eprintln!("layout: {layout:?}");
        let tree = snapshotted_of(layout);
        change(&tree);
        let out = finalize(&tree, &["--dry-run"]);
        assert_eq!(out.code, 1, "{what}: {}", out.stdout);
        let json = out.json();
        let f = finding(&json, check, path);
        assert_eq!(f["level"], "deny", "{what}");
        assert!(
            f["package"]
                .as_str()
                .is_some_and(|p| p.starts_with("base-")),
            "{what}: owner named: {f}"
        );

        let out = finalize(&tree, &["--dry-run", "--allow-overrides"]);
        assert_eq!(out.code, 0, "{what} with --allow-overrides: {}", out.stdout);
        let json = out.json();
        let f = finding(&json, check, path);
        assert_eq!(
            f["level"], "warn",
            "{what}: allowed overrides are still listed"
        );
        assert_eq!(f["allowed_by"], "--allow-overrides");
    }
}

#[test]
fn a_directory_replaced_by_a_symlink_folds_its_children_into_one_finding() {
    for layout in Layout::ALL {
        a_directory_replaced_by_a_symlink_folds_its_children_into_one_finding_on(layout);
    }
}

fn a_directory_replaced_by_a_symlink_folds_its_children_into_one_finding_on(layout: Layout) {
    eprintln!("layout: {layout:?}");
    let tree = snapshotted_of(layout);
    fs::remove_dir_all(tree.path("/usr/lib/base-utils")).unwrap();
    symlink("/opt/elsewhere", tree.path("/usr/lib/base-utils")).unwrap();
    let json = finalize(&tree, &["--dry-run"]).json();
    let f = finding(&json, "base-modified", "/usr/lib/base-utils");
    let msg = f["message"].as_str().unwrap();
    assert!(
        msg.contains("directory → symlink -> /opt/elsewhere"),
        "{msg}"
    );
    assert!(msg.contains("1 base paths beneath it"), "{msg}");
    assert!(
        findings(&json, "base-removed").is_empty(),
        "children are not repeated: {json:#}"
    );
}

#[test]
fn setfattr_user_xattr_on_a_base_file_is_denied() {
    let tree = snapshotted();
    sh(
        "setfattr",
        &[
            "-n",
            "user.tag",
            "-v",
            "1",
            tree.path("/usr/lib/base-utils/data.txt").to_str().unwrap(),
        ],
    );
    let out = finalize(&tree, &["--dry-run"]);
    out.expect_code(1);
    let f = finding(&out.json(), "base-modified", "/usr/lib/base-utils/data.txt").clone();
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("xattr user.tag added"),
        "{f}"
    );
}

#[test]
fn package_upgrade_removal_and_downgrade_are_denied_as_rpm_base_changed() {
    let cases: [(&str, Vec<String>, &str, &str); 3] = [
        (
            "upgraded",
            vec![
                "-U".into(),
                "--nodeps".into(),
                "--noscripts".into(),
                rpm_path("base-utils-1.1-1").display().to_string(),
            ],
            "base-utils-1.0-1.noarch",
            "base-utils-1.1-1.noarch",
        ),
        (
            "downgraded",
            vec![
                "-U".into(),
                "--oldpackage".into(),
                "--nodeps".into(),
                "--noscripts".into(),
                rpm_path("base-utils-0.9-1").display().to_string(),
            ],
            "base-utils-1.0-1.noarch",
            "base-utils-0.9-1.noarch",
        ),
        (
            "removed",
            vec![
                "-e".into(),
                "--nodeps".into(),
                "--noscripts".into(),
                "base-lib".into(),
            ],
            "base-lib-2:1.0-1.noarch",
            "",
        ),
    ];
    for (kind, args, from, to) in cases {
        let tree = snapshotted();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        rpm_in(tree.root(), &args);
        let out = finalize(&tree, &["--dry-run"]);
        assert_eq!(out.code, 1, "{kind}: {}", out.stdout);
        let json = out.json();
        let rpm = findings(&json, "rpm-base-changed");
        assert_eq!(rpm.len(), 1, "{kind}: {json:#}");
        assert_eq!(rpm[0]["package"], from, "{kind}");
        assert_eq!(rpm[0]["level"], "deny");
        assert!(
            rpm[0]["message"].as_str().unwrap().contains(kind),
            "{kind}: {}",
            rpm[0]
        );
        if kind == "removed" {
            assert_eq!(json["packages"]["removed"], serde_json::json!([from]));
        } else {
            assert_eq!(json["packages"][kind][0]["from"], from);
            assert_eq!(json["packages"][kind][0]["to"], to);
            // The files the new version brought are base changes too.
            finding(&json, "base-modified", "/usr/bin/base-tool");
        }

        let out = finalize(&tree, &["--allow-overrides"]);
        assert_eq!(out.code, 0, "{kind} allowed: {}", out.stdout);
        let json = out.json();
        assert_eq!(findings(&json, "rpm-base-changed")[0]["level"], "warn");
    }
}

#[test]
fn editing_a_base_etc_file_is_info_with_a_unified_diff() {
    let tree = snapshotted();
    let conf = tree.path("/etc/base-utils.conf");
    let old = fs::read_to_string(&conf).unwrap();
    assert!(old.contains("level=info"), "fixture: {old}");
    fs::write(&conf, old.replace("level=info", "level=debug")).unwrap();
    let out = finalize(&tree, &[]);
    out.expect_code(0);
    let json = out.json();
    let f = finding(&json, "etc-modified", "/etc/base-utils.conf");
    assert_eq!(f["level"], "info");
    assert_eq!(f["package"], "base-utils-1.0-1.noarch");
    let detail = f["detail"].as_str().unwrap();
    assert!(
        detail.contains("-level=info") && detail.contains("+level=debug"),
        "{detail}"
    );
}

#[test]
fn a_fifo_and_a_non_utf8_name_in_usr_are_denied_even_with_overrides() {
    let tree = snapshotted();
    sh("mkfifo", &[tree.path("/usr/lib/pipe").to_str().unwrap()]);
    let mut bad = tree.path("/usr/lib").into_os_string();
    bad.push(std::ffi::OsStr::from_bytes(b"/caf\xe9"));
    fs::write(&bad, b"x").unwrap();
    let out = finalize(&tree, &["--allow-overrides"]);
    out.expect_code(1);
    let json = out.json();
    assert_eq!(
        finding(&json, "special-file", "/usr/lib/pipe")["level"],
        "deny"
    );
    assert_eq!(
        finding(&json, "non-utf8-path", "/usr/lib/caf\\xe9")["level"],
        "deny"
    );
}
use std::os::unix::ffi::OsStrExt;

#[test]
fn missing_or_corrupt_base_reference_is_exit_2_naming_the_file_and_changes_nothing() {
    // A base named with --base must be there (with none named and none in
    // the tree, finalize runs structurally: tests/structural.rs).
    let tree = base_tree();
    let before = tree_digest(tree.root());
    let out = finalize(&tree, &["--base", "/nonexistent/base.json"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("/nonexistent/base.json"),
        "{}",
        out.stderr
    );
    assert_eq!(tree_digest(tree.root()), before);

    let tree = snapshotted();
    let reference = tree.path("/usr/lib/ostree-finalize/base.json");
    let good = fs::read(&reference).unwrap();
    for (what, bytes) in [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("garbage", b"\x00\x01garbage".to_vec()),
        (
            "newer format",
            String::from_utf8(good.clone())
                .unwrap()
                .replacen("\"version\":1", "\"version\":7", 1)
                .into_bytes(),
        ),
    ] {
        fs::write(&reference, &bytes).unwrap();
        let before = tree_digest(tree.root());
        let out = finalize(&tree, &[]);
        assert_eq!(out.code, 2, "{what}: {}", out.stderr);
        assert!(
            out.stderr.contains("/usr/lib/ostree-finalize/base.json"),
            "{what}: {}",
            out.stderr
        );
        assert_eq!(tree_digest(tree.root()), before, "{what}");
    }

    // --base names a host file: the message names it too.
    let out = finalize(&tree, &["--base", "/nonexistent/base.json"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("/nonexistent/base.json"),
        "{}",
        out.stderr
    );
}

#[test]
fn corrupt_rpmdb_is_exit_2_naming_the_database_and_changes_nothing() {
    let tree = snapshotted();
    let db = tree.path("/usr/lib/sysimage/rpm/rpmdb.sqlite");
    let mut bytes = fs::read(&db).unwrap();
    let len = bytes.len();
    bytes.truncate(len / 3);
    bytes[100..200].fill(0xa5);
    fs::write(&db, bytes).unwrap();
    let before = tree_digest(tree.root());
    let out = finalize(&tree, &[]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("/usr/lib/sysimage/rpm/rpmdb.sqlite"),
        "{}",
        out.stderr
    );
    assert_eq!(tree_digest(tree.root()), before);
}

#[test]
fn dry_run_and_diff_leave_the_tree_byte_identical() {
    for layout in Layout::ALL {
        dry_run_and_diff_leave_the_tree_byte_identical_on(layout);
    }
}

fn dry_run_and_diff_leave_the_tree_byte_identical_on(layout: Layout) {
    eprintln!("layout: {layout:?}");
    let tree = snapshotted_of(layout);
    rpm_in(
        tree.root(),
        &[
            "-i",
            "--nodeps",
            "--noscripts",
            rpm_path("extra-tool-1.0-1").to_str().unwrap(),
        ],
    );
    let before = tree_digest(tree.root());
    finalize(&tree, &["--dry-run"]).expect_code(0);
    let out = run(&[
        "diff",
        "--root",
        tree.root().to_str().unwrap(),
        "--format",
        "json",
    ]);
    out.expect_code(0);
    let json = out.json();
    assert!(
        json["changes"]["added"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "/usr/bin/extra-tool"),
        "{json:#}"
    );
    assert_eq!(tree_digest(tree.root()), before);
}

#[test]
fn json_output_is_byte_stable_and_finalize_is_idempotent() {
    for layout in Layout::ALL {
        json_output_is_byte_stable_and_finalize_is_idempotent_on(layout);
    }
}

fn json_output_is_byte_stable_and_finalize_is_idempotent_on(layout: Layout) {
    eprintln!("layout: {layout:?}");
    let tree = snapshotted_of(layout);
    fs::write(tree.path("/usr/bin/base-tool"), "changed").unwrap();
    fs::write(tree.path("/etc/base-utils.conf"), "level=debug\n").unwrap();
    let a = finalize(&tree, &["--allow-overrides"]);
    a.expect_code(0);
    let after_once = tree_digest(tree.root());
    let b = finalize(&tree, &["--allow-overrides"]);
    b.expect_code(0);
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(
        tree_digest(tree.root()),
        after_once,
        "running finalize twice equals running it once"
    );
}

#[test]
fn symlinks_to_the_host_root_are_never_followed_out_of_the_root() {
    let tree = snapshotted();
    // Outside the root: something that would be denied if the walk went there.
    let outside = tempfile::tempdir().unwrap();
    sh(
        "mkfifo",
        &[outside.path().join("host-fifo").to_str().unwrap()],
    );
    symlink(outside.path(), tree.path("/usr/lib/to-host-dir")).unwrap();
    symlink("/", tree.path("/usr/lib/to-root")).unwrap();
    symlink("../../../../../../..", tree.path("/usr/lib/up-and-out")).unwrap();
    symlink(outside.path(), tree.path("/etc/to-host-dir")).unwrap();
    let out = finalize(&tree, &["--dry-run"]);
    out.expect_code(0);
    let json = out.json();
    assert!(
        findings(&json, "special-file").is_empty(),
        "walked out of the root: {json:#}"
    );
    // And the rpmdb lookup: a dbpath symlinked out of the root is not read.
    let tree = snapshotted();
    let outside_db = tempfile::tempdir().unwrap();
    fs::copy(
        tree.path("/usr/lib/sysimage/rpm/rpmdb.sqlite"),
        outside_db.path().join("rpmdb.sqlite"),
    )
    .unwrap();
    fs::remove_dir_all(tree.path("/usr/lib/sysimage/rpm")).unwrap();
    symlink(outside_db.path(), tree.path("/usr/lib/sysimage/rpm")).unwrap();
    let out = finalize(&tree, &["--dry-run"]);
    let json = out.json();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(
        findings(&json, "rpm-base-changed").len(),
        2,
        "the host copy of the db was not used: {json:#}"
    );
}

#[test]
fn ostree_container_finalize_runs_through_real_ostree_dispatch() {
    let tree = snapshotted();
    fs::write(tree.path("/usr/bin/base-tool"), "changed").unwrap();
    // Give ostree's external-command directory a private mount holding our
    // binary as `ostree-container`, so the host is not touched. A symlink,
    // as the packaging ships it: a copy would be a file open for writing
    // that a test forking in parallel can inherit until it execs, and
    // ostree's exec of it then fails with "Text file busy".
    let ext = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(bin(), ext.path().join("ostree-container")).unwrap();
    let script = format!(
        "mkdir -p /usr/libexec/libostree/ext && mount --bind {} /usr/libexec/libostree/ext && \
         exec ostree container finalize --root {} --format json",
        ext.path().display(),
        tree.root().display()
    );
    let out = in_private_mounts(&script);
    out.expect_code(1);
    let json = out.json();
    assert_eq!(json["command"], "finalize");
    finding(&json, "base-modified", "/usr/bin/base-tool");
}

#[test]
fn the_mode_of_the_root_directory_itself_is_not_compared() {
    // Image layers carry no entry for `/`; each runtime gives it a mode.
    let tree = snapshotted();
    fs::set_permissions(tree.root(), fs::Permissions::from_mode(0o555)).unwrap();
    finalize(&tree, &["--dry-run"]).expect_code(0);
}

#[test]
fn bad_usage_is_exit_2() {
    let out = run(&["finalize", "--no-such-flag"]);
    out.expect_code(2);
    let out = run(&["frobnicate"]);
    out.expect_code(2);
}
