//! Which part of an ostree system a path belongs to. The add-only rule and
//! the layout rewrite both start from this.

use crate::path::{is_beneath, is_within};

/// Directories whose *contents* are runtime-only and cleaned by finalize.
pub const RUNTIME_DIRS: &[&str] = &["/run", "/tmp", "/var/tmp", "/var/cache"];

/// Where rpm may keep its database, and rpm-ostree its record of the
/// base's database. Their files change whenever a package is added (and
/// in an image whose files are hardlinks into its ostree repository, the
/// record changes with the database), so they are compared as packages,
/// not as files.
pub const RPMDB_DIRS: &[&str] = &[
    "/usr/lib/sysimage/rpm",
    "/usr/share/rpm",
    "/var/lib/rpm",
    "/usr/lib/sysimage/rpm-ostree-base-db",
];

/// The zone of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// Immutable OS content (`/usr`, and everything not below): add-only.
    Os,
    /// `/etc` and below: configuration, merged three ways at upgrade.
    Etc,
    /// `/var` and below: machine state, never updated from the image.
    Var,
    /// Contents of `/run`, `/tmp`, `/var/tmp`, `/var/cache`.
    Runtime,
}

/// Classify an absolute path.
pub fn zone(path: &str) -> Zone {
    if RUNTIME_DIRS.iter().any(|d| is_beneath(path, d)) {
        Zone::Runtime
    } else if is_beneath(path, "/etc") {
        Zone::Etc
    } else if is_beneath(path, "/var") {
        Zone::Var
    } else {
        Zone::Os
    }
}

/// The tmpfiles.d file finalize generates for `/var` content.
pub const GENERATED_TMPFILES: &str = "/usr/lib/tmpfiles.d/ostree-finalize-var.conf";

/// The sysusers.d file finalize generates for added users and groups.
pub const GENERATED_SYSUSERS: &str = "/usr/lib/sysusers.d/ostree-finalize.conf";

/// Whether the walk keeps a file's text, given its size: small `/etc`
/// files (for diffs), the user databases and tmpfiles.d/sysusers.d files
/// (for the layout planner), and finalize's own generated files whatever
/// their size (a rerun must keep what an earlier run converted). `/usr/etc`
/// counts as `/etc` (a tree finalized with `--usr-etc`).
pub fn text_kept(path: &str, size: u64) -> bool {
    const SMALL: u64 = 64 * 1024;
    const GENERATED_MAX: u64 = 64 * 1024 * 1024;
    if path == GENERATED_TMPFILES || path == GENERATED_SYSUSERS {
        return size <= GENERATED_MAX;
    }
    size <= SMALL
        && (is_beneath(path, "/etc")
            || is_beneath(path, "/usr/etc")
            || path == "/usr/lib/passwd"
            || path == "/usr/lib/group"
            || is_beneath(path, "/usr/lib/tmpfiles.d")
            || is_beneath(path, "/usr/lib/sysusers.d")
            || is_kargs_file(path)
            || path == PREPARE_ROOT_CONF)
}

/// bootc's kernel argument files: `*.toml` directly in this directory.
pub const KARGS_DIR: &str = "/usr/lib/bootc/kargs.d";

/// ostree-prepare-root's configuration in the image (a copy in `/etc`,
/// `/etc/ostree/prepare-root.conf`, takes precedence; `/etc` text is kept
/// anyway).
pub const PREPARE_ROOT_CONF: &str = "/usr/lib/ostree/prepare-root.conf";

/// Whether a symlink target at /var/run is the link systemd makes
/// (`../run`, or `/run`). A /var/run that is anything else is denied by
/// `var-run-not-link`, which then owns the whole subtree: the layout
/// rewrite neither converts nor reports it.
pub fn is_run_link_target(target: &str) -> bool {
    matches!(target, "../run" | "/run")
}

/// Whether bootc reads this path as a kargs.d file.
pub fn is_kargs_file(path: &str) -> bool {
    path.strip_prefix(KARGS_DIR)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|name| !name.contains('/') && name.ends_with(".toml"))
}

/// Is this path inside an rpm database directory?
pub fn in_rpmdb(path: &str) -> bool {
    RPMDB_DIRS.iter().any(|d| is_within(path, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones() {
        assert_eq!(zone("/usr/bin/ls"), Zone::Os);
        assert_eq!(zone("/etc"), Zone::Os);
        assert_eq!(zone("/etc/passwd"), Zone::Etc);
        assert_eq!(zone("/var/lib/x"), Zone::Var);
        assert_eq!(zone("/var/tmp"), Zone::Var);
        assert_eq!(zone("/var/tmp/x"), Zone::Runtime);
        assert_eq!(zone("/run/x"), Zone::Runtime);
        assert_eq!(zone("/etcetera"), Zone::Os);
        assert!(in_rpmdb("/usr/lib/sysimage/rpm/rpmdb.sqlite"));
        assert!(in_rpmdb(
            "/usr/lib/sysimage/rpm-ostree-base-db/rpmdb.sqlite"
        ));
        assert!(!in_rpmdb("/usr/lib/sysimage/rpm-ostree"));
    }
}
