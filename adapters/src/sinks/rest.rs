//! REST sink: one HTTP request per delivery to an upload API (the platform's, or the
//! 互联网+监管 system's), POST or PUT, JSON or XML body from a template, an
//! `Idempotency-Key: <code>:<version>` header, optional authentication (the same options as
//! the pull adapters: basic, bearer, header or API key, a token endpoint with refresh, HMAC
//! signatures; see [`crate::http::auth`]), a rate limit and timeouts. Requests of a batch run
//! concurrently (`concurrency`). Requests go through the shared HTTP client
//! ([`crate::http::client`]), one exchange each: the sink never retries, the dispatcher does.
//!
//! Answers: 2xx delivered; 408, 429 and 5xx failed attempts, retried with backoff (honouring
//! `Retry-After`); any other status (4xx, and 3xx: redirects are not followed) rejects the
//! delivery for good, with the answer kept. A receiver that cannot be reached at all defers
//! the delivery without using up an attempt.

use super::delivery::{Delivery, Outcome, Sink, SinkError};
use super::encode::{envelope, sample_delivery, DeliveryTemplate, Format};
use crate::common::charset;
use crate::common::http_error::{AuthError, HttpError};
use crate::common::retry_after::retry_after_header;
use crate::common::settings::{joined, template_text, SettingsProblem};
use crate::common::template::Escaping;
use crate::common::text::excerpt;
/// `auth` of a REST sink: the same options as the pull adapters' (see [`crate::http::auth`]).
pub use crate::http::auth::AuthSettings;
use crate::http::auth::{auth_of, Auth};
use crate::http::client::{header_map, Answer, ClientOptions, HttpClient, RetryPolicy};
use async_trait::async_trait;
use futures_util::StreamExt;
use governor::Quota;
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How much of an answer's body is kept with a failed or rejected delivery.
const ANSWER_EXCERPT: usize = 2000;

/// Settings of `kind = "rest"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestSettings {
    /// The upload URL; may contain placeholders such as `{{unified_code}}` (percent-encoded).
    pub url: String,
    /// `POST` (default) or `PUT`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Body format: `json` (default) or `xml`; sets `Content-Type`.
    #[serde(default = "default_format")]
    pub format: Format,
    /// Body template inline (default: the envelope). Placeholders: `{{record}}`,
    /// `{{unified_code}}`, `{{version}}`, `{{idempotency_key}}`, `{{case_type}}`, `{{region}}`,
    /// `{{year}}`, `{{withdrawn}}`, `{{committed_at}}`, `{{envelope}}`.
    pub body_template: Option<String>,
    /// Body template in a file (relative to the configuration file).
    pub body_template_file: Option<PathBuf>,
    /// Extra headers sent with every request (not for secrets: use `auth`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Authentication (default none).
    pub auth: Option<AuthSettings>,
    /// Most requests per second (default unlimited).
    pub rate_limit_per_second: Option<u32>,
    /// Requests allowed at once above the rate (default: the rate).
    pub rate_limit_burst: Option<u32>,
    /// Longest wait for an answer, seconds (default 30).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Longest wait for a connection, seconds (default 10).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_seconds: u64,
    /// Requests in flight at once (default 8).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

fn default_method() -> String {
    "POST".into()
}
fn default_format() -> Format {
    Format::Json
}
fn default_timeout() -> u64 {
    30
}
fn default_connect_timeout() -> u64 {
    10
}
fn default_concurrency() -> usize {
    8
}

/// How each delivery becomes a request: method, URL and body, from the checked templates.
#[derive(Debug)]
struct UploadRequest {
    method: Method,
    url: DeliveryTemplate,
    body: Option<DeliveryTemplate>,
}

