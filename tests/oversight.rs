//! Reconciliation (对账), cases off the platform and alerts (告警), end to end: a real gateway
//! (SQLite or PostgreSQL store) with its API, a REST peer that says it holds more than it sent
//! (an axum server on 127.0.0.1:0), and a webhook receiver standing for DingTalk, WeCom and a
//! generic JSON endpoint. Also: the Prometheus rules and the Grafana dashboard in `deploy/` name
//! only metrics a running gateway serves.

mod support;

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode as AxumStatus;
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use gateway::oversight::alerts::{self, Scope};
use gateway::oversight::{webhooks, Oversight};
use gateway::store::oversight::{day_of, DayTally};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use support::gw::*;
use support::{defective_record, nanchang_record, repo, Backend, AGENCY_CODE};

/// What a test peer was sent: (path, query, body).
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(String, String, Value)>>>);

impl Seen {
    fn to(&self, path: &str) -> Vec<(String, Value)> {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, q, b)| (q.clone(), b.clone()))
            .collect()
    }
}

/// Start `router` on 127.0.0.1:0; answers its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    format!("http://{addr}")
}

/// A source's count interface: for any day, three records (keys 1, 2, 3), answered with a
/// business envelope as departmental systems do.
async fn count_peer() -> (String, Seen) {
    let seen = Seen::default();
    let router = Router::new()
        .route(
            "/count",
            get(|State(seen): State<Seen>, OriginalUri(uri): OriginalUri| async move {
                seen.0.lock().expect("lock").push((
                    "/count".into(),
                    uri.query().unwrap_or("").to_string(),
                    Value::Null,
                ));
                axum::Json(json!({
                    "code": "0",
                    "data": {
                        "total": 3,
                        "list": [
                            {"ajbh": "NCSJ-CF-2024-000001"},
                            {"ajbh": "NCSJ-CF-2024-000002"},
                            {"ajbh": "NCSJ-CF-2024-000003"}
                        ]
                    }
                }))
            }),
        )
        .with_state(seen.clone());
    (serve(router).await, seen)
}

/// A webhook receiver: `/generic`, `/ding`, `/wecom` (robots answer `errcode` 0) and `/flaky`,
/// which answers 503 to its first request.
async fn webhook_receiver() -> (String, Seen) {
    let seen = Seen::default();
    let flaky_failed = Arc::new(Mutex::new(false));
    let router = Router::new()
        .route(
            "/{hook}",
            post(
                move |State(seen): State<Seen>, OriginalUri(uri): OriginalUri, body: String| {
                    let flaky_failed = Arc::clone(&flaky_failed);
                    async move {
                        let path = uri.path().to_string();
                        let value: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
                        seen.0
                            .lock()
                            .expect("lock")
                            .push((path.clone(), uri.query().unwrap_or("").to_string(), value));
                        if path == "/flaky" {
                            let mut failed = flaky_failed.lock().expect("lock");
                            if !*failed {
                                *failed = true;
                                return (AxumStatus::SERVICE_UNAVAILABLE, "busy".to_string());
                            }
                        }
                        (AxumStatus::OK, json!({"errcode": 0, "errmsg": "ok"}).to_string())
                    }
                },
            ),
        )
        .with_state(seen.clone());
    (serve(router).await, seen)
}

fn metric_line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(prefix))
}

