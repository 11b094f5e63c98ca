//! HTTP push (`POST /api/ingest/{source}`) for sources of `kind = "push"`: a department's system
//! sends its records; they are mapped, validated and committed (or quarantined) before the
//! answer, which says what became of each record, in order. Nothing is acknowledged before its
//! commit: an answer other than 200 means nothing of the body was taken.
//!
//! Bodies: JSON (one object or an array; `application/json`), JSON lines
//! (`application/x-ndjson`), XML (`application/xml` / `text/xml`; records picked by the source's
//! `xml_records` path; GBK/GB18030 by the prolog or the `charset`), CSV (`text/csv`) or a
//! spreadsheet (`.xlsx`: `application/vnd.openxmlformats-officedocument.spreadsheetml.sheet`;
//! also `.xls`, `.ods`). Text is decoded by the `charset`, else the source's `encoding`, else as
//! detected (BOM, else valid UTF-8, else GB18030). Without a `Content-Type`, the source's
//! configured `format` applies.

use crate::commit::RecordOutcome;
use crate::intake::push::{commit_push, read_body, PushError, PushLimits};
use crate::prepare::InputFormat;
use crate::server::auth::Principal;
use crate::server::error::{ApiError, ApiResult};
use crate::server::{audit, ApiPath, Shared};
use crate::store::RecordResult;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use http_body_util::BodyExt;
use serde_json::{json, Value};

/// The format and character set a `Content-Type` names (`None`: not given).
pub(crate) fn content_format(
    headers: &HeaderMap,
) -> ApiResult<(Option<InputFormat>, Option<&'static encoding_rs::Encoding>)> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok((None, None));
    };
    let text = value.to_str().unwrap_or_default().to_ascii_lowercase();
    let mut parts = text.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_string();
    let mut charset = None;
    for p in parts {
        if let Some((k, v)) = p.split_once('=') {
            if k.trim() == "charset" {
                let label = v.trim().trim_matches('"');
                charset = Some(encoding_rs::Encoding::for_label(label.as_bytes()).ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "unsupported_charset",
                        format!("不支持的字符集 {label:?}"),
                        format!("unsupported charset {label:?}"),
                    )
                })?);
            }
        }
    }
    let format = match essence.as_str() {
        "application/json" => InputFormat::Json,
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" | "application/x-jsonlines"
        | "application/jsonlines" => InputFormat::JsonLines,
        "application/xml" | "text/xml" | "application/soap+xml" => InputFormat::Xml,
        "text/csv" => InputFormat::Csv,
        XLSX_TYPE | "application/vnd.ms-excel" | "application/vnd.oasis.opendocument.spreadsheet" => {
            InputFormat::Spreadsheet
        }
        other => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("不支持的内容类型 {other:?}：请用 application/json、application/x-ndjson、application/xml、text/csv 或 {XLSX_TYPE}"),
                format!(
                    "unsupported Content-Type {other:?}: use application/json, application/x-ndjson, application/xml, text/csv or {XLSX_TYPE}"
                ),
            ))
        }
    };
    Ok((Some(format), charset))
}

/// The media type of .xlsx files.
pub const XLSX_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// How much of a body over the limit is still read (and dropped) so that the sender gets the
/// 413 answer cleanly instead of a connection reset; a larger body is cut off.
const DRAIN_BYTES: u64 = 16 * 1024 * 1024;

/// Read the body, at most `limit` bytes: 413 when it is larger.
pub(crate) async fn read_limited(mut body: Body, headers: &HeaderMap, limit: u64) -> ApiResult<Vec<u8>> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit.saturating_add(DRAIN_BYTES)) {
        return Err(ApiError::too_large(limit));
    }
    let mut bytes = Vec::new();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::bad_request(
                format!("无法读取请求体：{e}"),
                format!("cannot read the request body: {e}"),
            )
        })?;
        let Ok(data) = frame.into_data() else { continue };
        total = total.saturating_add(data.len() as u64);
        if total > limit {
            bytes = Vec::new();
            if total > limit.saturating_add(DRAIN_BYTES) {
                break;
            }
        } else {
            bytes.extend_from_slice(&data);
        }
    }
    if total > limit {
        return Err(ApiError::too_large(limit));
    }
    Ok(bytes)
}

/// The answer to a push that was not taken.
pub(crate) fn push_error(e: PushError) -> ApiError {
    match e {
        PushError::Malformed(message) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_body",
            format!("请求体格式错误，未接收任何记录：{message}"),
            format!("malformed body, nothing was taken: {message}"),
        ),
        PushError::Unreadable(message) => ApiError::bad_request(
            format!("无法读取请求体：{message}"),
            format!("cannot read the request body: {message}"),
        ),
        PushError::NoRecords => ApiError::new(
            StatusCode::BAD_REQUEST,
            "no_records",
            "请求体中没有记录",
            "the body holds no records",
        ),
        PushError::TooManyRecords(max) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_records",
            format!("一次推送最多 {max} 条记录（server.max_records_per_push），未接收任何记录：请拆分后分批推送"),
            format!("at most {max} records per push (server.max_records_per_push); nothing was taken: split the records into several pushes"),
        ),
        PushError::Undecodable { charset, offset, line } => ApiError::new(
            StatusCode::BAD_REQUEST,
            "undecodable_body",
            format!("请求体第 {line} 行（第 {offset} 字节处）不是有效的 {charset} 编码，未接收任何记录"),
            format!("the body is not valid {charset} on line {line} (byte offset {offset}); nothing was taken"),
        ),
        PushError::NoMapping(source) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no_preparer",
            format!("来源 {source:?} 没有可用的映射"),
            format!("source {source:?} has no mapping loaded"),
        ),
        PushError::Store(e) => e.into(),
        PushError::Prepare(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "prepare_failed",
            format!("记录准备失败，未接收任何记录：{e}"),
            format!("records could not be prepared, nothing was taken: {e}"),
        ),
    }
}

