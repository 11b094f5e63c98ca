//! Access control of the operator API: bearer tokens (kept as SHA-256 digests, compared in
//! constant time), roles, per-department source scopes and a per-token rate limit.
//!
//! | Role | May |
//! |---|---|
//! | `admin` | everything |
//! | `operator` | sources (read, pull, resync), quarantine (read, replay, ignore), cases, raw records, deliveries (read, re-drive), metrics, the officer registry (read) |
//! | `standards-owner` | read sources, quarantine, cases and raw records; the mapping routes (`/api/mappings`); load and read the officer registry |
//! | `department` | push to its own sources; read the quarantine of its own sources; load and read the officer registry of its own agencies |
//!
//! Joint inspections (`/api/joint-groups`): operators and admins read and decide, standards
//! owners read, departments read the groups with an inspection of their own sources.

use super::error::ApiError;
use crate::config::ServerConfig;
use axum::http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::StatusCode;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::path::Path;
use subtle::ConstantTimeEq;

/// A token's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Everything.
    Admin,
    /// Runs the gateway day to day.
    Operator,
    /// Owns the data standards and mappings.
    StandardsOwner,
    /// A department pushing its own records.
    Department,
}

impl Role {
    /// Parse a configured role name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "operator" => Some(Role::Operator),
            "standards-owner" => Some(Role::StandardsOwner),
            "department" => Some(Role::Department),
            _ => None,
        }
    }

    /// The configured name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::StandardsOwner => "standards-owner",
            Role::Department => "department",
        }
    }
}

/// What a route does, for the role check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Who am I (any valid token).
    Whoami,
    /// List and read sources.
    SourcesRead,
    /// Pull now, resync.
    SourcesControl,
    /// List and read quarantine entries (departments: of their own sources).
    QuarantineRead,
    /// Replay entries through the current mapping (departments: their own).
    QuarantineReplay,
    /// Ignore entries, with a reason.
    QuarantineIgnore,
    /// Read cases.
    CasesRead,
    /// Read raw archived records.
    RawRead,
    /// List deliveries.
    DeliveriesRead,
    /// Re-drive dead deliveries.
    DeliveriesWrite,
    /// Read the metrics.
    Metrics,
    /// Push records to a source (departments: their own).
    Push,
    /// The mapping routes.
    Mappings,
    /// Read the audit log.
    AuditRead,
    /// What became of each received record (departments: of their own sources).
    RecordsRead,
    /// Read the officer registry (departments: of their own agencies).
    OfficersRead,
    /// Load an officer registry (departments: of their own agencies).
    OfficersWrite,
    /// List cases awaiting supplement (待补录) (departments: of their own sources).
    SupplementsRead,
    /// Complete fields a case awaits (departments: of their own sources).
    SupplementsWrite,
    /// Read joint-inspection groups (departments: those with an inspection of their sources).
    JointRead,
    /// Merge, dismiss or undo joint-inspection groups.
    JointDecide,
    /// Read penalties' publicity (双公示) per department (departments: of their own sources).
    PublicityRead,
    /// Receipts of raw records (the evidence-grade archive).
    ArchiveReceipt,
}

impl Action {
    /// Every action, in a stable order.
    pub const ALL: [Action; 23] = [
        Action::Whoami,
        Action::SourcesRead,
        Action::SourcesControl,
        Action::QuarantineRead,
        Action::QuarantineReplay,
        Action::QuarantineIgnore,
        Action::CasesRead,
        Action::RawRead,
        Action::DeliveriesRead,
        Action::DeliveriesWrite,
        Action::Metrics,
        Action::Push,
        Action::Mappings,
        Action::AuditRead,
        Action::RecordsRead,
        Action::OfficersRead,
        Action::OfficersWrite,
        Action::SupplementsRead,
        Action::SupplementsWrite,
        Action::JointRead,
        Action::JointDecide,
        Action::PublicityRead,
        Action::ArchiveReceipt,
    ];
}

