//! The internal model both config languages are translated to, and the
//! locations that name a field in messages.
//!
//! Everything here is already resolved: contents are bytes (data URLs
//! decoded, local files read, gzip undone, hashes verified), modes are
//! numbers. What the model cannot hold was refused by the reader, with the
//! field's location, before the model exists.

use std::fmt;

/// Which language a config was written in: decides how a location is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Ignition JSON: locations are JSON pointers (`/storage/files/0/path`).
    Ignition,
    /// Butane YAML: locations are YAML paths (`storage.files[0].path`).
    Butane,
}

/// Where a value sits in the config, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    style: Style,
    text: String,
}

impl Loc {
    /// The top of a config.
    pub fn root(style: Style) -> Loc {
        Loc {
            style,
            text: String::new(),
        }
    }

    /// A field of this object, named in Butane's snake_case; Ignition's
    /// camelCase name is derived from it (`home_dir` → `homeDir`).
    pub fn key(&self, snake: &str) -> Loc {
        let text = match self.style {
            Style::Ignition => format!("{}/{}", self.text, camel(snake)),
            Style::Butane if self.text.is_empty() => snake.to_string(),
            Style::Butane => format!("{}.{snake}", self.text),
        };
        Loc {
            style: self.style,
            text,
        }
    }

    /// An element of this list.
    pub fn index(&self, i: usize) -> Loc {
        let text = match self.style {
            Style::Ignition => format!("{}/{i}", self.text),
            Style::Butane => format!("{}[{i}]", self.text),
        };
        Loc {
            style: self.style,
            text,
        }
    }

    /// The language of the config.
    pub fn style(&self) -> Style {
        self.style
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.style, self.text.is_empty()) {
            (Style::Ignition, true) => f.write_str("/"),
            (Style::Butane, true) => f.write_str("(top level)"),
            (_, false) => f.write_str(&self.text),
        }
    }
}

/// `ssh_authorized_keys` → `sshAuthorizedKeys`.
fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Every reason a config cannot be applied, collected so that all of them
/// are reported at once (exit 2).
#[derive(Debug, Default)]
pub struct Problems {
    list: Vec<String>,
}

impl Problems {
    /// Record a problem with the field at `at`.
    pub fn push(&mut self, at: &Loc, message: impl fmt::Display) {
        self.list.push(format!("{at}: {message}"));
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// How many were recorded (it only grows: compare before and after).
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// `Err` listing every problem, or `Ok` when there is none.
    pub fn into_result(self, what: &str) -> anyhow::Result<()> {
        if self.list.is_empty() {
            return Ok(());
        }
        let mut msg = format!(
            "{what}: {} problem{} (nothing was written):",
            self.list.len(),
            if self.list.len() == 1 { "" } else { "s" }
        );
        for p in &self.list {
            msg.push_str("\n  - ");
            msg.push_str(p);
        }
        Err(anyhow::anyhow!(msg))
    }
}

/// A permission mode from the config (0 to 0o7777).
pub fn mode(at: &Loc, value: i64, problems: &mut Problems) -> Option<u32> {
    match u32::try_from(value) {
        Ok(m) if m <= 0o7777 => Some(m),
        _ => {
            problems.push(at, format!("{value} is not a permission mode (0 to 07777)"));
            None
        }
    }
}

/// A uid or gid from the config. 65535 and 4294967295 are placeholders in
/// the kernel and systemd, never real ids.
pub fn id(at: &Loc, value: i64, problems: &mut Problems) -> Option<u32> {
    match u32::try_from(value) {
        Ok(n) if n != 65535 && n != u32::MAX => Some(n),
        _ => {
            problems.push(at, format!("{value} is not a usable uid/gid"));
            None
        }
    }
}

/// A node's owner as the config names it: by number, by name, or neither
/// (root).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owner {
    /// Numeric id.
    pub id: Option<u32>,
    /// Name, resolved against the tree's own user database.
    pub name: Option<String>,
}

impl Owner {
    /// Owned by this name.
    pub fn named(name: &str) -> Owner {
        Owner {
            id: None,
            name: Some(name.to_string()),
        }
    }

    /// Whether the config said anything.
    pub fn is_set(&self) -> bool {
        self.id.is_some() || self.name.is_some()
    }
}

/// `storage.files[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Location of the entry.
    pub at: Loc,
    /// Absolute path.
    pub path: String,
    /// Replace whatever is at the path. Default false.
    pub overwrite: bool,
    /// The contents, when the config gives a source.
    pub contents: Option<Vec<u8>>,
    /// Appended after the contents (or after the existing file).
    pub append: Vec<Vec<u8>>,
    /// Permission bits; default 0644 (or the existing file's).
    pub mode: Option<u32>,
    /// Owner; default root.
    pub user: Owner,
    /// Group; default root.
    pub group: Owner,
}

/// `storage.directories[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    /// Location of the entry.
    pub at: Loc,
    /// Absolute path.
    pub path: String,
    /// Replace a non-directory at the path. Default false.
    pub overwrite: bool,
    /// Permission bits; default 0755 (or the existing directory's).
    pub mode: Option<u32>,
    /// Owner; default root.
    pub user: Owner,
    /// Group; default root.
    pub group: Owner,
}

