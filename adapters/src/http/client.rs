//! One HTTP client per pull source: rate limit (governor: never more than the configured rate,
//! plus the burst), a concurrency limit, connect and request timeouts, retries with exponential
//! backoff and jitter on 5xx, 408, 429 (honouring `Retry-After`, in seconds or as an HTTP date),
//! timeouts and connection errors, a token refresh and one new try after a 401, a circuit
//! breaker, and the counters behind `health()`.
//!
//! The circuit breaker counts consecutive failed attempts (an answer 5xx/408/429, a timeout, a
//! connection error). After `circuit_failures` of them it opens: requests fail at once with
//! [`SourceError::CircuitOpen`] for `circuit_open_seconds`; then one trial request is let
//! through (half-open): its success closes the circuit, its failure opens it again. Any answer
//! that shows the source is up (2xx, 4xx, a SOAP fault) resets the count.

use super::auth::{Auth, AuthError, AuthSettings};
use crate::common::retry_after::parse_retry_after;
use crate::common::settings::SettingsProblem;
use crate::common::text::excerpt;
use crate::sources::{CircuitState, SourceError, SourceHealth};
use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How much of an error answer's body is kept in errors and `last_error`.
const ANSWER_EXCERPT: usize = 500;

/// Keys of [`ClientSettings`], accepted in `[sources.rest]` and `[sources.soap]`.
pub const CLIENT_KEYS: &[&str] = &[
    "timeout_seconds",
    "connect_timeout_seconds",
    "rate_limit_per_second",
    "rate_limit_burst",
    "concurrency",
    "max_attempts",
    "retry_initial_ms",
    "retry_max_ms",
    "circuit_failures",
    "circuit_open_seconds",
    "max_response_bytes",
    "headers",
    "auth",
];

/// Connection behaviour of a pull source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    /// Longest wait for a whole answer, seconds (default 30; fractions allowed).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: f64,
    /// Longest wait for a connection, seconds (default 10).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_seconds: f64,
    /// Most requests per second, fractions allowed (`0.5`: one every two seconds); default
    /// unlimited. Token requests count too.
    pub rate_limit_per_second: Option<f64>,
    /// Requests allowed at once above the rate (default 1: never faster than the rate).
    pub rate_limit_burst: Option<u32>,
    /// Requests in flight at once (default 4).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Attempts per request before the pull run fails (default 5).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First retry delay, ms (default 500); doubles each attempt, half of it random.
    #[serde(default = "default_retry_initial")]
    pub retry_initial_ms: u64,
    /// Longest retry delay, ms (default 30000); a `Retry-After` longer than this fails the run.
    #[serde(default = "default_retry_max")]
    pub retry_max_ms: u64,
    /// Consecutive failed attempts that open the circuit (default 10).
    #[serde(default = "default_circuit_failures")]
    pub circuit_failures: u32,
    /// How long an open circuit pauses the source, seconds (default 60).
    #[serde(default = "default_circuit_open")]
    pub circuit_open_seconds: f64,
    /// Largest answer accepted, bytes (default 64 MiB).
    #[serde(default = "default_max_response")]
    pub max_response_bytes: usize,
    /// Extra headers sent with every request (not for secrets: use `auth`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Authentication (default none); see [`super::auth`].
    pub auth: Option<AuthSettings>,
}

fn default_timeout() -> f64 {
    30.0
}
fn default_connect_timeout() -> f64 {
    10.0
}
fn default_concurrency() -> usize {
    4
}
fn default_attempts() -> u32 {
    5
}
fn default_retry_initial() -> u64 {
    500
}
fn default_retry_max() -> u64 {
    30_000
}
fn default_circuit_failures() -> u32 {
    10
}
fn default_circuit_open() -> f64 {
    60.0
}
fn default_max_response() -> usize {
    64 * 1024 * 1024
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            timeout_seconds: default_timeout(),
            connect_timeout_seconds: default_connect_timeout(),
            rate_limit_per_second: None,
            rate_limit_burst: None,
            concurrency: default_concurrency(),
            max_attempts: default_attempts(),
            retry_initial_ms: default_retry_initial(),
            retry_max_ms: default_retry_max(),
            circuit_failures: default_circuit_failures(),
            circuit_open_seconds: default_circuit_open(),
            max_response_bytes: default_max_response(),
            headers: BTreeMap::new(),
            auth: None,
        }
    }
}

