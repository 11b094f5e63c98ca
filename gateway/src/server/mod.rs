//! The gateway's HTTP server: the operator API (sources, quarantine, cases, deliveries), HTTP
//! push for `kind = "push"` sources, Prometheus metrics and health probes. Started by
//! `gateway run` ([`spawn`]); every handler works on the shared [`Runtime`].
//!
//! - JSON everywhere, snake_case; lists answer `{"items": [...], "next_before_id"|"next_after_id": ...}`;
//!   errors answer `{"error": {"code", "message_zh", "message_en"}}` ([`error::ApiError`]).
//! - Access: bearer tokens with roles and department scopes ([`auth`]); `/healthz`, `/readyz`
//!   and `/openapi.yaml` are open, `/metrics` is open only with `[server] metrics_public = true`.
//! - Every request is traced with its method, route, status, latency and the token's NAME
//!   (never the token); every mutating action writes an audit entry with the token name as actor.
//! - The routes are listed once, in [`route_table`]; `gateway/openapi.yaml` documents each
//!   (a test keeps them in step). The web dashboard's static files ([`dashboard`]) are served
//!   beside them, at `/` and `/dashboard/*`.

pub mod auth;
pub mod dashboard;
pub mod error;
pub mod listen;
pub mod personal;
pub mod readiness;
pub mod routes;

use crate::runtime::Runtime;
use crate::shutdown::Shutdown;
use auth::{Action, Principal, Tokens};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{self, MethodRouter};
use axum::Router;
use error::ApiError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// The OpenAPI description of this API (served on `GET /openapi.yaml`).
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// What every handler shares.
pub struct AppState {
    /// The running gateway.
    pub runtime: Arc<Runtime>,
    /// The configured tokens and their rate limiter.
    pub tokens: Tokens,
    /// The last readiness report (`/readyz`).
    pub readiness: Arc<readiness::Readiness>,
    /// Quarantine counts per status, with when they were counted.
    pub counts_cache:
        std::sync::Mutex<std::collections::HashMap<&'static str, (Instant, Arc<crate::store::QuarantineCounts>)>>,
}

/// Shared state of the handlers.
pub type Shared = Arc<AppState>;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed.
    Public,
    /// A token whose role allows the action.
    Token(Action),
    /// `/metrics`: open with `metrics_public`, else like `Token(Action::Metrics)`.
    Metrics,
    /// A signed link (`sig` in the query, checked by the handler), or else like `Token(action)`:
    /// attachment downloads.
    TokenOrSignedLink(Action),
}

/// One route: method, path (axum syntax), access, handler.
pub struct RouteDef {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The path, e.g. `/api/quarantine/{id}`.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    handler: MethodRouter<Shared>,
}

