//! A real registry for tests: Debian's `docker-registry` (the
//! distribution registry) on 127.0.0.1 with a free port, htpasswd auth
//! (bcrypt, by `htpasswd -B`) and TLS with a throwaway self-signed
//! certificate (by the `openssl` CLI). The config file is written here;
//! the registry is stopped when the [`Registry`] is dropped, or when the
//! test process is gone (a once-per-process fixture is never dropped).

use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The registry's one user.
pub const USER: &str = "linter";
/// That user's password.
pub const PASSWORD: &str = "s3cret-for-tests";

/// A running registry.
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// A `--cert-dir` for skopeo and buildah: the registry's certificate as
    /// `ca.crt`.
    pub cert_dir: PathBuf,
    /// A containers auth.json with [`USER`]'s credentials for [`Registry::host`].
    pub authfile: PathBuf,
    dir: tempfile::TempDir,
    child: Child,
}

/// Why the registry cannot run here (`docker-registry`, `htpasswd` or
/// `openssl` missing), or `None`. In CI (`CI` set) a missing tool is a
/// failure: scripts/install-deps installs them.
pub fn unavailable() -> Option<String> {
    for (tool, package) in [
        ("docker-registry", "docker-registry"),
        ("htpasswd", "apache2-utils"),
        ("openssl", "openssl"),
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            assert!(
                std::env::var_os("CI").is_none(),
                "{tool} is not installed, and CI must run the registry tests: \
                 scripts/install-deps installs {package}"
            );
            return Some(format!(
                "{tool} is not installed (apt-get install {package})"
            ));
        }
    }
    None
}

impl Registry {
    /// Start a registry under a fresh scratch dir and wait until it
    /// answers. Panics on failure.
    pub fn start() -> Registry {
        let dir = super::scratch_dir("registry-");
        let d = dir.path();
        let cert = d.join("cert.pem");
        let key = d.join("key.pem");
        super::check(
            Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args(["-subj", "/CN=127.0.0.1"])
                .args(["-addext", "subjectAltName=IP:127.0.0.1"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert),
        );
        let cert_dir = d.join("certs");
        fs::create_dir(&cert_dir).unwrap();
        fs::copy(&cert, cert_dir.join("ca.crt")).unwrap();
        let htpasswd = super::check(Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]));
        fs::write(d.join("htpasswd"), &htpasswd.stdout).unwrap();

        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let host = format!("127.0.0.1:{port}");
        let config = d.join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: error\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {host}\n  tls:\n    certificate: {cert}\n    key: {key}\n\
                 auth:\n  htpasswd:\n    realm: ostree-finalize-tests\n    path: {htpasswd}\n",
                data = d.join("data").display(),
                cert = cert.display(),
                key = key.display(),
                htpasswd = d.join("htpasswd").display(),
            ),
        )
        .unwrap();
        let log = fs::File::create(d.join("registry.log")).unwrap();
        // The fixture lives in a static, which is never dropped: a shell
        // stops the registry once this test process is gone (or on TERM,
        // from Drop).
        let watch = format!(
            "docker-registry serve \"$1\" & reg=$!; trap 'kill $reg; exit' TERM; \
             while kill -0 {} 2>/dev/null && kill -0 $reg 2>/dev/null; do sleep 0.5; done; \
             kill $reg 2>/dev/null; wait $reg",
            std::process::id()
        );
        let child = Command::new("sh")
            .args(["-c", &watch, "sh"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        let authfile = d.join("auth.json");
        write_authfile(&authfile, &host, PASSWORD);
        let mut registry = Registry {
            host,
            cert_dir,
            authfile,
            dir,
            child,
        };
        registry.wait_until_it_answers();
        registry
    }

    fn wait_until_it_answers(&mut self) {
        let started = Instant::now();
        while TcpStream::connect(&self.host).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "docker-registry exited ({status}):\n{}",
                    fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "docker-registry did not answer on {} in 20 s",
                self.host
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// An auth.json for this registry with `password` (a wrong one, for
    /// the refused-login case).
    pub fn authfile_with(&self, password: &str) -> PathBuf {
        let path = self
            .dir
            .path()
            .join(format!("auth-{}.json", password.len()));
        write_authfile(&path, &self.host, password);
        path
    }

    /// `--creds USER:PASSWORD` for buildah and skopeo.
    pub fn creds(&self) -> String {
        format!("{USER}:{PASSWORD}")
    }

    /// `docker://HOST/NAME`.
    pub fn reference(&self, name: &str) -> String {
        format!("docker://{}/{name}", self.host)
    }

    /// The scratch dir (for the caller's own files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn write_authfile(path: &Path, host: &str, password: &str) {
    let auth = base64(format!("{USER}:{password}").as_bytes());
    let mut f = fs::File::create(path).unwrap();
    writeln!(f, r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#).unwrap();
}

/// Standard base64 with padding (auth.json's `auth`).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
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
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
