//! The base's links into /var, read from the base (never assumed): Fedora
//! CoreOS ships `opt -> var/opt`, `usr/local -> ../var/usrlocal`,
//! `home -> var/home` and more; bootc images ship none of them. Pure.
//!
//! Two uses: a path is named the same whichever spelling a tmpfiles.d line
//! uses (`/home/u` is `/var/home/u`, see [`Links::canonical`]), and the
//! places where image content can reach /var through such a link
//! ([`RELOCATED`], planned in `relocate`).

use crate::manifest::{Kind, Manifest};
use crate::path::is_within;

/// How the content below a relocated directory is split into entries,
/// each of which gets one tmpfiles.d `L` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Each top-level entry (rpm-ostree's rule for /opt).
    TopLevel,
    /// Each entry below the standard subdirectories (`bin`, `lib`, …),
    /// which stay directories in /var so that several packages (and the
    /// machine's admin) can share them; any other top-level entry is one
    /// entry of its own.
    BelowStandard(&'static [&'static str]),
}

/// A place for add-on software that holds image content, and where that
/// content moves when the base links the place into /var.
#[derive(Debug, Clone, Copy)]
pub struct Relocated {
    /// The place, as programs and rpm name it.
    pub path: &'static str,
    /// Where its content moves, in /usr.
    pub dest: &'static str,
    /// One `L` line per what.
    pub split: Split,
}

/// The standard subdirectories of /usr/local (FHS 3.0, 4.9).
pub const USR_LOCAL_STANDARD: &[&str] = &[
    "bin", "etc", "games", "include", "lib", "lib64", "libexec", "sbin", "share", "src",
];

/// The places whose content is image content even when the base links
/// them into /var. Whether the base links them, and where to, is read
/// from the base; these are what the names mean (programs from RPMs),
/// which no base records. Other links into /var (homes, /srv, /mnt) lead
/// to state, converted like any /var content.
pub const RELOCATED: &[Relocated] = &[
    Relocated {
        path: "/opt",
        dest: "/usr/lib/opt",
        split: Split::TopLevel,
    },
    Relocated {
        path: "/usr/local",
        dest: "/usr/lib/usrlocal",
        split: Split::BelowStandard(USR_LOCAL_STANDARD),
    },
];

/// One base symlink that leads into /var.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Where the link is (`/opt`).
    pub path: String,
    /// Its target as written (`var/opt`), restored as is.
    pub target: String,
    /// The target resolved, absolute and clean (`/var/opt`).
    pub resolved: String,
}

/// The base's links into /var.
#[derive(Debug, Clone, Default)]
pub struct Links {
    /// Sorted by path.
    pub links: Vec<Link>,
}

impl Links {
    /// Every base symlink whose target, resolved lexically from its
    /// directory, lies beneath /var. Links below another link are not
    /// followed (a base has none worth following, and it keeps the map
    /// finite).
    pub fn from_base(base: &Manifest) -> Links {
        Links::from_entries(&base.entries)
    }

    /// As [`Links::from_base`], from any list of entries: the tree's own,
    /// in structural mode (no base).
    pub fn from_entries(entries: &[crate::manifest::Entry]) -> Links {
        let mut links: Vec<Link> = entries
            .iter()
            .filter(|e| e.kind == Kind::Symlink)
            .filter_map(|e| {
                let target = e.target.as_deref()?;
                let resolved = resolve(&e.path, target)?;
                (resolved != "/var" && is_within(&resolved, "/var")).then(|| Link {
                    path: e.path.clone(),
                    target: target.to_string(),
                    resolved,
                })
            })
            .collect();
        links.sort_by(|a, b| a.path.cmp(&b.path));
        Links { links }
    }

    /// The link at exactly `path`.
    pub fn at(&self, path: &str) -> Option<&Link> {
        self.links
            .binary_search_by(|l| l.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.links[i])
    }