/// Whether `role` may do `action` (source scopes of departments are checked separately).
pub fn allows(role: Role, action: Action) -> bool {
    use Action::*;
    match role {
        Role::Admin => true,
        Role::Operator => !matches!(action, Mappings | Push | OfficersWrite),
        Role::StandardsOwner => matches!(
            action,
            Whoami
                | SourcesRead
                | QuarantineRead
                | QuarantineReplay
                | CasesRead
                | RawRead
                | Mappings
                | AuditRead
                | RecordsRead
                | OfficersRead
                | OfficersWrite
                | SupplementsRead
                | JointRead
                | PublicityRead
        ),
        Role::Department => matches!(
            action,
            Whoami
                | Push
                | QuarantineRead
                | QuarantineReplay
                | RecordsRead
                | SupplementsRead
                | SupplementsWrite
                | OfficersRead
                | OfficersWrite
                | JointRead
                | PublicityRead
        ),
    }
}

/// The actions `role` may do (what `GET /api/me` lists, so that a client need not mirror this table).
pub fn actions_of(role: Role) -> Vec<Action> {
    Action::ALL.into_iter().filter(|a| allows(role, *a)).collect()
}

/// The holder of a valid token.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    /// The token's name (the audit log's actor).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Department tokens: their sources (empty for other roles, which see every source).
    pub sources: BTreeSet<String>,
    /// Holds the `personal-data` permission: may ask for personal data in clear.
    pub personal_data: bool,
}

impl Principal {
    /// 403 unless the role allows `action`.
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        if allows(self.role, action) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                format!("令牌 {:?}（角色 {}）无权执行此操作", self.name, self.role.as_str()),
                format!("token {:?} (role {}) may not do this", self.name, self.role.as_str()),
            ))
        }
    }

    /// Whether the token's scope covers `source` (always, except for departments).
    pub fn covers(&self, source: &str) -> bool {
        self.role != Role::Department || self.sources.contains(source)
    }

    /// 403 unless the token's scope covers `source`.
    pub fn require_source(&self, source: &str) -> Result<(), ApiError> {
        if self.covers(source) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                format!("令牌 {:?} 无权访问来源 {source:?}", self.name),
                format!("token {:?} may not access source {source:?}", self.name),
            ))
        }
    }
}

struct Entry {
    digest: [u8; 32],
    principal: Principal,
}

/// Why the token table cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// A token entry is wrong.
    #[error("令牌配置错误 / token settings: server.tokens[{index}] (name {name:?}): {message}")]
    Token {
        /// Its index.
        index: usize,
        /// Its name.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// The configured tokens and their rate limiter.
pub struct Tokens {
    entries: Vec<Entry>,
    limiter: DefaultKeyedRateLimiter<String>,
    failures: DefaultKeyedRateLimiter<std::net::IpAddr>,
    failures_per_minute: u32,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(|e| e.principal.name.as_str()).collect();
        f.debug_struct("Tokens").field("names", &names).finish()
    }
}

/// SHA-256 of a token.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A fresh random token (`gwt_` + 64 hex digits) and its SHA-256 in hex.
pub fn new_token() -> Result<(String, String), getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let token = format!("gwt_{}", hex::encode(bytes));
    let hash = hex::encode(digest(&token));
    Ok((token, hash))
}

