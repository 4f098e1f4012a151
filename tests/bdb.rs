//! The Berkeley DB `Packages` reader against real databases.
//!
//! The databases are real CentOS 5 to 8 rpmdbs shipped by Debian's
//! `golang-github-knqyf263-go-rpmdb-dev` (go-rpmdb's test data). Every
//! package's NEVRA and file list must equal what the real rpm reports with
//! its own read-only Berkeley DB backend (`bdb_ro`), and what it reports
//! after converting the database to sqlite (`rpm --rebuilddb`). Corrupt
//! copies must fail with an error naming the file, never panic, loop or
//! allocate more than the file.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cap_std::fs::Dir;
use ostree_finalize::rpmdb::{self, Package};

/// Where Debian installs go-rpmdb's test databases.
const TESTDATA: &str = "/usr/share/gocode/src/github.com/knqyf263/go-rpmdb/pkg/testdata";

/// The databases: `TESTDATA/NAME/Packages`, sorted. Panics (with the
/// package to install) when they are missing.
fn databases() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(TESTDATA)
        .unwrap_or_else(|e| {
            panic!(
                "{TESTDATA}: {e}. Install the real CentOS databases: \
                 apt-get install golang-github-knqyf263-go-rpmdb-dev"
            )
        })
        .map(|e| e.expect("entry").path().join("Packages"))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    assert!(
        out.len() >= 10,
        "expected CentOS 5-8 databases, found {out:?}"
    );
    out
}

/// A private copy of a database directory holding `Packages` (rpm may
/// leave lock files behind, and tests must not write to /usr/share).
fn copy_db(packages: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(packages, dir.path().join("Packages")).expect("copy");
    dir
}

/// nevra → files, as the real rpm lists them from `dbpath`, with `backend`.
fn rpm_lists(dbpath: &Path, backend: &str) -> BTreeMap<String, Vec<Vec<String>>> {
    let out = Command::new("rpm")
        .arg("--dbpath")
        .arg(dbpath)
        .args(["--define", &format!("_db_backend {backend}")])
        .args(["-qa", "--qf", "@@@ %{nevra}\\n[%{filenames}\\n]"])
        .output()
        .expect("run rpm");
    assert!(
        out.status.success(),
        "rpm -qa failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lists: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in text.lines() {
        if let Some(nevra) = line.strip_prefix("@@@ ") {
            if let Some((n, f)) = current.take() {
                lists.entry(n).or_default().push(f);
            }
            current = Some((nevra.to_string(), Vec::new()));
        } else if let Some((_, files)) = current.as_mut() {
            files.push(line.to_string());
        }
    }
    if let Some((n, f)) = current {
        lists.entry(n).or_default().push(f);
    }
    for v in lists.values_mut() {
        v.sort();
    }
    lists
}

/// The same, from our reader.
fn our_lists(packages: &[Package]) -> BTreeMap<String, Vec<Vec<String>>> {
    let mut lists: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for p in packages {
        lists.entry(p.nevra()).or_default().push(p.files.clone());
    }
    for v in lists.values_mut() {
        v.sort();
    }
    lists
}

fn open(path: &Path) -> Dir {
    Dir::open_ambient_dir(path, cap_std::ambient_authority()).expect("open dir")
}

#[test]
fn real_centos_databases_match_rpm_bdb_ro() {
    for db in databases() {
        let dir = copy_db(&db);
        let ours = rpmdb::read_dbdir(&open(dir.path()), "/var/lib/rpm")
            .unwrap_or_else(|e| panic!("{}: {e:#}", db.display()));
        let theirs = rpm_lists(dir.path(), "bdb_ro");
        assert!(
            theirs.len() > 100,
            "{}: rpm saw {}",
            db.display(),
            theirs.len()
        );
        let ours_lists = our_lists(&ours.packages);
        assert_eq!(
            ours_lists.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>(),
            "{}: package sets differ",
            db.display()
        );
        assert_eq!(ours_lists, theirs, "{}: file lists differ", db.display());
        // Packages are sorted by name, EVR and arch.
        let mut sorted = ours.packages.clone();
        sorted.sort_by(rpmdb::package_cmp);
        assert_eq!(sorted, ours.packages);
    }
}

