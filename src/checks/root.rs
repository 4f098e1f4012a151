//! The root's own layout, a pure function of the tree (no base needed):
//! `kargs-invalid`, `etc-and-usr-etc`, `var-run-not-link`,
//! `api-dir-missing`, `ostree-root-layout`, `composefs-disabled`.
//!
//! These hold for every ostree or bootc root, so they run with a base and
//! without one, and `snapshot` runs them before it records a base. They
//! are what bootc's `container lint` calls `bootc-kargs`, `etc-usretc`,
//! `var-run`, `api-base-directories`, `baseimage-root` and
//! `baseimage-composefs`.
//!
//! The checks of what a root must contain (`api-dir-missing`,
//! `ostree-root-layout`, `composefs-disabled`) apply to an OS tree: one
//! with an os-release file (`/usr/lib/os-release` or `/etc/os-release`,
//! which systemd requires of every OS). A tree without one (a test's few
//! files, a layer of an application image) is not an OS root, and nothing
//! is missing from it. The checks of what a root must not contain apply to
//! every tree.

use serde::Deserialize;

use super::{Check, Finding, Level};
use crate::manifest::Kind;
use crate::rootfs::Tree;
use crate::zones::{KARGS_DIR, PREPARE_ROOT_CONF, is_kargs_file, is_run_link_target};

/// `kargs-invalid`.
pub const KARGS_INVALID: Check = Check {
    id: "kargs-invalid",
    default_level: Level::Deny,
    overridable: false,
    needs_base: false,
    summary: "/usr/lib/bootc/kargs.d is not a directory of valid TOML kargs files",
    description: "bootc reads the kernel arguments an image asks for from the `*.toml` \
files in /usr/lib/bootc/kargs.d, at install and at every upgrade. Each must be TOML \
with a `kargs` array of strings and, optionally, a `match-architectures` array of \
strings, and nothing else; bootc refuses to install or upgrade to an image where one \
does not parse, and it cannot read kargs.d at all when it is a file. Denied: kargs.d \
that is not a directory (a file, or a symlink, which is not followed); a `*.toml` \
entry that is not a regular UTF-8 file of at most 64 KiB; a file that is not TOML, \
lacks `kargs`, has a value of the wrong type or an unknown key. Files not named \
`*.toml` are ignored, as bootc ignores them. Fix: write each file as \
`kargs = [\"console=ttyS0\", \"nosmt\"]`, optionally with \
`match-architectures = [\"x86_64\"]` (Rust's architecture names).",
};

/// `etc-and-usr-etc`.
pub const ETC_AND_USR_ETC: Check = Check {
    id: "etc-and-usr-etc",
    default_level: Level::Deny,
    overridable: false,
    needs_base: false,
    summary: "Both /etc and /usr/etc exist",
    description: "ostree keeps the image's default configuration in /usr/etc on a \
deployed system and merges it into /etc; its container import moves the image's /etc \
there itself. An image carrying both has two sources of configuration, and which one \
wins is undefined; bootc refuses such images. Fix: keep configuration in /etc and \
remove /usr/etc (`--usr-etc` is only for trees fed straight to `ostree commit`, which \
have no /etc).",
};

/// `var-run-not-link`.
pub const VAR_RUN_NOT_LINK: Check = Check {
    id: "var-run-not-link",
    default_level: Level::Deny,
    overridable: false,
    needs_base: false,
    summary: "/var/run is not a symlink to ../run",
    description: "/var/run is a compatibility name for /run, which is a tmpfs at \
runtime: systemd-tmpfiles makes it the link `/var/run -> ../run`. A real directory \
there (often left by a package's %post or a build step that wrote a pid file) is /var \
state that hides the link, so programs writing to /var/run miss /run, and content in it \
never reaches existing machines. Denied whenever /var/run exists and is not a symlink \
to ../run (or /run); a tree without /var/run passes, as systemd creates the link at \
boot. Fix: `rm -rf /var/run && ln -s ../run /var/run` in the build, and write runtime \
files under /run at runtime (tmpfiles.d for directories).",
};

