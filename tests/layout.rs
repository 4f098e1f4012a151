//! The layout rewrite on real trees, proven by the real systemd-tmpfiles,
//! systemd-sysusers and ostree.

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

const TMPFILES: &str = "/usr/lib/tmpfiles.d/ostree-finalize-var.conf";
const SYSUSERS: &str = "/usr/lib/sysusers.d/ostree-finalize.conf";

/// What a Containerfile typically leaves behind: a package with /var
/// content, app data with an owner, a symlink, tricky names, a user.
fn derive_app(tree: &BaseTree) {
    rpm_in(
        tree.root(),
        &[
            "-i",
            "--nodeps",
            "--noscripts",
            rpm_path("extra-tool-1.0-1").to_str().unwrap(),
        ],
    );
    let mut passwd = fs::read_to_string(tree.path("/etc/passwd")).unwrap();
    passwd.push_str("app:x:990:985:App Daemon:/var/lib/app:/usr/sbin/nologin\n");
    fs::write(tree.path("/etc/passwd"), passwd).unwrap();
    let mut group = fs::read_to_string(tree.path("/etc/group")).unwrap();
    group.push_str("app:x:985:\n");
    fs::write(tree.path("/etc/group"), group).unwrap();
    let app = tree.path("/var/lib/app");
    fs::create_dir_all(app.join("my dir")).unwrap();
    fs::set_permissions(&app, fs::Permissions::from_mode(0o750)).unwrap();
    chown(&app, Some(990), Some(985)).unwrap();
    fs::write(app.join("data.txt"), "important data\n").unwrap();
    fs::set_permissions(app.join("data.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    chown(app.join("data.txt"), Some(990), Some(985)).unwrap();
    chown(app.join("my dir"), Some(990), Some(985)).unwrap();
    fs::write(app.join("my dir").join("back\\slash 100%"), "tricky\n").unwrap();
    fs::write(app.join("my dir").join("caf\u{e9}"), "utf8\n").unwrap();
    symlink("data.txt", app.join("current")).unwrap();
}

/// `cp -a` of a subtree, to compare after a round trip.
fn copy_of(src: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    sh(
        "cp",
        &["-a", src.to_str().unwrap(), dir.path().to_str().unwrap()],
    );
    dir
}

#[test]
fn var_content_and_users_round_trip_through_real_systemd_tmpfiles_and_sysusers() {
    for layout in Layout::ALL {
        var_content_and_users_round_trip_through_real_systemd_tmpfiles_and_sysusers_on(layout);
    }
}

fn var_content_and_users_round_trip_through_real_systemd_tmpfiles_and_sysusers_on(layout: Layout) {
    eprintln!("layout: {layout:?}");
    let tree = snapshotted_of(layout);
    derive_app(&tree);
    let var_before = copy_of(&tree.path("/var/lib"));

    let out = finalize(&tree, &[]);
    out.expect_code(0);
    let json = out.json();
    let var: Vec<_> = findings(&json, "var-content")
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(var, ["/var/lib/app", "/var/lib/extra-tool"], "{json:#}");
    let users: Vec<_> = findings(&json, "users-added")
        .iter()
        .map(|f| f["message"].as_str().unwrap().to_string())
        .collect();
    assert!(
        users.iter().any(|m| m.starts_with("user app ")),
        "{users:?}"
    );

    // The converted content is gone from /var, kept in the factory.
    assert!(!tree.path("/var/lib/app").exists());
    assert!(!tree.path("/var/lib/extra-tool").exists());
    assert!(tree.path("/var/lib").is_dir(), "base directories stay");
    let factory = tree.path("/usr/share/factory/var/lib/app/data.txt");
    assert_eq!(fs::read_to_string(&factory).unwrap(), "important data\n");
    let tmpfiles = fs::read_to_string(tree.path(TMPFILES)).unwrap();
    assert!(
        tmpfiles.contains("d /var/lib/app 0750 app app -\n"),
        "{tmpfiles}"
    );
    assert!(
        tmpfiles.contains("L /var/lib/app/current - - - - data.txt\n"),
        "{tmpfiles}"
    );
    // Column fields are quoted, arguments C-escaped, % doubled: checked
    // byte for byte, then proven by the real systemd-tmpfiles below.
    let expected = [
        "d \"/var/lib/app/my dir\" 0755 app app -\n",
        "C \"/var/lib/app/my dir/back\\\\slash 100%%\" - - - - /usr/share/factory/var/lib/app/my\\x20dir/back\\x5cslash\\x20100%%\n",
        "C \"/var/lib/app/my dir/caf\u{e9}\" - - - - /usr/share/factory/var/lib/app/my\\x20dir/caf\u{e9}\n",
    ];
    for line in expected {
        assert!(tmpfiles.contains(line), "{line} in {tmpfiles}");
    }
    let sysusers = fs::read_to_string(tree.path(SYSUSERS)).unwrap();
    assert!(sysusers.contains("g app 985\n"), "{sysusers}");
    assert!(
        sysusers.contains("u app 990:985 \"App Daemon\" \"/var/lib/app\" \"/usr/sbin/nologin\"\n"),
        "{sysusers}"
    );

    // A fresh deployment: /var/lib is empty, the user database is the
    // base's. The real systemd tools rebuild both exactly.
    fs::remove_dir_all(tree.path("/var/lib")).unwrap();
    fs::create_dir(tree.path("/var/lib")).unwrap();
    let passwd = fs::read_to_string(tree.path("/etc/passwd")).unwrap();
    fs::write(
        tree.path("/etc/passwd"),
        passwd.replace(
            "app:x:990:985:App Daemon:/var/lib/app:/usr/sbin/nologin\n",
            "",
        ),
    )
    .unwrap();
    let root_arg = format!("--root={}", tree.root().display());
    sh("systemd-sysusers", &[&root_arg]);
    let passwd = fs::read_to_string(tree.path("/etc/passwd")).unwrap();
    assert!(
        passwd.contains("app:x:990:985:App Daemon:/var/lib/app:/usr/sbin/nologin"),
        "{passwd}"
    );
    sh("systemd-tmpfiles", &[&root_arg, "--create"]);
    // Base /var/lib held only the rpmdb-free skeleton: compare the whole subtree.
    assert_eq!(
        tree_digest(&tree.path("/var/lib")),
        tree_digest(&var_before.path().join("lib"))
    );
}

#[test]
fn runtime_content_and_leftovers_are_cleaned_keeping_the_directories() {
    for layout in Layout::ALL {
        runtime_content_and_leftovers_are_cleaned_keeping_the_directories_on(layout);
    }
}

fn runtime_content_and_leftovers_are_cleaned_keeping_the_directories_on(layout: Layout) {
    eprintln!("layout: {layout:?}");
    let tree = snapshotted_of(layout);
    for f in [
        "/tmp/build.log",
        "/run/build.pid",
        "/var/tmp/scratch/x",
        "/var/cache/dnf/repo/pkg.rpm",
        "/var/lib/dnf/history.sqlite",
        "/var/log/dnf.rpm.log",
    ] {
        fs::create_dir_all(tree.path(f).parent().unwrap()).unwrap();
        fs::write(tree.path(f), "x").unwrap();
    }
    let out = finalize(&tree, &[]);
    out.expect_code(0);
    let json = out.json();
    let cleaned: Vec<_> = findings(&json, "runtime-content")
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        cleaned,
        [
            "/run/build.pid",
            "/tmp/build.log",
            "/var/cache/dnf",
            "/var/lib/dnf",
            "/var/log/dnf.rpm.log",
            "/var/tmp/scratch"
        ]
    );
    for gone in [
        "/tmp/build.log",
        "/run/build.pid",
        "/var/tmp/scratch",
        "/var/cache/dnf",
        "/var/lib/dnf",
        "/var/log/dnf.rpm.log",
    ] {
        assert!(!tree.path(gone).exists(), "{gone} was cleaned");
    }
    for kept in ["/tmp", "/run", "/var/tmp", "/var/cache", "/var/log"] {
        assert!(tree.path(kept).is_dir(), "{kept} is kept");
    }
    assert_eq!(
        fs::metadata(tree.path("/tmp"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o1777
    );
    for leftover in ["rpmdb.sqlite-shm", "rpmdb.sqlite-wal", ".rpm.lock"] {
        assert!(
            !tree.path("/usr/lib/sysimage/rpm").join(leftover).exists(),
            "{leftover}"
        );
    }
    // The checkpointed rpmdb still holds every package.
    let q = rpm_in(tree.root(), &["-qa"]);
    assert!(String::from_utf8_lossy(&q.stdout).contains("base-utils-1.0-1"));
}

#[test]
fn finalize_twice_equals_finalize_once_and_dry_run_changes_nothing() {
    for layout in Layout::ALL {
        finalize_twice_equals_finalize_once_and_dry_run_changes_nothing_on(layout);
    }
}

fn finalize_twice_equals_finalize_once_and_dry_run_changes_nothing_on(layout: Layout) {
    eprintln!("layout: {layout:?}");
    let tree = snapshotted_of(layout);
    derive_app(&tree);
    let before = tree_digest(tree.root());
    let dry = finalize(&tree, &["--dry-run"]);
    dry.expect_code(0);
    assert!(!dry.json()["plan"]["actions"].as_array().unwrap().is_empty());
    assert_eq!(
        tree_digest(tree.root()),
        before,
        "--dry-run changes nothing"
    );
    let human = run(&[
        "finalize",
        "--dry-run",
        "--root",
        tree.root().to_str().unwrap(),
    ]);
    assert!(
        human.stdout.contains("layout rewrite ("),
        "{}",
        human.stdout
    );
    assert!(
        human
            .stdout
            .contains("copy /var/lib/app/data.txt → /usr/share/factory/var/lib/app/data.txt"),
        "{}",
        human.stdout
    );

    finalize(&tree, &[]).expect_code(0);
    let once = tree_digest(tree.root());
    let record = fs::read_to_string(tree.path("/usr/lib/ostree-finalize/record.json")).unwrap();
    finalize(&tree, &[]).expect_code(0);
    assert_eq!(tree_digest(tree.root()), once);
    assert_eq!(
        fs::read_to_string(tree.path("/usr/lib/ostree-finalize/record.json")).unwrap(),
        record
    );
    let rec: Value = serde_json::from_str(&record).unwrap();
    assert_eq!(rec["version"], 1);
    assert_eq!(rec["verdict"], "pass");
    assert_eq!(rec["base_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(rec["generated"], serde_json::json!([TMPFILES, SYSUSERS]));
    assert_eq!(
        rec["packages"]["added"],
        serde_json::json!(["extra-tool-1.0-1.noarch"])
    );
}

#[test]
fn a_failing_verdict_applies_nothing() {
    for layout in Layout::ALL {
        a_failing_verdict_applies_nothing_on(layout);
    }
}

fn a_failing_verdict_applies_nothing_on(layout: Layout) {
    eprintln!("layout: {layout:?}");
    let tree = snapshotted_of(layout);
    derive_app(&tree);
    fs::write(tree.path("/usr/bin/base-tool"), "patched").unwrap();
    let before = tree_digest(tree.root());
    finalize(&tree, &[]).expect_code(1);
    assert_eq!(tree_digest(tree.root()), before);
}

#[test]
fn a_run_killed_at_any_action_converges_on_rerun_without_losing_var_data() {
    let template = snapshotted();
    derive_app(&template);
    let reference = clone_tree(&template);
    let plan = finalize(&reference, &["--dry-run"]).json();
    let actions = plan["plan"]["actions"].as_array().unwrap().len();
    finalize(&reference, &[]).expect_code(0);
    let expected = tree_digest(reference.root());
    assert!(actions > 5, "a plan worth interrupting: {actions}");

    for k in 0..actions {
        let tree = clone_tree(&template);
        let out = Command::new(bin())
            .args(["finalize", "--root", tree.root().to_str().unwrap()])
            .env("OSTREE_FINALIZE_FAULT_AFTER", k.to_string())
            .output()
            .unwrap();
        assert_ne!(
            out.status.code(),
            Some(0),
            "fault at {k} interrupted the run"
        );
        // The data is somewhere at every point: in /var or in the factory.
        let data = [
            "/var/lib/app/data.txt",
            "/usr/share/factory/var/lib/app/data.txt",
        ];
        assert!(
            data.iter()
                .any(|p| fs::read_to_string(tree.path(p)).is_ok_and(|s| s == "important data\n")),
            "after fault {k}"
        );
        finalize(&tree, &[]).expect_code(0);
        assert_eq!(
            tree_digest(tree.root()),
            expected,
            "rerun after a crash at action {k}"
        );
    }
}

#[test]
fn existing_tmpfiles_and_sysusers_declarations_are_not_repeated() {
    for layout in Layout::ALL {
        existing_tmpfiles_and_sysusers_declarations_are_not_repeated_on(layout);
    }
}

fn existing_tmpfiles_and_sysusers_declarations_are_not_repeated_on(layout: Layout) {
    eprintln!("layout: {layout:?}");
    let tree = snapshotted_of(layout);
    derive_app(&tree);
    fs::create_dir_all(tree.path("/usr/lib/tmpfiles.d")).unwrap();
    fs::write(
        tree.path("/usr/lib/tmpfiles.d/app.conf"),
        "d /var/lib/app 0750 app app -\n",
    )
    .unwrap();
    fs::create_dir_all(tree.path("/usr/lib/sysusers.d")).unwrap();
    fs::write(
        tree.path("/usr/lib/sysusers.d/app.conf"),
        "u app 990:985 \"App Daemon\"\n",
    )
    .unwrap();
    finalize(&tree, &[]).expect_code(0);
    let tmpfiles = fs::read_to_string(tree.path(TMPFILES)).unwrap();
    assert!(!tmpfiles.contains("d /var/lib/app "), "{tmpfiles}");
    assert!(tmpfiles.contains("C /var/lib/app/data.txt "), "{tmpfiles}");
    let sysusers = fs::read_to_string(tree.path(SYSUSERS)).unwrap_or_default();
    assert!(!sysusers.contains("u app"), "{sysusers}");
}

#[test]
fn mount_points_in_runtime_directories_are_never_touched() {
    let tree = snapshotted();
    fs::write(tree.path("/run/.containerenv"), "").unwrap();
    fs::create_dir_all(tree.path("/run/secrets")).unwrap();
    fs::write(tree.path("/tmp/junk"), "x").unwrap();
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("containerenv"), "engine=\"buildah\"\n").unwrap();
    fs::create_dir(host.path().join("secrets")).unwrap();
    fs::write(host.path().join("secrets").join("token"), "s3cret").unwrap();
    let script = format!(
        "mount --bind {h}/containerenv {r}/run/.containerenv && mount --bind {h}/secrets {r}/run/secrets && \
         {bin} finalize --root {r} --format json",
        h = host.path().display(),
        r = tree.root().display(),
        bin = bin().display()
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    if out.status.code() == Some(1)
        && String::from_utf8_lossy(&out.stderr).contains("unshare failed")
    {
        eprintln!("SKIP: cannot make a private mount namespace here");
        return;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        json["skipped_mounts"],
        serde_json::json!(["/run/.containerenv", "/run/secrets"])
    );
    let cleaned: Vec<_> = findings(&json, "runtime-content")
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(cleaned, ["/tmp/junk"]);
    assert_eq!(
        fs::read_to_string(host.path().join("secrets/token")).unwrap(),
        "s3cret"
    );
    assert_eq!(
        fs::read_to_string(host.path().join("containerenv")).unwrap(),
        "engine=\"buildah\"\n"
    );
}

#[test]
fn usr_etc_tree_commits_with_real_ostree_and_special_files_are_refused_first() {
    let tree = snapshotted();
    derive_app(&tree);
    finalize(&tree, &["--usr-etc"]).expect_code(0);
    assert!(!tree.path("/etc").exists());
    assert!(tree.path("/usr/etc/passwd").is_file());
    // Idempotent with /etc already moved.
    let once = tree_digest(tree.root());
    finalize(&tree, &["--usr-etc"]).expect_code(0);
    assert_eq!(tree_digest(tree.root()), once);

    let repo = tempfile::tempdir().unwrap();
    let repo_arg = format!("--repo={}", repo.path().display());
    sh("ostree", &[&repo_arg, "init", "--mode=bare-user"]);
    let tree_arg = format!("--tree=dir={}", tree.root().display());
    sh(
        "ostree",
        &[&repo_arg, "commit", "-b", "test", "--no-xattrs", &tree_arg],
    );
    let ls = sh(
        "ostree",
        &[&repo_arg, "ls", "-R", "test", "/usr/lib/tmpfiles.d"],
    );
    assert!(ls.contains("ostree-finalize-var.conf"), "{ls}");

    let bad = snapshotted();
    sh(
        "mkfifo",
        &[bad.path("/usr/lib/control.fifo").to_str().unwrap()],
    );
    let out = finalize(&bad, &["--usr-etc"]);
    out.expect_code(1);
    assert!(bad.path("/etc").is_dir(), "nothing applied");
    assert_eq!(findings(&out.json(), "special-file").len(), 1);
}

#[test]
fn kernels_boot_setuid_and_world_writable_are_flagged() {
    let tree = snapshotted();
    fs::create_dir_all(tree.path("/usr/lib/modules/6.1.0/")).unwrap();
    fs::write(tree.path("/usr/lib/modules/6.1.0/vmlinuz"), "kernel").unwrap();
    fs::write(tree.path("/boot/vmlinuz-6.1.0"), "kernel").unwrap();
    fs::write(tree.path("/usr/bin/helper"), "x").unwrap();
    fs::set_permissions(
        tree.path("/usr/bin/helper"),
        fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    fs::create_dir(tree.path("/usr/share/drop")).unwrap();
    fs::set_permissions(
        tree.path("/usr/share/drop"),
        fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let out = finalize(&tree, &["--dry-run"]);
    out.expect_code(1);
    let json = out.json();
    let k = findings(&json, "kernel-initramfs");
    assert_eq!(k.len(), 1);
    assert_eq!(k[0]["path"], "/usr/lib/modules/6.1.0/vmlinuz");
    assert_eq!(
        findings(&json, "boot-nonempty")[0]["path"],
        "/boot/vmlinuz-6.1.0"
    );
    assert_eq!(
        findings(&json, "setuid-added")[0]["path"],
        "/usr/bin/helper"
    );
    assert_eq!(
        findings(&json, "world-writable")[0]["path"],
        "/usr/share/drop"
    );

    fs::write(tree.path("/usr/lib/modules/6.1.0/initramfs.img"), "initrd").unwrap();
    let out = finalize(&tree, &["--dry-run"]);
    out.expect_code(0);
    assert!(findings(&out.json(), "kernel-initramfs").is_empty());
    fs::create_dir_all(tree.path("/usr/lib/modules/6.2.0/")).unwrap();
    fs::write(tree.path("/usr/lib/modules/6.2.0/vmlinuz"), "kernel").unwrap();
    fs::write(tree.path("/usr/lib/modules/6.2.0/initramfs.img"), "initrd").unwrap();
    let out = finalize(&tree, &["--dry-run"]);
    out.expect_code(1);
    let json = out.json();
    assert!(
        findings(&json, "kernel-initramfs")[0]["message"]
            .as_str()
            .unwrap()
            .contains("2 kernels")
    );
}

#[test]
fn a_finalized_tree_deploys_with_real_ostree_admin_carrying_its_config() {
    for layout in Layout::ALL {
        a_finalized_tree_deploys_with_real_ostree_admin_carrying_its_config_on(layout);
    }
}

fn a_finalized_tree_deploys_with_real_ostree_admin_carrying_its_config_on(layout: Layout) {
    eprintln!("layout: {layout:?}");
    let tree = snapshotted_of(layout);
    derive_app(&tree);
    fs::write(tree.path("/etc/base-utils.conf"), "level=debug\n").unwrap();
    fs::create_dir_all(tree.path("/usr/lib/modules/6.1.0")).unwrap();
    fs::write(tree.path("/usr/lib/modules/6.1.0/vmlinuz"), "kernel").unwrap();
    fs::write(
        tree.path("/usr/lib/modules/6.1.0/initramfs.img"),
        "initramfs",
    )
    .unwrap();
    finalize(&tree, &["--usr-etc"]).expect_code(0);

    let scratch = tempfile::tempdir().unwrap();
    let sysroot = scratch.path().join("sysroot");
    fs::create_dir(&sysroot).unwrap();
    let sysroot_arg = format!("--sysroot={}", sysroot.display());
    let repo_arg = format!("--repo={}/ostree/repo", sysroot.display());
    let tree_arg = format!("--tree=dir={}", tree.root().display());
    sh("ostree", &["admin", "init-fs", sysroot.to_str().unwrap()]);
    sh("ostree", &["admin", &sysroot_arg, "os-init", "testos"]);
    sh(
        "ostree",
        &[
            &repo_arg,
            "commit",
            "-b",
            "testos/stable",
            "--no-xattrs",
            &tree_arg,
        ],
    );
    sh(
        "ostree",
        &[
            "admin",
            &sysroot_arg,
            "deploy",
            "--os=testos",
            "testos/stable",
        ],
    );

    let deploys = sysroot.join("ostree/deploy/testos/deploy");
    let deployment = fs::read_dir(&deploys)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .expect("a deployment");
    let etc = deployment.join("etc");
    assert_eq!(
        fs::read_to_string(etc.join("base-utils.conf")).unwrap(),
        "level=debug\n"
    );
    assert!(
        fs::read_to_string(etc.join("passwd"))
            .unwrap()
            .contains("app:x:990:985:")
    );
    let tmpfiles = deployment.join("usr/lib/tmpfiles.d/ostree-finalize-var.conf");
    assert!(
        fs::read_to_string(tmpfiles)
            .unwrap()
            .contains("d /var/lib/app 0750 app app -")
    );
    assert!(
        deployment
            .join("usr/share/factory/var/lib/app/data.txt")
            .is_file()
    );
}
