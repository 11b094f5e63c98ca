//! The gateway's configuration file (TOML): store, normaliser settings, pipeline tuning,
//! sources, sinks and the HTTP server. Unknown keys are errors. Secrets (database URLs with
//! passwords) come from environment variables or files and are never printed.

pub mod archive;
pub mod attachments;
pub mod joint;
pub mod oversight;
pub mod personal;
pub mod schedule;
pub mod source;
pub mod systems;

use adapters::common::postgres_tls::{PostgresTarget, PostgresTlsError, ROOT_CERT_SETTING};
use normalizer::mapping::Mapping;
use normalizer::rules::{Catalogue, RuleOptions};
use normalizer::standards::CreditCode;
use serde::Deserialize;
pub use source::{AgencyScope, ConfigProblem, EndpointOrigin, InputFormat, PushSettings, SourceConfig};
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the gateway keeps its data.
    #[serde(default)]
    pub store: StoreConfig,
    /// Settings of validation.
    #[serde(default)]
    pub normalizer: NormalizerConfig,
    /// Batching and back-pressure.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// Bounds on what one record can cost (every way in).
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The operator HTTP server.
    #[serde(default)]
    pub server: ServerConfig,
    /// Several instances on one store: leases of scheduled jobs, heartbeats.
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// Finding joint inspections (联合检查相似度比对).
    #[serde(default)]
    pub joint: joint::JointConfig,
    /// The evidence-grade raw archive: hash chain, signed checkpoints, witnesses.
    #[serde(default)]
    pub archive: archive::ArchiveConfig,
    /// Personal data (个人信息) sealed at rest: the data keys.
    #[serde(default)]
    pub personal_data: personal::PersonalDataConfig,
    /// The rules of publicity sinks (一公开, 双公示): privacy, field layout, data source.
    #[serde(default)]
    pub publicity: normalizer::publicity::PublicityPolicy,
    /// Evidence attachments (证据附件): store, limits, fetch retries, download links.
    #[serde(default)]
    pub attachments: attachments::AttachmentsConfig,
    /// Systems records come from.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// Systems records are delivered to.
    #[serde(default)]
    pub sinks: Vec<SinkConfig>,
    /// Where the supervision-item catalogue (监管事项目录清单) is pulled from (the 互联网+监管 system).
    #[serde(default)]
    pub catalogues: Vec<CatalogueSourceConfig>,
    /// Where officer registries (执法人员名录) are pulled from.
    #[serde(default)]
    pub officer_registries: Vec<OfficerRegistrySourceConfig>,
    /// Reconciliation (对账) and cases off the platform.
    #[serde(default)]
    pub reconciliation: oversight::ReconciliationConfig,
    /// Alert rules and their thresholds (告警).
    #[serde(default)]
    pub alerts: oversight::AlertsConfig,
    /// Where alert messages go.
    #[serde(default)]
    pub alert_webhooks: Vec<oversight::AlertWebhookConfig>,
    /// Directory of the config file: relative paths in it are relative to this.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// Problems found while turning system blocks into one source per endpoint (reported by
    /// [`Config::resolve`]).
    #[serde(skip)]
    pub system_problems: Vec<ConfigProblem>,
}

/// Which store backend, and how to reach it.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite` (default, embedded file) or `postgres`.
    #[serde(default = "default_backend")]
    pub backend: String,
    /// SQLite: the database file (default `gateway-data/gateway.db`).
    pub path: Option<PathBuf>,
    /// PostgreSQL: connection URL given inline (avoid passwords here; prefer `url_env`).
    pub url: Option<String>,
    /// PostgreSQL: name of the environment variable holding the URL.
    pub url_env: Option<String>,
    /// PostgreSQL: file holding the URL (e.g. a mounted secret).
    pub url_file: Option<PathBuf>,
    /// PostgreSQL: connections in the pool (default 8).
    #[serde(default = "default_pool")]
    pub pool_size: usize,
    /// PostgreSQL: PEM file of the CA(s) the server's certificate must chain to (relative to the
    /// config file), for `sslmode=verify-ca` / `verify-full` in the URL; the URL's own
    /// `sslrootcert` is the alternative (not both).
    pub ssl_root_cert: Option<PathBuf>,
}

fn default_backend() -> String {
    "sqlite".into()
}
fn default_pool() -> usize {
    8
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: default_backend(),
            path: None,
            url: None,
            url_env: None,
            url_file: None,
            pool_size: default_pool(),
            ssl_root_cert: None,
        }
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("backend", &self.backend)
            .field("path", &self.path)
            .field("url", &self.url.as_ref().map(|_| "<redacted>"))
            .field("url_env", &self.url_env)
            .field("url_file", &self.url_file)
            .field("pool_size", &self.pool_size)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .finish()
    }
}

/// Validation settings.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct NormalizerConfig {
    /// The province served: agency region codes must start with this (Jiangxi: `36`).
    pub province_prefix: Option<String>,
    /// Supervision-item catalogue CSV (`year,item_code,...`): inspections outside it are rejected.
    pub catalogue: Option<PathBuf>,
    /// Domains (领域) of catalogue items whose inspections need no random-selection plan
    /// (default 疫苗, 食品药品, 特种设备, 医疗器械, 危化品; `[]` exempts none).
    #[serde(default = "default_exempt_domains")]
    pub exempt_domains: Vec<String>,
    /// `[normalizer.officers]`: check officers against the officer registry (执法人员名录).
    pub officers: Option<OfficersConfig>,
    /// How `rule.plan_unknown` treats an inspection naming a plan the gateway does not hold:
    /// `auto` (default: a warning once any plan is held), `warning`, `error` or `off`.
    #[serde(default)]
    pub plan_unknown: normalizer::plans::PlanCheck,
}

fn default_exempt_domains() -> Vec<String> {
    normalizer::catalogue::DEFAULT_EXEMPT_DOMAINS
        .iter()
        .map(|d| d.to_string())
        .collect()
}

impl Default for NormalizerConfig {
    fn default() -> Self {
        NormalizerConfig {
            province_prefix: None,
            catalogue: None,
            exempt_domains: default_exempt_domains(),
            officers: None,
            plan_unknown: Default::default(),
        }
    }
}

