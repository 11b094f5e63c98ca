//! Benchmark of the AMQP source: consume → commit → acknowledge, into PostgreSQL.
//!
//! Usage: `bench_amqp RECORDS.jsonl [postgres-base-url] [amqp-url]` (see `scripts/bench-amqp.sh`).
//! Publishes every line of the file as one persistent message to a fresh queue, then starts the
//! gateway's consumer on a fresh database and measures the time until every record is committed
//! and every message acknowledged. Prints messages/s and the process's peak resident memory.

use gateway::config::Config;
use gateway::intake::amqp::run_consumer;
use gateway::intake::tasks::build_runtime;
use gateway::shutdown::Shutdown;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeleteOptions};
use lapin::BasicProperties;
use std::time::{Duration, Instant};

mod bench_support;
use bench_support::peak_rss_kb;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    gateway::allocator::keep_freed_memory_for_reuse();
    let args: Vec<String> = std::env::args().collect();
    let file = args
        .get(1)
        .ok_or_else(|| anyhow::anyhow!("usage: bench_amqp RECORDS.jsonl [pg-base] [amqp-url]"))?;
    let pg_base = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432".into());
    let amqp = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let mut n = 0i64;
    let queue = format!("bench.{}", std::process::id());

    // A fresh database.
    let (admin, conn) = tokio_postgres::connect(&format!("{pg_base}/postgres"), tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    admin.batch_execute("DROP DATABASE IF EXISTS gw_bench_amqp").await?;
    admin.batch_execute("CREATE DATABASE gw_bench_amqp").await?;

    // The messages, published with confirms before the clock starts.
    let conn = lapin::Connection::connect(&amqp, lapin::ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let mut args = lapin::types::FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        lapin::types::AMQPValue::LongString("ganzhi.dead-letter".into()),
    );
    ch.exchange_declare(
        "ganzhi.dead-letter".into(),
        lapin::ExchangeKind::Fanout,
        lapin::options::ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        Default::default(),
    )
    .await?;
    ch.queue_declare(
        queue.as_str().into(),
        lapin::options::QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await?;
    let t = Instant::now();
    let mut pending = Vec::with_capacity(1000);
    // Read line by line: the records are not held in memory (the peak RSS is the consumer's).
    use std::io::BufRead;
    for line in std::io::BufReader::new(std::fs::File::open(file)?).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        n += 1;
        let confirm = ch
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                line.as_bytes(),
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type("application/json".into()),
            )
            .await?;
        pending.push(confirm);
        if pending.len() >= 1000 {
            for c in pending.drain(..) {
                c.await?;
            }
        }
    }
    for c in pending.drain(..) {
        c.await?;
    }
    eprintln!("published {n} messages in {:.1}s", t.elapsed().as_secs_f64());

    // Consumer settings: GATEWAY_BENCH_BATCH (messages per commit, default 2000) and
    // GATEWAY_BENCH_PREFETCH (default 5000).
    let setting = |name: &str, default: u32| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(default)
    };
    let batch = setting("GATEWAY_BENCH_BATCH", 2000);
    let prefetch = setting("GATEWAY_BENCH_PREFETCH", 5000);
    let dir = tempfile::tempdir()?;
    let mapping =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings/nanchang-amr-penalty/mapping.toml");
    let config = format!(
        "[store]\nbackend = \"postgres\"\nurl = \"{pg_base}/gw_bench_amqp\"\npool_size = 4\n\n[normalizer]\nprovince_prefix = \"36\"\n\n\
         [[sources]]\nid = \"mq\"\nkind = \"amqp\"\nmapping = \"{}\"\nrecord_key = \"ajbh\"\n[sources.amqp]\nurl = \"{amqp}\"\n\
         queue = \"{queue}\"\nprefetch = {prefetch}\nbatch_size = {batch}\n\n[[sinks]]\nid = \"platform\"\nkind = \"postgres\"\n\
         url = \"postgres://gateway@127.0.0.1:5432/platform\"\n",
        mapping.display()
    );
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config)?;
    let resolved = Config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let table = resolved.config.sources[0].amqp.clone().unwrap_or_default();
    let settings = adapters::sources::amqp::AmqpSourceSettings::from_table(&table)
        .map_err(|p| anyhow::anyhow!("{}", p.message))?;
    let runtime = build_runtime(resolved).await?;
    let shutdown = Shutdown::default();
    let start = Instant::now();
    let task = tokio::spawn(run_consumer(
        runtime.clone(),
        "mq".into(),
        settings,
        dir.path().to_path_buf(),
        shutdown.clone(),
    ));
    // Done when every message was committed and acknowledged, as the source board counts them
    // after each acknowledged batch (polling the store's counts would load the database under test).
    loop {
        let done = runtime.sources.get("mq").map(|s| s.totals.received).unwrap_or(0);
        if done >= u64::try_from(n).unwrap_or(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = start.elapsed();
    shutdown.trigger();
    let _ = task.await;
    let left = ch
        .queue_declare(
            queue.as_str().into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await?
        .message_count();
    ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await?;
    println!(
        "amqp consume->commit->ack: {n} messages in {:.2}s = {:.0} messages/s; left unacknowledged {left}; peak RSS {} MB",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        peak_rss_kb() / 1024
    );
    Ok(())
}
