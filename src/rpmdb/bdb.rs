//! Reading rpm's Berkeley DB `Packages` file (RHEL/CentOS 5–8, RHEL
//! CoreOS 4.x), read-only, without libdb.
//!
//! `Packages` is a Berkeley DB *hash* database: key = the header instance
//! number (4 bytes, in the writer's byte order), value = the header blob.
//! This reader walks it the way rpm's own `bdb_ro` backend does:
//!
//! - page 0 is the hash metadata page: magic `0x061561` (byte-swapped when
//!   written on the other endianness), hash version 8–10, page size,
//!   last page number, the highest bucket and the `spares` table that maps
//!   a bucket to its first page;
//! - each bucket is a chain of hash pages (type 13, or 2 before BDB 4.6):
//!   a 26-byte page header, an index of 2-byte item offsets, and items
//!   laid out from the end of the page, key then value;
//! - an item is inline (`H_KEYDATA`, type 1) or a 12-byte reference to a
//!   chain of overflow pages (`H_OFFPAGE`, type 3) holding the value.
//!
//! Key 0 holds rpm's instance counter, not a header, and is skipped.
//!
//! Every page number, offset and length is checked before use; a page is
//! never visited twice in a bucket walk or in one value's overflow chain,
//! so corrupt files end in an error, never in a loop, a panic or an
//! allocation larger than the file.

use std::fs::File;
use std::os::unix::fs::FileExt;

use anyhow::{Context, Result, bail, ensure};

/// Hash database magic, as written on a little-endian machine.
const HASH_MAGIC: u32 = 0x0006_1561;
/// B-tree database magic (rpm's index files, never `Packages`).
const BTREE_MAGIC: u32 = 0x0005_3162;
/// Size of every page's header.
const PAGE_HEADER: usize = 26;
/// Page types.
const P_HASH_UNSORTED: u8 = 2;
const P_OVERFLOW: u8 = 7;
const P_HASHMETA: u8 = 8;
const P_HASH: u8 = 13;
/// Item types.
const H_KEYDATA: u8 = 1;
const H_OFFPAGE: u8 = 3;
/// The largest value accepted: the largest header rpm itself accepts
/// (`il` ≤ 0xffff index entries of 16 bytes and `dl` ≤ 0x0fffffff).
const MAX_VALUE: u64 = 8 + 16 * 0xffff + 0x0fff_ffff;

/// Byte order of the file.
#[derive(Debug, Clone, Copy)]
struct Order {
    swapped: bool,
}

impl Order {
    fn u16(self, b: &[u8], at: usize) -> Result<u16> {
        let s = b.get(at..at + 2).context("read past the page")?;
        let v = [s[0], s[1]];
        Ok(if self.swapped {
            u16::from_be_bytes(v)
        } else {
            u16::from_le_bytes(v)
        })
    }

    fn u32(self, b: &[u8], at: usize) -> Result<u32> {
        let s = b.get(at..at + 4).context("read past the page")?;
        let v = [s[0], s[1], s[2], s[3]];
        Ok(if self.swapped {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        })
    }
}

/// The hash metadata this reader needs.
#[derive(Debug)]
struct Meta {
    order: Order,
    page_size: usize,
    last_page: u32,
    max_bucket: u32,
    spares: [u32; 32],
}

/// Where pages are read from: the file, or bytes in memory (tests, fuzzing).
pub trait ReadAt {
    /// Fill `buf` from offset `at`; fail when the source is too short.
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> std::io::Result<()>;
}

