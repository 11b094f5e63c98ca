//! Health, readiness, metrics, the OpenAPI document, `GET /api/me`.

use crate::server::auth::Principal;
use crate::server::error::ApiResult;
use crate::server::{Shared, OPENAPI_YAML};
use crate::telemetry::DeliveryDepth;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the store answers, every AMQP sink's broker accepts a connection and every
/// AMQP source is consuming; 200 when all are, else 503, naming each check. Answered from the
/// state the background refresher keeps ([`crate::server::readiness`]): a call opens no
/// connection of its own.
pub async fn readyz(State(state): State<Shared>) -> Response {
    let report = state.readiness.current(&state.runtime).await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<Shared>) -> ApiResult<Response> {
    let depths: Vec<DeliveryDepth> = state
        .runtime
        .outbox
        .delivery_counts()
        .await?
        .into_iter()
        .map(|c| DeliveryDepth {
            sink: c.sink_id,
            status: c.status.as_str(),
            count: c.count,
        })
        .collect();
    state
        .runtime
        .metrics
        .set_source_health(&state.runtime.sources.snapshot());
    let (instances, _) = super::instances::views(&state).await?;
    let count = |wanted: &str| instances.iter().filter(|i| i.state == wanted).count() as i64;
    state
        .runtime
        .metrics
        .set_instance_counts(count("alive"), count("gone"), count("stopped"));
    let awaiting: Vec<(String, i64)> = state
        .runtime
        .store
        .supplements()
        .awaiting_counts(None)
        .await?
        .into_iter()
        .map(|c| (c.source_id, c.cases))
        .collect();
    let source_ids: Vec<String> = state
        .runtime
        .resolved
        .config
        .sources
        .iter()
        .map(|s| s.id.clone())
        .collect();
    state.runtime.metrics.set_awaiting_supplement(&source_ids, &awaiting);
    let joint = state.runtime.store.joint().joint_counts().await?;
    state
        .runtime
        .metrics
        .set_joint_candidates(joint.get("candidate").copied().unwrap_or(0));
    let overdue = state
        .runtime
        .store
        .publicity()
        .publicity_overdue(crate::store::publicity::china_today())
        .await?;
    state.runtime.metrics.set_publicity_overdue(overdue);
    let backlog = state.runtime.store.joint().joint_backlog().await?;
    state.runtime.metrics.set_joint_backlog(backlog);
    let attachments = state.runtime.store.attachments().attachment_counts().await?;
    state.runtime.metrics.attachments().set_counts(
        attachments.pending,
        attachments.stored,
        attachments.failed,
        attachments.refused,
    );
    // Reconciliation, cases off the platform, alerts (read from the store at most every 30 s).
    if let Err(e) = crate::oversight::alerts::refresh_metrics(&state.runtime).await {
        tracing::warn!(error = %e, "cannot refresh the reconciliation and alert metrics");
    }
    let text = state.runtime.metrics.render(&state.runtime.sinks(), &depths);
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// `GET /openapi.yaml`: this API's description.
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/yaml; charset=utf-8")],
        OPENAPI_YAML,
    )
        .into_response()
}

/// `GET /api/me`: the token's name, role, sources, actions and whether it may see personal data
/// in clear.
pub async fn me(principal: Principal) -> Json<Value> {
    let actions = crate::server::auth::actions_of(principal.role);
    Json(json!({
        "name": principal.name,
        "role": principal.role,
        "sources": principal.sources,
        "actions": actions,
        "personal_data": principal.personal_data,
    }))
}
