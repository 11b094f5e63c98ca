//! Reconciliation (对账), cases off the platform and alerts (告警):
//! `GET /api/reconciliation`, `POST /api/reconciliation/check`, `GET /api/off-platform`,
//! `GET /api/alerts`.

use crate::oversight::{off_platform, queries, reconcile};
use crate::server::auth::Principal;
use crate::server::error::{ApiError, ApiResult};
use crate::server::{ApiQuery, Shared};
use crate::store::oversight::day_of;
use crate::store::AuditEntry;
use axum::extract::State;
use axum::Json;
use chrono::{Duration, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

/// Query of `GET /api/reconciliation`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconciliationQuery {
    /// Only this source.
    pub source: Option<String>,
    /// Only this day (YYYY-MM-DD, China time).
    pub day: Option<String>,
    /// From this day (default: six days before `to`).
    pub from: Option<String>,
    /// To this day (default: today).
    pub to: Option<String>,
    /// Only days with a gap (`true`).
    pub gaps: Option<bool>,
}

fn day_param(name: &str, v: &str) -> ApiResult<String> {
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map(|d| d.format("%Y-%m-%d").to_string())
        .map_err(|_| {
            ApiError::bad_request(
                format!("{name} 应为日期 YYYY-MM-DD，收到 {v:?}"),
                format!("{name} must be a day YYYY-MM-DD, got {v:?}"),
            )
        })
}

fn known_source(state: &Shared, source: &Option<String>) -> ApiResult<()> {
    if let Some(s) = source {
        if state.runtime.resolved.config.source(s).is_none() {
            return Err(ApiError::not_found(
                format!("未找到来源 {s:?}"),
                format!("not found: source {s:?}"),
            ));
        }
    }
    Ok(())
}

/// `GET /api/reconciliation`: per source and day, what the source says it holds against what
/// the gateway received, accepted, quarantined and delivered, with the gaps and missing keys.
pub async fn list(State(state): State<Shared>, ApiQuery(q): ApiQuery<ReconciliationQuery>) -> ApiResult<Json<Value>> {
    known_source(&state, &q.source)?;
    let today = day_of(Utc::now());
    let (from, to) = match (&q.day, &q.from, &q.to) {
        (Some(d), _, _) => {
            let d = day_param("day", d)?;
            (d.clone(), d)
        }
        (None, from, to) => {
            let to = to.as_deref().map(|t| day_param("to", t)).transpose()?.unwrap_or(today);
            let from = match from {
                Some(f) => day_param("from", f)?,
                None => NaiveDate::parse_from_str(&to, "%Y-%m-%d")
                    .map(|d| (d - Duration::days(6)).format("%Y-%m-%d").to_string())
                    .unwrap_or_else(|_| to.clone()),
            };
            (from, to)
        }
    };
    let mut items = reconcile::report(&state.runtime, q.source.as_deref(), &from, &to).await?;
    if q.gaps == Some(true) {
        items.retain(|r| r.status == "gap");
    }
    let gaps = items.iter().filter(|r| r.status == "gap").count();
    Ok(Json(json!({ "from": from, "to": to, "gaps": gaps, "items": items })))
}

/// Query of `POST /api/reconciliation/check`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckQuery {
    /// Only this source (default: every source with a count query).
    pub source: Option<String>,
    /// The day (default: today).
    pub day: Option<String>,
}

/// `POST /api/reconciliation/check`: ask the sources' count queries now (audited).
pub async fn check(
    State(state): State<Shared>,
    principal: Principal,
    ApiQuery(q): ApiQuery<CheckQuery>,
) -> ApiResult<Json<Value>> {
    known_source(&state, &q.source)?;
    let day = match &q.day {
        Some(d) => day_param("day", d)?,
        None => day_of(Utc::now()),
    };
    let jobs = queries::jobs(&state.runtime.resolved.config).map_err(|e| ApiError::internal(&e))?;
    let jobs: Vec<_> = jobs
        .iter()
        .filter(|j| q.source.as_ref().is_none_or(|s| s == &j.source_id))
        .collect();
    if let (Some(s), true) = (&q.source, jobs.is_empty()) {
        return Err(ApiError::conflict(
            "no_count_query",
            format!("来源 {s:?} 未配置对账查询 [sources.reconcile]"),
            format!("source {s:?} has no count query ([sources.reconcile])"),
        ));
    }
    let mut claims = Vec::new();
    for job in jobs {
        claims.push(reconcile::check_and_keep(state.runtime.store.as_ref(), job, &day).await);
    }
    state
        .runtime
        .store
        .audit(&AuditEntry {
            actor: principal.name.clone(),
            action: "reconciliation.check".into(),
            subject: format!("source:{}", q.source.as_deref().unwrap_or("*")),
            detail: json!({ "day": day, "sources": claims.iter().map(|c| &c.source_id).collect::<Vec<_>>() }),
        })
        .await?;
    let items = reconcile::report(&state.runtime, q.source.as_deref(), &day, &day).await?;
    Ok(Json(json!({ "day": day, "claims": claims, "items": items })))
}

/// Query of `GET /api/off-platform`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffPlatformQuery {
    /// Only this department (an agency's credit code, or `source:<id>`).
    pub department: Option<String>,
}

/// `GET /api/off-platform`: per department, the cases not on the platform after the
/// thresholds (undelivered deliveries, quarantined records without a unified code).
pub async fn off_platform(
    State(state): State<Shared>,
    ApiQuery(q): ApiQuery<OffPlatformQuery>,
) -> ApiResult<Json<Value>> {
    let department = q.department.filter(|d| !d.trim().is_empty());
    let report = off_platform::report(&state.runtime, department.as_deref(), None).await?;
    Ok(Json(json!(report)))
}

/// Query of `GET /api/alerts`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsQuery {
    /// How many recent alerts and messages (1..500, default 50).
    pub limit: Option<i64>,
}

/// `GET /api/alerts`: the firing alerts, the recent ones (firing and resolved) and the recent
/// webhook messages with their status (pending, sent, dead) and last error.
pub async fn alerts(State(state): State<Shared>, ApiQuery(q): ApiQuery<AlertsQuery>) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            format!("limit 应在 1..500，收到 {limit}"),
            format!("limit must be 1..500, got {limit}"),
        ));
    }
    let store = state.runtime.store.oversight();
    let firing = store.alerts_firing().await?;
    let recent = store.alerts_recent(limit).await?;
    let notifications = store.notifications_recent(None, limit).await?;
    let webhooks: Vec<Value> = state
        .runtime
        .resolved
        .config
        .alert_webhooks
        .iter()
        .map(|w| json!({ "id": w.id, "kind": w.kind, "rules": w.rules }))
        .collect();
    Ok(Json(json!({
        "firing": firing,
        "recent": recent,
        "notifications": notifications,
        "webhooks": webhooks,
    })))
}
