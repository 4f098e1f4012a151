//! The add-only rule for paths: `base-modified`, `base-removed`, and the
//! `/etc` exception, `etc-modified`.

use std::collections::HashSet;

use similar::TextDiff;

use super::{Check, Finding, Input, Level};
use crate::diff::{Aspect, Change};
use crate::manifest::{Entry, Kind};
use crate::ostree::InPlace;
use crate::zones::{Zone, zone};

/// `base-modified`.
pub const MODIFIED: Check = Check {
    id: "base-modified",
    default_level: Level::Deny,
    overridable: true,
    needs_base: true,
    summary: "A base path outside /etc and /var changed",
    description: "The content, type, mode, owner, a build-settable xattr \
(security.capability, user.*) or the symlink target of a path that the base image \
ships outside /etc and /var differs from the base. Derived images are add-only: \
changing base content silently voids the vendor's QA, and the change is lost or \
conflicts at the next base update. Fix: install your file under a new path (e.g. \
/usr/local, /opt, or a new package) and leave the base file alone; if the change is \
deliberate, build with --allow-overrides and LABEL ostree.override=true.",
};

/// `base-removed`.
pub const REMOVED: Check = Check {
    id: "base-removed",
    default_level: Level::Deny,
    overridable: true,
    needs_base: true,
    summary: "A base path outside /etc and /var is gone",
    description: "A path that the base image ships outside /etc and /var no longer \
exists (an rm in the build, a package removal, or a whiteout in an image layer). \
Other base content may depend on it, and it reappears or conflicts at the next \
base update. Fix: don't delete base content; mask units or override configuration \
in /etc instead; if the removal is deliberate, build with --allow-overrides and \
LABEL ostree.override=true.",
};

/// `etc-modified`.
pub const ETC_MODIFIED: Check = Check {
    id: "etc-modified",
    default_level: Level::Info,
    overridable: false,
    needs_base: true,
    summary: "A base configuration file in /etc changed",
    description: "A file the base ships in /etc was changed or removed. This is \
allowed: /etc is configuration, merged three ways by ostree at upgrade. It is \
reported, with a unified diff for text files, so reviewers see what the image \
configures.",
};

pub(super) fn check(input: &Input, out: &mut Vec<Finding>) {
    // Paths whose removal is explained by an ancestor that was removed or
    // replaced by something other than a directory: folded into that finding.
    let mut folded_roots: HashSet<&str> = HashSet::new();
    for change in input.changes {
        match change {
            Change::Removed(b) if b.kind == Kind::Dir => {
                folded_roots.insert(&b.path);
            }
            Change::Modified { base, current, .. }
                if base.kind == Kind::Dir && current.kind != Kind::Dir =>
            {
                folded_roots.insert(&base.path);
            }
            _ => {}
        }
    }
    let folded = |p: &str| ancestors(p).any(|a| folded_roots.contains(a));
    let mut beneath: std::collections::HashMap<&str, usize> = Default::default();
    for change in input.changes {
        if let Change::Removed(b) = change
            && let Some(top) = ancestors(&b.path)
                .filter(|a| folded_roots.contains(a))
                .last()
        {
            *beneath.entry(top).or_default() += 1;
        }
    }
    let extra = |p: &str| match beneath.get(p) {
        Some(n) => format!(" ({n} base paths beneath it are gone with it)"),
        None => String::new(),
    };
    // Base paths the build wrote in place through the repository's
    // hardlinks: one finding per object, below.
    let in_place: std::collections::HashMap<&str, &InPlace> = input
        .plan
        .in_place
        .iter()
        .flat_map(|g| g.paths.iter().map(move |p| (p.as_str(), g)))
        .collect();
    let mut written: std::collections::BTreeMap<&str, Vec<(&Entry, &Entry)>> = Default::default();

    // A base link into /var the build replaced or removed is put back by
    // the layout rewrite (see `var-link-restored`): not a change.
    let restored = |p: &str| input.plan.restored_links.iter().any(|l| l.path == p);
    for change in input.changes {
        if restored(change.path()) {
            continue;
        }
        match change {
            // The root directory itself is not image content: layers carry
            // no entry for it, and each runtime gives it its own mode.
            Change::Modified { base, .. } if base.path == "/" => {}
            Change::Modified {
                base,
                current,
                aspects,
            } => match zone(&base.path) {
                Zone::Os if in_place.contains_key(base.path.as_str()) => {
                    let group = in_place[base.path.as_str()];
                    written
                        .entry(&group.object)
                        .or_default()
                        .push((base, current));
                }
                Zone::Os => {
                    let msg = format!(
                        "{} of base path {} changed: {}{}.",
                        noun(aspects),
                        subject(input, base),
                        describe(base, current, aspects),
                        extra(&base.path),
                    );
                    out.push(owned(input, &MODIFIED, base, msg));
                }
                Zone::Etc => out.push(etc_change(input, base, Some((current, aspects)))),
                Zone::Var | Zone::Runtime => {}
            },
            Change::Removed(base) => match zone(&base.path) {
                Zone::Os if !folded(&base.path) => {
                    let msg = format!(
                        "base {} {} was removed{}.",
                        base.kind.name(),
                        subject(input, base),
                        extra(&base.path),
                    );
                    out.push(owned(input, &REMOVED, base, msg));
                }
                Zone::Etc if !folded(&base.path) => out.push(etc_change(input, base, None)),
                _ => {}
            },
            Change::Added(_) => {}
        }
    }
    for group in &input.plan.in_place {
        if let Some(paths) = written.get(group.object.as_str())
            && let Some(f) = written_in_place(input, group, paths)
        {
            out.push(f);
        }
    }
}

