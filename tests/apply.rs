//! `apply`: Ignition and Butane configs baked into real trees, proven by the
//! real systemctl, systemd-sysusers and systemd-tmpfiles.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const TMPFILES: &str = "/usr/lib/tmpfiles.d/ostree-finalize-apply.conf";
const SYSUSERS: &str = "/usr/lib/sysusers.d/ostree-finalize-apply.conf";
const FRAGMENT: &str = "/home/alice/.ssh/authorized_keys.d/ostree-finalize-apply";
const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@example.com";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/apply_fixtures")
        .join(name)
}

fn fixture_text(name: &str) -> String {
    fs::read_to_string(fixture(name)).unwrap()
}

/// Make the base look like Fedora CoreOS where it matters here: homes live
/// in /var (`/home` → `var/home`), and sshd reads key fragments from
/// `~/.ssh/authorized_keys.d/` (FCOS's ssh-key-dir).
fn fcos_like(tree: &BaseTree) {
    symlink("var/home", tree.path("/home")).unwrap();
    fs::create_dir_all(tree.path("/var/home")).unwrap();
    fs::create_dir_all(tree.path("/etc/ssh/sshd_config.d")).unwrap();
    fs::write(
        tree.path("/etc/ssh/sshd_config.d/40-ssh-key-dir.conf"),
        "# Read ~/.ssh/authorized_keys.d/* (ssh-key-dir)\n\
         AuthorizedKeysCommand /usr/libexec/ssh-key-dir %u\n\
         AuthorizedKeysCommandUser root\n",
    )
    .unwrap();
}

/// An FCOS-like base with its base reference recorded.
fn base() -> BaseTree {
    let tree = base_tree();
    fcos_like(&tree);
    run(&["snapshot", "--root", tree.root().to_str().unwrap()]).expect_code(0);
    tree
}

/// `ostree-finalize apply --root TREE ARGS…`.
fn apply(tree: &BaseTree, args: &[&str]) -> Outcome {
    let mut all = vec!["apply", "--root", tree.root().to_str().unwrap()];
    all.extend_from_slice(args);
    run(&all)
}

/// Apply a Butane text (written to a scratch file) with the fixture files.
fn apply_butane(tree: &BaseTree, text: &str, extra: &[&str]) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.bu");
    fs::write(&file, text).unwrap();
    let files = fixture("files");
    let mut args = vec![
        "--butane",
        file.to_str().unwrap(),
        "--files-dir",
        files.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    apply(tree, &args)
}

/// Apply an Ignition text.
fn apply_ignition(tree: &BaseTree, text: &str, extra: &[&str]) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.ign");
    fs::write(&file, text).unwrap();
    let mut args = vec!["--ignition", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    apply(tree, &args)
}

fn mode_owner(path: &Path) -> (u32, u32, u32) {
    let md = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (md.mode() & 0o7777, md.uid(), md.gid())
}

