//! One HTTP client per pull source (and one for the REST sink): rate limit (governor: never
//! more than the configured rate, plus the burst), a concurrency limit, connect and request
//! timeouts, the configured headers and authentication, a token refresh and one new try after a
//! 401, and the counters behind `health()`.
//!
//! [`HttpClient::send`], for the pull sources, also retries with exponential backoff and jitter
//! on 5xx, 408, 429 (honouring `Retry-After`, in seconds or as an HTTP date), timeouts and
//! connection errors, behind a circuit breaker. [`HttpClient::exchange`], for the REST sink,
//! sends once and hands back whatever the peer answered: its caller decides about retries.
//!
//! The circuit breaker counts consecutive failed attempts (an answer 5xx/408/429, a timeout, a
//! connection error). After `circuit_failures` of them it opens: requests fail at once with
//! [`HttpError::CircuitOpen`] for `circuit_open_seconds`; then one trial request is let
//! through (half-open): its success closes the circuit, its failure opens it again. Any answer
//! that shows the source is up (2xx, 4xx, a SOAP fault) resets the count.
//!
//! A pull source's client sends requests, and follows redirects, only to the origin of the
//! source's `url` and the hosts of its `allowed_hosts` (see [`super::origin`]): anything else
//! fails at once with [`HttpError::ForeignOrigin`], before any credential is added, and is
//! not retried.

use super::auth::{auth_of, Auth, AuthSettings, AuthUsed};
use super::origin::{allowed_hosts, OriginGuard};
use crate::common::health::{CircuitState, SourceHealth};
use crate::common::http_error::{error_chain, foreign_origin_of, AuthError, Hop, HttpError};
use crate::common::retry_after::retry_after_header;
use crate::common::settings::{joined, SettingsProblem};
use crate::common::text::excerpt;
use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::Path;
use std::sync::{Arc, Mutex};
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
    "allowed_hosts",
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
    /// Hosts besides the origin of the source's `url` that requests, next links and redirects
    /// may go to with the source's credentials (default none); see [`super::origin`].
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
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
            allowed_hosts: Vec::new(),
        }
    }
}

/// The `headers` setting as a header map; an invalid name or value is a problem of
/// `headers.<name>`.
pub fn header_map(headers: &BTreeMap<String, String>, problems: &mut Vec<SettingsProblem>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        match (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            (Ok(n), Ok(v)) => {
                map.insert(n, v);
            }
            _ => problems.push(SettingsProblem::new(
                format!("headers.{name}"),
                "无效的 HTTP 头 / invalid HTTP header",
            )),
        }
    }
    map
}

/// How a client sends, checked: what [`HttpClient::with_options`] takes.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Longest wait for a whole answer.
    pub timeout: Duration,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Follow up to five redirects (pull sources); false: a 3xx is the peer's answer.
    pub follow_redirects: bool,
    /// Where requests and redirects may go with the credentials; `None`: anywhere (the REST
    /// sink, which follows no redirects and sends only to its configured URL).
    pub origins: Option<Arc<OriginGuard>>,
    /// The rate limit, if any; token requests count too.
    pub quota: Option<Quota>,
    /// Requests in flight at once over the client; `None`: no limit.
    pub concurrency: Option<usize>,
    /// Largest answer accepted, bytes; `None`: any size.
    pub max_response_bytes: Option<usize>,
    /// Headers added to every request that does not set them itself.
    pub headers: HeaderMap,
    /// Credentials added to every request.
    pub auth: Auth,
    /// Retries and circuit breaker of [`HttpClient::send`].
    pub retry: RetryPolicy,
}

/// Retries and circuit breaker of [`HttpClient::send`] (not used by [`HttpClient::exchange`]).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per request, at least 1.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each attempt, half of it random.
    pub retry_initial: Duration,
    /// Longest retry delay; a longer `Retry-After` ends the request.
    pub retry_max: Duration,
    /// Consecutive failed attempts that open the circuit.
    pub circuit_failures: u32,
    /// How long an open circuit pauses the requests.
    pub circuit_open: Duration,
}