async fn a_source_holding_more_than_it_sent_shows_a_gap_naming_the_missing_keys(backend: Backend) {
    let (peer, asked) = count_peer().await;
    let gw = Gw::start_with(
        backend,
        Options {
            source_extra: format!(
                "[sources.reconcile]\nurl = \"{peer}/count?date={{day}}\"\ncount_path = \"data.total\"\n\
                 keys_path = \"data.list\"\nkey_field = \"ajbh\"\n"
            ),
            ..Options::default()
        },
    )
    .await;
    // Two of the source's three records arrive (one more, not on its list, is quarantined).
    gw.push(&[nanchang_record(1, 0), nanchang_record(2, 0), defective_record(4)])
        .await;
    let today = day_of(chrono::Utc::now());

    let (status, checked) = gw.call("POST", "/api/reconciliation/check", Some(OPERATOR), None).await;
    assert_eq!(status, StatusCode::OK, "{checked}");
    assert_eq!(checked["claims"][0]["claimed"], 3, "{checked}");
    assert_eq!(asked.to("/count")[0].0, format!("date={today}"));

    let (status, rec) = gw
        .get(&format!("/api/reconciliation?source={SOURCE}&day={today}"), ADMIN)
        .await;
    assert_eq!(status, StatusCode::OK, "{rec}");
    assert_schema(&openapi(), "Reconciliation", &rec);
    let day = &rec["items"][0];
    assert_eq!(day["claimed"], 3, "{rec}");
    assert_eq!(day["received"], 3);
    assert_eq!(day["accepted"], 2);
    assert_eq!(day["quarantined"], 1);
    assert_eq!(day["missing"], 1);
    assert_eq!(day["missing_keys"], json!(["NCSJ-CF-2024-000003"]));
    assert_eq!(day["status"], "gap");
    assert_eq!(day["gaps"], json!(["missing"]));
    assert_eq!(day["pending"], 2, "the two accepted versions wait for the sink");

    let (_, metrics) = gw.get("/metrics", ADMIN).await;
    let metrics = metrics.as_str().expect("text").to_string();
    assert_eq!(
        metric_line(&metrics, &format!("gateway_reconciliation_gap{{source=\"{SOURCE}\"}}")),
        Some(format!("gateway_reconciliation_gap{{source=\"{SOURCE}\"}} 1").as_str()),
        "{metrics}"
    );
    assert!(metrics.contains(&format!("gateway_reconciliation_claimed{{source=\"{SOURCE}\"}} 3")));

    // The gap is an alert naming the missing record.
    let o = Oversight::new(Arc::clone(&gw.runtime)).expect("oversight");
    alerts::evaluate(&o, Scope::Store).await.expect("evaluate");
    let (_, alerts) = gw.get("/api/alerts", ADMIN).await;
    let gap = alerts["firing"]
        .as_array()
        .expect("firing")
        .iter()
        .find(|a| a["rule"] == "reconciliation_gap")
        .unwrap_or_else(|| panic!("no reconciliation_gap alert: {alerts}"));
    assert_eq!(gap["subject"], SOURCE);
    assert!(
        gap["summary_zh"].as_str().unwrap_or("").contains("NCSJ-CF-2024-000003"),
        "{gap}"
    );

    // The third record arrives: the day reconciles and the alert resolves.
    gw.push(&[nanchang_record(3, 0)]).await;
    gw.call("POST", "/api/reconciliation/check", Some(OPERATOR), None).await;
    let (_, rec) = gw
        .get(&format!("/api/reconciliation?source={SOURCE}&day={today}"), ADMIN)
        .await;
    assert_eq!(rec["items"][0]["missing"], 0, "{rec}");
    assert_eq!(rec["items"][0]["status"], "ok", "{rec}");
    alerts::evaluate(&o, Scope::Store).await.expect("evaluate");
    let (_, alerts) = gw.get("/api/alerts", ADMIN).await;
    assert!(
        !alerts["firing"]
            .as_array()
            .expect("firing")
            .iter()
            .any(|a| a["rule"] == "reconciliation_gap"),
        "{alerts}"
    );
    gw.stop().await;
}
on_both_backends!(a_source_holding_more_than_it_sent_shows_a_gap_naming_the_missing_keys);

fn alert_options(hooks: &str) -> Options {
    Options {
        extra: format!(
            r#"
[alerts]
repeat_minutes = 0
source_failing_minutes = 0
source_stalled_minutes = 0
quarantine_rate_percent = 50
quarantine_window_minutes = 60
quarantine_min_records = 2
dead_deliveries = 0
reconciliation_gap = false
off_platform = false
expiry_days = 0

[[alert_webhooks]]
id = "ops-json"
kind = "generic"
url = "{hooks}/generic"

[[alert_webhooks]]
id = "ops-dingtalk"
kind = "dingtalk"
url = "{hooks}/ding?access_token=robot-token"
secret = "SECdemo123"

[[alert_webhooks]]
id = "ops-wecom"
kind = "wecom"
url = "{hooks}/wecom?key=robot-key"

[[alert_webhooks]]
id = "flaky"
kind = "generic"
url = "{hooks}/flaky"
rules = ["quarantine_rate"]
"#
        ),
        ..Options::default()
    }
}

