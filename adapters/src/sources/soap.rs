//! SOAP/XML pull source (`kind = "soap"`, table `[sources.soap]`): SOAP 1.1 (`text/xml` with a
//! `SOAPAction` header) or 1.2 (`application/soap+xml` with an `action` parameter) requests
//! built from an envelope template (inline or in a file) with `{{...}}` placeholders
//! (XML-escaped), optional WS-Security UsernameToken (PasswordText or PasswordDigest), SOAP
//! faults turned into [`SourceError::Answer`], records found by an element path (namespace
//! prefixes ignored) and turned into the tree the mapping engine reads
//! ([`normalizer::xml_tree`]: attributes as `@name`, repeated elements as arrays, CDATA as
//! text). Answers in GBK/GB18030 are decoded by the configured override, the `Content-Type`
//! charset or the XML prolog. Hardened: any DOCTYPE/DTD is refused, size, depth and element
//! count are limited.
//!
//! Each record's `payload` is the JSON text of its tree (as for XML files), its `position`
//! `page N #M`.

use super::contract::{Page, PullMode, PullRun, PullSource, SourceError, SourceItem};
use super::http_pull;
use super::settings::{Progress, Watermark};
use crate::common::charset::{self, answer_encoding};
use crate::common::health::SourceHealth;
use crate::common::json_path::json_at;
use crate::common::secret::{Redacted, Secret, SecretSource};
use crate::common::settings::{template_text, SettingsProblem};
use crate::common::template::{Escaping, Template, TemplateValue, Values};
use crate::common::text::excerpt;
use crate::http::client::ClientSettings;
use crate::http::client::SystemClients;
use async_trait::async_trait;
use base64::Engine as _;
use normalizer::xml_tree::{find_records, parse_xml_with_encoding, XmlLimits};
use quick_xml::events::Event;
use rand::Rng as _;
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;
use sha1::{Digest as _, Sha1};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Placeholders every envelope template knows (custom `params` add their own names).
pub const BUILTIN_PLACEHOLDERS: &[&str] = &[
    "page",
    "page_size",
    "offset",
    "since",
    "until",
    "username",
    "password",
    "ws_security",
];

const WSSE_NS: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
const WSU_NS: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
const PASSWORD_TEXT: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText";
const PASSWORD_DIGEST: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest";
const BASE64_BINARY: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary";
/// Where `{{ws_security}}` stands in a rendered envelope before the header is put in.
const WSSE_MARK: &str = "\u{E000}ws-security\u{E000}";

/// The keys of `[sources.soap]` besides the connection and incremental keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoapSourceSettings {
    /// The service endpoint (http or https).
    pub url: String,
    /// `1.1` (default) or `1.2`.
    #[serde(default = "default_version")]
    pub soap_version: String,
    /// The operation's action: SOAP 1.1 `SOAPAction` header, SOAP 1.2 `action` parameter.
    pub action: Option<String>,
    /// The request envelope inline.
    pub envelope_template: Option<String>,
    /// The request envelope in a file (relative to the configuration file).
    pub envelope_template_file: Option<PathBuf>,
    /// Custom placeholders, e.g. `{ areaCode = "360100" }` → `{{areaCode}}`.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// User name for `{{username}}` and WS-Security.
    pub username: Option<String>,
    /// Password inline (avoid; prefer `password_env` / `password_file`).
    pub password: Option<Redacted>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// File holding the password.
    pub password_file: Option<PathBuf>,
    /// WS-Security UsernameToken: `none` (default), `password_text` or `password_digest`.
    #[serde(default = "default_none")]
    pub ws_security: String,
    /// Element path of the records, from the root element, e.g.
    /// `Envelope.Body.queryCasesResponse.return.case` (namespace prefixes ignored).
    pub records_path: String,
    /// Element path of the total record count (default none).
    pub total_path: Option<String>,
    /// Element path of a business result code inside the answer, e.g.
    /// `Envelope.Body.queryCasesResponse.return.resultCode` (default none: not checked).
    pub status_path: Option<String>,
    /// Result codes meaning success (default `["0", "00", "0000", "200"]`); needs `status_path`.
    pub success_values: Option<Vec<String>>,
    /// Element path of the message going with the result code (e.g. `...return.resultMsg`);
    /// needs `status_path`.
    pub message_path: Option<String>,
    /// `none` (default: one request) or `page`.
    #[serde(default = "default_none")]
    pub pagination: String,
    /// Records asked for per request, `{{page_size}}` (default 100).
    #[serde(default = "http_pull::default_page_size")]
    pub page_size: u32,
    /// Number of the first page, `{{page}}` (default 1).
    #[serde(default = "http_pull::default_first_page")]
    pub first_page: i64,
    /// End the run at a page with fewer records than `page_size` (default true).
    #[serde(default = "http_pull::default_true")]
    pub stop_on_short_page: bool,
    /// Most pages in one run (default 10000): reaching it fails the run, cursor not advanced.
    #[serde(default = "http_pull::default_max_pages")]
    pub max_pages: u64,
    /// Character set of answers, overriding `Content-Type` and prolog (`gbk`, `gb18030`, ...).
    pub encoding: Option<String>,
    /// Character set of requests (default `utf-8`).
    pub request_encoding: Option<String>,
    /// Deepest element nesting accepted in an answer (default 64).
    #[serde(default = "default_max_depth")]
    pub max_depth: usize,
    /// Most elements accepted in one answer (default 1000000).
    #[serde(default = "default_max_elements")]
    pub max_elements: usize,
}

