//! The fuzz targets' regression inputs, run by the normal test suite (stable
//! Rust, no root, no rpm).
//!
//! `tests/fuzz_regressions/<target>/` holds inputs for the fuzz target of
//! the same name in `fuzz/fuzz_targets/`: every crash, hang or OOM a fuzzer
//! found (minimized), and hand-made edge cases (truncated and mutated real
//! blobs; see the README there). Each test here feeds every file of one
//! directory to the target's entry point and asserts what the target
//! asserts: the call returns `Ok` or `Err` in bounded time, without a panic
//! — not even one the code under test catches itself — plus the target's
//! own property (a round trip, a tree left untouched).
//!
//! To add an input, drop the file into the directory: no code change.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::{Once, mpsc};
use std::time::Duration;

use cap_std::fs::Dir;
use ostree_finalize::apply::resource::Local;
use ostree_finalize::apply::{butane, ignition};
use ostree_finalize::manifest::Manifest;
use ostree_finalize::rpmdb;

// The checks of the targets that take more than a few lines, shared with
// the fuzz crate so that the two cannot drift apart.
#[path = "../fuzz/src/manifest_json.rs"]
mod manifest_json;
#[path = "../fuzz/src/oci_layer.rs"]
mod oci_layer;
#[path = "../fuzz/src/ostree_objects.rs"]
mod ostree_objects;
#[path = "../fuzz/src/path_roundtrip.rs"]
mod path_roundtrip;
#[path = "../fuzz/src/policy_yaml.rs"]
mod policy_yaml;
#[path = "../fuzz/src/rpm_header.rs"]
mod rpm_header;
#[path = "../fuzz/src/tmpfiles_escape.rs"]
mod tmpfiles_escape;

/// How long one input may take, in a debug build on a loaded machine. Far
/// above what any input needs (milliseconds); a hang is a failure.
const PER_INPUT: Duration = Duration::from_secs(60);

thread_local! {
    /// Panics seen on this thread, including ones caught by `catch_unwind`.
    static PANICS: Cell<usize> = const { Cell::new(0) };
}

/// Count every panic, caught or not, then report it as usual.
fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|n| n.set(n.get() + 1));
            default(info);
        }));
    });
}

/// The regression inputs of `target`, sorted by name. There must be some:
/// an empty directory would make the test pass without testing anything.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| e.expect("listing regression inputs").path())
        .collect();
    files.sort();
    let inputs: Vec<_> = files
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let bytes =
                std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            (name, bytes)
        })
        .collect();
    assert!(!inputs.is_empty(), "no inputs in {}", dir.display());
    inputs
}