/// Everything of [`ClientSettings`] that needs checking, resolved.
struct Resolved {
    headers: HeaderMap,
    auth: Auth,
}

fn seconds_ok(v: f64, min: f64, max: f64) -> bool {
    v.is_finite() && v >= min && v <= max
}

impl ClientSettings {
    fn resolve(&self, base: &Path) -> Result<Resolved, Vec<SettingsProblem>> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, message: &str| {
            problems.push(SettingsProblem {
                key: key.into(),
                message: message.into(),
            })
        };
        if !seconds_ok(self.timeout_seconds, 0.01, 3600.0) {
            problem("timeout_seconds", "应在 0.01..3600 秒 / must be 0.01..3600 seconds");
        }
        if !seconds_ok(self.connect_timeout_seconds, 0.01, 3600.0) {
            problem(
                "connect_timeout_seconds",
                "应在 0.01..3600 秒 / must be 0.01..3600 seconds",
            );
        }
        if matches!(self.rate_limit_per_second, Some(r) if !seconds_ok(r, 0.001, 100_000.0)) {
            problem("rate_limit_per_second", "应在 0.001..100000 / must be 0.001..100000");
        }
        if self.rate_limit_burst == Some(0) {
            problem("rate_limit_burst", "应至少为 1 / must be at least 1");
        }
        if self.concurrency == 0 || self.concurrency > 256 {
            problem("concurrency", "应在 1..256 / must be 1..256");
        }
        if self.max_attempts == 0 || self.max_attempts > 100 {
            problem("max_attempts", "应在 1..100 / must be 1..100");
        }
        if self.retry_initial_ms == 0 || self.retry_max_ms < self.retry_initial_ms {
            problem(
                "retry_max_ms",
                "需 0 < retry_initial_ms ≤ retry_max_ms / need 0 < retry_initial_ms <= retry_max_ms",
            );
        }
        if self.circuit_failures == 0 {
            problem("circuit_failures", "应至少为 1 / must be at least 1");
        }
        if !seconds_ok(self.circuit_open_seconds, 0.01, 86_400.0) {
            problem(
                "circuit_open_seconds",
                "应在 0.01..86400 秒 / must be 0.01..86400 seconds",
            );
        }
        if self.max_response_bytes < 1024 {
            problem("max_response_bytes", "应至少为 1024 / must be at least 1024");
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            match (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                (Ok(n), Ok(v)) => {
                    headers.insert(n, v);
                }
                _ => problems.push(SettingsProblem {
                    key: format!("headers.{name}"),
                    message: "无效的 HTTP 头 / invalid HTTP header".into(),
                }),
            }
        }
        let auth = match self.auth.as_ref().map(|a| a.resolve(base, "auth.")).transpose() {
            Ok(a) => a.unwrap_or(Auth::None),
            Err(p) => {
                problems.extend(p);
                Auth::None
            }
        };
        if problems.is_empty() {
            Ok(Resolved { headers, auth })
        } else {
            Err(problems)
        }
    }

    /// Problems found without connecting (values in range, headers valid, secrets readable).
    pub fn check(&self, base: &Path) -> Vec<SettingsProblem> {
        self.resolve(base).err().unwrap_or_default()
    }
}

/// An answer read whole.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The body, as received.
    pub body: Vec<u8>,
}

impl Answer {
    /// The `Content-Type` header, if readable.
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }
}

#[derive(Debug)]
struct Breaker {
    state: CircuitState,
    consecutive: u32,
    until: Option<(Instant, DateTime<Utc>)>,
    trial_in_flight: bool,
}

#[derive(Debug)]
struct State {
    breaker: Breaker,
    requests: u64,
    failures: u64,
    retries: u64,
    last_error: Option<(DateTime<Utc>, String)>,
}

