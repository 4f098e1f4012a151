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

// ---------------------------------------------------------------------------
// The CI formats: Markdown summaries and GitHub annotations

/// A world-writable file whose name carries everything that could break a
/// Markdown table or a workflow command: a pipe, an escaped pipe,
/// backticks, emphasis, HTML, a comma, a colon, a percent sign and a
/// newline.
const HOSTILE: &str = "/usr/bin/evil|pipe \\| `tick` *star* <b>x<i>, a:b 100%\nnext";

/// [`HOSTILE`] as reports show it: the backslash doubled.
fn hostile_shown() -> String {
    HOSTILE.replace('\\', "\\\\")
}

/// [`eventful`], plus a package added, one upgraded and one removed, the
/// hostile file, and 12 more world-writable files (a table past its cap).
fn ci_tree() -> BaseTree {
    let tree = eventful();
    let rpm = |args: &[&str]| rpm_in(tree.root(), args);
    rpm(&[
        "-i",
        "--nodeps",
        "--noscripts",
        rpm_path("extra-tool-1.0-1").to_str().unwrap(),
    ]);
    rpm(&[
        "-U",
        "--nodeps",
        "--noscripts",
        rpm_path("base-utils-1.1-1").to_str().unwrap(),
    ]);
    rpm(&["-e", "--nodeps", "--noscripts", "base-lib"]);
    fs::write(tree.path("/etc/base-utils.conf"), "level=debug\n").unwrap();
    let mut files: Vec<String> = (0..12).map(|i| format!("/usr/bin/ww{i:02}")).collect();
    files.push(HOSTILE.to_string());
    for f in files {
        fs::write(tree.path(&f), "x").unwrap();
        fs::set_permissions(tree.path(&f), fs::Permissions::from_mode(0o666)).unwrap();
    }
    tree
}

#[test]
fn markdown_and_github_snapshots() {
    let tree = ci_tree();
    let base = ["finalize", "--dry-run", "--root", root(&tree)];
    let md = run(&[&base[..], &["--format", "markdown"]].concat());
    md.expect_code(1);
    insta::assert_snapshot!("markdown", stable(&md.stdout, &tree));
    let gh = run(&[&base[..], &["--format", "github"]].concat());
    gh.expect_code(1);
    insta::assert_snapshot!("github", stable(&gh.stdout, &tree));
}

#[test]
fn github_annotations_are_one_escaped_command_per_finding() {
    let tree = ci_tree();
    let base = ["finalize", "--dry-run", "--root", root(&tree)];
    let json = run(&[&base[..], &["--format", "json"]].concat()).json();
    let gh = run(&[&base[..], &["--format", "github"]].concat());
    let lines: Vec<&str> = gh.stdout.lines().collect();
    let findings = json["findings"].as_array().unwrap();
    assert_eq!(lines.len(), findings.len() + 1, "{}", gh.stdout);
    for (line, f) in lines.iter().zip(findings) {
        // Parse it back as the runner does: `::CMD PROPS::DATA`.
        let rest = line.strip_prefix("::").unwrap();
        let (head, data) = rest.split_once("::").unwrap();
        let (cmd, props) = head.split_once(' ').unwrap();
        let want = match f["level"].as_str().unwrap() {
            "deny" => "error",
            "warn" => "warning",
            _ => "notice",
        };
        assert_eq!(cmd, want);
        let unescape = |s: &str| {
            s.replace("%0A", "\n")
                .replace("%0D", "\r")
                .replace("%3A", ":")
                .replace("%2C", ",")
                .replace("%25", "%")
        };
        let props: Vec<(&str, String)> = props
            .split(',')
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                (k, unescape(v))
            })
            .collect();
        let mut want_props = vec![("title", f["check"].as_str().unwrap().to_string())];
        if let Some(path) = f["path"].as_str() {
            want_props.push(("file", path.to_string()));
        }
        assert_eq!(props, want_props, "{line}");
        let message = unescape(data);
        assert!(
            message.starts_with(f["message"].as_str().unwrap()),
            "{line}"
        );
        if let Some(detail) = f["detail"].as_str() {
            assert!(message.ends_with(detail.trim_end()), "{line}");
        }
    }
    let hostile = finding(&json, "world-writable", &hostile_shown());
    assert!(hostile["message"].as_str().unwrap().contains('\n'));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("evil|pipe") && l.contains("%0Anext"))
    );
    let last = lines.last().unwrap();
    assert!(
        last.starts_with(
            "ostree-finalize finalize against /usr/lib/ostree-finalize/base.json: FAIL ("
        ),
        "{last}"
    );
}

