//! The pure planner: what the rewrite will do, from the walked tree and the
//! base. No I/O.

use std::collections::{BTreeSet, HashSet};

use super::links::Links;
use super::sysusers::{self, Declared, Names};
use super::tmpfiles::{self, Line};
use super::{Action, Cleaned, FACTORY, PackageFile, Plan, relocate};
use crate::diff::Change;
use crate::manifest::{Kind, Manifest};
use crate::path::{decode, is_beneath, is_within};
use crate::rootfs::Tree;
use crate::zones::{GENERATED_SYSUSERS, GENERATED_TMPFILES, RUNTIME_DIRS, Zone, in_rpmdb, zone};

/// Package-manager leftovers cleaned beside the runtime directories.
const LEFTOVER_DIRS: &[&str] = &["/var/lib/dnf", "/var/cache/dnf", "/var/cache/yum"];
/// Log files of package managers, by prefix under /var/log.
const LEFTOVER_LOGS: &[&str] = &[
    "/var/log/dnf",
    "/var/log/hawkey.log",
    "/var/log/yum.log",
    "/var/log/rpm-ostree",
];

/// Files a build runtime bind-mounts into each RUN step, leaving an empty
/// file behind when the image had none: cleaned when empty and not a
/// mount point (mount points are never in the tree).
pub const INJECTED: &[&str] = &["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"];

/// Everything the planner looks at.
pub struct PlanInput<'a> {
    /// The current tree.
    pub tree: &'a Tree,
    /// The base reference.
    pub base: &'a Manifest,
    /// Changes between them.
    pub changes: &'a [Change<'a>],
    /// The rpmdb directory, when the tree has one.
    pub rpmdb: Option<&'a str>,
    /// `--usr-etc`, and whether /etc is still at /etc.
    pub move_etc: bool,
    /// The policy's extra paths to clean (added content only).
    pub extra_clean: &'a globset::GlobSet,
    /// Base ostree objects the build wrote in place.
    pub in_place: &'a [crate::ostree::InPlace],
    /// NEVRAs of the packages the build added.
    pub packages_added: &'a [String],
    /// The policy's /var/log files to keep (converted, not cleaned).
    pub keep_logs: &'a globset::GlobSet,
    /// The tree's packages, for the files in /var they own.
    pub packages: &'a [crate::rpmdb::Package],
    /// No base (structural mode): `base` is empty, and the links into /var
    /// are the tree's own.
    pub structural: bool,
}

/// Where the build's logs go; files it wrote there are cleaned.
const LOG_DIR: &str = "/var/log";

/// A log file the build wrote (not a directory, not the base's, not kept
/// by the policy): cleaned like runtime content.
fn build_log(input: &PlanInput, e: &crate::manifest::Entry) -> bool {
    e.kind != Kind::Dir
        && is_beneath(&e.path, LOG_DIR)
        && input.base.get(&e.path).is_none()
        && !input.keep_logs.is_match(&e.path)
}

/// The child of /var/log a log file is in (or the file itself).
fn log_top(path: &str) -> String {
    let rest = &path[LOG_DIR.len() + 1..];
    crate::path::join(LOG_DIR, rest.split('/').next().unwrap_or(rest))
}

fn is_leftover(path: &str) -> bool {
    LEFTOVER_DIRS.iter().any(|d| is_within(path, d))
        || LEFTOVER_LOGS.iter().any(|l| path.starts_with(l))
}