impl Default for RetryPolicy {
    /// The defaults of [`ClientSettings`].
    fn default() -> Self {
        RetryPolicy {
            max_attempts: default_attempts(),
            retry_initial: Duration::from_millis(default_retry_initial()),
            retry_max: Duration::from_millis(default_retry_max()),
            circuit_failures: default_circuit_failures(),
            circuit_open: Duration::from_secs_f64(default_circuit_open()),
        }
    }
}

fn seconds_ok(v: f64, min: f64, max: f64) -> bool {
    v.is_finite() && v >= min && v <= max
}

impl ClientSettings {
    /// The options of a client with these settings; every problem, each naming its key.
    pub fn options(&self, base: &Path) -> Result<ClientOptions, Vec<SettingsProblem>> {
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
        let headers = header_map(&self.headers, &mut problems);
        let auth = auth_of(self.auth.as_ref(), base, &mut problems);
        allowed_hosts(&self.allowed_hosts, &mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        let quota = self.rate_limit_per_second.map(|rate| {
            let burst = self
                .rate_limit_burst
                .and_then(std::num::NonZeroU32::new)
                .unwrap_or(std::num::NonZeroU32::MIN);
            let period = Duration::from_secs_f64(1.0 / rate).max(Duration::from_nanos(1));
            let quota = Quota::with_period(period).unwrap_or_else(|| Quota::per_second(std::num::NonZeroU32::MAX));
            quota.allow_burst(burst)
        });
        Ok(ClientOptions {
            timeout: Duration::from_secs_f64(self.timeout_seconds),
            connect_timeout: Duration::from_secs_f64(self.connect_timeout_seconds),
            follow_redirects: true,
            origins: None,
            quota,
            concurrency: Some(self.concurrency.max(1)),
            max_response_bytes: Some(self.max_response_bytes),
            headers,
            auth,
            retry: RetryPolicy {
                max_attempts: self.max_attempts.max(1),
                retry_initial: Duration::from_millis(self.retry_initial_ms),
                retry_max: Duration::from_millis(self.retry_max_ms),
                circuit_failures: self.circuit_failures.max(1),
                circuit_open: Duration::from_secs_f64(self.circuit_open_seconds),
            },
        })
    }

    /// Problems found without connecting (values in range, headers valid, secrets readable).
    pub fn check(&self, base: &Path) -> Vec<SettingsProblem> {
        self.options(base).err().unwrap_or_default()
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

/// What one attempt of [`HttpClient::send`] gave.
enum Attempt {
    Done(Answer),
    /// Try again (after this wait, if the source asked for one).
    Transient(String, Option<Duration>),
    /// Stop with this error; `reachable` says the source answered (resets the breaker).
    Final(HttpError, bool),
    /// 401 with a token that can be refreshed.
    Unauthorized(HttpError),
}

/// What the clients of the endpoints of one system share (see [`SystemClients`]): the
/// connection pool, the credentials (with the token cache), the headers, the rate limit and the
/// concurrency limit, the retry policy and the origin guard.
struct Shared {
    client: reqwest::Client,
    auth: Auth,
    headers: HeaderMap,
    limiter: Option<DefaultDirectRateLimiter>,
    permits: Option<tokio::sync::Semaphore>,
    retry: RetryPolicy,
    max_response_bytes: Option<usize>,
    origins: Option<Arc<OriginGuard>>,
}

/// The HTTP client of one pull source (or of the REST sink). The endpoints of one system each
/// have their own (own circuit breaker, counters and gate) over one shared connection, rate
/// limit and credentials: see [`SystemClients`].
pub struct HttpClient {
    name: String,
    shared: Arc<Shared>,
    state: Mutex<State>,
    gate: Mutex<Option<RequestGate>>,
}

/// The shared connections of the systems whose endpoints are pulled as separate sources (one
/// `[[sources]]` block with `[[sources.endpoints]]`), by system id: the first endpoint built
/// makes the system's connection, rate limit and token cache; the others join it. One per
/// running gateway.
#[derive(Default)]
pub struct SystemClients {
    systems: Mutex<std::collections::HashMap<String, Arc<Shared>>>,
}

impl std::fmt::Debug for SystemClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let systems: Vec<String> = self
            .systems
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("SystemClients").field("systems", &systems).finish()
    }
}

impl SystemClients {
    /// The client of the endpoint `source_id` of `system`: its own breaker and counters over
    /// the system's shared connection, made from `settings` (with `home` for the origin guard)
    /// when this is the system's first endpoint.
    pub fn client(
        &self,
        system: &str,
        source_id: &str,
        settings: &ClientSettings,
        base: &Path,
        home: &Url,
    ) -> Result<HttpClient, HttpError> {
        let mut systems = self.systems.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(shared) = systems.get(system) {
            return Ok(HttpClient::over(source_id, Arc::clone(shared)));
        }
        let client = HttpClient::new(source_id, settings, base, home)?;
        systems.insert(system.to_string(), Arc::clone(&client.shared));
        Ok(client)
    }

