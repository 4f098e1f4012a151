//! Tests against databases written by the real rpm tools (rpmbuild, rpm).
//!
//! The RPMs and one template tree with them installed are built once per
//! test process ([`fixture`]); each test works on its own copy of the tree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cap_std::fs::Dir;
use rusqlite::Connection;
use tempfile::TempDir;

use super::*;

/// The dbpath used everywhere (Debian's default is `~/.rpmdb`).
const DBPATH: &str = "/usr/lib/sysimage/rpm";
/// The database file as error messages name it.
const DBFILE: &str = "/usr/lib/sysimage/rpm/rpmdb.sqlite";

/// Test packages: (name, spec header lines, %install body, %files body).
const SPECS: &[(&str, &str, &str, &str)] = &[
    (
        "hello",
        "Epoch: 2\nVersion: 1.0\nRelease: 1",
        "mkdir -p %{buildroot}/usr/share/hello %{buildroot}/etc\n\
         echo hi > %{buildroot}/usr/share/hello/a.txt\n\
         echo conf > %{buildroot}/etc/hello.conf\n\
         ln -s a.txt %{buildroot}/usr/share/hello/link",
        "%dir /usr/share/hello\n/usr/share/hello/a.txt\n/usr/share/hello/link\n\
         %config /etc/hello.conf",
    ),
    (
        "plain",
        "Version: 3.1\nRelease: 7.fc40",
        "mkdir -p '%{buildroot}/usr/lib/plain'\n\
         echo x > '%{buildroot}/usr/lib/plain/with space.txt'",
        "\"/usr/lib/plain/with space.txt\"",
    ),
    ("empty", "Epoch: 0\nVersion: 0.1\nRelease: 1", "", ""),
    (
        "walpkg",
        "Version: 5\nRelease: 1",
        "mkdir -p %{buildroot}/opt\necho w > %{buildroot}/opt/wal",
        "/opt/wal",
    ),
];

/// Packages installed in the template tree (`walpkg` is kept apart).
const INSTALLED: &[&str] = &["hello", "plain", "empty"];

/// Built once per process.
struct Fixture {
    /// Holds everything below.
    _dir: TempDir,
    /// name -> built .rpm file.
    rpms: BTreeMap<&'static str, PathBuf>,
    /// A tree with [`INSTALLED`] installed by `rpm --root`.
    template: PathBuf,
    /// `rpm -qa` of the template: nevra -> (sha256header, files).
    expected: BTreeMap<String, (String, Vec<String>)>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build_fixture)
}

/// Run a command, panicking with its output when it fails; return stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn rpmbuild(top: &Path, name: &str, header: &str, install: &str, files: &str) -> PathBuf {
    let spec = top.join(format!("{name}.spec"));
    let text = format!(
        "Name: {name}\n{header}\nSummary: test\nLicense: MIT\nBuildArch: noarch\n\
         %description\ntest\n%install\n{install}\n%files\n{files}\n%changelog\n"
    );
    std::fs::write(&spec, text).expect("write spec");
    run(Command::new("rpmbuild")
        .arg("-bb")
        .arg("--nodeps")
        .arg("--quiet")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .args(["--define", "_build_id_links none"])
        .args(["--define", "_binary_payload w.ufdio"])
        .arg(&spec));
    let dir = top.join("RPMS/noarch");
    let found = std::fs::read_dir(&dir)
        .expect("RPMS dir")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            let f = p.file_name().and_then(|f| f.to_str()).unwrap_or("");
            f.starts_with(&format!("{name}-")) && f.ends_with(".rpm")
        });
    found.expect("built rpm")
}

/// `rpm --root root --dbpath DBPATH args...`
fn rpm(root: &Path) -> Command {
    let mut cmd = Command::new("rpm");
    cmd.arg("--root").arg(root).args(["--dbpath", DBPATH]);
    cmd
}

fn install(root: &Path, rpms: &[&Path]) {
    run(rpm(root).arg("--initdb"));
    run(rpm(root)
        .args([
            "-i",
            "--nodeps",
            "--noscripts",
            "--ignorearch",
            "--ignoreos",
        ])
        .args(rpms));
}