impl ReadAt for File {
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> std::io::Result<()> {
        FileExt::read_exact_at(self, buf, at)
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> std::io::Result<()> {
        let src = usize::try_from(at)
            .ok()
            .and_then(|at| self.get(at..at.checked_add(buf.len())?))
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// An open `Packages` file.
struct Db<'a, S: ReadAt + ?Sized> {
    file: &'a S,
    meta: Meta,
    /// Per page: the walk that last visited it (see [`Db::visit`]).
    stamps: Vec<u32>,
}

/// Call `each(instance, blob)` for every header in the `Packages` file
/// `file` of `len` bytes, in bucket order. Errors are about the file's
/// structure; `each`'s errors are passed on unchanged.
pub fn for_each_header<S: ReadAt + ?Sized>(
    file: &S,
    len: u64,
    mut each: impl FnMut(u32, &[u8]) -> Result<()>,
) -> Result<()> {
    let meta = read_meta(file, len)?;
    let pages = meta.last_page as usize + 1;
    let mut db = Db {
        file,
        meta,
        stamps: vec![0; pages],
    };
    db.walk(&mut each)
}

/// Read and check page 0.
fn read_meta<S: ReadAt + ?Sized>(file: &S, len: u64) -> Result<Meta> {
    let mut page = [0u8; 512];
    file.read_exact_at(&mut page, 0).map_err(|_| {
        anyhow::anyhow!("not a Berkeley DB database: shorter than its 512-byte metadata page")
    })?;
    let le = u32::from_le_bytes([page[12], page[13], page[14], page[15]]);
    let order = match le {
        HASH_MAGIC => Order { swapped: false },
        m if m.swap_bytes() == HASH_MAGIC => Order { swapped: true },
        m if m == BTREE_MAGIC || m.swap_bytes() == BTREE_MAGIC => {
            bail!("a Berkeley DB B-tree, not the hash database rpm's Packages is")
        }
        m => bail!("not a Berkeley DB hash database (magic {m:#010x})"),
    };
    let version = order.u32(&page, 16)?;
    ensure!(
        (8..=10).contains(&version),
        "unsupported Berkeley DB hash version {version} (8 to 10 are read)"
    );
    let page_size = order.u32(&page, 20)?;
    ensure!(
        page_size.is_power_of_two() && (512..=65536).contains(&page_size),
        "invalid page size {page_size}"
    );
    ensure!(
        page[24] == 0,
        "encrypted Berkeley DB databases are not supported"
    );
    ensure!(
        page[25] == P_HASHMETA,
        "page 0 is of type {}, not hash metadata",
        page[25]
    );
    let last_page = order.u32(&page, 32)?;
    let need = (u64::from(last_page) + 1) * u64::from(page_size);
    ensure!(
        len >= need,
        "file is truncated: {len} bytes, but its metadata claims {} pages of {page_size} bytes",
        u64::from(last_page) + 1
    );
    let max_bucket = order.u32(&page, 72)?;
    ensure!(
        max_bucket <= last_page,
        "{} buckets in a file of {} pages",
        u64::from(max_bucket) + 1,
        u64::from(last_page) + 1
    );
    let mut spares = [0u32; 32];
    for (i, s) in spares.iter_mut().enumerate() {
        *s = order.u32(&page, 96 + 4 * i)?;
    }
    Ok(Meta {
        order,
        page_size: page_size as usize,
        last_page,
        max_bucket,
        spares,
    })
}

impl<S: ReadAt + ?Sized> Db<'_, S> {
    /// Read page `n` into `buf`, checking that it is in the file and names
    /// itself.
    fn page(&self, n: u32, buf: &mut [u8]) -> Result<()> {
        ensure!(
            n != 0 && n <= self.meta.last_page,
            "page number {n} out of range 1..={}",
            self.meta.last_page
        );
        let at = u64::from(n) * self.meta.page_size as u64;
        self.file
            .read_exact_at(buf, at)
            .with_context(|| format!("page {n}: cannot read"))?;
        let own = self.meta.order.u32(buf, 8)?;
        ensure!(own == n, "page {n} claims to be page {own}");
        Ok(())
    }

    /// Mark page `n` visited by walk `stamp`; false if it already was.
    fn visit(&mut self, n: u32, stamp: u32) -> bool {
        match self.stamps.get_mut(n as usize) {
            Some(s) if *s != stamp => {
                *s = stamp;
                true
            }
            _ => false,
        }
    }

    /// The first page of `bucket` (rpm's `hash_bucket_to_page`).
    fn bucket_page(&self, bucket: u32) -> Result<u32> {
        let bits = 32 - bucket.leading_zeros();
        let spare = self.meta.spares.get(bits as usize).copied().unwrap_or(0);
        bucket
            .checked_add(spare)
            .with_context(|| format!("bucket {bucket}: page number overflows"))
    }

    fn walk(&mut self, each: &mut dyn FnMut(u32, &[u8]) -> Result<()>) -> Result<()> {
        let size = self.meta.page_size;
        let order = self.meta.order;
        let mut page = vec![0u8; size];
        // Stamp 1 marks bucket pages; each value's overflow chain gets its own.
        let bucket_stamp = 1u32;
        let mut value_stamp = 1u32;
        for bucket in 0..=self.meta.max_bucket {
            let mut n = self.bucket_page(bucket)?;
            while n != 0 {
                ensure!(
                    self.visit(n, bucket_stamp),
                    "bucket {bucket}: page {n} is reached twice"
                );
                self.page(n, &mut page)?;
                let ty = page[25];
                ensure!(
                    matches!(ty, P_HASH | P_HASH_UNSORTED | P_HASHMETA),
                    "bucket {bucket}: page {n} is of type {ty}, not a hash page"
                );
                let entries = order.u16(&page, 20)? as usize;
                ensure!(
                    PAGE_HEADER + 2 * entries <= size,
                    "page {n}: {entries} items do not fit"
                );
                let mut idx = 0;
                while idx + 1 < entries {
                    let (key, value) = self
                        .pair(&page, idx)
                        .with_context(|| format!("page {n}, item {idx}"))?;
                    idx += 2;
                    let instance = match key {
                        Item::Inline(k) if k.len() == 4 => order.u32(k, 0)?,
                        _ => bail!(
                            "page {n}, item {}: key is not a 4-byte instance number",
                            idx - 2
                        ),
                    };
                    if instance == 0 {
                        continue;
                    }
                    let blob = match value {
                        Item::Inline(v) => v.to_vec(),
                        Item::OffPage { page: first, len } => {
                            value_stamp = value_stamp.checked_add(1).context("too many values")?;
                            self.overflow(first, len, value_stamp)
                                .with_context(|| format!("header #{instance}: overflow pages"))?
                        }
                    };
                    each(instance, &blob)?;
                }
                n = order.u32(&page, 16)?;
            }
        }
        Ok(())
    }

    /// The key and value items of pair `idx` on a hash page.
    fn pair<'p>(&self, page: &'p [u8], idx: usize) -> Result<(Item<'p>, Item<'p>)> {
        let order = self.meta.order;
        let size = page.len();
        let koff = order.u16(page, PAGE_HEADER + 2 * idx)? as usize;
        let voff = order.u16(page, PAGE_HEADER + 2 * idx + 2)? as usize;
        ensure!(koff < size && voff < size, "item offset beyond the page");
        let kend = if idx == 0 {
            size
        } else {
            order.u16(page, PAGE_HEADER + 2 * idx - 2)? as usize
        };
        ensure!(
            kend > koff && koff > voff,
            "items overlap or are out of order"
        );
        Ok((
            self.item(&page[koff..kend.min(size)])?,
            self.item(&page[voff..koff])?,
        ))
    }

