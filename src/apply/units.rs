//! `systemd.units`: unit files and drop-ins in /etc/systemd/system, and
//! the symlinks `systemctl enable`, `disable`, `mask` and `unmask` make.
//!
//! Enabling reads the `[Install]` section of the unit file and of its
//! drop-ins, as systemctl does, and makes the same symlinks it makes with
//! `--root`: `TARGET.wants/UNIT` (`WantedBy=`), `.requires` (`RequiredBy=`),
//! `.upholds` (`UpheldBy=`) and `Alias=` links in /etc/systemd/system, each
//! pointing to the unit file's absolute path; `Also=` units are enabled
//! too; a template is enabled with its `DefaultInstance=`. The unit search
//! path is Fedora's (the family of ostree bases): /etc/systemd/system,
//! /usr/local/lib/systemd/system, /usr/lib/systemd/system.

use std::collections::BTreeMap;

use anyhow::Result;

use super::config::{Directory, File, Loc, Owner, Unit};
use super::plan::Planner;
use crate::manifest::Kind;

/// Where unit files, drop-ins and enablement symlinks are written.
pub const SYSTEM: &str = "/etc/systemd/system";

/// The unit search path, highest priority first.
const SEARCH: &[&str] = &[
    "/etc/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
];

const SUFFIXES: &[&str] = &[
    "service",
    "socket",
    "target",
    "timer",
    "path",
    "mount",
    "automount",
    "swap",
    "slice",
    "scope",
    "device",
];

/// The `[Install]` section, merged from a unit file and its drop-ins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Install {
    /// `WantedBy=`.
    pub wanted_by: Vec<String>,
    /// `RequiredBy=`.
    pub required_by: Vec<String>,
    /// `UpheldBy=`.
    pub upheld_by: Vec<String>,
    /// `Alias=`.
    pub alias: Vec<String>,
    /// `Also=`.
    pub also: Vec<String>,
    /// `DefaultInstance=`.
    pub default_instance: Option<String>,
}

impl Install {
    /// Whether there is anything to enable.
    pub fn is_empty(&self) -> bool {
        self.wanted_by.is_empty()
            && self.required_by.is_empty()
            && self.upheld_by.is_empty()
            && self.alias.is_empty()
            && self.also.is_empty()
    }
}

/// Read the `[Install]` section of one unit file or drop-in into `into`
/// (later files add to lists; an empty assignment clears one).
pub fn parse_install(text: &str, into: &mut Install) {
    let mut in_install = false;
    let mut logical = String::new();
    for raw in text.lines() {
        // Continuation lines end in a backslash.
        if let Some(head) = raw.strip_suffix('\\') {
            logical.push_str(head);
            logical.push(' ');
            continue;
        }
        logical.push_str(raw);
        let line = std::mem::take(&mut logical);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            in_install = line == "[Install]";
            continue;
        }
        if !in_install {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let list = match key.trim() {
            "WantedBy" => &mut into.wanted_by,
            "RequiredBy" => &mut into.required_by,
            "UpheldBy" => &mut into.upheld_by,
            "Alias" => &mut into.alias,
            "Also" => &mut into.also,
            "DefaultInstance" => {
                let v = value.trim();
                into.default_instance = (!v.is_empty()).then(|| v.to_string());
                continue;
            }
            _ => continue,
        };
        let words: Vec<String> = value
            .split_whitespace()
            .map(|w| w.trim_matches('"').to_string())
            .collect();
        if words.is_empty() {
            list.clear();
        }
        for w in words {
            if !list.contains(&w) {
                list.push(w);
            }
        }
    }
}

/// A valid unit name: `NAME.SUFFIX`, no `/`.
fn valid_unit(name: &str) -> bool {
    let Some((stem, suffix)) = name.rsplit_once('.') else {
        return false;
    };
    !stem.is_empty()
        && SUFFIXES.contains(&suffix)
        && !name.contains('/')
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_graphic())
}

/// `foo@bar.service` → `foo@.service`.
fn template_of(name: &str) -> Option<String> {
    let (head, rest) = name.split_once('@')?;
    let (_, suffix) = rest.rsplit_once('.')?;
    Some(format!("{head}@.{suffix}"))
}