fn link_target(path: &Path) -> String {
    fs::read_link(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .display()
        .to_string()
}

#[test]
fn butane_and_its_ignition_equivalent_give_byte_identical_trees() {
    let a = base();
    let b = clone_tree(&a);
    assert_eq!(tree_digest(a.root()), tree_digest(b.root()));

    apply_butane(&a, &fixture_text("full.bu"), &[]).expect_code(0);
    apply_ignition(&b, &fixture_text("full.ign"), &[]).expect_code(0);
    assert_eq!(tree_digest(a.root()), tree_digest(b.root()));

    // What the config asked for, where the user can see it.
    let t = &a;
    assert_eq!(
        fs::read_to_string(t.path("/etc/app/app.conf")).unwrap(),
        "level=debug\nname=\"app 100%\"\n"
    );
    // ops is gid 1000; alice gets uid 1000 (the first free from UID_MIN).
    assert_eq!(
        mode_owner(&t.path("/etc/app/app.conf")),
        (0o640, 1000, 1000)
    );
    assert_eq!(
        fs::read(t.path("/etc/app/logo.txt")).unwrap(),
        fs::read(fixture("files/logo.txt")).unwrap()
    );
    assert_eq!(
        fs::read_to_string(t.path("/usr/share/app/README")).unwrap(),
        "read me\nappended line\n"
    );
    assert_eq!(mode_owner(&t.path("/usr/share/app")), (0o755, 0, 0));
    assert_eq!(link_target(&t.path("/etc/app/current.conf")), "app.conf");
    assert_eq!(
        link_target(&t.path("/etc/systemd/system/debug-shell.service")),
        "/dev/null"
    );
    assert!(
        fs::read_to_string(t.path("/etc/systemd/system/app.service.d/10-env.conf"))
            .unwrap()
            .contains("LEVEL=debug")
    );
    // Nothing is written into /var: it reaches machines through tmpfiles.d.
    assert!(!t.path("/var/lib/app").exists());
    assert!(!t.path("/var/home/alice").exists());
    let tmp = fs::read_to_string(t.path(TMPFILES)).unwrap();
    for line in [
        "d /var/lib/app/cache 0750 alice alice -",
        "C /var/lib/app/data.txt - - - - /usr/share/factory/var/lib/app/data.txt",
        "L /var/lib/app/latest - - - - data.txt",
        "d /var/home/alice 0700 alice alice -",
    ] {
        assert!(tmp.contains(&format!("{line}\n")), "{line} in {tmp}");
    }
    let users = fs::read_to_string(t.path(SYSUSERS)).unwrap();
    for line in [
        "g ops 1000",
        "g alice 1001",
        "u alice 1000:alice \"Alice Example\" \"/home/alice\" \"/bin/bash\"",
        "m alice ops",
        "m alice wheel",
    ] {
        assert!(users.contains(&format!("{line}\n")), "{line} in {users}");
    }
}

/// The symlinks under /etc/systemd/system, with their targets.
fn unit_links(root: &Path) -> Vec<String> {
    let out = Command::new("find")
        .arg(root.join("etc/systemd/system"))
        .args(["-type", "l", "-printf", "%P -> %l\n"])
        .output()
        .unwrap();
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[test]
fn enabled_units_get_exactly_the_symlinks_systemctl_enable_makes() {
    let ours = base();
    let theirs = clone_tree(&ours);
    apply_butane(&ours, &fixture_text("full.bu"), &[]).expect_code(0);
    // The same config without `enabled`, then the real systemctl.
    let text = fixture_text("full.bu").replace("      enabled: true\n", "");
    apply_butane(&theirs, &text, &[]).expect_code(0);
    let root_arg = format!("--root={}", theirs.root().display());
    sh("systemctl", &[&root_arg, "enable", "app.service"]);

    assert_eq!(
        unit_links(ours.root()),
        [
            "app.target.requires/app.service -> /etc/systemd/system/app.service",
            "application.service -> /etc/systemd/system/app.service",
            "debug-shell.service -> /dev/null",
            "multi-user.target.wants/app.service -> /etc/systemd/system/app.service",
        ]
    );
    // Byte for byte the same tree, directories and all.
    assert_eq!(tree_digest(ours.root()), tree_digest(theirs.root()));
}

#[test]
fn a_template_is_enabled_with_its_default_instance_like_systemctl() {
    let config = "variant: fcos\nversion: 1.5.0\nsystemd:\n  units:\n\
                  \x20   - name: worker@.service\n      enabled: true\n      contents: |\n\
                  \x20       [Service]\n        ExecStart=/usr/bin/base-tool %i\n\
                  \x20       [Install]\n        WantedBy=timers.target\n        DefaultInstance=main\n\
                  \x20       Also=helper.service\n\
                  \x20   - name: helper.service\n      contents: |\n\
                  \x20       [Service]\n        ExecStart=/usr/bin/base-tool\n\
                  \x20       [Install]\n        WantedBy=multi-user.target\n";
    let ours = base();
    let theirs = clone_tree(&ours);
    apply_butane(&ours, config, &[]).expect_code(0);
    apply_butane(&theirs, &config.replace("      enabled: true\n", ""), &[]).expect_code(0);
    let root_arg = format!("--root={}", theirs.root().display());
    sh("systemctl", &[&root_arg, "enable", "worker@.service"]);
    assert_eq!(
        unit_links(ours.root()),
        [
            "multi-user.target.wants/helper.service -> /etc/systemd/system/helper.service",
            "timers.target.wants/worker@main.service -> /etc/systemd/system/worker@.service",
        ]
    );
    assert_eq!(tree_digest(ours.root()), tree_digest(theirs.root()));
}

const OVERRIDE: &str = "variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n\
                        \x20   - path: /usr/bin/base-tool\n      overwrite: true\n      mode: 0755\n\
                        \x20     contents:\n        inline: \"#!/bin/sh\\necho mine\\n\"\n\
                        \x20   - path: /usr/bin/my-tool\n      mode: 0755\n\
                        \x20     contents:\n        inline: \"#!/bin/sh\\n\"\n";

#[test]
fn a_config_overwriting_a_base_file_is_refused_and_writes_nothing() {
    let tree = base();
    let before = tree_digest(tree.root());
    let out = apply_butane(&tree, OVERRIDE, &["--format", "json"]);
    out.expect_code(1);
    let json = out.json();
    assert_eq!(json["verdict"], "fail");
    let f = finding(&json, "base-modified", "/usr/bin/base-tool");
    assert_eq!(f["level"], "deny");
    assert_eq!(f["package"], "base-utils-1.0-1.noarch");
    let msg = f["message"].as_str().unwrap();
    assert!(
        msg.contains("storage.files[0]") && msg.contains("contents"),
        "{msg}"
    );
    assert!(msg.contains("--allow-overrides"), "{msg}");
    assert!(out.stderr.contains("nothing written"), "{out}");
    // Not even the harmless second file: the whole config is decided first.
    assert_eq!(tree_digest(tree.root()), before);
}

#[test]
fn with_allow_overrides_a_base_file_is_written_and_reported() {
    let tree = base();
    let out = apply_butane(&tree, OVERRIDE, &["--allow-overrides", "--format", "json"]);
    out.expect_code(0);
    let json = out.json();
    let f = finding(&json, "base-modified", "/usr/bin/base-tool");
    assert_eq!(f["level"], "warn");
    assert_eq!(f["allowed_by"], "--allow-overrides");
    assert_eq!(
        fs::read_to_string(tree.path("/usr/bin/base-tool")).unwrap(),
        "#!/bin/sh\necho mine\n"
    );
    assert!(tree.path("/usr/bin/my-tool").is_file());
    // finalize sees the same override and, allowed, passes.
    let out = finalize(&tree, &["--allow-overrides"]);
    out.expect_code(0);
    assert_eq!(
        finding(&out.json(), "base-modified", "/usr/bin/base-tool")["level"],
        "warn"
    );
}

#[test]
fn without_a_base_reference_every_existing_path_outside_etc_and_var_is_base() {
    let tree = base_tree();
    let before = tree_digest(tree.root());
    let out = apply_butane(&tree, OVERRIDE, &["--format", "json"]);
    out.expect_code(1);
    let json = out.json();
    finding(&json, "base-modified", "/usr/bin/base-tool");
    assert!(
        json["base"].as_str().unwrap().starts_with("none"),
        "{json:#}"
    );
    assert_eq!(tree_digest(tree.root()), before);
}

#[test]
fn ignition_overwrite_rules_apply() {
    let tree = base();
    let before = tree_digest(tree.root());
    // An existing file with contents and no overwrite: Ignition fails, so do we.
    let out = apply_butane(
        &tree,
        "variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n    - path: /etc/base-utils.conf\n\
         \x20     contents:\n        inline: x\n",
        &[],
    );
    out.expect_code(2);
    assert!(
        out.stderr.contains(
            "storage.files[0]: /etc/base-utils.conf exists (regular file); set overwrite: true"
        ),
        "{out}"
    );
    assert_eq!(tree_digest(tree.root()), before);
    // No contents: the existing file is kept and appended to (in /etc: allowed).
    let out = apply_butane(
        &tree,
        "variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n    - path: /etc/base-utils.conf\n\
         \x20     append:\n        - inline: \"extra=1\\n\"\n",
        &[],
    );
    out.expect_code(0);
    assert_eq!(
        fs::read_to_string(tree.path("/etc/base-utils.conf")).unwrap(),
        "# base-utils 1.0 configuration\nlevel=info\ncolor=auto\nextra=1\n"
    );
}

#[test]
fn unsupported_fields_exit_2_naming_the_field() {
    let tree = base();
    let before = tree_digest(tree.root());
    let out = apply_butane(
        &tree,
        "variant: fcos\nversion: 1.5.0\nkernel_arguments:\n  should_exist: [quiet]\n\
         storage:\n  disks:\n    - device: /dev/vda\n      wipe_table: true\n\
         \x20 filesystems:\n    - device: /dev/vda1\n      format: xfs\n\
         \x20 files:\n    - path: /etc/a\n      contents:\n        source: https://example.com/a\n\
         passwd:\n  users:\n    - name: bob\n      password_hash: $6$x\n",
        &[],
    );
    out.expect_code(2);
    for field in [
        "kernel_arguments: kernel arguments cannot be applied at build time (use bootc's",
        "storage.disks: partitioning disks cannot be applied at build time",
        "storage.filesystems: creating or mounting filesystems",
        "storage.files[0].contents.source: remote URL (https) cannot be fetched at build time",
        "passwd.users[0].password_hash: a password",
    ] {
        assert!(out.stderr.contains(field), "{field} in {out}");
    }
    let out = apply_ignition(
        &tree,
        r#"{"ignition":{"version":"3.4.0"},
            "kernelArguments":{"shouldExist":["quiet"]},
            "storage":{"raid":[{"name":"md0","level":"raid1","devices":["/dev/a","/dev/b"]}],
                       "luks":[{"name":"root","device":"/dev/vda4"}],
                       "files":[{"path":"/etc/a","contents":{"source":"s3://bucket/key"}}]}}"#,
        &[],
    );
    out.expect_code(2);
    for field in [
        "/kernelArguments: kernel arguments",
        "/storage/raid: creating RAID arrays",
        "/storage/luks: creating LUKS volumes",
        "/storage/files/0/contents/source: remote URL (s3)",
    ] {
        assert!(out.stderr.contains(field), "{field} in {out}");
    }
    // A field no spec defines is never silently dropped either.
    let out = apply_ignition(
        &tree,
        r#"{"ignition":{"version":"3.4.0"},"systemd":{"units":[{"name":"a.service","enable":true}]}}"#,
        &[],
    );
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("/systemd/units/0/enable: unknown field"),
        "{out}"
    );
    let out = apply_butane(
        &tree,
        "variant: fcos\nversion: 1.5.0\nsystemd:\n  units:\n    - name: a.service\n      enable: true\n",
        &[],
    );
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("systemd.units[0].enable: unknown field `enable`"),
        "{out}"
    );
    assert_eq!(tree_digest(tree.root()), before);
}

