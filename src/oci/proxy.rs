//! Images read through skopeo's `experimental-image-proxy`: registries
//! (`docker://`), podman's and buildah's storage (`containers-storage:`),
//! a Docker daemon (`docker-daemon:`) and skopeo's `dir:` layout, with the
//! user's registry auth, TLS settings and `registries.conf`, exactly as
//! skopeo itself reads them.
//!
//! The proxy is spoken to with the `containers-image-proxy` crate (the one
//! ostree-ext and bootc use). Debian 12 ships skopeo 1.9.3, whose proxy
//! speaks protocol 0.2.3: only the requests of that version are used
//! (`OpenImage`, `GetManifest`, `GetBlob`, `FinishPipe`), never
//! `GetLayerInfo` (0.2.5) or `GetRawBlob` (0.2.8). The config is fetched
//! as a blob, byte for byte, not with `GetFullConfig`, which re-encodes it
//! (its digest would no longer be the manifest's).
//!
//! The crate is async (tokio). Its runtime stays in this module: one
//! thread owns a current-thread runtime, the skopeo child and the opened
//! images, and serves [`Proxy`]'s blocking calls one at a time. A blob
//! comes back as a plain [`Read`] ([`BlobReader`]) fed from the proxy's
//! pipe through a bounded channel ([`CHANNEL_CHUNKS`] chunks of at most
//! [`super::stream::CHUNK`] bytes), so the layer reader ([`super::stream`],
//! [`super::layer`]) consumes it as it streams, as it consumes a blob read
//! from a file: nothing is copied to disk, memory stays bounded.
//!
//! `containers-storage:` keeps layers uncompressed and serves them by
//! their uncompressed digest only; there the layers are fetched by their
//! `diff_id` (checked as the tar streams), and the compressed digests a
//! pulled image's manifest names are not used. Protocol 0.2.3 has no way to
//! learn an uncompressed layer's size (`GetLayerInfo` came in 0.2.5), and
//! `GetBlob` checks the size it is given once the blob has been sent: a
//! blob of unknown size is asked for with size 0, and only that one
//! complaint (`expected 0 bytes in blob, got N`) is let through. The
//! proxy's own digest check still applies, and the reader checks the
//! `diff_id` itself.

use std::io::{self, Read};
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use containers_image_proxy::{ImageProxy, ImageProxyConfig, OpenedImage};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};

use super::reference::{Reference, Transport};

/// Blob chunks that may wait between the proxy thread and the reader
/// (with [`super::stream::CHUNK`]: at most 8 MiB in flight).
pub const CHANNEL_CHUNKS: usize = 8;

/// How the proxy reaches registries, as skopeo spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyOptions {
    /// `--authfile FILE` (or `REGISTRY_AUTH_FILE`). Default: none given,
    /// and skopeo looks in the containers auth.json default places itself
    /// (`$XDG_RUNTIME_DIR/containers/auth.json`,
    /// `~/.config/containers/auth.json`, `~/.docker/config.json`).
    pub authfile: Option<PathBuf>,
    /// `--tls-verify`. Default: true.
    pub tls_verify: bool,
    /// `--cert-dir DIR`: CA certificates (`*.crt`) and client keys for
    /// the registry. Default: none, the system's and
    /// `/etc/containers/certs.d`.
    pub cert_dir: Option<PathBuf>,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            authfile: None,
            tls_verify: true,
            cert_dir: None,
        }
    }
}

/// What the proxy says about an opened image.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The proxy's handle on the image.
    pub id: usize,
    /// The digest of the image's manifest as stored (before any
    /// conversion), `sha256:HEX`.
    pub manifest_digest: String,
    /// The manifest, converted to OCI by the proxy.
    pub manifest: Vec<u8>,
}

type Chunk = io::Result<Vec<u8>>;

