//! Policy files, the check registry and the report formats, as a CI job
//! sees them.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::*;
use serde_json::Value;

fn root(tree: &BaseTree) -> &str {
    tree.root().to_str().unwrap()
}

/// The policy example from the README, byte for byte.
fn readme_policy() -> String {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let after = readme
        .split("<!-- policy-example")
        .nth(1)
        .expect("README policy example");
    let block = after.split("```yaml\n").nth(1).unwrap();
    block.split("```").next().unwrap().to_string()
}

/// A tree with several kinds of findings: a waived base change, an
/// overridden package, a denied change, an /etc edit, a world-writable
/// file, /boot content and an extra-clean path.
fn eventful() -> BaseTree {
    let tree = snapshotted();
    fs::write(tree.path("/usr/lib/base-utils/data.txt"), "regenerated\n").unwrap();
    fs::write(tree.path("/usr/lib64/libbase.so.1"), "hotfix").unwrap();
    fs::write(tree.path("/usr/bin/base-tool"), "#!/bin/sh\necho patched\n").unwrap();
    fs::write(tree.path("/etc/base-utils.conf"), "level=debug\n").unwrap();
    fs::write(tree.path("/usr/bin/scratch"), "x").unwrap();
    fs::set_permissions(
        tree.path("/usr/bin/scratch"),
        fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    fs::write(tree.path("/boot/extra"), "x").unwrap();
    fs::create_dir_all(tree.path("/usr/share/doc/extra-tool")).unwrap();
    fs::write(tree.path("/usr/share/doc/extra-tool/README"), "docs").unwrap();
    tree
}

/// Write a policy file beside (not inside) the tree.
fn with_policy(tree: &BaseTree, text: &str) -> std::path::PathBuf {
    let file = tree.root().with_extension("policy.yaml");
    fs::write(&file, text).unwrap();
    file
}

#[test]
fn the_readme_policy_does_what_it_says() {
    let tree = eventful();
    let policy = with_policy(&tree, &readme_policy());
    let out = run(&[
        "finalize",
        "--dry-run",
        "--root",
        root(&tree),
        "--format",
        "json",
        "--policy",
        policy.to_str().unwrap(),
    ]);
    out.expect_code(1);
    let json = out.json();
    // The waiver allows the data file and names the rule.
    let waived = finding(&json, "base-modified", "/usr/lib/base-utils/data.txt");
    assert_eq!(waived["level"], "warn");
    let by = waived["allowed_by"].as_str().unwrap();
    assert!(
        by.starts_with("waiver (") && by.contains("policy.yaml:5"),
        "{by}"
    );
    assert!(waived["message"].as_str().unwrap().contains("OPS-42"));
    // The package override allows changes to base-lib's files.
    let pkg = finding(&json, "base-modified", "/usr/lib64/libbase.so.1");
    assert_eq!(pkg["level"], "warn");
    assert!(
        pkg["allowed_by"]
            .as_str()
            .unwrap()
            .starts_with("package override base-lib")
    );
    // Everything else is still denied.
    assert_eq!(
        finding(&json, "base-modified", "/usr/bin/base-tool")["level"],
        "deny"
    );
    // Levels: world-writable raised to deny, boot-nonempty off.
    assert_eq!(
        finding(&json, "world-writable", "/usr/bin/scratch")["level"],
        "deny"
    );
    assert!(
        !json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["check"] == "boot-nonempty")
    );
    // clean: the extra path is planned for removal.
    finding(&json, "runtime-content", "/usr/share/doc/extra-tool/README");
    assert!(
        json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["check"] != "unused-waiver"),
        "{json:#}"
    );
}

#[test]
fn an_unused_waiver_is_reported() {
    let tree = snapshotted();
    let policy = with_policy(
        &tree,
        "waivers:\n  - check: base-removed\n    paths: [\"/usr/lib/nothing/**\"]\n    reason: legacy\n",
    );
    let out = run(&[
        "finalize",
        "--dry-run",
        "--root",
        root(&tree),
        "--format",
        "json",
        "--policy",
        policy.to_str().unwrap(),
    ]);
    out.expect_code(0);
    let json = out.json();
    let unused: Vec<_> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "unused-waiver")
        .collect();
    assert_eq!(unused.len(), 1, "{json:#}");
    assert_eq!(unused[0]["level"], "warn");
    assert!(
        unused[0]["message"]
            .as_str()
            .unwrap()
            .contains("/usr/lib/nothing/**")
    );
}

