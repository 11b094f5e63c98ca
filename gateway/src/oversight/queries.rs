//! The sources' count queries (`[sources.reconcile]`), each with its own HTTP client.

use crate::config::oversight::{reconcile_parts, ReconcileSettings};
use crate::config::Config;
use adapters::http::client::HttpClient;

/// One source's count query with its HTTP client.
pub struct ReconcileJob {
    /// The source.
    pub source_id: String,
    /// Its `[sources.reconcile]` keys.
    pub settings: ReconcileSettings,
    pub(crate) client: HttpClient,
}

/// The count queries of every source that has one.
pub fn jobs(config: &Config) -> Result<Vec<ReconcileJob>, String> {
    let mut jobs = Vec::new();
    for s in &config.sources {
        let Some(table) = &s.reconcile else { continue };
        let place = format!("{}.reconcile", s.key_path());
        let kind = s.rest.as_ref().or(s.soap.as_ref());
        let (settings, client) = reconcile_parts(table, kind, &place, &config.base_dir).map_err(|p| {
            p.into_iter()
                .map(|(place, m)| format!("{place}: {m}"))
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let home = reqwest::Url::parse(&ReconcileSettings::fill(&settings.url, "2025-01-01"))
            .map_err(|e| format!("{place}.url: {e}"))?;
        let client = HttpClient::new(&format!("{}/reconcile", s.id), &client, &config.base_dir, &home)
            .map_err(|e| format!("{place}: {e}"))?;
        jobs.push(ReconcileJob {
            source_id: s.id.clone(),
            settings,
            client,
        });
    }
    Ok(jobs)
}
