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
    /// What a list shows of it, from its current version.
    pub summary: CaseSummary,
    /// Every version, oldest first.
    pub versions: Vec<VersionView>,
    /// Values its department supplied for fields its source cannot (待补录), oldest first.
    pub supplied: Vec<crate::store::supplement::SuppliedRow>,
}

/// The names a list shows of a case (from its current version; `None` where it has none).
#[derive(Debug, Clone, Serialize)]
pub struct CaseSummary {
    /// `/case_name`.
    pub case_name: Option<String>,
    /// `/target/name`.
    pub target_name: Option<String>,
    /// `/target/id_number`.
    pub target_id: Option<String>,
    /// `/agency/name`.
    pub agency_name: Option<String>,
}

impl CaseSummary {
    fn of(record: &Value) -> CaseSummary {
        let text = |p: &str| record.pointer(p).and_then(Value::as_str).map(str::to_string);
        CaseSummary {
            case_name: text("/case_name"),
            target_name: text("/target/name"),
            target_id: text("/target/id_number"),
            agency_name: text("/agency/name"),
        }
    }
}

async fn case_view(state: &Shared, code: &str) -> ApiResult<CaseView> {
    let (case, versions) = state.runtime.store.case_by_code(code).await.map_err(|e| match e {
        StoreError::NotFound(_) => ApiError::not_found(
            format!("没有统一编码为 {code:?} 的案件"),
            format!("no case with unified code {code:?}"),
        ),
        other => other.into(),
    })?;
    let (outbox, supplied) = tokio::try_join!(
        state.runtime.store.outbox_for_case(case.id),
        state.runtime.store.supplements().supplied_for_case(code),
    )?;
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
    Ok(CaseView {
        summary: CaseSummary::of(&case.record),
        case,
        versions,
        supplied,
    })
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
    /// Business key: `inspection`, `penalty`, `coercion` or `plan`.
    pub case_type: Option<String>,
    /// Business key: the agency's case number.
    pub case_number: Option<String>,
    /// Cases whose target has this credit code (in any version).
    pub target_credit_code: Option<String>,
    /// Cases whose target has this ID number (in any version).
    pub target_id_number: Option<String>,
    /// One search box: a unified case code, an agency case number (across agencies and
    /// types), or a target's credit code / ID number.
    pub q: Option<String>,
    /// Listing: only cases whose latest version came from this source.
    pub source: Option<String>,
    /// Listing: skip this many (page numbers; the listing is newest first when given).
    pub offset: Option<i64>,
    /// Paging: only cases with a larger id (the previous page's `next_after_id`).
    pub after_id: Option<i64>,
    /// Page size, 1..1000 (default 100).
    pub limit: Option<i64>,
}

/// How many matches a search counts before it says "at least".
const SEARCH_COUNT_CAP: i64 = 10_000;

/// `GET /api/cases`: by one search box `q` (unified code, agency case number, or target
/// identifier), by business key (`agency_credit_code` + `case_type` + `case_number`), by the
/// agency case number alone (across agencies and types), by target (`target_credit_code` or
/// `target_id_number`), or every case (optionally of one `source`), each with its versions and
/// lineage. Listing every case with `offset` pages newest first; `after_id` pages in id order.
/// `total` counts what the query selects.
pub async fn search(State(state): State<Shared>, ApiQuery(q): ApiQuery<SearchQuery>) -> ApiResult<Json<Value>> {
    let limit = page_limit(q.limit)?;
    let store = &state.runtime.store;
    if let Some(text) = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        return search_box(&state, text, q.offset.unwrap_or(0).max(0), limit).await;
    }
    // The agency's case number alone lists that number's cases across agencies and types.
    let number_only = q.agency_credit_code.is_none() && q.case_type.is_none() && q.case_number.is_some();
    let key_given =
        !number_only && (q.agency_credit_code.is_some() || q.case_type.is_some() || q.case_number.is_some());
    let target = q.target_credit_code.as_deref().or(q.target_id_number.as_deref());
    let mut total: Option<i64> = None;
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
                    format!("case_type 应为 inspection、penalty、coercion 或 plan，收到 {case_type:?}"),
                    format!("case_type must be inspection, penalty, coercion or plan, got {case_type:?}"),
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
            codes_by_target(store.as_ref(), &normalise_identifier(target), q.after_id, limit).await?
        } else {
            let filter = CaseFilter {
                source_id: q.source.clone().filter(|s| !s.is_empty()),
                after_id: q.after_id,
                limit: Some(limit),
                offset: q.offset.filter(|o| *o > 0),
                newest_first: q.offset.is_some(),
            };
            total = Some(store.case_count(&filter).await?);
            store
                .cases(&filter)
                .await?
                .into_iter()
                .map(|c: CaseRow| (c.id, c.unified_code))
                .collect()
        };
    let next = if !key_given && q.offset.is_none() && codes.len() as i64 == limit {
        codes.last().map(|(id, _)| *id)
    } else {
        None
    };
    let mut items = Vec::with_capacity(codes.len());
    for (_, code) in &codes {
        items.push(case_view(&state, code).await?);
    }
    let total = total.unwrap_or(items.len() as i64 + i64::from(next.is_some()));
    Ok(Json(json!({ "items": items, "next_after_id": next, "total": total })))
}

