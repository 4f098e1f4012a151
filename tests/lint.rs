//! `lint` on images built here, layer by layer, with the `tar` crate (and
//! flate2/zstd): OCI layouts, oci-archive and docker-archive files in a
//! tempdir. Each test asserts the exact findings (check, path, level) and
//! the exit code.
//!
//! Most tests mutate one passing fixture: the [`base_layer`] image (tag
//! `base`) and a derived image (tag `derived`) that is the base plus one
//! layer that starts with the finalize record. The tests that compare with
//! `finalize` pack real base trees (with a real rpmdb) into layers.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::oci::*;
use common::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Layers

/// The base image's one layer: a small OS, no rpm database.
fn base_layer() -> Layer {
    Layer::new()
        .raw(b"./", header(tar::EntryType::Directory, 0o755, 0), b"")
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file("usr/bin/tool", "tool v1\n", 0o755)
        .file("usr/bin/tool-alias", "tool v1\n", 0o755)
        .dir("usr/lib", 0o755)
        .file("usr/lib/libx.so", "libx\n", 0o644)
        .dir("usr/share", 0o755)
        .dir("usr/share/doc", 0o755)
        .dir("usr/share/doc/x", 0o755)
        .file("usr/share/doc/x/README", "readme\n", 0o644)
        .file("usr/share/doc/x/LICENSE", "license\n", 0o644)
        .symlink("lib", "usr/lib")
        .dir("etc", 0o755)
        .file("etc/conf", "a=1\n", 0o644)
        .dir("var", 0o755)
}

// ---------------------------------------------------------------------------
// Compression and image layouts