    /// The systems with a shared connection so far.
    pub fn systems(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .systems
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }
}

/// A check made right before each request to a source is sent (see
/// [`crate::sources::PullSource::set_gate`]).
pub type RequestGate = Arc<dyn Fn() -> bool + Send + Sync>;

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// The client of the pull source `source_id` whose `url` is `home` (no connection is made
    /// before the first request): it sends and follows redirects only to `home`'s origin and
    /// the `allowed_hosts`.
    pub fn new(source_id: &str, settings: &ClientSettings, base: &Path, home: &Url) -> Result<HttpClient, HttpError> {
        let mut options = settings.options(base).map_err(|p| HttpError::Settings(joined(&p)))?;
        let mut problems = Vec::new();
        let allowed = allowed_hosts(&settings.allowed_hosts, &mut problems);
        options.origins = Some(Arc::new(OriginGuard::new(home, allowed)));
        HttpClient::with_options(source_id, options)
    }

    /// Whether a request to `url`, reached by `hop`, may carry the credentials (always, for a
    /// client without an origin guard).
    pub fn check_origin(&self, url: &Url, hop: Hop) -> Result<(), HttpError> {
        match &self.shared.origins {
            Some(g) => g.check(url, hop).map_err(HttpError::ForeignOrigin),
            None => Ok(()),
        }
    }

    /// A client named `name` (in logs) that sends as `options` say.
    pub fn with_options(name: &str, options: ClientOptions) -> Result<HttpClient, HttpError> {
        let redirects = match (options.follow_redirects, &options.origins) {
            (false, _) => reqwest::redirect::Policy::none(),
            (true, Some(guard)) => Arc::clone(guard).redirect_policy(5),
            (true, None) => reqwest::redirect::Policy::limited(5),
        };
        let client = reqwest::Client::builder()
            .user_agent(concat!("ganzhi-gateway/", env!("CARGO_PKG_VERSION")))
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            .redirect(redirects)
            .build()
            .map_err(|e| HttpError::Client(error_chain(&e)))?;
        let shared = Arc::new(Shared {
            client,
            auth: options.auth,
            headers: options.headers,
            limiter: options.quota.map(RateLimiter::direct),
            permits: options.concurrency.map(|n| tokio::sync::Semaphore::new(n.max(1))),
            retry: options.retry,
            max_response_bytes: options.max_response_bytes,
            origins: options.origins,
        });
        Ok(HttpClient::over(name, shared))
    }

