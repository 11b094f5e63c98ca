//! Benchmark of a REST pull: a local peer serves the records of a JSON-lines file in pages, the
//! gateway pulls them through the REST adapter and commits them into a fresh PostgreSQL
//! database. Prints records/s from the first request to the last commit, and peak memory.
//!
//! Usage: `bench_pull RECORDS.jsonl [postgres-base-url] [page-size]` (see `scripts/bench-pull.sh`).

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use gateway::config::Config;
use gateway::intake::pull::pull_once;
use gateway::intake::tasks::build_runtime;
use gateway::shutdown::Shutdown;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

mod bench_support;
use bench_support::peak_rss_kb;

/// The record file and where each page starts in it: the peer reads a page from disk per
/// request, so its memory does not count against the gateway's.
struct Pages {
    file: std::path::PathBuf,
    /// Byte offset of each page's first line, and the end of the file last.
    starts: Vec<u64>,
}

async fn page(State(pages): State<Arc<Pages>>, Query(q): Query<HashMap<String, String>>) -> impl IntoResponse {
    use std::io::{Read, Seek, SeekFrom};
    let n: usize = q.get("page").and_then(|v| v.parse().ok()).unwrap_or(1);
    let body = match (pages.starts.get(n - 1), pages.starts.get(n)) {
        (Some(&from), Some(&to)) => {
            let mut buf = vec![0u8; (to - from) as usize];
            let read = std::fs::File::open(&pages.file)
                .and_then(|mut f| f.seek(SeekFrom::Start(from)).and_then(|_| f.read_exact(&mut buf)));
            match read {
                Ok(()) => {
                    let text = String::from_utf8_lossy(&buf);
                    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
                    format!("{{\"code\":\"0\",\"data\":[{}]}}", lines.join(","))
                }
                Err(_) => "{\"code\":\"500\"}".to_string(),
            }
        }
        _ => "{\"code\":\"0\",\"data\":[]}".to_string(),
    };
    ([("content-type", "application/json")], body)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    gateway::allocator::keep_freed_memory_for_reuse();
    let args: Vec<String> = std::env::args().collect();
    let file = args
        .get(1)
        .ok_or_else(|| anyhow::anyhow!("usage: bench_pull RECORDS.jsonl [pg-base] [page-size]"))?;
    let pg_base = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432".into());
    let page_size: usize = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(1000);
    let mut starts = vec![0u64];
    let mut n = 0usize;
    {
        use std::io::BufRead;
        let mut reader = std::io::BufReader::new(std::fs::File::open(file)?);
        let mut line = String::new();
        let mut offset = 0u64;
        loop {
            line.clear();
            let read = reader.read_line(&mut line)?;
            if read == 0 {
                break;
            }
            offset += read as u64;
            if !line.trim().is_empty() {
                n += 1;
                if n.is_multiple_of(page_size) {
                    starts.push(offset);
                }
            }
        }
        if !n.is_multiple_of(page_size) {
            starts.push(offset);
        }
    }
    let pages = Pages {
        file: std::path::PathBuf::from(file),
        starts,
    };
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
