//! An in-process gateway with its operator server, for the end-to-end API and security tests:
//! fixed tokens of every role, a push source per department, a captured log, and the route
//! matrix's expectations (which role may call which route).
#![allow(dead_code)]

use super::{defective_record, nanchang_record, repo, Backend, AGENCY_CODE};
use gateway::config::Config;
use gateway::runtime::Runtime;
use gateway::server::{self, ServerHandle};
use gateway::shutdown::Shutdown;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

// ----------------------------------------------------------------------------------------------
// Tokens (fixed so the log test can look for every one of them).

pub const ADMIN: &str = "tok-admin-Q2v9sX81kLmA";
pub const OPERATOR: &str = "tok-operator-Zr4Tn0pW7cBe";
pub const OWNER: &str = "tok-owner-Hk3Ue9LsQ5dF";
pub const DEPT: &str = "tok-dept-Wm6Yj2RxA8gN";
pub const DEPT_OTHER: &str = "tok-dept-other-Pb1Cv7KeT4hJ";
pub const BAD: &str = "tok-bad-Nq8Gz5MwD3sR";
pub const ALL_TOKENS: &[&str] = &[ADMIN, OPERATOR, OWNER, DEPT, DEPT_OTHER, BAD];

/// The push source of the department token `DEPT`.
pub const SOURCE: &str = "nanchang-amr";
/// Another department's push source.
pub const OTHER: &str = "other-dept";
/// The other department's agency (九江, region 360400); `OTHER` writes for it and its region.
pub const JIUJIANG_AGENCY: &str = "11360400014587316A";
/// Another agency of region 3604.
pub const JIUJIANG_OTHER_AGENCY: &str = "113604000145872014";

pub fn sha(token: &str) -> String {
    hex::encode(gateway::server::auth::digest(token))
}

// ----------------------------------------------------------------------------------------------
// Log capture: every test's server logs into one buffer (one subscriber per process).

#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("gateway=debug,info"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        captured
    })
}

pub fn log_text() -> String {
    String::from_utf8_lossy(&logs().0.lock().expect("log buffer").clone()).into_owned()
}

// ----------------------------------------------------------------------------------------------
// A gateway with its server.

pub struct Gw {
    pub dir: tempfile::TempDir,
    pub _pg: Option<super::common::PgDatabase>,
    pub runtime: Arc<Runtime>,
    pub shutdown: Shutdown,
    pub server: Option<ServerHandle>,
    pub base: String,
    pub http: reqwest::Client,
}

pub struct Options {
    pub rate: u32,
    pub burst: u32,
    pub sinks: String,
    pub metrics_public: bool,
    /// `[server] auth_failures_per_minute` (high by default: the route matrix presents a wrong
    /// token on every route).
    pub auth_failures: u32,
    /// More `[server]` keys, one per line.
    pub server_extra: String,
    /// More tables at the end of the file (e.g. `[limits]`).
    pub extra: String,
    /// PostgreSQL store: connect with this password in the URL (the local server trusts any).
    pub store_password: Option<String>,
    /// More `[normalizer]` keys and sub-tables (e.g. `[normalizer.officers]`), at its end.
    pub normalizer_extra: String,
    /// Edits of the sources' mapping (the nanchang one): each (text, replacement), which must occur.
    pub mapping_edits: Vec<(String, String)>,
    /// More sub-tables of the first source (`{SOURCE}`), e.g. `[sources.reconcile]`.
    pub source_extra: String,
    /// More sources of the department token `DEPT` (besides `{SOURCE}`); declare them in `extra`.
    pub dept_sources: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rate: 10_000,
            burst: 10_000,
            sinks:
                "[[sinks]]\nid = \"platform\"\nkind = \"postgres\"\nurl = \"postgres://gateway@127.0.0.1:9/platform\"\n"
                    .into(),
            metrics_public: false,
            auth_failures: 100_000,
            server_extra: String::new(),
            extra: String::new(),
            store_password: None,
            normalizer_extra: String::new(),
            mapping_edits: Vec::new(),
            source_extra: String::new(),
            dept_sources: Vec::new(),
        }
    }
}

impl Gw {
    pub async fn start(backend: Backend) -> Gw {
        Gw::start_with(backend, Options::default()).await
    }

