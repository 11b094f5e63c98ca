//! The two simulated departmental systems `gateway demo` pulls from, started in-process on
//! 127.0.0.1. Each behaves like the legacy systems the gateway meets in the field:
//!
//! - a REST/JSON penalty system (南昌市市场监督管理局, pinyin field names, mixed date formats,
//!   amounts in 万元): a token endpoint whose tokens expire, a business status envelope
//!   (`{"code":"0000","msg":"成功","data":{"total":..,"list":[..]}}`), page-number paging, an
//!   update-time filter for incremental pulls, and an HTTP 500 every few requests;
//! - a SOAP 1.1 ecology system (九江市生态环境局) answering in GBK, requiring a WS-Security
//!   UsernameToken with a password digest, paging by page number, and failing once with a SOAP
//!   fault and HTTP 500.
//!
//! Both serve the example mappings' sample records (valid and defective) plus generated
//! valid records, so the demo shows acceptance and quarantine side by side.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Credentials of the REST system's token endpoint.
pub const REST_APP_ID: &str = "demo-gateway";
/// Secret of the REST system (a demo value, not a real secret).
pub const REST_APP_SECRET: &str = "demo-secret-2024";
/// User name of the SOAP system's WS-Security.
pub const SOAP_USER: &str = "gateway";
/// Password of the SOAP system (a demo value).
pub const SOAP_PASSWORD: &str = "demo-password";

/// Tokens live this long, seconds (short, so the demo shows a refresh).
const TOKEN_TTL_SECONDS: u64 = 20;

/// Every n-th request fails with HTTP 500.
const REST_FAIL_EVERY: u64 = 5;
/// The SOAP system fails its third request with a fault (faults end a pull run; the next run
/// starts again and finds the records already committed unchanged).
const SOAP_FAILING_REQUEST: u64 = 3;

/// What each simulated system has served (for the demo's summary).
#[derive(Debug, Default)]
pub struct PeerCounters {
    /// Requests answered.
    pub requests: AtomicU64,
    /// Of which deliberate failures (HTTP 500 / SOAP fault).
    pub failures: AtomicU64,
    /// Tokens issued.
    pub tokens: AtomicU64,
}

struct RestState {
    records: Vec<Value>,
    tokens: Mutex<HashMap<String, std::time::Instant>>,
    counters: Arc<PeerCounters>,
}

struct SoapState {
    cases: Vec<String>,
    counters: Arc<PeerCounters>,
}

/// The running simulated systems.
pub struct Peers {
    /// Base URL of the REST system.
    pub rest_url: String,
    /// Endpoint of the SOAP service.
    pub soap_url: String,
    /// Records the REST system holds.
    pub rest_records: usize,
    /// Records the SOAP system holds.
    pub soap_records: usize,
    /// REST request counters.
    pub rest: Arc<PeerCounters>,
    /// SOAP request counters.
    pub soap: Arc<PeerCounters>,
    /// Upload URL of the simulated provincial credit platform (双公示).
    pub credit_url: String,
    /// The bodies it received.
    pub credit: Arc<Mutex<Vec<Value>>>,
}

/// The simulated credit platform: keeps every body uploaded to it and answers 200.
async fn credit_upload(State(received): State<Arc<Mutex<Vec<Value>>>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) => {
            if let Ok(mut r) = received.lock() {
                r.push(v);
            }
            (StatusCode::OK, "{\"code\":\"0000\",\"msg\":\"成功\"}").into_response()
        }
        Err(_) => (StatusCode::BAD_REQUEST, "{\"code\":\"9001\",\"msg\":\"报文不是JSON\"}").into_response(),
    }
}

/// The REST system's records: the sample file's records plus `extra` generated valid ones,
/// each with an update time `cd_time` (epoch milliseconds), oldest first.
pub fn rest_records(samples: &str, extra: usize) -> Vec<Value> {
    let samples: Vec<Value> = samples
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let valid: Vec<&Value> = samples
        .iter()
        .filter(|r| r["_sample_note"].as_str().is_some_and(|n| n.starts_with("合规")))
        .filter(|r| r["cd_operation"].as_str().is_none_or(|op| op.eq_ignore_ascii_case("i")))
        .collect();
    let base_ms: u64 = 1_717_200_000_000; // 2024-06-01
    let mut out = Vec::new();
    for (i, r) in samples.iter().enumerate() {
        let mut r = r.clone();
        if let Some(o) = r.as_object_mut() {
            o.remove("_sample_note");
            o.insert("cd_time".into(), json!((base_ms + i as u64 * 1000).to_string()));
        }
        out.push(r);
    }
    for i in 0..extra {
        let Some(template) = valid.get(i % valid.len().max(1)) else {
            break;
        };
        let mut r = (*template).clone();
        if let Some(o) = r.as_object_mut() {
            o.remove("_sample_note");
            o.insert("ajbh".into(), json!(format!("NCSJ-CF-DEMO-{i:05}")));
            o.insert("cfjdswh".into(), json!(format!("洪市监罚〔2024〕D{i}号")));
            let t = base_ms + (samples.len() + i) as u64 * 1000;
            o.insert("cd_time".into(), json!(t.to_string()));
        }
        out.push(r);
    }
    out
}

