//! REST pull source (`kind = "rest"`, table `[sources.rest]`): GET (or POST with a JSON body
//! template) with query parameters from templates, pagination by page number, offset, cursor
//! token or next link, records found by a dotted path in the answer's envelope, a business
//! status inside an HTTP 200 checked, incremental pulls by a watermark field.
//!
//! Each record's `payload` is that record's JSON text and its `position` `page N #M` (M counted
//! within the page). A record holding bytes that were malformed in the answer's character set
//! is an [`UnparsedRecord`](super::UnparsedRecord); an answer that is not JSON at all fails the
//! run (nothing of it is skipped: the next run asks again).

use super::contract::{Page, PullMode, PullRun, PullSource, SourceError, SourceItem};
use super::http_pull;
use super::settings::{Progress, Watermark};
use crate::common::charset::{self, answer_encoding};
use crate::common::health::SourceHealth;
use crate::common::http_error::Hop;
use crate::common::json_path::{json_at, json_at_mut, scalar_text};
use crate::common::settings::{template_text, SettingsProblem};
use crate::common::template::{Escaping, Template, TemplateValue, Values};
use crate::common::text::excerpt;
use crate::http::client::{Answer, ClientSettings, SystemClients};
use async_trait::async_trait;
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE, LINK};
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Placeholders every request template knows (custom `params` add their own names).
pub const BUILTIN_PLACEHOLDERS: &[&str] = &["page", "page_size", "offset", "limit", "cursor", "since", "until"];

/// The keys of `[sources.rest]` besides the connection and incremental keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestSourceSettings {
    /// The API's URL (http or https; may carry fixed query parameters).
    pub url: String,
    /// `GET` (default) or `POST` (JSON body from `body_template`).
    #[serde(default = "default_method")]
    pub method: String,
    /// Query parameters; values are templates (`"{{since}}"`); an empty value is left out.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// POST: the JSON body template inline.
    pub body_template: Option<String>,
    /// POST: the JSON body template in a file (relative to the configuration file).
    pub body_template_file: Option<PathBuf>,
    /// Custom placeholders for `query` and the body, e.g. `{ region = "360100" }` → `{{region}}`.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Where the pagination and `since` parameters go: `query` (default for GET) or `body`
    /// (default for POST: only as placeholders of the body template).
    pub params_in: Option<String>,
    /// Character set of answers, overriding the `Content-Type` charset (`gbk`, `gb18030`, ...).
    pub encoding: Option<String>,
    /// Dotted path of the record list in the answer (default: the answer is the list).
    #[serde(default)]
    pub records_path: String,
    /// Dotted path of a business status inside the answer (e.g. `code`); default none.
    pub status_path: Option<String>,
    /// Status values meaning success (default `["0", "00", "0000", "200"]`).
    pub success_values: Option<Vec<String>>,
    /// Dotted path of the message going with a status (e.g. `msg`).
    pub message_path: Option<String>,
    /// `none` (default: one request), `page`, `offset`, `cursor` or `next_link`.
    #[serde(default = "default_pagination")]
    pub pagination: String,
    /// page: name of the page-number parameter (default `page`).
    #[serde(default = "default_page_param")]
    pub page_param: String,
    /// page: name of the page-size parameter (default `page_size`).
    #[serde(default = "default_page_size_param")]
    pub page_size_param: String,
    /// page, offset: records asked for per request (default 100).
    #[serde(default = "http_pull::default_page_size")]
    pub page_size: u32,
    /// page: number of the first page (default 1).
    #[serde(default = "http_pull::default_first_page")]
    pub first_page: i64,
    /// offset: name of the offset parameter (default `offset`).
    #[serde(default = "default_offset_param")]
    pub offset_param: String,
    /// offset: name of the limit parameter (default `limit`).
    #[serde(default = "default_limit_param")]
    pub limit_param: String,
    /// cursor: name of the parameter carrying the cursor token (default `cursor`).
    #[serde(default = "default_cursor_param")]
    pub cursor_param: String,
    /// cursor: dotted path of the next cursor token in the answer.
    pub cursor_path: Option<String>,
    /// next_link: dotted path of the next page's URL in the answer (default: the `Link`
    /// header's `rel="next"`).
    pub next_link_path: Option<String>,
    /// Dotted path of the total record count in the answer: the run ends when that many came.
    pub total_path: Option<String>,
    /// End the run at a page with fewer records than `page_size` (default true).
    #[serde(default = "http_pull::default_true")]
    pub stop_on_short_page: bool,
    /// Most pages in one run (default 10000): reaching it ends the run at its cursor when the
    /// source returns records in watermark order, else fails it without moving the cursor.
    #[serde(default = "http_pull::default_max_pages")]
    pub max_pages: u64,
    /// Name of the query parameter carrying `since` (default none: use `{{since}}`).
    pub since_param: Option<String>,
    /// Name of the query parameter carrying `until`, the run's start (default none).
    pub until_param: Option<String>,
}