/// `[normalizer.officers]`: the officer registry rules (see [`normalizer::officers`]).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct OfficersConfig {
    /// `auto` (default: warning while the agency has no registry loaded, error once it has),
    /// `warning` or `error`.
    #[serde(default)]
    pub severity: normalizer::officers::OfficerSeverity,
    /// A registry file (CSV or JSON) in force from the start, e.g. for `gateway normalize`; a
    /// list loaded into the store later replaces its agency's list.
    pub file: Option<PathBuf>,
    /// Seconds between checks of the store for a newer registry loaded by another instance
    /// (default 30).
    #[serde(default = "default_officer_refresh")]
    pub refresh_seconds: u64,
}

fn default_officer_refresh() -> u64 {
    30
}

/// A source of officer registries (`[[officer_registries]]`): pulled like a REST/SOAP source,
/// each complete pull replaces the lists of the agencies it names.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct OfficerRegistrySourceConfig {
    /// Unique id among sources and catalogues.
    pub id: String,
    /// `rest` or `soap`.
    pub kind: String,
    /// Seconds between pulls when no `cron` is given (default 86400: daily).
    #[serde(default = "default_catalogue_poll")]
    pub poll_seconds: u64,
    /// Pull schedule as a cron expression with seconds, in China time.
    pub cron: Option<String>,
    /// The agency of records that name none.
    pub agency: Option<String>,
    /// Where each officer's parts are in a pulled record (dotted paths).
    #[serde(default)]
    pub fields: OfficerFields,
    /// `kind = "rest"`: the REST adapter's settings.
    pub rest: Option<toml::Table>,
    /// `kind = "soap"`: the SOAP/XML adapter's settings.
    pub soap: Option<toml::Table>,
}

/// Dotted paths of an officer's parts in a pulled record.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct OfficerFields {
    /// 姓名 (default `name`).
    pub name: String,
    /// 执法证号 (default `cert_no`).
    pub cert_no: String,
    /// The agency's credit code (default `agency_credit_code`).
    pub agency: String,
    /// First valid day (default `valid_from`).
    pub valid_from: String,
    /// Last valid day (default `valid_to`).
    pub valid_to: String,
    /// Status (default `status`).
    pub status: String,
}

impl Default for OfficerFields {
    fn default() -> Self {
        OfficerFields {
            name: "name".into(),
            cert_no: "cert_no".into(),
            agency: "agency_credit_code".into(),
            valid_from: "valid_from".into(),
            valid_to: "valid_to".into(),
            status: "status".into(),
        }
    }
}

impl OfficerRegistrySourceConfig {
    /// The adapter table of its kind.
    pub fn adapter_table(&self) -> toml::Table {
        match self.kind.as_str() {
            "soap" => self.soap.clone(),
            _ => self.rest.clone(),
        }
        .unwrap_or_default()
    }
}

/// Batching and back-pressure of the pipeline.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Records per commit (default 5000: on PostgreSQL the write rate rises steeply up to a few
    /// thousand rows per statement, see BENCHMARKS.md).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Longest wait before a partial batch is committed, in milliseconds (default 50).
    #[serde(default = "default_batch_wait")]
    pub batch_wait_ms: u64,
    /// Chunks of 256 records queued between the reader and the preparers (default 4): bounds
    /// memory and applies back-pressure. The preparers work up to one batch ahead of the commit.
    #[serde(default = "default_channel")]
    pub channel_capacity: usize,
    /// Scheduling priority (`nice`, 0..=19) of the threads that prepare records (default 10): they
    /// use the CPU time the commit leaves instead of taking it from the database on the same
    /// machine. 0 runs them at the gateway's own priority. Linux only.
    #[serde(default = "default_prepare_nice")]
    pub prepare_nice: i32,
}

fn default_batch_size() -> usize {
    5000
}
fn default_batch_wait() -> u64 {
    50
}
fn default_channel() -> usize {
    4
}

/// The default `pipeline.prepare_nice`: the preparation threads' priority below the commit.
pub const DEFAULT_PREPARE_NICE: i32 = 10;

fn default_prepare_nice() -> i32 {
    DEFAULT_PREPARE_NICE
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            batch_size: default_batch_size(),
            batch_wait_ms: default_batch_wait(),
            channel_capacity: default_channel(),
            prepare_nice: default_prepare_nice(),
        }
    }
}

/// Bounds on what one record can cost, whatever way it came in (`[limits]`).
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest record, in bytes (default 1 MiB): a JSON line, a JSON array item, an XML or CSV
    /// record, a pulled record, an AMQP message's record. A larger one is quarantined with rule
    /// `input.too_large`, keeping its first 64 KiB and the SHA-256 of the whole. A JSON line is
    /// never held longer than this while it is read.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: u64,
    /// Most violations kept per record (default 100): the first ones, then one
    /// `violations.truncated` saying how many more there were.
    #[serde(default = "default_max_violations")]
    pub max_violations_per_record: usize,
}

fn default_max_record_bytes() -> u64 {
    1024 * 1024
}
fn default_max_violations() -> usize {
    100
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_record_bytes: default_max_record_bytes(),
            max_violations_per_record: default_max_violations(),
        }
    }
}

/// Several instances on one store (`[cluster]`): every scheduled job (a REST/SOAP source, a
/// catalogue, a drop folder) runs on the instance holding its lease, and is taken over when that
/// instance stops renewing it. The defaults take a dead instance's jobs over within 10 s.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This instance's id (default: host name, process id and a random suffix). Unique among
    /// the instances of one store.
    pub instance_id: Option<String>,
    /// How long a lease lasts without renewal (default 8 s): a dead holder's jobs are taken over
    /// after at most this plus `acquire_seconds`.
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: f64,
    /// How often a held lease is renewed (default 2 s; at most a third of `lease_seconds`).
    #[serde(default = "default_renew_seconds")]
    pub renew_seconds: f64,
    /// How often an instance tries to take a job nobody holds (default 1 s).
    #[serde(default = "default_acquire_seconds")]
    pub acquire_seconds: f64,
    /// How often an instance writes its heartbeat (default 2 s); one silent for three times this
    /// is shown as gone.
    #[serde(default = "default_heartbeat_seconds")]
    pub heartbeat_seconds: f64,
}

fn default_lease_seconds() -> f64 {
    8.0
}
fn default_renew_seconds() -> f64 {
    2.0
}
fn default_acquire_seconds() -> f64 {
    1.0
}
fn default_heartbeat_seconds() -> f64 {
    2.0
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            instance_id: None,
            lease_seconds: default_lease_seconds(),
            renew_seconds: default_renew_seconds(),
            acquire_seconds: default_acquire_seconds(),
            heartbeat_seconds: default_heartbeat_seconds(),
        }
    }
}