    pub async fn start_with(backend: Backend, options: Options) -> Gw {
        logs();
        let dir = tempfile::tempdir().expect("temp dir");
        let mapping = super::copy_mapping("nanchang-amr-penalty", dir.path()).join("mapping.toml");
        if !options.mapping_edits.is_empty() {
            let mut text = std::fs::read_to_string(&mapping).expect("read the mapping copy");
            for (from, to) in &options.mapping_edits {
                assert!(text.contains(from.as_str()), "mapping edit: {from:?} not found");
                text = text.replace(from.as_str(), to);
            }
            std::fs::write(&mapping, text).expect("write the edited mapping");
        }
        let (store, pg) = match backend {
            Backend::Sqlite => (
                "[store]\nbackend = \"sqlite\"\npath = \"data/gateway.db\"\n".to_string(),
                None,
            ),
            Backend::Postgres => {
                let db = super::common::PgDatabase::create().await;
                let url = match &options.store_password {
                    Some(pw) => db.url.replacen('@', &format!(":{pw}@"), 1),
                    None => db.url.clone(),
                };
                (
                    format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\npool_size = 4\n"),
                    Some(db),
                )
            }
        };
        let m = mapping.display();
        let options_tls = options.server_extra.contains("tls_cert_file");
        let text = format!(
            r#"{store}
[normalizer]
province_prefix = "36"
{normalizer_extra}

[server]
listen = "127.0.0.1:0"
max_body_bytes = 1000000
rate_limit_per_second = {rate}
rate_limit_burst = {burst}
metrics_public = {metrics_public}
auth_failures_per_minute = {auth_failures}
{server_extra}

[[server.tokens]]
name = "admin-li"
role = "admin"
sha256 = "{admin}"

[[server.tokens]]
name = "ops-zhang"
role = "operator"
sha256 = "{operator}"

[[server.tokens]]
name = "standards-wang"
role = "standards-owner"
sha256 = "{owner}"

[[server.tokens]]
name = "amr-push"
role = "department"
sources = ["{SOURCE}"{dept_sources}]
sha256 = "{dept}"

[[server.tokens]]
name = "other-push"
role = "department"
sources = ["{OTHER}"]
sha256 = "{dept_other}"

[[sources]]
id = "{SOURCE}"
kind = "push"
mapping = "{m}"
format = "json"
record_key = "ajbh"
xml_records = "cases.case"
agencies = ["{AGENCY_CODE}"]
[sources.push]
max_body_bytes = 20000
{source_extra}

[[sources]]
id = "{OTHER}"
kind = "push"
mapping = "{m}"
record_key = "ajbh"
agencies = ["{JIUJIANG_AGENCY}"]
agency_regions = ["3604"]

[[sources]]
id = "backfill"
kind = "file"
mapping = "{m}"

[[sources]]
id = "drop"
kind = "directory"
directory = "inbox"
mapping = "{m}"

{sinks}
{extra}"#,
            rate = options.rate,
            burst = options.burst,
            metrics_public = options.metrics_public,
            admin = sha(ADMIN),
            operator = sha(OPERATOR),
            owner = sha(OWNER),
            dept = sha(DEPT),
            dept_other = sha(DEPT_OTHER),
            sinks = options.sinks,
            auth_failures = options.auth_failures,
            server_extra = options.server_extra,
            extra = options.extra,
            normalizer_extra = options.normalizer_extra,
            source_extra = options.source_extra,
            dept_sources = options
                .dept_sources
                .iter()
                .map(|s| format!(", \"{s}\""))
                .collect::<String>(),
        );
        let config = Config::parse(&text, "gateway.toml", dir.path())
            .and_then(|c| c.resolve("gateway.toml"))
            .unwrap_or_else(|e| panic!("test config: {e}"));
        let runtime = Arc::new(gateway::intake::tasks::build_runtime(config).await.expect("runtime"));
        let shutdown = Shutdown::default();
        let server = server::spawn(Arc::clone(&runtime), "127.0.0.1:0", shutdown.clone())
            .await
            .expect("server starts");
        // Over TLS by the certificate's name.
        let base = if options_tls {
            format!("https://localhost:{}", server.addr.port())
        } else {
            format!("http://{}", server.addr)
        };
        Gw {
            dir,
            _pg: pg,
            runtime,
            shutdown,
            server: Some(server),
            base,
            http: reqwest::Client::new(),
        }
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b.to_string());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call("GET", path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, Some(token), Some(body)).await
    }

    /// Upload a file (`POST /api/uploads/{source}`) with a content type.
    pub async fn upload(&self, source: &str, token: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}/api/uploads/{source}", self.base))
            .bearer_auth(token)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .expect("upload");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Push raw bytes with a content type.
    pub async fn push_raw(&self, source: &str, token: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}/api/ingest/{source}", self.base))
            .bearer_auth(token)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .expect("push");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn push(&self, records: &[Value]) -> Value {
        let (status, body) = self.post(&format!("/api/ingest/{SOURCE}"), DEPT, json!(records)).await;
        assert_eq!(status, StatusCode::OK, "push answered {body}");
        body
    }

    pub async fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(server) = self.server.take() {
            tokio::time::timeout(std::time::Duration::from_secs(10), server.join())
                .await
                .expect("the server stops on shutdown");
        }
    }
}

