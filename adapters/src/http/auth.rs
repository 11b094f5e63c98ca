//! Authentication of outgoing HTTP requests, the same for the pull adapters and the REST sink.
//!
//! `auth = { kind = "..." , ... }`:
//! - `none`;
//! - `basic`: `username` + `password` (HTTP basic);
//! - `bearer`: a fixed `token` (`Authorization: Bearer ...`);
//! - `header`: a named `header` carrying a fixed `value` (e.g. `X-Api-Key`);
//! - `api_key`: a fixed `value` in a `header` or in a query parameter `query_param`;
//! - `token`: a token fetched from `token_url` (POST, form or JSON, with the user name, password,
//!   client id and secret under configurable field names and fixed `token_params`), read from
//!   the answer at `token_path` with its lifetime at `expires_in_path`, cached, fetched anew
//!   `refresh_before_seconds` before it expires and once after a 401 (the request is then sent
//!   again), and sent in `token_header` with `token_prefix` (or in a query parameter);
//! - `hmac`: every request signed (HMAC-SHA256 by default; HMAC-SM3, or a plain SHA-256 / SM3
//!   digest over the string and the secret, with `algorithm`) over a canonical string: with
//!   `style = "template"` (default) built from the template `string_to_sign` (placeholders
//!   `{method}`, `{path}`, `{query}`, `{sorted_query}`, `{sorted_query_raw}`, `{host}`,
//!   `{timestamp}`, `{nonce}`, `{body_sha256}`, `{app_key}`), the app key, timestamp, nonce and
//!   signature in configurable headers; with `style = "sorted_params"` the query parameters and
//!   the app key, timestamp and nonce sorted by name and joined `k=v&k=v` (see
//!   [`super::signing`]), sent as query parameters or headers. Signatures are `hex`, `HEX` or
//!   `base64`.
//!
//! Secrets come inline (avoid), from `<name>_env` or `<name>_file`; none of them is ever
//! printed, logged or shown by `Debug`.

use super::signing::{BodyPart, SecretPosition, SignAlgorithm, SignatureEncoding, SortedParams};
use crate::common::http_error::{error_chain, foreign_origin_of, AuthError};
use crate::common::json_path::{json_at, scalar_text};
use crate::common::secret::{Redacted, Secret, SecretSource};
use crate::common::settings::SettingsProblem;
use crate::common::text::excerpt;
use base64::Engine as _;
use governor::DefaultDirectRateLimiter;
use rand::Rng as _;
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The default canonical string of `kind = "hmac"`.
pub const DEFAULT_STRING_TO_SIGN: &str = "{method}\n{path}\n{query}\n{timestamp}\n{nonce}\n{body_sha256}";

/// Placeholders of `string_to_sign`.
pub const SIGN_PLACEHOLDERS: &[&str] = &[
    "method",
    "path",
    "query",
    "sorted_query",
    "sorted_query_raw",
    "host",
    "timestamp",
    "nonce",
    "body_sha256",
    "app_key",
];