/// A scratch directory for one test.
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("lint-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

/// The fixture: `oci:DIR:base` is [`base_layer`]; `oci:DIR:derived` is the
/// base plus `top`.
fn fixture(top: Layer, z: Z, labels: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let t = scratch();
    let dir = t.path().join("oci");
    let base = base_layer().tar();
    let top = top.tar();
    add_oci_image(&dir, "base", &[&base], Z::Plain, &[]);
    add_oci_image(&dir, "derived", &[&base, &top], z, labels);
    (t, dir)
}

// ---------------------------------------------------------------------------
// Running lint

/// `lint --image oci:DIR:derived --base-image oci:DIR:base`.
fn lint_fixture(dir: &Path, extra: &[&str]) -> Outcome {
    let image = format!("oci:{}:derived", dir.display());
    let base = format!("oci:{}:base", dir.display());
    let mut args = vec!["--image", image.as_str(), "--base-image", base.as_str()];
    args.extend_from_slice(extra);
    lint(&args)
}

/// (check, path, level) of every finding, in report order.
fn found(out: &Outcome) -> Vec<(String, Option<String>, String)> {
    out.json()["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings array:\n{out}"))
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_string(),
                f["path"].as_str().map(str::to_string),
                f["level"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn f(check: &str, path: Option<&str>, level: &str) -> (String, Option<String>, String) {
    (check.into(), path.map(str::to_string), level.into())
}

/// The findings every unlabelled override adds.
fn unlabeled() -> (String, Option<String>, String) {
    f("override-unlabeled", None, "deny")
}

/// The message of the first finding (findings are sorted by level).
fn first_message(out: &Outcome) -> String {
    out.json()["findings"][0]["message"]
        .as_str()
        .expect("a finding with a message")
        .to_string()
}

#[track_caller]
fn assert_findings(out: &Outcome, code: i32, want: &[(String, Option<String>, String)]) {
    assert_eq!(found(out), want, "\n{out}");
    out.expect_code(code);
}

// ---------------------------------------------------------------------------
// Layers: whiteouts, opaque directories, hardlinks, compression, xattrs

#[test]
fn the_passing_fixture_passes_with_no_findings() {
    let (_t, dir) = fixture(
        Layer::new().finalized().file("usr/bin/new", "x", 0o755),
        Z::Plain,
        &[],
    );
    assert_findings(&lint_fixture(&dir, &[]), 0, &[]);
}

#[test]
fn whiteout_of_a_base_file_is_base_removed() {
    let top = Layer::new().finalized().marker("usr/lib/.wh.libx.so");
    let (_t, dir) = fixture(top, Z::Plain, &[]);
    assert_findings(
        &lint_fixture(&dir, &[]),
        1,
        &[
            f("base-removed", Some("/usr/lib/libx.so"), "deny"),
            unlabeled(),
        ],
    );
}

#[test]
fn opaque_directory_hides_the_base_contents_but_not_its_own_siblings() {
    // README comes before the marker in the layer: the marker still only
    // hides what lower layers had.
    let top = Layer::new()
        .finalized()
        .file("usr/share/doc/x/README", "readme\n", 0o644)
        .marker("usr/share/doc/x/.wh..wh..opq")
        .file("usr/share/doc/x/NEW", "new\n", 0o644);
    let (_t, dir) = fixture(top, Z::Plain, &[]);
    assert_findings(
        &lint_fixture(&dir, &[]),
        1,
        &[
            f("base-removed", Some("/usr/share/doc/x/LICENSE"), "deny"),
            unlabeled(),
        ],
    );
}

#[test]
fn whiteout_under_a_symlinked_directory_never_reaches_the_target() {
    // /lib -> usr/lib: the whiteout names /lib/libx.so literally. It must
    // not delete /usr/lib/libx.so; the layer's /lib directory replaces the
    // symlink, as overlayfs stacks it.
    let top = Layer::new().finalized().marker("lib/.wh.libx.so");
    let (_t, dir) = fixture(top, Z::Plain, &[]);
    let out = lint_fixture(&dir, &[]);
    assert_findings(
        &out,
        1,
        &[f("base-modified", Some("/lib"), "deny"), unlabeled()],
    );
    let msg = first_message(&out);
    assert!(msg.contains("symlink → directory"), "{msg}");
}

#[test]
fn hardlinks_take_their_targets_content() {
    let top = Layer::new()
        .finalized()
        // Same content as the base alias: no change.
        .hardlink("usr/bin/tool-alias", "usr/bin/tool")
        // A new path: an addition.
        .hardlink("usr/bin/tool-new", "usr/bin/tool")
        // Over a different base file: its content and mode change.
        .hardlink("usr/lib/libx.so", "usr/bin/tool");
    let (_t, dir) = fixture(top, Z::Plain, &[]);
    let out = lint_fixture(&dir, &[]);
    assert_findings(
        &out,
        1,
        &[
            f("base-modified", Some("/usr/lib/libx.so"), "deny"),
            unlabeled(),
        ],
    );
    let msg = first_message(&out);
    assert!(msg.contains("mode 0644 → 0755"), "{msg}");
}

/// A layer that adds files and, in its last member, changes a base file:
/// the finding only appears if every compressed member or frame was read.
fn late_change() -> Layer {
    let mut l = Layer::new().finalized().dir("usr/share/extra", 0o755);
    for i in 0..40 {
        l = l.file(&format!("usr/share/extra/f{i}"), "x".repeat(i * 97), 0o644);
    }
    l.file("usr/bin/tool", "tool v2\n", 0o755)
}

#[test]
fn gzip_layer_of_several_members_is_read_to_the_end() {
    let (_t, dir) = fixture(late_change(), Z::GzipMembers, &[]);
    assert_findings(
        &lint_fixture(&dir, &[]),
        1,
        &[
            f("base-modified", Some("/usr/bin/tool"), "deny"),
            unlabeled(),
        ],
    );
}

#[test]
fn zstd_layer_of_several_frames_is_read_to_the_end() {
    let (_t, dir) = fixture(late_change(), Z::Zstd, &[]);
    assert_findings(
        &lint_fixture(&dir, &[]),
        1,
        &[
            f("base-modified", Some("/usr/bin/tool"), "deny"),
            unlabeled(),
        ],
    );
}

#[test]
fn xattr_only_change_is_base_modified_and_overlay_internals_are_ignored() {
    let cap: &[u8] =
        b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    let top = Layer::new()
        .finalized()
        .file_xattrs(
            "usr/bin/tool",
            "tool v1\n",
            0o755,
            &[("security.capability", cap)],
        )
        .file_xattrs(
            "usr/lib/libx.so",
            "libx\n",
            0o644,
            &[("trusted.overlay.opaque", b"y")],
        );
    let (_t, dir) = fixture(top, Z::Plain, &[]);
    let out = lint_fixture(&dir, &[]);
    assert_findings(
        &out,
        1,
        &[
            f("base-modified", Some("/usr/bin/tool"), "deny"),
            unlabeled(),
        ],
    );
    let msg = first_message(&out);
    assert!(msg.contains("xattr security.capability added"), "{msg}");
}

#[test]
fn absolute_member_names_are_read_from_the_image_root() {
    // As runtimes do: the leading `/` is dropped, and a `..` that stays
    // inside the image is resolved.
    let top = Layer::new()
        .finalized()
        .raw(
            b"/usr/bin/added",
            header(tar::EntryType::Regular, 0o755, 2),
            b"hi",
        )
        .raw(
            b"/usr/bin/tool",
            header(tar::EntryType::Regular, 0o755, 2),
            b"v2",
        )
        .raw(
            b"usr/share/../lib/.wh.libx.so",
            header(tar::EntryType::Regular, 0o644, 0),
            b"",
        )
        .hardlink("usr/bin/tool-link", "/usr/bin/tool");
    let (_t, dir) = fixture(top, Z::Plain, &[]);
    assert_findings(
        &lint_fixture(&dir, &[]),
        1,
        &[
            f("base-modified", Some("/usr/bin/tool"), "deny"),
            f("base-removed", Some("/usr/lib/libx.so"), "deny"),
            unlabeled(),
        ],
    );
}

// ---------------------------------------------------------------------------
// Malformed layers: members runtimes refuse or may read differently are
// findings (exit 1), each naming the layer digest and the raw member name;
// reading goes on past them and nothing is written.

/// A top layer given as its tar: the fixture, and the layer's digest as
/// findings name it (`sha256:HEX` of the uncompressed blob).
fn malformed_fixture(top: Layer) -> (tempfile::TempDir, PathBuf, String) {
    let t = scratch();
    let dir = t.path().join("oci");
    let base = base_layer().tar();
    let top = top.tar();
    add_oci_image(&dir, "base", &[&base], Z::Plain, &[]);
    add_oci_image(&dir, "derived", &[&base, &top], Z::Plain, &[]);
    let digest = format!("sha256:{}", sha(&top));
    (t, dir, digest)
}

/// Every file under `dir` with its bytes: what lint must leave as it was.
fn tree_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut paths = Vec::new();
    list(dir, Path::new(""), &mut paths);
    paths
        .into_iter()
        .map(|rel| {
            let full = dir.join(&rel);
            let bytes = if full.is_file() {
                fs::read(&full).unwrap()
            } else {
                Vec::new()
            };
            (rel, bytes)
        })
        .collect()
}

/// Lint the malformed fixture: the findings are `want` (check, path,
/// level), each `malformed-layer` message names `digest` and its member
/// in `members` (in report order), and the layout is left as it was.
#[track_caller]
fn assert_malformed(
    top: Layer,
    want: &[(String, Option<String>, String)],
    members: &[&str],
) -> Outcome {
    let (t, dir, digest) = malformed_fixture(top);
    let before = tree_bytes(t.path());
    let out = lint_fixture(&dir, &[]);
    assert_findings(&out, 1, want);
    let messages: Vec<String> = out.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "malformed-layer")
        .map(|f| f["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(messages.len(), members.len(), "\n{out}");
    for (msg, member) in messages.iter().zip(members) {
        assert!(msg.contains(&digest), "{digest} not in {msg}");
        assert!(
            msg.contains(&format!("`{member}`")),
            "{member} not in {msg}"
        );
        assert!(msg.contains("layer 2 of the image"), "{msg}");
    }
    assert_eq!(tree_bytes(t.path()), before, "lint wrote into the layout");
    out
}

/// A member written byte for byte: an empty regular file, as whiteouts and
/// opaque markers are.
fn empty_member(layer: Layer, name: &str) -> Layer {
    layer.raw(
        name.as_bytes(),
        header(tar::EntryType::Regular, 0o644, 0),
        b"",
    )
}

#[test]
fn a_member_name_that_climbs_above_the_root_is_malformed_layer() {
    let breakout = "tmp/ostree-finalize-lint-breakout-test";
    let top = Layer::new()
        .finalized()
        .raw(
            format!("../../../../{breakout}").as_bytes(),
            header(tar::EntryType::Regular, 0o644, 2),
            b"hi",
        )
        // Absolute, and still climbing: refused too.
        .raw(
            b"/../etc/conf",
            header(tar::EntryType::Regular, 0o644, 2),
            b"hi",
        )
        // A whiteout that climbs: refused, and it deletes nothing.
        .raw(
            b"usr/../../usr/lib/.wh.libx.so",
            header(tar::EntryType::Regular, 0o644, 0),
            b"",
        )
        // Reading goes on past them.
        .file("usr/bin/tool", "tool v2\n", 0o755);
    assert_malformed(
        top,
        &[
            f("base-modified", Some("/usr/bin/tool"), "deny"),
            f("malformed-layer", None, "deny"),
            f("malformed-layer", None, "deny"),
            f("malformed-layer", None, "deny"),
            unlabeled(),
        ],
        // Sorted by message: the member names, as in the tar.
        &[
            &format!("../../../../{breakout}"),
            "/../etc/conf",
            "usr/../../usr/lib/.wh.libx.so",
        ],
    );
    assert!(!Path::new("/").join(breakout).exists());
}

#[test]
fn a_whiteout_of_dot_or_dotdot_is_malformed_layer_and_deletes_nothing() {
    let mut top = Layer::new().finalized();
    for name in ["usr/share/doc/x/.wh..", "usr/.wh...", "etc/.wh."] {
        top = empty_member(top, name);
    }
    assert_malformed(
        top,
        &[
            f("malformed-layer", Some("/etc"), "deny"),
            f("malformed-layer", Some("/usr"), "deny"),
            f("malformed-layer", Some("/usr/share/doc/x"), "deny"),
        ],
        &["etc/.wh.", "usr/.wh...", "usr/share/doc/x/.wh.."],
    );
}

#[test]
fn an_opaque_marker_that_is_not_an_empty_file_is_malformed_layer() {
    let top = Layer::new()
        .finalized()
        .file("usr/share/doc/x/.wh..wh..opq", "content", 0o644)
        .dir("usr/lib/.wh..wh..opq", 0o755)
        .symlink("etc/.wh..wh..opq", "/usr");
    assert_malformed(
        top,
        &[
            f("malformed-layer", Some("/etc"), "deny"),
            f("malformed-layer", Some("/usr/lib"), "deny"),
            f("malformed-layer", Some("/usr/share/doc/x"), "deny"),
        ],
        &[
            "etc/.wh..wh..opq",
            "usr/lib/.wh..wh..opq",
            "usr/share/doc/x/.wh..wh..opq",
        ],
    );
}

#[test]
fn an_opaque_marker_under_a_non_directory_is_malformed_layer() {
    // Under a base file, under the base's /lib symlink, and under a file
    // this layer adds: overlay storage and a plain unpack read these
    // differently, so none of them may hide or replace anything.
    let top = Layer::new().finalized().file("usr/share/new", "x", 0o644);
    let mut top = top;
    for name in [
        "usr/bin/tool/.wh..wh..opq",
        "lib/.wh..wh..opq",
        "usr/share/new/.wh..wh..opq",
    ] {
        top = empty_member(top, name);
    }
    assert_malformed(
        top,
        &[
            f("malformed-layer", Some("/lib"), "deny"),
            f("malformed-layer", Some("/usr/bin/tool"), "deny"),
            f("malformed-layer", Some("/usr/share/new"), "deny"),
        ],
        &[
            "lib/.wh..wh..opq",
            "usr/bin/tool/.wh..wh..opq",
            "usr/share/new/.wh..wh..opq",
        ],
    );
}

#[test]
fn an_opaque_marker_in_the_image_root_is_malformed_layer_and_hides_nothing() {
    // A plain unpack would delete the whole base; overlay ignores it.
    let top = empty_member(Layer::new().finalized(), ".wh..wh..opq");
    let top = empty_member(top, "./usr/../.wh..wh..opq");
    assert_malformed(
        top,
        &[
            f("malformed-layer", Some("/"), "deny"),
            f("malformed-layer", Some("/"), "deny"),
        ],
        &["./usr/../.wh..wh..opq", ".wh..wh..opq"],
    );
}

#[test]
fn other_reserved_whiteout_names_are_malformed_layer_in_every_directory() {
    // aufs metadata: skipped in the root by docker and containers/storage,
    // read as a whiteout of `.wh.plnk` below it, and by containerd's
    // overlay converter everywhere.
    let mut top = Layer::new().finalized();
    for name in [
        ".wh..wh.plnk",
        "usr/.wh..wh.aufs",
        "usr/share/doc/x/.wh..wh.orph",
    ] {
        top = empty_member(top, name);
    }
    assert_malformed(
        top,
        &[
            f("malformed-layer", Some("/"), "deny"),
            f("malformed-layer", Some("/usr"), "deny"),
            f("malformed-layer", Some("/usr/share/doc/x"), "deny"),
        ],
        &[
            ".wh..wh.plnk",
            "usr/.wh..wh.aufs",
            "usr/share/doc/x/.wh..wh.orph",
        ],
    );
}

#[test]
fn a_path_through_a_whiteout_named_directory_is_malformed_layer_at_every_level() {
    // `.wh..` and `.wh...` as directories, at the root and deeper, and an
    // opaque marker used as a directory: none of them is created, and the
    // base file a runtime could reach through them is untouched.
    let top = Layer::new()
        .finalized()
        .raw(
            b"usr/lib/.wh../libx.so",
            header(tar::EntryType::Regular, 0o644, 4),
            b"evil",
        )
        .raw(
            b".wh.../etc/conf",
            header(tar::EntryType::Regular, 0o644, 4),
            b"evil",
        )
        .raw(
            b"usr/share/.wh..wh..opq/doc",
            header(tar::EntryType::Regular, 0o644, 4),
            b"evil",
        )
        .hardlink("usr/bin/via", "usr/.wh.x/tool");
    assert_malformed(
        top,
        &[
            f("malformed-layer", Some("/.wh..."), "deny"),
            f("malformed-layer", Some("/usr/bin/via"), "deny"),
            f("malformed-layer", Some("/usr/lib/.wh.."), "deny"),
            f("malformed-layer", Some("/usr/share/.wh..wh..opq"), "deny"),
        ],
        &[
            ".wh.../etc/conf",
            "usr/bin/via",
            "usr/lib/.wh../libx.so",
            "usr/share/.wh..wh..opq/doc",
        ],
    );
}

#[test]
fn a_hardlink_outside_the_image_or_to_nothing_is_malformed_layer() {
    let top = Layer::new()
        .finalized()
        .hardlink("usr/bin/escape", "../../../../etc/shadow")
        .hardlink("usr/bin/escape-abs", "/../etc/conf")
        .hardlink("usr/bin/ghost", "usr/bin/nothing")
        .hardlink("usr/bin/dir", "usr/share")
        .hardlink("usr/bin/hidden", "usr/lib/.wh.libx.so")
        // A good link after them still counts.
        .hardlink("usr/lib/libx.so", "usr/bin/tool");
    let out = assert_malformed(
        top,
        &[
            f("base-modified", Some("/usr/lib/libx.so"), "deny"),
            f("malformed-layer", Some("/usr/bin/dir"), "deny"),
            f("malformed-layer", Some("/usr/bin/escape"), "deny"),
            f("malformed-layer", Some("/usr/bin/escape-abs"), "deny"),
            f("malformed-layer", Some("/usr/bin/ghost"), "deny"),
            f("malformed-layer", Some("/usr/bin/hidden"), "deny"),
            unlabeled(),
        ],
        &[
            "usr/bin/dir",
            "usr/bin/escape",
            "usr/bin/escape-abs",
            "usr/bin/ghost",
            "usr/bin/hidden",
        ],
    );
    let text = out.stdout;
    assert!(text.contains("a hardlink to ../../../../etc/shadow, which climbs"));
    assert!(text.contains("a hardlink to usr/bin/nothing, which is no file"));
}

#[test]
fn a_malformed_layer_is_not_overridable() {
    let top = empty_member(Layer::new().finalized(), "usr/.wh..");
    let (_t, dir, _) = malformed_fixture(top);
    assert_findings(
        &lint_fixture(&dir, &["--allow-overrides"]),
        1,
        &[f("malformed-layer", Some("/usr"), "deny")],
    );
}

#[test]
fn duplicate_members_in_one_layer_the_last_one_wins() {
    // As unpacking does: each member overwrites what an earlier one wrote.
    let top = Layer::new()
        .finalized()
        // Changed, then put back: no change.
        .file("usr/bin/tool", "tool v2\n", 0o755)
        .file("usr/bin/tool", "tool v1\n", 0o755)
        // The base content first, then changed: a change.
        .file("usr/lib/libx.so", "libx\n", 0o644)
        .file("usr/lib/libx.so", "evil\n", 0o644)
        // A new directory, then a file in its place: one added file.
        .dir("usr/share/dup", 0o755)
        .file("usr/share/dup/inner", "x", 0o644)
        .file("usr/share/dup", "file now\n", 0o644);
    let (_t, dir) = fixture(top, Z::Plain, &[]);
    let out = lint_fixture(&dir, &[]);
    assert_findings(
        &out,
        1,
        &[
            f("base-modified", Some("/usr/lib/libx.so"), "deny"),
            unlabeled(),
        ],
    );
    let msg = first_message(&out);
    // The later member's content, not the earlier one's.
    assert!(
        msg.contains(&format!("→ {}", &sha(b"evil\n")[..12])),
        "{msg}"
    );
}

#[test]
fn a_write_through_a_symlink_member_never_reaches_its_target() {
    // A symlink to a base directory, then a file "under" it, in the same
    // layer; and a file under the base's own /lib -> usr/lib. Neither may
    // change /usr/lib/libx.so: the file's directory replaces the symlink.
    let top = Layer::new()
        .finalized()
        .symlink("usr/escape", "/usr/lib")
        .file("usr/escape/libx.so", "evil\n", 0o644)
        .symlink("usr/up", "../../../../usr/lib")
        .file("usr/up/libx.so", "evil\n", 0o644)
        .file("lib/libx.so", "evil\n", 0o644);
    let (_t, dir) = fixture(top, Z::Plain, &[]);
    assert_findings(
        &lint_fixture(&dir, &[]),
        1,
        &[f("base-modified", Some("/lib"), "deny"), unlabeled()],
    );
}

// ---------------------------------------------------------------------------
// Broken and hostile images: exit 2, naming the file

#[test]
fn a_layer_whose_digest_does_not_match_the_manifest_is_an_error() {
    let (_t, dir) = fixture(late_change(), Z::Plain, &[]);
    // Corrupt the derived image's top layer in place: same size, one byte
    // of file content changed, still a valid tar.
    let top = late_change().tar();
    let blob_path = dir.join("blobs/sha256").join(sha(&top));
    let mut bytes = fs::read(&blob_path).unwrap();
    let at = bytes.windows(7).position(|w| w == b"tool v2").unwrap();
    bytes[at + 5] = b'3';
    fs::write(&blob_path, bytes).unwrap();
    let out = lint_fixture(&dir, &[]);
    out.expect_code(2);
    assert!(out.stderr.contains("digest mismatch"), "{out}");
    assert!(out.stderr.contains(&sha(&top)), "names the blob: {out}");
}

#[test]
fn a_diff_id_that_does_not_match_the_layer_is_an_error() {
    let t = scratch();
    let dir = t.path().join("oci");
    let base = base_layer().tar();
    let top = late_change().tar();
    // The config claims another uncompressed layer than the blob holds.
    add_oci_image(&dir, "derived", &[&base, &top], Z::GzipMembers, &[]);
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap()[7..].to_string();
    let manifest: Value =
        serde_json::from_slice(&fs::read(dir.join("blobs/sha256").join(&manifest_digest)).unwrap())
            .unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap()[7..].to_string();
    let mut config: Value =
        serde_json::from_slice(&fs::read(dir.join("blobs/sha256").join(&config_digest)).unwrap())
            .unwrap();
    config["rootfs"]["diff_ids"][1] = json!(format!("sha256:{}", sha(b"other")));
    // Rewrite config, manifest and index so that only the diff_id is wrong.
    let config_desc = blob(
        &dir,
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&config).unwrap(),
    );
    let mut manifest = manifest;
    manifest["config"] = config_desc;
    let mut desc = blob(
        &dir,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    desc["annotations"] = json!({"org.opencontainers.image.ref.name": "derived"});
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [desc]})).unwrap(),
    )
    .unwrap();

    // Any valid base: the layers are checked while they are read.
    let empty = t.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let base_json = t.path().join("base.json");
    run(&[
        "snapshot",
        "--root",
        empty.to_str().unwrap(),
        "--output",
        base_json.to_str().unwrap(),
    ])
    .expect_code(0);
    let image = format!("oci:{}:derived", dir.display());
    let out = lint(&["--image", &image, "--base", base_json.to_str().unwrap()]);
    out.expect_code(2);
    assert!(out.stderr.contains("diff_id mismatch"), "{out}");
    assert!(out.stderr.contains("layer 2"), "{out}");
}