#[test]
fn the_same_databases_converted_to_sqlite_by_rpm_match_too() {
    for db in databases() {
        let dir = copy_db(&db);
        let before = rpmdb::read_dbdir(&open(dir.path()), "/db").expect("bdb");
        let out = Command::new("rpm")
            .arg("--dbpath")
            .arg(dir.path())
            .args(["--define", "_db_backend sqlite", "--rebuilddb"])
            .output()
            .expect("run rpm");
        assert!(
            out.status.success(),
            "rebuilddb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(dir.path().join("rpmdb.sqlite").is_file());
        // The directory now holds an sqlite database: detected first.
        let after = rpmdb::read_dbdir(&open(dir.path()), "/db").expect("sqlite");
        assert_eq!(our_lists(&after.packages), rpm_lists(dir.path(), "sqlite"));
        assert_eq!(
            our_lists(&after.packages),
            our_lists(&before.packages),
            "{}: bdb and sqlite readers disagree",
            db.display()
        );
    }
}

#[test]
fn a_tree_with_a_berkeley_db_is_read_where_rpm_keeps_it() {
    let db = &databases()[0];
    for location in ["var/lib/rpm", "usr/share/rpm", "usr/lib/sysimage/rpm"] {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join(location)).expect("mkdir");
        std::fs::copy(db, root.path().join(location).join("Packages")).expect("copy");
        let found = rpmdb::read(&open(root.path()))
            .expect("read")
            .expect("found");
        assert_eq!(found.location, format!("/{location}"));
        assert!(found.packages.len() > 100);
    }
}

/// One corruption of a database.
#[derive(Debug, Clone, Copy)]
enum Mutation {
    /// Keep only the first bytes.
    Truncate(usize),
    /// Set one byte.
    Set(usize, u8),
}

/// Apply `m` to `db`, call `f` with the result, and restore `db`.
fn with_mutation<T>(db: &mut [u8], m: Mutation, f: impl FnOnce(&[u8]) -> T) -> T {
    match m {
        Mutation::Truncate(len) => f(&db[..len]),
        Mutation::Set(at, v) => {
            let old = std::mem::replace(&mut db[at], v);
            let out = f(db);
            db[at] = old;
            out
        }
    }
}

/// Deterministic corruptions of a database: truncations, and bytes
/// changed where the structure lives (the metadata page, page headers and
/// item indexes) and, pseudo-randomly, anywhere.
fn mutations(db: &[u8]) -> Vec<(String, Mutation)> {
    let page = u32::from_le_bytes([db[20], db[21], db[22], db[23]]) as usize;
    let mut out = Vec::new();
    let mut cuts = vec![
        0,
        1,
        12,
        16,
        100,
        511,
        512,
        page - 1,
        page,
        page + 1,
        db.len() - 1,
    ];
    cuts.extend((2..db.len() / page).step_by(7).map(|n| n * page + 26));
    for cut in cuts {
        out.push((format!("truncated to {cut}"), Mutation::Truncate(cut)));
    }
    let mut flip = |what: String, at: usize, v: u8| {
        if at < db.len() && db[at] != v {
            out.push((what, Mutation::Set(at, v)));
        }
    };
    for at in 0..224 {
        for v in [0, 0xff, 0x7f] {
            flip(format!("meta byte {at} = {v:#x}"), at, v);
        }
    }
    let pages = db.len() / page;
    for p in (1..pages).step_by((pages / 30).max(1)) {
        for off in (8..34).chain([36, 37, 40, 41, 44, 45]) {
            for v in [0, 0xff, 1] {
                flip(format!("page {p} byte {off} = {v:#x}"), p * page + off, v);
            }
        }
    }
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..600 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let at = (seed % db.len() as u64) as usize;
        flip(format!("random {i}: byte {at}"), at, (seed >> 32) as u8);
    }
    out
}

