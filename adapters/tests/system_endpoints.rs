//! The endpoints of one legacy system, pulled as separate sources over one shared connection
//! ([`adapters::sources::SystemClients`]), against a real HTTP peer on 127.0.0.1 that counts
//! requests across all its endpoints: the system's rate limit holds for the system as a whole,
//! one token serves every endpoint, and each endpoint keeps its own health counters.

mod support;

use adapters::sources::{build_in, PullMode, PullSource, SystemClients};
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use support::{run, serve, Instants};

const ENDPOINTS: [&str; 3] = ["inspections", "penalties", "coercions"];

/// A system with three endpoints of 20 records each (pages of 5), behind a token.
async fn system_peer(instants: Instants, tokens: Arc<AtomicUsize>) -> std::net::SocketAddr {
    let mut router = Router::new().route(
        "/auth/token",
        post(move || {
            let tokens = tokens.clone();
            async move {
                let n = tokens.fetch_add(1, SeqCst) + 1;
                Json(json!({"access_token": format!("tok-{n}"), "expires_in": 3600}))
            }
        }),
    );
    for name in ENDPOINTS {
        let instants = instants.clone();
        router = router.route(
            &format!("/api/v1/{name}"),
            get(move |headers: HeaderMap, Query(q): Query<HashMap<String, String>>| {
                let instants = instants.clone();
                async move {
                    let token = headers.get("authorization").and_then(|v| v.to_str().ok());
                    if !token.is_some_and(|t| t.starts_with("Bearer tok-")) {
                        return (StatusCode::UNAUTHORIZED, "token").into_response();
                    }
                    instants.note();
                    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                    let items: Vec<_> = ((page - 1) * 5..(page * 5).min(20))
                        .map(|i| json!({"ajbh": format!("{name}-{i}")}))
                        .collect();
                    Json(json!({"data": items})).into_response()
                }
            }),
        );
    }
    serve(router).await
}

fn endpoint_table(addr: std::net::SocketAddr, name: &str) -> toml::Table {
    format!(
        r#"
url = "http://{addr}/api/v1/{name}"
pagination = "page"
page_size = 5
records_path = "data"
rate_limit_per_second = 5
auth = {{ kind = "token", token_url = "http://{addr}/auth/token", username = "gw", password = "p" }}
"#
    )
    .parse()
    .unwrap()
}

#[tokio::test]
async fn endpoints_of_one_system_share_its_rate_limit_and_its_token() {
    let instants = Instants::default();
    let tokens = Arc::new(AtomicUsize::new(0));
    let addr = system_peer(instants.clone(), tokens.clone()).await;
    let systems = SystemClients::default();
    let sources: Vec<Arc<dyn PullSource>> = ENDPOINTS
        .iter()
        .map(|name| {
            build_in(
                &format!("nanchang-amr.{name}"),
                "rest",
                &endpoint_table(addr, name),
                Path::new("/"),
                Some(("nanchang-amr", &systems)),
            )
            .unwrap()
        })
        .collect();
    assert_eq!(systems.systems(), ["nanchang-amr"]);
    let (a, b, c) = tokio::join!(
        run(&sources[0], None, PullMode::Incremental),
        run(&sources[1], None, PullMode::Incremental),
        run(&sources[2], None, PullMode::Incremental),
    );
    for (result, name) in [a, b, c].iter().zip(ENDPOINTS) {
        assert!(result.error.is_none(), "{name}: {:?}", result.error);
        let expected: Vec<String> = (0..20).map(|i| format!("{name}-{i}")).collect();
        assert_eq!(result.field("ajbh"), expected);
    }
    // 5 pages per endpoint (the fifth one empty), 15 requests: at 5 per second for the system,
    // 5 (and the burst of 1, and some leeway for scheduling) in any second; three limits of
    // their own would let up to 15 through in one.
    assert_eq!(instants.count(), 15);
    let most = instants.max_per_second();
    assert!(most <= 7, "{most} requests in one second");
    assert_eq!(tokens.load(SeqCst), 1, "one token for the whole system");
    for s in &sources {
        let health = s.health();
        assert_eq!(
            (health.requests, health.failures),
            (5, 0),
            "each endpoint counts its own requests"
        );
    }
}

