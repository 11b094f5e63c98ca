//! `[attachments]`: where evidence attachments (证据附件) are stored, their limits, how fetches
//! are retried and how download links are signed (see docs/configuration.md, "Evidence attachments").

use adapters::sinks::secret::{Secret, SecretSource};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The `[attachments]` table.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct AttachmentsConfig {
    /// `local` (a folder, the default) or `s3` (any S3-compatible service).
    pub store: String,
    /// local: the folder (default `gateway-data/attachments`, relative to the config file).
    pub path: Option<PathBuf>,
    /// s3: the bucket.
    pub bucket: Option<String>,
    /// s3: the service's URL (default: AWS for `region`).
    pub endpoint: Option<String>,
    /// s3: the region (default `us-east-1`).
    pub region: String,
    /// s3: the access key id, inline (prefer `access_key_id_env` / `_file`).
    pub access_key_id: Option<String>,
    /// s3: environment variable holding the access key id.
    pub access_key_id_env: Option<String>,
    /// s3: file holding the access key id.
    pub access_key_id_file: Option<PathBuf>,
    /// s3: the secret access key, inline (avoid).
    pub secret_access_key: Option<String>,
    /// s3: environment variable holding the secret access key.
    pub secret_access_key_env: Option<String>,
    /// s3: file holding the secret access key.
    pub secret_access_key_file: Option<PathBuf>,
    /// s3: allow an `http://` endpoint (tests, a service on the same host).
    pub allow_http: bool,
    /// Largest attachment in bytes (default 4 GiB).
    pub max_bytes: u64,
    /// Most bytes of attachments per case version (default 16 GiB).
    pub max_case_bytes: u64,
    /// Media types allowed (`video/*` matches every video type); empty: every type.
    pub allowed_media_types: Vec<String>,
    /// How long a signed download link is valid, in seconds (default 3600).
    pub link_ttl_seconds: u64,
    /// The host part of the links given to sinks, e.g. `https://gw.example.gov.cn:8443`.
    pub public_base_url: Option<String>,
    /// The key signing download links, inline (avoid).
    pub link_secret: Option<String>,
    /// Environment variable holding the link key.
    pub link_secret_env: Option<String>,
    /// File holding the link key.
    pub link_secret_file: Option<PathBuf>,
    /// Fetch attempts before an attachment is `failed` (default 10).
    pub fetch_max_attempts: u32,
    /// First wait after a failed fetch, in seconds (default 5); doubled up to `fetch_retry_max_seconds`.
    pub fetch_retry_initial_seconds: f64,
    /// Longest wait between fetches, in seconds (default 600).
    pub fetch_retry_max_seconds: f64,
    /// Fetches at the same time per instance (default 4).
    pub fetch_concurrency: usize,
    /// How long a claimed fetch is held before another instance may take it over (default 600 s).
    pub fetch_lease_seconds: f64,
    /// How often the fetcher looks for due attachments, in seconds (default 1).
    pub poll_seconds: f64,
}

impl std::fmt::Debug for AttachmentsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachmentsConfig")
            .field("store", &self.store)
            .field("path", &self.path)
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Default for AttachmentsConfig {
    fn default() -> Self {
        AttachmentsConfig {
            store: "local".into(),
            path: None,
            bucket: None,
            endpoint: None,
            region: "us-east-1".into(),
            access_key_id: None,
            access_key_id_env: None,
            access_key_id_file: None,
            secret_access_key: None,
            secret_access_key_env: None,
            secret_access_key_file: None,
            allow_http: false,
            max_bytes: 4 << 30,
            max_case_bytes: 16 << 30,
            allowed_media_types: Vec::new(),
            link_ttl_seconds: 3600,
            public_base_url: None,
            link_secret: None,
            link_secret_env: None,
            link_secret_file: None,
            fetch_max_attempts: 10,
            fetch_retry_initial_seconds: 5.0,
            fetch_retry_max_seconds: 600.0,
            fetch_concurrency: 4,
            fetch_lease_seconds: 600.0,
            poll_seconds: 1.0,
        }
    }
}

