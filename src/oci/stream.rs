//! A layer blob as a tar stream: decompressed, hashed twice, bounded.
//!
//! The compression is detected from the blob's first bytes (gzip, zstd or
//! none), not from the media type, which tools get wrong. Gzip layers may
//! be several concatenated members (pigz, `--rsyncable`); zstd layers may
//! be several frames, with skippable frames (zstd:chunked).
//!
//! Two digests are computed while the bytes go by: the blob's (checked
//! against the manifest) and the uncompressed tar's (the config's
//! `diff_id`). Decompressed bytes are capped per layer
//! ([`MAX_LAYER_BYTES`]), so a decompression bomb is an error, not a full
//! disk or a hung CI job.
//!
//! With `pipeline`, a second thread reads, hashes and decompresses the blob
//! into a bounded channel (at most [`CHANNEL_CHUNKS`] chunks of
//! [`CHUNK`] bytes in flight) while the caller parses the tar and hashes
//! file contents: the two halves of the work overlap on two cores. On a
//! 5 GB, 133 000-file zstd layer (2 cores, SHA extensions) that is about
//! 7.5 CPU-seconds of tar parsing and hashing against 6 of reading,
//! hashing and decompressing: 8 s instead of 13 s. Gzip inflates more
//! slowly (13 CPU-seconds), so there it is bound by the decompressing
//! thread: about 13 s instead of 20 s.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use anyhow::{Result, anyhow, bail};
use sha2::{Digest, Sha256};

/// The default cap on a layer's decompressed size: 64 GiB. Real OS layers
/// are a few GiB; a layer that inflates past this is treated as a
/// decompression bomb.
pub const MAX_LAYER_BYTES: u64 = 64 << 30;

/// Bytes per chunk handed from the decompressing thread.
pub const CHUNK: usize = 1 << 20;

/// Chunks that may wait in the channel (memory bound: about 8 MiB).
pub const CHANNEL_CHUNKS: usize = 8;

/// A blob's compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip, one or more members.
    Gzip,
    /// zstd, one or more frames.
    Zstd,
}

/// The compression a blob starting with `magic` uses, by name, when it is
/// compressed at all: `gzip`, `zstd`, `xz` or `bzip2`.
pub fn compression_name(magic: &[u8]) -> Option<&'static str> {
    if magic.starts_with(&[0x1f, 0x8b]) {
        Some("gzip")
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("zstd")
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some("xz")
    } else if magic.starts_with(b"BZh") {
        Some("bzip2")
    } else {
        None
    }
}

/// Detect the compression from the first bytes. xz and bzip2 (allowed in
/// old Docker images) are refused by name.
pub fn detect(magic: &[u8]) -> Result<Compression> {
    match compression_name(magic) {
        None => Ok(Compression::None),
        Some("gzip") => Ok(Compression::Gzip),
        Some("zstd") => Ok(Compression::Zstd),
        Some(other) => bail!("{other}-compressed layers are not supported (only gzip and zstd)"),
    }
}

/// What streaming a layer found out, for verification by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// sha256 of the blob as stored.
    pub blob_digest: [u8; 32],
    /// Size of the blob as stored.
    pub blob_size: u64,
    /// sha256 of the uncompressed tar (the `diff_id`).
    pub diff_id: [u8; 32],
    /// Size of the uncompressed tar.
    pub tar_size: u64,
}

/// Counts and hashes what is read through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        crate::progress::add_layer_bytes(n as u64);
        Ok(n)
    }
}

type Raw = BufReader<Hashing<Box<dyn Read + Send>>>;

/// The decompressing half: blob bytes in, tar bytes out.
enum Decoder {
    Plain(Raw),
    Gzip(flate2::bufread::MultiGzDecoder<Raw>),
    Zstd(zstd::stream::read::Decoder<'static, Raw>),
}

impl Decoder {
    fn new(blob: Box<dyn Read + Send>) -> Result<Decoder> {
        let hashing = Hashing {
            inner: blob,
            hasher: Sha256::new(),
            count: 0,
        };
        let mut raw = BufReader::with_capacity(CHUNK, hashing);
        let magic = raw.fill_buf()?;
        Ok(match detect(magic)? {
            Compression::None => Decoder::Plain(raw),
            Compression::Gzip => Decoder::Gzip(flate2::bufread::MultiGzDecoder::new(raw)),
            Compression::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(raw)?),
        })
    }

    /// Read whatever the decompressor left (trailing bytes) and return the
    /// blob's digest and size.
    fn finish(self) -> io::Result<([u8; 32], u64)> {
        let mut raw = match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(d) => d.into_inner(),
            Decoder::Zstd(d) => d.finish(),
        };
        io::copy(&mut raw, &mut io::sink())?;
        let hashing = raw.into_inner();
        Ok((hashing.hasher.finalize().into(), hashing.count))
    }
}

impl Read for Decoder {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
        }
    }
}

/// Where the tar bytes come from.
enum Feed {
    /// Decompressed on this thread.
    Direct(Box<Decoder>),
    /// Decompressed on another thread.
    Piped {
        rx: Receiver<io::Result<Vec<u8>>>,
        chunk: Vec<u8>,
        pos: usize,
        worker: JoinHandle<io::Result<([u8; 32], u64)>>,
    },
}

/// A layer's uncompressed tar stream. Read it (e.g. with the `tar` crate),
/// then call [`LayerStream::finish`] for the digests.
pub struct LayerStream {
    feed: Feed,
    hasher: Sha256,
    count: u64,
    limit: u64,
}