fn build_fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let top = dir.path().join("top");
    std::fs::create_dir(&top).expect("mkdir");
    let mut rpms = BTreeMap::new();
    for (name, header, install, files) in SPECS {
        rpms.insert(*name, rpmbuild(&top, name, header, install, files));
    }
    let template = dir.path().join("template");
    let to_install: Vec<&Path> = INSTALLED.iter().map(|n| rpms[n].as_path()).collect();
    install(&template, &to_install);
    let mut expected = BTreeMap::new();
    let qa = run(rpm(&template)
        .arg("-qa")
        .args(["--qf", "%{nevra} %{sha256header}\\n"]));
    for line in qa.lines() {
        let (nevra, sha) = line.split_once(' ').expect("two fields");
        let ql = run(rpm(&template).arg("-ql").arg(nevra));
        let files = ql
            .lines()
            .filter(|l| *l != "(contains no files)")
            .map(str::to_owned)
            .collect();
        expected.insert(nevra.to_owned(), (sha.to_owned(), files));
    }
    Fixture {
        _dir: dir,
        rpms,
        template,
        expected,
    }
}

/// A private copy of the template tree.
fn tree() -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&fixture().template, dir.path());
    dir
}

/// `cp -a from/. to`
fn copy_tree(from: &Path, to: &Path) {
    run(Command::new("cp").arg("-a").arg(from.join(".")).arg(to));
}

fn open(path: &Path) -> Dir {
    Dir::open_ambient_dir(path, cap_std::ambient_authority()).expect("open dir")
}

fn read_path(path: &Path) -> Result<Option<RpmDb>> {
    read(&open(path))
}

#[test]
fn reads_real_db() {
    let t = tree();
    let db = read_path(t.path()).expect("read").expect("found");
    assert_eq!(db.location, DBPATH);
    let names: Vec<&str> = db.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["empty", "hello", "plain"]);
    let mut got = BTreeMap::new();
    for p in &db.packages {
        let sha = p.sha256header.clone().expect("sha256header");
        assert_eq!(sha.len(), 64);
        assert!(
            sha.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(p.arch, "noarch");
        got.insert(p.nevra(), (sha, p.files.clone()));
    }
    assert_eq!(got, fixture().expected);
}

#[test]
fn epochs_and_nevra_match_rpm() {
    let t = tree();
    let db = read_path(t.path()).expect("read").expect("found");
    let by_name = |n: &str| db.packages.iter().find(|p| p.name == n).expect("package");
    let hello = by_name("hello");
    assert_eq!(hello.epoch, Some(2));
    assert_eq!(hello.nevra(), "hello-2:1.0-1.noarch");
    let empty = by_name("empty");
    assert_eq!(empty.epoch, Some(0));
    assert_eq!(empty.nevra(), "empty-0:0.1-1.noarch");
    assert!(empty.files.is_empty());
    let plain = by_name("plain");
    assert_eq!(plain.epoch, None);
    assert_eq!(plain.nevra(), "plain-3.1-7.fc40.noarch");
    assert_eq!(plain.files, ["/usr/lib/plain/with space.txt"]);
    assert_eq!(
        hello.files,
        [
            "/etc/hello.conf",
            "/usr/share/hello",
            "/usr/share/hello/a.txt",
            "/usr/share/hello/link"
        ]
    );
}

/// Split `[E:]V[-R]` into a package (release empty when absent).
fn pkg(evr: &str) -> Package {
    let (epoch, vr) = match evr.split_once(':') {
        Some((e, vr)) => (Some(e.parse().expect("epoch")), vr),
        None => (None, evr),
    };
    let (version, release) = vr.rsplit_once('-').unwrap_or((vr, ""));
    Package {
        name: "p".into(),
        epoch,
        version: version.into(),
        release: release.into(),
        arch: "noarch".into(),
        sha256header: None,
        files: vec![],
    }
}