#[test]
fn an_image_not_built_from_the_base_is_an_error() {
    let t = scratch();
    let dir = t.path().join("oci");
    let base = base_layer().tar();
    let other = base_layer().file("usr/bin/rebuilt", "x", 0o755).tar();
    let top = Layer::new().finalized().tar();
    add_oci_image(&dir, "base", &[&base], Z::Plain, &[]);
    add_oci_image(&dir, "derived", &[&other, &top], Z::Plain, &[]);
    let out = lint_fixture(&dir, &[]);
    out.expect_code(2);
    assert!(out.stderr.contains("was not built FROM"), "{out}");
    assert!(out.stderr.contains("layer 1 differs"), "{out}");
}

#[test]
fn bad_references_missing_files_and_missing_bases_are_errors() {
    let (_t, dir) = fixture(Layer::new().finalized(), Z::Plain, &[]);
    let image = format!("oci:{}:derived", dir.display());
    for (args, hint) in [
        (
            vec!["--image", "docker:x"],
            "docker://HOST/NAME".to_string(),
        ),
        (
            vec!["--image", "oci:/nonexistent/layout"],
            "/nonexistent/layout".to_string(),
        ),
        (
            vec!["--image", "oci-archive:/nonexistent/x.tar"],
            "/nonexistent/x.tar".to_string(),
        ),
        (
            vec!["--image", &format!("oci:{}:nosuchtag", dir.display())],
            "no image tagged \"nosuchtag\"".to_string(),
        ),
        (
            vec!["--image", &image, "--base", "/nonexistent/base.json"],
            "/nonexistent/base.json".to_string(),
        ),
    ] {
        let out = lint(&args);
        out.expect_code(2);
        assert!(out.stderr.contains(&hint), "{args:?}: {out}");
    }
    // No --base, and the image records no base reference: not an error,
    // structural checks only, and the report says add-only was not enforced.
    let out = lint(&["--image", &image]);
    let json = out.json();
    assert_eq!(json["base"], "none (structural checks only)", "{out}");
    let no_base: Vec<_> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "no-base-reference")
        .collect();
    assert_eq!(no_base.len(), 1, "{out}");
    assert_eq!(no_base[0]["level"], "warn");
    assert!(
        no_base[0]["message"]
            .as_str()
            .unwrap()
            .contains("--base-image REF"),
        "{out}"
    );
    // Usage errors are exit 2 too.
    run(&["lint"]).expect_code(2);
    run(&["lint", "--image", &image, "--rootfs", "/"]).expect_code(2);
}

