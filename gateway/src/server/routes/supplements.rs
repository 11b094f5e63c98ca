//! Cases awaiting supplement (待补录): listed per department, and completed by hand.
//!
//! A record whose source cannot supply a field the mapping declares `supplement = true` is
//! accepted without it; its case is listed here until its department completes it (or the
//! source sends it later). A completion is validated like any record and becomes a new version
//! of the case; the values supplied are kept and fill the same gap when the source re-sends the
//! record.

use crate::server::auth::Role;
use crate::server::error::{ApiError, ApiResult};
use crate::server::{audit, page_limit, ApiJson, ApiPath, ApiQuery, Principal, Shared};
use crate::store::supplement::{completion_batch, AwaitingCase, AwaitingFilter, NewSupplied};
use crate::store::{CaseRow, CaseVersionRow, RecordResult, StoreError};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use normalizer::supplement::listed;
use normalizer::Violation;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Query of `GET /api/supplements`.
#[derive(Debug, Default, Deserialize)]
pub struct SupplementsQuery {
    /// Only this handling agency (credit code).
    pub agency: Option<String>,
    /// Only this source.
    pub source: Option<String>,
    /// Only this record kind.
    pub case_type: Option<String>,
    /// Only cases awaiting this field (a JSON pointer, e.g. `/item_code`).
    pub field: Option<String>,
    /// Skip this many.
    pub offset: Option<i64>,
    /// Page size, 1..1000 (default 100).
    pub limit: Option<i64>,
}

/// A field awaiting supplement, with its title and the mapping's reason.
#[derive(Debug, Clone, Serialize)]
pub struct AwaitingField {
    /// JSON pointer.
    pub pointer: String,
    /// The canonical schema's title (Chinese), if any.
    pub title: Option<String>,
    /// Why the source cannot supply it (the mapping's `reason`), if the mapping still says.
    pub reason: Option<String>,
}

