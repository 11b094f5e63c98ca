//! What the REST and SOAP pull sources share: checking the keys both kinds have (URL, request
//! template, custom placeholders, paging limits, character sets), parsing a kind table into
//! its three parts, building the source, and the bookkeeping of a pull run (progress, records
//! holding malformed bytes, `since`/`until` values).

use super::contract::{PullMode, PulledRecord, SourceError, SourceItem, UnparsedRecord};
use super::settings::{format_time, split, Progress, Watermark};
use crate::common::charset::{self, Decoded};
use crate::common::json_path::json_at;
use crate::common::settings::{joined, SettingsProblem};
use crate::common::template::{Escaping, Template, TemplateValue, Values};
use crate::http::client::{Answer, ClientSettings, HttpClient, SystemClients};
use reqwest::Url;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Default of `page_size`: 100.
pub(crate) fn default_page_size() -> u32 {
    100
}

/// Default of `first_page`: 1.
pub(crate) fn default_first_page() -> i64 {
    1
}

/// Default of `stop_on_short_page`: true.
pub(crate) fn default_true() -> bool {
    true
}

/// Default of `max_pages`: 10000.
pub(crate) fn default_max_pages() -> u64 {
    10_000
}

/// Default of `success_values`: the codes legacy systems commonly answer success with.
pub(crate) fn default_success_values() -> Vec<String> {
    ["0", "00", "0000", "200"].map(String::from).to_vec()
}

/// A business status inside an answer (REST: dotted JSON paths; SOAP: element paths): where
/// its code is, which codes mean success, where its message is.
#[derive(Debug, Clone)]
pub(crate) struct BusinessStatus {
    path: String,
    success: Vec<String>,
    message_path: Option<String>,
}

impl BusinessStatus {
    /// The settings `status_path`, `success_values` (default [`default_success_values`]) and
    /// `message_path`, checked; `None` without `status_path` (no status is checked then).
    pub fn from_settings(
        status_path: Option<&str>,
        success_values: Option<&[String]>,
        message_path: Option<&str>,
        problems: &mut Vec<SettingsProblem>,
    ) -> Option<BusinessStatus> {
        if status_path.is_some_and(str::is_empty) {
            problems.push(SettingsProblem::new("status_path", "不能为空 / must not be empty"));
        }
        if success_values.is_some_and(<[String]>::is_empty) {
            problems.push(SettingsProblem::new("success_values", "不能为空 / must not be empty"));
        }
        Some(BusinessStatus {
            path: status_path.filter(|p| !p.is_empty())?.to_string(),
            success: success_values.map_or_else(default_success_values, <[String]>::to_vec),
            message_path: message_path.filter(|p| !p.is_empty()).map(str::to_string),
        })
    }

    /// Check an answer: `text_at` reads the text at a path of it, `whole` gives an excerpt of
    /// the answer for an error without a message. A code not among the success values, or
    /// no code at all, is the source's error with its code and message.
    pub fn check(
        &self,
        text_at: impl Fn(&str) -> Option<String>,
        whole: impl FnOnce() -> String,
    ) -> Result<(), SourceError> {
        let code = text_at(&self.path);
        if code.as_ref().is_some_and(|c| self.success.contains(c)) {
            return Ok(());
        }
        let message = self.message_path.as_deref().and_then(&text_at).unwrap_or_else(whole);
        Err(SourceError::Answer {
            code: code.unwrap_or_else(|| format!("(no {})", self.path)),
            message,
        })
    }
}

/// The `url` key: an http or https URL; otherwise a problem and `None`.
pub(crate) fn http_url(text: &str, problems: &mut Vec<SettingsProblem>) -> Option<Url> {
    match Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
        Ok(u) => {
            problems.push(SettingsProblem::new(
                "url",
                format!("应为 http(s) 地址 / must be http or https, got {}:", u.scheme()),
            ));
            None
        }
        Err(e) => {
            problems.push(SettingsProblem::new("url", format!("无效的 URL / invalid URL: {e}")));
            None
        }
    }
}

/// The placeholders a request template may use: `builtin` and the names of the custom
/// `params` (a name clashing with a built-in one is a problem; with `check_values`, so is a
/// value that is not a valid plain template).
pub(crate) fn known_placeholders<'a>(
    builtin: &[&'a str],
    params: &'a BTreeMap<String, String>,
    check_values: bool,
    problems: &mut Vec<SettingsProblem>,
) -> Vec<&'a str> {
    let mut known: Vec<&str> = builtin.to_vec();
    for (name, value) in params {
        if builtin.contains(&name.as_str()) {
            problems.push(SettingsProblem::new(
                format!("params.{name}"),
                format!("与内置占位符重名 / clashes with the built-in placeholder {{{{{name}}}}}"),
            ));
        } else if let Err(e) = check_values
            .then(|| Template::parse(value, Escaping::Plain, &[]))
            .transpose()
        {
            problems.push(SettingsProblem::new(format!("params.{name}"), e));
        } else {
            known.push(name);
        }
    }
    known
}