#[test]
fn dry_run_prints_the_writes_and_changes_nothing() {
    let tree = base();
    let before = tree_digest(tree.root());
    let out = apply_butane(&tree, &fixture_text("full.bu"), &["--dry-run"]);
    out.expect_code(0);
    assert!(out.stdout.contains("would write"), "{out}");
    for line in [
        "file /etc/app/app.conf (",
        "symlink /etc/systemd/system/multi-user.target.wants/app.service -> /etc/systemd/system/app.service",
        &format!("file {TMPFILES} ("),
        "file /usr/share/factory/var/lib/app/data.txt (8 bytes, 0600 1000:0)",
    ] {
        assert!(out.stdout.contains(line), "{line} in {out}");
    }
    assert_eq!(tree_digest(tree.root()), before);
}

#[test]
fn applying_the_same_config_twice_is_the_same_as_once() {
    let once = base();
    let twice = clone_tree(&once);
    apply_butane(&once, &fixture_text("full.bu"), &[]).expect_code(0);
    apply_butane(&twice, &fixture_text("full.bu"), &[]).expect_code(0);
    let out = apply_ignition(&twice, &fixture_text("full.ign"), &[]);
    out.expect_code(0);
    assert!(out.stdout.contains("nothing to write"), "{out}");
    assert_eq!(tree_digest(once.root()), tree_digest(twice.root()));
}