fn default_method() -> String {
    "GET".into()
}
fn default_pagination() -> String {
    "none".into()
}
fn default_page_param() -> String {
    "page".into()
}
fn default_page_size_param() -> String {
    "page_size".into()
}
fn default_offset_param() -> String {
    "offset".into()
}
fn default_limit_param() -> String {
    "limit".into()
}
fn default_cursor_param() -> String {
    "cursor".into()
}

/// Pagination modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pagination {
    None,
    Page,
    Offset,
    Cursor,
    NextLink,
}

/// How a REST source asks for pages and reads the answers: its settings, checked.
#[derive(Debug)]
struct RestPullPlan {
    method: Method,
    url: Url,
    query: Vec<(String, Template)>,
    body: Option<Template>,
    params: Values,
    params_in_query: bool,
    encoding: Option<&'static encoding_rs::Encoding>,
    pagination: Pagination,
    status: Option<http_pull::BusinessStatus>,
    watermark: Watermark,
}

impl http_pull::PullPlan for RestPullPlan {
    fn url(&self) -> &Url {
        &self.url
    }
}

impl RestSourceSettings {
    /// Check the own keys, given the checked watermark keys, into the pull plan; every
    /// problem names its key.
    fn plan(&self, base: &Path, watermark: Option<&Watermark>) -> Result<RestPullPlan, Vec<SettingsProblem>> {
        let mut problems = Vec::new();
        let method = match self.method.to_ascii_uppercase().as_str() {
            "GET" => Method::GET,
            "POST" => Method::POST,
            other => {
                problems.push(SettingsProblem::new(
                    "method",
                    format!("方法应为 GET 或 POST / method must be GET or POST, got {other:?}"),
                ));
                Method::GET
            }
        };
        let url = http_pull::http_url(&self.url, &mut problems);
        let known = http_pull::known_placeholders(BUILTIN_PLACEHOLDERS, &self.params, true, &mut problems);
        let mut query = Vec::new();
        for (name, value) in &self.query {
            match Template::parse(value, Escaping::Plain, &known) {
                Ok(t) => query.push((name.clone(), t)),
                Err(e) => problems.push(SettingsProblem::new(format!("query.{name}"), e)),
            }
        }
        let body_key = if self.body_template_file.is_some() {
            "body_template_file"
        } else {
            "body_template"
        };
        let body_text = template_text(
            self.body_template.as_ref(),
            self.body_template_file.as_ref(),
            ("body_template", "body_template_file"),
            base,
        )
        .unwrap_or_else(|p| {
            problems.push(p);
            None
        });
        let body = match body_text.map(|t| Template::parse(&t, Escaping::Json, &known)) {
            None => None,
            Some(Err(e)) => {
                problems.push(SettingsProblem::new(body_key, e));
                None
            }
            Some(Ok(t)) => {
                let mut sample = http_pull::sample_values(&known);
                sample.insert("page".into(), TemplateValue::Number(1));
                if let Err(e) = serde_json::from_str::<Value>(&t.render(&sample)) {
                    problems.push(SettingsProblem::new(
                        body_key,
                        format!("模板生成的不是合法 JSON / the template does not give valid JSON: {e}"),
                    ));
                }
                Some(t)
            }
        };
        if method == Method::GET && body.is_some() {
            problems.push(SettingsProblem::new(
                body_key,
                "GET 请求不带正文，请设 method = \"POST\" / a GET request has no body: set method = \"POST\"",
            ));
        }
        if method == Method::POST && body.is_none() && problems.iter().all(|p| !p.key.starts_with("body_template")) {
            problems.push(SettingsProblem::new(
                "body_template",
                "POST 需要 body_template 或 body_template_file / POST needs body_template or body_template_file",
            ));
        }
        let params_in_query = match self.params_in.as_deref() {
            None => method == Method::GET,
            Some("query") => true,
            Some("body") if method == Method::POST => false,
            Some(other) => {
                problems.push(SettingsProblem::new(
                    "params_in",
                    format!("应为 query，或 POST 时为 body / must be query, or body with POST; got {other:?}"),
                ));
                true
            }
        };
        let encoding = http_pull::encoding_label("encoding", self.encoding.as_deref(), &mut problems);
        let pagination = match self.pagination.as_str() {
            "none" => Pagination::None,
            "page" => Pagination::Page,
            "offset" => Pagination::Offset,
            "cursor" => Pagination::Cursor,
            "next_link" => Pagination::NextLink,
            other => {
                problems.push(SettingsProblem::new(
                    "pagination",
                    format!("应为 none、page、offset、cursor 或 next_link / must be none, page, offset, cursor or next_link, got {other:?}"),
                ));
                Pagination::None
            }
        };
        http_pull::check_paging(self.page_size, self.max_pages, &mut problems);
        if pagination == Pagination::Cursor && self.cursor_path.as_deref().is_none_or(str::is_empty) {
            problems.push(SettingsProblem::new(
                "cursor_path",
                "cursor 分页需要 cursor_path / cursor pagination needs cursor_path",
            ));
        }
        let status = http_pull::BusinessStatus::from_settings(
            self.status_path.as_deref(),
            self.success_values.as_deref(),
            self.message_path.as_deref(),
            &mut problems,
        );
        // A parameter that the pagination needs must reach the source.
        let sent = |name: &str| {
            params_in_query || query.iter().any(|(_, t)| t.uses(name)) || body.as_ref().is_some_and(|b| b.uses(name))
        };
        let needed = match pagination {
            Pagination::Page => Some(("page", "page_param")),
            Pagination::Offset => Some(("offset", "offset_param")),
            Pagination::Cursor => Some(("cursor", "cursor_param")),
            _ => None,
        };
        if let Some((placeholder, key)) = needed {
            if !sent(placeholder) {
                problems.push(SettingsProblem::new(
                    key,
                    format!("分页参数未发送：请在 body_template 中使用 {{{{{placeholder}}}}} / the pagination parameter is never sent: use {{{{{placeholder}}}}} in body_template"),
                ));
            }
        }
        if let Some(w) = watermark {
            let since_sent = (params_in_query && self.since_param.is_some())
                || query.iter().any(|(_, t)| t.uses("since"))
                || body.as_ref().is_some_and(|b| b.uses("since"));
            if w.path.is_some() && !since_sent {
                problems.push(SettingsProblem::new(
                    "since_param",
                    "增量拉取需要发送 since：设 since_param 或在模板中使用 {{since}} / incremental pulls must send since: set since_param or use {{since}} in query or body_template",
                ));
            }
        }
        match (url, watermark) {
            (Some(url), Some(w)) if problems.is_empty() => Ok(RestPullPlan {
                method,
                url,
                query,
                body,
                params: http_pull::param_values(&self.params),
                params_in_query,
                encoding,
                pagination,
                status,
                watermark: w.clone(),
            }),
            _ => Err(problems),
        }
    }
}

