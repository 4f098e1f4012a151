//! The tree's own user database, as useradd and systemd-sysusers will see
//! it at first boot (never the host's): passwd and group files,
//! sysusers.d, login.defs and useradd defaults, plus the users and groups
//! this config adds. The planner resolves owners here, and `users` adds the
//! config's `passwd` section to it.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;

use super::tree::{GENERATED_SYSUSERS, TreeView};
use crate::layout::sysusers::{self, Group as PwGroup, User as PwUser};
use crate::manifest::Kind;

/// An id known now, or one that sysusers allocates at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Id {
    /// Known at build time.
    Known(u32),
    /// Allocated at boot; only the name is known.
    Deferred,
}

/// The highest id allocated for regular users and groups.
const ID_MAX: u32 = 60000;

/// What another sysusers.d file declares about a name.
#[derive(Debug, Clone, Default)]
pub(super) struct Declared {
    pub(super) uid: Option<u32>,
    pub(super) gid: Option<u32>,
    pub(super) home: Option<String>,
    pub(super) file: String,
}

/// A user created by this config.
#[derive(Debug, Clone)]
pub(super) struct NewUser {
    pub(super) uid: Id,
}

/// The tree's user database and what this config adds to it.
#[derive(Debug, Default)]
pub(super) struct Db {
    pub(super) users: Vec<PwUser>,
    pub(super) groups: Vec<PwGroup>,
    pub(super) declared_users: BTreeMap<String, Declared>,
    pub(super) declared_groups: BTreeMap<String, Declared>,
    pub(super) own_users: BTreeMap<String, u32>,
    pub(super) own_groups: BTreeMap<String, u32>,
    pub(super) new_users: BTreeMap<String, NewUser>,
    pub(super) new_groups: BTreeMap<String, Id>,
    pub(super) used_uids: BTreeSet<u32>,
    pub(super) used_gids: BTreeSet<u32>,
    pub(super) uid_min: u32,
    pub(super) gid_min: u32,
    pub(super) home_base: String,
    pub(super) shell: String,
    pub(super) default_gid: u32,
    pub(super) fragments: bool,
}

fn text_of(view: &dyn TreeView, path: &str) -> Result<Option<String>> {
    match view.node(path)? {
        Some(n) if n.kind == Kind::File => Ok(Some(
            String::from_utf8_lossy(&view.read(path)?).into_owned(),
        )),
        _ => Ok(None),
    }
}

/// `KEY VALUE` (login.defs) or `KEY=VALUE` (useradd defaults).
fn setting(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let l = l.trim();
        let rest = l.strip_prefix(key)?;
        let value = rest
            .strip_prefix('=')
            .or_else(|| rest.starts_with(char::is_whitespace).then_some(rest))?;
        let v = value.trim().trim_matches('"');
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// Split a sysusers.d line into fields: whitespace-separated, with
/// "double quotes" and backslash escapes.
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.trim().chars().peekable();
    while chars.peek().is_some() {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut cur = String::new();
        let mut quoted = false;
        let mut any = false;
        while let Some(&c) = chars.peek() {
            if !quoted && c.is_whitespace() {
                break;
            }
            chars.next();
            any = true;
            match c {
                '"' => quoted = !quoted,
                '\\' => cur.extend(chars.next()),
                c => cur.push(c),
            }
        }
        if any {
            out.push(cur);
        }
    }
    out
}

/// The merge key of one of our sysusers.d lines: groups, then users, then
/// memberships, by name.
pub(super) fn line_key(line: &str) -> Option<(u8, String, String)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    match f.as_slice() {
        ["g", name, ..] => Some((0, name.to_string(), String::new())),
        ["u", name, ..] => Some((1, name.to_string(), String::new())),
        ["m", user, group, ..] => Some((2, user.to_string(), group.to_string())),
        _ => None,
    }
}

/// `uid`, `uid:gid`, `uid:group`, `-`: the numbers in a sysusers.d id field.
fn ids(field: &str) -> (Option<u32>, Option<u32>) {
    let (u, g) = field.split_once(':').unwrap_or((field, ""));
    (u.parse().ok(), g.parse().ok())
}

