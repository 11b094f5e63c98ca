//! Personal data in the API's answers (个人信息脱敏): with `[personal_data]` keys, every sealed
//! value an answer carries is shown masked (`3601**********123X`), and every resident ID number
//! in clear text it carries (raw payloads) is masked too — unless the token holds the
//! `personal-data` permission and the request asks for clear text with the header
//! `X-Personal-Data: clear`; each such read is written to the audit log before it is answered
//! (no audit entry, no answer).

use super::auth::Principal;
use super::error::ApiError;
use crate::crypto::personal::{shown_text, Shown};
use crate::store::AuditEntry;
use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The request header asking for personal data in clear.
pub const CLEAR_HEADER: &str = "x-personal-data";

/// Largest answer rewritten (larger answers of a text type are refused rather than shown
/// unmasked).
const MAX_REWRITTEN: usize = 256 * 1024 * 1024;

/// Whether the request asks for personal data in clear.
pub fn wants_clear(headers: &HeaderMap) -> bool {
    headers
        .get(CLEAR_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("clear"))
}

/// 403 when the request asks for clear personal data without the permission.
pub fn check_clear(principal: &Principal, clear: bool) -> Result<(), ApiError> {
    if clear && !principal.personal_data {
        return Err(ApiError::forbidden(
            format!(
                "令牌 {:?} 无 personal-data 权限，不能查看未脱敏的个人信息",
                principal.name
            ),
            format!(
                "token {:?} lacks the personal-data permission: personal data is shown masked only",
                principal.name
            ),
        ));
    }
    Ok(())
}

fn is_text(headers: &HeaderMap) -> Option<bool> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?.to_ascii_lowercase();
    if ct.contains("json") {
        Some(true)
    } else if ct.starts_with("text/") {
        Some(false)
    } else {
        None
    }
}

/// The answer as the caller may see it (see the module docs). `what` names the request in the
/// audit log (method, path and query).
pub async fn shown(
    store: &dyn crate::store::Store,
    principal: &Principal,
    clear: bool,
    what: String,
    response: Response,
) -> Response {
    let Some(keys) = crate::crypto::personal::registered() else {
        return response;
    };
    let Some(json) = is_text(response.headers()) else {
        return response;
    };
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_REWRITTEN).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "an answer could not be read to mask its personal data");
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "personal_data_unmasked",
                "应答过大或无法读取，为保护个人信息未予返回",
                "the answer was too large or unreadable to mask its personal data, so it is not sent",
            )
            .into_response();
        }
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let how = if clear { Shown::Clear } else { Shown::Masked };
    let (shown, count) = shown_text(&keys, text, how, json);
    if clear && parts.status.is_success() {
        let entry = AuditEntry {
            actor: principal.name.clone(),
            action: "personal_data.read".into(),
            subject: what.clone(),
            detail: json!({"sealed_values_opened": count, "role": principal.role.as_str()}),
        };
        if let Err(e) = store.audit(&entry).await {
            tracing::error!(error = %e, request = %what, "a clear read of personal data could not be audited: refused");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit_unavailable",
                "审计日志无法写入，未脱敏的个人信息不予返回",
                "the audit log cannot be written, so personal data is not shown in clear",
            )
            .into_response();
        }
        tracing::info!(token = %principal.name, request = %what, values = count, "personal data read in clear");
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(shown))
}
