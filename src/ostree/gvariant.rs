//! The few GVariant shapes ostree stores, decoded and encoded by hand.
//!
//! GVariant's serialization (the "GVariant Serialisation" spec in GLib) lays
//! out a tuple's members one after another, each aligned to its type's
//! alignment; the end of every variable-size member except the last is
//! written as a *framing offset* at the end of the container, last member
//! first. An array of variable-size elements ends with one framing offset
//! per element. Offsets are 1, 2, 4 or 8 bytes wide, chosen by the size of
//! the whole container. Fixed-size integers are in the byte order of the
//! writer; ostree stores every number big-endian itself.
//!
//! Decoding is strict and bounded: every offset is checked against its
//! container before any slice is taken, the number of array elements can
//! never exceed the container's length, and nothing is allocated from a
//! count read out of the input. Input that GLib would only accept as a
//! "non-normal" form (offsets out of order, bad padding) is an error here.

use anyhow::{Result, bail, ensure};

/// The width of framing offsets in a container of `len` bytes.
fn offset_size(len: usize) -> usize {
    match len {
        0 => 0,
        1..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xffff_ffff => 4,
        _ => 8,
    }
}

/// Read the little-endian framing offset of `size` bytes at `at`.
fn read_offset(data: &[u8], at: usize, size: usize) -> Result<usize> {
    let end = at.checked_add(size);
    let Some(bytes) = end.and_then(|end| data.get(at..end)) else {
        bail!("framing offset at {at} runs past the end");
    };
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate() {
        value |= u64::from(*b) << (8 * i);
    }
    usize::try_from(value).map_err(|_| anyhow::anyhow!("framing offset {value} too large"))
}

/// Round `at` up to a multiple of `align` (a power of two).
fn align_up(at: usize, align: usize) -> Result<usize> {
    at.checked_add(align - 1)
        .map(|n| n & !(align - 1))
        .ok_or_else(|| anyhow::anyhow!("offset overflow"))
}

/// How a tuple member or array element is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A fixed-size value (`y`, `u`, `t`, or a tuple of them) of this size
    /// and alignment.
    Fixed {
        /// Size in bytes.
        size: usize,
        /// Alignment in bytes (1, 2, 4 or 8).
        align: usize,
    },
    /// A variable-size value (`s`, `ay`, arrays, tuples holding one) with
    /// this alignment.
    Variable {
        /// Alignment in bytes (1, 2, 4 or 8).
        align: usize,
    },
}

impl Layout {
    /// `y`.
    pub const BYTE: Layout = Layout::Fixed { size: 1, align: 1 };
    /// `u`.
    pub const U32: Layout = Layout::Fixed { size: 4, align: 4 };
    /// `t`.
    pub const U64: Layout = Layout::Fixed { size: 8, align: 8 };
    /// `s`, `ay`, `a(ayay)`, `a(say)`, `a(sayay)`: variable, byte-aligned.
    pub const BYTES: Layout = Layout::Variable { align: 1 };
    /// `a{sv}` (the variant inside makes it 8-aligned).
    pub const DICT_SV: Layout = Layout::Variable { align: 8 };

    fn align(self) -> usize {
        match self {
            Layout::Fixed { align, .. } | Layout::Variable { align } => align,
        }
    }
}

/// Split a tuple into its members' bytes.
pub fn tuple<'a>(data: &'a [u8], members: &[Layout]) -> Result<Vec<&'a [u8]>> {
    let osz = offset_size(data.len());
    let mut out = Vec::with_capacity(members.len());
    // Framing offsets are read from the end, first variable member last.
    let mut frame_end = data.len();
    let mut pos = 0usize;
    for (i, member) in members.iter().enumerate() {
        let start = align_up(pos, member.align())?;
        let end = match *member {
            Layout::Fixed { size, .. } => start.saturating_add(size),
            Layout::Variable { .. } if i + 1 == members.len() => frame_end,
            Layout::Variable { .. } => {
                frame_end = frame_end
                    .checked_sub(osz)
                    .ok_or_else(|| anyhow::anyhow!("tuple too short for its framing offsets"))?;
                read_offset(data, frame_end, osz)?
            }
        };
        ensure!(
            start <= end && end <= frame_end,
            "tuple member {i} spans {start}..{end}, outside the {frame_end} bytes available"
        );
        out.push(&data[start..end]);
        pos = end;
    }
    if members
        .last()
        .is_some_and(|m| matches!(m, Layout::Fixed { .. }))
    {
        // A tuple ending in a fixed member has no trailing bytes other than
        // its framing offsets (and the padding up to its own alignment,
        // which none of ostree's shapes need).
        ensure!(
            pos == frame_end,
            "{} unexpected bytes after the tuple",
            frame_end - pos
        );
    }
    Ok(out)
}