#[test]
fn mutated_databases_fail_naming_the_file_and_never_panic() {
    const NAME: &str = "/var/lib/rpm/Packages";
    let mut db = std::fs::read(&databases()[0]).expect("read");
    let good = rpmdb::read_bdb_bytes(&db, NAME).expect("pristine copy reads");
    let list = mutations(&db);
    assert!(list.len() > 3000, "{}", list.len());
    let mut errors = 0;
    for (i, (what, m)) in list.iter().enumerate() {
        // Every mutation walks the database structure; every 100th also
        // parses the headers (whose parser has its own mutation tests, and
        // which takes long in a debug build), as do all truncations.
        let full = i % 100 == 0 || what.starts_with("truncated");
        let outcome = with_mutation(&mut db, *m, |bytes| {
            std::panic::catch_unwind(|| {
                if full {
                    rpmdb::read_bdb_bytes(bytes, NAME).map(|p| p.len())
                } else {
                    let mut n = 0;
                    rpmdb::bdb::for_each_header(bytes, bytes.len() as u64, |_, blob| {
                        anyhow::ensure!(blob.len() >= 8, "short blob");
                        n += 1;
                        Ok(())
                    })
                    .map(|()| n)
                }
            })
        });
        match outcome {
            Err(_) => panic!("{what}: panicked"),
            Ok(Ok(n)) => {
                // Bytes nothing reads (free space, unused fields) may change
                // without consequence; a truncation never may.
                assert!(!what.starts_with("truncated"), "{what}: read {n} packages");
                assert!(n <= good.len() * 2, "{what}: {n} packages out of thin air");
            }
            Ok(Err(e)) => {
                errors += 1;
                let msg = format!("{e:#}");
                assert!(!full || msg.starts_with(NAME), "{what}: {msg}");
                assert!(!msg.contains("panicked"), "{what}: {msg}");
            }
        }
    }
    assert!(
        errors > 1000,
        "only {errors} of {} mutations failed",
        list.len()
    );
}

#[test]
fn a_corrupt_database_is_exit_2_naming_it() {
    let mut db = std::fs::read(&databases()[0]).expect("read");
    let list = mutations(&db);
    let picks = [
        "truncated to 0".to_string(),
        "truncated to 512".to_string(),
        format!("truncated to {}", db.len() - 1),
        "meta byte 12 = 0x0".to_string(),
        "meta byte 20 = 0xff".to_string(),
        "meta byte 32 = 0xff".to_string(),
        "meta byte 72 = 0xff".to_string(),
    ];
    for pick in picks {
        let (_, m) = list
            .iter()
            .find(|(w, _)| *w == pick)
            .unwrap_or_else(|| panic!("no mutation {pick}"));
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("var/lib/rpm")).expect("mkdir");
        with_mutation(&mut db, *m, |bytes| {
            std::fs::write(root.path().join("var/lib/rpm/Packages"), bytes).expect("write")
        });
        let out = tempfile::tempdir().expect("tempdir");
        let outcome = common::run(&[
            "snapshot",
            "--root",
            root.path().to_str().expect("utf-8"),
            "--output",
            out.path().join("base.json").to_str().expect("utf-8"),
        ]);
        outcome.expect_code(2);
        assert!(
            outcome.stderr.contains("/var/lib/rpm/Packages"),
            "{pick}: {outcome}"
        );
        assert!(!outcome.stderr.contains("panicked"), "{pick}: {outcome}");
    }
}

#[test]
fn ndb_is_recognised_and_refused_with_a_message() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(root.path().join("usr/lib/sysimage/rpm")).expect("mkdir");
    std::fs::write(
        root.path().join("usr/lib/sysimage/rpm/Packages.db"),
        b"RpmP",
    )
    .expect("write");
    let err = rpmdb::read(&open(root.path())).expect_err("ndb");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("/usr/lib/sysimage/rpm/Packages.db") && msg.contains("ndb"),
        "{msg}"
    );
}