fn default_version() -> String {
    "1.1".into()
}
fn default_none() -> String {
    "none".into()
}
fn default_max_depth() -> usize {
    64
}
fn default_max_elements() -> usize {
    1_000_000
}

/// WS-Security modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WsSecurity {
    None,
    Text,
    Digest,
}

/// How a SOAP source asks for pages and reads the answers: its settings, checked.
#[derive(Debug)]
struct SoapPullPlan {
    url: Url,
    soap12: bool,
    action: Option<String>,
    envelope: Template,
    params: Values,
    username: Option<String>,
    password: Option<Secret>,
    ws_security: WsSecurity,
    paginated: bool,
    encoding: Option<&'static encoding_rs::Encoding>,
    request_encoding: &'static encoding_rs::Encoding,
    limits: XmlLimits,
    status: Option<http_pull::BusinessStatus>,
    watermark: Watermark,
}

impl http_pull::PullPlan for SoapPullPlan {
    fn url(&self) -> &Url {
        &self.url
    }
}

impl SoapSourceSettings {
    /// Check the own keys, given the checked watermark keys, into the pull plan; every
    /// problem names its key.
    fn plan(
        &self,
        base: &Path,
        watermark: Option<&Watermark>,
        max_bytes: usize,
    ) -> Result<SoapPullPlan, Vec<SettingsProblem>> {
        let mut problems = Vec::new();
        let url = http_pull::http_url(&self.url, &mut problems);
        let soap12 = match self.soap_version.as_str() {
            "1.1" => false,
            "1.2" => true,
            other => {
                problems.push(SettingsProblem::new(
                    "soap_version",
                    format!("应为 \"1.1\" 或 \"1.2\" / must be \"1.1\" or \"1.2\", got {other:?}"),
                ));
                false
            }
        };
        if matches!(&self.action, Some(a) if a.contains('"') || a.chars().any(char::is_control)) {
            problems.push(SettingsProblem::new(
                "action",
                "不能含引号或控制字符 / must not hold quotes or control characters",
            ));
        }
        let password = SecretSource {
            name: "password",
            inline: self.password.as_ref().map(|r| r.0.as_str()),
            env: self.password_env.as_deref(),
            file: self.password_file.as_deref(),
        }
        .resolve(base)
        .unwrap_or_else(|m| {
            problems.push(SettingsProblem::new("password", m));
            None
        });
        let ws_security = match self.ws_security.as_str() {
            "none" => WsSecurity::None,
            "password_text" => WsSecurity::Text,
            "password_digest" => WsSecurity::Digest,
            other => {
                problems.push(SettingsProblem::new(
                    "ws_security",
                    format!("应为 none、password_text 或 password_digest / must be none, password_text or password_digest, got {other:?}"),
                ));
                WsSecurity::None
            }
        };
        if ws_security != WsSecurity::None && (self.username.is_none() || password.is_none()) {
            problems.push(SettingsProblem::new(
                "ws_security",
                "WS-Security 需要 username 与 password（或 password_env / password_file）/ WS-Security needs username and password (or password_env / password_file)",
            ));
        }
        let known = http_pull::known_placeholders(BUILTIN_PLACEHOLDERS, &self.params, false, &mut problems);
        let key = if self.envelope_template_file.is_some() {
            "envelope_template_file"
        } else {
            "envelope_template"
        };
        let text = template_text(
            self.envelope_template.as_ref(),
            self.envelope_template_file.as_ref(),
            ("envelope_template", "envelope_template_file"),
            base,
        )
        .unwrap_or_else(|p| {
            problems.push(p);
            None
        });
        if self.envelope_template.is_none() && self.envelope_template_file.is_none() {
            problems.push(SettingsProblem::new(
                "envelope_template",
                "需要 envelope_template 或 envelope_template_file / envelope_template or envelope_template_file is required",
            ));
        }
        let envelope = match text.map(|t| Template::parse(&t, Escaping::Xml, &known)) {
            None => None,
            Some(Err(e)) => {
                problems.push(SettingsProblem::new(key, e));
                None
            }
            Some(Ok(t)) => {
                if t.uses("password") && password.is_none() {
                    problems.push(SettingsProblem::new(
                        "password",
                        "模板使用了 {{password}}，但未给出密码 / the template uses {{password}} but no password is given",
                    ));
                }
                let sample = http_pull::sample_values(&known);
                let mut rendered = t.render(&sample);
                if ws_security != WsSecurity::None || t.uses("ws_security") {
                    let header = security_header(ws_security, "u", &Secret::new("p"));
                    rendered = match with_security(&rendered, &header, t.uses("ws_security")) {
                        Ok(r) => r,
                        Err(e) => {
                            problems.push(SettingsProblem::new(key, e));
                            rendered
                        }
                    };
                }
                match parse_xml_with_encoding(rendered.as_bytes(), &XmlLimits::default(), Some(encoding_rs::UTF_8)) {
                    Ok(tree) if find_records(&tree, "Envelope.Body").is_empty() => problems.push(SettingsProblem::new(
                        key,
                        "模板不是 SOAP 信封（缺 Envelope/Body）/ the template is not a SOAP envelope (no Envelope/Body)",
                    )),
                    Ok(_) => {}
                    Err(e) => problems.push(SettingsProblem::new(key, format!("模板生成的不是合法 XML / the template does not give valid XML: {e}"))),
                }
                Some(t)
            }
        };
        if self.records_path.trim().is_empty() {
            problems.push(SettingsProblem::new("records_path", "不能为空 / must not be empty"));
        }
        if self.status_path.is_none() {
            // Without a status path nothing would ever be compared with these: say so.
            if let Some(values) = &self.success_values {
                problems.push(SettingsProblem::new(
                    "success_values",
                    format!("success_values = {values:?} 需要 status_path（结果代码的元素路径），否则不检查业务状态 / success_values = {values:?} needs status_path (the element path of the result code): without it no business status is checked"),
                ));
            }
            if let Some(path) = &self.message_path {
                problems.push(SettingsProblem::new(
                    "message_path",
                    format!("message_path = {path:?} 需要 status_path（结果代码的元素路径）/ message_path = {path:?} needs status_path (the element path of the result code)"),
                ));
            }
        }
        let status = http_pull::BusinessStatus::from_settings(
            self.status_path.as_deref(),
            self.success_values.as_deref(),
            self.message_path.as_deref(),
            &mut problems,
        );
        let paginated = match self.pagination.as_str() {
            "none" => false,
            "page" => true,
            other => {
                problems.push(SettingsProblem::new(
                    "pagination",
                    format!("应为 none 或 page / must be none or page, got {other:?}"),
                ));
                false
            }
        };
        if paginated && envelope.as_ref().is_some_and(|e| !e.uses("page") && !e.uses("offset")) {
            problems.push(SettingsProblem::new(
                "pagination",
                "分页需要在信封模板中使用 {{page}} 或 {{offset}} / page pagination needs {{page}} or {{offset}} in the envelope template",
            ));
        }
        http_pull::check_paging(self.page_size, self.max_pages, &mut problems);
        if self.max_depth < 4 || self.max_depth > 1024 {
            problems.push(SettingsProblem::new("max_depth", "应在 4..1024 / must be 4..1024"));
        }
        if self.max_elements == 0 {
            problems.push(SettingsProblem::new("max_elements", "应至少为 1 / must be at least 1"));
        }
        let encoding = http_pull::encoding_label("encoding", self.encoding.as_deref(), &mut problems);
        let request_encoding =
            http_pull::encoding_label("request_encoding", self.request_encoding.as_deref(), &mut problems);
        if let (Some(w), Some(e)) = (watermark, &envelope) {
            if w.path.is_some() && !e.uses("since") {
                problems.push(SettingsProblem::new(
                    "watermark_path",
                    "增量拉取需要在信封模板中使用 {{since}} / incremental pulls need {{since}} in the envelope template",
                ));
            }
        }
        match (url, envelope, watermark) {
            (Some(url), Some(envelope), Some(w)) if problems.is_empty() => Ok(SoapPullPlan {
                url,
                soap12,
                action: self.action.clone(),
                envelope,
                params: http_pull::param_values(&self.params),
                username: self.username.clone(),
                password,
                ws_security,
                paginated,
                encoding,
                request_encoding: request_encoding.unwrap_or(encoding_rs::UTF_8),
                limits: XmlLimits {
                    max_bytes,
                    max_depth: self.max_depth,
                    max_elements: self.max_elements,
                },
                status,
                watermark: w.clone(),
            }),
            _ => Err(problems),
        }
    }
}