/// A record whose 处罚程序 (cfcx) is not in the code table: quarantined until the mapping learns it.
pub fn unknown_procedure_record(n: usize) -> Value {
    let mut r = nanchang_record(n, 0);
    r["cfcx"] = json!("快速程序");
    r
}

/// A copy of the Nanchang mapping whose procedures table knows 快速程序.
pub fn fixed_mapping(dir: &Path) -> normalizer::mapping::Mapping {
    let fixed = dir.join("fixed");
    std::fs::create_dir_all(&fixed).expect("dir");
    let copy = super::copy_mapping("nanchang-amr-penalty", &fixed);
    let mut csv = std::fs::read_to_string(copy.join("procedures.csv")).expect("csv");
    csv.push_str("快速程序,simple,新增\n");
    std::fs::write(copy.join("procedures.csv"), csv).expect("write");
    normalizer::mapping::Mapping::load(&copy.join("mapping.toml")).expect("fixed mapping loads")
}

// ----------------------------------------------------------------------------------------------
// OpenAPI helpers.

pub fn openapi() -> Value {
    let text = std::fs::read_to_string(repo().join("gateway/openapi.yaml")).expect("openapi.yaml");
    serde_norway::from_str(&text).expect("openapi.yaml is YAML")
}

/// Validate `instance` against `#/components/schemas/{name}` of the OpenAPI document.
pub fn assert_schema(doc: &Value, name: &str, instance: &Value) {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "$ref": format!("#/components/schemas/{name}"),
    });
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&schema)
        .unwrap_or_else(|e| panic!("schema {name} compiles: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{name} does not match its schema: {errors:#?}\n{instance:#}"
    );
}

// ----------------------------------------------------------------------------------------------
// Tests.

/// Who may call what: the expected matrix, written out independently of the server's table.
pub fn allowed(route: &str, role: &str) -> bool {
    let all_staff = ["admin", "operator", "standards-owner"];
    let ops = ["admin", "operator"];
    let roles: &[&str] = match route {
        "/api/me" => &["admin", "operator", "standards-owner", "department"],
        "/metrics" => &ops,
        "/api/sources" | "/api/sources/{id}" | "/api/instances" => &all_staff,
        "/api/sources/{id}/pull" | "/api/sources/{id}/resync" => &ops,
        "/api/quarantine" | "/api/quarantine/counts" | "/api/quarantine/{id}" => {
            &["admin", "operator", "standards-owner", "department"]
        }
        "/api/quarantine/replay" | "/api/quarantine/{id}/replay" => {
            &["admin", "operator", "standards-owner", "department"]
        }
        "/api/quarantine/ignore" | "/api/quarantine/{id}/ignore" => &ops,
        "/api/cases" | "/api/cases/{unified_code}" | "/api/cases/{unified_code}/diff" | "/api/raw/{id}" => &all_staff,
        // The archive receipt of a raw record: operators and admins.
        "/api/raw/{id}/receipt" => &ops,
        // Evidence attachments (证据附件): the download also takes a signed link instead of a token.
        "/api/cases/{unified_code}/attachments" | "/api/attachments/{sha256}" => &all_staff,
        "/api/cases/{unified_code}/attachments/retry" => &ops,
        "/api/records" => &["admin", "operator", "standards-owner", "department"],
        "/api/supplements" => &["admin", "operator", "standards-owner", "department"],
        "/api/publicity" => &["admin", "operator", "standards-owner", "department"],
        "/api/supplements/{unified_code}" => &["admin", "operator", "standards-owner", "department"],
        "/api/supplements/{unified_code}/complete" => &["admin", "operator", "department"],
        "/api/audit" => &all_staff,
        "/api/reconciliation" | "/api/off-platform" | "/api/alerts" => &all_staff,
        "/api/reconciliation/check" => &ops,
        "/api/deliveries" | "/api/deliveries/redrive" | "/api/deliveries/{id}/redrive" => &ops,
        "/api/ingest/{source}" | "/api/uploads/{source}" => &["admin", "department"],
        "/api/officers" | "/api/officers/versions" => &["admin", "operator", "standards-owner", "department"],
        "/api/officers/load" => &["admin", "standards-owner", "department"],
        "/api/joint-groups" | "/api/joint-groups/{id}" => &["admin", "operator", "standards-owner", "department"],
        "/api/joint-groups/{id}/merge" | "/api/joint-groups/{id}/dismiss" | "/api/joint-groups/{id}/undo" => &ops,
        "/api/mappings"
        | "/api/mappings/{source}/versions"
        | "/api/mappings/{source}/versions/{v}"
        | "/api/mappings/{source}/versions/{v}/dry-run"
        | "/api/mappings/{source}/versions/{v}/activate"
        | "/api/mappings/{source}/rollback" => &["admin", "standards-owner"],
        other => panic!("route {other} missing from the test's matrix"),
    };
    roles.contains(&role)
}