// ---------------------------------------------------------------------------
// Transports

/// Tar up a directory's files (an image layout) with names relative to it.
fn tar_dir(dir: &Path, out: &Path, extra: &[(&str, &[u8])]) {
    let mut b = tar::Builder::new(Vec::new());
    b.append_dir_all(".", dir).unwrap();
    for (name, data) in extra {
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        b.append_data(&mut h, name, *data).unwrap();
    }
    fs::write(out, b.into_inner().unwrap()).unwrap();
}

#[test]
fn oci_archive_and_both_docker_archive_forms_give_the_same_findings() {
    let top = Layer::new().finalized().marker("usr/lib/.wh.libx.so");
    let t = scratch();
    let base = base_layer().tar();
    let top = top.tar();
    let want = [
        f("base-removed", Some("/usr/lib/libx.so"), "deny"),
        unlabeled(),
    ];
    let base_ref = {
        let dir = t.path().join("base");
        add_oci_image(&dir, "base", &[&base], Z::Plain, &[]);
        format!("oci:{}:base", dir.display())
    };

    // oci-archive: the layout, tarred (what skopeo and buildah write).
    let layout = t.path().join("layout");
    add_oci_image(&layout, "derived", &[&base, &top], Z::GzipMembers, &[]);
    let archive = t.path().join("derived.oci.tar");
    tar_dir(&layout, &archive, &[]);
    for image in [
        format!("oci-archive:{}", archive.display()),
        format!("oci-archive:{}:derived", archive.display()),
    ] {
        assert_findings(
            &lint(&["--image", &image, "--base-image", &base_ref]),
            1,
            &want,
        );
    }

    // docker-archive, legacy: ID/layer.tar, HEX.json, manifest.json; a
    // repeated layer is a symlink to the first copy, as docker save does.
    let config = config_json(&[&base, &top], &[]);
    let config_name = format!("{}.json", sha(&config));
    let manifest = json!([{
        "Config": config_name,
        "RepoTags": ["example.com/derived:1"],
        "Layers": ["aaa/layer.tar", "bbb/layer.tar"],
    }]);
    let legacy = t.path().join("legacy.docker.tar");
    {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in [
            ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
            (config_name.as_str(), config.clone()),
            ("aaa/layer.tar", base.clone()),
            ("ccc/layer.tar", top.clone()),
        ] {
            let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
            b.append_data(&mut h, name, &data[..]).unwrap();
        }
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut h, "bbb/layer.tar", "../ccc/layer.tar")
            .unwrap();
        fs::write(&legacy, b.into_inner().unwrap()).unwrap();
    }
    for image in [
        format!("docker-archive:{}", legacy.display()),
        format!("docker-archive:{}:example.com/derived:1", legacy.display()),
    ] {
        assert_findings(
            &lint(&["--image", &image, "--base-image", &base_ref]),
            1,
            &want,
        );
    }

    // docker-archive, OCI-style (Docker 25+): an OCI layout plus a
    // manifest.json naming blobs/sha256/… .
    let layout2 = t.path().join("layout2");
    add_oci_image(&layout2, "derived", &[&base, &top], Z::Plain, &[]);
    let config_desc = blob(
        &layout2,
        "application/vnd.oci.image.config.v1+json",
        &config,
    );
    let manifest = json!([{
        "Config": format!("blobs/sha256/{}", &config_desc["digest"].as_str().unwrap()[7..]),
        "RepoTags": ["example.com/derived:1"],
        "Layers": [format!("blobs/sha256/{}", sha(&base)), format!("blobs/sha256/{}", sha(&top))],
    }]);
    let modern = t.path().join("modern.docker.tar");
    tar_dir(
        &layout2,
        &modern,
        &[("manifest.json", &serde_json::to_vec(&manifest).unwrap())],
    );
    let image = format!("docker-archive:{}", modern.display());
    assert_findings(
        &lint(&["--image", &image, "--base-image", &base_ref]),
        1,
        &want,
    );

    // A compressed archive cannot be read in place: a clear error.
    let gz = t.path().join("derived.oci.tar.gz");
    fs::write(&gz, compress(&fs::read(&archive).unwrap(), Z::GzipMembers)).unwrap();
    let out = lint(&[
        "--image",
        &format!("oci-archive:{}", gz.display()),
        "--base-image",
        &base_ref,
    ]);
    out.expect_code(2);
    assert!(out.stderr.contains("decompress it first"), "{out}");
}