enum Request {
    Open {
        reference: String,
        reply: oneshot::Sender<Result<Opened, String>>,
    },
    Blob {
        image: usize,
        digest: String,
        size: Option<u64>,
        chunks: mpsc::Sender<Chunk>,
    },
}

/// A running `skopeo experimental-image-proxy`, shared by every image
/// opened through it. Stops the child when dropped.
pub struct Proxy {
    requests: Option<mpsc::UnboundedSender<Request>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// skopeo's TMPDIR; removed after skopeo has exited (fields drop
    /// after [`Proxy::drop`] has joined the thread).
    _tmp: tempfile::TempDir,
}

/// A fresh directory under `$TMPDIR`, else `/var/tmp` (where skopeo puts
/// big files by default).
fn private_tmpdir() -> io::Result<tempfile::TempDir> {
    let parent = std::env::var_os("TMPDIR")
        .filter(|t| !t.is_empty())
        .map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from);
    tempfile::Builder::new()
        .prefix("ostree-finalize-skopeo-")
        .tempdir_in(parent)
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").finish_non_exhaustive()
    }
}

impl Proxy {
    /// Start skopeo's proxy; `reference` (the first image it is for)
    /// names the error when skopeo is missing or too old.
    pub fn start(opts: &ProxyOptions, reference: &Reference) -> Result<Proxy> {
        let (requests, mut incoming) = mpsc::unbounded_channel::<Request>();
        let (started, ready) = oneshot::channel::<Result<(), String>>();
        // skopeo's containers-storage source writes each layer it serves to
        // a temporary file first, and skopeo 1.9.3 may exit before removing
        // the last one: a private TMPDIR, removed when the proxy stops,
        // keeps none behind.
        let tmp = private_tmpdir().context("cannot make a temporary directory for skopeo")?;
        // (skopeo 1.9.3 reads only its global --tmpdir; newer ones TMPDIR.)
        let mut skopeo = std::process::Command::new("skopeo");
        skopeo
            .arg("--tmpdir")
            .arg(tmp.path())
            .env("TMPDIR", tmp.path());
        let mut config = ImageProxyConfig::default();
        config.skopeo_cmd = Some(skopeo);
        config.authfile = opts.authfile.clone();
        config.certificate_directory = opts.cert_dir.clone();
        config.insecure_skip_tls_verification = Some(!opts.tls_verify);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime for skopeo's image proxy")?;
        let thread = std::thread::Builder::new()
            .name("image-proxy".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let proxy = match ImageProxy::new_with_config(config).await {
                        Ok(p) => {
                            let _ = started.send(Ok(()));
                            p
                        }
                        Err(e) => {
                            let _ = started.send(Err(start_error(&e)));
                            return;
                        }
                    };
                    let mut images: Vec<OpenedImage> = Vec::new();
                    while let Some(request) = incoming.recv().await {
                        serve(&proxy, &mut images, request).await;
                    }
                    let _ = proxy.finalize().await;
                });
            })
            .context("cannot start a thread for skopeo's image proxy")?;
        let proxy = Proxy {
            requests: Some(requests),
            thread: Some(thread),
            _tmp: tmp,
        };
        match ready.blocking_recv() {
            Ok(Ok(())) => Ok(proxy),
            Ok(Err(why)) => bail!("{reference}: {why}"),
            Err(_) => bail!("{reference}: skopeo's image proxy stopped while starting"),
        }
    }

    fn send(&self, request: Request) -> Result<()> {
        self.requests
            .as_ref()
            .and_then(|r| r.send(request).ok())
            .ok_or_else(|| anyhow!("skopeo's image proxy has stopped"))
    }

    /// Open an image and read its manifest. The error says
    /// what to do about a refused login, an unknown image or a TLS
    /// failure.
    pub fn open(&self, reference: &Reference) -> Result<Opened> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Open {
            reference: reference.to_string(),
            reply,
        })?;
        match answer.blocking_recv() {
            Ok(Ok(opened)) => Ok(opened),
            Ok(Err(why)) => bail!("{}", open_error(reference, &why)),
            Err(_) => bail!("{reference}: skopeo's image proxy stopped"),
        }
    }

    /// Stream a blob of an opened image. `size`: its size when known
    /// (checked by the proxy; see the module docs for an unknown size).
    /// The reader ends in an error if the proxy reports one (a digest or
    /// size mismatch, a dropped connection).
    pub fn blob(&self, image: usize, digest: &str, size: Option<u64>) -> Result<BlobReader> {
        let (chunks, rx) = mpsc::channel(CHANNEL_CHUNKS);
        self.send(Request::Blob {
            image,
            digest: digest.to_string(),
            size,
            chunks,
        })?;
        Ok(BlobReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
        })
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Closing the request channel ends the serving loop, which shuts
        // skopeo down.
        self.requests.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serve one request on the proxy thread.