    /// `path` with every leading component that is one of the links
    /// replaced by where it leads: `/home/u` → `/var/home/u`. A path that
    /// crosses no link is returned as is. Works on encoded paths (see
    /// [`crate::path`]); link paths are plain.
    pub fn canonical(&self, path: &str) -> String {
        let mut cur = path.to_string();
        // Each step makes the path start with a /var target; a target
        // that leads back through a link again is followed a few times at
        // most, never forever.
        for _ in 0..8 {
            let hit = self.links.iter().find(|l| {
                cur.strip_prefix(l.path.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            });
            match hit {
                Some(l) => cur = format!("{}{}", l.resolved, &cur[l.path.len()..]),
                None => break,
            }
        }
        cur
    }

    /// [`Links::canonical`] for raw bytes (tmpfiles.d paths); bytes that
    /// are not UTF-8 cross no link (link paths are UTF-8).
    pub fn canonical_bytes(&self, path: &[u8]) -> Vec<u8> {
        match std::str::from_utf8(path) {
            Ok(text) if !text.contains('\\') => self.canonical(text).into_bytes(),
            _ => path.to_vec(),
        }
    }
}

/// Resolve a symlink target lexically: relative to the link's directory,
/// `.` and `..` folded (never above `/`). `None` for an empty target or a
/// link at `/`.
pub fn resolve(link: &str, target: &str) -> Option<String> {
    if target.is_empty() {
        return None;
    }
    let dir = link.rsplit_once('/').map(|(d, _)| d)?;
    let mut parts: Vec<&str> = Vec::new();
    let start = if target.starts_with('/') { "" } else { dir };
    for comp in start.split('/').chain(target.split('/')) {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Entry;

    fn base(links: &[(&str, &str)]) -> Manifest {
        let mut entries: Vec<Entry> = links
            .iter()
            .map(|(p, t)| {
                let mut e = Entry::new(p.to_string(), Kind::Symlink, 0o777, 0, 0);
                e.target = Some(t.to_string());
                e
            })
            .collect();
        entries.push(Entry::new("/".into(), Kind::Dir, 0o755, 0, 0));
        Manifest::of_entries(entries)
    }

    #[test]
    fn targets_resolve_from_the_link_directory() {
        assert_eq!(resolve("/opt", "var/opt").unwrap(), "/var/opt");
        assert_eq!(
            resolve("/usr/local", "../var/usrlocal").unwrap(),
            "/var/usrlocal"
        );
        assert_eq!(resolve("/var/run", "../run").unwrap(), "/run");
        assert_eq!(resolve("/a", "/../../var/x").unwrap(), "/var/x");
        assert_eq!(resolve("/a", ""), None);
    }

    #[test]
    fn only_links_into_var_are_read_from_the_base() {
        let links = Links::from_base(&base(&[
            ("/opt", "var/opt"),
            ("/usr/local", "../var/usrlocal"),
            ("/home", "var/home"),
            ("/media", "run/media"),
            ("/var/run", "../run"),
            ("/bin", "usr/bin"),
            ("/weird", "var"),
        ]));
        let paths: Vec<_> = links.links.iter().map(|l| l.path.as_str()).collect();
        assert_eq!(paths, ["/home", "/opt", "/usr/local"]);
        assert_eq!(links.at("/opt").unwrap().target, "var/opt");
        assert!(Links::from_base(&base(&[])).links.is_empty());
    }

    #[test]
    fn paths_through_a_link_have_one_canonical_name() {
        let links = Links::from_base(&base(&[("/home", "var/home"), ("/opt", "var/opt")]));
        assert_eq!(links.canonical("/home/u"), "/var/home/u");
        assert_eq!(links.canonical("/var/home/u"), "/var/home/u");
        assert_eq!(links.canonical("/home"), "/var/home");
        assert_eq!(links.canonical("/homework"), "/homework");
        assert_eq!(links.canonical_bytes(b"/opt/a b"), b"/var/opt/a b");
        assert_eq!(links.canonical_bytes(b"/opt/\xff"), b"/opt/\xff");
    }
}
