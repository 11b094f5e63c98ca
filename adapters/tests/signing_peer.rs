//! Request signatures against real HTTP peers on 127.0.0.1 that verify them the way a
//! departmental gateway does, each with its own implementation of its canonical string, and
//! refuse with 签名错误: the `sorted_params` style (HMAC-SHA256 upper-case hex over raw values,
//! HMAC-SM3 with the parameters in headers, a plain SM3 digest with the secret appended as a
//! parameter) for incremental GET pulls whose `since` holds spaces and colons and for POST pulls
//! with a JSON body, and the template style with `{sorted_query_raw}`.

mod support;

use adapters::sources::{PullMode, SourceError};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::any;
use axum::{Json, Router};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use sm3::{Digest as _, Sm3};
use std::sync::{Arc, Mutex};
use support::{run, serve, source};

/// How a peer checks a request (written independently of the gateway's code).
#[derive(Clone, Copy)]
enum Peer {
    /// 部门网关: appKey/timestamp/nonce/sign in the query; every non-empty parameter sorted,
    /// `k=v` joined by `&`, raw values, `&body=<raw>` for a POST; HMAC-SHA256, upper-case hex.
    Department,
    /// 国密: X-Ak/X-Ts/X-Nonce/X-Sign headers; sorted raw parameters including the three from
    /// the headers; HMAC-SM3, base64.
    Guomi,
    /// Plain SM3 over the sorted raw parameters followed by `&appSecret=<secret>`, lower hex.
    Sm3Digest,
    /// Template `{method}\n{path}\n{sorted_query_raw}\n{timestamp}` with headers; HMAC-SHA256.
    TemplateRaw,
}

const SECRET: &str = "部门-secret-1";