/// The `auth` table of a REST source, SOAP source or REST sink.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// `none`, `basic`, `bearer`, `header`, `api_key`, `token` or `hmac`.
    pub kind: String,
    /// basic, token: the user name.
    pub username: Option<String>,
    /// basic, token: the password inline (avoid; prefer `password_env` / `password_file`).
    pub password: Option<Redacted>,
    /// basic, token: environment variable holding the password.
    pub password_env: Option<String>,
    /// basic, token: file holding the password.
    pub password_file: Option<PathBuf>,
    /// bearer: the token inline (avoid; prefer `token_env` / `token_file`).
    pub token: Option<Redacted>,
    /// bearer: environment variable holding the token.
    pub token_env: Option<String>,
    /// bearer: file holding the token.
    pub token_file: Option<PathBuf>,
    /// header, api_key: the header's name.
    pub header: Option<String>,
    /// api_key: the query parameter's name (instead of a header).
    pub query_param: Option<String>,
    /// header, api_key: the value inline (avoid; prefer `value_env` / `value_file`).
    pub value: Option<Redacted>,
    /// header, api_key: environment variable holding the value.
    pub value_env: Option<String>,
    /// header, api_key: file holding the value.
    pub value_file: Option<PathBuf>,
    /// token: the token endpoint (POST).
    pub token_url: Option<String>,
    /// token: `form` (default, `application/x-www-form-urlencoded`) or `json`.
    pub token_format: Option<String>,
    /// token: fixed fields of the token request, e.g. `{ grant_type = "password" }`.
    #[serde(default)]
    pub token_params: BTreeMap<String, String>,
    /// token: field carrying the user name (default `username`).
    pub username_field: Option<String>,
    /// token: field carrying the password (default `password`).
    pub password_field: Option<String>,
    /// token: the client id (sent when given).
    pub client_id: Option<String>,
    /// token: field carrying the client id (default `client_id`).
    pub client_id_field: Option<String>,
    /// token: the client secret inline (avoid).
    pub client_secret: Option<Redacted>,
    /// token: environment variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// token: file holding the client secret.
    pub client_secret_file: Option<PathBuf>,
    /// token: field carrying the client secret (default `client_secret`).
    pub client_secret_field: Option<String>,
    /// token: dotted path of the token in the answer (default `access_token`).
    pub token_path: Option<String>,
    /// token: dotted path of the token's lifetime in seconds (default `expires_in`).
    pub expires_in_path: Option<String>,
    /// token: lifetime assumed when the answer gives none (default 3600 s).
    pub token_lifetime_seconds: Option<u64>,
    /// token: fetch a new token this long before the old one expires (default 60 s).
    pub refresh_before_seconds: Option<u64>,
    /// token: header carrying the token (default `Authorization`).
    pub token_header: Option<String>,
    /// token: text before the token in that header (default `Bearer `).
    pub token_prefix: Option<String>,
    /// token: send the token in this query parameter instead of a header.
    pub token_query_param: Option<String>,
    /// hmac: the application key (not secret; sent in `app_key_header`).
    pub app_key: Option<String>,
    /// hmac: the signing secret inline (avoid; prefer `app_secret_env` / `app_secret_file`).
    pub app_secret: Option<Redacted>,
    /// hmac: environment variable holding the signing secret.
    pub app_secret_env: Option<String>,
    /// hmac: file holding the signing secret.
    pub app_secret_file: Option<PathBuf>,
    /// hmac: header carrying the app key (default `X-App-Key`).
    pub app_key_header: Option<String>,
    /// hmac: header carrying the timestamp (default `X-Timestamp`).
    pub timestamp_header: Option<String>,
    /// hmac: header carrying the nonce (default `X-Nonce`).
    pub nonce_header: Option<String>,
    /// hmac: header carrying the signature (default `X-Signature`).
    pub signature_header: Option<String>,
    /// hmac: `millis` (default: epoch milliseconds), `seconds` or `rfc3339`.
    pub timestamp_format: Option<String>,
    /// hmac: the canonical string template (default [`DEFAULT_STRING_TO_SIGN`]).
    pub string_to_sign: Option<String>,
    /// hmac: `hex` (default, lower case), `HEX` (upper case) or `base64`.
    pub signature_encoding: Option<String>,
    /// hmac: `template` (default: `string_to_sign`) or `sorted_params` (see [`super::signing`]).
    pub style: Option<String>,
    /// hmac: `hmac-sha256` (default), `hmac-sm3` (国密 SM3-HMAC), or the plain digests `sha256` /
    /// `sm3` over the canonical string with the secret in it (`secret_param` or `secret_position`).
    pub algorithm: Option<String>,
    /// hmac: where the secret goes into the string itself: `none` (default), `prepend`,
    /// `append` or `both` (secret + string + secret).
    pub secret_position: Option<String>,
    /// sorted_params: name of the app key parameter (default `appKey`).
    pub app_key_param: Option<String>,
    /// sorted_params: name of the timestamp parameter (default `timestamp`).
    pub timestamp_param: Option<String>,
    /// sorted_params: name of the nonce parameter (default `nonce`).
    pub nonce_param: Option<String>,
    /// sorted_params: name of the signature parameter (default `sign`).
    pub signature_param: Option<String>,
    /// sorted_params: `query` (default: app key, timestamp, nonce and signature are sent as query
    /// parameters) or `headers` (in `app_key_header`, `timestamp_header`, `nonce_header`,
    /// `signature_header`).
    pub auth_params_in: Option<String>,
    /// sorted_params: URL-encode names and values in the string (default false: raw values).
    pub encode_values: Option<bool>,
    /// sorted_params: leave parameters with an empty value out of the string (default true).
    pub skip_empty: Option<bool>,
    /// sorted_params: the request body in the string: `none` (default), `param` (`&body=<raw
    /// body>` after the sorted parameters, named by `body_param`) or `append` (the raw body right
    /// after them).
    pub body: Option<String>,
    /// sorted_params: name of the body parameter (default `body`).
    pub body_param: Option<String>,
    /// sorted_params: append `&<secret_param>=<secret>` after everything else (default none).
    pub secret_param: Option<String>,
    /// sorted_params: between pairs (default `&`).
    pub pair_separator: Option<String>,
    /// sorted_params: between a name and its value (default `=`).
    pub kv_separator: Option<String>,
}

/// Body encoding of a token request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenFormat {
    Form,
    Json,
}

/// Where a fetched token goes.
#[derive(Debug, Clone)]
enum TokenPlace {
    Header { name: HeaderName, prefix: String },
    Query(String),
}

/// A token endpoint and the token it gave.
#[derive(Debug)]
pub struct TokenAuth {
    url: reqwest::Url,
    format: TokenFormat,
    fields: Vec<(String, Secret)>,
    token_path: String,
    expires_in_path: String,
    lifetime: Duration,
    refresh_before: Duration,
    place: TokenPlace,
    cached: tokio::sync::Mutex<Option<CachedToken>>,
}

#[derive(Debug, Clone)]
struct CachedToken {
    value: Secret,
    refresh_at: Instant,
    generation: u64,
}

/// How the timestamp of a signed request is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimestampFormat {
    Millis,
    Seconds,
    Rfc3339,
}

/// One part of the canonical string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SignPart {
    Text(String),
    Var(&'static str),
}

/// How the canonical string is built.
#[derive(Debug, Clone)]
enum SignStyle {
    /// From the `string_to_sign` template.
    Template(Vec<SignPart>),
    /// Sorted parameters (see [`super::signing`]).
    SortedParams(SortedParams),
}

/// Request signing (HMAC-SHA256, HMAC-SM3 or a plain digest).
#[derive(Debug)]
pub struct HmacAuth {
    app_key: String,
    secret: Secret,
    app_key_header: HeaderName,
    timestamp_header: HeaderName,
    nonce_header: HeaderName,
    signature_header: HeaderName,
    timestamp_format: TimestampFormat,
    style: SignStyle,
    algorithm: SignAlgorithm,
    encoding: SignatureEncoding,
    secret_position: SecretPosition,
}

/// Resolved authentication, ready to apply to requests.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Nothing added.
    None,
    /// HTTP basic.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// A fixed header.
    Header {
        /// Header name.
        name: HeaderName,
        /// Its value.
        value: Secret,
    },
    /// A fixed query parameter.
    Query {
        /// Parameter name.
        name: String,
        /// Its value.
        value: Secret,
    },
    /// A token from a token endpoint.
    Token(Arc<TokenAuth>),
    /// Signatures (HMAC-SHA256, HMAC-SM3 or a plain digest).
    Hmac(Arc<HmacAuth>),
}

