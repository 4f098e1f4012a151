//! Turning one rpmdb header blob into a [`Package`].
//!
//! An rpmdb row holds an "exported header" without the 8-byte header magic:
//! `il` (u32 BE, index entry count), `dl` (u32 BE, data length), `il` index
//! entries of 16 bytes (tag, type, offset, count; all u32 BE) and then `dl`
//! bytes of data. The `rpm` crate only parses whole packages, so the blob is
//! wrapped in a minimal lead and an empty signature header first.
//!
//! The `rpm` crate trusts the counts and offsets it reads (it slices with
//! them and allocates from them), so [`validate_blob`] checks every bound
//! before the crate sees the bytes, and the crate call runs under
//! `catch_unwind` as a second line of defence.

use std::panic::{AssertUnwindSafe, catch_unwind};

use anyhow::{Context, Result, anyhow, bail, ensure};
use rpm::{IndexTag, PackageMetadata};

use super::Package;

/// rpm's `HEADER_DATA_MAX`: the largest data section rpm itself accepts.
const HEADER_DATA_MAX: u32 = 0x0fff_ffff;
/// rpm's `HEADER_TAGS_MAX`: the most index entries rpm itself accepts.
const HEADER_TAGS_MAX: u32 = 0xffff;
/// Size of one index entry.
const ENTRY_SIZE: usize = 16;
/// `il` + `dl`.
const INTRO_SIZE: usize = 8;

/// Header tag types, as numbered by rpm (`rpmTagType`).
const TYPE_NULL: u32 = 0;
const TYPE_STRING: u32 = 6;
const TYPE_BIN: u32 = 7;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

/// `RPMTAG_SHA256HEADER`: the header digest rpm stores at install time.
const TAG_SHA256HEADER: u32 = 273;
/// `RPMTAG_OLDFILENAMES`: pre-rpm-4 flat file list.
const TAG_OLDFILENAMES: u32 = 1027;
/// `RPMTAG_DIRINDEXES` and `RPMTAG_BASENAMES`: the split file list.
const TAG_DIRINDEXES: u32 = 1116;
const TAG_BASENAMES: u32 = 1117;

/// One decoded index entry.
#[derive(Debug, Clone, Copy)]
struct Entry {
    tag: u32,
    ty: u32,
    offset: u32,
    count: u32,
}

/// The parts of a blob that [`validate_blob`] proved sound.
#[derive(Debug)]
pub(crate) struct Checked<'a> {
    /// The index entries, in blob order.
    entries: Vec<Entry>,
    /// The blob itself.
    blob: &'a [u8],
}

impl Checked<'_> {
    /// The count of the first entry with `tag`, if any.
    fn count_of(&self, tag: u32) -> Option<u32> {
        self.entries.iter().find(|e| e.tag == tag).map(|e| e.count)
    }
}

/// Read a big-endian u32 at `at`, failing instead of panicking when short.
fn be32(bytes: &[u8], at: usize) -> Result<u32> {
    let end = at.checked_add(4).context("offset overflow")?;
    let b = bytes.get(at..end).context("blob is truncated")?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Check the blob's framing and every index entry's bounds.
///
/// Every check here mirrors one rpm itself makes (`hdrblobInit`,
/// `hdrblobVerifyInfo`), except overlapping data, which rpm forbids and we
/// allow: instead the bytes scanned for all entries together are capped at
/// twice `dl`, which no header rpm accepts can exceed (its entries' data are
/// disjoint), so a crafted blob cannot make us spin.
pub(crate) fn validate_blob(blob: &[u8]) -> Result<Checked<'_>> {
    let (il, data) = framing(blob)?;
    let mut entries = Vec::with_capacity(il);
    let mut budget = 2 * data.len() as u64;
    for i in 0..il {
        let at = INTRO_SIZE + i * ENTRY_SIZE;
        let entry = Entry {
            tag: be32(blob, at)?,
            ty: be32(blob, at + 4)?,
            offset: be32(blob, at + 8)?,
            count: be32(blob, at + 12)?,
        };
        let what = || format!("index entry {i} (tag {})", entry.tag);
        let len = check_entry(&entry, data).with_context(what)?;
        budget = budget
            .checked_sub(len)
            .with_context(|| format!("{}: entries overlap too much", what()))?;
        entries.push(entry);
    }
    Ok(Checked { entries, blob })
}