/// What a Markdown document renders as, block by block.
#[derive(Debug, Clone, PartialEq)]
enum Block {
    Heading(usize, String),
    Para(String),
    Code(String),
    Table(Vec<String>, Vec<Vec<String>>),
}

/// Parse Markdown as GitHub does (tables and strikethrough on) into its
/// headings, paragraphs, code blocks and tables; `<br>` reads as a line
/// break, code spans as their text.
fn blocks(md: &str) -> Vec<Block> {
    use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
    let mut out = Vec::new();
    let mut text = String::new();
    let mut head: Vec<String> = Vec::new();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let take = std::mem::take::<String>;
    let opts = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    for ev in Parser::new_ext(md, opts) {
        match ev {
            Event::Start(Tag::TableCell | Tag::Paragraph | Tag::Heading { .. })
            | Event::Start(Tag::CodeBlock(_)) => text.clear(),
            Event::End(TagEnd::Heading(level)) => {
                out.push(Block::Heading(level as usize, take(&mut text)))
            }
            Event::End(TagEnd::Paragraph) => out.push(Block::Para(take(&mut text))),
            Event::End(TagEnd::CodeBlock) => out.push(Block::Code(take(&mut text))),
            Event::End(TagEnd::TableCell) => row.push(take(&mut text)),
            Event::End(TagEnd::TableHead) => head = std::mem::take(&mut row),
            Event::End(TagEnd::TableRow) => rows.push(std::mem::take(&mut row)),
            Event::End(TagEnd::Table) => out.push(Block::Table(
                std::mem::take(&mut head),
                std::mem::take(&mut rows),
            )),
            Event::Text(t) | Event::Code(t) => text.push_str(&t),
            Event::InlineHtml(h) if &*h == "<br>" => text.push('\n'),
            Event::InlineHtml(h) => panic!("raw HTML {h:?} in a cell or line:\n{md}"),
            Event::SoftBreak => text.push(' '),
            _ => {}
        }
    }
    out
}

