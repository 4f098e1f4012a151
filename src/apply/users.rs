//! `passwd`: users and groups become sysusers.d lines, homes and SSH keys
//! become storage entries, and names are resolved against the tree's own
//! user database ([`super::userdb`], never the host's).
//!
//! Ids are decided at build time the way useradd/groupadd would decide
//! them at first boot: the given id, else (for regular users) the lowest
//! free id from `UID_MIN`/`GID_MIN` of the tree's /etc/login.defs. They are
//! written into sysusers.d, so files of the same config can be owned by
//! them now. System users without an id get one from systemd-sysusers at
//! boot; files they own are fixed by tmpfiles.d `z` lines.
//!
//! SSH keys go where Ignition puts them: on a tree that reads key fragments
//! (FCOS and RHCOS ship ssh-key-dir, whose sshd config reads
//! `~/.ssh/authorized_keys.d/*`), a fragment in `~/.ssh/authorized_keys.d/`,
//! named [`KEYS_FRAGMENT`] rather than Ignition's `ignition` so that a
//! first-boot Ignition config with keys of its own does not collide with
//! it; elsewhere `~/.ssh/authorized_keys`. Homes are normally in /var
//! (`/home` → `var/home`), so the keys reach the machine through
//! tmpfiles.d, after systemd-sysusers has created the user.

use anyhow::Result;

use super::config::{Config, Directory, File, Owner};
use super::plan::Planner;
use super::userdb::{Id, NewUser};
use crate::layout::sysusers::{User as PwUser, quote};

/// The file name of the SSH key fragment in `~/.ssh/authorized_keys.d/`.
pub const KEYS_FRAGMENT: &str = "ostree-finalize-apply";

/// Names that useradd, groupadd and sysusers all accept.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && !name.chars().all(|c| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// Homes, `.ssh` directories and key files to create, as storage entries.
#[derive(Debug, Default)]
pub(super) struct Homes {
    /// Directories, parents first.
    pub(super) dirs: Vec<Directory>,
    /// Key files.
    pub(super) files: Vec<File>,
}