/// The custom `params` as template values.
pub(crate) fn param_values(params: &BTreeMap<String, String>) -> Values {
    params
        .iter()
        .map(|(k, v)| (k.clone(), TemplateValue::Text(v.clone())))
        .collect()
}

/// A value (`x`) for every known placeholder, to try a template out.
pub(crate) fn sample_values(known: &[&str]) -> Values {
    known
        .iter()
        .map(|k| (k.to_string(), TemplateValue::Text("x".into())))
        .collect()
}

/// The limits of `page_size` (1..100000) and `max_pages` (at least 1).
pub(crate) fn check_paging(page_size: u32, max_pages: u64, problems: &mut Vec<SettingsProblem>) {
    if page_size == 0 || page_size > 100_000 {
        problems.push(SettingsProblem::new("page_size", "应在 1..100000 / must be 1..100000"));
    }
    if max_pages == 0 {
        problems.push(SettingsProblem::new("max_pages", "应至少为 1 / must be at least 1"));
    }
}

/// The character set named by the `key` setting (`None` when not set); an unknown label is a
/// problem.
pub(crate) fn encoding_label(
    key: &str,
    label: Option<&str>,
    problems: &mut Vec<SettingsProblem>,
) -> Option<&'static encoding_rs::Encoding> {
    let label = label?;
    let encoding = charset::encoding_for_label(label);
    if encoding.is_none() {
        problems.push(SettingsProblem::new(
            key,
            format!("未知字符集 / unknown character set {label:?} (utf-8, gbk, gb18030, ...)"),
        ));
    }
    encoding
}

/// Parse a kind table: the connection keys, the incremental keys and the kind's own keys `T`,
/// each checked as far as it parses; `plan` checks the own keys, given the watermark and
/// the connection settings when those parsed, into the source's pull plan. Every problem, or
/// the own keys, the connection keys and the plan.
pub(crate) fn parse<T: DeserializeOwned, P>(
    table: &toml::Table,
    base: &Path,
    plan: impl FnOnce(&T, Option<&Watermark>, Option<&ClientSettings>) -> Result<P, Vec<SettingsProblem>>,
) -> Result<(T, ClientSettings, P), Vec<SettingsProblem>> {
    let parts = split::<T>(table);
    let mut problems = Vec::new();
    let client = match parts.client {
        Ok(c) => {
            problems.extend(c.check(base));
            Some(c)
        }
        Err(p) => {
            problems.push(p);
            None
        }
    };
    let watermark = match parts.watermark.map(|w| w.resolve()) {
        Ok(Ok(w)) => Some(w),
        Ok(Err(p)) => {
            problems.extend(p);
            None
        }
        Err(p) => {
            problems.push(p);
            None
        }
    };
    let own = match parts.own {
        Ok(s) => match plan(&s, watermark.as_ref(), client.as_ref()) {
            Ok(p) => Some((s, p)),
            Err(p) => {
                problems.extend(p);
                None
            }
        },
        Err(p) => {
            problems.push(p);
            None
        }
    };
    match (client, own) {
        (Some(c), Some((s, p))) if problems.is_empty() => Ok((s, c, p)),
        _ => Err(problems),
    }
}

/// A checked pull plan: what the HTTP client needs to know of it.
pub(crate) trait PullPlan {
    /// The source's `url`: its origin is where the credentials go (with `allowed_hosts`).
    fn url(&self) -> &Url;
}

/// What a pull source keeps: its id, its own settings, its pull plan and its HTTP client.
pub(crate) struct Inner<S, P> {
    /// The source's id.
    pub source_id: String,
    /// The kind's own keys.
    pub settings: S,
    /// How it asks for pages and reads the answers (the own keys, checked).
    pub plan: P,
    /// The HTTP client (connection keys).
    pub client: HttpClient,
}

impl<S, P: PullPlan> Inner<S, P> {
    /// Build from a table that `parse` checks; its problems become one settings error. An
    /// endpoint of a `system` gets its client over the system's shared connection.
    pub fn build(
        source_id: &str,
        table: &toml::Table,
        base: &Path,
        parse: impl FnOnce(&toml::Table, &Path) -> Result<(S, ClientSettings, P), Vec<SettingsProblem>>,
        system: Option<(&str, &SystemClients)>,
    ) -> Result<Arc<Self>, SourceError> {
        let (settings, client_settings, plan) =
            parse(table, base).map_err(|problems| SourceError::Settings(joined(&problems)))?;
        let client = match system {
            Some((name, clients)) => clients.client(name, source_id, &client_settings, base, plan.url())?,
            None => HttpClient::new(source_id, &client_settings, base, plan.url())?,
        };
        Ok(Arc::new(Inner {
            source_id: source_id.to_string(),
            settings,
            plan,
            client,
        }))
    }
}