async fn an_alert_reaches_each_webhook_once_when_it_fires_and_once_when_it_resolves(backend: Backend) {
    let (hooks, seen) = webhook_receiver().await;
    let gw = Gw::start_with(backend, alert_options(&hooks)).await;
    gw.push(&[defective_record(1), defective_record(2)]).await;
    let o = Oversight::new(Arc::clone(&gw.runtime)).expect("oversight");
    alerts::evaluate(&o, Scope::All).await.expect("evaluate");
    webhooks::send_due(&o).await.expect("send");

    let generic = seen.to("/generic");
    assert_eq!(generic.len(), 1, "{generic:?}");
    assert_eq!(generic[0].1["status"], "firing");
    assert_eq!(generic[0].1["rule"], "quarantine_rate");
    assert_eq!(generic[0].1["subject"], SOURCE);
    // DingTalk: markdown, signed as DingTalk documents (HMAC-SHA256 of "timestamp\nsecret").
    let ding = seen.to("/ding");
    assert_eq!(ding.len(), 1);
    assert_eq!(ding[0].1["msgtype"], "markdown");
    assert!(ding[0].1["markdown"]["text"]
        .as_str()
        .unwrap_or("")
        .contains("隔离率过高"));
    let query: std::collections::HashMap<String, String> = reqwest::Url::parse(&format!("http://x/?{}", ding[0].0))
        .expect("query")
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(query["access_token"], "robot-token");
    let expected = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(
        b"SECdemo123",
        format!("{}\nSECdemo123", query["timestamp"]).as_bytes(),
    ));
    assert_eq!(
        query["sign"], expected,
        "the signature verifies with the robot's secret"
    );
    // WeCom: markdown content.
    let wecom = seen.to("/wecom");
    assert_eq!(wecom.len(), 1);
    assert_eq!(wecom[0].1["msgtype"], "markdown");
    assert!(wecom[0].1["markdown"]["content"]
        .as_str()
        .unwrap_or("")
        .contains("【告警】"));
    // The flaky receiver refused: the message waits, with its error, in the API.
    assert_eq!(seen.to("/flaky").len(), 1);
    let (_, listed) = gw.get("/api/alerts", OPERATOR).await;
    assert_schema(&openapi(), "Alerts", &listed);
    let flaky: Vec<&Value> = listed["notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .filter(|n| n["webhook_id"] == "flaky")
        .collect();
    assert_eq!(flaky.len(), 1);
    assert_eq!(flaky[0]["status"], "pending");
    assert!(
        flaky[0]["last_error"].as_str().unwrap_or("").contains("503"),
        "{listed}"
    );

    // Evaluated again, here and by a second instance: nothing more is sent.
    let other = Oversight::new(Arc::clone(&gw.runtime)).expect("second instance");
    alerts::evaluate(&o, Scope::All).await.expect("evaluate");
    alerts::evaluate(&other, Scope::All).await.expect("evaluate");
    webhooks::send_due(&other).await.expect("send");
    assert_eq!(seen.to("/generic").len(), 1);
    assert_eq!(seen.to("/ding").len(), 1);
    // The failed message is tried again when due (5 s later), and then arrives.
    tokio::time::sleep(std::time::Duration::from_millis(5200)).await;
    webhooks::send_due(&o).await.expect("send");
    assert_eq!(seen.to("/flaky").len(), 2);

    // Enough good records bring the rate under 50 %: one resolved message each.
    let good: Vec<Value> = (10..16).map(|n| nanchang_record(n, 0)).collect();
    gw.push(&good).await;
    alerts::evaluate(&o, Scope::All).await.expect("evaluate");
    webhooks::send_due(&o).await.expect("send");
    alerts::evaluate(&other, Scope::All).await.expect("evaluate");
    webhooks::send_due(&other).await.expect("send");
    let generic = seen.to("/generic");
    assert_eq!(generic.len(), 2, "{generic:?}");
    assert_eq!(generic[1].1["status"], "resolved");
    assert!(seen.to("/ding")[1].1["markdown"]["text"]
        .as_str()
        .unwrap_or("")
        .contains("【已恢复】"));
    assert_eq!(seen.to("/wecom").len(), 2);
    assert_eq!(seen.to("/flaky").len(), 3);

    let (_, listed) = gw.get("/api/alerts", ADMIN).await;
    assert_eq!(listed["firing"], json!([]), "{listed}");
    assert_eq!(listed["recent"][0]["status"], "resolved");
    let (_, metrics) = gw.get("/metrics", ADMIN).await;
    let metrics = metrics.as_str().expect("text");
    assert!(
        metrics.contains(r#"gateway_alerts_firing{rule="quarantine_rate"} 0"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"gateway_alert_notifications_total{webhook="flaky",outcome="failed"} 1"#));
    assert!(metrics.contains(r#"gateway_alert_notifications_total{webhook="ops-dingtalk",outcome="sent"} 2"#));
    gw.stop().await;
}
on_both_backends!(an_alert_reaches_each_webhook_once_when_it_fires_and_once_when_it_resolves);

/// HMAC-SHA256, written out from RFC 2104 (independent of the gateway's code).
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

async fn cases_off_the_platform_are_listed_per_department(backend: Backend) {
    let gw = Gw::start_with(
        backend,
        Options {
            extra: "[reconciliation]\ndelivery_overdue_hours = 0.0001\nquarantine_overdue_hours = 0.0001\n".into(),
            ..Options::default()
        },
    )
    .await;
    // The sink is never reached (no dispatcher runs): the delivery stays pending.
    let answer = gw.push(&[nanchang_record(21, 0), defective_record(22)]).await;
    let code = answer["results"][0]["code"].as_str().expect("code").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let (status, off) = gw.get("/api/off-platform", OWNER).await;
    assert_eq!(status, StatusCode::OK, "{off}");
    assert_schema(&openapi(), "OffPlatform", &off);
    assert_eq!(off["undelivered"], 1, "{off}");
    assert_eq!(off["quarantined"], 1);
    let dept = &off["departments"][0];
    assert_eq!(dept["department"], AGENCY_CODE, "the source's one agency");
    assert_eq!(dept["deliveries"][0]["unified_code"], code.as_str());
    assert_eq!(dept["deliveries"][0]["sink_id"], "platform");
    assert_eq!(dept["records"][0]["record_key"], "NCSJ-CF-2024-000022");
    let (_, other) = gw.get("/api/off-platform?department=source:other-dept", OWNER).await;
    assert_eq!(other["departments"], json!([]), "{other}");
    let (_, metrics) = gw.get("/metrics", ADMIN).await;
    let metrics = metrics.as_str().expect("text");
    assert!(
        metrics.contains(&format!(
            "gateway_off_platform_cases{{department=\"{AGENCY_CODE}\",kind=\"undelivered\"}} 1"
        )),
        "{metrics}"
    );
    gw.stop().await;
}
on_both_backends!(cases_off_the_platform_are_listed_per_department);

async fn daily_counts_added_by_concurrent_writers_sum_exactly(backend: Backend) {
    let gw = Gw::start(backend).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let runtime = Arc::clone(&gw.runtime);
        tasks.spawn(async move {
            for _ in 0..25 {
                let t = DayTally {
                    source_id: "s".into(),
                    day: "2025-03-01".into(),
                    received: 2,
                    accepted: 1,
                    quarantined: 1,
                    ..DayTally::default()
                };
                runtime.store.oversight().add_tallies(&[t], &[]).await.expect("add");
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task");
    }
    let counts = gw
        .runtime
        .store
        .oversight()
        .day_counts(Some("s"), "2025-03-01", "2025-03-01")
        .await
        .expect("counts");
    assert_eq!(counts.len(), 1);
    assert_eq!(
        (counts[0].received, counts[0].accepted, counts[0].quarantined),
        (400, 200, 200)
    );
    gw.stop().await;
}
on_both_backends!(daily_counts_added_by_concurrent_writers_sum_exactly);

/// The metric names an expression uses (`gateway_…`, with a sample suffix removed).
fn metric_names(expr: &str, into: &mut BTreeSet<String>) {
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("gateway_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            into.insert(expr[start..end].to_string());
        }
        i = end;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_prometheus_rules_and_the_grafana_dashboard_name_is_served() {
    let rules_text = std::fs::read_to_string(repo().join("deploy/prometheus/gateway-alerts.yml")).expect("rules");
    let rules: Value = serde_norway::from_str(&rules_text).expect("the rules file is YAML");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("deploy/grafana/gateway.json")).expect("dashboard"))
            .expect("the dashboard is JSON");
    let mut names = BTreeSet::new();
    let groups = rules["groups"].as_array().expect("groups");
    for rule in groups.iter().flat_map(|g| g["rules"].as_array().expect("rules")) {
        assert!(rule["alert"].is_string() && rule["expr"].is_string(), "{rule}");
        metric_names(rule["expr"].as_str().unwrap_or(""), &mut names);
    }
    let panels = dashboard["panels"].as_array().expect("panels");
    for target in panels.iter().flat_map(|p| p["targets"].as_array().expect("targets")) {
        metric_names(target["expr"].as_str().expect("expr"), &mut names);
    }
    assert!(names.len() >= 10, "{names:?}");

    // A gateway after some traffic: records, a quarantine, a reconciliation, an alert webhook.
    let (peer, _) = count_peer().await;
    let (hooks, _) = webhook_receiver().await;
    let mut options = alert_options(&hooks);
    options.source_extra = format!("[sources.reconcile]\nurl = \"{peer}/count\"\ncount_path = \"data.total\"\n");
    let gw = Gw::start_with(Backend::Sqlite, options).await;
    gw.push(&[nanchang_record(1, 0), defective_record(2)]).await;
    gw.call("POST", "/api/reconciliation/check", Some(ADMIN), None).await;
    let o = Oversight::new(Arc::clone(&gw.runtime)).expect("oversight");
    alerts::evaluate(&o, Scope::All).await.expect("evaluate");
    let (status, metrics) = gw.get("/metrics", ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = metrics.as_str().expect("text");
    let served: BTreeSet<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for name in &names {
        assert!(
            served.contains(name.as_str()),
            "{name} is named in deploy/ but not served; served: {served:?}"
        );
    }
    gw.stop().await;
}

async fn a_failing_source_raises_one_alert_and_its_next_good_run_resolves_it(backend: Backend) {
    let (hooks, seen) = webhook_receiver().await;
    let mut options = alert_options(&hooks);
    options.extra = options
        .extra
        .replace("source_failing_minutes = 0", "source_failing_minutes = 0.001");
    let gw = Gw::start_with(backend, options).await;
    let o = Oversight::new(Arc::clone(&gw.runtime)).expect("oversight");
    // The source reports failed runs through the board, as every way in does.
    gw.runtime
        .sources
        .run_failed(SOURCE, "connection refused (127.0.0.1:9)", None, false);
    gw.runtime
        .sources
        .run_failed(SOURCE, "connection refused (127.0.0.1:9)", None, false);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    alerts::evaluate(&o, Scope::Local).await.expect("evaluate");
    alerts::evaluate(&o, Scope::Local).await.expect("evaluate");
    webhooks::send_due(&o).await.expect("send");
    let generic = seen.to("/generic");
    assert_eq!(generic.len(), 1, "{generic:?}");
    assert_eq!(generic[0].1["rule"], "source_failing");
    // A push source runs on every instance: on a shared store each instance answers for its own.
    let subject = match backend {
        Backend::Sqlite => SOURCE.to_string(),
        Backend::Postgres => format!("{SOURCE}@{}", gw.runtime.instance.id),
    };
    assert_eq!(generic[0].1["subject"], subject.as_str());
    assert_eq!(generic[0].1["severity"], "critical");
    assert!(
        generic[0].1["summary_zh"]
            .as_str()
            .unwrap_or("")
            .contains("connection refused"),
        "{generic:?}"
    );
    assert!(
        seen.to("/flaky").is_empty(),
        "the flaky webhook takes quarantine_rate only"
    );
    gw.runtime.sources.run_succeeded(SOURCE, None, None);
    alerts::evaluate(&o, Scope::Local).await.expect("evaluate");
    webhooks::send_due(&o).await.expect("send");
    let generic = seen.to("/generic");
    assert_eq!(generic.len(), 2, "{generic:?}");
    assert_eq!(generic[1].1["status"], "resolved");
    gw.stop().await;
}
on_both_backends!(a_failing_source_raises_one_alert_and_its_next_good_run_resolves_it);
