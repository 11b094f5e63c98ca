//! What the commands share: loading a configuration, and naming the acting user in the audit log.

use crate::config::{Config, Resolved};
use std::path::Path;

/// Load a config or fail with all its problems, and apply its process-wide settings (the
/// preparation threads' priority).
pub fn load_config(file: &Path) -> anyhow::Result<Resolved> {
    let resolved = Config::load(file).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::prepare::workers::set_prepare_nice(resolved.config.pipeline.prepare_nice);
    Ok(resolved)
}

pub(crate) fn actor() -> String {
    format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()))
}