impl<S, P> Inner<S, P> {
    /// Send a request with the client's retries; a failure is counted in `health()`.
    pub async fn send<F, A>(&self, build: F, is_answer: A) -> Result<Answer, SourceError>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        A: Fn(reqwest::StatusCode, &[u8]) -> bool,
    {
        self.client.send(build, is_answer).await.map_err(|e| {
            let e = SourceError::from(e);
            self.client.record_failure(&e);
            e
        })
    }

    /// Begin a run (`kind` names the source kind in the log) from the stored `cursor`.
    pub fn start_progress(
        &self,
        kind: &str,
        watermark: &Watermark,
        cursor: Option<String>,
        mode: PullMode,
    ) -> Result<Progress, SourceError> {
        let progress = Progress::start(watermark, cursor.as_deref(), mode == PullMode::FullResync);
        tracing::info!(
            source = %self.source_id,
            mode = ?mode,
            since = ?progress.as_ref().ok().and_then(|p| p.since),
            "{kind} pull run starts"
        );
        progress
    }
}

/// The progress to go on from at the next page, or the error the run started with.
pub(crate) fn resume(progress: &Result<Progress, SourceError>) -> Result<Progress, SourceError> {
    match progress {
        Ok(p) => Ok(p.clone()),
        Err(e) => Err(SourceError::Settings(match e {
            SourceError::Settings(m) => m.clone(),
            other => other.to_string(),
        })),
    }
}

/// A run that reached `max_pages`: when its cursor has moved with every page (the source returns
/// records in watermark order), it ends there and the next run continues from the cursor;
/// otherwise it fails, its cursor not advanced.
pub(crate) fn at_max_pages(
    source_id: &str,
    kind: &str,
    progress: &Progress,
    watermark: &Watermark,
    max_pages: u64,
) -> Result<(), SourceError> {
    if progress.resumable(watermark) {
        tracing::warn!(source = %source_id, kind, max_pages, cursor = ?progress.cursor(),
            "max_pages reached: the run ends here; the cursor moved with every page, the next run continues from it");
        Ok(())
    } else {
        Err(max_pages_reached(max_pages))
    }
}

/// The cursor to hand out with a page: the run's cursor on its last page, else the cursor so far
/// when the source returns records in watermark order; and the run's warnings on its last page.
pub(crate) fn cursor_of_page(
    source_id: &str,
    progress: &Progress,
    watermark: &Watermark,
    last: bool,
) -> Option<String> {
    if last && progress.in_future > 0 {
        tracing::warn!(source = %source_id, records = progress.in_future,
            "records whose watermark lies beyond the run's start plus max_clock_skew_seconds: kept, flagged, the cursor not moved by them");
    }
    if watermark.ordered && progress.out_of_order && last {
        tracing::warn!(source = %source_id,
            "watermark_ordered is set, but the source returned an older record after a newer one: the cursor moved only at the end of this run");
    }
    if last {
        progress.cursor()
    } else {
        progress.page_cursor(watermark)
    }
}

/// The error of a run that reached `max_pages` without moving its cursor.
pub(crate) fn max_pages_reached(max_pages: u64) -> SourceError {
    SourceError::Backlog(max_pages)
}

/// Put `since` (null when none) and `until` into `values`, written as the source expects.
pub(crate) fn insert_times(values: &mut Values, progress: &Progress, w: &Watermark) {
    values.insert(
        "since".into(),
        progress.since.map_or(TemplateValue::Null, |t| {
            TemplateValue::Text(format_time(t, &w.since_format, w.offset))
        }),
    );
    values.insert(
        "until".into(),
        TemplateValue::Text(format_time(progress.until, &w.since_format, w.offset)),
    );
}

/// One record of an answer (`text` its payload): unparsed when it holds bytes malformed in
/// the answer's character set, else pulled, its watermark noted in `progress`.
pub(crate) fn record_item(
    record: Value,
    text: String,
    position: String,
    decoded: &Decoded,
    progress: &mut Progress,
    watermark: &Watermark,
) -> SourceItem {
    if decoded.had_errors && text.contains('\u{FFFD}') {
        return Err(UnparsedRecord {
            payload: text.into_bytes(),
            position,
            message: format!(
                "记录含有 {} 字符集中不合法的字节 / the record holds bytes that are malformed in {}",
                decoded.encoding.name(),
                decoded.encoding.name()
            ),
        });
    }
    let watermark_in_future = progress.see(watermark, &record, |v, p| json_at(v, p).cloned());
    Ok(PulledRecord {
        value: record,
        payload: text.into_bytes(),
        position,
        watermark_in_future,
    })
}