/// Every problem of a `[sources.rest]` table.
pub fn check(table: &toml::Table, base: &Path) -> Vec<SettingsProblem> {
    parse(table, base).err().unwrap_or_default()
}

fn parse(
    table: &toml::Table,
    base: &Path,
) -> Result<(RestSourceSettings, ClientSettings, RestPullPlan), Vec<SettingsProblem>> {
    http_pull::parse(table, base, |s: &RestSourceSettings, watermark, _| {
        s.plan(base, watermark)
    })
}

/// Build a REST pull source from its table; an endpoint of a `system` shares its connection.
pub fn build(
    source_id: &str,
    table: &toml::Table,
    base: &Path,
    system: Option<(&str, &SystemClients)>,
) -> Result<Arc<dyn PullSource>, SourceError> {
    Ok(Arc::new(RestSource {
        inner: Inner::build(source_id, table, base, parse, system)?,
    }))
}

type Inner = http_pull::Inner<RestSourceSettings, RestPullPlan>;

/// A REST pull source.
pub struct RestSource {
    inner: Arc<Inner>,
}

impl PullSource for RestSource {
    fn kind(&self) -> &'static str {
        "rest"
    }

    fn start(&self, cursor: Option<String>, mode: PullMode) -> Box<dyn PullRun> {
        let progress = self
            .inner
            .start_progress("REST", &self.inner.plan.watermark, cursor, mode);
        Box::new(RestRun {
            inner: self.inner.clone(),
            progress,
            page_number: 0,
            page_value: self.inner.settings.first_page,
            offset: 0,
            cursor_token: None,
            next_url: None,
            fetched: 0,
            previous_page: None,
            done: false,
        })
    }

    fn health(&self) -> SourceHealth {
        self.inner.client.health()
    }

    fn set_gate(&self, gate: Option<super::RequestGate>) {
        self.inner.client.set_gate(gate);
    }

    fn client(&self) -> Option<&crate::http::client::HttpClient> {
        Some(&self.inner.client)
    }
}

