//! Benchmark of a REST pull: a local peer serves the records of a JSON-lines file in pages, the
//! gateway pulls them through the REST adapter and commits them into a fresh PostgreSQL
//! database. Prints records/s from the first request to the last commit, and peak memory.
//!
//! Usage: `bench_pull RECORDS.jsonl [postgres-base-url] [page-size]` (see `scripts/bench-pull.sh`).

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use gateway::cli::run::build_runtime;
use gateway::config::Config;
use gateway::pipeline::ingest::Shutdown;
use gateway::sources::pull::pull_once;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Pages pre-rendered as answers, so the peer costs little CPU during the run.
async fn page(State(pages): State<Arc<Vec<String>>>, Query(q): Query<HashMap<String, String>>) -> impl IntoResponse {
    let n: usize = q.get("page").and_then(|v| v.parse().ok()).unwrap_or(1);
    let body = pages
        .get(n - 1)
        .cloned()
        .unwrap_or_else(|| "{\"code\":\"0\",\"data\":[]}".into());
    ([("content-type", "application/json")], body)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let file = args
        .get(1)
        .ok_or_else(|| anyhow::anyhow!("usage: bench_pull RECORDS.jsonl [pg-base] [page-size]"))?;
    let pg_base = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432".into());
    let page_size: usize = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(1000);
    let text = std::fs::read_to_string(file)?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let n = lines.len();
    let pages: Vec<String> = lines
        .chunks(page_size)
        .map(|chunk| format!("{{\"code\":\"0\",\"data\":[{}]}}", chunk.join(",")))
        .collect();
    drop(text);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/cases", listener.local_addr()?);
    let router = Router::new().route("/cases", get(page)).with_state(Arc::new(pages));
    tokio::spawn(async move { axum::serve(listener, router).await });

    let (admin, conn) = tokio_postgres::connect(&format!("{pg_base}/postgres"), tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    admin.batch_execute("DROP DATABASE IF EXISTS gw_bench_pull").await?;
    admin.batch_execute("CREATE DATABASE gw_bench_pull").await?;

    let dir = tempfile::tempdir()?;
    let mapping =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings/nanchang-amr-penalty/mapping.toml");
    let config = format!(
        "[store]\nbackend = \"postgres\"\nurl = \"{pg_base}/gw_bench_pull\"\npool_size = 4\n\n[normalizer]\nprovince_prefix = \"36\"\n\n\
         [[sources]]\nid = \"rest\"\nkind = \"rest\"\nmapping = \"{}\"\nrecord_key = \"ajbh\"\n[sources.rest]\nurl = \"{url}\"\n\
         pagination = \"page\"\npage_size = {page_size}\nrecords_path = \"data\"\nstatus_path = \"code\"\n\
         max_pages = 100000\n\n[[sinks]]\nid = \"platform\"\nkind = \"postgres\"\nurl = \"postgres://gateway@127.0.0.1:5432/platform\"\n",
        mapping.display()
    );
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config)?;
    let resolved = Config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let table = resolved.config.sources[0].rest.clone().unwrap_or_default();
    let runtime = build_runtime(resolved).await?;
    let source = adapters::sources::build("rest", "rest", &table, dir.path())?;
    let start = Instant::now();
    let summary = pull_once(
        &runtime,
        "rest",
        &source,
        adapters::sources::PullMode::Incremental,
        &Shutdown::default(),
    )
    .await?;
    let elapsed = start.elapsed();
    println!(
        "rest pull->commit (PostgreSQL, pages of {page_size}): {n} records in {:.2}s = {:.0} records/s; accepted {} quarantined {}; peak RSS {} MB",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        summary.accepted,
        summary.quarantined,
        peak_rss_kb() / 1024
    );
    Ok(())
}
