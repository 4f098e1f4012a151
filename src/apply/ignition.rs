//! Ignition 3.x (JSON) → the model, with the `ignition-config` crate.
//!
//! The config is first parsed as the spec version it declares, so a key
//! that version does not define is reported (by JSON pointer) instead of
//! being dropped. Spec 3.x versions only ever add fields, so the same bytes
//! are then read as the newest spec and translated from there. Every field
//! is destructured by name: a field this module does not honour must be
//! absent or empty, or the config is refused naming it.

use anyhow::{Result, anyhow};
use ignition_config::v3_6 as ign;

use super::config::{
    self, Config, Directory, Dropin, File, Group, Link, Loc, Owner, Problems, Style, Unit, User,
};
use super::resource::{self, Local, Resource};

/// Parse an Ignition config. `origin` names the file in messages.
pub fn parse(bytes: &[u8], origin: &str, local: Local) -> Result<Config> {
    let (_, warnings) = ignition_config::Config::parse_slice(bytes)
        .map_err(|e| anyhow!("{origin}: not a valid Ignition 3.x config: {e}"))?;
    let mut problems = Problems::default();
    let root = Loc::root(Style::Ignition);
    for w in &warnings {
        let ignition_config::Warning::UnusedKey(path) = w else {
            problems.push(&root, w);
            continue;
        };
        problems.push(
            &root,
            format!(
                "{}: unknown field for the declared spec version",
                pointer(path)
            ),
        );
    }
    problems.into_result(origin)?;
    let newest: ign::Config = serde_json::from_slice(bytes)
        .map_err(|e| anyhow!("{origin}: not a valid Ignition 3.x config: {e}"))?;
    let mut problems = Problems::default();
    let config = translate(newest, local, &mut problems);
    problems.into_result(origin)?;
    Ok(config)
}

/// `$.storage.files.0.foo` (serde_ignored's path) → `/storage/files/0/foo`.
fn pointer(path: &str) -> String {
    let rest = path.strip_prefix('$').unwrap_or(path);
    rest.split('.')
        .filter(|s| !s.is_empty())
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// Where kernel arguments of an ostree image go instead.
pub const KARGS_HINT: &str = "use bootc's /usr/lib/bootc/kargs.d or rpm-ostree kargs";

fn unsupported(problems: &mut Problems, at: &Loc, what: &str) {
    problems.push(at, format!("{what} cannot be applied at build time"));
}

/// [`unsupported`], with what to do instead.
fn unsupported_hint(p: &mut Problems, at: &Loc, what: &str, hint: &str) {
    p.push(
        at,
        format!("{what} cannot be applied at build time ({hint})"),
    );
}

fn non_empty<T>(v: &Option<Vec<T>>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_empty())
}

fn translate(c: ign::Config, local: Local, p: &mut Problems) -> Config {
    let root = Loc::root(Style::Ignition);
    let ign::Config {
        ignition,
        kernel_arguments,
        passwd,
        storage,
        systemd,
    } = c;
    let ign::Ignition {
        config,
        proxy,
        security,
        timeouts,
        version: _,
    } = ignition;
    let at = root.key("ignition");
    if let Some(ign::IgnitionConfig { merge, replace }) = config {
        if non_empty(&merge) {
            unsupported(
                p,
                &at.key("config").key("merge"),
                "merging other configs (fetched at boot)",
            );
        }
        if replace.is_some() {
            unsupported(
                p,
                &at.key("config").key("replace"),
                "replacing the config (fetched at boot)",
            );
        }
    }
    if proxy.is_some() {
        unsupported(p, &at.key("proxy"), "a proxy for fetching remote resources");
    }
    if security.is_some() {
        unsupported(p, &at.key("security"), "TLS settings for remote resources");
    }
    if timeouts.is_some() {
        unsupported(p, &at.key("timeouts"), "timeouts for remote resources");
    }
    if let Some(ka) = kernel_arguments
        && (non_empty(&ka.should_exist) || non_empty(&ka.should_not_exist))
    {
        unsupported_hint(
            p,
            &root.key("kernel_arguments"),
            "kernel arguments",
            KARGS_HINT,
        );
    }
    let mut out = Config::default();
    if let Some(s) = storage {
        storage_section(s, &root.key("storage"), local, p, &mut out);
    }
    if let Some(ign::Systemd { units }) = systemd {
        let at = root.key("systemd").key("units");
        for (i, u) in units.into_iter().flatten().enumerate() {
            out.units.push(unit(u, &at.index(i)));
        }
    }
    if let Some(ign::Passwd { groups, users }) = passwd {
        let at = root.key("passwd");
        for (i, g) in groups.into_iter().flatten().enumerate() {
            if let Some(g) = group(g, &at.key("groups").index(i), p) {
                out.groups.push(g);
            }
        }
        for (i, u) in users.into_iter().flatten().enumerate() {
            if let Some(u) = user(u, &at.key("users").index(i), p) {
                out.users.push(u);
            }
        }
    }
    out
}