/// One run of a REST source.
struct RestRun {
    inner: Arc<Inner>,
    progress: Result<Progress, SourceError>,
    /// Requests made so far in this run.
    page_number: u64,
    /// The page-number parameter of the next request.
    page_value: i64,
    /// The offset of the next request.
    offset: i64,
    /// The cursor token of the next request.
    cursor_token: Option<String>,
    /// The next link to follow.
    next_url: Option<Url>,
    /// Records received so far.
    fetched: u64,
    /// Hash of the previous page's records, to notice a source that ignores the pagination.
    previous_page: Option<[u8; 32]>,
    done: bool,
}

/// What one answer holds.
struct Parsed {
    items: Vec<SourceItem>,
    records: usize,
    hash: [u8; 32],
    next_cursor: Option<String>,
    next_link: Option<String>,
    total: Option<u64>,
}

impl RestRun {
    fn values(&self, progress: &Progress) -> Values {
        let r = &self.inner.plan;
        let s = &self.inner.settings;
        let mut v = r.params.clone();
        v.insert("page".into(), TemplateValue::Number(self.page_value));
        v.insert("page_size".into(), TemplateValue::Number(i64::from(s.page_size)));
        v.insert("offset".into(), TemplateValue::Number(self.offset));
        v.insert("limit".into(), TemplateValue::Number(i64::from(s.page_size)));
        v.insert(
            "cursor".into(),
            self.cursor_token
                .clone()
                .map_or(TemplateValue::Null, TemplateValue::Text),
        );
        http_pull::insert_times(&mut v, progress, &r.watermark);
        v
    }

