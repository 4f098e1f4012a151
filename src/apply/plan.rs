//! The pure planner: a config and a view of the tree → the writes, planned
//! for the whole config before anything is written. Whether a write is
//! allowed at all, and whether it changes base content, is not decided
//! here: every resolved path and every write is put to the add-only rules
//! of [`super::decide`], whose `base-modified` findings the [`Plan`]
//! carries.
//!
//! Paths are resolved the way Ignition resolves them at first boot: a
//! symlink in a parent component is followed *inside* the tree (so
//! `/home/core` lands in `/var/home/core` when `/home` is a symlink to
//! `var/home`), the last component never is. Then the zone decides how
//! the entry is written:
//!
//! - `/etc` and the rest of the OS tree: written directly. Outside `/etc`,
//!   replacing or changing base content is a `base-modified` finding.
//! - `/var`: never written. ostree does not carry `/var` from an image, so
//!   the entry becomes a line of our own tmpfiles.d file, with regular
//!   files preserved under `/usr/share/factory` for a `C` line (the layout
//!   rule of `finalize`). The tree's current `/var` is build scratch and is
//!   not consulted.
//! - runtime directories and API filesystems: refused.
//!
//! Owners are resolved against the tree's own user database
//! ([`super::userdb`]). A user or
//! group that will only exist at boot (created by sysusers.d with a dynamic
//! id) is written as root and fixed by a tmpfiles.d `z` line, which runs
//! after systemd-sysusers.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;

use super::config::{Config, Directory, File, Link, Loc, Owner, Problems};
use super::decide::{AddOnly, refusal};
use super::tree::{GENERATED_SYSUSERS, GENERATED_TMPFILES, Node, TreeView};
use super::userdb::{Db, Id, line_key};
use crate::checks::Finding;
use crate::layout::FACTORY;
use crate::layout::tmpfiles::{self, Line};
use crate::manifest::{Kind, Manifest};
use crate::path::{decode, encode};
use crate::zones::{self, Zone, zone};

/// One write, carried out by [`super::write`] in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create a directory, or set the mode and owner of an existing one.
    Dir {
        /// Absolute path (encoded).
        path: String,
        /// Permission bits.
        mode: u32,
        /// Owner uid.
        uid: u32,
        /// Owner gid.
        gid: u32,
        /// Remove a non-directory at the path first.
        replace: bool,
    },
    /// Write a regular file (temp file and rename).
    File {
        /// Absolute path (encoded).
        path: String,
        /// Contents.
        content: Vec<u8>,
        /// Permission bits.
        mode: u32,
        /// Owner uid.
        uid: u32,
        /// Owner gid.
        gid: u32,
    },
    /// Create or replace a symlink (temp link and rename).
    Symlink {
        /// Absolute path (encoded).
        path: String,
        /// Target, as written.
        target: String,
        /// Owner uid of the link.
        uid: u32,
        /// Owner gid of the link.
        gid: u32,
    },
    /// Remove a symlink.
    Remove {
        /// Absolute path (encoded).
        path: String,
    },
}

impl Op {
    /// The path written.
    pub fn path(&self) -> &str {
        match self {
            Op::Dir { path, .. }
            | Op::File { path, .. }
            | Op::Symlink { path, .. }
            | Op::Remove { path } => path,
        }
    }

    /// One line for the build log.
    pub fn describe(&self) -> String {
        match self {
            Op::Dir {
                path,
                mode,
                uid,
                gid,
                replace,
            } => format!(
                "{} {path} ({mode:04o} {uid}:{gid})",
                if *replace {
                    "replace with directory"
                } else {
                    "directory"
                }
            ),
            Op::File {
                path,
                content,
                mode,
                uid,
                gid,
            } => format!(
                "file {path} ({} bytes, {mode:04o} {uid}:{gid})",
                content.len()
            ),
            Op::Symlink { path, target, .. } => format!("symlink {path} -> {target}"),
            Op::Remove { path } => format!("remove {path}"),
        }
    }
}

/// Everything decided.
#[derive(Debug, Default)]
pub struct Plan {
    /// The writes, in order.
    pub ops: Vec<Op>,
    /// `base-modified` findings at their default level (deny), sorted.
    pub findings: Vec<Finding>,
}

/// A planned node: what an earlier write of this plan leaves at a path.
#[derive(Debug, Clone)]
pub(super) struct Planned {
    node: Option<Node>,
    content: Option<Vec<u8>>,
}

/// A resolved owner: ids (when known) and names (for tmpfiles.d lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Who {
    pub(super) uid: Id,
    pub(super) gid: Id,
    pub(super) user: String,
    pub(super) group: String,
}

impl Who {
    pub(super) fn root() -> Who {
        Who {
            uid: Id::Known(0),
            gid: Id::Known(0),
            user: "root".into(),
            group: "root".into(),
        }
    }

