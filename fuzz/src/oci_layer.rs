//! The `oci_layer` target: image layers (tar, optionally compressed) read
//! and merged the way `lint` reads an image, over a fixed base layer.
//!
//! This file is shared: the fuzz crate has it as `oci_layer`, and
//! `tests/fuzz_regressions.rs` includes it with `#[path]`, so the fuzzer
//! and the regression test read inputs the same way and check the same
//! properties. It uses only `std`, `ostree_finalize` and the crates
//! `ostree_finalize` itself depends on (`flate2`, `tar`, `zstd`).
//!
//! The pipeline is the one `oci::Image::read` runs for each layer, from
//! the public pieces it is made of: [`LayerStream`] (compression detected
//! from the magic bytes, size cap), [`layer::apply`] (tar members into the
//! [`Merged`] tree: whiteouts, opaque markers, hardlinks, PAX headers,
//! names resolved against the root), then [`imagedb::read`] (the rpm
//! database found in the merged tree, through its symlinks). Only the
//! manifest's digest checks are left out: a fuzzer cannot forge sha256.
//!
//! Input: the first byte is a selector, the rest are layers separated by
//! [`NEXT_LAYER`]:
//!
//! - bits 0–1: `1` gzip-compresses each layer, `2` zstd-compresses it,
//!   `0` and `3` pass it as it is (the reader then detects gzip and zstd
//!   magic itself, so corrupt streams are reachable too);
//! - bit 2: decompress on a second thread (`pipeline`), as `lint` does;
//! - bit 3: leave out the base layer ([`base_layer`]), which otherwise
//!   comes first.
//!
//! Properties, besides "returns `Ok` or `Err`, no panic": every path of
//! the merged tree is absolute, clean (no empty, `.` or `..` component)
//! and decodes; the root is a directory and every other path's parent is
//! a directory in the tree; every path `Merged::resolve` returns for a
//! symlink in the tree is clean too.

use std::io::{Cursor, Read, Write};
use std::sync::OnceLock;

use ostree_finalize::manifest::Kind;
use ostree_finalize::oci::merge::Merged;
use ostree_finalize::oci::spool::Spool;
use ostree_finalize::oci::stream::LayerStream;
use ostree_finalize::oci::{imagedb, layer};
use ostree_finalize::path::decode;

/// Separates the layers of an input.
pub const NEXT_LAYER: &[u8] = b"=NEXT-LAYER=";

/// The decompressed-size cap per layer: small, so that a decompression
/// bomb is cut short instead of slowing the fuzzer down.
pub const MAX_LAYER_BYTES: u64 = 16 << 20;

/// The layers of an input, as they will be read.
#[derive(Debug)]
pub struct Input {
    /// The layer blobs, lowest first, compressed as the selector says.
    pub blobs: Vec<Vec<u8>>,
    /// Decompress on a second thread.
    pub pipeline: bool,
}

/// Split and compress an input.
pub fn decode_input(data: &[u8]) -> Option<Input> {
    let (&sel, rest) = data.split_first()?;
    let mut blobs = Vec::new();
    if sel & 8 == 0 {
        blobs.push(base_layer().to_vec());
    }
    for tar in split(rest) {
        blobs.push(match sel & 3 {
            1 => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(tar).expect("gzip into memory");
                e.finish().expect("gzip into memory")
            }
            2 => zstd::encode_all(tar, 1).expect("zstd into memory"),
            _ => tar.to_vec(),
        });
    }
    Some(Input {
        blobs,
        pipeline: sel & 4 != 0,
    })
}

/// `data` cut at each [`NEXT_LAYER`].
fn split(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let Some(at) = data.windows(NEXT_LAYER.len()).position(|w| w == NEXT_LAYER) {
        out.push(&data[..at]);
        data = &data[at + NEXT_LAYER.len()..];
    }
    out.push(data);
    out
}