#[test]
fn evr_cmp_agrees_with_rpm() {
    let pairs = [
        ("1.0", "1.0a"),
        ("1.0~rc1", "1.0"),
        ("1.0~rc1", "1.0~rc2"),
        ("2:0.1", "1:9"),
        ("1.10", "1.9"),
        ("1.01", "1.1"),
        ("0:1.0", "1.0"),
        ("1.0^git1", "1.0"),
        ("1.0^git1", "1.0.1"),
        ("1.0-1", "1.0-2"),
        ("1.0-10", "1.0-9.fc40"),
        ("1.0.a", "1.0.1"),
        ("a", "b"),
        ("1_0", "1.0"),
        ("5:1-1", "5:1-1"),
    ];
    let lua: Vec<String> = pairs
        .iter()
        .map(|(a, b)| format!("{{\"{a}\",\"{b}\"}}"))
        .collect();
    let script = format!(
        "%{{lua: for _, p in ipairs({{{}}}) do print(rpm.vercmp(p[1], p[2]) .. \"\\n\") end}}",
        lua.join(",")
    );
    let out = run(Command::new("rpm").arg("--eval").arg(script));
    let rpm_says: Vec<i32> = out
        .split_whitespace()
        .map(|s| s.parse().expect("int"))
        .collect();
    assert_eq!(rpm_says.len(), pairs.len(), "{out}");
    for ((a, b), want) in pairs.iter().zip(rpm_says) {
        let got = evr_cmp(&pkg(a), &pkg(b));
        assert_eq!(got, want.cmp(&0), "{a} vs {b}");
        assert_eq!(evr_cmp(&pkg(b), &pkg(a)), got.reverse(), "{b} vs {a}");
    }
}

#[test]
fn packages_sort_stably() {
    let mut list = [
        pkg("1.10"),
        pkg("1.9"),
        pkg("1:0.1"),
        pkg("0:1.1"),
        pkg("1.01"),
        pkg("1.1"),
    ];
    list[0].name = "b".into();
    list.sort_by(package_cmp);
    let shown: Vec<String> = list.iter().map(Package::nevra).collect();
    assert_eq!(
        shown,
        [
            "b-1.10-.noarch",
            "p-1.01-.noarch",
            "p-1.1-.noarch",
            "p-0:1.1-.noarch",
            "p-1.9-.noarch",
            "p-1:0.1-.noarch",
        ]
    );
}

/// Move the template's rpmdb directory to `to` (relative to the tree).
fn move_db(root: &Path, to: &str) {
    let dest = root.join(to);
    std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
    std::fs::rename(root.join(&DBPATH[1..]), &dest).expect("move db");
}

fn symlink(target: &str, link: &Path) {
    std::fs::create_dir_all(link.parent().expect("parent")).expect("mkdir");
    std::os::unix::fs::symlink(target, link).expect("symlink");
}

#[test]
fn rpm_ostree_style_symlinks_resolve_inside_root() {
    let t = tree();
    symlink("../lib/sysimage/rpm", &t.path().join("usr/share/rpm"));
    symlink("/usr/lib/sysimage/rpm", &t.path().join("var/lib/rpm"));
    let root = open(t.path());
    // cap-std on its own refuses absolute symlinks rather than re-rooting them.
    assert!(root.open_dir("var/lib/rpm").is_err());
    assert!(root.open_dir("usr/share/rpm").is_ok());
    for link in [
        "usr/share/rpm",
        "var/lib/rpm",
        "/var/lib/rpm/",
        "var/lib/rpm/.",
    ] {
        let got = find::resolve(&root, Path::new(link)).expect("resolve");
        assert_eq!(
            got.as_deref(),
            Some(Path::new("usr/lib/sysimage/rpm")),
            "{link}"
        );
    }
    let file = find::resolve(&root, Path::new("var/lib/rpm/rpmdb.sqlite")).expect("resolve");
    assert_eq!(
        file.as_deref(),
        Some(Path::new("usr/lib/sysimage/rpm/rpmdb.sqlite"))
    );
    let db = read(&root).expect("read").expect("found");
    assert_eq!(db.location, DBPATH);
    assert_eq!(db.packages.len(), INSTALLED.len());
}

#[test]
fn db_reached_only_through_a_symlink() {
    for (link, target) in [
        ("var/lib/rpm", "/srv/rpmdb"),
        ("var/lib/rpm", "../../srv/./rpmdb"),
        ("usr/share/rpm", "/../../srv/rpmdb/"),
    ] {
        let t = tree();
        move_db(t.path(), "srv/rpmdb");
        symlink(target, &t.path().join(link));
        let db = read_path(t.path()).expect("read").expect("found");
        assert_eq!(db.location, format!("/{link}"), "{link} -> {target}");
        assert_eq!(db.packages.len(), INSTALLED.len());
    }
}

/// A database (holding only `walpkg`) outside any tree under test.
fn outside_db() -> TempDir {
    let scratch = tempfile::tempdir().expect("tempdir");
    install(scratch.path(), &[fixture().rpms["walpkg"].as_path()]);
    let host = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        scratch.path().join(&DBFILE[1..]),
        host.path().join("rpmdb.sqlite"),
    )
    .expect("copy db");
    host
}