    fn known(&self) -> Option<(u32, u32)> {
        match (self.uid, self.gid) {
            (Id::Known(u), Id::Known(g)) => Some((u, g)),
            _ => None,
        }
    }
}

/// A line of our tmpfiles.d file.
#[derive(Debug, Clone)]
enum TmpLine {
    /// `d`, `L`, `C`.
    Create(Line),
    /// `z PATH MODE USER GROUP -`: set mode and owner once users exist.
    Adjust {
        path: Vec<u8>,
        mode: u32,
        user: String,
        group: String,
    },
}

impl TmpLine {
    fn render(&self) -> Option<String> {
        match self {
            TmpLine::Create(l) => l.render(),
            TmpLine::Adjust {
                path,
                mode,
                user,
                group,
            } => Some(format!(
                "z {} {mode:04o} {} {} -",
                tmpfiles::quote_path(path)?,
                tmpfiles::quote_owner(user)?,
                tmpfiles::quote_owner(group)?
            )),
        }
    }
}

/// The planner's state; `users.rs` and `units.rs` add their parts.
pub(super) struct Planner<'a> {
    pub(super) view: &'a dyn TreeView,
    add_only: AddOnly<'a>,
    overlay: BTreeMap<String, Planned>,
    pub(super) ops: Vec<Op>,
    pub(super) p: Problems,
    tmp: BTreeMap<(Vec<u8>, u8), (Loc, TmpLine)>,
    pub(super) sysusers: BTreeMap<(u8, String, String), String>,
    pub(super) db: Db,
}

/// Plan a whole config. `Err` lists every problem (exit 2); findings are
/// returned, not judged.
pub fn plan(
    config: &Config,
    view: &dyn TreeView,
    base: Option<&Manifest>,
    origin: &str,
) -> Result<Plan> {
    let db = Db::load(view)?;
    let mut pl = Planner {
        view,
        add_only: AddOnly::new(view, base),
        overlay: BTreeMap::new(),
        ops: Vec::new(),
        p: Problems::default(),
        tmp: BTreeMap::new(),
        sysusers: BTreeMap::new(),
        db,
    };
    // Ignition's order: users and groups (so files can be owned by them),
    // then storage, then units.
    let homes = pl.users(config)?;
    for d in &homes.dirs {
        pl.directory(d, false)?;
    }
    for f in &homes.files {
        pl.file(f, false)?;
    }
    pl.storage(config)?;
    pl.units(&config.units)?;
    pl.generated()?;
    pl.p.into_result(origin)?;
    Ok(Plan {
        ops: pl.ops,
        findings: pl.add_only.into_findings(),
    })
}

