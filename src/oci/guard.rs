//! A guard between a layer stream and the `tar` crate: tar metadata
//! entries (PAX headers, GNU long names) may not exceed [`MAX_META`] bytes.
//!
//! The `tar` crate reads such an entry whole into memory before handing
//! out the member it describes, so a layer with a 50 GiB PAX header would
//! be 50 GiB of memory. The guard follows the tar block structure as the
//! bytes pass through (header, sparse extension blocks, data padded to 512
//! bytes, PAX `size` overrides) and fails the read when a metadata entry
//! announces more than the limit. Where it cannot parse a header it stops
//! guarding and lets the `tar` crate judge the stream, so it never rejects
//! what the crate accepts.

use std::io::{self, Read};

/// The largest PAX header or GNU long name accepted: 1 MiB. Real ones are
/// a few hundred bytes (a path, a link target, a few xattrs).
pub const MAX_META: u64 = 1 << 20;

const BLOCK: usize = 512;

/// Where in the tar structure the next byte is.
#[derive(Debug)]
enum State {
    /// Inside a header block.
    Header,
    /// Inside a GNU sparse extension block (another may follow).
    SparseExt { data: u64 },
    /// Inside an entry's data and padding.
    Data { left: u64 },
    /// A header could not be parsed: pass everything through.
    Off,
}

/// Wraps the decompressed tar stream.
pub struct MetaGuard<R> {
    inner: R,
    state: State,
    block: [u8; BLOCK],
    filled: usize,
    /// The data of the PAX header being read, for its `size` record.
    pax: Option<Vec<u8>>,
    /// The `size` a PAX header set for the next entry.
    next_size: Option<u64>,
}

impl<R: Read> MetaGuard<R> {
    /// Guard `inner`, which must be at the start of a tar stream.
    pub fn new(inner: R) -> MetaGuard<R> {
        MetaGuard {
            inner,
            state: State::Header,
            block: [0; BLOCK],
            filled: 0,
            pax: None,
            next_size: None,
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match self.state {
                State::Off => return Ok(()),
                State::Header | State::SparseExt { .. } => {
                    let n = (BLOCK - self.filled).min(bytes.len());
                    self.block[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
                    self.filled += n;
                    bytes = &bytes[n..];
                    if self.filled == BLOCK {
                        self.filled = 0;
                        self.state = match self.state {
                            State::SparseExt { data } => self.after_sparse_block(data),
                            _ => self.after_header()?,
                        };
                    }
                }
                State::Data { left } => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(bytes.len());
                    if let Some(pax) = self.pax.as_mut() {
                        let room = (MAX_META as usize).saturating_sub(pax.len());
                        pax.extend_from_slice(&bytes[..n.min(room)]);
                    }
                    bytes = &bytes[n..];
                    let left = left - n as u64;
                    self.state = State::Data { left };
                    if left == 0 {
                        self.end_of_data();
                    }
                }
            }
        }
        Ok(())
    }

    /// A whole header block was read: what follows it?
    fn after_header(&mut self) -> io::Result<State> {
        if self.block.iter().all(|&b| b == 0) {
            return Ok(State::Header);
        }
        let Some(mut size) = parse_size(&self.block[124..136]) else {
            return Ok(State::Off);
        };
        let kind = self.block[156];
        let extended = self.block[482] != 0;
        let meta = matches!(kind, b'x' | b'g' | b'L' | b'K');
        if meta && size > MAX_META {
            let what = match kind {
                b'L' | b'K' => "GNU long name",
                _ => "PAX header",
            };
            return Err(io::Error::other(format!(
                "a {what} of {size} bytes (more than {MAX_META} allowed): a corrupt or \
                 hostile layer"
            )));
        }
        if !meta && let Some(s) = self.next_size.take() {
            size = s;
        }
        self.pax = (kind == b'x').then(Vec::new);
        // GNU sparse: extension blocks follow the header while its
        // "isextended" byte is set.
        if kind == b'S' && extended {
            return Ok(State::SparseExt { data: size });
        }
        Ok(self.data_state(size))
    }

    fn after_sparse_block(&mut self, data: u64) -> State {
        if self.block[504] != 0 {
            State::SparseExt { data }
        } else {
            self.data_state(data)
        }
    }

