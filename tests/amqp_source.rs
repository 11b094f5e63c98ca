//! End-to-end AMQP source: the gateway consumes a real RabbitMQ queue, commits each batch of
//! messages and only then acknowledges them. Poison messages are quarantined with their raw
//! bytes and dead-lettered; a connection cut mid-stream loses nothing and duplicates nothing.

mod support;

use adapters::common::amqp_url::Rotation;
use adapters::sources::amqp::AmqpConsumer;
use gateway::config::Config;
use gateway::intake::amqp::run_consumer;
use gateway::intake::tasks::build_runtime;
use gateway::runtime::Runtime;
use gateway::shutdown::Shutdown;
use gateway::store::{CaseFilter, QuarantineFilter};
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::amqp::{Proxy, Vhost};
use support::common::PgDatabase;
use support::{defective_record, nanchang_record, path_str, repo, store_keys, Backend, Env};

const QUEUE: &str = "dept.cases";

struct Consumer {
    runtime: Runtime,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
    _pg: Option<PgDatabase>,
}

async fn start_consumer(backend: Backend, amqp_url: &str, extra: &str) -> Consumer {
    start_consumer_with(backend, amqp_url, "", extra).await
}

/// [`start_consumer`] with more keys for the `[[sources]]` block (`source_keys`) and for its
/// `[sources.amqp]` (`extra`).
async fn start_consumer_with(backend: Backend, amqp_url: &str, source_keys: &str, extra: &str) -> Consumer {
    start_consumer_from(backend, &format!("url = \"{amqp_url}\""), source_keys, extra).await
}

/// [`start_consumer`] on the nodes of a cluster: `urls = [..]`.
async fn start_consumer_on_nodes(backend: Backend, urls: &[String], extra: &str) -> Consumer {
    let list: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    start_consumer_from(backend, &format!("urls = [{}]", list.join(", ")), "", extra).await
}

/// [`start_consumer_with`] given its URL keys (`url = ..` or `urls = [..]`).
async fn start_consumer_from(backend: Backend, url_keys: &str, source_keys: &str, extra: &str) -> Consumer {
    let dir = tempfile::tempdir().unwrap();
    let (store, pg) = store_keys(backend).await;
    let mapping = repo().join("mappings/nanchang-amr-penalty/mapping.toml");
    let text = format!(
        "[store]\n{store}\n[normalizer]\nprovince_prefix = \"36\"\n\n[[sources]]\nid = \"dept-mq\"\nkind = \"amqp\"\n\
         mapping = \"{}\"\nrecord_key = \"ajbh\"\n{source_keys}[sources.amqp]\n{url_keys}\nqueue = \"{QUEUE}\"\n\
         batch_size = 200\nreconnect_initial_ms = 100\nreconnect_max_seconds = 1\nconnect_timeout_seconds = 2\n{extra}\n",
        mapping.display()
    );
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    let resolved = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let table = resolved.config.sources[0].amqp.clone().unwrap();
    let settings = adapters::sources::amqp::AmqpSourceSettings::from_table(&table).unwrap();
    let runtime = build_runtime(resolved).await.unwrap();
    let shutdown = Shutdown::default();
    let task = tokio::spawn(run_consumer(
        runtime.clone(),
        "dept-mq".into(),
        settings,
        dir.path().to_path_buf(),
        shutdown.clone(),
    ));
    Consumer {
        runtime,
        shutdown,
        task,
        _dir: dir,
        _pg: pg,
    }
}

async fn channel(url: &str) -> (lapin::Connection, lapin::Channel) {
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    (conn, channel)
}

/// Make the consumer's PostgreSQL store refuse the record keyed `POISON-1` (a trigger on the
/// raw archive): its message can never be committed.
async fn refuse_poison_in_the_store(c: &Consumer) {
    let db_url = c._pg.as_ref().expect("postgres").url.clone();
    let client = support::common::pg_client(&db_url).await.unwrap();
    client
        .batch_execute(
            "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$
             BEGIN IF NEW.record_key = 'POISON-1' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END
             $$ LANGUAGE plpgsql;
             CREATE TRIGGER refuse_poison BEFORE INSERT ON raw_records FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
        )
        .await
        .unwrap();
}

