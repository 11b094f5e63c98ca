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
    /// For an internal error: the id under which its details were logged (the answer carries
    /// only the id and a generic message, never the database's own text).
    pub error_id: Option<String>,
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
            error_id: None,
        }
    }

    /// 500 for an internal error: `detail` is logged (as an error, under a new error id) and
    /// not answered; the client gets the id to quote.
    pub fn internal(detail: &dyn std::fmt::Display) -> ApiError {
        let id = new_error_id();
        tracing::error!(error_id = %id, error = %detail, "internal error");
        let mut e = ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!("网关内部错误（错误编号 {id}）：详情已记入网关日志，请向运维人员提供该编号"),
            format!(
                "internal error (error id {id}): the details are in the gateway's log; quote the id to the operators"
            ),
        );
        e.error_id = Some(id);
        e
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

    /// 408: the body did not arrive within `deadline`.
    pub fn body_timeout(deadline: std::time::Duration) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "请求体未在 {} 秒内传完（server.body_timeout_seconds），未接收任何记录",
                deadline.as_secs()
            ),
            format!(
                "the request body did not arrive within {} s (server.body_timeout_seconds); nothing was taken",
                deadline.as_secs()
            ),
        )
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
        let mut error = json!({
            "code": self.code,
            "message_zh": self.message_zh,
            "message_en": self.message_en,
        });
        if let (Some(id), Some(map)) = (&self.error_id, error.as_object_mut()) {
            map.insert("error_id".into(), json!(id));
        }
        let body = json!({ "error": error });
        let mut response = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// A short random id for an internal error, quoted by the client and found in the log.
fn new_error_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        bytes = fastrand::u64(..).to_be_bytes();
    }
    hex::encode(bytes)
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
            _ => ApiError::internal(&e),
        }
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_error_answers_an_id_and_never_the_database_text() {
        let e = ApiError::from(StoreError::Corrupt(
            "relation \"cases\" DETAIL: Key (id)=(7) secret".into(),
        ));
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        let id = e.error_id.clone().expect("an error id");
        assert_eq!(id.len(), 16);
        assert!(e.message_en.contains(&id) && e.message_zh.contains(&id));
        assert!(!e.message_en.contains("DETAIL") && !e.message_en.contains("cases"));
        let body = e.to_string();
        assert!(!body.contains("secret"), "{body}");
    }
}
