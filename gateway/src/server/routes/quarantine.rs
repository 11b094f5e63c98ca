//! The quarantine: list with filters and paging, one entry with its raw payload, replay (one or
//! by filter) through the current mapping, ignore with a reason.

use crate::intake::replay::{replay, ReplayError, ReplaySelection};
use crate::server::auth::{Principal, Role};
use crate::server::error::{ApiError, ApiResult};
use crate::server::{audit, page_limit, ApiJson, ApiPath, ApiQuery, Shared};
use crate::store::{PayloadFormat, QuarantineEntry, QuarantineFilter, QuarantineStatus, RawRecord};
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Query of `GET /api/quarantine`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Only this source.
    pub source: Option<String>,
    /// Only entries with a violation of this rule id.
    pub rule: Option<String>,
    /// `open`, `replayed` or `ignored`.
    pub status: Option<String>,
    /// Created at or after (RFC 3339, or a date `YYYY-MM-DD` meaning its start in China time).
    pub since: Option<String>,
    /// Created before (same forms).
    pub until: Option<String>,
    /// Search: the record key, the case number or the target's credit code / ID number (exact),
    /// or the target's name (contains).
    pub q: Option<String>,
    /// Only ids below this (the previous page's `next_before_id`).
    pub before_id: Option<i64>,
    /// Skip this many (page numbers: `(page - 1) * limit`).
    pub offset: Option<i64>,
    /// Page size, 1..1000 (default 100).
    pub limit: Option<i64>,
}

/// Parse a time parameter: RFC 3339, or a date (its start in China time, UTC+8).
pub fn parse_time(name: &str, value: &str) -> ApiResult<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|t| t.and_local_timezone(chrono::FixedOffset::east_opt(8 * 3600)?).single())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| {
            ApiError::bad_request(
                format!("{name} 应为 RFC 3339 时间或 YYYY-MM-DD 日期，收到 {value:?}"),
                format!("{name} must be an RFC 3339 time or a YYYY-MM-DD date, got {value:?}"),
            )
        })
}

fn parse_status(value: &str) -> ApiResult<QuarantineStatus> {
    QuarantineStatus::parse(value).ok_or_else(|| {
        ApiError::bad_request(
            format!("status 应为 open、replayed、ignored 或 superseded，收到 {value:?}"),
            format!("status must be open, replayed, ignored or superseded, got {value:?}"),
        )
    })
}

/// Query of `GET /api/quarantine/counts`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountsQuery {
    /// `open` (default), `replayed`, `ignored` or `superseded`.
    pub status: Option<String>,
}

/// How long counts are reused (the dashboard polls every few seconds; counting a million open
/// entries per rule is not free).
const COUNTS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(5);

/// `GET /api/quarantine/counts[?status=open]`: exact counts of the entries of a status, in all,
/// per source and per rule, as the store counts them (at most five seconds old). Departments
/// see their own sources only.
pub async fn counts(
    State(state): State<Shared>,
    principal: Principal,
    ApiQuery(q): ApiQuery<CountsQuery>,
) -> ApiResult<Json<Value>> {
    let status = q
        .status
        .as_deref()
        .map(parse_status)
        .transpose()?
        .unwrap_or(QuarantineStatus::Open);
    let counts = {
        let cached = state.counts_cache.lock().ok().and_then(|c| {
            c.get(status.as_str())
                .filter(|(at, _)| at.elapsed() < COUNTS_MAX_AGE)
                .cloned()
        });
        match cached {
            Some((_, counts)) => counts,
            None => {
                let counts = std::sync::Arc::new(state.runtime.store.quarantine_counts(status).await?);
                if let Ok(mut c) = state.counts_cache.lock() {
                    c.insert(
                        status.as_str(),
                        (std::time::Instant::now(), std::sync::Arc::clone(&counts)),
                    );
                }
                counts
            }
        }
    };
    let visible = |source: &str| principal.role != Role::Department || principal.sources.contains(source);
    let mut total = 0i64;
    let mut sources = serde_json::Map::new();
    for (source, n) in counts.by_source.iter().filter(|(s, _)| visible(s)) {
        total += n;
        sources.insert(source.clone(), json!(n));
    }
    let mut rules: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    for (_, rule, n) in counts.by_rule.iter().filter(|(s, _, _)| visible(s)) {
        *rules.entry(rule.as_str()).or_default() += n;
    }
    let mut rules: Vec<(&str, i64)> = rules.into_iter().collect();
    rules.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let rules: Vec<Value> = rules
        .into_iter()
        .map(|(rule, count)| json!({"rule": rule, "count": count}))
        .collect();
    Ok(Json(json!({
        "status": status.as_str(),
        "total": total,
        "sources": sources,
        "rules": rules,
    })))
}