/// `api-dir-missing`.
pub const API_DIR_MISSING: Check = Check {
    id: "api-dir-missing",
    default_level: Level::Deny,
    overridable: false,
    needs_base: false,
    summary: "An API directory (/dev, /proc, /sys, /run, /tmp, /var) is missing or not a directory",
    description: "systemd mounts the API filesystems (/dev, /proc, /sys, /run, /tmp) \
on these directories at boot, and ostree binds the machine's state onto /var: none of \
them can be created on a read-only root, so a deployment without one does not boot. \
Checked on OS trees (with an os-release file). Fix: keep the directories of the base \
(`mkdir -p /dev /proc /sys /run /tmp /var` in the build); never replace one with a \
symlink or a file.",
};

/// `ostree-root-layout`.
pub const OSTREE_ROOT_LAYOUT: Check = Check {
    id: "ostree-root-layout",
    default_level: Level::Deny,
    overridable: false,
    needs_base: false,
    summary: "/sysroot is missing, or /ostree is not the link sysroot/ostree",
    description: "On a deployed ostree system the physical root is mounted on \
/sysroot, and /ostree is the relative link `sysroot/ostree` through which ostree and \
bootc find the repository and deployments. A root without /sysroot or with a different \
/ostree boots into a system that cannot update itself. Checked on OS trees (with an \
os-release file), with a base and without one: a derived build that removes /sysroot \
or relinks /ostree fails. Fix: `mkdir /sysroot && ln -sfn sysroot/ostree /ostree` (as \
bootc's reference base content has them), and never touch them in a derived build.",
};

/// `composefs-disabled`.
pub const COMPOSEFS_DISABLED: Check = Check {
    id: "composefs-disabled",
    default_level: Level::Warn,
    overridable: false,
    needs_base: false,
    summary: "composefs is not enabled in /usr/lib/ostree/prepare-root.conf",
    description: "ostree-prepare-root, in the initramfs, mounts the deployment as \
composefs when its configuration says so: the read-only /usr is then verified \
content, and accidental or hostile changes to the deployment are not mounted. bootc \
expects it. The configuration is /etc/ostree/prepare-root.conf when the image has one, \
else /usr/lib/ostree/prepare-root.conf; composefs is enabled when its `[composefs]` \
section has `enabled` set to yes, true, 1, maybe, verity or signed (ostree's values). \
Warned on OS trees (with an os-release file) when the file is missing, unreadable, or \
leaves composefs off. Fix (for base-image maintainers): ship \
/usr/lib/ostree/prepare-root.conf with `[composefs]` and `enabled = yes`, and \
regenerate the initramfs so it carries the file.",
};

/// Directories the API filesystems and /var are mounted on.
pub const API_DIRS: &[&str] = &["/dev", "/proc", "/sys", "/run", "/tmp", "/var"];

/// Run every structural check on `tree`.
pub fn check(tree: &Tree, out: &mut Vec<Finding>) {
    kargs(tree, out);
    usr_etc(tree, out);
    var_run(tree, out);
    if is_os_root(tree) {
        api_dirs(tree, out);
        ostree_root(tree, out);
        composefs(tree, out);
    }
}

/// Whether the tree is an OS root: it has an os-release file.
pub fn is_os_root(tree: &Tree) -> bool {
    tree.get("/usr/lib/os-release").is_some() || tree.get("/etc/os-release").is_some()
}

fn deny(check: &Check, path: &str, message: String) -> Finding {
    Finding::new(check, Some(path.to_string()), message)
}

/// A kargs.d file, as bootc reads it.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[allow(dead_code)]
struct KargsFile {
    kargs: Vec<String>,
    #[serde(default)]
    match_architectures: Option<Vec<String>>,
}

/// Why a kargs.d file's text is not one bootc reads, or None.
pub fn kargs_error(text: &str) -> Option<String> {
    toml::from_str::<KargsFile>(text)
        .err()
        .map(|e| e.to_string().trim_end().replace('\n', " "))
}

const KARGS_FIX: &str = "Write it as kargs = [\"ARG\", ...] with an optional \
match-architectures = [\"x86_64\", ...], and nothing else.";