async fn serve(proxy: &ImageProxy, images: &mut Vec<OpenedImage>, request: Request) {
    match request {
        Request::Open { reference, reply } => {
            let opened = async {
                let img = proxy.open_image(&reference).await?;
                let (manifest_digest, manifest) = proxy.fetch_manifest_raw_oci(&img).await?;
                images.push(img);
                Ok::<_, containers_image_proxy::Error>(Opened {
                    id: images.len() - 1,
                    manifest_digest,
                    manifest,
                })
            }
            .await;
            let _ = reply.send(opened.map_err(|e| e.to_string()));
        }
        Request::Blob {
            image,
            digest,
            size,
            chunks,
        } => {
            let failed = |e: String| {
                let chunks = chunks.clone();
                async move {
                    let _ = chunks.send(Err(io::Error::other(e))).await;
                }
            };
            let Some(img) = images.get(image) else {
                return failed("no such opened image".into()).await;
            };
            let digest: oci_spec::image::Digest = match digest.parse() {
                Ok(d) => d,
                Err(e) => return failed(format!("{digest}: {e}")).await,
            };
            let (mut reader, finish) = match proxy.get_blob(img, &digest, size.unwrap_or(0)).await {
                Ok(pair) => pair,
                Err(e) => return failed(e.to_string()).await,
            };
            let tx = chunks.clone();
            let copy = async move {
                loop {
                    let mut buf = vec![0u8; super::stream::CHUNK];
                    let n = match reader.read(&mut buf).await {
                        Ok(n) => n,
                        Err(e) => return Err(e.to_string()),
                    };
                    if n == 0 {
                        return Ok(());
                    }
                    buf.truncate(n);
                    if tx.send(Ok(buf)).await.is_err() {
                        // The reader gave up (an error in the layer); the
                        // pipe is dropped here, and skopeo stops writing.
                        return Ok(());
                    }
                }
            };
            let (copied, finished) = tokio::join!(copy, finish);
            let error = match (copied, finished) {
                (Err(e), _) => Some(e),
                (Ok(()), Err(e)) if size.is_none() && unknown_size_complaint(&e.to_string()) => {
                    None
                }
                (Ok(()), Err(e)) => Some(e.to_string()),
                (Ok(()), Ok(())) => None,
            };
            if let Some(e) = error {
                failed(e).await;
            }
        }
    }
}

/// Whether the proxy's complaint at the end of a blob is only that it was
/// asked for with size 0 (an unknown size): `expected 0 bytes in blob, got
/// N`, and nothing else (its digest check comes after, and replaces this
/// message when it fails).
fn unknown_size_complaint(error: &str) -> bool {
    error
        .split_once("expected 0 bytes in blob, got ")
        .is_some_and(|(_, n)| !n.is_empty() && n.trim().bytes().all(|b| b.is_ascii_digit()))
}