impl ClusterConfig {
    /// Problems of the `[cluster]` table.
    pub fn check(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        for (key, value) in [
            ("lease_seconds", self.lease_seconds),
            ("renew_seconds", self.renew_seconds),
            ("acquire_seconds", self.acquire_seconds),
            ("heartbeat_seconds", self.heartbeat_seconds),
        ] {
            if !(value.is_finite() && (0.1..=3600.0).contains(&value)) {
                problems.push(ConfigProblem {
                    place: format!("cluster.{key}"),
                    message: format!("应在 0.1..3600 秒之间 / must be 0.1..3600 seconds, got {value}"),
                });
            }
        }
        if self.renew_seconds * 3.0 > self.lease_seconds {
            problems.push(ConfigProblem {
                place: "cluster.renew_seconds".into(),
                message: format!(
                    "续约间隔应不超过租期的三分之一（lease_seconds = {}）/ must be at most a third of lease_seconds ({}), got {}",
                    self.lease_seconds, self.lease_seconds, self.renew_seconds
                ),
            });
        }
        if let Some(id) = &self.instance_id {
            if id.trim().is_empty() || id.len() > 200 {
                problems.push(ConfigProblem {
                    place: "cluster.instance_id".into(),
                    message: format!("应为 1..200 个字符 / must be 1..200 characters, got {id:?}"),
                });
            }
        }
        problems
    }
}

/// The operator HTTP server: operator API, HTTP push, metrics, health.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Whether the file has a `[server]` table (not a key): `gateway run` serves the API when it
    /// has one, or when a push source is configured.
    #[serde(skip_deserializing, default = "present")]
    pub present: bool,
    /// Address to listen on (default `127.0.0.1:8080`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Largest request body accepted, in bytes (default 10 MiB); push sources may set their own
    /// limit with `[sources.push] max_body_bytes`.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    /// Most records in one push request (default 10,000); a larger push is refused whole with
    /// 413 and must be split by the sender.
    #[serde(default = "default_max_push_records")]
    pub max_records_per_push: usize,
    /// Longest time a client may take to send a request's headers, in seconds (default 10).
    #[serde(default = "default_header_timeout")]
    pub header_timeout_seconds: u64,
    /// Longest time a client may take to send a request's body, in seconds (default 60).
    #[serde(default = "default_body_timeout")]
    pub body_timeout_seconds: u64,
    /// Longest time one request may take in all, answer included, in seconds (default 300).
    #[serde(default = "default_request_timeout")]
    pub request_timeout_seconds: u64,
    /// Most connections open at once (default 512); more wait to be accepted.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Failed authentications allowed per client address and minute (default 20); more are
    /// answered 429 until the minute has passed, also for a right token.
    #[serde(default = "default_auth_failures")]
    pub auth_failures_per_minute: u32,
    /// Sources that must be healthy (or degraded) for `/readyz` to answer ready; AMQP sources
    /// must be consuming in any case.
    #[serde(default)]
    pub ready_sources: Vec<String>,
    /// PEM certificate chain: with `tls_key_file`, the API is served over HTTPS only.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// Requests per second allowed per token (default 50); more are answered 429.
    #[serde(default = "default_rate")]
    pub rate_limit_per_second: u32,
    /// Requests a token may send at once above the rate (default: the rate).
    pub rate_limit_burst: Option<u32>,
    /// Serve `/metrics` without a token (default false: operator or admin token needed).
    #[serde(default)]
    pub metrics_public: bool,
    /// Bearer tokens and their roles.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

fn present() -> bool {
    true
}
fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_max_body() -> u64 {
    10 * 1024 * 1024
}
fn default_rate() -> u32 {
    50
}
fn default_max_push_records() -> usize {
    10_000
}
fn default_header_timeout() -> u64 {
    10
}
fn default_body_timeout() -> u64 {
    60
}
fn default_request_timeout() -> u64 {
    300
}
fn default_max_connections() -> usize {
    512
}
fn default_auth_failures() -> u32 {
    20
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            present: false,
            listen: default_listen(),
            max_body_bytes: default_max_body(),
            max_records_per_push: default_max_push_records(),
            header_timeout_seconds: default_header_timeout(),
            body_timeout_seconds: default_body_timeout(),
            request_timeout_seconds: default_request_timeout(),
            max_connections: default_max_connections(),
            auth_failures_per_minute: default_auth_failures(),
            ready_sources: Vec::new(),
            tls_cert_file: None,
            tls_key_file: None,
            rate_limit_per_second: default_rate(),
            rate_limit_burst: None,
            metrics_public: false,
            tokens: Vec::new(),
        }
    }
}

/// Roles of API tokens.
pub const TOKEN_ROLES: &[&str] = &["admin", "operator", "standards-owner", "department"];

/// One API token (`[[server.tokens]]`). The token itself is never in the file in clear: give its
/// SHA-256 (`gateway token new` prints both), or let the deployment inject the clear token
/// through an environment variable or a file.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Name of the token's holder: shown in logs and the audit log (never the token).
    pub name: String,
    /// `admin`, `operator`, `standards-owner` or `department`.
    pub role: String,
    /// `department` tokens: the ids of the push sources the department owns.
    #[serde(default)]
    pub sources: Vec<String>,
    /// SHA-256 of the token, 64 hex digits.
    pub sha256: Option<String>,
    /// Environment variable holding the clear token.
    pub token_env: Option<String>,
    /// File holding the clear token (e.g. a mounted secret).
    pub token_file: Option<PathBuf>,
    /// Permissions beyond the role: `personal-data` lets the holder ask for personal data in
    /// clear (header `X-Personal-Data: clear`), each such read audit-logged. No role includes it.
    #[serde(default)]
    pub permissions: Vec<String>,
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("sources", &self.sources)
            .field("sha256", &self.sha256.as_ref().map(|_| "<given>"))
            .field("token_env", &self.token_env)
            .field("token_file", &self.token_file)
            .field("permissions", &self.permissions)
            .finish()
    }
}