/// The SOAP system's `<case>` elements, as text, from the sample document.
pub fn soap_cases(sample_xml: &str) -> Vec<String> {
    let mut cases = Vec::new();
    let mut rest = sample_xml;
    while let Some(start) = rest.find("<case ").or_else(|| rest.find("<case>")) {
        let Some(len) = rest[start..].find("</case>") else {
            break;
        };
        let end = start + len + "</case>".len();
        cases.push(rest[start..end].to_string());
        rest = &rest[end..];
    }
    cases
}

fn envelope(code: &str, msg: &str, data: Value) -> Json<Value> {
    Json(json!({"code": code, "msg": msg, "data": data}))
}

async fn rest_token(State(s): State<Arc<RestState>>, Json(body): Json<Value>) -> Response {
    s.counters.requests.fetch_add(1, Ordering::Relaxed);
    if body["appId"] != REST_APP_ID || body["appSecret"] != REST_APP_SECRET {
        return envelope("4001", "应用凭证错误", Value::Null).into_response();
    }
    let n = s.counters.tokens.fetch_add(1, Ordering::Relaxed);
    let token = format!("tk-{n}-{}", fastrand::u64(..));
    if let Ok(mut tokens) = s.tokens.lock() {
        tokens.insert(token.clone(), std::time::Instant::now());
    }
    envelope(
        "0000",
        "成功",
        json!({"accessToken": token, "expiresIn": TOKEN_TTL_SECONDS}),
    )
    .into_response()
}

async fn rest_cases(
    State(s): State<Arc<RestState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let n = s.counters.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let valid = s.tokens.lock().ok().and_then(|t| t.get(token).copied());
    match valid {
        Some(issued) if issued.elapsed().as_secs() < TOKEN_TTL_SECONDS => {}
        _ => {
            return (
                StatusCode::UNAUTHORIZED,
                envelope("4010", "令牌无效或已过期", Value::Null),
            )
                .into_response()
        }
    }
    if n % REST_FAIL_EVERY == 0 {
        s.counters.failures.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::INTERNAL_SERVER_ERROR, "系统繁忙，请稍后再试").into_response();
    }
    let page: usize = q.get("pageNo").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let size: usize = q
        .get("pageSize")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .clamp(1, 500);
    let since: u64 = q.get("updateTimeBegin").and_then(|v| v.parse().ok()).unwrap_or(0);
    let matching: Vec<&Value> = s
        .records
        .iter()
        .filter(|r| r["cd_time"].as_str().and_then(|t| t.parse::<u64>().ok()).unwrap_or(0) >= since)
        .collect();
    let list: Vec<&Value> = matching.iter().skip((page - 1) * size).take(size).copied().collect();
    envelope("0000", "成功", json!({"total": matching.len(), "list": list})).into_response()
}

fn text_between<'a>(xml: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = xml.find(open)? + open.len();
    let len = xml[start..].find(close)?;
    Some(&xml[start..start + len])
}

/// Check a WS-Security UsernameToken with a password digest:
/// Base64(SHA-1(nonce + created + password)).
fn digest_ok(request: &str) -> bool {
    let user = text_between(request, "Username>", "</").unwrap_or_default();
    let digest = request
        .find("PasswordDigest")
        .and_then(|i| text_between(&request[i..], ">", "</"))
        .unwrap_or_default();
    let nonce = text_between(request, "Nonce", "</")
        .and_then(|s| s.split_once('>').map(|(_, v)| v))
        .unwrap_or_default();
    let created = text_between(request, "Created>", "</").unwrap_or_default();
    let Ok(nonce) = base64::engine::general_purpose::STANDARD.decode(nonce.trim()) else {
        return false;
    };
    let mut h = Sha1::new();
    h.update(&nonce);
    h.update(created.trim().as_bytes());
    h.update(SOAP_PASSWORD.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(h.finalize());
    user.trim() == SOAP_USER && digest.trim() == expected
}

fn soap_fault(code: &str, text: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"GBK\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">\
         <soap:Body><soap:Fault><faultcode>{code}</faultcode><faultstring>{text}</faultstring></soap:Fault></soap:Body></soap:Envelope>"
    )
}