/// What [`Auth::authorize`] used, to hand back to [`Auth::unauthorized`] after a 401.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthUsed {
    token_generation: Option<u64>,
}

fn header_name(value: Option<&str>, default: &str, key: &str, problems: &mut Vec<SettingsProblem>) -> HeaderName {
    let name = value.unwrap_or(default);
    match HeaderName::try_from(name) {
        Ok(h) => h,
        Err(e) => {
            problems.push(SettingsProblem {
                key: key.into(),
                message: format!("无效的头名称 / invalid header name {name:?}: {e}"),
            });
            HeaderName::from_static("x-invalid")
        }
    }
}

/// Parse a canonical-string template with `{name}` placeholders.
fn parse_string_to_sign(text: &str) -> Result<Vec<SignPart>, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        if start > 0 {
            parts.push(SignPart::Text(rest[..start].to_string()));
        }
        let after = &rest[start + 1..];
        let end = after
            .find('}')
            .ok_or_else(|| "签名模板中 { 未闭合 / unclosed { in string_to_sign".to_string())?;
        let name = after[..end].trim();
        let var = SIGN_PLACEHOLDERS.iter().find(|p| **p == name).ok_or_else(|| {
            format!(
                "签名模板中未知占位符 {{{name}}} / unknown placeholder {{{name}}} in string_to_sign; known: {}",
                SIGN_PLACEHOLDERS.join(", ")
            )
        })?;
        parts.push(SignPart::Var(var));
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        parts.push(SignPart::Text(rest.to_string()));
    }
    Ok(parts)
}

impl AuthSettings {
    /// Check and resolve (reading secrets). Problems name their keys as `<prefix><key>`, e.g.
    /// `auth.token_env` for `prefix = "auth."`.
    pub fn resolve(&self, base: &Path, prefix: &str) -> Result<Auth, Vec<SettingsProblem>> {
        let mut problems: Vec<SettingsProblem> = Vec::new();
        let key = |k: &str| format!("{prefix}{k}");
        let problem = |k: &str, message: String| SettingsProblem { key: key(k), message };
        let secret = |name: &'static str,
                      inline: &Option<Redacted>,
                      env: &Option<String>,
                      file: &Option<PathBuf>,
                      required: bool|
         -> Result<Option<Secret>, SettingsProblem> {
            let source = SecretSource {
                name,
                inline: inline.as_ref().map(|r| r.0.as_str()),
                env: env.as_deref(),
                file: file.as_deref(),
            };
            let found = if required {
                source.require(base).map(Some)
            } else {
                source.resolve(base)
            };
            found.map_err(|m| SettingsProblem {
                key: key(name),
                message: m,
            })
        };
        let push = |r: Result<Option<Secret>, SettingsProblem>, problems: &mut Vec<SettingsProblem>| match r {
            Ok(s) => s,
            Err(p) => {
                problems.push(p);
                None
            }
        };
        let redacted = || Secret::new("");
        let auth = match self.kind.as_str() {
            "none" => Auth::None,
            "basic" => {
                let password = push(
                    secret(
                        "password",
                        &self.password,
                        &self.password_env,
                        &self.password_file,
                        true,
                    ),
                    &mut problems,
                );
                match &self.username {
                    Some(u) => Auth::Basic {
                        username: u.clone(),
                        password: password.unwrap_or_else(redacted),
                    },
                    None => {
                        problems.push(problem(
                            "username",
                            "basic 认证需要 username / basic auth needs username".into(),
                        ));
                        Auth::None
                    }
                }
            }
            "bearer" => Auth::Bearer(
                push(
                    secret("token", &self.token, &self.token_env, &self.token_file, true),
                    &mut problems,
                )
                .unwrap_or_else(redacted),
            ),
            "header" | "api_key" => {
                let value = push(
                    secret("value", &self.value, &self.value_env, &self.value_file, true),
                    &mut problems,
                )
                .unwrap_or_else(redacted);
                match (&self.header, &self.query_param, self.kind.as_str()) {
                    (Some(h), None, _) => match HeaderName::try_from(h.as_str()) {
                        Ok(name) => Auth::Header { name, value },
                        Err(e) => {
                            problems.push(problem(
                                "header",
                                format!("无效的头名称 / invalid header name {h:?}: {e}"),
                            ));
                            Auth::None
                        }
                    },
                    (None, Some(q), "api_key") if !q.is_empty() => Auth::Query { name: q.clone(), value },
                    (None, _, "header") => {
                        problems.push(problem(
                            "header",
                            "header 认证需要 header / header auth needs `header`".into(),
                        ));
                        Auth::None
                    }
                    _ => {
                        problems.push(problem(
                            "header",
                            "api_key 认证需要 header 或 query_param 之一 / api_key auth needs exactly one of `header`, `query_param`"
                                .into(),
                        ));
                        Auth::None
                    }
                }
            }
            "token" => match self.token_auth(base, prefix, &mut problems) {
                Some(t) => Auth::Token(Arc::new(t)),
                None => Auth::None,
            },
            "hmac" => match self.hmac_auth(base, prefix, &mut problems) {
                Some(h) => Auth::Hmac(Arc::new(h)),
                None => Auth::None,
            },
            other => {
                problems.push(problem(
                    "kind",
                    format!(
                        "未知认证方式 / unknown auth kind {other:?}: none, basic, bearer, header, api_key, token or hmac"
                    ),
                ));
                Auth::None
            }
        };
        if problems.is_empty() {
            Ok(auth)
        } else {
            Err(problems)
        }
    }

