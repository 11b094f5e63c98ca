//! The REST sink offers the pull adapters' authentication: a token from a token endpoint,
//! refreshed after a 401, and HMAC-signed requests, against real peers on 127.0.0.1.

mod support;

use adapters::sinks::encode::sample_delivery;
use adapters::sinks::rest::{RestSettings, RestSink};
use adapters::sinks::{Outcome, Sink};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{post, put};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use support::serve;

fn sink(text: &str) -> RestSink {
    let settings: RestSettings = toml::from_str(text).unwrap();
    assert!(
        settings.check(Path::new("/")).is_empty(),
        "{:?}",
        settings.check(Path::new("/"))
    );
    RestSink::new("upload", &settings, Path::new("/")).unwrap()
}

fn batch(n: usize) -> Vec<adapters::sinks::Delivery> {
    (0..n)
        .map(|i| {
            let mut d = sample_delivery();
            d.outbox_id = i as i64;
            d.idempotency_key = format!("CF20243601020000001Y:{}", i + 1);
            d
        })
        .collect()
}

#[tokio::test]
async fn the_sink_fetches_a_token_and_refreshes_it_after_a_401() {
    let tokens = Arc::new(AtomicUsize::new(0));
    let uses: Arc<Mutex<HashMap<String, usize>>> = Default::default();
    let (t, u) = (tokens.clone(), uses.clone());
    let router = Router::new()
        .route(
            "/token",
            post(move |Json(body): Json<serde_json::Value>| async move {
                if body != json!({"appId": "gw", "appSecret": "s-1"}) {
                    return StatusCode::FORBIDDEN.into_response();
                }
                let k = t.fetch_add(1, SeqCst) + 1;
                Json(json!({"access_token": format!("t{k}"), "expires_in": 7200})).into_response()
            }),
        )
        .route(
            "/up",
            post(move |headers: HeaderMap| async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let mut uses = u.lock().unwrap();
                let n = uses.entry(auth.clone()).or_default();
                *n += 1;
                if !auth.starts_with("Bearer t") || *n > 2 {
                    return StatusCode::UNAUTHORIZED;
                }
                StatusCode::OK
            }),
        );
    let addr = serve(router).await;
    let s = sink(&format!(
        "url = \"http://{addr}/up\"\nconcurrency = 1\nauth = {{ kind = \"token\", token_url = \"http://{addr}/token\", token_format = \"json\", client_id = \"gw\", client_id_field = \"appId\", client_secret = \"s-1\", client_secret_field = \"appSecret\" }}"
    ));
    let outcomes = s.deliver(&batch(3)).await;
    assert_eq!(outcomes, vec![Outcome::Delivered; 3]);
    assert_eq!(tokens.load(SeqCst), 2, "one refresh after the 401");
}

#[tokio::test]
async fn the_sink_signs_requests_with_hmac_and_keeps_its_old_bearer_keys() {
    let seen = Arc::new(AtomicUsize::new(0));
    let s2 = seen.clone();
    let router = Router::new()
        .route(
            "/cases/{code}",
            put(move |uri: Uri, headers: HeaderMap, body: Bytes| async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                let canonical = format!(
                    "PUT&{}&{}&{}",
                    uri.path(),
                    h("x-timestamp"),
                    hex::encode(Sha256::digest(&body))
                );
                let mut mac = Hmac::<Sha256>::new_from_slice(b"k-secret").unwrap();
                mac.update(canonical.as_bytes());
                let expected =
                    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, mac.finalize().into_bytes());
                if h("x-signature") != expected || h("x-app-key") != "app-1" {
                    return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
                }
                s2.fetch_add(1, SeqCst);
                StatusCode::NO_CONTENT.into_response()
            }),
        )
        .route(
            "/bearer",
            post(|headers: HeaderMap| async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer fixed") {
                    StatusCode::OK
                } else {
                    StatusCode::UNAUTHORIZED
                }
            }),
        );
    let addr = serve(router).await;
    let signed = sink(&format!(
        "url = \"http://{addr}/cases/{{{{unified_code}}}}\"\nmethod = \"PUT\"\nauth = {{ kind = \"hmac\", app_key = \"app-1\", app_secret = \"k-secret\", string_to_sign = \"{{method}}&{{path}}&{{timestamp}}&{{body_sha256}}\", signature_encoding = \"base64\", timestamp_format = \"seconds\" }}"
    ));
    assert_eq!(signed.deliver(&batch(2)).await, vec![Outcome::Delivered; 2]);
    assert_eq!(seen.load(SeqCst), 2);
    let bearer = sink(&format!(
        "url = \"http://{addr}/bearer\"\nauth = {{ kind = \"bearer\", token = \"fixed\" }}"
    ));
    assert_eq!(bearer.deliver(&batch(1)).await, vec![Outcome::Delivered]);
}
