//! A pull source's credentials go only to its own origin: two real HTTP peers on 127.0.0.1 on
//! different ports (two origins), the source's own one pointing to the other by a next link,
//! an HTTP redirect, or a redirect of its token endpoint. The other peer records every request
//! and the credentials it carried.

mod support;

use adapters::common::http_error::Hop;
use adapters::sources::{PullMode, SourceError};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use support::{assert_exactly_once, run, serve, source};

const KEY: &str = "k-3f0c-secret";

fn record(i: usize) -> Value {
    json!({"ajbh": format!("AJ{i:04}")})
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("AJ{i:04}")).collect()
}

/// One request the other origin saw: its path (and body), its `X-Api-Key` and `Authorization`.
type Request = (String, Option<String>, Option<String>);

/// What the other origin saw.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Request>>>);

impl Seen {
    fn note(&self, path: &str, headers: &HeaderMap) {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        self.0
            .lock()
            .unwrap()
            .push((path.to_string(), header("x-api-key"), header("authorization")));
    }

    fn requests(&self) -> Vec<Request> {
        self.0.lock().unwrap().clone()
    }
}

/// The other origin: `/feed` answers records 3..6 (the last page), `/token` a token.
async fn other_origin(seen: &Seen) -> SocketAddr {
    let (s1, s2) = (seen.clone(), seen.clone());
    serve(
        Router::new()
            .route(
                "/feed",
                get(move |headers: HeaderMap| async move {
                    s1.note("/feed", &headers);
                    Json((3..6).map(record).collect::<Vec<_>>())
                }),
            )
            .route(
                "/token",
                post(move |headers: HeaderMap, body: String| async move {
                    s2.note(&format!("/token {body}"), &headers);
                    Json(json!({"access_token": "tok-elsewhere"}))
                }),
            ),
    )
    .await
}

/// The source's own origin: `/feed` answers records 0..3 with a `Link` to `next`.
async fn own_origin_linking_to(next: String) -> SocketAddr {
    serve(Router::new().route(
        "/feed",
        get(move || {
            let next = next.clone();
            async move {
                let mut response = Json((0..3).map(record).collect::<Vec<_>>()).into_response();
                response
                    .headers_mut()
                    .insert("link", format!("<{next}>; rel=\"next\"").parse().unwrap());
                response
            }
        }),
    ))
    .await
}

fn refused(error: &Option<SourceError>) -> &adapters::common::http_error::ForeignOrigin {
    match error {
        Some(SourceError::ForeignOrigin(f)) => f,
        other => panic!("expected a refused origin, got {other:?}"),
    }
}

#[tokio::test]
async fn a_next_link_to_another_origin_is_refused_and_the_other_origin_never_sees_the_key() {
    let seen = Seen::default();
    let other = other_origin(&seen).await;
    let own = own_origin_linking_to(format!("http://{other}/feed")).await;
    let config = format!(
        "url = \"http://{own}/feed\"\npagination = \"next_link\"\nauth = {{ kind = \"api_key\", header = \"X-Api-Key\", value = \"{KEY}\" }}\n"
    );

    let result = run(&source("rest", &config), None, PullMode::Incremental).await;
    assert_eq!(
        result.field("ajbh"),
        ids(0..3),
        "the page before the link is handed out"
    );
    let f = refused(&result.error);
    assert_eq!(f.hop, Hop::NextLink);
    assert_eq!(f.target, format!("http://{other}"));
    assert_eq!(f.home, format!("http://{own}"));
    let text = result.error.as_ref().unwrap().to_string();
    assert!(
        text.contains("下一页链接") && text.contains("next link") && text.contains(&format!("\"{}\"", other.ip())),
        "names the rule and what to add to allowed_hosts: {text}"
    );
    assert!(seen.requests().is_empty(), "nothing was sent to the other origin");

    let listed = format!("{config}allowed_hosts = [\"127.0.0.1:{}\"]\n", other.port());
    let result = run(&source("rest", &listed), None, PullMode::Incremental).await;
    assert!(result.error.is_none(), "{:?}", result.error);
    assert_exactly_once(&result.field("ajbh"), &ids(0..6));
    assert_eq!(
        seen.requests(),
        [("/feed".to_string(), Some(KEY.to_string()), None)],
        "a listed host is followed, with the credentials"
    );
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_refused_once_not_retried_and_followed_when_listed() {
    let seen = Seen::default();
    let other = other_origin(&seen).await;
    let calls = Arc::new(Mutex::new(0));
    let c = calls.clone();
    let own = serve(Router::new().route(
        "/feed",
        get(move || async move {
            *c.lock().unwrap() += 1;
            (
                StatusCode::TEMPORARY_REDIRECT,
                [("location", format!("http://{other}/feed"))],
            )
        }),
    ))
    .await;
    let config = format!(
        "url = \"http://{own}/feed\"\nretry_initial_ms = 5\nauth = {{ kind = \"header\", header = \"X-Api-Key\", value = \"{KEY}\" }}\n"
    );

    let src = source("rest", &config);
    let result = run(&src, None, PullMode::Incremental).await;
    assert!(result.records.is_empty());
    let f = refused(&result.error);
    assert_eq!(
        (f.hop.clone(), f.target.clone()),
        (
            Hop::Redirect {
                from: format!("http://{own}")
            },
            format!("http://{other}")
        )
    );
    assert!(seen.requests().is_empty(), "the redirect was not followed");
    assert_eq!(*calls.lock().unwrap(), 1, "a refused redirect is final, not retried");
    assert_eq!(src.health().failures, 1, "counted as the source's failure");

    let listed = format!("{config}allowed_hosts = [\"127.0.0.1:{}\"]\n", other.port());
    let result = run(&source("rest", &listed), None, PullMode::Incremental).await;
    assert!(result.error.is_none(), "{:?}", result.error);
    assert_eq!(result.field("ajbh"), ids(3..6));
    assert_eq!(seen.requests().len(), 1, "followed to the listed host");
}

#[tokio::test]
async fn a_token_endpoint_redirecting_elsewhere_never_hands_over_the_client_secret() {
    let seen = Seen::default();
    let other = other_origin(&seen).await;
    // 308 keeps the method and the body: followed, it would post the secret to the other origin.
    let token_home = serve(Router::new().route(
        "/token",
        post(move || async move {
            (
                StatusCode::PERMANENT_REDIRECT,
                [("location", format!("http://{other}/token"))],
            )
        }),
    ))
    .await;
    let own = serve(Router::new().route("/feed", get(|| async { Json(vec![record(0)]) }))).await;
    let config = format!(
        "url = \"http://{own}/feed\"\nretry_initial_ms = 5\n\
         auth = {{ kind = \"token\", token_url = \"http://{token_home}/token\", client_id = \"gw\", client_secret = \"s3cret-value\" }}\n"
    );
    let result = run(&source("rest", &config), None, PullMode::Incremental).await;
    let f = refused(&result.error);
    assert_eq!(
        f.hop,
        Hop::Redirect {
            from: format!("http://{token_home}")
        }
    );
    assert!(seen.requests().is_empty(), "the secret went nowhere else");
}