    fn token_auth(&self, base: &Path, prefix: &str, problems: &mut Vec<SettingsProblem>) -> Option<TokenAuth> {
        let key = |k: &str| format!("{prefix}{k}");
        let before = problems.len();
        let url = match self.token_url.as_deref().map(reqwest::Url::parse) {
            Some(Ok(u)) if matches!(u.scheme(), "http" | "https") => Some(u),
            Some(Ok(u)) => {
                problems.push(SettingsProblem {
                    key: key("token_url"),
                    message: format!("应为 http(s) 地址 / must be http or https, got {}:", u.scheme()),
                });
                None
            }
            Some(Err(e)) => {
                problems.push(SettingsProblem {
                    key: key("token_url"),
                    message: format!("无效的 URL / invalid URL: {e}"),
                });
                None
            }
            None => {
                problems.push(SettingsProblem {
                    key: key("token_url"),
                    message: "token 认证需要 token_url / token auth needs token_url".into(),
                });
                None
            }
        };
        let format = match self.token_format.as_deref().unwrap_or("form") {
            "form" => TokenFormat::Form,
            "json" => TokenFormat::Json,
            other => {
                problems.push(SettingsProblem {
                    key: key("token_format"),
                    message: format!("应为 form 或 json / must be form or json, got {other:?}"),
                });
                TokenFormat::Form
            }
        };
        let mut fields: Vec<(String, Secret)> = self
            .token_params
            .iter()
            .map(|(k, v)| (k.clone(), Secret::new(v.clone())))
            .collect();
        let secret_of =
            |name: &'static str, inline: &Option<Redacted>, env: &Option<String>, file: &Option<PathBuf>| {
                SecretSource {
                    name,
                    inline: inline.as_ref().map(|r| r.0.as_str()),
                    env: env.as_deref(),
                    file: file.as_deref(),
                }
                .resolve(base)
                .map_err(|m| SettingsProblem {
                    key: key(name),
                    message: m,
                })
            };
        let password = secret_of("password", &self.password, &self.password_env, &self.password_file);
        let client_secret = secret_of(
            "client_secret",
            &self.client_secret,
            &self.client_secret_env,
            &self.client_secret_file,
        );
        if let Some(u) = &self.username {
            fields.push((
                self.username_field.clone().unwrap_or_else(|| "username".into()),
                Secret::new(u.clone()),
            ));
        }
        match password {
            Ok(Some(p)) => fields.push((self.password_field.clone().unwrap_or_else(|| "password".into()), p)),
            Ok(None) => {}
            Err(p) => problems.push(p),
        }
        if let Some(c) = &self.client_id {
            fields.push((
                self.client_id_field.clone().unwrap_or_else(|| "client_id".into()),
                Secret::new(c.clone()),
            ));
        }
        match client_secret {
            Ok(Some(s)) => fields.push((
                self.client_secret_field
                    .clone()
                    .unwrap_or_else(|| "client_secret".into()),
                s,
            )),
            Ok(None) => {}
            Err(p) => problems.push(p),
        }
        if fields.is_empty() {
            problems.push(SettingsProblem {
                key: key("token_url"),
                message: "令牌请求没有任何凭据 / the token request carries no credentials: give username/password, client_id/client_secret or token_params".into(),
            });
        }
        let place = match (&self.token_query_param, &self.token_header) {
            (Some(q), None) if !q.is_empty() => TokenPlace::Query(q.clone()),
            (Some(_), _) => {
                problems.push(SettingsProblem {
                    key: key("token_query_param"),
                    message: "token_query_param 与 token_header 只能给出一个 / give only one of token_query_param, token_header".into(),
                });
                TokenPlace::Query(String::new())
            }
            (None, h) => TokenPlace::Header {
                name: header_name(h.as_deref(), "Authorization", &key("token_header"), problems),
                prefix: self.token_prefix.clone().unwrap_or_else(|| "Bearer ".into()),
            },
        };
        if self.token_lifetime_seconds == Some(0) {
            problems.push(SettingsProblem {
                key: key("token_lifetime_seconds"),
                message: "应至少为 1 / must be at least 1".into(),
            });
        }
        if problems.len() > before {
            return None;
        }
        Some(TokenAuth {
            url: url?,
            format,
            fields,
            token_path: self.token_path.clone().unwrap_or_else(|| "access_token".into()),
            expires_in_path: self.expires_in_path.clone().unwrap_or_else(|| "expires_in".into()),
            lifetime: Duration::from_secs(self.token_lifetime_seconds.unwrap_or(3600)),
            refresh_before: Duration::from_secs(self.refresh_before_seconds.unwrap_or(60)),
            place,
            cached: tokio::sync::Mutex::new(None),
        })
    }

    fn hmac_auth(&self, base: &Path, prefix: &str, problems: &mut Vec<SettingsProblem>) -> Option<HmacAuth> {
        let key = |k: &str| format!("{prefix}{k}");
        let before = problems.len();
        let app_key = self.app_key.clone().unwrap_or_default();
        if app_key.is_empty() {
            problems.push(SettingsProblem {
                key: key("app_key"),
                message: "hmac 认证需要 app_key / hmac auth needs app_key".into(),
            });
        }
        let secret = SecretSource {
            name: "app_secret",
            inline: self.app_secret.as_ref().map(|r| r.0.as_str()),
            env: self.app_secret_env.as_deref(),
            file: self.app_secret_file.as_deref(),
        }
        .require(base)
        .map_err(|m| {
            problems.push(SettingsProblem {
                key: key("app_secret"),
                message: m,
            })
        })
        .ok();
        let app_key_header = header_name(
            self.app_key_header.as_deref(),
            "X-App-Key",
            &key("app_key_header"),
            problems,
        );
        let timestamp_header = header_name(
            self.timestamp_header.as_deref(),
            "X-Timestamp",
            &key("timestamp_header"),
            problems,
        );
        let nonce_header = header_name(self.nonce_header.as_deref(), "X-Nonce", &key("nonce_header"), problems);
        let signature_header = header_name(
            self.signature_header.as_deref(),
            "X-Signature",
            &key("signature_header"),
            problems,
        );
        let timestamp_format = match self.timestamp_format.as_deref().unwrap_or("millis") {
            "millis" => TimestampFormat::Millis,
            "seconds" => TimestampFormat::Seconds,
            "rfc3339" => TimestampFormat::Rfc3339,
            other => {
                problems.push(SettingsProblem {
                    key: key("timestamp_format"),
                    message: format!(
                        "应为 millis、seconds 或 rfc3339 / must be millis, seconds or rfc3339, got {other:?}"
                    ),
                });
                TimestampFormat::Millis
            }
        };
        fn checked<T>(problems: &mut Vec<SettingsProblem>, key: String, r: Result<T, String>) -> Option<T> {
            r.map_err(|message| problems.push(SettingsProblem { key, message }))
                .ok()
        }
        let encoding = checked(
            problems,
            key("signature_encoding"),
            SignatureEncoding::parse(self.signature_encoding.as_deref().unwrap_or("hex")),
        );
        let algorithm = checked(
            problems,
            key("algorithm"),
            SignAlgorithm::parse(self.algorithm.as_deref().unwrap_or("hmac-sha256")),
        );
        let secret_position = checked(
            problems,
            key("secret_position"),
            SecretPosition::parse(self.secret_position.as_deref().unwrap_or("none")),
        );
        let style = match self.style.as_deref().unwrap_or("template") {
            "template" => {
                self.only_sorted_params_keys(prefix, problems);
                parse_string_to_sign(self.string_to_sign.as_deref().unwrap_or(DEFAULT_STRING_TO_SIGN))
                    .map_err(|m| {
                        problems.push(SettingsProblem {
                            key: key("string_to_sign"),
                            message: m,
                        })
                    })
                    .ok()
                    .map(SignStyle::Template)
            }
            "sorted_params" => {
                if self.string_to_sign.is_some() {
                    problems.push(SettingsProblem {
                        key: key("string_to_sign"),
                        message: "style = \"sorted_params\" 不使用 string_to_sign / style = \"sorted_params\" builds its own string: remove string_to_sign (or use style = \"template\")".into(),
                    });
                }
                self.sorted_params(prefix, problems).map(SignStyle::SortedParams)
            }
            other => {
                problems.push(SettingsProblem {
                    key: key("style"),
                    message: format!(
                        "应为 template 或 sorted_params / must be template or sorted_params, got {other:?}"
                    ),
                });
                None
            }
        };
        let secret_in_string = secret_position.is_some_and(|p| p != SecretPosition::None)
            || matches!(&style, Some(SignStyle::SortedParams(p)) if p.secret_param.is_some());
        if algorithm.is_some_and(SignAlgorithm::is_plain_digest) && !secret_in_string {
            problems.push(SettingsProblem {
                key: key("algorithm"),
                message: "纯摘要算法需要把密钥放入待签名串：设 secret_param 或 secret_position / a plain digest proves nothing without the secret in the string: set secret_param (sorted_params) or secret_position".into(),
            });
        }
        if problems.len() > before {
            return None;
        }
        Some(HmacAuth {
            app_key,
            secret: secret?,
            app_key_header,
            timestamp_header,
            nonce_header,
            signature_header,
            timestamp_format,
            style: style?,
            algorithm: algorithm?,
            encoding: encoding?,
            secret_position: secret_position?,
        })
    }

    /// The keys only `style = "sorted_params"` reads: with another style each is a problem.
    fn only_sorted_params_keys(&self, prefix: &str, problems: &mut Vec<SettingsProblem>) {
        let given = [
            ("app_key_param", self.app_key_param.is_some()),
            ("timestamp_param", self.timestamp_param.is_some()),
            ("nonce_param", self.nonce_param.is_some()),
            ("signature_param", self.signature_param.is_some()),
            ("auth_params_in", self.auth_params_in.is_some()),
            ("encode_values", self.encode_values.is_some()),
            ("skip_empty", self.skip_empty.is_some()),
            ("body", self.body.is_some()),
            ("body_param", self.body_param.is_some()),
            ("secret_param", self.secret_param.is_some()),
            ("pair_separator", self.pair_separator.is_some()),
            ("kv_separator", self.kv_separator.is_some()),
        ];
        for (name, _) in given.iter().filter(|(_, set)| *set) {
            problems.push(SettingsProblem {
                key: format!("{prefix}{name}"),
                message: format!(
                    "{name} 只用于 style = \"sorted_params\" / {name} belongs to style = \"sorted_params\""
                ),
            });
        }
    }

    /// The `sorted_params` rules, checked.
    fn sorted_params(&self, prefix: &str, problems: &mut Vec<SettingsProblem>) -> Option<SortedParams> {
        let before = problems.len();
        let mut name = |k: &str, value: &Option<String>, default: &str| -> String {
            let v = value.clone().unwrap_or_else(|| default.to_string());
            if v.trim().is_empty() {
                problems.push(SettingsProblem {
                    key: format!("{prefix}{k}"),
                    message: "不能为空 / must not be empty".into(),
                });
            }
            v
        };
        let app_key_param = name("app_key_param", &self.app_key_param, "appKey");
        let timestamp_param = name("timestamp_param", &self.timestamp_param, "timestamp");
        let nonce_param = name("nonce_param", &self.nonce_param, "nonce");
        let signature_param = name("signature_param", &self.signature_param, "sign");
        let body_param = name("body_param", &self.body_param, "body");
        let in_query = match self.auth_params_in.as_deref().unwrap_or("query") {
            "query" => true,
            "headers" => false,
            other => {
                problems.push(SettingsProblem {
                    key: format!("{prefix}auth_params_in"),
                    message: format!("应为 query 或 headers / must be query or headers, got {other:?}"),
                });
                true
            }
        };
        let body = match self.body.as_deref().unwrap_or("none") {
            "none" => BodyPart::None,
            "param" => BodyPart::Param(body_param),
            "append" => BodyPart::Append,
            other => {
                problems.push(SettingsProblem {
                    key: format!("{prefix}body"),
                    message: format!("应为 none、param 或 append / must be none, param or append, got {other:?}"),
                });
                BodyPart::None
            }
        };
        if matches!(&self.secret_param, Some(p) if p.trim().is_empty()) {
            problems.push(SettingsProblem {
                key: format!("{prefix}secret_param"),
                message: "不能为空 / must not be empty".into(),
            });
        }
        let names = [&app_key_param, &timestamp_param, &nonce_param, &signature_param];
        if names.iter().enumerate().any(|(i, n)| names[..i].contains(n)) {
            problems.push(SettingsProblem {
                key: format!("{prefix}app_key_param"),
                message: format!(
                    "app_key_param、timestamp_param、nonce_param、signature_param 须各不相同 / the parameter names must differ, got {:?}",
                    names
                ),
            });
        }
        if problems.len() > before {
            return None;
        }
        Some(SortedParams {
            app_key_param,
            timestamp_param,
            nonce_param,
            signature_param,
            in_query,
            encode_values: self.encode_values.unwrap_or(false),
            skip_empty: self.skip_empty.unwrap_or(true),
            body,
            secret_param: self.secret_param.clone(),
            pair_separator: self.pair_separator.clone().unwrap_or_else(|| "&".into()),
            kv_separator: self.kv_separator.clone().unwrap_or_else(|| "=".into()),
        })
    }
}