    fn item<'p>(&self, bytes: &'p [u8]) -> Result<Item<'p>> {
        match bytes.first() {
            Some(&H_KEYDATA) => Ok(Item::Inline(&bytes[1..])),
            Some(&H_OFFPAGE) => {
                ensure!(bytes.len() == 12, "off-page item of {} bytes", bytes.len());
                Ok(Item::OffPage {
                    page: self.meta.order.u32(bytes, 4)?,
                    len: self.meta.order.u32(bytes, 8)?,
                })
            }
            Some(t) => bail!("unsupported item type {t}"),
            None => bail!("empty item"),
        }
    }

    /// Concatenate a value's overflow chain (rpm's `ovfl_get`).
    fn overflow(&mut self, first: u32, len: u32, stamp: u32) -> Result<Vec<u8>> {
        let total = u64::from(len);
        ensure!(total > 0, "empty value");
        ensure!(
            total <= MAX_VALUE,
            "value of {total} bytes is larger than any rpm header"
        );
        let pages_left = u64::from(self.meta.last_page);
        let payload = (self.meta.page_size - PAGE_HEADER) as u64;
        ensure!(
            total <= pages_left * payload,
            "value of {total} bytes is larger than the file"
        );
        let mut out = Vec::with_capacity(total as usize);
        let mut page = vec![0u8; self.meta.page_size];
        let mut n = first;
        while (out.len() as u64) < total {
            ensure!(self.visit(n, stamp), "page {n} is reached twice");
            self.page(n, &mut page)?;
            ensure!(
                page[25] == P_OVERFLOW,
                "page {n} is of type {}, not an overflow page",
                page[25]
            );
            let used = self.meta.order.u16(&page, 22)? as usize;
            let left = total as usize - out.len();
            ensure!(
                used > 0 && PAGE_HEADER + used <= page.len() && used <= left,
                "page {n} holds {used} bytes where 1..={} are expected",
                left.min(page.len() - PAGE_HEADER)
            );
            out.extend_from_slice(&page[PAGE_HEADER..PAGE_HEADER + used]);
            n = self.meta.order.u32(&page, 16)?;
        }
        Ok(out)
    }
}

/// A key or value on a hash page.
enum Item<'p> {
    /// Stored on the page.
    Inline(&'p [u8]),
    /// Stored in a chain of overflow pages.
    OffPage { page: u32, len: u32 },
}