/// A WS-Security header with a fresh nonce and creation time.
fn security_header(mode: WsSecurity, username: &str, password: &Secret) -> String {
    let nonce: [u8; 16] = rand::rng().random();
    let created = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let (kind, value) = match mode {
        WsSecurity::Digest => (PASSWORD_DIGEST, password_digest(&nonce, &created, password.expose())),
        _ => (PASSWORD_TEXT, password.expose().to_string()),
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "<wsse:Security xmlns:wsse=\"{WSSE_NS}\" xmlns:wsu=\"{WSU_NS}\"><wsse:UsernameToken wsu:Id=\"UsernameToken-{id}\"><wsse:Username>{user}</wsse:Username><wsse:Password Type=\"{kind}\">{password}</wsse:Password><wsse:Nonce EncodingType=\"{BASE64_BINARY}\">{nonce}</wsse:Nonce><wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>",
        id = hex::encode(&nonce[..8]),
        user = quick_xml::escape::escape(username),
        password = quick_xml::escape::escape(value.as_str()),
        nonce = b64.encode(nonce),
    )
}

/// WS-Security PasswordDigest: Base64(SHA-1(nonce + created + password)).
pub fn password_digest(nonce: &[u8], created: &str, password: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(nonce);
    sha.update(created.as_bytes());
    sha.update(password.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Put the WS-Security `header` into a rendered envelope: where `{{ws_security}}` stood (when
/// `marked`), else at the start of the SOAP Header (created after the Envelope's start tag if
/// there is none).
fn with_security(envelope: &str, header: &str, marked: bool) -> Result<String, String> {
    if marked {
        return Ok(envelope.replace(WSSE_MARK, header));
    }
    let mut reader = quick_xml::Reader::from_str(envelope);
    let mut depth = 0usize;
    let mut prefix = String::new();
    let mut after_envelope = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("信封模板不是合法 XML / the envelope template is not valid XML: {e}"))?;
        let end = reader.buffer_position() as usize;
        match event {
            Event::Start(ref s) | Event::Empty(ref s) => {
                let empty = matches!(event, Event::Empty(_));
                let qname = s.name().as_ref().to_string();
                let (p, local) = match qname.rsplit_once(':') {
                    Some((p, l)) => (p.to_string(), l.to_string()),
                    None => (String::new(), qname.clone()),
                };
                depth += 1;
                if depth == 1 && local == "Envelope" && !empty {
                    prefix = p;
                    after_envelope = Some(end);
                } else if depth == 2 && local == "Header" {
                    if empty {
                        let start = envelope[..end].rfind('<').unwrap_or(end);
                        return Ok(format!(
                            "{}<{qname}>{header}</{qname}>{}",
                            &envelope[..start],
                            &envelope[end..]
                        ));
                    }
                    return Ok(format!("{}{header}{}", &envelope[..end], &envelope[end..]));
                } else if depth == 2 {
                    break;
                }
                if empty {
                    depth -= 1;
                }
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Eof => break,
            _ => {}
        }
    }
    let at = after_envelope
        .ok_or_else(|| "信封模板没有 Envelope 根元素 / the envelope template has no Envelope root".to_string())?;
    let tag = if prefix.is_empty() {
        "Header".to_string()
    } else {
        format!("{prefix}:Header")
    };
    Ok(format!("{}<{tag}>{header}</{tag}>{}", &envelope[..at], &envelope[at..]))
}

/// Text of an XML value: a string, or the `#text` of an element with attributes.
fn xml_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Object(m) => m.get("#text").and_then(Value::as_str).map(|s| s.trim().to_string()),
        Value::Array(a) => a.first().and_then(xml_text),
        _ => None,
    }
}

