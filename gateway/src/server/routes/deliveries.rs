//! Onward deliveries (the outbox): list with counts, re-drive dead ones.

use crate::server::auth::Principal;
use crate::server::error::{ApiError, ApiResult};
use crate::server::{audit, page_limit, ApiJson, ApiPath, ApiQuery, Shared};
use crate::store::StoreError;
use crate::store::{DeliveryFilter, DeliveryStatus, Redrive};
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// Query of `GET /api/deliveries`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Only this sink.
    pub sink: Option<String>,
    /// `pending`, `delivered` or `dead`.
    pub status: Option<String>,
    /// Only ids below this (the previous page's `next_before_id`).
    pub before_id: Option<i64>,
    /// Skip this many (page numbers).
    pub offset: Option<i64>,
    /// Page size, 1..1000 (default 100).
    pub limit: Option<i64>,
}

/// `GET /api/deliveries`: deliveries newest first, the counts per sink and status, and the
/// filter's exact `total`.
pub async fn list(State(state): State<Shared>, ApiQuery(q): ApiQuery<ListQuery>) -> ApiResult<Json<Value>> {
    let limit = page_limit(q.limit)?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                format!("status 应为 pending、delivered、dead、superseded 或 withheld，收到 {s:?}"),
                format!("status must be pending, delivered, dead, superseded or withheld, got {s:?}"),
            )
        })?),
    };
    let outbox = &state.runtime.outbox;
    let items = outbox
        .deliveries(&DeliveryFilter {
            sink_id: q.sink.clone().filter(|s| !s.is_empty()),
            status,
            before_id: q.before_id,
            limit: Some(limit),
            offset: q.offset.filter(|o| *o > 0),
        })
        .await?;
    let next = if items.len() as i64 == limit {
        items.last().map(|d| d.id)
    } else {
        None
    };
    let counts = outbox.delivery_counts().await?;
    // The counts are exact per sink and status, so the filter's total is their sum.
    let sink = q.sink.as_deref().filter(|s| !s.is_empty());
    let total: i64 = counts
        .iter()
        .filter(|c| sink.is_none_or(|s| c.sink_id == s) && status.is_none_or(|st| c.status == st))
        .map(|c| c.count)
        .sum();
    Ok(Json(
        json!({ "items": items, "next_before_id": next, "counts": counts, "total": total }),
    ))
}

fn redrive_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(what) => ApiError::conflict(
            "not_dead",
            format!("只能重发失败（dead）的投递：{what}"),
            format!("only dead deliveries can be re-driven: {what}"),
        ),
        other => other.into(),
    }
}

/// `POST /api/deliveries/{id}/redrive`: a dead delivery becomes pending with fresh attempts.
pub async fn redrive_one(
    State(state): State<Shared>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    let n = state
        .runtime
        .outbox
        .redrive(&Redrive::One(id))
        .await
        .map_err(redrive_error)?;
    audit(
        &state,
        &principal,
        "delivery.redrive",
        format!("delivery:{id}"),
        json!(n),
    )
    .await;
    Ok(Json(json!({ "redriven": n.redriven, "superseded": n.superseded })))
}

/// Body of `POST /api/deliveries/redrive`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedriveBody {
    /// The sink whose dead deliveries to re-drive.
    pub sink: Option<String>,
}

/// `POST /api/deliveries/redrive` with `{"sink": ".."}`: every dead delivery of the sink.
pub async fn redrive_sink(
    State(state): State<Shared>,
    principal: Principal,
    ApiJson(body): ApiJson<RedriveBody>,
) -> ApiResult<Json<Value>> {
    let sink = body
        .sink
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("请给出 sink", "give `sink`"))?;
    if !state.runtime.sinks().contains(&sink) {
        return Err(ApiError::not_found(
            format!("未知去向 {sink:?}"),
            format!("unknown sink {sink:?}"),
        ));
    }
    let n = state
        .runtime
        .outbox
        .redrive(&Redrive::AllDead { sink_id: sink.clone() })
        .await
        .map_err(redrive_error)?;
    audit(&state, &principal, "delivery.redrive", format!("sink:{sink}"), json!(n)).await;
    Ok(Json(
        json!({ "sink": sink, "redriven": n.redriven, "superseded": n.superseded }),
    ))
}