/// Is `name` a template (`foo@.service`)?
fn is_template(name: &str) -> bool {
    name.contains("@.")
}

/// `foo@.service` + `bar` → `foo@bar.service`.
fn instance(template: &str, inst: &str) -> String {
    template.replacen("@.", &format!("@{inst}."), 1)
}

/// A unit file found in the search path.
struct Found {
    /// Where the file is, as systemctl names it (symlink targets use this).
    path: String,
    /// The same, resolved inside the tree, for reading.
    real: String,
}

impl Planner<'_> {
    /// Plan all units: files and drop-ins first, then masks, then
    /// enablement (so that enabling sees the files this config writes).
    pub(super) fn units(&mut self, units: &[Unit]) -> Result<()> {
        let mut seen: BTreeMap<&str, &Loc> = BTreeMap::new();
        let mut ok = Vec::new();
        for u in units {
            if !valid_unit(&u.name) {
                self.p.push(
                    &u.at.key("name"),
                    format!("{:?} is not a unit name (NAME.service, .timer, …)", u.name),
                );
                continue;
            }
            if let Some(first) = seen.insert(&u.name, &u.at) {
                self.p
                    .push(&u.at, format!("{} is also configured at {first}", u.name));
                continue;
            }
            if u.mask == Some(true) && u.contents.is_some() {
                self.p.push(
                    &u.at.key("mask"),
                    "a masked unit cannot have contents (the mask replaces the unit file)",
                );
                continue;
            }
            if u.mask == Some(true) && u.enabled == Some(true) {
                self.p
                    .push(&u.at.key("enabled"), "a masked unit cannot be enabled");
                continue;
            }
            ok.push(u);
        }
        for u in &ok {
            if let Some(c) = &u.contents {
                self.unit_file(&u.at, &format!("{SYSTEM}/{}", u.name), c)?;
            }
            for d in &u.dropins {
                if !d.name.ends_with(".conf") || d.name.contains('/') || d.name == ".conf" {
                    self.p.push(
                        &d.at.key("name"),
                        format!("{:?} is not a drop-in name (NAME.conf)", d.name),
                    );
                    continue;
                }
                if let Some(c) = &d.contents {
                    let path = format!("{SYSTEM}/{}.d/{}", u.name, d.name);
                    self.unit_file(&d.at, &path, c)?;
                }
            }
        }
        for u in &ok {
            let path = format!("{SYSTEM}/{}", u.name);
            match u.mask {
                Some(true) => {
                    let Some(real) = self.resolve(&u.at.key("mask"), &path)? else {
                        continue;
                    };
                    if self.node(&real)?.is_some_and(|n| n.kind == Kind::File) {
                        // systemctl mask refuses to replace a unit file in /etc.
                        self.p.push(
                            &u.at.key("mask"),
                            format!("{real} is a unit file; masking would delete it"),
                        );
                        continue;
                    }
                    self.put_link(&u.at.key("mask"), &real, "/dev/null", 0, 0, true)?;
                }
                Some(false) => {
                    let Some(real) = self.resolve(&u.at.key("mask"), &path)? else {
                        continue;
                    };
                    if self.node(&real)?.is_some_and(|n| {
                        n.kind == Kind::Symlink && n.target.as_deref() == Some("/dev/null")
                    }) {
                        self.remove_link(&u.at.key("mask"), &real)?;
                    }
                }
                None => {}
            }
        }
        for u in &ok {
            match u.enabled {
                Some(true) => self.enable(&u.at.key("enabled"), &u.name)?,
                Some(false) => self.disable(&u.at.key("enabled"), &u.name)?,
                None => {}
            }
        }
        Ok(())
    }

    /// A unit file or drop-in: always replaced, as Ignition does.
    fn unit_file(&mut self, at: &Loc, path: &str, contents: &str) -> Result<()> {
        let parent = path.rsplit_once('/').map_or("/", |(p, _)| p);
        if parent != SYSTEM {
            self.directory(
                &Directory {
                    at: at.clone(),
                    path: parent.to_string(),
                    overwrite: false,
                    mode: None,
                    user: Owner::default(),
                    group: Owner::default(),
                },
                false,
            )?;
        }
        self.file(
            &File {
                at: at.clone(),
                path: path.to_string(),
                overwrite: true,
                contents: Some(contents.as_bytes().to_vec()),
                append: vec![],
                mode: Some(0o644),
                user: Owner::default(),
                group: Owner::default(),
            },
            false,
        )
    }

    /// Find a unit file as systemctl does: the name in every search
    /// directory, then (for an instance) its template.
    fn find_unit(&mut self, at: &Loc, name: &str) -> Result<Option<Found>> {
        let mut names = vec![name.to_string()];
        names.extend(template_of(name).filter(|t| t != name));
        for n in &names {
            for dir in SEARCH {
                let path = format!("{dir}/{n}");
                let Some(real) = self.resolve(at, &path)? else {
                    return Ok(None);
                };
                match self.node(&real)? {
                    Some(node) if node.kind == Kind::File => {
                        return Ok(Some(Found { path, real }));
                    }
                    Some(node) if node.kind == Kind::Symlink => {
                        let what = if node.target.as_deref() == Some("/dev/null") {
                            "masked".to_string()
                        } else {
                            format!(
                                "an alias (a symlink to {}); enable the unit it names",
                                node.target.unwrap_or_default()
                            )
                        };
                        self.p.push(at, format!("{n} is {what} ({path})"));
                        return Ok(None);
                    }
                    _ => {}
                }
            }
        }
        Ok(None)
    }

    /// The `[Install]` section of a found unit: the file, then its
    /// drop-ins (`NAME.d/*.conf`, and the template's for an instance) in
    /// file-name order, a name in a higher-priority directory hiding the
    /// same name below.
    fn install_of(&mut self, at: &Loc, name: &str, found: &Found) -> Result<Install> {
        let mut install = Install::default();
        parse_install(
            &String::from_utf8_lossy(&self.content(&found.real)?),
            &mut install,
        );
        let mut dirs = vec![format!("{name}.d")];
        if let Some(t) = template_of(name).filter(|t| t != name) {
            dirs.insert(0, format!("{t}.d"));
        }
        let mut dropins: BTreeMap<String, String> = BTreeMap::new();
        for d in &dirs {
            for search in SEARCH {
                let Some(real_dir) = self.resolve(at, &format!("{search}/{d}"))? else {
                    return Ok(install);
                };
                for file in self.list(&real_dir)? {
                    if file.ends_with(".conf") {
                        dropins
                            .entry(file.clone())
                            .or_insert(format!("{real_dir}/{file}"));
                    }
                }
            }
        }
        for path in dropins.values() {
            if self.node(path)?.is_some_and(|n| n.kind == Kind::File) {
                parse_install(&String::from_utf8_lossy(&self.content(path)?), &mut install);
            }
        }
        Ok(install)
    }

    /// `systemctl enable NAME`.
    fn enable(&mut self, at: &Loc, name: &str) -> Result<()> {
        let mut queue = vec![name.to_string()];
        let mut done = Vec::new();
        while let Some(n) = queue.pop() {
            if done.contains(&n) {
                continue;
            }
            done.push(n.clone());
            let before = self.p.len();
            let Some(found) = self.find_unit(at, &n)? else {
                if self.p.len() == before {
                    self.p.push(
                        at,
                        format!("no unit file {n} in the tree or in this config"),
                    );
                }
                return Ok(());
            };
            let install = self.install_of(at, &n, &found)?;
            if install.is_empty() {
                self.p.push(
                    at,
                    format!(
                        "{n} has no [Install] section (WantedBy=, RequiredBy=, Alias=, …): \
                         there is nothing to enable"
                    ),
                );
                continue;
            }
            let inst = if is_template(&n) {
                match &install.default_instance {
                    Some(i) => instance(&n, i),
                    None => {
                        self.p.push(
                            at,
                            format!(
                                "{n} is a template without DefaultInstance=; enable an instance"
                            ),
                        );
                        continue;
                    }
                }
            } else {
                n.clone()
            };
            let mut links = Vec::new();
            for (list, kind) in [
                (&install.wanted_by, "wants"),
                (&install.required_by, "requires"),
                (&install.upheld_by, "upholds"),
            ] {
                for target in list {
                    links.push(format!("{SYSTEM}/{target}.{kind}/{inst}"));
                }
            }
            for a in &install.alias {
                let alias = match inst.split_once('@') {
                    Some((_, rest)) if is_template(a) => {
                        instance(a, rest.rsplit_once('.').map_or(rest, |(i, _)| i))
                    }
                    _ => a.clone(),
                };
                links.push(format!("{SYSTEM}/{alias}"));
            }
            let names = install
                .wanted_by
                .iter()
                .chain(&install.required_by)
                .chain(&install.upheld_by)
                .chain(&install.alias)
                .chain(&install.also);
            if let Some(bad) = names.clone().find(|v| v.contains('%') || !valid_unit(v)) {
                self.p.push(
                    at,
                    format!(
                        "{n}: [Install] names {bad:?}; specifiers and invalid unit names are \
                         not supported"
                    ),
                );
                continue;
            }
            for link in links {
                let Some(real) = self.resolve(at, &link)? else {
                    continue;
                };
                match self.node(&real)? {
                    Some(x)
                        if x.kind == Kind::Symlink
                            && x.target.as_deref() == Some(found.path.as_str()) => {}
                    Some(x) => {
                        self.p.push(
                            at,
                            format!(
                                "{real} already exists ({}{}); systemctl enable would refuse",
                                x.kind.name(),
                                x.target.map(|t| format!(" to {t}")).unwrap_or_default()
                            ),
                        );
                    }
                    None => self.put_link(at, &real, &found.path, 0, 0, false)?,
                }
            }
            queue.extend(install.also.iter().cloned());
        }
        Ok(())
    }

    /// `systemctl disable NAME`: remove the symlinks to it in
    /// /etc/systemd/system (`*.wants`, `*.requires`, `*.upholds`, aliases).
    fn disable(&mut self, at: &Loc, name: &str) -> Result<()> {
        let mut queue = vec![name.to_string()];
        let mut done = Vec::new();
        while let Some(n) = queue.pop() {
            if done.contains(&n) {
                continue;
            }
            done.push(n.clone());
            let install = match self.find_unit(at, &n)? {
                Some(found) => self.install_of(at, &n, &found)?,
                None => Install::default(),
            };
            let matches = |entry: &str| {
                entry == n || (is_template(&n) && template_of(entry).as_deref() == Some(n.as_str()))
            };
            let Some(system) = self.resolve(at, SYSTEM)? else {
                return Ok(());
            };
            let mut remove = Vec::new();
            for dir in self.list(&system)? {
                let is_deps = [".wants", ".requires", ".upholds"]
                    .iter()
                    .any(|s| dir.ends_with(s));
                let path = format!("{system}/{dir}");
                if !is_deps || self.node(&path)?.is_none_or(|x| x.kind != Kind::Dir) {
                    continue;
                }
                for entry in self.list(&path)? {
                    if matches(&entry) {
                        remove.push(format!("{path}/{entry}"));
                    }
                }
            }
            remove.extend(install.alias.iter().map(|a| format!("{system}/{a}")));
            for path in remove {
                if self.node(&path)?.is_some_and(|x| x.kind == Kind::Symlink) {
                    self.remove_link(at, &path)?;
                }
            }
            queue.extend(install.also.iter().cloned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_sections_merge_like_systemd() {
        let mut i = Install::default();
        parse_install(
            "[Unit]\nWantedBy=not-here.target\n[Install]\nWantedBy=multi-user.target \\\n  \
             graphical.target\nAlias=x.service\n# WantedBy=commented.target\n",
            &mut i,
        );
        parse_install("[Install]\nRequiredBy=foo.target\nAlias=\n", &mut i);
        assert_eq!(i.wanted_by, ["multi-user.target", "graphical.target"]);
        assert_eq!(i.required_by, ["foo.target"]);
        assert!(i.alias.is_empty());
    }

    #[test]
    fn unit_names() {
        assert!(valid_unit("a.service") && valid_unit("getty@tty1.service"));
        assert!(!valid_unit("a") && !valid_unit("a/b.service") && !valid_unit("a.conf"));
        assert_eq!(
            template_of("getty@tty1.service").as_deref(),
            Some("getty@.service")
        );
        assert_eq!(instance("getty@.service", "tty1"), "getty@tty1.service");
    }
}