/// `storage.links[]` (symbolic links; hard links are refused by the readers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Location of the entry.
    pub at: Loc,
    /// Absolute path.
    pub path: String,
    /// Replace a different node at the path. Default false.
    pub overwrite: bool,
    /// The symlink target, as written.
    pub target: String,
    /// Owner of the link itself; default root.
    pub user: Owner,
    /// Group of the link itself; default root.
    pub group: Owner,
}

/// `systemd.units[].dropins[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropin {
    /// Location of the entry.
    pub at: Loc,
    /// File name, ending in `.conf`.
    pub name: String,
    /// Contents; a drop-in without contents writes nothing (as in Ignition).
    pub contents: Option<String>,
}

/// `systemd.units[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// Location of the entry.
    pub at: Loc,
    /// Unit name, e.g. `app.service`.
    pub name: String,
    /// Unit file contents, written to /etc/systemd/system.
    pub contents: Option<String>,
    /// `true`: the symlinks `systemctl enable` makes; `false`: removed.
    pub enabled: Option<bool>,
    /// `true`: a symlink to /dev/null; `false`: such a symlink removed.
    pub mask: Option<bool>,
    /// Drop-ins, written to /etc/systemd/system/NAME.d.
    pub dropins: Vec<Dropin>,
}

/// `passwd.users[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Location of the entry.
    pub at: Loc,
    /// Login name.
    pub name: String,
    /// uid; default allocated like useradd (system users: by sysusers).
    pub uid: Option<u32>,
    /// GECOS.
    pub gecos: Option<String>,
    /// Home; default from the tree's /etc/default/useradd, else /home/NAME.
    pub home_dir: Option<String>,
    /// Don't create the home directory.
    pub no_create_home: bool,
    /// Primary group (instead of a user group).
    pub primary_group: Option<String>,
    /// Supplementary groups.
    pub groups: Vec<String>,
    /// Don't create a user group.
    pub no_user_group: bool,
    /// Login shell; default from the tree's /etc/default/useradd, else /bin/bash.
    pub shell: Option<String>,
    /// A system user (dynamic uid from the system range).
    pub system: bool,
    /// SSH public keys, one per entry (local files already read).
    pub ssh_authorized_keys: Vec<String>,
}

/// `passwd.groups[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Location of the entry.
    pub at: Loc,
    /// Group name.
    pub name: String,
    /// gid; default allocated like groupadd (system groups: by sysusers).
    pub gid: Option<u32>,
    /// A system group.
    pub system: bool,
}

/// A whole config, in the order Ignition applies it: users and groups,
/// then storage, then units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// `storage.files`.
    pub files: Vec<File>,
    /// `storage.directories`.
    pub directories: Vec<Directory>,
    /// `storage.links`.
    pub links: Vec<Link>,
    /// `systemd.units`.
    pub units: Vec<Unit>,
    /// `passwd.users`.
    pub users: Vec<User>,
    /// `passwd.groups`.
    pub groups: Vec<Group>,
}

impl Config {
    /// The same config with every location blanked, so that configs read
    /// from different languages compare equal.
    pub fn without_locations(&self) -> Config {
        let blank = |_: &Loc| Loc::root(Style::Ignition);
        let mut c = self.clone();
        c.files.iter_mut().for_each(|x| x.at = blank(&x.at));
        c.directories.iter_mut().for_each(|x| x.at = blank(&x.at));
        c.links.iter_mut().for_each(|x| x.at = blank(&x.at));
        c.users.iter_mut().for_each(|x| x.at = blank(&x.at));
        c.groups.iter_mut().for_each(|x| x.at = blank(&x.at));
        for u in &mut c.units {
            u.at = blank(&u.at);
            u.dropins.iter_mut().for_each(|d| d.at = blank(&d.at));
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_render_as_json_pointer_or_yaml_path() {
        let i = Loc::root(Style::Ignition)
            .key("passwd")
            .key("users")
            .index(2)
            .key("ssh_authorized_keys");
        assert_eq!(i.to_string(), "/passwd/users/2/sshAuthorizedKeys");
        let b = Loc::root(Style::Butane)
            .key("passwd")
            .key("users")
            .index(2)
            .key("ssh_authorized_keys");
        assert_eq!(b.to_string(), "passwd.users[2].ssh_authorized_keys");
        assert_eq!(Loc::root(Style::Ignition).to_string(), "/");
    }

    #[test]
    fn every_problem_is_listed() {
        let mut p = Problems::default();
        let at = Loc::root(Style::Butane).key("storage").key("disks");
        p.push(&at, "not supported");
        p.push(&at.index(0), "also bad");
        let e = p.into_result("config.bu").unwrap_err().to_string();
        assert!(e.contains("2 problems"), "{e}");
        assert!(e.contains("storage.disks: not supported"), "{e}");
        assert!(e.contains("storage.disks[0]: also bad"), "{e}");
    }
}
