//! Users and groups: parsing passwd/group, finding what the build added,
//! and sysusers.d lines for them. Pure.

use std::collections::{BTreeMap, BTreeSet};

/// One `/etc/passwd` line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct User {
    /// Login name.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// GECOS (full name).
    pub gecos: String,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
}

/// One `/etc/group` line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// gid.
    pub gid: u32,
    /// Supplementary members.
    pub members: Vec<String>,
}

/// Parse passwd text; malformed lines are skipped (they are not ours to fix).
pub fn parse_passwd(text: &str) -> Vec<User> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() != 7 || f[0].is_empty() || f[0].starts_with('#') {
                return None;
            }
            Some(User {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                gecos: f[4].to_string(),
                home: f[5].to_string(),
                shell: f[6].to_string(),
            })
        })
        .collect()
}

/// Parse group text; malformed lines are skipped.
pub fn parse_group(text: &str) -> Vec<Group> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() != 4 || f[0].is_empty() || f[0].starts_with('#') {
                return None;
            }
            Some(Group {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// Name lookups for tmpfiles.d owners: uid → name, gid → name.
#[derive(Debug, Clone, Default)]
pub struct Names {
    users: BTreeMap<u32, String>,
    groups: BTreeMap<u32, String>,
}

impl Names {
    /// Build from the tree's own user databases (first definition wins).
    pub fn new(users: &[User], groups: &[Group]) -> Names {
        let mut n = Names::default();
        for u in users {
            n.users.entry(u.uid).or_insert_with(|| u.name.clone());
        }
        for g in groups {
            n.groups.entry(g.gid).or_insert_with(|| g.name.clone());
        }
        n
    }

    /// The user name of a uid, or the number when the tree has none.
    pub fn user(&self, uid: u32) -> String {
        self.users.get(&uid).cloned().unwrap_or(uid.to_string())
    }

    /// The group name of a gid, or the number when the tree has none.
    pub fn group(&self, gid: u32) -> String {
        self.groups.get(&gid).cloned().unwrap_or(gid.to_string())
    }
}

/// What sysusers.d files already declare, by kind and name.
#[derive(Debug, Clone, Default)]
pub struct Declared {
    /// Names declared with `u`.
    pub users: BTreeSet<String>,
    /// Names declared with `g` (or implied by `u`).
    pub groups: BTreeSet<String>,
}

/// Read the declarations of a sysusers.d file.
pub fn declared(text: &str, into: &mut Declared) {
    for line in text.lines().map(str::trim) {
        let mut f = line.split_whitespace();
        match (f.next(), f.next()) {
            (Some("u") | Some("u!"), Some(name)) => {
                into.users.insert(name.to_string());
                into.groups.insert(name.to_string());
            }
            (Some("g"), Some(name)) => {
                into.groups.insert(name.to_string());
            }
            _ => {}
        }
    }
}

/// Quote a free-text field for sysusers.d: double quotes, with `\`, `"`
/// and control characters escaped, and `%` doubled (specifiers).
pub fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The sysusers.d lines for users and groups the build added (present now,
/// not in the base, not declared elsewhere). Groups first, then users.
pub fn added_lines(
    base_users: &[User],
    base_groups: &[Group],
    users: &[User],
    groups: &[Group],
    already: &Declared,
) -> (Vec<String>, Vec<String>) {
    let base_u: BTreeSet<&str> = base_users.iter().map(|u| u.name.as_str()).collect();
    let base_g: BTreeSet<&str> = base_groups.iter().map(|g| g.name.as_str()).collect();
    let mut names = Vec::new();
    let mut lines = Vec::new();
    let mut seen = BTreeSet::new();
    for g in groups {
        if base_g.contains(g.name.as_str())
            || already.groups.contains(&g.name)
            || !seen.insert(("g", g.name.clone()))
        {
            continue;
        }
        names.push(format!("group {}", g.name));
        lines.push(format!("g {} {}", g.name, g.gid));
    }
    for u in users {
        if base_u.contains(u.name.as_str())
            || already.users.contains(&u.name)
            || !seen.insert(("u", u.name.clone()))
        {
            continue;
        }
        names.push(format!("user {}", u.name));
        lines.push(format!(
            "u {} {}:{} {} {} {}",
            u.name,
            u.uid,
            u.gid,
            quote(&u.gecos),
            quote(&u.home),
            quote(&u.shell)
        ));
    }
    // Supplementary memberships of added users in any group.
    for g in groups {
        for m in &g.members {
            let new_user = users.iter().any(|u| &u.name == m) && !base_u.contains(m.as_str());
            if new_user && !already.users.contains(m) {
                lines.push(format!("m {m} {}", g.name));
            }
        }
    }
    (names, lines)
}

/// Render the generated sysusers.d file.
pub fn render_file(lines: &[String]) -> String {
    let mut out = String::from(
        "# Generated by ostree-finalize: users and groups added by the image build.\n",
    );
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE_PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nbin:x:1:1:bin:/bin:/sbin/nologin\n";
    const BASE_GROUP: &str = "root:x:0:\nbin:x:1:\nwheel:x:10:\n";

    #[test]
    fn added_users_and_groups_become_sysusers_lines() {
        let passwd =
            format!("{BASE_PASSWD}app:x:990:985:App \"Daemon\" 100%:/var/lib/app:/sbin/nologin\n");
        let group = format!("{BASE_GROUP}app:x:985:\nwheel2:x:11:app\n");
        let (names, lines) = added_lines(
            &parse_passwd(BASE_PASSWD),
            &parse_group(BASE_GROUP),
            &parse_passwd(&passwd),
            &parse_group(&group),
            &Declared::default(),
        );
        assert_eq!(names, ["group app", "group wheel2", "user app"]);
        assert_eq!(
            lines,
            [
                "g app 985",
                "g wheel2 11",
                "u app 990:985 \"App \\\"Daemon\\\" 100%%\" \"/var/lib/app\" \"/sbin/nologin\"",
                "m app wheel2",
            ]
        );
    }

    #[test]
    fn users_declared_elsewhere_are_not_repeated() {
        let passwd = format!("{BASE_PASSWD}app:x:990:990::/:/sbin/nologin\n");
        let mut already = Declared::default();
        declared("# x\nu app 990 \"App\"\n", &mut already);
        let (_, lines) = added_lines(
            &parse_passwd(BASE_PASSWD),
            &[],
            &parse_passwd(&passwd),
            &[],
            &already,
        );
        assert!(lines.is_empty(), "{lines:?}");
    }

    #[test]
    fn names_fall_back_to_numbers() {
        let n = Names::new(&parse_passwd(BASE_PASSWD), &parse_group(BASE_GROUP));
        assert_eq!(n.user(1), "bin");
        assert_eq!(n.user(4242), "4242");
        assert_eq!(n.group(10), "wheel");
    }
}
