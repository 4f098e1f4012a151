//! bootc's lint scenarios, rebuilt here: every tree-building case of the
//! tests of bootc's `crates/lib/src/lints.rs`, `bootc_kargs.rs`, and the
//! `sysusers` and `tmpfiles` crates those lints use, as one table. Each row
//! builds a small tree in a tempdir and runs it through the real binary:
//!
//! - **structural**: `lint --rootfs DIR`, no base (every row);
//! - **derived**: the scenario applied on top of a clean base (the passing
//!   fixture, recorded once with `snapshot --output FILE`) and linted with
//!   `--base FILE`, for the rows where a derived build makes sense.
//!
//! Each row states bootc's verdict, ours, the check ids ours reports at
//! warn or deny (exactly these, no others; info ids listed must appear),
//! and, where the two verdicts differ on purpose, why.
//!
//! The trees follow bootc's two fixtures: `Empty` (an empty directory) and
//! `Passing` (the API directories, /boot, /sysroot, the /ostree link, a
//! kernel, and prepare-root.conf with composefs on). Our passing fixture adds
//! two files bootc's does not have, each for a check bootc lacks: the
//! kernel's `initramfs.img` (kernel-initramfs requires it; one row keeps
//! bootc's fixture as is to show it) and `/usr/lib/os-release` (what makes a
//! tree an OS tree, where what a root must contain is checked).
//!
//! Left out, as they build no tree: bootc's parser-only tests (sysusers and
//! sysgroups line parsing, tmpfiles path unescaping and canonicalization,
//! output truncation, the lint list) and the kargs-from-an-ostree-commit
//! test (the same files as `kargs-two-valid-files`, read from a commit).

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::sync::OnceLock;

use common::*;
use serde_json::Value;

/// A verdict: exit 0 with nothing above info, exit 0 with warnings, exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum V {
    Pass,
    Warn,
    Fail,
}

/// What the tree starts from, as in bootc's tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// `fixture()`: an empty directory.
    Empty,
    /// `passing_fixture()`, plus our initramfs and os-release.
    Passing,
}

/// What we expect: the verdict and the check ids.
#[derive(Debug, Clone, Copy)]
struct Ours {
    verdict: V,
    /// Every warn/deny finding's check is one of these; each one listed
    /// appears (at any level).
    ids: &'static [&'static str],
}

const fn ours(verdict: V, ids: &'static [&'static str]) -> Ours {
    Ours { verdict, ids }
}

struct Row {
    /// Scenario name.
    name: &'static str,
    /// The bootc test (or lint) it comes from.
    from: &'static str,
    start: Start,
    build: fn(&Path),
    bootc: V,
    /// Ours with no base.
    structural: Ours,
    /// Ours as a derived build on the clean base (passing fixture), when
    /// that makes sense.
    derived: Option<Ours>,
    /// Why ours differs from bootc, when it does.
    why: &'static str,
}

// Tree-building helpers (paths relative to the root).

fn mkdir(root: &Path, rel: &str) {
    fs::create_dir_all(root.join(rel)).unwrap();
}

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

fn link(root: &Path, target: &str, rel: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    symlink(target, p).unwrap();
}

fn rm(root: &Path, rel: &str) {
    let p = root.join(rel);
    match fs::symlink_metadata(&p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).unwrap(),
        Ok(_) => fs::remove_file(p).unwrap(),
        Err(_) => {}
    }
}

fn chmod(root: &Path, rel: &str, mode: u32) {
    fs::set_permissions(root.join(rel), fs::Permissions::from_mode(mode)).unwrap();
}

const API_DIRS: &[&str] = &["dev", "proc", "sys", "run", "tmp", "var"];

/// bootc's passing fixture, plus the kernel's initramfs and os-release.
fn passing(root: &Path) {
    passing_as_bootc(root);
    write(root, "usr/lib/modules/5.7.2/initramfs.img", "initramfs");
}

/// bootc's passing fixture, plus os-release only.
fn passing_as_bootc(root: &Path) {
    for d in API_DIRS {
        mkdir(root, d);
    }
    write(root, "usr/lib/modules/5.7.2/vmlinuz", "vmlinuz");
    mkdir(root, "boot");
    mkdir(root, "sysroot");
    link(root, "sysroot/ostree", "ostree");
    write(
        root,
        "usr/lib/ostree/prepare-root.conf",
        "[composefs]\nenabled = true\n",
    );
    write(root, "usr/lib/os-release", "ID=scenario\n");
}

fn nothing(_: &Path) {}

/// sysusers.d declaring the reference users and groups the sysusers test
/// starts from (root, and the groups adm and wheel).
fn sysusers_root(root: &Path) {
    write(root, "etc/passwd", "");
    write(root, "etc/group", "");
    write(
        root,
        "usr/lib/sysusers.d/setup.conf",
        "u root 0:0 \"Super User\" /root /bin/bash\ng adm 4\ng wheel 10\n",
    );
}

fn tmpfiles_translation(root: &Path) {
    write(
        root,
        "usr/lib/tmpfiles.d/systemd.conf",
        "d /var/lib 0755 - - -\nd /var/lib/private 0700 root root -\n\
         d /var/log/private 0700 root root -\n",
    );
    write(
        root,
        "etc/tmpfiles.d/user.conf",
        "d /var/lib/user 0755 root root - -\n",
    );
    for d in [
        "var/lib/systemd",
        "var/lib/private",
        "var/lib/nfs",
        "var/lib/user",
    ] {
        mkdir(root, d);
    }
    mkdir(root, "var/lib/test/nested");
    chmod(root, "var/lib/test", 0o777);
    chmod(root, "var/lib/test/nested", 0o777);
    link(root, "../", "var/lib/test/nested/symlink");
    link(root, "/var/lib/foo", "var/lib/test/absolute-symlink");
}

fn two_kargs_files(root: &Path) {
    write(
        root,
        "usr/lib/bootc/kargs.d/01-foo.toml",
        "kargs = [\"console=tty0\", \"nosmt\"]",
    );
    write(
        root,
        "usr/lib/bootc/kargs.d/02-bar.toml",
        "kargs = [\"console=ttyS1\"]",
    );
}