impl TokenConfig {
    /// The SHA-256 digest of the token, from `sha256`, `token_env` or `token_file` (exactly one).
    /// Errors name the key, never the token.
    pub fn digest(&self, base: &Path) -> Result<[u8; 32], String> {
        use sha2::Digest;
        let given = [
            self.sha256.is_some(),
            self.token_env.is_some(),
            self.token_file.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given != 1 {
            return Err(
                "令牌需要且只需要 sha256、token_env、token_file 之一 / give exactly one of sha256, token_env, token_file"
                    .into(),
            );
        }
        if let Some(hex_text) = &self.sha256 {
            let bytes = hex::decode(hex_text.trim())
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| {
                    "sha256 应为64位十六进制数 / sha256 must be 64 hex digits (see `gateway token new`)".to_string()
                })?;
            let mut out = [0u8; 32];
            out.copy_from_slice(&bytes);
            return Ok(out);
        }
        let source = adapters::sinks::secret::SecretSource {
            name: "token",
            inline: None,
            env: self.token_env.as_deref(),
            file: self.token_file.as_deref(),
        };
        let secret = source.require(base)?;
        Ok(sha2::Sha256::digest(secret.expose().as_bytes()).into())
    }
}

impl ServerConfig {
    /// Whether `gateway run` serves the API: the file has a `[server]` table, or a push source
    /// (which needs it).
    pub fn serve(&self, sources: &[SourceConfig]) -> bool {
        self.present || sources.iter().any(|s| s.kind == "push")
    }

    /// Problems of the `[server]` table; `sources` are the configured sources (id, kind).
    pub fn check(&self, base: &Path, sources: &[SourceConfig]) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut problem = |place: String, message: String| problems.push(ConfigProblem { place, message });
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            problem(
                "server.listen".into(),
                format!("监听地址无效 / not an address:port: {:?}", self.listen),
            );
        }
        if self.max_body_bytes == 0 {
            problem("server.max_body_bytes".into(), "应至少为 1 / must be at least 1".into());
        }
        for (key, value) in [
            ("max_records_per_push", self.max_records_per_push as u64),
            ("header_timeout_seconds", self.header_timeout_seconds),
            ("body_timeout_seconds", self.body_timeout_seconds),
            ("request_timeout_seconds", self.request_timeout_seconds),
            ("max_connections", self.max_connections as u64),
            ("auth_failures_per_minute", u64::from(self.auth_failures_per_minute)),
        ] {
            if value == 0 {
                problem(format!("server.{key}"), "应至少为 1 / must be at least 1".into());
            }
        }
        for id in &self.ready_sources {
            if !sources.iter().any(|s| &s.id == id) {
                problem(
                    "server.ready_sources".into(),
                    format!("未知来源 / unknown source {id:?}"),
                );
            }
        }
        match (&self.tls_cert_file, &self.tls_key_file) {
            (None, None) => {}
            (Some(cert), Some(key)) => {
                for (name, path) in [("tls_cert_file", cert), ("tls_key_file", key)] {
                    let full = if path.is_absolute() {
                        path.clone()
                    } else {
                        base.join(path)
                    };
                    if let Err(e) = std::fs::metadata(&full) {
                        problem(
                            format!("server.{name}"),
                            format!("无法读取 / cannot read {}: {e}", full.display()),
                        );
                    }
                }
            }
            _ => problem(
                "server.tls_cert_file".into(),
                "tls_cert_file 与 tls_key_file 须同时给出 / give both tls_cert_file and tls_key_file".into(),
            ),
        }
        if self.rate_limit_per_second == 0 {
            problem(
                "server.rate_limit_per_second".into(),
                "应至少为 1 / must be at least 1".into(),
            );
        }
        if self.rate_limit_burst == Some(0) {
            problem(
                "server.rate_limit_burst".into(),
                "应至少为 1 / must be at least 1".into(),
            );
        }
        let mut names = HashSet::new();
        for (i, t) in self.tokens.iter().enumerate() {
            let place = format!("server.tokens[{i}] (name {:?})", t.name);
            if t.name.trim().is_empty() {
                problem(format!("{place}.name"), "名称不能为空 / name must not be empty".into());
            }
            if !names.insert(t.name.clone()) {
                problem(format!("{place}.name"), "令牌名称重复 / duplicate token name".into());
            }
            if !TOKEN_ROLES.contains(&t.role.as_str()) {
                problem(
                    format!("{place}.role"),
                    format!(
                        "未知角色 / unknown role {:?}: admin, operator, standards-owner or department",
                        t.role
                    ),
                );
            }
            if t.role == "department" {
                if t.sources.is_empty() {
                    problem(
                        format!("{place}.sources"),
                        "department 令牌需要列出其来源 / a department token needs `sources`".into(),
                    );
                }
                for s in &t.sources {
                    if !sources.iter().any(|c| &c.id == s) {
                        problem(format!("{place}.sources"), format!("未知来源 / unknown source {s:?}"));
                    }
                }
            } else if !t.sources.is_empty() && TOKEN_ROLES.contains(&t.role.as_str()) {
                problem(
                    format!("{place}.sources"),
                    format!(
                        "只有 department 令牌限定来源 / only department tokens take `sources` (role {:?} sees every source)",
                        t.role
                    ),
                );
            }
            for p in &t.permissions {
                if p != "personal-data" {
                    problem(
                        format!("{place}.permissions"),
                        format!("未知权限 / unknown permission {p:?}: the one permission is \"personal-data\""),
                    );
                }
            }
            if let Err(e) = t.digest(base) {
                problem(place.clone(), e);
            }
        }
        problems
    }
}

/// A source of the supervision-item catalogue: pulled like a REST/SOAP source, its records
/// become catalogue items by year instead of cases.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct CatalogueSourceConfig {
    /// Unique id among sources and catalogues.
    pub id: String,
    /// `rest` or `soap`.
    pub kind: String,
    /// Seconds between pulls when no `cron` is given (default 86400: daily).
    #[serde(default = "default_catalogue_poll")]
    pub poll_seconds: u64,
    /// Pull schedule as a cron expression with seconds, in China time.
    pub cron: Option<String>,
    /// Where each item's parts are in a pulled record.
    #[serde(default)]
    pub fields: CatalogueFields,
    /// `kind = "rest"`: the REST adapter's settings.
    pub rest: Option<toml::Table>,
    /// `kind = "soap"`: the SOAP/XML adapter's settings.
    pub soap: Option<toml::Table>,
}

