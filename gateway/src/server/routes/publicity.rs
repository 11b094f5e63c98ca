//! Penalties' publicity (双公示): whether each penalty was made public within 7 working days of
//! its decision, counted per department and listed (overdue ones first to act on).

use crate::server::auth::Role;
use crate::server::error::{ApiError, ApiResult};
use crate::server::{page_limit, ApiQuery, Principal, Shared};
use crate::store::publicity::{china_today, PublicityFilter, PublicityStatus};
use axum::extract::State;
use axum::Json;
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{json, Value};

/// Query of `GET /api/publicity`.
#[derive(Debug, Default, Deserialize)]
pub struct PublicityQuery {
    /// Only this handling agency (credit code).
    pub agency: Option<String>,
    /// Only this status: overdue, due, late, on_time, withheld, deadline_unknown.
    pub status: Option<String>,
    /// Only decisions on or after this day (YYYY-MM-DD).
    pub from: Option<String>,
    /// Only decisions on or before this day.
    pub to: Option<String>,
    /// The day to judge on (default today in China): what was overdue then.
    pub on: Option<String>,
    /// Skip this many.
    pub offset: Option<i64>,
    /// Page size, 1..1000 (default 100).
    pub limit: Option<i64>,
}

fn day(name: &str, value: &Option<String>) -> ApiResult<Option<NaiveDate>> {
    match value.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d").map(Some).map_err(|_| {
            ApiError::bad_request(
                format!("{name} 应为 YYYY-MM-DD 日期，收到 {s:?}"),
                format!("{name} must be a date YYYY-MM-DD, got {s:?}"),
            )
        }),
    }
}

/// `GET /api/publicity`: the penalties of each department counted per publicity status, and a
/// page of the penalties the filter selects (a department sees its own sources only).
pub async fn list(
    State(state): State<Shared>,
    principal: Principal,
    ApiQuery(q): ApiQuery<PublicityQuery>,
) -> ApiResult<Json<Value>> {
    let limit = page_limit(q.limit)?;
    let status = match q.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(PublicityStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                format!("status 应为 overdue、due、late、on_time、withheld 或 deadline_unknown，收到 {s:?}"),
                format!("status must be overdue, due, late, on_time, withheld or deadline_unknown, got {s:?}"),
            )
        })?),
    };
    let today = day("on", &q.on)?.unwrap_or_else(china_today);
    let filter = PublicityFilter {
        agency: q
            .agency
            .as_ref()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
        source_ids: (principal.role == Role::Department).then(|| principal.sources.iter().cloned().collect()),
        decided_from: day("from", &q.from)?,
        decided_to: day("to", &q.to)?,
        status,
        offset: q.offset.filter(|o| *o > 0),
        limit: Some(limit),
    };
    let publicity = state.runtime.store.publicity();
    let ((items, total), agencies) = tokio::try_join!(
        publicity.publicity(&filter, today),
        publicity.publicity_by_agency(&filter, today),
    )?;
    Ok(Json(json!({
        "on": today,
        "working_days": normalizer::publicity::PUBLICITY_WORKING_DAYS,
        "agencies": agencies,
        "items": items,
        "total": total,
        "offset": filter.offset.unwrap_or(0),
        "limit": limit,
    })))
}