    /// A client named `name` with fresh counters and breaker over `shared`.
    fn over(name: &str, shared: Arc<Shared>) -> HttpClient {
        HttpClient {
            name: name.to_string(),
            shared,
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
            gate: Mutex::new(None),
        }
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
    fn admit(&self) -> Result<(), HttpError> {
        let mut s = self.state();
        let b = &mut s.breaker;
        match b.state {
            CircuitState::Closed => Ok(()),
            CircuitState::Open => match b.until {
                Some((at, _)) if Instant::now() < at => Err(HttpError::CircuitOpen {
                    until: b.until.map_or_else(Utc::now, |(_, utc)| utc),
                }),
                _ => {
                    b.state = CircuitState::HalfOpen;
                    b.trial_in_flight = true;
                    tracing::info!(source = %self.name, "circuit half-open: sending one trial request");
                    Ok(())
                }
            },
            CircuitState::HalfOpen if b.trial_in_flight => Err(HttpError::CircuitOpen {
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
            tracing::info!(source = %self.name, "circuit closed: the source answers again");
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
        if b.state == CircuitState::HalfOpen || b.consecutive >= self.shared.retry.circuit_failures {
            let utc = Utc::now() + chrono::Duration::from_std(self.shared.retry.circuit_open).unwrap_or_default();
            b.state = CircuitState::Open;
            b.until = Some((Instant::now() + self.shared.retry.circuit_open, utc));
            tracing::warn!(
                source = %self.name,
                consecutive_failures = b.consecutive,
                reopens_at = %utc,
                "circuit open: the source is paused"
            );
            return true;
        }
        false
    }

    /// Count a failed request (after its retries), or a pull that failed after its answer
    /// arrived (a business status, a SOAP fault, an unreadable answer), so that `health()`
    /// shows it.
    pub fn record_failure(&self, error: &impl Display) {
        let mut s = self.state();
        s.failures += 1;
        s.last_error = Some((Utc::now(), error.to_string()));
    }

    /// The backoff before retry number `retry` (1-based): doubling from the initial delay up to
    /// the maximum, the upper half random.
    fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .shared
            .retry
            .retry_initial
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1).min(20)))
            .min(self.shared.retry.retry_max);
        let half = exp / 2;
        let jitter = rand::rng().random_range(0..=half.as_micros().min(u128::from(u64::MAX)) as u64);
        half + Duration::from_micros(jitter)
    }

    /// Check `gate` right before each request is sent (see [`crate::sources::PullSource::set_gate`]).
    pub fn set_gate(&self, gate: Option<RequestGate>) {
        if let Ok(mut g) = self.gate.lock() {
            *g = gate;
        }
    }

    /// Send a request built by `build` (called again for every attempt), with retries.
    /// `is_answer` may claim an answer that is not 2xx as the source's final word (e.g. a SOAP
    /// fault in an HTTP 500): it is then returned as it is, without retrying. A failure is not
    /// counted in `health()`: the caller does that with [`HttpClient::record_failure`].
    pub async fn send<F, A>(&self, build: F, is_answer: A) -> Result<Answer, HttpError>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        A: Fn(StatusCode, &[u8]) -> bool,
    {
        let mut attempt: u32 = 0;
        let mut refreshed = false;
        loop {
            self.admit()?;
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
                    return Err(e);
                }
                Attempt::Unauthorized(e) => {
                    self.reachable();
                    if !refreshed {
                        refreshed = true;
                        attempt -= 1;
                        tracing::info!(source = %self.name, "HTTP 401: fetching a new token and sending again");
                        continue;
                    }
                    return Err(e);
                }
                Attempt::Transient(error, retry_after) => (error, retry_after),
            };
            if self.attempt_failed(&error) {
                let until = self.state().breaker.until.map_or_else(Utc::now, |(_, utc)| utc);
                return Err(HttpError::CircuitOpen { until });
            }
            if attempt >= self.shared.retry.max_attempts {
                return Err(HttpError::GaveUp {
                    last: error,
                    attempts: attempt,
                });
            }
            let wait = match retry_after {
                Some(w) if w > self.shared.retry.retry_max => {
                    return Err(HttpError::WaitTooLong { last: error, wait: w })
                }
                Some(w) => w,
                None => self.backoff(attempt),
            };
            self.state().retries += 1;
            tracing::warn!(
                source = %self.name,
                attempt,
                wait_ms = wait.as_millis() as u64,
                error = %error,
                "request failed; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Send a request built by `build` once (once more after a 401, with a fresh token) and
    /// return the answer, whatever its status: no retries, no circuit breaker.
    pub async fn exchange<F>(&self, build: F) -> Result<Answer, HttpError>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let mut refreshed = false;
        loop {
            let _permit = self.permit().await?;
            let (response, used, _) = self.start(&build).await?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !refreshed && self.shared.auth.unauthorized(used).await {
                refreshed = true;
                continue;
            }
            let headers = response.headers().clone();
            let body = self.read_body(status, &headers, response).await?;
            return Ok(Answer { status, headers, body });
        }
    }