/// The authentication of an optional `auth` table (none when absent); its problems are added,
/// their keys under `auth.`.
pub fn auth_of(settings: Option<&AuthSettings>, base: &Path, problems: &mut Vec<SettingsProblem>) -> Auth {
    match settings.map(|a| a.resolve(base, "auth.")).transpose() {
        Ok(a) => a.unwrap_or(Auth::None),
        Err(p) => {
            problems.extend(p);
            Auth::None
        }
    }
}

fn sensitive(value: &str) -> Result<HeaderValue, AuthError> {
    let mut v = HeaderValue::try_from(value).map_err(|_| {
        AuthError::Sign(
            "凭据含有不能放入 HTTP 头的字符 / the credential has characters not allowed in an HTTP header".into(),
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

fn add_query(request: &mut reqwest::Request, name: &str, value: &str) {
    request.url_mut().query_pairs_mut().append_pair(name, value);
}

impl Auth {
    /// Add credentials to `request` (fetching a token first if none is cached or it is about to
    /// expire; `limiter`, when given, is waited on before the token request, so that token
    /// fetches count against the source's rate limit). Call again for every attempt: a signed
    /// request gets a fresh timestamp and nonce.
    pub async fn authorize(
        &self,
        client: &reqwest::Client,
        request: &mut reqwest::Request,
        limiter: Option<&DefaultDirectRateLimiter>,
    ) -> Result<AuthUsed, AuthError> {
        match self {
            Auth::None => {}
            Auth::Basic { username, password } => {
                let raw = format!("{username}:{}", password.expose());
                let value = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw));
                request.headers_mut().insert(AUTHORIZATION, sensitive(&value)?);
            }
            Auth::Bearer(token) => {
                request
                    .headers_mut()
                    .insert(AUTHORIZATION, sensitive(&format!("Bearer {}", token.expose()))?);
            }
            Auth::Header { name, value } => {
                request.headers_mut().insert(name.clone(), sensitive(value.expose())?);
            }
            Auth::Query { name, value } => add_query(request, name, value.expose()),
            Auth::Token(t) => {
                let token = t.current(client, limiter).await?;
                match &t.place {
                    TokenPlace::Header { name, prefix } => {
                        request
                            .headers_mut()
                            .insert(name.clone(), sensitive(&format!("{prefix}{}", token.value.expose()))?);
                    }
                    TokenPlace::Query(name) => add_query(request, name, token.value.expose()),
                }
                return Ok(AuthUsed {
                    token_generation: Some(token.generation),
                });
            }
            Auth::Hmac(h) => h.sign(request)?,
        }
        Ok(AuthUsed::default())
    }

    /// The server answered 401 to a request authorised with `used`: forget that token. True
    /// when sending the request again with fresh credentials may help (token auth only).
    pub async fn unauthorized(&self, used: AuthUsed) -> bool {
        match (self, used.token_generation) {
            (Auth::Token(t), Some(generation)) => {
                let mut cached = t.cached.lock().await;
                if cached.as_ref().is_some_and(|c| c.generation == generation) {
                    *cached = None;
                }
                true
            }
            _ => false,
        }
    }
}

impl TokenAuth {
    async fn current(
        &self,
        client: &reqwest::Client,
        limiter: Option<&DefaultDirectRateLimiter>,
    ) -> Result<CachedToken, AuthError> {
        // Held while fetching: concurrent requests wait for one fetch instead of each fetching.
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if Instant::now() < c.refresh_at {
                return Ok(c.clone());
            }
        }
        if let Some(l) = limiter {
            l.until_ready().await;
        }
        let generation = cached.as_ref().map_or(1, |c| c.generation + 1);
        let (value, lifetime) = self.fetch(client).await?;
        let refresh_at = Instant::now() + lifetime.saturating_sub(self.refresh_before);
        let token = CachedToken {
            value,
            refresh_at,
            generation,
        };
        tracing::info!(
            token_url = %self.url.host_str().unwrap_or_default(),
            lifetime_s = lifetime.as_secs(),
            "fetched an access token"
        );
        *cached = Some(token.clone());
        Ok(token)
    }

    async fn fetch(&self, client: &reqwest::Client) -> Result<(Secret, Duration), AuthError> {
        let request = client.post(self.url.clone());
        let request = match self.format {
            TokenFormat::Form => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                for (k, v) in &self.fields {
                    form.append_pair(k, v.expose());
                }
                request
                    .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form.finish())
            }
            TokenFormat::Json => {
                let body: serde_json::Map<String, serde_json::Value> = self
                    .fields
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.expose().to_string())))
                    .collect();
                request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(serde_json::Value::Object(body).to_string())
            }
        };
        // The client's redirect policy lets the token request follow redirects only within the
        // token endpoint's origin, the source's own and the allowed hosts.
        let response = request
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                foreign_origin_of(&e).map_or_else(|| AuthError::Unreachable(error_chain(&e)), AuthError::ForeignOrigin)
            })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| AuthError::Unreachable(error_chain(&e)))?;
        if !status.is_success() {
            return Err(AuthError::Refused(format!(
                "HTTP {}: {}",
                status.as_u16(),
                excerpt(String::from_utf8_lossy(&body).trim(), 300)
            )));
        }
        let answer: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| AuthError::Refused(format!("应答不是 JSON / the answer is not JSON: {e}")))?;
        let token = json_at(&answer, &self.token_path)
            .and_then(scalar_text)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                AuthError::Refused(format!(
                    "应答中 {} 处没有令牌 / no token at {:?} in the answer",
                    self.token_path, self.token_path
                ))
            })?;
        let lifetime = json_at(&answer, &self.expires_in_path)
            .and_then(scalar_text)
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map_or(self.lifetime, |s| Duration::from_secs_f64(s.min(1e7)));
        Ok((Secret::new(token), lifetime))
    }
}