/// One record's answer.
pub(crate) fn result_json(outcome: &RecordOutcome) -> Value {
    let mut v = serde_json::to_value(&outcome.result).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut v {
        map.insert("record_key".into(), json!(outcome.record_key));
        let still_quarantined = matches!(&outcome.result, RecordResult::Unchanged { code } if code.is_empty());
        if matches!(outcome.result, RecordResult::Quarantined { .. }) || still_quarantined {
            map.insert("violations".into(), json!(outcome.violations));
        } else if !outcome.violations.is_empty() {
            map.insert("warnings".into(), json!(outcome.violations));
        }
    }
    v
}

/// The push source a request names, once the token's scope allows it: 404 for an unknown
/// source, 409 `not_a_push_source` for another kind (`zh` / `en`: what that source is not,
/// for the message).
pub(crate) fn push_source<'a>(
    state: &'a Shared,
    principal: &Principal,
    source: &str,
    zh: &str,
    en: &str,
) -> ApiResult<&'a crate::config::SourceConfig> {
    principal.require_source(source)?;
    let (_, source_cfg) = state
        .runtime
        .resolved
        .config
        .source(source)
        .ok_or_else(|| ApiError::not_found(format!("未知来源 {source:?}"), format!("unknown source {source:?}")))?;
    if source_cfg.kind != "push" {
        return Err(ApiError::conflict(
            "not_a_push_source",
            format!("来源 {source:?} {zh}（kind = \"push\"）"),
            format!("source {source:?} {en} (kind = \"push\")"),
        ));
    }
    Ok(source_cfg)
}

/// A push or upload body, read within the source's size limit (else 413, counted in
/// `gateway_limit_refusals_total{limit="push_body_bytes"}`) and the server's body timeout.
pub(crate) async fn read_push_body(
    state: &Shared,
    source_cfg: &crate::config::SourceConfig,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Vec<u8>> {
    let config = &state.runtime.resolved.config;
    let limit = source_cfg
        .push_settings()
        .ok()
        .and_then(|p| p.max_body_bytes)
        .unwrap_or(config.server.max_body_bytes);
    let deadline = std::time::Duration::from_secs(config.server.body_timeout_seconds);
    tokio::time::timeout(deadline, read_limited(body, headers, limit))
        .await
        .map_err(|_| ApiError::body_timeout(deadline))?
        .inspect_err(|e| {
            if e.status == StatusCode::PAYLOAD_TOO_LARGE {
                state.runtime.metrics.limit_refused("push_body_bytes");
            }
        })
}

/// The record limits of one push or upload.
pub(crate) fn push_limits(config: &crate::config::Config) -> PushLimits {
    PushLimits {
        max_records: config.server.max_records_per_push,
        max_line_bytes: usize::try_from(config.limits.max_record_bytes).unwrap_or(usize::MAX),
    }
}

/// `POST /api/ingest/{source}`: see the module docs. Department tokens push to their own
/// sources only; admins to any push source.
pub async fn push(
    State(state): State<Shared>,
    principal: Principal,
    ApiPath(source): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let config = &state.runtime.resolved.config;
    let source_cfg = push_source(&state, &principal, &source, "不是推送型来源", "is not a push source")?;
    let (format, charset) = content_format(&headers)?;
    let format = match format {
        Some(f) => f,
        None => InputFormat::parse(&source_cfg.format).unwrap_or(InputFormat::JsonLines),
    };
    let bytes = read_push_body(&state, source_cfg, &headers, body).await?;
    let limits = push_limits(config);
    let settings = crate::prepare::ReadSettings::of_source(source_cfg).unwrap_or_default();
    let items = read_body(
        &bytes,
        "push",
        format,
        source_cfg.xml_records.as_deref(),
        charset,
        &settings,
        limits,
    )
    .map_err(|e| {
        if matches!(e, PushError::TooManyRecords(_)) {
            state.runtime.metrics.limit_refused("push_records");
        }
        push_error(e)
    })?;
    let (outcomes, summary) = commit_push(&state.runtime, &source, items).await.map_err(push_error)?;
    audit(
        &state,
        &principal,
        "ingest.push",
        format!("source:{source}"),
        json!({ "summary": summary }),
    )
    .await;
    let results: Vec<Value> = outcomes.iter().map(result_json).collect();
    Ok(Json(json!({ "results": results, "summary": summary })))
}
