//! End-to-end onward delivery: the real `gateway run` delivers committed case versions to a
//! real PostgreSQL database, a real RabbitMQ broker and an HTTP receiver started by the test,
//! while the test takes each of them down and brings it back. Every version arrives, repeats are
//! only those at-least-once allows and carry their key, versions of a case arrive in order, dead
//! deliveries keep the receiver's answer and can be re-driven.

mod support;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gateway::store::postgres::PostgresStore;
use gateway::store::sqlite::SqliteStore;
use gateway::store::{DeliveryFilter, DeliveryStatus, OutboxStore};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::amqp::{Proxy, Vhost};
use support::common::PgDatabase;
use support::{jsonl, path_str, Backend, Env, AGENCY_CODE};

// ---------------------------------------------------------------------------------------------
// Set-up helpers.
// ---------------------------------------------------------------------------------------------

/// Delivery keys every sink block of these tests gets: small batches (so an outage lands in
/// the middle of the work), fast retries and polling.
fn fast(batch_size: usize) -> String {
    format!(
        "batch_size = {batch_size}\nparallel_batches = 2\nretry_initial_ms = 100\nretry_max_ms = 800\npoll_ms = 50\n"
    )
}

/// An environment whose configuration has `sinks` instead of the default sink.
async fn env_with_sinks(backend: Backend, sinks: &str) -> Env {
    let env = Env::new(backend).await;
    let text = std::fs::read_to_string(&env.config).expect("read config");
    let head = text.split("[[sinks]]").next().unwrap_or_default().to_string();
    std::fs::write(&env.config, format!("{head}{sinks}")).expect("write config");
    env
}

fn ingest_text(env: &Env, name: &str, text: &str) {
    env.ingest(&env.write(name, text));
}

/// 150 penalty cases (version 1).
fn first_versions(env: &Env) {
    ingest_text(env, "v1.jsonl", &jsonl(1..151, 0, 0));
}

/// A second version of every case (another fine amount), then a withdrawal of cases 1..=50.
fn later_versions(env: &Env) {
    ingest_text(env, "v2.jsonl", &jsonl(1..151, 0, 1));
    let mut deletes = String::new();
    for n in 1..51 {
        let d = json!({"ajbh": format!("NCSJ-CF-2024-{n:06}"), "jgdm": AGENCY_CODE, "cd_operation": "d"});
        deletes.push_str(&format!("{d}\n"));
    }
    ingest_text(env, "v3.jsonl", &deletes);
}

/// Every idempotency key the store holds: `<code>:<v>` for v in 1..=current version.
fn expected_keys(env: &Env) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for case in env.export("cases") {
        let code = case["unified_code"].as_str().expect("code");
        for v in 1..=case["version"].as_i64().expect("version") {
            keys.insert(format!("{code}:{v}"));
        }
    }
    keys
}

/// The test's own view of the gateway's outbox.
async fn outbox_of(env: &Env) -> Arc<dyn OutboxStore> {
    match &env.pg {
        Some(db) => Arc::new(PostgresStore::connect(&db.url, 2).await.expect("connect to the store")),
        None => Arc::new(SqliteStore::open(&env.dir.path().join("data/gateway.db")).expect("open the store")),
    }
}

/// (pending, delivered, dead) deliveries of a sink.
async fn counts(outbox: &Arc<dyn OutboxStore>, sink: &str) -> (i64, i64, i64) {
    let mut c = (0, 0, 0);
    for row in outbox.delivery_counts().await.expect("delivery counts") {
        if row.sink_id == sink {
            match row.status {
                DeliveryStatus::Pending => c.0 = row.count,
                DeliveryStatus::Delivered => c.1 = row.count,
                DeliveryStatus::Dead => c.2 = row.count,
                DeliveryStatus::Superseded | DeliveryStatus::Withheld => {}
            }
        }
    }
    c
}

async fn all_deliveries(outbox: &Arc<dyn OutboxStore>, sink: &str) -> Vec<gateway::store::DeliveryRow> {
    let filter = DeliveryFilter {
        sink_id: Some(sink.to_string()),
        limit: Some(100_000),
        ..Default::default()
    };
    outbox.deliveries(&filter).await.expect("list deliveries")
}

/// Poll until `done` or panic after `timeout`, naming `what`.
async fn wait_until<F, Fut>(what: &str, timeout: Duration, done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    poll_until(what, timeout, Duration::from_millis(100), done).await
}

async fn poll_until<F, Fut>(what: &str, timeout: Duration, every: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !done().await {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(every).await;
    }
}

/// Wait (polling closely) until the second versions are flowing: more than `from` delivered.
async fn wait_for_flow(outbox: &Arc<dyn OutboxStore>, sink: &str, from: i64) {
    poll_until(
        "delivery under way",
        Duration::from_secs(60),
        Duration::from_millis(2),
        || async { counts(outbox, sink).await.1 > from },
    )
    .await;
}

/// Check the state while a sink is away: nothing dead, no attempt used, reason visible.
async fn assert_waiting_without_attempts(outbox: &Arc<dyn OutboxStore>, sink: &str) {
    let during = all_deliveries(outbox, sink).await;
    assert!(
        during.iter().all(|d| d.status != DeliveryStatus::Dead),
        "an outage kills nothing"
    );
    let waiting: Vec<_> = during.iter().filter(|d| d.status == DeliveryStatus::Pending).collect();
    assert!(!waiting.is_empty(), "deliveries wait while the sink is away");
    assert!(
        waiting.iter().all(|d| d.attempts == 0),
        "an unreachable sink uses up no attempts: {:?}",
        waiting.iter().find(|d| d.attempts > 0)
    );
    assert!(
        waiting
            .iter()
            .any(|d| d.last_error.as_deref().is_some_and(|e| e.starts_with("deferred:"))),
        "the reason is visible to operators"
    );
}

/// A `gateway run` child process; SIGTERM on [`Running::stop`], killed if the test fails.
struct Running {
    child: Option<Child>,
    log: PathBuf,
}