impl HmacAuth {
    /// The canonical string of `request` with this timestamp and nonce (the secret not yet
    /// placed by `secret_position`). With `sorted_params`, the app key, timestamp and nonce are
    /// among the parameters signed, whether they go in the query (already added) or in headers.
    fn canonical(&self, request: &reqwest::Request, timestamp: &str, nonce: &str) -> String {
        let url = request.url();
        let body = request.body().and_then(|b| b.as_bytes()).unwrap_or_default();
        let parts = match &self.style {
            SignStyle::Template(parts) => parts,
            SignStyle::SortedParams(p) => {
                let mut params: Vec<(String, String)> = url
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                if !p.in_query {
                    params.push((p.app_key_param.clone(), self.app_key.clone()));
                    params.push((p.timestamp_param.clone(), timestamp.to_string()));
                    params.push((p.nonce_param.clone(), nonce.to_string()));
                }
                return p.canonical(&params, body, self.secret.expose());
            }
        };
        let mut out = String::new();
        for part in parts {
            match part {
                SignPart::Text(t) => out.push_str(t),
                SignPart::Var(v) => match *v {
                    "method" => out.push_str(request.method().as_str()),
                    "path" => out.push_str(url.path()),
                    "query" => out.push_str(url.query().unwrap_or_default()),
                    "sorted_query" => out.push_str(&sorted_query(url)),
                    "sorted_query_raw" => out.push_str(&sorted_query_raw(url)),
                    "host" => {
                        out.push_str(url.host_str().unwrap_or_default());
                        if let Some(port) = url.port() {
                            out.push_str(&format!(":{port}"));
                        }
                    }
                    "timestamp" => out.push_str(timestamp),
                    "nonce" => out.push_str(nonce),
                    "body_sha256" => out.push_str(&hex::encode(Sha256::digest(body))),
                    "app_key" => out.push_str(&self.app_key),
                    _ => {}
                },
            }
        }
        out
    }

