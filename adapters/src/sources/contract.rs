//! What every source hands the gateway, and what the gateway asks of a pull source: records
//! (parsed, or unparsed with their bytes), pages with the cursor to persist after them, pull
//! runs, and why a pull failed ([`SourceError`], made from the HTTP client's [`HttpError`]).

use crate::common::health::SourceHealth;
use crate::common::http_error::{AuthError, ForeignOrigin, HttpError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// One record pulled from a source, before mapping.
#[derive(Debug, Clone)]
pub struct PulledRecord {
    /// The record as the mapping engine reads it (a JSON value, or an XML element's tree).
    pub value: Value,
    /// Raw bytes for the archive, as received (decoded to UTF-8).
    pub payload: Vec<u8>,
    /// Where it was found, e.g. `page 3, record 17`.
    pub position: String,
    /// Its watermark, when that lay beyond the run's start plus the allowed clock skew: the
    /// record did not move the cursor, and the gateway keeps it with the warning
    /// `source.watermark_in_future`.
    pub watermark_in_future: Option<DateTime<Utc>>,
}

/// A record that arrived but could not be parsed: the gateway quarantines it with its bytes.
#[derive(Debug, Clone)]
pub struct UnparsedRecord {
    /// Raw bytes as received.
    pub payload: Vec<u8>,
    /// Where.
    pub position: String,
    /// What is wrong with it.
    pub message: String,
}

/// What a source yields per record.
pub type SourceItem = Result<PulledRecord, UnparsedRecord>;

/// One page of a pull run.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The page's records, in source order.
    pub items: Vec<SourceItem>,
    /// A cursor to persist after this page (and every earlier one) is committed, if the
    /// adapter can name one here (often only on the last page of a run).
    pub cursor: Option<String>,
}

/// Where a pull run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PullMode {
    /// From the stored cursor, minus the source's overlap window.
    Incremental,
    /// From the beginning, ignoring the stored cursor (duplicates are absorbed by hash).
    FullResync,
}

/// Why a pull failed. The run stops; nothing after the last committed page is lost, the next
/// run re-pulls from the persisted cursor.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source could not be reached or kept failing after retries.
    #[error("来源不可用 / source unavailable: {0}")]
    Unavailable(String),
    /// The circuit breaker is open: the source is paused.
    #[error(
        "来源已暂停（熔断）至 {} / source paused by the circuit breaker until {}",
        normalizer::standards::china_time_text(until),
        normalizer::standards::china_time_text(until)
    )]
    CircuitOpen {
        /// When the next trial request is allowed.
        until: DateTime<Utc>,
    },
    /// The source answered with an error in its own terms (business status, SOAP fault).
    #[error("来源返回错误 / source answered with an error: code {code:?}: {message}")]
    Answer {
        /// The source's code (HTTP status, business status, SOAP fault code).
        code: String,
        /// The source's message.
        message: String,
    },
    /// Authentication failed (token endpoint refused, 401 after refresh).
    #[error("来源认证失败 / authentication with the source failed: {0}")]
    Auth(String),
    /// The answer is not what the settings say it should be (envelope, path, encoding).
    #[error("来源应答格式错误 / unexpected answer from the source: {0}")]
    Protocol(String),
    /// The settings cannot be used.
    #[error("来源配置错误 / source settings: {0}")]
    Settings(String),
    /// The broker holds a queue or exchange that conflicts with what the settings declare, or
    /// lacks one they expect (AMQP); the text says what to change.
    #[error("AMQP 队列或交换机与配置不符 / the broker's queues or exchanges conflict with the settings: {0}")]
    Topology(String),
    /// A next link or redirect aimed at another origin than the source's own and the hosts of
    /// its `allowed_hosts`: refused, nothing sent there with the credentials.
    #[error(transparent)]
    ForeignOrigin(ForeignOrigin),
    /// The run reached `max_pages` with more records at the source, and its cursor could not
    /// move (the source does not return records in watermark order): the source is stalled.
    #[error(
        "已达 max_pages = {0} 页，来源仍有记录但游标无法推进（来源未按水位排序）：请增大 max_pages 或设置 watermark_ordered / max_pages = {0} reached with more records at the source, and the cursor cannot move (the source does not return records in watermark order): raise max_pages, or set watermark_ordered if the source sorts by the watermark"
    )]
    Backlog(u64),
    /// The run's gate refused a request before it was sent (the gateway instance may no longer
    /// pull this source: another one does); nothing was sent.
    #[error("请求未发送：本实例已不再负责该来源 / request not sent: this instance no longer pulls the source")]
    Gated,
}

