//! Evidence attachments (证据附件) end to end: a real gateway in-process over a real store
//! (SQLite file or a fresh PostgreSQL database), a real object store (a local folder, or an
//! S3-compatible server process: `moto_server`, started by scripts/test.sh or here when absent),
//! a real department system (an axum server on 127.0.0.1:0 that serves records and their files
//! behind an API key) and a real REST sink receiver. Records carry attachments as URLs, inline
//! base64 and files in a drop folder; the tests prove that each content is stored once by its
//! SHA-256, streamed (a 128 MiB file leaves the process's peak memory far below its size), that
//! a failing fetch is retried and shown, that deliveries wait for required attachments but not
//! for optional ones, the limits, and that download links expire and check their signature.

mod support;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use futures_util::stream;
use gateway::outbox::dispatcher::{Dispatchers, Mode};
use gateway::shutdown::Shutdown;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::gw::*;
use support::{nanchang_record, Backend};

const API_KEY: &str = "k-attach-secret-7Qx";
const S3_PORT: u16 = 5055;

/// The mapping's attachments field (the Nanchang mapping does not map any).
const ATTACHMENTS_FIELD: &str = r#"
[[field]]
target = "attachments"
each = "fj[*]"
fields = [
  { target = "kind", from = "lx" },
  { target = "title", from = "mc" },
  { target = "file_name", from = "wjm" },
  { target = "media_type", from = "mtlx" },
  { target = "url", from = "dz" },
  { target = "content_base64", from = "nr" },
  { target = "file", from = "wj" },
  { target = "bytes", from = "dx", as = "integer" },
  { target = "captured_at", from = "pssj", as = "datetime" },
  { target = "duration_seconds", from = "sc", as = "decimal" },
  { target = "optional", from = "kq", as = "boolean" },
]

# ---------------------------------------------------------------- 处罚信息 / penalty"#;

// ----------------------------------------------------------------------------------------------
// The department system: records and their files behind an API key.

#[derive(Default)]
struct Peer {
    records: Mutex<Vec<Value>>,
    /// Answers 503 to this many file requests first.
    failures: AtomicUsize,
    file_requests: AtomicUsize,
    unauthorised: AtomicUsize,
}

fn keyed(headers: &HeaderMap) -> bool {
    headers.get("x-api-key").and_then(|v| v.to_str().ok()) == Some(API_KEY)
}

async fn cases(State(peer): State<Arc<Peer>>, headers: HeaderMap) -> Response {
    if !keyed(&headers) {
        return AxumStatus::UNAUTHORIZED.into_response();
    }
    let rows = peer.records.lock().unwrap().clone();
    let total = rows.len();
    axum::Json(json!({"code": "200", "msg": "ok", "data": {"rows": rows, "total": total}})).into_response()
}

/// `/files/{name}`: `mib-N.bin` is N MiB made on the fly (never held whole); other names
/// answer their own name's bytes.
async fn file(
    State(peer): State<Arc<Peer>>,
    axum::extract::Path(name): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    peer.file_requests.fetch_add(1, Ordering::SeqCst);
    if !keyed(&headers) {
        peer.unauthorised.fetch_add(1, Ordering::SeqCst);
        return AxumStatus::UNAUTHORIZED.into_response();
    }
    if peer
        .failures
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return (AxumStatus::SERVICE_UNAVAILABLE, "busy").into_response();
    }
    if let Some(mib) = name.strip_prefix("mib-").and_then(|n| n.strip_suffix(".bin")) {
        let mib: usize = mib.parse().unwrap();
        let chunks = stream::iter(
            (0..mib * 16).map(|i| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![(i % 251) as u8; 64 * 1024]))),
        );
        return Response::builder()
            .header("content-type", "video/mp4")
            .body(Body::from_stream(chunks))
            .unwrap();
    }
    ([("content-type", "video/mp4")], format!("content of {name}")).into_response()
}