#[test]
fn symlinks_never_leave_the_root() {
    let host = outside_db();
    let h = host.path().to_str().expect("utf-8 path");
    let t = tree();
    std::fs::remove_dir_all(t.path().join(&DBPATH[1..])).expect("rm db");
    symlink(
        &format!("/../../../..{h}"),
        &t.path().join("usr/lib/sysimage/rpm"),
    );
    symlink(
        &format!("{}{h}", "../".repeat(20)),
        &t.path().join("usr/share/rpm"),
    );
    symlink(h, &t.path().join("var/lib/rpm"));
    let root = open(t.path());
    for link in find::CANDIDATES {
        assert_eq!(
            find::resolve(&root, Path::new(link)).expect("resolve"),
            None
        );
    }
    assert!(read(&root).expect("read").is_none());

    // The same path inside the root is what the links mean.
    let inside = t.path().join(&h[1..]);
    std::fs::create_dir_all(&inside).expect("mkdir");
    std::fs::copy(
        fixture().template.join(&DBFILE[1..]),
        inside.join("rpmdb.sqlite"),
    )
    .expect("copy db");
    let db = read(&root).expect("read").expect("found");
    assert_eq!(db.location, DBPATH);
    let names: Vec<&str> = db.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["empty", "hello", "plain"]);
}

#[test]
fn symlink_loops_fail() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = t.path();
    // A chain of exactly MAX_SYMLINKS links resolves; one more does not.
    std::fs::create_dir(d.join("real")).expect("mkdir");
    let n = find::MAX_SYMLINKS as usize;
    for i in 0..=n {
        let target = if i == n {
            "real".to_owned()
        } else {
            format!("l{}", i + 1)
        };
        symlink(&target, &d.join(format!("l{i}")));
    }
    let root = open(d);
    let got = find::resolve(&root, Path::new("l1")).expect("40 links");
    assert_eq!(got.as_deref(), Some(Path::new("real")));
    let err = find::resolve(&root, Path::new("l0")).expect_err("41 links");
    assert!(err.to_string().contains("too many levels"), "{err:#}");

    symlink("rpm", &d.join("usr/lib/sysimage/rpm"));
    let err = read(&root).expect_err("loop");
    assert!(err.to_string().contains("too many levels"), "{err:#}");
}

#[test]
fn read_dbdir_reads_a_plain_directory() {
    let dir = open(&fixture().template.join(&DBPATH[1..]));
    let db = read_dbdir(&dir, "/some/dbpath").expect("read");
    assert_eq!(db.location, "/some/dbpath");
    assert_eq!(db.packages.len(), INSTALLED.len());
    let empty = tempfile::tempdir().expect("tempdir");
    let err = read_dbdir(&open(empty.path()), "/x/").expect_err("no db");
    assert!(err.to_string().contains("/x/rpmdb.sqlite"), "{err:#}");
}

#[test]
fn other_backends_are_reported_and_no_db_is_none() {
    let t = tempfile::tempdir().expect("tempdir");
    assert!(read_path(t.path()).expect("read").is_none());
    std::fs::create_dir_all(t.path().join("var/lib/rpm")).expect("mkdir");
    assert!(read_path(t.path()).expect("read").is_none());

    std::fs::write(t.path().join("var/lib/rpm/Packages"), b"bdb").expect("write");
    let err = read_path(t.path()).expect_err("bdb");
    let msg = err.to_string();
    assert!(
        msg.contains("/var/lib/rpm/Packages") && msg.contains("Berkeley DB"),
        "{msg}"
    );

    std::fs::remove_file(t.path().join("var/lib/rpm/Packages")).expect("rm");
    std::fs::create_dir_all(t.path().join("usr/share/rpm")).expect("mkdir");
    std::fs::write(t.path().join("usr/share/rpm/Packages.db"), b"ndb").expect("write");
    let err = read_path(t.path()).expect_err("ndb");
    let msg = err.to_string();
    assert!(
        msg.contains("/usr/share/rpm/Packages.db") && msg.contains("ndb"),
        "{msg}"
    );

    // The first candidate directory holding a database wins.
    copy_tree(&fixture().template, t.path());
    let db = read_path(t.path()).expect("read").expect("found");
    assert_eq!(db.location, DBPATH);
}