/// One listed case awaiting supplement.
#[derive(Debug, Clone, Serialize)]
pub struct AwaitingView {
    /// The case as listed.
    #[serde(flatten)]
    pub case: AwaitingCase,
    /// Its missing fields with titles and reasons.
    pub awaiting: Vec<AwaitingField>,
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_ref().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// The fields awaiting supplement of a case from `source`, with titles and reasons.
fn describe(state: &Shared, source: &str, pointers: &[String]) -> Vec<AwaitingField> {
    describe_with(state.runtime.preparers.get(source).as_ref(), pointers)
}

/// [`describe`] with the source's preparer (its mapping's reasons, its schemas' titles) at hand.
fn describe_with(preparer: Option<&crate::prepare::Preparer>, pointers: &[String]) -> Vec<AwaitingField> {
    pointers
        .iter()
        .map(|p| AwaitingField {
            pointer: p.clone(),
            title: preparer
                .and_then(|pr| pr.normalizer.schemas().title(p))
                .map(str::to_string),
            reason: preparer.and_then(|pr| {
                pr.mapping
                    .supplements()
                    .iter()
                    .find(|s| &s.pointer == p)
                    .map(|s| s.reason.clone())
            }),
        })
        .collect()
}

/// `GET /api/supplements`: cases awaiting supplement, oldest first, with the counts per agency
/// and source (a department sees its own sources only).
pub async fn list(
    State(state): State<Shared>,
    principal: Principal,
    ApiQuery(q): ApiQuery<SupplementsQuery>,
) -> ApiResult<Json<Value>> {
    let limit = page_limit(q.limit)?;
    let source = nonempty(&q.source);
    if let Some(s) = &source {
        if !principal.covers(s) {
            return Err(ApiError::not_found(
                format!("未找到来源 {s:?}"),
                format!("not found: source {s:?}"),
            ));
        }
    }
    let case_type = nonempty(&q.case_type);
    if let Some(t) = &case_type {
        if t.parse::<normalizer::CaseType>().is_err() {
            return Err(ApiError::bad_request(
                format!("case_type 应为 inspection、penalty、coercion 或 plan，收到 {t:?}"),
                format!("case_type must be inspection, penalty, coercion or plan, got {t:?}"),
            ));
        }
    }
    let scope: Option<Vec<String>> =
        (principal.role == Role::Department).then(|| principal.sources.iter().cloned().collect());
    let filter = AwaitingFilter {
        agency: nonempty(&q.agency),
        source_ids: scope.clone(),
        source_id: source,
        case_type,
        field: nonempty(&q.field),
        offset: q.offset.filter(|o| *o > 0),
        limit: Some(limit),
    };
    let supplements = state.runtime.store.supplements();
    let ((items, total), counts) = tokio::try_join!(
        supplements.awaiting(&filter),
        supplements.awaiting_counts(scope.as_deref()),
    )?;
    // One preparer look-up per source of the page, not per case.
    let mut preparers = std::collections::HashMap::new();
    let items: Vec<AwaitingView> = items
        .into_iter()
        .map(|case| {
            let preparer = preparers
                .entry(case.source_id.clone())
                .or_insert_with(|| state.runtime.preparers.get(&case.source_id));
            AwaitingView {
                awaiting: describe_with(preparer.as_ref(), &case.fields),
                case,
            }
        })
        .collect();
    Ok(Json(json!({
        "items": items,
        "total": total,
        "offset": filter.offset.unwrap_or(0),
        "limit": limit,
        "counts": counts,
    })))
}

/// A case as far as `principal` may see it (404 otherwise): its row and the current version.
async fn visible_case(state: &Shared, principal: &Principal, code: &str) -> ApiResult<(CaseRow, CaseVersionRow)> {
    let not_found = || {
        ApiError::not_found(
            format!("没有统一编码为 {code:?} 的案件"),
            format!("no case with unified code {code:?}"),
        )
    };
    let (case, versions) = state.runtime.store.case_by_code(code).await.map_err(|e| match e {
        StoreError::NotFound(_) => not_found(),
        other => other.into(),
    })?;
    let head = versions
        .into_iter()
        .rev()
        .find(|v| v.version == case.version && v.status != "stale")
        .ok_or_else(not_found)?;
    if !principal.covers(&head.source_id) {
        return Err(not_found());
    }
    Ok((case, head))
}

/// `GET /api/supplements/{unified_code}`: what a case awaits (fields with titles and reasons),
/// its current record, and the values supplied so far.
pub async fn get(
    State(state): State<Shared>,
    principal: Principal,
    ApiPath(code): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let (case, head) = visible_case(&state, &principal, &code).await?;
    let supplied = state.runtime.store.supplements().supplied_for_case(&code).await?;
    let awaiting = listed(&case.record, "awaiting");
    Ok(Json(json!({
        "code": case.unified_code,
        "version": case.version,
        "source_id": head.source_id,
        "agency_credit_code": case.key.agency_credit_code.as_str(),
        "case_type": case.key.case_type,
        "case_number": case.key.case_number.as_str(),
        "withdrawn": case.withdrawn,
        "awaiting": describe(&state, &head.source_id, &awaiting),
        "record": case.record,
        "supplied": supplied,
    })))
}

/// Body of `POST /api/supplements/{unified_code}/complete`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletionBody {
    /// The values, by JSON pointer (each one of the fields the case awaits).
    pub fields: Map<String, Value>,
    /// A note for the audit log.
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST /api/supplements/{unified_code}/complete`: complete fields a case awaits. The completed record
/// is validated like any record (422 with the violations when it fails) and becomes a new
/// version; the values are kept to fill re-sent records of the case.
pub async fn complete(
    State(state): State<Shared>,
    principal: Principal,
    ApiPath(code): ApiPath<String>,
    ApiJson(body): ApiJson<CompletionBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (case, head) = visible_case(&state, &principal, &code).await?;
    let awaiting = listed(&case.record, "awaiting");
    if case.withdrawn || awaiting.is_empty() {
        return Err(ApiError::conflict(
            "nothing_awaits_supplement",
            format!("案件 {code} 没有待补录的字段"),
            format!("case {code} awaits no supplement"),
        ));
    }
    if body.fields.is_empty() {
        return Err(ApiError::bad_request(
            format!("fields 为空：请填写待补录字段（{}）", awaiting.join("、")),
            format!(
                "fields is empty: give the fields awaiting supplement ({})",
                awaiting.join(", ")
            ),
        ));
    }
    let note = body.note.filter(|n| !n.trim().is_empty());
    let mut fields = Vec::with_capacity(body.fields.len());
    for (pointer, value) in body.fields {
        if !awaiting.contains(&pointer) {
            return Err(ApiError::bad_request(
                format!(
                    "字段 {pointer} 不是案件 {code} 待补录的字段（待补录：{}）；其他字段须由来源系统更正",
                    awaiting.join("、")
                ),
                format!(
                    "{pointer} is not a field case {code} awaits (awaiting: {}); other fields are corrected by the source system",
                    awaiting.join(", ")
                ),
            ));
        }
        if value.is_null() || value.as_str().is_some_and(|s| s.trim().is_empty()) {
            return Err(ApiError::bad_request(
                format!("字段 {pointer} 的值为空"),
                format!("the value of {pointer} is empty"),
            ));
        }
        fields.push((pointer, value));
    }
    let Some(preparer) = state.runtime.preparers.get(&head.source_id) else {
        return Err(ApiError::conflict(
            "source_gone",
            format!("案件 {code} 的来源 {} 已不在配置中，无法校验补录内容", head.source_id),
            format!(
                "the source {} of case {code} is no longer configured: the completion cannot be validated",
                head.source_id
            ),
        ));
    };
    // The stored record's sealed personal data is opened to validate the completed record,
    // which is sealed again when prepared.
    let mut current = case.record.clone();
    crate::crypto::personal::open_json_registered(&mut current).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "personal_data_key",
            e.to_string(),
            "the case's personal data cannot be opened with this instance's keys",
        )
    })?;
    let outcome = preparer
        .normalizer
        .complete_supplement(&current, preparer.mapping.supplements(), &fields);
    let payload = serde_json::to_vec(&json!({
        "completion_of": code,
        "version": case.version,
        "fields": fields.iter().cloned().collect::<Map<String, Value>>(),
        "actor": principal.name,
        "note": note,
    }))
    .map_err(|e| ApiError::internal(&e))?;
    let incoming = match preparer.prepare_completion(&outcome, payload, head.mapping_version, Utc::now()) {
        Ok(r) => r,
        Err(violations) => return Ok(invalid(&code, &violations)),
    };
    let business_key = outcome.key_text().unwrap_or_default();
    let supplied: Vec<NewSupplied> = fields
        .iter()
        .map(|(pointer, value)| NewSupplied {
            pointer: pointer.clone(),
            value: value.clone(),
        })
        .collect();
    let batch = completion_batch(incoming, state.runtime.sink_routes());
    let result = state
        .runtime
        .store
        .supplements()
        .commit_completion(&batch, &business_key, &supplied, &principal.name)
        .await?;
    let RecordResult::Updated { version, .. } = &result else {
        return Err(ApiError::conflict(
            "completion_not_committed",
            format!("补录未形成新版本（{result:?}）：案件可能已被更新，请刷新后重试"),
            format!(
                "the completion did not become a new version ({result:?}): the case may have changed; reload and retry"
            ),
        ));
    };
    if let Some(values) = &state.runtime.resolved.rules.supplied {
        for s in &supplied {
            values.insert(&business_key, &s.pointer, s.value.clone());
        }
    }
    let pointers: Vec<&str> = supplied.iter().map(|s| s.pointer.as_str()).collect();
    audit(
        &state,
        &principal,
        "case.supplement",
        format!("case:{code}"),
        json!({"fields": pointers, "version": version, "note": note}),
    )
    .await;
    let remaining = listed(&outcome.record, "awaiting");
    let warnings: Vec<&Violation> = outcome.violations.iter().filter(|v| !v.is_error()).collect();
    Ok((
        StatusCode::OK,
        Json(json!({
            "result": "updated",
            "code": code,
            "version": version,
            "awaiting": describe(&state, &head.source_id, &remaining),
            "warnings": warnings,
        })),
    ))
}

/// 422: the completed record does not pass validation; nothing was written.
fn invalid(code: &str, violations: &[Violation]) -> (StatusCode, Json<Value>) {
    let first = violations.first();
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({
            "error": {
                "code": "completion_invalid",
                "message_zh": format!(
                    "补录后的案件 {code} 未通过校验，未写入：{}",
                    first.map(|v| v.message_zh.as_str()).unwrap_or_default()
                ),
                "message_en": format!(
                    "case {code} as completed does not pass validation and was not written: {}",
                    first.map(|v| v.message_en.as_str()).unwrap_or_default()
                ),
            },
            "violations": violations,
        })),
    )
}