/// Split an array of variable-size elements into the elements' bytes.
pub fn array(data: &[u8], elem: Layout) -> Result<Vec<&[u8]>> {
    if let Layout::Fixed { size, .. } = elem {
        ensure!(
            size > 0 && data.len().is_multiple_of(size),
            "array of {}-byte elements has {} bytes",
            size,
            data.len()
        );
        return Ok(data.chunks(size).collect());
    }
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let osz = offset_size(data.len());
    let table = read_offset(data, data.len() - osz, osz)?;
    // The offset just read is the table's last entry, so the table holds
    // at least it: an end at `data.len()` would make the array empty while
    // its bytes are not (GLib's non-normal form, read as no elements).
    ensure!(
        table < data.len() && (data.len() - table).is_multiple_of(osz),
        "array framing table starts at {table}, inside a {}-byte array",
        data.len()
    );
    let count = (data.len() - table) / osz;
    let mut out = Vec::with_capacity(count);
    let mut pos = 0usize;
    for i in 0..count {
        let end = read_offset(data, table + i * osz, osz)?;
        let start = align_up(pos, elem.align())?;
        ensure!(
            start <= end && end <= table,
            "array element {i} spans {start}..{end}, outside {table}"
        );
        out.push(&data[start..end]);
        pos = end;
    }
    Ok(out)
}

/// A `v`: the value's bytes and its type string (what follows the last
/// NUL).
pub fn variant(data: &[u8]) -> Result<(&[u8], &[u8])> {
    let nul = data
        .iter()
        .rposition(|&b| b == 0)
        .ok_or_else(|| anyhow::anyhow!("variant without a type string"))?;
    Ok((&data[..nul], &data[nul + 1..]))
}

/// Look `key` up in an `a{sv}`: the value's bytes and type string.
pub fn lookup_sv<'a>(dict: &'a [u8], key: &str) -> Result<Option<(&'a [u8], &'a [u8])>> {
    for item in array(dict, Layout::DICT_SV)? {
        let parts = tuple(item, &[Layout::BYTES, Layout::Variable { align: 8 }])?;
        if string(parts[0])? == key.as_bytes() {
            return variant(parts[1]).map(Some);
        }
    }
    Ok(None)
}

/// A big-endian `u` (ostree writes numbers big-endian).
pub fn u32_be(data: &[u8]) -> Result<u32> {
    let bytes: [u8; 4] = data
        .try_into()
        .map_err(|_| anyhow::anyhow!("expected 4 bytes, got {}", data.len()))?;
    Ok(u32::from_be_bytes(bytes))
}

/// A big-endian `t`.
pub fn u64_be(data: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = data
        .try_into()
        .map_err(|_| anyhow::anyhow!("expected 8 bytes, got {}", data.len()))?;
    Ok(u64::from_be_bytes(bytes))
}

/// An `s`: the bytes before the terminating NUL, which must be the only one.
pub fn string(data: &[u8]) -> Result<&[u8]> {
    match data.split_last() {
        Some((0, text)) if !text.contains(&0) => Ok(text),
        _ => bail!("string is not NUL-terminated or holds a NUL"),
    }
}

/// An `ay` used as a bytestring (xattr names): the bytes before the
/// trailing NUL, which must be the only one.
pub fn bytestring(data: &[u8]) -> Result<&[u8]> {
    string(data).map_err(|_| anyhow::anyhow!("bytestring is not NUL-terminated or holds a NUL"))
}

/// Decode an `a(ayay)` xattr list into (name, value) pairs, in stored order.
/// Names are bytestrings (stored with a trailing NUL, returned without).
pub fn xattrs(data: &[u8]) -> Result<Vec<(&[u8], &[u8])>> {
    let mut out = Vec::new();
    for (i, item) in array(data, Layout::BYTES)?.into_iter().enumerate() {
        let parts = tuple(item, &[Layout::BYTES, Layout::BYTES])?;
        let name = bytestring(parts[0]).map_err(|e| e.context(format!("xattr {i}")))?;
        out.push((name, parts[1]));
    }
    Ok(out)
}

