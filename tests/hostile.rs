//! Hostile trees: the tool runs as root on trees whoever wrote the
//! Containerfile built. It must never leave the root, never crash, and
//! never lose /var data, whatever the tree holds or does meanwhile.

mod common;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use common::*;

/// A directory chain `depth` levels deep under `top`, made with *at calls
/// (the full path is longer than PATH_MAX).
fn deep_chain(top: &std::path::Path, depth: usize) {
    let script = format!(
        "import os\nfd = os.open({top:?}, os.O_RDONLY)\nfor i in range({depth}):\n    os.mkdir('d', dir_fd=fd)\n    n = os.open('d', os.O_RDONLY, dir_fd=fd)\n    os.close(fd)\n    fd = n\nf = os.open('leaf', os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)\nos.write(f, b'deep')\n",
        top = top.display().to_string()
    );
    sh("python3", &["-c", &script]);
}

#[test]
fn a_4096_level_deep_directory_is_walked_and_finalized() {
    let tree = snapshotted();
    fs::create_dir(tree.path("/usr/lib/deep")).unwrap();
    deep_chain(&tree.path("/usr/lib/deep"), 4096);
    let out = finalize(&tree, &["--dry-run"]);
    out.expect_code(0);
    // And as base content: a change at the bottom is found.
    let tree2 = base_tree();
    fs::create_dir(tree2.path("/usr/lib/deep")).unwrap();
    deep_chain(&tree2.path("/usr/lib/deep"), 4096);
    run(&["snapshot", "--root", tree2.root().to_str().unwrap()]).expect_code(0);
    let script = format!(
        "import os\nfd = os.open({p:?}, os.O_RDONLY)\nfor i in range(4096):\n    n = os.open('d', os.O_RDONLY, dir_fd=fd)\n    os.close(fd)\n    fd = n\nos.unlink('leaf', dir_fd=fd)\n",
        p = tree2.path("/usr/lib/deep").display().to_string()
    );
    sh("python3", &["-c", &script]);
    let out = finalize(&tree2, &["--dry-run"]);
    out.expect_code(1);
    let json = out.json();
    let removed = findings(&json, "base-removed");
    assert_eq!(removed.len(), 1);
    assert!(removed[0]["path"].as_str().unwrap().ends_with("/d/d/leaf"));
}

#[test]
fn names_of_255_bytes_and_hardlinks_across_directories() {
    let tree = snapshotted();
    let long = "n".repeat(255);
    fs::create_dir_all(tree.path("/usr/lib/a")).unwrap();
    fs::create_dir_all(tree.path("/usr/share/b")).unwrap();
    fs::write(tree.path("/usr/lib/a").join(&long), "x").unwrap();
    fs::hard_link(
        tree.path("/usr/lib/a").join(&long),
        tree.path("/usr/share/b/link"),
    )
    .unwrap();
    // A hardlink to a base file: the base file is unchanged.
    fs::hard_link(
        tree.path("/usr/bin/base-tool"),
        tree.path("/usr/share/b/tool"),
    )
    .unwrap();
    let out = finalize(&tree, &["--dry-run"]);
    out.expect_code(0);
}

#[test]
fn symlink_loops_and_escaping_rpmdb_links_are_never_followed() {
    let tree = snapshotted();
    symlink("loop-b", tree.path("/usr/lib/loop-a")).unwrap();
    symlink("loop-a", tree.path("/usr/lib/loop-b")).unwrap();
    symlink("/var/lib/self", tree.path("/var/lib/self")).unwrap();
    symlink("../../..", tree.path("/etc/up")).unwrap();
    let out = finalize(&tree, &["--dry-run"]);
    out.expect_code(0);

    // The rpmdb behind a loop: no database, so every base package is
    // reported removed (never a hang or a read outside the root).
    let tree = snapshotted();
    fs::remove_dir_all(tree.path("/usr/lib/sysimage/rpm")).unwrap();
    symlink("rpm2", tree.path("/usr/lib/sysimage/rpm")).unwrap();
    symlink("rpm", tree.path("/usr/lib/sysimage/rpm2")).unwrap();
    let out = finalize(&tree, &["--dry-run"]);
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.code == 1 || out.stderr.contains("/usr/lib/sysimage/rpm"),
        "{out}"
    );
}