/// What is wrong with the id of a source, catalogue or registry at `place`: its characters, or a
/// repeat of one in `ids` (which it joins).
fn id_problems(place: &str, id: &str, ids: &mut HashSet<String>) -> Vec<(String, String)> {
    id_problems_of(place, id, ids, false)
}

/// [`id_problems`]; the id of a source made from an endpoint of a system block may also be
/// `<system>.<endpoint>`.
fn id_problems_of(place: &str, id: &str, ids: &mut HashSet<String>, from_endpoint: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if !systems::valid_source_id(id, from_endpoint) {
        out.push((
            format!("{place}.id"),
            "ID只能包含字母、数字、-、_ / id may only contain letters, digits, - and _".into(),
        ));
    }
    if !ids.insert(id.to_string()) {
        out.push((
            format!("{place}.id"),
            "ID与其他来源重复 / id already used by another source".into(),
        ));
    }
    out
}

fn default_catalogue_poll() -> u64 {
    86_400
}

/// Dotted paths of a catalogue item's parts in a pulled record.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogueFields {
    /// 监管事项目录编码, 14 digits (default `catalog_code`).
    pub code: String,
    /// Item name (default `catalog_name`).
    pub name: String,
    /// Main item of a sub-item (default `parent_code`).
    pub parent: String,
    /// Catalogue year (default `year`).
    pub year: String,
    /// Year for records that carry none (default: none, such a record is refused).
    pub default_year: Option<i32>,
    /// Status field (default `status`; absent = active).
    pub status: String,
    /// Status values meaning the item is in force (default `["1"]`).
    pub active_values: Vec<String>,
    /// Who the item applies to: an agency's credit code or a 2/4/6-digit region prefix
    /// (default `scope`; absent = everyone).
    pub scope: String,
    /// 领域 of the item (default `domain`), for `[normalizer] exempt_domains`.
    pub domain: String,
}

impl Default for CatalogueFields {
    fn default() -> Self {
        CatalogueFields {
            code: "catalog_code".into(),
            name: "catalog_name".into(),
            parent: "parent_code".into(),
            year: "year".into(),
            default_year: None,
            status: "status".into(),
            active_values: vec!["1".into()],
            scope: "scope".into(),
            domain: "domain".into(),
        }
    }
}

impl SourceConfig {
    /// The adapter table of a pull source (`rest` or `soap`; empty when absent), `None` for
    /// the other kinds.
    pub fn pull_table(&self) -> Option<toml::Table> {
        match self.kind.as_str() {
            "rest" => Some(self.rest.clone().unwrap_or_default()),
            "soap" => Some(self.soap.clone().unwrap_or_default()),
            _ => None,
        }
    }
}

impl CatalogueSourceConfig {
    /// The adapter table of its kind.
    pub fn adapter_table(&self) -> toml::Table {
        match self.kind.as_str() {
            "soap" => self.soap.clone(),
            _ => self.rest.clone(),
        }
        .unwrap_or_default()
    }
}

/// One delivery target. Every committed case version gets one outbox row per sink.
/// (No `deny_unknown_fields` here: serde cannot combine it with `flatten`. Unknown keys are
/// reported per kind by `adapters::sinks::check_settings`, called from [`Config::resolve`].)
#[derive(Debug, Deserialize, Clone)]
pub struct SinkConfig {
    /// Unique id.
    pub id: String,
    /// `postgres`, `amqp` or `rest`.
    pub kind: String,
    /// Sink-specific settings (see docs/connecting.md). kept as given.
    #[serde(flatten)]
    pub settings: toml::Table,
}

/// Why a configuration cannot be used: every problem found.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// The problems.
    pub problems: Vec<ConfigProblem>,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|s| s.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

/// Everything a loaded configuration resolves to: mappings loaded, secrets read.
#[derive(Debug)]
pub struct Resolved {
    /// The configuration.
    pub config: Config,
    /// One mapping per source, in source order.
    pub mappings: Vec<std::sync::Arc<Mapping>>,
    /// Rule options built from `[normalizer]`.
    pub rules: RuleOptions,
}

