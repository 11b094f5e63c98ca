//! What became of each received record: accepted as a case version (with its code), stale,
//! quarantined (and why), ignored, superseded or unchanged. A department sees its own sources.

use super::quarantine::parse_time;
use crate::server::auth::{Principal, Role};
use crate::server::error::{ApiError, ApiResult};
use crate::server::{page_limit, ApiQuery, Shared};
use crate::store::{Outcome, RecordFilter};
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// Query of `GET /api/records`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsQuery {
    /// Only this source.
    pub source: Option<String>,
    /// Only this outcome: `accepted`, `stale`, `quarantined`, `ignored`, `superseded`, `unchanged`.
    pub outcome: Option<String>,
    /// Only this record key.
    pub q: Option<String>,
    /// Received at or after (RFC 3339 or `YYYY-MM-DD`, China time).
    pub since: Option<String>,
    /// Received before.
    pub until: Option<String>,
    /// Only archive ids below this (the previous page's `next_before_id`).
    pub before_id: Option<i64>,
    /// Skip this many (page numbers).
    pub offset: Option<i64>,
    /// Page size, 1..1000 (default 100).
    pub limit: Option<i64>,
}

/// `GET /api/records`: received records newest first, each with what became of it, and the
/// exact `total` of the filter. Department tokens see their own sources only (another source
/// answers 404).
pub async fn list(
    State(state): State<Shared>,
    principal: Principal,
    ApiQuery(q): ApiQuery<RecordsQuery>,
) -> ApiResult<Json<Value>> {
    let limit = page_limit(q.limit)?;
    let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    let source = nonempty(&q.source);
    if let Some(s) = &source {
        if !principal.covers(s) || state.runtime.resolved.config.source(s).is_none() {
            return Err(ApiError::not_found(
                format!("未找到来源 {s:?}"),
                format!("not found: source {s:?}"),
            ));
        }
    }
    let outcome = match nonempty(&q.outcome) {
        Some(o) => Some(Outcome::parse(&o).ok_or_else(|| {
            ApiError::bad_request(
                format!("outcome 应为 accepted、stale、quarantined、ignored、superseded 或 unchanged，收到 {o:?}"),
                format!("outcome must be accepted, stale, quarantined, ignored, superseded or unchanged, got {o:?}"),
            )
        })?),
        None => None,
    };
    let filter = RecordFilter {
        sources: (source.is_none() && principal.role == Role::Department)
            .then(|| principal.sources.iter().cloned().collect()),
        source_id: source,
        record_key: nonempty(&q.q).map(|k| k.trim().to_string()),
        outcome,
        since: nonempty(&q.since).map(|v| parse_time("since", &v)).transpose()?,
        until: nonempty(&q.until).map(|v| parse_time("until", &v)).transpose()?,
        before_id: q.before_id,
        offset: q.offset.filter(|o| *o > 0),
        limit: Some(limit),
    };
    let (items, total) = state.runtime.store.record_fates(&filter).await?;
    let next = if items.len() as i64 == limit {
        items.last().map(|r| r.raw_id)
    } else {
        None
    };
    Ok(Json(json!({ "items": items, "next_before_id": next, "total": total })))
}
