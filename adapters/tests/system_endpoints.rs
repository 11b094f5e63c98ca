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