impl Config {
    /// Parse configuration text (syntax and types only).
    pub fn parse(text: &str, file: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let place = match e.span() {
                Some(span) => {
                    let (l, c) = line_col(text, span.start);
                    format!("{l}:{c}")
                }
                None => "-".into(),
            };
            ConfigError {
                file: file.to_string(),
                problems: vec![ConfigProblem {
                    place,
                    message: format!("配置语法或类型错误 / syntax or type error: {}", e.message()),
                }],
            }
        })?;
        config.base_dir = base_dir.to_path_buf();
        let (sources, problems) = systems::expand(std::mem::take(&mut config.sources));
        config.sources = sources;
        config.system_problems = problems;
        Ok(config)
    }

    /// Read and fully check a configuration file: syntax, every source's mapping, catalogue,
    /// store settings and secrets. Returns every problem at once.
    pub fn load(path: &Path) -> Result<Resolved, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            problems: vec![ConfigProblem {
                place: "-".into(),
                message: format!("无法读取配置文件 / cannot read the file: {e}"),
            }],
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let config = Config::parse(&text, &file, &base)?;
        config.resolve(&file)
    }

    /// What is allowed but probably unintended, each with its place: sources that may write
    /// for any agency (neither `agencies` nor `agency_regions`).
    /// Also: separate REST/SOAP blocks that differ only in path and mapping, with the one
    /// system block they could be (see [`systems::merge_hints`]).
    pub fn warnings(&self) -> Vec<ConfigProblem> {
        let mut warnings: Vec<ConfigProblem> = self
            .sources
            .iter()
            .filter(|s| s.agency_scope().is_open())
            .map(|s| ConfigProblem {
                place: s.place(),
                message: "未设置 agencies 或 agency_regions：该来源可写入任何执法部门的案件 / neither `agencies` nor \
                          `agency_regions` is set: this source may write cases of any agency"
                    .into(),
            })
            .collect();
        warnings.extend(systems::merge_hints(&self.sources));
        warnings
    }

    /// A path from the config, made absolute against the config file's directory.
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// Check semantics and load what the config refers to.
    pub fn resolve(self, file: &str) -> Result<Resolved, ConfigError> {
        let mut problems = Vec::new();
        let mut problem = |place: String, message: String| problems.push(ConfigProblem { place, message });

        match self.store.backend.as_str() {
            "sqlite" => {
                if self.store.url.is_some() || self.store.url_env.is_some() || self.store.url_file.is_some() {
                    problem(
                        "store".into(),
                        "sqlite 存储不使用 url / the sqlite backend takes `path`, not a URL".into(),
                    );
                }
                if self.store.ssl_root_cert.is_some() {
                    problem(
                        "store.ssl_root_cert".into(),
                        "sqlite 存储不使用 ssl_root_cert / the sqlite backend takes no ssl_root_cert (it is for postgres)"
                            .into(),
                    );
                }
            }
            "postgres" => match self.store.postgres_target(&self.base_dir) {
                // Reading the CA file now reports an unreadable or unusable one before a start.
                Ok(target) => {
                    if let Err(e) = target.connector() {
                        problem(store_place(&e), e.to_string());
                    }
                }
                Err(StoreUrlError::Url(e)) => problem("store".into(), e),
                Err(StoreUrlError::Tls(e)) => problem(store_place(&e), e.to_string()),
            },
            other => problem(
                "store.backend".into(),
                format!("未知存储类型 / unknown backend {other:?}: use \"sqlite\" or \"postgres\""),
            ),
        }
        if self.pipeline.batch_size == 0 || self.pipeline.batch_size > 100_000 {
            problem(
                "pipeline.batch_size".into(),
                "批大小应在 1..100000 / batch_size must be 1..100000".into(),
            );
        }
        if self.pipeline.channel_capacity == 0 {
            problem(
                "pipeline.channel_capacity".into(),
                "应至少为 1 / must be at least 1".into(),
            );
        }
        if !(0..=19).contains(&self.pipeline.prepare_nice) {
            problem(
                "pipeline.prepare_nice".into(),
                format!(
                    "应在 0..19 / must be 0..19 (a nice value), got {}",
                    self.pipeline.prepare_nice
                ),
            );
        }
        for p in self.server.check(&self.base_dir, &self.sources) {
            problem(p.place, p.message);
        }
        for p in self.cluster.check() {
            problem(p.place, p.message);
        }
        for (place, message) in self.joint.check() {
            problem(place, message);
        }
        for (place, message) in self.archive.check(&self.base_dir) {
            problem(place, message);
        }
        for (place, message) in self.personal_data.check(&self.base_dir) {
            problem(place, message);
        }
        if self.joint.index == joint::IndexMode::Background && self.store.backend != "postgres" {
            problem(
                "joint.index".into(),
                "后台索引需要 PostgreSQL 存储 / index = \"background\" needs the PostgreSQL store (store.backend = \"postgres\")"
                    .into(),
            );
        }
        for (key, message) in self.publicity.problems() {
            problem(format!("publicity.{key}"), message);
        }
        for (place, message) in self.attachments.check(&self.base_dir) {
            problem(place, message);
        }
        for (place, message) in self.oversight_problems() {
            problem(place, message);
        }
        if self.limits.max_record_bytes < 1024 {
            problem(
                "limits.max_record_bytes".into(),
                format!(
                    "应至少为 1024 / must be at least 1024, got {}",
                    self.limits.max_record_bytes
                ),
            );
        }
        if self.limits.max_violations_per_record == 0 {
            problem(
                "limits.max_violations_per_record".into(),
                "应至少为 1 / must be at least 1".into(),
            );
        }
        let mut catalogue = None;
        if let Some(p) = &self.normalizer.catalogue {
            let full = self.path(p);
            match std::fs::read_to_string(&full) {
                Ok(text) => match Catalogue::from_csv(&text) {
                    Ok(c) => catalogue = Some(c),
                    Err(e) => problem("normalizer.catalogue".into(), format!("{}: {e}", full.display())),
                },
                Err(e) => problem(
                    "normalizer.catalogue".into(),
                    format!("无法读取 / cannot read {}: {e}", full.display()),
                ),
            }
        }
        let mut officers = None;
        if let Some(o) = &self.normalizer.officers {
            let mut registry = normalizer::officers::OfficerRegistry::default();
            if let Some(p) = &o.file {
                let full = self.path(p);
                match std::fs::read(&full) {
                    Ok(bytes) => {
                        let format = normalizer::officers::RegistryFormat::sniff(&bytes);
                        match normalizer::officers::parse_officers(&bytes, format, None) {
                            Ok(list) => registry = normalizer::officers::OfficerRegistry::from_officers(list),
                            Err(e) => problem("normalizer.officers.file".into(), format!("{}: {e}", full.display())),
                        }
                    }
                    Err(e) => problem(
                        "normalizer.officers.file".into(),
                        format!("无法读取 / cannot read {}: {e}", full.display()),
                    ),
                }
            }
            if o.refresh_seconds == 0 {
                problem(
                    "normalizer.officers.refresh_seconds".into(),
                    "应至少为 1 / must be at least 1".into(),
                );
            }
            officers = Some(normalizer::officers::OfficerRules {
                registry: std::sync::Arc::new(registry),
                severity: o.severity,
            });
        }
        if let Some(prefix) = &self.normalizer.province_prefix {
            if prefix.is_empty() || prefix.len() > 6 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                problem(
                    "normalizer.province_prefix".into(),
                    format!("应为1-6位数字 / must be 1-6 digits, got {prefix:?}"),
                );
            }
        }

        for p in &self.system_problems {
            problem(p.place.clone(), p.message.clone());
        }
        let mut ids = HashSet::new();
        let mut mappings = Vec::new();
        for s in &self.sources {
            let place = s.place();
            for (where_, message) in id_problems_of(&place, &s.id, &mut ids, s.origin.is_some()) {
                problem(where_, message);
            }
            if s.mapping.as_os_str().is_empty() {
                problem(
                    format!("{place}.mapping"),
                    "来源需要 mapping（映射文件）/ a source needs `mapping` (its mapping file)".into(),
                );
            }
            match s.kind.as_str() {
                "file" => {}
                "directory" => {
                    if s.directory.is_none() {
                        problem(format!("{place}.directory"), "directory 来源需要 directory / a directory source needs `directory`".into());
                    }
                }
                "amqp" => match &s.amqp {
                    None => problem(
                        format!("{place}.amqp"),
                        "amqp 来源需要 [sources.amqp] 表（至少 url 与 queue）/ an amqp source needs a [sources.amqp] table (url and queue at least)".into(),
                    ),
                    Some(table) => {
                        for p in adapters::sources::amqp::check_settings(table, &self.base_dir) {
                            problem(format!("{place}.amqp.{}", p.key), p.message);
                        }
                    }
                },
                "rest" | "soap" => {
                    let table = if s.kind == "rest" { &s.rest } else { &s.soap };
                    match table {
                        None => problem(
                            format!("{place}.{}", s.kind),
                            format!("{k} 来源需要 [sources.{k}] 表 / a {k} source needs a [sources.{k}] table", k = s.kind),
                        ),
                        Some(table) => {
                            for p in adapters::sources::check_settings(&s.kind, table, &self.base_dir) {
                                problem(systems::problem_place(s, &p.key), p.message);
                            }
                        }
                    }
                }
                "push" => match s.push_settings() {
                    Ok(p) if p.max_body_bytes == Some(0) => problem(
                        format!("{place}.push.max_body_bytes"),
                        "应至少为 1 / must be at least 1".into(),
                    ),
                    Ok(_) => {}
                    Err(e) => problem(format!("{place}.push"), e),
                },
                other => problem(
                    format!("{place}.kind"),
                    format!("未知来源类型 / unknown source kind {other:?}: use file, directory, rest, soap, amqp or push"),
                ),
            }
            if s.cron.is_some() {
                if let Err(e) = crate::config::schedule::Schedule::from_config(s.cron.as_deref(), s.poll_seconds) {
                    problem(format!("{place}.cron"), e);
                }
            }
            for (name, table) in [
                ("rest", &s.rest),
                ("soap", &s.soap),
                ("amqp", &s.amqp),
                ("push", &s.push),
            ] {
                if table.is_some() && s.kind != name {
                    problem(
                        format!("{place}.{name}"),
                        format!("[sources.{name}] 只用于 kind = \"{name}\" 的来源（本来源为 {:?}）/ a [sources.{name}] table belongs to a source of kind \"{name}\", this one is {:?}", s.kind, s.kind),
                    );
                }
            }
            for (j, code) in s.agencies.iter().enumerate() {
                if let Err(e) = CreditCode::parse(code) {
                    problem(format!("{place}.agencies[{j}]"), e.to_string());
                }
            }
            for (j, prefix) in s.agency_regions.iter().enumerate() {
                let prefix = prefix.trim();
                if !(matches!(prefix.len(), 2 | 4 | 6) && prefix.bytes().all(|b| b.is_ascii_digit())) {
                    problem(
                        format!("{place}.agency_regions[{j}]"),
                        format!(
                            "行政区划代码前缀应为 2、4 或 6 位数字，收到 {prefix:?} / a region code prefix is 2, 4 or 6 digits (province, city, county), got {prefix:?}"
                        ),
                    );
                }
            }
            if InputFormat::parse(&s.format).is_none() {
                problem(
                    format!("{place}.format"),
                    format!("未知格式 / unknown format {:?}: {}", s.format, source::FORMAT_NAMES),
                );
            }
            if let Err(e) = s.reading_problem() {
                problem(place.clone(), e);
            }
            let mapping_path = self.path(&s.mapping);
            match Mapping::load(&mapping_path) {
                Ok(m) => mappings.push(std::sync::Arc::new(m)),
                Err(e) if !s.mapping.as_os_str().is_empty() => problem(format!("{place}.mapping"), e.to_string()),
                Err(_) => {}
            }
        }
        let mut sink_ids = HashSet::new();
        for (i, s) in self.sinks.iter().enumerate() {
            let place = format!("sinks[{i}] (id {:?})", s.id);
            if !sink_ids.insert(s.id.clone()) {
                problem(format!("{place}.id"), "去向ID重复 / duplicate sink id".into());
            }
            if !matches!(s.kind.as_str(), "postgres" | "amqp" | "rest") {
                problem(
                    format!("{place}.kind"),
                    format!("未知去向类型 / unknown sink kind {:?}: postgres, amqp or rest", s.kind),
                );
            }
            for p in adapters::sinks::check_settings(&s.kind, &s.settings, &self.base_dir) {
                let key = if p.key.is_empty() {
                    String::new()
                } else {
                    format!(".{}", p.key)
                };
                problem(format!("{place}{key}"), p.message);
            }
        }
        for (i, c) in self.catalogues.iter().enumerate() {
            let place = format!("catalogues[{i}] (id {:?})", c.id);
            for (where_, message) in id_problems(&place, &c.id, &mut ids) {
                problem(where_, message);
            }
            if !matches!(c.kind.as_str(), "rest" | "soap") {
                problem(
                    format!("{place}.kind"),
                    format!(
                        "目录来源类型应为 rest 或 soap / a catalogue source is pulled by rest or soap, not {:?}",
                        c.kind
                    ),
                );
            }
            if let Err(e) = crate::config::schedule::Schedule::from_config(c.cron.as_deref(), c.poll_seconds) {
                problem(format!("{place}.cron"), e);
            }
            let table = if c.kind == "soap" { &c.soap } else { &c.rest };
            match table {
                None if matches!(c.kind.as_str(), "rest" | "soap") => problem(
                    format!("{place}.{}", c.kind),
                    format!(
                        "需要 [catalogues.{k}] 表 / a [catalogues.{k}] table is needed",
                        k = c.kind
                    ),
                ),
                None => {}
                Some(table) => {
                    for p in adapters::sources::check_settings(&c.kind, table, &self.base_dir) {
                        problem(format!("{place}.{}.{}", c.kind, p.key), p.message);
                    }
                }
            }
        }
        for (i, r) in self.officer_registries.iter().enumerate() {
            let place = format!("officer_registries[{i}] (id {:?})", r.id);
            for (where_, message) in id_problems(&place, &r.id, &mut ids) {
                problem(where_, message);
            }
            if self.normalizer.officers.is_none() {
                problem(
                    place.clone(),
                    "拉取执法人员名录需要 [normalizer.officers] / pulling officer registries needs a [normalizer.officers] table".into(),
                );
            }
            if let Some(a) = &r.agency {
                if let Err(e) = CreditCode::parse(a) {
                    problem(format!("{place}.agency"), e.to_string());
                }
            }
            if let Err(e) = crate::config::schedule::Schedule::from_config(r.cron.as_deref(), r.poll_seconds) {
                problem(format!("{place}.cron"), e);
            }
            let table = match r.kind.as_str() {
                "rest" => &r.rest,
                "soap" => &r.soap,
                other => {
                    problem(
                        format!("{place}.kind"),
                        format!("名录来源类型应为 rest 或 soap / a registry source is pulled by rest or soap, not {other:?}"),
                    );
                    continue;
                }
            };
            match table {
                None => problem(
                    format!("{place}.{}", r.kind),
                    format!(
                        "需要 [officer_registries.{k}] 表 / a [officer_registries.{k}] table is needed",
                        k = r.kind
                    ),
                ),
                Some(table) => {
                    for p in adapters::sources::check_settings(&r.kind, table, &self.base_dir) {
                        problem(format!("{place}.{}.{}", r.kind, p.key), p.message);
                    }
                }
            }
        }
        if !problems.is_empty() {
            // A problem of a system's shared table is found once per endpoint: say it once.
            let mut seen = HashSet::new();
            problems.retain(|p| seen.insert((p.place.clone(), p.message.clone())));
            return Err(ConfigError {
                file: file.to_string(),
                problems,
            });
        }
        let rules = RuleOptions {
            agency_region_prefix: self.normalizer.province_prefix.clone(),
            catalogue,
            officers,
            exempt_domains: self.normalizer.exempt_domains.clone(),
            known_plans: Some(std::sync::Arc::new(normalizer::plans::KnownPlans::new())),
            plan_unknown: self.normalizer.plan_unknown,
            supplied: Some(std::sync::Arc::new(normalizer::supplement::SuppliedValues::new())),
        };
        Ok(Resolved {
            config: self,
            mappings,
            rules,
        })
    }

    /// The source with this id.
    pub fn source(&self, id: &str) -> Option<(usize, &SourceConfig)> {
        self.sources.iter().enumerate().find(|(_, s)| s.id == id)
    }

    /// Sink ids in order.
    pub fn sink_ids(&self) -> Vec<String> {
        self.sinks.iter().map(|s| s.id.clone()).collect()
    }
}

