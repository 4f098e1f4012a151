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
    redeploy_with_systemd(
        &tree,
        "/var/lib",
        "app:x:990:985:App Daemon:/var/lib/app:/usr/sbin/nologin\n",
    );
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

/// The trees the crash test interrupts: /var content on both layouts, and
/// on the FCOS layout the relocations, through the links and with the
/// `rm /opt && mkdir /opt` workaround.
fn crash_templates() -> Vec<(&'static str, BaseTree)> {
    let mut out = Vec::new();
    for layout in Layout::ALL {
        let t = snapshotted_of(layout);
        derive_app(&t);
        out.push(("var content", t));
    }
    let t = snapshotted_of(Layout::Fcos);
    derive_app(&t);
    derive_through_links(&t, "1.0");
    out.push(("through the links", t));
    let t = snapshotted_of(Layout::Fcos);
    derive_app(&t);
    fs::remove_file(t.path("/opt")).unwrap();
    fs::create_dir(t.path("/opt")).unwrap();
    install(&t, &["optapp-1.0-1"]);
    out.push(("workaround", t));
    out
}

#[test]
fn a_run_killed_at_any_action_converges_on_rerun_without_losing_var_data() {
    for (what, template) in crash_templates() {
        let reference = clone_tree(&template);
        let plan = finalize(&reference, &["--dry-run"]).json();
        let actions = plan["plan"]["actions"].as_array().unwrap().len();
        let moves = plan["plan"]["relocated"].as_array().map_or(0, Vec::len);
        finalize(&reference, &[]).expect_code(0);
        let expected = tree_digest(reference.root());
        assert!(actions > 5, "{what}: a plan worth interrupting: {actions}");
        if what != "var content" {
            assert!(moves > 0, "{what}: relocations to interrupt");
        }

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
                "{what}: fault at {k} interrupted the run"
            );
            // The data is somewhere at every point: in /var or in the factory.
            let data = [
                "/var/lib/app/data.txt",
                "/usr/share/factory/var/lib/app/data.txt",
            ];
            assert!(
                data.iter().any(
                    |p| fs::read_to_string(tree.path(p)).is_ok_and(|s| s == "important data\n")
                ),
                "{what}: after fault {k}"
            );
            // No /opt byte is lost: each file is where it was or in /usr.
            if what != "var content" {
                for rel in OPTAPP_FILES {
                    let places = [
                        format!("/opt/optapp/{rel}"),
                        format!("/var/opt/optapp/{rel}"),
                        format!("/usr/lib/opt/optapp/{rel}"),
                    ];
                    assert!(
                        places.iter().any(|p| fs::read_to_string(tree.path(p))
                            .is_ok_and(|s| s == optapp_content(rel, "1.0"))),
                        "{what}: {rel} after fault {k}"
                    );
                }
            }
            finalize(&tree, &[]).expect_code(0);
            assert_eq!(
                tree_digest(tree.root()),
                expected,
                "{what}: rerun after a crash at action {k}"
            );
        }
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
    let out = in_private_mounts(&script);
    if out.code == 1 && out.stderr.contains("unshare failed") {
        eprintln!("SKIP: cannot make a private mount namespace here");
        return;
    }
    out.expect_code(0);
    let json = out.json();
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

// The base's links into /var: /opt and /usr/local content is image content
// and moves into /usr; state stays state.

/// `rpm -i --nodeps --noscripts` of fixture packages, by NAME-VERSION-RELEASE.
fn install(tree: &BaseTree, packages: &[&str]) {
    let paths: Vec<String> = packages
        .iter()
        .map(|p| rpm_path(p).to_str().unwrap().to_string())
        .collect();
    let mut args = vec!["-i", "--nodeps", "--noscripts"];
    args.extend(paths.iter().map(String::as_str));
    rpm_in(tree.root(), &args);
}