/// Append framing offsets of the width a container of `body` bytes plus
/// `ends.len()` offsets needs (GLib's `gvs_calculate_total_size`).
fn push_offsets(out: &mut Vec<u8>, body_start: usize, ends: &[usize]) {
    let body = out.len() - body_start;
    let n = ends.len();
    let width = if body + n <= 0xff {
        1
    } else if body + 2 * n <= 0xffff {
        2
    } else if body + 4 * n <= 0xffff_ffff {
        4
    } else {
        8
    };
    for &end in ends {
        out.extend_from_slice(&(end as u64).to_le_bytes()[..width]);
    }
}

/// Encode an `a(ayay)` xattr list, names given without their NUL.
pub fn encode_xattrs(list: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ends = Vec::with_capacity(list.len());
    for (name, value) in list {
        let start = out.len();
        out.extend_from_slice(name);
        out.push(0);
        let name_end = out.len() - start;
        out.extend_from_slice(value);
        push_offsets(&mut out, start, &[name_end]);
        ends.push(out.len());
    }
    push_offsets(&mut out, 0, &ends);
    out
}

/// Encode ostree's file header `(uuuusa(ayay))`: uid, gid, mode and rdev
/// (big-endian), the symlink target (empty for regular files) and the
/// already encoded xattrs.
pub fn encode_file_header(uid: u32, gid: u32, mode: u32, target: &[u8], xattrs: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + target.len() + 1 + xattrs.len() + 4);
    for n in [uid, gid, mode, 0] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    out.extend_from_slice(target);
    out.push(0);
    let target_end = out.len();
    out.extend_from_slice(xattrs);
    push_offsets(&mut out, 0, &[target_end]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xattrs_round_trip() {
        let list: Vec<(&[u8], &[u8])> = vec![
            (b"security.capability", &[1, 0, 0, 2, 0, 0x20, 0, 0]),
            (b"user.foo", b"bar"),
        ];
        let bytes = encode_xattrs(&list);
        assert_eq!(xattrs(&bytes).unwrap(), list);
        assert!(xattrs(&[]).unwrap().is_empty());
    }

    #[test]
    fn an_empty_array_is_zero_bytes() {
        // One framing offset pointing at the very end would be a table of
        // no offsets, read from a byte that is not in it: the bytes before
        // it would be silently dropped.
        for bad in [&[1u8][..], &[0x61, 0x62, 3]] {
            assert!(array(bad, Layout::BYTES).is_err(), "{bad:?}");
            assert!(xattrs(bad).is_err(), "{bad:?}");
        }
        assert!(xattrs(&[]).unwrap().is_empty());
    }

    #[test]
    fn large_containers_use_wider_offsets() {
        let big = vec![7u8; 70_000];
        let list: Vec<(&[u8], &[u8])> = vec![(b"user.a", &big), (b"user.b", b"x")];
        let bytes = encode_xattrs(&list);
        assert_eq!(xattrs(&bytes).unwrap(), list);
        let header = encode_file_header(1, 2, 0o100644, b"", &bytes);
        let parts = tuple(
            &header,
            &[
                Layout::U32,
                Layout::U32,
                Layout::U32,
                Layout::U32,
                Layout::BYTES,
                Layout::BYTES,
            ],
        )
        .unwrap();
        assert_eq!(u32_be(parts[2]).unwrap(), 0o100644);
        assert_eq!(string(parts[4]).unwrap(), b"");
        assert_eq!(parts[5], &bytes[..]);
    }

    #[test]
    fn every_truncation_and_flip_is_an_error_or_a_value_never_a_panic() {
        let list: Vec<(&[u8], &[u8])> = vec![(b"user.x", b"1"), (b"user.yy", b"22")];
        let bytes = encode_file_header(0, 0, 0o120777, b"target", &encode_xattrs(&list));
        let layout = [
            Layout::U32,
            Layout::U32,
            Layout::U32,
            Layout::U32,
            Layout::BYTES,
            Layout::BYTES,
        ];
        for cut in 0..bytes.len() {
            let _ = tuple(&bytes[..cut], &layout).and_then(|p| xattrs(p[5]));
        }
        for at in 0..bytes.len() {
            for v in [0u8, 0xff, 0x80, 1] {
                let mut b = bytes.clone();
                b[at] = v;
                let _ = tuple(&b, &layout).and_then(|p| xattrs(p[5]));
            }
        }
    }
}
