//! The officer registry (执法人员名录) over HTTP: load an agency's list (the file as the body),
//! search the officers, list the versions. Admins and standards owners load and read any
//! agency's list; operators read; a department loads and reads only the agencies its sources
//! may write for (their `agencies` / `agency_regions`).

use crate::intake::officers;
use crate::server::auth::{Principal, Role};
use crate::server::error::{ApiError, ApiResult};
use crate::server::{page_limit, ApiQuery, Shared};
use crate::store::officers::{OfficerFilter, RegistryLoad};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use normalizer::officers::{parse_officers, RegistryFormat};
use normalizer::standards::CreditCode;
use serde::Deserialize;
use serde_json::{json, Value};

/// The agencies a token may see and load: `None` for every agency, else (credit codes,
/// region-code prefixes) of a department's sources.
/// A department token's agencies: credit codes and region prefixes (`None`: every agency).
type Scope = Option<(Vec<String>, Vec<String>)>;

fn scope_of(state: &Shared, principal: &Principal) -> Scope {
    if principal.role != Role::Department {
        return None;
    }
    let mut codes = Vec::new();
    let mut prefixes = Vec::new();
    for source in &state.runtime.resolved.config.sources {
        if !principal.sources.contains(&source.id) {
            continue;
        }
        let scope = source.agency_scope();
        if scope.is_open() {
            // A source that may write for any agency: so may its department here.
            return None;
        }
        codes.extend(scope.codes);
        prefixes.extend(scope.region_prefixes);
    }
    Some((codes, prefixes))
}

fn in_scope(scope: &Scope, agency: &str) -> bool {
    match scope {
        None => true,
        Some((codes, prefixes)) => {
            let region = agency.get(2..8).unwrap_or_default();
            codes.iter().any(|c| c == agency) || prefixes.iter().any(|p| region.starts_with(p.as_str()))
        }
    }
}

fn agency_param(value: Option<&str>) -> ApiResult<Option<String>> {
    match value.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(text) => CreditCode::parse(text)
            .map(|c| Some(c.as_str().to_string()))
            .map_err(|e| {
                ApiError::bad_request(
                    format!("参数 agency 不是有效的统一社会信用代码 {text:?}：{e}"),
                    format!("parameter agency is not a valid credit code {text:?}: {e}"),
                )
            }),
    }
}

/// The `agency` a listing asks for (checked as a credit code and against the token's scope) and
/// the token's scope.
fn asked_agency(state: &Shared, principal: &Principal, agency: Option<&str>) -> ApiResult<(Option<String>, Scope)> {
    let agency = agency_param(agency)?;
    let scope = scope_of(state, principal);
    if let Some(a) = &agency {
        if !in_scope(&scope, a) {
            return Err(out_of_scope(principal, a));
        }
    }
    Ok((agency, scope))
}

fn out_of_scope(principal: &Principal, agency: &str) -> ApiError {
    ApiError::forbidden(
        format!("令牌 {:?} 无权管理执法部门 {agency} 的执法人员名录", principal.name),
        format!(
            "token {:?} may not manage the officer registry of agency {agency}",
            principal.name
        ),
    )
}

/// Query of `POST /api/officers/load`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadQuery {
    /// The agency of rows naming none (and the agency emptied by an empty list).
    pub agency: Option<String>,
    /// `csv` or `json` (default: by `Content-Type`, else by the body's first character).
    pub format: Option<String>,
    /// Where the list comes from (a file name), for the versions and the audit log.
    pub origin: Option<String>,
}