async fn start_peer(peer: Arc<Peer>) -> String {
    let app = Router::new()
        .route("/cases", get(cases))
        .route("/files/{name}", get(file))
        .with_state(peer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

// ----------------------------------------------------------------------------------------------
// The REST sink's receiver.

#[derive(Default)]
struct Receiver {
    bodies: Mutex<Vec<String>>,
}

async fn receive(State(r): State<Arc<Receiver>>, body: String) -> Response {
    r.bodies.lock().unwrap().push(body);
    axum::Json(json!({"ok": true})).into_response()
}

async fn start_receiver() -> (Arc<Receiver>, String) {
    let r = Arc::new(Receiver::default());
    let app = Router::new().route("/upload", post(receive)).with_state(Arc::clone(&r));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/upload", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, url)
}

// ----------------------------------------------------------------------------------------------
// The S3-compatible server.

async fn s3_endpoint() -> String {
    let endpoint = format!("http://127.0.0.1:{S3_PORT}");
    let up = || async { tokio::net::TcpStream::connect(("127.0.0.1", S3_PORT)).await.is_ok() };
    if !up().await {
        // scripts/test.sh starts it; started here when a test runs alone (it outlives the test).
        let _ = std::process::Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &S3_PORT.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        for _ in 0..200 {
            if up().await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(
        up().await,
        "no S3-compatible server on {endpoint} (moto_server; see scripts/test.sh)"
    );
    endpoint
}

async fn new_bucket(endpoint: &str) -> String {
    let bucket = format!("gw-test-{}", hex::encode(rand_bytes()));
    let resp = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .expect("create bucket");
    assert!(resp.status().is_success(), "bucket: {}", resp.status());
    bucket
}

fn rand_bytes() -> [u8; 6] {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap();
    b
}

// ----------------------------------------------------------------------------------------------
// The gateway.

enum ObjectStore {
    Local,
    S3 { endpoint: String, bucket: String },
}

struct Setup {
    gw: Gw,
    peer: Arc<Peer>,
    peer_url: String,
    receiver: Arc<Receiver>,
}

async fn setup(backend: Backend, store: ObjectStore, attachments_extra: &str) -> Setup {
    setup_with_sinks(backend, store, attachments_extra, None).await
}

/// [`setup`], with `sinks` (TOML) instead of the REST sink's receiver.
async fn setup_with_sinks(
    backend: Backend,
    store: ObjectStore,
    attachments_extra: &str,
    sinks: Option<String>,
) -> Setup {
    let peer = Arc::new(Peer::default());
    let peer_url = start_peer(Arc::clone(&peer)).await;
    let (receiver, receiver_url) = start_receiver().await;
    let store_keys = match &store {
        ObjectStore::Local => "store = \"local\"\npath = \"objects\"\n".to_string(),
        ObjectStore::S3 { endpoint, bucket } => format!(
            "store = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\n\
             access_key_id = \"testing\"\nsecret_access_key = \"testing\"\nallow_http = true\n"
        ),
    };
    let extra = format!(
        "[[sources]]\nid = \"dept-rest\"\nkind = \"rest\"\nmapping = \"nanchang-amr-penalty/mapping.toml\"\n\
         record_key = \"ajbh\"\npoll_seconds = 3600\n[sources.rest]\nurl = \"{peer_url}/cases\"\n\
         pagination = \"page\"\npage_param = \"pageNo\"\npage_size_param = \"pageSize\"\nrecords_path = \"data.rows\"\n\
         total_path = \"data.total\"\nstatus_path = \"code\"\nsuccess_values = [\"200\"]\nmessage_path = \"msg\"\n\
         max_attempts = 1\ntimeout_seconds = 5\n\
         auth = {{ kind = \"header\", header = \"X-Api-Key\", value = \"{API_KEY}\" }}\n\n\
         [attachments]\n{store_keys}link_secret = \"link-key-for-tests\"\nlink_ttl_seconds = 600\n\
         public_base_url = \"https://gw.example.gov.cn\"\nfetch_retry_initial_seconds = 0.01\n\
         fetch_retry_max_seconds = 0.02\npoll_seconds = 0.1\n{attachments_extra}"
    );
    let gw = Gw::start_with(
        backend,
        Options {
            sinks: sinks.unwrap_or_else(|| {
                format!(
                    "[[sinks]]\nid = \"upload\"\nkind = \"rest\"\nurl = \"{receiver_url}\"\nbatch_size = 10\npoll_ms = 50\n"
                )
            }),
            extra,
            mapping_edits: vec![(
                "# ---------------------------------------------------------------- 处罚信息 / penalty".into(),
                ATTACHMENTS_FIELD.into(),
            )],
            ..Options::default()
        },
    )
    .await;
    Setup {
        gw,
        peer,
        peer_url,
        receiver,
    }
}

impl Setup {
    fn attachments(&self) -> &gateway::attachments::Attachments {
        self.gw.runtime.attachments.as_deref().expect("attachments running")
    }

    /// Pull the department system once (its records come in as source `dept-rest`).
    async fn pull(&self, records: Vec<Value>) {
        *self.peer.records.lock().unwrap() = records;
        let config = &self.gw.runtime.resolved.config;
        let (_, source) = config.source("dept-rest").expect("source");
        let pull = adapters::sources::build(
            "dept-rest",
            "rest",
            &source.pull_table().unwrap_or_default(),
            &config.base_dir,
        )
        .expect("pull source");
        gateway::intake::pull::pull_once(
            &self.gw.runtime,
            "dept-rest",
            &pull,
            adapters::sources::PullMode::FullResync,
            &Shutdown::default(),
        )
        .await
        .expect("pull");
    }

    /// Deliver what is due, holding what waits for attachments.
    async fn deliver(&self) {
        let runtime = &self.gw.runtime;
        let dispatchers = Dispatchers::start_with_gate(
            Arc::clone(&runtime.outbox),
            &runtime.resolved.config.sinks,
            &runtime.resolved.config.base_dir,
            &gateway::outbox::publicity::PublicityContext {
                policy: &runtime.resolved.config.publicity,
                store: Arc::clone(&runtime.store),
                metrics: Some(Arc::clone(&runtime.metrics)),
            },
            Mode::Drain,
            Shutdown::default(),
            runtime.attachments.as_ref().map(|a| Arc::clone(&a.gate)),
        )
        .expect("dispatchers");
        dispatchers.join().await;
    }

    async fn fetch_until_settled(&self) {
        for _ in 0..200 {
            self.attachments().fetcher.round().await.expect("fetch round");
            let counts = self.gw.runtime.store.attachments().attachment_counts().await.unwrap();
            if counts.pending == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        panic!("attachments still pending");
    }

    async fn list(&self, code: &str) -> Vec<Value> {
        let (status, body) = self.gw.get(&format!("/api/cases/{code}/attachments"), OPERATOR).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["attachments"].as_array().expect("attachments").clone()
    }

    async fn delivery(&self, code: &str) -> Value {
        let (status, list) = self.gw.get("/api/deliveries?sink=upload", ADMIN).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let key = format!("{code}:1");
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|d| d["idempotency_key"] == key.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("no delivery {key}: {list}"))
    }

    /// Download a link given with `https://gw.example.gov.cn` as its host from this gateway.
    async fn download(&self, link: &str, token: Option<&str>) -> (StatusCode, Vec<u8>) {
        let path = link.trim_start_matches("https://gw.example.gov.cn");
        let mut req = self.gw.http.get(format!("{}{path}", self.gw.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("download");
        let status = resp.status();
        (status, resp.bytes().await.expect("body").to_vec())
    }
}

fn code_of(answer: &Value) -> String {
    answer["results"][0]["code"].as_str().expect("code").to_string()
}

async fn case_code(gw: &Gw, case_number: &str) -> String {
    let (status, body) = gw.get(&format!("/api/cases?q={case_number}"), ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"][0]["case"]["unified_code"]
        .as_str()
        .or_else(|| body["items"][0]["unified_code"].as_str())
        .unwrap_or_else(|| panic!("no case {case_number}: {body}"))
        .to_string()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn stored_objects(gw: &Gw) -> Vec<String> {
    let dir = gw.dir.path().join("objects/sha256");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

// ----------------------------------------------------------------------------------------------
// Tests.

/// Inline base64 and a file in the drop folder's attachments/ with the same content: stored
/// once (one object, one hash), each listed with its own origin, downloadable with a token and
/// with a signed link; a tampered or expired link is refused.
async fn the_same_content_inline_and_from_a_drop_folder_is_stored_once_and_downloads_by_token_or_signed_link(
    backend: Backend,
) {
    let s = setup(backend, ObjectStore::Local, "").await;
    let content = "%PDF-1.4 行政处罚决定书".as_bytes().to_vec();
    let mut pushed = nanchang_record(1, 0);
    pushed["fj"] = json!([{"lx": "document", "mc": "处罚决定书", "wjm": "决定书.pdf", "mtlx": "application/pdf",
        "nr": b64(&content)}]);
    let code = code_of(&s.gw.push(&[pushed]).await);
    // The same bytes as a file beside a record in the drop folder.
    let inbox = s.gw.dir.path().join("inbox");
    std::fs::create_dir_all(inbox.join("attachments")).unwrap();
    std::fs::write(inbox.join("attachments/jds.pdf"), &content).unwrap();
    let mut dropped = nanchang_record(2, 0);
    dropped["fj"] = json!([{"lx": "document", "wj": "jds.pdf", "pssj": "2024-01-05 10:00:00"}]);
    std::fs::write(inbox.join("cases.jsonl"), format!("{dropped}\n")).unwrap();
    let config = &s.gw.runtime.resolved.config;
    let (_, source) = config.source("drop").expect("drop source");
    let preparer = s.gw.runtime.preparers.get("drop").expect("preparer");
    gateway::intake::directory::scan_directory(
        &s.gw.runtime.committer("directory"),
        source,
        &config.base_dir,
        &preparer,
        &gateway::commit::Batching::from(config),
        &Shutdown::default(),
        Duration::ZERO,
    )
    .await
    .expect("scan");
    let (_, quarantine) = s.gw.get("/api/quarantine?source=drop", ADMIN).await;
    assert_eq!(quarantine["total"], 0, "{quarantine}");
    let dropped_code = case_code(&s.gw, "NCSJ-CF-2024-000002").await;

    s.fetch_until_settled().await;
    let hash = sha(&content);
    assert_eq!(
        stored_objects(&s.gw),
        std::slice::from_ref(&hash),
        "one object for the same content"
    );
    let pushed_list = s.list(&code).await;
    let dropped_list = s.list(&dropped_code).await;
    for (list, origin, reference) in [(&pushed_list, "inline", "record"), (&dropped_list, "file", "jds.pdf")] {
        assert_eq!(list.len(), 1, "{list:?}");
        let a = &list[0];
        assert_eq!(a["status"], "stored", "{a}");
        assert_eq!(a["sha256"], hash.as_str());
        assert_eq!(a["bytes"], content.len());
        assert_eq!(a["origin"], origin, "lineage: where it came from");
        assert_eq!(a["origin_ref"], reference);
        assert_eq!(a["version"], 1);
    }
    assert_eq!(pushed_list[0]["media_type"], "application/pdf");
    assert_eq!(dropped_list[0]["media_type"], "application/pdf", "from the file name");
    assert_eq!(dropped_list[0]["captured_at"], "2024-01-05T10:00:00+08:00");

    // Token, signed link, tampered link, expired link.
    let (status, body) = s.download(&format!("/api/attachments/{hash}"), Some(OPERATOR)).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, content.as_slice()));
    let (status, _) = s.download(&format!("/api/attachments/{hash}"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let link = pushed_list[0]["download_url"].as_str().expect("link").to_string();
    assert!(link.starts_with(&format!("https://gw.example.gov.cn/api/attachments/{hash}?expires=")));
    let (status, body) = s.download(&link, None).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, content.as_slice()));
    let tampered = format!("{}0", &link[..link.len() - 1]);
    let tampered = if tampered == link {
        format!("{}1", &link[..link.len() - 1])
    } else {
        tampered
    };
    let (status, _) = s.download(&tampered, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a bad signature is refused");
    let long_ago = chrono::Utc::now().timestamp() - 3600;
    let (expired, _) = s.attachments().signer.link(&hash, long_ago);
    let (status, body) = s.download(&expired, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an expired link is refused");
    assert!(String::from_utf8_lossy(&body).contains("expired"));
    s.gw.stop().await;
}

#[tokio::test]
async fn the_same_content_inline_and_from_a_drop_folder_is_stored_once_and_downloads_by_token_or_signed_link_sqlite() {
    the_same_content_inline_and_from_a_drop_folder_is_stored_once_and_downloads_by_token_or_signed_link(
        Backend::Sqlite,
    )
    .await;
}

#[tokio::test]
async fn the_same_content_inline_and_from_a_drop_folder_is_stored_once_and_downloads_by_token_or_signed_link_postgres()
{
    the_same_content_inline_and_from_a_drop_folder_is_stored_once_and_downloads_by_token_or_signed_link(
        Backend::Postgres,
    )
    .await;
}

/// A URL attachment of a pulled record is fetched with the source's own credentials; the
/// source fails twice (shown as pending with its error), the third fetch stores it; the case's
/// delivery waits meanwhile and then goes with the hash and a signed link.
async fn a_failing_fetch_is_retried_and_shown_and_the_delivery_waits_until_the_attachment_is_stored(backend: Backend) {
    let s = setup(backend, ObjectStore::Local, "").await;
    s.peer.failures.store(2, Ordering::SeqCst);
    let mut record = nanchang_record(3, 0);
    record["fj"] = json!([{"lx": "video", "mc": "执法记录仪视频", "wjm": "v.mp4",
        "dz": format!("{}/files/v.mp4", s.peer_url), "sc": "12.5"}]);
    s.pull(vec![record]).await;
    let code = case_code(&s.gw, "NCSJ-CF-2024-000003").await;

    s.deliver().await;
    let held = s.delivery(&code).await;
    assert_eq!(held["status"], "pending", "{held}");
    assert_eq!(held["attempts"], 0, "waiting uses no attempt");
    assert!(
        held["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("awaiting attachments"),
        "{held}"
    );
    assert!(
        s.receiver.bodies.lock().unwrap().is_empty(),
        "nothing delivered before the attachment is stored"
    );

    s.attachments().fetcher.round().await.expect("round");
    let listed = s.list(&code).await;
    assert_eq!(listed[0]["status"], "pending", "{listed:?}");
    assert_eq!(listed[0]["attempts"], 1);
    assert!(
        listed[0]["last_error"].as_str().unwrap_or_default().contains("503"),
        "{listed:?}"
    );
    s.fetch_until_settled().await;
    let listed = s.list(&code).await;
    assert_eq!(listed[0]["status"], "stored", "{listed:?}");
    assert_eq!(listed[0]["attempts"], 3, "two failures, then stored");
    assert_eq!(listed[0]["duration_seconds"], 12.5);
    assert_eq!(
        s.peer.unauthorised.load(Ordering::SeqCst),
        0,
        "every fetch carried the source's key"
    );
    let content = b"content of v.mp4";
    assert_eq!(listed[0]["sha256"], sha(content).as_str());
    assert_eq!(listed[0]["media_type"], "video/mp4", "from the answer");

    // Held deliveries are due again after the gate's recheck wait.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.deliver().await;
    assert_eq!(s.delivery(&code).await["status"], "delivered");
    let bodies = s.receiver.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    let sent: Value = serde_json::from_str(&bodies[0]).expect("JSON envelope");
    let attachment = &sent["record"]["attachments"][0];
    assert_eq!(attachment["sha256"], sha(content).as_str(), "{sent}");
    assert_eq!(attachment["bytes"], content.len());
    let link = attachment["uri"].as_str().expect("signed link");
    let (status, body) = s.download(link, None).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, content.as_slice()));
    let metrics =
        s.gw.get("/metrics", ADMIN)
            .await
            .1
            .as_str()
            .unwrap_or_default()
            .to_string();
    assert!(
        metrics.contains("gateway_attachment_fetch_failures_total{source=\"dept-rest\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("gateway_attachments_pending 0"), "{metrics}");
    s.gw.stop().await;
}

#[tokio::test]
async fn a_failing_fetch_is_retried_and_shown_and_the_delivery_waits_until_the_attachment_is_stored_sqlite() {
    a_failing_fetch_is_retried_and_shown_and_the_delivery_waits_until_the_attachment_is_stored(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_failing_fetch_is_retried_and_shown_and_the_delivery_waits_until_the_attachment_is_stored_postgres() {
    a_failing_fetch_is_retried_and_shown_and_the_delivery_waits_until_the_attachment_is_stored(Backend::Postgres).await;
}

/// An optional attachment that cannot be fetched does not hold the delivery; after its
/// attempts it is `failed`, and an operator's retry makes it pending again.
#[tokio::test]
async fn an_optional_attachment_that_cannot_be_fetched_does_not_hold_the_delivery() {
    let s = setup(Backend::Sqlite, ObjectStore::Local, "fetch_max_attempts = 2\n").await;
    s.peer.failures.store(1000, Ordering::SeqCst);
    let mut record = nanchang_record(4, 0);
    record["fj"] = json!([{"lx": "image", "wjm": "p.jpg", "dz": format!("{}/files/p.jpg", s.peer_url), "kq": "是"}]);
    s.pull(vec![record]).await;
    let code = case_code(&s.gw, "NCSJ-CF-2024-000004").await;
    s.deliver().await;
    assert_eq!(
        s.delivery(&code).await["status"],
        "delivered",
        "optional attachments do not hold"
    );
    s.fetch_until_settled().await;
    let listed = s.list(&code).await;
    assert_eq!(
        (listed[0]["status"].as_str(), listed[0]["attempts"].as_i64()),
        (Some("failed"), Some(2))
    );
    let (status, answer) =
        s.gw.post(&format!("/api/cases/{code}/attachments/retry"), OPERATOR, json!({}))
            .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["retried"], 1);
    assert_eq!(s.list(&code).await[0]["status"], "pending");
    s.gw.stop().await;
}

/// Limits: a required attachment declared too large or of a media type not allowed
/// quarantines its record (bilingual reasons naming the attachment); an optional one is a
/// warning, and content over the limit found while fetching is refused, never stored.
#[tokio::test]
async fn attachments_over_the_limits_quarantine_required_and_refuse_optional_ones_with_their_reasons() {
    let s = setup(
        Backend::Sqlite,
        ObjectStore::Local,
        "max_bytes = 1000\nmax_case_bytes = 5000\nallowed_media_types = [\"video/*\", \"application/pdf\"]\n",
    )
    .await;
    let mut too_large = nanchang_record(5, 0);
    too_large["fj"] = json!([{"lx": "video", "dz": format!("{}/files/x.mp4", s.peer_url), "dx": "5000"}]);
    let mut wrong_type = nanchang_record(6, 0);
    wrong_type["fj"] = json!([{"lx": "other", "mtlx": "application/zip", "nr": b64(b"PK")}]);
    let mut optional_big = nanchang_record(7, 0);
    optional_big["fj"] = json!([{"lx": "video", "dz": format!("{}/files/mib-1.bin", s.peer_url), "kq": "是"}]);
    s.pull(vec![too_large, wrong_type, optional_big]).await;

    let (status, quarantine) = s.gw.get("/api/quarantine?source=dept-rest", ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    let rules: Vec<(String, String)> = quarantine["items"]
        .as_array()
        .expect("items")
        .iter()
        .flat_map(|e| e["violations"].as_array().cloned().unwrap_or_default())
        .map(|v| {
            (
                v["rule"].as_str().unwrap_or_default().to_string(),
                v["message_en"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        rules
            .iter()
            .any(|(r, m)| r == "attachment.too_large" && m.contains("5000 bytes, over the limit of 1000")),
        "{rules:?}"
    );
    assert!(
        rules
            .iter()
            .any(|(r, m)| r == "attachment.media_type" && m.contains("application/zip")),
        "{rules:?}"
    );
    let code = case_code(&s.gw, "NCSJ-CF-2024-000007").await;
    // Inline content counts against the push body limit ([sources.push] max_body_bytes = 20000).
    let mut pushed = nanchang_record(11, 0);
    pushed["fj"] = json!([{"lx": "document", "nr": b64(&vec![7u8; 30_000])}]);
    let (status, answer) = s.gw.post(&format!("/api/ingest/{SOURCE}"), DEPT, json!([pushed])).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    s.fetch_until_settled().await;
    let listed = s.list(&code).await;
    assert_eq!(listed[0]["status"], "refused", "{listed:?}");
    assert!(
        listed[0]["last_error"].as_str().unwrap_or_default().contains("1000"),
        "{listed:?}"
    );
    assert!(stored_objects(&s.gw).is_empty(), "nothing over the limit is kept");
    s.gw.stop().await;
}

fn peak_and_current_rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .expect("field")
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// A 128 MiB video goes from the source through the gateway into the store in parts: the
/// process's peak memory grows by far less than the file (it never sits in memory), and the
/// stored file has every byte (its SHA-256 is that of the content made by the source).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_128_mib_video_is_streamed_into_the_store_without_holding_it_in_memory() {
    let s = setup(Backend::Sqlite, ObjectStore::Local, "").await;
    let mut record = nanchang_record(8, 0);
    record["fj"] = json!([{"lx": "video", "wjm": "big.mp4", "dz": format!("{}/files/mib-128.bin", s.peer_url)}]);
    s.pull(vec![record]).await;
    let code = case_code(&s.gw, "NCSJ-CF-2024-000008").await;
    // Reset the peak (VmHWM) to the current resident size.
    std::fs::write("/proc/self/clear_refs", "5").expect("clear_refs");
    let (_, before) = peak_and_current_rss_kib();
    s.fetch_until_settled().await;
    let (peak, _) = peak_and_current_rss_kib();
    let growth_mib = peak.saturating_sub(before) / 1024;
    let listed = s.list(&code).await;
    assert_eq!(listed[0]["status"], "stored", "{listed:?}");
    assert_eq!(listed[0]["bytes"], 128 * 1024 * 1024);
    let mut expected = <sha2::Sha256 as sha2::Digest>::new();
    for i in 0..128 * 16 {
        sha2::Digest::update(&mut expected, vec![(i % 251) as u8; 64 * 1024]);
    }
    let expected = hex::encode(sha2::Digest::finalize(expected));
    assert_eq!(listed[0]["sha256"], expected.as_str());
    let on_disk = std::fs::metadata(s.gw.dir.path().join("objects/sha256").join(&expected)).expect("stored file");
    assert_eq!(on_disk.len(), 128 * 1024 * 1024);
    println!("peak RSS growth while storing 128 MiB: {growth_mib} MiB");
    assert!(
        growth_mib < 48,
        "peak memory grew by {growth_mib} MiB for a 128 MiB file"
    );
    s.gw.stop().await;
}

/// The S3 backend against a real S3-compatible server: a 20 MiB file goes up in several
/// multipart parts, a second copy of it is stored once, and downloads stream it back.
#[tokio::test]
async fn s3_store_keeps_each_content_once_and_serves_it_back() {
    let endpoint = s3_endpoint().await;
    let bucket = new_bucket(&endpoint).await;
    let s = setup(
        Backend::Sqlite,
        ObjectStore::S3 {
            endpoint: endpoint.clone(),
            bucket: bucket.clone(),
        },
        "",
    )
    .await;
    let mut first = nanchang_record(9, 0);
    first["fj"] = json!([{"lx": "video", "dz": format!("{}/files/mib-20.bin", s.peer_url)}]);
    let mut second = nanchang_record(10, 0);
    second["fj"] = json!([{"lx": "video", "dz": format!("{}/files/mib-20.bin", s.peer_url)},
        {"lx": "document", "nr": b64(b"small"), "wjm": "s.txt"}]);
    s.pull(vec![first, second]).await;
    s.fetch_until_settled().await;
    let a = s.list(&case_code(&s.gw, "NCSJ-CF-2024-000009").await).await;
    let b = s.list(&case_code(&s.gw, "NCSJ-CF-2024-000010").await).await;
    assert_eq!(a[0]["status"], "stored", "{a:?}");
    assert_eq!(a[0]["sha256"], b[0]["sha256"]);
    assert_eq!(b[1]["sha256"], sha(b"small").as_str());
    // The bucket holds the two contents, once each, under sha256/ (nothing left in tmp/).
    let listing = reqwest::Client::new()
        .get(format!("{endpoint}/{bucket}?list-type=2"))
        .send()
        .await
        .expect("list bucket")
        .text()
        .await
        .expect("listing");
    let keys: Vec<&str> = listing
        .split("<Key>")
        .skip(1)
        .filter_map(|k| k.split("</Key>").next())
        .collect();
    let mut expected = vec![
        format!("sha256/{}", a[0]["sha256"].as_str().unwrap()),
        format!("sha256/{}", sha(b"small")),
    ];
    expected.sort();
    let mut keys: Vec<String> = keys.into_iter().map(str::to_string).collect();
    keys.sort();
    assert_eq!(keys, expected, "{listing}");
    let link = b[1]["download_url"].as_str().expect("link");
    let (status, body) = s.download(link, None).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, b"small".as_slice()));
    let (status, body) = s
        .download(
            &format!("/api/attachments/{}", a[0]["sha256"].as_str().unwrap()),
            Some(ADMIN),
        )
        .await;
    assert_eq!((status, body.len()), (StatusCode::OK, 20 * 1024 * 1024));
    s.gw.stop().await;
}

/// The PostgreSQL sink (a real platform database) gets each stored attachment of a delivered
/// version in its `attachments` table with the content's hash and a signed link as `uri`, and
/// no inline content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_sink_gets_each_attachment_with_its_hash_and_a_signed_link() {
    let sink_db = support::common::PgDatabase::create().await;
    let sinks = format!(
        "[[sinks]]\nid = \"platform\"\nkind = \"postgres\"\nurl = \"{}\"\nschema = \"platform\"\npool_size = 2\n",
        sink_db.url
    );
    let s = setup_with_sinks(Backend::Sqlite, ObjectStore::Local, "", Some(sinks)).await;
    let content = b"photo bytes".to_vec();
    let mut record = nanchang_record(12, 0);
    record["fj"] = json!([{"lx": "image", "mc": "现场照片", "wjm": "p.jpg", "nr": b64(&content)}]);
    let code = code_of(&s.gw.push(&[record]).await);
    s.fetch_until_settled().await;
    s.deliver().await;
    let (client, connection) = tokio_postgres::connect(&sink_db.url, tokio_postgres::NoTls)
        .await
        .expect("sink database");
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT kind, title, sha256, uri FROM platform.attachments WHERE unified_code = $1",
            &[&code],
        )
        .await
        .expect("attachments table");
    assert_eq!(rows.len(), 1);
    let (kind, title, hash, uri): (String, String, String, String) =
        (rows[0].get(0), rows[0].get(1), rows[0].get(2), rows[0].get(3));
    assert_eq!((kind.as_str(), title.as_str()), ("image", "现场照片"));
    assert_eq!(hash, sha(&content));
    let (status, body) = s.download(&uri, None).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, content.as_slice()));
    let record: Value = client
        .query_one("SELECT record FROM platform.cases WHERE unified_code = $1", &[&code])
        .await
        .expect("case row")
        .get(0);
    assert!(record["attachments"][0].get("content_base64").is_none(), "{record}");
    assert_eq!(record["attachments"][0]["bytes"], content.len());
    s.gw.stop().await;
}

/// `gateway run --once` as a process: a drop folder's record names a file in its
/// `attachments/` folder; the run ingests the record, stores the file (once, by its hash) and
/// only then delivers the case, with the hash and a signed link, to the REST receiver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_run_once_stores_a_drop_folder_attachment_before_delivering_its_case() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = support::copy_mapping("nanchang-amr-penalty", dir.path()).join("mapping.toml");
    let text = std::fs::read_to_string(&mapping).unwrap();
    std::fs::write(
        &mapping,
        text.replace(
            "# ---------------------------------------------------------------- 处罚信息 / penalty",
            ATTACHMENTS_FIELD,
        ),
    )
    .unwrap();
    let (receiver, receiver_url) = start_receiver().await;
    std::fs::create_dir_all(dir.path().join("inbox/attachments")).unwrap();
    let video = vec![42u8; 3 * 1024 * 1024 + 17];
    std::fs::write(dir.path().join("inbox/attachments/jl.mp4"), &video).unwrap();
    let mut record = nanchang_record(13, 0);
    record["fj"] = json!([{"lx": "video", "wj": "jl.mp4", "sc": "95"}]);
    std::fs::write(dir.path().join("inbox/cases.jsonl"), format!("{record}\n")).unwrap();
    let config = format!(
        "[store]\nbackend = \"sqlite\"\npath = \"data/gateway.db\"\n\n[normalizer]\nprovince_prefix = \"36\"\n\n\
         [[sources]]\nid = \"drop\"\nkind = \"directory\"\ndirectory = \"inbox\"\nmapping = \"{}\"\nrecord_key = \"ajbh\"\n\n\
         [[sinks]]\nid = \"upload\"\nkind = \"rest\"\nurl = \"{receiver_url}\"\n\n\
         [attachments]\npath = \"objects\"\nlink_secret = \"run-once-key\"\n",
        mapping.display()
    );
    std::fs::write(dir.path().join("gateway.toml"), config).unwrap();
    let out = tokio::task::spawn_blocking({
        let config = dir.path().join("gateway.toml");
        move || {
            support::gateway()
                .args(["run", "--once", "--config"])
                .arg(&config)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let hash = sha(&video);
    let stored = std::fs::metadata(dir.path().join("objects/sha256").join(&hash)).expect("stored by its hash");
    assert_eq!(stored.len(), video.len() as u64);
    let bodies = receiver.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "the case was delivered once its attachment was stored");
    let sent: Value = serde_json::from_str(&bodies[0]).unwrap();
    let attachment = &sent["record"]["attachments"][0];
    assert_eq!(attachment["sha256"], hash.as_str());
    assert_eq!(attachment["duration_seconds"], 95.0);
    assert!(attachment["uri"]
        .as_str()
        .unwrap_or_default()
        .contains(&format!("/api/attachments/{hash}?expires=")));
}

/// A required attachment that runs out of attempts makes its delivery dead with the reason (it
/// would otherwise wait for ever and hold the case's later versions); the operator retries the
/// attachment, it is stored, and the re-driven delivery goes.
#[tokio::test]
async fn a_required_attachment_out_of_attempts_makes_the_delivery_dead_until_retried_and_redriven() {
    let s = setup(Backend::Sqlite, ObjectStore::Local, "fetch_max_attempts = 2\n").await;
    s.peer.failures.store(2, Ordering::SeqCst);
    let mut record = nanchang_record(14, 0);
    record["fj"] = json!([{"lx": "audio", "wjm": "询问.amr", "dz": format!("{}/files/a.amr", s.peer_url)}]);
    s.pull(vec![record]).await;
    let code = case_code(&s.gw, "NCSJ-CF-2024-000014").await;
    s.fetch_until_settled().await;
    assert_eq!(s.list(&code).await[0]["status"], "failed");
    s.deliver().await;
    let dead = s.delivery(&code).await;
    assert_eq!(dead["status"], "dead", "{dead}");
    let reason = dead["last_error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("a required attachment could not be stored") && reason.contains("503"),
        "{reason}"
    );
    assert!(s.receiver.bodies.lock().unwrap().is_empty());

    let (status, _) =
        s.gw.post(&format!("/api/cases/{code}/attachments/retry"), OPERATOR, json!({}))
            .await;
    assert_eq!(status, StatusCode::OK);
    s.fetch_until_settled().await;
    assert_eq!(s.list(&code).await[0]["status"], "stored");
    let id = dead["id"].as_i64().expect("delivery id");
    let (status, answer) =
        s.gw.post(&format!("/api/deliveries/{id}/redrive"), OPERATOR, json!({}))
            .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    s.deliver().await;
    assert_eq!(s.delivery(&code).await["status"], "delivered");
    assert_eq!(s.receiver.bodies.lock().unwrap().len(), 1);
    s.gw.stop().await;
}