/// Write a file (and its parents) with a mode.
fn put(path: &Path, content: &str, mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// What the first user story does on an FCOS-layout base: install into
/// /opt through the base's link (`mkdir -p /var/opt && rpm -i optapp`),
/// a package that owns a file in /var, and a tool in /usr/local/bin
/// (through `usr/local -> ../var/usrlocal`).
fn derive_through_links(tree: &BaseTree, version: &str) {
    fs::create_dir_all(tree.path("/var/opt")).unwrap();
    fs::create_dir_all(tree.path("/var/usrlocal/bin")).unwrap();
    install(
        tree,
        &[
            &format!("optapp-{version}-1"),
            &format!("app-seed-{version}-1"),
        ],
    );
    put(
        &tree.path("/usr/local/bin/tool"),
        &format!("#!/bin/sh\necho tool {version}\n"),
        0o755,
    );
}

/// The files of optapp, relative to /opt/optapp.
const OPTAPP_FILES: [&str; 3] = ["bin/run", "share/read me/notes.txt", "lib/liboptapp.so.1"];

/// What optapp VERSION ships in `rel`.
fn optapp_content(rel: &str, version: &str) -> String {
    match rel {
        "bin/run" => format!("#!/bin/sh\necho \"optapp {version}\"\n"),
        "share/read me/notes.txt" => format!("optapp {version} notes\n"),
        _ => format!("lib {version}\n"),
    }
}

/// A scratch sysroot with one stateroot, `testos`, for real `ostree
/// admin deploy` upgrades.
struct Sysroot {
    _dir: tempfile::TempDir,
    sysroot: std::path::PathBuf,
}

impl Sysroot {
    fn new() -> Sysroot {
        let dir = tempfile::tempdir().unwrap();
        let sysroot = dir.path().join("sysroot");
        fs::create_dir(&sysroot).unwrap();
        sh("ostree", &["admin", "init-fs", sysroot.to_str().unwrap()]);
        let arg = format!("--sysroot={}", sysroot.display());
        sh("ostree", &["admin", &arg, "os-init", "testos"]);
        Sysroot { _dir: dir, sysroot }
    }

    /// Commit a finalized (`--usr-etc`) tree and deploy it; the deployment.
    fn commit_and_deploy(&self, tree: &BaseTree) -> std::path::PathBuf {
        let repo = format!("--repo={}/ostree/repo", self.sysroot.display());
        let tree_arg = format!("--tree=dir={}", tree.root().display());
        let out = sh(
            "ostree",
            &[
                &repo,
                "commit",
                "-b",
                "testos/stable",
                "--no-xattrs",
                &tree_arg,
            ],
        );
        let checksum = out.trim();
        let arg = format!("--sysroot={}", self.sysroot.display());
        sh(
            "ostree",
            &["admin", &arg, "deploy", "--os=testos", "testos/stable"],
        );
        let deployment = self
            .sysroot
            .join("ostree/deploy/testos/deploy")
            .join(format!("{checksum}.0"));
        assert!(deployment.is_dir(), "{} deployed", deployment.display());
        deployment
    }

    /// The stateroot's /var, shared by every deployment.
    fn var(&self) -> std::path::PathBuf {
        self.sysroot.join("ostree/deploy/testos/var")
    }

    /// Run `script` with the stateroot's /var bind-mounted on the
    /// deployment's, as at boot, in a private mount namespace.
    fn booted(&self, deployment: &Path, script: &str) -> std::process::Output {
        let full = format!(
            "mount --bind {var} {dep}/var && {script}",
            var = self.var().display(),
            dep = deployment.display()
        );
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &full])
            .env("DEP", deployment)
            .output()
            .unwrap()
    }
}

