//! Structural mode: a tree with no base reference (no base.json, no
//! ostree repository, no --base) is judged on its own. finalize converts
//! every /var entry that tmpfiles.d does not declare, declares every user
//! that sysusers.d does not, cleans runtime content, and passes with the
//! `no-base-reference` warning; `lint --rootfs` of the result then passes.
//! The rewrite is proven by the real systemd-tmpfiles and systemd-sysusers.

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};

use common::*;
use serde_json::Value;

const TMPFILES: &str = "/usr/lib/tmpfiles.d/ostree-finalize-var.conf";
const SYSUSERS: &str = "/usr/lib/sysusers.d/ostree-finalize.conf";
const RECORD: &str = "/usr/lib/ostree-finalize/record.json";
const NO_BASE: &str = "none (structural checks only)";

/// An image nobody snapshotted: app state in /var owned by its own user,
/// build leftovers in /tmp and the dnf cache.
fn unreferenced_image(layout: Layout) -> BaseTree {
    let tree = base_tree_of(layout);
    assert!(!tree.path("/usr/lib/ostree-finalize/base.json").exists());
    let append = |abs: &str, line: &str| {
        let mut text = fs::read_to_string(tree.path(abs)).unwrap();
        text.push_str(line);
        fs::write(tree.path(abs), text).unwrap();
    };
    append(
        "/etc/passwd",
        "app:x:990:985:App Daemon:/var/lib/app:/usr/sbin/nologin\n",
    );
    append("/etc/group", "app:x:985:\n");
    let app = tree.path("/var/lib/app");
    fs::create_dir_all(&app).unwrap();
    fs::set_permissions(&app, fs::Permissions::from_mode(0o750)).unwrap();
    chown(&app, Some(990), Some(985)).unwrap();
    fs::write(app.join("data.txt"), "important data\n").unwrap();
    chown(app.join("data.txt"), Some(990), Some(985)).unwrap();
    fs::write(tree.path("/tmp/build-junk"), "x").unwrap();
    fs::create_dir_all(tree.path("/var/cache/dnf/repo")).unwrap();
    fs::write(tree.path("/var/cache/dnf/repo/primary.xml"), "x").unwrap();
    tree
}

fn ids_at(json: &Value, level: &str) -> Vec<String> {
    let mut ids: Vec<String> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["level"] == level)
        .map(|f| f["check"].as_str().unwrap().to_string())
        .collect();
    ids.dedup();
    ids
}