/// The search box: a unified code (one case), else a case number (across agencies), else a
/// target identifier; a page of the matches from `offset`, and how many there are in all.
async fn search_box(state: &Shared, text: &str, offset: i64, limit: i64) -> ApiResult<Json<Value>> {
    let store = &state.runtime.store;
    let mut codes: Vec<String> = Vec::new();
    if let Ok((case, _)) = store.case_by_code(text).await {
        codes.push(case.unified_code);
    }
    if codes.is_empty() {
        if let Some(number) = CaseNumber::parse(text) {
            codes = store
                .case_codes_by_number(number.as_str(), None, SEARCH_COUNT_CAP)
                .await?
                .into_iter()
                .map(|(_, c)| c)
                .collect();
        }
    }
    if codes.is_empty() {
        codes = codes_by_target(store.as_ref(), &normalise_identifier(text), None, SEARCH_COUNT_CAP)
            .await?
            .into_iter()
            .map(|(_, c)| c)
            .collect();
    }
    let total = codes.len() as i64;
    let mut items = Vec::new();
    for code in codes
        .iter()
        .rev()
        .skip(usize::try_from(offset).unwrap_or(0))
        .take(usize::try_from(limit).unwrap_or(100))
    {
        items.push(case_view(state, code).await?);
    }
    Ok(Json(json!({
        "items": items,
        "next_after_id": null,
        "total": total,
        "total_capped": total >= SEARCH_COUNT_CAP,
    })))
}

/// Query of `GET /api/cases/{unified_code}/diff`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// The older version (default: the one before `to`).
    pub from: Option<i32>,
    /// The newer version (default: the current one).
    pub to: Option<i32>,
}

/// `GET /api/cases/{unified_code}/diff?from=A&to=B`: what changed between two versions of a
/// case, field by field: `{"path", "before", "after"}` (a JSON pointer; `null` where absent).
pub async fn diff(
    State(state): State<Shared>,
    ApiPath(code): ApiPath<String>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> ApiResult<Json<Value>> {
    let view = case_view(&state, &code).await?;
    let to = q.to.unwrap_or(view.case.version);
    let from = q.from.unwrap_or((to - 1).max(1));
    let record_of = |n: i32| {
        view.versions
            .iter()
            .find(|v| v.version.version == n && v.version.status != "stale")
            .map(|v| &v.version.record)
            .ok_or_else(|| {
                ApiError::not_found(
                    format!("案件 {code} 没有第 {n} 版"),
                    format!("case {code} has no version {n}"),
                )
            })
    };
    let (before, after) = (record_of(from)?, record_of(to)?);
    let changes: Vec<Value> = crate::lifecycle::compare::field_diffs(before, after)
        .into_iter()
        .map(|(path, before, after)| json!({ "path": path, "before": before, "after": after }))
        .collect();
    Ok(Json(json!({
        "code": view.case.unified_code,
        "from": from,
        "to": to,
        "changes": changes,
    })))
}

/// `GET /api/raw/{id}`: a raw archived record (lineage of a version or a quarantine entry).
pub async fn raw(State(state): State<Shared>, ApiPath(id): ApiPath<i64>) -> ApiResult<Json<RawView>> {
    Ok(Json(raw_view(state.runtime.store.raw_record(id).await?)))
}

/// `GET /api/raw/{id}/receipt`: the archive receipt of a raw record (see `docs/archive.md`).
pub async fn raw_receipt(
    State(state): State<Shared>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<crate::archive::receipt::Receipt>> {
    use crate::archive::receipt::{receipt, ReceiptError};
    match receipt(state.runtime.store.archive(), id).await {
        Ok(r) => Ok(Json(r)),
        Err(ReceiptError::NotFound(_)) => Err(ApiError::not_found(
            format!("原始记录 {id} 不存在"),
            format!("no raw record {id}"),
        )),
        Err(ReceiptError::Unchained(_)) => Err(ApiError::conflict(
            "unchained",
            format!("原始记录 {id} 早于哈希链归档，无回执"),
            format!("raw record {id} was archived before the hash chain began: no receipt"),
        )),
        Err(ReceiptError::Broken { seq, raw_id }) => Err(ApiError::conflict(
            "chain_broken",
            format!("哈希链在第 {seq} 环断开（原始记录 {raw_id}），请运行 gateway archive verify"),
            format!("the hash chain is broken at link {seq} (raw record {raw_id}): run gateway archive verify"),
        )),
        Err(ReceiptError::Store(e)) => Err(e.into()),
    }
}

/// Cases whose target is `id`: as the store keeps it in clear, and (with `[personal_data]`
/// keys) sealed under each key — equal values seal equal, so a person's cases are found
/// without the number being kept in clear. In id order, after `after_id`, at most `limit`.
async fn codes_by_target(
    store: &dyn crate::store::Store,
    id: &str,
    after_id: Option<i64>,
    limit: i64,
) -> Result<Vec<(i64, String)>, crate::store::StoreError> {
    let mut found = Vec::new();
    for form in &crate::store::stored_forms(id) {
        found.extend(store.case_codes_by_target(form, after_id, limit).await?);
    }
    found.sort();
    found.dedup();
    found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(found)
}