/// Plan the rewrite.
pub fn plan(input: &PlanInput) -> Plan {
    let mut plan = Plan::default();
    let mount_ancestors = ancestors_of_mounts(&input.tree.mounts);
    let mut removals: Vec<(String, bool)> = Vec::new();

    // Runtime content and package-manager leftovers: clean.
    let mut cleaned_tops: std::collections::BTreeMap<String, usize> = Default::default();
    for e in &input.tree.entries {
        let top = if zone(&e.path) == Zone::Runtime {
            runtime_top(&e.path)
        } else if is_leftover(&e.path) && input.base.get(&e.path).is_none() {
            leftover_top(&e.path)
        } else if input.extra_clean.is_match(&e.path) && input.base.get(&e.path).is_none() {
            e.path.clone()
        } else if build_log(input, e) {
            log_top(&e.path)
        } else {
            continue;
        };
        *cleaned_tops.entry(top).or_default() += 1;
        if !(e.kind == Kind::Dir && mount_ancestors.contains(e.path.as_str())) {
            removals.push((e.path.clone(), e.kind == Kind::Dir));
        }
    }
    for path in INJECTED {
        if input
            .tree
            .get(path)
            .is_some_and(|e| e.kind == Kind::File && e.size == 0)
        {
            plan.injected.push(path.to_string());
            removals.push((path.to_string(), false));
        }
    }
    plan.cleaned = cleaned_tops
        .into_iter()
        .map(|(path, entries)| Cleaned { path, entries })
        .collect();

    // Image content that reached /var through a base link: move it into
    // /usr (see `relocate`).
    let names = user_names(input.tree);
    let links = match input.structural {
        true => Links::from_entries(&input.tree.entries),
        false => Links::from_base(input.base),
    };
    let declared = declared_tmpfiles(input.tree, &links);
    let moved = relocate::plan(input.tree, input.base, &links, &names, &declared);

    // /var content the build added: convert.
    let mut lines = BTreeSet::new();
    let mut copies = Vec::new();
    let mut owned: Option<std::collections::HashMap<&str, String>> = None;
    // A /var/run that is not the link to /run is denied (var-run-not-link),
    // which says all there is to say about what lies in it.
    let bad_var_run = input.tree.get("/var/run").is_some_and(|e| {
        !(e.kind == Kind::Symlink
            && e.target
                .as_deref()
                .is_some_and(crate::zones::is_run_link_target))
    });
    for change in input.changes {
        let path = change.path();
        if zone(path) != Zone::Var
            || (bad_var_run && is_within(path, "/var/run"))
            || in_rpmdb(path)
            || is_leftover(path)
            || input.extra_clean.is_match(path)
            || moved.covers(path)
        {
            continue;
        }
        let e = match change {
            Change::Added(e) if build_log(input, e) => continue,
            Change::Added(e) => e,
            Change::Modified { .. } | Change::Removed(_) => {
                plan.var_changed.push(path.to_string());
                continue;
            }
        };
        let Some(raw) = decode(&e.path) else { continue };
        // Another tmpfiles.d file declares it (under any of its names):
        // it is systemd's to create, not ours to convert.
        if declared.contains(&links.canonical_bytes(&raw)) {
            continue;
        }
        let line = match e.kind {
            Kind::Dir => Line::Dir {
                path: raw,
                mode: e.mode,
                user: names.user(e.uid),
                group: names.group(e.gid),
            },
            Kind::Symlink => Line::Symlink {
                path: raw,
                target: e.target.as_deref().and_then(decode).unwrap_or_default(),
            },
            Kind::File => {
                let owners = owned.get_or_insert_with(|| var_files(input.packages));
                if let Some(nevra) = owners.get(e.path.as_str()) {
                    plan.package_var_files.push(PackageFile {
                        path: e.path.clone(),
                        package: nevra.clone(),
                    });
                }
                let dest = format!("{FACTORY}{}", e.path);
                copies.push(Action::CopyToFactory {
                    source: e.path.clone(),
                    dest: dest.clone(),
                    mode: e.mode,
                    uid: e.uid,
                    gid: e.gid,
                });
                Line::Copy {
                    path: raw,
                    source: decode(&dest).unwrap_or_default(),
                }
            }
            // Special files are denied by `special-file`; nothing to convert.
            _ => continue,
        };
        if line.render().is_none() {
            plan.unconvertible.push(e.path.clone());
            if e.kind == Kind::File {
                copies.pop();
            }
            continue;
        }
        lines.insert(line);
        plan.converted.push(e.path.clone());
        if !(e.kind == Kind::Dir && mount_ancestors.contains(e.path.as_str())) {
            removals.push((e.path.clone(), e.kind == Kind::Dir));
        }
    }

    // Keep what an earlier (perhaps interrupted) run converted, drop what
    // other tmpfiles.d files already declare, under any of its names.
    let generated = input.tree.get(GENERATED_TMPFILES);
    if let Some(old) = generated.and_then(|e| e.text.as_deref()) {
        lines.extend(tmpfiles::parse_generated(old));
    }
    lines.extend(moved.lines);
    lines.retain(|l| !declared.contains(&links.canonical_bytes(l.path())));
    removals.extend(moved.removals);
    plan.relocated = moved.relocated;
    plan.unrelocatable = moved.refused;
    plan.restored_links = moved.restored;
    let mut writes = Vec::new();
    if !lines.is_empty() {
        let content = tmpfiles::render_file(&lines);
        if generated.and_then(|e| e.text.as_deref()) != Some(content.as_str()) {
            writes.push(Action::Write {
                path: GENERATED_TMPFILES.to_string(),
                content,
            });
        }
        plan.generated.push(GENERATED_TMPFILES.to_string());
    }

    // Users and groups the build added.
    let (names_added, user_lines) = added_users(input);
    if !user_lines.is_empty() {
        let content = sysusers::render_file(&user_lines);
        let current = input.tree.get(GENERATED_SYSUSERS);
        if current.and_then(|e| e.text.as_deref()) != Some(content.as_str()) {
            writes.push(Action::Write {
                path: GENERATED_SYSUSERS.to_string(),
                content,
            });
        }
        plan.generated.push(GENERATED_SYSUSERS.to_string());
    }
    plan.users_added = names_added;

    // Order: preserve data first, then declare it, then remove the
    // originals (children before parents), then housekeeping.
    plan.actions.extend(copies);
    plan.actions.extend(moved.copies);
    plan.actions.extend(writes);
    // Files and symlinks first, then directories deepest first.
    let depth = |p: &str| p.bytes().filter(|&c| c == b'/').count();
    removals.sort_by(|a, b| {
        (a.1, std::cmp::Reverse(depth(&a.0)), &a.0).cmp(&(
            b.1,
            std::cmp::Reverse(depth(&b.0)),
            &b.0,
        ))
    });
    plan.actions.extend(
        removals
            .into_iter()
            .map(|(path, dir)| Action::Remove { path, dir }),
    );
    plan.actions.extend(moved.restore);
    if let Some(dir) = input.rpmdb {
        plan.actions.push(Action::CheckpointRpmdb {
            dir: dir.to_string(),
        });
    }
    repair_in_place(input, &mut plan);
    if input.move_etc {
        plan.actions.push(Action::MoveEtcToUsrEtc);
    }
    plan
}

