//! The REST pull source against real HTTP peers on 127.0.0.1 that misbehave: 500s, 429 with
//! Retry-After, slow answers, expiring tokens, signatures to verify, GBK bodies, business
//! errors, a source that ignores the pagination, a rate limit to keep.

mod support;

use adapters::sources::{CircuitState, PullMode, SourceError};
use axum::body::Bytes;
use axum::extract::{Form, Query};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{assert_exactly_once, run, serve, source, Instants};

type Params = Query<HashMap<String, String>>;

fn record(i: usize) -> Value {
    json!({"ajbh": format!("AJ{i:04}"), "dsr": "南昌某某有限公司", "fkje": i * 100})
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("AJ{i:04}")).collect()
}

fn page_of(q: &HashMap<String, String>, all: usize) -> Vec<Value> {
    let page: usize = q["pageNo"].parse().unwrap();
    let size: usize = q["pageSize"].parse().unwrap();
    (0..all).skip((page - 1) * size).take(size).map(record).collect()
}

#[tokio::test]
async fn every_record_arrives_exactly_once_across_500s_429s_and_timeouts() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let router = Router::new().route(
        "/cases",
        get(move |Query(q): Params| async move {
            let n = c.fetch_add(1, SeqCst) + 1;
            match n {
                2 => return (StatusCode::INTERNAL_SERVER_ERROR, "数据库忙").into_response(),
                4 => return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "slow down").into_response(),
                // Longer than the client's timeout: the client gives up and asks again.
                6 => tokio::time::sleep(Duration::from_millis(1500)).await,
                _ => {}
            }
            Json(json!({"code": "0000", "msg": "成功", "data": {"list": page_of(&q, 45), "total": 45}})).into_response()
        }),
    );
    let addr = serve(router).await;
    let src = source(
        "rest",
        &format!(
            r#"
url = "http://{addr}/cases"
pagination = "page"
page_param = "pageNo"
page_size_param = "pageSize"
page_size = 10
records_path = "data.list"
total_path = "data.total"
status_path = "code"
success_values = ["0000"]
message_path = "msg"
timeout_seconds = 0.5
retry_initial_ms = 20
retry_max_ms = 2000
"#
        ),
    );
    let started = std::time::Instant::now();
    let result = run(&src, None, PullMode::Incremental).await;
    assert!(result.error.is_none(), "{:?}", result.error);
    assert_exactly_once(&result.field("ajbh"), &ids(0..45));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(result.positions[0], "page 1 #1");
    assert_eq!(result.positions[44], "page 5 #5");
    assert_eq!(
        result.payloads[17],
        record(17).to_string(),
        "the payload is the record's own JSON"
    );
    assert_eq!(result.cursors, vec![None; 5], "no watermark, no cursor");
    assert_eq!(calls.load(SeqCst), 8, "5 pages + 3 retries");
    let health = src.health();
    assert_eq!((health.requests, health.retries, health.failures), (8, 3, 0));
    assert_eq!(health.circuit, CircuitState::Closed);
    assert!(health.last_error.is_some());
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_the_run_continues() {
    let tokens = Arc::new(AtomicUsize::new(0));
    let uses: Arc<Mutex<HashMap<String, usize>>> = Default::default();
    let (t, u) = (tokens.clone(), uses.clone());
    let router = Router::new()
        .route(
            "/oauth/token",
            post(move |Form(f): Form<HashMap<String, String>>| async move {
                if f.get("user").map(String::as_str) != Some("gw")
                    || f.get("pass").map(String::as_str) != Some("口令-1")
                    || f.get("grant_type").map(String::as_str) != Some("password")
                {
                    return (StatusCode::BAD_REQUEST, "bad credentials").into_response();
                }
                let k = t.fetch_add(1, SeqCst) + 1;
                Json(json!({"result": {"token": format!("tok-{k}"), "ttl": 3600}})).into_response()
            }),
        )
        .route(
            "/cases",
            get(move |headers: HeaderMap, Query(q): Params| async move {
                let Some(auth) = headers.get("x-access-token").and_then(|v| v.to_str().ok()) else {
                    return StatusCode::UNAUTHORIZED.into_response();
                };
                let mut uses = u.lock().unwrap();
                let used = uses.entry(auth.to_string()).or_default();
                *used += 1;
                // Every token is good for two requests: the third finds it expired.
                if !auth.starts_with("Token tok-") || *used > 2 {
                    return (StatusCode::UNAUTHORIZED, "token expired").into_response();
                }
                Json(json!({"data": {"list": page_of(&q, 30), "total": "30"}})).into_response()
            }),
        );
    let addr = serve(router).await;
    let config = |password: &str| {
        format!(
            r#"
url = "http://{addr}/cases"
pagination = "page"
page_param = "pageNo"
page_size_param = "pageSize"
page_size = 10
records_path = "data.list"
total_path = "data.total"
retry_initial_ms = 10
[auth]
kind = "token"
token_url = "http://{addr}/oauth/token"
username = "gw"
username_field = "user"
password = "{password}"
password_field = "pass"
token_params = {{ grant_type = "password" }}
token_path = "result.token"
expires_in_path = "result.ttl"
token_header = "X-Access-Token"
token_prefix = "Token "
"#
        )
    };
    let src = source("rest", &config("口令-1"));
    let result = run(&src, None, PullMode::Incremental).await;
    assert!(result.error.is_none(), "{:?}", result.error);
    assert_exactly_once(&result.field("ajbh"), &ids(0..30));
    assert_eq!(tokens.load(SeqCst), 2, "one refresh after the 401");
    assert_eq!(src.health().failures, 0);

    let refused = source("rest", &config("wrong"));
    let result = run(&refused, None, PullMode::Incremental).await;
    assert!(result.records.is_empty());
    match result.error {
        Some(SourceError::Auth(m)) => assert!(m.contains("bad credentials") && !m.contains("wrong"), "{m}"),
        other => panic!("{other:?}"),
    }
}

