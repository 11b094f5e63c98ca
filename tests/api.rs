//! End-to-end tests of the operator API and HTTP push: a real gateway server started in-process
//! on 127.0.0.1:0 over a real store (SQLite file, or a fresh PostgreSQL database), called over
//! HTTP. They walk the role matrix, push mixed records, page and filter the quarantine, replay
//! after a mapping fix, look cases up, re-drive dead deliveries, read the metrics, hit the rate
//! limit, keep tokens out of the logs, and check that `gateway/openapi.yaml` and the router agree.

mod support;

use chrono::{SubsecRound, Utc};
use gateway::config::Config;
use gateway::runtime::Runtime;
use gateway::server::{self, Access, ServerHandle};
use gateway::shutdown::Shutdown;
use gateway::store::{DeliveryStatus, Settlement};
use gateway::telemetry::SourceCommand;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use support::{defective_record, nanchang_record, repo, Backend, AGENCY_CODE};

// ----------------------------------------------------------------------------------------------
// Tokens (fixed so the log test can look for every one of them).

const ADMIN: &str = "tok-admin-Q2v9sX81kLmA";
const OPERATOR: &str = "tok-operator-Zr4Tn0pW7cBe";
const OWNER: &str = "tok-owner-Hk3Ue9LsQ5dF";
const DEPT: &str = "tok-dept-Wm6Yj2RxA8gN";
const DEPT_OTHER: &str = "tok-dept-other-Pb1Cv7KeT4hJ";
const BAD: &str = "tok-bad-Nq8Gz5MwD3sR";
const ALL_TOKENS: &[&str] = &[ADMIN, OPERATOR, OWNER, DEPT, DEPT_OTHER, BAD];

/// The push source of the department token `DEPT`.
const SOURCE: &str = "nanchang-amr";
/// Another department's push source.
const OTHER: &str = "other-dept";
/// The other department's agency (九江, region 360400); `OTHER` writes for it and its region.
const JIUJIANG_AGENCY: &str = "11360400014587316A";
/// Another agency of region 3604.
const JIUJIANG_OTHER_AGENCY: &str = "113604000145872014";

fn sha(token: &str) -> String {
    hex::encode(gateway::server::auth::digest(token))
}

// ----------------------------------------------------------------------------------------------
// Log capture: every test's server logs into one buffer (one subscriber per process).

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

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

fn logs() -> &'static Captured {
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

fn log_text() -> String {
    String::from_utf8_lossy(&logs().0.lock().expect("log buffer").clone()).into_owned()
}

// ----------------------------------------------------------------------------------------------
// A gateway with its server.

struct Gw {
    dir: tempfile::TempDir,
    _pg: Option<support::common::PgDatabase>,
    runtime: Arc<Runtime>,
    shutdown: Shutdown,
    server: Option<ServerHandle>,
    base: String,
    http: reqwest::Client,
}

struct Options {
    rate: u32,
    burst: u32,
    sinks: String,
    metrics_public: bool,
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
        }
    }
}

impl Gw {
    async fn start(backend: Backend) -> Gw {
        Gw::start_with(backend, Options::default()).await
    }

    async fn start_with(backend: Backend, options: Options) -> Gw {
        logs();
        let dir = tempfile::tempdir().expect("temp dir");
        let mapping = support::copy_mapping("nanchang-amr-penalty", dir.path()).join("mapping.toml");
        let (store, pg) = match backend {
            Backend::Sqlite => (
                "[store]\nbackend = \"sqlite\"\npath = \"data/gateway.db\"\n".to_string(),
                None,
            ),
            Backend::Postgres => {
                let db = support::common::PgDatabase::create().await;
                (
                    format!("[store]\nbackend = \"postgres\"\nurl = \"{}\"\npool_size = 4\n", db.url),
                    Some(db),
                )
            }
        };
        let m = mapping.display();
        let text = format!(
            r#"{store}
[normalizer]
province_prefix = "36"

[server]
listen = "127.0.0.1:0"
max_body_bytes = 1000000
rate_limit_per_second = {rate}
rate_limit_burst = {burst}
metrics_public = {metrics_public}
# The route matrix presents a wrong token on every route; limiting failures is tested in security.rs.
auth_failures_per_minute = 100000

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
sources = ["{SOURCE}"]
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

{sinks}"#,
            rate = options.rate,
            burst = options.burst,
            metrics_public = options.metrics_public,
            admin = sha(ADMIN),
            operator = sha(OPERATOR),
            owner = sha(OWNER),
            dept = sha(DEPT),
            dept_other = sha(DEPT_OTHER),
            sinks = options.sinks,
        );
        let config = Config::parse(&text, "gateway.toml", dir.path())
            .and_then(|c| c.resolve("gateway.toml"))
            .unwrap_or_else(|e| panic!("test config: {e}"));
        let runtime = Arc::new(gateway::intake::tasks::build_runtime(config).await.expect("runtime"));
        let shutdown = Shutdown::default();
        let server = server::spawn(Arc::clone(&runtime), "127.0.0.1:0", shutdown.clone())
            .await
            .expect("server starts");
        let base = format!("http://{}", server.addr);
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

    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
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

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call("GET", path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, Some(token), Some(body)).await
    }

    /// Push raw bytes with a content type.
    async fn push_raw(&self, source: &str, token: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
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

    async fn push(&self, records: &[Value]) -> Value {
        let (status, body) = self.post(&format!("/api/ingest/{SOURCE}"), DEPT, json!(records)).await;
        assert_eq!(status, StatusCode::OK, "push answered {body}");
        body
    }

    async fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(server) = self.server.take() {
            tokio::time::timeout(std::time::Duration::from_secs(10), server.join())
                .await
                .expect("the server stops on shutdown");
        }
    }
}

/// A record whose 处罚程序 (cfcx) is not in the code table: quarantined until the mapping learns it.
fn unknown_procedure_record(n: usize) -> Value {
    let mut r = nanchang_record(n, 0);
    r["cfcx"] = json!("快速程序");
    r
}

/// A copy of the Nanchang mapping whose procedures table knows 快速程序.
fn fixed_mapping(dir: &Path) -> normalizer::mapping::Mapping {
    let fixed = dir.join("fixed");
    std::fs::create_dir_all(&fixed).expect("dir");
    let copy = support::copy_mapping("nanchang-amr-penalty", &fixed);
    let mut csv = std::fs::read_to_string(copy.join("procedures.csv")).expect("csv");
    csv.push_str("快速程序,simple,新增\n");
    std::fs::write(copy.join("procedures.csv"), csv).expect("write");
    normalizer::mapping::Mapping::load(&copy.join("mapping.toml")).expect("fixed mapping loads")
}

// ----------------------------------------------------------------------------------------------
// OpenAPI helpers.

fn openapi() -> Value {
    let text = std::fs::read_to_string(repo().join("gateway/openapi.yaml")).expect("openapi.yaml");
    serde_norway::from_str(&text).expect("openapi.yaml is YAML")
}

