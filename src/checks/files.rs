//! What ostree cannot store: `special-file` and `non-utf8-path`.

use super::{Check, Finding, Input, Level};
use crate::path::decode;
use crate::zones::{Zone, zone};

/// `special-file`.
pub const SPECIAL: Check = Check {
    id: "special-file",
    default_level: Level::Deny,
    overridable: false,
    needs_base: false,
    summary: "A device node, fifo or socket outside the API filesystems",
    description: "ostree commits can hold only regular files, directories and \
symlinks. A device node, fifo or socket in the image (outside /dev, /proc, /sys and \
the runtime directories /run and /tmp, which are cleaned) makes the import fail or \
silently drops the file at deploy. Fix: delete it in the build; create it at boot \
with a tmpfiles.d line (`p` for a fifo, `c`/`b` for device nodes) or let the \
service create its socket (systemd socket units).",
};

/// `non-utf8-path`.
pub const NON_UTF8: Check = Check {
    id: "non-utf8-path",
    default_level: Level::Deny,
    overridable: false,
    needs_base: false,
    summary: "A file name or symlink target that is not UTF-8",
    description: "ostree refuses file names and symlink targets that are not valid \
UTF-8, so the image cannot be committed or deployed. Fix: rename the file (the \
name is shown with the bad bytes as \\xNN escapes) or retarget the symlink.",
};

/// Did this encoded string come from bytes that were not UTF-8?
fn non_utf8(encoded: &str) -> bool {
    encoded.contains('\\') && decode(encoded).is_some_and(|b| std::str::from_utf8(&b).is_err())
}

pub(super) fn check(input: &Input, out: &mut Vec<Finding>) {
    for e in &input.current.entries {
        if e.kind.is_special() && zone(&e.path) != Zone::Runtime {
            let msg = format!(
                "{} is a {}, which ostree cannot store. Remove it in the build and \
                 create it at boot (tmpfiles.d, or a systemd socket unit).",
                e.path,
                e.kind.name()
            );
            out.push(Finding::new(&SPECIAL, Some(e.path.clone()), msg));
        }
        if non_utf8(&e.path) {
            let msg = format!(
                "file name {} is not UTF-8 (bad bytes shown as \\xNN); ostree refuses it. \
                 Rename it.",
                e.path
            );
            out.push(Finding::new(&NON_UTF8, Some(e.path.clone()), msg));
        } else if let Some(t) = e.target.as_deref().filter(|t| non_utf8(t)) {
            let msg = format!(
                "symlink {} points to {t}, which is not UTF-8 (bad bytes shown as \\xNN); \
                 ostree refuses it. Retarget it.",
                e.path
            );
            out.push(Finding::new(&NON_UTF8, Some(e.path.clone()), msg));
        }
    }
}