/// Run `check` on every input of `target`, each on its own thread with a
/// deadline, and fail listing every input that panicked or hung.
fn run_all(target: &str, check: fn(&[u8])) {
    count_panics();
    let mut failures = Vec::new();
    for (name, bytes) in inputs(target) {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("{target}/{name}"))
            .spawn(move || {
                let outcome = std::panic::catch_unwind(|| check(&bytes));
                let panics = PANICS.with(Cell::get);
                let _ = tx.send((outcome.is_err(), panics));
            })
            .expect("spawning a worker thread");
        match rx.recv_timeout(PER_INPUT) {
            Ok((false, 0)) => {}
            Ok((false, n)) => failures.push(format!(
                "{name}: {n} panic(s) inside the code under test (caught there)"
            )),
            Ok((true, _)) => failures.push(format!("{name}: panicked")),
            // The thread is left running; the test process ends anyway.
            Err(_) => failures.push(format!("{name}: still running after {PER_INPUT:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "tests/fuzz_regressions/{target}:\n  {}",
        failures.join("\n  ")
    );
}

/// `fuzz_targets/rpm_header.rs`: one `Packages.blob` value, as it is and
/// with its `dl` fixed up.
#[test]
fn rpm_header_inputs_parse_or_fail_cleanly() {
    run_all("rpm_header", rpm_header::check);
}

/// `fuzz_targets/rpmdb_sqlite.rs`: the input as `rpmdb.sqlite` at rpm's
/// default location; the tree must be left as it was.
#[test]
fn rpmdb_sqlite_inputs_read_or_fail_cleanly_and_leave_the_tree_alone() {
    run_all("rpmdb_sqlite", |db| {
        let tmp = tempfile::tempdir().expect("creating a tempdir");
        let dbdir = tmp.path().join("usr/lib/sysimage/rpm");
        std::fs::create_dir_all(&dbdir).expect("creating the rpmdb directory");
        let file = dbdir.join("rpmdb.sqlite");
        std::fs::write(&file, db).expect("writing the database");
        let root = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority())
            .expect("opening the root");
        let _ = rpmdb::read(&root);
        assert!(
            std::fs::read(&file).expect("re-reading the database") == db,
            "the reader modified rpmdb.sqlite"
        );
        let names: Vec<_> = std::fs::read_dir(&dbdir)
            .expect("listing the rpmdb directory")
            .map(|e| e.expect("listing the rpmdb directory").file_name())
            .collect();
        assert_eq!(names, ["rpmdb.sqlite"], "the reader left files behind");
    });
}

/// `fuzz_targets/manifest_json.rs`: a manifest that is accepted must read
/// back unchanged after being written.
#[test]
fn manifest_inputs_parse_or_fail_cleanly_and_round_trip() {
    run_all("manifest_json", manifest_json::check);
}

/// `fuzz_targets/path_roundtrip.rs`: `decode(encode(x)) == x`, the UTF-8
/// flag is right, and `decode` never panics.
#[test]
fn path_inputs_round_trip() {
    run_all("path_roundtrip", path_roundtrip::check);
}

/// `fuzz_targets/oci_layer.rs`: layers merged over the base layer; the
/// merged tree stays inside the image and is a tree.
#[test]
fn oci_layer_inputs_merge_or_fail_cleanly_and_stay_inside_the_image() {
    run_all("oci_layer", oci_layer::check);
}

/// `fuzz_targets/tmpfiles_escape.rs`: a rendered tmpfiles.d line reads
/// back, with systemd 252's rules, as what was asked for; the crate's
/// readers agree with systemd on the path column.
#[test]
fn tmpfiles_lines_read_back_as_written() {
    run_all("tmpfiles_escape", tmpfiles_escape::check);
}

/// `fuzz_targets/policy_yaml.rs`: `Ok`, or an error locating each problem.
#[test]
fn policy_inputs_parse_or_fail_with_located_errors() {
    run_all("policy_yaml", policy_yaml::check);
}

/// `fuzz_targets/butane.rs`: every input read as Butane and as Ignition,
/// with a `--files-dir` holding `logo.txt`.
#[test]
fn butane_and_ignition_inputs_parse_or_fail_cleanly() {
    run_all("butane", |data| {
        let tmp = tempfile::tempdir().expect("creating a tempdir");
        std::fs::write(tmp.path().join("logo.txt"), b"  /\\_/\\\n ( o.o )  app\n")
            .expect("writing logo.txt");
        let files = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority())
            .expect("opening the files dir");
        let local = Local { dir: Some(&files) };
        if let Ok(config) = butane::parse(data, "config.bu", local) {
            let _ = config.without_locations();
        }
        if let Ok(config) = ignition::parse(data, "config.ign", local) {
            let _ = config.without_locations();
        }
    });
}

/// `fuzz_targets/rpmdb_bdb.rs`: a whole Berkeley DB `Packages` file; an
/// error names the file.
#[test]
fn rpmdb_bdb_inputs_read_or_fail_cleanly() {
    run_all("rpmdb_bdb", |bytes| {
        if let Err(e) = rpmdb::read_bdb_bytes(bytes, "Packages") {
            let msg = e.to_string();
            assert!(
                msg.starts_with("Packages: "),
                "error without the file name: {msg}"
            );
        }
    });
}

/// `fuzz_targets/ostree_objects.rs`: every input as a commit, dirtree,
/// dirmeta and xattr list; what is accepted re-encodes consistently.
#[test]
fn ostree_object_inputs_parse_or_fail_cleanly_and_re_encode() {
    run_all("ostree_objects", ostree_objects::check);
}