/// A path as the Markdown shows it in a code span: control characters
/// escaped.
fn shown_path(p: &str) -> String {
    p.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

#[test]
fn markdown_renders_as_the_summary_it_claims_to_be() {
    let tree = ci_tree();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("summary.md");
    let base = ["finalize", "--dry-run", "--root", root(&tree)];
    let json = run(&[&base[..], &["--format", "json"]].concat()).json();
    let out = run(&[
        &base[..],
        &[
            "--format",
            "markdown",
            "--report-markdown",
            file.to_str().unwrap(),
        ],
    ]
    .concat());
    out.expect_code(1);
    assert_eq!(fs::read_to_string(&file).unwrap(), out.stdout);
    let human = run(&base);
    let verdict = human.stdout.lines().last().unwrap();
    let verdict = verdict.strip_prefix("ostree-finalize finalize: ").unwrap();

    let doc = blocks(&out.stdout);
    let mut at = doc.iter();
    let mut next = || {
        at.next()
            .cloned()
            .unwrap_or_else(|| panic!("ended early:\n{doc:#?}"))
    };
    assert_eq!(
        next(),
        Block::Heading(2, "❌ ostree-finalize finalize: FAIL".into())
    );
    assert_eq!(next(), Block::Para(verdict.into()));
    let s = &json["summary"];
    let count = |l: &str| vec![l.to_string(), s[l].to_string()];
    assert_eq!(
        next(),
        Block::Table(
            vec!["Level".into(), "Findings".into()],
            vec![count("deny"), count("warn"), count("info")]
        )
    );
    assert_eq!(
        next(),
        Block::Para("Base: /usr/lib/ostree-finalize/base.json".into())
    );
    // One section per check, in report order: heading, summary, table.
    let findings = json["findings"].as_array().unwrap();
    let mut ids: Vec<&str> = findings
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    ids.dedup();
    assert!(ids.len() >= 5, "{ids:?}");
    let mut capped = 0;
    for id in ids {
        let of: Vec<&Value> = findings.iter().filter(|f| f["check"] == id).collect();
        let Block::Heading(3, heading) = next() else {
            panic!("no heading for {id}:\n{}", out.stdout)
        };
        assert!(heading.starts_with(&format!("{id} (")), "{heading}");
        assert!(matches!(next(), Block::Para(_)), "{id}: no summary");
        let Block::Table(head, rows) = next() else {
            panic!("no table for {id}:\n{}", out.stdout)
        };
        assert_eq!(head, ["Level", "Path", "Package", "Message"]);
        assert_eq!(rows.len(), of.len().min(10), "{id}");
        for (row, f) in rows.iter().zip(&of) {
            let want = [
                f["level"].as_str().unwrap().to_string(),
                f["path"].as_str().map_or("—".into(), shown_path),
                f["package"].as_str().unwrap_or("—").to_string(),
                f["message"].as_str().unwrap().to_string(),
            ];
            assert_eq!(row[..], want[..], "{id}");
        }
        if of.len() > 10 {
            capped += 1;
            let Block::Para(more) = next() else { panic!() };
            assert!(
                more.starts_with(&format!("…and {} more", of.len() - 10)),
                "{more}"
            );
        }
        for f in of.iter().take(10) {
            if let Some(detail) = f["detail"].as_str() {
                assert_eq!(next(), Block::Code(detail.to_string()), "{id}");
            }
        }
    }
    assert!(capped >= 1, "a capped table:\n{}", out.stdout);
    // The hostile name and message survive, each in its own cell.
    // (Its row was compared above, cell by cell.)
    finding(&json, "world-writable", &hostile_shown());
    assert!(out.stdout.contains("evil\\|pipe"));
    // Then the package changes.
    assert_eq!(next(), Block::Heading(3, "Package changes".into()));
    assert_eq!(next(), Block::Para("1 added, 1 removed, 1 changed.".into()));
    assert_eq!(
        next(),
        Block::Table(
            vec!["Change".into(), "Base".into(), "Image".into()],
            vec![
                vec!["added".into(), "—".into(), "extra-tool-1.0-1.noarch".into()],
                vec![
                    "removed".into(),
                    "base-lib-2:1.0-1.noarch".into(),
                    "—".into()
                ],
                vec![
                    "upgraded".into(),
                    "base-utils-1.0-1.noarch".into(),
                    "base-utils-1.1-1.noarch".into()
                ],
            ]
        )
    );
}

#[test]
fn markdown_from_diff_and_lint_parses_too() {
    let tree = ci_tree();
    let diff = run(&["diff", "--root", root(&tree), "--format", "markdown"]);
    let doc = blocks(&diff.stdout);
    assert!(doc.contains(&Block::Heading(3, "Paths".into())), "{doc:#?}");
    let lint = run(&["lint", "--rootfs", root(&tree), "--format", "markdown"]);
    lint.expect_code(1);
    let doc = blocks(&lint.stdout);
    assert_eq!(
        doc[0],
        Block::Heading(2, "❌ ostree-finalize lint: FAIL".into())
    );
}

// ---------------------------------------------------------------------------
// The CI examples in the README

/// Every ```yaml block of the README.
fn readme_yaml_blocks() -> Vec<String> {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    readme
        .split("```yaml\n")
        .skip(1)
        .map(|b| b.split("\n```").next().unwrap().to_string())
        .collect()
}

/// The simple commands of a shell script, as words: line continuations
/// joined, comments dropped, quotes removed, split at `;`, `|`, `&`, and
/// redirections (with their targets) left out.
fn shell_commands(script: &str) -> Vec<Vec<String>> {
    let script = script.replace("\\\n", " ");
    let mut cmds = Vec::new();
    for line in script.lines() {
        let mut cmd: Vec<String> = Vec::new();
        let mut word = String::new();
        let mut in_word = false;
        let mut redirect = false;
        let mut quote: Option<char> = None;
        let mut chars = line.chars();
        let end_word =
            |word: &mut String, in_word: &mut bool, redirect: &mut bool, cmd: &mut Vec<String>| {
                if *in_word {
                    if *redirect {
                        *redirect = false;
                    } else {
                        cmd.push(std::mem::take(word));
                    }
                }
                word.clear();
                *in_word = false;
            };
        while let Some(c) = chars.next() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some('"'), '\\') => word.extend(chars.next()),
                (Some(_), c) => word.push(c),
                (None, '\'' | '"') => {
                    quote = Some(c);
                    in_word = true;
                }
                (None, '\\') => {
                    word.extend(chars.next());
                    in_word = true;
                }
                (None, '#') if !in_word => break,
                (None, ' ' | '\t') => end_word(&mut word, &mut in_word, &mut redirect, &mut cmd),
                (None, ';' | '|' | '&') => {
                    end_word(&mut word, &mut in_word, &mut redirect, &mut cmd);
                    if !cmd.is_empty() {
                        cmds.push(std::mem::take(&mut cmd));
                    }
                }
                (None, '>' | '<') => {
                    // `2>`: the digit is the descriptor, not a word.
                    if in_word && word.chars().all(|d| d.is_ascii_digit()) {
                        word.clear();
                        in_word = false;
                    }
                    end_word(&mut word, &mut in_word, &mut redirect, &mut cmd);
                    redirect = true;
                }
                (None, c) => {
                    word.push(c);
                    in_word = true;
                }
            }
        }
        assert!(quote.is_none(), "unclosed quote in {line:?}");
        end_word(&mut word, &mut in_word, &mut redirect, &mut cmd);
        if !cmd.is_empty() {
            cmds.push(cmd);
        }
    }
    cmds
}

