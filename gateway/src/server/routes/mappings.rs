//! The mapping lifecycle over HTTP (standards owners and admins): list, history, one version,
//! upload, dry run, activate, roll back. Each handler calls the [`crate::lifecycle`] function
//! with the token's name as actor, so everything is audited as it is from the CLI.
//!
//! Refusals answer the usual error shape; an upload whose mapping does not load or whose
//! embedded tests fail answers 422 with `error.details` (the parse error with file, line and
//! column, or the failing tests).

use crate::lifecycle::{self, History, LifecycleError, DEFAULT_LAST_N, MAX_LAST_N};
use crate::server::auth::Principal;
use crate::server::error::ApiError;
use crate::server::{ApiJson, ApiPath, ApiQuery, Shared};
use crate::store::{MappingBundle, StoredVersion, VersionStatus};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A refused or failed lifecycle action as an API answer: the usual error shape, plus
/// `details` for uploads that do not load or whose tests fail.
#[derive(Debug)]
pub struct MappingApiError {
    /// The error answer.
    pub error: ApiError,
    /// Structured details (`error.details`).
    pub details: Option<Value>,
}

impl From<ApiError> for MappingApiError {
    fn from(error: ApiError) -> Self {
        MappingApiError { error, details: None }
    }
}

impl From<LifecycleError> for MappingApiError {
    fn from(e: LifecycleError) -> Self {
        let e = match e {
            LifecycleError::Store(store) => return ApiError::from(store).into(),
            other => other,
        };
        let (status, details) = match &e {
            LifecycleError::UnknownSource(_) | LifecycleError::VersionNotFound { .. } => (StatusCode::NOT_FOUND, None),
            LifecycleError::Invalid(m) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(json!({
                    "file": m.file,
                    "line": m.line,
                    "column": m.column,
                    "message_zh": m.message_zh,
                    "message_en": m.message_en,
                })),
            ),
            LifecycleError::TestsFailed { tests, .. } => (StatusCode::UNPROCESSABLE_ENTITY, Some(json!(tests))),
            LifecycleError::WrongMappingId { .. } | LifecycleError::VersionNotGreater { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, None)
            }
            LifecycleError::NoActiveVersion(_)
            | LifecycleError::AlreadyActive { .. }
            | LifecycleError::NotEarlier { .. }
            | LifecycleError::Contended(_) => (StatusCode::CONFLICT, None),
            LifecycleError::StoredInvalid { .. }
            | LifecycleError::Normalizer(_)
            | LifecycleError::Attachments(_)
            | LifecycleError::Store(_) => {
                tracing::error!(error = %e, "mapping lifecycle failed");
                (StatusCode::INTERNAL_SERVER_ERROR, None)
            }
        };
        let text = e.to_string();
        let (zh, en) = match text.split_once(" / ") {
            Some((zh, en)) => (zh.to_string(), en.to_string()),
            None => (text.clone(), text),
        };
        MappingApiError {
            error: ApiError::new(status, e.code(), zh, en),
            details,
        }
    }
}

impl IntoResponse for MappingApiError {
    fn into_response(self) -> Response {
        let Some(details) = self.details else {
            return self.error.into_response();
        };
        let body = json!({
            "error": {
                "code": self.error.code,
                "message_zh": self.error.message_zh,
                "message_en": self.error.message_en,
                "details": details,
            }
        });
        (self.error.status, Json(body)).into_response()
    }
}

/// Result of a mapping handler.
pub type MappingResult<T> = Result<T, MappingApiError>;

/// One source in `GET /api/mappings`.
#[derive(Debug, Clone, Serialize)]
pub struct MappingSource {
    /// Source id.
    pub source_id: String,
    /// The mapping id of its active version (else of the running mapping).
    pub mapping_id: Option<String>,
    /// The active version.
    pub active_version: Option<i64>,
    /// Its description.
    pub description: Option<String>,
    /// Its fingerprint.
    pub fingerprint: Option<String>,
    /// When it was made active.
    pub activated_at: Option<DateTime<Utc>>,
    /// By whom.
    pub activated_by: Option<String>,
    /// The highest stored version number.
    pub newest_version: Option<i64>,
    /// Stored versions.
    pub versions: usize,
    /// Stored candidate versions (uploaded, never active).
    pub candidates: usize,
}