    /// Send a request built by `build` once (once more after a 401, with a fresh token), with
    /// this client's credentials, headers, TLS settings and origin guard, and return the
    /// answer with its body unread, for streaming (e.g. an attachment of a record this source
    /// gave). An answer that is not 2xx is an error with the start of its body. No retries:
    /// the caller retries the whole transfer.
    pub async fn open<F>(&self, build: F) -> Result<reqwest::Response, HttpError>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let mut refreshed = false;
        loop {
            let _permit = self.permit().await?;
            let (response, used, _) = self.start(&build).await?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !refreshed && self.shared.auth.unauthorized(used).await {
                refreshed = true;
                continue;
            }
            if status.is_success() {
                return Ok(response);
            }
            let headers = response.headers().clone();
            let body = self.read_body(status, &headers, response).await.unwrap_or_default();
            let body = excerpt(String::from_utf8_lossy(&body).trim(), ANSWER_EXCERPT);
            return Err(match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => HttpError::Refused { status, body },
                _ => HttpError::Status { status, body },
            });
        }
    }

    /// A place among the requests in flight (none is needed without a concurrency limit).
    async fn permit(&self) -> Result<Option<tokio::sync::SemaphorePermit<'_>>, HttpError> {
        match &self.shared.permits {
            Some(permits) => permits.acquire().await.map(Some).map_err(|_| HttpError::Closed),
            None => Ok(None),
        }
    }

    /// Build the request, add the headers and credentials, wait for the rate limit, send it:
    /// the answer's head, which credentials it carried, and when it was sent.
    async fn start<F>(&self, build: &F) -> Result<(reqwest::Response, AuthUsed, Instant), HttpError>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let mut request = build(&self.shared.client)
            .build()
            .map_err(|e| HttpError::Request(error_chain(&e)))?;
        // Before any credential is added: nothing of them goes to another origin.
        self.check_origin(request.url(), Hop::Request)?;
        for (name, value) in &self.shared.headers {
            if !request.headers().contains_key(name) {
                request.headers_mut().insert(name.clone(), value.clone());
            }
        }
        let used = self
            .shared
            .auth
            .authorize(&self.shared.client, &mut request, self.shared.limiter.as_ref())
            .await
            .map_err(HttpError::Auth)?;
        if let Some(l) = &self.shared.limiter {
            l.until_ready().await;
        }
        self.state().requests += 1;
        let sent = Instant::now();
        let response =
            self.shared.client.execute(request).await.map_err(|e| {
                foreign_origin_of(&e).map_or_else(|| HttpError::unanswered(&e), HttpError::ForeignOrigin)
            })?;
        Ok((response, used, sent))
    }

    async fn attempt<F, A>(&self, build: &F, is_answer: &A) -> Attempt
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        A: Fn(StatusCode, &[u8]) -> bool,
    {
        let _permit = match self.permit().await {
            Ok(p) => p,
            Err(e) => return Attempt::Final(e, false),
        };
        // The last moment before sending: every wait (rate limit, retries, permits) is behind.
        let gate = self.gate.lock().ok().and_then(|g| g.clone());
        if gate.is_some_and(|g| !g()) {
            return Attempt::Final(HttpError::Gated, false);
        }
        let (response, used, sent) = match self.start(build).await {
            Ok(r) => r,
            Err(HttpError::Auth(AuthError::Unreachable(m))) => {
                return Attempt::Transient(format!("token endpoint: {m}"), None)
            }
            Err(e @ HttpError::Auth(_)) => return Attempt::Final(e, true),
            Err(e @ HttpError::Request(_)) => return Attempt::Final(e, false),
            // Never retried: the same request would aim at the same origin again. A redirect
            // is the source's answer (it is up); a request refused before sending is not.
            Err(HttpError::ForeignOrigin(f)) => {
                let answered = matches!(f.hop, Hop::Redirect { .. });
                return Attempt::Final(HttpError::ForeignOrigin(f), answered);
            }
            Err(e) => return Attempt::Transient(e.to_string(), None),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = match self.read_body(status, &headers, response).await {
            Ok(b) => b,
            Err(e @ HttpError::TooLarge { .. }) => return Attempt::Final(e, true),
            Err(e) => return Attempt::Transient(e.to_string(), None),
        };
        tracing::debug!(
            source = %self.name,
            status = status.as_u16(),
            bytes = body.len(),
            elapsed_ms = sent.elapsed().as_millis() as u64,
            "answer"
        );
        let excerpt = || excerpt(String::from_utf8_lossy(&body).trim(), ANSWER_EXCERPT);
        if status.is_success() || is_answer(status, &body) {
            return Attempt::Done(Answer { status, headers, body });
        }
        if status == StatusCode::UNAUTHORIZED {
            let refused = HttpError::Refused {
                status,
                body: excerpt(),
            };
            if self.shared.auth.unauthorized(used).await {
                return Attempt::Unauthorized(refused);
            }
            return Attempt::Final(refused, true);
        }
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT
        {
            let answer = format!("HTTP {}: {}", status.as_u16(), excerpt());
            return Attempt::Transient(answer, retry_after_header(&headers));
        }
        let error = if status == StatusCode::FORBIDDEN {
            HttpError::Refused {
                status,
                body: excerpt(),
            }
        } else {
            HttpError::Status {
                status,
                body: excerpt(),
            }
        };
        Attempt::Final(error, true)
    }

    /// The body of an answer whose head is `status` and `headers`, up to the size limit.
    async fn read_body(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        mut response: reqwest::Response,
    ) -> Result<Vec<u8>, HttpError> {
        let limit = self.shared.max_response_bytes.unwrap_or(usize::MAX);
        if let Some(len) = response.content_length() {
            if len > limit as u64 {
                return Err(HttpError::TooLarge { size: len, limit });
            }
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > limit {
                        return Err(HttpError::TooLarge {
                            size: (body.len() + chunk.len()) as u64,
                            limit,
                        });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(e) => {
                    return Err(HttpError::Body {
                        status,
                        headers: headers.clone(),
                        timed_out: e.is_timeout(),
                        detail: error_chain(&e),
                    })
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
        HttpClient::new("t", &s, Path::new("/"), &Url::parse("http://127.0.0.1/").unwrap()).unwrap()
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
        assert!(matches!(c.admit(), Err(HttpError::CircuitOpen { .. })));
        assert_eq!(c.health().circuit, CircuitState::Open);
        assert!(c.health().circuit_reopens_at.is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.health().circuit, CircuitState::HalfOpen);
        assert!(c.admit().is_ok(), "the trial");
        assert!(
            matches!(c.admit(), Err(HttpError::CircuitOpen { .. })),
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