    /// The URL and body of the next request.
    fn request_parts(&self, progress: &Progress) -> (Url, Option<String>) {
        let r = &self.inner.plan;
        let s = &self.inner.settings;
        let values = self.values(progress);
        if let Some(next) = &self.next_url {
            return (next.clone(), r.body.as_ref().map(|b| b.render(&values)));
        }
        let mut url = r.url.clone();
        {
            let mut pairs = url.query_pairs_mut();
            for (name, t) in &r.query {
                let value = t.render(&values);
                if !value.is_empty() {
                    pairs.append_pair(name, &value);
                }
            }
            if r.params_in_query {
                let text = |name: &str| match values.get(name) {
                    Some(TemplateValue::Number(n)) => Some(n.to_string()),
                    Some(TemplateValue::Text(t)) => Some(t.clone()),
                    _ => None,
                };
                let mut add = |name: &str, placeholder: &str| {
                    if let Some(v) = text(placeholder) {
                        pairs.append_pair(name, &v);
                    }
                };
                match r.pagination {
                    Pagination::Page => {
                        add(&s.page_param, "page");
                        add(&s.page_size_param, "page_size");
                    }
                    Pagination::Offset => {
                        add(&s.offset_param, "offset");
                        add(&s.limit_param, "limit");
                    }
                    Pagination::Cursor => add(&s.cursor_param, "cursor"),
                    Pagination::None | Pagination::NextLink => {}
                }
                if r.watermark.path.is_some() {
                    if let Some(p) = &s.since_param {
                        add(p, "since");
                    }
                }
                if let Some(p) = &s.until_param {
                    add(p, "until");
                }
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        (url, r.body.as_ref().map(|b| b.render(&values)))
    }

    fn parse_answer(&self, answer: &Answer, progress: &mut Progress) -> Result<Parsed, SourceError> {
        let inner = &self.inner;
        let s = &inner.settings;
        let encoding = answer_encoding(inner.plan.encoding, answer.content_type(), &answer.body, false);
        let decoded = charset::decode(&answer.body, encoding);
        let mut envelope: Value = serde_json::from_str(decoded.text.trim_start_matches('\u{feff}')).map_err(|e| {
            SourceError::Protocol(format!(
                "应答不是 JSON / the answer is not JSON ({}): {e}: {}",
                decoded.encoding.name(),
                excerpt(decoded.text.trim(), 200)
            ))
        })?;
        if let Some(status) = &inner.plan.status {
            status.check(
                |path| json_at(&envelope, path).and_then(scalar_text),
                || excerpt(&envelope.to_string(), 300),
            )?;
        }
        match json_at(&envelope, &s.records_path) {
            Some(Value::Array(_)) | Some(Value::Null) => {}
            Some(other) => {
                return Err(SourceError::Protocol(format!(
                    "{} 处应为记录数组 / expected a list of records at {:?}, found {}",
                    s.records_path,
                    s.records_path,
                    excerpt(&other.to_string(), 200)
                )))
            }
            None => {
                return Err(SourceError::Protocol(format!(
                    "应答中没有 {} / no {:?} in the answer: {}",
                    s.records_path,
                    s.records_path,
                    excerpt(&envelope.to_string(), 200)
                )))
            }
        };
        let text_at = |path: &Option<String>| {
            path.as_deref()
                .and_then(|p| json_at(&envelope, p))
                .and_then(scalar_text)
                .filter(|t| !t.is_empty())
        };
        let next_link = match &s.next_link_path {
            Some(_) => text_at(&s.next_link_path),
            None => answer
                .headers
                .get_all(LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(link_next),
        };
        let next_cursor = text_at(&s.cursor_path);
        let total = text_at(&s.total_path).and_then(|t| t.trim().parse::<u64>().ok());
        // The records are taken out of the answer, not copied.
        let list = match json_at_mut(&mut envelope, &s.records_path) {
            Some(Value::Array(a)) => std::mem::take(a),
            _ => Vec::new(),
        };
        let page_no = self.page_number;
        let mut hasher = Sha256::new();
        let records = list.len();
        let mut items = Vec::with_capacity(records);
        for (i, record) in list.into_iter().enumerate() {
            let text = record.to_string();
            hasher.update(text.as_bytes());
            hasher.update([0]);
            items.push(http_pull::record_item(
                record,
                text,
                format!("page {page_no} #{}", i + 1),
                &decoded,
                progress,
                &inner.plan.watermark,
            ));
        }
        Ok(Parsed {
            records,
            items,
            hash: hasher.finalize().into(),
            next_cursor,
            next_link,
            total,
        })
    }
}

/// The `rel="next"` target of a `Link` header value.
fn link_next(value: &str) -> Option<String> {
    value.split(',').find_map(|link| {
        let (target, params) = link.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().to_ascii_lowercase();
            p == "rel=\"next\"" || p == "rel=next"
        });
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_string())
    })
}