impl RestSettings {
    /// Check every key: the requests to make, and the options of the client that sends them.
    fn resolve(&self, base: &Path) -> Result<(UploadRequest, ClientOptions), Vec<SettingsProblem>> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, message: String| {
            problems.push(SettingsProblem {
                key: key.into(),
                message,
            })
        };
        let method = match self.method.to_ascii_uppercase().as_str() {
            "POST" => Some(Method::POST),
            "PUT" => Some(Method::PUT),
            other => {
                problem(
                    "method",
                    format!("方法应为 POST 或 PUT / method must be POST or PUT, got {other:?}"),
                );
                None
            }
        };
        let url = match DeliveryTemplate::parse(&self.url, Escaping::Url) {
            Ok(t) => {
                match reqwest::Url::parse(&t.render(&sample_delivery())) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                    Ok(u) => problem(
                        "url",
                        format!("应为 http(s) 地址 / must be http or https, got {}:", u.scheme()),
                    ),
                    Err(e) => problem("url", format!("无效的 URL / invalid URL: {e}")),
                }
                Some(t)
            }
            Err(e) => {
                problem("url", e);
                None
            }
        };
        let escaping = match self.format {
            Format::Json => Escaping::Json,
            Format::Xml => Escaping::Xml,
        };
        let template_text = template_text(
            self.body_template.as_ref(),
            self.body_template_file.as_ref(),
            ("body_template", "body_template_file"),
            base,
        )
        .unwrap_or_else(|p| {
            problem(&p.key, p.message);
            None
        });
        let key = if self.body_template_file.is_some() {
            "body_template_file"
        } else {
            "body_template"
        };
        let body = match template_text.map(|t| DeliveryTemplate::parse(&t, escaping)) {
            None => None,
            Some(Err(e)) => {
                problem(key, e);
                None
            }
            Some(Ok(t)) => {
                if self.format == Format::Json {
                    if let Err(e) = serde_json::from_str::<serde_json::Value>(&t.render(&sample_delivery())) {
                        problem(
                            key,
                            format!("模板生成的不是合法 JSON / the template does not give valid JSON: {e}"),
                        );
                    }
                }
                Some(t)
            }
        };
        let headers = header_map(&self.headers, &mut problems);
        let auth = auth_of(self.auth.as_ref(), base, &mut problems);
        if self.rate_limit_per_second == Some(0) || self.rate_limit_burst == Some(0) {
            problems.push(SettingsProblem {
                key: "rate_limit_per_second".into(),
                message: "应至少为 1 / must be at least 1".into(),
            });
        }
        if self.concurrency == 0 || self.concurrency > 256 {
            problems.push(SettingsProblem {
                key: "concurrency".into(),
                message: "应在 1..256 / must be 1..256".into(),
            });
        }
        if self.timeout_seconds == 0 || self.connect_timeout_seconds == 0 {
            problems.push(SettingsProblem {
                key: "timeout_seconds".into(),
                message: "超时应至少1秒 / timeouts must be at least 1 second".into(),
            });
        }
        match (method, url) {
            (Some(method), Some(url)) if problems.is_empty() => {
                Ok((UploadRequest { method, url, body }, self.client_options(headers, auth)))
            }
            _ => Err(problems),
        }
    }

    /// The client's options: no redirects (a 3xx is the receiver's answer), the rate limit and
    /// timeouts set, and no limit of its own on requests in flight or answer size (each batch
    /// sends `concurrency` requests at once).
    fn client_options(&self, headers: HeaderMap, auth: Auth) -> ClientOptions {
        let quota = self.rate_limit_per_second.and_then(NonZeroU32::new).map(|rate| {
            let burst = self.rate_limit_burst.and_then(NonZeroU32::new).unwrap_or(rate);
            Quota::per_second(rate).allow_burst(burst)
        });
        ClientOptions {
            timeout: Duration::from_secs(self.timeout_seconds),
            connect_timeout: Duration::from_secs(self.connect_timeout_seconds),
            follow_redirects: false,
            origins: None,
            quota,
            concurrency: None,
            max_response_bytes: None,
            headers,
            auth,
            // Not used: the sink sends with `exchange`, which neither retries nor opens a circuit.
            retry: RetryPolicy::default(),
        }
    }

    /// Problems found without connecting.
    pub fn check(&self, base: &Path) -> Vec<SettingsProblem> {
        self.resolve(base).err().unwrap_or_default()
    }
}

/// What an HTTP answer means for the delivery.
pub fn answer_outcome(status: StatusCode, retry_after: Option<Duration>, body: &str) -> Outcome {
    if status.is_success() {
        return Outcome::Delivered;
    }
    let answer = format!("HTTP {}: {}", status.as_u16(), excerpt(body.trim(), ANSWER_EXCERPT));
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS {
        Outcome::Failed {
            error: answer,
            retry_after,
        }
    } else {
        Outcome::Rejected { error: answer }
    }
}

/// The REST sink.
pub struct RestSink {
    client: HttpClient,
    request: UploadRequest,
    format: Format,
    concurrency: usize,
}

impl RestSink {
    /// A sink with its HTTP client (connections open on the first request).
    pub fn new(sink_id: &str, settings: &RestSettings, base: &Path) -> Result<RestSink, SinkError> {
        let (request, options) = settings
            .resolve(base)
            .map_err(|problems| SinkError::Settings(joined(&problems)))?;
        let client = HttpClient::with_options(sink_id, options).map_err(|e| match e {
            HttpError::Client(m) => SinkError::Client(m),
            other => SinkError::Client(other.to_string()),
        })?;
        Ok(RestSink {
            client,
            request,
            format: settings.format,
            concurrency: settings.concurrency.max(1),
        })
    }