#[test]
fn non_utf8_names_anywhere_are_reported_not_crashed_on() {
    let tree = snapshotted();
    let mut name = tree.path("/var/lib").into_os_string();
    name.push(std::ffi::OsStr::from_bytes(b"/\xff\xfe"));
    fs::create_dir(&name).unwrap();
    let mut target = tree.path("/usr/lib").into_os_string();
    target.push("/badlink");
    symlink(std::ffi::OsStr::from_bytes(b"\xc3\x28"), &target).unwrap();
    let out = finalize(&tree, &[]);
    out.expect_code(1);
    let json = out.json();
    assert_eq!(findings(&json, "non-utf8-path").len(), 2, "{json:#}");
}

#[test]
fn a_file_that_grows_while_it_is_hashed_is_an_error_not_a_verdict() {
    let tree = snapshotted();
    let big = tree.path("/usr/lib/growing.bin");
    fs::write(&big, vec![0u8; 64 << 20]).unwrap();
    // Append for as long as finalize runs.
    let stop = tree.root().with_extension("stop");
    let writer = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while [ ! -e {stop} ]; do head -c 65536 /dev/zero >> {big}; done",
            stop = stop.display(),
            big = big.display()
        ))
        .spawn()
        .unwrap();
    let mut saw_error = false;
    for _ in 0..20 {
        let out = finalize(&tree, &["--dry-run"]);
        if out.code == 2 {
            assert!(out.stderr.contains("/usr/lib/growing.bin"), "{out}");
            assert!(out.stderr.contains("changed while being read"), "{out}");
            saw_error = true;
            break;
        }
        // Never a silent pass on content that was still changing: the
        // file is new, so a pass is right only if it was read whole.
        assert!(out.code == 0, "{out}");
    }
    fs::write(&stop, "").unwrap();
    let mut writer = writer;
    writer.wait().unwrap();
    assert!(
        saw_error,
        "a file growing during the read was never noticed"
    );
}

#[test]
fn a_var_entry_swapped_for_a_symlink_between_plan_and_apply_leads_nowhere() {
    let tree = snapshotted();
    fs::create_dir_all(tree.path("/var/lib/app")).unwrap();
    fs::write(tree.path("/var/lib/app/data.txt"), "mine").unwrap();
    // Outside the root: what a followed symlink would reach.
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("data.txt"), "host file").unwrap();
    let fifo = tree.root().with_extension("fifo");
    sh("mkfifo", &[fifo.to_str().unwrap()]);
    let child = Command::new(bin())
        .args(["finalize", "--root", tree.root().to_str().unwrap()])
        .env("OSTREE_FINALIZE_PAUSE_BEFORE_APPLY", &fifo)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it has planned (it blocks opening the fifo), then swap.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let app = tree.path("/var/lib/app");
    fs::rename(&app, tree.path("/var/lib/app.moved")).unwrap();
    symlink(outside.path(), &app).unwrap();
    fs::write(&fifo, "go").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("/var/lib/app"));
    // Nothing outside the root was read into the image, written or removed.
    assert_eq!(
        fs::read_to_string(outside.path().join("data.txt")).unwrap(),
        "host file"
    );
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 1);
    assert!(
        !tree
            .path("/usr/share/factory/var/lib/app/data.txt")
            .exists()
    );
    assert!(
        tree.path("/var/lib/app").is_symlink(),
        "the swapped link itself is left alone"
    );
}

#[test]
fn sigkill_at_50_random_points_of_apply_converges_and_loses_no_var_data() {
    let template = snapshotted();
    for d in 0..5 {
        let dir = template.path(&format!("/var/lib/app/d{d}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..20 {
            fs::write(dir.join(format!("f{f}")), format!("data {d}/{f}\n")).unwrap();
        }
        symlink(
            format!("d{d}/f0"),
            template.path(&format!("/var/lib/app/l{d}")),
        )
        .unwrap();
    }
    let reference = clone_tree(&template);
    let plan = finalize(&reference, &["--dry-run"]).json();
    let actions = plan["plan"]["actions"].as_array().unwrap().len();
    assert!(actions > 100, "{actions}");
    finalize(&reference, &[]).expect_code(0);
    let expected = tree_digest(reference.root());

    // 50 points spread over the apply phase, pseudo-random but repeatable.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for _ in 0..50 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let k = (x % actions as u64) as usize;
        let tree = clone_tree(&template);
        let out = Command::new(bin())
            .args(["finalize", "--root", tree.root().to_str().unwrap()])
            .env("OSTREE_FINALIZE_FAULT_AFTER", k.to_string())
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(9), "killed at action {k}");
        // Every byte of /var data is somewhere: in /var or in the factory.
        for d in 0..5 {
            for f in 0..20 {
                let rel = format!("/var/lib/app/d{d}/f{f}");
                let want = format!("data {d}/{f}\n");
                let here = [rel.clone(), format!("/usr/share/factory{rel}")];
                assert!(
                    here.iter()
                        .any(|p| fs::read_to_string(tree.path(p)).is_ok_and(|s| s == want)),
                    "{rel} lost after a kill at action {k}"
                );
            }
        }
        finalize(&tree, &[]).expect_code(0);
        assert_eq!(
            tree_digest(tree.root()),
            expected,
            "rerun after a kill at action {k}"
        );
    }
}

