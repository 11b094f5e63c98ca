//! Several `gateway run` processes on one PostgreSQL store, pulling two REST sources from a
//! simulated legacy system that keeps adding records, and competing for the messages of an AMQP
//! quorum queue that a publisher keeps filling. One instance is killed (SIGKILL) and
//! replaced; another is paused (SIGSTOP) past its lease and resumed. Proved, with real
//! processes and a real database: every record is in exactly once (no duplicate codes, one
//! version each), each source is pulled by at most one instance at any time and never faster
//! than its configured rate, a dead holder's job is taken over within the lease plus the
//! acquire interval, no stored cursor ever moves back, a paused holder commits nothing after
//! its lease was taken (its late batch is refused by epoch), and the jobs are spread over the
//! instances (no instance holds more than its share while others have none).
//!
//! The lease is shortened to 3 s here so the test runs in well under a minute; the defaults
//! (8 s lease, 1 s acquire) take a job over within 10 s.

mod support;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::common::PgDatabase;
use support::{nanchang_record, repo};

const SOURCES: [&str; 2] = ["rest-a", "rest-b"];
const LEASE: Duration = Duration::from_secs(3);
const ACQUIRE: Duration = Duration::from_millis(500);
const RATE_PER_SECOND: usize = 10;
const BURST: usize = 2;
const PAGE_SIZE: usize = 100;
const QUEUE: &str = "cluster-cases";
/// Messages published to the AMQP source, in rounds.
const MESSAGES: usize = 3000;

/// One simulated source system endpoint: its rows (growing), the requests it served, and how
/// many were being served at once.
#[derive(Default)]
struct Endpoint {
    rows: Mutex<Vec<Value>>,
    served: Mutex<Vec<Instant>>,
    in_flight: AtomicI64,
    most_in_flight: AtomicI64,
}

#[derive(Default)]
struct Peer {
    endpoints: HashMap<&'static str, Endpoint>,
}

type Params = Query<HashMap<String, String>>;

async fn list(State((peer, source)): State<(Arc<Peer>, &'static str)>, Query(q): Params) -> Response {
    let Some(e) = peer.endpoints.get(source) else {
        return (axum::http::StatusCode::NOT_FOUND, "no such list").into_response();
    };
    // Counted down when the answer is done or dropped (a killed client's request is dropped
    // by the server mid-way: it must not count as in flight for ever).
    struct InFlight<'a>(&'a AtomicI64);
    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let now = e.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _in_flight = InFlight(&e.in_flight);
    e.most_in_flight.fetch_max(now, Ordering::SeqCst);
    e.served.lock().expect("lock").push(Instant::now());
    // Long enough for two instances' requests to overlap, were both pulling.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let page: usize = q.get("pageNo").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let size: usize = q.get("pageSize").and_then(|v| v.parse().ok()).unwrap_or(10).max(1);
    let since = q.get("since").cloned().unwrap_or_default();
    let rows: Vec<Value> = e
        .rows
        .lock()
        .expect("lock")
        .iter()
        .filter(|r| r["cd_time"].as_str().unwrap_or_default() >= since.as_str())
        .cloned()
        .collect();
    let list: Vec<&Value> = rows.iter().skip((page - 1) * size).take(size).collect();
    let answer = json!({"code": "200", "msg": "success", "data": {"total": rows.len(), "rows": list}});
    Json(answer).into_response()
}