/// A small base image in one layer, made once: the kinds of member real
/// base layers have, so that whiteouts, opaque markers, hardlinks and
/// members "under" symlinks in the fuzzed layers have something to act on.
pub fn base_layer() -> &'static [u8] {
    static BASE: OnceLock<Vec<u8>> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut b = tar::Builder::new(Vec::new());
        let header = |kind: tar::EntryType, mode: u32, size: u64| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_uid(0);
            h.set_gid(0);
            h.set_size(size);
            h.set_mtime(1_700_000_000);
            h
        };
        for dir in [
            "./",
            "etc/",
            "usr/",
            "usr/bin/",
            "usr/lib/",
            "usr/lib/sysimage/",
            "usr/lib/sysimage/rpm/",
            "usr/share/",
            "var/",
            "var/lib/",
        ] {
            let mut h = header(tar::EntryType::Directory, 0o755, 0);
            b.append_data(&mut h, dir, std::io::empty()).unwrap();
        }
        let files: [(&str, u32, &[u8]); 4] = [
            ("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/bash\n"),
            ("etc/os-release", 0o644, b"ID=fuzz\n"),
            ("usr/bin/tool", 0o755, b"#!/bin/sh\necho tool\n"),
            ("usr/lib/libx.so", 0o755, b"\x7fELF"),
        ];
        for (path, mode, data) in files {
            if path == "usr/bin/tool" {
                b.append_pax_extensions([("SCHILY.xattr.security.capability", &b"\x01\x00"[..])])
                    .unwrap();
            }
            let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
            b.append_data(&mut h, path, data).unwrap();
        }
        let links = [
            (tar::EntryType::Symlink, "bin", "usr/bin"),
            (tar::EntryType::Symlink, "lib", "usr/lib"),
            (
                tar::EntryType::Symlink,
                "usr/share/rpm",
                "../lib/sysimage/rpm",
            ),
            (tar::EntryType::Symlink, "var/lib/rpm", "/usr/share/rpm"),
            (tar::EntryType::Link, "usr/bin/tool-alias", "usr/bin/tool"),
        ];
        for (kind, path, target) in links {
            let mut h = header(kind, 0o777, 0);
            b.append_link(&mut h, path, target).unwrap();
        }
        b.into_inner().unwrap()
    })
}

/// The target's check, for any input.
pub fn check(data: &[u8]) {
    let Some(input) = decode_input(data) else {
        return;
    };
    let Some(merged) = merge(&input) else {
        return;
    };
    check_tree(&merged);
    let _ = imagedb::read(&merged);
}

/// Read the layers over an empty tree, as `oci::Image` does; `None` when a
/// layer is refused.
pub fn merge(input: &Input) -> Option<Merged> {
    let spool = Spool::new().expect("creating the spool");
    let mut merged = Merged::default();
    for blob in &input.blobs {
        let source: Box<dyn Read + Send> = Box::new(Cursor::new(blob.clone()));
        let mut stream = LayerStream::open(source, input.pipeline, MAX_LAYER_BYTES).ok()?;
        merged.begin_layer();
        let applied = layer::apply(&mut stream, &mut merged, &spool);
        // Always finish: it joins the decompressing thread.
        let finished = stream.finish();
        applied.ok()?;
        finished.ok()?;
    }
    Some(merged)
}

/// Whether `raw` is `/` or an absolute path with no empty, `.` or `..`
/// component.
pub fn is_clean(raw: &[u8]) -> bool {
    raw == b"/"
        || (raw.starts_with(b"/")
            && raw[1..]
                .split(|&b| b == b'/')
                .all(|c| !matches!(c, b"" | b"." | b"..")))
}

/// The tree's properties (see the module documentation).
pub fn check_tree(merged: &Merged) {
    let root = merged.get("/").expect("the merged tree has no root");
    assert_eq!(root.entry.kind, Kind::Dir, "the root is not a directory");
    for (path, node) in merged.iter() {
        let raw = decode(path).unwrap_or_else(|| panic!("{path:?} does not decode"));
        assert!(is_clean(&raw), "{path:?} is not a clean absolute path");
        if path != "/" {
            let (parent, _) = path.rsplit_once('/').expect("an absolute path");
            let parent = if parent.is_empty() { "/" } else { parent };
            match merged.get(parent) {
                Some(p) if p.entry.kind == Kind::Dir => {}
                Some(p) => panic!("the parent of {path:?} is a {}", p.entry.kind.name()),
                None => panic!("{path:?} is in the tree, its parent is not"),
            }
        }
        if node.entry.kind == Kind::Symlink {
            for probe in [path.clone(), format!("{path}/x")] {
                if let Ok(Some(resolved)) = merged.resolve(&probe) {
                    let raw = decode(&resolved)
                        .unwrap_or_else(|| panic!("{probe:?} resolves to {resolved:?}"));
                    assert!(
                        is_clean(&raw),
                        "{probe:?} resolves to {resolved:?}, not a clean absolute path"
                    );
                }
            }
        }
    }
}