/// Validate `instance` against `#/components/schemas/{name}` of the OpenAPI document.
fn assert_schema(doc: &Value, name: &str, instance: &Value) {
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
fn allowed(route: &str, role: &str) -> bool {
    let all_staff = ["admin", "operator", "standards-owner"];
    let ops = ["admin", "operator"];
    let roles: &[&str] = match route {
        "/api/me" => &["admin", "operator", "standards-owner", "department"],
        "/metrics" => &ops,
        "/api/sources" | "/api/sources/{id}" => &all_staff,
        "/api/sources/{id}/pull" | "/api/sources/{id}/resync" => &ops,
        "/api/quarantine" | "/api/quarantine/{id}" => &["admin", "operator", "standards-owner", "department"],
        "/api/quarantine/replay" | "/api/quarantine/{id}/replay" | "/api/quarantine/{id}/ignore" => &ops,
        "/api/cases" | "/api/cases/{unified_code}" | "/api/raw/{id}" => &all_staff,
        "/api/deliveries" | "/api/deliveries/redrive" | "/api/deliveries/{id}/redrive" => &ops,
        "/api/ingest/{source}" => &["admin", "department"],
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
fn concrete(path: &str, ids: &BTreeMap<&str, String>) -> String {
    let mut p = path.to_string();
    for (k, v) in ids {
        p = p.replace(&format!("{{{k}}}"), v);
    }
    p
}

fn body_for(path: &str) -> Option<Value> {
    match path {
        "/api/ingest/{source}" => Some(json!([nanchang_record(900, 0)])),
        "/api/quarantine/replay" => Some(json!({ "source": SOURCE })),
        "/api/quarantine/{id}/ignore" => Some(json!({ "reason": "矩阵测试 / matrix test" })),
        "/api/deliveries/redrive" => Some(json!({ "sink": "platform" })),
        // A mapping that does not load: refused with 422, nothing stored.
        "/api/mappings/{source}/versions" => Some(json!({ "mapping": "id = 1", "tables": {} })),
        "/api/mappings/{source}/rollback" => Some(json!({ "to": 1 })),
        _ => None,
    }
}

/// Existing ids: one of each kind, from a push of a valid and a defective record.
async fn seed(gw: &Gw) -> BTreeMap<&'static str, String> {
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

fn ids_for(path: &str, ids: &BTreeMap<&str, String>) -> BTreeMap<&'static str, String> {
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
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_401_without_a_valid_token_403_outside_the_role_and_serves_the_roles_it_names() {
    let gw = Gw::start(Backend::Sqlite).await;
    let ids = seed(&gw).await;
    let roles = [
        ("admin", ADMIN),
        ("operator", OPERATOR),
        ("standards-owner", OWNER),
        ("department", DEPT),
    ];
    for (method, path, access) in server::route_table() {
        let url = concrete(path, &ids_for(path, &ids));
        let body = body_for(path);
        if access == Access::Public {
            let (status, _) = gw.call(method, &url, None, body.clone()).await;
            assert!(status.is_success(), "{method} {path} is open, got {status}");
            continue;
        }
        for token in [None, Some(BAD)] {
            let (status, answer) = gw.call(method, &url, token, body.clone()).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {token:?}: {answer}"
            );
            assert_eq!(answer["error"]["code"], "unauthorized");
        }
        for (role, token) in roles {
            let (status, answer) = gw.call(method, &url, Some(token), body.clone()).await;
            if allowed(path, role) {
                assert!(
                    status != StatusCode::UNAUTHORIZED
                        && status != StatusCode::FORBIDDEN
                        && status != StatusCode::METHOD_NOT_ALLOWED
                        && answer["error"]["code"] != "route_not_found",
                    "{role} may {method} {path} ({url}), got {status} {answer}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{role} may not {method} {path}: {answer}"
                );
                assert_eq!(answer["error"]["code"], "forbidden");
            }
        }
    }
    // A 401 names the scheme.
    let resp = gw
        .http
        .get(format!("{}/api/sources", gw.base))
        .send()
        .await
        .expect("request");
    let challenge = resp.headers().get("www-authenticate").expect("WWW-Authenticate");
    assert!(challenge.to_str().expect("text").starts_with("Bearer"));
    // Department scope: its own source's quarantine and push, not another's.
    let (status, _) = gw.get(&format!("/api/quarantine?source={OTHER}"), DEPT).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = gw
        .post(&format!("/api/ingest/{OTHER}"), DEPT, json!([nanchang_record(5, 0)]))
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a department pushes to its own sources only"
    );
    let (status, _) = gw.get(&format!("/api/quarantine/{}", ids["id"]), DEPT_OTHER).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another department's quarantine entry");
    let (status, list) = gw.get("/api/quarantine", DEPT_OTHER).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        list["items"],
        json!([]),
        "a department lists its own sources' entries only"
    );
    let (status, _) = gw
        .post(
            &format!("/api/ingest/{OTHER}"),
            DEPT_OTHER,
            json!([nanchang_record(6, 0)]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the other department pushes to its own source");
    // Sources: pull/resync need a pulled source with a running scheduler.
    let (status, answer) = gw.post("/api/sources/backfill/pull", OPERATOR, json!({})).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("not_pulled"))
    );
    let (status, answer) = gw.post("/api/sources/drop/resync", OPERATOR, json!({})).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("not_running"))
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    gw.runtime.sources.attach_control("drop", tx);
    let (status, answer) = gw.post("/api/sources/drop/pull", OPERATOR, json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(rx.recv().await, Some(SourceCommand::PullNow));
    let (status, _) = gw.post("/api/sources/nope/pull", OPERATOR, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, sources) = gw.get("/api/sources", OWNER).await;
    assert_eq!(status, StatusCode::OK);
    let listed: BTreeSet<&str> = sources["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(listed, BTreeSet::from(["backfill", "drop", OTHER, SOURCE]));
    gw.stop().await;
}

async fn push_answers_each_record_in_order_and_commits_before_answering(backend: Backend) {
    let gw = Gw::start(backend).await;
    let doc = openapi();
    let answer = gw
        .push(&[nanchang_record(10, 0), defective_record(11), nanchang_record(12, 0)])
        .await;
    assert_schema(&doc, "PushAnswer", &answer);
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["result"], "accepted");
    assert_eq!(results[0]["record_key"], "NCSJ-CF-2024-000010");
    assert_eq!(results[1]["result"], "quarantined");
    assert_eq!(results[2]["result"], "accepted");
    let code = results[0]["code"].as_str().expect("code");
    assert!(
        normalizer::standards::case_code::CaseCode::parse(code).is_ok(),
        "{code}"
    );
    let rules: Vec<&str> = results[1]["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .filter_map(|v| v["rule"].as_str())
        .collect();
    assert!(rules.contains(&"uscc.check_char"), "{rules:?}");
    assert_eq!(answer["summary"]["accepted"], 2);
    assert_eq!(answer["summary"]["quarantined"], 1);
    // Committed: the case and the entry are there.
    let (status, case) = gw.get(&format!("/api/cases/{code}"), OPERATOR).await;
    assert_eq!(status, StatusCode::OK);
    assert_schema(&doc, "CaseView", &case);
    let qid = results[1]["quarantine_id"].as_i64().expect("id");
    let (status, entry) = gw.get(&format!("/api/quarantine/{qid}"), DEPT).await;
    assert_eq!(status, StatusCode::OK, "the department reads its own source's entry");
    assert_schema(&doc, "QuarantineDetail", &entry);
    // Re-sent: unchanged, same code; a new version when the content changes.
    let again = gw.push(&[nanchang_record(10, 0), nanchang_record(12, 3)]).await;
    assert_eq!(again["results"][0]["result"], "unchanged");
    assert_eq!(again["results"][0]["code"], code);
    assert_eq!(again["results"][1]["result"], "updated");
    assert_eq!(again["results"][1]["version"], 2);
    // JSON lines, and a GBK XML body.
    let lines = format!("{}\n{{not json\n", nanchang_record(13, 0));
    let (status, answer) = gw
        .push_raw(SOURCE, DEPT, "application/x-ndjson", lines.into_bytes())
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["results"][0]["result"], "accepted");
    assert_eq!(answer["results"][1]["result"], "quarantined");
    assert_eq!(answer["results"][1]["violations"][0]["rule"], "input.unreadable");
    let xml = xml_cases(&[nanchang_record(14, 0)]);
    let gbk = encoding_rs::GBK.encode(&xml).0.into_owned();
    let (status, answer) = gw.push_raw(SOURCE, DEPT, "application/xml", gbk).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["results"][0]["result"], "accepted", "{answer}");
    // Too large, malformed, wrong type, not a push source, unknown source.
    let big = vec![b' '; 30_000];
    let (status, answer) = gw.push_raw(SOURCE, DEPT, "application/json", big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["error"]["code"], "payload_too_large");
    let (status, answer) = gw.push_raw(SOURCE, DEPT, "application/json", b"[{".to_vec()).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("malformed_body"))
    );
    let (status, _) = gw.push_raw(SOURCE, DEPT, "image/png", b"x".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, answer) = gw
        .post("/api/ingest/backfill", ADMIN, json!([nanchang_record(1, 0)]))
        .await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("not_a_push_source"))
    );
    let (status, _) = gw.post("/api/ingest/nope", ADMIN, json!([nanchang_record(1, 0)])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The push is audited with the token's name.
    let audit = gw.runtime.store.audit_log(50).await.expect("audit log");
    assert!(audit.iter().any(|a| a.action == "ingest.push" && a.actor == "amr-push"));
    gw.stop().await;
}
on_both_backends!(push_answers_each_record_in_order_and_commits_before_answering);