/// Record `n` of a source, changed at second `n` after the start of 2024-06-01 (China time).
fn row(n: usize) -> Value {
    let mut r = nanchang_record(n, 0);
    let t = chrono::NaiveDate::from_ymd_opt(2024, 6, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("time")
        + chrono::Duration::seconds(n as i64);
    r["cd_time"] = json!(t.format("%Y-%m-%d %H:%M:%S").to_string());
    r
}

/// The first record number of each source (their case numbers never meet).
fn first_of(source: &str) -> usize {
    if source == "rest-a" {
        0
    } else {
        500_000
    }
}

async fn start_peer(initial: usize) -> (Arc<Peer>, String) {
    let mut peer = Peer::default();
    for source in SOURCES {
        let e = Endpoint::default();
        *e.rows.lock().expect("lock") = (0..initial).map(|i| row(first_of(source) + i)).collect();
        peer.endpoints.insert(source, e);
    }
    let peer = Arc::new(peer);
    let mut router = Router::new();
    for source in SOURCES {
        router = router.route(
            &format!("/{source}/list"),
            get(list).with_state((Arc::clone(&peer), source)),
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    (peer, url)
}

fn config(dir: &Path, db_url: &str, peer: &str, amqp_url: &str) -> std::path::PathBuf {
    config_paced(dir, db_url, peer, amqp_url, PAGE_SIZE, RATE_PER_SECOND, false)
}

fn config_paced(
    dir: &Path,
    db_url: &str,
    peer: &str,
    amqp_url: &str,
    page_size: usize,
    rate: usize,
    ordered: bool,
) -> std::path::PathBuf {
    let mapping = repo().join("mappings/nanchang-amr-penalty/mapping.toml");
    let mut text = format!(
        "[store]\nbackend = \"postgres\"\nurl = \"{db_url}\"\npool_size = 4\n\n[normalizer]\nprovince_prefix = \"36\"\n\n\
         [cluster]\nlease_seconds = {}\nrenew_seconds = 1.0\nacquire_seconds = {}\nheartbeat_seconds = 1.0\n\n",
        LEASE.as_secs_f64(),
        ACQUIRE.as_secs_f64()
    );
    for source in SOURCES {
        text.push_str(&format!(
            "[[sources]]\nid = \"{source}\"\nkind = \"rest\"\nmapping = \"{}\"\nrecord_key = \"ajbh\"\npoll_seconds = 1\n\
             [sources.rest]\nurl = \"{peer}/{source}/list\"\npagination = \"page\"\npage_param = \"pageNo\"\n\
             page_size_param = \"pageSize\"\npage_size = {page_size}\nrecords_path = \"data.rows\"\ntotal_path = \"data.total\"\n\
             status_path = \"code\"\nsuccess_values = [\"200\"]\nmessage_path = \"msg\"\nwatermark_path = \"cd_time\"\n\
             since_param = \"since\"\noverlap_seconds = 5\nrate_limit_per_second = {rate}\n\
             watermark_ordered = {ordered}\nrate_limit_burst = {BURST}\nmax_attempts = 3\nretry_initial_ms = 50\nretry_max_ms = 200\ntimeout_seconds = 5\n\n",
            mapping.display()
        ));
    }
    text.push_str(&format!(
        "[[sources]]\nid = \"mq\"\nkind = \"amqp\"\nmapping = \"{}\"\nrecord_key = \"ajbh\"\n[sources.amqp]\n\
         url = \"{amqp_url}\"\nqueue = \"{QUEUE}\"\nqueue_type = \"quorum\"\nprefetch = 200\nbatch_size = 100\n\
         reconnect_initial_ms = 100\nreconnect_max_seconds = 1\n\n",
        mapping.display()
    ));
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).expect("config");
    path
}

/// A `gateway run` process, killed when dropped.
struct Instance {
    child: Child,
}

impl Instance {
    fn start(config: &Path, dir: &Path, n: usize) -> Instance {
        let log = std::fs::File::create(dir.join(format!("instance-{n}.log"))).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(["run", "--config"])
            .arg(config)
            .args(["--log", "info"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start gateway run");
        Instance { child }
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid")
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid, with a valid signal number.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.pid());
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    client
}

/// (holder, epoch) of `job`'s unexpired lease, with the holder's process id.
async fn holder(db: &tokio_postgres::Client, job: &str) -> Option<(String, i64, i32)> {
    let row = db
        .query_opt(
            "SELECT l.holder, l.epoch, i.pid FROM job_leases l JOIN instances i ON i.id = l.holder
             WHERE l.job = $1 AND l.expires_at > now()",
            &[&job],
        )
        .await
        .ok()??;
    Some((row.get(0), row.get(1), row.get(2)))
}

async fn count(db: &tokio_postgres::Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).await.map(|r| r.get(0)).unwrap_or(-1)
}

async fn wait_until<F, Fut, T>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_pulls_and_messages_survive_a_kill_and_a_pause_and_commit_every_record_once() {
    let db_handle = PgDatabase::create().await;
    let dir = tempfile::tempdir().expect("dir");
    let (peer, peer_url) = start_peer(600).await;
    let vhost = support::amqp::Vhost::create();
    let config = config(dir.path(), &db_handle.url, &peer_url, &vhost.url());
    // The store's schema first, so the instances start on a migrated store.
    support::gateway()
        .args(["config", "check", "--config"])
        .arg(&config)
        .output()
        .expect("config check");
    let mut instances: Vec<Instance> = (0..3).map(|n| Instance::start(&config, dir.path(), n)).collect();
    let db = client(&db_handle.url).await;
    wait_until("three instances heartbeating", Duration::from_secs(60), || async {
        (count(
            &db,
            "SELECT count(*) FROM instances WHERE last_heartbeat > now() - interval '3 seconds'",
        )
        .await
            == 3)
            .then_some(())
    })
    .await;

    // The jobs are shared: an instance holds no more than its fair share (here one of two).
    wait_until(
        "the two sources run on two instances",
        Duration::from_secs(30),
        || async {
            match (holder(&db, "source:rest-a").await, holder(&db, "source:rest-b").await) {
                (Some(a), Some(b)) if a.0 != b.0 => Some(()),
                _ => None,
            }
        },
    )
    .await;

    // The legacy system keeps adding records, and a publisher sends messages, while the
    // instances come and go.
    wait_until(
        "the quorum queue declared by the instances",
        Duration::from_secs(30),
        || async { (vhost.queue_type(QUEUE).as_deref() == Some("quorum")).then_some(()) },
    )
    .await;
    let amqp = lapin::Connection::connect(&vhost.url(), lapin::ConnectionProperties::default())
        .await
        .expect("connect to RabbitMQ");
    let channel = amqp.create_channel().await.expect("channel");
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let grower = {
        let peer = Arc::clone(&peer);
        tokio::spawn(async move {
            for step in 0..20 {
                for i in 0..MESSAGES / 20 {
                    let body = nanchang_record(900_000 + step * (MESSAGES / 20) + i, 0).to_string();
                    channel
                        .basic_publish(
                            "".into(),
                            QUEUE.into(),
                            lapin::options::BasicPublishOptions::default(),
                            body.as_bytes(),
                            lapin::BasicProperties::default()
                                .with_delivery_mode(2)
                                .with_content_type("application/json".into()),
                        )
                        .await
                        .expect("publish")
                        .await
                        .expect("confirmed");
                }
                for source in SOURCES {
                    let e = &peer.endpoints[source];
                    let mut rows = e.rows.lock().expect("lock");
                    let next = rows.len();
                    rows.extend((next..next + 60).map(|i| row(first_of(source) + i)));
                }
                let _ = step;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    // Every stored cursor, as often as we can look: none may ever move back.
    let cursors_seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let watcher = {
        let (url, seen) = (db_handle.url.clone(), Arc::clone(&cursors_seen));
        tokio::spawn(async move {
            let db = client(&url).await;
            loop {
                if let Ok(rows) = db.query("SELECT source_id, cursor FROM source_cursors", &[]).await {
                    let mut seen = seen.lock().expect("lock");
                    for r in rows {
                        seen.push((r.get(0), r.get(1)));
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // Kill the instance running rest-a; another takes the job over within lease + acquire.
    let (killed_id, killed_epoch, killed_pid) = wait_until("rest-a held", Duration::from_secs(20), || async {
        holder(&db, "source:rest-a").await
    })
    .await;
    let victim = instances
        .iter()
        .position(|i| i.pid() == killed_pid)
        .expect("the holder is one of ours");
    instances[victim].signal(libc::SIGKILL);
    let killed_at = Instant::now();
    let (new_holder, new_epoch, _) = wait_until("rest-a taken over", Duration::from_secs(20), || async {
        holder(&db, "source:rest-a")
            .await
            .filter(|(h, e, _)| h != &killed_id && *e > killed_epoch)
    })
    .await;
    let takeover = killed_at.elapsed();
    assert!(
        takeover <= LEASE + ACQUIRE + Duration::from_millis(1500),
        "rest-a taken over by {new_holder} (epoch {new_epoch}) {takeover:?} after its holder died"
    );
    instances[victim] = Instance::start(&config, dir.path(), 3);

    // Pause the instance running rest-b past its lease, then let it go on: it must not pull
    // or commit for the job any more (another instance has it by then).
    let (paused_id, paused_epoch, paused_pid) = wait_until("rest-b held", Duration::from_secs(20), || async {
        holder(&db, "source:rest-b").await
    })
    .await;
    let paused = instances
        .iter()
        .position(|i| i.pid() == paused_pid)
        .expect("the holder is one of ours");
    instances[paused].signal(libc::SIGSTOP);
    let (taker, _, _) = wait_until("rest-b taken over while paused", Duration::from_secs(20), || async {
        holder(&db, "source:rest-b")
            .await
            .filter(|(h, e, _)| h != &paused_id && *e > paused_epoch)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    instances[paused].signal(libc::SIGCONT);

    // Everything in, exactly once.
    grower.await.expect("grower");
    let expected: i64 = SOURCES
        .iter()
        .map(|s| peer.endpoints[s].rows.lock().expect("lock").len() as i64)
        .sum::<i64>()
        + MESSAGES as i64;
    let started = Instant::now();
    while count(&db, "SELECT count(*) FROM cases").await != expected {
        if started.elapsed() > Duration::from_secs(90) {
            let mut report = String::new();
            for r in db
                .query("SELECT source_id, count(*)::int8 FROM cases GROUP BY 1", &[])
                .await
                .expect("counts")
            {
                report.push_str(&format!("cases of {}: {}\n", r.get::<_, String>(0), r.get::<_, i64>(1)));
            }
            for r in db
                .query("SELECT job, holder, epoch, expires_at > now() FROM job_leases", &[])
                .await
                .expect("leases")
            {
                report.push_str(&format!(
                    "lease {} held by {} epoch {} live {}\n",
                    r.get::<_, String>(0),
                    r.get::<_, String>(1),
                    r.get::<_, i64>(2),
                    r.get::<_, bool>(3)
                ));
            }
            for r in db
                .query("SELECT source_id, cursor FROM source_cursors", &[])
                .await
                .expect("cursors")
            {
                report.push_str(&format!(
                    "cursor {} = {}\n",
                    r.get::<_, String>(0),
                    r.get::<_, String>(1)
                ));
            }
            for n in 0..4 {
                let log = std::fs::read_to_string(dir.path().join(format!("instance-{n}.log"))).unwrap_or_default();
                let tail: Vec<&str> = log
                    .lines()
                    .filter(|l| !l.contains("schema_migrations") && !l.contains("batch committed"))
                    .rev()
                    .take(25)
                    .collect();
                report.push_str(&format!(
                    "--- instance-{n}.log (last lines, newest first)\n{}\n",
                    tail.join("\n")
                ));
            }
            panic!("not every record committed after 90 s: expected {expected}\n{report}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A last scheduled pull of each source finds nothing new.
    tokio::time::sleep(Duration::from_secs(2)).await;
    watcher.abort();
    assert_eq!(count(&db, "SELECT count(*) FROM cases").await, expected);
    assert_eq!(
        count(&db, "SELECT count(DISTINCT unified_code) FROM cases").await,
        expected,
        "no duplicate codes"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM case_versions").await,
        expected,
        "one version per record: nothing committed twice"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM quarantine").await, 0);
    assert_eq!(
        count(&db, "SELECT count(*) FROM cases WHERE source_id = 'mq'").await,
        MESSAGES as i64,
        "every message once, whichever instance took it"
    );
    for source in SOURCES {
        let e = &peer.endpoints[source];
        assert_eq!(
            e.most_in_flight.load(Ordering::SeqCst),
            1,
            "{source} was pulled by at most one instance at a time"
        );
        let served = e.served.lock().expect("lock").clone();
        let busiest = served
            .iter()
            .map(|start| {
                served
                    .iter()
                    .filter(|t| **t >= *start && **t < *start + Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0);
        assert!(
            busiest <= RATE_PER_SECOND + BURST,
            "{source}: {busiest} requests within one second, the rate is {RATE_PER_SECOND}/s with a burst of {BURST}"
        );
    }
    // No cursor ever moved back.
    let seen = cursors_seen.lock().expect("lock").clone();
    for source in SOURCES {
        let values: Vec<&String> = seen.iter().filter(|(s, _)| s == source).map(|(_, c)| c).collect();
        assert!(!values.is_empty(), "{source}'s cursor was seen");
        assert!(
            values.windows(2).all(|w| w[0] <= w[1]),
            "{source}'s cursor never moves back: {values:?}"
        );
    }
    // The paused instance, resumed, heartbeats again but does not go on under the lease it lost:
    // it may hold rest-b again only through a new acquisition (a later epoch), after the
    // instance that took it over ({taker}) let it go.
    let rest_b = holder(&db, "source:rest-b").await.map(|(h, e, _)| (h, e));
    assert!(
        rest_b.as_ref() != Some(&(paused_id.clone(), paused_epoch)),
        "rest-b still held by the paused instance under its old epoch {paused_epoch} (taken by {taker} meanwhile)"
    );
    let log = std::fs::read_to_string(dir.path().join(format!("instance-{paused}.log"))).unwrap_or_default();
    assert!(
        log.contains("lease lost") || log.contains("another instance holds"),
        "the resumed instance noticed it lost the job:\n{log}"
    );
    // A clean stop marks each instance stopped and frees its jobs at once.
    for i in &instances {
        i.signal(libc::SIGTERM);
    }
    for i in &mut instances {
        let _ = i.child.wait();
    }
    assert_eq!(
        count(&db, "SELECT count(*) FROM job_leases WHERE expires_at > now()").await,
        0,
        "stopped instances hold no leases"
    );
    assert!(count(&db, "SELECT count(*) FROM instances WHERE stopped_at IS NOT NULL").await >= 3);
}

/// A fresh connection (the soak run restarts the database under the test too).
async fn count_fresh(url: &str, sql: &str) -> i64 {
    match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            count(&client, sql).await
        }
        Err(_) => -1,
    }
}

async fn holder_fresh(url: &str, job: &str) -> Option<(String, i64, i32)> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.ok()?;
    tokio::spawn(connection);
    holder(&client, job).await
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Three instances through kills and restarts of the database and the broker, records flowing
/// all the while: the holder of a source is killed every `SOAK_KILL_EVERY` seconds and replaced,
/// PostgreSQL is restarted after `SOAK_PG_AT` seconds and RabbitMQ after `SOAK_BROKER_AT`;
/// every record must then be in exactly once, each source pulled by one instance at a time.
/// It restarts the machine's PostgreSQL and RabbitMQ, which is safe because nextest runs this
/// binary alone (`.config/nextest.toml`). The suite runs it small (2 × 3,000 REST records and
/// 4,000 messages, paced to flow through both restarts: about a minute); the full run
/// on a quiet machine:
///
/// `SOAK_ROWS=100000 SOAK_MESSAGES=50000 SOAK_PAGE=500 SOAK_RATE=20 SOAK_KILL_EVERY=20 SOAK_PG_AT=60 SOAK_BROKER_AT=100 SOAK_MESSAGE_RATE=2500 cargo test -p gateway --test cluster soak -- --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_three_instances_through_kills_and_database_and_broker_restarts_commit_every_record_once() {
    let rows = env_number("SOAK_ROWS", 3_000);
    let messages = env_number("SOAK_MESSAGES", 4_000);
    let message_rate = env_number("SOAK_MESSAGE_RATE", 100).max(1);
    let kill_every = Duration::from_secs(env_number("SOAK_KILL_EVERY", 10) as u64);
    let pg_at = Duration::from_secs(env_number("SOAK_PG_AT", 12) as u64);
    let broker_at = Duration::from_secs(env_number("SOAK_BROKER_AT", 24) as u64);
    let db_handle = PgDatabase::create().await;
    let url = db_handle.url.clone();
    let dir = tempfile::tempdir().expect("dir");
    let (peer, peer_url) = start_peer(rows).await;
    let vhost = support::amqp::Vhost::create();
    // The simulated system sorts by update time: each page moves the cursor, so a run cut short
    // by a kill is resumed from its last committed page.
    let (page, rate) = (env_number("SOAK_PAGE", 100), env_number("SOAK_RATE", 2));
    let config = config_paced(dir.path(), &url, &peer_url, &vhost.url(), page, rate, true);
    support::gateway()
        .args(["config", "check", "--config"])
        .arg(&config)
        .output()
        .expect("config check");
    let mut instances: Vec<Instance> = (0..3).map(|n| Instance::start(&config, dir.path(), n)).collect();
    let mut started = 3;
    wait_until("the quorum queue declared", Duration::from_secs(60), || async {
        (vhost.queue_type(QUEUE).as_deref() == Some("quorum")).then_some(())
    })
    .await;
    // The publisher reconnects through the broker's restart and re-sends what was not confirmed.
    let publisher = {
        let amqp_url = vhost.url();
        tokio::spawn(async move {
            let mut next = 0usize;
            while next < messages {
                let Ok(conn) = lapin::Connection::connect(&amqp_url, lapin::ConnectionProperties::default()).await
                else {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                };
                let Ok(channel) = conn.create_channel().await else {
                    continue;
                };
                if channel
                    .confirm_select(lapin::options::ConfirmSelectOptions::default())
                    .await
                    .is_err()
                {
                    continue;
                }
                while next < messages {
                    let body = nanchang_record(2_000_000 + next, 0).to_string();
                    let sent = channel
                        .basic_publish(
                            "".into(),
                            QUEUE.into(),
                            lapin::options::BasicPublishOptions::default(),
                            body.as_bytes(),
                            lapin::BasicProperties::default()
                                .with_delivery_mode(2)
                                .with_content_type("application/json".into()),
                        )
                        .await;
                    let confirmed = match sent {
                        Ok(confirm) => confirm.await.map(|c| c.is_ack()).unwrap_or(false),
                        Err(_) => false,
                    };
                    if !confirmed {
                        break;
                    }
                    next += 1;
                    // Paced, so that messages are still flowing through both restarts.
                    if next.is_multiple_of(message_rate.div_ceil(10)) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        })
    };
    let expected = (2 * rows + messages) as i64;
    let begun = Instant::now();
    let mut last_kill = Instant::now();
    let (mut pg_restarted, mut broker_restarted) = (false, false);
    let mut kills = 0;
    // Everything in, and both restarts behind us.
    while !(pg_restarted && broker_restarted && count_fresh(&url, "SELECT count(*) FROM cases").await == expected) {
        assert!(
            begun.elapsed() < Duration::from_secs(env_number("SOAK_LIMIT", 180) as u64),
            "not every record in within SOAK_LIMIT seconds: {} of {expected}",
            count_fresh(&url, "SELECT count(*) FROM cases").await
        );
        if last_kill.elapsed() >= kill_every {
            let job = format!("source:{}", SOURCES[kills % 2]);
            if let Some((_, _, pid)) = holder_fresh(&url, &job).await {
                if let Some(i) = instances.iter().position(|i| i.pid() == pid) {
                    println!("{:?}: SIGKILL the holder of {job} (pid {pid})", begun.elapsed());
                    instances[i].signal(libc::SIGKILL);
                    instances[i] = Instance::start(&config, dir.path(), started);
                    started += 1;
                    kills += 1;
                }
            }
            last_kill = Instant::now();
        }
        if !pg_restarted && begun.elapsed() > pg_at {
            println!("{:?}: restarting PostgreSQL", begun.elapsed());
            let version = std::fs::read_dir("/etc/postgresql")
                .ok()
                .and_then(|mut d| d.next())
                .and_then(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .expect("a PostgreSQL cluster under /etc/postgresql");
            let out = Command::new("pg_ctlcluster")
                .args(["--skip-systemctl-redirect", &version, "main", "restart"])
                .output()
                .expect("pg_ctlcluster");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            pg_restarted = true;
        }
        if !broker_restarted && begun.elapsed() > broker_at {
            println!("{:?}: restarting RabbitMQ", begun.elapsed());
            support::amqp::rabbitmqctl(&["stop_app"]);
            support::amqp::rabbitmqctl(&["start_app"]);
            broker_restarted = true;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    publisher.await.expect("publisher");
    println!("{:?}: every record in, {kills} instances killed", begun.elapsed());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count_fresh(&url, "SELECT count(*) FROM cases").await, expected);
    assert_eq!(
        count_fresh(&url, "SELECT count(DISTINCT unified_code) FROM cases").await,
        expected
    );
    assert_eq!(count_fresh(&url, "SELECT count(*) FROM case_versions").await, expected);
    for source in SOURCES {
        let e = &peer.endpoints[source];
        assert_eq!(
            e.most_in_flight.load(Ordering::SeqCst),
            1,
            "{source}: one puller at a time"
        );
    }
    for i in &instances {
        i.signal(libc::SIGTERM);
    }
    for i in &mut instances {
        let _ = i.child.wait();
    }
}