    async fn send(&self, d: &Delivery) -> Outcome {
        let r = &self.request;
        let url = r.url.render(d);
        let body = match &r.body {
            Some(t) => t.render(d).into_bytes(),
            None => envelope(d, self.format),
        };
        let build = |client: &reqwest::Client| {
            client
                .request(r.method.clone(), url.as_str())
                .header(CONTENT_TYPE, self.format.content_type())
                .header("Idempotency-Key", d.idempotency_key.as_str())
                .body(body.clone())
        };
        match self.client.exchange(build).await {
            Ok(answer) => answer_outcome(
                answer.status,
                retry_after_header(&answer.headers),
                &answer_text(&answer),
            ),
            // The receiver answered; what it said is lost, its status is not.
            Err(HttpError::Body { status, headers, .. }) => answer_outcome(status, retry_after_header(&headers), ""),
            Err(HttpError::Auth(e @ AuthError::Unreachable(_))) => Outcome::deferred(e.to_string()),
            Err(HttpError::Auth(e)) => Outcome::failed(e.to_string()),
            Err(HttpError::Request(detail)) => Outcome::Rejected {
                error: format!("cannot build the request: {detail}"),
            },
            // Never show the URL: it may carry a key in its query (the client leaves it out).
            Err(HttpError::Connect(detail) | HttpError::ConnectTimeout(detail)) => {
                Outcome::deferred(format!("cannot reach the receiver: {detail}"))
            }
            Err(HttpError::Timeout(detail)) => Outcome::failed(format!("no answer in time: {detail}")),
            Err(HttpError::Send(detail)) => Outcome::failed(format!("request failed: {detail}")),
            Err(other) => Outcome::failed(other.to_string()),
        }
    }
}

/// The body of an answer as text, decoded by its `Content-Type` charset (UTF-8 by default).
fn answer_text(answer: &Answer) -> String {
    let encoding = charset::answer_encoding(None, answer.content_type(), &answer.body, false);
    charset::decode(&answer.body, encoding).text
}

#[async_trait]
impl Sink for RestSink {
    fn kind(&self) -> &'static str {
        "rest"
    }

    async fn deliver(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes = vec![Outcome::deferred("not sent"); batch.len()];
        let requests: Vec<_> = batch
            .iter()
            .enumerate()
            .map(|(i, d)| async move { (i, self.send(d).await) })
            .collect();
        let mut answers = futures_util::stream::iter(requests).buffer_unordered(self.concurrency);
        while let Some((i, outcome)) = answers.next().await {
            outcomes[i] = outcome;
        }
        outcomes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> RestSettings {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn answers_map_to_outcomes_as_the_platform_expects() {
        assert_eq!(answer_outcome(StatusCode::OK, None, ""), Outcome::Delivered);
        assert_eq!(answer_outcome(StatusCode::CREATED, None, ""), Outcome::Delivered);
        let rejected = answer_outcome(StatusCode::UNPROCESSABLE_ENTITY, None, " {\"error\":\"缺少字段\"} ");
        assert_eq!(
            rejected,
            Outcome::Rejected {
                error: "HTTP 422: {\"error\":\"缺少字段\"}".into()
            }
        );
        for retried in [500, 502, 503, 408, 429] {
            let status = StatusCode::from_u16(retried).unwrap();
            assert!(
                matches!(answer_outcome(status, None, ""), Outcome::Failed { .. }),
                "{retried}"
            );
        }
        let wait = Some(Duration::from_secs(7));
        assert_eq!(
            answer_outcome(StatusCode::TOO_MANY_REQUESTS, wait, "slow down"),
            Outcome::Failed {
                error: "HTTP 429: slow down".into(),
                retry_after: wait
            }
        );
        assert!(matches!(
            answer_outcome(StatusCode::FOUND, None, ""),
            Outcome::Rejected { .. }
        ));
    }

    #[test]
    fn settings_problems_name_their_keys() {
        let s = settings(
            "url = \"ftp://x/{{nope}}\"\nmethod = \"GET\"\nbody_template = \"{ {{record}\"\nauth = { kind = \"bearer\" }\nconcurrency = 0",
        );
        let keys: Vec<String> = s.check(Path::new("/")).into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["method", "url", "body_template", "auth.token", "concurrency"]);
    }

    #[test]
    fn a_json_template_must_give_json() {
        let s = settings("url = \"http://127.0.0.1/up\"\nbody_template = \"{\\\"a\\\": {{unified_code}\"");
        assert!(s.check(Path::new("/"))[0].message.contains("unclosed"));
        let s = settings("url = \"http://127.0.0.1/up\"\nbody_template = \"{\\\"a\\\": {{unified_code}} \"");
        assert!(s.check(Path::new("/"))[0].message.contains("valid JSON"));
        let s = settings("url = \"http://127.0.0.1/up/{{unified_code}}\"\nmethod = \"put\"\nbody_template = \"{\\\"a\\\": {{record}}}\"");
        assert!(s.check(Path::new("/")).is_empty());
    }
}
