//! Why an HTTP exchange gave no usable answer ([`HttpError`]), why a request could not be
//! authorised ([`AuthError`]), a request or redirect refused because it would carry a source's
//! credentials to another origin ([`ForeignOrigin`]), and the text of a `reqwest` error without
//! its URL.
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
    /// The token endpoint redirected to an origin the credentials may not go to.
    #[error("令牌接口 / token endpoint: {0}")]
    ForeignOrigin(ForeignOrigin),
}

/// How a refused request came to aim at another origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hop {
    /// A REST source's next link (`pagination = "next_link"`).
    NextLink,
    /// An HTTP redirect (3xx `Location`) answered by `from` (an origin).
    Redirect {
        /// The origin that answered with the redirect.
        from: String,
    },
    /// A request built by other means.
    Request,
}

/// A request or redirect refused because it would carry the source's credentials (API key,
/// signature, token, basic auth) to another origin than the source's own and to a host not
/// listed in its `allowed_hosts`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", foreign_text(self))]
pub struct ForeignOrigin {
    /// How the request came to aim there.
    pub hop: Hop,
    /// The origin aimed at (`scheme://host:port`, no path or query: they may carry secrets).
    pub target: String,
    /// Its host, as it would be listed in `allowed_hosts`.
    pub host: String,
    /// The origin of the source's `url`.
    pub home: String,
    /// The host is listed in `allowed_hosts`, but the source's `url` is https and the target
    /// plain http: credentials never leave https.
    pub downgrade: bool,
}

/// The bilingual text of a [`ForeignOrigin`]: what was refused, the rule, what to change.
fn foreign_text(f: &ForeignOrigin) -> String {
    let (zh, en) = match &f.hop {
        Hop::NextLink => (
            format!("下一页链接指向其他来源 {}", f.target),
            format!("the next link points to another origin {}", f.target),
        ),
        Hop::Redirect { from } => (
            format!("{from} 重定向到其他来源 {}", f.target),
            format!("{from} redirects to another origin {}", f.target),
        ),
        Hop::Request => (
            format!("请求指向其他来源 {}", f.target),
            format!("a request points to another origin {}", f.target),
        ),
    };
    if f.downgrade {
        return format!(
            "{zh}，已拒绝：allowed_hosts 列有 {host}，但来源 url（{home}）使用 https，凭据不经明文 http 发送 / {en}, refused: allowed_hosts lists {host}, but the source's url ({home}) is https and credentials never go over plain http",
            host = f.host,
            home = f.home
        );
    }
    format!(
        "{zh}，已拒绝：凭据只发往来源 url 的来源（协议、主机、端口均相同：{home}）及 allowed_hosts 所列主机；如确需跟随，请在 allowed_hosts 中加入 \"{host}\" / {en}, refused: credentials go only to the origin of the source's url (same scheme, host and port: {home}) and to the hosts in allowed_hosts; to follow it, add \"{host}\" to allowed_hosts",
        host = f.host,
        home = f.home
    )
}

/// The [`ForeignOrigin`] that made a `reqwest` request fail (a redirect the client's policy
/// refused), if that is why it failed.
pub fn foreign_origin_of(e: &reqwest::Error) -> Option<ForeignOrigin> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(f) = s.downcast_ref::<ForeignOrigin>() {
            return Some(f.clone());
        }
        source = s.source();
    }
    None
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
    /// The caller's gate refused the request just before it was sent (e.g. this gateway
    /// instance may no longer pull the source): nothing was sent.
    #[error("请求未发送：本实例已不再负责该来源 / request not sent: this instance no longer pulls the source")]
    Gated,
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
    /// A request or redirect that would carry the credentials to another origin, refused.
    #[error(transparent)]
    ForeignOrigin(ForeignOrigin),
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

/// `scheme://host:port` of a URL (no user, password, path or query).
fn origin_of(u: &reqwest::Url) -> String {
    match (u.host_str(), u.port_or_known_default()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}", u.scheme()),
        (Some(host), None) => format!("{}://{host}", u.scheme()),
        _ => "<url>".to_string(),
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

/// An error with its causes, the request URL shown as its scheme, host and port only (its path
/// and query may carry a key; the host is what an operator needs to find the broken link).
pub fn error_chain(e: &reqwest::Error) -> String {
    let mut text = match e.url() {
        Some(u) => e.to_string().replace(u.as_str(), &origin_of(u)),
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

#[cfg(test)]
mod origin_tests {
    use super::*;

    #[test]
    fn a_connection_error_names_the_host_and_port_but_not_the_path_query_or_password() {
        let u = reqwest::Url::parse("https://user:s3cret@gw.example.gov.cn/api/list?appKey=K123&sign=abc").unwrap();
        assert_eq!(origin_of(&u), "https://gw.example.gov.cn:443");
        let u = reqwest::Url::parse("http://10.1.2.3:8081/x?token=t").unwrap();
        assert_eq!(origin_of(&u), "http://10.1.2.3:8081");
    }
}