#[test]
fn an_unknown_key_is_exit_2_naming_the_key_and_the_line_and_every_error_at_once() {
    let tree = snapshotted();
    let before = tree_digest(tree.root());
    let policy = with_policy(
        &tree,
        "checks:\n  world-writable: loud\nwaivers:\n  - check: base-modified\n    path: [\"/x\"]\n    reason: typo\nfrobnicate: true\n",
    );
    let out = run(&[
        "finalize",
        "--root",
        root(&tree),
        "--policy",
        policy.to_str().unwrap(),
    ]);
    out.expect_code(2);
    let name = policy.display().to_string();
    assert!(
        out.stderr
            .contains(&format!("{name}:7:1: unknown key `frobnicate`")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("{name}:5:5: waivers[0]: unknown field `path`")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "{name}:2:3: checks: world-writable: expected deny"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(tree_digest(tree.root()), before);
}

#[test]
fn the_policy_inside_the_tree_is_used_by_default() {
    let tree = eventful();
    fs::create_dir_all(tree.path("/etc/ostree-finalize")).unwrap();
    fs::write(
        tree.path("/etc/ostree-finalize/policy.yaml"),
        "checks:\n  base-modified: warn\n  world-writable: info\n",
    )
    .unwrap();
    let out = run(&[
        "finalize",
        "--dry-run",
        "--root",
        root(&tree),
        "--format",
        "json",
    ]);
    out.expect_code(0);
    assert_eq!(
        finding(&out.json(), "base-modified", "/usr/bin/base-tool")["level"],
        "warn"
    );
}

#[test]
fn skip_and_fatal_warnings() {
    let tree = snapshotted();
    fs::write(tree.path("/boot/extra"), "x").unwrap();
    run(&["finalize", "--dry-run", "--root", root(&tree)]).expect_code(0);
    let out = run(&[
        "finalize",
        "--dry-run",
        "--root",
        root(&tree),
        "--fatal-warnings",
    ]);
    out.expect_code(1);
    assert!(out.stdout.contains("warnings are fatal"), "{}", out.stdout);
    run(&[
        "finalize",
        "--dry-run",
        "--root",
        root(&tree),
        "--fatal-warnings",
        "--skip",
        "boot-nonempty",
    ])
    .expect_code(0);
}

/// Replace what differs between runs (temp paths) for snapshots.
fn stable(text: &str, tree: &BaseTree) -> String {
    text.replace(root(tree), "[ROOT]")
}

#[test]
fn human_json_and_sarif_snapshots() {
    let tree = eventful();
    let base = ["finalize", "--dry-run", "--root", root(&tree)];
    let human = run(&base);
    human.expect_code(1);
    assert!(
        !human.stdout.contains('\x1b'),
        "no escape codes without a terminal"
    );
    insta::assert_snapshot!("human", stable(&human.stdout, &tree));
    let json = run(&[&base[..], &["--format", "json"]].concat());
    insta::assert_snapshot!("json", stable(&json.stdout, &tree));
    let sarif = run(&[&base[..], &["--format", "sarif"]].concat());
    insta::assert_snapshot!("sarif", stable(&sarif.stdout, &tree));
}

#[test]
fn json_output_validates_against_the_schema_in_the_repo() {
    let validator = common::report_schema();
    let tree = eventful();
    fs::create_dir_all(tree.path("/var/lib/app")).unwrap();
    fs::write(tree.path("/var/lib/app/x"), "x").unwrap();
    fs::write(tree.path("/tmp/junk"), "x").unwrap();
    for args in [
        vec!["finalize", "--dry-run", "--format", "json"],
        vec![
            "finalize",
            "--dry-run",
            "--format",
            "json",
            "--allow-overrides",
            "--fatal-warnings",
        ],
        vec!["diff", "--format", "json"],
    ] {
        let mut args = args.clone();
        args.extend(["--root", root(&tree)]);
        let out = run(&args);
        common::assert_matches_schema(&out.json());
    }
    // And the schema is not vacuous: a broken report fails it.
    let mut bad = run(&[
        "finalize",
        "--dry-run",
        "--format",
        "json",
        "--root",
        root(&tree),
    ])
    .json();
    bad["findings"][0]["level"] = Value::from("fatal");
    assert!(!validator.is_valid(&bad));
}

#[test]
fn sarif_has_what_code_scanning_importers_require() {
    let tree = eventful();
    let dir = tempfile::tempdir().unwrap();
    let sarif_file = dir.path().join("report.sarif");
    let json_file = dir.path().join("report.json");
    let out = run(&[
        "finalize",
        "--dry-run",
        "--root",
        root(&tree),
        "--report-sarif",
        sarif_file.to_str().unwrap(),
        "--report-json",
        json_file.to_str().unwrap(),
    ]);
    out.expect_code(1);
    assert!(
        out.stdout.contains("FAIL"),
        "human output on stdout: {}",
        out.stdout
    );
    let sarif: Value = serde_json::from_str(&fs::read_to_string(&sarif_file).unwrap()).unwrap();
    let report: Value = serde_json::from_str(&fs::read_to_string(&json_file).unwrap()).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let run0 = &sarif["runs"][0];
    let rules = run0["tool"]["driver"]["rules"].as_array().unwrap();
    assert!(
        rules
            .iter()
            .any(|r| r["id"] == "base-modified" && r["shortDescription"]["text"].is_string())
    );
    let results = run0["results"].as_array().unwrap();
    assert_eq!(results.len(), report["findings"].as_array().unwrap().len());
    for r in results {
        assert!(rules.iter().any(|rule| rule["id"] == r["ruleId"]), "{r}");
        assert!(["error", "warning", "note"].contains(&r["level"].as_str().unwrap()));
        assert!(r["message"]["text"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
                .starts_with('/')
        );
    }
    let denied = results
        .iter()
        .find(|r| r["ruleId"] == "base-modified" && r["level"] == "error")
        .unwrap();
    assert_eq!(
        denied["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "/usr/bin/base-tool"
    );
}

#[test]
fn human_output_truncates_per_check_unless_asked_not_to() {
    let tree = snapshotted();
    for i in 0..13 {
        let f = tree.path(&format!("/usr/bin/ww{i:02}"));
        fs::write(&f, "x").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o666)).unwrap();
    }
    let out = run(&["finalize", "--dry-run", "--root", root(&tree)]);
    assert!(
        out.stdout.contains("…and 3 more (--no-truncate shows all)"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("/usr/bin/ww12"));
    let out = run(&[
        "finalize",
        "--dry-run",
        "--root",
        root(&tree),
        "--no-truncate",
    ]);
    assert!(out.stdout.contains("/usr/bin/ww12") && !out.stdout.contains("more (--no-truncate"));
}

#[test]
fn colour_only_on_a_terminal() {
    let tree = snapshotted();
    fs::write(tree.path("/usr/bin/base-tool"), "x").unwrap();
    let cmd = format!(
        "{} finalize --dry-run --root {}",
        bin().display(),
        root(&tree)
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(tty.contains("\x1b[1;31m"), "colour on a terminal: {tty}");
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("\x1b[1;3"));
}

#[test]
fn list_checks_is_a_stable_documented_registry() {
    let out = run(&["list-checks", "--format", "json"]);
    out.expect_code(0);
    let checks: Value = out.json();
    let ids: Vec<&str> = checks
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "ids are unique");
    insta::assert_snapshot!("list-checks-ids", ids.join("\n"));
    let yaml = run(&["list-checks", "--format", "yaml"]);
    yaml.expect_code(0);
    let parsed: Value = serde_yaml::from_str(&yaml.stdout).unwrap();
    assert_eq!(parsed, checks, "YAML and JSON list the same registry");
}

#[test]
fn completions_and_man_page_are_generated_from_the_cli() {
    let bash = run(&["completions", "bash"]);
    bash.expect_code(0);
    assert!(bash.stdout.contains("--allow-overrides"));
    let man = run(&["man"]);
    man.expect_code(0);
    assert!(man.stdout.contains(".TH ostree-finalize"));
}