// ---------------------------------------------------------------------------
// Labels and the finalize record

const LABEL: (&str, &str) = ("ostree.override", "true");

#[test]
fn an_override_with_the_label_passes_with_a_warning() {
    let top = Layer::new().finalized().marker("usr/lib/.wh.libx.so");
    let (_t, dir) = fixture(top, Z::Plain, &[LABEL]);
    let out = lint_fixture(&dir, &[]);
    assert_findings(
        &out,
        0,
        &[f("base-removed", Some("/usr/lib/libx.so"), "warn")],
    );
    assert_eq!(
        out.json()["findings"][0]["allowed_by"],
        "LABEL ostree.override=true"
    );
}

#[test]
fn an_override_without_the_label_is_denied_even_with_allow_overrides() {
    let top = Layer::new().finalized().marker("usr/lib/.wh.libx.so");
    let (_t, dir) = fixture(top, Z::Plain, &[("ostree.override", "yes")]);
    let out = lint_fixture(&dir, &["--allow-overrides"]);
    assert_findings(
        &out,
        1,
        &[
            unlabeled(),
            f("base-removed", Some("/usr/lib/libx.so"), "warn"),
        ],
    );
    let msg = first_message(&out);
    assert!(msg.contains("base-removed /usr/lib/libx.so"), "{msg}");
    assert!(msg.contains("only \"true\" counts"), "{msg}");
}

