//! A minimal upload receiver for `scripts/bench-dispatch.sh`: answers every POST/PUT with 200
//! and counts requests and distinct `Idempotency-Key`s. Prints its address on stdout at start
//! and its counts on stderr every second.
//!
//! Usage: cargo run --release -p adapters --example bench_receiver [ADDR] (default 127.0.0.1:18089)

use axum::http::{HeaderMap, StatusCode};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18089".into());
    let seen: Arc<Mutex<(u64, HashSet<String>)>> = Arc::default();
    let state = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/upload",
        axum::routing::any(move |headers: HeaderMap, _body: axum::body::Bytes| {
            let state = Arc::clone(&state);
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                if let Ok(mut s) = state.lock() {
                    s.0 += 1;
                    s.1.insert(key.to_string());
                }
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("{}", listener.local_addr()?);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            if let Ok(s) = seen.lock() {
                eprintln!("requests {} distinct keys {}", s.0, s.1.len());
            }
        }
    });
    axum::serve(listener, app).await
}