#[test]
fn disabling_a_unit_the_base_enables_is_a_base_change() {
    let tree = base_tree();
    fs::create_dir_all(tree.path("/usr/lib/systemd/system")).unwrap();
    fs::write(
        tree.path("/usr/lib/systemd/system/base.service"),
        "[Service]\nExecStart=/usr/bin/base-tool\n[Install]\nWantedBy=multi-user.target\n",
    )
    .unwrap();
    let root_arg = format!("--root={}", tree.root().display());
    // The base's own enablement, as a compose makes it.
    sh("systemctl", &[&root_arg, "enable", "base.service"]);
    let link = "/etc/systemd/system/multi-user.target.wants/base.service";
    assert!(tree.path(link).is_symlink());
    run(&["snapshot", "--root", tree.root().to_str().unwrap()]).expect_code(0);
    let before = tree_digest(tree.root());
    let config = "variant: fcos\nversion: 1.5.0\nsystemd:\n  units:\n    - name: base.service\n      enabled: false\n";
    let out = apply_butane(&tree, config, &["--format", "json"]);
    out.expect_code(1);
    let json = out.json();
    let f = finding(&json, "base-modified", link);
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("systemd.units[0].enabled"),
        "{f}"
    );
    assert_eq!(tree_digest(tree.root()), before);
    apply_butane(&tree, config, &["--allow-overrides"]).expect_code(0);
    assert!(!tree.path(link).exists() && !tree.path(link).is_symlink());
}