impl RouteDef {
    fn get<H, T>(path: &'static str, access: Access, handler: H) -> RouteDef
    where
        H: Handler<T, Shared>,
        T: 'static,
    {
        RouteDef {
            method: "GET",
            path,
            access,
            handler: routing::get(handler),
        }
    }

    fn post<H, T>(path: &'static str, access: Access, handler: H) -> RouteDef
    where
        H: Handler<T, Shared>,
        T: 'static,
    {
        RouteDef {
            method: "POST",
            path,
            access,
            handler: routing::post(handler),
        }
    }
}

fn routes() -> Vec<RouteDef> {
    use routes::*;
    use Access::{Public, Token};
    vec![
        RouteDef::get("/healthz", Public, health::healthz),
        RouteDef::get("/readyz", Public, health::readyz),
        RouteDef::get("/openapi.yaml", Public, health::openapi),
        RouteDef::get("/metrics", Access::Metrics, health::metrics),
        RouteDef::get("/api/me", Token(Action::Whoami), health::me),
        RouteDef::get("/api/sources", Token(Action::SourcesRead), sources::list),
        RouteDef::get("/api/instances", Token(Action::SourcesRead), instances::list),
        RouteDef::get("/api/sources/{id}", Token(Action::SourcesRead), sources::get),
        RouteDef::post("/api/sources/{id}/pull", Token(Action::SourcesControl), sources::pull),
        RouteDef::post(
            "/api/sources/{id}/resync",
            Token(Action::SourcesControl),
            sources::resync,
        ),
        RouteDef::get("/api/quarantine", Token(Action::QuarantineRead), quarantine::list),
        RouteDef::get(
            "/api/quarantine/counts",
            Token(Action::QuarantineRead),
            quarantine::counts,
        ),
        RouteDef::post(
            "/api/quarantine/replay",
            Token(Action::QuarantineReplay),
            quarantine::replay_many,
        ),
        RouteDef::post(
            "/api/quarantine/ignore",
            Token(Action::QuarantineIgnore),
            quarantine::ignore_many,
        ),
        RouteDef::get("/api/quarantine/{id}", Token(Action::QuarantineRead), quarantine::get),
        RouteDef::post(
            "/api/quarantine/{id}/replay",
            Token(Action::QuarantineReplay),
            quarantine::replay_one,
        ),
        RouteDef::post(
            "/api/quarantine/{id}/ignore",
            Token(Action::QuarantineIgnore),
            quarantine::ignore,
        ),
        RouteDef::get("/api/cases", Token(Action::CasesRead), cases::search),
        RouteDef::get("/api/cases/{unified_code}", Token(Action::CasesRead), cases::get),
        RouteDef::get("/api/cases/{unified_code}/diff", Token(Action::CasesRead), cases::diff),
        RouteDef::get(
            "/api/cases/{unified_code}/attachments",
            Token(Action::CasesRead),
            attachments::list,
        ),
        RouteDef::post(
            "/api/cases/{unified_code}/attachments/retry",
            Token(Action::DeliveriesWrite),
            attachments::retry,
        ),
        RouteDef::get(
            "/api/attachments/{sha256}",
            Access::TokenOrSignedLink(attachments::DOWNLOAD_ACTION),
            attachments::download,
        ),
        RouteDef::get("/api/records", Token(Action::RecordsRead), records::list),
        RouteDef::get("/api/supplements", Token(Action::SupplementsRead), supplements::list),
        RouteDef::get("/api/publicity", Token(Action::PublicityRead), publicity::list),
        RouteDef::get(
            "/api/supplements/{unified_code}",
            Token(Action::SupplementsRead),
            supplements::get,
        ),
        RouteDef::post(
            "/api/supplements/{unified_code}/complete",
            Token(Action::SupplementsWrite),
            supplements::complete,
        ),
        RouteDef::get("/api/audit", Token(Action::AuditRead), audit_log::list),
        RouteDef::get("/api/raw/{id}", Token(Action::RawRead), cases::raw),
        RouteDef::get(
            "/api/raw/{id}/receipt",
            Token(Action::ArchiveReceipt),
            cases::raw_receipt,
        ),
        RouteDef::get("/api/deliveries", Token(Action::DeliveriesRead), deliveries::list),
        RouteDef::post(
            "/api/deliveries/redrive",
            Token(Action::DeliveriesWrite),
            deliveries::redrive_sink,
        ),
        RouteDef::post(
            "/api/deliveries/{id}/redrive",
            Token(Action::DeliveriesWrite),
            deliveries::redrive_one,
        ),
        RouteDef::get("/api/joint-groups", Token(Action::JointRead), joint::list),
        RouteDef::get("/api/joint-groups/{id}", Token(Action::JointRead), joint::get),
        RouteDef::post("/api/joint-groups/{id}/merge", Token(Action::JointDecide), joint::merge),
        RouteDef::post(
            "/api/joint-groups/{id}/dismiss",
            Token(Action::JointDecide),
            joint::dismiss,
        ),
        RouteDef::post("/api/joint-groups/{id}/undo", Token(Action::JointDecide), joint::undo),
        RouteDef::post("/api/ingest/{source}", Token(Action::Push), push::push),
        RouteDef::post("/api/uploads/{source}", Token(Action::Push), uploads::upload),
        RouteDef::get("/api/officers", Token(Action::OfficersRead), officers::list),
        RouteDef::post("/api/officers/load", Token(Action::OfficersWrite), officers::load),
        RouteDef::get(
            "/api/officers/versions",
            Token(Action::OfficersRead),
            officers::versions,
        ),
        RouteDef::get("/api/mappings", Token(Action::Mappings), mappings::list),
        RouteDef::get(
            "/api/mappings/{source}/versions",
            Token(Action::Mappings),
            mappings::history,
        ),
        RouteDef::post(
            "/api/mappings/{source}/versions",
            Token(Action::Mappings),
            mappings::upload,
        ),
        RouteDef::get(
            "/api/mappings/{source}/versions/{v}",
            Token(Action::Mappings),
            mappings::version,
        ),
        RouteDef::post(
            "/api/mappings/{source}/versions/{v}/dry-run",
            Token(Action::Mappings),
            mappings::dry_run,
        ),
        RouteDef::post(
            "/api/mappings/{source}/versions/{v}/activate",
            Token(Action::Mappings),
            mappings::activate,
        ),
        RouteDef::post(
            "/api/mappings/{source}/rollback",
            Token(Action::Mappings),
            mappings::rollback,
        ),
        // Reconciliation (对账), cases off the platform, alerts (告警).
        RouteDef::get("/api/reconciliation", Token(Action::SourcesRead), oversight::list),
        RouteDef::post(
            "/api/reconciliation/check",
            Token(Action::SourcesControl),
            oversight::check,
        ),
        RouteDef::get("/api/off-platform", Token(Action::SourcesRead), oversight::off_platform),
        RouteDef::get("/api/alerts", Token(Action::SourcesRead), oversight::alerts),
    ]
}

/// Every route as (method, path, access), in the order they are defined.
pub fn route_table() -> Vec<(&'static str, &'static str, Access)> {
    routes().into_iter().map(|r| (r.method, r.path, r.access)).collect()
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The token table is wrong.
    #[error(transparent)]
    Tokens(#[from] auth::AuthConfigError),
    /// TLS cannot be set up from the configured files.
    #[error(transparent)]
    Tls(#[from] listen::TlsSetupError),
    /// The listen address cannot be bound.
    #[error("无法监听 / cannot listen on {listen}: {source}")]
    Bind {
        /// The address.
        listen: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The API's router on `runtime` (tokens from its `[server]` settings).
pub fn router(runtime: Arc<Runtime>) -> Result<Router, ServerError> {
    router_with(runtime, Arc::default())
}

/// [`router`], answering `/readyz` from `readiness` (kept fresh by [`readiness::spawn_refresher`]).
pub fn router_with(runtime: Arc<Runtime>, readiness: Arc<readiness::Readiness>) -> Result<Router, ServerError> {
    let server = &runtime.resolved.config.server;
    let tokens = Tokens::from_config(server, &runtime.resolved.config.base_dir)?;
    let max_body = usize::try_from(server.max_body_bytes).unwrap_or(usize::MAX);
    let request_timeout = Duration::from_secs(server.request_timeout_seconds);
    let state: Shared = Arc::new(AppState {
        runtime,
        tokens,
        readiness,
        counts_cache: std::sync::Mutex::default(),
    });
    let mut router: Router<Shared> = Router::new();
    for def in routes() {
        let mut handler = def.handler;
        if def.path == "/api/ingest/{source}" || def.path == "/api/uploads/{source}" {
            // Push and upload bodies are limited per source by the handler itself.
            handler = handler.layer(DefaultBodyLimit::disable());
        }
        if def.access != Access::Public {
            handler = handler.route_layer(middleware::from_fn_with_state(
                (Arc::clone(&state), def.access),
                authorize,
            ));
        }
        // Outermost per route, so the span knows the route and wraps the token check.
        handler = handler.route_layer(middleware::from_fn_with_state(Arc::clone(&state), trace));
        router = router.route(def.path, handler);
    }
    Ok(router
        .merge(dashboard::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(request_timeout, limit_time))
        .with_state(state))
}

/// Answer 503 when a request takes longer than `request_timeout_seconds` in all (what it was
/// doing is dropped: a push not yet committed is not taken).
async fn limit_time(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(seconds = limit.as_secs(), "request timed out");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "request_timeout",
                format!(
                    "请求处理超过 {} 秒（server.request_timeout_seconds），已中止；未确认的记录未被接收",
                    limit.as_secs()
                ),
                format!(
                    "the request took longer than {} s (server.request_timeout_seconds) and was stopped; nothing unacknowledged was taken",
                    limit.as_secs()
                ),
            )
            .into_response()
        }
    }
}

/// A running server.
pub struct ServerHandle {
    /// The address it listens on (the real port when `:0` was asked for).
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl ServerHandle {
    /// Wait until the server has stopped (after the shutdown flag was raised, open requests
    /// are finished first).
    pub async fn join(self) {
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "HTTP server failed"),
            Err(e) => tracing::error!(error = %e, "HTTP server task failed"),
        }
    }
}

/// Bind `listen` and serve the API until `shutdown` is triggered (graceful: requests in
/// progress are completed, e.g. a push body being committed).
pub async fn spawn(runtime: Arc<Runtime>, listen: &str, shutdown: Shutdown) -> Result<ServerHandle, ServerError> {
    let config = &runtime.resolved.config;
    let settings = listen::ListenSettings::from_config(&config.server, &config.base_dir)?;
    let https = settings.tls.is_some();
    let ready = Arc::new(readiness::Readiness::default());
    readiness::spawn_refresher(Arc::clone(&runtime), Arc::clone(&ready), shutdown.clone());
    let app = router_with(runtime, ready)?;
    let bind_error = |source| ServerError::Bind {
        listen: listen.to_string(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    tracing::info!(%addr, https, "operator API listening");
    let task = tokio::spawn(async move {
        listen::serve(listener, app, settings, shutdown).await;
        Ok(())
    });
    Ok(ServerHandle { addr, task })
}

/// Request tracing and counting: one span per request with method, route and (once known) the
/// token's name; one event when it is answered, with status and latency.
async fn trace(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let span = tracing::info_span!("http", method = %method, route = %route, token = tracing::field::Empty);
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "request answered"
        );
    });
    state.runtime.metrics.http_request(&method, &route, status);
    response
}

/// Authentication, rate limit and role check of a route; puts the [`Principal`] into the
/// request for the handler.
async fn authorize(State((state, access)): State<(Shared, Access)>, mut request: Request, next: Next) -> Response {
    let action = match access {
        Access::Public => return next.run(request).await,
        Access::Metrics if state.runtime.resolved.config.server.metrics_public => return next.run(request).await,
        Access::Metrics => Action::Metrics,
        Access::Token(action) => action,
        Access::TokenOrSignedLink(_)
            if !request.headers().contains_key(axum::http::header::AUTHORIZATION)
                && request
                    .uri()
                    .query()
                    .is_some_and(|q| q.split('&').any(|p| p.starts_with("sig="))) =>
        {
            return next.run(request).await
        }
        Access::TokenOrSignedLink(action) => action,
    };
    let principal = match state
        .tokens
        .authenticate(request.headers().get(axum::http::header::AUTHORIZATION))
    {
        Ok(p) => p,
        Err(e) => {
            // Only a token presented and wrong counts as a failure (a browser that has not yet
            // logged in sends none).
            let presented = request.headers().contains_key(axum::http::header::AUTHORIZATION);
            let address = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
                .filter(|_| presented);
            let answer = state.tokens.failed_from(address, e);
            if answer.status == StatusCode::TOO_MANY_REQUESTS {
                state.runtime.metrics.limit_refused("auth_failures");
            }
            tracing::info!(code = answer.code, "request refused: no valid token");
            return answer.into_response();
        }
    };
    tracing::Span::current().record("token", tracing::field::display(&principal.name));
    if let Err(e) = state.tokens.check_rate(&principal) {
        tracing::warn!(token = %principal.name, "rate limit exceeded");
        return e.into_response();
    }
    if let Err(e) = principal.require(action) {
        tracing::info!(token = %principal.name, role = principal.role.as_str(), ?action, "request refused: role");
        return e.into_response();
    }
    let clear = personal::wants_clear(request.headers());
    if let Err(e) = personal::check_clear(&principal, clear) {
        return e.into_response();
    }
    // The audit log never carries an identifier, not even one searched for.
    let what = crate::crypto::personal::mask_possible_identifiers(&format!("{} {}", request.method(), request.uri()))
        .into_owned();
    request.extensions_mut().insert(principal.clone());
    let response = next.run(request).await;
    if action == Action::Metrics {
        // Counts only: nothing personal, and the scraper gets the text as written.
        return response;
    }
    personal::shown(state.runtime.store.as_ref(), &principal, clear, what, response).await
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        "没有这个接口",
        "no such route",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "该接口不支持此方法",
        "this route does not take this method",
    )
}

