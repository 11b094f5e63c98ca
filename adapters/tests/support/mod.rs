//! Helpers of the pull-source tests: real HTTP peers on 127.0.0.1 and whole pull runs.
#![allow(dead_code)]

use adapters::sources::{PullMode, PullSource, SourceError};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Serve `router` on 127.0.0.1, port chosen by the system; the server lives until the test ends.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

/// Build a pull source of `kind` from TOML text.
pub fn source(kind: &str, toml_text: &str) -> Arc<dyn PullSource> {
    let table: toml::Table = toml_text.parse().unwrap();
    let problems = adapters::sources::check_settings(kind, &table, Path::new("/"));
    assert!(problems.is_empty(), "{problems:?}");
    adapters::sources::build("test-source", kind, &table, Path::new("/")).unwrap()
}

/// What a whole run gave.
#[derive(Debug, Default)]
pub struct RunResult {
    /// Parsed records in arrival order.
    pub records: Vec<Value>,
    /// Their positions.
    pub positions: Vec<String>,
    /// Their payloads, as text.
    pub payloads: Vec<String>,
    /// Unparsed records: (position, message, payload).
    pub unparsed: Vec<(String, String, String)>,
    /// The cursor of every page, in order.
    pub cursors: Vec<Option<String>>,
    /// The error that ended the run, if any.
    pub error: Option<SourceError>,
    /// Positions of the records flagged for a watermark beyond the run's start plus the skew.
    pub in_future: Vec<String>,
}

impl RunResult {
    /// Values of `field` of every record, in order.
    pub fn field(&self, field: &str) -> Vec<String> {
        self.records
            .iter()
            .map(|r| r.get(field).and_then(Value::as_str).unwrap_or_default().to_string())
            .collect()
    }
}

/// Pull pages until the run ends or fails.
pub async fn run(source: &Arc<dyn PullSource>, cursor: Option<&str>, mode: PullMode) -> RunResult {
    let mut out = RunResult::default();
    let mut run = source.start(cursor.map(str::to_string), mode);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "run takes too long");
        match run.next_page().await {
            Ok(Some(page)) => {
                for item in page.items {
                    match item {
                        Ok(r) => {
                            if r.watermark_in_future.is_some() {
                                out.in_future.push(r.position.clone());
                            }
                            out.records.push(r.value);
                            out.positions.push(r.position);
                            out.payloads.push(String::from_utf8(r.payload).unwrap());
                        }
                        Err(u) => {
                            out.unparsed
                                .push((u.position, u.message, String::from_utf8_lossy(&u.payload).into_owned()))
                        }
                    }
                }
                out.cursors.push(page.cursor);
            }
            Ok(None) => break,
            Err(e) => {
                out.error = Some(e);
                break;
            }
        }
    }
    // A finished run stays finished.
    assert!(matches!(run.next_page().await, Ok(None)));
    out
}

/// Request instants recorded by a peer.
#[derive(Debug, Default, Clone)]
pub struct Instants(pub Arc<Mutex<Vec<Instant>>>);

impl Instants {
    /// Note a request now.
    pub fn note(&self) {
        self.0.lock().unwrap().push(Instant::now());
    }

    /// Requests noted.
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// The most requests in any one-second window starting at a request.
    pub fn max_per_second(&self) -> usize {
        let times = self.0.lock().unwrap().clone();
        times
            .iter()
            .map(|start| {
                times
                    .iter()
                    .filter(|t| **t >= *start && t.duration_since(*start) < Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }
}

/// Every value appears exactly once and in the expected order.
pub fn assert_exactly_once(got: &[String], expected: &[String]) {
    let mut seen = std::collections::HashSet::new();
    for g in got {
        assert!(seen.insert(g), "{g} arrived twice");
    }
    assert_eq!(got, expected, "every record once, in order");
}