    fn data_state(&mut self, size: u64) -> State {
        let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        if padded == 0 {
            self.end_of_data();
            State::Header
        } else {
            State::Data { left: padded }
        }
    }

    /// An entry's data ended: a PAX header's `size` applies to the next
    /// entry.
    fn end_of_data(&mut self) {
        self.state = State::Header;
        if let Some(pax) = self.pax.take() {
            let size = tar::PaxExtensions::new(&pax)
                .filter_map(Result::ok)
                .find(|e| e.key_bytes() == b"size")
                .and_then(|e| e.value().ok()?.parse::<u64>().ok());
            if size.is_some() {
                self.next_size = size;
            }
        }
    }
}

impl<R: Read> Read for MetaGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.feed(&buf[..n])?;
        Ok(n)
    }
}

/// A tar numeric field: octal text, or base-256 when the top bit is set.
fn parse_size(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == ' ' || c == '\0');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, kind: u8, size: u64) -> [u8; BLOCK] {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_cksum();
        *h.as_bytes()
    }

    fn data(n: usize, byte: u8) -> Vec<u8> {
        let mut d = vec![byte; n];
        d.resize(n.div_ceil(BLOCK) * BLOCK, 0);
        d
    }

    /// Push `bytes` through the guard in chunks of `chunk` bytes.
    fn pass(bytes: &[u8], chunk: usize) -> io::Result<Vec<u8>> {
        struct Chunks<'a>(&'a [u8], usize);
        impl Read for Chunks<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(self.1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut out = Vec::new();
        MetaGuard::new(Chunks(bytes, chunk)).read_to_end(&mut out)?;
        Ok(out)
    }

    fn pax(records: &str) -> Vec<u8> {
        let mut out = header("PaxHeaders/x", b'x', records.len() as u64).to_vec();
        let mut d = records.as_bytes().to_vec();
        d.resize(records.len().div_ceil(BLOCK) * BLOCK, 0);
        out.extend(d);
        out
    }

    #[test]
    fn real_tars_pass_through_unchanged_in_any_chunking() {
        let mut b = tar::Builder::new(Vec::new());
        let long = "d/".repeat(80) + "file";
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
        b.append_pax_extensions([("SCHILY.xattr.user.x", &b"1"[..])])
            .unwrap();
        b.append_data(&mut h, "x", &b"abc"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        for chunk in [1, 7, 512, 100_000] {
            assert_eq!(pass(&tar, chunk).unwrap(), tar);
        }
    }

    #[test]
    fn huge_metadata_entries_are_refused() {
        for kind in [b'x', b'g', b'L', b'K'] {
            let tar = header("big", kind, MAX_META + 1).to_vec();
            let err = pass(&tar, 4096).unwrap_err();
            assert!(err.to_string().contains("allowed"), "{err}");
        }
        // Just at the limit is fine.
        let mut tar = header("big", b'L', MAX_META).to_vec();
        tar.extend(data(MAX_META as usize, b'a'));
        assert!(pass(&tar, 65536).is_ok());
    }

    #[test]
    fn the_guard_follows_pax_sizes_and_sparse_extension_blocks() {
        // A PAX size of 1000 over a header that says 0: the huge header
        // after it is still found.
        let mut tar = pax("13 size=1000\n");
        tar.extend(header("f", b'0', 0));
        tar.extend(data(1000, b'a'));
        // A GNU sparse member with two extension blocks and 700 bytes.
        let mut sparse = header("s", b'S', 700);
        sparse[482] = 1;
        tar.extend(sparse);
        let mut ext = [0u8; BLOCK];
        ext[504] = 1;
        tar.extend(ext);
        tar.extend([0u8; BLOCK]);
        tar.extend(data(700, b'b'));
        let ok = tar.clone();
        tar.extend(header("big", b'x', 1 << 40));
        assert!(pass(&ok, 333).is_ok());
        assert!(pass(&tar, 333).is_err());
    }

    #[test]
    fn sizes_in_octal_and_base_256() {
        assert_eq!(parse_size(b"00000001750\0"), Some(1000));
        assert_eq!(parse_size(b"        \0\0\0\0"), Some(0));
        let mut b256 = [0u8; 12];
        b256[0] = 0x80;
        b256[10] = 0x01;
        assert_eq!(parse_size(&b256), Some(256));
        assert_eq!(parse_size(b"zz\0\0\0\0\0\0\0\0\0\0"), None);
    }
}