/// Resolve `path` inside a deployment as the booted system would: symlinks
/// followed within the deployment, /var being the stateroot's.
fn resolve_booted(deployment: &Path, var: &Path, path: &str) -> std::path::PathBuf {
    let host = |abs: &str| match abs.strip_prefix("/var") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            var.join(rest.trim_start_matches('/'))
        }
        _ => deployment.join(abs.trim_start_matches('/')),
    };
    let mut todo: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(String::from)
        .collect();
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(comp) = todo.pop() {
        match comp.as_str() {
            "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        cur.push(comp);
        let abs = format!("/{}", cur.join("/"));
        if let Ok(target) = fs::read_link(host(&abs)) {
            hops += 1;
            assert!(hops < 40, "symlink loop at {abs}");
            cur.pop();
            let target = target.to_str().unwrap().to_string();
            if target.starts_with('/') {
                cur.clear();
            }
            todo.extend(
                target
                    .split('/')
                    .filter(|c| !c.is_empty())
                    .rev()
                    .map(String::from),
            );
        }
    }
    host(&format!("/{}", cur.join("/")))
}

/// A kernel, so that `ostree admin deploy` accepts the tree.
fn add_kernel(tree: &BaseTree) {
    put(
        &tree.path("/usr/lib/modules/6.1.0/vmlinuz"),
        "kernel",
        0o644,
    );
    put(
        &tree.path("/usr/lib/modules/6.1.0/initramfs.img"),
        "initramfs",
        0o644,
    );
}

#[test]
fn an_opt_install_through_the_link_updates_across_a_real_ostree_upgrade() {
    let sysroot = Sysroot::new();
    let mut reports = Vec::new();
    let mut deployments = Vec::new();
    for version in ["1.0", "2.0"] {
        let tree = snapshotted_of(Layout::Fcos);
        derive_through_links(&tree, version);
        add_kernel(&tree);
        let out = finalize(&tree, &["--usr-etc"]);
        out.expect_code(0);
        reports.push(out.json());
        let deployment = sysroot.commit_and_deploy(&tree);
        let tmpfiles = sysroot.booted(&deployment, "systemd-tmpfiles --root=\"$DEP\" --create");
        if tmpfiles.status.code() == Some(1)
            && String::from_utf8_lossy(&tmpfiles.stderr).contains("unshare failed")
        {
            eprintln!("SKIP: cannot make a private mount namespace here");
            return;
        }
        assert!(
            tmpfiles.status.success(),
            "tmpfiles: {}",
            String::from_utf8_lossy(&tmpfiles.stderr)
        );
        let run = resolve_booted(&deployment, &sysroot.var(), "/opt/optapp/bin/run");
        assert_eq!(
            fs::read_to_string(&run).unwrap(),
            optapp_content("bin/run", version),
            "after deploying {version}"
        );
        deployments.push(deployment);
    }
    let v2 = &deployments[1];
    let var = sysroot.var();
    // The image's content, not a seed-once copy of v1's.
    for rel in OPTAPP_FILES {
        let path = resolve_booted(v2, &var, &format!("/opt/optapp/{rel}"));
        assert!(path.starts_with(v2.join("usr/lib/opt/optapp")), "{path:?}");
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            optapp_content(rel, "2.0")
        );
    }
    let tool = resolve_booted(v2, &var, "/usr/local/bin/tool");
    assert_eq!(
        fs::read_to_string(tool).unwrap(),
        "#!/bin/sh\necho tool 2.0\n"
    );
    // rpm's recorded paths resolve, and verify. ostree zeroes every mtime
    // in a deployment (base packages' files too), so mtimes are not
    // compared; everything else is.
    let verify = sysroot.booted(
        v2,
        "rpm --root \"$DEP\" --dbpath /usr/lib/sysimage/rpm -V --nomtime optapp \
         && rpm --root \"$DEP\" --dbpath /usr/lib/sysimage/rpm -q optapp",
    );
    assert!(
        verify.status.success(),
        "rpm -V optapp: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&verify.stdout),
        "optapp-2.0-1.noarch\n"
    );
    // State stays state: the package's /var file keeps v1's content, and
    // v2's finalize said so.
    assert_eq!(
        fs::read_to_string(var.join("lib/app/seed")).unwrap(),
        "seed 1.0\n"
    );
    for (report, nevra) in reports
        .iter()
        .zip(["app-seed-1.0-1.noarch", "app-seed-2.0-1.noarch"])
    {
        let f = finding(report, "var-package-file", "/var/lib/app/seed");
        assert_eq!(f["level"], "warn");
        assert_eq!(f["package"], nevra);
        let relocated = finding(report, "image-content-relocated", "/opt/optapp");
        assert_eq!(relocated["level"], "info");
        finding(report, "image-content-relocated", "/usr/local/bin/tool");
        assert_eq!(report["summary"]["deny"], 0);
    }
}