/// A raw archived record as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RawView {
    /// Archive id.
    pub id: i64,
    /// Source id.
    pub source_id: String,
    /// Record key at the source.
    pub record_key: String,
    /// SHA-256 (hex) of the payload.
    pub content_hash: String,
    /// `json` or `xml`.
    pub format: PayloadFormat,
    /// First received.
    pub received_at: DateTime<Utc>,
    /// When the same payload was last received.
    pub last_received_at: DateTime<Utc>,
    /// How often it was received, the first time included.
    pub times_received: i32,
    /// The payload as JSON (an XML payload as its element tree), when it parses.
    pub payload: Option<Value>,
    /// The payload pretty-printed for reading: JSON indented, XML indented.
    pub payload_pretty: String,
}

fn pretty_xml(bytes: &[u8]) -> Option<String> {
    use quick_xml::events::Event;
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t.to_string(),
        Err(_) => encoding_rs::GB18030.decode(bytes).0.into_owned(),
    };
    let mut reader = quick_xml::Reader::from_str(&text);
    reader.config_mut().trim_text(true);
    let mut writer = quick_xml::Writer::new_with_indent(Vec::new(), b' ', 2);
    loop {
        match reader.read_event().ok()? {
            Event::Eof => break,
            // Never echo a DOCTYPE (the archive refuses them anyway).
            Event::DocType(_) => {}
            event => writer.write_event(event).ok()?,
        }
    }
    String::from_utf8(writer.into_inner()).ok()
}

/// The API's view of a raw record.
pub fn raw_view(raw: RawRecord) -> RawView {
    let lossy = || String::from_utf8_lossy(&raw.payload).into_owned();
    let looks_like_xml = raw.payload.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<');
    let (payload, pretty) = match raw.format {
        PayloadFormat::Json => match serde_json::from_slice::<Value>(&raw.payload) {
            Ok(v) => {
                let pretty = serde_json::to_string_pretty(&v).unwrap_or_else(|_| lossy());
                (Some(v), pretty)
            }
            Err(_) if looks_like_xml => (None, pretty_xml(&raw.payload).unwrap_or_else(lossy)),
            Err(_) => (None, lossy()),
        },
        PayloadFormat::Xml => (
            normalizer::xml_tree::parse_xml(&raw.payload, &Default::default()).ok(),
            pretty_xml(&raw.payload).unwrap_or_else(lossy),
        ),
    };
    RawView {
        id: raw.id,
        source_id: raw.source_id,
        record_key: raw.record_key,
        content_hash: raw.content_hash,
        format: raw.format,
        received_at: raw.received_at,
        last_received_at: raw.last_received_at,
        times_received: raw.times_received,
        payload,
        payload_pretty: pretty,
    }
}

/// The sources a token's filter may cover: `source` if given (checked against the token's
/// scope: another department's source answers 404), else a department's own sources, else all.
fn scoped_sources(principal: &Principal, source: Option<&str>) -> ApiResult<(Option<String>, Option<Vec<String>>)> {
    match source.filter(|s| !s.is_empty()) {
        Some(s) if !principal.covers(s) => Err(ApiError::not_found(
            format!("未找到来源 {s:?}"),
            format!("not found: source {s:?}"),
        )),
        Some(s) => Ok((Some(s.to_string()), None)),
        None if principal.role == Role::Department => Ok((None, Some(principal.sources.iter().cloned().collect()))),
        None => Ok((None, None)),
    }
}