/// Real inputs must still be accepted: a parser that rejected everything
/// would pass every test above.
#[test]
fn the_real_inputs_among_the_regressions_are_accepted() {
    let find = |target: &str, name: &str| {
        inputs(target)
            .into_iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{target}/{name} is missing"))
            .1
    };
    let pkg = rpmdb::parse_header_blob(&find("rpm_header", "real-installed-header"))
        .expect("the real header parses");
    assert_eq!(pkg.nevra(), "base-utils-1.0-1.noarch");

    let db = find("rpmdb_sqlite", "real-rows-packages-only");
    let tmp = tempfile::tempdir().unwrap();
    let dbdir = tmp.path().join("usr/lib/sysimage/rpm");
    std::fs::create_dir_all(&dbdir).unwrap();
    std::fs::write(dbdir.join("rpmdb.sqlite"), db).unwrap();
    let root = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
    let read = rpmdb::read(&root)
        .expect("the real rows read")
        .expect("an rpmdb");
    let nevras: Vec<_> = read.packages.iter().map(|p| p.nevra()).collect();
    assert_eq!(
        nevras,
        ["base-lib-2:1.0-1.noarch", "base-utils-1.0-1.noarch"]
    );

    let manifest = Manifest::from_json(&find("manifest_json", "real-snapshot"), "base.json")
        .expect("the real snapshot parses");
    assert_eq!(manifest.packages.len(), 2);

    let packages = rpmdb::read_bdb_bytes(&find("rpmdb_bdb", "real-centos7-one-header"), "Packages")
        .expect("the shrunk CentOS 7 database reads");
    let nevras: Vec<_> = packages.iter().map(|p| p.nevra()).collect();
    assert_eq!(nevras, ["nss-pem-1.0.3-4.el7.x86_64"]);

    // Absolute names land inside the image, where the layer reader says;
    // names that climb above the root (`../../../etc/up`, `./a/../../b`,
    // `..`) are malformed and left out.
    let input =
        oci_layer::decode_input(&find("oci_layer", "absolute-and-dotdot-names")).expect("an input");
    let merged = oci_layer::merge(&input).expect("the layers merge");
    for path in ["/etc/abs", "/a/b/c", "/usr/bin/tool"] {
        assert!(merged.get(path).is_some(), "{path} is missing");
    }
    for path in ["/etc/up", "/b"] {
        assert!(
            merged.get(path).is_none(),
            "{path} climbed and is still there"
        );
    }
    assert_eq!(merged.get("/").unwrap().entry.mode, 0o711);

    use ostree_finalize::ostree::objects;
    let tree = objects::parse_dirtree(&find("ostree_objects", "dirtree-valid-files-and-dirs"))
        .expect("the dirtree parses");
    assert_eq!((tree.files.len(), tree.dirs.len()), (2, 1));
    let meta = objects::parse_meta(&find("ostree_objects", "dirmeta-with-xattrs"))
        .expect("the dirmeta parses");
    assert_eq!(meta.xattrs, [(b"user.x".to_vec(), b"1".to_vec())]);
    let xattrs = objects::parse_xattrs(&find("ostree_objects", "xattrs-two-byte-offsets"))
        .expect("the xattrs parse");
    assert_eq!(xattrs.len(), 12);

    let policy = std::str::from_utf8(&find("policy_yaml", "alias-as-waivers"))
        .unwrap()
        .to_owned();
    ostree_finalize::policy::parse(&policy, "policy.yaml").expect("the policy parses");

    // The tmpfiles.d writer expresses every character it can.
    for name in [
        "dir-every-special-character",
        "symlink-target-every-special-character",
        "symlink-target-dash",
        "copy-path-4095-bytes-accepted",
    ] {
        let data = find("tmpfiles_escape", name);
        let line = tmpfiles_escape::line_from(data[0], &data[1..]);
        assert!(line.render().is_some(), "{name}: {line:?} is refused");
    }
}