#[test]
fn the_human_report_has_one_line_per_relocated_entry() {
    let tree = snapshotted_of(Layout::Fcos);
    derive_through_links(&tree, "1.0");
    let out = run(&[
        "finalize",
        "--dry-run",
        "--root",
        tree.root().to_str().unwrap(),
    ]);
    out.expect_code(0);
    let text = &out.stdout;
    eprintln!("{text}");
    let lines_about = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    // The finding, the copy and the removal: three lines, not one per file.
    assert_eq!(lines_about("/opt/optapp"), 3, "{text}");
    assert!(
        text.contains("copy /var/opt/optapp → /usr/lib/opt/optapp (9 entries)"),
        "{text}"
    );
    assert!(
        text.contains("remove /var/opt/optapp (9 entries, moved to /usr/lib/opt/optapp)"),
        "{text}"
    );
    assert!(!text.contains("bin/run"), "{text}");
    assert!(
        text.contains("L /var/usrlocal/bin/tool -> /usr/lib/usrlocal/bin/tool"),
        "{text}"
    );
    // Finalizing twice gives the tree finalizing once gives.
    finalize(&tree, &[]).expect_code(0);
    let once = tree_digest(tree.root());
    let again = finalize(&tree, &[]);
    again.expect_code(0);
    assert!(
        findings(&again.json(), "image-content-relocated").is_empty(),
        "{again}"
    );
    assert_eq!(tree_digest(tree.root()), once);
}