fn gbk_xml(status: StatusCode, text: &str) -> Response {
    let (bytes, _, _) = encoding_rs::GBK.encode(text);
    (status, [("content-type", "text/xml; charset=GBK")], bytes.into_owned()).into_response()
}

async fn soap_service(State(s): State<Arc<SoapState>>, body: Bytes) -> Response {
    let n = s.counters.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let request = String::from_utf8_lossy(&body);
    if !digest_ok(&request) {
        return gbk_xml(
            StatusCode::INTERNAL_SERVER_ERROR,
            &soap_fault("soap:Client", "WS-Security 认证失败 / authentication failed"),
        );
    }
    if n == SOAP_FAILING_REQUEST {
        s.counters.failures.fetch_add(1, Ordering::Relaxed);
        return gbk_xml(
            StatusCode::INTERNAL_SERVER_ERROR,
            &soap_fault("soap:Server", "数据库连接超时 / database connection timed out"),
        );
    }
    let page: usize = text_between(&request, "<pageNo>", "</pageNo>")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1usize)
        .max(1);
    let size: usize = text_between(&request, "<pageSize>", "</pageSize>")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(10usize)
        .clamp(1, 500);
    let cases: String = s.cases.iter().skip((page - 1) * size).take(size).cloned().collect();
    let answer = format!(
        "<?xml version=\"1.0\" encoding=\"GBK\"?>\n<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">\
         <soap:Body><ns2:queryCasesResponse xmlns:ns2=\"http://ws.zfxt.sthjt.jiangxi.gov.cn/\"><return>\
         <total>{}</total>{cases}</return></ns2:queryCasesResponse></soap:Body></soap:Envelope>",
        s.cases.len()
    );
    gbk_xml(StatusCode::OK, &answer)
}

async fn serve(router: Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "simulated system stopped");
        }
    });
    Ok(addr)
}

/// Start both simulated systems with the example mappings' samples (from `mappings`) and
/// `extra_rest` generated REST records.
pub async fn start(mappings: &Path, extra_rest: usize) -> std::io::Result<Peers> {
    let samples = std::fs::read_to_string(mappings.join("nanchang-amr-penalty/samples/records.jsonl"))?;
    let xml = std::fs::read_to_string(mappings.join("jiangxi-ecology-soap/samples/records.xml"))?;
    let rest_state = Arc::new(RestState {
        records: rest_records(&samples, extra_rest),
        tokens: Mutex::default(),
        counters: Arc::default(),
    });
    let soap_state = Arc::new(SoapState {
        cases: soap_cases(&xml),
        counters: Arc::default(),
    });
    let rest_router = Router::new()
        .route("/api/v1/auth/token", post(rest_token))
        .route("/api/v1/penalty/cases", get(rest_cases))
        .with_state(Arc::clone(&rest_state));
    let soap_router = Router::new()
        .route("/services/CaseService", post(soap_service))
        .with_state(Arc::clone(&soap_state));
    let credit: Arc<Mutex<Vec<Value>>> = Arc::default();
    let credit_router = Router::new()
        .route("/api/sgs/xzcf", post(credit_upload))
        .with_state(Arc::clone(&credit));
    let rest_addr = serve(rest_router).await?;
    let soap_addr = serve(soap_router).await?;
    let credit_addr = serve(credit_router).await?;
    Ok(Peers {
        rest_url: format!("http://{rest_addr}"),
        soap_url: format!("http://{soap_addr}/services/CaseService"),
        rest_records: rest_state.records.len(),
        soap_records: soap_state.cases.len(),
        rest: Arc::clone(&rest_state.counters),
        soap: Arc::clone(&soap_state.counters),
        credit_url: format!("http://{credit_addr}/api/sgs/xzcf"),
        credit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mappings() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings")
    }

    #[test]
    fn rest_system_serves_samples_and_generated_records_with_update_times() {
        let samples = std::fs::read_to_string(mappings().join("nanchang-amr-penalty/samples/records.jsonl")).unwrap();
        let records = rest_records(&samples, 100);
        assert_eq!(records.len(), 124);
        assert!(records
            .iter()
            .all(|r| r.get("_sample_note").is_none() && r["cd_time"].is_string()));
        let keys: std::collections::HashSet<_> = records.iter().map(|r| r["ajbh"].to_string()).collect();
        assert!(keys.len() >= 120, "generated records have keys of their own");
    }

    #[test]
    fn soap_system_serves_every_sample_case_element() {
        let xml = std::fs::read_to_string(mappings().join("jiangxi-ecology-soap/samples/records.xml")).unwrap();
        let cases = soap_cases(&xml);
        assert_eq!(cases.len(), 24);
        assert!(cases.iter().all(|c| c.starts_with("<case") && c.ends_with("</case>")));
    }
}