#[test]
fn the_label_without_overrides_is_a_warning() {
    let (_t, dir) = fixture(Layer::new().finalized(), Z::Plain, &[LABEL]);
    assert_findings(
        &lint_fixture(&dir, &[]),
        0,
        &[f("override-label-unused", None, "warn")],
    );
}

#[test]
fn an_image_never_finalized_is_a_warning() {
    let (_t, dir) = fixture(Layer::new().file("usr/bin/new", "x", 0o755), Z::Plain, &[]);
    assert_findings(
        &lint_fixture(&dir, &[]),
        0,
        &[f("not-finalized", None, "warn")],
    );
    // A later layer that removes the record un-finalizes the image.
    let top = Layer::new().finalized();
    let t = scratch();
    let dir = t.path().join("oci");
    let base = base_layer().tar();
    let (top, gone) = (
        top.tar(),
        Layer::new()
            .marker("usr/lib/ostree-finalize/.wh.record.json")
            .tar(),
    );
    add_oci_image(&dir, "base", &[&base], Z::Plain, &[]);
    add_oci_image(&dir, "derived", &[&base, &top, &gone], Z::Plain, &[]);
    assert_findings(
        &lint_fixture(&dir, &[]),
        0,
        &[f("not-finalized", None, "warn")],
    );
}

// ---------------------------------------------------------------------------
// Same findings as finalize, on real trees with a real rpmdb