#[test]
fn the_rm_opt_mkdir_opt_workaround_is_undone_on_fcos_and_plain_on_bootc() {
    // FCOS: the link is put back, the content moves into /usr.
    let base = snapshotted_of(Layout::Fcos);
    let tree = clone_tree(&base);
    fs::remove_file(tree.path("/opt")).unwrap();
    fs::create_dir(tree.path("/opt")).unwrap();
    install(&tree, &["optapp-1.0-1"]);
    let unfinalized = clone_tree(&tree);
    let out = finalize(&tree, &[]);
    out.expect_code(0);
    let json = out.json();
    assert_eq!(finding(&json, "var-link-restored", "/opt")["level"], "info");
    finding(&json, "image-content-relocated", "/opt/optapp");
    assert!(findings(&json, "base-modified").is_empty(), "{json:#}");
    assert_eq!(
        fs::read_link(tree.path("/opt")).unwrap(),
        Path::new("var/opt")
    );
    for rel in OPTAPP_FILES {
        let moved = tree.path(&format!("/usr/lib/opt/optapp/{rel}"));
        assert_eq!(
            fs::read_to_string(moved).unwrap(),
            optapp_content(rel, "1.0")
        );
    }
    let conf = fs::read_to_string(tree.path(TMPFILES)).unwrap();
    assert!(conf.contains("d /var/opt 0755 root root -\n"), "{conf}");
    assert!(
        conf.contains("L /var/opt/optapp - - - - /usr/lib/opt/optapp\n"),
        "{conf}"
    );
    // The add-only rule holds on the result: finalize again and lint both
    // find nothing to change or deny.
    let again = finalize(&tree, &[]);
    again.expect_code(0);
    let again = again.json();
    assert_eq!(again["summary"]["deny"], 0);
    assert!(
        findings(&again, "var-link-restored").is_empty(),
        "{again:#}"
    );
    let lint = run(&[
        "lint",
        "--rootfs",
        tree.root().to_str().unwrap(),
        "--format",
        "json",
    ]);
    lint.expect_code(0);
    let lint = lint.json();
    for check in ["base-modified", "base-removed", "image-content-relocated"] {
        assert!(findings(&lint, check).is_empty(), "{check}: {lint:#}");
    }
    // lint --image against the base image: the finalized image passes
    // clean; the unfinalized one passes too, but says its /opt would be
    // dropped by the importer.
    {
        use common::oci::*;
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("oci");
        let base_layer = pack_tree(base.root());
        for (tag, root) in [("finalized", &tree), ("unfinalized", &unfinalized)] {
            let top = pack_diff(base.root(), root.root());
            add_oci_image(&dir, tag, &[&base_layer, &top], Z::Plain, &[]);
        }
        add_oci_image(&dir, "base", &[&base_layer], Z::Plain, &[]);
        let base_image = format!("oci:{}:base", dir.display());
        let image = format!("oci:{}:finalized", dir.display());
        let out = common::oci::lint(&["--image", &image, "--base-image", &base_image]);
        out.expect_code(0);
        let json = out.json();
        assert_eq!(json["summary"]["deny"], 0, "{out}");
        assert_eq!(json["summary"]["warn"], 0, "{out}");
        let image = format!("oci:{}:unfinalized", dir.display());
        let out = common::oci::lint(&["--image", &image, "--base-image", &base_image]);
        out.expect_code(0);
        let json = out.json();
        assert!(findings(&json, "base-modified").is_empty(), "{out}");
        let f = finding(&json, "var-link-restored", "/opt");
        assert_eq!(f["level"], "warn");
        assert!(f["message"].as_str().unwrap().contains("stranded"), "{f}");
    }
    // At boot: /opt/optapp resolves to the image's copy and rpm verifies it.
    let booted = clone_tree(&tree);
    fs::remove_dir_all(booted.path("/var")).unwrap();
    fs::create_dir(booted.path("/var")).unwrap();
    let root_arg = format!("--root={}", booted.root().display());
    sh("systemd-tmpfiles", &[&root_arg, "--create"]);
    assert_eq!(
        fs::read_link(booted.path("/var/opt/optapp")).unwrap(),
        Path::new("/usr/lib/opt/optapp")
    );
    rpm_in(booted.root(), &["-V", "optapp"]);

    // The same for /usr/local: the standard subdirectory stays a
    // directory in /var, its entries move.
    let tree = snapshotted_of(Layout::Fcos);
    fs::remove_file(tree.path("/usr/local")).unwrap();
    put(&tree.path("/usr/local/bin/tool"), "tool\n", 0o755);
    let out = finalize(&tree, &[]);
    out.expect_code(0);
    let json = out.json();
    finding(&json, "var-link-restored", "/usr/local");
    finding(&json, "image-content-relocated", "/usr/local/bin/tool");
    assert_eq!(
        fs::read_link(tree.path("/usr/local")).unwrap(),
        Path::new("../var/usrlocal")
    );
    let conf = fs::read_to_string(tree.path(TMPFILES)).unwrap();
    for line in [
        "d /var/usrlocal 0755 root root -\n",
        "d /var/usrlocal/bin 0755 root root -\n",
        "L /var/usrlocal/bin/tool - - - - /usr/lib/usrlocal/bin/tool\n",
    ] {
        assert!(conf.contains(line), "{line} in {conf}");
    }
    assert_eq!(
        fs::read_to_string(tree.path("/usr/lib/usrlocal/bin/tool")).unwrap(),
        "tool\n"
    );

    // A link that is simply gone (also where a run stopped between
    // removing the emptied directory and restoring the link) is put back.
    let tree = snapshotted_of(Layout::Fcos);
    fs::remove_file(tree.path("/opt")).unwrap();
    let out = finalize(&tree, &[]);
    out.expect_code(0);
    finding(&out.json(), "var-link-restored", "/opt");
    assert_eq!(
        fs::read_link(tree.path("/opt")).unwrap(),
        Path::new("var/opt")
    );

    // bootc: /opt is a real directory. `rm /opt` of it fails in the build
    // itself; with `rm -rf`, an empty base /opt is recreated with the same
    // mode, which is no change at all, and the content is ordinary image
    // content in /opt.
    let tree = snapshotted_of(Layout::Bootc);
    fs::remove_dir_all(tree.path("/opt")).unwrap();
    fs::create_dir(tree.path("/opt")).unwrap();
    install(&tree, &["optapp-1.0-1"]);
    let out = finalize(&tree, &[]);
    out.expect_code(0);
    let json = out.json();
    for check in [
        "var-link-restored",
        "image-content-relocated",
        "base-modified",
    ] {
        assert!(findings(&json, check).is_empty(), "{check}: {json:#}");
    }
    assert_eq!(
        fs::read_to_string(tree.path("/opt/optapp/bin/run")).unwrap(),
        optapp_content("bin/run", "1.0")
    );
    assert!(!tree.path("/usr/lib/opt").exists());

    // bootc with base content in /opt: removing it is still base-removed.
    let tree = base_tree_of(Layout::Bootc);
    put(&tree.path("/opt/vendor/agent"), "vendor agent\n", 0o755);
    run(&["snapshot", "--root", tree.root().to_str().unwrap()]).expect_code(0);
    fs::remove_dir_all(tree.path("/opt")).unwrap();
    fs::create_dir(tree.path("/opt")).unwrap();
    install(&tree, &["optapp-1.0-1"]);
    let out = finalize(&tree, &["--dry-run"]);
    out.expect_code(1);
    let json = out.json();
    assert_eq!(
        finding(&json, "base-removed", "/opt/vendor")["level"],
        "deny"
    );
}

