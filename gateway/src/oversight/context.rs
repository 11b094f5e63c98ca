//! What supervision works with: the webhooks with their secrets, the count queries, an HTTP
//! client; and its error.

use super::queries::{self, ReconcileJob};
use crate::config::oversight::AlertWebhook;
use crate::runtime::Runtime;
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Why supervision cannot start or a round failed.
#[derive(Debug, thiserror::Error)]
pub enum OversightError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A webhook or count query is configured wrongly (the problems, joined).
    #[error("对账或告警配置错误 / reconciliation or alert settings: {0}")]
    Settings(String),
}

/// What supervision needs at hand: the webhooks with their secrets, the count queries with
/// their HTTP clients, one HTTP client for webhooks.
pub struct Oversight {
    /// The gateway.
    pub runtime: Arc<Runtime>,
    /// The configured webhooks.
    pub webhooks: Vec<AlertWebhook>,
    /// The sources' count queries.
    pub jobs: Vec<ReconcileJob>,
    pub(crate) http: reqwest::Client,
    pub(crate) started: DateTime<Utc>,
}

impl std::fmt::Debug for Oversight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oversight")
            .field("webhooks", &self.webhooks)
            .field("jobs", &self.jobs.len())
            .finish_non_exhaustive()
    }
}

impl Oversight {
    /// Read the webhooks' secrets and build the count queries' clients.
    pub fn new(runtime: Arc<Runtime>) -> Result<Oversight, OversightError> {
        let config = &runtime.resolved.config;
        let mut problems = Vec::new();
        let mut webhooks = Vec::new();
        for (i, w) in config.alert_webhooks.iter().enumerate() {
            match w.resolve(&format!("alert_webhooks[{i}]"), &config.base_dir) {
                Ok(w) => webhooks.push(w),
                Err(p) => problems.extend(p.into_iter().map(|(place, m)| format!("{place}: {m}"))),
            }
        }
        let jobs = queries::jobs(config).map_err(OversightError::Settings)?;
        if !problems.is_empty() {
            return Err(OversightError::Settings(problems.join("; ")));
        }
        for w in &webhooks {
            runtime.metrics.oversight.register_webhook(&w.id);
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("ganzhi-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OversightError::Settings(format!("HTTP client: {e}")))?;
        Ok(Oversight {
            runtime,
            webhooks,
            jobs,
            http,
            started: Utc::now(),
        })
    }

    /// The ids of the webhooks alerts of `rule` go to.
    pub fn webhooks_for(&self, rule: &str) -> Vec<String> {
        self.webhooks
            .iter()
            .filter(|w| w.takes(rule))
            .map(|w| w.id.clone())
            .collect()
    }
}

/// A time as China time, for messages.
pub fn china_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&crate::store::oversight::china())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}