    fn sign(&self, request: &mut reqwest::Request) -> Result<(), AuthError> {
        let now = chrono::Utc::now();
        let timestamp = match self.timestamp_format {
            TimestampFormat::Millis => now.timestamp_millis().to_string(),
            TimestampFormat::Seconds => now.timestamp().to_string(),
            TimestampFormat::Rfc3339 => now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        let nonce = hex::encode(rand::rng().random::<[u8; 16]>());
        let in_query = match &self.style {
            SignStyle::SortedParams(p) if p.in_query => Some(p),
            _ => None,
        };
        if let Some(p) = in_query {
            // A next link may carry the previous request's auth parameters: sign afresh.
            let names = [&p.app_key_param, &p.timestamp_param, &p.nonce_param, &p.signature_param];
            let url = request.url_mut();
            if url.query_pairs().any(|(k, _)| names.iter().any(|n| **n == *k)) {
                let kept: Vec<(String, String)> = url
                    .query_pairs()
                    .filter(|(k, _)| !names.iter().any(|n| **n == *k))
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                url.set_query(None);
                if !kept.is_empty() {
                    url.query_pairs_mut().extend_pairs(kept);
                }
            }
            add_query(request, &p.app_key_param, &self.app_key);
            add_query(request, &p.timestamp_param, &timestamp);
            add_query(request, &p.nonce_param, &nonce);
        }
        let canonical = self
            .secret_position
            .apply(self.canonical(request, &timestamp, &nonce), self.secret.expose());
        let signature = self.encoding.encode(
            &self
                .algorithm
                .sign(self.secret.expose().as_bytes(), canonical.as_bytes()),
        );
        if let Some(p) = in_query {
            add_query(request, &p.signature_param, &signature);
            return Ok(());
        }
        let headers = request.headers_mut();
        let plain =
            |v: &str| HeaderValue::try_from(v).map_err(|_| AuthError::Sign(format!("invalid header value {v:?}")));
        headers.insert(self.app_key_header.clone(), plain(&self.app_key)?);
        headers.insert(self.timestamp_header.clone(), plain(&timestamp)?);
        headers.insert(self.nonce_header.clone(), plain(&nonce)?);
        headers.insert(self.signature_header.clone(), sensitive(&signature)?);
        Ok(())
    }
}

/// HMAC-SHA256 of `message` under `key`, as lower-case hex or standard base64.
pub fn hmac_sha256(key: &[u8], message: &[u8], base64: bool) -> String {
    let encoding = if base64 {
        SignatureEncoding::Base64
    } else {
        SignatureEncoding::Hex
    };
    encoding.encode(&SignAlgorithm::HmacSha256.sign(key, message))
}

/// The query's pairs sorted by name then value, form-encoded again (`a=1&b=2`).
pub fn sorted_query(url: &reqwest::Url) -> String {
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// The query's pairs sorted by name then value, decoded and joined raw (`a=1&t=2024-03-01 00:00:00`).
pub fn sorted_query_raw(url: &reqwest::Url) -> String {
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> AuthSettings {
        toml::from_str(text).unwrap()
    }

    fn keys(r: Result<Auth, Vec<SettingsProblem>>) -> Vec<String> {
        r.err().unwrap_or_default().into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn problems_name_their_keys_under_the_prefix() {
        let base = Path::new("/");
        assert_eq!(
            keys(settings("kind = \"bearer\"").resolve(base, "auth.")),
            ["auth.token"]
        );
        assert_eq!(
            keys(settings("kind = \"basic\"\npassword = \"p\"").resolve(base, "auth.")),
            ["auth.username"]
        );
        assert_eq!(keys(settings("kind = \"oauth\"").resolve(base, "auth.")), ["auth.kind"]);
        assert_eq!(
            keys(settings("kind = \"token\"\ntoken_format = \"xml\"").resolve(base, "auth.")),
            ["auth.token_url", "auth.token_format", "auth.token_url"]
        );
        assert_eq!(
            keys(
                settings("kind = \"hmac\"\napp_secret = \"s\"\nstring_to_sign = \"{method}{pth}\"\nsignature_encoding = \"b32\"")
                    .resolve(base, "auth.")
            ),
            ["auth.app_key", "auth.signature_encoding", "auth.string_to_sign"]
        );
        assert_eq!(
            keys(settings("kind = \"api_key\"\nvalue = \"k\"").resolve(base, "")),
            ["header"]
        );
        assert!(settings("kind = \"api_key\"\nvalue = \"k\"\nquery_param = \"appkey\"")
            .resolve(base, "")
            .is_ok());
    }

    #[test]
    fn debug_of_settings_and_auth_never_shows_secrets() {
        let s = settings(
            "kind = \"hmac\"\napp_key = \"k1\"\napp_secret = \"very-secret\"\npassword = \"pw-1\"\nclient_secret = \"cs-1\"",
        );
        let text = format!("{s:?}");
        assert!(
            !text.contains("very-secret") && !text.contains("pw-1") && !text.contains("cs-1"),
            "{text}"
        );
        let auth = s.resolve(Path::new("/"), "auth.").unwrap();
        assert!(!format!("{auth:?}").contains("very-secret"));
    }

    #[test]
    fn sorted_params_sign_a_next_link_afresh_without_the_previous_auth_parameters() {
        let s = settings("kind = \"hmac\"\nstyle = \"sorted_params\"\napp_key = \"ak\"\napp_secret = \"s\"");
        let Ok(Auth::Hmac(h)) = s.resolve(Path::new("/"), "") else {
            panic!()
        };
        let mut request = reqwest::Request::new(
            reqwest::Method::GET,
            reqwest::Url::parse("http://h/x?page=2&appKey=ak&timestamp=1&nonce=n&sign=OLD").unwrap(),
        );
        h.sign(&mut request).unwrap();
        let pairs: Vec<(String, String)> = request
            .url()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["page", "appKey", "timestamp", "nonce", "sign"]);
        let value = |n: &str| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap();
        assert_ne!(value("sign"), "OLD");
        let text = format!(
            "appKey=ak&nonce={}&page=2&timestamp={}",
            value("nonce"),
            value("timestamp")
        );
        assert_eq!(
            value("sign"),
            hex::encode(SignAlgorithm::HmacSha256.sign(b"s", text.as_bytes()))
        );
    }

    #[test]
    fn hmac_signature_is_over_the_canonical_string() {
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_sha256(b"Jefe", b"what do ya want for nothing?", false),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let s = settings("kind = \"hmac\"\napp_key = \"k1\"\napp_secret = \"s\"\nstring_to_sign = \"{method} {path}?{sorted_query} {app_key} {host}\"");
        let Ok(Auth::Hmac(h)) = s.resolve(Path::new("/"), "") else {
            panic!()
        };
        let request = reqwest::Request::new(
            reqwest::Method::GET,
            reqwest::Url::parse("http://127.0.0.1:8080/a/b?z=1&a=%E6%A1%88").unwrap(),
        );
        assert_eq!(
            h.canonical(&request, "1", "n"),
            "GET /a/b?a=%E6%A1%88&z=1 k1 127.0.0.1:8080"
        );
        let d = settings("kind = \"hmac\"\napp_key = \"k\"\napp_secret = \"s\"");
        let Ok(Auth::Hmac(d)) = d.resolve(Path::new("/"), "") else {
            panic!()
        };
        let mut post = reqwest::Request::new(reqwest::Method::POST, reqwest::Url::parse("http://h/x?p=1").unwrap());
        *post.body_mut() = Some(reqwest::Body::from("{}"));
        assert_eq!(
            d.canonical(&post, "123", "abc"),
            format!("POST\n/x\np=1\n123\nabc\n{}", hex::encode(Sha256::digest(b"{}")))
        );
    }
}