/// The one finding for a base object the build wrote in place, naming the
/// first changed base path outside /etc and /var and every other path that
/// changed with it. None when those paths are only rpm-ostree's record of
/// the base database written together with the rpm database (`rpm -i`
/// wrote it; finalize rebuilds it).
fn written_in_place(input: &Input, group: &InPlace, paths: &[(&Entry, &Entry)]) -> Option<Finding> {
    let through_rpmdb = group.paths.iter().any(|p| crate::zones::in_rpmdb(p));
    let mut os: Vec<&(&Entry, &Entry)> = paths
        .iter()
        .filter(|(b, _)| {
            !(through_rpmdb && crate::path::is_within(&b.path, crate::ostree::BASE_DB))
        })
        .collect();
    os.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    let (base, current) = **os.first()?;
    let others: Vec<&str> = group
        .paths
        .iter()
        .map(String::as_str)
        .filter(|p| *p != base.path)
        .collect();
    let with = if others.is_empty() {
        String::new()
    } else {
        format!(
            " Changed with it, through the same object: {}.",
            others.join(", ")
        )
    };
    let object = match &group.repo_path {
        Some(p) => format!("{}… ({p})", &group.object[..12]),
        None => format!("{}…", &group.object[..12]),
    };
    let msg = format!(
        "base path {} was written in place: it is a hardlink to the base's ostree object \
         {object}, kept by the build's storage (buildah's vfs driver keeps them), so the write \
         changed the base's copy too and the object no longer matches its checksum. The base's \
         version is known only by that checksum; now it is a {} of {} bytes, mode {:04o}, \
         uid {}, gid {}.{with} Install your own files under new paths, and change files you \
         may change (/etc) by writing a new file and renaming it over the old one. With \
         --allow-overrides, finalize gives each path its own copy and drops the broken object, \
         so the image still imports.",
        subject(input, base),
        current.kind.name(),
        current.size,
        current.mode,
        current.uid,
        current.gid,
    );
    let msg = if group.mtime_zero {
        format!(
            "{msg} The write kept the object's zero mtime (chmod, chown and cp -p do): \
             ostree's importer drops such an object from the layer of the RUN step that wrote \
             it, so if that step is not this one (podman build, buildah --layers) the image \
             will not import whatever finalize does. Make the change in the same RUN step as \
             finalize, build without --layers or with overlay storage, or replace the file \
             (cp without -p to a new name, then mv) instead of changing it in place."
        )
    } else {
        msg
    };
    Some(owned(input, &MODIFIED, base, msg))
}

/// "PATH (owned by NEVRA)", or just the path.
fn subject(input: &Input, base: &Entry) -> String {
    match input.base.owner_of(base) {
        Some(p) => format!("{} (owned by {p})", base.path),
        None => format!("{} (owned by no package)", base.path),
    }
}

fn owned(input: &Input, check: &Check, base: &Entry, message: String) -> Finding {
    Finding::new(check, Some(base.path.clone()), message).with_package(input.base.owner_of(base))
}