/// A JSON request body: a body over the limit is 413, malformed JSON is 400 naming the error.
/// An empty body reads as `{}`.
pub struct ApiJson<T>(pub T);

impl<T> FromRequest<Shared> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Shared) -> Result<Self, Self::Rejection> {
        let server = &state.runtime.resolved.config.server;
        let limit = server.max_body_bytes;
        let deadline = Duration::from_secs(server.body_timeout_seconds);
        let read = tokio::time::timeout(deadline, axum::body::Bytes::from_request(req, state))
            .await
            .map_err(|_| ApiError::body_timeout(deadline))?;
        let bytes = read.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(limit)
            } else {
                ApiError::bad_request(
                    format!("无法读取请求体：{rejection}"),
                    format!("cannot read the request body: {rejection}"),
                )
            }
        })?;
        let text = if bytes.iter().all(u8::is_ascii_whitespace) {
            &b"{}"[..]
        } else {
            &bytes[..]
        };
        serde_json::from_slice(text).map(ApiJson).map_err(|e| {
            ApiError::bad_request(
                format!("请求体不是有效的 JSON：{e}"),
                format!("the request body is not valid JSON of the expected shape: {e}"),
            )
        })
    }
}

/// Query parameters: a malformed query string is 400 naming the problem.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| {
                ApiError::bad_request(
                    format!("查询参数错误：{}", e.body_text()),
                    format!("bad query parameters: {}", e.body_text()),
                )
            })
    }
}

/// A path parameter: one that does not parse (e.g. an id that is not a number) is 400.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| {
                ApiError::bad_request(
                    format!("路径参数错误：{}", e.body_text()),
                    format!("bad path parameter: {}", e.body_text()),
                )
            })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Principal>().cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "需要令牌",
                "a token is required",
            )
        })
    }
}

/// Write an audit entry for a mutating action; a failure is logged (the action is done).
pub async fn audit(state: &AppState, actor: &Principal, action: &str, subject: String, detail: serde_json::Value) {
    let entry = crate::store::AuditEntry {
        actor: actor.name.clone(),
        action: action.to_string(),
        subject,
        detail,
    };
    if let Err(e) = state.runtime.store.audit(&entry).await {
        tracing::error!(error = %e, action, "cannot write the audit entry");
    }
}

/// Page size from a `limit` parameter: default 100, 1..=1000.
pub fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(
            format!("limit 应在 1..1000 之间，收到 {n}"),
            format!("limit must be 1..1000, got {n}"),
        )),
    }
}