impl Planner<'_> {
    /// Plan `passwd`: sysusers.d lines, and the homes and keys to create.
    pub(super) fn users(&mut self, config: &Config) -> Result<Homes> {
        let mut homes = Homes::default();
        for g in &config.groups {
            self.group(g);
        }
        for u in &config.users {
            self.user(u, &mut homes);
        }
        Ok(homes)
    }

    fn group(&mut self, g: &super::config::Group) {
        if !valid_name(&g.name) {
            self.p.push(
                &g.at.key("name"),
                format!("{:?} is not a valid group name", g.name),
            );
            return;
        }
        let existing = self
            .db
            .passwd_group(&g.name)
            .map(|x| Some(x.gid))
            .or_else(|| self.db.declared_groups.get(&g.name).map(|d| d.gid));
        if let Some(have) = existing {
            if let (Some(want), Some(have)) = (g.gid, have)
                && want != have
            {
                self.p.push(
                    &g.at.key("gid"),
                    format!(
                        "group {} already exists with gid {have}; apply cannot change it",
                        g.name
                    ),
                );
            }
            return;
        }
        if self.db.new_groups.contains_key(&g.name) {
            self.p
                .push(&g.at, format!("group {} is configured twice", g.name));
            return;
        }
        let gid = match g.gid {
            Some(gid) => {
                if let Some(other) = self.db.groups.iter().find(|x| x.gid == gid) {
                    self.p.push(
                        &g.at.key("gid"),
                        format!("gid {gid} is already used by group {}", other.name),
                    );
                    return;
                }
                self.db.used_gids.insert(gid);
                Some(gid)
            }
            None => match self.db.own_groups.get(&g.name) {
                Some(&gid) if !self.db.used_gids.contains(&gid) => {
                    self.db.used_gids.insert(gid);
                    Some(gid)
                }
                _ if g.system => None,
                _ => match self.db.alloc_gid() {
                    Some(gid) => Some(gid),
                    None => {
                        self.p.push(&g.at, "no free gid left");
                        return;
                    }
                },
            },
        };
        let id = gid.map_or("-".to_string(), |n| n.to_string());
        self.sysusers.insert(
            (0, g.name.clone(), String::new()),
            format!("g {} {id}", g.name),
        );
        self.db
            .new_groups
            .insert(g.name.clone(), gid.map_or(Id::Deferred, Id::Known));
    }

    fn user(&mut self, u: &super::config::User, homes: &mut Homes) {
        if !valid_name(&u.name) {
            self.p.push(
                &u.at.key("name"),
                format!("{:?} is not a valid user name", u.name),
            );
            return;
        }
        if self.db.new_users.contains_key(&u.name) {
            self.p
                .push(&u.at, format!("user {} is configured twice", u.name));
            return;
        }
        let existing = self.db.passwd_user(&u.name).cloned();
        let declared = self.db.declared_users.get(&u.name).cloned();
        let (home, primary) = if let Some(pw) = existing {
            self.check_existing(u, &pw);
            (
                pw.home.clone(),
                Owner {
                    id: Some(pw.gid),
                    name: None,
                },
            )
        } else if let Some(d) = declared {
            for (set, field) in [
                (u.uid.is_some(), "uid"),
                (u.gecos.is_some(), "gecos"),
                (u.home_dir.is_some(), "home_dir"),
                (u.shell.is_some(), "shell"),
                (u.primary_group.is_some(), "primary_group"),
            ] {
                if set {
                    self.p.push(
                        &u.at.key(field),
                        format!(
                            "user {} is created at boot by {}; apply cannot change its {field}",
                            u.name, d.file
                        ),
                    );
                }
            }
            let Some(home) = d.home.clone() else {
                if !u.ssh_authorized_keys.is_empty() {
                    self.p.push(
                        &u.at.key("ssh_authorized_keys"),
                        format!("{} declares no home for user {}", d.file, u.name),
                    );
                }
                return;
            };
            let primary = match d.gid {
                Some(gid) => Owner {
                    id: Some(gid),
                    name: None,
                },
                None => Owner::named(&u.name),
            };
            (home, primary)
        } else {
            match self.new_user(u, homes) {
                Some(x) => x,
                None => return,
            }
        };
        for (i, g) in u.groups.iter().enumerate() {
            if self.db.group_id(g).is_none() {
                self.p.push(
                    &u.at.key("groups").index(i),
                    format!("no group {g:?} in the tree or in this config"),
                );
                continue;
            }
            self.sysusers
                .insert((2, u.name.clone(), g.clone()), format!("m {} {g}", u.name));
        }
        self.keys(u, &home, primary, homes);
    }

    /// A user that already exists in passwd: only keys and supplementary
    /// groups can be added; other fields must match.
    fn check_existing(&mut self, u: &super::config::User, pw: &PwUser) {
        let mut differ = |set: bool, same: bool, field: &str| {
            if set && !same {
                self.p.push(
                    &u.at.key(field),
                    format!(
                        "user {} already exists in the tree; apply cannot change its {field}",
                        u.name
                    ),
                );
            }
        };
        differ(u.uid.is_some(), u.uid == Some(pw.uid), "uid");
        differ(
            u.gecos.is_some(),
            u.gecos.as_deref() == Some(&pw.gecos),
            "gecos",
        );
        differ(
            u.home_dir.is_some(),
            u.home_dir.as_deref() == Some(&pw.home),
            "home_dir",
        );
        differ(
            u.shell.is_some(),
            u.shell.as_deref() == Some(&pw.shell),
            "shell",
        );
        let pg = u.primary_group.as_deref().map(|g| self.db.group_id(g));
        differ(
            pg.is_some(),
            pg == Some(Some(Id::Known(pw.gid))),
            "primary_group",
        );
    }

    /// A user this config creates: its sysusers.d lines and home.
    fn new_user(&mut self, u: &super::config::User, homes: &mut Homes) -> Option<(String, Owner)> {
        let uid = match u.uid {
            Some(uid) => {
                if let Some(other) = self.db.users.iter().find(|x| x.uid == uid) {
                    self.p.push(
                        &u.at.key("uid"),
                        format!("uid {uid} is already used by user {}", other.name),
                    );
                    return None;
                }
                self.db.used_uids.insert(uid);
                Some(uid)
            }
            None => match self.db.own_users.get(&u.name) {
                Some(&uid) if !self.db.used_uids.contains(&uid) => {
                    self.db.used_uids.insert(uid);
                    Some(uid)
                }
                _ if u.system => None,
                _ => {
                    let Some(uid) = self.db.alloc_uid() else {
                        self.p.push(&u.at, "no free uid left");
                        return None;
                    };
                    Some(uid)
                }
            },
        };
        let uid_field = uid.map_or("-".to_string(), |n| n.to_string());
        // The primary group: given, the useradd default group, or a user
        // group of the same name.
        let (id_field, group_name) = if let Some(g) = &u.primary_group {
            if self.db.group_id(g).is_none() {
                self.p.push(
                    &u.at.key("primary_group"),
                    format!("no group {g:?} in the tree or in this config"),
                );
                return None;
            }
            (format!("{uid_field}:{g}"), g.clone())
        } else if u.no_user_group {
            let gid = self.db.default_gid;
            let Some(g) = self.db.groups.iter().find(|g| g.gid == gid) else {
                self.p.push(
                    &u.at.key("no_user_group"),
                    format!("the default group (gid {gid}) is not in the tree's /etc/group"),
                );
                return None;
            };
            (format!("{uid_field}:{}", g.name), g.name.clone())
        } else if self.db.group_id(&u.name).is_some() {
            self.p.push(
                &u.at.key("name"),
                format!(
                    "a group named {} already exists; set primary_group or no_user_group",
                    u.name
                ),
            );
            return None;
        } else {
            match uid {
                Some(uid) => {
                    let gid = match self.db.own_groups.get(&u.name) {
                        Some(&g) if !self.db.used_gids.contains(&g) => g,
                        _ if self.db.gid_free(uid) => uid,
                        _ => match self.db.alloc_gid() {
                            Some(g) => g,
                            None => {
                                self.p.push(&u.at, "no free gid left");
                                return None;
                            }
                        },
                    };
                    self.db.used_gids.insert(gid);
                    self.sysusers.insert(
                        (0, u.name.clone(), String::new()),
                        format!("g {} {gid}", u.name),
                    );
                    self.db.new_groups.insert(u.name.clone(), Id::Known(gid));
                    (format!("{uid}:{}", u.name), u.name.clone())
                }
                None => {
                    self.db.new_groups.insert(u.name.clone(), Id::Deferred);
                    ("-".to_string(), u.name.clone())
                }
            }
        };
        let home = u
            .home_dir
            .clone()
            .unwrap_or_else(|| format!("{}/{}", self.db.home_base, u.name));
        let shell = u.shell.clone().unwrap_or_else(|| self.db.shell.clone());
        let gecos = u.gecos.as_deref().map_or("-".to_string(), quote);
        self.sysusers.insert(
            (1, u.name.clone(), String::new()),
            format!(
                "u {} {id_field} {gecos} {} {}",
                u.name,
                quote(&home),
                quote(&shell)
            ),
        );
        self.db.new_users.insert(
            u.name.clone(),
            NewUser {
                uid: uid.map_or(Id::Deferred, Id::Known),
            },
        );
        let primary = Owner::named(&group_name);
        if !u.no_create_home {
            homes.dirs.push(Directory {
                at: u.at.key("home_dir"),
                path: home.clone(),
                overwrite: false,
                mode: Some(0o700),
                user: Owner::named(&u.name),
                group: primary.clone(),
            });
        }
        Some((home, primary))
    }

    /// The `.ssh` directories and key file of a user.
    fn keys(&mut self, u: &super::config::User, home: &str, group: Owner, homes: &mut Homes) {
        if u.ssh_authorized_keys.is_empty() {
            return;
        }
        let at = u.at.key("ssh_authorized_keys");
        if let Some(i) = u
            .ssh_authorized_keys
            .iter()
            .position(|k| k.contains(['\n', '\r']) || k.trim().is_empty())
        {
            self.p
                .push(&at.index(i), "an SSH key is one non-empty line");
            return;
        }
        if !home.starts_with('/') || home == "/" {
            self.p.push(
                &at,
                format!(
                    "user {} has home {home:?}; SSH keys need a real home",
                    u.name
                ),
            );
            return;
        }
        let home = home.trim_end_matches('/');
        let user = Owner::named(&u.name);
        let dir = |path: String| Directory {
            at: at.clone(),
            path,
            overwrite: false,
            mode: Some(0o700),
            user: user.clone(),
            group: group.clone(),
        };
        let mut content = u.ssh_authorized_keys.join("\n");
        content.push('\n');
        homes.dirs.push(dir(format!("{home}/.ssh")));
        let file = if self.db.fragments {
            homes
                .dirs
                .push(dir(format!("{home}/.ssh/authorized_keys.d")));
            format!("{home}/.ssh/authorized_keys.d/{KEYS_FRAGMENT}")
        } else {
            format!("{home}/.ssh/authorized_keys")
        };
        homes.files.push(File {
            at,
            path: file,
            overwrite: true,
            contents: Some(content.into_bytes()),
            append: vec![],
            mode: Some(0o600),
            user,
            group,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::config::{Group, Loc, Style, User};
    use crate::apply::plan::tests::Mem;
    use crate::apply::plan::{Op, plan};
    use crate::apply::tree::{GENERATED_SYSUSERS, GENERATED_TMPFILES};

    fn user(name: &str) -> User {
        User {
            at: Loc::root(Style::Butane).key("passwd").key("users").index(0),
            name: name.into(),
            uid: None,
            gecos: None,
            home_dir: None,
            no_create_home: false,
            primary_group: None,
            groups: vec![],
            no_user_group: false,
            shell: None,
            system: false,
            ssh_authorized_keys: vec![],
        }
    }

    fn text(plan: &super::super::plan::Plan, path: &str) -> String {
        plan.ops
            .iter()
            .find_map(|o| match o {
                Op::File {
                    path: p, content, ..
                } if p == path => Some(String::from_utf8_lossy(content).into_owned()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{path} not written: {:?}", plan.ops))
    }

    #[test]
    fn a_new_user_gets_fixed_ids_a_home_and_keys_through_tmpfiles() {
        let mut tree = Mem::fcos();
        tree.file("/usr/libexec/ssh-key-dir", "#!/bin/sh\n");
        let mut u = user("alice");
        u.gecos = Some("Alice \"A\"".into());
        u.groups = vec!["wheel".into()];
        u.ssh_authorized_keys = vec!["ssh-ed25519 AAAAC3 alice@example".into()];
        let config = Config {
            users: vec![u],
            groups: vec![Group {
                at: Loc::root(Style::Butane),
                name: "ops".into(),
                gid: None,
                system: false,
            }],
            ..Config::default()
        };
        let plan = plan(&config, &tree, None, "t").unwrap();
        let sysusers = text(&plan, GENERATED_SYSUSERS);
        assert!(sysusers.contains("\ng alice 1001\n"), "{sysusers}");
        assert!(sysusers.contains("\ng ops 1000\n"), "{sysusers}");
        assert!(
            sysusers.contains(
                "\nu alice 1000:alice \"Alice \\\"A\\\"\" \"/home/alice\" \"/bin/bash\"\n"
            ),
            "{sysusers}"
        );
        assert!(sysusers.contains("\nm alice wheel\n"), "{sysusers}");
        let tmp = text(&plan, GENERATED_TMPFILES);
        let frag = format!("/var/home/alice/.ssh/authorized_keys.d/{KEYS_FRAGMENT}");
        for line in [
            "d /var/home/alice 0700 alice alice -".to_string(),
            "d /var/home/alice/.ssh 0700 alice alice -".to_string(),
            "d /var/home/alice/.ssh/authorized_keys.d 0700 alice alice -".to_string(),
            format!("C {frag} - - - - /usr/share/factory{frag}"),
        ] {
            assert!(tmp.contains(&format!("{line}\n")), "{line} in {tmp}");
        }
        // The factory copy carries the owner, which `C` keeps: no `z` line
        // (systemd-tmpfiles would refuse one inside alice's directory).
        assert!(!tmp.contains("\nz "), "{tmp}");
        let copy = format!("/usr/share/factory{frag}");
        assert!(
            plan.ops.iter().any(|o| matches!(o, Op::File { path, mode: 0o600, uid: 1000, gid: 1001, .. } if *path == copy)),
            "{:?}",
            plan.ops
        );
        assert_eq!(
            text(&plan, &format!("/usr/share/factory{frag}")),
            "ssh-ed25519 AAAAC3 alice@example\n"
        );
    }

    #[test]
    fn existing_users_only_get_keys_and_groups() {
        let tree = Mem::fcos();
        let mut u = user("root");
        u.shell = Some("/bin/zsh".into());
        let e = plan(
            &Config {
                users: vec![u],
                ..Config::default()
            },
            &tree,
            None,
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("passwd.users[0].shell: user root already exists in the tree"),
            "{e}"
        );
    }

    #[test]
    fn reapplying_keeps_the_ids_of_the_first_run() {
        let mut tree = Mem::fcos();
        tree.file(
            GENERATED_SYSUSERS,
            "# x\ng bob 1500\nu bob 1500:bob - \"/home/bob\" \"/bin/bash\"\n",
        );
        let plan = plan(
            &Config {
                users: vec![user("bob")],
                ..Config::default()
            },
            &tree,
            None,
            "t",
        )
        .unwrap();
        let s = text(&plan, GENERATED_SYSUSERS);
        assert!(s.contains("\nu bob 1500:bob "), "{s}");
        assert_eq!(s.matches("u bob").count(), 1, "{s}");
    }

    #[test]
    fn a_new_user_does_not_take_the_id_an_earlier_run_gave_another() {
        let mut tree = Mem::fcos();
        tree.file(
            GENERATED_SYSUSERS,
            "g bob 1000\nu bob 1000:bob - \"/home/bob\" \"/bin/bash\"\n",
        );
        let plan = plan(
            &Config {
                users: vec![user("carol"), user("bob")],
                ..Config::default()
            },
            &tree,
            None,
            "t",
        )
        .unwrap();
        let s = text(&plan, GENERATED_SYSUSERS);
        assert!(s.contains("\nu bob 1000:bob "), "{s}");
        assert!(s.contains("\nu carol 1001:carol "), "{s}");
    }
}