#[tokio::test]
async fn a_source_of_its_own_keeps_its_own_connection_and_limit() {
    let instants = Instants::default();
    let tokens = Arc::new(AtomicUsize::new(0));
    let addr = system_peer(instants.clone(), tokens.clone()).await;
    let systems = SystemClients::default();
    let a = build_in("a", "rest", &endpoint_table(addr, "penalties"), Path::new("/"), None).unwrap();
    let b = build_in("b", "rest", &endpoint_table(addr, "coercions"), Path::new("/"), None).unwrap();
    assert!(systems.systems().is_empty());
    let (ra, rb) = tokio::join!(
        run(&a, None, PullMode::Incremental),
        run(&b, None, PullMode::Incremental)
    );
    assert!(ra.error.is_none() && rb.error.is_none());
    // Two connections, two token caches.
    assert_eq!(tokens.load(SeqCst), 2);
    assert_eq!(a.health().requests + b.health().requests, 10);
}

/// A SOAP system with one address and one operation per endpoint (told apart by `SOAPAction`),
/// 5 records per operation in pages of 2.
async fn soap_peer(instants: Instants) -> std::net::SocketAddr {
    let router = Router::new().route(
        "/ws/CaseService",
        post(move |headers: HeaderMap, body: String| {
            let instants = instants.clone();
            async move {
                instants.note();
                let action = headers
                    .get("soapaction")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .trim_matches('"')
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let page: usize = body
                    .split_once("<page>")
                    .and_then(|(_, rest)| rest.split_once("</page>"))
                    .and_then(|(n, _)| n.trim().parse().ok())
                    .unwrap_or(1);
                let cases: String = ((page - 1) * 2..(page * 2).min(5))
                    .map(|i| format!("<case><ajbh>{action}-{i}</ajbh></case>"))
                    .collect();
                (
                    [("content-type", "text/xml; charset=utf-8")],
                    format!(
                        r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><queryResponse><cases>{cases}</cases></queryResponse></soapenv:Body></soapenv:Envelope>"#
                    ),
                )
            }
        }),
    );
    serve(router).await
}

#[tokio::test]
async fn soap_operations_of_one_system_share_its_rate_limit_and_keep_their_own_action() {
    let instants = Instants::default();
    let addr = soap_peer(instants.clone()).await;
    let systems = SystemClients::default();
    let operations = ["queryPenalties", "queryInspections"];
    let sources: Vec<Arc<dyn PullSource>> = operations
        .iter()
        .map(|op| {
            let table: toml::Table = format!(
                r#"
url = "http://{addr}/ws/CaseService"
action = "http://ws.example/{op}"
envelope_template = '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><q><page>{{{{page}}}}</page><size>{{{{page_size}}}}</size></q></soapenv:Body></soapenv:Envelope>'
records_path = "Envelope.Body.queryResponse.cases.case"
pagination = "page"
page_size = 2
rate_limit_per_second = 4
"#
            )
            .parse()
            .unwrap();
            build_in(&format!("jiangxi-ecology.{op}"), "soap", &table, Path::new("/"), Some(("jiangxi-ecology", &systems))).unwrap()
        })
        .collect();
    let (a, b) = tokio::join!(
        run(&sources[0], None, PullMode::Incremental),
        run(&sources[1], None, PullMode::Incremental)
    );
    for (result, op) in [a, b].iter().zip(operations) {
        assert!(result.error.is_none(), "{op}: {:?}", result.error);
        let expected: Vec<String> = (0..5).map(|i| format!("{op}-{i}")).collect();
        assert_eq!(result.field("ajbh"), expected, "each operation its own records");
    }
    // 3 pages per operation (the third one short): 6 requests at 4 per second for the system,
    // so at most 4 (and some leeway) in any second; two limits of their own would let all 6
    // through in one.
    assert_eq!(instants.count(), 6);
    let most = instants.max_per_second();
    assert!(most <= 5, "{most} requests in one second");
    assert_eq!(sources[0].health().requests + sources[1].health().requests, 6);
    assert_eq!(sources[0].health().requests, 3);
}
