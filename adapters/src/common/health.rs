//! What operators see of a connection to a source: the state of its circuit breaker and its
//! counts. The HTTP client keeps them; the pull sources report them; the gateway shows them.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// State of a connection's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Requests flow.
    Closed,
    /// Paused after repeated failures, until the given time.
    Open,
    /// One trial request is allowed.
    HalfOpen,
}

/// What operators see of a source's connection.
#[derive(Debug, Clone, Serialize)]
pub struct SourceHealth {
    /// Circuit breaker state.
    pub circuit: CircuitState,
    /// When an open circuit lets a trial request through.
    pub circuit_reopens_at: Option<DateTime<Utc>>,
    /// The last error, with its time.
    pub last_error: Option<(DateTime<Utc>, String)>,
    /// Requests sent since start.
    pub requests: u64,
    /// Requests that failed (after retries) since start.
    pub failures: u64,
    /// Requests retried since start.
    pub retries: u64,
}
