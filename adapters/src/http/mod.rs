//! The HTTP toolkit shared by the pull adapters (REST, SOAP/XML) and the REST sink:
//!
//! - [`auth`]: how requests prove who sends them (static header or API key, basic, bearer, a
//!   token from a token endpoint with refresh, request signatures);
//! - [`signing`]: the signature algorithms (HMAC-SHA256, HMAC-SM3, SHA-256, SM3), encodings and
//!   the `sorted_params` canonical string;
//! - [`client`]: one client per source with a rate limit, a concurrency limit, timeouts,
//!   retries with backoff and jitter, a circuit breaker and the counters behind `health()`;
//! - [`origin`]: where a pull source's credentials may go (its `url`'s origin and its
//!   `allowed_hosts`), for requests, next links and redirects.

pub mod auth;
pub mod client;
pub mod origin;
pub mod signing;
