//! Butane (the `fcos` variant, spec 1.x, YAML) → the model.
//!
//! Read with serde_yaml into structs that deny unknown fields, so a typo is
//! an error naming its YAML path, never a silently dropped setting. The
//! sections Butane defines but that cannot be honoured at build time
//! (disks, kernel arguments, boot_device, …) are read as raw values and
//! refused when they say anything.

use anyhow::{Result, anyhow};
use serde::Deserialize;
use serde_yaml::Value;

use super::config::{
    self, Config, Directory, Dropin, File, Group, Link, Loc, Owner, Problems, Style, Unit, User,
};
use super::resource::{self, Local, Resource};

/// The newest stable fcos spec minor version understood (1.0 to 1.6).
const NEWEST_MINOR: u32 = 6;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Butane {
    variant: String,
    version: String,
    #[serde(default)]
    ignition: Option<Value>,
    #[serde(default)]
    storage: Option<Storage>,
    #[serde(default)]
    systemd: Option<Systemd>,
    #[serde(default)]
    passwd: Option<Passwd>,
    #[serde(default)]
    kernel_arguments: Option<Value>,
    #[serde(default)]
    boot_device: Option<Value>,
    #[serde(default)]
    grub: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Storage {
    #[serde(default)]
    files: Vec<BFile>,
    #[serde(default)]
    directories: Vec<BDirectory>,
    #[serde(default)]
    links: Vec<BLink>,
    #[serde(default)]
    trees: Option<Value>,
    #[serde(default)]
    disks: Option<Value>,
    #[serde(default)]
    raid: Option<Value>,
    #[serde(default)]
    filesystems: Option<Value>,
    #[serde(default)]
    luks: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BResource {
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    inline: Option<String>,
    #[serde(default)]
    local: Option<String>,
    #[serde(default)]
    compression: Option<String>,
    #[serde(default)]
    http_headers: Option<Vec<Value>>,
    #[serde(default)]
    verification: Option<Verification>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Verification {
    #[serde(default)]
    hash: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BOwner {
    #[serde(default)]
    id: Option<i64>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BFile {
    path: String,
    #[serde(default)]
    overwrite: Option<bool>,
    #[serde(default)]
    contents: Option<BResource>,
    #[serde(default)]
    append: Vec<BResource>,
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    user: Option<BOwner>,
    #[serde(default)]
    group: Option<BOwner>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BDirectory {
    path: String,
    #[serde(default)]
    overwrite: Option<bool>,
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    user: Option<BOwner>,
    #[serde(default)]
    group: Option<BOwner>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BLink {
    path: String,
    #[serde(default)]
    overwrite: Option<bool>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    hard: Option<bool>,
    #[serde(default)]
    user: Option<BOwner>,
    #[serde(default)]
    group: Option<BOwner>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Systemd {
    #[serde(default)]
    units: Vec<BUnit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BUnit {
    name: String,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    mask: Option<bool>,
    #[serde(default)]
    contents: Option<String>,
    #[serde(default)]
    contents_local: Option<String>,
    #[serde(default)]
    dropins: Vec<BDropin>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BDropin {
    name: String,
    #[serde(default)]
    contents: Option<String>,
    #[serde(default)]
    contents_local: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Passwd {
    #[serde(default)]
    users: Vec<BUser>,
    #[serde(default)]
    groups: Vec<BGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BUser {
    name: String,
    #[serde(default)]
    password_hash: Option<String>,
    #[serde(default)]
    ssh_authorized_keys: Vec<String>,
    #[serde(default)]
    ssh_authorized_keys_local: Vec<String>,
    #[serde(default)]
    uid: Option<i64>,
    #[serde(default)]
    gecos: Option<String>,
    #[serde(default)]
    home_dir: Option<String>,
    #[serde(default)]
    no_create_home: Option<bool>,
    #[serde(default)]
    primary_group: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    no_user_group: Option<bool>,
    #[serde(default)]
    no_log_init: Option<bool>,
    #[serde(default)]
    shell: Option<String>,
    #[serde(default)]
    should_exist: Option<bool>,
    #[serde(default)]
    system: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BGroup {
    name: String,
    #[serde(default)]
    gid: Option<i64>,
    #[serde(default)]
    password_hash: Option<String>,
    #[serde(default)]
    should_exist: Option<bool>,
    #[serde(default)]
    system: Option<bool>,
}

/// A mode as Butane writes it. YAML 1.2 (serde_yaml) reads `0644` as the
/// string "0644", while Butane's YAML library reads it as octal; both are
/// accepted, as are `420` and `0o644`.
#[derive(Debug, Clone, Copy)]
struct Mode(i64);

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Mode;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a permission mode such as 0644")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Mode, E> {
                Ok(Mode(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Mode, E> {
                i64::try_from(v)
                    .map(Mode)
                    .map_err(|_| E::custom("mode out of range"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Mode, E> {
                let digits = v.strip_prefix("0o").or_else(|| v.strip_prefix('0'));
                digits
                    .filter(|d| !d.is_empty())
                    .and_then(|d| i64::from_str_radix(d, 8).ok())
                    .map(Mode)
                    .ok_or_else(|| E::custom(format!("{v:?} is not an octal mode such as 0644")))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parse a Butane config. `origin` names the file in messages.
pub fn parse(text: &[u8], origin: &str, local: Local) -> Result<Config> {
    let text = std::str::from_utf8(text).map_err(|_| anyhow!("{origin}: not UTF-8 text"))?;
    let de = serde_yaml::Deserializer::from_str(text);
    let b: Butane = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." {
            return anyhow!("{origin}: not a valid Butane config: {inner}");
        }
        // serde_yaml starts its message with the path of the enclosing
        // value; ours is the exact field.
        let bounds = path.match_indices(['.', '[']).map(|(i, _)| i);
        let inner = bounds
            .chain([path.len()])
            .find_map(|i| inner.strip_prefix(&format!("{}: ", &path[..i])))
            .unwrap_or(&inner);
        anyhow!("{origin}: {path}: {inner}")
    })?;
    let mut problems = Problems::default();
    let config = translate(b, local, &mut problems);
    problems.into_result(origin)?;
    Ok(config)
}

/// Whether a raw section says anything (null and empty lists/maps don't).
fn says_something(v: &Option<Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Sequence(s)) => !s.is_empty(),
        Some(Value::Mapping(m)) => !m.is_empty(),
        Some(_) => true,
    }
}

fn unsupported(p: &mut Problems, at: &Loc, what: &str) {
    p.push(at, format!("{what} cannot be applied at build time"));
}

/// [`unsupported`], with what to do instead.
fn unsupported_hint(p: &mut Problems, at: &Loc, what: &str, hint: &str) {
    p.push(
        at,
        format!("{what} cannot be applied at build time ({hint})"),
    );
}

fn check_version(b: &Butane, p: &mut Problems) {
    let root = Loc::root(Style::Butane);
    if b.variant != "fcos" {
        p.push(
            &root.key("variant"),
            format!("variant {:?} is not supported (only fcos)", b.variant),
        );
    }
    let minor = b
        .version
        .strip_prefix("1.")
        .and_then(|r| r.strip_suffix(".0"))
        .and_then(|m| m.parse::<u32>().ok());
    if minor.is_none_or(|m| m > NEWEST_MINOR) {
        p.push(
            &root.key("version"),
            format!(
                "version {:?} is not supported (fcos 1.0.0 to 1.{NEWEST_MINOR}.0)",
                b.version
            ),
        );
    }
}

fn translate(b: Butane, local: Local, p: &mut Problems) -> Config {
    check_version(&b, p);
    let root = Loc::root(Style::Butane);
    if let Some(Value::Mapping(m)) = &b.ignition {
        for (k, v) in m {
            let key = k.as_str().unwrap_or("?");
            if says_something(&Some(v.clone())) && key != "version" {
                unsupported(
                    p,
                    &root.key("ignition").key(key),
                    "fetching or merging configs at boot",
                );
            }
        }
    } else if says_something(&b.ignition) {
        p.push(&root.key("ignition"), "expected a mapping");
    }
    if says_something(&b.kernel_arguments) {
        unsupported_hint(
            p,
            &root.key("kernel_arguments"),
            "kernel arguments",
            super::ignition::KARGS_HINT,
        );
    }
    for (v, key, what) in [
        (&b.boot_device, "boot_device", "boot device layout"),
        (&b.grub, "grub", "GRUB configuration"),
    ] {
        if says_something(v) {
            unsupported(p, &root.key(key), what);
        }
    }
    let mut out = Config::default();
    if let Some(s) = b.storage {
        storage(s, &root.key("storage"), local, p, &mut out);
    }
    if let Some(s) = b.systemd {
        let at = root.key("systemd").key("units");
        for (i, u) in s.units.into_iter().enumerate() {
            if let Some(u) = unit(u, &at.index(i), local, p) {
                out.units.push(u);
            }
        }
    }
    if let Some(pw) = b.passwd {
        let at = root.key("passwd");
        for (i, g) in pw.groups.into_iter().enumerate() {
            out.groups.push(group(g, &at.key("groups").index(i), p));
        }
        for (i, u) in pw.users.into_iter().enumerate() {
            if let Some(u) = user(u, &at.key("users").index(i), local, p) {
                out.users.push(u);
            }
        }
    }
    out
}

fn storage(s: Storage, at: &Loc, local: Local, p: &mut Problems, out: &mut Config) {
    for (v, key, what) in [
        (&s.disks, "disks", "partitioning disks"),
        (&s.raid, "raid", "creating RAID arrays"),
        (
            &s.filesystems,
            "filesystems",
            "creating or mounting filesystems",
        ),
        (&s.luks, "luks", "creating LUKS volumes"),
    ] {
        if says_something(v) {
            unsupported(p, &at.key(key), what);
        }
    }
    if says_something(&s.trees) {
        unsupported_hint(
            p,
            &at.key("trees"),
            "copying local trees",
            "list the files under storage.files",
        );
    }
    for (i, f) in s.files.into_iter().enumerate() {
        let at = at.key("files").index(i);
        let before = p.len();
        let contents = match &f.contents {
            Some(r) => resource::load(&at.key("contents"), &resource(r), local, p).flatten(),
            None => None,
        };
        let mut append = Vec::new();
        for (j, r) in f.append.iter().enumerate() {
            let at = at.key("append").index(j);
            match resource::load(&at, &resource(r), local, p) {
                Some(Some(bytes)) => append.push(bytes),
                Some(None) => p.push(&at, "an append entry needs source, inline or local"),
                None => {}
            }
        }
        let file = File {
            mode: f.mode.and_then(|m| config::mode(&at.key("mode"), m.0, p)),
            user: owner(f.user, &at.key("user"), p),
            group: owner(f.group, &at.key("group"), p),
            overwrite: f.overwrite.unwrap_or(false),
            path: f.path,
            contents,
            append,
            at,
        };
        if p.len() == before {
            out.files.push(file);
        }
    }
    for (i, d) in s.directories.into_iter().enumerate() {
        let at = at.key("directories").index(i);
        out.directories.push(Directory {
            mode: d.mode.and_then(|m| config::mode(&at.key("mode"), m.0, p)),
            user: owner(d.user, &at.key("user"), p),
            group: owner(d.group, &at.key("group"), p),
            overwrite: d.overwrite.unwrap_or(false),
            path: d.path,
            at,
        });
    }
    for (i, l) in s.links.into_iter().enumerate() {
        let at = at.key("links").index(i);
        if l.hard == Some(true) {
            unsupported(p, &at.key("hard"), "a hard link");
            continue;
        }
        let Some(target) = l.target.filter(|t| !t.is_empty()) else {
            p.push(&at.key("target"), "a link needs a target");
            continue;
        };
        out.links.push(Link {
            user: owner(l.user, &at.key("user"), p),
            group: owner(l.group, &at.key("group"), p),
            overwrite: l.overwrite.unwrap_or(false),
            path: l.path,
            target,
            at,
        });
    }
}

fn resource(r: &BResource) -> Resource<'_> {
    Resource {
        source: r.source.as_deref(),
        inline: r.inline.as_deref(),
        local: r.local.as_deref(),
        compression: r.compression.as_deref(),
        hash: r.verification.as_ref().and_then(|v| v.hash.as_deref()),
        http_headers: r.http_headers.as_ref().is_some_and(|h| !h.is_empty()),
    }
}

fn owner(o: Option<BOwner>, at: &Loc, p: &mut Problems) -> Owner {
    let o = o.unwrap_or_default();
    if o.id.is_some() && o.name.is_some() {
        p.push(at, "give either id or name, not both");
    }
    Owner {
        id: o.id.and_then(|n| config::id(&at.key("id"), n, p)),
        name: o.name.filter(|n| !n.is_empty()),
    }
}

/// Text from `contents` or `contents_local` (one of them).
fn text(
    at: &Loc,
    inline: Option<String>,
    local_file: Option<String>,
    local: Local,
    p: &mut Problems,
) -> Option<Option<String>> {
    match (inline, local_file) {
        (Some(_), Some(_)) => {
            p.push(at, "give only one of contents and contents_local");
            None
        }
        (Some(t), None) => Some(Some(t)),
        (None, Some(rel)) => {
            let at = at.key("contents_local");
            let bytes = local.read(&at, &rel, p)?;
            match String::from_utf8(bytes) {
                Ok(t) => Some(Some(t)),
                Err(_) => {
                    p.push(&at, format!("{rel}: not UTF-8 text"));
                    None
                }
            }
        }
        (None, None) => Some(None),
    }
}

fn unit(u: BUnit, at: &Loc, local: Local, p: &mut Problems) -> Option<Unit> {
    let contents = text(at, u.contents, u.contents_local, local, p)?;
    let mut dropins = Vec::new();
    for (i, d) in u.dropins.into_iter().enumerate() {
        let at = at.key("dropins").index(i);
        let contents = text(&at, d.contents, d.contents_local, local, p)?;
        dropins.push(Dropin {
            at,
            name: d.name,
            contents,
        });
    }
    Some(Unit {
        at: at.clone(),
        name: u.name,
        contents,
        enabled: u.enabled,
        mask: u.mask,
        dropins,
    })
}

fn user(u: BUser, at: &Loc, local: Local, p: &mut Problems) -> Option<User> {
    if u.password_hash.is_some() {
        unsupported_hint(
            p,
            &at.key("password_hash"),
            "a password",
            "sysusers.d cannot carry one; use SSH keys",
        );
    }
    if u.should_exist == Some(false) {
        unsupported(p, &at.key("should_exist"), "removing a user");
    }
    // no_log_init (lastlog/faillog): sysusers never writes them, so it holds.
    let _ = u.no_log_init;
    let mut keys = u.ssh_authorized_keys;
    for (i, rel) in u.ssh_authorized_keys_local.iter().enumerate() {
        let at = at.key("ssh_authorized_keys_local").index(i);
        let bytes = local.read(&at, rel, p)?;
        let Ok(text) = String::from_utf8(bytes) else {
            p.push(&at, format!("{rel}: not UTF-8 text"));
            return None;
        };
        keys.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    Some(User {
        at: at.clone(),
        uid: u.uid.and_then(|n| config::id(&at.key("uid"), n, p)),
        name: u.name,
        gecos: u.gecos,
        home_dir: u.home_dir,
        no_create_home: u.no_create_home.unwrap_or(false),
        primary_group: u.primary_group,
        groups: u.groups,
        no_user_group: u.no_user_group.unwrap_or(false),
        shell: u.shell,
        system: u.system.unwrap_or(false),
        ssh_authorized_keys: keys,
    })
}

fn group(g: BGroup, at: &Loc, p: &mut Problems) -> Group {
    if g.password_hash.is_some() {
        unsupported(p, &at.key("password_hash"), "a group password");
    }
    if g.should_exist == Some(false) {
        unsupported(p, &at.key("should_exist"), "removing a group");
    }
    Group {
        at: at.clone(),
        gid: g.gid.and_then(|n| config::id(&at.key("gid"), n, p)),
        name: g.name,
        system: g.system.unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(yaml: &str) -> Result<Config> {
        parse(yaml.as_bytes(), "c.bu", Local { dir: None })
    }

    #[test]
    fn modes_are_octal_as_in_butane() {
        let c = parse_str(
            "variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n    - path: /etc/a\n      mode: 0644\n    - path: /etc/b\n      mode: 420\n    - path: /etc/c\n      mode: 0o755\n",
        )
        .unwrap();
        let modes: Vec<_> = c.files.iter().map(|f| f.mode).collect();
        assert_eq!(modes, [Some(0o644), Some(0o644), Some(0o755)]);
    }

    #[test]
    fn unknown_fields_are_named_by_yaml_path() {
        let e = parse_str(
            "variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n    - path: /etc/a\n      mdoe: 0644\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("storage.files[0]"), "{e}");
        assert!(e.contains("mdoe"), "{e}");
    }

    #[test]
    fn unsupported_sections_are_named() {
        let e = parse_str(
            "variant: fcos\nversion: 1.5.0\nkernel_arguments:\n  should_exist: [quiet]\n\
             boot_device:\n  mirror:\n    devices: [/dev/sda]\n\
             storage:\n  luks:\n    - name: root\n  files:\n    - path: /etc/a\n      contents:\n        source: http://x/y\n",
        )
        .unwrap_err()
        .to_string();
        for needle in [
            "kernel_arguments: kernel arguments",
            "boot_device: boot device",
            "storage.luks: creating LUKS",
            "storage.files[0].contents.source: remote URL (http)",
        ] {
            assert!(e.contains(needle), "{needle} in {e}");
        }
    }

    #[test]
    fn variant_and_version_are_checked() {
        let e = parse_str("variant: flatcar\nversion: 1.0.0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("variant: variant \"flatcar\""), "{e}");
        let e = parse_str("variant: fcos\nversion: 1.7.0-experimental\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("version: version"), "{e}");
        assert!(parse_str("variant: fcos\nversion: 1.6.0\n").is_ok());
    }

    #[test]
    fn local_needs_files_dir() {
        let e = parse_str(
            "variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n    - path: /etc/a\n      contents:\n        local: a.txt\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(
                "storage.files[0].contents.local: \"a.txt\" is a local file, but no --files-dir"
            ),
            "{e}"
        );
    }
}
