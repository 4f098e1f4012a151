//! What the layout rewrite converts, moves or cleans, reported:
//! `var-content`, `var-package-file`, `image-content-relocated`,
//! `var-link-restored`, `runtime-content`, `runtime-injected-file`,
//! `users-added`.

use std::collections::HashSet;

use crate::layout::RestoredLink;
use crate::path::is_within;

fn is_within_any(path: &str, links: &[RestoredLink]) -> bool {
    links.iter().any(|l| is_within(path, &l.path))
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/')
        .map_or("/", |(p, _)| if p.is_empty() { "/" } else { p })
}

use super::{Check, Finding, Input, Level};
use crate::zones::{GENERATED_SYSUSERS, GENERATED_TMPFILES};

/// `var-content`.
pub const VAR_CONTENT: Check = Check {
    id: "var-content",
    default_level: Level::Info,
    overridable: false,
    needs_base: false,
    summary: "/var content added by the build, converted to tmpfiles.d",
    description: "ostree never updates /var from an image: it is the machine's own \
state, seeded once. Content the build put in /var would be missing on every system \
that already exists. finalize converts it: directories and symlinks become \
tmpfiles.d lines, files are preserved under /usr/share/factory/var with a `C` line, \
all in /usr/lib/tmpfiles.d/ostree-finalize-var.conf (info). Changes to /var content \
the base shipped cannot be carried to existing systems at all (warn). Fix for the \
warning: ship the change as a tmpfiles.d line or a systemd unit instead.",
};

/// `image-content-relocated`.
pub const RELOCATED: Check = Check {
    id: "image-content-relocated",
    default_level: Level::Info,
    overridable: false,
    needs_base: false,
    summary: "Image content installed into /var through a base link, moved into /usr",
    description: "On bases such as Fedora CoreOS, /opt is a symlink to var/opt and /usr/local one to ../var/usrlocal, so an rpm or a COPY into /opt or /usr/local writes into /var, which ostree never updates from an image: a seed-once copy would keep the first version on every existing machine while its rpmdb names the newer one. finalize moves the content into /usr, as rpm-ostree does: each top-level /opt entry to /usr/lib/opt/ENTRY, each entry below /usr/local's standard subdirectories (bin, sbin, lib, lib64, libexec, share, include, etc, src, games) to /usr/lib/usrlocal/SUBDIR/ENTRY (any other top-level /usr/local entry to /usr/lib/usrlocal/ENTRY), and writes a tmpfiles.d `L` line per entry so that the old path resolves to the image's copy. rpm's recorded paths keep resolving and `rpm -V` stays clean. The links are read from the base; on a base whose /opt and /usr/local are real directories nothing moves. Denied when an entry cannot move: its name cannot be written in a tmpfiles.d line (a newline or another control character, bytes that are not UTF-8), its destination already exists in the base, or another tmpfiles.d file already declares its path. Fix for a denial: rename the entry, or install it under /usr directly. lint on an image that was not finalized reports this content as a warning: as the image stands it is stranded in /var.",
};

/// `var-link-restored`.
pub const LINK_RESTORED: Check = Check {
    id: "var-link-restored",
    default_level: Level::Info,
    overridable: false,
    needs_base: false,
    summary: "A base link into /var that the build replaced with a directory, restored",
    description: "A common workaround for installing into /opt on Fedora CoreOS-style bases is `rm /opt && mkdir /opt` before the install. ostree's importer turns the directory back into the base's symlink and drops what it held, so the program is missing on the deployed system. finalize restores the base's link (its target read from the base) and relocates the directory's content into /usr as for image-content-relocated, so the add-only rule holds on the result. A base link into /var that the build removed is restored the same way. No fix needed; the workaround can be dropped: installing through the link (`mkdir -p /var/opt && rpm -i ...`) gives the same image.",
};

/// `var-package-file`.
pub const VAR_PACKAGE_FILE: Check = Check {
    id: "var-package-file",
    default_level: Level::Warn,
    overridable: false,
    needs_base: false,
    summary: "A package owns a file in /var: it is seeded once and never updated",
    description: "A package installed by the build ships a file in /var. finalize keeps it as a tmpfiles.d `C` copy, which is right for state: systemd-tmpfiles copies it onto a machine that lacks it and never overwrites it. So a later image with a newer package never updates it on existing machines, while `rpm -V` reports the difference. Fix: ship content that must follow the image under /usr (for example /usr/share/PACKAGE) and have the program read it there or copy it at start-up; keep in /var only what the machine owns once seeded. Waive the warning for files that are seed data on purpose.",
};

/// `runtime-content`.
pub const RUNTIME_CONTENT: Check = Check {
    id: "runtime-content",
    default_level: Level::Info,
    overridable: false,
    needs_base: false,
    summary: "Runtime-only content and package-manager leftovers, cleaned",
    description: "/run, /tmp, /var/tmp and /var/cache are runtime-only, and dnf/rpm \
logs, caches, locks and sqlite -shm/-wal files are leftovers of the build. They \
bloat the image and confuse the deployed system. finalize empties these (keeping \
the directories, never touching mount points) after checkpointing the rpmdb. Files \
the build wrote under /var/log are build noise too: they are removed, and the \
directories that held them become tmpfiles.d `d` lines. A policy keeps chosen log \
files (`keep-logs: [GLOB]`), which are then converted like other /var content.",
};