/// Every path in a tree with its type, mode, mtime and content or target.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(path) = todo.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        let what = if meta.is_dir() {
            for entry in std::fs::read_dir(&path).expect("readdir") {
                todo.push(entry.expect("entry").path());
            }
            "dir".to_owned()
        } else if meta.is_symlink() {
            format!("link {:?}", std::fs::read_link(&path).expect("readlink"))
        } else {
            format!("file {}", hex::encode(std::fs::read(&path).expect("read")))
        };
        let rel = path.strip_prefix(root).expect("prefix").to_path_buf();
        let stamp = (meta.mode(), meta.mtime(), meta.mtime_nsec(), meta.len());
        out.insert(rel, format!("{what} {stamp:?}"));
    }
    out
}

#[test]
fn reading_leaves_the_tree_byte_identical() {
    let t = tree();
    let dbdir = t.path().join(&DBPATH[1..]);
    // As rpm left it: with `-shm`, an empty `-wal` and `.rpm.lock`.
    assert!(dbdir.join("rpmdb.sqlite-shm").exists());
    let before = snapshot(t.path());
    read_path(t.path()).expect("read").expect("found");
    assert_eq!(snapshot(t.path()), before);

    // A cleaned-up tree with only the database: no sqlite files appear.
    for f in ["rpmdb.sqlite-shm", "rpmdb.sqlite-wal", ".rpm.lock"] {
        let _ = std::fs::remove_file(dbdir.join(f));
    }
    let before = snapshot(t.path());
    read_path(t.path()).expect("read").expect("found");
    assert_eq!(snapshot(t.path()), before);
    let names: Vec<String> = std::fs::read_dir(&dbdir)
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["rpmdb.sqlite"]);
}

/// The header blob of row `hnum` of the database file `db`.
fn blob_of(db: &Path, hnum: i64) -> Vec<u8> {
    let conn = Connection::open(db).expect("open");
    conn.query_row("SELECT blob FROM Packages WHERE hnum = ?1", [hnum], |r| {
        r.get(0)
    })
    .expect("blob")
}

#[test]
fn committed_data_only_in_the_wal_is_seen() {
    let host = outside_db();
    let walblob = blob_of(&host.path().join("rpmdb.sqlite"), 1);
    let t = tree();
    let dbfile = t.path().join(&DBFILE[1..]);
    let wal = t.path().join(format!("{}-wal", &DBFILE[1..]));
    let conn = Connection::open(&dbfile).expect("open");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("journal mode");
    assert_eq!(mode, "wal", "rpm creates its sqlite db in WAL mode");
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .expect("no autocheckpoint");
    conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [&walblob])
        .expect("insert");
    // Committed, but (while `conn` lives) only in the WAL.
    assert!(std::fs::metadata(&wal).expect("wal").len() > 0);

    let without_wal = tree();
    std::fs::copy(&dbfile, without_wal.path().join(&DBFILE[1..])).expect("copy");
    let old = read_path(without_wal.path()).expect("read").expect("found");
    assert!(old.packages.iter().all(|p| p.name != "walpkg"));

    let db = read_path(t.path()).expect("read").expect("found");
    let walpkg = db
        .packages
        .iter()
        .find(|p| p.name == "walpkg")
        .expect("walpkg read from the WAL");
    assert_eq!(walpkg.nevra(), "walpkg-5-1.noarch");
    assert_eq!(walpkg.files, ["/opt/wal"]);
    assert_eq!(db.packages.len(), INSTALLED.len() + 1);
    drop(conn);
}