impl Db {
    /// Read the tree's passwd/group files, sysusers.d, login.defs and
    /// useradd defaults.
    pub(super) fn load(view: &dyn TreeView) -> Result<Db> {
        let mut db = Db {
            uid_min: 1000,
            gid_min: 1000,
            home_base: "/home".into(),
            shell: "/bin/bash".into(),
            default_gid: 100,
            ..Db::default()
        };
        for p in ["/etc/passwd", "/usr/lib/passwd"] {
            if let Some(t) = text_of(view, p)? {
                db.users.extend(sysusers::parse_passwd(&t));
            }
        }
        for p in ["/etc/group", "/usr/lib/group"] {
            if let Some(t) = text_of(view, p)? {
                db.groups.extend(sysusers::parse_group(&t));
            }
        }
        db.used_uids = db.users.iter().map(|u| u.uid).collect();
        db.used_gids = db.groups.iter().map(|g| g.gid).collect();
        for dir in ["/etc/sysusers.d", "/usr/lib/sysusers.d"] {
            for name in view.list(dir)? {
                let path = format!("{dir}/{name}");
                if !name.ends_with(".conf") {
                    continue;
                }
                let Some(text) = text_of(view, &path)? else {
                    continue;
                };
                db.read_sysusers(&path, &text);
            }
        }
        if let Some(t) = text_of(view, "/etc/login.defs")? {
            if let Some(n) = setting(&t, "UID_MIN").and_then(|v| v.parse().ok()) {
                db.uid_min = n;
            }
            if let Some(n) = setting(&t, "GID_MIN").and_then(|v| v.parse().ok()) {
                db.gid_min = n;
            }
        }
        if let Some(t) = text_of(view, "/etc/default/useradd")? {
            if let Some(v) = setting(&t, "HOME") {
                db.home_base = v.trim_end_matches('/').to_string();
            }
            if let Some(v) = setting(&t, "SHELL") {
                db.shell = v;
            }
            if let Some(n) = setting(&t, "GROUP").and_then(|v| v.parse().ok()) {
                db.default_gid = n;
            }
        }
        db.fragments = db.reads_fragments(view)?;
        Ok(db)
    }

    fn read_sysusers(&mut self, path: &str, text: &str) {
        let own = path == GENERATED_SYSUSERS;
        for line in text.lines() {
            let f = fields(line);
            let (Some(kind), Some(name)) = (f.first(), f.get(1)) else {
                continue;
            };
            let (uid, gid) = f.get(2).map(|s| ids(s)).unwrap_or_default();
            match kind.as_str() {
                "u" | "u!" if own => {
                    if let Some(uid) = uid {
                        self.own_users.insert(name.clone(), uid);
                    }
                }
                "g" if own => {
                    if let Some(gid) = uid {
                        self.own_groups.insert(name.clone(), gid);
                    }
                }
                "u" | "u!" => {
                    self.used_uids.extend(uid);
                    self.used_gids.extend(gid);
                    let d = Declared {
                        uid,
                        gid,
                        home: f.get(4).filter(|h| h.starts_with('/')).cloned(),
                        file: path.to_string(),
                    };
                    self.declared_users.entry(name.clone()).or_insert(d);
                    self.declared_groups
                        .entry(name.clone())
                        .or_insert(Declared {
                            uid: None,
                            gid,
                            home: None,
                            file: path.to_string(),
                        });
                }
                "g" => {
                    self.used_gids.extend(uid);
                    self.declared_groups
                        .entry(name.clone())
                        .or_insert(Declared {
                            uid: None,
                            gid: uid,
                            home: None,
                            file: path.to_string(),
                        });
                }
                _ => {}
            }
        }
    }