fn non_utf8(root: &Path, name: &[u8]) -> std::path::PathBuf {
    root.join(OsStr::from_bytes(name))
}

const NB: &str = "no-base-reference";

/// The table. Row order follows bootc's tests.
fn rows() -> Vec<Row> {
    use Start::*;
    use V::*;
    vec![
        // lints.rs test_var_run
        Row {
            name: "var-run-absent",
            from: "lints::test_var_run",
            start: Empty,
            build: nothing,
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Pass, &[])),
            why: "",
        },
        Row {
            name: "var-run-directory",
            from: "lints::test_var_run",
            start: Empty,
            build: |r| mkdir(r, "var/run/foo"),
            bootc: Fail,
            structural: ours(Fail, &["var-run-not-link"]),
            derived: Some(ours(Fail, &["var-run-not-link"])),
            why: "",
        },
        Row {
            name: "var-run-removed-again",
            from: "lints::test_var_run",
            start: Empty,
            build: |r| {
                mkdir(r, "var/run/foo");
                rm(r, "var/run");
            },
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Pass, &[])),
            why: "",
        },
        Row {
            name: "var-run-link-to-run",
            from: "lints::check_var_run",
            start: Passing,
            build: |r| link(r, "../run", "var/run"),
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Pass, &[])),
            why: "",
        },
        Row {
            name: "var-run-link-elsewhere",
            from: "lints::check_var_run",
            start: Passing,
            build: |r| link(r, "../tmp", "var/run"),
            bootc: Pass,
            structural: ours(Fail, &["var-run-not-link"]),
            derived: Some(ours(Fail, &["var-run-not-link"])),
            why: "bootc only asks for a symlink; a /var/run that does not lead to /run \
                  misses the runtime directory just as a real directory does",
        },
        // lints.rs test_api
        Row {
            name: "api-dirs-present",
            from: "lints::test_api",
            start: Passing,
            build: nothing,
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Pass, &[])),
            why: "",
        },
        Row {
            name: "api-dir-var-missing",
            from: "lints::test_api",
            start: Passing,
            build: |r| rm(r, "var"),
            bootc: Fail,
            structural: ours(Fail, &["api-dir-missing"]),
            derived: Some(ours(Fail, &["api-dir-missing", "base-removed"])),
            why: "",
        },
        Row {
            name: "api-dir-var-a-file",
            from: "lints::test_api",
            start: Passing,
            build: |r| {
                rm(r, "var");
                write(r, "var", "a file for var");
            },
            bootc: Fail,
            structural: ours(Fail, &["api-dir-missing"]),
            derived: Some(ours(Fail, &["api-dir-missing", "base-modified"])),
            why: "",
        },
        Row {
            name: "api-dir-proc-missing",
            from: "lints::check_api_dirs",
            start: Passing,
            build: |r| rm(r, "proc"),
            bootc: Fail,
            structural: ours(Fail, &["api-dir-missing"]),
            derived: Some(ours(Fail, &["api-dir-missing"])),
            why: "",
        },
        // lints.rs test_lint_main
        Row {
            name: "lint-main-passing",
            from: "lints::test_lint_main",
            start: Passing,
            build: nothing,
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Pass, &[])),
            why: "",
        },
        Row {
            name: "lint-main-var-run-dir",
            from: "lints::test_lint_main",
            start: Passing,
            build: |r| mkdir(r, "var/run/foo"),
            bootc: Fail,
            structural: ours(Fail, &["var-run-not-link"]),
            derived: Some(ours(Fail, &["var-run-not-link"])),
            why: "",
        },
        // lints.rs test_lint_inner
        Row {
            name: "lint-inner-all-pass",
            from: "lints::test_lint_inner",
            start: Passing,
            build: nothing,
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Pass, &[])),
            why: "",
        },
        Row {
            name: "lint-inner-dnf-log",
            from: "lints::test_lint_inner",
            start: Passing,
            build: |r| write(r, "var/log/dnf/dnf.log", "dummy dnf log"),
            bootc: Warn,
            structural: ours(Pass, &["runtime-content"]),
            derived: Some(ours(Pass, &["runtime-content"])),
            why: "dnf's log is a package-manager leftover: finalize removes it, so it is \
                  reported (info) as what finalize cleans rather than warned about",
        },
        // lints.rs test_kernel_lint
        Row {
            name: "kernel-none",
            from: "lints::test_kernel_lint",
            start: Empty,
            build: nothing,
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: None,
            why: "",
        },
        Row {
            name: "kernel-two",
            from: "lints::test_kernel_lint",
            start: Empty,
            build: |r| {
                write(r, "usr/lib/modules/5.7.2/vmlinuz", "old vmlinuz");
                write(r, "usr/lib/modules/6.3.1/vmlinuz", "new vmlinuz");
            },
            bootc: Fail,
            structural: ours(Fail, &["kernel-initramfs"]),
            derived: Some(ours(Fail, &["base-modified", "kernel-initramfs"])),
            why: "",
        },
        Row {
            name: "kernel-one-without-initramfs",
            from: "lints::test_kernel_lint",
            start: Empty,
            build: |r| write(r, "usr/lib/modules/6.3.1/vmlinuz", "new vmlinuz"),
            bootc: Pass,
            structural: ours(Fail, &["kernel-initramfs"]),
            derived: None,
            why: "stricter on purpose: ostree-prepare-root runs in the initramfs, so a \
                  kernel without initramfs.img does not boot an ostree system",
        },
        Row {
            name: "kernel-swap",
            from: "lints::test_kernel_lint",
            start: Passing,
            build: |r| {
                rm(r, "usr/lib/modules/5.7.2");
                write(r, "usr/lib/modules/6.3.1/vmlinuz", "new vmlinuz");
                write(r, "usr/lib/modules/6.3.1/initramfs.img", "initramfs");
            },
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Fail, &["base-removed"])),
            why: "stricter on purpose (derived): replacing the base's kernel removes base \
                  content, which add-only denies unless overridden deliberately",
        },
        Row {
            name: "passing-fixture-as-bootc-has-it",
            from: "lints::passing_fixture",
            start: Empty,
            build: passing_as_bootc,
            bootc: Pass,
            structural: ours(Fail, &["kernel-initramfs"]),
            derived: None,
            why: "bootc's passing fixture has a kernel with no initramfs.img; ours \
                  requires one (ostree-prepare-root runs in the initramfs)",
        },
        // lints.rs test_kargs
        Row {
            name: "kargs-none",
            from: "lints::test_kargs",
            start: Empty,
            build: nothing,
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Pass, &[])),
            why: "",
        },
        Row {
            name: "kargs-d-a-file",
            from: "lints::test_kargs",
            start: Empty,
            build: |r| write(r, "usr/lib/bootc/kargs.d", "not a directory"),
            bootc: Fail,
            structural: ours(Fail, &["kargs-invalid"]),
            derived: Some(ours(Fail, &["kargs-invalid"])),
            why: "",
        },
        // lints.rs test_usr_etc
        Row {
            name: "usr-etc-neither",
            from: "lints::test_usr_etc",
            start: Empty,
            build: nothing,
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: None,
            why: "",
        },
        Row {
            name: "usr-etc-and-etc",
            from: "lints::test_usr_etc",
            start: Empty,
            build: |r| {
                mkdir(r, "etc");
                mkdir(r, "usr/etc");
            },
            bootc: Fail,
            structural: ours(Fail, &["etc-and-usr-etc"]),
            derived: Some(ours(Fail, &["etc-and-usr-etc"])),
            why: "",
        },
        Row {
            name: "usr-etc-alone",
            from: "lints::test_usr_etc",
            start: Empty,
            build: |r| mkdir(r, "usr/etc"),
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Pass, &[])),
            why: "",
        },
        // lints.rs test_varlog
        Row {
            name: "varlog-absent",
            from: "lints::test_varlog",
            start: Empty,
            build: nothing,
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: None,
            why: "",
        },
        Row {
            name: "varlog-empty-dir",
            from: "lints::test_varlog",
            start: Empty,
            build: |r| mkdir(r, "var/log"),
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Pass, &[])),
            why: "",
        },
        Row {
            name: "varlog-readme-symlink",
            from: "lints::test_varlog",
            start: Empty,
            build: |r| {
                link(
                    r,
                    "../../usr/share/doc/systemd/README.logs",
                    "var/log/README",
                )
            },
            bootc: Pass,
            structural: ours(Pass, &["var-content"]),
            derived: Some(ours(Pass, &["var-content"])),
            why: "",
        },
        Row {
            name: "varlog-one-file",
            from: "lints::test_varlog",
            start: Empty,
            build: |r| write(r, "var/log/somefile.log", "log contents"),
            bootc: Warn,
            structural: ours(Pass, &["runtime-content"]),
            derived: Some(ours(Pass, &["runtime-content"])),
            why: "finalize removes log files the build wrote (build noise), so they are \
                  reported (info) as cleaned; a policy's keep-logs keeps chosen ones",
        },
        Row {
            name: "varlog-three-files",
            from: "lints::test_varlog",
            start: Empty,
            build: |r| {
                write(r, "var/log/somefile.log", "log contents");
                write(r, "var/log/someproject/audit.log", "audit log");
                write(r, "var/log/someproject/info.log", "info");
            },
            bootc: Warn,
            structural: ours(Pass, &["runtime-content"]),
            derived: Some(ours(Pass, &["runtime-content"])),
            why: "finalize removes log files the build wrote and keeps their directories \
                  as tmpfiles.d lines; reported (info) as cleaned",
        },
        // lints.rs test_boot
        Row {
            name: "boot-empty",
            from: "lints::test_boot",
            start: Passing,
            build: nothing,
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Pass, &[])),
            why: "",
        },
        Row {
            name: "boot-efi-linux-at-root",
            from: "lints::test_boot",
            start: Passing,
            build: |r| write(r, "EFI/Linux/foo.efi", "some dummy efi"),
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Pass, &[])),
            why: "",
        },
        Row {
            name: "boot-subdir",
            from: "lints::test_boot",
            start: Passing,
            build: |r| mkdir(r, "boot/somesubdir"),
            bootc: Warn,
            structural: ours(Warn, &["boot-nonempty"]),
            derived: Some(ours(Warn, &["boot-nonempty"])),
            why: "",
        },
        // lints.rs test_runtime_only_dirs
        Row {
            name: "run-resolve-dirs-only",
            from: "lints::test_runtime_only_dirs",
            start: Empty,
            build: |r| {
                mkdir(r, "tmp");
                mkdir(r, "run/systemd/resolve");
            },
            bootc: Pass,
            structural: ours(Pass, &["runtime-content"]),
            derived: Some(ours(Pass, &["runtime-content"])),
            why: "",
        },
        Row {
            name: "run-stub-resolv-conf",
            from: "lints::test_runtime_only_dirs",
            start: Empty,
            build: |r| {
                mkdir(r, "tmp");
                write(r, "run/systemd/resolve/stub-resolv.conf", "data");
            },
            bootc: Pass,
            structural: ours(Pass, &["runtime-content"]),
            derived: Some(ours(Pass, &["runtime-content"])),
            why: "",
        },
        Row {
            name: "run-unknown-file-under-systemd",
            from: "lints::test_runtime_only_dirs",
            start: Empty,
            build: |r| {
                mkdir(r, "tmp");
                write(r, "run/systemd/resolve/something-else", "data");
            },
            bootc: Warn,
            structural: ours(Pass, &["runtime-content"]),
            derived: Some(ours(Pass, &["runtime-content"])),
            why: "finalize empties /run and /tmp (never touching mount points), so their \
                  content is reported (info) as cleaned rather than warned about",
        },
        Row {
            name: "run-dnf-dir",
            from: "lints::test_runtime_only_dirs",
            start: Empty,
            build: |r| {
                mkdir(r, "tmp");
                mkdir(r, "run/dnf");
            },
            bootc: Warn,
            structural: ours(Pass, &["runtime-content"]),
            derived: Some(ours(Pass, &["runtime-content"])),
            why: "finalize empties /run: reported (info) as cleaned",
        },
        Row {
            name: "run-leaked-file",
            from: "lints::test_runtime_only_dirs",
            start: Empty,
            build: |r| {
                mkdir(r, "tmp");
                write(r, "run/leaked-file", "data");
            },
            bootc: Warn,
            structural: ours(Pass, &["runtime-content"]),
            derived: Some(ours(Pass, &["runtime-content"])),
            why: "finalize empties /run: reported (info) as cleaned",
        },
        Row {
            name: "tmp-build-artifact",
            from: "lints::test_runtime_only_dirs",
            start: Empty,
            build: |r| {
                mkdir(r, "run");
                write(r, "tmp/build-artifact", "some data");
            },
            bootc: Warn,
            structural: ours(Pass, &["runtime-content"]),
            derived: Some(ours(Pass, &["runtime-content"])),
            why: "finalize empties /tmp: reported (info) as cleaned",
        },
        Row {
            name: "run-tmp-clean",
            from: "lints::test_runtime_only_dirs",
            start: Empty,
            build: |r| {
                mkdir(r, "run");
                mkdir(r, "tmp");
            },
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Pass, &[])),
            why: "",
        },
        // lints.rs test_non_utf8
        Row {
            name: "utf8-adversarial-symlinks",
            from: "lints::test_non_utf8",
            start: Empty,
            build: |r| {
                mkdir(r, "subdir");
                link(r, "self", "self");
                link(r, "..", "subdir/parent");
                link(r, "does-not-exist", "broken");
                link(r, "../../x", "escape");
            },
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Pass, &[])),
            why: "",
        },
        Row {
            name: "utf8-bad-dir-name",
            from: "lints::test_non_utf8",
            start: Empty,
            build: |r| {
                mkdir(r, "subdir/2");
                fs::create_dir(non_utf8(r, b"subdir/2/bad\xffdir")).unwrap();
            },
            bootc: Fail,
            structural: ours(Fail, &["non-utf8-path"]),
            derived: Some(ours(Fail, &["non-utf8-path"])),
            why: "",
        },
        Row {
            name: "utf8-bad-file-name",
            from: "lints::test_non_utf8",
            start: Empty,
            build: |r| fs::write(non_utf8(r, b"regular\xff"), "Hello, world!\n").unwrap(),
            bootc: Fail,
            structural: ours(Fail, &["non-utf8-path"]),
            derived: Some(ours(Fail, &["non-utf8-path"])),
            why: "",
        },
        Row {
            name: "utf8-bad-symlink-target",
            from: "lints::test_non_utf8",
            start: Empty,
            build: |r| {
                mkdir(r, "subdir");
                symlink(
                    OsStr::from_bytes(b"regular\xff"),
                    r.join("subdir/good-name"),
                )
                .unwrap();
            },
            bootc: Fail,
            structural: ours(Fail, &["non-utf8-path"]),
            derived: Some(ours(Fail, &["non-utf8-path"])),
            why: "",
        },
        Row {
            name: "utf8-bad-self-symlink",
            from: "lints::test_non_utf8",
            start: Empty,
            build: |r| {
                let bad = OsStr::from_bytes(b"regular\xff");
                symlink(bad, r.join(bad)).unwrap();
            },
            bootc: Fail,
            structural: ours(Fail, &["non-utf8-path"]),
            derived: Some(ours(Fail, &["non-utf8-path"])),
            why: "",
        },
        // lints.rs test_baseimage_root (and check_baseimage_root's cases)
        Row {
            name: "baseimage-root-empty",
            from: "lints::test_baseimage_root",
            start: Empty,
            build: nothing,
            bootc: Fail,
            structural: ours(Pass, &[]),
            derived: None,
            why: "what a root must contain is checked on OS trees (with os-release) only, \
                  so that application layers and small trees are not told they lack \
                  /sysroot; an empty tree is not an OS tree (the next rows are)",
        },
        Row {
            name: "baseimage-root-passing",
            from: "lints::test_baseimage_root",
            start: Passing,
            build: nothing,
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Pass, &[])),
            why: "",
        },
        Row {
            name: "baseimage-root-no-sysroot",
            from: "lints::check_baseimage_root",
            start: Passing,
            build: |r| rm(r, "sysroot"),
            bootc: Fail,
            structural: ours(Fail, &["ostree-root-layout"]),
            derived: Some(ours(Fail, &["ostree-root-layout"])),
            why: "",
        },
        Row {
            name: "baseimage-root-ostree-absolute",
            from: "lints::check_baseimage_root",
            start: Passing,
            build: |r| {
                rm(r, "ostree");
                link(r, "/sysroot/ostree", "ostree");
            },
            bootc: Fail,
            structural: ours(Fail, &["ostree-root-layout"]),
            derived: Some(ours(Fail, &["ostree-root-layout"])),
            why: "",
        },
        Row {
            name: "baseimage-root-ostree-a-dir",
            from: "lints::check_baseimage_root",
            start: Passing,
            build: |r| {
                rm(r, "ostree");
                mkdir(r, "ostree");
            },
            bootc: Fail,
            structural: ours(Fail, &["ostree-root-layout"]),
            derived: Some(ours(Fail, &["ostree-root-layout"])),
            why: "",
        },
        // lints.rs test_composefs
        Row {
            name: "composefs-empty-root",
            from: "lints::test_composefs",
            start: Empty,
            build: nothing,
            bootc: Warn,
            structural: ours(Pass, &[]),
            derived: None,
            why: "composefs is checked on OS trees (with os-release) only; an empty tree \
                  is not one (the next rows are)",
        },
        Row {
            name: "composefs-enabled",
            from: "lints::test_composefs",
            start: Passing,
            build: nothing,
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Pass, &[])),
            why: "",
        },
        Row {
            name: "composefs-disabled",
            from: "lints::test_composefs",
            start: Passing,
            build: |r| {
                write(
                    r,
                    "usr/lib/ostree/prepare-root.conf",
                    "[composefs]\nenabled = false",
                )
            },
            bootc: Warn,
            structural: ours(Warn, &["composefs-disabled"]),
            derived: Some(ours(Fail, &["base-modified", "composefs-disabled"])),
            why: "stricter on purpose (derived): prepare-root.conf is base content outside \
                  /etc; changing it changes how every deployment mounts, so it is \
                  base-modified unless overridden (composefs-disabled warns beside it)",
        },
        Row {
            name: "composefs-conf-missing-in-os-tree",
            from: "lints::check_composefs",
            start: Passing,
            build: |r| rm(r, "usr/lib/ostree/prepare-root.conf"),
            bootc: Warn,
            structural: ours(Warn, &["composefs-disabled"]),
            derived: Some(ours(Fail, &["base-removed", "composefs-disabled"])),
            why: "stricter on purpose (derived): removing the base's prepare-root.conf \
                  removes base content, denied by add-only (composefs-disabled warns beside \
                  it)",
        },
        // lints.rs test_buildah_injected
        Row {
            name: "buildah-etc-only",
            from: "lints::test_buildah_injected",
            start: Empty,
            build: |r| mkdir(r, "etc"),
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Pass, &[])),
            why: "",
        },
        Row {
            name: "buildah-empty-hostname",
            from: "lints::test_buildah_injected",
            start: Empty,
            build: |r| write(r, "etc/hostname", ""),
            bootc: Warn,
            structural: ours(Pass, &["runtime-injected-file"]),
            derived: Some(ours(Pass, &["runtime-injected-file"])),
            why: "finalize removes the empty file the runtime left (when it is not a mount \
                  point), so it is reported (info) as cleaned",
        },
        Row {
            name: "buildah-static-hostname",
            from: "lints::test_buildah_injected",
            start: Empty,
            build: |r| write(r, "etc/hostname", "some static hostname"),
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Pass, &[])),
            why: "",
        },
        Row {
            name: "buildah-empty-resolv-conf",
            from: "lints::check_buildah_injected",
            start: Empty,
            build: |r| write(r, "etc/resolv.conf", ""),
            bootc: Warn,
            structural: ours(Pass, &["runtime-injected-file"]),
            derived: Some(ours(Pass, &["runtime-injected-file"])),
            why: "finalize removes the empty file: reported (info) as cleaned",
        },
        // bootc_kargs.rs test_arch
        Row {
            name: "kargs-no-arch",
            from: "bootc_kargs::test_arch",
            start: Empty,
            build: |r| {
                write(
                    r,
                    "usr/lib/bootc/kargs.d/10.toml",
                    "kargs = [\"console=tty0\", \"nosmt\"]",
                )
            },
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Pass, &[])),
            why: "",
        },
        Row {
            name: "kargs-one-arch",
            from: "bootc_kargs::test_arch",
            start: Empty,
            build: |r| {
                write(
                    r,
                    "usr/lib/bootc/kargs.d/10.toml",
                    "kargs = [\"console=tty0\", \"nosmt\"]\nmatch-architectures = [\"x86_64\"]\n",
                )
            },
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Pass, &[])),
            why: "",
        },
        Row {
            name: "kargs-two-archs",
            from: "bootc_kargs::test_arch",
            start: Empty,
            build: |r| {
                write(
                    r,
                    "usr/lib/bootc/kargs.d/10.toml",
                    "kargs = [\"console=tty0\", \"nosmt\"]\n\
                     match-architectures = [\"x86_64\", \"aarch64\"]\n",
                )
            },
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Pass, &[])),
            why: "",
        },
        // bootc_kargs.rs test_invalid
        Row {
            name: "kargs-extra-key",
            from: "bootc_kargs::test_invalid",
            start: Empty,
            build: |r| {
                write(
                    r,
                    "usr/lib/bootc/kargs.d/10.toml",
                    "kargs = [\"console=tty0\", \"nosmt\"]\nfoo = \"bar\"\n",
                )
            },
            bootc: Fail,
            structural: ours(Fail, &["kargs-invalid"]),
            derived: Some(ours(Fail, &["kargs-invalid"])),
            why: "",
        },
        Row {
            name: "kargs-missing-key",
            from: "bootc_kargs::test_invalid",
            start: Empty,
            build: |r| write(r, "usr/lib/bootc/kargs.d/10.toml", "foo = \"bar\"\n"),
            bootc: Fail,
            structural: ours(Fail, &["kargs-invalid"]),
            derived: Some(ours(Fail, &["kargs-invalid"])),
            why: "",
        },
        Row {
            name: "kargs-not-toml",
            from: "bootc_kargs::parse_kargs_toml",
            start: Empty,
            build: |r| write(r, "usr/lib/bootc/kargs.d/10.toml", "kargs = [\"a\""),
            bootc: Fail,
            structural: ours(Fail, &["kargs-invalid"]),
            derived: Some(ours(Fail, &["kargs-invalid"])),
            why: "",
        },
        Row {
            name: "kargs-wrong-type",
            from: "bootc_kargs::parse_kargs_toml",
            start: Empty,
            build: |r| {
                write(
                    r,
                    "usr/lib/bootc/kargs.d/10.toml",
                    "kargs = \"console=tty0\"",
                )
            },
            bootc: Fail,
            structural: ours(Fail, &["kargs-invalid"]),
            derived: Some(ours(Fail, &["kargs-invalid"])),
            why: "",
        },
        // bootc_kargs.rs test_get_kargs_in_root
        Row {
            name: "kargs-empty-dir",
            from: "bootc_kargs::test_get_kargs_in_root",
            start: Empty,
            build: |r| mkdir(r, "usr/lib/bootc/kargs.d"),
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Pass, &[])),
            why: "",
        },
        Row {
            name: "kargs-non-toml-file-ignored",
            from: "bootc_kargs::test_get_kargs_in_root",
            start: Empty,
            build: |r| write(r, "usr/lib/bootc/kargs.d/somegarbage", "garbage"),
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Pass, &[])),
            why: "",
        },
        Row {
            name: "kargs-two-valid-files",
            from: "bootc_kargs::test_get_kargs_in_root",
            start: Empty,
            build: |r| {
                write(r, "usr/lib/bootc/kargs.d/somegarbage", "garbage");
                two_kargs_files(r);
            },
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Pass, &[])),
            why: "",
        },
        // sysusers test_missing
        Row {
            name: "sysusers-all-declared",
            from: "sysusers::test_missing",
            start: Empty,
            build: sysusers_root,
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: None,
            why: "",
        },
        Row {
            name: "sysusers-undeclared-users-and-groups",
            from: "sysusers::test_missing",
            start: Empty,
            build: |r| {
                sysusers_root(r);
                write(
                    r,
                    "etc/passwd",
                    "root:x:0:0:Super User:/root:/bin/bash\n\
                     passim:x:982:982:Local Caching Server:/usr/share/empty:/usr/bin/nologin\n\
                     avahi:x:70:70:Avahi mDNS/DNS-SD Stack:/var/run/avahi-daemon:/sbin/nologin\n",
                );
                write(
                    r,
                    "etc/group",
                    "root:x:0:\nadm:x:4:\nwheel:x:10:\nsudo:x:16:\nsystemd-journal:x:190:\n\
                     printadmin:x:983:\nrpc:x:32:\npassim:x:982:\navahi:x:70:\nsshd:x:981:\n",
                );
            },
            bootc: Warn,
            structural: ours(Pass, &["users-added"]),
            derived: None,
            why: "finalize writes the missing sysusers.d entries itself, so the users and \
                  groups are reported (info) as declared rather than warned about",
        },
        // tmpfiles test_tmpfiles_d_translation
        Row {
            name: "tmpfiles-undeclared-var-content",
            from: "tmpfiles::test_tmpfiles_d_translation",
            start: Empty,
            build: tmpfiles_translation,
            bootc: Warn,
            structural: ours(Pass, &["var-content"]),
            derived: Some(ours(Warn, &["var-content", "world-writable"])),
            why: "finalize converts the undeclared /var content itself, so with no base it is \
                  reported (info) as converted; as a derived build the verdict matches, but \
                  for another reason: world-writable warns about the two 0777 directories \
                  without the sticky bit (a check bootc lacks, which needs a base)",
        },
        Row {
            name: "tmpfiles-second-generation",
            from: "tmpfiles::test_tmpfiles_d_translation",
            start: Empty,
            build: |r| {
                write(
                    r,
                    "usr/lib/tmpfiles.d/ostree-finalize-var.conf",
                    "d /var/lib/first 0755 root root - -\n",
                );
                mkdir(r, "var/lib/gen2-test");
            },
            bootc: Warn,
            structural: ours(Pass, &["var-content"]),
            derived: Some(ours(Pass, &["var-content"])),
            why: "finalize converts the new /var content, keeping the lines of the earlier \
                  run: reported (info) as converted",
        },
        // tmpfiles aliases
        Row {
            name: "tmpfiles-root-alias",
            from: "tmpfiles::test_tmpfiles_d_root_alias",
            start: Empty,
            build: |r| {
                write(
                    r,
                    "usr/lib/tmpfiles.d/systemd.conf",
                    "d /var/roothome 0700 root root -\nd /root/.ssh 0700 root root -\n",
                );
                mkdir(r, "var/roothome/.ssh");
                link(r, "var/roothome", "root");
            },
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: None,
            why: "",
        },
        Row {
            name: "tmpfiles-home-alias-absolute",
            from: "tmpfiles::test_tmpfiles_d_home_alias",
            start: Empty,
            build: |r| {
                write(
                    r,
                    "usr/lib/tmpfiles.d/systemd.conf",
                    "d /var/home 0755 root root -\nd /home/testuser 0700 root root -\n",
                );
                mkdir(r, "var/home/testuser");
                link(r, "/var/home", "home");
            },
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: None,
            why: "",
        },
        Row {
            name: "tmpfiles-nested-symlink",
            from: "tmpfiles::test_tmpfiles_d_nested_symlink",
            start: Empty,
            build: |r| {
                write(
                    r,
                    "usr/lib/tmpfiles.d/systemd.conf",
                    "d /var/lib 0755 root root -\nd /var/lib/machines 0755 root root -\n\
                     L /var/lib/portables - - - - machines\n\
                     d /var/lib/portables/myimage 0755 root root -\n",
                );
                mkdir(r, "var/lib/machines/myimage");
                link(r, "machines", "var/lib/portables");
            },
            bootc: Pass,
            structural: ours(Pass, &[]),
            derived: Some(ours(Pass, &[])),
            why: "",
        },
        // tmpfiles test_log_regfile
        Row {
            name: "tmpfiles-log-regular-files",
            from: "tmpfiles::test_log_regfile",
            start: Empty,
            build: |r| {
                write(r, "var/log/dnf/dnf.log", "some dnf log");
                write(r, "var/log/foo/foo.log", "some other log");
            },
            bootc: Warn,
            structural: ours(Pass, &["runtime-content"]),
            derived: Some(ours(Pass, &["runtime-content"])),
            why: "finalize removes the log files (build noise) and keeps their \
                  directories as tmpfiles.d lines: reported (info) as cleaned",
        },
        // tmpfiles test_translate_to_tmpfiles_d
        Row {
            name: "tmpfiles-dir-name-with-space",
            from: "tmpfiles::test_translate_to_tmpfiles_d",
            start: Empty,
            build: |r| {
                mkdir(r, "var/foo bar");
                chmod(r, "var/foo bar", 0o721);
            },
            bootc: Warn,
            structural: ours(Pass, &["var-content"]),
            derived: Some(ours(Pass, &["var-content"])),
            why: "finalize converts it to a tmpfiles.d line (the space escaped): reported \
                  (info) as converted",
        },
        Row {
            name: "tmpfiles-symlink-name-with-space",
            from: "tmpfiles::test_translate_to_tmpfiles_d",
            start: Empty,
            build: |r| link(r, "/mytarget", "var/foo bar"),
            bootc: Warn,
            structural: ours(Pass, &["var-content"]),
            derived: Some(ours(Pass, &["var-content"])),
            why: "finalize converts it to a tmpfiles.d L line: reported (info) as converted",
        },
    ]
}