impl AttachmentsConfig {
    /// The local folder (relative paths against the config file's `base`).
    pub fn local_path(&self, base: &Path) -> PathBuf {
        let p = self
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from("gateway-data/attachments"));
        if p.is_absolute() {
            p
        } else {
            base.join(p)
        }
    }

    /// The S3 access key id and secret, when given.
    pub fn s3_keys(&self, base: &Path) -> Result<Option<(Secret, Secret)>, String> {
        let id = SecretSource {
            name: "access_key_id",
            inline: self.access_key_id.as_deref(),
            env: self.access_key_id_env.as_deref(),
            file: self.access_key_id_file.as_deref(),
        }
        .resolve(base)?;
        let secret = SecretSource {
            name: "secret_access_key",
            inline: self.secret_access_key.as_deref(),
            env: self.secret_access_key_env.as_deref(),
            file: self.secret_access_key_file.as_deref(),
        }
        .resolve(base)?;
        match (id, secret) {
            (Some(i), Some(s)) => Ok(Some((i, s))),
            (None, None) => Ok(None),
            _ => Err(
                "access_key_id 与 secret_access_key 须同时给出 / give both access_key_id and secret_access_key".into(),
            ),
        }
    }

    /// The key signing download links; without one a random key is made at start (links then
    /// hold only on this instance until it restarts).
    pub fn link_key(&self, base: &Path) -> Result<Option<Secret>, String> {
        SecretSource {
            name: "link_secret",
            inline: self.link_secret.as_deref(),
            env: self.link_secret_env.as_deref(),
            file: self.link_secret_file.as_deref(),
        }
        .resolve(base)
    }

    /// Whether `media_type` is allowed.
    pub fn allows_media_type(&self, media_type: &str) -> bool {
        let m = media_type.trim().to_ascii_lowercase();
        let m = m.split(';').next().unwrap_or_default().trim();
        self.allowed_media_types.is_empty()
            || self.allowed_media_types.iter().any(|a| {
                let a = a.trim().to_ascii_lowercase();
                match a.strip_suffix("/*") {
                    Some(prefix) => m.split('/').next() == Some(prefix),
                    None => a == m,
                }
            })
    }

    /// Problems of the table: (place, message).
    pub fn check(&self, base: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut problem = |key: &str, message: String| out.push((format!("attachments.{key}"), message));
        match self.store.as_str() {
            "local" => {
                if self.bucket.is_some() || self.endpoint.is_some() {
                    problem(
                        "store",
                        "local 存储不使用 bucket/endpoint / the local store takes `path`, not bucket or endpoint"
                            .into(),
                    );
                }
            }
            "s3" => {
                if self.bucket.as_deref().is_none_or(|b| b.trim().is_empty()) {
                    problem("bucket", "s3 存储需要 bucket / the s3 store needs a bucket".into());
                }
                if let Some(e) = &self.endpoint {
                    match url::Url::parse(e) {
                        Ok(u) if u.scheme() == "https" || (u.scheme() == "http" && self.allow_http) => {}
                        Ok(u) if u.scheme() == "http" => problem(
                            "endpoint",
                            format!(
                                "http 地址需要 allow_http = true / an http endpoint needs allow_http = true, got {e:?}"
                            ),
                        ),
                        Ok(_) | Err(_) => problem(
                            "endpoint",
                            format!("应为 http(s) 地址 / must be an http(s) URL, got {e:?}"),
                        ),
                    }
                }
                if let Err(e) = self.s3_keys(base) {
                    problem("access_key_id", e);
                }
            }
            other => problem(
                "store",
                format!("未知附件存储 / unknown attachment store {other:?}: use \"local\" or \"s3\""),
            ),
        }
        if self.max_bytes == 0 {
            problem("max_bytes", "应至少为 1 / must be at least 1".into());
        }
        if self.max_case_bytes < self.max_bytes {
            problem(
                "max_case_bytes",
                format!(
                    "应不小于 max_bytes / must be at least max_bytes ({}), got {}",
                    self.max_bytes, self.max_case_bytes
                ),
            );
        }
        for m in &self.allowed_media_types {
            let ok = m.split_once('/').is_some_and(|(a, b)| !a.is_empty() && !b.is_empty());
            if !ok {
                problem(
                    "allowed_media_types",
                    format!("媒体类型应为 类型/子类型 / a media type is type/subtype (or type/*), got {m:?}"),
                );
            }
        }
        if self.link_ttl_seconds == 0 {
            problem("link_ttl_seconds", "应至少为 1 / must be at least 1".into());
        }
        if let Some(u) = &self.public_base_url {
            if !matches!(url::Url::parse(u), Ok(p) if p.scheme() == "http" || p.scheme() == "https") {
                problem(
                    "public_base_url",
                    format!("应为 http(s) 地址 / must be an http(s) URL, got {u:?}"),
                );
            }
        }
        if let Err(e) = self.link_key(base) {
            problem("link_secret", e);
        }
        if self.fetch_max_attempts == 0 {
            problem("fetch_max_attempts", "应至少为 1 / must be at least 1".into());
        }
        let positive = [
            ("fetch_retry_initial_seconds", self.fetch_retry_initial_seconds),
            ("fetch_retry_max_seconds", self.fetch_retry_max_seconds),
            ("fetch_lease_seconds", self.fetch_lease_seconds),
            ("poll_seconds", self.poll_seconds),
        ];
        for (key, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                problem(key, format!("应为正数 / must be positive, got {v}"));
            }
        }
        if self.fetch_concurrency == 0 {
            problem("fetch_concurrency", "应至少为 1 / must be at least 1".into());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_match_exactly_or_by_their_top_level_wildcard() {
        let c = AttachmentsConfig {
            allowed_media_types: vec!["video/*".into(), "application/pdf".into()],
            ..AttachmentsConfig::default()
        };
        assert!(c.allows_media_type("video/mp4"));
        assert!(c.allows_media_type("Application/PDF; charset=binary"));
        assert!(!c.allows_media_type("application/zip"));
        assert!(AttachmentsConfig::default().allows_media_type("application/zip"));
    }

    #[test]
    fn an_s3_store_without_bucket_and_an_http_endpoint_without_allow_http_are_reported() {
        let c = AttachmentsConfig {
            store: "s3".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            ..AttachmentsConfig::default()
        };
        let places: Vec<String> = c.check(Path::new(".")).into_iter().map(|(p, _)| p).collect();
        assert_eq!(places, ["attachments.bucket", "attachments.endpoint"]);
    }
}
