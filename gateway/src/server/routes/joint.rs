//! Joint inspections (联合检查比对): candidate groups of inspections of one target by several
//! agencies, side by side; merge (with a lead agency), dismiss, undo, each with a reason and
//! audit-logged. Departments read the groups with an inspection of their own sources.

use crate::server::auth::{Principal, Role};
use crate::server::error::{ApiError, ApiResult};
use crate::server::{page_limit, ApiJson, ApiPath, ApiQuery, Shared};
use crate::store::joint::{Decide, GroupFilter, GroupKind, GroupStatus, JointGroup};
use crate::store::StoreError;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// Query of `GET /api/joint-groups`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `candidate`, `merged` or `dismissed`.
    pub status: Option<String>,
    /// `similar` or `declared`.
    pub kind: Option<String>,
    /// Only groups of this target (credit code or ID number).
    pub target: Option<String>,
    /// Only groups with an inspection by this agency (credit code).
    pub agency: Option<String>,
    /// Search: the target, a member's unified code, agency or joint task (exact).
    pub q: Option<String>,
    /// Skip this many.
    pub offset: Option<i64>,
    /// Page size, 1..1000 (default 100).
    pub limit: Option<i64>,
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(normalizer::standards::normalise::normalise_identifier)
}

fn department_sources(principal: &Principal) -> Option<Vec<String>> {
    (principal.role == Role::Department).then(|| principal.sources.iter().cloned().collect())
}

/// `GET /api/joint-groups`: groups by id with the filter's exact `total`, `offset` and `limit`.
pub async fn list(
    State(state): State<Shared>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    let limit = page_limit(q.limit)?;
    let offset = q.offset.unwrap_or(0).max(0);
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(GroupStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                format!("status 应为 candidate、merged 或 dismissed，收到 {s:?}"),
                format!("status must be candidate, merged or dismissed, got {s:?}"),
            )
        })?),
    };
    let kind = match q.kind.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(GroupKind::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                format!("kind 应为 similar 或 declared，收到 {s:?}"),
                format!("kind must be similar or declared, got {s:?}"),
            )
        })?),
    };
    let filter = GroupFilter {
        status,
        kind,
        target: nonempty(&q.target),
        agency: nonempty(&q.agency),
        q: q.q.clone().filter(|s| !s.trim().is_empty()),
        sources: department_sources(&principal),
        offset,
        limit,
    };
    let (items, total) = state.runtime.store.joint().joint_groups(&filter).await?;
    Ok(Json(
        json!({ "items": items, "total": total, "offset": offset, "limit": limit }),
    ))
}

/// The group, if the token may see it: a group without an inspection of a department's sources
/// answers 404 like one that does not exist.
async fn group_in_scope(state: &Shared, principal: &Principal, id: i64) -> ApiResult<JointGroup> {
    let not_found = || {
        ApiError::not_found(
            format!("未找到：联合检查组 {id}"),
            format!("not found: joint group {id}"),
        )
    };
    let group = match state.runtime.store.joint().joint_group(id).await {
        Err(StoreError::NotFound(_)) => return Err(not_found()),
        other => other?,
    };
    if principal.role == Role::Department && !group.members.iter().any(|m| principal.covers(&m.source_id)) {
        return Err(not_found());
    }
    Ok(group)
}

fn text(record: &Value, pointer: &str) -> Value {
    record.pointer(pointer).cloned().unwrap_or(Value::Null)
}