#[test]
fn the_result_passes_finalize_and_real_sysusers_and_tmpfiles_bring_it_up() {
    let tree = base();
    apply_butane(&tree, &fixture_text("full.bu"), &[]).expect_code(0);

    let out = finalize(&tree, &[]);
    out.expect_code(0);
    assert_eq!(out.json()["verdict"], "pass");

    // A fresh deployment: /var starts empty, users come from sysusers.d.
    for entry in fs::read_dir(tree.path("/var")).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() && !p.is_symlink() {
            fs::remove_dir_all(&p).unwrap();
        } else {
            fs::remove_file(&p).unwrap();
        }
    }
    let root_arg = format!("--root={}", tree.root().display());
    sh("systemd-sysusers", &[&root_arg]);
    let passwd = fs::read_to_string(tree.path("/etc/passwd")).unwrap();
    assert!(
        passwd.contains("alice:x:1000:1001:Alice Example:/home/alice:/bin/bash\n"),
        "{passwd}"
    );
    let group = fs::read_to_string(tree.path("/etc/group")).unwrap();
    assert!(group.contains("ops:x:1000:alice\n"), "{group}");
    assert!(group.contains("wheel:x:10:alice\n"), "{group}");
    sh("systemd-tmpfiles", &[&root_arg, "--create"]);

    // The key is where sshd (ssh-key-dir) reads it, owned by alice: /home
    // is a symlink to var/home, followed here as on the machine.
    assert_eq!(
        fs::read_to_string(tree.path(FRAGMENT)).unwrap(),
        format!("{KEY}\n")
    );
    assert_eq!(mode_owner(&tree.path(FRAGMENT)), (0o600, 1000, 1001));
    for dir in [
        "/var/home/alice",
        "/var/home/alice/.ssh",
        "/var/home/alice/.ssh/authorized_keys.d",
    ] {
        assert_eq!(mode_owner(&tree.path(dir)), (0o700, 1000, 1001), "{dir}");
    }
    // The /var content of the config.
    assert_eq!(
        fs::read_to_string(tree.path("/var/lib/app/data.txt")).unwrap(),
        "state 1\n"
    );
    assert_eq!(
        mode_owner(&tree.path("/var/lib/app/data.txt")),
        (0o600, 1000, 0)
    );
    assert_eq!(
        mode_owner(&tree.path("/var/lib/app/cache")),
        (0o750, 1000, 1001)
    );
    assert_eq!(link_target(&tree.path("/var/lib/app/latest")), "data.txt");
    // The /etc file owned by the new user already has the ids sysusers gave.
    assert_eq!(
        mode_owner(&tree.path("/etc/app/app.conf")),
        (0o640, 1000, 1000)
    );
}