#[test]
fn tricky_opt_names_round_trip_through_real_systemd_tmpfiles_byte_for_byte() {
    let tree = snapshotted_of(Layout::Fcos);
    let names = [
        "a b",
        "q\"uote",
        "single'q",
        "back\\slash",
        "caf\u{e9} \u{4e2d}",
        "100%",
        "-",
    ];
    for name in names {
        put(&tree.path(&format!("/var/opt/{name}/bin/run")), name, 0o755);
    }
    // A newline below a top-level entry needs no tmpfiles.d line: it moves.
    put(&tree.path("/var/opt/deep/new\nline"), "nl\n", 0o644);
    let out = finalize(&tree, &[]);
    out.expect_code(0);
    let conf = fs::read_to_string(tree.path(TMPFILES)).unwrap();
    for line in [
        "L \"/var/opt/a b\" - - - - /usr/lib/opt/a\\x20b\n",
        "L \"/var/opt/q\\\"uote\" - - - - /usr/lib/opt/q\\x22uote\n",
        "L \"/var/opt/single'q\" - - - - /usr/lib/opt/single\\x27q\n",
        "L \"/var/opt/back\\\\slash\" - - - - /usr/lib/opt/back\\x5cslash\n",
        "L \"/var/opt/caf\u{e9} \u{4e2d}\" - - - - /usr/lib/opt/caf\u{e9}\\x20\u{4e2d}\n",
        "L /var/opt/100%% - - - - /usr/lib/opt/100%%\n",
        "L /var/opt/- - - - - /usr/lib/opt/-\n",
        "L /var/opt/deep - - - - /usr/lib/opt/deep\n",
    ] {
        assert!(conf.contains(line), "{line:?} in\n{conf}");
    }
    assert_eq!(
        fs::read_to_string(tree.path("/usr/lib/opt/deep/new\nline")).unwrap(),
        "nl\n"
    );
    // The real systemd-tmpfiles reads every line back as the same bytes.
    let booted = clone_tree(&tree);
    fs::remove_dir_all(booted.path("/var")).unwrap();
    fs::create_dir(booted.path("/var")).unwrap();
    let root_arg = format!("--root={}", booted.root().display());
    sh("systemd-tmpfiles", &[&root_arg, "--create"]);
    for name in names.iter().chain(&["deep"]) {
        assert_eq!(
            fs::read_link(booted.path(&format!("/var/opt/{name}"))).unwrap(),
            Path::new(&format!("/usr/lib/opt/{name}")),
            "{name:?}"
        );
    }
    for name in names {
        let moved = booted.path(&format!("/usr/lib/opt/{name}/bin/run"));
        assert_eq!(fs::read_to_string(moved).unwrap(), name);
    }

    // A top-level name with a newline cannot be written in tmpfiles.d
    // (systemd 252 does not unescape the path column): denied, with why.
    let bad = snapshotted_of(Layout::Fcos);
    put(&bad.path("/var/opt/new\nline/x"), "x", 0o644);
    let before = tree_digest(bad.root());
    let out = finalize(&bad, &[]);
    out.expect_code(1);
    let json = out.json();
    let f = finding(&json, "image-content-relocated", "/opt/new\nline");
    assert_eq!(f["level"], "deny");
    assert!(
        f["message"].as_str().unwrap().contains("control character"),
        "{f}"
    );
    assert_eq!(tree_digest(bad.root()), before, "nothing applied");
}