fn etc_change(input: &Input, base: &Entry, now: Option<(&Entry, &Vec<Aspect>)>) -> Finding {
    let Some((current, aspects)) = now else {
        let msg = format!("base config file {} was removed", base.path);
        return owned(input, &ETC_MODIFIED, base, msg);
    };
    let msg = format!(
        "base config file {} changed: {}",
        base.path,
        describe(base, current, aspects)
    );
    let mut f = owned(input, &ETC_MODIFIED, base, msg);
    if aspects.contains(&Aspect::Content)
        && let (Some(old), Some(new)) = (&base.text, &current.text)
    {
        f.detail = Some(unified_diff(&base.path, old, new));
    }
    f
}

/// A unified diff of two texts, labelled like `diff -u a/PATH b/PATH`.
pub fn unified_diff(path: &str, old: &str, new: &str) -> String {
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("base{path}"), &format!("build{path}"))
        .to_string()
}

fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut cur = path;
    std::iter::from_fn(move || {
        let idx = cur.rfind('/')?;
        cur = if idx == 0 { "/" } else { &cur[..idx] };
        (cur != "/").then_some(cur)
    })
}

fn noun(aspects: &[Aspect]) -> &'static str {
    match aspects {
        [Aspect::Content] => "content",
        [Aspect::Mode] => "mode",
        [Aspect::Kind] => "type",
        [Aspect::Target] => "symlink target",
        [Aspect::Uid] | [Aspect::Gid] | [Aspect::Uid, Aspect::Gid] => "ownership",
        [Aspect::Xattr(_)] => "an extended attribute",
        _ => "metadata",
    }
}

fn short(h: &Option<crate::manifest::Checksum>) -> String {
    h.as_ref()
        .map(|h| hex::encode(&h.0[..6]))
        .unwrap_or_else(|| "-".into())
}

/// The digest messages show: the SHA-256, or for a file compared with an
/// ostree base, its ostree content checksum (header included).
fn digest(e: &Entry) -> Option<crate::manifest::Checksum> {
    e.sha256.or(e.ostree)
}

/// What [`digest`] is, for the message.
fn digest_kind(e: &Entry) -> &'static str {
    if e.sha256.is_none() && e.ostree.is_some() {
        "ostree"
    } else {
        "sha256"
    }
}

/// "old → new" for every aspect.
pub fn describe(base: &Entry, current: &Entry, aspects: &[Aspect]) -> String {
    let parts: Vec<String> = aspects
        .iter()
        .map(|a| match a {
            Aspect::Kind => {
                let to = match &current.target {
                    Some(t) => format!("{} -> {t}", current.kind.name()),
                    None => current.kind.name().to_string(),
                };
                format!("type {} → {to}", base.kind.name())
            }
            Aspect::Mode => format!("mode {:04o} → {:04o}", base.mode, current.mode),
            Aspect::Uid => format!("uid {} → {}", base.uid, current.uid),
            Aspect::Gid => format!("gid {} → {}", base.gid, current.gid),
            Aspect::Content => format!(
                "{} {}… ({} bytes) → {}… ({} bytes)",
                digest_kind(base),
                short(&digest(base)),
                base.size,
                short(&digest(current)),
                current.size
            ),
            Aspect::Target => format!(
                "target {} → {}",
                base.target.as_deref().unwrap_or("-"),
                current.target.as_deref().unwrap_or("-")
            ),
            Aspect::Rdev => format!(
                "device {:?} → {:?}",
                base.rdev.unwrap_or(0),
                current.rdev.unwrap_or(0)
            ),
            Aspect::Xattr(name) => {
                let state = match (base.xattrs.get(name), current.xattrs.get(name)) {
                    (None, Some(_)) => "added",
                    (Some(_), None) => "removed",
                    _ => "changed",
                };
                format!("xattr {name} {state}")
            }
        })
        .collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_walk_up_to_but_not_including_root() {
        let v: Vec<_> = ancestors("/a/b/c").collect();
        assert_eq!(v, ["/a/b", "/a"]);
        assert_eq!(ancestors("/a").count(), 0);
    }

    #[test]
    fn unified_diff_shows_the_changed_line() {
        let d = unified_diff("/etc/x.conf", "a=1\nb=2\n", "a=1\nb=3\n");
        assert!(d.contains("--- base/etc/x.conf"), "{d}");
        assert!(d.contains("-b=2") && d.contains("+b=3"), "{d}");
    }
}