/// Fill a route's path parameters with things that exist.
pub fn concrete(path: &str, ids: &BTreeMap<&str, String>) -> String {
    let mut p = path.to_string();
    for (k, v) in ids {
        p = p.replace(&format!("{{{k}}}"), v);
    }
    p
}

pub fn body_for(path: &str) -> Option<Value> {
    match path {
        "/api/ingest/{source}" => Some(json!([nanchang_record(900, 0)])),
        "/api/quarantine/replay" => Some(json!({ "source": SOURCE })),
        "/api/quarantine/{id}/ignore" => Some(json!({ "reason": "矩阵测试 / matrix test" })),
        "/api/quarantine/ignore" => {
            Some(json!({ "source": SOURCE, "reason": "矩阵测试 / matrix test", "preview": true }))
        }
        "/api/deliveries/redrive" => Some(json!({ "sink": "platform" })),
        "/api/joint-groups/{id}/merge" => {
            Some(json!({ "reason": "矩阵测试 / matrix test", "lead_agency": "11360100014523152U" }))
        }
        "/api/joint-groups/{id}/dismiss" | "/api/joint-groups/{id}/undo" => {
            Some(json!({ "reason": "矩阵测试 / matrix test" }))
        }
        // A mapping that does not load: refused with 422, nothing stored.
        "/api/mappings/{source}/versions" => Some(json!({ "mapping": "id = 1", "tables": {} })),
        "/api/mappings/{source}/rollback" => Some(json!({ "to": 1 })),
        // The department's own agency (each role's load is a new version of its list).
        "/api/officers/load" => Some(json!([{ "name": "张三", "cert_no": "JX0001", "agency": AGENCY_CODE }])),
        _ => None,
    }
}

/// Existing ids: one of each kind, from a push of a valid and a defective record.
pub async fn seed(gw: &Gw) -> BTreeMap<&'static str, String> {
    let answer = gw.push(&[nanchang_record(1, 0), defective_record(2)]).await;
    let code = answer["results"][0]["code"].as_str().expect("code").to_string();
    let qid = answer["results"][1]["quarantine_id"].as_i64().expect("quarantine id");
    let (_, case) = gw.get(&format!("/api/cases/{code}"), ADMIN).await;
    let raw = case["versions"][0]["raw_id"].as_i64().expect("raw id");
    let delivery = case["versions"][0]["deliveries"][0]["id"]
        .as_i64()
        .expect("delivery id");
    BTreeMap::from([
        ("id", qid.to_string()),
        ("unified_code", code),
        ("source", SOURCE.to_string()),
        ("raw", raw.to_string()),
        ("delivery", delivery.to_string()),
    ])
}

pub fn ids_for(path: &str, ids: &BTreeMap<&str, String>) -> BTreeMap<&'static str, String> {
    let id = if path.starts_with("/api/sources") {
        SOURCE.to_string()
    } else if path.starts_with("/api/raw") {
        ids["raw"].clone()
    } else if path.starts_with("/api/deliveries") {
        ids["delivery"].clone()
    } else {
        ids["id"].clone()
    };
    BTreeMap::from([
        ("id", id),
        ("unified_code", ids["unified_code"].clone()),
        ("source", ids["source"].clone()),
        // The configuration's mapping, imported as version 1 at start.
        ("v", "1".to_string()),
        // No attachment is stored: the download answers 404 to those allowed.
        ("sha256", "0".repeat(64)),
    ])
}

/// `reqwest` without its `json` feature: read a body as JSON.
pub trait JsonBody {
    async fn json_body(self) -> Value;
}

impl JsonBody for reqwest::Response {
    async fn json_body(self) -> Value {
        let text = self.text().await.expect("body");
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }
}