/// Check `il` and `dl` against rpm's limits and the blob's real length;
/// return the entry count and the data section.
fn framing(blob: &[u8]) -> Result<(usize, &[u8])> {
    let il = be32(blob, 0)?;
    let dl = be32(blob, 4)?;
    ensure!(
        (1..=HEADER_TAGS_MAX).contains(&il),
        "header index count {il} out of range 1..={HEADER_TAGS_MAX}"
    );
    ensure!(
        dl <= HEADER_DATA_MAX,
        "header data length {dl} exceeds {HEADER_DATA_MAX}"
    );
    let data_start = (il as usize)
        .checked_mul(ENTRY_SIZE)
        .and_then(|n| n.checked_add(INTRO_SIZE))
        .context("index size overflow")?;
    let expected = data_start
        .checked_add(dl as usize)
        .context("header size overflow")?;
    ensure!(
        expected == blob.len(),
        "header claims {expected} bytes (il {il}, dl {dl}) but the blob has {}",
        blob.len()
    );
    let data = blob.get(data_start..).context("blob is truncated")?;
    Ok((il as usize, data))
}

/// Check one entry against the data section; return its data length.
fn check_entry(e: &Entry, data: &[u8]) -> Result<u64> {
    let dl = data.len();
    let offset = e.offset as usize;
    // rpm stores offsets as int32: anything with the sign bit is negative.
    ensure!(
        i32::try_from(e.offset).is_ok(),
        "negative offset {}",
        e.offset as i32
    );
    ensure!(offset <= dl, "offset {offset} beyond data length {dl}");
    ensure!(
        e.count as usize <= dl,
        "count {} exceeds data length {dl}",
        e.count
    );
    let rest = &data[offset..];
    let len = match e.ty {
        TYPE_NULL => 0,
        TYPE_STRING => {
            ensure!(e.count == 1, "string with count {}", e.count);
            strings_len(rest, 1)?
        }
        TYPE_STRING_ARRAY | TYPE_I18NSTRING => strings_len(rest, e.count)?,
        ty => {
            let size = fixed_size(ty).with_context(|| format!("unknown type {ty}"))?;
            let len = (e.count as usize)
                .checked_mul(size)
                .context("data size overflow")?;
            ensure!(
                len <= rest.len(),
                "{len} bytes of data at offset {offset} run past {dl}"
            );
            len
        }
    };
    Ok(len as u64)
}

/// Element size of the fixed-size types (char, int8/16/32/64, bin).
fn fixed_size(ty: u32) -> Option<usize> {
    match ty {
        1 | 2 | TYPE_BIN => Some(1),
        3 => Some(2),
        4 => Some(4),
        5 => Some(8),
        _ => None,
    }
}

/// Length of `count` NUL-terminated strings at the start of `bytes`.
fn strings_len(bytes: &[u8], count: u32) -> Result<usize> {
    let mut pos = 0usize;
    for n in 0..count {
        let rest = &bytes[pos..];
        let nul = rest
            .iter()
            .position(|&b| b == 0)
            .with_context(|| format!("string {n} of {count} is not NUL-terminated"))?;
        pos += nul + 1;
    }
    Ok(pos)
}