/// The SOAP fault in `tree`, as an error with its code and text.
fn fault(tree: &Value) -> Option<SourceError> {
    let fault = *find_records(tree, "Envelope.Body.Fault").first()?;
    // SOAP 1.1: faultcode, faultstring, detail.
    if let Some(code) = fault.get("faultcode").and_then(xml_text) {
        let mut message = fault.get("faultstring").and_then(xml_text).unwrap_or_default();
        if let Some(detail) = fault.get("detail") {
            let detail = xml_text(detail).unwrap_or_else(|| detail.to_string());
            if !detail.is_empty() {
                message = format!("{message} ({})", excerpt(&detail, 300));
            }
        }
        return Some(SourceError::Answer { code, message });
    }
    // SOAP 1.2: Code/Value (+ Subcode/Value), Reason/Text.
    let mut code = json_at(fault, "Code.Value").and_then(xml_text).unwrap_or_default();
    if let Some(sub) = json_at(fault, "Code.Subcode.Value").and_then(xml_text) {
        code = format!("{code}/{sub}");
    }
    let message = fault
        .get("Reason")
        .and_then(|r| r.get("Text"))
        .and_then(xml_text)
        .unwrap_or_default();
    let message = match json_at(fault, "Detail") {
        Some(d) => format!(
            "{message} ({})",
            excerpt(&xml_text(d).unwrap_or_else(|| d.to_string()), 300)
        ),
        None => message,
    };
    Some(SourceError::Answer { code, message })
}

