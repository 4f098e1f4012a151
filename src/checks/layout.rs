//! What the layout rewrite converts or cleans, reported: `var-content`,
//! `runtime-content`, `users-added`.

use std::collections::HashSet;

use super::{Check, Finding, Input, Level};
use crate::zones::{GENERATED_SYSUSERS, GENERATED_TMPFILES};

/// `var-content`.
pub const VAR_CONTENT: Check = Check {
    id: "var-content",
    default_level: Level::Info,
    overridable: false,
    summary: "/var content added by the build, converted to tmpfiles.d",
    description: "ostree never updates /var from an image: it is the machine's own \
state, seeded once. Content the build put in /var would be missing on every system \
that already exists. finalize converts it: directories and symlinks become \
tmpfiles.d lines, files are preserved under /usr/share/factory/var with a `C` line, \
all in /usr/lib/tmpfiles.d/ostree-finalize-var.conf (info). Changes to /var content \
the base shipped cannot be carried to existing systems at all (warn). Fix for the \
warning: ship the change as a tmpfiles.d line or a systemd unit instead.",
};

/// `runtime-content`.
pub const RUNTIME_CONTENT: Check = Check {
    id: "runtime-content",
    default_level: Level::Info,
    overridable: false,
    summary: "Runtime-only content and package-manager leftovers, cleaned",
    description: "/run, /tmp, /var/tmp and /var/cache are runtime-only, and dnf/rpm \
logs, caches, locks and sqlite -shm/-wal files are leftovers of the build. They \
bloat the image and confuse the deployed system. finalize empties these (keeping \
the directories, never touching mount points) after checkpointing the rpmdb.",
};

/// `users-added`.
pub const USERS_ADDED: Check = Check {
    id: "users-added",
    default_level: Level::Info,
    overridable: false,
    summary: "Users or groups added to /etc/passwd or /etc/group",
    description: "Users added with useradd in a build live only in /etc/passwd, \
which ostree merges three ways at upgrade: on existing systems they can vanish, \
leaving files owned by unknown ids. finalize writes sysusers.d entries for them in \
/usr/lib/sysusers.d/ostree-finalize.conf, so systemd creates them on every system.",
};

pub(super) fn check(input: &Input, out: &mut Vec<Finding>) {
    let plan = input.plan;
    let converted: HashSet<&str> = plan.converted.iter().map(String::as_str).collect();
    for path in &plan.converted {
        // One finding per converted subtree: skip entries whose parent is
        // converted too, and count what lies beneath.
        let parent = path.rsplit_once('/').map_or("/", |(p, _)| p);
        if converted.contains(parent) {
            continue;
        }
        let prefix = format!("{path}/");
        let beneath = plan
            .converted
            .iter()
            .filter(|p| p.starts_with(&prefix))
            .count();
        let extra = if beneath > 0 {
            format!(" (with {beneath} entries beneath it)")
        } else {
            String::new()
        };
        let msg = format!(
            "{path}{extra} was added to /var by the build; it is recreated at boot by \
             {GENERATED_TMPFILES} (files are kept in /usr/share/factory/var)"
        );
        out.push(Finding::new(&VAR_CONTENT, Some(path.clone()), msg));
    }
    for path in &plan.unconvertible {
        let mut f = Finding::new(
            &VAR_CONTENT,
            Some(path.clone()),
            format!(
                "{path} was added to /var, but tmpfiles.d cannot express it: its name \
                 (or symlink target) holds a control character or is longer than {} \
                 bytes, or its owner is named `-`. It cannot be carried to deployed \
                 systems. Rename it (or its owner).",
                crate::layout::tmpfiles::MAX_FIELD
            ),
        );
        f.level = Level::Deny;
        out.push(f);
    }
    for path in &plan.var_changed {
        let mut f = Finding::new(
            &VAR_CONTENT,
            Some(path.clone()),
            format!(
                "{path} is base /var content that the build changed or removed; ostree \
                 does not update /var, so existing systems keep the base's version. Ship \
                 the change as a tmpfiles.d line or a systemd unit instead."
            ),
        );
        f.level = Level::Warn;
        if let Some(base) = input.base.get(path) {
            f = f.with_package(input.base.owner_of(base));
        }
        out.push(f);
    }
    for c in &plan.cleaned {
        let msg = format!(
            "{} ({} entr{}) is runtime-only or a package-manager leftover; cleaned",
            c.path,
            c.entries,
            if c.entries == 1 { "y" } else { "ies" }
        );
        out.push(Finding::new(&RUNTIME_CONTENT, Some(c.path.clone()), msg));
    }
    for who in &plan.users_added {
        let msg = format!(
            "{who} was added by the build; declared in {GENERATED_SYSUSERS} so it exists \
             on every system"
        );
        out.push(Finding::new(&USERS_ADDED, None, msg));
    }
}
