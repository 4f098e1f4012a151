//! # ostree-finalize
//!
//! The last step of a Containerfile that derives an OS from an ostree-based
//! base image, and a linter for such images. A tour of the pipeline, in the
//! order a `finalize` run meets it:
//!
//! 1. [`cli`] parses flags once (and maps ostree's `container finalize`
//!    external-command argv); [`commands`] runs them and owns the exit code.
//! 2. [`rootfs`] opens the root — the only ambient authority — and walks it
//!    through directory handles, never following a symlink out and never
//!    entering a mount point, hashing files in parallel.
//! 3. [`manifest`] is the base reference that [`snapshot`] records: every
//!    path with its metadata and digest, the rpm package set, ownership;
//!    [`ostree`] reads the same from an ostree commit instead. [`base`]
//!    finds and loads it (or finds none: structural mode), and [`target`]
//!    is the tree judged against it.
//! 4. [`rpmdb`] finds and reads the tree's rpm database (sqlite or
//!    Berkeley DB).
//! 5. [`diff`] (paths) and [`pkgdiff`] (packages) compare base and build;
//!    both are pure.
//! 6. [`checks`] turns changes into findings, from one registry of named
//!    checks; [`zones`] says which part of an ostree system a path is in.
//! 7. [`policy`] applies levels, waivers and overrides to the findings;
//!    [`engine`] strings 2–7 together; [`report`] is the one report model
//!    and its renderers.
//!
//! Modules import only downward, in the layers README's "Layout of the
//! code" lists.
//!
//! Beside the `finalize` pipeline: [`layout`] plans and applies the ostree
//! rewrite (/var to tmpfiles.d, /opt and /usr/local content that the
//! base's links put in /var moved into /usr, users to sysusers.d, runtime
//! cleaned);
//! [`policy`] turns a YAML policy into levels and waivers; [`record`] is
//! what finalize leaves in the image; [`lint`] checks finished images
//! (read through [`oci`], hashed against an ostree commit by
//! [`oci::against`]) with the same engine; [`apply`] bakes an
//! Ignition or Butane config into the tree, add-only.
//!
//! `Err` means the tool could not do its job (exit 2); a finding means the
//! tree broke a rule (exit 1 when it is a deny).

#![forbid(unsafe_code)]

pub mod apply;
pub mod base;
pub mod checks;
pub mod cli;
pub mod commands;
pub mod diff;
pub mod engine;
pub mod layout;
pub mod lint;
pub mod manifest;
pub mod oci;
pub mod ostree;
pub mod path;
pub mod pkgdiff;
pub mod policy;
pub mod progress;
pub mod record;
pub mod report;
pub mod rootfs;
pub mod rpmdb;
pub mod snapshot;
pub mod target;
pub mod zones;
