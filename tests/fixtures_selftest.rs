//! Tests of the test fixtures themselves (tests/common, fixtures/), so a
//! broken fixture fails here and not as a confusing product failure. Does
//! not run the ostree-finalize binary.

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use common::{base_tree, rpm_in, rpm_path, rpms, tree_digest};

fn sh(script: &str, root: &Path) {
    let out = Command::new("sh")
        .args(["-euc", script, "sh"])
        .arg(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn nevras(root: &Path) -> Vec<String> {
    let out = rpm_in(root, &["-qa", "--qf", "%{NEVRA}\\n"]);
    let mut v: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

#[test]
fn all_fixture_rpms_are_built() {
    let mut names: Vec<String> = fs::read_dir(rpms())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "app-seed-1.0-1.noarch.rpm",
            "app-seed-2.0-1.noarch.rpm",
            "base-lib-1.0-1.noarch.rpm",
            "base-utils-0.9-1.noarch.rpm",
            "base-utils-1.0-1.noarch.rpm",
            "base-utils-1.0-2.noarch.rpm",
            "base-utils-1.1-1.noarch.rpm",
            "extra-tool-1.0-1.noarch.rpm",
            "optapp-1.0-1.noarch.rpm",
            "optapp-2.0-1.noarch.rpm",
        ]
    );
    assert!(rpm_path("base-utils-1.1-1").is_file());
}

#[test]
fn base_tree_has_the_base_packages_installed() {
    let tree = base_tree();
    assert_eq!(
        nevras(tree.root()),
        ["base-lib-2:1.0-1.noarch", "base-utils-1.0-1.noarch"]
    );
    let owner = rpm_in(tree.root(), &["-qf", "/usr/bin/base-tool"]);
    assert_eq!(
        String::from_utf8_lossy(&owner.stdout),
        "base-utils-1.0-1.noarch\n"
    );
    assert!(tree.path("/usr/lib/sysimage/rpm/rpmdb.sqlite").is_file());
    assert_eq!(
        fs::read_to_string(tree.path("/usr/bin/base-tool")).unwrap(),
        "#!/bin/sh\necho \"base-tool 1.0\"\n"
    );
}

#[test]
fn base_tree_has_the_expected_layout() {
    let tree = base_tree();
    for (link, target) in [
        ("/bin", "usr/bin"),
        ("/sbin", "usr/bin"),
        ("/lib", "usr/lib"),
        ("/lib64", "usr/lib64"),
        ("/etc/os-release", "../usr/lib/os-release"),
        ("/usr/bin/bt", "base-tool"),
    ] {
        assert_eq!(
            fs::read_link(tree.path(link)).unwrap(),
            Path::new(target),
            "{link}"
        );
    }
    for dir in ["/tmp", "/var/tmp"] {
        let mode = fs::symlink_metadata(tree.path(dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o1777, "{dir}");
    }
    let passwd = fs::read_to_string(tree.path("/etc/passwd")).unwrap();
    assert!(passwd.starts_with("root:x:0:0:"), "{passwd}");
    assert!(passwd.contains("\nnobody:x:65534:65534:"), "{passwd}");
    // os-release is the one file in /usr that no package owns.
    let out = Command::new("rpm")
        .args(["--root"])
        .arg(tree.root())
        .args(["--dbpath", common::DBPATH, "-qf", "/usr/lib/os-release"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn base_tree_upgrades_with_the_real_rpm() {
    let tree = base_tree();
    let rpm = rpm_path("base-utils-1.1-1");
    rpm_in(
        tree.root(),
        &["-U", "--nodeps", "--noscripts", rpm.to_str().unwrap()],
    );
    assert_eq!(
        nevras(tree.root()),
        ["base-lib-2:1.0-1.noarch", "base-utils-1.1-1.noarch"]
    );
    assert_eq!(
        fs::read_to_string(tree.path("/usr/bin/base-tool")).unwrap(),
        "#!/bin/sh\necho \"base-tool 1.1\"\n"
    );
}

#[test]
fn copies_are_identical_and_independent() {
    let a = base_tree();
    let b = base_tree();
    let before = tree_digest(b.root());
    assert_eq!(tree_digest(a.root()), before);
    fs::write(a.path("/usr/lib/base-utils/data.txt"), "changed\n").unwrap();
    assert_ne!(tree_digest(a.root()), before);
    assert_eq!(tree_digest(b.root()), before);
}

#[test]
fn tree_digest_lists_what_it_compares() {
    let tree = base_tree();
    let digest = tree_digest(tree.root());
    let line = |path: &str| {
        digest
            .lines()
            .find(|l| l.split(' ').next() == Some(path))
            .unwrap_or_else(|| panic!("{path} not in digest:\n{digest}"))
            .to_string()
    };
    assert_eq!(line("/"), "/ d 0755 0:0");
    assert_eq!(line("/tmp"), "/tmp d 1777 0:0");
    assert_eq!(line("/bin"), "/bin l 0777 0:0 -> usr/bin");
    assert!(
        line("/usr/bin/base-tool").starts_with("/usr/bin/base-tool f 0755 0:0 size=31 sha256="),
        "{digest}"
    );
    assert!(
        !digest.contains("# xattrs not compared"),
        "getfattr missing (apt-get install attr)"
    );
}

/// Each mutation of a fresh tree must change the digest; the digest lines
/// that differ are printed on failure.
#[test]
fn tree_digest_detects_changes() {
    let pristine = tree_digest(base_tree().root());
    let cases: &[(&str, &str)] = &[
        ("mode", "chmod 0700 \"$1/usr/bin/base-tool\""),
        ("setuid bit", "chmod u+s \"$1/usr/bin/base-tool\""),
        ("dir mode", "chmod 0700 \"$1/usr/lib/base-utils\""),
        // Same size, different bytes.
        (
            "content",
            "printf 'base-utils data, version 9.9\\n' > \"$1/usr/lib/base-utils/data.txt\"",
        ),
        ("uid", "chown 1 \"$1/usr/bin/base-tool\""),
        ("gid", "chgrp 2 \"$1/usr/bin/base-tool\""),
        ("symlink owner", "chown -h 1:1 \"$1/usr/bin/bt\""),
        ("symlink target", "ln -sfn data.txt \"$1/usr/bin/bt\""),
        (
            "symlink -> file",
            "rm \"$1/usr/bin/bt\" && cp \"$1/usr/bin/base-tool\" \"$1/usr/bin/bt\"",
        ),
        ("added file", "touch \"$1/usr/lib/new\""),
        ("added empty dir", "mkdir \"$1/usr/share/new\""),
        ("removed file", "rm \"$1/usr/share/doc/base-lib/README\""),
        ("removed empty dir", "rmdir \"$1/usr/libexec\""),
        ("fifo", "mkfifo \"$1/run/fifo\""),
        ("device node", "mknod \"$1/run/dev\" c 1 3"),
    ];
    for (what, script) in cases {
        let tree = base_tree();
        sh(script, tree.root());
        let after = tree_digest(tree.root());
        assert_ne!(after, pristine, "digest missed: {what}");
    }

    // Devices: rdev alone changes the digest.
    let a = base_tree();
    let b = base_tree();
    sh("mknod \"$1/run/dev\" c 1 3", a.root());
    sh("mknod \"$1/run/dev\" c 1 5", b.root());
    assert_ne!(tree_digest(a.root()), tree_digest(b.root()));
}

#[test]
fn tree_digest_detects_xattrs() {
    let tree = base_tree();
    let before = tree_digest(tree.root());
    let file = tree.path("/usr/lib/base-utils/data.txt");
    let set = |value: &str| {
        Command::new("setfattr")
            .args(["-n", "user.x", "-v", value])
            .arg(&file)
            .output()
    };
    match set("1") {
        Err(e) => {
            eprintln!("skipped: setfattr unavailable ({e}); apt-get install attr");
            return;
        }
        Ok(o) if !o.status.success() => {
            eprintln!(
                "skipped: this filesystem refuses user xattrs: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            return;
        }
        Ok(_) => {}
    }
    let one = tree_digest(tree.root());
    assert_ne!(one, before);
    assert!(one.contains("\n    xattr user.x=0x31\n"), "{one}");
    set("2").unwrap();
    assert_ne!(tree_digest(tree.root()), one, "xattr value change missed");
    // cp -a carries xattrs into copies.
    let copy = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(tree.root().join("."))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(tree_digest(copy.path()), tree_digest(tree.root()));
}

#[test]
fn tree_digest_ignores_times_and_link_counts() {
    let tree = base_tree();
    let before = tree_digest(tree.root());
    assert_eq!(tree_digest(tree.root()), before, "not deterministic");
    sh(
        "touch -d 2001-01-01 \"$1/usr/bin/base-tool\" \"$1/usr/lib\" \"$1\" && \
         touch -a \"$1/etc/passwd\" && cat \"$1/usr/lib/os-release\" >/dev/null && \
         touch -h -d 2002-02-02 \"$1/bin\" && \
         ln \"$1/usr/lib64/libbase.so.1\" \"$1/tmp/link\" && rm \"$1/tmp/link\"",
        tree.root(),
    );
    assert_eq!(tree_digest(tree.root()), before);
}

#[test]
fn tree_digest_handles_odd_names() {
    let tree = base_tree();
    let dir = tree.path("/usr/share/odd");
    fs::create_dir(&dir).unwrap();
    let names: [&[u8]; 4] = [b"new\nline", b"back\\slash", b"sp ace=eq", b"\xff\xfe"];
    for name in names {
        let p = dir.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name));
        fs::write(&p, name).unwrap();
        // Exercise the getfattr path parser too, where xattrs work.
        let _ = Command::new("setfattr")
            .args(["-n", "user.o", "-v", "1"])
            .arg(&p)
            .output();
    }
    symlink("new\nline", dir.join("link")).unwrap();
    let digest = tree_digest(tree.root());
    assert!(digest.contains("/usr/share/odd/new\\nline f "), "{digest}");
    assert!(digest.contains("/usr/share/odd/\\xff\\xfe f "), "{digest}");
    assert!(
        digest.contains("/usr/share/odd/link l 0777 0:0 -> new\\nline"),
        "{digest}"
    );
}