/// Repair what the build wrote in place through the image's hardlinks into
/// its ostree repository, so that the importer takes the image: every
/// path that was such an object gets its own copy (rpm-ostree's record of
/// the base database is rebuilt instead), then the object, which no longer
/// matches its name, leaves the image's repository (the base layer still
/// has the original). After the rpm database's checkpoint, which writes it.
fn repair_in_place(input: &PlanInput, plan: &mut Plan) {
    use crate::ostree::BASE_DB;
    for group in input.in_place {
        let through_rpmdb = group.paths.iter().any(|p| in_rpmdb(p));
        let mut rebuilt = false;
        for path in &group.paths {
            if through_rpmdb && is_within(path, BASE_DB) {
                if let (false, Some(from)) = (rebuilt, input.rpmdb) {
                    plan.actions.push(Action::RebuildBaseDb {
                        dir: BASE_DB.to_string(),
                        from: from.to_string(),
                        drop: input.packages_added.to_vec(),
                    });
                    rebuilt = true;
                }
                continue;
            }
            let is_file =
                in_rpmdb(path) || input.tree.get(path).is_some_and(|e| e.kind == Kind::File);
            if is_file {
                plan.actions.push(Action::Unshare { path: path.clone() });
            }
        }
        if let Some(object) = &group.repo_path {
            plan.actions.push(Action::Remove {
                path: object.clone(),
                dir: false,
            });
        }
    }
    plan.in_place = input.in_place.to_vec();
}

/// The child of a runtime directory that `path` is in.
fn runtime_top(path: &str) -> String {
    let dir = RUNTIME_DIRS
        .iter()
        .filter(|d| is_beneath(path, d))
        .max_by_key(|d| d.len())
        .copied()
        .unwrap_or("/");
    let rest = &path[dir.len() + 1..];
    let first = rest.split('/').next().unwrap_or(rest);
    crate::path::join(dir, first)
}

fn leftover_top(path: &str) -> String {
    LEFTOVER_DIRS
        .iter()
        .find(|d| is_within(path, d))
        .map(|d| d.to_string())
        .unwrap_or_else(|| path.to_string())
}