/// A blob as the proxy streams it; ends with the proxy's error, if any.
#[derive(Debug)]
pub struct BlobReader {
    rx: mpsc::Receiver<Chunk>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Why skopeo's proxy did not start, and what to do.
fn start_error(e: &containers_image_proxy::Error) -> String {
    let text = e.to_string();
    let missing = matches!(e, containers_image_proxy::Error::SkopeoSpawnError(io)
        if io.kind() == io::ErrorKind::NotFound);
    if missing {
        return "reading this transport needs skopeo (its experimental-image-proxy), and \
                skopeo is not installed. Install skopeo (the Debian, Fedora and RHEL package \
                is `skopeo`), or copy the image on a machine that has it (`skopeo copy REF \
                oci:DIR:TAG`) and lint oci:DIR:TAG, which needs no skopeo"
            .to_string();
    }
    format!(
        "skopeo's image proxy did not start ({text}). lint needs skopeo 1.6 or newer \
         (image proxy protocol 0.2.3); or copy the image with `skopeo copy REF oci:DIR:TAG` \
         and lint oci:DIR:TAG"
    )
}

/// The message for an image the proxy could not open: the reference, the
/// proxy's reason, and what to do about it.
pub fn open_error(reference: &Reference, why: &str) -> String {
    let lower = why.to_lowercase();
    let place = match (reference.transport, reference.registry()) {
        (_, Some(host)) => format!("the registry {host}"),
        (Transport::Docker, None) => "the default registry".to_string(),
        (t, _) => format!("{}:", t.name()),
    };
    let what = if ["unauthorized", "authentication required", "401", "denied"]
        .iter()
        .any(|k| lower.contains(k))
    {
        format!(
            "{place} refused the login. Give credentials with --authfile FILE (or \
             REGISTRY_AUTH_FILE), or log in first with `skopeo login {}`",
            reference
                .registry()
                .unwrap_or_else(|| "REGISTRY".to_string())
        )
    } else if ["x509", "certificate", "tls:", "https client"]
        .iter()
        .any(|k| lower.contains(k))
    {
        format!(
            "the TLS connection to {place} failed. Pass the registry's CA with --cert-dir DIR \
             (a directory of *.crt files), or, for a test registry only, --tls-verify=false"
        )
    } else if [
        "manifest unknown",
        "not found",
        "does not exist",
        "no such image",
        "identifier is not an image",
        "name unknown",
        "no such file",
    ]
    .iter()
    .any(|k| lower.contains(k))
    {
        format!(
            "no such image in {place}. Check the name and tag (`skopeo inspect {reference}` \
             shows what skopeo sees)"
        )
    } else {
        format!("{place} could not be read")
    };
    format!("{reference}: {what} ({})", why.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_unknown_size_complaint_is_let_through() {
        assert!(unknown_size_complaint(
            "failed to invoke method FinishPipe: expected 0 bytes in blob, got 2048"
        ));
        assert!(!unknown_size_complaint(
            "failed to invoke method FinishPipe: corrupted blob, expecting sha256:ab"
        ));
        assert!(!unknown_size_complaint(
            "expected 10 bytes in blob, got 2048"
        ));
    }

    #[test]
    fn open_errors_say_what_to_do() {
        let r = Reference::parse("docker://127.0.0.1:5000/os:1").unwrap();
        let m = open_error(
            &r,
            "reading manifest 1 in 127.0.0.1:5000/os: unauthorized: authentication required",
        );
        assert!(
            m.contains("registry 127.0.0.1:5000 refused the login"),
            "{m}"
        );
        assert!(m.contains("--authfile"), "{m}");
        let m = open_error(
            &r,
            "reading manifest 1 in 127.0.0.1:5000/os: manifest unknown",
        );
        assert!(m.contains("no such image"), "{m}");
        let m = open_error(&r, "x509: certificate signed by unknown authority");
        assert!(m.contains("--cert-dir"), "{m}");
        let s = Reference::parse("containers-storage:localhost/os").unwrap();
        let m = open_error(&s, "identifier is not an image");
        assert!(
            m.starts_with("containers-storage:localhost/os: no such image"),
            "{m}"
        );
    }
}