fn hmac_hex(secret: &str, text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn hmac_signed_posts_are_verified_by_the_peer_across_cursor_pages() {
    let nonces: Arc<Mutex<HashSet<String>>> = Default::default();
    let bodies: Arc<Mutex<Vec<Value>>> = Default::default();
    let (n, b) = (nonces.clone(), bodies.clone());
    let router = Router::new().route(
        "/api/cases",
        post(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| async move {
                let h = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                let canonical = format!(
                    "{}\n{}\n{}\n{}\n{}\n{}",
                    method,
                    uri.path(),
                    uri.query().unwrap_or_default(),
                    h("x-ca-timestamp"),
                    h("x-ca-nonce"),
                    hex::encode(Sha256::digest(&body))
                );
                let ts: i64 = h("x-ca-timestamp").parse().unwrap_or(0);
                let fresh = (chrono::Utc::now().timestamp_millis() - ts).abs() < 60_000;
                if h("x-ca-key") != "gateway-app"
                    || h("x-ca-signature") != hmac_hex("s3cr3t", &canonical)
                    || !fresh
                    || !n.lock().unwrap().insert(h("x-ca-nonce"))
                {
                    return (StatusCode::FORBIDDEN, "signature mismatch").into_response();
                }
                let request: Value = serde_json::from_slice(&body).unwrap();
                b.lock().unwrap().push(request.clone());
                let start = match request["cursor"].as_str() {
                    None => 0,
                    Some(c) => c.trim_start_matches('c').parse().unwrap(),
                };
                let size = request["size"].as_u64().unwrap() as usize;
                let items: Vec<Value> = (start..25.min(start + size)).map(record).collect();
                let mut data = json!({"items": items});
                if start + size < 25 {
                    data["next"] = json!(format!("c{}", start + size));
                }
                Json(json!({"code": 0, "data": data})).into_response()
            },
        ),
    );
    let addr = serve(router).await;
    let src = source(
        "rest",
        &format!(
            r#"
url = "http://{addr}/api/cases?app=gw"
method = "POST"
body_template = '{{"cursor": {{{{cursor}}}}, "size": {{{{page_size}}}}, "region": {{{{region}}}}}}'
params = {{ region = "360100" }}
pagination = "cursor"
cursor_path = "data.next"
page_size = 10
records_path = "data.items"
status_path = "code"
auth = {{ kind = "hmac", app_key = "gateway-app", app_secret = "s3cr3t", app_key_header = "X-Ca-Key", timestamp_header = "X-Ca-Timestamp", nonce_header = "X-Ca-Nonce", signature_header = "X-Ca-Signature" }}
"#
        ),
    );
    let result = run(&src, None, PullMode::Incremental).await;
    assert!(result.error.is_none(), "{:?}", result.error);
    assert_exactly_once(&result.field("ajbh"), &ids(0..25));
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 3);
    assert_eq!(bodies[0], json!({"cursor": null, "size": 10, "region": "360100"}));
    assert_eq!(bodies[2]["cursor"], "c20");
    assert_eq!(nonces.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn gbk_answers_are_decoded_and_a_malformed_record_is_set_aside() {
    let gbk = encoding_rs::GBK;
    let mut body = gbk
        .encode(r#"{"data":[{"ajbh":"AJ1","dsr":"张三"},{"ajbh":"AJ2","dsr":"王"#)
        .0
        .into_owned();
    body.extend_from_slice(&[0x81, b'"']); // a lead byte without its trail byte
    body.extend_from_slice(&gbk.encode(r#"},{"ajbh":"AJ3","dsr":"李四 赣州"}]}"#).0);
    let router = Router::new().route(
        "/cases",
        get(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json; charset=GBK")], body) }
        }),
    );
    let addr = serve(router).await;
    let src = source(
        "rest",
        &format!("url = \"http://{addr}/cases\"\nrecords_path = \"data\""),
    );
    let result = run(&src, None, PullMode::Incremental).await;
    assert!(result.error.is_none(), "{:?}", result.error);
    assert_eq!(result.field("ajbh"), ["AJ1", "AJ3"]);
    assert_eq!(result.field("dsr"), ["张三", "李四 赣州"]);
    assert_eq!(result.unparsed.len(), 1);
    let (position, message, payload) = &result.unparsed[0];
    assert_eq!(position, "page 1 #2");
    assert!(message.contains("GBK"), "{message}");
    assert!(payload.contains("AJ2"), "{payload}");
}

#[tokio::test]
async fn a_business_error_in_an_http_200_stops_the_run_with_its_message() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let router = Router::new().route(
        "/cases",
        get(move || async move {
            c.fetch_add(1, SeqCst);
            Json(json!({"code": "E102", "msg": "签名已过期", "data": null}))
        }),
    );
    let addr = serve(router).await;
    let src = source(
        "rest",
        &format!("url = \"http://{addr}/cases\"\nrecords_path = \"data.list\"\nstatus_path = \"code\"\nsuccess_values = [\"0000\"]\nmessage_path = \"msg\""),
    );
    let result = run(&src, None, PullMode::Incremental).await;
    match &result.error {
        Some(SourceError::Answer { code, message }) => {
            assert_eq!((code.as_str(), message.as_str()), ("E102", "签名已过期"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(calls.load(SeqCst), 1, "a business error is not retried");
    let health = src.health();
    assert_eq!(health.failures, 1);
    assert!(health.last_error.unwrap().1.contains("签名已过期"));
}

#[tokio::test]
async fn the_rate_limit_is_never_exceeded() {
    let instants = Instants::default();
    let i = instants.clone();
    let router = Router::new().route(
        "/cases",
        get(move |Query(q): Params| async move {
            i.note();
            Json(json!({"list": page_of(&q, 30)}))
        }),
    );
    let addr = serve(router).await;
    let src = source(
        "rest",
        &format!(
            "url = \"http://{addr}/cases\"\nrecords_path = \"list\"\npagination = \"page\"\npage_param = \"pageNo\"\npage_size_param = \"pageSize\"\npage_size = 1\nrate_limit_per_second = 20\nrate_limit_burst = 2"
        ),
    );
    let result = run(&src, None, PullMode::Incremental).await;
    assert!(result.error.is_none(), "{:?}", result.error);
    assert_exactly_once(&result.field("ajbh"), &ids(0..30));
    assert_eq!(instants.count(), 31, "30 pages and the empty one");
    let most = instants.max_per_second();
    assert!(most <= 22, "{most} requests in one second, limit 20 + burst 2");
}

#[tokio::test]
async fn incremental_pulls_send_since_with_the_overlap_and_end_on_the_newest_watermark() {
    let rows: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(
        (0..12)
            .map(|i| json!({"ajbh": format!("AJ{i:04}"), "gxsj": format!("2024-05-01 08:00:{i:02}")}))
            .collect(),
    ));
    let sinces: Arc<Mutex<Vec<Option<String>>>> = Default::default();
    let addr = serve(watermark_peer(rows.clone(), sinces.clone(), false)).await;
    let src = source(
        "rest",
        &format!(
            r#"
url = "http://{addr}/cases"
records_path = "rows"
pagination = "offset"
offset_param = "start"
limit_param = "rows"
page_size = 5
watermark_path = "gxsj"
watermark_format = "%Y-%m-%d %H:%M:%S"
since_param = "updatedSince"
overlap_seconds = 5
"#
        ),
    );
    let first = run(&src, None, PullMode::Incremental).await;
    assert!(first.error.is_none(), "{:?}", first.error);
    assert_exactly_once(&first.field("ajbh"), &ids(0..12));
    let cursor = "2024-05-01T00:00:11.000Z"; // 08:00:11 China time
    assert_eq!(
        first.cursors,
        [None, None, Some(cursor.to_string())],
        "the cursor comes with the last page"
    );

    rows.lock()
        .unwrap()
        .push(json!({"ajbh": "AJ0012", "gxsj": "2024-05-01 08:00:20"}));
    let second = run(&src, Some(cursor), PullMode::Incremental).await;
    assert_eq!(
        second.field("ajbh"),
        ["AJ0006", "AJ0007", "AJ0008", "AJ0009", "AJ0010", "AJ0011", "AJ0012"]
    );
    assert_eq!(
        second.cursors.last().unwrap().as_deref(),
        Some("2024-05-01T00:00:20.000Z")
    );

    let full = run(&src, Some("2024-05-01T00:00:20.000Z"), PullMode::FullResync).await;
    assert_eq!(full.records.len(), 13, "a full resync ignores the stored cursor");

    let nothing_new = run(&src, Some("2024-05-01T00:00:30.000Z"), PullMode::Incremental).await;
    assert!(nothing_new.records.is_empty());
    assert_eq!(
        nothing_new.cursors,
        [Some("2024-05-01T00:00:30.000Z".to_string())],
        "kept, never moved back"
    );

    assert_eq!(
        *sinces.lock().unwrap(),
        [
            None,
            Some("2024-05-01 08:00:06".to_string()),
            None,
            Some("2024-05-01 08:00:25".to_string())
        ]
    );

    let bad = run(&src, Some("not a time"), PullMode::Incremental).await;
    assert!(matches!(bad.error, Some(SourceError::Settings(_))), "{:?}", bad.error);
}

/// A peer answering `updatedSince` / `start` / `rows` from `rows`, sorted by `gxsj`, noting every
/// `updatedSince` of a run's first request; `after`: records changed after `updatedSince` (else
/// at or after it).
fn watermark_peer(rows: Arc<Mutex<Vec<Value>>>, sinces: Arc<Mutex<Vec<Option<String>>>>, after: bool) -> Router {
    Router::new().route(
        "/cases",
        get(move |Query(q): Params| {
            let (rows, sinces) = (rows.clone(), sinces.clone());
            async move {
                let since = q.get("updatedSince").cloned();
                if q["start"] == "0" {
                    sinces.lock().unwrap().push(since.clone());
                }
                let start: usize = q["start"].parse().unwrap();
                let mut rows: Vec<Value> = rows
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|row| {
                        let t = row["gxsj"].as_str().unwrap();
                        since.as_deref().is_none_or(|s| if after { t > s } else { t >= s })
                    })
                    .cloned()
                    .collect();
                rows.sort_by(|a, b| a["gxsj"].as_str().cmp(&b["gxsj"].as_str()));
                let page: Vec<Value> = rows.into_iter().skip(start).take(q["rows"].parse().unwrap()).collect();
                Json(json!({"rows": page}))
            }
        }),
    )
}

const WATERMARK_SOURCE: &str = r#"
records_path = "rows"
pagination = "offset"
offset_param = "start"
limit_param = "rows"
page_size = 5
watermark_path = "gxsj"
watermark_format = "%Y-%m-%d %H:%M:%S"
since_param = "updatedSince"
overlap_seconds = 5
"#;

#[tokio::test]
async fn a_record_from_the_future_is_flagged_and_the_next_since_is_not_in_the_future() {
    let rows: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(vec![
        json!({"ajbh": "AJ0000", "gxsj": "2024-05-01 08:00:00"}),
        json!({"ajbh": "AJ0001", "gxsj": "2099-01-01 00:00:00"}),
    ]));
    let sinces: Arc<Mutex<Vec<Option<String>>>> = Default::default();
    let addr = serve(watermark_peer(rows.clone(), sinces.clone(), false)).await;
    let src = source("rest", &format!("url = \"http://{addr}/cases\"\n{WATERMARK_SOURCE}"));
    let first = run(&src, None, PullMode::Incremental).await;
    assert!(first.error.is_none(), "{:?}", first.error);
    assert_eq!(
        first.field("ajbh"),
        ["AJ0000", "AJ0001"],
        "the record is pulled, not dropped"
    );
    assert_eq!(first.in_future.len(), 1, "and flagged: {:?}", first.positions);
    let cursor = first.cursors.last().cloned().flatten().expect("cursor");
    assert_eq!(
        cursor, "2024-05-01T00:00:00.000Z",
        "the 2099 record does not move the cursor"
    );
    rows.lock()
        .unwrap()
        .push(json!({"ajbh": "AJ0002", "gxsj": "2024-06-01 09:00:00"}));
    let second = run(&src, Some(&cursor), PullMode::Incremental).await;
    assert!(
        second.field("ajbh").contains(&"AJ0002".to_string()),
        "later changes still arrive"
    );
    let now = chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap());
    let since = sinces.lock().unwrap()[1].clone().expect("since");
    assert!(
        since <= now.format("%Y-%m-%d %H:%M:%S").to_string(),
        "since {since} is not in the future"
    );
}

#[tokio::test]
async fn an_ordered_backlog_of_three_times_max_pages_is_pulled_in_three_runs() {
    // 3 runs × max_pages 2 × page_size 5 = 30 records, one second apart, oldest first, from a
    // peer that answers the changes after `since` (with no overlap nothing is pulled twice).
    let rows: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(
        (0..30)
            .map(|i| json!({"ajbh": format!("AJ{i:04}"), "gxsj": format!("2024-05-01 08:00:{i:02}")}))
            .collect(),
    ));
    let sinces: Arc<Mutex<Vec<Option<String>>>> = Default::default();
    let addr = serve(watermark_peer(rows, sinces, true)).await;
    let settings = WATERMARK_SOURCE.replace("overlap_seconds = 5", "overlap_seconds = 0");
    let src = source(
        "rest",
        &format!("url = \"http://{addr}/cases\"\n{settings}max_pages = 2\nwatermark_ordered = true\n"),
    );
    let mut cursor: Option<String> = None;
    let mut seen: Vec<String> = Vec::new();
    for n in 1..=3 {
        let r = run(&src, cursor.as_deref(), PullMode::Incremental).await;
        assert!(
            r.error.is_none(),
            "run {n} ends at max_pages without failing: {:?}",
            r.error
        );
        assert!(
            r.cursors.iter().all(Option::is_some),
            "run {n}: a cursor with every page: {:?}",
            r.cursors
        );
        seen.extend(r.field("ajbh"));
        cursor = r.cursors.last().cloned().flatten();
    }
    assert_eq!(seen, ids(0..30), "every record of the backlog arrived, once");
    assert_eq!(cursor.as_deref(), Some("2024-05-01T00:00:29.000Z"));
    // The same backlog without `watermark_ordered` fails at max_pages and keeps its cursor.
    let unordered = source(
        "rest",
        &format!("url = \"http://{addr}/cases\"\n{settings}max_pages = 2\n"),
    );
    let r = run(&unordered, None, PullMode::Incremental).await;
    assert!(r.error.is_some(), "an unordered source cannot resume: the run fails");
    assert!(r.cursors.iter().all(Option::is_none), "{:?}", r.cursors);
}

#[tokio::test]
async fn next_links_are_followed_from_the_link_header() {
    let router = Router::new().route(
        "/feed",
        get(|Query(q): Params| async move {
            let p: usize = q.get("p").map_or(1, |p| p.parse().unwrap());
            let items: Vec<Value> = (0..7).skip((p - 1) * 3).take(3).map(record).collect();
            let mut headers = vec![];
            if p < 3 {
                headers.push((
                    "link",
                    format!("</feed?p={}>; rel=\"next\", </feed?p=1>; rel=\"first\"", p + 1),
                ));
            }
            let mut response = Json(items).into_response();
            for (k, v) in headers {
                response.headers_mut().insert(k, v.parse().unwrap());
            }
            response
        }),
    );
    let addr = serve(router).await;
    let src = source(
        "rest",
        &format!("url = \"http://{addr}/feed\"\npagination = \"next_link\""),
    );
    let result = run(&src, None, PullMode::Incremental).await;
    assert!(result.error.is_none(), "{:?}", result.error);
    assert_exactly_once(&result.field("ajbh"), &ids(0..7));
}

#[tokio::test]
async fn the_circuit_opens_after_repeated_failures_and_pauses_the_source() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let router = Router::new().route(
        "/cases",
        get(move || async move {
            c.fetch_add(1, SeqCst);
            StatusCode::SERVICE_UNAVAILABLE
        }),
    );
    let addr = serve(router).await;
    let src = source(
        "rest",
        &format!("url = \"http://{addr}/cases\"\nmax_attempts = 5\nretry_initial_ms = 5\ncircuit_failures = 3\ncircuit_open_seconds = 30"),
    );
    let first = run(&src, None, PullMode::Incremental).await;
    assert!(
        matches!(first.error, Some(SourceError::CircuitOpen { .. })),
        "{:?}",
        first.error
    );
    assert_eq!(calls.load(SeqCst), 3);
    let again = run(&src, None, PullMode::Incremental).await;
    assert!(matches!(again.error, Some(SourceError::CircuitOpen { .. })));
    assert_eq!(calls.load(SeqCst), 3, "no request while the circuit is open");
    let health = src.health();
    assert_eq!(health.circuit, CircuitState::Open);
    assert!(health.circuit_reopens_at.is_some());
    assert_eq!((health.requests, health.failures), (3, 2));
}

#[tokio::test]
async fn a_source_that_ignores_the_page_parameter_is_stopped_not_looped() {
    let router = Router::new().route(
        "/cases",
        get(|| async { Json((0..10).map(record).collect::<Vec<_>>()) }),
    );
    let addr = serve(router).await;
    let src = source(
        "rest",
        &format!("url = \"http://{addr}/cases\"\npagination = \"page\"\npage_size = 10\nwatermark_path = \"gxsj\"\nsince_param = \"since\""),
    );
    let result = run(&src, None, PullMode::Incremental).await;
    assert!(
        matches!(&result.error, Some(SourceError::Protocol(m)) if m.contains("repeats")),
        "{:?}",
        result.error
    );
    assert_eq!(result.records.len(), 10);
    assert!(result.cursors.iter().all(Option::is_none), "the cursor is not advanced");
}

#[tokio::test]
async fn a_client_error_is_final_and_an_answer_that_is_not_json_fails_the_run() {
    let router = Router::new()
        .route(
            "/missing",
            get(|| async { (StatusCode::NOT_FOUND, "no such interface") }),
        )
        .route("/html", get(|| async { "<html>维护中</html>" }));
    let addr = serve(router).await;
    let missing = source("rest", &format!("url = \"http://{addr}/missing\""));
    let result = run(&missing, None, PullMode::Incremental).await;
    match result.error {
        Some(SourceError::Answer { code, message }) => {
            assert_eq!(code, "HTTP 404");
            assert_eq!(message, "no such interface");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(missing.health().retries, 0);
    let html = source("rest", &format!("url = \"http://{addr}/html\""));
    let result = run(&html, None, PullMode::Incremental).await;
    assert!(
        matches!(&result.error, Some(SourceError::Protocol(m)) if m.contains("not JSON")),
        "{:?}",
        result.error
    );
}

#[tokio::test]
async fn an_unreachable_source_is_unavailable_after_its_attempts() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let src = source(
        "rest",
        &format!("url = \"http://{addr}/cases\"\nmax_attempts = 3\nretry_initial_ms = 5\nretry_max_ms = 10"),
    );
    let result = run(&src, None, PullMode::Incremental).await;
    match result.error {
        Some(SourceError::Unavailable(m)) => assert!(m.contains("after 3 attempts"), "{m}"),
        other => panic!("{other:?}"),
    }
    let health = src.health();
    assert_eq!((health.retries, health.failures), (2, 1));
}

#[tokio::test]
async fn a_closed_gate_stops_the_run_before_the_next_request_is_sent() {
    let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&served);
    let router = Router::new().route(
        "/cases",
        get(move || {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Json((0..10).map(record).collect::<Vec<_>>())
            }
        }),
    );
    let addr = serve(router).await;
    let src = source("rest", &format!("url = \"http://{addr}/cases\""));
    let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let gate_open = Arc::clone(&open);
    src.set_gate(Some(Arc::new(move || {
        gate_open.load(std::sync::atomic::Ordering::SeqCst)
    })));
    let first = run(&src, None, PullMode::Incremental).await;
    assert!(first.error.is_none(), "{:?}", first.error);
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The gate closes (this instance may no longer pull): nothing more is sent.
    open.store(false, std::sync::atomic::Ordering::SeqCst);
    let second = run(&src, None, PullMode::Incremental).await;
    assert!(matches!(second.error, Some(SourceError::Gated)), "{:?}", second.error);
    assert_eq!(
        served.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "no request reached the source"
    );
    src.set_gate(None);
    let third = run(&src, None, PullMode::Incremental).await;
    assert!(third.error.is_none(), "{:?}", third.error);
}