/// Every shell script in a CI file: GitHub's `run:` strings, GitLab's
/// `script:` (and `before_script:`, `after_script:`) strings and lists.
fn scripts(v: &serde_yaml::Value, out: &mut Vec<String>) {
    use serde_yaml::Value as Y;
    match v {
        Y::Mapping(m) => {
            for (k, v) in m {
                let key = k.as_str().unwrap_or_default();
                let is_script = matches!(key, "run" | "script" | "before_script" | "after_script");
                match v {
                    Y::String(s) if is_script => out.push(s.clone()),
                    Y::Sequence(items) if is_script => {
                        out.extend(items.iter().filter_map(|i| i.as_str().map(str::to_string)))
                    }
                    _ => scripts(v, out),
                }
            }
        }
        Y::Sequence(items) => items.iter().for_each(|i| scripts(i, out)),
        _ => {}
    }
}

/// The value after `flag` in a command's words.
fn flag_value<'a>(words: &'a [String], flag: &str) -> Option<&'a str> {
    words
        .iter()
        .position(|w| w == flag)
        .and_then(|i| words.get(i + 1))
        .map(String::as_str)
}

#[test]
fn the_readme_ci_examples_are_valid_yaml_and_valid_commands() {
    use clap::Parser as _;
    use ostree_finalize::cli::{Cli, Command};
    let mut lint_commands: Vec<(usize, Vec<String>)> = Vec::new();
    let mut docs = Vec::new();
    for (i, block) in readme_yaml_blocks().iter().enumerate() {
        let doc: serde_yaml::Value = serde_yaml::from_str(block)
            .unwrap_or_else(|e| panic!("README yaml block {i} does not parse: {e}\n{block}"));
        let mut found = Vec::new();
        scripts(&doc, &mut found);
        for script in found {
            for words in shell_commands(&script) {
                let start = words
                    .iter()
                    .position(|w| !w.contains('=') && w != "sudo" && w != "env" && w != "exec")
                    .unwrap_or(words.len());
                let words = &words[start..];
                let is_ours = words.first().is_some_and(|w| {
                    std::path::Path::new(w)
                        .file_name()
                        .is_some_and(|n| n == "ostree-finalize")
                });
                if !is_ours {
                    continue;
                }
                match Cli::try_parse_from(words) {
                    Ok(cli) => {
                        if let Command::Lint(args) = &cli.command {
                            ostree_finalize::lint::Settings::from_args(args)
                                .unwrap_or_else(|e| panic!("README block {i}: {words:?}: {e:#}"));
                            lint_commands.push((i, words.to_vec()));
                        }
                    }
                    Err(e) if e.kind() == clap::error::ErrorKind::DisplayVersion => {}
                    Err(e) => panic!("README block {i}: {words:?} is not a valid command:\n{e}"),
                }
            }
        }
        docs.push(doc);
    }
    // The GitHub Actions job: annotations, then the step summary and the
    // SARIF upload of the files that lint command wrote.
    let (gh, gh_lint) = lint_commands
        .iter()
        .find(|(_, w)| flag_value(w, "--format") == Some("github"))
        .map(|(i, w)| (&docs[*i], w))
        .expect("a GitHub Actions example running lint --format github");
    let text = serde_yaml::to_string(gh).unwrap();
    let sarif = flag_value(gh_lint, "--report-sarif").expect("--report-sarif");
    let summary = flag_value(gh_lint, "--report-markdown").expect("--report-markdown");
    let steps = gh["jobs"]["lint"]["steps"]
        .as_sequence()
        .expect("jobs.lint.steps");
    assert!(steps.iter().any(|s| {
        s["uses"]
            .as_str()
            .is_some_and(|u| u.starts_with("github/codeql-action/upload-sarif@"))
            && s["with"]["sarif_file"].as_str() == Some(sarif)
    }));
    assert!(steps.iter().any(|s| {
        s["run"]
            .as_str()
            .is_some_and(|r| r.contains(summary) && r.contains("\"$GITHUB_STEP_SUMMARY\""))
    }));
    assert!(text.contains("security-events: write"));
    // The GitLab job keeps the reports its lint command writes.
    let (gl, gl_lint) = lint_commands
        .iter()
        .map(|(i, w)| (&docs[*i], w))
        .find(|(d, _)| d.get("jobs").is_none())
        .expect("a GitLab CI example running lint");
    let job = gl
        .as_mapping()
        .unwrap()
        .values()
        .find(|j| j.get("script").is_some())
        .unwrap();
    let kept: Vec<&str> = job["artifacts"]["paths"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    for flag in ["--report-json", "--report-sarif", "--report-markdown"] {
        let file = flag_value(gl_lint, flag).unwrap_or_else(|| panic!("GitLab lint has {flag}"));
        assert!(kept.contains(&file), "{file} not kept in {kept:?}");
    }
    assert_eq!(job["artifacts"]["when"].as_str(), Some("always"));
}

#[test]
fn shell_words_are_split_as_the_examples_need() {
    let cmds = shell_commands(
        "ostree-finalize lint \\\n  --image 'oci:a b' # comment\nFOO=1 x >> \"$F\" 2>/dev/null && y --z=\"q\" | z",
    );
    let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        cmds,
        [
            w(&["ostree-finalize", "lint", "--image", "oci:a b"]),
            w(&["FOO=1", "x"]),
            w(&["y", "--z=q"]),
            w(&["z"]),
        ]
    );
}