/// `GET /api/quarantine`: entries newest first, with the exact `total` of the filter;
/// `next_before_id` continues the list (null at the end), or `offset` picks a page.
/// Department tokens see the entries of their own sources only.
pub async fn list(
    State(state): State<Shared>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    let limit = page_limit(q.limit)?;
    let (source_id, sources) = scoped_sources(&principal, q.source.as_deref())?;
    let filter = QuarantineFilter {
        source_id,
        sources,
        rule: q.rule.clone().filter(|r| !r.is_empty()),
        status: q
            .status
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(parse_status)
            .transpose()?,
        id: None,
        since: q
            .since
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|v| parse_time("since", v))
            .transpose()?,
        until: q
            .until
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|v| parse_time("until", v))
            .transpose()?,
        before_id: q.before_id,
        limit: Some(limit),
        offset: q.offset.filter(|o| *o > 0),
        search: q.q.clone().filter(|s| !s.trim().is_empty()),
    };
    let store = &state.runtime.store;
    let (items, total) = tokio::try_join!(store.quarantine_list(&filter), store.quarantine_count(&filter))?;
    let next = if items.len() as i64 == limit {
        items.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Json(json!({ "items": items, "next_before_id": next, "total": total })))
}

/// The entry, if the token may see it: another department's entry answers 404 like one that
/// does not exist (which source it belongs to is not revealed).
async fn entry_in_scope(state: &Shared, principal: &Principal, id: i64) -> ApiResult<QuarantineEntry> {
    let entry = state.runtime.store.quarantine_get(id).await?;
    if !principal.covers(&entry.source_id) {
        return Err(ApiError::not_found(
            format!("未找到：quarantine entry {id}"),
            format!("not found: quarantine entry {id}"),
        ));
    }
    Ok(entry)
}

/// `GET /api/quarantine/{id}`: the entry, every violation, its raw payload, the source fields
/// each canonical field is read from (`fields`, by the source's current mapping, so that a
/// violation at `/target/id_number` can be shown at `ZJHM` in the raw record) and, once
/// resolved, the case version it became (`case`).
pub async fn get(
    State(state): State<Shared>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    let entry = entry_in_scope(&state, &principal, id).await?;
    let raw = raw_view(state.runtime.store.raw_record(entry.raw_id).await?);
    let fields = state
        .runtime
        .preparers
        .get(&entry.source_id)
        .map(|p| p.mapping.source_fields())
        .unwrap_or_default();
    let case = entry.resolution.clone();
    Ok(Json(
        json!({ "entry": entry, "raw": raw, "fields": fields, "case": case }),
    ))
}

fn replay_error(e: ReplayError) -> ApiError {
    match e {
        ReplayError::Store(e) => e.into(),
        ReplayError::NotOpen(id) => ApiError::conflict(
            "not_open",
            format!("隔离记录 {id} 不是待处理状态"),
            format!("quarantine entry {id} is not open"),
        ),
        ReplayError::UnknownSource { id, source_id } => ApiError::conflict(
            "source_not_configured",
            format!("隔离记录 {id} 的来源 {source_id} 未在配置中"),
            format!("quarantine entry {id}: source {source_id} is not configured"),
        ),
    }
}

/// `POST /api/quarantine/{id}/replay`: run the entry again through its source's current
/// mapping. Answers the counts and the entry as it is now (`replayed` when accepted).
/// Departments replay their own entries only (another's answers 404).
pub async fn replay_one(
    State(state): State<Shared>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    entry_in_scope(&state, &principal, id).await?;
    let selection = ReplaySelection {
        id: Some(id),
        ..Default::default()
    };
    let summary = replay(
        &state.runtime.committer("replay"),
        &state.runtime.preparers.snapshot(),
        &selection,
    )
    .await
    .map_err(replay_error)?;
    audit(
        &state,
        &principal,
        "quarantine.replay",
        format!("quarantine:{id}"),
        json!({ "summary": summary }),
    )
    .await;
    let entry = state.runtime.store.quarantine_get(id).await?;
    Ok(Json(json!({ "summary": summary, "entry": entry })))
}