/// The clean base: the passing fixture, recorded once.
fn clean_base() -> &'static Path {
    static BASE: OnceLock<(tempfile::TempDir, std::path::PathBuf)> = OnceLock::new();
    &BASE
        .get_or_init(|| {
            let dir = scratch_dir("bootc-base-");
            let tree = dir.path().join("tree");
            fs::create_dir(&tree).unwrap();
            passing(&tree);
            let file = dir.path().join("base.json");
            run(&[
                OsStr::new("snapshot"),
                OsStr::new("--root"),
                tree.as_os_str(),
                OsStr::new("--output"),
                file.as_os_str(),
            ])
            .expect_code(0);
            (dir, file)
        })
        .1
}

/// Lint a tree; its verdict and the findings apart from no-base-reference.
fn lint_tree(root: &Path, base: Option<&Path>) -> (V, Vec<Value>, Outcome) {
    let mut args = vec![
        OsStr::new("lint"),
        OsStr::new("--format"),
        OsStr::new("json"),
        OsStr::new("--rootfs"),
        root.as_os_str(),
    ];
    if let Some(b) = base {
        args.extend([OsStr::new("--base"), b.as_os_str()]);
    }
    let out = run(&args);
    assert!(out.code == 0 || out.code == 1, "lint failed to run:\n{out}");
    let json = out.json();
    assert_matches_schema(&json);
    let all: Vec<Value> = json["findings"].as_array().unwrap().clone();
    if base.is_none() {
        assert!(
            all.iter().any(|f| f["check"] == NB),
            "no-base run without {NB}:\n{out}"
        );
    }
    // Not about the tree: lint of a directory reports these on every run.
    let ignored = [NB, "not-finalized"];
    let findings: Vec<Value> = all
        .into_iter()
        .filter(|f| !ignored.contains(&f["check"].as_str().unwrap()))
        .collect();
    let verdict = if out.code == 1 {
        V::Fail
    } else if findings.iter().any(|f| f["level"] == "warn") {
        V::Warn
    } else {
        V::Pass
    };
    (verdict, findings, out)
}

