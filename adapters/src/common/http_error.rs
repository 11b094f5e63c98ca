//! Why an HTTP exchange gave no usable answer ([`HttpError`]), why a request could not be
//! authorised ([`AuthError`]), and the text of a `reqwest` error without its URL.
//!
//! The HTTP client reports these; each user says what they mean for it: a pull source turns
//! them into its `SourceError`, the REST sink into a delivery outcome.

use super::text::excerpt;
use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use std::time::Duration;

/// Why a request could not be authorised.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// The token endpoint could not be reached or did not answer in time.
    #[error("令牌接口不可达 / token endpoint unreachable: {0}")]
    Unreachable(String),
    /// The token endpoint refused or answered something unusable.
    #[error("令牌接口拒绝或应答无效 / token endpoint refused or gave no token: {0}")]
    Refused(String),
    /// The request could not be signed or given its header.
    #[error("无法为请求签名 / cannot sign the request: {0}")]
    Sign(String),
}

/// Why an HTTP exchange gave no usable answer.
///
/// One exchange (the client's `exchange`, and each attempt of its `send`) fails with one of
/// the variants from [`HttpError::Request`] to [`HttpError::TooLarge`]; `send`, which retries,
/// ends with the others or with a final answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    /// The settings cannot be used (their problems, joined).
    #[error("{0}")]
    Settings(String),
    /// The client could not be created.
    #[error("无法创建 HTTP 客户端 / cannot create the HTTP client: {0}")]
    Client(String),
    /// The request could not be built (an invalid URL or header).
    #[error("无法构造请求 / cannot build the request: {0}")]
    Request(String),
    /// Credentials could not be added to the request.
    #[error(transparent)]
    Auth(AuthError),
    /// No connection could be made.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// No connection could be made in time.
    #[error("no answer in time: {0}")]
    ConnectTimeout(String),
    /// The connection was made, but no answer came in time.
    #[error("no answer in time: {0}")]
    Timeout(String),
    /// The request failed on its way otherwise.
    #[error("request failed: {0}")]
    Send(String),
    /// The answer's status and headers came, its body did not (broken off, or not in time).
    #[error("{}: {detail}", body_failure(.timed_out))]
    Body {
        /// The answer's status.
        status: StatusCode,
        /// The answer's headers.
        headers: HeaderMap,
        /// True when the body did not complete in time.
        timed_out: bool,
        /// What the connection said.
        detail: String,
    },
    /// The answer is larger than allowed.
    #[error(
        "应答过大：{size} 字节以上，上限 {limit} / answer too large: over {size} bytes, limit {limit} (max_response_bytes)"
    )]
    TooLarge {
        /// Bytes received or announced.
        size: u64,
        /// The limit.
        limit: usize,
    },
    /// The client is closed.
    #[error("client closed")]
    Closed,
    /// The peer refused the credentials: 401 (after a fresh token, or with none to refresh) or
    /// 403.
    #[error("HTTP {}: {body}", .status.as_u16())]
    Refused {
        /// 401 or 403.
        status: StatusCode,
        /// The start of the answer's body.
        body: String,
    },
    /// The peer's final answer is an error status (a 4xx other than 401 and 403, or a 3xx not
    /// followed).
    #[error("HTTP {}: {body}", .status.as_u16())]
    Status {
        /// The status.
        status: StatusCode,
        /// The start of the answer's body.
        body: String,
    },
    /// Every attempt failed; the last one as said.
    #[error("{last} ({attempts} 次尝试后 / after {attempts} attempts)")]
    GaveUp {
        /// What the last attempt gave.
        last: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The peer asked to wait (`Retry-After`) longer than the longest retry delay.
    #[error(
        "{last}; 来源要求等待 {} 秒，超过 retry_max_ms / the source asks to wait {} s, longer than retry_max_ms",
        .wait.as_secs(),
        .wait.as_secs()
    )]
    WaitTooLong {
        /// What the attempt gave.
        last: String,
        /// The wait asked for.
        wait: Duration,
    },
    /// The circuit breaker is open: requests are paused.
    #[error("circuit open until {until}")]
    CircuitOpen {
        /// When the next trial request is allowed.
        until: DateTime<Utc>,
    },
}

impl HttpError {
    /// The error of a request that got no answer: no connection (in time), no answer in time,
    /// or broken on its way.
    pub fn unanswered(e: &reqwest::Error) -> HttpError {
        let detail = error_chain(e);
        match (e.is_connect(), e.is_timeout()) {
            (true, true) => HttpError::ConnectTimeout(detail),
            (true, false) => HttpError::Connect(detail),
            (false, true) => HttpError::Timeout(detail),
            (false, false) => HttpError::Send(detail),
        }
    }
}

/// What became of an answer's body, for [`HttpError::Body`].
fn body_failure(timed_out: &bool) -> &'static str {
    if *timed_out {
        "answer not complete in time"
    } else {
        "answer broken off"
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