/// Every directory that has a mount point somewhere below it: never removed.
fn ancestors_of_mounts(mounts: &[String]) -> HashSet<&str> {
    let mut out = HashSet::new();
    for m in mounts {
        let mut cur = m.as_str();
        while let Some(i) = cur.rfind('/') {
            cur = if i == 0 { "/" } else { &cur[..i] };
            out.insert(cur);
            if cur == "/" {
                break;
            }
        }
    }
    out
}

fn text<'a>(tree: &'a Tree, path: &str) -> &'a str {
    tree.get(path).and_then(|e| e.text.as_deref()).unwrap_or("")
}

/// uid/gid → names from the tree's own databases (never the host's).
fn user_names(tree: &Tree) -> Names {
    let mut users = sysusers::parse_passwd(text(tree, "/etc/passwd"));
    users.extend(sysusers::parse_passwd(text(tree, "/usr/lib/passwd")));
    let mut groups = sysusers::parse_group(text(tree, "/etc/group"));
    groups.extend(sysusers::parse_group(text(tree, "/usr/lib/group")));
    Names::new(&users, &groups)
}

/// Paths declared by tmpfiles.d files other than our own, each by its
/// canonical name (through the base's links into /var: `/home/u` is
/// `/var/home/u`).
fn declared_tmpfiles(tree: &Tree, links: &Links) -> HashSet<Vec<u8>> {
    config_files(
        tree,
        &["/usr/lib/tmpfiles.d", "/etc/tmpfiles.d"],
        GENERATED_TMPFILES,
    )
    .flat_map(tmpfiles::declared_paths)
    .map(|p| links.canonical_bytes(&p))
    .collect()
}

/// The files in /var that a package owns, to the package's NEVRA.
fn var_files(packages: &[crate::rpmdb::Package]) -> std::collections::HashMap<&str, String> {
    let mut out = std::collections::HashMap::new();
    for p in packages {
        let mut nevra = None;
        for f in p.files.iter().filter(|f| is_beneath(f, "/var")) {
            let n = nevra.get_or_insert_with(|| p.nevra()).clone();
            out.entry(f.as_str()).or_insert(n);
        }
    }
    out
}

fn config_files<'a>(
    tree: &'a Tree,
    dirs: &'a [&str],
    own: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    tree.entries
        .iter()
        .filter(move |e| {
            e.path != own
                && e.path.ends_with(".conf")
                && dirs.iter().any(|d| {
                    crate::path::is_beneath(&e.path, d) && !e.path[d.len() + 1..].contains('/')
                })
        })
        .filter_map(|e| e.text.as_deref())
}

fn added_users(input: &PlanInput) -> (Vec<String>, Vec<String>) {
    let base_text = |p: &str| {
        input
            .base
            .get(p)
            .and_then(|e| e.text.as_deref())
            .unwrap_or("")
    };
    let mut already = Declared::default();
    for t in config_files(
        input.tree,
        &["/usr/lib/sysusers.d", "/etc/sysusers.d"],
        GENERATED_SYSUSERS,
    ) {
        sysusers::declared(t, &mut already);
    }
    sysusers::added_lines(
        &sysusers::parse_passwd(base_text("/etc/passwd")),
        &sysusers::parse_group(base_text("/etc/group")),
        &sysusers::parse_passwd(text(input.tree, "/etc/passwd")),
        &sysusers::parse_group(text(input.tree, "/etc/group")),
        &already,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_tops() {
        assert_eq!(runtime_top("/var/cache/dnf/x/y"), "/var/cache/dnf");
        assert_eq!(runtime_top("/tmp/a"), "/tmp/a");
        assert_eq!(runtime_top("/var/tmp/a/b"), "/var/tmp/a");
    }

    #[test]
    fn leftovers() {
        assert!(is_leftover("/var/log/dnf.rpm.log"));
        assert!(is_leftover("/var/lib/dnf/history.sqlite"));
        assert!(!is_leftover("/var/lib/dnfx"));
        assert!(!is_leftover("/var/log/messages"));
    }

    #[test]
    fn mounts_protect_their_ancestors() {
        let m = vec!["/run/secrets/x".to_string()];
        let a = ancestors_of_mounts(&m);
        assert!(a.contains("/run/secrets") && a.contains("/run") && a.contains("/"));
        assert!(!a.contains("/run/secrets/x"));
    }
}