/// `runtime-injected-file`.
pub const INJECTED_FILE: Check = Check {
    id: "runtime-injected-file",
    default_level: Level::Info,
    overridable: false,
    needs_base: false,
    summary: "An empty /etc/hostname, /etc/resolv.conf or /etc/hosts left by the build runtime, cleaned",
    description: "Build runtimes (buildah, podman) bind-mount /etc/hostname, /etc/resolv.conf and /etc/hosts into every RUN step, creating empty files under the mounts when the image lacks them; the empty files stay in the image. On a deployed system an empty /etc/hostname or /etc/resolv.conf shadows what systemd and NetworkManager would provide (an empty hostname, no name servers), and as /etc content it is merged into every machine. finalize removes them when they are empty regular files and not mount points (during a RUN step they are the runtime's mounts and are left alone). No fix needed; to ship such a file on purpose, give it content.",
};

/// `users-added`.
pub const USERS_ADDED: Check = Check {
    id: "users-added",
    default_level: Level::Info,
    overridable: false,
    needs_base: false,
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
        let how = match input.structural {
            true => "is in the image's /var and no other tmpfiles.d file declares it",
            false => "was added to /var by the build",
        };
        let msg = format!(
            "{path}{extra} {how}; it is recreated at boot by {GENERATED_TMPFILES} (files \
             are kept in /usr/share/factory/var)"
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
    for r in &plan.relocated {
        let (n, s) = (r.entries, if r.entries == 1 { "y" } else { "ies" });
        let how = if is_within_any(&r.source, &plan.restored_links) {
            format!(
                "was in the directory that replaced the base's link {}",
                r.via
            )
        } else {
            format!(
                "was installed into {} through the base's link {}",
                parent_of(&r.link),
                r.via
            )
        };
        let msg = format!(
            "{} ({n} entr{s}) {how}; moved to {} with a tmpfiles.d line L {} -> {}, so it \
             updates with the image",
            r.path, r.dest, r.link, r.dest
        );
        out.push(Finding::new(&RELOCATED, Some(r.path.clone()), msg));
    }
    for r in &plan.unrelocatable {
        let mut f = Finding::new(
            &RELOCATED,
            Some(r.path.clone()),
            format!(
                "{} is image content in /var (through a base link) but cannot be moved into \
                 /usr: {}. Rename it, or install it under /usr.",
                r.path, r.reason
            ),
        );
        f.level = Level::Deny;
        out.push(f);
    }
    for l in &plan.restored_links {
        let msg = if l.replaced {
            format!(
                "the build replaced the base's link {} -> {} with a directory; ostree's \
                 importer would turn it back into the link and drop its content. finalize \
                 restores the link and moves the {} entr{} it held into /usr \
                 (image-content-relocated)",
                l.path,
                l.target,
                l.relocated,
                if l.relocated == 1 { "y" } else { "ies" }
            )
        } else {
            format!(
                "the build removed the base's link {} -> {}; finalize restores it",
                l.path, l.target
            )
        };
        out.push(Finding::new(&LINK_RESTORED, Some(l.path.clone()), msg));
    }
    for p in &plan.package_var_files {
        let msg = format!(
            "{} is owned by {}: it is copied into /var once, on machines that lack it, \
             and never updated when the image is, while the rpmdb will name the newer \
             package. Ship what must follow the image under /usr and read or copy it from \
             there; keep in /var only state the machine owns.",
            p.path, p.package
        );
        out.push(
            Finding::new(&VAR_PACKAGE_FILE, Some(p.path.clone()), msg)
                .with_package(Some(&p.package)),
        );
    }
    for c in &plan.cleaned {
        let what = if is_within(&c.path, "/var/log") {
            "was written to /var/log by the build: build noise, cleaned (directories are \
             kept as tmpfiles.d lines; the policy's keep-logs keeps files)"
        } else {
            "is runtime-only or a package-manager leftover; cleaned"
        };
        let msg = format!(
            "{} ({} entr{}) {what}",
            c.path,
            c.entries,
            if c.entries == 1 { "y" } else { "ies" }
        );
        out.push(Finding::new(&RUNTIME_CONTENT, Some(c.path.clone()), msg));
    }
    for path in &plan.injected {
        let msg = format!(
            "{path} is an empty file the build runtime left behind; an empty one would \
             shadow what the system provides at boot. Cleaned"
        );
        out.push(Finding::new(&INJECTED_FILE, Some(path.clone()), msg));
    }
    for who in &plan.users_added {
        let how = match input.structural {
            true => {
                "is in the image's /etc/passwd or /etc/group and no other sysusers.d file \
                 declares it"
            }
            false => "was added by the build",
        };
        let msg =
            format!("{who} {how}; declared in {GENERATED_SYSUSERS} so it exists on every system");
        out.push(Finding::new(&USERS_ADDED, None, msg));
    }
}
