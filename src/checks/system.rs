//! Whole-system sanity of the build result: `kernel-initramfs`,
//! `boot-nonempty`, `setuid-added`, `world-writable`.

use std::collections::BTreeMap;

use super::{Check, Finding, Input, Level};
use crate::diff::Change;
use crate::manifest::Kind;
use crate::path::is_beneath;
use crate::zones::{Zone, zone};

/// `kernel-initramfs`.
pub const KERNEL_INITRAMFS: Check = Check {
    id: "kernel-initramfs",
    default_level: Level::Deny,
    overridable: false,
    needs_base: false,
    summary: "A kernel without a matching initramfs, or more than one kernel",
    description: "ostree boots the kernel in /usr/lib/modules/VERSION/vmlinuz with \
the initramfs beside it (initramfs.img), and it is in that initramfs that \
ostree-prepare-root mounts the deployment: a kernel without one does not boot an \
ostree system. Stricter than bootc's lint, which only counts kernels. Two kernels make \
the choice ambiguous. Fix: a kernel package installed in a container build does not \
run its initramfs scriptlets, so generate the initramfs in the build, after the \
install: `KVER=VERSION; dracut --no-hostonly --kver \"$KVER\" --reproducible -f \
/usr/lib/modules/$KVER/initramfs.img` (with the base's dracut configuration, which \
includes the ostree module), or use a base image that ships the kernel with its \
initramfs. Remove every other kernel directory.",
};

/// `boot-nonempty`.
pub const BOOT_NONEMPTY: Check = Check {
    id: "boot-nonempty",
    default_level: Level::Warn,
    overridable: false,
    needs_base: false,
    summary: "Content in /boot",
    description: "On ostree systems /boot is managed by ostree itself from \
/usr/lib/modules; files a build puts in /boot never reach a deployed system. Fix: \
put kernels and initramfs in /usr/lib/modules/VERSION/.",
};

/// `setuid-added`.
pub const SETUID_ADDED: Check = Check {
    id: "setuid-added",
    default_level: Level::Warn,
    overridable: false,
    needs_base: true,
    summary: "A file with the setuid or setgid bit was added",
    description: "A setuid or setgid program runs with its owner's privileges: \
every one added to an OS image widens its attack surface. Fix: prefer file \
capabilities or a systemd service; if it must stay, document why.",
};

/// `world-writable`.
pub const WORLD_WRITABLE: Check = Check {
    id: "world-writable",
    default_level: Level::Warn,
    overridable: false,
    needs_base: true,
    summary: "A world-writable file or directory (without sticky bit) was added",
    description: "Any user can modify a world-writable file, and can replace files \
in a world-writable directory that lacks the sticky bit. Fix: chmod o-w, or set \
the sticky bit on shared directories.",
};

pub(super) fn check(input: &Input, out: &mut Vec<Finding>) {
    kernels(input, out);
    for change in input.changes {
        let Change::Added(e) = change else { continue };
        if is_beneath(&e.path, "/boot") {
            out.push(Finding::new(
                &BOOT_NONEMPTY,
                Some(e.path.clone()),
                format!(
                    "{} was added to /boot, which ostree manages; it will not reach a \
                     deployed system. Put kernels in /usr/lib/modules/VERSION/.",
                    e.path
                ),
            ));
        }
        if zone(&e.path) == Zone::Runtime {
            continue;
        }
        if e.kind == Kind::File && e.mode & 0o6000 != 0 {
            out.push(Finding::new(
                &SETUID_ADDED,
                Some(e.path.clone()),
                format!(
                    "{} was added with mode {:04o} ({}). Prefer file capabilities or a \
                     service.",
                    e.path,
                    e.mode,
                    if e.mode & 0o4000 != 0 {
                        "setuid"
                    } else {
                        "setgid"
                    }
                ),
            ));
        }
        let sticky_dir = e.kind == Kind::Dir && e.mode & 0o1000 != 0;
        if matches!(e.kind, Kind::File | Kind::Dir) && e.mode & 0o002 != 0 && !sticky_dir {
            out.push(Finding::new(
                &WORLD_WRITABLE,
                Some(e.path.clone()),
                format!(
                    "{} {} was added world-writable (mode {:04o}). chmod o-w{}.",
                    e.kind.name(),
                    e.path,
                    e.mode,
                    if e.kind == Kind::Dir {
                        ", or add the sticky bit"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
}

fn kernels(input: &Input, out: &mut Vec<Finding>) {
    // version → (has vmlinuz, has initramfs)
    let mut found: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
    for e in &input.current.entries {
        let Some(rest) = e.path.strip_prefix("/usr/lib/modules/") else {
            continue;
        };
        let Some((version, file)) = rest.split_once('/') else {
            continue;
        };
        let slot = found.entry(version).or_default();
        match file {
            "vmlinuz" => slot.0 = true,
            "initramfs.img" => slot.1 = true,
            _ => {}
        }
    }
    let kernels: Vec<&str> = found
        .iter()
        .filter(|(_, (k, _))| *k)
        .map(|(v, _)| *v)
        .collect();
    for v in &kernels {
        if !found[v].1 {
            out.push(Finding::new(
                &KERNEL_INITRAMFS,
                Some(format!("/usr/lib/modules/{v}/vmlinuz")),
                format!(
                    "kernel {v} has no /usr/lib/modules/{v}/initramfs.img, so it cannot \
                     boot: ostree-prepare-root runs from the initramfs. A kernel installed \
                     in a container build gets none; generate it in the build, after the \
                     install: `dracut --no-hostonly --kver {v} --reproducible -f \
                     /usr/lib/modules/{v}/initramfs.img`, or use a base image whose kernel \
                     comes with its initramfs."
                ),
            ));
        }
    }
    if kernels.len() > 1 {
        out.push(Finding::new(
            &KERNEL_INITRAMFS,
            None,
            format!(
                "{} kernels are installed ({}); an ostree image carries exactly one. \
                 Remove all but one.",
                kernels.len(),
                kernels.join(", ")
            ),
        ));
    }
}
