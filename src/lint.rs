//! `lint`: check a finished image (or a rootfs directory) against its base,
//! read-only, with no container runtime. (Being built.)

use anyhow::Result;
use clap::Args;

/// Flags of `lint`.
#[derive(Debug, Args)]
pub struct LintArgs {}

/// Run `lint`; returns the exit code.
pub fn run(_args: &LintArgs) -> Result<u8> {
    anyhow::bail!("lint is not implemented yet")
}
