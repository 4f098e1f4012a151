//! The `ostree_objects` target: one input, read as each kind of ostree
//! metadata object this tool parses.
//!
//! This file is shared: the fuzz crate has it as `ostree_objects`, and
//! `tests/fuzz_regressions.rs` includes it with `#[path]`. It uses only
//! `std` and `ostree_finalize`.
//!
//! Every input goes to [`objects::parse_commit`], [`objects::parse_dirtree`],
//! [`objects::parse_meta`] (dirmeta objects and bare-user's
//! `user.ostreemeta`) and [`objects::parse_xattrs`] (`.file-xattrs`
//! objects). Properties, besides "returns `Ok` or `Err`, no panic":
//!
//! - a dirtree's names are valid file names, sorted and unique, and no
//!   name is both a file and a directory;
//! - the decoder accepts only GVariant's normal form, so an xattr list it
//!   accepts is re-encoded ([`gvariant::encode_xattrs`]) to the very same
//!   bytes;
//! - the file header built from an accepted dirmeta (what content
//!   checksums cover) decodes back to the same uid, gid, mode and xattrs.

use ostree_finalize::ostree::gvariant::{self, Layout};
use ostree_finalize::ostree::objects::{self, FileHeader};

/// The target's check, for any input.
pub fn check(data: &[u8]) {
    let _ = objects::parse_commit(data);
    if let Ok(tree) = objects::parse_dirtree(data) {
        let names = tree.files.iter().map(|(n, _)| n);
        for name in names.chain(tree.dirs.iter().map(|(n, ..)| n)) {
            assert!(
                !name.is_empty()
                    && name.as_slice() != b"."
                    && name.as_slice() != b".."
                    && !name.contains(&b'/')
                    && !name.contains(&0),
                "dirtree name {name:?} accepted"
            );
        }
        assert!(tree.files.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(tree.dirs.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(
            !tree
                .dirs
                .iter()
                .any(|(d, ..)| tree.files.iter().any(|(f, _)| f == d)),
            "a name is both a file and a directory"
        );
    }
    if let Ok(meta) = objects::parse_meta(data) {
        let header = FileHeader::new(&meta, b"");
        let bytes = header.bytes();
        let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - 8, "length prefix of the file header");
        assert_eq!(&bytes[4..8], &[0; 4]);
        let parts = gvariant::tuple(
            &bytes[8..],
            &[
                Layout::U32,
                Layout::U32,
                Layout::U32,
                Layout::U32,
                Layout::BYTES,
                Layout::BYTES,
            ],
        )
        .expect("the file header we build decodes");
        assert_eq!(gvariant::u32_be(parts[0]).unwrap(), meta.uid);
        assert_eq!(gvariant::u32_be(parts[1]).unwrap(), meta.gid);
        assert_eq!(gvariant::u32_be(parts[2]).unwrap(), meta.mode);
        assert_eq!(gvariant::u32_be(parts[3]).unwrap(), 0);
        assert_eq!(gvariant::string(parts[4]).unwrap(), b"");
        assert_eq!(
            objects::parse_xattrs(parts[5]).expect("the xattrs we encode decode"),
            meta.xattrs
        );
    }
    if let Ok(list) = objects::parse_xattrs(data) {
        let pairs: Vec<(&[u8], &[u8])> = list
            .iter()
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
            .collect();
        let encoded = gvariant::encode_xattrs(&pairs);
        assert!(
            encoded == data,
            "xattrs {list:?} accepted from {data:?}, re-encoded as {encoded:?}"
        );
    }
}