/// What one attempt gave.
enum Attempt {
    Done(Answer),
    /// Try again (after this wait, if the source asked for one).
    Transient(String, Option<Duration>),
    /// Stop with this error; `reachable` says the source answered (resets the breaker).
    Final(SourceError, bool),
    /// 401 with a token that can be refreshed.
    Unauthorized(String),
}

/// The HTTP client of one pull source.
pub struct HttpClient {
    source_id: String,
    client: reqwest::Client,
    auth: Auth,
    headers: HeaderMap,
    limiter: Option<DefaultDirectRateLimiter>,
    permits: tokio::sync::Semaphore,
    max_attempts: u32,
    retry_initial: Duration,
    retry_max: Duration,
    circuit_failures: u32,
    circuit_open: Duration,
    max_response_bytes: usize,
    state: Mutex<State>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("source_id", &self.source_id)
            .finish_non_exhaustive()
    }
}

/// An error with its causes, without the request URL (it may carry a key in its query).
pub fn error_chain(e: &reqwest::Error) -> String {
    let mut text = match e.url() {
        Some(u) => e.to_string().replace(u.as_str(), "<url>"),
        None => e.to_string(),
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    excerpt(&text, 500)
}

impl HttpClient {
    /// A client for `source_id` (no connection is made before the first request).
    pub fn new(source_id: &str, settings: &ClientSettings, base: &Path) -> Result<HttpClient, SourceError> {
        let resolved = settings.resolve(base).map_err(|problems| {
            SourceError::Settings(problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
        })?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("ganzhi-gateway/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs_f64(settings.timeout_seconds))
            .connect_timeout(Duration::from_secs_f64(settings.connect_timeout_seconds))
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|e| {
                SourceError::Settings(format!(
                    "无法创建 HTTP 客户端 / cannot create the HTTP client: {}",
                    error_chain(&e)
                ))
            })?;
        let limiter = settings.rate_limit_per_second.map(|rate| {
            let burst = settings
                .rate_limit_burst
                .and_then(std::num::NonZeroU32::new)
                .unwrap_or(std::num::NonZeroU32::MIN);
            let period = Duration::from_secs_f64(1.0 / rate).max(Duration::from_nanos(1));
            let quota = Quota::with_period(period).unwrap_or_else(|| Quota::per_second(std::num::NonZeroU32::MAX));
            RateLimiter::direct(quota.allow_burst(burst))
        });
        Ok(HttpClient {
            source_id: source_id.to_string(),
            client,
            auth: resolved.auth,
            headers: resolved.headers,
            limiter,
            permits: tokio::sync::Semaphore::new(settings.concurrency.max(1)),
            max_attempts: settings.max_attempts.max(1),
            retry_initial: Duration::from_millis(settings.retry_initial_ms),
            retry_max: Duration::from_millis(settings.retry_max_ms),
            circuit_failures: settings.circuit_failures.max(1),
            circuit_open: Duration::from_secs_f64(settings.circuit_open_seconds),
            max_response_bytes: settings.max_response_bytes,
            state: Mutex::new(State {
                breaker: Breaker {
                    state: CircuitState::Closed,
                    consecutive: 0,
                    until: None,
                    trial_in_flight: false,
                },
                requests: 0,
                failures: 0,
                retries: 0,
                last_error: None,
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the counters inconsistent in a way that
        // matters more than stopping: take the data either way.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What operators see: circuit state, last error, counts.
    pub fn health(&self) -> SourceHealth {
        let s = self.state();
        let (circuit, reopens) = match (s.breaker.state, s.breaker.until) {
            (CircuitState::Open, Some((at, utc))) if Instant::now() >= at => (CircuitState::HalfOpen, Some(utc)),
            (state, until) => (state, until.map(|(_, utc)| utc)),
        };
        SourceHealth {
            circuit,
            circuit_reopens_at: if circuit == CircuitState::Closed { None } else { reopens },
            last_error: s.last_error.clone(),
            requests: s.requests,
            failures: s.failures,
            retries: s.retries,
        }
    }

    /// May a request go out now? (Takes the half-open trial when it is due.)
    fn admit(&self) -> Result<(), SourceError> {
        let mut s = self.state();
        let b = &mut s.breaker;
        match b.state {
            CircuitState::Closed => Ok(()),
            CircuitState::Open => match b.until {
                Some((at, _)) if Instant::now() < at => Err(SourceError::CircuitOpen {
                    until: b.until.map_or_else(Utc::now, |(_, utc)| utc),
                }),
                _ => {
                    b.state = CircuitState::HalfOpen;
                    b.trial_in_flight = true;
                    tracing::info!(source = %self.source_id, "circuit half-open: sending one trial request");
                    Ok(())
                }
            },
            CircuitState::HalfOpen if b.trial_in_flight => Err(SourceError::CircuitOpen {
                until: b.until.map_or_else(Utc::now, |(_, utc)| utc),
            }),
            CircuitState::HalfOpen => {
                b.trial_in_flight = true;
                Ok(())
            }
        }
    }

    /// The source answered: close the circuit.
    fn reachable(&self) {
        let mut s = self.state();
        let b = &mut s.breaker;
        if b.state != CircuitState::Closed {
            tracing::info!(source = %self.source_id, "circuit closed: the source answers again");
        }
        b.state = CircuitState::Closed;
        b.consecutive = 0;
        b.until = None;
        b.trial_in_flight = false;
    }

    /// An attempt failed; true when the circuit is (now) open.
    fn attempt_failed(&self, error: &str) -> bool {
        let mut s = self.state();
        s.last_error = Some((Utc::now(), error.to_string()));
        let b = &mut s.breaker;
        b.consecutive = b.consecutive.saturating_add(1);
        b.trial_in_flight = false;
        if b.state == CircuitState::HalfOpen || b.consecutive >= self.circuit_failures {
            let utc = Utc::now() + chrono::Duration::from_std(self.circuit_open).unwrap_or_default();
            b.state = CircuitState::Open;
            b.until = Some((Instant::now() + self.circuit_open, utc));
            tracing::warn!(
                source = %self.source_id,
                consecutive_failures = b.consecutive,
                reopens_at = %utc,
                "circuit open: the source is paused"
            );
            return true;
        }
        false
    }

    /// Count a pull that failed after its answer arrived (a business status, a SOAP fault, an
    /// unreadable answer), so that `health()` shows it.
    pub fn record_failure(&self, error: &SourceError) {
        self.request_failed(error);
    }

    fn request_failed(&self, error: &SourceError) {
        let mut s = self.state();
        s.failures += 1;
        s.last_error = Some((Utc::now(), error.to_string()));
    }

    /// The backoff before retry number `retry` (1-based): doubling from the initial delay up to
    /// the maximum, the upper half random.
    fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .retry_initial
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1).min(20)))
            .min(self.retry_max);
        let half = exp / 2;
        let jitter = rand::rng().random_range(0..=half.as_micros().min(u128::from(u64::MAX)) as u64);
        half + Duration::from_micros(jitter)
    }

    /// Send a request built by `build` (called again for every attempt), with retries.
    /// `is_answer` may claim an answer that is not 2xx as the source's final word (e.g. a SOAP
    /// fault in an HTTP 500): it is then returned as it is, without retrying.
    pub async fn send<F, A>(&self, build: F, is_answer: A) -> Result<Answer, SourceError>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        A: Fn(StatusCode, &[u8]) -> bool,
    {
        let mut attempt: u32 = 0;
        let mut refreshed = false;
        loop {
            if let Err(e) = self.admit() {
                self.request_failed(&e);
                return Err(e);
            }
            attempt += 1;
            let outcome = self.attempt(&build, &is_answer).await;
            let (error, retry_after) = match outcome {
                Attempt::Done(answer) => {
                    self.reachable();
                    return Ok(answer);
                }
                Attempt::Final(e, reachable) => {
                    if reachable {
                        self.reachable();
                    } else {
                        let mut s = self.state();
                        s.breaker.trial_in_flight = false;
                    }
                    self.request_failed(&e);
                    return Err(e);
                }
                Attempt::Unauthorized(message) => {
                    self.reachable();
                    if !refreshed {
                        refreshed = true;
                        attempt -= 1;
                        tracing::info!(source = %self.source_id, "HTTP 401: fetching a new token and sending again");
                        continue;
                    }
                    let e = SourceError::Auth(message);
                    self.request_failed(&e);
                    return Err(e);
                }
                Attempt::Transient(error, retry_after) => (error, retry_after),
            };
            if self.attempt_failed(&error) {
                let until = self.state().breaker.until.map_or_else(Utc::now, |(_, utc)| utc);
                let e = SourceError::CircuitOpen { until };
                self.request_failed(&e);
                return Err(e);
            }
            if attempt >= self.max_attempts {
                let e = SourceError::Unavailable(format!("{error} ({attempt} 次尝试后 / after {attempt} attempts)"));
                self.request_failed(&e);
                return Err(e);
            }
            let wait = match retry_after {
                Some(w) if w > self.retry_max => {
                    let e = SourceError::Unavailable(format!(
                        "{error}; 来源要求等待 {} 秒，超过 retry_max_ms / the source asks to wait {} s, longer than retry_max_ms",
                        w.as_secs(),
                        w.as_secs()
                    ));
                    self.request_failed(&e);
                    return Err(e);
                }
                Some(w) => w,
                None => self.backoff(attempt),
            };
            self.state().retries += 1;
            tracing::warn!(
                source = %self.source_id,
                attempt,
                wait_ms = wait.as_millis() as u64,
                error = %error,
                "request failed; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt<F, A>(&self, build: &F, is_answer: &A) -> Attempt
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        A: Fn(StatusCode, &[u8]) -> bool,
    {
        let Ok(_permit) = self.permits.acquire().await else {
            return Attempt::Final(SourceError::Unavailable("client closed".into()), false);
        };
        let mut request = match build(&self.client).build() {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Final(
                    SourceError::Settings(format!("无法构造请求 / cannot build the request: {}", error_chain(&e))),
                    false,
                )
            }
        };
        for (name, value) in &self.headers {
            if !request.headers().contains_key(name) {
                request.headers_mut().insert(name.clone(), value.clone());
            }
        }
        let used = match self
            .auth
            .authorize(&self.client, &mut request, self.limiter.as_ref())
            .await
        {
            Ok(u) => u,
            Err(AuthError::Unreachable(m)) => return Attempt::Transient(format!("token endpoint: {m}"), None),
            Err(e) => return Attempt::Final(SourceError::Auth(e.to_string()), true),
        };
        if let Some(l) = &self.limiter {
            l.until_ready().await;
        }
        self.state().requests += 1;
        let started = Instant::now();
        let response = match self.client.execute(request).await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Attempt::Transient(format!("no answer in time: {}", error_chain(&e)), None)
            }
            Err(e) if e.is_connect() => {
                return Attempt::Transient(format!("cannot connect: {}", error_chain(&e)), None)
            }
            Err(e) => return Attempt::Transient(format!("request failed: {}", error_chain(&e)), None),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = match self.read_body(response).await {
            Ok(b) => b,
            Err(attempt) => return attempt,
        };
        tracing::debug!(
            source = %self.source_id,
            status = status.as_u16(),
            bytes = body.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "answer"
        );
        let answer_text = || {
            format!(
                "HTTP {}: {}",
                status.as_u16(),
                excerpt(String::from_utf8_lossy(&body).trim(), ANSWER_EXCERPT)
            )
        };
        if status.is_success() || is_answer(status, &body) {
            return Attempt::Done(Answer { status, headers, body });
        }
        if status == StatusCode::UNAUTHORIZED {
            if self.auth.unauthorized(used).await {
                return Attempt::Unauthorized(answer_text());
            }
            return Attempt::Final(SourceError::Auth(answer_text()), true);
        }
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT
        {
            let retry_after = headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            return Attempt::Transient(answer_text(), retry_after);
        }
        let error = if status == StatusCode::FORBIDDEN {
            SourceError::Auth(answer_text())
        } else {
            SourceError::Answer {
                code: format!("HTTP {}", status.as_u16()),
                message: excerpt(String::from_utf8_lossy(&body).trim(), ANSWER_EXCERPT),
            }
        };
        Attempt::Final(error, true)
    }

    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, Attempt> {
        let too_large = |size: u64| {
            Attempt::Final(
                SourceError::Protocol(format!(
                    "应答过大：{size} 字节以上，上限 {} / answer too large: over {size} bytes, limit {} (max_response_bytes)",
                    self.max_response_bytes, self.max_response_bytes
                )),
                true,
            )
        };
        if let Some(len) = response.content_length() {
            if len > self.max_response_bytes as u64 {
                return Err(too_large(len));
            }
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.max_response_bytes {
                        return Err(too_large((body.len() + chunk.len()) as u64));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(e) if e.is_timeout() => {
                    return Err(Attempt::Transient(
                        format!("answer not complete in time: {}", error_chain(&e)),
                        None,
                    ))
                }
                Err(e) => {
                    return Err(Attempt::Transient(
                        format!("answer broken off: {}", error_chain(&e)),
                        None,
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(text: &str) -> HttpClient {
        let s: ClientSettings = toml::from_str(text).unwrap();
        HttpClient::new("t", &s, Path::new("/")).unwrap()
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_with_jitter_in_the_upper_half() {
        let c = client("retry_initial_ms = 100\nretry_max_ms = 1000");
        for _ in 0..50 {
            let first = c.backoff(1);
            assert!(
                first >= Duration::from_millis(50) && first <= Duration::from_millis(100),
                "{first:?}"
            );
            let third = c.backoff(3);
            assert!(
                third >= Duration::from_millis(200) && third <= Duration::from_millis(400),
                "{third:?}"
            );
            let late = c.backoff(30);
            assert!(
                late >= Duration::from_millis(500) && late <= Duration::from_millis(1000),
                "{late:?}"
            );
        }
    }

    #[test]
    fn circuit_opens_after_consecutive_failures_then_lets_one_trial_through() {
        let c = client("circuit_failures = 3\ncircuit_open_seconds = 0.05");
        assert!(!c.attempt_failed("a") && !c.attempt_failed("b"));
        c.reachable();
        assert!(!c.attempt_failed("a") && !c.attempt_failed("b"));
        assert!(c.attempt_failed("c"));
        assert!(matches!(c.admit(), Err(SourceError::CircuitOpen { .. })));
        assert_eq!(c.health().circuit, CircuitState::Open);
        assert!(c.health().circuit_reopens_at.is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.health().circuit, CircuitState::HalfOpen);
        assert!(c.admit().is_ok(), "the trial");
        assert!(
            matches!(c.admit(), Err(SourceError::CircuitOpen { .. })),
            "only one trial"
        );
        assert!(c.attempt_failed("trial failed"), "a failed trial opens again");
        std::thread::sleep(Duration::from_millis(60));
        assert!(c.admit().is_ok());
        c.reachable();
        assert_eq!(c.health().circuit, CircuitState::Closed);
        assert!(c.health().circuit_reopens_at.is_none());
        assert!(c.admit().is_ok() && c.admit().is_ok());
    }

    #[test]
    fn settings_problems_name_their_keys() {
        let s: ClientSettings = toml::from_str(
            "timeout_seconds = 0\nrate_limit_per_second = -1\nconcurrency = 0\nretry_initial_ms = 10\nretry_max_ms = 5\nheaders = { \"bad header\" = \"x\" }\nauth = { kind = \"bearer\" }",
        )
        .unwrap();
        let keys: Vec<String> = s.check(Path::new("/")).into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "timeout_seconds",
                "rate_limit_per_second",
                "concurrency",
                "retry_max_ms",
                "headers.bad header",
                "auth.token"
            ]
        );
        let ok: ClientSettings = toml::from_str("timeout_seconds = 2\nrate_limit_per_second = 5").unwrap();
        assert!(ok.check(Path::new("/")).is_empty());
    }
}