/// Why the store's PostgreSQL connection string is unusable.
#[derive(Debug, thiserror::Error)]
pub enum StoreUrlError {
    /// `url`, `url_env` or `url_file` gives no URL (message in Chinese and English).
    #[error("{0}")]
    Url(String),
    /// The URL or its TLS settings (`sslmode`, `sslrootcert`, `ssl_root_cert`) are wrong.
    #[error(transparent)]
    Tls(#[from] PostgresTlsError),
}

/// The place of a store TLS problem: `store.ssl_root_cert` for that setting, `store` otherwise
/// (the URL may come from `url`, `url_env` or `url_file`).
fn store_place(e: &PostgresTlsError) -> String {
    match e.setting() {
        ROOT_CERT_SETTING => format!("store.{ROOT_CERT_SETTING}"),
        _ => "store".into(),
    }
}

impl StoreConfig {
    /// The PostgreSQL connection string read for TLS: `sslmode` and `sslrootcert` from the
    /// URL, `ssl_root_cert` made absolute against `base`. Does not read the CA file.
    pub fn postgres_target(&self, base: &Path) -> Result<PostgresTarget, StoreUrlError> {
        let url = self.postgres_url(base).map_err(StoreUrlError::Url)?;
        let root_cert = self
            .ssl_root_cert
            .as_ref()
            .map(|p| if p.is_absolute() { p.clone() } else { base.join(p) });
        Ok(PostgresTarget::parse(&url, root_cert.as_deref())?)
    }

