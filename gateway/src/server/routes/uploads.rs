//! Spreadsheet uploads (`POST /api/uploads/{source}`, the dashboard's 上传表格 page): a
//! department without an interface uploads a filled-in .xlsx (or .xls, .ods) or a CSV file to
//! one of its push sources. The rows go through the normal pipeline (mapped, validated, committed
//! or quarantined, nothing lost) before the answer, which gives per row its sheet and row
//! number, what became of it (with the unified case code when accepted) and, when refused, the
//! violations (field, rule, value, in Chinese and English).
//!
//! The body is the file itself; its `Content-Type` names the format (`text/csv` with an optional
//! `charset`, or the spreadsheet media types); size limits are those of pushes to the source.

use super::push::{content_format, push_error, push_limits, push_source, read_push_body, result_json};
use crate::intake::push::{commit_push, read_body, PushError};
use crate::prepare::encoding::{detect_bytes, display_name};
use crate::prepare::{InputFormat, ReadItem};
use crate::server::auth::Principal;
use crate::server::error::{ApiError, ApiResult};
use crate::server::{audit, ApiPath, Shared};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

/// The name of an uploaded file in record positions (`upload:行政处罚:5`, `upload:5`).
const UPLOAD_NAME: &str = "upload";

/// The sheet and row of a record position (`upload:行政处罚:5` or `upload:5` for CSV).
pub fn sheet_and_row(position: &str) -> (Option<&str>, Option<u64>) {
    let mut parts = position.rsplitn(3, ':');
    let row = parts.next().and_then(|r| r.parse::<u64>().ok());
    let middle = parts.next();
    match (middle, parts.next()) {
        (Some(sheet), Some(_)) => (Some(sheet), row),
        _ => (None, row),
    }
}

/// The position of a read item.
fn position_of(item: &ReadItem) -> String {
    match item {
        Ok(record) => record.position.clone(),
        Err(unreadable) => unreadable.position.clone(),
    }
}

/// `POST /api/uploads/{source}`: see the module docs. Department tokens upload to their own
/// sources only; admins to any push source.
pub async fn upload(
    State(state): State<Shared>,
    principal: Principal,
    ApiPath(source): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let config = &state.runtime.resolved.config;
    let source_cfg = push_source(
        &state,
        &principal,
        &source,
        "不接收上传：只有推送型来源接收表格",
        "takes no uploads: only push sources take spreadsheets",
    )?;
    let (format, charset) = content_format(&headers)?;
    let format = match format {
        Some(f @ (InputFormat::Spreadsheet | InputFormat::Csv)) => f,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("请上传 .xlsx（{}）或 CSV（text/csv）文件", super::push::XLSX_TYPE),
                format!("upload an .xlsx ({}) or a CSV (text/csv) file", super::push::XLSX_TYPE),
            ))
        }
    };
    let bytes = read_push_body(&state, source_cfg, &headers, body).await?;
    let limits = push_limits(config);
    let settings = crate::prepare::ReadSettings::of_source(source_cfg).unwrap_or_default();
    let encoding = match format {
        InputFormat::Csv => Some(display_name(
            charset
                .or(settings.encoding.fixed())
                .unwrap_or_else(|| detect_bytes(&bytes)),
        )),
        _ => None,
    };
    let items = read_body(&bytes, UPLOAD_NAME, format, None, charset, &settings, limits).map_err(|e| {
        if matches!(e, PushError::TooManyRecords(_)) {
            state.runtime.metrics.limit_refused("push_records");
        }
        upload_error(e)
    })?;
    let positions: Vec<String> = items.iter().map(position_of).collect();
    let (outcomes, summary) = commit_push(&state.runtime, &source, items)
        .await
        .map_err(upload_error)?;
    audit(
        &state,
        &principal,
        "ingest.upload",
        format!("source:{source}"),
        json!({ "summary": summary, "bytes": bytes.len() }),
    )
    .await;
    let rows: Vec<Value> = outcomes
        .iter()
        .zip(&positions)
        .map(|(outcome, position)| {
            let mut row = result_json(outcome);
            let (sheet, number) = sheet_and_row(position);
            if let Value::Object(map) = &mut row {
                map.insert("position".into(), json!(position));
                map.insert("sheet".into(), json!(sheet));
                map.insert("row".into(), json!(number));
            }
            row
        })
        .collect();
    let format_name = if format == InputFormat::Csv { "csv" } else { "xlsx" };
    Ok(Json(json!({
        "format": format_name,
        "encoding": encoding,
        "rows": rows,
        "summary": summary,
    })))
}

/// The answer to an upload that was not taken; a file without rows says so in its words.
fn upload_error(e: PushError) -> ApiError {
    match e {
        PushError::NoRecords => ApiError::new(
            StatusCode::BAD_REQUEST,
            "no_records",
            "表格中没有数据行（表头下方为空）",
            "the file holds no rows (nothing under the header row)",
        ),
        other => push_error(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_give_the_sheet_and_row_of_spreadsheets_and_the_row_of_csv() {
        assert_eq!(sheet_and_row("upload:行政处罚:5"), (Some("行政处罚"), Some(5)));
        assert_eq!(sheet_and_row("upload:12"), (None, Some(12)));
    }
}