/// Encode a header blob by hand: (tag, type, count, data) per entry.
fn encode(entries: &[(u32, u32, u32, Vec<u8>)]) -> Vec<u8> {
    let mut index = Vec::new();
    let mut data = Vec::new();
    for (tag, ty, count, bytes) in entries {
        let align = match ty {
            3 => 2,
            4 => 4,
            5 => 8,
            _ => 1,
        };
        while data.len() % align != 0 {
            data.push(0);
        }
        for v in [*tag, *ty, data.len() as u32, *count] {
            index.extend_from_slice(&v.to_be_bytes());
        }
        data.extend_from_slice(bytes);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(&index);
    out.extend_from_slice(&data);
    out
}

fn string(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

#[test]
fn package_without_arch_like_gpg_pubkey() {
    // Tags as `rpm --import` writes them (minus the key itself): no ARCH,
    // and SOURCERPM "(none)".
    let blob = encode(&[
        (1000, 6, 1, string("gpg-pubkey")),
        (1001, 6, 1, string("deadbeef")),
        (1002, 6, 1, string("5f5e4d3c")),
        (1004, 9, 1, string("a key")),
        // Like rpm's own pubkey headers; without it rpm would print `.src`.
        (1044, 6, 1, string("(none)")),
    ]);
    let t = tree();
    let conn = Connection::open(t.path().join(&DBFILE[1..])).expect("open");
    conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [&blob])
        .expect("insert");
    drop(conn);
    // rpm itself accepts the header and agrees on its nevra.
    let qa = run(rpm(t.path()).args(["-qa", "--qf", "%{name} %{nevra}\\n"]));
    let qa = qa
        .lines()
        .find_map(|l| l.strip_prefix("gpg-pubkey "))
        .expect("rpm lists gpg-pubkey");
    let db = read_path(t.path()).expect("read").expect("found");
    let key = db
        .packages
        .iter()
        .find(|p| p.name == "gpg-pubkey")
        .expect("gpg-pubkey");
    assert_eq!(key.arch, "");
    assert_eq!(key.epoch, None);
    assert_eq!(key.sha256header, None);
    assert!(key.files.is_empty());
    assert_eq!(key.nevra(), qa);
    assert_eq!(key.nevra(), "gpg-pubkey-deadbeef-5f5e4d3c");
}

/// The error of reading the tree at `root`; it must name the db file.
fn read_err(root: &Path) -> String {
    let err = read_path(root).expect_err("corrupt database must fail");
    let msg = err.to_string();
    assert!(msg.starts_with(DBFILE), "{msg} / {err:#}");
    format!("{err:#}")
}

#[test]
fn truncated_or_foreign_db_file_fails_naming_it() {
    let full = std::fs::read(fixture().template.join(&DBFILE[1..])).expect("db");
    let page = 4096;
    let mut cuts = vec![0, 1, 15, 16, 50, 99, 100, 101, 512, full.len() - 1];
    cuts.extend((1..full.len() / page).map(|n| n * page));
    cuts.extend((1..full.len() / page).map(|n| n * page - 100));
    for cut in cuts {
        let t = tree();
        let dbfile = t.path().join(&DBFILE[1..]);
        std::fs::write(&dbfile, &full[..cut]).expect("truncate");
        let msg = read_err(t.path());
        assert!(!msg.contains("panicked"), "cut at {cut}: {msg}");
    }
    let t = tree();
    std::fs::write(
        t.path().join(&DBFILE[1..]),
        b"this is not sqlite at all\n".repeat(300),
    )
    .expect("write");
    let msg = read_err(t.path());
    assert!(msg.contains("not a database"), "{msg}");

    let t = tree();
    let dbfile = t.path().join(&DBFILE[1..]);
    std::fs::remove_file(&dbfile).expect("rm");
    std::fs::create_dir(&dbfile).expect("mkdir");
    let msg = read_err(t.path());
    assert!(msg.contains("not a regular file"), "{msg}");
}

fn put32(blob: &mut [u8], at: usize, v: u32) {
    blob[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn get32(blob: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(blob[at..at + 4].try_into().expect("4 bytes"))
}

/// Deterministic corruptions of a real header blob: framing, every index
/// field of every entry, and every byte.
fn mutations(blob: &[u8]) -> Vec<(String, Vec<u8>)> {
    let il = get32(blob, 0);
    let dl = get32(blob, 4);
    let mut out = Vec::new();
    let mut with = |what: String, f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = blob.to_vec();
        f(&mut b);
        out.push((what, b));
    };
    for len in [0, 1, 4, 7, 8, 9, 16, 24, blob.len() / 2, blob.len() - 1] {
        with(format!("truncated to {len}"), &|b| b.truncate(len));
    }
    with("one byte appended".into(), &|b| b.push(0));
    let huge = [0x0fff_ffff, 0x1000_0000, 0x7fff_ffff, 0x8000_0000, u32::MAX];
    for v in [0, 1, il - 1, il + 1, 0xffff, 0x10000]
        .into_iter()
        .chain(huge)
    {
        with(format!("il = {v:#x}"), &|b| put32(b, 0, v));
    }
    for v in [0, 1, dl - 1, dl + 1].into_iter().chain(huge) {
        with(format!("dl = {v:#x}"), &|b| put32(b, 4, v));
    }
    for i in 0..il as usize {
        let at = 8 + 16 * i;
        for ty in (0..=10).chain([0xffff, u32::MAX]) {
            with(format!("entry {i} type {ty}"), &|b| put32(b, at + 4, ty));
        }
        for off in [0, 1, dl - 1, dl, dl + 1].into_iter().chain(huge) {
            with(format!("entry {i} offset {off:#x}"), &|b| {
                put32(b, at + 8, off)
            });
        }
        for count in [0, 2, 1000, dl - 1, dl, dl + 1].into_iter().chain(huge) {
            with(format!("entry {i} count {count:#x}"), &|b| {
                put32(b, at + 12, count)
            });
        }
    }
    for at in 0..blob.len() {
        with(format!("byte {at} flipped"), &|b| b[at] ^= 0xff);
        with(format!("byte {at} zeroed"), &|b| b[at] = 0);
        with(format!("byte {at} = 'A'"), &|b| b[at] = b'A');
    }
    out
}

/// The blob of `hello` in the template database (and its hnum).
fn hello_blob() -> (i64, Vec<u8>) {
    let conn = Connection::open_with_flags(
        fixture().template.join(&DBFILE[1..]),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open");
    let mut stmt = conn
        .prepare("SELECT hnum, blob FROM Packages")
        .expect("prepare");
    let rows: Vec<(i64, Vec<u8>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    rows.into_iter()
        .find(|(_, b)| header::parse_blob(b).is_ok_and(|p| p.name == "hello"))
        .expect("hello blob")
}

#[test]
fn mutated_headers_never_panic() {
    let (_, blob) = hello_blob();
    let list = mutations(&blob);
    assert!(list.len() > 5000, "{}", list.len());
    let mut errors = 0;
    for (what, bytes) in &list {
        match header::parse_blob(bytes) {
            // Many mutations still make a well-formed header (with other
            // strings); only the absence of panics matters for those.
            Ok(_) => {}
            Err(e) => {
                errors += 1;
                let msg = format!("{e:#}");
                // Our own checks must catch everything before the rpm crate
                // could panic; the catch_unwind is only a second line.
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
fn mutated_header_in_db_fails_naming_file_and_hnum() {
    let (hnum, blob) = hello_blob();
    let il = get32(&blob, 0);
    let dl = get32(&blob, 4);
    let wanted = [
        format!("il = {:#x}", u32::MAX),
        format!("il = {:#x}", il + 1),
        format!("dl = {:#x}", 0x1000_0000),
        format!("dl = {:#x}", dl - 1),
        format!("truncated to {}", blob.len() / 2),
        "truncated to 7".to_owned(),
        "one byte appended".to_owned(),
        "entry 3 type 10".to_owned(),
        format!("entry 3 offset {:#x}", u32::MAX),
        format!("entry 3 offset {dl:#x}"),
        format!("entry 5 count {:#x}", u32::MAX),
        format!("entry 5 count {:#x}", 0x0fff_ffff),
        "entry 2 count 0x2".to_owned(),
    ];
    let all = mutations(&blob);
    for what in &wanted {
        let (_, bad) = all.iter().find(|(w, _)| w == what).expect(what);
        let t = tree();
        let conn = Connection::open(t.path().join(&DBFILE[1..])).expect("open");
        conn.execute(
            "UPDATE Packages SET blob = ?1 WHERE hnum = ?2",
            rusqlite::params![bad, hnum],
        )
        .expect("update");
        drop(conn);
        let msg = read_err(t.path());
        assert!(
            msg.starts_with(&format!("{DBFILE}: header #{hnum}")),
            "{what}: {msg}"
        );
        assert!(!msg.contains("panicked"), "{what}: {msg}");
    }
    // A row whose blob is not a blob at all.
    let t = tree();
    let conn = Connection::open(t.path().join(&DBFILE[1..])).expect("open");
    conn.execute("UPDATE Packages SET blob = 'text' WHERE hnum = ?1", [hnum])
        .expect("update");
    drop(conn);
    let msg = read_err(t.path());
    assert!(msg.contains(&format!("header #{hnum}")), "{msg}");
}