/// Every problem of a `[sources.soap]` table.
pub fn check(table: &toml::Table, base: &Path) -> Vec<SettingsProblem> {
    parse(table, base).err().unwrap_or_default()
}

fn parse(
    table: &toml::Table,
    base: &Path,
) -> Result<(SoapSourceSettings, ClientSettings, SoapPullPlan), Vec<SettingsProblem>> {
    http_pull::parse(table, base, |s: &SoapSourceSettings, watermark, client| {
        let max_bytes = client.map_or(64 * 1024 * 1024, |c| c.max_response_bytes);
        s.plan(base, watermark, max_bytes)
    })
}

/// Build a SOAP pull source from its table; an endpoint of a `system` shares its connection.
pub fn build(
    source_id: &str,
    table: &toml::Table,
    base: &Path,
    system: Option<(&str, &SystemClients)>,
) -> Result<Arc<dyn PullSource>, SourceError> {
    Ok(Arc::new(SoapSource {
        inner: Inner::build(source_id, table, base, parse, system)?,
    }))
}

type Inner = http_pull::Inner<SoapSourceSettings, SoapPullPlan>;

impl Inner {
    /// The request body for these values, with a fresh WS-Security header.
    fn envelope(&self, values: &Values) -> String {
        let r = &self.plan;
        let mut values = values.clone();
        let marked = r.envelope.uses("ws_security");
        if marked {
            values.insert("ws_security".into(), TemplateValue::Text(WSSE_MARK.into()));
        }
        let rendered = r.envelope.render(&values);
        if r.ws_security == WsSecurity::None {
            return rendered.replace(WSSE_MARK, "");
        }
        let (Some(user), Some(password)) = (&r.username, &r.password) else {
            return rendered;
        };
        let header = security_header(r.ws_security, user, password);
        // The template was checked to be a well-formed envelope with these very steps.
        with_security(&rendered, &header, marked).unwrap_or(rendered)
    }