    /// The PostgreSQL URL from `url`, `url_env` or `url_file` (exactly one must be given).
    pub fn postgres_url(&self, base: &Path) -> Result<String, String> {
        let given = [self.url.is_some(), self.url_env.is_some(), self.url_file.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if given != 1 {
            return Err(
                "postgres 存储需要且只需要 url、url_env、url_file 之一 / give exactly one of url, url_env, url_file"
                    .into(),
            );
        }
        if let Some(u) = &self.url {
            return Ok(u.clone());
        }
        if let Some(var) = &self.url_env {
            return std::env::var(var)
                .map_err(|_| format!("环境变量 {var} 未设置 / environment variable {var} is not set"));
        }
        if let Some(f) = &self.url_file {
            let full = if f.is_absolute() { f.clone() } else { base.join(f) };
            return std::fs::read_to_string(&full)
                .map(|s| s.trim().to_string())
                .map_err(|e| format!("无法读取 / cannot read {}: {e}", full.display()));
        }
        Err("unreachable".into())
    }

    /// The SQLite file, relative to the config file's directory.
    pub fn sqlite_path(&self, base: &Path) -> PathBuf {
        let p = self
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from("gateway-data/gateway.db"));
        if p.is_absolute() {
            p
        } else {
            base.join(p)
        }
    }
}

impl Config {
    /// Problems of `[reconciliation]`, each `[sources.reconcile]`, `[alerts]` and
    /// `[[alert_webhooks]]`: (place, message).
    pub fn oversight_problems(&self) -> Vec<(String, String)> {
        let mut problems = self.reconciliation.check();
        problems.extend(self.alerts.check(&self.base_dir));
        for s in &self.sources {
            if let Some(r) = &s.reconcile {
                let kind = s.rest.as_ref().or(s.soap.as_ref());
                if let Err(p) =
                    oversight::reconcile_parts(r, kind, &format!("{}.reconcile", s.key_path()), &self.base_dir)
                {
                    problems.extend(p);
                }
            }
        }
        let mut ids = HashSet::new();
        for (i, w) in self.alert_webhooks.iter().enumerate() {
            let place = format!("alert_webhooks[{i}]");
            problems.extend(id_problems(&place, &w.id, &mut ids));
            if let Err(p) = w.resolve(&place, &self.base_dir) {
                problems.extend(p);
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn an_agency_scope_admits_its_codes_and_the_agencies_of_its_regions_only() {
        let scope = AgencyScope {
            codes: BTreeSet::from(["11360100014523152U".to_string()]),
            region_prefixes: vec!["3604".into()],
        };
        assert!(scope.allows("11360100014523152U", "360100"), "by code");
        assert!(scope.allows("113604000145872014", "360403"), "by region prefix");
        assert!(!scope.allows("11360700014628376B", "360700"), "another city's agency");
        assert!(!scope.allows("11360700014628376B", ""), "no region named");
        assert_eq!(scope.describe(), "11360100014523152U, 3604*");
        assert!(
            AgencyScope::default().allows("anything", ""),
            "an open scope admits everyone"
        );
    }
}
