//! File contents named by a config: `data:` URLs, Butane's `inline` and
//! `local`, gzip compression and `verification.hash`. Remote URLs cannot
//! be fetched at build time and are refused, naming the field.

use std::io::Read;

use cap_std::fs::Dir;
use sha2::Digest;

use super::config::{Loc, Problems};

/// The largest resource accepted, before and after decompression.
pub const MAX_SIZE: u64 = 1 << 30;

/// URL schemes Ignition fetches over the network: refused at build time.
const REMOTE_SCHEMES: &[&str] = &["http", "https", "s3", "tftp", "gs", "arn"];

/// One resource as a config describes it (`contents`, an `append` entry).
#[derive(Debug, Default, Clone, Copy)]
pub struct Resource<'a> {
    /// `source`: a URL.
    pub source: Option<&'a str>,
    /// Butane `inline`: the text itself.
    pub inline: Option<&'a str>,
    /// Butane `local`: a file under `--files-dir`.
    pub local: Option<&'a str>,
    /// `compression`: `gzip` or none.
    pub compression: Option<&'a str>,
    /// `verification.hash`: `sha256-HEX` or `sha512-HEX`.
    pub hash: Option<&'a str>,
    /// `http_headers` was given (only meaningful for remote URLs).
    pub http_headers: bool,
}

/// Where Butane's `local` files are read from.
#[derive(Debug, Clone, Copy)]
pub struct Local<'a> {
    /// `--files-dir`, opened at the CLI edge.
    pub dir: Option<&'a Dir>,
}

impl Local<'_> {
    /// Read a `local` file; `None` (with a problem recorded) when it cannot be.
    pub fn read(&self, at: &Loc, rel: &str, problems: &mut Problems) -> Option<Vec<u8>> {
        let Some(dir) = self.dir else {
            problems.push(
                at,
                format!("{rel:?} is a local file, but no --files-dir was given"),
            );
            return None;
        };
        let escapes = rel.starts_with('/') || rel.split('/').any(|c| c == "..");
        if escapes || rel.is_empty() {
            problems.push(
                at,
                format!("{rel:?} must be a relative path inside --files-dir"),
            );
            return None;
        }
        let read = || -> std::io::Result<Vec<u8>> {
            let file = dir.open(rel)?;
            let mut out = Vec::new();
            file.take(MAX_SIZE + 1).read_to_end(&mut out)?;
            Ok(out)
        };
        match read() {
            Ok(bytes) if bytes.len() as u64 > MAX_SIZE => {
                problems.push(at, format!("{rel}: larger than {MAX_SIZE} bytes"));
                None
            }
            Ok(bytes) => Some(bytes),
            Err(e) => {
                problems.push(at, format!("{rel}: cannot read from --files-dir: {e}"));
                None
            }
        }
    }
}

/// The URL scheme, lowercased, when the text has one.
fn scheme(url: &str) -> Option<String> {
    let (scheme, _) = url.split_once(':')?;
    let valid = !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    valid.then(|| scheme.to_ascii_lowercase())
}

/// Decode a `source` URL: only `data:` URLs can be honoured at build time.
pub fn fetch(at: &Loc, url: &str, problems: &mut Problems) -> Option<Vec<u8>> {
    match scheme(url).as_deref() {
        Some("data") => match data_url::DataUrl::process(url) {
            Ok(d) => match d.decode_to_vec() {
                Ok((body, _)) => Some(body),
                Err(_) => {
                    problems.push(at, "invalid base64 in the data: URL");
                    None
                }
            },
            Err(e) => {
                problems.push(at, format!("invalid data: URL ({e:?})"));
                None
            }
        },
        Some(s) if REMOTE_SCHEMES.contains(&s) => {
            problems.push(
                at,
                format!(
                    "remote URL ({s}) cannot be fetched at build time: download it in the \
                     Containerfile and use contents.local (Butane) or a data: URL"
                ),
            );
            None
        }
        Some(s) => {
            problems.push(
                at,
                format!("URL scheme {s:?} is not supported (only data: URLs)"),
            );
            None
        }
        None => {
            problems.push(at, format!("{url:?} is not a URL"));
            None
        }
    }
}