/// The filter of a bulk replay or ignore: open entries, by source, rule, search and dates.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkFilter {
    /// Only this source.
    pub source: Option<String>,
    /// Only entries with a violation of this rule.
    pub rule: Option<String>,
    /// Search (as `q` of the list).
    pub q: Option<String>,
    /// Created at or after (as the list's `since`).
    pub since: Option<String>,
    /// Created before.
    pub until: Option<String>,
    /// Only count what would be done (`matched`), do nothing.
    #[serde(default)]
    pub preview: bool,
    /// Why (ignore only; required there).
    pub reason: Option<String>,
}

impl BulkFilter {
    /// The selection of open entries, within the token's scope. At least one of source, rule
    /// and search is required (a bulk action over the whole quarantine is not offered).
    fn selection(&self, state: &Shared, principal: &Principal) -> ApiResult<ReplaySelection> {
        let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        let (source, rule, search) = (nonempty(&self.source), nonempty(&self.rule), nonempty(&self.q));
        if source.is_none() && rule.is_none() && search.is_none() {
            return Err(ApiError::bad_request(
                "请给出 source、rule 或 q（至少一项）",
                "give `source`, `rule` or `q` (at least one)",
            ));
        }
        if let Some(s) = &source {
            if state.runtime.resolved.config.source(s).is_none() || !principal.covers(s) {
                return Err(ApiError::not_found(
                    format!("未知来源 {s:?}"),
                    format!("unknown source {s:?}"),
                ));
            }
        }
        let (source_id, sources) = scoped_sources(principal, source.as_deref())?;
        Ok(ReplaySelection {
            id: None,
            source_id,
            rule,
            sources,
            search,
            since: nonempty(&self.since).map(|v| parse_time("since", &v)).transpose()?,
            until: nonempty(&self.until).map(|v| parse_time("until", &v)).transpose()?,
        })
    }
}

/// `POST /api/quarantine/replay` with `{"source", "rule", "q", "since", "until"}` (at least one
/// of the first three): replay every open entry matching; with `"preview": true` only count them.
pub async fn replay_many(
    State(state): State<Shared>,
    principal: Principal,
    ApiJson(body): ApiJson<BulkFilter>,
) -> ApiResult<Json<Value>> {
    if body.reason.is_some() {
        return Err(ApiError::bad_request("重放不接受 reason", "a replay takes no `reason`"));
    }
    let selection = body.selection(&state, &principal)?;
    let matched = state.runtime.store.quarantine_count(&selection.filter()).await?;
    if body.preview {
        return Ok(Json(json!({ "matched": matched })));
    }
    let summary = replay(
        &state.runtime.committer("replay"),
        &state.runtime.preparers.snapshot(),
        &selection,
    )
    .await
    .map_err(replay_error)?;
    audit(
        &state,
        &principal,
        "quarantine.replay",
        bulk_subject(&selection),
        json!({ "source": selection.source_id, "rule": selection.rule, "q": selection.search,
                "matched": matched, "summary": summary }),
    )
    .await;
    Ok(Json(json!({ "summary": summary, "matched": matched })))
}

/// The audit subject of a bulk action.
fn bulk_subject(selection: &ReplaySelection) -> String {
    match (&selection.source_id, &selection.rule, &selection.search) {
        (Some(s), _, _) => format!("source:{s}"),
        (None, Some(r), _) => format!("rule:{r}"),
        (None, None, Some(q)) => format!("search:{q}"),
        (None, None, None) => "quarantine".into(),
    }
}

/// `POST /api/quarantine/ignore` with the filter of a bulk replay and a `reason`: mark every
/// open entry matching ignored; with `"preview": true` only count them.
pub async fn ignore_many(
    State(state): State<Shared>,
    principal: Principal,
    ApiJson(body): ApiJson<BulkFilter>,
) -> ApiResult<Json<Value>> {
    let selection = body.selection(&state, &principal)?;
    let filter = selection.filter();
    if body.preview {
        let matched = state.runtime.store.quarantine_count(&filter).await?;
        return Ok(Json(json!({ "matched": matched })));
    }
    let reason = required_reason(body.reason)?;
    let ignored = state.runtime.store.quarantine_ignore_matching(&filter, &reason).await?;
    audit(
        &state,
        &principal,
        "quarantine.ignore",
        bulk_subject(&selection),
        json!({ "source": selection.source_id, "rule": selection.rule, "q": selection.search,
                "reason": reason, "ignored": ignored }),
    )
    .await;
    Ok(Json(json!({ "matched": ignored, "ignored": ignored })))
}