impl Running {
    fn start(env: &Env, name: &str) -> Running {
        let log = env.dir.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = env
            .cmd(&["run", "--config", path_str(&env.config)])
            .env("GATEWAY_LOG", "info,gateway=info,adapters=info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start gateway run");
        Running {
            child: Some(child),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then wait: the gateway finishes the batches in hand and exits 0.
    fn stop(mut self) -> String {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
        assert!(status.success());
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                assert!(status.success(), "gateway run exited with {status}\n{}", self.log());
                return self.log();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "gateway run did not stop\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("gateway run log:\n{}", self.log());
        }
    }
}

/// Per unified code, the versions in the order they arrived.
fn arrivals_by_code(keys_in_arrival_order: &[String]) -> BTreeMap<String, Vec<i32>> {
    let mut by_code: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for key in keys_in_arrival_order {
        let (code, v) = key.rsplit_once(':').expect("key is code:version");
        by_code
            .entry(code.to_string())
            .or_default()
            .push(v.parse().expect("version"));
    }
    by_code
}

/// Every expected key arrived, nothing else did, and no version of a case arrived after a
/// later version of it (repeats of the same version are allowed: at-least-once).
fn assert_complete_and_in_order(arrived: &[String], expected: &BTreeSet<String>) {
    let distinct: BTreeSet<String> = arrived.iter().cloned().collect();
    let missing: Vec<&String> = expected.difference(&distinct).take(5).collect();
    let unknown: Vec<&String> = distinct.difference(expected).take(5).collect();
    assert!(missing.is_empty(), "versions never delivered (first 5): {missing:?}");
    assert!(
        unknown.is_empty(),
        "deliveries with keys that were never committed: {unknown:?}"
    );
    for (code, versions) in arrivals_by_code(arrived) {
        assert!(
            versions.windows(2).all(|w| w[0] <= w[1]),
            "case {code} arrived out of order: {versions:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL sink.
// ---------------------------------------------------------------------------------------------

async fn sink_db_client(db: &PgDatabase) -> tokio_postgres::Client {
    support::common::pg_client(&db.url)
        .await
        .expect("connect to the sink database")
}

/// Take the sink database away: no new connections, and the open ones are cut.
async fn pg_sink_down(admin: &tokio_postgres::Client, db: &PgDatabase) {
    admin
        .batch_execute(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", db.name))
        .await
        .expect("forbid connections");
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&db.name],
        )
        .await
        .expect("terminate the sink's connections");
}

async fn pg_sink_up(admin: &tokio_postgres::Client, db: &PgDatabase) {
    admin
        .batch_execute(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", db.name))
        .await
        .expect("allow connections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sink_outage_loses_nothing_and_keeps_versions_in_order() {
    let sink_db = PgDatabase::create().await;
    let admin = support::common::admin_client(&support::common::pg_base_url()).await;
    let sinks = format!(
        "[[sinks]]\nid = \"platform\"\nkind = \"postgres\"\nurl = \"{}\"\nschema = \"platform\"\npool_size = 2\n{}",
        sink_db.url,
        fast(5)
    );
    let env = env_with_sinks(Backend::Sqlite, &sinks).await;
    let outbox = outbox_of(&env).await;
    first_versions(&env);
    let run = Running::start(&env, "run");
    wait_until("first versions delivered", Duration::from_secs(60), || async {
        counts(&outbox, "platform").await.1 >= 150
    })
    .await;

    // The second versions start to flow; the database goes away in the middle of it.
    ingest_text(&env, "v2.jsonl", &jsonl(1..151, 0, 1));
    wait_for_flow(&outbox, "platform", 150).await;
    pg_sink_down(&admin, &sink_db).await;
    let at_cut = counts(&outbox, "platform").await;
    eprintln!("(pending, delivered, dead) when the database went away: {at_cut:?}");
    assert!(
        at_cut.0 > 0,
        "the outage interrupts the delivery of the second versions"
    );
    later_versions(&env); // (v2 again: unchanged) and the withdrawals
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_waiting_without_attempts(&outbox, "platform").await;

    pg_sink_up(&admin, &sink_db).await;
    let expected = expected_keys(&env);
    assert_eq!(expected.len(), 350);
    wait_until(
        "every version delivered after the outage",
        Duration::from_secs(90),
        || async { counts(&outbox, "platform").await == (0, 350, 0) },
    )
    .await;
    run.stop();

    let sink = sink_db_client(&sink_db).await;
    let rows = sink
        .query(
            "SELECT unified_code, version, deliveries, current, withdrawn FROM platform.cases ORDER BY unified_code, delivered_at",
            &[],
        )
        .await
        .expect("read platform.cases");
    let arrived: Vec<String> = rows
        .iter()
        .map(|r| format!("{}:{}", r.get::<_, String>(0), r.get::<_, i32>(1)))
        .collect();
    assert_complete_and_in_order(&arrived, &expected);
    let repeats: i32 = rows.iter().map(|r| r.get::<_, i32>(2) - 1).sum();
    eprintln!("repeated deliveries absorbed by the (unified_code, version) key: {repeats}");
    let current: Vec<(String, i32, bool)> = rows
        .iter()
        .filter(|r| r.get::<_, bool>(3))
        .map(|r| (r.get(0), r.get(1), r.get(4)))
        .collect();
    assert_eq!(current.len(), 150, "one current version per case");
    assert_eq!(
        current.iter().filter(|c| c.2).count(),
        50,
        "withdrawn cases' current versions are withdrawals"
    );
    assert!(
        current.iter().all(|c| c.1 == if c.2 { 3 } else { 2 }),
        "current = newest version"
    );

    let view: i64 = sink
        .query_one("SELECT count(*) FROM platform.current_cases", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(view, 100, "current_cases leaves withdrawn cases out");
    let one = sink
        .query_one(
            "SELECT c.case_number, c.agency_credit_code, c.target_id_number, c.closing_date::text, p.fine_amount::text,
                    p.kinds, p.decision_date::text, (SELECT count(*) FROM platform.officers o
                                                     WHERE o.unified_code = c.unified_code AND o.version = c.version)
             FROM platform.cases c JOIN platform.penalties p USING (unified_code, version)
             WHERE c.case_number = 'NCSJ-CF-2024-000077' AND c.version = 2",
            &[],
        )
        .await
        .expect("one case's columns");
    assert_eq!(one.get::<_, String>(1), AGENCY_CODE);
    assert_eq!(one.get::<_, String>(2), "91360102MA35G7K86A");
    assert_eq!(one.get::<_, String>(3), "2024-02-08");
    assert_eq!(one.get::<_, String>(4), "1100", "v2's fine: 0.11 万元");
    assert_eq!(one.get::<_, Vec<String>>(5).len(), 2, "fine and warning");
    assert_eq!(one.get::<_, String>(6), "2024-01-22");
    assert_eq!(one.get::<_, i64>(7), 2, "two officers");
}

// ---------------------------------------------------------------------------------------------
// AMQP sink.
// ---------------------------------------------------------------------------------------------

/// Every message in `queue`, in queue order: (message id, routing key, body, persistent).
async fn drain_queue(url: &str, queue: &str) -> Vec<(String, String, Value, bool)> {
    use lapin::options::{BasicAckOptions, BasicGetOptions};
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = conn.create_channel().await.expect("channel");
    let mut out = Vec::new();
    while let Some(m) = channel
        .basic_get(queue.into(), BasicGetOptions::default())
        .await
        .expect("basic.get")
    {
        let id = m
            .delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default();
        let persistent = *m.delivery.properties.delivery_mode() == Some(2);
        let body: Value = serde_json::from_slice(&m.delivery.data).expect("JSON body");
        out.push((id, m.delivery.routing_key.to_string(), body, persistent));
        m.delivery.ack(BasicAckOptions::default()).await.expect("ack");
    }
    let _ = conn.close(200, "done".into()).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_sink_network_cut_and_broker_refusal_lose_nothing_and_repeats_carry_their_key() {
    let vhost = Vhost::create();
    let proxy = Proxy::start("127.0.0.1:5672").await;
    let sinks = format!(
        "[[sinks]]\nid = \"mq\"\nkind = \"amqp\"\nurl = \"amqp://guest:guest@127.0.0.1:{}/{}\"\n\
         exchange = \"ganzhi.cases\"\nbind_queue = \"platform\"\n{}",
        proxy.port,
        vhost.name,
        fast(5)
    );
    let env = env_with_sinks(Backend::Postgres, &sinks).await;
    let outbox = outbox_of(&env).await;
    first_versions(&env);
    let run = Running::start(&env, "run");
    wait_until("first versions confirmed", Duration::from_secs(60), || async {
        counts(&outbox, "mq").await.1 >= 150
    })
    .await;

    // 1. The network to the broker breaks while the second versions are being published.
    ingest_text(&env, "v2.jsonl", &jsonl(1..151, 0, 1));
    wait_for_flow(&outbox, "mq", 150).await;
    proxy.cut();
    let at_cut = counts(&outbox, "mq").await;
    eprintln!("(pending, delivered, dead) when the network broke: {at_cut:?}");
    assert!(at_cut.0 > 0, "the cut interrupts the delivery of the second versions");
    later_versions(&env);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_waiting_without_attempts(&outbox, "mq").await;
    proxy.restore();
    wait_until(
        "every version confirmed after the cut",
        Duration::from_secs(90),
        || async { counts(&outbox, "mq").await == (0, 350, 0) },
    )
    .await;

    // 2. The broker itself refuses the gateway (permissions withdrawn, connections closed).
    vhost.down();
    ingest_text(&env, "v4.jsonl", &jsonl(1..151, 0, 2));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_waiting_without_attempts(&outbox, "mq").await;
    vhost.up();
    let expected = expected_keys(&env);
    assert_eq!(expected.len(), 500);
    wait_until(
        "every version confirmed after the refusal",
        Duration::from_secs(90),
        || async { counts(&outbox, "mq").await == (0, 500, 0) },
    )
    .await;
    run.stop();

    let messages = drain_queue(&vhost.url(), "platform").await;
    assert!(messages.len() >= 500, "{} messages", messages.len());
    eprintln!(
        "repeated messages (at-least-once across the outages): {}",
        messages.len() - 500
    );
    for (id, routing_key, body, persistent) in &messages {
        assert_eq!(
            body["idempotency_key"].as_str(),
            Some(id.as_str()),
            "message_id = idempotency key"
        );
        assert_eq!(routing_key, "penalty.360100", "routing key <type>.<region>");
        assert!(persistent, "persistent messages");
        if body["withdrawn"] == true {
            assert_eq!(body["version"], 3, "withdrawals are the third versions of cases 1..=50");
        }
    }
    let withdrawals: BTreeSet<&str> = messages
        .iter()
        .filter(|m| m.2["withdrawn"] == true)
        .map(|m| m.0.as_str())
        .collect();
    assert_eq!(withdrawals.len(), 50);
    let arrived: Vec<String> = messages.iter().map(|m| m.0.clone()).collect();
    assert_complete_and_in_order(&arrived, &expected);
}

/// Issue 23: an AMQP sink on the nodes of a cluster (`urls`) publishing to a quorum queue. The
/// first URL does not answer and is skipped; the node in use then goes away mid-delivery (the
/// network to it cut for good): the sink reconnects through the next URL, the messages whose
/// publisher confirms did not arrive are published again, and every version arrives, in order
/// per case, repeats only with their key. The log names each failed node by scheme://host:port,
/// never with its credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_sink_on_a_quorum_queue_skips_a_dead_node_and_fails_over_mid_delivery_losing_nothing() {
    let vhost = Vhost::create();
    let first = Proxy::start("127.0.0.1:5672").await;
    let second = Proxy::start("127.0.0.1:5672").await;
    let node = |port: u16| format!("\"amqp://guest:guest@127.0.0.1:{port}/{}\"", vhost.name);
    let sinks = format!(
        "[[sinks]]\nid = \"mq\"\nkind = \"amqp\"\nurls = [{}, {}, {}]\n\
         exchange = \"ganzhi.cases\"\nbind_queue = \"platform\"\nqueue_type = \"quorum\"\n{}",
        node(1),
        node(first.port),
        node(second.port),
        fast(5)
    );
    let env = env_with_sinks(Backend::Postgres, &sinks).await;
    let outbox = outbox_of(&env).await;
    first_versions(&env);
    let run = Running::start(&env, "run");
    wait_until("first versions confirmed", Duration::from_secs(60), || async {
        counts(&outbox, "mq").await.1 >= 150
    })
    .await;
    assert_eq!(vhost.queue_type("platform").as_deref(), Some("quorum"));
    assert_eq!(
        second.forwarded(),
        0,
        "the next node waits while the one in use answers"
    );

    ingest_text(&env, "v2.jsonl", &jsonl(1..151, 0, 1));
    wait_for_flow(&outbox, "mq", 150).await;
    first.cut();
    let at_cut = counts(&outbox, "mq").await;
    eprintln!("(pending, delivered, dead) when the node went away: {at_cut:?}");
    assert!(at_cut.0 > 0, "the node goes away in the middle of the second versions");
    later_versions(&env);
    let expected = expected_keys(&env);
    assert_eq!(expected.len(), 350);
    wait_until(
        "every version confirmed through the next node",
        Duration::from_secs(90),
        || async { counts(&outbox, "mq").await == (0, 350, 0) },
    )
    .await;
    assert!(second.forwarded() >= 1, "the sink reconnected through the next URL");
    let log = run.stop();
    for part in [
        "AMQP node not reachable; trying the next one".to_string(),
        "amqp://127.0.0.1:1".to_string(),
        "connection to the AMQP node lost".to_string(),
        format!("amqp://127.0.0.1:{}", first.port),
    ] {
        assert!(log.contains(&part), "{part:?} missing in the log:\n{log}");
    }
    assert!(!log.contains("guest:guest"), "credentials never logged:\n{log}");

    let messages = drain_queue(&vhost.url(), "platform").await;
    assert!(messages.len() >= 350, "{} messages", messages.len());
    eprintln!(
        "repeated messages (at-least-once across the failover): {}",
        messages.len() - 350
    );
    for (id, _, body, persistent) in &messages {
        assert_eq!(
            body["idempotency_key"].as_str(),
            Some(id.as_str()),
            "message_id = idempotency key"
        );
        assert!(persistent, "persistent messages");
    }
    let arrived: Vec<String> = messages.iter().map(|m| m.0.clone()).collect();
    assert_complete_and_in_order(&arrived, &expected);
}

/// A sink's `bind_queue` that exists as a classic queue where `queue_type = "quorum"` is set (a
/// queue's type cannot change): nothing is published, the deliveries wait without using
/// attempts, and their reason names both types and what to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_sink_bind_queue_of_the_other_type_is_named_and_the_deliveries_wait() {
    let vhost = Vhost::create();
    let conn = lapin::Connection::connect(&vhost.url(), lapin::ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = conn.create_channel().await.expect("channel");
    channel
        .queue_declare(
            "platform".into(),
            lapin::options::QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("declare the classic queue");
    let sinks = format!(
        "[[sinks]]\nid = \"mq\"\nkind = \"amqp\"\nurl = \"{}\"\nbind_queue = \"platform\"\nqueue_type = \"quorum\"\n{}",
        vhost.url(),
        fast(5)
    );
    let env = env_with_sinks(Backend::Sqlite, &sinks).await;
    ingest_text(&env, "v1.jsonl", &jsonl(1..6, 0, 0));
    let run = env
        .cmd(&["run", "--once", "--config", path_str(&env.config)])
        .output()
        .expect("gateway run --once");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let outbox = outbox_of(&env).await;
    assert_waiting_without_attempts(&outbox, "mq").await;
    let deliveries = all_deliveries(&outbox, "mq").await;
    let error = deliveries[0].last_error.clone().unwrap_or_default();
    for part in [
        format!(
            "queue platform exists in vhost {} as a classic queue; the gateway would declare it as a quorum queue (queue_type = \"quorum\")",
            vhost.name
        ),
        "set queue_type = \"classic\" to use bind_queue as it is".to_string(),
        "队列 platform 已作为经典队列（classic）存在于 vhost".to_string(),
    ] {
        assert!(error.contains(&part), "{part:?} missing in {error}");
    }
    assert_eq!(vhost.queue_type("platform").as_deref(), Some("classic"));
    let _ = conn.close(200, "done".into()).await;
}

// ---------------------------------------------------------------------------------------------
// REST sink.
// ---------------------------------------------------------------------------------------------

/// One request the receiver saw.
#[derive(Debug, Clone)]
struct Hit {
    key: String,
    header_key: Option<String>,
    status: u16,
    at: Instant,
}

type Answer = Arc<dyn Fn(&str, u32) -> (StatusCode, Option<u64>, String) + Send + Sync>;

/// An HTTP receiver on 127.0.0.1:0; what it answers for (key, n-th request of that key) can be
/// changed while it runs.
#[derive(Clone)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    answer: Arc<Mutex<Answer>>,
    url: String,
}

async fn upload(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(envelope) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let key = envelope["idempotency_key"].as_str().unwrap_or_default().to_string();
    let header_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let answer = r.answer.lock().unwrap().clone();
    let mut hits = r.hits.lock().unwrap();
    let n = hits.iter().filter(|h| h.key == key).count() as u32 + 1;
    let (status, retry_after, text) = answer(&key, n);
    hits.push(Hit {
        key,
        header_key,
        status: status.as_u16(),
        at: Instant::now(),
    });
    let mut out = HeaderMap::new();
    if let Some(secs) = retry_after {
        out.insert("retry-after", secs.to_string().parse().unwrap());
    }
    (status, out, text).into_response()
}

impl Receiver {
    async fn start(answer: Answer) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let r = Receiver {
            hits: Arc::default(),
            answer: Arc::new(Mutex::new(answer)),
            url: format!("http://{addr}/upload"),
        };
        let app = axum::Router::new()
            .route("/upload", axum::routing::post(upload))
            .with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        r
    }

    fn answer_with(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Keys answered 2xx, in order.
    fn accepted(&self) -> Vec<String> {
        self.hits()
            .into_iter()
            .filter(|h| (200..300).contains(&h.status))
            .map(|h| h.key)
            .collect()
    }
}

fn ok() -> Answer {
    Arc::new(|_, _| (StatusCode::OK, None, "{\"ok\":true}".into()))
}

fn rest_sinks(receiver: &Receiver, batch_size: usize, extra: &str) -> String {
    format!(
        "[[sinks]]\nid = \"upload\"\nkind = \"rest\"\nurl = \"{}\"\nconcurrency = 4\n{}{extra}",
        receiver.url,
        fast(batch_size)
    )
}

async fn rest_receiver_answering_503_for_a_while_gets_every_version_in_order(backend: Backend) {
    let receiver = Receiver::start(Arc::new(|_, _| {
        (StatusCode::SERVICE_UNAVAILABLE, None, "maintenance".into())
    }))
    .await;
    let env = env_with_sinks(backend, &rest_sinks(&receiver, 20, "max_attempts = 100\n")).await;
    let outbox = outbox_of(&env).await;
    first_versions(&env);
    later_versions(&env);
    let run = Running::start(&env, "run");
    wait_until("the receiver saw requests", Duration::from_secs(30), || async {
        receiver.hits().len() >= 40
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        counts(&outbox, "upload").await.1,
        0,
        "nothing delivered while the receiver answers 503"
    );
    receiver.answer_with(ok());
    wait_until(
        "every version delivered once the receiver is back",
        Duration::from_secs(90),
        || async { counts(&outbox, "upload").await == (0, 350, 0) },
    )
    .await;
    run.stop();

    let expected = expected_keys(&env);
    let accepted = receiver.accepted();
    assert_eq!(
        accepted.len(),
        350,
        "each version accepted exactly once: no outage hid an answer"
    );
    assert_complete_and_in_order(&accepted, &expected);
    assert!(
        receiver
            .hits()
            .iter()
            .all(|h| h.header_key.as_deref() == Some(h.key.as_str())),
        "Idempotency-Key header on every request"
    );
    let retried = all_deliveries(&outbox, "upload")
        .await
        .iter()
        .filter(|d| d.attempts > 1)
        .count();
    assert!(retried > 0, "503 answers were retried");
}
on_both_backends!(rest_receiver_answering_503_for_a_while_gets_every_version_in_order);

fn gateway_json(env: &Env, args: &[&str]) -> (bool, Vec<Value>, String) {
    let mut full = args.to_vec();
    full.extend(["--config", path_str(&env.config)]);
    let out = env.cmd(&full).output().expect("run gateway");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    (
        out.status.success(),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn rest_4xx_and_exhausted_retries_are_dead_with_the_answer_then_redrive_delivers_them_unless_superseded(
    backend: Backend,
) {
    let receiver = Receiver::start(ok()).await;
    let env = env_with_sinks(backend, &rest_sinks(&receiver, 20, "max_attempts = 3\n")).await;
    ingest_text(&env, "v1.jsonl", &jsonl(1..11, 0, 0));
    ingest_text(&env, "v2.jsonl", &jsonl(3..4, 0, 1)); // case 3 gets a version 2
    let code_of = |n: usize| -> String {
        let number = format!("NCSJ-CF-2024-{n:06}");
        let cases = env.export("cases");
        let case = cases
            .iter()
            .find(|c| c["key"]["case_number"] == number.as_str())
            .expect("case");
        case["unified_code"].as_str().unwrap().to_string()
    };
    let (refused, failing) = (format!("{}:1", code_of(3)), format!("{}:1", code_of(5)));
    let (r, f) = (refused.clone(), failing.clone());
    receiver.answer_with(Arc::new(move |key, _| {
        if key == r {
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                "{\"error\":\"处罚决定书文号格式错误\"}".into(),
            )
        } else if key == f {
            (StatusCode::INTERNAL_SERVER_ERROR, None, "database exploded".into())
        } else {
            (StatusCode::OK, None, String::new())
        }
    }));
    let outbox = outbox_of(&env).await;
    let run = Running::start(&env, "run");
    wait_until(
        "two dead deliveries, the rest delivered",
        Duration::from_secs(60),
        || async { counts(&outbox, "upload").await == (0, 9, 2) },
    )
    .await;

    let (ok_list, dead, _) = gateway_json(&env, &["deliveries", "list", "--status", "dead", "--sink", "upload"]);
    assert!(ok_list);
    assert_eq!(dead.len(), 2, "{dead:?}");
    let by_key: HashMap<&str, &Value> = dead
        .iter()
        .map(|d| (d["idempotency_key"].as_str().unwrap(), d))
        .collect();
    let refused_row = by_key[refused.as_str()];
    assert_eq!(refused_row["attempts"], 1, "a 4xx is dead at once");
    assert_eq!(
        refused_row["last_error"], "HTTP 422: {\"error\":\"处罚决定书文号格式错误\"}",
        "the answer is kept"
    );
    let failing_row = by_key[failing.as_str()];
    assert_eq!(failing_row["attempts"], 3, "a 5xx is retried up to max_attempts");
    assert_eq!(
        failing_row["last_error"],
        "HTTP 500: database exploded (after 3 attempts)"
    );
    assert_eq!(receiver.hits().iter().filter(|h| h.key == failing).count(), 3);
    let v2 = format!("{}:2", code_of(3));
    assert!(
        receiver.accepted().contains(&v2),
        "a dead version does not block the case's next version"
    );

    receiver.answer_with(ok());
    let id = refused_row["id"].as_i64().unwrap().to_string();
    // Case 3's version 1 is older than its version 2, which the receiver has: re-driving it
    // would put an old state over a newer one, so it is superseded and never sent.
    let (ok_redrive, out, err) = gateway_json(&env, &["deliveries", "redrive", "--id", &id]);
    assert!(ok_redrive, "{err}");
    assert_eq!(out, [json!({"redriven": 0, "superseded": 1})]);
    let (again, _, err) = gateway_json(&env, &["deliveries", "redrive", "--id", &id]);
    assert!(!again && err.contains("only dead deliveries can be re-driven"), "{err}");
    let (ok_bulk, out, err) = gateway_json(&env, &["deliveries", "redrive", "--sink", "upload", "--all-dead"]);
    assert!(ok_bulk, "{err}");
    assert_eq!(out, [json!({"redriven": 1, "superseded": 0})]);
    wait_until("re-driven deliveries delivered", Duration::from_secs(30), || async {
        counts(&outbox, "upload").await == (0, 10, 0)
    })
    .await;
    run.stop();
    assert!(receiver.accepted().contains(&failing));
    assert!(
        !receiver.accepted().contains(&refused),
        "a superseded version is never delivered after a newer one"
    );
    let (_, superseded, _) = gateway_json(
        &env,
        &["deliveries", "list", "--status", "superseded", "--sink", "upload"],
    );
    assert_eq!(superseded.len(), 1, "{superseded:?}");
    assert_eq!(superseded[0]["idempotency_key"], refused.as_str());
}
on_both_backends!(rest_4xx_and_exhausted_retries_are_dead_with_the_answer_then_redrive_delivers_them_unless_superseded);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_429_retry_after_is_honoured() {
    let receiver = Receiver::start(Arc::new(|_, n| {
        if n == 1 {
            (StatusCode::TOO_MANY_REQUESTS, Some(2), "slow down".into())
        } else {
            (StatusCode::OK, None, String::new())
        }
    }))
    .await;
    let env = env_with_sinks(Backend::Sqlite, &rest_sinks(&receiver, 20, "")).await;
    ingest_text(&env, "v1.jsonl", &jsonl(1..4, 0, 0));
    let outbox = outbox_of(&env).await;
    let run = Running::start(&env, "run");
    wait_until("delivered after the wait", Duration::from_secs(30), || async {
        counts(&outbox, "upload").await == (0, 3, 0)
    })
    .await;
    run.stop();
    let hits = receiver.hits();
    for key in expected_keys(&env) {
        let times: Vec<Instant> = hits.iter().filter(|h| h.key == key).map(|h| h.at).collect();
        assert_eq!(times.len(), 2, "{key}: refused once, then accepted");
        let gap = times[1] - times[0];
        assert!(
            gap >= Duration::from_millis(1950),
            "{key}: retried after {gap:?}, before Retry-After: 2"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_the_outbox_without_double_delivery_or_disorder() {
    let receiver = Receiver::start(ok()).await;
    let env = env_with_sinks(Backend::Postgres, &rest_sinks(&receiver, 7, "")).await;
    first_versions(&env);
    later_versions(&env);
    let outbox = outbox_of(&env).await;
    let (a, b) = (Running::start(&env, "a"), Running::start(&env, "b"));
    wait_until("every version delivered", Duration::from_secs(90), || async {
        counts(&outbox, "upload").await == (0, 350, 0)
    })
    .await;
    let (log_a, log_b) = (a.stop(), b.stop());
    let accepted = receiver.accepted();
    assert_eq!(
        accepted.len(),
        350,
        "SKIP LOCKED claims: no version sent by both gateways"
    );
    assert_complete_and_in_order(&accepted, &expected_keys(&env));
    assert!(log_a.contains("dispatcher started") && log_b.contains("dispatcher started"));
}

// ---------------------------------------------------------------------------------------------
// Configuration and secrets.
// ---------------------------------------------------------------------------------------------

#[test]
fn config_check_reports_bad_sink_settings_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sinks.toml");
    std::fs::write(
        &config,
        "[[sinks]]\nid = \"pg\"\nkind = \"postgres\"\nurll = \"postgres://x\"\n\n\
         [[sinks]]\nid = \"mq\"\nkind = \"amqp\"\nurl_env = \"GW_SURELY_UNSET_AMQP_URL\"\nexchange_type = \"fan\"\n\n\
         [[sinks]]\nid = \"api\"\nkind = \"rest\"\nurl = \"http://127.0.0.1/{{nope}}\"\nmax_attempts = 0\nauth = { kind = \"bearer\" }\n",
    )
    .unwrap();
    let out = support::gateway()
        .args(["config", "check", path_str(&config)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "sinks[0] (id \"pg\").urll",
        "sinks[1] (id \"mq\").url: url_env: 环境变量 GW_SURELY_UNSET_AMQP_URL 未设置",
        "sinks[1] (id \"mq\").exchange_type",
        "sinks[2] (id \"api\").max_attempts",
        "sinks[2] (id \"api\").url: 未知占位符 / unknown placeholder {{nope}}",
        "sinks[2] (id \"api\").auth.token",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn sink_secrets_never_appear_in_messages_or_logs() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("secret.toml");
    let mapping = support::repo().join("mappings/nanchang-amr-penalty/mapping.toml");
    let password = "s3cr3t-sink-pw";
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"data/gw.db\"\n\n{}\n[[sinks]]\nid = \"mq\"\nkind = \"amqp\"\nurl_env = \"GW_SECRET_AMQP\"\n\n\
             [[sinks]]\nid = \"pg\"\nkind = \"postgres\"\nurl_env = \"GW_SECRET_PG\"\n",
            support::nanchang_source(&mapping)
        ),
    )
    .unwrap();
    let records = dir.path().join("r.jsonl");
    std::fs::write(&records, jsonl(1..3, 0, 0)).unwrap();
    let with_secrets = |args: &[&str], amqp_url: &str| {
        support::gateway()
            .args(args)
            .env("GATEWAY_LOG", "debug")
            .env("GW_SECRET_AMQP", amqp_url)
            .env("GW_SECRET_PG", format!("postgres://gw:{password}@127.0.0.1:1/none"))
            .output()
            .unwrap()
    };
    let reachable_nowhere = format!("amqp://gw:{password}@127.0.0.1:1/%2f");
    let ingest = with_secrets(
        &[
            "ingest",
            "--config",
            path_str(&config),
            "--source",
            "nanchang-amr",
            "--quiet",
            path_str(&records),
        ],
        &reachable_nowhere,
    );
    assert!(ingest.status.success(), "{}", String::from_utf8_lossy(&ingest.stderr));
    // Unreachable brokers: the run says why it cannot deliver, never with the URLs.
    let run = with_secrets(&["run", "--once", "--config", path_str(&config)], &reachable_nowhere);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(log.contains("cannot connect to the AMQP broker"), "{log}");
    assert!(log.contains("cannot connect to PostgreSQL"), "{log}");
    // A URL that does not parse is not echoed either.
    let check = with_secrets(
        &["config", "check", path_str(&config)],
        &format!("amqp://gw:{password}@[broken"),
    );
    assert_eq!(check.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&check.stdout).contains("invalid AMQP URL"));
    for out in [&ingest, &run, &check] {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains(password), "secret leaked: {all}");
    }
}

// ---------------------------------------------------------------------------------------------
// Joint inspections: a merged group's joint record reaches the REST sink as its own record type.
// ---------------------------------------------------------------------------------------------

/// Every body a receiver got (JSON), answered 200.
async fn body_receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let kept = Arc::clone(&bodies);
    let app = axum::Router::new().route(
        "/upload",
        axum::routing::post(move |body: Bytes| {
            let kept = Arc::clone(&kept);
            async move {
                if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                    kept.lock().expect("bodies").push(v);
                }
                (StatusCode::OK, "{\"ok\":true}")
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/upload"), bodies)
}

async fn a_merged_joint_group_reaches_the_rest_sink_as_a_joint_inspection_record_and_its_undo_as_a_withdrawal(
    backend: Backend,
) {
    use gateway::store::joint::Decide;
    use gateway::store::Store;
    use support::joint::{commit, groups, insp, AGENCY_A, AGENCY_B, TARGET};
    let (url, bodies) = body_receiver().await;
    let sinks = format!(
        "[[sinks]]\nid = \"upload\"\nkind = \"rest\"\nurl = \"{url}\"\n{}",
        fast(20)
    );
    let env = env_with_sinks(backend, &sinks).await;
    let store: Arc<dyn Store> = match &env.pg {
        Some(db) => Arc::new(PostgresStore::connect(&db.url, 2).await.expect("connect to the store")),
        None => Arc::new(SqliteStore::open(&env.dir.path().join("data/gateway.db")).expect("open the store")),
    };
    store.migrate().await.expect("migrate");
    commit(
        &*store,
        vec![insp("JD-1", AGENCY_A, TARGET, 1), insp("JD-2", AGENCY_B, TARGET, 3)],
    )
    .await;
    let group = groups(&*store).await.remove(0);
    let merge = Decide::Merge {
        lead_agency: AGENCY_A.into(),
    };
    let upload = vec!["upload".to_string()];
    store
        .joint()
        .joint_decide(group.group_id, &merge, "ops-zhang", "同一次进门", &upload)
        .await
        .expect("merge");
    let joint_key = |v: i32| format!("LHJC-{}:{v}", group.group_id);
    let received = |key: String| {
        let bodies = Arc::clone(&bodies);
        async move {
            bodies
                .lock()
                .expect("bodies")
                .iter()
                .any(|b| b["idempotency_key"].as_str() == Some(key.as_str()))
        }
    };
    let run = Running::start(&env, "run");
    wait_until("the joint record is delivered", Duration::from_secs(30), || {
        received(joint_key(1))
    })
    .await;
    store
        .joint()
        .joint_decide(group.group_id, &Decide::Undo, "ops-zhang", "误合并", &upload)
        .await
        .expect("undo");
    wait_until("its withdrawal is delivered", Duration::from_secs(30), || {
        received(joint_key(2))
    })
    .await;
    run.stop();
    let bodies = bodies.lock().expect("bodies").clone();
    let joint: Vec<&Value> = bodies.iter().filter(|b| b["case_type"] == "joint_inspection").collect();
    assert_eq!(
        joint.len(),
        2,
        "the joint record and its withdrawal, once each: {bodies:?}"
    );
    assert_eq!(joint[0]["unified_code"], format!("LHJC-{}", group.group_id));
    assert_eq!(joint[0]["withdrawn"], false);
    assert_eq!(joint[0]["record"]["record_type"], "joint_inspection");
    assert_eq!(joint[0]["record"]["lead_agency"], AGENCY_A);
    assert_eq!(joint[0]["record"]["members"].as_array().map(Vec::len), Some(2));
    assert_eq!(joint[1]["withdrawn"], true);
    assert_eq!(joint[1]["record"]["operation"], "delete");
}
on_both_backends!(a_merged_joint_group_reaches_the_rest_sink_as_a_joint_inspection_record_and_its_undo_as_a_withdrawal);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merged_joint_group_reaches_the_postgres_sink_as_a_row_of_type_joint_inspection() {
    use gateway::store::joint::Decide;
    use gateway::store::Store;
    use support::joint::{commit, groups, insp, AGENCY_A, AGENCY_B, TARGET};
    let sink_db = PgDatabase::create().await;
    let sinks = format!(
        "[[sinks]]\nid = \"platform\"\nkind = \"postgres\"\nurl = \"{}\"\nschema = \"platform\"\npool_size = 2\n{}",
        sink_db.url,
        fast(5)
    );
    let env = env_with_sinks(Backend::Sqlite, &sinks).await;
    let store = SqliteStore::open(&env.dir.path().join("data/gateway.db")).expect("open the store");
    store.migrate().await.expect("migrate");
    commit(
        &store,
        vec![insp("JP-1", AGENCY_A, TARGET, 1), insp("JP-2", AGENCY_B, TARGET, 2)],
    )
    .await;
    let group = groups(&store).await.remove(0);
    let merge = Decide::Merge {
        lead_agency: AGENCY_B.into(),
    };
    store
        .joint()
        .joint_decide(
            group.group_id,
            &merge,
            "ops-zhang",
            "同一次进门",
            &["platform".to_string()],
        )
        .await
        .expect("merge");
    let run = Running::start(&env, "run");
    let client = sink_db_client(&sink_db).await;
    let joint_id = format!("LHJC-{}", group.group_id);
    let sql = "SELECT case_type, record ->> 'lead_agency', withdrawn FROM platform.cases WHERE unified_code = $1";
    wait_until(
        "the joint record is in the sink's cases table",
        Duration::from_secs(30),
        || async { client.query_opt(sql, &[&joint_id]).await.ok().flatten().is_some() },
    )
    .await;
    run.stop();
    let found = client.query_one(sql, &[&joint_id]).await.expect("the row");
    let (case_type, lead, withdrawn): (String, String, bool) = (found.get(0), found.get(1), found.get(2));
    assert_eq!(
        (case_type.as_str(), lead.as_str(), withdrawn),
        ("joint_inspection", AGENCY_B, false)
    );
}

// ---------------------------------------------------------------------------------------------
// Publicity sinks (一公开, 双公示): public records, withheld natural persons, refused gaps.
// ---------------------------------------------------------------------------------------------

/// A penalty record of the Nanchang system with what the credit-disclosure format needs.
fn public_penalty(n: usize) -> Value {
    let mut r = support::nanchang_record(n, 0);
    r["wfxwlx"] = json!("价格违法");
    r["cfyxq"] = json!("2025-01-22");
    r["fkje"] = json!("0.25");
    r["fddbr"] = json!("王五");
    r["cfjdswh"] = json!(format!("洪市监罚[2024]第{n:04}号"));
    r
}

async fn publicity_sinks_publish_penalties_in_the_credit_disclosure_format_and_withhold_what_the_rules_forbid(
    backend: Backend,
) {
    use gateway::store::publicity::{PublicityFilter, PublicityStatus};
    use gateway::store::Store;
    let (url, bodies) = body_receiver().await;
    let sink_db = PgDatabase::create().await;
    let vhost = Vhost::create();
    let mq = format!("amqp://guest:guest@127.0.0.1:5672/{}", vhost.name);
    let sinks = format!(
        "[[sinks]]\nid = \"credit\"\nkind = \"rest\"\nurl = \"{url}\"\ncontent = \"publicity\"\n{fast}\n\
         [[sinks]]\nid = \"credit-db\"\nkind = \"postgres\"\nurl = \"{db}\"\nschema = \"credit\"\ncontent = \"publicity\"\n{fast}\n\
         [[sinks]]\nid = \"credit-mq\"\nkind = \"amqp\"\nurl = \"{mq}\"\nexchange = \"credit\"\nbind_queue = \"sgs\"\ncontent = \"publicity\"\ncase_types = [\"penalty\"]\n{fast}\n\
         [publicity]\nfield_names = \"codes\"\nrename = {{ BZ = \"remarks\" }}\n",
        fast = fast(10),
        db = sink_db.url,
    );
    let env = env_with_sinks(backend, &sinks).await;
    // 1: published; 2: a natural person (withheld); 3: no 违法行为类型 (refused, named);
    // 4: made public by the department on time; 5: made public late (rule.publicity_overdue).
    let published = public_penalty(1);
    let mut person = public_penalty(2);
    person["xdrlb"] = json!("自然人");
    person["xdrmc"] = json!("张三");
    person["xdrzjlx"] = json!("身份证");
    person["xdrzjhm"] = json!("11010519491231002X");
    let mut gap = public_penalty(3);
    gap.as_object_mut().expect("object").remove("wfxwlx");
    let mut on_time = public_penalty(4);
    on_time["gsrq"] = json!("2024-01-25");
    let mut late = public_penalty(5);
    late["gsrq"] = json!("2024-02-20");
    let text: String = [&published, &person, &gap, &on_time, &late]
        .iter()
        .map(|r| format!("{r}\n"))
        .collect();
    let summary = env.ingest(&env.write("public.jsonl", &text));
    assert_eq!(summary["accepted"], 5, "{summary}");
    let out = env
        .cmd(&["run", "--config", support::path_str(&env.config), "--once"])
        .output()
        .expect("gateway run --once");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // `run --once` says what it did at the default log level: a line per source and sink, then JSON.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("去向 sink   credit ")), "{stdout}");
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("JSON summary");
    let credit = summary["sinks"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["sink"] == "credit"))
        .expect("the credit sink's line");
    assert_eq!(
        (
            &credit["delivered"],
            &credit["dead"],
            &credit["withheld"],
            &credit["pending"]
        ),
        (&json!(3), &json!(1), &json!(1), &json!(0)),
        "{summary}"
    );

    // The REST receiver got the public records of 1, 4 and 5 only, in the codes of the format.
    let bodies = bodies.lock().expect("bodies").clone();
    let names: BTreeSet<String> = bodies
        .iter()
        .map(|b| b["record"]["CF_WSH"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "洪市监罚〔2024〕1号".to_string(),
            "洪市监罚〔2024〕4号".into(),
            "洪市监罚〔2024〕5号".into()
        ]),
        "{bodies:?}"
    );
    let first = bodies
        .iter()
        .find(|b| b["record"]["CF_WSH"] == "洪市监罚〔2024〕1号")
        .expect("case 1");
    let r = &first["record"];
    assert_eq!(r["CF_XDR_MC"], "南昌赣江商贸有限公司");
    assert_eq!(r["CF_XDR_LB"], "法人及非法人组织");
    assert_eq!(r["CF_XDR_SHXYM"], "91360102MA35G7K86A");
    assert_eq!(r["CF_FRDB"], "王五");
    assert_eq!(r["CF_NR_FK"], "0.25", "万元 as an exact decimal");
    assert_eq!(r["CF_CFLB"], "罚款;警告");
    assert_eq!(r["CF_JDRQ"], "2024-01-22");
    assert_eq!(r["CF_CFJGDM"], AGENCY_CODE);
    assert_eq!(r["CF_SJLYDM"], AGENCY_CODE);
    assert!(r.get("BZ").is_none() && r.get("remarks").is_some(), "renamed: {r}");
    let all = serde_json::to_string(&bodies).expect("json");
    assert!(
        !all.contains("张三") && !all.contains("11010519491231002X"),
        "the natural person never left"
    );

    // The outbox says what became of each, with the reasons.
    let codes: BTreeMap<String, String> = env
        .export("cases")
        .iter()
        .map(|c| {
            (
                c["record"]["case_number"].as_str().unwrap_or_default().to_string(),
                c["unified_code"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let code_of = |case: &str| codes[&format!("NCSJ-CF-2024-{case}")].clone();
    let outbox = outbox_of(&env).await;
    let credit = all_deliveries(&outbox, "credit").await;
    let status_of = |case: &str| {
        let key = format!("{}:1", code_of(case));
        credit
            .iter()
            .find(|d| d.idempotency_key == key)
            .unwrap_or_else(|| panic!("delivery of {case}: {credit:?}"))
            .clone()
    };
    let withheld = status_of("000002");
    assert_eq!(withheld.status, DeliveryStatus::Withheld);
    assert!(
        withheld
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("自然人") && e.contains("natural person")),
        "{withheld:?}"
    );
    let refused = status_of("000003");
    assert_eq!(refused.status, DeliveryStatus::Dead);
    assert!(
        refused
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("CF_WFXW") && e.contains("/penalty/violation_type")),
        "{refused:?}"
    );
    let (_, delivered, dead) = counts(&outbox, "credit").await;
    assert_eq!((delivered, dead), (3, 1));

    // The AMQP publicity sink published the same three public records, routed by type and region.
    let messages = drain_queue(&mq, "sgs").await;
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(messages.iter().all(|(_, key, body, persistent)| key == "penalty.360100"
        && *persistent
        && body["record"]["CF_XDR_LB"] == "法人及非法人组织"
        && body["record"]["CF_NR_FK"] == "0.25"));

    // The publicity database has the same three rows, one column per field code.
    let client = sink_db_client(&sink_db).await;
    let rows = client
        .query(
            "SELECT cf_wsh, cf_nr_fk::text, cf_jdrq::text, cf_xdr_lb FROM credit.penalty_disclosures ORDER BY cf_wsh",
            &[],
        )
        .await
        .expect("query the publicity table");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].get::<_, String>(0), "洪市监罚〔2024〕1号");
    assert_eq!(rows[0].get::<_, String>(1), "0.25");
    assert_eq!(rows[0].get::<_, String>(2), "2024-01-22");

    // The penalties' publicity: 4 on time (its own date), 5 late (and flagged), 1 published by the
    // sink long after its decision (late), 2 withheld, 3 overdue.
    let store: Arc<dyn Store> = match &env.pg {
        Some(db) => Arc::new(PostgresStore::connect(&db.url, 2).await.expect("connect to the store")),
        None => Arc::new(SqliteStore::open(&env.dir.path().join("data/gateway.db")).expect("open the store")),
    };
    let today = gateway::store::publicity::china_today();
    let (rows, total) = store
        .publicity()
        .publicity(&PublicityFilter::default(), today)
        .await
        .expect("publicity");
    assert_eq!(total, 5);
    let status: BTreeMap<String, PublicityStatus> = rows.iter().map(|r| (r.code.clone(), r.status)).collect();
    assert_eq!(status[&code_of("000001")], PublicityStatus::Late, "{rows:?}");
    assert_eq!(status[&code_of("000002")], PublicityStatus::Withheld);
    assert_eq!(status[&code_of("000003")], PublicityStatus::Overdue);
    assert_eq!(status[&code_of("000004")], PublicityStatus::OnTime);
    assert_eq!(status[&code_of("000005")], PublicityStatus::Late);
    let first_row = rows.iter().find(|r| r.code == code_of("000001")).expect("row of 1");
    assert_eq!(first_row.published_sink.as_deref(), Some("credit"));
    assert_eq!(first_row.deadline.map(|d| d.to_string()).as_deref(), Some("2024-01-31"));
    assert_eq!(store.publicity().publicity_overdue(today).await.expect("overdue"), 1);
    let agencies = store
        .publicity()
        .publicity_by_agency(&PublicityFilter::default(), today)
        .await
        .expect("by agency");
    assert_eq!(agencies.len(), 1);
    assert_eq!((agencies[0].decided, agencies[0].late, agencies[0].overdue), (5, 2, 1));
    let (_, versions) = store.case_by_code(&code_of("000005")).await.expect("case 5");
    assert!(
        versions[0].warnings.iter().any(|w| w.rule == "rule.publicity_overdue"),
        "a department's late publicity date is flagged: {:?}",
        versions[0].warnings
    );
}
on_both_backends!(publicity_sinks_publish_penalties_in_the_credit_disclosure_format_and_withhold_what_the_rules_forbid);
