//! Errors of the operator API: every error answer is
//! `{"error": {"code": "...", "message_zh": "...", "message_en": "..."}}` with its HTTP status.

use crate::store::StoreError;
use axum::http::header::{HeaderName, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// One error answer of the API.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `not_found`, `forbidden`.
    pub code: &'static str,
    /// Message in Chinese.
    pub message_zh: String,
    /// Message in English.
    pub message_en: String,
    /// Extra headers (`WWW-Authenticate`, `Retry-After`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with a status, a code and its two messages.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message_zh: impl Into<String>,
        message_en: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message_zh: message_zh.into(),
            message_en: message_en.into(),
            headers: Vec::new(),
        }
    }

    /// Add a header to the answer.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> ApiError {
        self.headers.push((name, value));
        self
    }

    /// 400: a parameter or body field is wrong (`what` names it, with the value).
    pub fn bad_request(what_zh: impl Into<String>, what_en: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", what_zh, what_en)
    }

    /// 404: the thing asked for does not exist.
    pub fn not_found(what_zh: impl Into<String>, what_en: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", what_zh, what_en)
    }

    /// 409: not possible in the current state.
    pub fn conflict(code: &'static str, what_zh: impl Into<String>, what_en: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, what_zh, what_en)
    }

    /// 403: the token's role or scope does not cover this.
    pub fn forbidden(what_zh: impl Into<String>, what_en: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", what_zh, what_en)
    }

    /// 413: the body is larger than `limit` bytes.
    pub fn too_large(limit: u64) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("请求体超过上限 {limit} 字节"),
            format!("request body larger than the limit of {limit} bytes"),
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message_en)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "code": self.code,
                "message_zh": self.message_zh,
                "message_en": self.message_en,
            }
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match &e {
            StoreError::NotFound(what) => ApiError::not_found(format!("未找到：{what}"), format!("not found: {what}")),
            StoreError::Conflict(what) => ApiError::conflict(
                "conflict",
                format!("当前状态不允许：{what}"),
                format!("not possible in the current state: {what}"),
            ),
            StoreError::Pool(_) | StoreError::Task(_) => {
                tracing::error!(error = %e, "store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "存储不可用，请稍后重试；未确认任何记录",
                    "the store is unavailable, try again later; nothing was acknowledged",
                )
            }
            StoreError::Postgres(pg) if pg.is_closed() || pg.code().is_none() => {
                tracing::error!(error = %e, "store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "存储不可用，请稍后重试；未确认任何记录",
                    "the store is unavailable, try again later; nothing was acknowledged",
                )
            }
            _ => {
                tracing::error!(error = %e, "store error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "store_error",
                    format!("存储错误：{e}"),
                    format!("store error: {e}"),
                )
            }
        }
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