impl From<HttpError> for SourceError {
    /// What a failed request means for the pull: the source unavailable (or paused by the
    /// circuit breaker), its credentials refused, its answer an error or too large, or the
    /// settings unusable.
    fn from(e: HttpError) -> SourceError {
        match e {
            HttpError::CircuitOpen { until } => SourceError::CircuitOpen { until },
            HttpError::Status { status, body } => SourceError::Answer {
                code: format!("HTTP {}", status.as_u16()),
                message: body,
            },
            HttpError::Settings(m) => SourceError::Settings(m),
            HttpError::Gated => SourceError::Gated,
            HttpError::ForeignOrigin(f) | HttpError::Auth(AuthError::ForeignOrigin(f)) => SourceError::ForeignOrigin(f),
            e @ (HttpError::Client(_) | HttpError::Request(_)) => SourceError::Settings(e.to_string()),
            e @ (HttpError::Auth(_) | HttpError::Refused { .. }) => SourceError::Auth(e.to_string()),
            e @ HttpError::TooLarge { .. } => SourceError::Protocol(e.to_string()),
            e @ (HttpError::GaveUp { .. }
            | HttpError::WaitTooLong { .. }
            | HttpError::Closed
            | HttpError::Connect(_)
            | HttpError::ConnectTimeout(_)
            | HttpError::Timeout(_)
            | HttpError::Send(_)
            | HttpError::Body { .. }) => SourceError::Unavailable(e.to_string()),
        }
    }
}

/// One pull run in progress.
#[async_trait]
pub trait PullRun: Send {
    /// The next page, or `None` when the run is complete.
    async fn next_page(&mut self) -> Result<Option<Page>, SourceError>;
}

/// A source the gateway pulls from on a schedule.
pub trait PullSource: Send + Sync {
    /// `rest` or `soap`.
    fn kind(&self) -> &'static str;
    /// Begin a pull run from `cursor` (the persisted one; ignored for a full resync).
    fn start(&self, cursor: Option<String>, mode: PullMode) -> Box<dyn PullRun>;
    /// What operators see of the connection.
    fn health(&self) -> SourceHealth;
    /// Ask `gate` right before every request is sent (after rate limiting and waits); when it
    /// says no, the request is not sent and the run ends with [`SourceError::Gated`]. `None`
    /// removes the gate.
    fn set_gate(&self, gate: Option<RequestGate>);
    /// The source's HTTP client (its credentials, TLS settings and allowed origins), e.g. to
    /// fetch an attachment a record of this source points at.
    fn client(&self) -> Option<&crate::http::client::HttpClient> {
        None
    }
}

pub use crate::http::client::RequestGate;

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    #[test]
    fn http_errors_become_source_errors_with_the_texts_operators_know() {
        let gave_up = SourceError::from(HttpError::GaveUp {
            last: "HTTP 503: busy".into(),
            attempts: 3,
        });
        assert_eq!(
            gave_up.to_string(),
            "来源不可用 / source unavailable: HTTP 503: busy (3 次尝试后 / after 3 attempts)"
        );
        let refused = SourceError::from(HttpError::Refused {
            status: StatusCode::UNAUTHORIZED,
            body: "bad credentials".into(),
        });
        assert!(
            matches!(&refused, SourceError::Auth(m) if m == "HTTP 401: bad credentials"),
            "{refused:?}"
        );
        let answer = SourceError::from(HttpError::Status {
            status: StatusCode::NOT_FOUND,
            body: "no such page".into(),
        });
        assert!(
            matches!(&answer, SourceError::Answer { code, message } if code == "HTTP 404" && message == "no such page"),
            "{answer:?}"
        );
        let request = SourceError::from(HttpError::Request("bad header".into()));
        assert!(
            matches!(&request, SourceError::Settings(m) if m == "无法构造请求 / cannot build the request: bad header"),
            "{request:?}"
        );
        let too_large = SourceError::from(HttpError::TooLarge {
            size: 2048,
            limit: 1024,
        });
        assert!(matches!(too_large, SourceError::Protocol(_)));
        assert!(matches!(
            SourceError::from(HttpError::CircuitOpen { until: Utc::now() }),
            SourceError::CircuitOpen { .. }
        ));
    }

    #[test]
    fn a_pause_is_told_in_china_time_to_the_second() {
        let until = DateTime::parse_from_rfc3339("2026-12-05T15:02:04.623602469Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("time");
        let text = SourceError::CircuitOpen { until }.to_string();
        assert!(text.contains("2026-12-05 23:02:04+08:00"), "{text}");
        assert!(!text.contains("623602469") && !text.contains("UTC"), "{text}");
    }
}
