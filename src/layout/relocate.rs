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
    pub sources: HashSet<String>,
}

impl Relocations {
    /// Is `path` within an entry handled here? (One lookup per ancestor:
    /// it is asked for every /var change.)
    pub fn covers(&self, path: &str) -> bool {
        if self.sources.is_empty() {
            return false;
        }
        let mut cur = path;
        loop {
            if self.sources.contains(cur) {
                return true;
            }
            match cur.rfind('/') {
                Some(i) if i > 0 => cur = &cur[..i],
                _ => return false,
            }
        }
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
        out.sources.insert(e.path.clone());
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
        if let Some(there) = tree.get(&dest).filter(|d| d.kind != e.kind) {
            refuse(
                out,
                format!(
                    "{dest} already exists in the image as a {}, and {path} is a {}",
                    there.kind.name(),
                    e.kind.name()
                ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Checksum;

    fn entry(path: &str, kind: Kind, target: Option<&str>) -> Entry {
        let mut e = Entry::new(path.into(), kind, 0o755, 0, 0);
        e.target = target.map(str::to_string);
        if kind == Kind::File {
            e.sha256 = Some(Checksum([1; 32]));
        }
        e
    }

    /// An FCOS-style base: /opt and /usr/local link into /var.
    fn fcos_base() -> Manifest {
        let entries = vec![
            entry("/", Kind::Dir, None),
            entry("/opt", Kind::Symlink, Some("var/opt")),
            entry("/usr", Kind::Dir, None),
            entry("/usr/local", Kind::Symlink, Some("../var/usrlocal")),
            entry("/var", Kind::Dir, None),
        ];
        Manifest::of_entries(entries)
    }

    /// The base's entries plus `extra`, with `/opt` as `opt`.
    fn tree(base: &Manifest, opt: Entry, extra: &[(&str, Kind)]) -> Tree {
        let mut entries: Vec<Entry> = base
            .entries
            .iter()
            .filter(|e| e.path != "/opt")
            .cloned()
            .chain([opt])
            .chain(extra.iter().map(|(p, k)| entry(p, *k, None)))
            .collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Tree {
            entries,
            ..Tree::default()
        }
    }

    fn run(base: &Manifest, tree: &Tree) -> Relocations {
        let links = Links::from_base(base);
        plan(tree, base, &links, &Names::default(), &HashSet::new())
    }

    fn rendered(r: &Relocations) -> Vec<String> {
        r.lines.iter().filter_map(Line::render).collect()
    }

    #[test]
    fn content_through_the_links_moves_one_line_per_entry() {
        let base = fcos_base();
        let link = entry("/opt", Kind::Symlink, Some("var/opt"));
        let t = tree(
            &base,
            link,
            &[
                ("/var/opt", Kind::Dir),
                ("/var/opt/app", Kind::Dir),
                ("/var/opt/app/bin", Kind::Dir),
                ("/var/opt/app/bin/run", Kind::File),
                ("/var/usrlocal", Kind::Dir),
                ("/var/usrlocal/bin", Kind::Dir),
                ("/var/usrlocal/bin/tool", Kind::File),
                ("/var/usrlocal/bin/other", Kind::File),
                ("/var/usrlocal/custom", Kind::Dir),
            ],
        );
        let r = run(&base, &t);
        let moved: Vec<_> = r
            .relocated
            .iter()
            .map(|m| (m.path.as_str(), m.dest.as_str(), m.entries))
            .collect();
        assert_eq!(
            moved,
            [
                ("/opt/app", "/usr/lib/opt/app", 3),
                ("/usr/local/bin/other", "/usr/lib/usrlocal/bin/other", 1),
                ("/usr/local/bin/tool", "/usr/lib/usrlocal/bin/tool", 1),
                ("/usr/local/custom", "/usr/lib/usrlocal/custom", 1),
            ]
        );
        assert_eq!(
            rendered(&r),
            [
                "L /var/opt/app - - - - /usr/lib/opt/app",
                "L /var/usrlocal/bin/other - - - - /usr/lib/usrlocal/bin/other",
                "L /var/usrlocal/bin/tool - - - - /usr/lib/usrlocal/bin/tool",
                "L /var/usrlocal/custom - - - - /usr/lib/usrlocal/custom",
            ]
        );
        // The /var directories themselves are the /var conversion's.
        assert!(r.covers("/var/opt/app/bin/run") && !r.covers("/var/opt"));
        assert!(!r.covers("/var/usrlocal/bin"));
        assert!(r.restored.is_empty() && r.restore.is_empty());
    }

    #[test]
    fn a_directory_in_place_of_the_link_is_moved_and_the_link_restored() {
        let base = fcos_base();
        let t = tree(
            &base,
            entry("/opt", Kind::Dir, None),
            &[("/opt/app", Kind::Dir), ("/opt/app/run", Kind::File)],
        );
        let r = run(&base, &t);
        assert_eq!(r.relocated[0].source, "/opt/app");
        assert_eq!(
            r.restore,
            [Action::RestoreLink {
                path: "/opt".into(),
                target: "var/opt".into()
            }]
        );
        assert!(r.restored[0].replaced);
        assert_eq!(
            rendered(&r),
            [
                "d /var/opt 0755 0 0 -",
                "L /var/opt/app - - - - /usr/lib/opt/app"
            ]
        );
        let removed: Vec<_> = r.removals.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(removed, ["/opt/app", "/opt/app/run"]);
    }

    #[test]
    fn without_links_nothing_moves() {
        let mut base = fcos_base();
        base.entries.retain(|e| e.kind != Kind::Symlink);
        base.entries.push(entry("/opt", Kind::Dir, None));
        base.entries.sort_by(|a, b| a.path.cmp(&b.path));
        let t = tree(
            &base,
            entry("/opt", Kind::Dir, None),
            &[("/opt/app", Kind::Dir), ("/opt/app/run", Kind::File)],
        );
        let r = run(&base, &t);
        assert!(r.relocated.is_empty() && r.restore.is_empty() && r.lines.is_empty());
    }

    #[test]
    fn entries_that_cannot_move_are_refused_with_the_reason() {
        let mut base = fcos_base();
        base.entries
            .push(entry("/usr/lib/opt/taken", Kind::Dir, None));
        base.entries.sort_by(|a, b| a.path.cmp(&b.path));
        let link = entry("/opt", Kind::Symlink, Some("var/opt"));
        let t = tree(
            &base,
            link,
            &[
                ("/var/opt", Kind::Dir),
                ("/var/opt/new\nline", Kind::Dir),
                ("/var/opt/taken", Kind::Dir),
                ("/var/opt/declared", Kind::Dir),
            ],
        );
        let links = Links::from_base(&base);
        let declared: HashSet<Vec<u8>> = [b"/var/opt/declared".to_vec()].into();
        let r = plan(&t, &base, &links, &Names::default(), &declared);
        assert!(r.relocated.is_empty());
        let why: Vec<_> = r
            .refused
            .iter()
            .map(|f| (f.path.as_str(), f.reason.split(':').next().unwrap()))
            .collect();
        assert_eq!(
            why,
            [
                (
                    "/opt/declared",
                    "a tmpfiles.d file in the image already declares /var/opt/declared; an `L` line for it would conflict. Drop that line, or install the content under /usr"
                ),
                (
                    "/opt/new\nline",
                    "tmpfiles.d cannot express the line `L /var/opt/new\nline - - - - /usr/lib/opt/new\nline`"
                ),
                (
                    "/opt/taken",
                    "/usr/lib/opt/taken already exists in the base; moving /opt/taken there would change it"
                ),
            ]
        );
        // A destination of another type in the image (a symlink planted
        // there, say) is refused before anything is written.
        let mut t2 = Tree {
            entries: t.entries.clone(),
            ..Tree::default()
        };
        t2.entries
            .push(entry("/usr/lib/opt/planted", Kind::Symlink, Some("/etc")));
        t2.entries.push(entry("/var/opt/planted", Kind::Dir, None));
        t2.entries.sort_by(|a, b| a.path.cmp(&b.path));
        let r2 = plan(&t2, &base, &links, &Names::default(), &declared);
        assert!(
            r2.refused
                .iter()
                .any(|f| f.path == "/opt/planted" && f.reason.contains("as a symlink")),
            "{:?}",
            r2.refused
        );
        // Refused entries are left where they are, not converted as /var.
        assert!(r.covers("/var/opt/taken") && r.removals.is_empty());
    }
}
