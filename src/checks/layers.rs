//! Checks on the image's layers as tar streams, beside the tree they make:
//! made by `lint` from what [`crate::oci`] reports while it reads them.

use super::{Check, Level};

/// `malformed-layer`.
pub const MALFORMED_LAYER: Check = Check {
    id: "malformed-layer",
    default_level: Level::Deny,
    overridable: false,
    needs_base: false,
    summary: "A layer has a member that container runtimes refuse or may read differently",
    description: "A layer's tar has a member that podman, buildah or docker refuse \
to unpack, or that two runtimes (or two storage drivers) unpack differently: a name \
whose `..` climbs above the image root (absolute names are read relative to the \
root, as runtimes strip the leading `/`, but may not climb above it either); a \
whiteout of no name, `.` or `..` (`.wh.`, `.wh..`, `.wh...`), which a plain unpack \
reads as deleting the directory or its parent; an opaque-directory marker \
(`.wh..wh..opq`) that is not an empty regular file, whose directory is a file, \
symlink or special file at that point, or that sits in the image root (a plain unpack \
then deletes every lower layer, overlay storage ignores it); any other `.wh..wh.` \
name (aufs metadata, skipped by some runtimes and read as a whiteout by others); a \
name whose path goes through a directory named `.wh.…`, which the OCI image spec \
reserves for whiteouts; a hardlink whose target climbs above the root, or is \
missing, a whiteout name or a directory at that point. All of these are checked \
in every directory, after the name is cleaned as runtimes clean it. Such a member is \
left out of what lint judges, so the verdict on the rest cannot be trusted to be \
what a host deploys: the image is refused. Well-behaved tools (buildah, podman, \
docker, skopeo, umoci) never write such members; the layer was made by hand or \
tampered with. Fix: rebuild the image with a standard tool, from a build context \
that does not carry the member; the finding names the layer digest and the raw \
member name.",
};