fn storage_section(s: ign::Storage, at: &Loc, local: Local, p: &mut Problems, out: &mut Config) {
    let ign::Storage {
        directories,
        disks,
        files,
        filesystems,
        links,
        luks,
        raid,
    } = s;
    if non_empty(&disks) {
        unsupported(p, &at.key("disks"), "partitioning disks");
    }
    if non_empty(&raid) {
        unsupported(p, &at.key("raid"), "creating RAID arrays");
    }
    if non_empty(&filesystems) {
        unsupported(
            p,
            &at.key("filesystems"),
            "creating or mounting filesystems",
        );
    }
    if non_empty(&luks) {
        unsupported(p, &at.key("luks"), "creating LUKS volumes");
    }
    for (i, f) in files.into_iter().flatten().enumerate() {
        if let Some(f) = file(f, &at.key("files").index(i), local, p) {
            out.files.push(f);
        }
    }
    for (i, d) in directories.into_iter().flatten().enumerate() {
        let at = at.key("directories").index(i);
        let ign::Directory {
            group,
            mode,
            overwrite,
            path,
            user,
        } = d;
        out.directories.push(Directory {
            mode: mode.and_then(|m| config::mode(&at.key("mode"), m, p)),
            user: node_user(user, &at.key("user"), p),
            group: node_group(group, &at.key("group"), p),
            overwrite: overwrite.unwrap_or(false),
            path,
            at,
        });
    }
    for (i, l) in links.into_iter().flatten().enumerate() {
        let at = at.key("links").index(i);
        let ign::Link {
            group,
            hard,
            overwrite,
            path,
            target,
            user,
        } = l;
        if hard == Some(true) {
            unsupported(p, &at.key("hard"), "a hard link");
            continue;
        }
        let Some(target) = target.filter(|t| !t.is_empty()) else {
            p.push(&at.key("target"), "a link needs a target");
            continue;
        };
        out.links.push(Link {
            user: node_user(user, &at.key("user"), p),
            group: node_group(group, &at.key("group"), p),
            overwrite: overwrite.unwrap_or(false),
            path,
            target,
            at,
        });
    }
}

fn resource<'a>(r: &'a ign::Resource) -> Resource<'a> {
    let ign::Resource {
        compression,
        http_headers,
        source,
        verification,
    } = r;
    Resource {
        source: source.as_deref(),
        inline: None,
        local: None,
        compression: compression.as_deref(),
        hash: verification.as_ref().and_then(|v| v.hash.as_deref()),
        http_headers: http_headers.as_ref().is_some_and(|h| !h.is_empty()),
    }
}

fn file(f: ign::File, at: &Loc, local: Local, p: &mut Problems) -> Option<File> {
    let ign::File {
        append,
        contents,
        group,
        mode,
        overwrite,
        path,
        user,
    } = f;
    let before = p.len();
    let contents = match &contents {
        Some(r) => resource::load(&at.key("contents"), &resource(r), local, p).flatten(),
        None => None,
    };
    let mut appended = Vec::new();
    for (i, r) in append.iter().flatten().enumerate() {
        let at = at.key("append").index(i);
        match resource::load(&at, &resource(r), local, p) {
            Some(Some(bytes)) => appended.push(bytes),
            Some(None) => p.push(&at, "an append entry needs a source"),
            None => {}
        }
    }
    let out = File {
        at: at.clone(),
        mode: mode.and_then(|m| config::mode(&at.key("mode"), m, p)),
        user: node_user(user, &at.key("user"), p),
        group: node_group(group, &at.key("group"), p),
        overwrite: overwrite.unwrap_or(false),
        path,
        contents,
        append: appended,
    };
    (p.len() == before).then_some(out)
}

fn owner(id: Option<i64>, name: Option<String>, at: &Loc, p: &mut Problems) -> Owner {
    if id.is_some() && name.is_some() {
        p.push(at, "give either id or name, not both");
    }
    Owner {
        id: id.and_then(|n| config::id(&at.key("id"), n, p)),
        name: name.filter(|n| !n.is_empty()),
    }
}

fn node_user(u: Option<ign::NodeUser>, at: &Loc, p: &mut Problems) -> Owner {
    match u {
        Some(ign::NodeUser { id, name }) => owner(id, name, at, p),
        None => Owner::default(),
    }
}

fn node_group(g: Option<ign::NodeGroup>, at: &Loc, p: &mut Problems) -> Owner {
    match g {
        Some(ign::NodeGroup { id, name }) => owner(id, name, at, p),
        None => Owner::default(),
    }
}

fn unit(u: ign::Unit, at: &Loc) -> Unit {
    let ign::Unit {
        contents,
        dropins,
        enabled,
        mask,
        name,
    } = u;
    let dropins = dropins
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, d)| {
            let ign::Dropin { contents, name } = d;
            Dropin {
                at: at.key("dropins").index(i),
                name,
                contents,
            }
        })
        .collect();
    Unit {
        at: at.clone(),
        name,
        contents,
        enabled,
        mask,
        dropins,
    }
}