    /// Does the tree's sshd read `~/.ssh/authorized_keys.d/` fragments?
    fn reads_fragments(&self, view: &dyn TreeView) -> Result<bool> {
        if view.node("/usr/libexec/ssh-key-dir")?.is_some() {
            return Ok(true);
        }
        for base in ["/etc/ssh", "/usr/etc/ssh"] {
            let mut files = vec![format!("{base}/sshd_config")];
            let dir = format!("{base}/sshd_config.d");
            files.extend(view.list(&dir)?.into_iter().map(|n| format!("{dir}/{n}")));
            for f in files {
                if text_of(view, &f)?.is_some_and(|t| t.contains("authorized_keys.d")) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    pub(super) fn passwd_user(&self, name: &str) -> Option<&PwUser> {
        self.users.iter().find(|u| u.name == name)
    }

    pub(super) fn passwd_group(&self, name: &str) -> Option<&PwGroup> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// A user's uid: created by this config, in passwd, or declared by
    /// sysusers.d (known or allocated at boot).
    pub(super) fn user_id(&self, name: &str) -> Option<Id> {
        if let Some(u) = self.new_users.get(name) {
            return Some(u.uid);
        }
        if let Some(u) = self.passwd_user(name) {
            return Some(Id::Known(u.uid));
        }
        let d = self.declared_users.get(name)?;
        Some(d.uid.map_or(Id::Deferred, Id::Known))
    }

    /// A group's gid, likewise.
    pub(super) fn group_id(&self, name: &str) -> Option<Id> {
        if let Some(g) = self.new_groups.get(name) {
            return Some(*g);
        }
        if let Some(g) = self.passwd_group(name) {
            return Some(Id::Known(g.gid));
        }
        let d = self.declared_groups.get(name)?;
        Some(d.gid.map_or(Id::Deferred, Id::Known))
    }

    /// The name of a uid (for tmpfiles.d lines), or the number.
    pub(super) fn user_name(&self, uid: u32) -> String {
        let known = self
            .users
            .iter()
            .find(|u| u.uid == uid)
            .map(|u| u.name.clone());
        let new = || {
            self.new_users
                .iter()
                .find(|(_, u)| u.uid == Id::Known(uid))
                .map(|(n, _)| n.clone())
        };
        known.or_else(new).unwrap_or_else(|| uid.to_string())
    }

    /// The name of a gid, or the number.
    pub(super) fn group_name(&self, gid: u32) -> String {
        let known = self
            .groups
            .iter()
            .find(|g| g.gid == gid)
            .map(|g| g.name.clone());
        let new = || {
            self.new_groups
                .iter()
                .find(|(_, g)| **g == Id::Known(gid))
                .map(|(n, _)| n.clone())
        };
        known.or_else(new).unwrap_or_else(|| gid.to_string())
    }

    /// The lowest free uid from `UID_MIN`, skipping the ids an earlier run
    /// gave (so that re-applying does not renumber anyone).
    pub(super) fn alloc_uid(&mut self) -> Option<u32> {
        let own: BTreeSet<u32> = self.own_users.values().copied().collect();
        let n = (self.uid_min..ID_MAX).find(|n| !self.used_uids.contains(n) && !own.contains(n))?;
        self.used_uids.insert(n);
        Some(n)
    }

    /// Whether a gid is neither used nor kept for a group of an earlier run.
    pub(super) fn gid_free(&self, gid: u32) -> bool {
        !self.used_gids.contains(&gid) && !self.own_groups.values().any(|&g| g == gid)
    }

    /// The lowest free gid from `GID_MIN`, likewise.
    pub(super) fn alloc_gid(&mut self) -> Option<u32> {
        let own: BTreeSet<u32> = self.own_groups.values().copied().collect();
        let n = (self.gid_min..ID_MAX).find(|n| !self.used_gids.contains(n) && !own.contains(n))?;
        self.used_gids.insert(n);
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysusers_fields_are_unquoted() {
        assert_eq!(
            fields("u app 990:985 \"App \\\"D\\\"\" /var/lib/app -"),
            ["u", "app", "990:985", "App \"D\"", "/var/lib/app", "-"]
        );
        assert_eq!(ids("990:985"), (Some(990), Some(985)));
        assert_eq!(ids("-"), (None, None));
        assert_eq!(
            setting("UID_MIN   500\n", "UID_MIN").as_deref(),
            Some("500")
        );
        assert_eq!(
            setting("SHELL=/bin/sh\n", "SHELL").as_deref(),
            Some("/bin/sh")
        );
    }
}