impl LayerStream {
    /// Start decompressing `blob`. Fails when the compression is not
    /// supported.
    pub fn open(blob: Box<dyn Read + Send>, pipeline: bool, limit: u64) -> Result<LayerStream> {
        let decoder = Decoder::new(blob)?;
        let feed = if pipeline {
            let (tx, rx) = sync_channel(CHANNEL_CHUNKS);
            let worker = std::thread::Builder::new()
                .name("layer-decompress".into())
                .spawn(move || produce(decoder, tx))?;
            Feed::Piped {
                rx,
                chunk: Vec::new(),
                pos: 0,
                worker,
            }
        } else {
            Feed::Direct(Box::new(decoder))
        };
        Ok(LayerStream {
            feed,
            hasher: Sha256::new(),
            count: 0,
            limit,
        })
    }

    /// Read the rest of the stream (what follows the tar's end marker
    /// counts for the `diff_id` too) and return both digests.
    pub fn finish(mut self) -> Result<Summary> {
        io::copy(&mut self, &mut io::sink())?;
        let (blob_digest, blob_size) = match self.feed {
            Feed::Direct(decoder) => decoder.finish()?,
            Feed::Piped { rx, worker, .. } => {
                drop(rx);
                worker
                    .join()
                    .map_err(|_| anyhow!("the decompressing thread panicked"))??
            }
        };
        Ok(Summary {
            blob_digest,
            blob_size,
            diff_id: self.hasher.finalize().into(),
            tar_size: self.count,
        })
    }

    fn read_feed(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.feed {
            Feed::Direct(decoder) => decoder.read(buf),
            Feed::Piped { rx, chunk, pos, .. } => {
                while *pos == chunk.len() {
                    match rx.recv() {
                        Ok(Ok(next)) => {
                            *chunk = next;
                            *pos = 0;
                        }
                        Ok(Err(e)) => return Err(e),
                        // The worker is done (its result comes from join).
                        Err(_) => return Ok(0),
                    }
                }
                let n = buf.len().min(chunk.len() - *pos);
                buf[..n].copy_from_slice(&chunk[*pos..*pos + n]);
                *pos += n;
                Ok(n)
            }
        }
    }
}

impl Read for LayerStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.read_feed(buf)?;
        self.count += n as u64;
        if self.count > self.limit {
            return Err(io::Error::other(format!(
                "the layer decompresses to more than {} bytes, the limit \
                 (a decompression bomb?)",
                self.limit
            )));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The worker: decompress into full chunks until the end, then report the
/// blob's digest. Stops early when the reader hangs up.
fn produce(
    mut decoder: Decoder,
    tx: SyncSender<io::Result<Vec<u8>>>,
) -> io::Result<([u8; 32], u64)> {
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let mut filled = 0;
        while filled < CHUNK {
            match decoder.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let msg = e.to_string();
                    let _ = tx.send(Err(e));
                    return Err(io::Error::other(msg));
                }
            }
        }
        if filled == 0 {
            break;
        }
        chunk.truncate(filled);
        if tx.send(Ok(chunk)).is_err() {
            return Err(io::Error::other("the layer reader stopped early"));
        }
    }
    drop(tx);
    decoder.finish()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip_members(parts: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in parts {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(p).unwrap();
            out.extend(e.finish().unwrap());
        }
        out
    }

    fn stream_all(blob: Vec<u8>, pipeline: bool, limit: u64) -> Result<(Vec<u8>, Summary)> {
        let mut s = LayerStream::open(Box::new(io::Cursor::new(blob)), pipeline, limit)?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        Ok((out, s.finish()?))
    }

    #[test]
    fn every_compression_and_both_modes_give_the_same_bytes_and_digests() {
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
        let diff_id: [u8; 32] = Sha256::digest(&data).into();
        let gz = gzip_members(&[&data[..1000], &data[1000..2 * CHUNK], &data[2 * CHUNK..]]);
        let mut zst = zstd::encode_all(&data[..CHUNK], 1).unwrap();
        zst.extend(zstd::encode_all(&data[CHUNK..], 1).unwrap());
        for blob in [data.clone(), gz, zst] {
            let blob_digest: [u8; 32] = Sha256::digest(&blob).into();
            for pipeline in [false, true] {
                let (out, sum) = stream_all(blob.clone(), pipeline, MAX_LAYER_BYTES).unwrap();
                assert!(out == data, "pipeline={pipeline}");
                assert_eq!(sum.diff_id, diff_id);
                assert_eq!(sum.blob_digest, blob_digest);
                assert_eq!(sum.blob_size, blob.len() as u64);
                assert_eq!(sum.tar_size, data.len() as u64);
            }
        }
    }

    #[test]
    fn a_layer_inflating_past_the_limit_is_an_error() {
        let bomb = zstd::encode_all(&vec![0u8; 4 * CHUNK][..], 19).unwrap();
        for pipeline in [false, true] {
            let err = stream_all(bomb.clone(), pipeline, CHUNK as u64 + 5).unwrap_err();
            assert!(format!("{err:#}").contains("decompression bomb"), "{err:#}");
        }
    }

    #[test]
    fn corrupt_and_unsupported_compression_are_errors() {
        let mut gz = gzip_members(&[b"hello world, hello world"]);
        let n = gz.len();
        gz[n / 2] ^= 0xff;
        gz.truncate(n - 3);
        for pipeline in [false, true] {
            assert!(stream_all(gz.clone(), pipeline, MAX_LAYER_BYTES).is_err());
        }
        let err = stream_all(b"\xfd7zXZ\0rest".to_vec(), false, MAX_LAYER_BYTES).unwrap_err();
        assert!(err.to_string().contains("xz"), "{err}");
    }
}