impl Tokens {
    /// The tokens of `[server]`; `base` is the config file's directory (for `token_file`).
    pub fn from_config(server: &ServerConfig, base: &Path) -> Result<Tokens, AuthConfigError> {
        let mut entries = Vec::with_capacity(server.tokens.len());
        for (index, t) in server.tokens.iter().enumerate() {
            let fail = |message: String| AuthConfigError::Token {
                index,
                name: t.name.clone(),
                message,
            };
            let role = Role::parse(&t.role).ok_or_else(|| fail(format!("未知角色 / unknown role {:?}", t.role)))?;
            let digest = t.digest(base).map_err(fail)?;
            let sources = if role == Role::Department {
                t.sources.iter().cloned().collect()
            } else {
                BTreeSet::new()
            };
            entries.push(Entry {
                digest,
                principal: Principal {
                    name: t.name.clone(),
                    role,
                    sources,
                    personal_data: t.permissions.iter().any(|p| p == "personal-data"),
                },
            });
        }
        let rate = NonZeroU32::new(server.rate_limit_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = server.rate_limit_burst.and_then(NonZeroU32::new).unwrap_or(rate);
        let limiter = RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst));
        let per_minute = NonZeroU32::new(server.auth_failures_per_minute).unwrap_or(NonZeroU32::MIN);
        let failures = RateLimiter::keyed(Quota::per_minute(per_minute));
        Ok(Tokens {
            entries,
            limiter,
            failures,
            failures_per_minute: per_minute.get(),
        })
    }

    /// A failed authentication from `address`: the 401 it gets (`refusal`) while the address
    /// has failed at most `auth_failures_per_minute` times in the last minute, else 429 with
    /// `Retry-After`. A valid token is never limited here: many departments may reach the
    /// gateway through one proxy address, and one of them guessing must not lock the others out
    /// (a 256-bit token cannot be guessed at any rate).
    pub fn failed_from(&self, address: Option<std::net::IpAddr>, refusal: ApiError) -> ApiError {
        let Some(address) = address else { return refusal };
        match self.failures.check_key(&address) {
            Ok(()) => refusal,
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
                tracing::warn!(%address, "failed authentications limited");
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_failed_authentications",
                    format!(
                        "来自该地址的无效令牌请求过多（每分钟最多 {} 次，server.auth_failures_per_minute），请 {seconds} 秒后重试",
                        self.failures_per_minute
                    ),
                    format!(
                        "too many requests with an invalid token from this address (at most {} a minute, server.auth_failures_per_minute); retry in {seconds} s",
                        self.failures_per_minute
                    ),
                )
                .with_header(RETRY_AFTER, HeaderValue::from(seconds))
            }
        }
    }

    /// The holder of the bearer token in an `Authorization` header value; 401 otherwise.
    pub fn authenticate(&self, authorization: Option<&HeaderValue>) -> Result<Principal, ApiError> {
        let challenge = |error: Option<&str>| {
            let value = match error {
                Some(e) => format!("Bearer realm=\"ganzhi-gateway\", error=\"{e}\""),
                None => "Bearer realm=\"ganzhi-gateway\"".to_string(),
            };
            HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
        };
        let Some(value) = authorization else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "需要令牌：请求头 Authorization: Bearer <令牌>",
                "a token is required: header Authorization: Bearer <token>",
            )
            .with_header(WWW_AUTHENTICATE, challenge(None)));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let presented = token.map(digest);
        let mut found: Option<&Entry> = None;
        if let Some(presented) = presented {
            for entry in &self.entries {
                let equal: bool = entry.digest.ct_eq(&presented).into();
                if equal && found.is_none() {
                    found = Some(entry);
                }
            }
        }
        match found {
            Some(entry) => Ok(entry.principal.clone()),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "令牌无效",
                "the token is not valid",
            )
            .with_header(WWW_AUTHENTICATE, challenge(Some("invalid_token")))),
        }
    }

    /// 429 (with `Retry-After`) when the token has used up its rate.
    pub fn check_rate(&self, principal: &Principal) -> Result<(), ApiError> {
        match self.limiter.check_key(&principal.name) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("请求过于频繁，请 {seconds} 秒后重试"),
                    format!("too many requests, retry in {seconds} s"),
                )
                .with_header(RETRY_AFTER, HeaderValue::from(seconds.max(1))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TokenConfig;

    fn server(tokens: Vec<TokenConfig>) -> ServerConfig {
        ServerConfig {
            tokens,
            rate_limit_per_second: 1,
            rate_limit_burst: Some(2),
            ..ServerConfig::default()
        }
    }

    fn token(name: &str, role: &str, clear: &str) -> TokenConfig {
        TokenConfig {
            name: name.into(),
            role: role.into(),
            sources: if role == "department" {
                vec!["s1".into()]
            } else {
                vec![]
            },
            sha256: Some(hex::encode(digest(clear))),
            token_env: None,
            token_file: None,
            permissions: vec![],
        }
    }

    #[test]
    fn role_matrix_gives_each_role_its_actions_only() {
        assert!(Action::Mappings != Action::Push);
        assert!(allows(Role::Admin, Action::Mappings));
        assert!(allows(Role::Operator, Action::DeliveriesWrite));
        assert!(!allows(Role::Operator, Action::Push));
        assert!(!allows(Role::Operator, Action::Mappings));
        assert!(allows(Role::StandardsOwner, Action::Mappings));
        assert!(!allows(Role::StandardsOwner, Action::QuarantineIgnore));
        assert!(allows(Role::StandardsOwner, Action::QuarantineReplay));
        assert!(allows(Role::StandardsOwner, Action::AuditRead));
        assert!(allows(Role::Department, Action::QuarantineReplay));
        assert!(allows(Role::Department, Action::RecordsRead));
        assert!(!allows(Role::Department, Action::QuarantineIgnore));
        assert!(!allows(Role::Department, Action::AuditRead));
        assert_eq!(actions_of(Role::Admin).len(), Action::ALL.len());
        assert!(!allows(Role::StandardsOwner, Action::Metrics));
        assert!(allows(Role::Department, Action::Push));
        assert!(allows(Role::Department, Action::QuarantineRead));
        assert!(!allows(Role::Department, Action::CasesRead));
        assert!(!allows(Role::Department, Action::SourcesRead));
    }

    #[test]
    fn a_valid_bearer_token_names_its_holder_and_anything_else_is_401_with_a_challenge() {
        let tokens =
            Tokens::from_config(&server(vec![token("ops", "operator", "secret-1")]), Path::new("/")).expect("tokens");
        let ok = tokens
            .authenticate(Some(&HeaderValue::from_static("Bearer secret-1")))
            .expect("valid");
        assert_eq!(ok.name, "ops");
        assert_eq!(ok.role, Role::Operator);
        for bad in [None, Some("Bearer nope"), Some("Basic secret-1"), Some("Bearer ")] {
            let header = bad.map(HeaderValue::from_static);
            let e = tokens.authenticate(header.as_ref()).expect_err("refused");
            assert_eq!(e.status, StatusCode::UNAUTHORIZED);
            assert!(e.headers.iter().any(|(n, _)| n == WWW_AUTHENTICATE));
        }
    }

    #[test]
    fn rate_limit_allows_the_burst_then_answers_429_with_retry_after() {
        let tokens = Tokens::from_config(&server(vec![token("d", "department", "t")]), Path::new("/")).expect("tokens");
        let p = tokens
            .authenticate(Some(&HeaderValue::from_static("Bearer t")))
            .expect("valid");
        assert!(tokens.check_rate(&p).is_ok());
        assert!(tokens.check_rate(&p).is_ok());
        let e = tokens.check_rate(&p).expect_err("third within a second");
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(e.headers.iter().any(|(n, _)| n == RETRY_AFTER));
    }

    #[test]
    fn new_tokens_are_random_and_their_hash_matches() {
        let (a, ha) = new_token().expect("random");
        let (b, _) = new_token().expect("random");
        assert_ne!(a, b);
        assert!(a.starts_with("gwt_") && a.len() == 68);
        assert_eq!(ha, hex::encode(digest(&a)));
    }

    #[test]
    fn department_scope_covers_its_sources_only() {
        let p = Principal {
            name: "d".into(),
            role: Role::Department,
            sources: ["s1".to_string()].into_iter().collect(),
            personal_data: false,
        };
        assert!(p.covers("s1"));
        assert!(!p.covers("s2"));
        assert_eq!(
            p.require_source("s2").expect_err("outside").status,
            StatusCode::FORBIDDEN
        );
    }
}
