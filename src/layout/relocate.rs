//! Image content that reached /var through one of the base's links: the
//! pure half of its move into /usr. No I/O.
//!
//! On a Fedora CoreOS-style base, `/opt` is a link to `var/opt`, so an rpm
//! that installs into /opt writes into /var, which ostree never updates
//! from an image: as a seed-once copy the next image's version would never
//! reach an existing machine. As rpm-ostree does, each entry moves to
//! /usr (`/usr/lib/opt/<entry>`, see [`RELOCATED`]) and a tmpfiles.d `L`
//! line makes its old path resolve to the image's copy. rpm keeps the
//! paths it recorded (`/opt/app/...`): they resolve through the base's
//! link, then through the `L` line.
//!
//! When the build replaced the link with a real directory (the usual
//! `rm /opt && mkdir /opt` workaround), the directory's content moves the
//! same way and the link is put back: ostree's importer would otherwise
//! turn the directory back into the link and drop what it held.

use std::collections::{BTreeSet, HashSet};

use super::links::{Links, RELOCATED, Relocated, Split};
use super::sysusers::Names;
use super::tmpfiles::Line;
use super::{Action, Item, Refused, Relocation, RestoredLink};
use crate::diff::compared_xattr;
use crate::manifest::{Entry, Kind, Manifest};
use crate::path::decode;
use crate::rootfs::Tree;

/// What relocation adds to the plan.
#[derive(Debug, Default)]
pub(super) struct Relocations {
    /// The moved entries.
    pub relocated: Vec<Relocation>,
    /// The entries that cannot move.
    pub refused: Vec<Refused>,
    /// Links put back.
    pub restored: Vec<RestoredLink>,
    /// `Relocate` actions.
    pub copies: Vec<Action>,
    /// tmpfiles.d lines: `L` per entry, `d` for the /var directories that
    /// hold them when the build did not make those in /var itself.
    pub lines: BTreeSet<Line>,
    /// Source paths to remove once the lines are written: (path, is dir).
    pub removals: Vec<(String, bool)>,
    /// `RestoreLink` actions, run after the removals.
    pub restore: Vec<Action>,
    /// Every source entry handled here (moved or refused): the /var
    /// conversion leaves what lies within them alone.
    pub sources: Vec<String>,
}

impl Relocations {
    /// Is `path` within an entry handled here?
    pub fn covers(&self, path: &str) -> bool {
        self.sources.iter().any(|s| crate::path::is_within(path, s))
    }
}

/// The entries strictly beneath `path`, from the sorted tree.
fn beneath<'a>(tree: &'a Tree, path: &str) -> &'a [Entry] {
    let prefix = format!("{path}/");
    let start = tree
        .entries
        .partition_point(|e| e.path.as_str() < prefix.as_str());
    let len = tree.entries[start..]
        .iter()
        .take_while(|e| e.path.starts_with(&prefix))
        .count();
    &tree.entries[start..start + len]
}

/// The direct children among `entries` (all beneath `dir`).
fn children<'a>(entries: &'a [Entry], dir: &str) -> impl Iterator<Item = &'a Entry> + 'a {
    let skip = dir.len() + 1;
    entries
        .iter()
        .filter(move |e| !e.path[skip..].contains('/'))
}

/// Plan every relocation. `declared`: canonical paths other tmpfiles.d
/// files already declare (an `L` line cannot be added beside them).
pub(super) fn plan(
    tree: &Tree,
    base: &Manifest,
    links: &Links,
    names: &Names,
    declared: &HashSet<Vec<u8>>,
) -> Relocations {
    let mut out = Relocations::default();
    for place in RELOCATED {
        let Some(link) = links.at(place.path) else {
            continue;
        };
        let via = format!("{} -> {}", link.path, link.target);
        let var_dir = link.resolved.as_str();
        let mut dests = HashSet::new();
        // Through the link: the content is in the link's /var directory.
        if tree.get(var_dir).is_some_and(|e| e.kind == Kind::Dir) {
            let ctx = Ctx {
                place,
                root: var_dir,
                var_dir,
                via: &via,
                replaced: false,
            };
            ctx.entries(tree, base, names, declared, &mut dests, &mut out);
        }
        // In place of the link: the build replaced it with a directory, or
        // removed it.
        match tree.get(place.path) {
            Some(e) if e.kind == Kind::Dir => {
                let before = out.relocated.len();
                let ctx = Ctx {
                    place,
                    root: place.path,
                    var_dir,
                    via: &via,
                    replaced: true,
                };
                ctx.entries(tree, base, names, declared, &mut dests, &mut out);
                let relocated = out.relocated.len() - before;
                if relocated > 0 {
                    out.lines.insert(dir_line(var_dir, e, names));
                }
                out.restore.push(Action::RestoreLink {
                    path: link.path.clone(),
                    target: link.target.clone(),
                });
                out.restored.push(RestoredLink {
                    path: link.path.clone(),
                    target: link.target.clone(),
                    replaced: true,
                    relocated,
                });
            }
            None => {
                out.restore.push(Action::RestoreLink {
                    path: link.path.clone(),
                    target: link.target.clone(),
                });
                out.restored.push(RestoredLink {
                    path: link.path.clone(),
                    target: link.target.clone(),
                    replaced: false,
                    relocated: 0,
                });
            }
            // Still the link (or something else the add-only rule judges).
            Some(_) => {}
        }
    }
    out
}

