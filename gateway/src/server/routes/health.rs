//! Health, readiness, metrics, the OpenAPI document, `GET /api/me`.

use crate::server::auth::Principal;
use crate::server::error::ApiResult;
use crate::server::{Shared, OPENAPI_YAML};
use crate::telemetry::DeliveryDepth;
use adapters::sinks::secret::SecretSource;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one readiness check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// One readiness check's result.
#[derive(Debug, Serialize)]
pub struct Check {
    /// Whether it is usable.
    pub ok: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /readyz`: the store answers, and every AMQP broker of an amqp sink or source accepts a
/// connection. 200 when all are up, else 503; the answer names each check.
pub async fn readyz(State(state): State<Shared>) -> Response {
    let mut checks: BTreeMap<String, Check> = BTreeMap::new();
    let store = tokio::time::timeout(CHECK_TIMEOUT, state.runtime.store.cursor("")).await;
    checks.insert(
        "store".into(),
        match store {
            Ok(Ok(_)) => Check { ok: true, error: None },
            Ok(Err(e)) => Check {
                ok: false,
                error: Some(e.to_string()),
            },
            Err(_) => Check {
                ok: false,
                error: Some("超时 / timed out".into()),
            },
        },
    );
    let config = &state.runtime.resolved.config;
    let mut brokers: Vec<(String, toml::Table)> = Vec::new();
    for sink in config.sinks.iter().filter(|s| s.kind == "amqp") {
        brokers.push((format!("sink:{}", sink.id), sink.settings.clone()));
    }
    for source in config.sources.iter().filter(|s| s.kind == "amqp") {
        brokers.push((format!("source:{}", source.id), source.amqp.clone().unwrap_or_default()));
    }
    for (name, table) in brokers {
        checks.insert(format!("amqp:{name}"), amqp_check(&table, &config.base_dir).await);
    }
    let ready = checks.values().all(|c| c.ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "ready": ready, "checks": checks }))).into_response()
}

async fn amqp_check(table: &toml::Table, base: &Path) -> Check {
    let text = |key: &str| table.get(key).and_then(toml::Value::as_str);
    let file = text("url_file").map(PathBuf::from);
    let source = SecretSource {
        name: "url",
        inline: text("url"),
        env: text("url_env"),
        file: file.as_deref(),
    };
    let url = match source.require(base) {
        Ok(url) => url,
        Err(e) => {
            return Check {
                ok: false,
                error: Some(e),
            }
        }
    };
    let connect = lapin::Connection::connect(url.expose(), lapin::ConnectionProperties::default());
    match tokio::time::timeout(CHECK_TIMEOUT, connect).await {
        Ok(Ok(connection)) => {
            let _ = connection.close(200, "readyz".into()).await;
            Check { ok: true, error: None }
        }
        // The error text of lapin may hold the URL: name the failure, not the address.
        Ok(Err(_)) => Check {
            ok: false,
            error: Some("无法连接消息代理 / cannot connect to the broker".into()),
        },
        Err(_) => Check {
            ok: false,
            error: Some("连接消息代理超时 / connecting to the broker timed out".into()),
        },
    }
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

/// `GET /api/me`: the token's name, role and sources.
pub async fn me(principal: Principal) -> Json<Principal> {
    Json(principal)
}
