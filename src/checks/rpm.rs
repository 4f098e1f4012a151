//! The add-only rule for packages: `rpm-base-changed`.

use super::{Check, Finding, Input, Level};

/// `rpm-base-changed`.
pub const BASE_CHANGED: Check = Check {
    id: "rpm-base-changed",
    default_level: Level::Deny,
    overridable: true,
    needs_base: true,
    summary: "A base package was upgraded, downgraded, removed or replaced",
    description: "The rpm database shows that a package of the base image is no \
longer the one the base shipped: `rpm -Uvh`/`dnf upgrade` (upgraded), an older \
build (downgraded), `rpm -e`/`dnf remove` (removed), or the same version with a \
different header (replaced by a rebuild). Versions are compared with rpmvercmp. \
Base packages are updated by moving to a newer base image, not inside a derived \
build. Fix: drop the package operation; if it is deliberate (e.g. a hotfix kernel), \
build with --allow-overrides and LABEL ostree.override=true.",
};

/// `base-packages-unknown`.
pub const PACKAGES_UNKNOWN: Check = Check {
    id: "base-packages-unknown",
    default_level: Level::Warn,
    overridable: false,
    needs_base: true,
    summary: "The base's package set could not be established",
    description: "The base is an ostree commit whose rpm database the build wrote in \
place: the image keeps its base files as hardlinks into /sysroot/ostree/repo, and a \
storage driver that keeps those hardlinks (buildah's vfs) lets `rpm -i` write the \
commit's own copy. The commit carries no rpmostree.rpmdb.pkglist to name the base \
packages instead, so no package is reported as added, removed or changed, and \
rpm-base-changed was not enforced. Fix: lint the image against the pristine base \
(`ostree-finalize lint --image REF --base-image BASE` or --base ostree:REPO), or \
build with overlay storage, which breaks the hardlinks on the first write.",
};

pub(super) fn check(input: &Input, out: &mut Vec<Finding>) {
    if let Some(why) = &input.base.packages_unknown {
        out.push(Finding::new(
            &PACKAGES_UNKNOWN,
            None,
            format!(
                "The base's package set is unknown: {why}. No package was compared; \
                 lint the image against the pristine base to check its packages."
            ),
        ));
    }
    let p = input.packages;
    let mut push = |pkg: &str, msg: String| {
        out.push(Finding::new(&BASE_CHANGED, None, format!("{msg}.")).with_package(Some(pkg)));
    };
    for c in &p.upgraded {
        push(
            &c.from,
            format!("base package {} was upgraded to {}", c.from, c.to),
        );
    }
    for c in &p.downgraded {
        push(
            &c.from,
            format!("base package {} was downgraded to {}", c.from, c.to),
        );
    }
    for c in &p.replaced {
        push(
            &c.from,
            format!(
                "base package {} was replaced by a different build of the same version \
                 (its SHA256HEADER differs)",
                c.from
            ),
        );
    }
    for nevra in &p.removed {
        push(nevra, format!("base package {nevra} was removed"));
    }
}