/// Resolve a resource to bytes. `None` means "no contents given"; problems
/// are recorded against `at` and its fields.
pub fn load(
    at: &Loc,
    r: &Resource,
    local: Local,
    problems: &mut Problems,
) -> Option<Option<Vec<u8>>> {
    let before = problems.len();
    if r.http_headers {
        problems.push(
            &at.key("http_headers"),
            "HTTP headers only apply to remote URLs, which cannot be fetched at build time",
        );
    }
    let given = [r.source.is_some(), r.inline.is_some(), r.local.is_some()]
        .iter()
        .filter(|&&b| b)
        .count();
    if given > 1 {
        problems.push(at, "give only one of source, inline and local");
        return None;
    }
    let raw = if let Some(url) = r.source {
        fetch(&at.key("source"), url, problems)
    } else if let Some(text) = r.inline {
        Some(text.as_bytes().to_vec())
    } else if let Some(rel) = r.local {
        local.read(&at.key("local"), rel, problems)
    } else {
        if r.compression.is_some_and(|c| !c.is_empty()) || r.hash.is_some() {
            problems.push(at, "compression and verification need a source");
        }
        return (problems.len() == before).then_some(None);
    };
    let raw = raw?;
    let data = match r.compression.filter(|c| !c.is_empty()) {
        None => raw,
        Some("gzip") if r.source.is_some() => {
            let mut out = Vec::new();
            let dec = flate2::read::GzDecoder::new(raw.as_slice());
            match dec.take(MAX_SIZE + 1).read_to_end(&mut out) {
                Ok(n) if n as u64 > MAX_SIZE => {
                    problems.push(
                        &at.key("compression"),
                        format!("decompresses to more than {MAX_SIZE} bytes"),
                    );
                    return None;
                }
                Ok(_) => out,
                Err(e) => {
                    problems.push(&at.key("compression"), format!("invalid gzip data: {e}"));
                    return None;
                }
            }
        }
        Some("gzip") => {
            problems.push(&at.key("compression"), "compression applies to source only");
            return None;
        }
        Some(other) => {
            problems.push(
                &at.key("compression"),
                format!("compression {other:?} is not supported (only gzip)"),
            );
            return None;
        }
    };
    if let Some(hash) = r.hash {
        verify(&at.key("verification").key("hash"), hash, &data, problems)?;
    }
    (problems.len() == before).then_some(Some(data))
}

/// Check `verification.hash` (of the decompressed data, as Ignition does).
fn verify(at: &Loc, hash: &str, data: &[u8], problems: &mut Problems) -> Option<()> {
    let (algo, want) = hash.split_once('-').unwrap_or(("", ""));
    let got = match algo {
        "sha256" => hex::encode(sha2::Sha256::digest(data)),
        "sha512" => hex::encode(sha2::Sha512::digest(data)),
        _ => {
            problems.push(at, format!("{hash:?}: expected sha256-HEX or sha512-HEX"));
            return None;
        }
    };
    if !got.eq_ignore_ascii_case(want) {
        problems.push(
            at,
            format!("the contents do not match: they are {algo}-{got}"),
        );
        return None;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::config::Style;

    fn at() -> Loc {
        Loc::root(Style::Ignition)
            .key("storage")
            .key("files")
            .index(0)
            .key("contents")
    }

    fn ok(r: Resource) -> Option<Vec<u8>> {
        let mut p = Problems::default();
        let out = load(&at(), &r, Local { dir: None }, &mut p);
        assert!(p.is_empty(), "{p:?}");
        out.unwrap()
    }

    fn err(r: Resource) -> String {
        let mut p = Problems::default();
        assert!(load(&at(), &r, Local { dir: None }, &mut p).is_none());
        p.into_result("x").unwrap_err().to_string()
    }

    #[test]
    fn data_urls_decode() {
        let src = |s| Resource {
            source: Some(s),
            ..Default::default()
        };
        assert_eq!(ok(src("data:,hello%20world%0A")).unwrap(), b"hello world\n");
        assert_eq!(ok(src("data:;base64,aGk=")).unwrap(), b"hi");
        assert_eq!(
            ok(src("data:text/plain;charset=utf-8;base64,aGk=")).unwrap(),
            b"hi"
        );
        assert_eq!(ok(Resource::default()), None);
    }

    #[test]
    fn remote_urls_are_refused_naming_the_field() {
        for url in [
            "https://example.com/x",
            "s3://b/k",
            "tftp://h/f",
            "HTTP://x/y",
        ] {
            let e = err(Resource {
                source: Some(url),
                ..Default::default()
            });
            assert!(
                e.contains("/storage/files/0/contents/source: remote URL"),
                "{e}"
            );
        }
        let e = err(Resource {
            source: Some("file:///etc/passwd"),
            ..Default::default()
        });
        assert!(e.contains("not supported"), "{e}");
    }

    #[test]
    fn gzip_and_hashes() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"compressed\n").unwrap();
        let b64 = base64_encode(&gz.finish().unwrap());
        let url = format!("data:;base64,{b64}");
        let sha = hex::encode(sha2::Sha512::digest(b"compressed\n"));
        let hash = format!("sha512-{sha}");
        let r = Resource {
            source: Some(&url),
            compression: Some("gzip"),
            hash: Some(&hash),
            ..Default::default()
        };
        assert_eq!(ok(r).unwrap(), b"compressed\n");
        let bad = Resource {
            hash: Some("sha256-00"),
            ..r
        };
        assert!(err(bad).contains("/contents/verification/hash"));
    }

    fn base64_encode(data: &[u8]) -> String {
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}