/// Compare what ours did with what the row expects; a description of each
/// mismatch.
fn judge(row: &Row, mode: &str, want: Ours, got: (V, Vec<Value>, Outcome)) -> Vec<String> {
    let (verdict, findings, out) = got;
    let mut bad = Vec::new();
    let ids: Vec<&str> = findings
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    if verdict != want.verdict {
        bad.push(format!("verdict {verdict:?}, want {:?}", want.verdict));
    }
    for id in want.ids {
        if !ids.contains(id) {
            bad.push(format!("no {id} finding"));
        }
    }
    for f in &findings {
        let id = f["check"].as_str().unwrap();
        if f["level"] != "info" && !want.ids.contains(&id) {
            bad.push(format!("unexpected {} {id}: {}", f["level"], f["message"]));
        }
    }
    if bad.is_empty() {
        return bad;
    }
    vec![format!("{} ({mode}): {}\n{out}", row.name, bad.join("; "))]
}

fn build(row: &Row, start: Start) -> tempfile::TempDir {
    let dir = scratch_dir("bootc-row-");
    if start == Start::Passing {
        passing(dir.path());
    }
    (row.build)(dir.path());
    dir
}

fn v(x: V) -> &'static str {
    match x {
        V::Pass => "pass",
        V::Warn => "warn",
        V::Fail => "fail",
    }
}