/// `GET /api/joint-groups/{id}`: the group and each member case's summary side by side (agency,
/// date, supervision item, officers, form, method, result, target name).
pub async fn get(
    State(state): State<Shared>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    let group = group_in_scope(&state, &principal, id).await?;
    let mut members = Vec::with_capacity(group.members.len());
    for m in &group.members {
        let record = match state.runtime.store.case_by_code(&m.code).await {
            Ok((case, _)) => case.record,
            Err(StoreError::NotFound(_)) => Value::Null,
            Err(e) => return Err(e.into()),
        };
        let officers: Vec<Value> = record
            .pointer("/officers")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(|o| o.get("name").cloned()).collect())
            .unwrap_or_default();
        members.push(json!({
            "unified_code": m.code,
            "source_id": m.source_id,
            "agency_credit_code": m.agency,
            "agency_name": text(&record, "/agency/name"),
            "check_date": m.check_date,
            "case_name": text(&record, "/case_name"),
            "item_code": text(&record, "/item_code"),
            "implementation_list_code": text(&record, "/implementation_list_code"),
            "officers": officers,
            "form": text(&record, "/inspection/form"),
            "method": text(&record, "/inspection/method"),
            "result": text(&record, "/inspection/result"),
            "target_name": text(&record, "/target/name"),
            "joint_task_id": m.task_id,
        }));
    }
    Ok(Json(json!({ "group": group, "members": members })))
}

/// Body of the decision routes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideBody {
    /// Why (required; kept with the decision and in the audit log).
    pub reason: Option<String>,
    /// Merge: the lead agency (牵头部门), one of the members' agencies (credit code).
    pub lead_agency: Option<String>,
}

fn required(field: &'static str, value: Option<String>, zh: &str, en: &str) -> ApiResult<String> {
    value
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "field_required",
                format!("{field}：{zh}（必填，不能为空）"),
                format!("{field}: {en} (required, not empty)"),
            )
        })
}

async fn decide(
    state: Shared,
    principal: Principal,
    id: i64,
    body: DecideBody,
    what: fn(Option<String>) -> ApiResult<Decide>,
) -> ApiResult<Json<Value>> {
    let reason = required("reason", body.reason, "须说明原因", "a reason is needed")?;
    let decide = what(body.lead_agency)?;
    let group = group_in_scope(&state, &principal, id).await?;
    if let Decide::Merge { lead_agency } = &decide {
        if !group.members.iter().any(|m| &m.agency == lead_agency) {
            return Err(ApiError::bad_request(
                format!("lead_agency：牵头部门须为本组检查的执法部门之一，收到 {lead_agency:?}"),
                format!("lead_agency: must be the agency of one of the group's inspections, got {lead_agency:?}"),
            ));
        }
    }
    let sinks = state.runtime.joint_sinks();
    let group = state
        .runtime
        .store
        .joint()
        .joint_decide(id, &decide, &principal.name, &reason, &sinks)
        .await?;
    tracing::info!(group = id, action = decide.action(), actor = %principal.name, "joint group decided");
    if let Ok(counts) = state.runtime.store.joint().joint_counts().await {
        state
            .runtime
            .metrics
            .set_joint_candidates(counts.get("candidate").copied().unwrap_or(0));
    }
    Ok(Json(json!({ "group": group })))
}

/// `POST /api/joint-groups/{id}/merge` with `{"lead_agency": "...", "reason": "..."}`: merge a
/// candidate group into one joint inspection record, delivered to every sink.
pub async fn merge(
    State(state): State<Shared>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<DecideBody>,
) -> ApiResult<Json<Value>> {
    decide(state, principal, id, body, |lead| {
        let lead_agency = required(
            "lead_agency",
            lead,
            "合并须选择牵头部门（统一社会信用代码）",
            "merging needs the lead agency's credit code",
        )?;
        Ok(Decide::Merge {
            lead_agency: normalizer::standards::normalise::normalise_identifier(&lead_agency),
        })
    })
    .await
}

/// `POST /api/joint-groups/{id}/dismiss` with `{"reason": "..."}`: not a joint inspection.
pub async fn dismiss(
    State(state): State<Shared>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<DecideBody>,
) -> ApiResult<Json<Value>> {
    decide(state, principal, id, body, |_| Ok(Decide::Dismiss)).await
}

/// `POST /api/joint-groups/{id}/undo` with `{"reason": "..."}`: a merged or dismissed group is a
/// candidate again (a merge's joint record is withdrawn at the sinks).
pub async fn undo(
    State(state): State<Shared>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<DecideBody>,
) -> ApiResult<Json<Value>> {
    decide(state, principal, id, body, |_| Ok(Decide::Undo)).await
}