fn user(u: ign::User, at: &Loc, p: &mut Problems) -> Option<User> {
    let ign::User {
        gecos,
        groups,
        home_dir,
        name,
        no_create_home,
        no_log_init: _, // lastlog/faillog: sysusers never writes them, so it holds.
        no_user_group,
        password_hash,
        primary_group,
        shell,
        should_exist,
        ssh_authorized_keys,
        system,
        uid,
    } = u;
    if password_hash.is_some() {
        unsupported_hint(
            p,
            &at.key("password_hash"),
            "a password",
            "sysusers.d cannot carry one; use SSH keys",
        );
    }
    if should_exist == Some(false) {
        unsupported(p, &at.key("should_exist"), "removing a user");
    }
    Some(User {
        at: at.clone(),
        uid: uid.and_then(|n| config::id(&at.key("uid"), n, p)),
        name,
        gecos,
        home_dir,
        no_create_home: no_create_home.unwrap_or(false),
        primary_group,
        groups: groups.unwrap_or_default(),
        no_user_group: no_user_group.unwrap_or(false),
        shell,
        system: system.unwrap_or(false),
        ssh_authorized_keys: ssh_authorized_keys.unwrap_or_default(),
    })
}

fn group(g: ign::Group, at: &Loc, p: &mut Problems) -> Option<Group> {
    let ign::Group {
        gid,
        name,
        password_hash,
        should_exist,
        system,
    } = g;
    if password_hash.is_some() {
        unsupported(p, &at.key("password_hash"), "a group password");
    }
    if should_exist == Some(false) {
        unsupported(p, &at.key("should_exist"), "removing a group");
    }
    Some(Group {
        at: at.clone(),
        gid: gid.and_then(|n| config::id(&at.key("gid"), n, p)),
        name,
        system: system.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(json: &str) -> String {
        parse(json.as_bytes(), "c.ign", Local { dir: None })
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn unknown_keys_are_named_by_json_pointer() {
        let e = parse_err(
            r#"{"ignition":{"version":"3.0.0"},"storage":{"files":[{"path":"/etc/x","bogus":1}]}}"#,
        );
        assert!(e.contains("/storage/files/0/bogus: unknown field"), "{e}");
        // kernelArguments exists only from spec 3.3 on.
        let e = parse_err(
            r#"{"ignition":{"version":"3.2.0"},"kernelArguments":{"shouldExist":["x"]}}"#,
        );
        assert!(e.contains("/kernelArguments: unknown field"), "{e}");
    }

    #[test]
    fn unsupported_sections_are_named() {
        let e = parse_err(
            r#"{"ignition":{"version":"3.4.0"},
                "kernelArguments":{"shouldExist":["quiet"]},
                "storage":{"disks":[{"device":"/dev/vda"}],
                           "files":[{"path":"/etc/a","contents":{"source":"https://x/y"}}],
                           "links":[{"path":"/etc/l","target":"/x","hard":true}]},
                "passwd":{"users":[{"name":"u","passwordHash":"$6$x"}]}}"#,
        );
        for needle in [
            "/kernelArguments: kernel arguments",
            "/storage/disks: partitioning",
            "/storage/files/0/contents/source: remote URL (https)",
            "/storage/links/0/hard: a hard link",
            "/passwd/users/0/passwordHash: a password",
        ] {
            assert!(e.contains(needle), "{needle} in {e}");
        }
    }

    #[test]
    fn a_full_config_translates() {
        let c = parse(
            br#"{"ignition":{"version":"3.3.0"},
                "storage":{"files":[{"path":"/etc/motd","mode":420,"overwrite":true,
                    "contents":{"source":"data:,hi%0A"},
                    "append":[{"source":"data:,more%0A"}],
                    "user":{"name":"core"}}]},
                "systemd":{"units":[{"name":"a.service","enabled":true,"contents":"[Unit]\n",
                    "dropins":[{"name":"x.conf","contents":"[Service]\n"}]}]},
                "passwd":{"users":[{"name":"core","sshAuthorizedKeys":["ssh-ed25519 AAAA"]}],
                          "groups":[{"name":"g","gid":1234}]}}"#,
            "c.ign",
            Local { dir: None },
        )
        .unwrap();
        let f = &c.files[0];
        assert_eq!(f.contents.as_deref(), Some(&b"hi\n"[..]));
        assert_eq!(f.append, vec![b"more\n".to_vec()]);
        assert_eq!((f.mode, f.overwrite), (Some(0o644), true));
        assert_eq!(f.user.name.as_deref(), Some("core"));
        assert_eq!(f.at.to_string(), "/storage/files/0");
        assert_eq!(
            c.units[0].dropins[0].at.to_string(),
            "/systemd/units/0/dropins/0"
        );
        assert_eq!(c.users[0].ssh_authorized_keys, ["ssh-ed25519 AAAA"]);
        assert_eq!(c.groups[0].gid, Some(1234));
    }
}