fn required_reason(reason: Option<String>) -> ApiResult<String> {
    reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "reason_required",
                "忽略隔离记录须说明原因（reason）",
                "ignoring a quarantine entry needs a `reason`",
            )
        })
}

/// Body of `POST /api/quarantine/{id}/ignore`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IgnoreBody {
    /// Why the entry is ignored (required, kept with the entry and in the audit log).
    pub reason: Option<String>,
}

/// `POST /api/quarantine/{id}/ignore` with `{"reason": "..."}`: mark an open entry ignored.
pub async fn ignore(
    State(state): State<Shared>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<IgnoreBody>,
) -> ApiResult<Json<Value>> {
    let reason = required_reason(body.reason)?;
    let entry = entry_in_scope(&state, &principal, id).await?;
    if entry.status != QuarantineStatus::Open {
        return Err(ApiError::conflict(
            "not_open",
            format!("隔离记录 {id} 不是待处理状态（{}）", entry.status.as_str()),
            format!("quarantine entry {id} is not open ({})", entry.status.as_str()),
        ));
    }
    state
        .runtime
        .store
        .quarantine_set_status(id, QuarantineStatus::Ignored, Some(&reason))
        .await?;
    audit(
        &state,
        &principal,
        "quarantine.ignore",
        format!("quarantine:{id}"),
        json!({ "reason": reason }),
    )
    .await;
    let entry = state.runtime.store.quarantine_get(id).await?;
    Ok(Json(json!({ "entry": entry })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(format: PayloadFormat, payload: &[u8]) -> RawRecord {
        RawRecord {
            id: 1,
            source_id: "s".into(),
            record_key: "k".into(),
            content_hash: "h".into(),
            format,
            received_at: Utc::now(),
            payload: payload.to_vec(),
            last_received_at: Utc::now(),
            times_received: 1,
        }
    }

    #[test]
    fn raw_json_is_pretty_printed_and_parsed() {
        let v = raw_view(raw(PayloadFormat::Json, br#"{"ajbh":"X1","fkje":"0.2"}"#));
        assert_eq!(v.payload.as_ref().map(|p| p["ajbh"].clone()), Some(json!("X1")));
        assert_eq!(v.payload_pretty, "{\n  \"ajbh\": \"X1\",\n  \"fkje\": \"0.2\"\n}");
    }

    #[test]
    fn raw_xml_is_indented_and_read_as_its_tree_even_in_gbk() {
        let xml = "<?xml version=\"1.0\" encoding=\"GBK\"?><case><ajbh>X1</ajbh><dsr><mc>某公司</mc></dsr></case>";
        let gbk = encoding_rs::GBK.encode(xml).0.into_owned();
        let v = raw_view(raw(PayloadFormat::Xml, &gbk));
        assert!(v.payload_pretty.contains("\n  <ajbh>X1</ajbh>"), "{}", v.payload_pretty);
        assert!(
            v.payload_pretty.contains("\n    <mc>某公司</mc>"),
            "{}",
            v.payload_pretty
        );
        assert_eq!(v.payload.as_ref().map(|p| p["case"]["ajbh"].clone()), Some(json!("X1")));
    }

    #[test]
    fn unparsable_payload_is_shown_as_text() {
        let v = raw_view(raw(PayloadFormat::Json, b"{bad"));
        assert!(v.payload.is_none());
        assert_eq!(v.payload_pretty, "{bad");
    }

    #[test]
    fn dates_are_read_as_their_start_in_china_time() {
        let t = parse_time("since", "2024-06-01").expect("date");
        assert_eq!(t.to_rfc3339(), "2024-05-31T16:00:00+00:00");
        assert!(parse_time("since", "yesterday").is_err());
    }
}