#[test]
fn files_of_a_system_user_created_at_boot_get_their_owner_from_tmpfiles() {
    // A system user without a uid gets one from systemd-sysusers at boot:
    // its files are written as root and fixed by `z` lines after it.
    let config = "variant: fcos\nversion: 1.5.0\nstorage:\n  directories:\n\
                  \x20   - path: /var/lib/svc\n      user:\n        name: svc\n  files:\n\
                  \x20   - path: /var/log/svc.log\n      mode: 0640\n      user:\n        name: svc\n\
                  \x20     contents:\n        inline: \"log\\n\"\n\
                  \x20   - path: /etc/svc.conf\n      mode: 0600\n      user:\n        name: svc\n\
                  \x20     contents:\n        inline: \"secret\\n\"\n\
                  passwd:\n  users:\n    - name: svc\n      system: true\n      no_create_home: true\n\
                  \x20     home_dir: /var/lib/svc\n";
    let tree = base();
    apply_butane(&tree, config, &[]).expect_code(0);
    assert_eq!(mode_owner(&tree.path("/etc/svc.conf")), (0o600, 0, 0));
    finalize(&tree, &[]).expect_code(0);
    fs::remove_dir_all(tree.path("/var/log")).unwrap();
    fs::create_dir(tree.path("/var/log")).unwrap();
    let root_arg = format!("--root={}", tree.root().display());
    sh("systemd-sysusers", &[&root_arg]);
    let passwd = fs::read_to_string(tree.path("/etc/passwd")).unwrap();
    let uid: u32 = passwd
        .lines()
        .find_map(|l| l.strip_prefix("svc:x:"))
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no svc in {passwd}"));
    assert!(uid < 1000, "a system uid: {uid}");
    sh("systemd-tmpfiles", &[&root_arg, "--create"]);
    assert_eq!(mode_owner(&tree.path("/etc/svc.conf")), (0o600, uid, 0));
    assert_eq!(mode_owner(&tree.path("/var/log/svc.log")), (0o640, uid, 0));
    assert_eq!(
        fs::read_to_string(tree.path("/var/log/svc.log")).unwrap(),
        "log\n"
    );
    assert_eq!(mode_owner(&tree.path("/var/lib/svc")), (0o755, uid, 0));
}

#[test]
fn a_file_under_usr_cannot_be_owned_by_a_user_created_at_boot() {
    let config = "variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n\
                  \x20   - path: /usr/share/svc/data\n      user:\n        name: svc\n\
                  \x20     contents:\n        inline: x\n\
                  passwd:\n  users:\n    - name: svc\n      system: true\n";
    let tree = base();
    let before = tree_digest(tree.root());
    let out = apply_butane(&tree, config, &[]);
    out.expect_code(2);
    assert!(
        out.stderr.contains(
            "storage.files[0]: /usr/share/svc/data: owner svc:root is created only at boot"
        ),
        "{out}"
    );
    assert_eq!(tree_digest(tree.root()), before);
}