/// Wrap a validated blob into a minimal package file the `rpm` crate parses:
/// a v3 lead, an empty signature header, then the header with its magic.
fn wrap(blob: &[u8]) -> Vec<u8> {
    const HEADER_MAGIC: [u8; 8] = [0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0];
    let mut out = Vec::with_capacity(96 + 16 + 8 + blob.len());
    out.extend_from_slice(&[0xed, 0xab, 0xee, 0xdb, 3, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&[0u8; 66]); // name
    out.extend_from_slice(&[0, 1, 0, 5]); // os 1, signature type 5
    out.extend_from_slice(&[0u8; 16]); // reserved
    out.extend_from_slice(&HEADER_MAGIC); // signature header, il = dl = 0
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&HEADER_MAGIC);
    out.extend_from_slice(blob);
    out
}

/// Parse one rpmdb header blob into a [`Package`].
///
/// The error says what is wrong with the blob; the caller adds which file
/// and row it came from.
pub(crate) fn parse_blob(blob: &[u8]) -> Result<Package> {
    let checked = validate_blob(blob)?;
    let wrapped = wrap(checked.blob);
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<Package> {
        let md = PackageMetadata::parse(&mut wrapped.as_slice())
            .map_err(|e| anyhow!("rpm header parser: {e}"))?;
        extract(&md, &checked)
    }));
    outcome.unwrap_or_else(|_| bail!("rpm header parser panicked on this header"))
}

/// Pull the fields we keep out of parsed metadata.
fn extract(md: &PackageMetadata, checked: &Checked<'_>) -> Result<Package> {
    Ok(Package {
        name: field("name", md.get_name())?,
        epoch: optional(md.get_epoch()).map_err(|e| anyhow!("epoch: {e}"))?,
        version: field("version", md.get_version())?,
        release: field("release", md.get_release())?,
        arch: optional(md.get_arch().map(str::to_owned))
            .map_err(|e| anyhow!("arch: {e}"))?
            .unwrap_or_default(),
        sha256header: sha256header(md)?,
        files: files(md, checked)?,
    })
}

/// A required string tag, owned.
fn field(what: &str, r: Result<&str, rpm::Error>) -> Result<String> {
    r.map(str::to_owned).map_err(|e| anyhow!("{what}: {e}"))
}

/// A missing tag is `None`; any other failure stays an error.
fn optional<T>(r: Result<T, rpm::Error>) -> Result<Option<T>, rpm::Error> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(rpm::Error::TagNotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `SHA256HEADER`, checked to be 64 hex digits and lowercased.
fn sha256header(md: &PackageMetadata) -> Result<Option<String>> {
    let raw = optional(
        md.header
            .get_entry_data_as_string(IndexTag::RPMTAG_SHA256HEADER),
    )
    .map_err(|e| anyhow!("sha256header (tag {TAG_SHA256HEADER}): {e}"))?;
    let Some(raw) = raw else { return Ok(None) };
    ensure!(
        raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit()),
        "sha256header (tag {TAG_SHA256HEADER}) is not 64 hex digits: {raw:?}"
    );
    Ok(Some(raw.to_ascii_lowercase()))
}

/// The package's files as absolute paths, in header order.
fn files(md: &PackageMetadata, checked: &Checked<'_>) -> Result<Vec<String>> {
    let basenames = checked.count_of(TAG_BASENAMES);
    let dirindexes = checked.count_of(TAG_DIRINDEXES);
    if basenames.is_none() && dirindexes.is_none() && checked.count_of(TAG_OLDFILENAMES).is_some() {
        return md
            .header
            .get_entry_data_as_string_array(IndexTag::RPMTAG_OLDFILENAMES)
            .map(|v| v.into_iter().map(str::to_owned).collect())
            .map_err(|e| anyhow!("old file names: {e}"));
    }
    let split = md
        .get_file_paths_split()
        .map_err(|e| anyhow!("file list: {e}"))?;
    // The crate zips basenames with dirindexes and silently drops extras.
    ensure!(
        basenames == dirindexes && split.len() == basenames.unwrap_or(0) as usize,
        "file list: {} basenames but {} dirindexes",
        basenames.unwrap_or(0),
        dirindexes.unwrap_or(0)
    );
    Ok(split
        .into_iter()
        .map(|(dir, base)| format!("{dir}{base}"))
        .collect())
}