fn kargs(tree: &Tree, out: &mut Vec<Finding>) {
    let Some(dir) = tree.get(KARGS_DIR) else {
        return;
    };
    if dir.kind != Kind::Dir {
        out.push(deny(
            &KARGS_INVALID,
            KARGS_DIR,
            format!(
                "{KARGS_DIR} is a {}, not a directory; bootc cannot read the image's kernel \
                 arguments and refuses it. Make it a directory of *.toml files.",
                dir.kind.name()
            ),
        ));
        return;
    }
    for e in tree.entries.iter().filter(|e| is_kargs_file(&e.path)) {
        let why = if e.kind != Kind::File {
            Some(format!(
                "is a {}, not a regular file; bootc reads every *.toml entry here",
                e.kind.name()
            ))
        } else {
            match &e.text {
                Some(text) => kargs_error(text).map(|err| format!("is not a kargs file: {err}")),
                None if e.size > 64 * 1024 => Some(format!(
                    "is {} bytes; a kargs file holds a few arguments (at most 64 KiB)",
                    e.size
                )),
                None => Some("is not UTF-8 text".to_string()),
            }
        };
        if let Some(why) = why {
            out.push(deny(
                &KARGS_INVALID,
                &e.path,
                format!(
                    "{} {why}. bootc refuses to install or upgrade to this image. {KARGS_FIX}",
                    e.path
                ),
            ));
        }
    }
}

fn usr_etc(tree: &Tree, out: &mut Vec<Finding>) {
    if tree.get("/etc").is_some() && tree.get("/usr/etc").is_some() {
        out.push(deny(
            &ETC_AND_USR_ETC,
            "/usr/etc",
            "both /etc and /usr/etc exist; ostree keeps /usr/etc for itself on a deployed \
             system, and which configuration wins is undefined. Move what /usr/etc holds \
             into /etc and remove /usr/etc."
                .to_string(),
        ));
    }
}

/// Whether /var/run is the link systemd makes.
pub fn var_run_is_link(e: &crate::manifest::Entry) -> bool {
    e.kind == Kind::Symlink && e.target.as_deref().is_some_and(is_run_link_target)
}

fn var_run(tree: &Tree, out: &mut Vec<Finding>) {
    let Some(e) = tree.get("/var/run") else {
        return;
    };
    if var_run_is_link(e) {
        return;
    }
    let what = match e.kind {
        Kind::Symlink => format!(
            "a symlink to {}",
            e.target.as_deref().unwrap_or("an unreadable target")
        ),
        k => format!("a {}", k.name()),
    };
    out.push(deny(
        &VAR_RUN_NOT_LINK,
        "/var/run",
        format!(
            "/var/run is {what}, not the link to ../run: programs writing there miss the \
             runtime /run, and its content never reaches existing machines. Run \
             `rm -rf /var/run && ln -s ../run /var/run` in the build."
        ),
    ));
}

/// A top-level directory as the walk saw it: an entry, a never-scanned
/// entry, or a mount point (always a directory).
fn top_kind(tree: &Tree, path: &str) -> Option<Kind> {
    if tree.is_mount(path) {
        return Some(Kind::Dir);
    }
    tree.get_any(path).map(|e| e.kind)
}

fn api_dirs(tree: &Tree, out: &mut Vec<Finding>) {
    for d in API_DIRS {
        let msg = match top_kind(tree, d) {
            Some(Kind::Dir) => continue,
            Some(k) => format!(
                "{d} is a {}, not a directory; the system mounts an API filesystem (or, for \
                 /var, the machine's state) there at boot and cannot on a read-only root. \
                 Make it a directory again.",
                k.name()
            ),
            None => format!(
                "{d} is missing; the system mounts an API filesystem (or, for /var, the \
                 machine's state) there at boot and cannot create it on a read-only root. \
                 Add `mkdir -p {d}` to the build."
            ),
        };
        out.push(deny(&API_DIR_MISSING, d, msg));
    }
}

fn ostree_root(tree: &Tree, out: &mut Vec<Finding>) {
    match top_kind(tree, "/sysroot") {
        Some(Kind::Dir) => {}
        other => {
            let what = other.map_or("missing".to_string(), |k| {
                format!("a {}, not a directory", k.name())
            });
            out.push(deny(
                &OSTREE_ROOT_LAYOUT,
                "/sysroot",
                format!(
                    "/sysroot is {what}; a deployed ostree system mounts its physical root \
                     there. Keep the base's empty /sysroot directory (`mkdir /sysroot`)."
                ),
            ));
        }
    }
    let ostree = tree.get_any("/ostree");
    let ok = ostree
        .is_some_and(|e| e.kind == Kind::Symlink && e.target.as_deref() == Some("sysroot/ostree"));
    if !ok {
        let what = match ostree {
            None => "missing".to_string(),
            Some(e) if e.kind == Kind::Symlink => format!(
                "a symlink to {}",
                e.target.as_deref().unwrap_or("an unreadable target")
            ),
            Some(e) => format!("a {}", e.kind.name()),
        };
        out.push(deny(
            &OSTREE_ROOT_LAYOUT,
            "/ostree",
            format!(
                "/ostree is {what}, not the relative link sysroot/ostree through which \
                 ostree and bootc find the repository on a deployed system. Run \
                 `rm -rf /ostree && ln -s sysroot/ostree /ostree` in the build."
            ),
        ));
    }
}