#[test]
fn an_rpmdb_whose_packages_is_code_not_data_is_exit_2_at_once() {
    // Hand-made hostile schemas (tests/fuzz_regressions/rpmdb_sqlite): a
    // view or generated column lets a 512-byte file produce endless rows or
    // gigabyte values. Before the schema check, the first hung the build,
    // the second filled /var/tmp with ~10 GB, the third took 2 GB of memory.
    let cases = [
        ("view-recursive-never-ends", "Packages is a view"),
        ("view-valid-headers-forever", "Packages is a view"),
        ("view-zeroblob-1g", "Packages is a view"),
        ("view-named-in-upper-case", "Packages is a view"),
        ("virtual-table-fts5", "Packages is a virtual table"),
        (
            "generated-blob-column",
            "Packages.blob is a generated column",
        ),
    ];
    let tree = snapshotted();
    let db = tree.path("/usr/lib/sysimage/rpm/rpmdb.sqlite");
    let good = fs::read(&db).unwrap();
    for (file, why) in cases {
        fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fuzz_regressions/rpmdb_sqlite")
                .join(file),
            &db,
        )
        .unwrap();
        let before = tree_digest(tree.root());
        let started = std::time::Instant::now();
        let out = Command::new("timeout")
            .arg("120")
            .arg(bin())
            .args(["finalize", "--root", tree.root().to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {stderr}");
        assert!(
            stderr.contains("/usr/lib/sysimage/rpm/rpmdb.sqlite") && stderr.contains(why),
            "{file}: {stderr}"
        );
        // Refused before any query runs, not stopped by a step limit.
        assert!(
            started.elapsed().as_secs() < 20,
            "{file}: took {:?}",
            started.elapsed()
        );
        assert_eq!(tree_digest(tree.root()), before, "{file}");
    }
    fs::write(&db, good).unwrap();
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    /// `None` (with the reason) where this process may not mount.
    fn mount(size: &str) -> Result<SmallFs, String> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(SmallFs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_disk_that_fills_up_during_the_rewrite_is_exit_2_and_a_rerun_converges() {
    let template = snapshotted();
    fs::create_dir_all(template.path("/var/lib/app")).unwrap();
    // /var data is copied to /usr/share/factory before /var is emptied, so
    // the rewrite needs this much again.
    let big: Vec<u8> = (0..4u32 << 20).map(|i| (i * 7 + i / 4096) as u8).collect();
    fs::write(template.path("/var/lib/app/big.db"), &big).unwrap();
    fs::write(template.path("/var/lib/app/small"), b"small\n").unwrap();
    let reference = clone_tree(&template);
    finalize(&reference, &[]).expect_code(0);
    let expected = tree_digest(reference.root());

    let small = match SmallFs::mount("48m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("SKIP: cannot mount a small tmpfs here: {why}");
            return;
        }
    };
    let root = small.path().join("root");
    sh(
        "cp",
        &[
            "-a",
            template.root().to_str().unwrap(),
            root.to_str().unwrap(),
        ],
    );
    // Leave about 1 MiB free: less than big.db.
    let free = |p: &Path| {
        let out = sh("df", &["--output=avail", "-B1", p.to_str().unwrap()]);
        out.lines().nth(1).unwrap().trim().parse::<u64>().unwrap()
    };
    let filler = small.path().join("filler");
    let fill = free(small.path()).saturating_sub(1 << 20);
    fs::write(&filler, vec![0u8; fill as usize]).unwrap();
    assert!(free(small.path()) < big.len() as u64);

    let out = Command::new(bin())
        .args(["finalize", "--root", root.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    eprintln!("finalize on a full disk said:\n{stderr}");
    assert!(
        stderr.contains("No space left on device")
            && stderr.contains("/var/lib/app/big.db")
            && stderr.contains("Free space and run the same command again"),
        "the message names the cause and the file: {stderr}"
    );
    assert_eq!(
        fs::read(root.join("var/lib/app/big.db")).unwrap(),
        big,
        "the /var data is still where it was"
    );

    fs::remove_file(&filler).unwrap();
    let out = Command::new(bin())
        .args(["finalize", "--root", root.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(tree_digest(&root), expected, "the rerun converges");
}