async fn publish(channel: &lapin::Channel, body: &[u8], content_type: &str) {
    channel
        .basic_publish(
            "".into(),
            QUEUE.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type(content_type.into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
}

/// Messages waiting in a queue (declared passively: it must exist).
async fn depth(channel: &lapin::Channel, queue: &str) -> u32 {
    let q = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    q.message_count()
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Consumer {
    /// Stop the consumer and wait for it to end.
    async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

/// Exactly one message reached the dead-letter queue, and none waits in the queue for redelivery.
async fn assert_one_dead_lettered_and_nothing_waiting(ch: &lapin::Channel) {
    let dead = format!("{QUEUE}.dead");
    wait_for("one message dead-lettered", Duration::from_secs(20), async || {
        depth(ch, &dead).await == 1
    })
    .await;
    assert_eq!(depth(ch, QUEUE).await, 0, "nothing waits for redelivery");
}

async fn wait_until_consuming(c: &Consumer) {
    let board = c.runtime.sources.clone();
    wait_for("the consumer to connect", Duration::from_secs(20), async || {
        board.get("dept-mq").is_some_and(|s| s.pulling)
    })
    .await;
}

async fn amqp_source_commits_then_acks_and_dead_letters_poison(backend: Backend) {
    let vhost = Vhost::create();
    let c = start_consumer(backend, &vhost.url(), "max_message_bytes = 4096").await;
    wait_until_consuming(&c).await;
    let (_conn, ch) = channel(&vhost.url()).await;
    for n in 0..300 {
        let r = if n % 15 == 0 {
            defective_record(n)
        } else {
            nanchang_record(n, 0)
        };
        publish(&ch, r.to_string().as_bytes(), "application/json").await;
    }
    // One message holding two records (an array) counts as two records.
    let pair = serde_json::json!([nanchang_record(1000, 0), nanchang_record(1001, 0)]);
    publish(&ch, pair.to_string().as_bytes(), "application/json").await;
    let poison: Vec<Vec<u8>> = vec![
        b"{\"ajbh\": unterminated".to_vec(),
        vec![b'{'; 5000],
        vec![0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d],
        b"[1, 2, 3]".to_vec(),
    ];
    for p in &poison {
        publish(&ch, p, "application/json").await;
    }
    let store = c.runtime.store.clone();
    wait_for(
        "every record committed or quarantined",
        Duration::from_secs(60),
        async || {
            let s = store.stats().await.unwrap();
            s.cases == 282 && s.quarantine_total == 24
        },
    )
    .await;
    let dead = format!("{QUEUE}.dead");
    wait_for(
        "the poison messages dead-lettered",
        Duration::from_secs(20),
        async || depth(&ch, &dead).await == 4,
    )
    .await;

    let entries = store
        .quarantine_list(&QuarantineFilter {
            rule: Some("input.unreadable".into()),
            ..QuarantineFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(entries.len(), 4);
    let mut payloads = Vec::new();
    for e in &entries {
        payloads.push(store.raw_record(e.raw_id).await.unwrap().payload);
    }
    for p in &poison {
        assert!(payloads.contains(p), "poison message kept with its raw bytes");
    }
    let defects = store
        .quarantine_list(&QuarantineFilter {
            rule: Some("uscc.check_char".into()),
            ..QuarantineFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(defects.len(), 20);
    let board = c.runtime.sources.clone();
    wait_for("the board to count every batch", Duration::from_secs(20), async || {
        board.get("dept-mq").is_some_and(|s| s.totals.received == 306)
    })
    .await;
    let status = board.get("dept-mq").unwrap();
    assert_eq!(status.totals.accepted, 282);
    assert_eq!(status.totals.quarantined, 24);
    assert_eq!(
        support::board_totals_agreeing_with_metrics(&c.runtime, "dept-mq"),
        status.totals,
        "AMQP batches are counted by the one committer, like every way in"
    );
    c.shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), c.task)
        .await
        .unwrap()
        .unwrap();
    // Closing the consumer returns unacknowledged messages to the queue: none are there.
    assert_eq!(depth(&ch, QUEUE).await, 0, "every message was acknowledged");
    assert_eq!(depth(&ch, &dead).await, 4, "only the poison messages are dead-lettered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_source_commits_then_acks_and_dead_letters_poison_sqlite() {
    amqp_source_commits_then_acks_and_dead_letters_poison(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_source_commits_then_acks_and_dead_letters_poison_postgres() {
    amqp_source_commits_then_acks_and_dead_letters_poison(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_source_connection_cut_mid_stream_loses_and_duplicates_nothing() {
    let vhost = Vhost::create();
    let proxy = Proxy::start("127.0.0.1:5672").await;
    let via_proxy = format!("amqp://guest:guest@127.0.0.1:{}/{}", proxy.port, vhost.name);
    let c = start_consumer(Backend::Postgres, &via_proxy, "prefetch = 100").await;
    wait_until_consuming(&c).await;
    let (_conn, ch) = channel(&vhost.url()).await;
    const N: usize = 3000;
    for n in 0..N {
        publish(&ch, nanchang_record(n, 0).to_string().as_bytes(), "application/json").await;
    }
    let store = c.runtime.store.clone();
    wait_for("part of the stream committed", Duration::from_secs(60), async || {
        store.stats().await.unwrap().cases >= 300
    })
    .await;
    proxy.cut();
    let at_cut = store.stats().await.unwrap().cases;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.restore();
    wait_for(
        "every record committed after the reconnection",
        Duration::from_secs(120),
        async || store.stats().await.unwrap().cases == N as i64,
    )
    .await;
    assert!(
        at_cut < N as i64,
        "the cut happened mid-stream ({at_cut} of {N} committed)"
    );
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.cases, N as i64);
    assert_eq!(stats.versions, N as i64, "a redelivered record makes no second version");
    assert_eq!(stats.quarantine_total, 0);
    let cases = store
        .cases(&CaseFilter {
            limit: Some(10_000),
            ..CaseFilter::default()
        })
        .await
        .unwrap();
    let codes: std::collections::BTreeSet<_> = cases.iter().map(|c| c.unified_code.clone()).collect();
    assert_eq!(codes.len(), N, "one code per case");
    // Redelivered duplicates may still be on their way: wait until the queue is drained and
    // the consumer has been idle for a moment before stopping it.
    wait_for("the queue drained", Duration::from_secs(30), async || {
        depth(&ch, QUEUE).await == 0
    })
    .await;
    let board = c.runtime.sources.clone();
    let mut last = 0;
    wait_for("the consumer idle", Duration::from_secs(30), async || {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let now = board.get("dept-mq").map(|s| s.totals.received).unwrap_or_default();
        std::mem::replace(&mut last, now) == now
    })
    .await;
    let status = c.runtime.sources.get("dept-mq").unwrap();
    assert!(
        status.last_error.is_some(),
        "the cut is reported on the source's status"
    );
    c.shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), c.task)
        .await
        .unwrap()
        .unwrap();
    // Closing the consumer returns unacknowledged messages to the queue: none are there.
    assert_eq!(depth(&ch, QUEUE).await, 0, "every message was acknowledged");
}

/// The prefetch the broker applies to the consumer of `vhost` whose tag is `tag` (the first
/// consumer) or `tag.<n>` (the n-th restarted), as `rabbitmqctl` lists it.
fn broker_prefetch(vhost: &Vhost, tag: &str) -> Option<u16> {
    let out = Command::new("rabbitmqctl")
        .args(["list_consumers", "-q", "--no-table-headers", "-p", &vhost.name])
        .args(["consumer_tag", "prefetch_count"])
        .output()
        .expect("rabbitmqctl list_consumers");
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let mut columns = l.split_whitespace();
        let restarted = format!("{tag}.");
        columns
            .next()
            .is_some_and(|t| t == tag || t.starts_with(&restarted))
            .then(|| columns.next().and_then(|p| p.parse().ok()))
            .flatten()
    })
}

/// Take batches until `n` messages are taken, settling each (keys into `keys`, each new): the
/// window the consumer runs with after each batch.
async fn take_and_settle(consumer: &mut AmqpConsumer, n: usize, keys: &mut BTreeSet<String>) -> Vec<u16> {
    const MIB: usize = 1 << 20;
    let mut windows = Vec::new();
    let mut taken = 0;
    while taken < n {
        let batch = tokio::time::timeout(Duration::from_secs(20), consumer.next_batch())
            .await
            .expect("a batch within 20 s")
            .unwrap()
            .expect("the consumer runs");
        assert!(batch.messages <= 64, "never more than prefetch unacknowledged");
        assert!(
            batch.bytes < 8 * MIB + 3 * MIB,
            "a batch stops at max_inflight_bytes: {} bytes",
            batch.bytes
        );
        taken += batch.messages;
        for k in batch.message_keys() {
            assert!(keys.insert(k), "no message is taken twice");
        }
        windows.push(consumer.window());
        batch.settle().await.unwrap();
    }
    windows
}

/// Issue 21: the consumer's window (its prefetch) doubles while small messages keep it full, up
/// to `prefetch`; a message too large for it shrinks it at once to what `max_inflight_bytes`
/// allows, and the broker applies each new window (the consumer is cancelled and started again).
/// Through every change no message is lost or taken twice, and no batch holds more than
/// `max_inflight_bytes` plus the message that reached it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_window_follows_message_sizes_and_loses_nothing() {
    the_consumer_window_follows_message_sizes("classic").await;
}

/// The same on a quorum queue, where a consumer restarted under the tag of the one cancelled
/// before it can crash the channel (RabbitMQ issues 5927 and 9158): every restart takes a tag
/// of its own, and nothing is redelivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_window_follows_message_sizes_on_a_quorum_queue_and_loses_nothing() {
    the_consumer_window_follows_message_sizes("quorum").await;
}

async fn the_consumer_window_follows_message_sizes(queue_type: &str) {
    const MIB: usize = 1 << 20;
    let vhost = Vhost::create();
    let dir = tempfile::tempdir().unwrap();
    let table: toml::Table = toml::from_str(&format!(
        "url = \"{}\"\nqueue = \"{QUEUE}\"\nprefetch = 64\nbatch_wait_ms = 20\nmax_inflight_bytes = {}\nqueue_type = \"{queue_type}\"\n",
        vhost.url(),
        8 * MIB
    ))
    .unwrap();
    let settings = adapters::sources::amqp::AmqpSourceSettings::from_table(&table).unwrap();
    let mut consumer = AmqpConsumer::connect("window", &settings, dir.path(), &mut Rotation::default())
        .await
        .unwrap();
    assert_eq!(consumer.window(), 1, "8 MiB of 16 MiB messages: one");
    assert_eq!(broker_prefetch(&vhost, "ganzhi-window"), Some(1));
    let (_conn, ch) = channel(&vhost.url()).await;
    let mut keys = BTreeSet::new();

    for n in 0..200 {
        publish(&ch, nanchang_record(n, 0).to_string().as_bytes(), "application/json").await;
    }
    let windows = take_and_settle(&mut consumer, 200, &mut keys).await;
    let grows = |w: &[u16]| w.windows(2).all(|pair| pair[0] <= pair[1]);
    assert!(grows(&windows), "small messages only make it grow: {windows:?}");
    assert_eq!(consumer.window(), 64, "up to prefetch: {windows:?}");
    assert_eq!(
        broker_prefetch(&vhost, "ganzhi-window"),
        Some(64),
        "the broker applies it"
    );

    // Six messages of 3 MiB (over max_message_bytes: poison) arrive under the window of 64.
    for i in 0..6u8 {
        let mut big = vec![b'{'; 3 * MIB];
        big[1] = i;
        publish(&ch, &big, "application/json").await;
    }
    take_and_settle(&mut consumer, 6, &mut keys).await;
    // The next consumer starts when the next batch is asked for (none comes: the queue is empty).
    let idle = tokio::time::timeout(Duration::from_secs(1), consumer.next_batch()).await;
    assert!(idle.is_err(), "no message waits");
    assert_eq!(
        consumer.window(),
        2,
        "8 MiB of 3 MiB messages: the window shrank to two"
    );
    assert_eq!(
        broker_prefetch(&vhost, "ganzhi-window"),
        Some(2),
        "the broker applies it"
    );

    for n in 200..230 {
        publish(&ch, nanchang_record(n, 0).to_string().as_bytes(), "application/json").await;
    }
    let windows = take_and_settle(&mut consumer, 30, &mut keys).await;
    assert!(
        grows(&windows) && windows.last() > Some(&2),
        "it grows again on small messages: {windows:?}"
    );
    assert_eq!(keys.len(), 236, "every message taken once");
    consumer.close().await;
    assert_eq!(depth(&ch, QUEUE).await, 0, "every message was settled");
    assert_eq!(
        depth(&ch, &format!("{QUEUE}.dead")).await,
        6,
        "the large ones dead-lettered"
    );
}

/// A poison message whose `message_id` holds NUL and control characters is quarantined under a
/// storable key and dead-lettered on PostgreSQL (which takes no NUL in text or JSON), and the
/// queue keeps flowing: the record after it is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_message_id_does_not_block_the_queue() {
    let vhost = Vhost::create();
    let c = start_consumer(Backend::Postgres, &vhost.url(), "").await;
    wait_until_consuming(&c).await;
    let (_conn, ch) = channel(&vhost.url()).await;
    ch.basic_publish(
        "".into(),
        QUEUE.into(),
        BasicPublishOptions::default(),
        b"{\"ajbh\": broken\x00",
        BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id("id-\u{0}-\u{1b}[2J".into()),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    publish(&ch, nanchang_record(500, 0).to_string().as_bytes(), "application/json").await;
    let store = c.runtime.store.clone();
    wait_for(
        "the record after the poison message committed",
        Duration::from_secs(30),
        async || {
            let s = store.stats().await.unwrap();
            s.cases == 1 && s.quarantine_total == 1
        },
    )
    .await;
    let entries = store.quarantine_list(&QuarantineFilter::default()).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert!(
        entries[0].record_key.contains("id-\u{fffd}-\u{fffd}[2J"),
        "the key is stored without its control characters: {:?}",
        entries[0].record_key
    );
    assert_one_dead_lettered_and_nothing_waiting(&ch).await;
    c.stop().await;
}

/// A message the store refuses every time (here: a database trigger refuses its record key, for
/// the record and for its quarantine entry alike) is committed on its own after its first
/// failure, quarantined from its raw bytes after `max_redeliveries` failures and dead-lettered;
/// the messages around it are committed, and nothing is redelivered forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_never_commits_is_quarantined_after_max_redeliveries_and_the_rest_flows() {
    let vhost = Vhost::create();
    let c = start_consumer(Backend::Postgres, &vhost.url(), "max_redeliveries = 2").await;
    refuse_poison_in_the_store(&c).await;
    wait_until_consuming(&c).await;
    let (_conn, ch) = channel(&vhost.url()).await;
    let mut poison = nanchang_record(600, 0);
    poison["ajbh"] = serde_json::json!("POISON-1");
    for r in [nanchang_record(601, 0), poison.clone(), nanchang_record(602, 0)] {
        publish(&ch, r.to_string().as_bytes(), "application/json").await;
    }
    let store = c.runtime.store.clone();
    wait_for(
        "the good messages committed, the bad one quarantined",
        Duration::from_secs(60),
        async || {
            let s = store.stats().await.unwrap();
            s.cases == 2 && s.quarantine_total == 1
        },
    )
    .await;
    let entries = store.quarantine_list(&QuarantineFilter::default()).await.unwrap();
    assert_eq!(entries[0].violations[0].rule, "input.unreadable");
    assert!(
        entries[0].violations[0].message_en.contains("max_redeliveries"),
        "{:?}",
        entries[0].violations[0]
    );
    let raw = store.raw_record(entries[0].raw_id).await.unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&raw.payload).unwrap(),
        poison,
        "quarantined from its raw bytes"
    );
    assert_one_dead_lettered_and_nothing_waiting(&ch).await;
    c.stop().await;
}

/// An AMQP source writes only for its own agencies: a message naming another department's agency
/// is quarantined with `source.agency_not_allowed`, the rest of the queue flows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amqp_source_cannot_write_for_another_departments_agency() {
    let vhost = Vhost::create();
    let scope = format!("agencies = [\"{}\"]\n", support::AGENCY_CODE);
    let c = start_consumer_with(Backend::Sqlite, &vhost.url(), &scope, "").await;
    wait_until_consuming(&c).await;
    let (_conn, ch) = channel(&vhost.url()).await;
    let mut other = nanchang_record(700, 0);
    other["jgdm"] = serde_json::json!("11360400014587316A");
    other["xzqh"] = serde_json::json!("360400");
    for r in [other, nanchang_record(701, 0)] {
        publish(&ch, r.to_string().as_bytes(), "application/json").await;
    }
    let store = c.runtime.store.clone();
    wait_for("one committed, one refused", Duration::from_secs(30), async || {
        let s = store.stats().await.unwrap();
        s.cases == 1 && s.quarantine_total == 1
    })
    .await;
    let entries = store.quarantine_list(&QuarantineFilter::default()).await.unwrap();
    assert_eq!(entries[0].violations[0].rule, "source.agency_not_allowed");
    assert_eq!(entries[0].violations[0].value.as_deref(), Some("11360400014587316A"));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_version_arriving_by_amqp_after_a_newer_one_is_kept_as_stale() {
    let vhost = Vhost::create();
    let c = start_consumer(Backend::Postgres, &vhost.url(), "").await;
    wait_until_consuming(&c).await;
    let (_conn, ch) = channel(&vhost.url()).await;
    let version = |variant: u32, at: &str| {
        let mut r = nanchang_record(800, variant);
        r["cd_time"] = serde_json::json!(at);
        r.to_string()
    };
    publish(&ch, version(2, "2024-03-02 10:00:00").as_bytes(), "application/json").await;
    let store = c.runtime.store.clone();
    wait_for("version 2 committed", Duration::from_secs(30), async || {
        store.stats().await.unwrap().cases == 1
    })
    .await;
    publish(&ch, version(1, "2024-03-01 10:00:00").as_bytes(), "application/json").await;
    let board = c.runtime.sources.clone();
    wait_for("version 1 counted stale", Duration::from_secs(30), async || {
        board.get("dept-mq").is_some_and(|s| s.totals.stale == 1)
    })
    .await;
    let totals = support::board_totals_agreeing_with_metrics(&c.runtime, "dept-mq");
    assert_eq!((totals.accepted, totals.updated, totals.stale), (1, 0, 1));
    let case = &store.cases(&CaseFilter::default()).await.unwrap()[0];
    assert_eq!(case.version, 1);
    assert_eq!(case.record["source_updated_at"], "2024-03-02T10:00:00+08:00");
    let (_, lineage) = store.case_by_code(&case.unified_code).await.unwrap();
    let rows: Vec<(i32, &str, &str)> = lineage
        .iter()
        .map(|v| {
            (
                v.version,
                v.status.as_str(),
                v.record["source_updated_at"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (1, "active", "2024-03-02T10:00:00+08:00"),
            (1, "stale", "2024-03-01T10:00:00+08:00")
        ]
    );
    assert!(store
        .outbox_for_case(case.id)
        .await
        .unwrap()
        .iter()
        .all(|o| o.version == 1));
    c.stop().await;
}

/// The value of `gateway_source_errors_total` for the AMQP source.
fn source_errors(runtime: &Runtime) -> u64 {
    let text = runtime.metrics.render(&[], &[]);
    text.lines()
        .find_map(|l| l.strip_prefix(r#"gateway_source_errors_total{source="dept-mq"} "#))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// A department's queue that exists without the dead-letter argument the gateway declares: the
/// consumer consumes nothing and says, on the source board and in its error count, what differs
/// and what to change, retrying with the normal backoff (not in a tight loop); `gateway config
/// check --connect` prints the same and exits 1, and passes once `declare_queue = false`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_declared_without_the_dead_letter_argument_is_explained_not_retried_in_a_tight_loop() {
    let vhost = Vhost::create();
    let (_conn, ch) = channel(&vhost.url()).await;
    ch.queue_declare(
        QUEUE.into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish(&ch, nanchang_record(1, 0).to_string().as_bytes(), "application/json").await;

    let c = start_consumer(Backend::Sqlite, &vhost.url(), "").await;
    let board = c.runtime.sources.clone();
    wait_for("the explained error", Duration::from_secs(20), async || {
        board.get("dept-mq").is_some_and(|s| s.last_error.is_some())
    })
    .await;
    let started = Instant::now();
    let (_, error) = board.get("dept-mq").unwrap().last_error.unwrap();
    let expected = [
        format!(
            "queue {QUEUE} exists in vhost {} with x-dead-letter-exchange absent",
            vhost.name
        ),
        "the gateway would declare it with x-dead-letter-exchange = 'ganzhi.dead-letter'".to_string(),
        "set declare_queue = false".to_string(),
        "delete the queue".to_string(),
        format!("队列 {QUEUE} 已存在"),
    ];
    for part in &expected {
        assert!(error.contains(part.as_str()), "{part:?} missing in {error}");
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let attempts = source_errors(&c.runtime);
    let elapsed = started.elapsed();
    // reconnect_initial_ms = 100 doubling to reconnect_max_seconds = 1: about five attempts in
    // 2.5 s; a tight loop would make hundreds.
    assert!((2..=8).contains(&attempts), "{attempts} attempts in {elapsed:?}");
    assert!(!board.get("dept-mq").unwrap().pulling, "not consuming");
    assert_eq!(depth(&ch, QUEUE).await, 1, "the message waits in the queue");
    assert_eq!(c.runtime.store.stats().await.unwrap().raw_records, 0);

    let config = c._dir.path().join("gateway.toml");
    let out = support::gateway()
        .args(["config", "check", "--connect", support::path_str(&config)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("sources[0] (id \"dept-mq\").amqp:"), "{text}");
    for part in &expected {
        assert!(text.contains(part.as_str()), "{part:?} missing in {text}");
    }
    let mut with_own_queue = std::fs::read_to_string(&config).unwrap();
    c.stop().await;
    assert_eq!(depth(&ch, QUEUE).await, 1, "nothing was consumed");
    let (_probe_conn, probe) = channel(&vhost.url()).await;
    let dead = probe
        .queue_declare(
            format!("{QUEUE}.dead").as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    assert!(
        dead.is_err(),
        "neither the refused consumer nor config check --connect declared anything"
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    with_own_queue.push_str("declare_queue = false\n");
    std::fs::write(&config, with_own_queue).unwrap();
    let out = support::gateway()
        .args(["config", "check", "--connect", support::path_str(&config)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(&format!("queue {QUEUE} exists (1 messages")), "{text}");
}

/// A `gateway run` process, killed (and its log printed) if the test ends without stopping it.
struct RunningGateway {
    child: Option<Child>,
    log: std::path::PathBuf,
}

impl RunningGateway {
    fn start(env: &Env) -> RunningGateway {
        let log = env.dir.path().join("run.log");
        let child = env
            .cmd(&["run", "--config", path_str(&env.config)])
            .env("GATEWAY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start gateway run");
        RunningGateway {
            child: Some(child),
            log,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// A `VmHWM:` / `VmRSS:` line of the process's status, in kB.
    fn memory_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.pid()))
    }

    /// SIGTERM, then wait: the gateway finishes what it took and exits 0.
    fn stop(mut self) {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = child.wait().unwrap();
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(status.success(), "gateway run exited with {status}\n{log}");
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!(
                "gateway run log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// Issue 21: RabbitMQ counts its prefetch in messages, so with the default prefetch of 2,000 a
/// queue of 15 MiB messages would be delivered to the gateway by the GiB. `gateway run` with the
/// default settings consumes a queue holding such messages (40 here; set
/// `GATEWAY_TEST_BIG_MESSAGES=300` for the issue's full case) and stays under 500 MB resident
/// at its peak, while every message, too large for `max_message_bytes`, is quarantined and
/// dead-lettered with its bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_run_consuming_fifteen_mib_messages_stays_under_500_mb_and_dead_letters_each() {
    const MIB: usize = 1 << 20;
    let n: usize = std::env::var("GATEWAY_TEST_BIG_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let vhost = Vhost::create();
    let (_conn, ch) = channel(&vhost.url()).await;
    // The queues as the gateway declares them, the source queue filled before the gateway starts.
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let dead = format!("{QUEUE}.dead");
    ch.exchange_declare(
        "ganzhi.dead-letter".into(),
        lapin::ExchangeKind::Fanout,
        lapin::options::ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_declare(dead.as_str().into(), durable, FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind(
        dead.as_str().into(),
        "ganzhi.dead-letter".into(),
        "".into(),
        lapin::options::QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        lapin::types::AMQPValue::LongString("ganzhi.dead-letter".into()),
    );
    ch.queue_declare(QUEUE.into(), durable, arguments).await.unwrap();
    let published = Instant::now();
    for i in 0..n {
        let mut body = format!("{{\"ajbh\":\"BIG-{i}\",\"wfss\":\"").into_bytes();
        body.resize(15 * MIB - 2, b'x');
        body.extend_from_slice(b"\"}");
        publish(&ch, &body, "application/json").await;
    }
    wait_for("the messages queued", Duration::from_secs(60), async || {
        depth(&ch, QUEUE).await == n as u32
    })
    .await;
    eprintln!(
        "published {n} messages of 15 MiB in {:.1}s",
        published.elapsed().as_secs_f64()
    );

    let mapping = repo().join("mappings/nanchang-amr-penalty/mapping.toml");
    let source = format!(
        "[[sources]]\nid = \"dept-mq\"\nkind = \"amqp\"\nmapping = \"{}\"\nrecord_key = \"ajbh\"\n\
         [sources.amqp]\nurl = \"{}\"\nqueue = \"{QUEUE}\"\n",
        mapping.display(),
        vhost.url()
    );
    // PostgreSQL keeps the quarantined bodies compressed (SQLite would store them whole).
    let env = Env::with_sources(Backend::Postgres, &source).await;
    let run = RunningGateway::start(&env);
    let started = Instant::now();
    let mut peak_rss_kb = 0;
    wait_for(
        "every message dead-lettered",
        Duration::from_secs(60 + 3 * n as u64),
        async || {
            peak_rss_kb = peak_rss_kb.max(run.memory_kb("VmRSS:"));
            depth(&ch, &dead).await == n as u32
        },
    )
    .await;
    let hwm_kb = run.memory_kb("VmHWM:");
    eprintln!(
        "{n} messages of 15 MiB consumed in {:.1}s; peak resident (VmHWM) {} MB, largest VmRSS sampled {} MB",
        started.elapsed().as_secs_f64(),
        hwm_kb / 1000,
        peak_rss_kb / 1000
    );
    run.stop();
    assert_eq!(depth(&ch, QUEUE).await, 0, "no message waits in the queue");
    assert_eq!(depth(&ch, &dead).await, n as u32, "every message dead-lettered once");
    let letter = ch
        .basic_get(dead.as_str().into(), lapin::options::BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("a dead letter");
    assert_eq!(letter.delivery.data.len(), 15 * MIB, "dead-lettered with its bytes");
    assert!(letter.delivery.data.starts_with(b"{\"ajbh\":\"BIG-"));
    let db_url = &env.pg.as_ref().expect("postgres").url;
    let (db, connection) = tokio_postgres::connect(db_url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let row = db
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE rules @> ARRAY['input.too_large']) FROM quarantine",
            &[],
        )
        .await
        .unwrap();
    let (quarantined, over_size): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(
        (quarantined, over_size),
        (n as i64, n as i64),
        "every message quarantined as too large (input.too_large, its first 64 KiB kept)"
    );
    assert!(
        hwm_kb < 500_000,
        "gateway run peaked at {} MB resident consuming 15 MiB messages (bound: 500 MB)",
        hwm_kb / 1000
    );
}

// ---------------------------------------------------------------------------------------------
// Issue 23: quorum queues and the nodes of a RabbitMQ cluster.
// ---------------------------------------------------------------------------------------------

/// `gateway config check --connect` on a consumer's configuration: (exit code, stdout).
fn config_check_connect(c: &Consumer) -> (Option<i32>, String) {
    let config = c._dir.path().join("gateway.toml");
    let out = support::gateway()
        .args(["config", "check", "--connect", support::path_str(&config)])
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A source with `queue_type = "quorum"` declares its queue and `<queue>.dead` as quorum queues
/// and consumes as from a classic one: records are committed and acknowledged, a poison message
/// is quarantined and dead-lettered, and a message the store refuses every time is quarantined
/// after `max_redeliveries` and dead-lettered, each once (the broker's `x-delivery-limit` is not
/// reached first). `gateway config check --connect` then finds the quorum queues as the gateway
/// declares them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_queue_is_consumed_and_dead_letters_poison_and_failing_messages_once() {
    let vhost = Vhost::create();
    let c = start_consumer(
        Backend::Postgres,
        &vhost.url(),
        "queue_type = \"quorum\"\nmax_redeliveries = 2",
    )
    .await;
    refuse_poison_in_the_store(&c).await;
    wait_until_consuming(&c).await;
    assert_eq!(vhost.queue_type(QUEUE).as_deref(), Some("quorum"));
    assert_eq!(
        vhost.queue_type(&format!("{QUEUE}.dead")).as_deref(),
        Some("quorum"),
        "the dead letters are replicated too"
    );
    let (_conn, ch) = channel(&vhost.url()).await;
    for n in 0..100 {
        publish(&ch, nanchang_record(n, 0).to_string().as_bytes(), "application/json").await;
    }
    publish(&ch, b"{\"ajbh\": unterminated", "application/json").await;
    let mut failing = nanchang_record(100, 0);
    failing["ajbh"] = serde_json::json!("POISON-1");
    publish(&ch, failing.to_string().as_bytes(), "application/json").await;
    let store = c.runtime.store.clone();
    wait_for(
        "the records committed, the two bad messages quarantined",
        Duration::from_secs(60),
        async || {
            let s = store.stats().await.unwrap();
            s.cases == 100 && s.quarantine_total == 2
        },
    )
    .await;
    let dead = format!("{QUEUE}.dead");
    wait_for("both dead-lettered", Duration::from_secs(20), async || {
        depth(&ch, &dead).await == 2
    })
    .await;
    assert_eq!(depth(&ch, QUEUE).await, 0, "nothing waits for redelivery");
    let entries = store.quarantine_list(&QuarantineFilter::default()).await.unwrap();
    let messages: Vec<&str> = entries.iter().map(|e| e.violations[0].message_en.as_str()).collect();
    assert!(
        messages.iter().any(|m| m.contains("JSON cannot be parsed")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("failed to commit 2 times (max_redeliveries)")),
        "{messages:?}"
    );
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.versions, 100, "a redelivered record makes no second version");

    let (code, text) = config_check_connect(&c);
    assert_eq!(code, Some(0), "{text}");
    for part in [
        "AMQP node amqp://127.0.0.1:5672: reachable".to_string(),
        format!("queue {QUEUE}: exists as the gateway declares it"),
        format!("queue {QUEUE}.dead: exists as the gateway declares it"),
    ] {
        assert!(text.contains(&part), "{part:?} missing in {text}");
    }
    c.stop().await;
    assert_eq!(depth(&ch, QUEUE).await, 0, "every message was settled");
    assert_eq!(depth(&ch, &dead).await, 2);
}

/// A queue's type cannot change: a classic queue where the source is configured for a quorum one
/// is not consumed, and the source's error and `gateway config check --connect` name both types
/// and what to change, in Chinese and English.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classic_queue_where_a_quorum_one_is_configured_is_named_by_type_and_not_consumed() {
    let vhost = Vhost::create();
    let (_conn, ch) = channel(&vhost.url()).await;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        lapin::types::AMQPValue::LongString("ganzhi.dead-letter".into()),
    );
    ch.queue_declare(
        QUEUE.into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        arguments,
    )
    .await
    .unwrap();
    publish(&ch, nanchang_record(1, 0).to_string().as_bytes(), "application/json").await;

    let c = start_consumer(Backend::Sqlite, &vhost.url(), "queue_type = \"quorum\"").await;
    let board = c.runtime.sources.clone();
    wait_for("the explained error", Duration::from_secs(20), async || {
        board.get("dept-mq").is_some_and(|s| s.last_error.is_some())
    })
    .await;
    let (_, error) = board.get("dept-mq").unwrap().last_error.unwrap();
    let expected = [
        format!(
            "queue {QUEUE} exists in vhost {} as a classic queue; the gateway would declare it as a quorum queue (queue_type = \"quorum\")",
            vhost.name
        ),
        "a queue's type cannot be changed".to_string(),
        "set queue_type = \"classic\" to use the queue as it is".to_string(),
        format!("队列 {QUEUE} 已作为经典队列（classic）存在于 vhost {}", vhost.name),
        "仲裁队列（quorum）".to_string(),
    ];
    for part in &expected {
        assert!(error.contains(part.as_str()), "{part:?} missing in {error}");
    }
    assert!(!board.get("dept-mq").unwrap().pulling, "not consuming");
    let (code, text) = config_check_connect(&c);
    assert_eq!(code, Some(1), "{text}");
    for part in &expected {
        assert!(text.contains(part.as_str()), "{part:?} missing in {text}");
    }
    c.stop().await;
    assert_eq!(depth(&ch, QUEUE).await, 1, "the message waits in the queue");
    assert_eq!(vhost.queue_type(QUEUE).as_deref(), Some("classic"));
}

/// With `urls`, a first node that does not answer is skipped: the consumer connects to the next
/// one and commits. `gateway config check --connect` names the dead node and the live one
/// (scheme://host:port, never the credentials) and exits 1. When no node answers, the source's
/// error names every node tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_first_url_is_skipped_and_every_node_that_fails_is_named_without_credentials() {
    let vhost = Vhost::create();
    let dead = format!("amqp://guest:guest@127.0.0.1:1/{}", vhost.name);
    let c = start_consumer_on_nodes(Backend::Sqlite, &[dead, vhost.url()], "").await;
    wait_until_consuming(&c).await;
    let (_conn, ch) = channel(&vhost.url()).await;
    for n in 0..50 {
        publish(&ch, nanchang_record(n, 0).to_string().as_bytes(), "application/json").await;
    }
    let store = c.runtime.store.clone();
    wait_for("every record committed", Duration::from_secs(30), async || {
        store.stats().await.unwrap().cases == 50
    })
    .await;
    let (code, text) = config_check_connect(&c);
    assert_eq!(code, Some(1), "a node that cannot be reached fails the check: {text}");
    for part in [
        "cannot connect to AMQP node amqp://127.0.0.1:1: ".to_string(),
        "AMQP node amqp://127.0.0.1:5672: reachable".to_string(),
        format!("queue {QUEUE}: exists as the gateway declares it"),
    ] {
        assert!(text.contains(&part), "{part:?} missing in {text}");
    }
    assert!(!text.contains("guest:guest"), "{text}");
    c.stop().await;

    let nowhere = [
        "amqp://gw:s3cr3t-node-pw@127.0.0.1:1/v".to_string(),
        "amqp://gw:s3cr3t-node-pw@127.0.0.1:2/v".to_string(),
    ];
    let c = start_consumer_on_nodes(Backend::Sqlite, &nowhere, "").await;
    let board = c.runtime.sources.clone();
    wait_for("the error", Duration::from_secs(20), async || {
        board.get("dept-mq").is_some_and(|s| s.last_error.is_some())
    })
    .await;
    let (_, error) = board.get("dept-mq").unwrap().last_error.unwrap();
    for part in [
        "none of the 2 AMQP nodes could be connected to (amqp://127.0.0.1:1: ",
        "; amqp://127.0.0.1:2: ",
        "2 个 AMQP 节点均无法连接",
    ] {
        assert!(error.contains(part), "{part:?} missing in {error}");
    }
    assert!(!error.contains("s3cr3t-node-pw"), "{error}");
    c.stop().await;
}

/// The node a consumer is connected to goes away mid-stream (the network to it is cut for good):
/// the consumer reconnects through the next URL of the list, and every message of a quorum queue
/// arrives in the store exactly once: 0 lost, 0 duplicate cases or versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_lost_mid_stream_fails_over_to_the_next_url_and_every_message_arrives_once() {
    let vhost = Vhost::create();
    let first = Proxy::start("127.0.0.1:5672").await;
    let second = Proxy::start("127.0.0.1:5672").await;
    let urls = [
        format!("amqp://guest:guest@127.0.0.1:{}/{}", first.port, vhost.name),
        format!("amqp://guest:guest@127.0.0.1:{}/{}", second.port, vhost.name),
    ];
    let c = start_consumer_on_nodes(Backend::Postgres, &urls, "queue_type = \"quorum\"\nprefetch = 100").await;
    wait_until_consuming(&c).await;
    assert_eq!(second.forwarded(), 0, "the first node is used while it answers");
    let (_conn, ch) = channel(&vhost.url()).await;
    const N: usize = 3000;
    for n in 0..N {
        publish(&ch, nanchang_record(n, 0).to_string().as_bytes(), "application/json").await;
    }
    let store = c.runtime.store.clone();
    wait_for("part of the stream committed", Duration::from_secs(60), async || {
        store.stats().await.unwrap().cases >= 300
    })
    .await;
    first.cut();
    let at_cut = store.stats().await.unwrap().cases;
    wait_for(
        "every record committed through the second node",
        Duration::from_secs(120),
        async || store.stats().await.unwrap().cases == N as i64,
    )
    .await;
    assert!(
        at_cut < N as i64,
        "the node went away mid-stream ({at_cut} of {N} committed)"
    );
    assert!(
        second.forwarded() >= 1,
        "the consumer reconnected through the second URL"
    );
    wait_for("the queue drained", Duration::from_secs(30), async || {
        depth(&ch, QUEUE).await == 0
    })
    .await;
    let board = c.runtime.sources.clone();
    let mut last = 0;
    wait_for("the consumer idle", Duration::from_secs(30), async || {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let now = board.get("dept-mq").map(|s| s.totals.received).unwrap_or_default();
        std::mem::replace(&mut last, now) == now
    })
    .await;
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.cases, N as i64, "0 lost");
    assert_eq!(stats.versions, N as i64, "a redelivered record makes no second version");
    assert_eq!(stats.quarantine_total, 0);
    let cases = store
        .cases(&CaseFilter {
            limit: Some(10_000),
            ..CaseFilter::default()
        })
        .await
        .unwrap();
    let codes: BTreeSet<_> = cases.iter().map(|c| c.unified_code.clone()).collect();
    assert_eq!(codes.len(), N, "0 duplicate cases: one code per case");
    let status = board.get("dept-mq").unwrap();
    assert!(status.pulling, "consuming again");
    let (_, error) = status
        .last_error
        .expect("the lost node is reported on the source's status");
    let lost = format!("connection to AMQP node amqp://127.0.0.1:{} lost", first.port);
    assert!(error.contains(&lost), "{lost:?} missing in {error}");
    assert!(!error.contains("guest:guest"), "{error}");
    c.stop().await;
    assert_eq!(depth(&ch, QUEUE).await, 0, "every message was acknowledged");
}