#[test]
fn declarations_through_a_base_link_are_not_repeated() {
    let tree = snapshotted_of(Layout::Fcos);
    let mut passwd = fs::read_to_string(tree.path("/etc/passwd")).unwrap();
    passwd.push_str("u:x:1001:1001:U:/home/u:/bin/bash\n");
    fs::write(tree.path("/etc/passwd"), passwd).unwrap();
    let mut group = fs::read_to_string(tree.path("/etc/group")).unwrap();
    group.push_str("u:x:1001:\n");
    fs::write(tree.path("/etc/group"), group).unwrap();
    // `useradd -m u` through home -> var/home.
    let home = tree.path("/var/home/u");
    fs::create_dir_all(&home).unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    chown(&home, Some(1001), Some(1001)).unwrap();
    put(&home.join(".profile"), "export A=1\n", 0o644);
    chown(home.join(".profile"), Some(1001), Some(1001)).unwrap();
    put(
        &tree.path("/usr/lib/tmpfiles.d/u.conf"),
        "d /home/u 0700 u u -\n",
        0o644,
    );
    put(
        &tree.path("/usr/lib/sysusers.d/u.conf"),
        "u u 1001 \"U\" /home/u\n",
        0o644,
    );
    finalize(&tree, &[]).expect_code(0);
    let conf = fs::read_to_string(tree.path(TMPFILES)).unwrap();
    assert!(
        !conf.contains("/var/home/u "),
        "declared as /home/u:\n{conf}"
    );
    assert!(
        conf.contains("C /var/home/u/.profile - - - - /usr/share/factory/var/home/u/.profile\n"),
        "{conf}"
    );
    let sysusers = fs::read_to_string(tree.path(SYSUSERS)).unwrap_or_default();
    assert!(!sysusers.contains("u u "), "{sysusers}");
    // And systemd-tmpfiles gets one consistent declaration.
    let booted = clone_tree(&tree);
    fs::remove_dir_all(booted.path("/var")).unwrap();
    fs::create_dir(booted.path("/var")).unwrap();
    let root_arg = format!("--root={}", booted.root().display());
    let out = Command::new("systemd-tmpfiles")
        .args([&root_arg, "--create"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("Duplicate line"), "{stderr}");
    let md = fs::metadata(booted.path("/var/home/u")).unwrap();
    assert_eq!(md.permissions().mode() & 0o7777, 0o700);
}

#[test]
fn build_logs_are_cleaned_unless_the_policy_keeps_them() {
    for layout in Layout::ALL {
        let tree = snapshotted_of(layout);
        put(&tree.path("/var/log/myapp/build.log"), "noise\n", 0o644);
        put(&tree.path("/var/log/installer.log"), "noise\n", 0o644);
        put(&tree.path("/var/log/keep/audit.log"), "keep me\n", 0o640);
        let policy = tempfile::NamedTempFile::new().unwrap();
        fs::write(policy.path(), "keep-logs:\n  - /var/log/keep/**\n").unwrap();
        let out = finalize(&tree, &["--policy", policy.path().to_str().unwrap()]);
        out.expect_code(0);
        let json = out.json();
        finding(&json, "runtime-content", "/var/log/myapp");
        finding(&json, "runtime-content", "/var/log/installer.log");
        assert!(!tree.path("/var/log/myapp/build.log").exists());
        assert!(!tree.path("/var/log/installer.log").exists());
        let conf = fs::read_to_string(tree.path(TMPFILES)).unwrap();
        assert!(
            conf.contains("d /var/log/myapp 0755 root root -\n"),
            "{conf}"
        );
        assert!(!conf.contains("build.log"), "{conf}");
        assert!(
            conf.contains(
                "C /var/log/keep/audit.log - - - - /usr/share/factory/var/log/keep/audit.log\n"
            ),
            "{layout:?}: {conf}"
        );
        assert_eq!(
            fs::read_to_string(tree.path("/usr/share/factory/var/log/keep/audit.log")).unwrap(),
            "keep me\n"
        );
    }
}

#[test]
fn lint_reports_what_finalize_would_do_and_stranded_content_when_not_finalized() {
    use common::oci::*;
    let base = snapshotted_of(Layout::Fcos);
    let tree = clone_tree(&base);
    derive_through_links(&tree, "1.0");
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("oci");
    let base_layer = pack_tree(base.root());
    let top = pack_diff(base.root(), tree.root());
    add_oci_image(&dir, "base", &[&base_layer], Z::Plain, &[]);
    add_oci_image(&dir, "derived", &[&base_layer, &top], Z::Plain, &[]);
    let image = format!("oci:{}:derived", dir.display());
    let base_image = format!("oci:{}:base", dir.display());
    let fin = finalize(&tree, &["--dry-run"]).json();
    for args in [
        vec![
            "--image",
            image.as_str(),
            "--base-image",
            base_image.as_str(),
        ],
        vec!["--rootfs", tree.root().to_str().unwrap()],
    ] {
        let out = lint(&args);
        out.expect_code(0);
        let json = out.json();
        assert_eq!(
            json["plan"]["relocated"], fin["plan"]["relocated"],
            "{args:?}"
        );
        let f = finding(&json, "image-content-relocated", "/opt/optapp");
        assert_eq!(f["level"], "warn", "{args:?}");
        assert!(f["message"].as_str().unwrap().contains("stranded"), "{f}");
        findings(&json, "not-finalized")
            .first()
            .unwrap_or_else(|| panic!("not-finalized: {json:#}"));
    }
    // Finalized: nothing left to move, nothing stranded.
    finalize(&tree, &[]).expect_code(0);
    let top = pack_diff(base.root(), tree.root());
    add_oci_image(&dir, "finalized", &[&base_layer, &top], Z::Plain, &[]);
    let image = format!("oci:{}:finalized", dir.display());
    for args in [
        vec![
            "--image",
            image.as_str(),
            "--base-image",
            base_image.as_str(),
        ],
        vec!["--rootfs", tree.root().to_str().unwrap()],
    ] {
        let out = lint(&args);
        out.expect_code(0);
        let json = out.json();
        assert!(
            findings(&json, "image-content-relocated").is_empty(),
            "{json:#}"
        );
        assert!(findings(&json, "not-finalized").is_empty(), "{json:#}");
    }
}

#[test]
fn reports_with_relocations_match_the_schema_in_the_repo() {
    let through = snapshotted_of(Layout::Fcos);
    derive_through_links(&through, "1.0");
    let replaced = snapshotted_of(Layout::Fcos);
    fs::remove_file(replaced.path("/opt")).unwrap();
    put(&replaced.path("/opt/app/run"), "run\n", 0o755);
    put(&replaced.path("/opt/bad\nname/x"), "x\n", 0o644);
    for (tree, plan_keys) in [
        (&through, &["relocated", "package_var_files"][..]),
        (
            &replaced,
            &["relocated", "restored_links", "unrelocatable"][..],
        ),
    ] {
        let json = finalize(tree, &["--dry-run"]).json();
        for key in plan_keys {
            assert!(
                json["plan"][key].as_array().is_some_and(|a| !a.is_empty()),
                "{key}: {json:#}"
            );
        }
        common::assert_matches_schema(&json);
    }
}
