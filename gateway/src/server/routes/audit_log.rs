//! The audit log: every change made through the API (replays, ignores, pushes, pulls, resyncs,
//! re-drives, mapping uploads, activations and rollbacks with their diffs), searchable.

use super::quarantine::parse_time;
use crate::server::error::ApiResult;
use crate::server::{page_limit, ApiQuery, Shared};
use crate::store::AuditFilter;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// Query of `GET /api/audit`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this actor (token name).
    pub actor: Option<String>,
    /// Only this action (`quarantine.ignore`), or a family without the dot (`mapping`).
    pub action: Option<String>,
    /// Only subjects starting with this (`quarantine:12`, `source:`).
    pub subject: Option<String>,
    /// At or after (RFC 3339 or `YYYY-MM-DD`, China time).
    pub since: Option<String>,
    /// Before.
    pub until: Option<String>,
    /// Only ids below this (the previous page's `next_before_id`).
    pub before_id: Option<i64>,
    /// Skip this many (page numbers).
    pub offset: Option<i64>,
    /// Page size, 1..1000 (default 100).
    pub limit: Option<i64>,
}

/// `GET /api/audit`: audit entries newest first with the exact `total` of the filter.
pub async fn list(State(state): State<Shared>, ApiQuery(q): ApiQuery<AuditQuery>) -> ApiResult<Json<Value>> {
    let limit = page_limit(q.limit)?;
    let nonempty = |v: &Option<String>| v.clone().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let filter = AuditFilter {
        actor: nonempty(&q.actor),
        action: nonempty(&q.action),
        subject: nonempty(&q.subject),
        since: nonempty(&q.since).map(|v| parse_time("since", &v)).transpose()?,
        until: nonempty(&q.until).map(|v| parse_time("until", &v)).transpose()?,
        before_id: q.before_id,
        offset: q.offset.filter(|o| *o > 0),
        limit: Some(limit),
    };
    let (items, total) = state.runtime.store.audit_search(&filter).await?;
    let next = if items.len() as i64 == limit {
        items.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Json(json!({ "items": items, "next_before_id": next, "total": total })))
}