fn hmac_sha256(key: &[u8], text: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(text.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn hmac_sm3(key: &[u8], text: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sm3>::new_from_slice(key).unwrap();
    mac.update(text.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The query's parameters, decoded.
fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn joined_sorted(mut pairs: Vec<(String, String)>) -> String {
    pairs.retain(|(_, v)| !v.is_empty());
    pairs.sort();
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

impl Peer {
    /// Whether the request carries a valid signature.
    fn verifies(self, method: &str, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> bool {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let mut pairs = query_pairs(uri);
        match self {
            Peer::Department | Peer::Sm3Digest => {
                let Some(i) = pairs.iter().position(|(k, _)| k == "sign") else {
                    return false;
                };
                let sign = pairs.remove(i).1;
                if !pairs.iter().any(|(k, v)| k == "appKey" && v == "dept-app") {
                    return false;
                }
                let mut text = joined_sorted(pairs);
                if matches!(self, Peer::Department) {
                    if !body.is_empty() {
                        text.push_str(&format!("&body={}", String::from_utf8_lossy(body)));
                    }
                    sign == hex::encode_upper(hmac_sha256(SECRET.as_bytes(), &text))
                } else {
                    text.push_str(&format!("&appSecret={SECRET}"));
                    sign == hex::encode(Sm3::digest(text.as_bytes()))
                }
            }
            Peer::Guomi => {
                pairs.push(("ak".into(), header("x-ak")));
                pairs.push(("ts".into(), header("x-ts")));
                pairs.push(("nonce".into(), header("x-nonce")));
                let text = joined_sorted(pairs);
                header("x-ak") == "gm-app"
                    && header("x-sign")
                        == base64::engine::general_purpose::STANDARD.encode(hmac_sm3(SECRET.as_bytes(), &text))
            }
            Peer::TemplateRaw => {
                let text = format!(
                    "{method}\n{}\n{}\n{}",
                    uri.path(),
                    joined_sorted(pairs),
                    header("x-timestamp")
                );
                header("x-signature") == hex::encode(hmac_sha256(SECRET.as_bytes(), &text))
            }
        }
    }
}

/// What a peer saw: the `since` of each accepted request.
type Seen = Arc<Mutex<Vec<String>>>;

fn record(i: usize) -> Value {
    json!({"ajbh": format!("AJ{i:04}"), "gxsj": "2024-03-01 09:00:00"})
}

/// A peer on `/cases` that verifies with `peer`, serves 25 records in pages of 10 (page number
/// and `since` from the query, or from the JSON body of a POST) and refuses a bad signature.
async fn peer(peer: Peer) -> (std::net::SocketAddr, Seen) {
    let seen: Seen = Default::default();
    let s = seen.clone();
    let router = Router::new().route(
        "/cases",
        any(
            move |method: axum::http::Method, uri: Uri, headers: HeaderMap, body: Bytes| async move {
                if !peer.verifies(method.as_str(), &uri, &headers, &body) {
                    return (StatusCode::OK, Json(json!({"code": "40001", "msg": "签名错误"}))).into_response();
                }
                let (page, since) = if body.is_empty() {
                    let q = query_pairs(&uri);
                    let get = |n: &str| q.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
                    (
                        get("pageNo").and_then(|p| p.parse().ok()).unwrap_or(1usize),
                        get("since").unwrap_or_default(),
                    )
                } else {
                    let b: Value = serde_json::from_slice(&body).unwrap();
                    (
                        b["pageNo"].as_u64().unwrap_or(1) as usize,
                        b["since"].as_str().unwrap_or_default().to_string(),
                    )
                };
                s.lock().unwrap().push(since);
                let items: Vec<Value> = ((page - 1) * 10..(page * 10).min(25)).map(record).collect();
                Json(json!({"code": "0", "data": {"list": items}})).into_response()
            },
        ),
    );
    (serve(router).await, seen)
}

/// A GET source, incremental on `gxsj`, with `since` written `%Y-%m-%d %H:%M:%S`.
fn incremental_get(addr: std::net::SocketAddr, auth: &str) -> String {
    format!(
        r#"
url = "http://{addr}/cases"
query = {{ region = "360100", empty = "" }}
pagination = "page"
page_param = "pageNo"
page_size_param = "pageSize"
page_size = 10
records_path = "data.list"
status_path = "code"
message_path = "msg"
watermark_path = "gxsj"
since_param = "since"
overlap_seconds = 0
auth = {auth}
"#
    )
}

/// The cursor of an earlier run: the next `since` is `2024-03-01 08:00:00` China time.
const CURSOR: &str = "2024-03-01T00:00:00.000Z";

async fn pull_ok(peer_kind: Peer, auth: &str) -> Seen {
    let (addr, seen) = peer(peer_kind).await;
    let src = source("rest", &incremental_get(addr, auth));
    let result = run(&src, Some(CURSOR), PullMode::Incremental).await;
    assert!(result.error.is_none(), "{:?}", result.error);
    assert_eq!(result.records.len(), 25);
    seen
}

#[tokio::test]
async fn department_sorted_params_with_raw_values_pass_an_incremental_pull_with_spaces_and_colons() {
    let seen = pull_ok(
        Peer::Department,
        r#"{ kind = "hmac", style = "sorted_params", app_key = "dept-app", app_secret = "部门-secret-1", app_key_param = "appKey", timestamp_param = "timestamp", nonce_param = "nonce", signature_param = "sign", encode_values = false, body = "param", signature_encoding = "HEX" }"#,
    )
    .await;
    assert_eq!(*seen.lock().unwrap(), vec!["2024-03-01 08:00:00"; 3]);
}

#[tokio::test]
async fn the_template_with_url_encoded_sorted_query_is_refused_where_raw_values_are_signed() {
    // What failed before `sorted_params`: the template placed appKey/timestamp/nonce around an
    // URL-encoded `{sorted_query}`; a full pull (no `since`) may pass, an incremental one not.
    let (addr, _) = peer(Peer::TemplateRaw).await;
    let src = source(
        "rest",
        &incremental_get(
            addr,
            r#"{ kind = "hmac", app_key = "k", app_secret = "部门-secret-1", string_to_sign = "{method}\n{path}\n{sorted_query}\n{timestamp}" }"#,
        ),
    );
    let result = run(&src, Some(CURSOR), PullMode::Incremental).await;
    let Some(SourceError::Answer { code, message }) = &result.error else {
        panic!("{:?}", result.error)
    };
    assert_eq!((code.as_str(), message.as_str()), ("40001", "签名错误"));
    assert!(result.records.is_empty());
}

#[tokio::test]
async fn the_template_style_signs_raw_values_with_sorted_query_raw() {
    let seen = pull_ok(
        Peer::TemplateRaw,
        r#"{ kind = "hmac", app_key = "k", app_secret = "部门-secret-1", string_to_sign = "{method}\n{path}\n{sorted_query_raw}\n{timestamp}" }"#,
    )
    .await;
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn hmac_sm3_with_the_auth_parameters_in_headers_is_verified() {
    let seen = pull_ok(
        Peer::Guomi,
        r#"{ kind = "hmac", style = "sorted_params", algorithm = "hmac-sm3", signature_encoding = "base64", auth_params_in = "headers", app_key = "gm-app", app_secret = "部门-secret-1", app_key_param = "ak", timestamp_param = "ts", app_key_header = "X-Ak", timestamp_header = "X-Ts", nonce_header = "X-Nonce", signature_header = "X-Sign" }"#,
    )
    .await;
    assert_eq!(*seen.lock().unwrap(), vec!["2024-03-01 08:00:00"; 3]);
}

#[tokio::test]
async fn a_plain_sm3_digest_with_the_secret_appended_as_a_parameter_is_verified() {
    pull_ok(
        Peer::Sm3Digest,
        r#"{ kind = "hmac", style = "sorted_params", algorithm = "sm3", secret_param = "appSecret", app_key = "dept-app", app_secret = "部门-secret-1" }"#,
    )
    .await;
}

#[tokio::test]
async fn a_post_with_a_json_body_signs_the_raw_body_as_the_body_parameter() {
    let (addr, seen) = peer(Peer::Department).await;
    let src = source(
        "rest",
        &format!(
            r#"
url = "http://{addr}/cases?channel=gw"
method = "POST"
body_template = '{{"pageNo": {{{{page}}}}, "pageSize": {{{{page_size}}}}, "since": {{{{since}}}}, "region": "南昌 东湖区"}}'
pagination = "page"
page_size = 10
records_path = "data.list"
status_path = "code"
message_path = "msg"
watermark_path = "gxsj"
overlap_seconds = 0
auth = {{ kind = "hmac", style = "sorted_params", app_key = "dept-app", app_secret = "部门-secret-1", body = "param", signature_encoding = "HEX" }}
"#
        ),
    );
    let result = run(&src, Some(CURSOR), PullMode::Incremental).await;
    assert!(result.error.is_none(), "{:?}", result.error);
    assert_eq!(result.records.len(), 25);
    assert_eq!(*seen.lock().unwrap(), vec!["2024-03-01 08:00:00"; 3]);
}

#[tokio::test]
async fn a_wrong_secret_or_a_missing_body_is_refused_with_the_peers_message() {
    for auth in [
        r#"{ kind = "hmac", style = "sorted_params", app_key = "dept-app", app_secret = "wrong", body = "param", signature_encoding = "HEX" }"#,
        // The peer signs the body; leaving it out of the string does not match.
        r#"{ kind = "hmac", style = "sorted_params", app_key = "dept-app", app_secret = "部门-secret-1", body = "none", signature_encoding = "HEX" }"#,
    ] {
        let (addr, _) = peer(Peer::Department).await;
        let src = source(
            "rest",
            &format!(
                r#"
url = "http://{addr}/cases"
method = "POST"
body_template = '{{"pageNo": 1}}'
records_path = "data.list"
status_path = "code"
message_path = "msg"
auth = {auth}
"#
            ),
        );
        let result = run(&src, None, PullMode::Incremental).await;
        let error = result.error.expect("refused").to_string();
        assert!(error.contains("签名错误") && error.contains("40001"), "{error}");
    }
}

#[test]
fn misconfigured_signing_keys_are_named_in_chinese_and_english() {
    let check = |auth: &str| {
        let table: toml::Table = format!("url = \"http://127.0.0.1/x\"\nauth = {auth}").parse().unwrap();
        adapters::sources::check_settings("rest", &table, std::path::Path::new("/"))
    };
    let problems = check(
        r#"{ kind = "hmac", style = "sorted_params", app_key = "a", app_secret = "s", algorithm = "md5", body = "form", auth_params_in = "cookie", string_to_sign = "{path}" }"#,
    );
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "auth.algorithm",
            "auth.string_to_sign",
            "auth.auth_params_in",
            "auth.body"
        ]
    );
    assert!(problems[0].message.contains("hmac-sm3") && problems[0].message.contains("应为"));
    let plain =
        check(r#"{ kind = "hmac", style = "sorted_params", app_key = "a", app_secret = "s", algorithm = "sm3" }"#);
    assert_eq!(plain.len(), 1);
    assert_eq!(plain[0].key, "auth.algorithm");
    assert!(plain[0].message.contains("secret_param"), "{}", plain[0].message);
    let misplaced = check(r#"{ kind = "hmac", app_key = "a", app_secret = "s", encode_values = true }"#);
    assert_eq!(misplaced[0].key, "auth.encode_values");
    assert!(misplaced[0].message.contains("sorted_params"));
}