    fn content_type(&self) -> String {
        let r = &self.plan;
        let charset = r.request_encoding.name().to_ascii_lowercase();
        match (r.soap12, &r.action) {
            (true, Some(a)) => format!("application/soap+xml; charset={charset}; action=\"{a}\""),
            (true, None) => format!("application/soap+xml; charset={charset}"),
            (false, _) => format!("text/xml; charset={charset}"),
        }
    }
}

/// A SOAP/XML pull source.
pub struct SoapSource {
    inner: Arc<Inner>,
}

impl PullSource for SoapSource {
    fn kind(&self) -> &'static str {
        "soap"
    }

    fn start(&self, cursor: Option<String>, mode: PullMode) -> Box<dyn PullRun> {
        let progress = self
            .inner
            .start_progress("SOAP", &self.inner.plan.watermark, cursor, mode);
        Box::new(SoapRun {
            inner: self.inner.clone(),
            progress,
            page_number: 0,
            page_value: self.inner.settings.first_page,
            fetched: 0,
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

/// One run of a SOAP source.
struct SoapRun {
    inner: Arc<Inner>,
    progress: Result<Progress, SourceError>,
    page_number: u64,
    page_value: i64,
    fetched: u64,
    done: bool,
}

impl SoapRun {
    fn values(&self, progress: &Progress) -> Values {
        let r = &self.inner.plan;
        let s = &self.inner.settings;
        let mut v = r.params.clone();
        let size = i64::from(s.page_size);
        v.insert("page".into(), TemplateValue::Number(self.page_value));
        v.insert("page_size".into(), TemplateValue::Number(size));
        v.insert(
            "offset".into(),
            TemplateValue::Number((self.page_value - s.first_page).saturating_mul(size)),
        );
        http_pull::insert_times(&mut v, progress, &r.watermark);
        if let Some(u) = &r.username {
            v.insert("username".into(), TemplateValue::Text(u.clone()));
        }
        if let Some(p) = &r.password {
            v.insert("password".into(), TemplateValue::Text(p.expose().to_string()));
        }
        v
    }

    fn fail(&mut self, e: SourceError) -> Result<Option<Page>, SourceError> {
        self.done = true;
        tracing::warn!(source = %self.inner.source_id, page = self.page_number, error = %e, "SOAP pull failed");
        self.inner.client.record_failure(&e);
        Err(e)
    }
}

#[async_trait]
impl PullRun for SoapRun {
    async fn next_page(&mut self) -> Result<Option<Page>, SourceError> {
        if self.done {
            return Ok(None);
        }
        let mut progress = http_pull::resume(&self.progress).inspect_err(|_| self.done = true)?;
        let inner = self.inner.clone();
        let s = &inner.settings;
        let r = &inner.plan;
        if self.page_number >= s.max_pages {
            return match http_pull::at_max_pages(&inner.source_id, "SOAP", &progress, &r.watermark, s.max_pages) {
                Ok(()) => {
                    self.done = true;
                    Ok(None)
                }
                Err(e) => self.fail(e),
            };
        }
        self.page_number += 1;
        let values = self.values(&progress);
        let content_type = inner.content_type();
        let answer = inner
            .send(
                |client| {
                    let body = charset::encode(&inner.envelope(&values), r.request_encoding);
                    let mut request = client
                        .post(r.url.clone())
                        .header(CONTENT_TYPE, content_type.as_str())
                        .header(reqwest::header::ACCEPT, "text/xml, application/soap+xml")
                        .body(body);
                    if !r.soap12 {
                        let action = format!("\"{}\"", r.action.as_deref().unwrap_or_default());
                        if let Ok(v) = HeaderValue::try_from(action) {
                            request = request.header("SOAPAction", v);
                        }
                    }
                    request
                },
                // A fault comes with HTTP 500 (SOAP 1.1, SOAP 1.2 receiver) or 400 (SOAP 1.2
                // sender): it is the service's answer, not a reason to try again.
                |status, body| {
                    matches!(status, StatusCode::INTERNAL_SERVER_ERROR | StatusCode::BAD_REQUEST)
                        && body.windows(5).any(|w| w == b"Fault")
                },
            )
            .await
            .inspect_err(|_| self.done = true)?;
        let encoding = answer_encoding(r.encoding, answer.content_type(), &answer.body, true);
        let decoded = charset::decode(&answer.body, encoding);
        let tree = match parse_xml_with_encoding(decoded.text.as_bytes(), &r.limits, Some(encoding_rs::UTF_8)) {
            Ok(t) => t,
            Err(e) => {
                return self.fail(SourceError::Protocol(format!(
                    "应答 XML 被拒绝 / the answer's XML is refused ({}): {e}",
                    decoded.encoding.name()
                )))
            }
        };
        if let Some(f) = fault(&tree) {
            return self.fail(f);
        }
        if !answer.status.is_success() {
            return self.fail(SourceError::Answer {
                code: format!("HTTP {}", answer.status.as_u16()),
                message: excerpt(decoded.text.trim(), 300),
            });
        }
        if find_records(&tree, "Envelope.Body").is_empty() && find_records(&tree, &s.records_path).is_empty() {
            return self.fail(SourceError::Protocol(format!(
                "应答不是 SOAP 信封 / the answer is not a SOAP envelope: {}",
                excerpt(decoded.text.trim(), 200)
            )));
        }
        // A business error ends the run before any record of this answer is taken: the cursor
        // stays where the committed pages put it.
        if let Some(status) = &r.status {
            let checked = status.check(
                |path| find_records(&tree, path).first().copied().and_then(xml_text),
                || excerpt(decoded.text.trim(), 300),
            );
            if let Err(e) = checked {
                return self.fail(e);
            }
        }
        let records = find_records(&tree, &s.records_path);
        let page_no = self.page_number;
        let mut items: Vec<SourceItem> = Vec::with_capacity(records.len());
        for (i, record) in records.iter().enumerate() {
            let text = record.to_string();
            items.push(http_pull::record_item(
                (*record).clone(),
                text,
                format!("page {page_no} #{}", i + 1),
                &decoded,
                &mut progress,
                &r.watermark,
            ));
        }
        let n = records.len();
        self.fetched += n as u64;
        let total = s
            .total_path
            .as_deref()
            .and_then(|p| find_records(&tree, p).first().copied().and_then(xml_text))
            .and_then(|t| t.parse::<u64>().ok());
        let last = !r.paginated
            || n == 0
            || (s.stop_on_short_page && n < s.page_size as usize)
            || total.is_some_and(|t| self.fetched >= t);
        self.page_value += 1;
        self.done = last;
        let cursor = http_pull::cursor_of_page(&inner.source_id, &progress, &r.watermark, last);
        tracing::debug!(source = %inner.source_id, page = page_no, records = n, last, "SOAP page pulled");
        self.progress = Ok(progress);
        Ok(Some(Page { items, cursor }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENVELOPE: &str = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ws="http://ws.example/"><soapenv:Header/><soapenv:Body><ws:queryCases><page>{{page}}</page><since>{{since}}</since></ws:queryCases></soapenv:Body></soapenv:Envelope>"#;

    #[test]
    fn password_digest_follows_the_username_token_profile() {
        // Base64(SHA-1(nonce + created + password)), checked against an independent computation.
        let nonce = [1u8, 2, 3, 4];
        let mut sha = Sha1::new();
        sha.update([1u8, 2, 3, 4]);
        sha.update(b"2024-01-01T00:00:00.000Z");
        sha.update(b"secret");
        let expected = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
        assert_eq!(password_digest(&nonce, "2024-01-01T00:00:00.000Z", "secret"), expected);
    }

    #[test]
    fn security_header_goes_into_the_header_element_or_a_new_one() {
        let h = "<S/>";
        let with = with_security(ENVELOPE, h, false).unwrap();
        assert!(
            with.contains("<soapenv:Header><S/></soapenv:Header><soapenv:Body>"),
            "{with}"
        );
        let no_header = ENVELOPE.replace("<soapenv:Header/>", "");
        let with = with_security(&no_header, h, false).unwrap();
        assert!(
            with.contains("ws.example/\"><soapenv:Header><S/></soapenv:Header><soapenv:Body>"),
            "{with}"
        );
        let open = ENVELOPE.replace("<soapenv:Header/>", "<soapenv:Header><x/></soapenv:Header>");
        let with = with_security(&open, h, false).unwrap();
        assert!(with.contains("<soapenv:Header><S/><x/></soapenv:Header>"), "{with}");
    }

    #[test]
    fn faults_of_both_versions_give_code_and_text() {
        let v11 = normalizer::xml_tree::parse_xml(
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Server</faultcode><faultstring>数据库忙</faultstring></s:Fault></s:Body></s:Envelope>"#.as_bytes(),
            &XmlLimits::default(),
        )
        .unwrap();
        let Some(SourceError::Answer { code, message }) = fault(&v11) else {
            panic!()
        };
        assert_eq!((code.as_str(), message.as_str()), ("s:Server", "数据库忙"));
        let v12 = normalizer::xml_tree::parse_xml(
            r#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body><env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode><env:Value>m:BadPage</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="zh">页码错误</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>"#.as_bytes(),
            &XmlLimits::default(),
        )
        .unwrap();
        let Some(SourceError::Answer { code, message }) = fault(&v12) else {
            panic!()
        };
        assert_eq!((code.as_str(), message.as_str()), ("env:Sender/m:BadPage", "页码错误"));
    }

    #[test]
    fn debug_of_settings_never_shows_secrets() {
        let text = format!(
            "url = \"http://h\"\nrecords_path = \"a\"\nenvelope_template = '{ENVELOPE}'\nusername = \"u\"\npassword = \"pw-secret-1\"\nws_security = \"password_text\"\nauth = {{ kind = \"basic\", username = \"b\", password = \"pw-secret-2\" }}"
        );
        let (settings, client, plan) = parse(&text.parse().unwrap(), Path::new("/")).unwrap();
        let shown = format!("{settings:?} {client:?} {plan:?}");
        assert!(
            !shown.contains("pw-secret-1") && !shown.contains("pw-secret-2"),
            "{shown}"
        );
    }

    #[test]
    fn problems_name_their_keys() {
        let keys = |text: &str| -> Vec<String> {
            check(&text.parse().unwrap(), Path::new("/"))
                .into_iter()
                .map(|p| p.key)
                .collect()
        };
        let ok = format!(
            "url = \"http://127.0.0.1/ws\"\nrecords_path = \"Envelope.Body.r.case\"\npagination = \"page\"\nwatermark_path = \"gxsj\"\nenvelope_template = '{ENVELOPE}'\nws_security = \"password_digest\"\nusername = \"u\"\npassword = \"p\""
        );
        assert!(keys(&ok).is_empty(), "{:?}", keys(&ok));
        assert_eq!(
            keys("url = \"http://h\"\nrecords_path = \"\"\nsoap_version = \"2\"\nws_security = \"password_digest\"\nenvelope_template = \"<a>{{page}}</a>\""),
            ["soap_version", "ws_security", "envelope_template", "envelope_template", "records_path"]
        );
        assert_eq!(
            keys("url = \"http://h\"\nrecords_path = \"a\"\nenvelope_template = \"<a>{{pgae}}</a>\""),
            ["envelope_template"]
        );
        assert_eq!(keys("url = \"http://h\"\nrecords_path = \"a\""), ["envelope_template"]);
        let envelope = format!("url = \"http://h\"\nrecords_path = \"a\"\nenvelope_template = '{ENVELOPE}'\n");
        assert_eq!(
            keys(&format!(
                "{envelope}success_values = [\"0000\"]\nmessage_path = \"Envelope.Body.r.msg\""
            )),
            ["success_values", "message_path"],
            "without status_path they would never be compared"
        );
        assert_eq!(
            keys(&format!("{envelope}status_path = \"\"\nsuccess_values = []")),
            ["status_path", "success_values"]
        );
        assert!(keys(&format!(
            "{envelope}status_path = \"Envelope.Body.r.code\"\nsuccess_values = [\"0000\", \"S000\"]\nmessage_path = \"Envelope.Body.r.msg\""
        ))
        .is_empty());
        assert_eq!(
            keys("records_path = \"a\"\nenvelope_template = \"x\"\nurl = \"http://h\"\nnope = 1"),
            ["nope"]
        );
    }
}