/// A record of `agency` (region `region`) with case number `n`.
fn record_of_agency(n: usize, variant: u32, agency: &str, region: &str) -> Value {
    let mut r = nanchang_record(n, variant);
    r["jgdm"] = json!(agency);
    r["xzqh"] = json!(region);
    r
}

async fn a_department_cannot_write_or_overwrite_another_departments_cases(backend: Backend) {
    let gw = Gw::start(backend).await;
    // The other department writes its own case, by agency and by region.
    let (status, own) = gw
        .post(
            &format!("/api/ingest/{OTHER}"),
            DEPT_OTHER,
            json!([
                record_of_agency(300, 0, JIUJIANG_AGENCY, "360400"),
                record_of_agency(301, 0, JIUJIANG_OTHER_AGENCY, "360400")
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(own["results"][0]["result"], "accepted", "{own}");
    assert_eq!(
        own["results"][1]["result"], "accepted",
        "a region prefix admits the region's agencies: {own}"
    );
    let code = own["results"][0]["code"].as_str().expect("code").to_string();
    // This department pushes a changed version of that case (same business key) to its own source.
    let answer = gw.push(&[record_of_agency(300, 7, JIUJIANG_AGENCY, "360400")]).await;
    let result = &answer["results"][0];
    assert_eq!(result["result"], "quarantined", "{answer}");
    let violation = &result["violations"][0];
    assert_eq!(violation["rule"], "source.agency_not_allowed", "{answer}");
    assert_eq!(violation["value"], JIUJIANG_AGENCY);
    let en = violation["message_en"].as_str().unwrap_or_default();
    assert!(
        en.contains(SOURCE) && en.contains(JIUJIANG_AGENCY) && en.contains(AGENCY_CODE),
        "the message names the source, the agency and what the source may write for: {en}"
    );
    assert!(
        violation["message_zh"].as_str().is_some_and(|m| m.contains("无权")),
        "{violation}"
    );
    // The other department's case is unchanged: one version, its own record.
    let (status, case) = gw.get(&format!("/api/cases/{code}"), OPERATOR).await;
    assert_eq!(status, StatusCode::OK, "{case}");
    let versions = case["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 1, "no version was added: {case}");
    let (_, entries) = gw
        .get(
            &format!("/api/quarantine?source={SOURCE}&rule=source.agency_not_allowed"),
            OPERATOR,
        )
        .await;
    assert_eq!(entries["items"].as_array().map(Vec::len), Some(1), "{entries}");

    // A source that may write for the agency updates a case another source wrote: committed,
    // audited as a change of source, and the lineage names each version's source.
    let first = gw.push(&[nanchang_record(310, 0)]).await;
    let code = first["results"][0]["code"].as_str().expect("code").to_string();
    let file = gw.dir.path().join("update.jsonl");
    std::fs::write(&file, format!("{}\n", nanchang_record(310, 3))).expect("write");
    let job = gateway::intake::files::IngestJob {
        preparer: gw.runtime.preparers.get("backfill").expect("preparer"),
        files: vec![file],
        format: gateway::prepare::InputFormat::JsonLines,
        xml_records: None,
    };
    let batching = gateway::commit::Batching::from(&gw.runtime.resolved.config);
    let summary = gateway::intake::files::ingest_files(
        &gw.runtime.committer("files"),
        job,
        &batching,
        Shutdown::default(),
        None,
    )
    .await
    .expect("ingest");
    assert_eq!(summary.updated, 1, "{summary:?}");
    let (_, case) = gw.get(&format!("/api/cases/{code}"), OPERATOR).await;
    assert_schema(&openapi(), "CaseView", &case);
    let sources: Vec<&str> = case["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["source_id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(sources, [SOURCE, "backfill"], "{case}");
    let audit = gw.runtime.store.audit_log(100).await.expect("audit");
    let change = audit
        .iter()
        .find(|a| a.action == "case.source_changed" && a.subject == format!("case:{code}"))
        .unwrap_or_else(|| panic!("no case.source_changed entry in {audit:?}"));
    assert_eq!(change.detail["from_source"], SOURCE);
    assert_eq!(change.detail["to_source"], "backfill");
    assert_eq!(change.detail["version"], 2);
    gw.stop().await;
}
on_both_backends!(a_department_cannot_write_or_overwrite_another_departments_cases);

fn xml_cases(records: &[Value]) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"GBK\"?>\n<cases>");
    for r in records {
        s.push_str("<case>");
        for (k, v) in r.as_object().expect("object") {
            match v {
                Value::String(text) => s.push_str(&format!("<{k}>{text}</{k}>")),
                Value::Array(items) => {
                    for item in items {
                        s.push_str(&format!("<{k}>"));
                        for (ik, iv) in item.as_object().expect("object") {
                            s.push_str(&format!("<{ik}>{}</{ik}>", iv.as_str().unwrap_or_default()));
                        }
                        s.push_str(&format!("</{k}>"));
                    }
                }
                other => s.push_str(&format!("<{k}>{other}</{k}>")),
            }
        }
        s.push_str("</case>");
    }
    s.push_str("</cases>");
    s
}

async fn quarantine_pages_filters_shows_the_raw_payload_replays_after_a_fix_and_ignores_with_a_reason(
    backend: Backend,
) {
    let gw = Gw::start(backend).await;
    let doc = openapi();
    let mut records: Vec<Value> = (20..25).map(defective_record).collect();
    records.extend((30..33).map(unknown_procedure_record));
    let answer = gw.push(&records).await;
    assert_eq!(answer["summary"]["quarantined"], 8, "{answer}");
    // Paging by id, newest first.
    let mut seen = Vec::new();
    let mut path = "/api/quarantine?limit=3".to_string();
    loop {
        let (status, page) = gw.get(&path, OPERATOR).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_schema(&doc, "QuarantineList", &page);
        seen.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|e| e["id"].as_i64().expect("id")),
        );
        match page["next_before_id"].as_i64() {
            Some(next) => path = format!("/api/quarantine?limit=3&before_id={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8, "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats: {seen:?}"
    );
    // Filters.
    let count = |v: &Value| v["items"].as_array().map_or(0, Vec::len);
    let (_, by_rule) = gw.get("/api/quarantine?rule=uscc.check_char", OPERATOR).await;
    assert_eq!(count(&by_rule), 5);
    let (_, by_source) = gw
        .get(&format!("/api/quarantine?source={SOURCE}&status=open"), OWNER)
        .await;
    assert_eq!(count(&by_source), 8);
    let (_, none) = gw.get(&format!("/api/quarantine?source={OTHER}"), OPERATOR).await;
    assert_eq!(count(&none), 0);
    let (_, since) = gw
        .get("/api/quarantine?since=2000-01-01&until=2999-01-01T00:00:00Z", OPERATOR)
        .await;
    assert_eq!(count(&since), 8);
    let (_, future) = gw.get("/api/quarantine?since=2999-01-01", OPERATOR).await;
    assert_eq!(count(&future), 0);
    let (status, bad) = gw.get("/api/quarantine?status=lost", OPERATOR).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(bad["error"]["message_en"].as_str().expect("message").contains("lost"));
    let (status, _) = gw.get("/api/quarantine?limit=0", OPERATOR).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // One entry: every violation and the raw payload, pretty-printed.
    let first = answer["results"][0]["quarantine_id"].as_i64().expect("id");
    let (_, detail) = gw.get(&format!("/api/quarantine/{first}"), OPERATOR).await;
    assert_eq!(detail["raw"]["payload"]["ajbh"], "NCSJ-CF-2024-000020");
    let pretty = detail["raw"]["payload_pretty"].as_str().expect("pretty");
    assert!(pretty.contains("\n  \"ajbh\": \"NCSJ-CF-2024-000020\""), "{pretty}");
    let (_, raw) = gw
        .get(&format!("/api/raw/{}", detail["entry"]["raw_id"]), OPERATOR)
        .await;
    assert_schema(&doc, "RawRecord", &raw);
    // Replay after the mapping learns 快速程序: one entry, then the rest by rule.
    let unknown: Vec<i64> = answer["results"].as_array().expect("results")[5..]
        .iter()
        .map(|r| r["quarantine_id"].as_i64().expect("id"))
        .collect();
    let (_, still) = gw
        .post(&format!("/api/quarantine/{}/replay", unknown[0]), OPERATOR, json!({}))
        .await;
    assert_eq!(still["summary"]["quarantined"], 1, "without the fix it stays: {still}");
    assert_eq!(still["entry"]["status"], "open");
    assert!(gw
        .runtime
        .preparers
        .replace_mapping(SOURCE, Arc::new(fixed_mapping(gw.dir.path()))));
    let (status, replayed) = gw
        .post(&format!("/api/quarantine/{}/replay", unknown[0]), OPERATOR, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{replayed}");
    assert_schema(&doc, "ReplayAnswer", &replayed);
    assert_eq!(replayed["summary"]["accepted"], 1, "{replayed}");
    assert_eq!(replayed["entry"]["status"], "replayed");
    let (status, again) = gw
        .post(&format!("/api/quarantine/{}/replay", unknown[0]), OPERATOR, json!({}))
        .await;
    assert_eq!(
        (status, again["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("not_open"))
    );
    let rule = still["entry"]["violations"][0]["rule"]
        .as_str()
        .expect("rule")
        .to_string();
    let (status, bulk) = gw
        .post("/api/quarantine/replay", OPERATOR, json!({ "rule": rule }))
        .await;
    assert_eq!(status, StatusCode::OK, "{bulk}");
    assert_eq!(bulk["summary"]["accepted"], 2, "{bulk}");
    let (status, _) = gw.post("/api/quarantine/replay", OPERATOR, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a bulk replay needs a filter");
    // Ignore: the reason is required; then the entry is ignored, and only once.
    let (status, e) = gw
        .post(&format!("/api/quarantine/{first}/ignore"), OPERATOR, json!({}))
        .await;
    assert_eq!(
        (status, e["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("reason_required"))
    );
    let (status, ignored) = gw
        .post(
            &format!("/api/quarantine/{first}/ignore"),
            OPERATOR,
            json!({ "reason": "部门已线下更正" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ignored}");
    assert_schema(&doc, "EntryAnswer", &ignored);
    assert_eq!(ignored["entry"]["status"], "ignored");
    assert_eq!(ignored["entry"]["note"], "部门已线下更正");
    let (status, _) = gw
        .post(
            &format!("/api/quarantine/{first}/ignore"),
            OPERATOR,
            json!({ "reason": "again" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = gw.get("/api/quarantine/999999", OPERATOR).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Audited with the token's name.
    let audit = gw.runtime.store.audit_log(100).await.expect("audit");
    for action in ["quarantine.replay", "quarantine.ignore"] {
        assert!(
            audit.iter().any(|a| a.action == action && a.actor == "ops-zhang"),
            "{action} audited: {audit:?}"
        );
    }
    gw.stop().await;
}
on_both_backends!(quarantine_pages_filters_shows_the_raw_payload_replays_after_a_fix_and_ignores_with_a_reason);

/// Quarantine v1, accept v2 of the same case (v1's entry becomes superseded), fix the mapping,
/// replay v1: v1 arrived before v2 and neither carries a source time, so it stays in the
/// quarantine (`replay.superseded`) and the case keeps v2.
async fn replaying_an_entry_older_than_the_case_cannot_regress_it(backend: Backend) {
    let gw = Gw::start(backend).await;
    let v1 = gw.push(&[unknown_procedure_record(400)]).await;
    let qid = v1["results"][0]["quarantine_id"].as_i64().expect("quarantined");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mut newer = nanchang_record(400, 2);
    newer["wfss"] = json!("第二版：已更正违法事实");
    let v2 = gw.push(&[newer]).await;
    assert_eq!(v2["results"][0]["result"], "accepted", "{v2}");
    let code = v2["results"][0]["code"].as_str().expect("code").to_string();
    // v2 has the same record key (ajbh): the entry of v1 is superseded, and says by what.
    let (_, view) = gw.get(&format!("/api/quarantine/{qid}"), OPERATOR).await;
    assert_eq!(view["entry"]["status"], "superseded", "{view}");
    assert!(
        view["entry"]["note"].as_str().is_some_and(|n| n.contains(&code)),
        "{view}"
    );
    assert!(gw
        .runtime
        .preparers
        .replace_mapping(SOURCE, Arc::new(fixed_mapping(gw.dir.path()))));
    let (status, replayed) = gw
        .post(&format!("/api/quarantine/{qid}/replay"), OPERATOR, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{replayed}");
    assert_eq!(replayed["summary"]["quarantined"], 1, "{replayed}");
    assert_eq!(replayed["entry"]["status"], "superseded");
    let violation = &replayed["entry"]["violations"][0];
    assert_eq!(violation["rule"], "replay.superseded", "{replayed}");
    assert!(
        violation["message_en"].as_str().is_some_and(|m| m.contains(&code)),
        "{violation}"
    );
    let (_, case) = gw.get(&format!("/api/cases/{code}"), OPERATOR).await;
    let versions = case["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 1, "the older record did not become the head: {case}");
    assert_eq!(
        versions[0]["record"]["penalty"]["illegal_facts"],
        "第二版：已更正违法事实"
    );
    gw.stop().await;
}
on_both_backends!(replaying_an_entry_older_than_the_case_cannot_regress_it);

/// With the source's update time mapped (`cd_time`), a push of an older version after a newer
/// one answers `stale`: the case keeps the newer version, the lineage lists the older one as
/// stale with no deliveries, and the source's totals count it.
async fn a_pushed_version_older_at_the_source_is_answered_stale_and_kept_in_the_lineage(backend: Backend) {
    let gw = Gw::start(backend).await;
    let doc = openapi();
    let version = |variant: u32, at: &str| {
        let mut r = nanchang_record(500, variant);
        r["cd_time"] = json!(at);
        r
    };
    let newer = gw.push(&[version(2, "2024-03-02 10:00:00")]).await;
    let code = newer["results"][0]["code"].as_str().expect("code").to_string();
    let older = gw.push(&[version(1, "2024-03-01 10:00:00")]).await;
    assert_schema(&doc, "PushAnswer", &older);
    assert_eq!(
        older["results"][0],
        json!({"record_key": "NCSJ-CF-2024-000500", "result": "stale", "code": code, "version": 1}),
        "{older}"
    );
    assert_eq!(older["summary"]["stale"], 1);
    let (_, case) = gw.get(&format!("/api/cases/{code}"), OPERATOR).await;
    assert_schema(&doc, "CaseView", &case);
    let versions = case["versions"].as_array().expect("versions");
    let rows: Vec<(&str, &str, usize)> = versions
        .iter()
        .map(|v| {
            (
                v["status"].as_str().unwrap_or_default(),
                v["record"]["source_updated_at"].as_str().unwrap_or_default(),
                v["deliveries"].as_array().map_or(0, Vec::len),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("active", "2024-03-02T10:00:00+08:00", 1),
            ("stale", "2024-03-01T10:00:00+08:00", 0)
        ],
        "{case}"
    );
    let (_, sources) = gw.get("/api/sources", OPERATOR).await;
    let totals = sources["items"]
        .as_array()
        .and_then(|items| items.iter().find(|s| s["id"] == SOURCE))
        .map(|s| s["totals"].clone())
        .expect("source on the board");
    assert_eq!(
        (totals["accepted"].as_u64(), totals["stale"].as_u64()),
        (Some(1), Some(1))
    );
    gw.stop().await;
}
on_both_backends!(a_pushed_version_older_at_the_source_is_answered_stale_and_kept_in_the_lineage);

async fn cases_are_found_by_code_business_key_and_target_with_versions_and_lineage(backend: Backend) {
    let gw = Gw::start(backend).await;
    let doc = openapi();
    let mut other_target = nanchang_record(42, 0);
    other_target["xdrzjhm"] = json!("11360100014523152U");
    other_target["xdrmc"] = json!("江西洪都商贸有限公司");
    let answer = gw
        .push(&[nanchang_record(40, 0), nanchang_record(41, 0), other_target])
        .await;
    assert_eq!(answer["summary"]["accepted"], 3, "{answer}");
    gw.push(&[nanchang_record(40, 7)]).await;
    let code = answer["results"][0]["code"].as_str().expect("code");
    // By code: both versions, each with raw record, mapping and deliveries.
    let (_, case) = gw.get(&format!("/api/cases/{}", code.to_lowercase()), OWNER).await;
    let versions = case["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 2, "{case}");
    for v in versions {
        assert_eq!(v["mapping_id"], "nanchang-amr-penalty");
        assert_eq!(v["deliveries"][0]["sink_id"], "platform");
        let (status, raw) = gw.get(&format!("/api/raw/{}", v["raw_id"]), OWNER).await;
        assert_eq!(status, StatusCode::OK);
        assert_schema(&doc, "RawRecord", &raw);
        assert_eq!(raw["payload"]["ajbh"], "NCSJ-CF-2024-000040");
        assert_eq!(raw["times_received"], 1, "{raw}");
    }
    // The same payload sent again is counted on its raw record.
    gw.push(&[nanchang_record(40, 7)]).await;
    let mut times = Vec::new();
    for v in versions {
        let (_, raw) = gw.get(&format!("/api/raw/{}", v["raw_id"]), OWNER).await;
        if raw["times_received"] == 2 {
            assert!(raw["last_received_at"].as_str() > raw["received_at"].as_str(), "{raw}");
        }
        times.push(raw["times_received"].as_i64());
    }
    times.sort();
    assert_eq!(times, [Some(1), Some(2)], "only the re-sent payload counts twice");
    // By business key.
    let path = format!(
        "/api/cases?agency_credit_code={}&case_type=penalty&case_number=NCSJ-CF-2024-000041",
        AGENCY_CODE
    );
    let (status, by_key) = gw.get(&path, OPERATOR).await;
    assert_eq!(status, StatusCode::OK, "{by_key}");
    assert_schema(&doc, "CaseList", &by_key);
    assert_eq!(by_key["items"][0]["case"]["unified_code"], answer["results"][1]["code"]);
    let (status, _) = gw.get("/api/cases?case_type=penalty", OPERATOR).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a business key needs its three parts");
    // By target, with paging.
    let (_, by_target) = gw
        .get("/api/cases?target_credit_code=91360102MA35G7K86A&limit=1", OPERATOR)
        .await;
    assert_eq!(by_target["items"].as_array().map(Vec::len), Some(1));
    let next = by_target["next_after_id"].as_i64().expect("a second page");
    let (_, page2) = gw
        .get(
            &format!("/api/cases?target_credit_code=91360102MA35G7K86A&limit=1&after_id={next}"),
            OPERATOR,
        )
        .await;
    assert_eq!(page2["items"][0]["case"]["key"]["case_number"], "NCSJ-CF-2024-000041");
    let (_, other) = gw.get("/api/cases?target_id_number=11360100014523152U", OPERATOR).await;
    assert_eq!(other["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(other["items"][0]["case"]["key"]["case_number"], "NCSJ-CF-2024-000042");
    // Every case, paged.
    let (_, all) = gw.get("/api/cases?limit=1000", OPERATOR).await;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(3));
    let (status, missing) = gw.get("/api/cases/CF20243601020000001Y", OPERATOR).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    gw.stop().await;
}
on_both_backends!(cases_are_found_by_code_business_key_and_target_with_versions_and_lineage);

async fn dead_deliveries_are_listed_and_redriven_one_or_by_sink(backend: Backend) {
    let gw = Gw::start(backend).await;
    let doc = openapi();
    gw.push(&[nanchang_record(50, 0), nanchang_record(51, 0), nanchang_record(52, 0)])
        .await;
    let outbox = &gw.runtime.outbox;
    let now = Utc::now();
    let lease = (now + chrono::Duration::seconds(60)).trunc_subsecs(3);
    let claimed = outbox.claim("platform", 10, now, lease).await.expect("claim");
    assert_eq!(claimed.len(), 3);
    let dead: Vec<Settlement> = claimed
        .iter()
        .map(|c| Settlement {
            id: c.delivery.outbox_id,
            status: DeliveryStatus::Dead,
            attempts: 1,
            next_attempt_at: None,
            last_error: Some("HTTP 400: refused".into()),
            delivered_at: None,
        })
        .collect();
    assert_eq!(outbox.settle(&dead, lease).await.expect("settle"), 3);
    let (status, list) = gw.get("/api/deliveries?status=dead&sink=platform", OPERATOR).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_schema(&doc, "DeliveryList", &list);
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["last_error"], "HTTP 400: refused");
    let id = items[0]["id"].as_i64().expect("id");
    let (status, one) = gw
        .post(&format!("/api/deliveries/{id}/redrive"), OPERATOR, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["redriven"], 1);
    let (status, again) = gw
        .post(&format!("/api/deliveries/{id}/redrive"), OPERATOR, json!({}))
        .await;
    assert_eq!(
        (status, again["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("not_dead"))
    );
    let (status, bulk) = gw
        .post("/api/deliveries/redrive", OPERATOR, json!({ "sink": "platform" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{bulk}");
    assert_eq!(bulk["redriven"], 2);
    let (_, after) = gw.get("/api/deliveries?status=pending&limit=2", OPERATOR).await;
    assert_eq!(after["items"].as_array().map(Vec::len), Some(2));
    assert!(after["next_before_id"].is_i64(), "a full page has a next page: {after}");
    let counts = after["counts"].as_array().expect("counts");
    assert!(
        counts.iter().any(|c| c["status"] == "pending" && c["count"] == 3),
        "{counts:?}"
    );
    let (status, _) = gw
        .post("/api/deliveries/redrive", OPERATOR, json!({ "sink": "nope" }))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = gw.post("/api/deliveries/999999/redrive", OPERATOR, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let audit = gw.runtime.store.audit_log(20).await.expect("audit");
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.action == "delivery.redrive" && a.actor == "ops-zhang")
            .count(),
        2
    );
    gw.stop().await;
}
on_both_backends!(dead_deliveries_are_listed_and_redriven_one_or_by_sink);

/// Settling checks the lease: an instance whose lease ran out (and whose batch another instance
/// claimed) records nothing; the instance holding the lease does.
async fn a_settlement_after_the_lease_ran_out_is_left_to_the_instance_that_took_over(backend: Backend) {
    let gw = Gw::start(backend).await;
    gw.push(&[nanchang_record(80, 0), nanchang_record(81, 0)]).await;
    let outbox = &gw.runtime.outbox;
    let now = Utc::now();
    // The first instance's lease has already run out when the second one claims.
    let first_lease = (now - chrono::Duration::seconds(1)).trunc_subsecs(3);
    let first = outbox.claim("platform", 10, now, first_lease).await.expect("claim");
    assert_eq!(first.len(), 2);
    let second_lease = (now + chrono::Duration::seconds(60)).trunc_subsecs(3);
    let second = outbox.claim("platform", 10, now, second_lease).await.expect("claim");
    assert_eq!(
        second.len(),
        2,
        "the expired lease lets another instance take the batch"
    );
    let settle = |claimed: &[gateway::store::Claimed], error: &str| -> Vec<Settlement> {
        claimed
            .iter()
            .map(|c| Settlement {
                id: c.delivery.outbox_id,
                status: DeliveryStatus::Dead,
                attempts: 1,
                next_attempt_at: None,
                last_error: Some(error.into()),
                delivered_at: None,
            })
            .collect()
    };
    let late = outbox
        .settle(&settle(&first, "late"), first_lease)
        .await
        .expect("settle");
    assert_eq!(late, 0, "the first instance's lease is gone: its outcomes do not count");
    let held = outbox
        .settle(&settle(&second, "held"), second_lease)
        .await
        .expect("settle");
    assert_eq!(held, 2);
    let (_, list) = gw.get("/api/deliveries?status=dead&sink=platform", OPERATOR).await;
    let errors: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| d["last_error"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(errors, ["held", "held"]);
    gw.stop().await;
}
on_both_backends!(a_settlement_after_the_lease_ran_out_is_left_to_the_instance_that_took_over);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_records_per_source_and_violations_per_rule_and_show_the_outbox_depth() {
    let gw = Gw::start(Backend::Sqlite).await;
    gw.push(&[nanchang_record(60, 0), defective_record(61), nanchang_record(62, 0)])
        .await;
    let resp = gw
        .http
        .get(format!("{}/metrics", gw.base))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .expect("metrics");
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.expect("text");
    for line in [
        format!(r#"gateway_source_records_total{{source="{SOURCE}",outcome="received"}} 3"#),
        format!(r#"gateway_source_records_total{{source="{SOURCE}",outcome="accepted"}} 2"#),
        format!(r#"gateway_source_records_total{{source="{SOURCE}",outcome="quarantined"}} 1"#),
        format!(r#"gateway_rule_violations_total{{source="{SOURCE}",rule="uscc.check_char",severity="error"}} 1"#),
        format!(r#"gateway_batch_commit_seconds_count{{source="{SOURCE}"}} 1"#),
        r#"gateway_outbox_deliveries{sink="platform",status="pending"} 2"#.to_string(),
    ] {
        assert!(text.contains(&line), "metrics lack {line}:\n{text}");
    }
    assert!(text.contains("gateway_http_requests_total"), "{text}");
    let (status, _) = gw.call("GET", "/metrics", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = gw.get("/metrics", DEPT).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    gw.stop().await;
    let open = Gw::start_with(
        Backend::Sqlite,
        Options {
            metrics_public: true,
            ..Options::default()
        },
    )
    .await;
    let (status, _) = open.call("GET", "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK, "metrics_public opens /metrics");
    open.stop().await;
}

/// Files, a drop folder, an HTTP push and a replay all commit through the one committer: each
/// source's totals on the board and in the metrics have the same fields and agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_in_reports_the_same_summary_on_the_board_and_in_the_metrics() {
    use gateway::commit::Batching;
    use gateway::intake::directory::scan_directory;
    use gateway::intake::files::{ingest_files, IngestJob};
    use gateway::intake::replay::{replay, ReplaySelection};
    use gateway::prepare::InputFormat;
    use gateway::telemetry::Summary;
    let gw = Gw::start(Backend::Sqlite).await;
    let rt = &gw.runtime;
    let batching = Batching::from(&rt.resolved.config);
    let lines = |records: &[Value]| records.iter().map(|r| format!("{r}\n")).collect::<String>();

    // HTTP push: two accepted, one quarantined.
    gw.push(&[nanchang_record(70, 0), defective_record(71), nanchang_record(72, 0)])
        .await;
    let push = support::board_totals_agreeing_with_metrics(rt, SOURCE);
    assert_eq!(
        push,
        Summary {
            received: 3,
            accepted: 2,
            quarantined: 1,
            ..Summary::default()
        }
    );

    // Files (`gateway ingest`): one new, one re-sent (unchanged), one update, one defective.
    let file = gw.dir.path().join("backfill.jsonl");
    std::fs::write(
        &file,
        lines(&[
            nanchang_record(80, 0),
            nanchang_record(80, 0),
            nanchang_record(80, 1),
            defective_record(81),
        ]),
    )
    .expect("write file");
    let job = IngestJob {
        preparer: rt.preparers.get("backfill").expect("preparer"),
        files: vec![file],
        format: InputFormat::JsonLines,
        xml_records: None,
    };
    let summary = ingest_files(&rt.committer("files"), job, &batching, Shutdown::default(), None)
        .await
        .expect("ingest");
    let files = support::board_totals_agreeing_with_metrics(rt, "backfill");
    assert_eq!(files, summary, "the run's summary is what the board counted");
    assert_eq!(
        files,
        Summary {
            received: 4,
            accepted: 1,
            updated: 1,
            unchanged: 1,
            stale: 0,
            quarantined: 1
        }
    );

    // Drop folder (`gateway run`): the file is committed, then moved to processed/.
    let inbox = gw.dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    std::fs::write(
        inbox.join("a.jsonl"),
        lines(&[nanchang_record(90, 0), defective_record(91)]),
    )
    .expect("drop");
    let source = rt.resolved.config.source("drop").expect("drop source").1.clone();
    scan_directory(
        &rt.committer("directory"),
        &source,
        &rt.resolved.config.base_dir,
        &rt.preparers.get("drop").expect("preparer"),
        &batching,
        &Shutdown::default(),
        std::time::Duration::ZERO,
    )
    .await
    .expect("scan");
    assert!(
        inbox.join("processed/a.jsonl").exists(),
        "the file is moved after its commit"
    );
    assert_eq!(
        support::board_totals_agreeing_with_metrics(rt, "drop"),
        Summary {
            received: 2,
            accepted: 1,
            quarantined: 1,
            ..Summary::default()
        }
    );

    // Replay of the push source's quarantined record (still failing): counted on its source.
    let replayed = replay(
        &rt.committer("replay"),
        &rt.preparers.snapshot(),
        &ReplaySelection {
            source_id: Some(SOURCE.to_string()),
            ..Default::default()
        },
    )
    .await
    .expect("replay");
    assert_eq!(replayed.received, 1);
    let after = support::board_totals_agreeing_with_metrics(rt, SOURCE);
    assert_eq!(after.received, push.received + replayed.received);
    assert_eq!(
        after.quarantined + after.unchanged,
        push.quarantined + replayed.quarantined + replayed.unchanged
    );
    gw.stop().await;
}

/// The upload body of the fixed Nanchang mapping (procedures know 快速程序) as `version`.
fn fixed_upload(dir: &Path, version: i64) -> Value {
    let fixed = fixed_mapping(dir);
    let bundle = gateway::store::MappingBundle::from_mapping(&fixed);
    let text = bundle
        .mapping_toml
        .replacen("version = 1", &format!("version = {version}"), 1);
    json!({ "mapping": text, "tables": bundle.code_tables })
}

async fn mapping_routes_upload_dry_run_activate_and_roll_back_audited_with_the_token_name(backend: Backend) {
    let gw = Gw::start(backend).await;
    let doc = openapi();
    let answer = gw.push(&[nanchang_record(1, 0), unknown_procedure_record(2)]).await;
    assert_eq!(answer["summary"]["quarantined"], 1, "{answer}");
    let qid = answer["results"][1]["quarantine_id"].as_i64().expect("quarantine id");
    // Every source with its active version (the configuration's mapping, imported as v1).
    let (status, list) = gw.get("/api/mappings", OWNER).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_schema(&doc, "MappingSourceList", &list);
    let mine = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|m| m["source_id"] == SOURCE)
        .expect("the push source is listed");
    assert_eq!(mine["active_version"], 1);
    assert_eq!(mine["mapping_id"], "nanchang-amr-penalty");
    // A mapping that does not parse: 422 naming the line; one whose tests fail: 422 with them.
    let base = format!("/api/mappings/{SOURCE}");
    let (status, refused) = gw
        .post(
            &format!("{base}/versions"),
            OWNER,
            json!({"mapping": "id = \"nanchang-amr-penalty\"\nversion = [", "tables": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["code"], "invalid_mapping");
    assert_eq!(refused["error"]["details"]["line"], 2, "{refused}");
    assert_schema(&doc, "Error", &refused);
    let mut failing = fixed_upload(gw.dir.path(), 2);
    let csv = failing["tables"]["procedures.csv"]
        .as_str()
        .expect("csv")
        .replace("普通程序,ordinary", "普通程序,simple");
    failing["tables"]["procedures.csv"] = json!(csv);
    let (status, refused) = gw.post(&format!("{base}/versions"), OWNER, failing).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["code"], "tests_failed", "{refused}");
    assert!(refused["error"]["details"]["failures"]
        .as_array()
        .is_some_and(|f| !f.is_empty()));
    // The fix uploads as a candidate.
    let (status, uploaded) = gw
        .post(&format!("{base}/versions"), OWNER, fixed_upload(gw.dir.path(), 2))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{uploaded}");
    assert_schema(&doc, "MappingUploadReport", &uploaded);
    assert_eq!(
        (uploaded["version"].clone(), uploaded["status"].clone()),
        (json!(2), json!("candidate"))
    );
    assert_eq!(uploaded["uploaded_by"], "standards-wang");
    let (status, v2) = gw.get(&format!("{base}/versions/2"), OWNER).await;
    assert_eq!(status, StatusCode::OK);
    assert_schema(&doc, "MappingVersion", &v2);
    assert!(v2["code_tables"]["procedures.csv"]
        .as_str()
        .expect("csv")
        .contains("快速程序"));
    assert!(v2["mapping_toml"].as_str().expect("text").contains("version = 2"));
    let (status, _) = gw.get(&format!("{base}/versions/9"), OWNER).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = gw.get("/api/mappings/nope/versions", OWNER).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The dry run: the quarantined record would be accepted, the other is unchanged.
    let (status, report) = gw
        .post(&format!("{base}/versions/2/dry-run?last=50"), OWNER, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_schema(&doc, "DryRunReport", &report);
    assert_eq!(report["total"], 2, "{report}");
    assert_eq!(report["newly_accepted"], 1, "{report}");
    assert_eq!(report["unchanged"], 1, "{report}");
    let (status, _) = gw
        .post(&format!("{base}/versions/2/dry-run?last=0"), OWNER, json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Activate: the replay now accepts the record.
    let (status, activated) = gw.post(&format!("{base}/versions/2/activate"), OWNER, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{activated}");
    assert_schema(&doc, "ActivationReport", &activated);
    assert_eq!(activated["previous_version"], 1);
    assert!(activated["diff"]
        .as_array()
        .expect("diff")
        .iter()
        .any(|l| l.as_str().is_some_and(|l| l.contains("快速程序"))));
    let (status, again) = gw.post(&format!("{base}/versions/2/activate"), OWNER, json!({})).await;
    assert_eq!(
        (status, again["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("already_active"))
    );
    let (_, replayed) = gw
        .post(&format!("/api/quarantine/{qid}/replay"), OPERATOR, json!({}))
        .await;
    assert_eq!(replayed["entry"]["status"], "replayed", "{replayed}");
    // Roll back to v1; a rollback forward is refused.
    let (status, back) = gw.post(&format!("{base}/rollback"), ADMIN, json!({"to": 1})).await;
    assert_eq!(status, StatusCode::OK, "{back}");
    assert_eq!(
        (back["version"].clone(), back["kind"].clone()),
        (json!(1), json!("rollback"))
    );
    let (status, forward) = gw.post(&format!("{base}/rollback"), ADMIN, json!({"to": 2})).await;
    assert_eq!(
        (status, forward["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("not_earlier"))
    );
    let (status, _) = gw.post(&format!("{base}/rollback"), ADMIN, json!({"too": 2})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // History: versions newest first, the audit names the token holders.
    let (status, history) = gw.get(&format!("{base}/versions"), OWNER).await;
    assert_eq!(status, StatusCode::OK);
    assert_schema(&doc, "MappingHistory", &history);
    assert_eq!(history["active_version"], 1);
    assert_eq!(history["versions"][0]["version"], 2);
    assert_eq!(history["versions"][0]["status"], "retired");
    let actions: Vec<(String, String)> = history["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .map(|a| {
            (
                a["actor"].as_str().unwrap_or("").to_string(),
                a["action"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for expected in [
        ("standards-wang", "mapping.upload_refused"),
        ("standards-wang", "mapping.upload"),
        ("standards-wang", "mapping.dry_run"),
        ("standards-wang", "mapping.activate"),
        ("standards-wang", "mapping.activate_refused"),
        ("admin-li", "mapping.rollback"),
        ("admin-li", "mapping.rollback_refused"),
    ] {
        assert!(
            actions
                .iter()
                .any(|(actor, action)| (actor.as_str(), action.as_str()) == expected),
            "audit holds {expected:?}: {actions:?}"
        );
    }
    gw.stop().await;
}

on_both_backends!(mapping_routes_upload_dry_run_activate_and_roll_back_audited_with_the_token_name);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_over_its_rate_gets_429_with_retry_after_and_other_tokens_are_unaffected() {
    let gw = Gw::start_with(
        Backend::Sqlite,
        Options {
            rate: 1,
            burst: 2,
            ..Options::default()
        },
    )
    .await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..4 {
        let resp = gw
            .http
            .get(format!("{}/api/me", gw.base))
            .bearer_auth(OPERATOR)
            .send()
            .await
            .expect("request");
        statuses.push(resp.status());
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = resp.headers().get("retry-after").cloned();
        }
    }
    assert_eq!(&statuses[..2], &[StatusCode::OK, StatusCode::OK]);
    assert!(statuses[2..].contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    assert!(retry_after.is_some(), "429 says when to retry");
    let (status, me) = gw.get("/api/me", OWNER).await;
    assert_eq!(status, StatusCode::OK, "the limit is per token");
    assert_eq!(me["name"], "standards-wang");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_name_the_token_holder_and_never_hold_a_token() {
    let gw = Gw::start(Backend::Sqlite).await;
    for token in ALL_TOKENS {
        let _ = gw.get("/api/sources", token).await;
    }
    gw.push(&[nanchang_record(70, 0)]).await;
    gw.stop().await;
    let text = log_text();
    assert!(text.contains("token=ops-zhang"), "request spans carry the token's name");
    assert!(text.contains("route=/api/sources"), "request spans carry the route");
    assert!(text.contains("token=amr-push"));
    for token in ALL_TOKENS {
        assert!(!text.contains(token), "a token appears in the logs");
        assert!(!text.contains(&sha(token)), "a token's hash appears in the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_every_route_and_every_documented_operation_answers() {
    let doc = openapi();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let routed: BTreeSet<(String, String)> = server::route_table()
        .into_iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, routed, "openapi.yaml and the router differ");
    // Every documented operation answers (with an admin token and things that exist).
    let gw = Gw::start(Backend::Sqlite).await;
    let ids = seed(&gw).await;
    for (method, path) in &documented {
        let url = concrete(path, &ids_for(path, &ids));
        let (status, answer) = gw.call(method, &url, Some(ADMIN), body_for(path)).await;
        assert!(
            status != StatusCode::METHOD_NOT_ALLOWED && answer["error"]["code"] != "route_not_found",
            "{method} {path}: {status} {answer}"
        );
        let documented_statuses = doc["paths"][path][method.to_lowercase()]["responses"]
            .as_object()
            .expect("responses");
        assert!(
            documented_statuses.contains_key(status.as_str()),
            "{method} {path} answered {status}, which is not documented"
        );
        if !status.is_success() {
            assert_schema(&doc, "Error", &answer);
        }
    }
    // The main answers match their schemas.
    for (path, schema) in [
        ("/api/sources", "SourceList"),
        (&format!("/api/sources/{SOURCE}") as &str, "Source"),
        ("/api/quarantine", "QuarantineList"),
        ("/api/cases", "CaseList"),
        ("/api/deliveries", "DeliveryList"),
        ("/api/me", "Me"),
        ("/healthz", "Health"),
        ("/readyz", "Readiness"),
    ] {
        let (status, answer) = gw.get(path, ADMIN).await;
        assert_eq!(status, StatusCode::OK, "{path}: {answer}");
        assert_schema(&doc, schema, &answer);
    }
    let (_, unknown) = gw.get("/api/nothing", ADMIN).await;
    assert_eq!(unknown["error"]["code"], "route_not_found");
    let (status, _) = gw.call("DELETE", "/api/sources", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, served) = gw.call("GET", "/openapi.yaml", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(served.as_str().expect("text").starts_with("openapi: 3.1.0"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_checks_the_store_and_every_amqp_broker() {
    let up = Gw::start_with(
        Backend::Sqlite,
        Options {
            sinks: "[[sinks]]\nid = \"mq\"\nkind = \"amqp\"\nurl = \"amqp://guest:guest@127.0.0.1:5672/%2f\"\n".into(),
            ..Options::default()
        },
    )
    .await;
    let (status, ready) = up.call("GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["checks"]["store"]["ok"], true);
    assert_eq!(ready["checks"]["amqp:sink:mq"]["ok"], true);
    up.stop().await;
    let down = Gw::start_with(
        Backend::Sqlite,
        Options {
            sinks: "[[sinks]]\nid = \"mq\"\nkind = \"amqp\"\nurl = \"amqp://guest:secret-pw@127.0.0.1:9/%2f\"\n".into(),
            ..Options::default()
        },
    )
    .await;
    let (status, ready) = down.call("GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["ready"], false);
    assert_eq!(ready["checks"]["amqp:sink:mq"]["ok"], false);
    assert!(!ready.to_string().contains("secret-pw"), "the broker URL is not shown");
    let (status, _) = down.call("GET", "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK, "alive even when not ready");
    down.stop().await;
}

#[test]
fn token_new_prints_a_token_and_the_config_block_with_its_hash() {
    let out = support::gateway()
        .args([
            "token",
            "new",
            "--name",
            "amr-push",
            "--role",
            "department",
            "--source",
            SOURCE,
        ])
        .output()
        .expect("run gateway token new");
    support::assert_success(&out, "token new");
    let text = String::from_utf8_lossy(&out.stdout);
    let token = text
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .find(|l| l.starts_with("gwt_"))
        .expect("the token line");
    assert!(text.contains(&format!("sha256 = \"{}\"", sha(token))), "{text}");
    assert!(text.contains("role = \"department\""));
    assert!(text.contains(&format!("sources = [\"{SOURCE}\"]")));
    let bad = support::gateway()
        .args(["token", "new", "--role", "root"])
        .output()
        .expect("run");
    assert!(!bad.status.success());
}

#[test]
fn config_check_names_every_wrong_token_setting() {
    let dir = tempfile::tempdir().expect("dir");
    let mapping = repo().join("mappings/nanchang-amr-penalty/mapping.toml");
    let text = format!(
        r#"[server]
rate_limit_per_second = 0
[[server.tokens]]
name = "a"
role = "root"
sha256 = "abc"
[[server.tokens]]
name = "a"
role = "department"
token_env = "GW_SURELY_UNSET_TOKEN_VAR"
[[server.tokens]]
name = "ops"
role = "operator"
sources = ["p"]
sha256 = "{}"
[[sources]]
id = "p"
kind = "push"
mapping = "{}"
[sources.push]
max_body_bytes = 10
max_records = 5
"#,
        sha("x"),
        mapping.display()
    );
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, text).expect("write");
    let out = support::gateway()
        .args(["config", "check", support::path_str(&path)])
        .output()
        .expect("run");
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    for needle in [
        "server.rate_limit_per_second",
        "server.tokens[0] (name \"a\").role",
        "sha256 must be 64 hex digits",
        "server.tokens[1] (name \"a\").name",
        "server.tokens[1] (name \"a\").sources",
        "GW_SURELY_UNSET_TOKEN_VAR",
        "server.tokens[2] (name \"ops\").sources",
        "sources[0] (id \"p\").push",
        "max_records",
    ] {
        assert!(report.contains(needle), "report lacks {needle:?}:\n{report}");
    }
}

/// `gateway run` (the real binary) serves the API for a push source and stops cleanly on SIGTERM.
async fn gateway_run_serves_push_and_stops_on_sigterm(backend: Backend) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mapping = repo().join("mappings/nanchang-amr-penalty/mapping.toml");
    let sources = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[[server.tokens]]\nname = \"amr-push\"\nrole = \"department\"\nsources = [\"{SOURCE}\"]\nsha256 = \"{}\"\n\n[[sources]]\nid = \"{SOURCE}\"\nkind = \"push\"\nmapping = \"{}\"\nformat = \"json\"\nrecord_key = \"ajbh\"\n",
        sha(DEPT),
        mapping.display()
    );
    let env = support::Env::with_sources(backend, &sources).await;
    let mut child = env
        .cmd(&["run", "--config", support::path_str(&env.config)])
        .spawn()
        .expect("gateway run");
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(started.elapsed().as_secs() < 60, "gateway run did not start serving");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let resp = http
        .post(format!("{base}/api/ingest/{SOURCE}"))
        .bearer_auth(DEPT)
        .header("Content-Type", "application/json")
        .body(json!([nanchang_record(80, 0)]).to_string())
        .send()
        .await
        .expect("push");
    assert_eq!(resp.status(), StatusCode::OK);
    let answer: Value = resp.json_body().await;
    assert_eq!(answer["results"][0]["result"], "accepted", "{answer}");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "gateway run ends cleanly on SIGTERM: {status:?}");
    let cases = env.export("cases");
    assert_eq!(cases.len(), 1, "the pushed record was committed");
}
on_both_backends!(gateway_run_serves_push_and_stops_on_sigterm);

/// `reqwest` without its `json` feature: read a body as JSON.
trait JsonBody {
    async fn json_body(self) -> Value;
}

impl JsonBody for reqwest::Response {
    async fn json_body(self) -> Value {
        let text = self.text().await.expect("body");
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }
}
