//! Evidence attachments (证据附件): each case version's attachments with their origin and fetch
//! state, a retry of those that ran out of attempts, and the download of a stored content,
//! authorised by a token or by an expiring signed link.

use crate::server::auth::{Action, Principal};
use crate::server::error::{ApiError, ApiResult};
use crate::server::{audit, ApiPath, ApiQuery, Shared};
use crate::store::attachments::AttachmentRow;
use crate::store::StoreError;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// One attachment as the API shows it: the stored row and, once stored, a signed link.
#[derive(Debug, Clone, Serialize)]
pub struct AttachmentView {
    /// The row (origin, state, content hash and size).
    #[serde(flatten)]
    pub row: AttachmentRow,
    /// A download link signed for `link_ttl_seconds` (stored attachments only).
    pub download_url: Option<String>,
    /// When the link expires (unix seconds).
    pub link_expires_at: Option<i64>,
}

fn attachments_of(state: &Shared) -> ApiResult<&crate::attachments::Attachments> {
    state.runtime.attachments.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "attachments_unavailable",
            "附件存储未启用",
            "the attachment store is not running",
        )
    })
}

async fn case_exists(state: &Shared, code: &str) -> ApiResult<()> {
    state.runtime.store.case_by_code(code).await.map_err(|e| match e {
        StoreError::NotFound(_) => ApiError::not_found(
            format!("没有统一编码为 {code:?} 的案件"),
            format!("no case with unified code {code:?}"),
        ),
        other => other.into(),
    })?;
    Ok(())
}

/// `GET /api/cases/{unified_code}/attachments`: every version's attachments, by version and
/// position, with where each came from, its state and (stored) a signed download link.
pub async fn list(State(state): State<Shared>, ApiPath(code): ApiPath<String>) -> ApiResult<Json<serde_json::Value>> {
    case_exists(&state, &code).await?;
    let attachments = attachments_of(&state)?;
    let rows = state.runtime.store.attachments().attachments_of_case(&code).await?;
    let now = chrono::Utc::now().timestamp();
    let items: Vec<AttachmentView> = rows
        .into_iter()
        .map(|row| {
            let link = match (&row.status[..], &row.sha256) {
                ("stored", Some(sha)) => Some(attachments.signer.link(sha, now)),
                _ => None,
            };
            AttachmentView {
                download_url: link.as_ref().map(|l| l.0.clone()),
                link_expires_at: link.map(|l| l.1),
                row,
            }
        })
        .collect();
    Ok(Json(json!({ "unified_code": code, "attachments": items })))
}

/// `POST /api/cases/{unified_code}/attachments/retry`: fetch the case's failed attachments
/// again (their attempts start anew). Audit-logged.
pub async fn retry(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    ApiPath(code): ApiPath<String>,
) -> ApiResult<Json<serde_json::Value>> {
    case_exists(&state, &code).await?;
    let n = state
        .runtime
        .store
        .attachments()
        .retry_attachments(&code, chrono::Utc::now())
        .await?;
    audit(
        &state,
        &principal,
        "attachments.retry",
        code.clone(),
        json!({ "attachments": n }),
    )
    .await;
    Ok(Json(json!({ "unified_code": code, "retried": n })))
}

/// Query of the download route: a signed link's parts.
#[derive(Debug, Default, Deserialize)]
pub struct LinkQuery {
    /// When the link expires (unix seconds).
    pub expires: Option<i64>,
    /// HMAC-SHA256 over `"<sha256>\n<expires>"`, hex.
    pub sig: Option<String>,
}

/// `GET /api/attachments/{sha256}`: the stored content, streamed from the object store. With
/// `expires` and `sig` (a signed link) no token is needed; without them a token that may read
/// cases is (the router checks it).
pub async fn download(
    State(state): State<Shared>,
    ApiPath(sha256): ApiPath<String>,
    ApiQuery(q): ApiQuery<LinkQuery>,
    principal: Option<Extension<Principal>>,
) -> ApiResult<Response> {
    let attachments = attachments_of(&state)?;
    if principal.is_none() {
        let (Some(expires), Some(sig)) = (q.expires, q.sig.as_deref()) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "需要令牌或签名下载链接",
                "a token or a signed download link is required",
            ));
        };
        attachments
            .signer
            .verify(&sha256, expires, sig, chrono::Utc::now().timestamp())
            .map_err(|refused| {
                let text = refused.to_string();
                let (zh, en) = text.split_once(" / ").unwrap_or((&text, &text));
                ApiError::new(StatusCode::FORBIDDEN, "link_refused", zh, en)
            })?;
    }
    let not_found = || {
        ApiError::not_found(
            format!("没有 SHA-256 为 {sha256:?} 的附件"),
            format!("no attachment with SHA-256 {sha256:?}"),
        )
    };
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        return Err(not_found());
    }
    let object = state
        .runtime
        .store
        .attachments()
        .attachment_object(&sha256)
        .await?
        .ok_or_else(not_found)?;
    let stream = attachments
        .fetcher
        .objects()
        .read(&object.storage_key)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let body = Body::from_stream(stream.map(|part| part.map_err(std::io::Error::other)));
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&object.media_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(object.bytes.max(0) as u64));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{sha256}\"")) {
        headers.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{sha256}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    Ok(response)
}

/// The action a token needs on the download route (without a signed link).
pub const DOWNLOAD_ACTION: Action = Action::CasesRead;
