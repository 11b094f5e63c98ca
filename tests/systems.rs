//! One `[[sources]]` block per legacy system with several endpoints, end to end: a gateway
//! (real store, real REST adapter, its own schedulers) pulls the endpoints of one system from a
//! peer on 127.0.0.1 that counts requests across all of them; each endpoint is mapped by its
//! own mapping and keeps its own watermark and health in `/api/sources`, the system's rate
//! limit holds for the whole system; `gateway config check` proposes the one block for
//! separate blocks that differ only in path and mapping; the examples of `docs/systems.md`
//! load as they are written.

mod support;

use axum::extract::Query;
use axum::routing::get;
use axum::{Json, Router};
use gateway::config::Config;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::gw::{Gw, Options, OPERATOR};
use support::{gateway, nanchang_record, repo, Backend};

/// Request instants the peer saw, across all endpoints.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(Instant, String)>>>);

impl Seen {
    fn note(&self, what: &str) {
        self.0.lock().unwrap().push((Instant::now(), what.to_string()));
    }

    /// The most requests in any one-second window starting at a request.
    fn max_per_second(&self) -> usize {
        let times: Vec<Instant> = self.0.lock().unwrap().iter().map(|(t, _)| *t).collect();
        times
            .iter()
            .map(|s| {
                times
                    .iter()
                    .filter(|t| **t >= *s && t.duration_since(*s) < Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    fn count(&self, what: &str) -> usize {
        self.0.lock().unwrap().iter().filter(|(_, w)| w == what).count()
    }
}

fn page(rows: &[Value], q: &HashMap<String, String>) -> Value {
    let page: usize = q.get("pageNo").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let size: usize = q.get("pageSize").and_then(|v| v.parse().ok()).unwrap_or(10).max(1);
    let list: Vec<&Value> = rows.iter().skip((page - 1) * size).take(size).collect();
    json!({"code": "0", "data": {"rows": list}})
}

/// The Nanchang AMR system: 行政处罚 (penalties, 12 records) and 行政检查 (inspections, the
/// Jiujiang samples' shape, 4 records), each with its own last-change field.
async fn system_peer(seen: Seen) -> String {
    let penalties: Vec<Value> = (1..=12)
        .map(|n| {
            let mut r = nanchang_record(n, 0);
            r["gxsj"] = json!(format!("2024-03-01 10:{n:02}:00"));
            r
        })
        .collect();
    let text = std::fs::read_to_string(repo().join("mappings/jiujiang-amr-inspections/samples/records.jsonl")).unwrap();
    let inspections: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (s1, s2) = (seen.clone(), seen);
    let router = Router::new()
        .route(
            "/api/v1/penalties",
            get(move |Query(q): Query<HashMap<String, String>>| {
                let (s, rows) = (s1.clone(), penalties.clone());
                async move {
                    s.note("penalties");
                    Json(page(&rows, &q))
                }
            }),
        )
        .route(
            "/api/v1/inspections",
            get(move |Query(q): Query<HashMap<String, String>>| {
                let (s, rows) = (s2.clone(), inspections.clone());
                async move {
                    s.note("inspections");
                    Json(page(&rows, &q))
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

fn system_block(peer: &str) -> String {
    let inspections = repo().join("mappings/jiujiang-amr-inspections/mapping.toml");
    let penalties = repo().join("mappings/nanchang-amr-penalty/mapping.toml");
    format!(
        r#"
[[sources]]
id = "nanchang-amr"
kind = "rest"
poll_seconds = 3600
[sources.rest]
base_url = "{peer}/api/v1"
rate_limit_per_second = 4
pagination = "page"
page_param = "pageNo"
page_size_param = "pageSize"
records_path = "data.rows"
status_path = "code"
since_param = "since"
max_attempts = 2
retry_initial_ms = 10
retry_max_ms = 50

[[sources.endpoints]]
id = "penalty"
path = "/penalties"
mapping = "{}"
record_key = "ajbh"
page_size = 5
watermark_path = "gxsj"

[[sources.endpoints]]
id = "inspection"
path = "/inspections"
mapping = "{}"
record_key = "jcbh"
page_size = 1
watermark_path = "xgsj"
"#,
        penalties.display(),
        inspections.display()
    )
}

async fn wait_for(gw: &Gw, mut done: impl FnMut(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, sources) = gw.get("/api/sources", OPERATOR).await;
        if done(&sources) {
            return sources;
        }
        assert!(Instant::now() < deadline, "the endpoints were not pulled: {sources}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn source<'a>(sources: &'a Value, id: &str) -> &'a Value {
    sources["items"]
        .as_array()
        .and_then(|items| items.iter().find(|s| s["id"] == id))
        .unwrap_or_else(|| panic!("{id} on the board: {sources}"))
}

async fn a_system_block_pulls_each_endpoint_with_its_own_mapping_and_cursor_under_one_rate_limit(backend: Backend) {
    let seen = Seen::default();
    let peer = system_peer(seen.clone()).await;
    let gw = Gw::start_with(
        backend,
        Options {
            extra: system_block(&peer),
            ..Options::default()
        },
    )
    .await;
    let _tasks = gateway::intake::tasks::start_source_tasks(&gw.runtime, &gw.shutdown).expect("tasks start");
    let sources = wait_for(&gw, |s| {
        ["nanchang-amr.penalty", "nanchang-amr.inspection"].iter().all(|id| {
            s["items"]
                .as_array()
                .and_then(|items| items.iter().find(|x| x["id"] == *id))
                .is_some_and(|x| !x["stored_cursor"].is_null() && x["pulling"] == false)
        })
    })
    .await;
    let penalty = source(&sources, "nanchang-amr.penalty");
    let inspection = source(&sources, "nanchang-amr.inspection");
    // Each endpoint: the system named, its own mapping, its own records, its own cursor.
    assert_eq!(penalty["system"], "nanchang-amr");
    assert_eq!(inspection["system"], "nanchang-amr");
    assert_ne!(penalty["mapping_id"], inspection["mapping_id"]);
    assert_eq!(penalty["totals"]["received"], 12, "{penalty}");
    assert_eq!(penalty["totals"]["accepted"], 12, "{penalty}");
    assert_eq!(inspection["totals"]["received"], 4, "{inspection}");
    assert_eq!(penalty["stored_cursor"], "2024-03-01T02:12:00.000Z");
    // The newest 行政检查 record changed 2021-02-20 15:00:00 China time.
    assert_eq!(inspection["stored_cursor"], "2021-02-20T07:00:00.000Z", "{inspection}");
    // Each endpoint's own connection counters: 3 pages of 5 (12 records), 5 pages of 1.
    assert_eq!(penalty["health"]["requests"], 3, "{penalty}");
    assert_eq!(inspection["health"]["requests"], 5, "{inspection}");
    assert_eq!((seen.count("penalties"), seen.count("inspections")), (3, 5));
    // One rate limit of 4 per second for the system: never (much) more in any second, where
    // two limits of their own would let 8 through.
    let most = seen.max_per_second();
    assert!(most <= 5, "{most} requests in one second across the endpoints");
    // The penalties were mapped by the penalty mapping: cases with their agency.
    let (_, cases) = gw.get("/api/cases?source=nanchang-amr.penalty", OPERATOR).await;
    assert!(cases.to_string().contains("NCSJ-CF-2024-000001"), "{cases}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_block_pulls_each_endpoint_with_its_own_mapping_and_cursor_under_one_rate_limit_sqlite() {
    a_system_block_pulls_each_endpoint_with_its_own_mapping_and_cursor_under_one_rate_limit(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_block_pulls_each_endpoint_with_its_own_mapping_and_cursor_under_one_rate_limit_postgres() {
    a_system_block_pulls_each_endpoint_with_its_own_mapping_and_cursor_under_one_rate_limit(Backend::Postgres).await;
}

/// Two blocks of one system, written the old way.
const SEPARATE_BLOCKS: &str = r#"
[[sources]]
id = "nanchang-amr-penalty"
kind = "rest"
mapping = "mappings/nanchang-amr-penalty/mapping.toml"
record_key = "ajbh"
agency_regions = ["3601"]
[sources.rest]
url = "https://amr.nc.example/api/v1/penalties"
rate_limit_per_second = 5
records_path = "data.rows"
auth = { kind = "bearer", token_env = "NC_AMR_TOKEN" }

[[sources]]
id = "nanchang-amr-inspection"
kind = "rest"
mapping = "mappings/jiujiang-amr-inspections/mapping.toml"
record_key = "jcbh"
agency_regions = ["3601"]
[sources.rest]
url = "https://amr.nc.example/api/v1/inspections"
rate_limit_per_second = 5
records_path = "data.rows"
auth = { kind = "bearer", token_env = "NC_AMR_TOKEN" }
"#;

#[test]
fn config_check_proposes_one_system_block_for_blocks_differing_only_in_path_and_mapping() {
    let dir = tempfile::tempdir().unwrap();
    for m in ["nanchang-amr-penalty", "jiujiang-amr-inspections"] {
        support::copy_mapping(m, &dir.path().join("mappings"));
    }
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, SEPARATE_BLOCKS).unwrap();
    let out = gateway()
        .env("NC_AMR_TOKEN", "t")
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("differ only in path and mapping"), "{stdout}");
    // The proposed block, as printed, is a configuration that gives the same sources.
    let proposed = stdout
        .split_once("keeps its source_id, so cursors and history stay):\n")
        .map(|(_, rest)| rest)
        .expect("a proposed block");
    let proposed: String = proposed
        .lines()
        .take_while(|l| !l.starts_with("警告 / warning"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        proposed.contains("base_url = \"https://amr.nc.example/api/v1\""),
        "{proposed}"
    );
    std::fs::write(&file, &proposed).unwrap();
    let out = gateway()
        .env("NC_AMR_TOKEN", "t")
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    let again = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{again}\n{proposed}");
    assert!(again.contains("ok (2 source(s)"), "{again}");
    assert!(!again.contains("differ only in path"), "{again}");
    let before = Config::parse(SEPARATE_BLOCKS, "a.toml", dir.path()).unwrap();
    let after = Config::parse(&proposed, "b.toml", dir.path()).unwrap();
    for (b, a) in before.sources.iter().zip(&after.sources) {
        assert_eq!((&b.id, &b.mapping, &b.rest), (&a.id, &a.mapping, &a.rest));
        assert_eq!(a.system_id(), Some("nanchang-amr"));
    }
}

#[test]
fn config_check_names_the_endpoint_of_a_mistake_in_chinese_and_english() {
    let dir = tempfile::tempdir().unwrap();
    support::copy_mapping("nanchang-amr-penalty", &dir.path().join("mappings"));
    let file = dir.path().join("gateway.toml");
    std::fs::write(
        &file,
        r#"
[[sources]]
id = "nanchang-amr"
kind = "rest"
[sources.rest]
base_url = "https://amr.nc.example/api/v1"
[[sources.endpoints]]
id = "penalty"
path = "/penalties"
mapping = "mappings/nanchang-amr-penalty/mapping.toml"
timeout_seconds = 5
pagination = "pages"
"#,
    )
    .unwrap();
    let out = gateway().args(["config", "check"]).arg(&file).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("sources[0].endpoints[0].timeout_seconds: 连接设置由系统的所有端点共享"),
        "{stdout}"
    );
    assert!(stdout.contains("sources[0].endpoints[0].pagination: "), "{stdout}");
}

/// The fenced ```toml blocks of a file under `docs/`.
fn toml_blocks(doc: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("docs").join(doc)).unwrap();
    text.split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap().to_string())
        .collect()
}

#[test]
fn the_examples_of_docs_systems_load_as_written() {
    std::env::set_var("NC_AMR_APP_SECRET", "s");
    std::env::set_var("NC_AMR_TOKEN", "t");
    let blocks = toml_blocks("systems.md");
    assert!(blocks.len() >= 2, "the doc has its examples");
    for block in blocks {
        // Mapping paths in the examples are relative to the repository root.
        let config = Config::parse(&block, "docs/systems.md", &repo())
            .and_then(|c| c.resolve("docs/systems.md"))
            .unwrap_or_else(|e| panic!("{e}\n{block}"));
        assert!(!config.config.sources.is_empty());
    }
}

/// The problem lines of the first ```text block after `heading` in a file under `docs/`.
fn doc_problem_lines(doc: &str, heading: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("docs").join(doc)).unwrap();
    let section = &text[text.find(heading).expect("the section exists")..];
    let block = section.split("```text\n").nth(1).unwrap().split("```").next().unwrap();
    block
        .lines()
        .filter(|l| l.starts_with("  "))
        .map(|l| l.trim().to_string())
        .collect()
}

/// What `gateway config check` prints for `config` (mappings of the repository copied next to it).
fn config_check_output(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    for m in ["nanchang-amr-penalty", "jiujiang-amr-inspections"] {
        support::copy_mapping(m, &dir.path().join("mappings"));
    }
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, config).unwrap();
    let out = gateway()
        .env("NC_AMR_APP_SECRET", "s")
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn the_error_examples_of_the_docs_are_what_config_check_prints() {
    let (code, stdout) = config_check_output(
        r#"
[[sources]]
id = "nanchang-amr"
kind = "rest"
[sources.rest]
base_url = "https://zfxt.nc.example.gov.cn/api/v1"
[[sources.endpoints]]
id = "penalty"
path = "/penalties"
mapping = "mappings/nanchang-amr-penalty/mapping.toml"
timeout_seconds = 5
pagination = "pages"
"#,
    );
    assert_eq!(code, Some(1));
    let expected = doc_problem_lines("systems.md", "## Errors");
    assert_eq!(expected.len(), 2);
    for line in expected {
        assert!(
            stdout.contains(&line),
            "docs/systems.md shows {line:?}; config check printed:\n{stdout}"
        );
    }
    let (code, stdout) = config_check_output(
        r#"
[[sources]]
id = "nanchang-amr-penalty"
kind = "rest"
mapping = "mappings/nanchang-amr-penalty/mapping.toml"
[sources.rest]
url = "https://zfxt.nc.example.gov.cn/api/v1/penalties"
auth = { kind = "hmac", app_key = "nc-gateway", app_secret_env = "NC_AMR_APP_SECRET", algorithm = "md5", encode_values = true }
"#,
    );
    assert_eq!(code, Some(1));
    let expected = doc_problem_lines("signing.md", "## Checking a configuration");
    assert_eq!(expected.len(), 2);
    for line in expected {
        assert!(
            stdout.contains(&line),
            "docs/signing.md shows {line:?}; config check printed:\n{stdout}"
        );
    }
}