/// `cp -a SRC/. DST`.
fn copy_tree(src: &Path, dst: &Path) {
    let out = Command::new("cp")
        .arg("-a")
        .arg(src.join("."))
        .arg(dst)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a Containerfile might do to a base: a package and files added, a
/// base binary overwritten, a base file removed, /var content.
fn build_changes(tree: &Path) {
    rpm_in(
        tree,
        &[
            "-i",
            "--nodeps",
            "--noscripts",
            rpm_path("extra-tool-1.0-1").to_str().unwrap(),
        ],
    );
    fs::write(tree.join("usr/bin/base-tool"), "#!/bin/sh\necho replaced\n").unwrap();
    fs::remove_file(tree.join("usr/lib/os-release")).unwrap();
    fs::write(tree.join("etc/agent.conf"), "level=debug\n").unwrap();
    let passwd = fs::read_to_string(tree.join("etc/passwd")).unwrap();
    let passwd = passwd + "agent:x:990:990:Agent:/var/lib/agent:/usr/sbin/nologin\n";
    fs::write(tree.join("etc/passwd"), passwd).unwrap();
    let group = fs::read_to_string(tree.join("etc/group")).unwrap() + "agent:x:990:\n";
    fs::write(tree.join("etc/group"), group).unwrap();
    fs::create_dir_all(tree.join("usr/lib/agent")).unwrap();
    fs::write(tree.join("usr/lib/agent/agent.bin"), b"\x7fELF").unwrap();
    fs::set_permissions(
        tree.join("usr/lib/agent/agent.bin"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
}

/// The findings, whole, except those of the checks only lint makes.
#[test]
fn the_same_change_gives_the_same_findings_as_finalize() {
    let old = base_tree();
    run(&["snapshot", "--root", old.root().to_str().unwrap()]).expect_code(0);
    let t = scratch();
    let new = t.path().join("new");
    fs::create_dir(&new).unwrap();
    copy_tree(old.root(), &new);
    build_changes(&new);

    let fin = run(&[
        "finalize",
        "--dry-run",
        "--root",
        new.to_str().unwrap(),
        "--format",
        "json",
    ]);
    fin.expect_code(1);
    let fin = fin.json();

    let dir = t.path().join("oci");
    let base = pack_tree(old.root());
    let top = pack_diff(old.root(), &new);
    add_oci_image(&dir, "base", &[&base], Z::Zstd, &[]);
    add_oci_image(&dir, "derived", &[&base, &top], Z::GzipMembers, &[]);
    let image = format!("oci:{}:derived", dir.display());
    let base_image = format!("oci:{}:base", dir.display());

    // The base reference recorded in the image, and the base image itself.
    for extra in [vec![], vec!["--base-image", base_image.as_str()]] {
        let mut args = vec!["--image", image.as_str()];
        args.extend(extra.iter());
        let out = lint(&args);
        out.expect_code(1);
        let json = out.json();
        assert_eq!(tree_findings(&json), tree_findings(&fin), "{args:?}\n{out}");
        assert_eq!(json["packages"], fin["packages"], "{args:?}");
        assert_eq!(json["plan"], fin["plan"], "{args:?}");
        assert_eq!(
            json["packages"]["added"],
            json!(["extra-tool-1.0-1.noarch"])
        );
        for check in ["override-unlabeled", "not-finalized"] {
            assert!(
                json["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f["check"] == check),
                "{check}: {out}"
            );
        }
    }
    for check in [
        "base-modified",
        "base-removed",
        "users-added",
        "var-content",
    ] {
        assert!(
            tree_findings(&fin).iter().any(|f| f["check"] == check),
            "the change makes a {check} finding: {fin:#}"
        );
    }

    // lint --rootfs on the directory judges it the same way.
    let out = lint(&["--rootfs", new.to_str().unwrap()]);
    out.expect_code(1);
    assert_eq!(tree_findings(&out.json()), tree_findings(&fin));
    assert!(found(&out).contains(&f("not-finalized", None, "warn")));
    assert!(
        !found(&out).contains(&unlabeled()),
        "a rootfs has no labels"
    );
}

#[test]
fn an_rpmdb_reached_through_a_symlinked_candidate_is_read() {
    // /usr/lib/sysimage/rpm -> ../../../var/lib/rpm: the database lives in
    // another candidate directory.
    let old = base_tree();
    let sysimage = old.path("/usr/lib/sysimage/rpm");
    let var = old.path("/var/lib/rpm");
    fs::rename(&sysimage, &var).unwrap();
    std::os::unix::fs::symlink("../../../var/lib/rpm", &sysimage).unwrap();
    let t = scratch();
    let new = t.path().join("new");
    fs::create_dir(&new).unwrap();
    copy_tree(old.root(), &new);
    Command::new("rpm")
        .args([
            "--root",
            new.to_str().unwrap(),
            "--dbpath",
            "/var/lib/rpm",
            "-i",
            "--nodeps",
            "--noscripts",
        ])
        .args(
            if String::from_utf8_lossy(&Command::new("rpm").arg("--help").output().unwrap().stdout)
                .contains("--force-debian")
            {
                vec!["--force-debian"]
            } else {
                vec![]
            },
        )
        .arg(rpm_path("extra-tool-1.0-1"))
        .status()
        .unwrap()
        .success()
        .then_some(())
        .expect("rpm -i");
    let dir = t.path().join("oci");
    let base = pack_tree(old.root());
    let top = pack_diff(old.root(), &new);
    add_oci_image(&dir, "base", &[&base], Z::Plain, &[]);
    add_oci_image(&dir, "derived", &[&base, &top], Z::Plain, &[]);
    let out = lint_fixture(&dir, &[]);
    out.expect_code(0);
    let json = out.json();
    assert_eq!(
        json["packages"]["added"],
        json!(["extra-tool-1.0-1.noarch"]),
        "{out}"
    );
    assert!(
        json["packages"]["removed"].as_array().unwrap().is_empty(),
        "{out}"
    );
}

#[test]
fn skip_policy_and_fatal_warnings_apply_but_the_images_own_policy_does_not() {
    // The image ships a policy that would silence its override: lint, the
    // check a build cannot rewrite, ignores it.
    let top = Layer::new()
        .dir("etc/ostree-finalize", 0o755)
        .file(
            "etc/ostree-finalize/policy.yaml",
            "checks:\n  base-removed: off\n",
            0o644,
        )
        .marker("usr/lib/.wh.libx.so");
    let (t, dir) = fixture(top, Z::Plain, &[]);
    let removed = f("base-removed", Some("/usr/lib/libx.so"), "deny");
    let not_finalized = f("not-finalized", None, "warn");
    assert_findings(
        &lint_fixture(&dir, &[]),
        1,
        &[removed.clone(), unlabeled(), not_finalized.clone()],
    );
    assert_findings(
        &lint_fixture(
            &dir,
            &["--skip", "not-finalized", "--skip", "override-unlabeled"],
        ),
        1,
        std::slice::from_ref(&removed),
    );
    // The platform team's policy is given on the command line.
    let policy = t.path().join("policy.yaml");
    fs::write(
        &policy,
        "checks:\n  override-unlabeled: warn\n  base-removed: warn\n",
    )
    .unwrap();
    let policy = policy.to_str().unwrap();
    assert_findings(
        &lint_fixture(&dir, &["--policy", policy]),
        0,
        &[
            f("base-removed", Some("/usr/lib/libx.so"), "warn"),
            f("not-finalized", None, "warn"),
            f("override-unlabeled", None, "warn"),
        ],
    );
    lint_fixture(&dir, &["--policy", policy, "--fatal-warnings"]).expect_code(1);
}

#[test]
fn a_huge_pax_header_is_refused_before_it_is_read() {
    // 2 MiB of PAX records: the tar crate would read them whole.
    let records = format!("2097164 comment={}\n", "x".repeat(2 * 1024 * 1024 - 1));
    let top = Layer::new()
        .raw(
            b"PaxHeaders/x",
            header(tar::EntryType::XHeader, 0o644, records.len() as u64),
            records.as_bytes(),
        )
        .file("usr/bin/new", "x", 0o755);
    let (_t, dir) = fixture(top, Z::Zstd, &[]);
    let out = lint_fixture(&dir, &[]);
    out.expect_code(2);
    assert!(out.stderr.contains("PAX header of"), "{out}");
    assert!(out.stderr.contains("layer 2"), "{out}");
}

#[test]
fn a_root_directory_no_layer_sets_is_not_a_change() {
    // The base was snapshotted where / is 0555 (as overlayfs storage makes
    // it); the image's layers never set /, so it is implied 0755. The OCI
    // spec leaves the root's attributes open: no finding.
    let t = scratch();
    let tree = t.path().join("tree");
    fs::create_dir_all(tree.join("usr/bin")).unwrap();
    fs::write(tree.join("usr/bin/tool"), "tool v1\n").unwrap();
    fs::set_permissions(tree.join("usr/bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&tree, fs::Permissions::from_mode(0o555)).unwrap();
    let base_json = t.path().join("base.json");
    run(&[
        "snapshot",
        "--root",
        tree.to_str().unwrap(),
        "--output",
        base_json.to_str().unwrap(),
    ])
    .expect_code(0);
    let layer = Layer::new()
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file("usr/bin/tool", "tool v1\n", 0o755)
        .finalized()
        .tar();
    let dir = t.path().join("oci");
    add_oci_image(&dir, "unset", &[&layer], Z::Plain, &[]);
    let base = base_json.to_str().unwrap();
    let image = format!("oci:{}:unset", dir.display());
    assert_findings(&lint(&["--image", &image, "--base", base]), 0, &[]);
}

#[test]
fn base_config_files_hardlinked_to_their_ostree_objects_keep_their_text() {
    // ostree-ext's export: each content object, then the checkout path
    // that first uses it as a hardlink to it. The base's /etc/passwd is
    // such a link; its users are the base's, not added by the derived.
    let passwd = "root:x:0:0:root:/root:/bin/sh\nbin:x:1:1:bin:/bin:/sbin/nologin\n";
    let group = "root:x:0:\nwheel:x:10:\n";
    let obj = |n: u8| {
        format!(
            "sysroot/ostree/repo/objects/{n:02x}/{}.file",
            "a".repeat(62)
        )
    };
    let mut layer = base_layer()
        .dir("sysroot", 0o755)
        .dir("sysroot/ostree", 0o755)
        .dir("sysroot/ostree/repo", 0o755)
        .dir("sysroot/ostree/repo/objects", 0o755);
    for (n, (path, text)) in [(1u8, ("etc/passwd", passwd)), (2, ("etc/group", group))] {
        layer = layer
            .dir(&format!("sysroot/ostree/repo/objects/{n:02x}"), 0o755)
            .file(&obj(n), text, 0o644)
            .hardlink(path, &obj(n));
    }
    let base = layer.tar();
    let top = Layer::new()
        .finalized()
        .file(
            "etc/passwd",
            format!("{passwd}app:x:1000:1000::/var/home/app:/bin/sh\n"),
            0o644,
        )
        .file("etc/group", format!("{group}app:x:1000:\n"), 0o644)
        .tar();
    let t = scratch();
    let dir = t.path().join("oci");
    add_oci_image(&dir, "base", &[&base], Z::Plain, &[]);
    add_oci_image(&dir, "derived", &[&base, &top], Z::Plain, &[]);
    let out = lint_fixture(&dir, &[]);
    out.expect_code(0);
    let json = out.json();
    assert_eq!(
        json["plan"]["users_added"],
        serde_json::json!(["group app", "user app"]),
        "{json:#}"
    );
    // The /etc diff has the base's text to compare with.
    let f = common::finding(&json, "etc-modified", "/etc/passwd");
    assert!(
        f["detail"].as_str().unwrap_or("").contains("+app:x:1000"),
        "{f}"
    );
}