#[async_trait]
impl PullRun for RestRun {
    async fn next_page(&mut self) -> Result<Option<Page>, SourceError> {
        if self.done {
            return Ok(None);
        }
        let mut progress = http_pull::resume(&self.progress).inspect_err(|_| self.done = true)?;
        let inner = self.inner.clone();
        let s = &inner.settings;
        if self.page_number >= s.max_pages {
            self.done = true;
            return match http_pull::at_max_pages(
                &inner.source_id,
                "REST",
                &progress,
                &inner.plan.watermark,
                s.max_pages,
            ) {
                Ok(()) => Ok(None),
                Err(e) => {
                    inner.client.record_failure(&e);
                    Err(e)
                }
            };
        }
        self.page_number += 1;
        let (url, body) = self.request_parts(&progress);
        // A next link elsewhere is refused before anything is sent there: the pages before it
        // are committed, the cursor does not move past them.
        if self.next_url.is_some() {
            if let Err(e) = inner.client.check_origin(&url, Hop::NextLink) {
                self.done = true;
                let e = SourceError::from(e);
                tracing::warn!(source = %inner.source_id, page = self.page_number, error = %e, "REST next link refused");
                inner.client.record_failure(&e);
                return Err(e);
            }
        }
        let method = inner.plan.method.clone();
        let answer = inner
            .send(
                |client| {
                    let mut request = client
                        .request(method.clone(), url.clone())
                        .header(ACCEPT, HeaderValue::from_static("application/json"));
                    if let Some(b) = &body {
                        request = request
                            .header(CONTENT_TYPE, "application/json; charset=utf-8")
                            .body(b.clone());
                    }
                    request
                },
                |_, _| false,
            )
            .await
            .inspect_err(|_| self.done = true)?;
        let parsed = match self.parse_answer(&answer, &mut progress) {
            Ok(p) => p,
            Err(e) => {
                self.done = true;
                tracing::warn!(source = %inner.source_id, page = self.page_number, error = %e, "REST answer refused");
                inner.client.record_failure(&e);
                return Err(e);
            }
        };
        if parsed.records > 0 && self.previous_page == Some(parsed.hash) {
            self.done = true;
            let e = SourceError::Protocol(format!(
                "第 {} 页与上一页相同：来源似乎忽略了分页参数 / page {} repeats the previous page: the source seems to ignore the pagination parameters",
                self.page_number, self.page_number
            ));
            inner.client.record_failure(&e);
            return Err(e);
        }
        self.previous_page = Some(parsed.hash);
        self.fetched += parsed.records as u64;
        let n = parsed.records;
        let short = s.stop_on_short_page && n < s.page_size as usize;
        let total_reached = parsed.total.is_some_and(|t| self.fetched >= t);
        let last = n == 0
            || total_reached
            || match inner.plan.pagination {
                Pagination::None => true,
                Pagination::Page => {
                    self.page_value += 1;
                    short
                }
                Pagination::Offset => {
                    self.offset += n as i64;
                    short
                }
                Pagination::Cursor => match parsed.next_cursor {
                    None => true,
                    Some(c) if Some(&c) == self.cursor_token.as_ref() => {
                        self.done = true;
                        let e = SourceError::Protocol(format!(
                            "来源再次给出相同的游标 {c:?} / the source gave the same cursor {c:?} again"
                        ));
                        inner.client.record_failure(&e);
                        return Err(e);
                    }
                    Some(c) => {
                        self.cursor_token = Some(c);
                        false
                    }
                },
                Pagination::NextLink => match parsed.next_link.as_deref().map(|l| url.join(l)) {
                    None => true,
                    Some(Ok(next)) => {
                        self.next_url = Some(next);
                        false
                    }
                    Some(Err(e)) => {
                        self.done = true;
                        let e = SourceError::Protocol(format!("下一页链接无效 / invalid next link: {e}"));
                        inner.client.record_failure(&e);
                        return Err(e);
                    }
                },
            };
        if progress.unreadable > 0 && last {
            tracing::warn!(
                source = %inner.source_id,
                records = progress.unreadable,
                "records without a readable watermark in this run"
            );
        }
        self.done = last;
        let cursor = http_pull::cursor_of_page(&inner.source_id, &progress, &inner.plan.watermark, last);
        tracing::debug!(
            source = %inner.source_id,
            page = self.page_number,
            records = n,
            last,
            "REST page pulled"
        );
        self.progress = Ok(progress);
        Ok(Some(Page {
            items: parsed.items,
            cursor,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<String> {
        check(&text.parse().unwrap(), Path::new("/"))
            .into_iter()
            .map(|p| p.key)
            .collect()
    }

    #[test]
    fn link_header_gives_the_next_page() {
        assert_eq!(
            link_next("<https://h/a?page=1>; rel=\"prev\", <https://h/a?page=3>; rel=\"next\"").as_deref(),
            Some("https://h/a?page=3")
        );
        assert_eq!(link_next("<https://h/a?page=1>; rel=\"last\""), None);
    }

    #[test]
    fn a_complete_table_has_no_problems() {
        let text = r#"
url = "http://127.0.0.1:1/api/cases"
pagination = "page"
page_param = "pageNo"
page_size_param = "pageSize"
records_path = "data.list"
status_path = "code"
success_values = ["0000"]
message_path = "msg"
total_path = "data.total"
watermark_path = "gxsj"
since_param = "updatedSince"
params = { region = "360100" }
query = { areaCode = "{{region}}" }
rate_limit_per_second = 5
auth = { kind = "bearer", token = "t" }
"#;
        assert!(keys(text).is_empty(), "{:?}", keys(text));
    }

    #[test]
    fn problems_name_their_keys_in_every_part() {
        assert_eq!(
            keys("url = \"ftp://x\"\nmethod = \"PUT\"\npagination = \"pages\"\ntimeout_seconds = 0\noverlap_seconds = \"x\""),
            ["timeout_seconds", "overlap_seconds", "method", "url", "pagination"]
        );
        assert_eq!(keys("url = \"http://h\"\nurll = 1"), ["urll"]);
        assert_eq!(
            keys("url = \"http://h\"\nquery = { a = \"{{sinse}}\" }\npagination = \"cursor\""),
            ["query.a", "cursor_path"]
        );
        assert_eq!(
            keys("url = \"http://h\"\nmethod = \"POST\"\nbody_template = '{\"p\": 1}'\npagination = \"page\"\nwatermark_path = \"t\""),
            ["page_param", "since_param"]
        );
        assert!(keys("url = \"http://h\"\nmethod = \"POST\"\nbody_template = '{\"p\": {{page}}, \"s\": {{since}}}'\npagination = \"page\"\nwatermark_path = \"t\"").is_empty());
        assert_eq!(
            keys("url = \"http://h\"\nbody_template = '{\"p\": {{page}'"),
            ["body_template"]
        );
        assert_eq!(keys("url = \"http://h\"\nencoding = \"big9\""), ["encoding"]);
    }
}