fn messages(json: &Value, check: &str) -> Vec<String> {
    findings(json, check)
        .iter()
        .map(|f| f["message"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn finalize_with_no_base_converts_declares_cleans_and_lint_then_passes() {
    for layout in Layout::ALL {
        eprintln!("layout: {layout:?}");
        finalize_with_no_base_on(layout);
    }
}

fn finalize_with_no_base_on(layout: Layout) {
    let tree = unreferenced_image(layout);

    // A dry run says what it would do and changes nothing.
    let before = tree_digest(tree.root());
    finalize(&tree, &["--dry-run"]).expect_code(0);
    assert_eq!(tree_digest(tree.root()), before, "--dry-run wrote");

    let out = finalize(&tree, &[]);
    out.expect_code(0);
    let json = out.json();
    assert_matches_schema(&json);
    assert_eq!(json["base"], NO_BASE, "{json:#}");
    assert_eq!(json["verdict"], "pass");
    assert_eq!(ids_at(&json, "deny"), Vec::<String>::new(), "{json:#}");
    assert_eq!(ids_at(&json, "warn"), ["no-base-reference"], "{json:#}");
    let warning = &messages(&json, "no-base-reference")[0];
    for how in [
        "add-only rule was not enforced",
        "ostree-finalize snapshot",
        "--base FILE",
        "--base ostree:REPO[:REF]",
        "--base-image REF",
        "base-modified",
    ] {
        assert!(warning.contains(how), "{how} in {warning}");
    }
    // No base, so no package is "added": the package set is the image's own.
    assert_eq!(json["packages"]["added"], serde_json::json!([]));

    // Every undeclared user, the base's own included, gets a sysusers.d line.
    let users = messages(&json, "users-added");
    for who in ["user app ", "group app ", "user root "] {
        assert!(users.iter().any(|m| m.starts_with(who)), "{who}: {users:?}");
    }
    let sysusers = fs::read_to_string(tree.path(SYSUSERS)).unwrap();
    assert!(
        sysusers.contains("u app 990:985 \"App Daemon\" \"/var/lib/app\" \"/usr/sbin/nologin\"\n"),
        "{sysusers}"
    );
    assert!(sysusers.contains("g app 985\n"), "{sysusers}");

    // Every undeclared /var entry is converted and leaves /var.
    let var: Vec<_> = findings(&json, "var-content")
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    assert!(var.contains(&"/var/lib".to_string()), "{var:?}");
    assert!(
        messages(&json, "var-content")
            .iter()
            .all(|m| m.contains("no other tmpfiles.d file declares it")),
        "{json:#}"
    );
    assert!(!tree.path("/var/lib/app").exists());
    let tmpfiles = fs::read_to_string(tree.path(TMPFILES)).unwrap();
    assert!(
        tmpfiles.contains("d /var/lib/app 0750 app app -\n"),
        "{tmpfiles}"
    );
    assert_eq!(
        fs::read_to_string(tree.path("/usr/share/factory/var/lib/app/data.txt")).unwrap(),
        "important data\n"
    );
    // Runtime content and package-manager leftovers are cleaned.
    assert!(!tree.path("/tmp/build-junk").exists());
    assert!(!tree.path("/var/cache/dnf").exists());
    // The record says there was no base.
    let record: Value = serde_json::from_slice(&fs::read(tree.path(RECORD)).unwrap()).unwrap();
    assert_eq!(record["base_sha256"], Value::Null, "{record:#}");

    // Finalizing again changes nothing; lint of the result passes with
    // only the no-base warning (nothing left in /var to convert).
    let once = tree_digest(tree.root());
    finalize(&tree, &[]).expect_code(0);
    assert_eq!(tree_digest(tree.root()), once, "a second run rewrote");
    let lint = run(&[
        "lint",
        "--rootfs",
        tree.root().to_str().unwrap(),
        "--format",
        "json",
    ]);
    lint.expect_code(0);
    let lint_json = lint.json();
    assert_matches_schema(&lint_json);
    assert_eq!(lint_json["base"], NO_BASE);
    assert_eq!(ids_at(&lint_json, "deny"), Vec::<String>::new(), "{lint}");
    assert_eq!(ids_at(&lint_json, "warn"), ["no-base-reference"], "{lint}");
    assert!(findings(&lint_json, "var-content").is_empty(), "{lint}");

    // A fresh deployment: empty /var, the user gone from /etc/passwd. The
    // real systemd tools bring both back.
    redeploy_with_systemd(
        &tree,
        "/var",
        "app:x:990:985:App Daemon:/var/lib/app:/usr/sbin/nologin\n",
    );
    assert_eq!(
        fs::read_to_string(tree.path("/var/lib/app/data.txt")).unwrap(),
        "important data\n"
    );
    let st = fs::metadata(tree.path("/var/lib/app")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((st.uid(), st.gid(), st.mode() & 0o7777), (990, 985, 0o750));
}

#[test]
fn with_no_base_structural_denies_still_fail_and_nothing_is_written() {
    let tree = base_tree();
    sh("mkfifo", &[tree.path("/usr/lib/pipe").to_str().unwrap()]);
    fs::create_dir_all(tree.path("/var/lib/app")).unwrap();
    let before = tree_digest(tree.root());
    let out = finalize(&tree, &[]);
    out.expect_code(1);
    let json = out.json();
    assert_eq!(json["base"], NO_BASE);
    assert_eq!(
        finding(&json, "special-file", "/usr/lib/pipe")["level"],
        "deny"
    );
    assert_eq!(findings(&json, "no-base-reference").len(), 1, "{json:#}");
    assert_eq!(tree_digest(tree.root()), before, "a failing run wrote");
}

#[test]
fn with_no_base_the_checks_that_need_one_do_not_run_and_say_so() {
    // Overwriting a base binary and adding a setuid file are invisible
    // without a base: no base-modified, no setuid-added, and the warning
    // names both as not run. With the base snapshotted, both are seen.
    let tree = base_tree();
    fs::write(tree.path("/usr/bin/base-tool"), "#!/bin/sh\necho patched\n").unwrap();
    fs::write(tree.path("/usr/bin/newsuid"), "x").unwrap();
    fs::set_permissions(
        tree.path("/usr/bin/newsuid"),
        fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    let out = finalize(&tree, &["--dry-run"]);
    out.expect_code(0);
    let json = out.json();
    assert!(findings(&json, "base-modified").is_empty(), "{json:#}");
    assert!(findings(&json, "setuid-added").is_empty(), "{json:#}");
    let warning = &messages(&json, "no-base-reference")[0];
    assert!(warning.contains("base-modified") && warning.contains("setuid-added"));
    // `--skip no-base-reference` silences it like any check.
    let out = finalize(&tree, &["--dry-run", "--skip", "no-base-reference"]);
    assert!(findings(&out.json(), "no-base-reference").is_empty());

    let tree = snapshotted();
    fs::write(tree.path("/usr/bin/base-tool"), "#!/bin/sh\necho patched\n").unwrap();
    let out = finalize(&tree, &["--dry-run"]);
    out.expect_code(1);
    let json = out.json();
    assert_eq!(
        finding(&json, "base-modified", "/usr/bin/base-tool")["level"],
        "deny"
    );
    assert!(findings(&json, "no-base-reference").is_empty(), "{json:#}");
}

#[test]
fn list_checks_says_which_checks_need_a_base() {
    let out = run(&["list-checks"]);
    out.expect_code(0);
    let checks: Value = serde_json::from_str(&out.stdout).unwrap();
    let needs = |id: &str| {
        checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("{id} listed"))["needs_base"]
            .as_bool()
            .unwrap()
    };
    assert!(needs("base-modified") && needs("rpm-base-changed") && needs("setuid-added"));
    assert!(!needs("var-content") && !needs("users-added") && !needs("special-file"));
}

#[test]
fn with_no_base_declarations_through_the_trees_own_links_count() {
    // On an FCOS layout /home is a link to var/home: a tmpfiles.d line for
    // /home/u declares /var/home/u, and a line for /var/roothome declares
    // what /root holds. Neither is converted again; an undeclared sibling is.
    let tree = base_tree_of(Layout::Fcos);
    fs::create_dir_all(tree.path("/var/home/u")).unwrap();
    fs::create_dir_all(tree.path("/var/home/other")).unwrap();
    fs::create_dir_all(tree.path("/usr/lib/tmpfiles.d")).unwrap();
    fs::write(
        tree.path("/usr/lib/tmpfiles.d/home.conf"),
        "d /home 0755 root root -\nd /home/u 0700 root root -\n",
    )
    .unwrap();
    let out = finalize(&tree, &["--dry-run"]);
    out.expect_code(0);
    let json = out.json();
    let var: Vec<_> = findings(&json, "var-content")
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    assert!(var.contains(&"/var/home/other".to_string()), "{var:?}");
    assert!(!var.contains(&"/var/home/u".to_string()), "{var:?}");
    assert!(!var.contains(&"/var/home".to_string()), "{var:?}");
}