/// One place's content, found under `root`.
struct Ctx<'a> {
    place: &'a Relocated,
    /// Where the content is: the link's /var directory, or the directory
    /// that replaced the link.
    root: &'a str,
    /// The link's /var directory, where the `L` lines go.
    var_dir: &'a str,
    via: &'a str,
    replaced: bool,
}

impl Ctx<'_> {
    fn entries(
        &self,
        tree: &Tree,
        base: &Manifest,
        names: &Names,
        declared: &HashSet<Vec<u8>>,
        dests: &mut HashSet<String>,
        out: &mut Relocations,
    ) {
        let all = beneath(tree, self.root);
        for child in children(all, self.root) {
            let name = &child.path[self.root.len() + 1..];
            let standard = match self.place.split {
                Split::BelowStandard(dirs) => dirs.contains(&name) && child.kind == Kind::Dir,
                Split::TopLevel => false,
            };
            if !standard {
                self.entry(child, name, tree, base, declared, dests, out);
                continue;
            }
            // A shared directory (/usr/local/bin): it stays in /var, each
            // entry in it moves.
            let inside = beneath(tree, &child.path);
            for entry in children(inside, &child.path) {
                let rel = &entry.path[self.root.len() + 1..];
                self.entry(entry, rel, tree, base, declared, dests, out);
            }
            if self.replaced {
                let var_sub = format!("{}/{name}", self.var_dir);
                out.lines.insert(dir_line(&var_sub, child, names));
                out.removals.push((child.path.clone(), true));
            }
        }
    }

    /// Plan one entry: `rel` is its path below the place (`app`, `bin/tool`).
    #[allow(clippy::too_many_arguments)]
    fn entry(
        &self,
        e: &Entry,
        rel: &str,
        tree: &Tree,
        base: &Manifest,
        declared: &HashSet<Vec<u8>>,
        dests: &mut HashSet<String>,
        out: &mut Relocations,
    ) {
        if base.get(&e.path).is_some() {
            return; // base content in /var: not the build's to move
        }
        let path = format!("{}/{rel}", self.place.path);
        let dest = format!("{}/{rel}", self.place.dest);
        let link = format!("{}/{rel}", self.var_dir);
        out.sources.push(e.path.clone());
        let refuse = |out: &mut Relocations, reason: String| {
            out.refused.push(Refused {
                path: path.clone(),
                reason,
            });
        };
        if e.kind.is_special() {
            return; // denied by `special-file`; nothing to move
        }
        let line = Line::Symlink {
            path: decode(&link).unwrap_or_default(),
            target: decode(&dest).unwrap_or_default(),
        };
        if line.render().is_none() {
            refuse(
                out,
                format!(
                    "tmpfiles.d cannot express the line `L {link} - - - - {dest}`: the name \
                     holds a control character (such as a newline) or bytes that are not \
                     UTF-8, or the path is longer than {} bytes",
                    super::tmpfiles::MAX_FIELD
                ),
            );
            return;
        }
        if base.get(&dest).is_some() {
            refuse(
                out,
                format!("{dest} already exists in the base; moving {path} there would change it"),
            );
            return;
        }
        if !dests.insert(dest.clone()) {
            refuse(
                out,
                format!(
                    "{path} is both in {} and in the directory that replaced the link; keep one",
                    self.var_dir
                ),
            );
            return;
        }
        if declared.contains(&line.path().to_vec()) {
            refuse(
                out,
                format!(
                    "a tmpfiles.d file in the image already declares {link}; an `L` line for \
                     it would conflict. Drop that line, or install the content under /usr"
                ),
            );
            return;
        }
        let subtree = beneath(tree, &e.path);
        let mut items = Vec::with_capacity(subtree.len() + 1);
        for x in std::iter::once(e).chain(subtree) {
            if x.kind.is_special() {
                continue;
            }
            items.push(Item {
                rel: x.path[e.path.len()..].trim_start_matches('/').to_string(),
                kind: x.kind,
                mode: x.mode,
                uid: x.uid,
                gid: x.gid,
                target: x.target.clone(),
                xattrs: x
                    .xattrs
                    .iter()
                    .filter(|(k, _)| compared_xattr(k, Default::default()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            });
            out.removals.push((x.path.clone(), x.kind == Kind::Dir));
        }
        out.relocated.push(Relocation {
            path,
            source: e.path.clone(),
            dest: dest.clone(),
            link,
            via: self.via.to_string(),
            entries: items.len(),
        });
        out.copies.push(Action::Relocate {
            source: e.path.clone(),
            dest,
            items,
        });
        out.lines.insert(line);
    }
}

/// `d PATH` with the mode and owner of `like`.
fn dir_line(path: &str, like: &Entry, names: &Names) -> Line {
    Line::Dir {
        path: decode(path).unwrap_or_default(),
        mode: like.mode,
        user: names.user(like.uid),
        group: names.group(like.gid),
    }
}