/// Entries of `storage`, in the order Ignition creates them (parents first).
enum Entry<'c> {
    Dir(&'c Directory),
    File(&'c File),
    Link(&'c Link),
}

impl Entry<'_> {
    fn path(&self) -> &str {
        match self {
            Entry::Dir(d) => &d.path,
            Entry::File(f) => &f.path,
            Entry::Link(l) => &l.path,
        }
    }

    fn at(&self) -> &Loc {
        match self {
            Entry::Dir(d) => &d.at,
            Entry::File(f) => &f.at,
            Entry::Link(l) => &l.at,
        }
    }
}

impl<'a> Planner<'a> {
    /// What is at `path` now, with this plan's earlier writes applied.
    pub(super) fn node(&self, path: &str) -> Result<Option<Node>> {
        match self.overlay.get(path) {
            Some(p) => Ok(p.node.clone()),
            None => self.view.node(path),
        }
    }

    /// The contents of a regular file, with this plan's writes applied.
    pub(super) fn content(&self, path: &str) -> Result<Vec<u8>> {
        match self.overlay.get(path).and_then(|p| p.content.clone()) {
            Some(c) => Ok(c),
            None => self.view.read(path),
        }
    }

    /// The names in a directory, with this plan's writes applied.
    pub(super) fn list(&self, dir: &str) -> Result<Vec<String>> {
        let mut names: BTreeSet<String> = self.view.list(dir)?.into_iter().collect();
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        for (path, planned) in self.overlay.range(prefix.clone()..) {
            let Some(rest) = path.strip_prefix(&prefix) else {
                break;
            };
            if rest.contains('/') {
                continue;
            }
            if planned.node.is_some() {
                names.insert(rest.to_string());
            } else {
                names.remove(rest);
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Resolve a config path as Ignition does: validated, encoded, with
    /// symlinks in its parents followed inside the tree. `None` after
    /// recording a problem.
    pub(super) fn resolve(&mut self, at: &Loc, path: &str) -> Result<Option<String>> {
        let clean = path.starts_with('/')
            && path.len() > 1
            && !path.ends_with('/')
            && !path.contains('\0')
            && path[1..]
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..");
        if !clean {
            self.p.push(
                at,
                format!("{path:?} is not a clean absolute path (no //, . or .. components)"),
            );
            return Ok(None);
        }
        self.resolve_encoded(at, &encode(path.as_bytes()).0)
    }

    /// [`Self::resolve`] for a clean path that is already encoded.
    fn resolve_encoded(&mut self, at: &Loc, encoded: &str) -> Result<Option<String>> {
        let path = encoded;
        let comps: Vec<&str> = encoded[1..].split('/').collect();
        let Some((last, parents)) = comps.split_last() else {
            return Ok(None);
        };
        let mut todo: std::collections::VecDeque<String> =
            parents.iter().map(|s| s.to_string()).collect();
        let mut cur: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop_front() {
            if c.is_empty() || c == "." {
                continue;
            }
            if c == ".." {
                cur.pop();
                continue;
            }
            let candidate = if cur.is_empty() {
                format!("/{c}")
            } else {
                format!("/{}/{c}", cur.join("/"))
            };
            match self.node(&candidate)? {
                None => cur.push(c),
                Some(n) if n.kind == Kind::Dir => cur.push(c),
                Some(n) if n.kind == Kind::Symlink => {
                    hops += 1;
                    if hops > 40 {
                        self.p
                            .push(at, format!("{path}: too many levels of symlinks"));
                        return Ok(None);
                    }
                    let target = n.target.unwrap_or_default();
                    if target.starts_with('/') {
                        cur.clear();
                    }
                    for part in target.split('/').rev() {
                        todo.push_front(part.to_string());
                    }
                }
                Some(n) => {
                    self.p.push(
                        at,
                        format!(
                            "{path}: {candidate} is a {}, not a directory",
                            n.kind.name()
                        ),
                    );
                    return Ok(None);
                }
            }
        }
        cur.push(last.to_string());
        let resolved = format!("/{}", cur.join("/"));
        if let Some(why) = refusal(&resolved) {
            self.p.push(at, why);
            return Ok(None);
        }
        Ok(Some(resolved))
    }

    /// Resolve an owner against the tree's user database.
    pub(super) fn who(&mut self, at: &Loc, user: &Owner, group: &Owner) -> Option<Who> {
        let mut who = Who::root();
        if let Some(id) = user.id {
            who.uid = Id::Known(id);
            who.user = self.db.user_name(id);
        } else if let Some(name) = &user.name {
            match self.db.user_id(name) {
                Some(id) => {
                    who.uid = id;
                    who.user = name.clone();
                }
                None => {
                    self.p.push(
                        &at.key("user").key("name"),
                        format!(
                            "no user {name:?} in the tree (/etc/passwd, /usr/lib/passwd, \
                             sysusers.d) or in this config"
                        ),
                    );
                    return None;
                }
            }
        }
        if let Some(id) = group.id {
            who.gid = Id::Known(id);
            who.group = self.db.group_name(id);
        } else if let Some(name) = &group.name {
            match self.db.group_id(name) {
                Some(id) => {
                    who.gid = id;
                    who.group = name.clone();
                }
                None => {
                    self.p.push(
                        &at.key("group").key("name"),
                        format!(
                            "no group {name:?} in the tree (/etc/group, /usr/lib/group, \
                             sysusers.d) or in this config"
                        ),
                    );
                    return None;
                }
            }
        }
        Some(who)
    }

    /// Existing ownership as a [`Who`] (for "keep what is there").
    fn who_of(&self, n: &Node) -> Who {
        Who {
            uid: Id::Known(n.uid),
            gid: Id::Known(n.gid),
            user: self.db.user_name(n.uid),
            group: self.db.group_name(n.gid),
        }
    }

    fn storage(&mut self, config: &Config) -> Result<()> {
        let mut entries: Vec<Entry> = Vec::new();
        entries.extend(config.directories.iter().map(Entry::Dir));
        entries.extend(config.files.iter().map(Entry::File));
        entries.extend(config.links.iter().map(Entry::Link));
        entries.sort_by_key(|e| e.path().matches('/').count());
        let mut seen: BTreeMap<&str, &Loc> = BTreeMap::new();
        for e in &entries {
            if let Some(first) = seen.insert(e.path(), e.at()) {
                self.p.push(
                    e.at(),
                    format!("{} is also configured at {first}", e.path()),
                );
            }
        }
        for e in entries {
            match e {
                Entry::Dir(d) => self.directory(d, true)?,
                Entry::File(f) => self.file(f, true)?,
                Entry::Link(l) => self.link(l)?,
            }
        }
        Ok(())
    }

    /// `storage.directories[]`. `adjust`: an existing directory gets the
    /// config's mode and owner (Ignition); otherwise it is left alone
    /// (homes, as useradd does).
    pub(super) fn directory(&mut self, d: &Directory, adjust: bool) -> Result<()> {
        let Some(path) = self.resolve(&d.at, &d.path)? else {
            return Ok(());
        };
        let Some(who) = self.who(&d.at, &d.user, &d.group) else {
            return Ok(());
        };
        let mode = d.mode.unwrap_or(0o755);
        if zone(&path) == Zone::Var {
            let Some(raw) = decode(&path) else {
                return Ok(());
            };
            let line = Line::Dir {
                path: raw,
                mode,
                user: who.user,
                group: who.group,
            };
            self.tmpfile(&d.at, line);
            return Ok(());
        }
        let existing = self.node(&path)?;
        let (mode, who, replace) = match &existing {
            Some(n) if n.kind == Kind::Dir => {
                if d.overwrite {
                    self.p.push(
                        &d.at.key("overwrite"),
                        format!(
                            "{path} is an existing directory; overwrite: true would delete \
                             its contents, which is not done at build time"
                        ),
                    );
                    return Ok(());
                }
                if !adjust {
                    return Ok(());
                }
                let mode = d.mode.unwrap_or(n.mode);
                let who = if d.user.is_set() || d.group.is_set() {
                    who
                } else {
                    self.who_of(n)
                };
                (mode, who, false)
            }
            Some(n) => {
                if !d.overwrite {
                    self.p.push(
                        &d.at,
                        format!(
                            "{path} exists and is a {}; set overwrite: true to replace it",
                            n.kind.name()
                        ),
                    );
                    return Ok(());
                }
                (mode, who, true)
            }
            None => (mode, who, false),
        };
        let Some((uid, gid)) = self.owned_here(&d.at, &path, &who, mode) else {
            return Ok(());
        };
        let planned = Node {
            kind: Kind::Dir,
            mode: if who.known().is_some() {
                mode
            } else {
                mode & 0o1777
            },
            uid,
            gid,
            target: None,
        };
        if existing.as_ref() == Some(&planned) {
            return Ok(());
        }
        self.add_only.check_base(&d.at, &path, &planned, None)?;
        self.ops.push(Op::Dir {
            path: path.clone(),
            mode: planned.mode,
            uid,
            gid,
            replace,
        });
        self.overlay.insert(
            path,
            Planned {
                node: Some(planned),
                content: None,
            },
        );
        Ok(())
    }

    /// `storage.files[]`, with Ignition's overwrite and append rules.
    /// `config_rules`: false for files the tool owns (SSH key fragments),
    /// which are simply replaced.
    pub(super) fn file(&mut self, f: &File, config_rules: bool) -> Result<()> {
        let Some(path) = self.resolve(&f.at, &f.path)? else {
            return Ok(());
        };
        if f.overwrite && f.contents.is_none() && config_rules {
            self.p.push(
                &f.at.key("overwrite"),
                "overwrite: true needs contents (Ignition refuses it too)",
            );
            return Ok(());
        }
        let var = zone(&path) == Zone::Var;
        let existing = if var { None } else { self.node(&path)? };
        let mut keep: Option<Node> = None;
        if let Some(n) = &existing {
            let replace = f.overwrite || !config_rules;
            if n.kind == Kind::Dir {
                self.p.push(
                    &f.at,
                    format!("{path} is a directory; it cannot be replaced by a file"),
                );
                return Ok(());
            }
            if !replace && (n.kind != Kind::File || f.contents.is_some()) {
                if self.unchanged(f, &path, n)? {
                    // Already exactly so (an earlier run of the same config).
                    return Ok(());
                }
                self.p.push(
                    &f.at,
                    format!(
                        "{path} exists ({}); set overwrite: true to replace it",
                        n.kind.name()
                    ),
                );
                return Ok(());
            }
            if !replace && n.kind == Kind::File {
                keep = Some(n.clone());
            }
        }
        let mut content = match (&keep, &f.contents) {
            (Some(_), _) => self.content(&path)?,
            (None, Some(c)) => c.clone(),
            (None, None) => Vec::new(),
        };
        for a in &f.append {
            content.extend_from_slice(a);
        }
        let mode = f.mode.or(keep.as_ref().map(|n| n.mode)).unwrap_or(0o644);
        let Some(mut who) = self.who(&f.at, &f.user, &f.group) else {
            return Ok(());
        };
        if let Some(n) = &keep
            && !f.user.is_set()
            && !f.group.is_set()
        {
            who = self.who_of(n);
        }
        self.put_file(&f.at, &path, content, mode, &who)
    }

    /// Whether the file at `path` already is what `f` describes, so that
    /// applying the same config twice is not an error.
    fn unchanged(&mut self, f: &File, path: &str, n: &Node) -> Result<bool> {
        if n.kind != Kind::File {
            return Ok(false);
        }
        let Some(who) = self.who(&f.at, &f.user, &f.group) else {
            return Ok(false);
        };
        let mut want = f.contents.clone().unwrap_or_default();
        for a in &f.append {
            want.extend_from_slice(a);
        }
        Ok(who.known() == Some((n.uid, n.gid))
            && n.mode == f.mode.unwrap_or(0o644)
            && self.content(path)? == want)
    }

    /// Place file contents at a resolved path: directly, or for `/var` as
    /// a factory copy and a `C` line.
    pub(super) fn put_file(
        &mut self,
        at: &Loc,
        path: &str,
        content: Vec<u8>,
        mode: u32,
        who: &Who,
    ) -> Result<()> {
        if zone(path) == Zone::Var {
            let Some(raw) = decode(path) else {
                return Ok(());
            };
            let Some(factory) = self.resolve_encoded(at, &format!("{FACTORY}{path}"))? else {
                return Ok(());
            };
            // `C` copies the factory file with its owner, so a known owner
            // goes on the copy. An owner that exists only at boot, or
            // setuid/setgid/sticky bits, are set by a `z` line after it.
            let (uid, gid) = who.known().unwrap_or((0, 0));
            self.write_file(at, &factory, content, mode & 0o777, uid, gid)?;
            let source = decode(&factory).unwrap_or_default();
            self.tmpfile(
                at,
                Line::Copy {
                    path: raw.clone(),
                    source,
                },
            );
            if who.known().is_none() || mode & 0o7000 != 0 {
                self.adjust(at, raw, mode, who);
            }
            return Ok(());
        }
        let Some((uid, gid)) = self.owned_here(at, path, who, mode) else {
            return Ok(());
        };
        let mode = if who.known().is_some() {
            mode
        } else {
            mode & 0o1777
        };
        self.write_file(at, path, content, mode, uid, gid)
    }

    /// Ids to write now for `who` at `path` (outside /var). An owner that
    /// exists only at boot is written as root and fixed by a `z` line,
    /// which needs a writable place: /etc, not the read-only /usr.
    fn owned_here(&mut self, at: &Loc, path: &str, who: &Who, mode: u32) -> Option<(u32, u32)> {
        if let Some(ids) = who.known() {
            return Some(ids);
        }
        if zone(path) != Zone::Etc {
            self.p.push(
                at,
                format!(
                    "{path}: owner {}:{} is created only at boot (sysusers.d) and the path is \
                     read-only on a deployed system; give a numeric id or an existing user",
                    who.user, who.group
                ),
            );
            return None;
        }
        let raw = decode(path)?;
        self.adjust(at, raw, mode, who);
        let uid = match who.uid {
            Id::Known(n) => n,
            Id::Deferred => 0,
        };
        let gid = match who.gid {
            Id::Known(n) => n,
            Id::Deferred => 0,
        };
        Some((uid, gid))
    }

    /// Write a regular file (not /var), unless it is already exactly so.
    fn write_file(
        &mut self,
        at: &Loc,
        path: &str,
        content: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<()> {
        let planned = Node {
            kind: Kind::File,
            mode,
            uid,
            gid,
            target: None,
        };
        let existing = self.node(path)?;
        if existing.as_ref() == Some(&planned) && self.content(path)? == content {
            return Ok(());
        }
        self.add_only
            .check_base(at, path, &planned, Some(&content))?;
        self.ops.push(Op::File {
            path: path.to_string(),
            content: content.clone(),
            mode,
            uid,
            gid,
        });
        self.overlay.insert(
            path.to_string(),
            Planned {
                node: Some(planned),
                content: Some(content),
            },
        );
        Ok(())
    }

    /// `storage.links[]` (symbolic).
    fn link(&mut self, l: &Link) -> Result<()> {
        let Some(path) = self.resolve(&l.at, &l.path)? else {
            return Ok(());
        };
        let Some(who) = self.who(&l.at, &l.user, &l.group) else {
            return Ok(());
        };
        if zone(&path) == Zone::Var {
            if who.known() != Some((0, 0)) {
                self.p.push(
                    &l.at,
                    format!(
                        "{path}: tmpfiles.d creates /var symlinks as root; drop user and group"
                    ),
                );
                return Ok(());
            }
            let Some(raw) = decode(&path) else {
                return Ok(());
            };
            let line = Line::Symlink {
                path: raw,
                target: l.target.as_bytes().to_vec(),
            };
            self.tmpfile(&l.at, line);
            return Ok(());
        }
        let Some((uid, gid)) = who.known() else {
            self.p.push(
                &l.at,
                format!("{path}: a symlink's owner must exist in the tree at build time"),
            );
            return Ok(());
        };
        self.put_link(&l.at, &path, &l.target, uid, gid, l.overwrite)
    }

    /// Place a symlink at a resolved path (not /var). An existing link with
    /// the same target only gets its owner; anything else at the path
    /// needs `overwrite`.
    pub(super) fn put_link(
        &mut self,
        at: &Loc,
        path: &str,
        target: &str,
        uid: u32,
        gid: u32,
        overwrite: bool,
    ) -> Result<()> {
        let enc_target = encode(target.as_bytes()).0;
        let planned = Node {
            kind: Kind::Symlink,
            mode: 0o777,
            uid,
            gid,
            target: Some(enc_target.clone()),
        };
        let existing = self.node(path)?;
        if existing.as_ref() == Some(&planned) {
            return Ok(());
        }
        let same_target = existing
            .as_ref()
            .is_some_and(|n| n.kind == Kind::Symlink && n.target == planned.target);
        match existing {
            // Only the owner differs: Ignition just sets it.
            Some(_) if same_target => {}
            Some(n) if n.kind == Kind::Dir => {
                self.p.push(
                    at,
                    format!("{path} is a directory; it cannot be replaced by a symlink"),
                );
                return Ok(());
            }
            Some(n) if !overwrite => {
                self.p.push(
                    at,
                    format!(
                        "{path} exists ({}{}); set overwrite: true to replace it",
                        n.kind.name(),
                        n.target
                            .as_deref()
                            .map(|t| format!(" to {t}"))
                            .unwrap_or_default()
                    ),
                );
                return Ok(());
            }
            _ => {}
        }
        self.add_only.check_base(at, path, &planned, None)?;
        self.ops.push(Op::Symlink {
            path: path.to_string(),
            target: target.to_string(),
            uid,
            gid,
        });
        self.overlay.insert(
            path.to_string(),
            Planned {
                node: Some(planned),
                content: None,
            },
        );
        Ok(())
    }

    /// Remove a symlink (disabling or unmasking a unit). Removing base
    /// content, even in /etc, is a `base-modified` finding.
    pub(super) fn remove_link(&mut self, at: &Loc, path: &str) -> Result<()> {
        self.add_only.check_removal(at, path)?;
        self.ops.push(Op::Remove {
            path: path.to_string(),
        });
        self.overlay.insert(
            path.to_string(),
            Planned {
                node: None,
                content: None,
            },
        );
        Ok(())
    }

    fn tmpfile(&mut self, at: &Loc, line: Line) {
        let key = (line.path().to_vec(), 0);
        self.tmp.insert(key, (at.clone(), TmpLine::Create(line)));
    }

    fn adjust(&mut self, at: &Loc, path: Vec<u8>, mode: u32, who: &Who) {
        let line = TmpLine::Adjust {
            path: path.clone(),
            mode,
            user: who.user.clone(),
            group: who.group.clone(),
        };
        self.tmp.insert((path, 1), (at.clone(), line));
    }

    /// Our tmpfiles.d and sysusers.d files: earlier runs' lines are kept
    /// unless this config replaces them (same type and path, same name).
    fn generated(&mut self) -> Result<()> {
        let root = Loc::root(super::config::Style::Butane);
        if !self.tmp.is_empty() {
            let declared = self.declared_elsewhere()?;
            let mut lines: BTreeMap<(Vec<u8>, u8), String> = BTreeMap::new();
            for line in self.existing_text(GENERATED_TMPFILES)?.lines() {
                if line.starts_with('#') || line.trim().is_empty() {
                    continue;
                }
                let rank = u8::from(line.starts_with('z'));
                if let Some(path) = tmpfiles::declared_paths(line).into_iter().next() {
                    lines.insert((path, rank), line.to_string());
                }
            }
            let tmp = std::mem::take(&mut self.tmp);
            self.check_transitions(&tmp);
            for ((path, rank), (at, line)) in tmp {
                if let (0, Some(file)) = (rank, declared.get(&path)) {
                    self.p.push(
                        &at,
                        format!(
                            "{} is already declared by {file}; tmpfiles.d would ignore this line",
                            String::from_utf8_lossy(&path)
                        ),
                    );
                    continue;
                }
                match line.render() {
                    Some(text) => {
                        lines.insert((path, rank), text);
                    }
                    None => self.p.push(
                        &at,
                        format!(
                            "{}: a name tmpfiles.d cannot express (control characters, \
                             more than {} bytes, or an owner named `-`)",
                            String::from_utf8_lossy(&path),
                            tmpfiles::MAX_FIELD
                        ),
                    ),
                }
            }
            let mut text = String::from(
                "# Generated by ostree-finalize apply: /var content, homes, SSH keys and\n\
                 # owners that exist only once systemd-sysusers has run.\n",
            );
            for l in lines.values() {
                text.push_str(l);
                text.push('\n');
            }
            self.write_file(&root, GENERATED_TMPFILES, text.into_bytes(), 0o644, 0, 0)?;
        }
        if !self.sysusers.is_empty() {
            let mut lines: BTreeMap<(u8, String, String), String> = BTreeMap::new();
            for line in self.existing_text(GENERATED_SYSUSERS)?.lines() {
                if let Some(key) = line_key(line) {
                    lines.insert(key, line.to_string());
                }
            }
            lines.extend(std::mem::take(&mut self.sysusers));
            let mut text = String::from(
                "# Generated by ostree-finalize apply: users and groups of the applied config.\n",
            );
            for l in lines.values() {
                text.push_str(l);
                text.push('\n');
            }
            self.write_file(&root, GENERATED_SYSUSERS, text.into_bytes(), 0o644, 0, 0)?;
        }
        Ok(())
    }

    /// systemd-tmpfiles refuses to follow a path from a directory owned by
    /// one user to a node owned by another (other than from root): a `z`
    /// line under such a directory would fail at boot, so say so now.
    fn check_transitions(&mut self, tmp: &BTreeMap<(Vec<u8>, u8), (Loc, TmpLine)>) {
        for ((path, _), (at, line)) in tmp {
            let TmpLine::Adjust { user, .. } = line else {
                continue;
            };
            let Some(cut) = path.iter().rposition(|&b| b == b'/') else {
                continue;
            };
            let parent = (path[..cut].to_vec(), 0);
            if let Some((_, TmpLine::Create(Line::Dir { user: owner, .. }))) = tmp.get(&parent)
                && owner != "root"
                && owner != "0"
            {
                self.p.push(
                    at,
                    format!(
                        "{}: its owner {user} exists only at boot, and systemd-tmpfiles will                          not fix the owner of a file inside a directory owned by {owner}; give                          the user a fixed uid",
                        String::from_utf8_lossy(path)
                    ),
                );
            }
        }
    }

    /// The text of a file the tool generated earlier, or "".
    pub(super) fn existing_text(&self, path: &str) -> Result<String> {
        match self.view.node(path)? {
            Some(n) if n.kind == Kind::File => {
                Ok(String::from_utf8_lossy(&self.view.read(path)?).into_owned())
            }
            _ => Ok(String::new()),
        }
    }

    /// Paths declared by the tree's other tmpfiles.d files, and which file.
    fn declared_elsewhere(&self) -> Result<BTreeMap<Vec<u8>, String>> {
        let mut out = BTreeMap::new();
        for dir in ["/usr/lib/tmpfiles.d", "/etc/tmpfiles.d"] {
            for name in self.view.list(dir)? {
                let path = format!("{dir}/{name}");
                if !name.ends_with(".conf")
                    || path == GENERATED_TMPFILES
                    || path == zones::GENERATED_TMPFILES
                {
                    continue;
                }
                let text = self.existing_text(&path)?;
                for p in tmpfiles::declared_paths(&text) {
                    out.entry(p).or_insert_with(|| path.clone());
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::apply::config::{Style, Unit};

    /// An in-memory tree.
    #[derive(Default)]
    pub struct Mem {
        pub nodes: BTreeMap<String, (Node, Vec<u8>)>,
    }

    impl Mem {
        pub fn dir(&mut self, path: &str) -> &mut Self {
            self.nodes.insert(
                path.into(),
                (
                    Node {
                        kind: Kind::Dir,
                        mode: 0o755,
                        uid: 0,
                        gid: 0,
                        target: None,
                    },
                    vec![],
                ),
            );
            self
        }
        pub fn file(&mut self, path: &str, text: &str) -> &mut Self {
            self.nodes.insert(
                path.into(),
                (
                    Node {
                        kind: Kind::File,
                        mode: 0o644,
                        uid: 0,
                        gid: 0,
                        target: None,
                    },
                    text.as_bytes().to_vec(),
                ),
            );
            self
        }
        pub fn link(&mut self, path: &str, target: &str) -> &mut Self {
            self.nodes.insert(
                path.into(),
                (
                    Node {
                        kind: Kind::Symlink,
                        mode: 0o777,
                        uid: 0,
                        gid: 0,
                        target: Some(target.into()),
                    },
                    vec![],
                ),
            );
            self
        }
        /// A small FCOS-like tree.
        pub fn fcos() -> Mem {
            let mut m = Mem::default();
            m.dir("/")
                .dir("/etc")
                .dir("/usr")
                .dir("/usr/bin")
                .dir("/usr/lib")
                .dir("/var")
                .dir("/var/home")
                .link("/home", "var/home")
                .file("/usr/bin/tool", "base tool\n")
                .file("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n")
                .file("/etc/group", "root:x:0:\nwheel:x:10:\n");
            m
        }
    }

    impl TreeView for Mem {
        fn node(&self, path: &str) -> Result<Option<Node>> {
            Ok(self.nodes.get(path).map(|(n, _)| n.clone()))
        }
        fn read(&self, path: &str) -> Result<Vec<u8>> {
            Ok(self
                .nodes
                .get(path)
                .map(|(_, c)| c.clone())
                .unwrap_or_default())
        }
        fn list(&self, dir: &str) -> Result<Vec<String>> {
            let prefix = format!("{}/", dir.trim_end_matches('/'));
            Ok(self
                .nodes
                .keys()
                .filter_map(|k| k.strip_prefix(&prefix))
                .filter(|r| !r.is_empty() && !r.contains('/'))
                .map(str::to_string)
                .collect())
        }
    }

    pub fn loc(i: usize) -> Loc {
        Loc::root(Style::Butane)
            .key("storage")
            .key("files")
            .index(i)
    }

    pub fn file(path: &str, text: &str) -> File {
        File {
            at: loc(0),
            path: path.into(),
            overwrite: false,
            contents: Some(text.as_bytes().to_vec()),
            append: vec![],
            mode: None,
            user: Owner::default(),
            group: Owner::default(),
        }
    }

    fn run(config: &Config, tree: &Mem) -> Result<Plan> {
        plan(config, tree, None, "test.bu")
    }

    fn written<'p>(plan: &'p Plan, path: &str) -> Option<&'p Op> {
        plan.ops.iter().find(|o| o.path() == path)
    }

    fn text_of(plan: &Plan, path: &str) -> String {
        match written(plan, path) {
            Some(Op::File { content, .. }) => String::from_utf8_lossy(content).into_owned(),
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn parents_are_resolved_inside_the_tree_and_var_becomes_tmpfiles() {
        let mut c = Config::default();
        c.files.push(file("/home/app/data.txt", "hello\n"));
        let plan = run(&c, &Mem::fcos()).unwrap();
        // Never written into /var; preserved in the factory instead.
        assert!(plan.ops.iter().all(|o| !o.path().starts_with("/var")));
        assert_eq!(
            text_of(&plan, "/usr/share/factory/var/home/app/data.txt"),
            "hello\n"
        );
        let tmp = text_of(&plan, GENERATED_TMPFILES);
        assert!(
            tmp.contains(
                "C /var/home/app/data.txt - - - - /usr/share/factory/var/home/app/data.txt\n"
            ),
            "{tmp}"
        );
    }

    #[test]
    fn replacing_base_content_is_a_finding_and_identical_content_is_not() {
        let tree = Mem::fcos();
        let mut c = Config::default();
        let mut f = file("/usr/bin/tool", "mine\n");
        f.overwrite = true;
        c.files.push(f);
        let plan = run(&c, &tree).unwrap();
        assert_eq!(plan.findings.len(), 1);
        assert_eq!(plan.findings[0].check, "base-modified");
        assert_eq!(plan.findings[0].path.as_deref(), Some("/usr/bin/tool"));
        assert!(plan.findings[0].message.contains("contents"));

        let mut same = file("/usr/bin/tool", "base tool\n");
        same.overwrite = true;
        let plan = run(
            &Config {
                files: vec![same],
                ..Config::default()
            },
            &tree,
        )
        .unwrap();
        assert!(plan.findings.is_empty() && plan.ops.is_empty(), "{plan:?}");
    }

    #[test]
    fn ignition_overwrite_rules() {
        let tree = Mem::fcos();
        // Exists, contents given, overwrite false: refused.
        let c = Config {
            files: vec![file("/etc/passwd", "x")],
            ..Config::default()
        };
        let e = run(&c, &tree).unwrap_err().to_string();
        assert!(e.contains("set overwrite: true"), "{e}");
        // Exists, no contents: kept, appended to.
        let mut f = file("/etc/passwd", "");
        f.contents = None;
        f.append = vec![b"app:x:5:5::/:/bin/sh\n".to_vec()];
        let plan = run(
            &Config {
                files: vec![f],
                ..Config::default()
            },
            &tree,
        )
        .unwrap();
        assert_eq!(
            text_of(&plan, "/etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\napp:x:5:5::/:/bin/sh\n"
        );
    }

    #[test]
    fn unknown_owners_and_bad_paths_are_problems() {
        let mut f = file("/etc/x", "x");
        f.user = Owner::named("nobody-here");
        let mut g = file("/etc/../x", "x");
        g.at = loc(1);
        let c = Config {
            files: vec![f, g],
            ..Config::default()
        };
        let e = run(&c, &Mem::fcos()).unwrap_err().to_string();
        assert!(
            e.contains("storage.files[0].user.name: no user \"nobody-here\""),
            "{e}"
        );
        assert!(
            e.contains("storage.files[1]: \"/etc/../x\" is not a clean"),
            "{e}"
        );
    }

    #[test]
    fn runtime_and_api_paths_are_refused() {
        for p in ["/run/x", "/tmp/x", "/proc/x", "/var/cache/x"] {
            let c = Config {
                files: vec![file(p, "x")],
                ..Config::default()
            };
            assert!(run(&c, &Mem::fcos()).is_err(), "{p}");
        }
    }

    #[test]
    fn masked_unit_is_a_dev_null_link() {
        let c = Config {
            units: vec![Unit {
                at: loc(0),
                name: "foo.service".into(),
                contents: None,
                enabled: None,
                mask: Some(true),
                dropins: vec![],
            }],
            ..Config::default()
        };
        let plan = run(&c, &Mem::fcos()).unwrap();
        assert_eq!(
            written(&plan, "/etc/systemd/system/foo.service"),
            Some(&Op::Symlink {
                path: "/etc/systemd/system/foo.service".into(),
                target: "/dev/null".into(),
                uid: 0,
                gid: 0
            })
        );
    }
}
