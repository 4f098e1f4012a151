//! `apply`: bake an Ignition or Butane config into the tree at build time,
//! add-only. (Being built.)

use anyhow::Result;
use clap::Args;

/// Flags of `apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {}

/// Run `apply`; returns the exit code.
pub fn run(_args: &ApplyArgs) -> Result<u8> {
    anyhow::bail!("apply is not implemented yet")
}