/// ostree's values of `[composefs] enabled` that turn it on.
const COMPOSEFS_ON: &[&str] = &["yes", "true", "1", "maybe", "verity", "signed"];

/// The value of `key` in `[section]` of a GLib key file (the last one wins,
/// as GLib reads it), trimmed.
pub fn keyfile_value<'a>(text: &'a str, section: &str, key: &str) -> Option<&'a str> {
    let mut current = None;
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name);
            continue;
        }
        if current != Some(section) {
            continue;
        }
        if let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            found = Some(v.trim());
        }
    }
    found
}

fn composefs(tree: &Tree, out: &mut Vec<Finding>) {
    const ETC_CONF: &str = "/etc/ostree/prepare-root.conf";
    let Some(conf) = tree.get(ETC_CONF).or_else(|| tree.get(PREPARE_ROOT_CONF)) else {
        out.push(Finding::new(
            &COMPOSEFS_DISABLED,
            Some(PREPARE_ROOT_CONF.to_string()),
            format!(
                "{PREPARE_ROOT_CONF} is missing, so ostree mounts deployments without \
                 composefs. Ship it with `[composefs]` and `enabled = yes`, and regenerate \
                 the initramfs."
            ),
        ));
        return;
    };
    let path = conf.path.clone();
    let msg = match conf.text.as_deref() {
        None => format!(
            "{path} is not a small UTF-8 file that can be read, so whether composefs is \
             enabled cannot be told. Ship it as a regular file with `[composefs]` and \
             `enabled = yes`."
        ),
        Some(text) => match keyfile_value(text, "composefs", "enabled") {
            Some(v) if COMPOSEFS_ON.contains(&v) => return,
            Some(v) => format!(
                "{path} sets [composefs] enabled = {v}, so ostree mounts deployments \
                 without composefs. Set `enabled = yes` (or verity, signed) and regenerate \
                 the initramfs."
            ),
            None => format!(
                "{path} does not set [composefs] enabled, so ostree mounts deployments \
                 without composefs. Add `[composefs]` with `enabled = yes` and regenerate \
                 the initramfs."
            ),
        },
    };
    out.push(Finding::new(&COMPOSEFS_DISABLED, Some(path), msg));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kargs_files_parse_as_bootc_reads_them() {
        assert_eq!(kargs_error(r#"kargs = ["console=tty0", "nosmt"]"#), None);
        assert_eq!(
            kargs_error("kargs = [\"a\"]\nmatch-architectures = [\"x86_64\", \"aarch64\"]"),
            None
        );
        assert_eq!(kargs_error("kargs = []"), None);
        for bad in [
            "foo = \"bar\"",
            "kargs = [\"a\"]\nfoo = \"bar\"",
            "kargs = \"console=tty0\"",
            "kargs = [1, 2]",
            "kargs = [\"a\"]\nmatch-architectures = \"x86_64\"",
            "kargs = [\"a\"",
            "",
        ] {
            assert!(kargs_error(bad).is_some(), "{bad:?} parsed");
        }
    }

    #[test]
    fn keyfile_values_are_read_by_section() {
        let t = "# c\n[root]\nenabled = no\n[composefs]\n enabled = yes \n";
        assert_eq!(keyfile_value(t, "composefs", "enabled"), Some("yes"));
        assert_eq!(keyfile_value(t, "root", "enabled"), Some("no"));
        assert_eq!(keyfile_value(t, "composefs", "keypath"), None);
        assert_eq!(
            keyfile_value("[composefs]\nenabled=false", "composefs", "enabled"),
            Some("false")
        );
    }
}