/// `GET /api/mappings`: every configured source with its active mapping version.
pub async fn list(State(state): State<Shared>) -> MappingResult<Json<Value>> {
    let rt = &state.runtime;
    let mut items = Vec::new();
    for source in &rt.resolved.config.sources {
        let versions = rt.mappings.mapping_versions(&source.id).await.map_err(ApiError::from)?;
        let active = versions.iter().find(|v| v.status == VersionStatus::Active);
        let running = rt.preparers.get(&source.id).map(|p| p.mapping.id().to_string());
        items.push(MappingSource {
            source_id: source.id.clone(),
            mapping_id: active.map(|a| a.mapping_id.clone()).or(running),
            active_version: active.map(|a| a.version),
            description: active.map(|a| a.description.clone()),
            fingerprint: active.map(|a| a.fingerprint.clone()),
            activated_at: active.and_then(|a| a.activated_at),
            activated_by: active.and_then(|a| a.activated_by.clone()),
            newest_version: versions.last().map(|v| v.version),
            versions: versions.len(),
            candidates: versions.iter().filter(|v| v.status == VersionStatus::Candidate).count(),
        });
    }
    Ok(Json(json!({ "items": items })))
}

/// `GET /api/mappings/{source}/versions`: every version (newest first) and the audit entries.
pub async fn history(State(state): State<Shared>, ApiPath(source): ApiPath<String>) -> MappingResult<Json<History>> {
    Ok(Json(lifecycle::history(&state.runtime, &source).await?))
}

/// `GET /api/mappings/{source}/versions/{v}`: the mapping text, its code tables and its test report.
pub async fn version(
    State(state): State<Shared>,
    ApiPath((source, version)): ApiPath<(String, i64)>,
) -> MappingResult<Json<StoredVersion>> {
    if state.runtime.preparers.get(&source).is_none() {
        return Err(LifecycleError::UnknownSource(source).into());
    }
    let stored = state
        .runtime
        .mappings
        .mapping_version(&source, version)
        .await
        .map_err(ApiError::from)?
        .ok_or(LifecycleError::VersionNotFound {
            source_id: source,
            version,
        })?;
    Ok(Json(stored))
}

/// The body of an upload.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadBody {
    /// The mapping file's text (TOML).
    pub mapping: String,
    /// The code-table CSV files by the `file` name the mapping gives them.
    #[serde(default)]
    pub tables: BTreeMap<String, String>,
    /// The name used in error messages (default `mapping.toml`).
    #[serde(default)]
    pub file_name: Option<String>,
}

/// `POST /api/mappings/{source}/versions`: upload a new version (201 as a candidate; 422 when it
/// does not load, its tests fail, its id is another's or its number is not greater).
pub async fn upload(
    State(state): State<Shared>,
    principal: Principal,
    ApiPath(source): ApiPath<String>,
    ApiJson(body): ApiJson<UploadBody>,
) -> MappingResult<(StatusCode, Json<lifecycle::UploadReport>)> {
    let bundle = MappingBundle {
        file_name: body
            .file_name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| crate::store::mapping_bundle::DEFAULT_FILE_NAME.to_string()),
        mapping_toml: body.mapping,
        code_tables: body.tables,
    };
    let report = lifecycle::upload(&state.runtime, &principal.name, &source, &bundle).await?;
    Ok((StatusCode::CREATED, Json(report)))
}

/// Query of a dry run.
#[derive(Debug, Deserialize)]
pub struct DryRunQuery {
    /// How many of the latest raw records to replay (default 1000, at most 100000).
    pub last: Option<usize>,
}

/// `POST /api/mappings/{source}/versions/{v}/dry-run?last=N`: what the version would change on
/// the last N raw records of the source, compared with the active version.
pub async fn dry_run(
    State(state): State<Shared>,
    principal: Principal,
    ApiPath((source, version)): ApiPath<(String, i64)>,
    ApiQuery(query): ApiQuery<DryRunQuery>,
) -> MappingResult<Json<lifecycle::DryRunReport>> {
    let last = query.last.unwrap_or(DEFAULT_LAST_N);
    if !(1..=MAX_LAST_N).contains(&last) {
        return Err(ApiError::bad_request(
            format!("last 应在 1..{MAX_LAST_N} 之间，收到 {last}"),
            format!("last must be 1..{MAX_LAST_N}, got {last}"),
        )
        .into());
    }
    Ok(Json(
        lifecycle::dry_run(&state.runtime, &principal.name, &source, version, last).await?,
    ))
}

/// `POST /api/mappings/{source}/versions/{v}/activate`: make the version active.
pub async fn activate(
    State(state): State<Shared>,
    principal: Principal,
    ApiPath((source, version)): ApiPath<(String, i64)>,
) -> MappingResult<Json<lifecycle::ActivationReport>> {
    Ok(Json(
        lifecycle::activate(&state.runtime, &principal.name, &source, version).await?,
    ))
}

/// The body of a rollback.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// The earlier version to make active again.
    pub to: i64,
}

/// `POST /api/mappings/{source}/rollback` `{"to": v}`: make an earlier version active again.
pub async fn rollback(
    State(state): State<Shared>,
    principal: Principal,
    ApiPath(source): ApiPath<String>,
    ApiJson(body): ApiJson<RollbackBody>,
) -> MappingResult<Json<lifecycle::ActivationReport>> {
    Ok(Json(
        lifecycle::rollback(&state.runtime, &principal.name, &source, body.to).await?,
    ))
}