/// `POST /api/officers/load`: load a registry file (CSV with Chinese or English headers, UTF-8 or
/// GBK, or JSON) as the body. Each agency named replaces its list as a new version; answers
/// 201 with the versions (counts added/removed/changed), or 422 with every bad row (line,
/// field, value) in `error.details`, nothing loaded.
pub async fn load(
    State(state): State<Shared>,
    principal: Principal,
    ApiQuery(q): ApiQuery<LoadQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let agency = agency_param(q.agency.as_deref())?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let format = match q.format.as_deref() {
        Some(f) => RegistryFormat::parse(f).ok_or_else(|| {
            ApiError::bad_request(
                format!("参数 format 应为 csv 或 json，收到 {f:?}"),
                format!("parameter format must be csv or json, got {f:?}"),
            )
        })?,
        None if content_type.contains("json") => RegistryFormat::Json,
        None if content_type.contains("csv") => RegistryFormat::Csv,
        None => RegistryFormat::sniff(&body),
    };
    let scope = scope_of(&state, &principal);
    if let Some(a) = &agency {
        if !in_scope(&scope, a) {
            return Err(out_of_scope(&principal, a));
        }
    }
    let list = match parse_officers(&body, format, agency.as_deref()) {
        Ok(list) => list,
        Err(e) => {
            let body = json!({
                "error": {
                    "code": "invalid_registry",
                    "message_zh": format!("执法人员名录有 {} 处错误，未加载", e.problems.len()),
                    "message_en": format!("the officer registry has {} problem(s); nothing was loaded", e.problems.len()),
                    "details": e.problems,
                }
            });
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response());
        }
    };
    if let Some(outside) = list.iter().find(|o| !in_scope(&scope, &o.agency_credit_code)) {
        return Err(out_of_scope(&principal, &outside.agency_credit_code));
    }
    let origin = q
        .origin
        .map(|o| o.trim().chars().take(200).collect::<String>())
        .filter(|o| !o.is_empty())
        .unwrap_or_else(|| "api".to_string());
    let load = RegistryLoad::grouped(&principal.name, &origin, list, agency.as_deref());
    let versions = officers::load(&state.runtime, &load).await?;
    let in_force = state.runtime.resolved.rules.officers.is_some();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "versions": versions, "in_force": in_force })),
    )
        .into_response())
}

/// Query of `GET /api/officers`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this agency.
    pub agency: Option<String>,
    /// Name or certificate number containing this.
    pub q: Option<String>,
    /// Skip this many.
    pub offset: Option<i64>,
    /// Page size, 1..1000 (default 100).
    pub limit: Option<i64>,
}

/// `GET /api/officers?agency=&q=`: officers by agency and certificate number, with `total`.
pub async fn list(
    State(state): State<Shared>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    let limit = page_limit(q.limit)?;
    let offset = q.offset.unwrap_or(0).max(0);
    let (agency, scope) = asked_agency(&state, &principal, q.agency.as_deref())?;
    let filter = OfficerFilter {
        agency,
        q: q.q.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
        scope,
        offset,
        limit,
    };
    let (items, total) = state.runtime.store.officers().officers_list(&filter).await?;
    Ok(Json(
        json!({ "items": items, "total": total, "offset": offset, "limit": limit }),
    ))
}

/// Query of `GET /api/officers/versions`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionsQuery {
    /// Only this agency.
    pub agency: Option<String>,
    /// Skip this many.
    pub offset: Option<i64>,
    /// Page size, 1..1000 (default 100).
    pub limit: Option<i64>,
}

/// `GET /api/officers/versions?agency=`: the loads, newest first, with their counts and `total`.
pub async fn versions(
    State(state): State<Shared>,
    principal: Principal,
    ApiQuery(q): ApiQuery<VersionsQuery>,
) -> ApiResult<Json<Value>> {
    let limit = page_limit(q.limit)?;
    let offset = q.offset.unwrap_or(0).max(0);
    let (agency, scope) = asked_agency(&state, &principal, q.agency.as_deref())?;
    let (items, total) = state
        .runtime
        .store
        .officers()
        .officer_versions(agency.as_deref(), scope.as_ref(), offset, limit)
        .await?;
    Ok(Json(
        json!({ "items": items, "total": total, "offset": offset, "limit": limit }),
    ))
}
