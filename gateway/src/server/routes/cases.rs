//! Cases with their versions and lineage: by unified code, by business key, by target, or
//! listed; and the raw archived records their versions came from.

use super::quarantine::{raw_view, RawView};
use crate::server::error::{ApiError, ApiResult};
use crate::server::{page_limit, ApiPath, ApiQuery, Shared};
use crate::store::{BusinessKey, CaseFilter, CaseRow, CaseVersionRow, OutboxRow, StoreError};
use axum::extract::State;
use axum::Json;
use normalizer::standards::normalise::normalise_identifier;
use normalizer::standards::CreditCode;
use normalizer::{CaseNumber, CaseType};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One version of a case with its lineage (raw record id, mapping id and version: in the
/// version's own fields) and its deliveries per sink.
#[derive(Debug, Clone, Serialize)]
pub struct VersionView {
    /// The version.
    #[serde(flatten)]
    pub version: CaseVersionRow,
    /// Its outbox deliveries, one per sink.
    pub deliveries: Vec<OutboxRow>,
}

/// A case as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CaseView {
    /// The case's current state.
    pub case: CaseRow,
    /// Every version, oldest first.
    pub versions: Vec<VersionView>,
}

async fn case_view(state: &Shared, code: &str) -> ApiResult<CaseView> {
    let (case, versions) = state.runtime.store.case_by_code(code).await.map_err(|e| match e {
        StoreError::NotFound(_) => ApiError::not_found(
            format!("没有统一编码为 {code:?} 的案件"),
            format!("no case with unified code {code:?}"),
        ),
        other => other.into(),
    })?;
    let outbox = state.runtime.store.outbox_for_case(case.id).await?;
    let versions = versions
        .into_iter()
        .map(|v| VersionView {
            // A stale record is never delivered: the deliveries of its version number belong to
            // the newer head it lost to.
            deliveries: if v.status == "stale" {
                Vec::new()
            } else {
                outbox.iter().filter(|o| o.version == v.version).cloned().collect()
            },
            version: v,
        })
        .collect();
    Ok(CaseView { case, versions })
}

/// `GET /api/cases/{unified_code}`.
pub async fn get(State(state): State<Shared>, ApiPath(code): ApiPath<String>) -> ApiResult<Json<CaseView>> {
    Ok(Json(case_view(&state, &code).await?))
}

/// Query of `GET /api/cases`.
#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    /// Business key: the handling agency's credit code (with `case_type` and `case_number`).
    pub agency_credit_code: Option<String>,
    /// Business key: `inspection`, `penalty` or `coercion`.
    pub case_type: Option<String>,
    /// Business key: the agency's case number.
    pub case_number: Option<String>,
    /// Cases whose target has this credit code (in any version).
    pub target_credit_code: Option<String>,
    /// Cases whose target has this ID number (in any version).
    pub target_id_number: Option<String>,
    /// Listing: only cases whose latest version came from this source.
    pub source: Option<String>,
    /// Paging: only cases with a larger id (the previous page's `next_after_id`).
    pub after_id: Option<i64>,
    /// Page size, 1..1000 (default 100).
    pub limit: Option<i64>,
}

/// `GET /api/cases`: by business key (`agency_credit_code` + `case_type` + `case_number`), by the
/// agency case number alone (across agencies and types), by
/// target (`target_credit_code` or `target_id_number`), or every case (optionally of one
/// `source`), in id order, each with its versions and lineage.
pub async fn search(State(state): State<Shared>, ApiQuery(q): ApiQuery<SearchQuery>) -> ApiResult<Json<Value>> {
    let limit = page_limit(q.limit)?;
    let store = &state.runtime.store;
    // The agency's case number alone lists that number's cases across agencies and types.
    let number_only = q.agency_credit_code.is_none() && q.case_type.is_none() && q.case_number.is_some();
    let key_given =
        !number_only && (q.agency_credit_code.is_some() || q.case_type.is_some() || q.case_number.is_some());
    let target = q.target_credit_code.as_deref().or(q.target_id_number.as_deref());
    let codes: Vec<(i64, String)> =
        if number_only {
            match q.case_number.as_deref().and_then(CaseNumber::parse) {
                Some(number) => store.case_codes_by_number(number.as_str(), q.after_id, limit).await?,
                None => Vec::new(),
            }
        } else if key_given {
            let (Some(agency), Some(case_type), Some(number)) = (&q.agency_credit_code, &q.case_type, &q.case_number)
            else {
                return Err(ApiError::bad_request(
                    "按业务主键查询需同时给出 agency_credit_code、case_type、case_number",
                    "a business-key lookup needs agency_credit_code, case_type and case_number together",
                ));
            };
            let case_type: CaseType = case_type.parse().map_err(|_| {
                ApiError::bad_request(
                    format!("case_type 应为 inspection、penalty 或 coercion，收到 {case_type:?}"),
                    format!("case_type must be inspection, penalty or coercion, got {case_type:?}"),
                )
            })?;
            // A code that is not a valid credit code, or a blank number, names no case.
            let key = CreditCode::parse(agency).ok().zip(CaseNumber::parse(number)).map(
                |(agency_credit_code, case_number)| BusinessKey {
                    agency_credit_code,
                    case_type,
                    case_number,
                },
            );
            let code = match &key {
                Some(key) => store.case_code_by_key(key).await?,
                None => None,
            };
            code.into_iter().map(|c| (0, c)).collect()
        } else if let Some(target) = target {
            store
                .case_codes_by_target(&normalise_identifier(target), q.after_id, limit)
                .await?
        } else {
            store
                .cases(&CaseFilter {
                    source_id: q.source.clone(),
                    after_id: q.after_id,
                    limit: Some(limit),
                })
                .await?
                .into_iter()
                .map(|c: CaseRow| (c.id, c.unified_code))
                .collect()
        };
    let next = if !key_given && codes.len() as i64 == limit {
        codes.last().map(|(id, _)| *id)
    } else {
        None
    };
    let mut items = Vec::with_capacity(codes.len());
    for (_, code) in &codes {
        items.push(case_view(&state, code).await?);
    }
    Ok(Json(json!({ "items": items, "next_after_id": next })))
}

/// `GET /api/raw/{id}`: a raw archived record (lineage of a version or a quarantine entry).
pub async fn raw(State(state): State<Shared>, ApiPath(id): ApiPath<i64>) -> ApiResult<Json<RawView>> {
    Ok(Json(raw_view(state.runtime.store.raw_record(id).await?)))
}