#[test]
fn bootc_lint_scenarios_against_ours() {
    let rows = rows();
    let mut names: Vec<&str> = rows.iter().map(|r| r.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), rows.len(), "scenario names are unique");
    let mut failures = Vec::new();
    let mut table = String::from(
        "| scenario | from | bootc | ours (no base) | ours (derived) | why |\n|---|---|---|---|---|---|\n",
    );
    for row in &rows {
        // A difference in verdict must say why; agreement must not pretend to.
        let differs = row.structural.verdict != row.bootc
            || row.derived.is_some_and(|d| d.verdict != row.bootc);
        if differs == row.why.is_empty() {
            failures.push(format!(
                "{}: a row says why exactly when ours differs from bootc",
                row.name
            ));
        }
        let tree = build(row, row.start);
        failures.extend(judge(
            row,
            "no base",
            row.structural,
            lint_tree(tree.path(), None),
        ));
        if let Some(want) = row.derived {
            let tree = build(row, Start::Passing);
            failures.extend(judge(
                row,
                "derived",
                want,
                lint_tree(tree.path(), Some(clean_base())),
            ));
        }
        let show = |o: Ours| {
            if o.ids.is_empty() {
                v(o.verdict).to_string()
            } else {
                format!("{} ({})", v(o.verdict), o.ids.join(", "))
            }
        };
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            row.name,
            row.from,
            v(row.bootc),
            show(row.structural),
            row.derived.map_or("-".to_string(), show),
            row.why
        ));
    }
    eprintln!("{table}");
    assert!(
        failures.is_empty(),
        "{} of {} scenarios differ from the table:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// A base that breaks the root-layout rules: no /sysroot, /var/run a
/// directory, /usr/etc beside /etc.
fn break_base(tree: &BaseTree) {
    fs::remove_dir_all(tree.path("/sysroot")).unwrap();
    let var_run = tree.path("/var/run");
    if fs::symlink_metadata(&var_run).is_ok() {
        fs::remove_file(&var_run).unwrap();
    }
    fs::create_dir_all(tree.path("/var/run/daemon")).unwrap();
    fs::create_dir_all(tree.path("/usr/etc")).unwrap();
    fs::write(tree.path("/usr/etc/stale.conf"), "x=1\n").unwrap();
}

#[test]
fn snapshot_refuses_a_broken_base_and_force_records_it_with_a_warning() {
    for layout in Layout::ALL {
        let tree = base_tree_of(layout);
        break_base(&tree);
        let root = tree.root().to_str().unwrap();
        let before = tree_digest(tree.root());
        let out = run(&["snapshot", "--root", root]);
        out.expect_code(1);
        for id in ["ostree-root-layout", "var-run-not-link", "etc-and-usr-etc"] {
            assert!(
                out.stderr.contains(&format!("deny {id}: ")),
                "{layout:?} {id}:\n{out}"
            );
        }
        assert!(out.stderr.contains("nothing was recorded"), "{out}");
        assert!(out.stderr.contains("--force"), "{out}");
        assert_eq!(
            before,
            tree_digest(tree.root()),
            "{layout:?}: the tree changed"
        );
        assert!(!tree.path("/usr/lib/ostree-finalize/base.json").exists());

        // --output FILE: not written either.
        let elsewhere = scratch_dir("bootc-out-");
        let file = elsewhere.path().join("base.json");
        let out = run(&[
            "snapshot",
            "--root",
            root,
            "--output",
            file.to_str().unwrap(),
        ]);
        out.expect_code(1);
        assert!(!file.exists(), "{layout:?}: {} was written", file.display());

        // --force records it, saying so.
        let out = run(&["snapshot", "--root", root, "--force"]);
        out.expect_code(0);
        assert!(out.stderr.contains("warning: recording"), "{out}");
        assert!(out.stderr.contains("deny ostree-root-layout: "), "{out}");
        let recorded: Value = serde_json::from_slice(
            &fs::read(tree.path("/usr/lib/ostree-finalize/base.json")).unwrap(),
        )
        .unwrap();
        let paths: Vec<&str> = recorded["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap())
            .collect();
        assert!(paths.contains(&"/var/run/daemon"), "{layout:?}");
    }
}

#[test]
fn a_derived_build_that_removes_sysroot_or_relinks_ostree_fails() {
    type Break = fn(&BaseTree);
    let cases: [(&str, Break); 3] = [
        ("/sysroot", |t| {
            fs::remove_dir_all(t.path("/sysroot")).unwrap()
        }),
        ("/ostree", |t| {
            fs::remove_file(t.path("/ostree")).unwrap();
            symlink("/sysroot/ostree", t.path("/ostree")).unwrap();
        }),
        ("/ostree", |t| fs::remove_file(t.path("/ostree")).unwrap()),
    ];
    for layout in Layout::ALL {
        for (path, breaks) in cases {
            let tree = snapshotted_of(layout);
            breaks(&tree);
            let before = tree_digest(tree.root());
            let out = finalize(&tree, &[]);
            out.expect_code(1);
            let json = out.json();
            let f = finding(&json, "ostree-root-layout", path);
            assert_eq!(f["level"], "deny", "{layout:?} {path}");
            assert_eq!(before, tree_digest(tree.root()), "{layout:?} {path}");
            // --allow-overrides does not help: the root would not work.
            finalize(&tree, &["--allow-overrides"]).expect_code(1);
        }
    }
}

#[test]
fn empty_injected_files_are_cleaned_but_never_when_they_are_mount_points() {
    let tree = snapshotted();
    for f in ["/etc/hostname", "/etc/resolv.conf", "/etc/hosts"] {
        fs::write(tree.path(f), "").unwrap();
    }
    // As in a buildah RUN step: /etc/resolv.conf is the runtime's bind mount.
    let host = scratch_dir("bootc-host-");
    fs::write(host.path().join("resolv.conf"), "nameserver 192.0.2.53\n").unwrap();
    let script = format!(
        "mount --bind {h}/resolv.conf {r}/etc/resolv.conf && {bin} finalize --root {r} --format json",
        h = host.path().display(),
        r = tree.root().display(),
        bin = bin().display()
    );
    let out = in_private_mounts(&script);
    out.expect_code(0);
    let json = out.json();
    assert_matches_schema(&json);
    let cleaned: Vec<&str> = findings(&json, "runtime-injected-file")
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(cleaned, ["/etc/hostname", "/etc/hosts"]);
    assert_eq!(
        json["skipped_mounts"],
        serde_json::json!(["/etc/resolv.conf"])
    );
    assert!(!tree.path("/etc/hostname").exists());
    assert!(!tree.path("/etc/hosts").exists());
    // The mount point was left alone: the file under it is still there,
    // the host's file untouched.
    assert!(tree.path("/etc/resolv.conf").exists());
    assert_eq!(
        fs::read_to_string(host.path().join("resolv.conf")).unwrap(),
        "nameserver 192.0.2.53\n"
    );

    // Outside the build (no mount): the empty file is cleaned too, and the
    // result lints clean.
    let out = finalize(&tree, &[]);
    out.expect_code(0);
    let json = out.json();
    finding(&json, "runtime-injected-file", "/etc/resolv.conf");
    assert!(!tree.path("/etc/resolv.conf").exists());
    let out = run(&[
        "lint",
        "--format",
        "json",
        "--rootfs",
        tree.root().to_str().unwrap(),
    ]);
    out.expect_code(0);
    assert!(findings(&out.json(), "runtime-injected-file").is_empty());
}

/// An OS image's one layer: what a root must contain, nothing more.
fn os_layer() -> common::oci::Layer {
    let mut l = common::oci::Layer::new();
    for d in ["dev", "proc", "sys", "run", "tmp", "var", "sysroot", "usr"] {
        l = l.dir(d, 0o755);
    }
    l.symlink("ostree", "sysroot/ostree")
        .dir("usr/lib", 0o755)
        .file("usr/lib/os-release", "ID=scenario\n", 0o644)
        .dir("usr/lib/ostree", 0o755)
        .file(
            "usr/lib/ostree/prepare-root.conf",
            "[composefs]\nenabled = yes\n",
            0o644,
        )
}

#[test]
fn lint_image_sees_a_layer_that_drops_sysroot_or_relinks_ostree() {
    use common::oci::*;
    let t = scratch_dir("bootc-oci-");
    let dir = t.path().join("oci");
    let base = os_layer().tar();
    add_oci_image(&dir, "base", &[&base], Z::Plain, &[]);
    let image = |tag: &str| format!("oci:{}:{tag}", dir.display());
    // The base itself passes, with its base and with none.
    for extra in [&["--base-image", &image("base")][..], &[]] {
        let mut args = vec!["--image".to_string(), image("base")];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = common::oci::lint(&args);
        out.expect_code(0);
        let json = out.json();
        for check in [
            "ostree-root-layout",
            "api-dir-missing",
            "composefs-disabled",
        ] {
            assert!(findings(&json, check).is_empty(), "{check}:\n{out}");
        }
    }
    let tops = [
        (
            "no-sysroot",
            Layer::new().finalized().marker(".wh.sysroot"),
            "/sysroot",
        ),
        (
            "ostree-relinked",
            Layer::new()
                .finalized()
                .marker(".wh.ostree")
                .symlink("ostree", "/sysroot/ostree"),
            "/ostree",
        ),
    ];
    for (tag, top, path) in tops {
        add_oci_image(&dir, tag, &[&base, &top.tar()], Z::Plain, &[]);
        let out = common::oci::lint(&["--image", &image(tag), "--base-image", &image("base")]);
        out.expect_code(1);
        let json = out.json();
        assert_eq!(
            finding(&json, "ostree-root-layout", path)["level"],
            "deny",
            "{out}"
        );
    }
}
