//! End-to-end pull sources through the real REST adapter into a real store: the 互联网+监管
//! profile (supervision-item catalogue, then supervision-behaviour data), the scheduler with
//! operators' commands, and a failed pull that is resumed without losing or repeating a record.

mod support;

use adapters::sources::PullMode;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gateway::config::schedule::Schedule;
use gateway::config::Config;
use gateway::intake::pull::{pull_into, pull_once, run_scheduler, PageTarget};
use gateway::intake::tasks::build_runtime;
use gateway::runtime::Runtime;
use gateway::shutdown::Shutdown;
use gateway::store::QuarantineFilter;
use gateway::telemetry::SourceCommand;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::common::PgDatabase;
use support::{repo, store_keys, Backend};

/// The simulated 互联网+监管 system.
struct Peer {
    catalogue: Vec<Value>,
    behaviour: Mutex<Vec<Value>>,
    /// Pages of the behaviour list that answer HTTP 500 (every attempt) while listed.
    failing_pages: Mutex<HashSet<usize>>,
    requests: AtomicU64,
}

type Params = Query<HashMap<String, String>>;

fn page_of(rows: &[Value], q: &HashMap<String, String>) -> Value {
    let page: usize = q.get("pageNo").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let size: usize = q.get("pageSize").and_then(|v| v.parse().ok()).unwrap_or(10).max(1);
    let list: Vec<&Value> = rows.iter().skip((page - 1) * size).take(size).collect();
    json!({"code": "200", "msg": "success", "data": {"total": rows.len(), "rows": list}})
}

async fn catalogue(State(p): State<Arc<Peer>>, Query(q): Params) -> Response {
    p.requests.fetch_add(1, Ordering::Relaxed);
    Json(page_of(&p.catalogue, &q)).into_response()
}

async fn behaviour(State(p): State<Arc<Peer>>, Query(q): Params) -> Response {
    p.requests.fetch_add(1, Ordering::Relaxed);
    let page: usize = q.get("pageNo").and_then(|v| v.parse().ok()).unwrap_or(1);
    if p.failing_pages.lock().unwrap().contains(&page) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "服务繁忙").into_response();
    }
    let since = q.get("since").cloned().unwrap_or_default();
    let rows: Vec<Value> = p
        .behaviour
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r["cd_time"].as_str().unwrap_or_default() >= since.as_str())
        .cloned()
        .collect();
    Json(page_of(&rows, &q)).into_response()
}

/// The profile's samples, each with an update time one minute after the previous one.
fn behaviour_rows() -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join("mappings/internet-plus-behaviour/samples/records.jsonl")).unwrap();
    let start = chrono::NaiveDate::from_ymd_opt(2024, 6, 1)
        .unwrap()
        .and_hms_opt(8, 0, 0)
        .unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            let mut r: Value = serde_json::from_str(l).unwrap();
            let o = r.as_object_mut().unwrap();
            o.remove("_sample_note");
            o.remove("_sample_expect");
            let t = start + chrono::Duration::minutes(i as i64);
            o.insert("cd_time".into(), json!(t.format("%Y-%m-%d %H:%M:%S").to_string()));
            r
        })
        .collect()
}

async fn start_peer() -> (Arc<Peer>, String) {
    let text = std::fs::read_to_string(repo().join("mappings/internet-plus-catalogue/samples/catalogue.json")).unwrap();
    let page: Value = serde_json::from_str(&text).unwrap();
    let peer = Arc::new(Peer {
        catalogue: page["data"]["rows"].as_array().unwrap().clone(),
        behaviour: Mutex::new(behaviour_rows()),
        failing_pages: Mutex::default(),
        requests: AtomicU64::new(0),
    });
    let router = Router::new()
        .route("/catalog/list", get(catalogue))
        .route("/behaviour/list", get(behaviour))
        .with_state(Arc::clone(&peer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (peer, url)
}

struct Gateway {
    runtime: Runtime,
    _dir: tempfile::TempDir,
    _pg: Option<PgDatabase>,
}

const REST_COMMON: &str = "pagination = \"page\"\npage_param = \"pageNo\"\npage_size_param = \"pageSize\"\n\
    records_path = \"data.rows\"\ntotal_path = \"data.total\"\nstatus_path = \"code\"\nsuccess_values = [\"200\"]\n\
    message_path = \"msg\"\nmax_attempts = 2\nretry_initial_ms = 10\nretry_max_ms = 50\ntimeout_seconds = 5\n";

async fn gateway(backend: Backend, peer_url: &str) -> Gateway {
    gateway_with(backend, peer_url, "", "").await
}

/// [`gateway`] with more keys for the behaviour source's `[[sources]]` block and its `[sources.rest]`.
async fn gateway_with(backend: Backend, peer_url: &str, more_source: &str, more_rest: &str) -> Gateway {
    let mapping = repo().join("mappings/internet-plus-behaviour/mapping.toml");
    let text = format!(
        "[[catalogues]]\nid = \"iplus-catalogue\"\nkind = \"rest\"\n[catalogues.rest]\nurl = \"{peer_url}/catalog/list\"\n\
         page_size = 5\n{REST_COMMON}\n\
         [[sources]]\nid = \"iplus-behaviour\"\nkind = \"rest\"\nmapping = \"{}\"\nrecord_key = \"record_unique_identity\"\n\
         poll_seconds = 3600\n{more_source}[sources.rest]\nurl = \"{peer_url}/behaviour/list\"\npage_size = 10\n{REST_COMMON}\
         watermark_path = \"cd_time\"\nsince_param = \"since\"\noverlap_seconds = 120\n{more_rest}",
        mapping.display()
    );
    gateway_of(backend, &text).await
}

/// A gateway whose configuration is `[store]`, `[normalizer]` and then `blocks`.
async fn gateway_of(backend: Backend, blocks: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let (store, pg) = store_keys(backend).await;
    let text = format!("[store]\n{store}\n[normalizer]\nprovince_prefix = \"36\"\n\n{blocks}");
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    let resolved = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let runtime = build_runtime(resolved).await.unwrap();
    Gateway {
        runtime,
        _dir: dir,
        _pg: pg,
    }
}

fn pull_source(g: &Gateway, id: &str) -> Arc<dyn adapters::sources::PullSource> {
    let config = &g.runtime.resolved.config;
    let (table, kind) = match config.sources.iter().find(|s| s.id == id) {
        Some(s) => (s.rest.clone().or_else(|| s.soap.clone()).unwrap(), s.kind.clone()),
        None => {
            let c = config.catalogues.iter().find(|c| c.id == id).unwrap();
            (c.adapter_table(), c.kind.clone())
        }
    };
    adapters::sources::build(id, &kind, &table, &config.base_dir).unwrap()
}

fn catalogue_target(g: &Gateway) -> PageTarget {
    PageTarget::Catalogue(g.runtime.resolved.config.catalogues[0].fields.clone())
}

async fn internet_plus_profile_pulls_catalogue_then_behaviour_exactly_once(backend: Backend) {
    let (peer, url) = start_peer().await;
    // One more inspection: valid in every way, but its item is withdrawn from the catalogue.
    {
        let mut rows = peer.behaviour.lock().unwrap();
        let mut r = rows
            .iter()
            .find(|r| r["behaviour_type"] == "check" && r["record_unique_identity"] == "NCSJ-JC-2024-0031")
            .cloned()
            .unwrap();
        r["supervise_item_implement_code"] = json!("36010000002002");
        for key in ["check_action_code", "record_unique_identity", "cd_id"] {
            r[key] = json!("NCSJ-JC-2024-9999");
        }
        r["cd_time"] = json!("2024-06-01 23:00:00");
        rows.push(r);
    }
    let g = gateway(backend, &url).await;
    let shutdown = Shutdown::default();
    let rt = &g.runtime;

    let catalogue = pull_source(&g, "iplus-catalogue");
    let target = catalogue_target(&g);
    let summary = pull_into(
        rt,
        "iplus-catalogue",
        &catalogue,
        PullMode::Incremental,
        &shutdown,
        &target,
    )
    .await
    .unwrap();
    assert_eq!(summary.received, 22);
    let items = rt.store.catalogue().catalogue_items().await.unwrap();
    assert_eq!(items.len(), 22);
    assert_eq!(
        items.iter().filter(|i| !i.active).count(),
        1,
        "the withdrawn item is kept, inactive"
    );

    let behaviour = pull_source(&g, "iplus-behaviour");
    let first = pull_once(rt, "iplus-behaviour", &behaviour, PullMode::Incremental, &shutdown)
        .await
        .unwrap();
    assert_eq!(first.received, 49);
    // 21 valid rows: 19 cases, and 2 later versions of them (an update and a delete).
    assert_eq!((first.accepted, first.updated), (19, 2), "{first:?}");
    assert_eq!(first.quarantined, 28, "{first:?}");
    let outside = rt
        .store
        .quarantine_list(&QuarantineFilter {
            rule: Some("rule.item_not_in_catalogue".into()),
            ..QuarantineFilter::default()
        })
        .await
        .unwrap();
    assert!(
        outside.iter().any(|e| e.record_key == "NCSJ-JC-2024-9999"),
        "清单之外无检查: the withdrawn item admits no inspection"
    );
    let cursor = rt
        .store
        .cursor("iplus-behaviour")
        .await
        .unwrap()
        .expect("cursor stored");
    assert!(
        cursor.starts_with("2024-06-01T15:00:00"),
        "newest watermark (23:00 China time) as UTC: {cursor}"
    );

    // The next pull asks only for what changed since the cursor, minus the overlap.
    let second = pull_once(rt, "iplus-behaviour", &behaviour, PullMode::Incremental, &shutdown)
        .await
        .unwrap();
    assert_eq!(
        second.received, 1,
        "only the overlap window is pulled again: {second:?}"
    );
    assert_eq!(second.accepted + second.updated, 0);

    // A full resync brings everything again and changes nothing.
    let stats_before = rt.store.stats().await.unwrap();
    let resync = pull_once(rt, "iplus-behaviour", &behaviour, PullMode::FullResync, &shutdown)
        .await
        .unwrap();
    assert_eq!(resync.received, 49);
    assert_eq!(resync.accepted + resync.updated, 0, "{resync:?}");
    let stats_after = rt.store.stats().await.unwrap();
    assert_eq!(stats_after.cases, stats_before.cases);
    assert_eq!(stats_after.versions, stats_before.versions);
    assert_eq!(stats_after.quarantine_open, stats_before.quarantine_open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internet_plus_profile_pulls_catalogue_then_behaviour_exactly_once_sqlite() {
    internet_plus_profile_pulls_catalogue_then_behaviour_exactly_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internet_plus_profile_pulls_catalogue_then_behaviour_exactly_once_postgres() {
    internet_plus_profile_pulls_catalogue_then_behaviour_exactly_once(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_pull_commits_nothing_twice_and_the_next_pull_completes_the_run() {
    let (peer, url) = start_peer().await;
    peer.failing_pages.lock().unwrap().insert(3);
    let g = gateway(Backend::Postgres, &url).await;
    let shutdown = Shutdown::default();
    let rt = &g.runtime;
    let behaviour = pull_source(&g, "iplus-behaviour");
    let failed = pull_once(rt, "iplus-behaviour", &behaviour, PullMode::Incremental, &shutdown).await;
    assert!(failed.is_err(), "page 3 keeps failing: the run fails");
    let after_failure = rt.store.stats().await.unwrap();
    assert_eq!(after_failure.raw_records, 20, "pages 1 and 2 were committed");
    assert_eq!(
        rt.store.cursor("iplus-behaviour").await.unwrap(),
        None,
        "no cursor before the run completes"
    );

    peer.failing_pages.lock().unwrap().clear();
    let done = pull_once(rt, "iplus-behaviour", &behaviour, PullMode::Incremental, &shutdown)
        .await
        .unwrap();
    assert_eq!(done.received, 48);
    let stats = rt.store.stats().await.unwrap();
    assert_eq!(stats.cases, 19, "every valid record committed once");
    assert_eq!(stats.versions, 21, "records pulled twice made no second version");
    assert_eq!(stats.quarantine_open, 27);
    assert!(rt.store.cursor("iplus-behaviour").await.unwrap().is_some());
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One incremental pull of the catalogue, then of the behaviour source.
async fn pull_catalogue_then_behaviour(g: &Gateway, shutdown: &Shutdown) {
    pull_into(
        &g.runtime,
        "iplus-catalogue",
        &pull_source(g, "iplus-catalogue"),
        adapters::sources::PullMode::Incremental,
        shutdown,
        &catalogue_target(g),
    )
    .await
    .unwrap();
    pull_once(
        &g.runtime,
        "iplus-behaviour",
        &pull_source(g, "iplus-behaviour"),
        adapters::sources::PullMode::Incremental,
        shutdown,
    )
    .await
    .unwrap();
}

/// Run the behaviour source's scheduler (hourly, commands from `rx`) and wait for its pull at start.
async fn start_scheduler(
    g: &Gateway,
    rx: tokio::sync::mpsc::Receiver<SourceCommand>,
    shutdown: &Shutdown,
) -> tokio::task::JoinHandle<()> {
    let task = tokio::spawn(run_scheduler(
        g.runtime.clone(),
        "iplus-behaviour".into(),
        pull_source(g, "iplus-behaviour"),
        Schedule::Every(Duration::from_secs(3600)),
        PageTarget::Cases,
        rx,
        shutdown.clone(),
    ));
    let board = g.runtime.sources.clone();
    wait_for("the pull at start", || {
        board
            .get("iplus-behaviour")
            .is_some_and(|s| s.last_pull_finished.is_some())
    })
    .await;
    task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_pulls_at_start_on_command_and_resyncs_and_reports_status() {
    let (peer, url) = start_peer().await;
    let g = gateway(Backend::Sqlite, &url).await;
    let rt = g.runtime.clone();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    rt.sources.attach_control("iplus-behaviour", tx);
    let shutdown = Shutdown::default();
    let task = start_scheduler(&g, rx, &shutdown).await;
    let board = rt.sources.clone();
    let status = board.get("iplus-behaviour").unwrap();
    assert_eq!(status.totals.received, 48);
    assert_eq!(status.totals.accepted + status.totals.updated, 21);
    assert_eq!(
        support::board_totals_agreeing_with_metrics(&rt, "iplus-behaviour"),
        status.totals,
        "pulled pages are counted by the one committer, like every way in"
    );
    assert!(status.cursor.is_some() && status.lag_seconds.is_some());
    assert!(status.next_pull.is_some(), "the next pull is scheduled");
    assert_eq!(status.health.as_ref().map(|h| h.requests), Some(5));

    let requests = peer.requests.load(Ordering::Relaxed);
    board.command("iplus-behaviour", SourceCommand::PullNow).unwrap();
    wait_for("the pull asked for", || {
        peer.requests.load(Ordering::Relaxed) > requests
    })
    .await;
    wait_for("the pull to finish", || {
        board.get("iplus-behaviour").is_some_and(|s| !s.pulling)
    })
    .await;

    board.command("iplus-behaviour", SourceCommand::FullResync).unwrap();
    wait_for("the resync", || {
        board
            .get("iplus-behaviour")
            .is_some_and(|s| s.totals.received >= 48 * 2 && !s.pulling)
    })
    .await;
    let status = board.get("iplus-behaviour").unwrap();
    assert_eq!(
        status.totals.accepted + status.totals.updated,
        21,
        "nothing new was accepted by pulling again"
    );
    assert_eq!(
        board.command("no-such-source", SourceCommand::PullNow),
        Err(gateway::telemetry::CommandError::UnknownSource("no-such-source".into()))
    );
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_from_the_future_is_kept_with_a_warning_and_a_backlog_that_cannot_move_shows_as_stalled() {
    let (peer, url) = start_peer().await;
    {
        let mut rows = peer.behaviour.lock().unwrap();
        let mut r = rows.iter().find(|r| r["behaviour_type"] == "check").cloned().unwrap();
        for key in ["check_action_code", "record_unique_identity", "cd_id"] {
            r[key] = json!("NCSJ-JC-2024-2099");
        }
        r["cd_time"] = json!("2099-01-01 00:00:00");
        rows.push(r);
    }
    let g = gateway(Backend::Sqlite, &url).await;
    let rt = &g.runtime;
    let shutdown = Shutdown::default();
    pull_catalogue_then_behaviour(&g, &shutdown).await;
    let cursor = rt.store.cursor("iplus-behaviour").await.unwrap().expect("cursor");
    assert!(
        cursor.starts_with("2024-"),
        "the 2099 record does not move the cursor: {cursor}"
    );
    let cases = rt.store.cases(&gateway::store::CaseFilter::default()).await.unwrap();
    let mut flagged = 0;
    for case in &cases {
        let (_, versions) = rt.store.case_by_code(&case.unified_code).await.unwrap();
        for v in versions {
            if v.warnings.iter().any(|w| w.rule == "source.watermark_in_future") {
                flagged += 1;
                assert_eq!(v.record["case_number"], "NCSJ-JC-2024-2099", "{}", v.record);
            }
        }
    }
    assert_eq!(flagged, 1, "the record is kept, with the warning");

    // max_pages 1 over three pages of an unordered source: the cursor cannot move.
    let stuck = gateway_with(Backend::Sqlite, &url, "", "max_pages = 1\n").await;
    let rt = stuck.runtime.clone();
    let (_tx, rx) = tokio::sync::mpsc::channel(4);
    let task = start_scheduler(&stuck, rx, &shutdown).await;
    let board = rt.sources.clone();
    let status = board.get("iplus-behaviour").unwrap();
    assert!(status.stalled, "{status:?}");
    assert!(
        status
            .last_error
            .as_ref()
            .is_some_and(|(_, m)| m.contains("max_pages = 1")),
        "{status:?}"
    );
    let text = rt.metrics.render(&[], &[]);
    assert!(
        text.contains(r#"gateway_source_stalled{source="iplus-behaviour"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"gateway_source_errors_total{source="iplus-behaviour"} 1"#),
        "{text}"
    );
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}

/// A pulled source writes only for the agencies of its regions: the behaviour records of other
/// cities are quarantined with `source.agency_not_allowed`, Nanchang's are committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pulled_source_writes_only_for_the_agencies_of_its_regions() {
    let (_peer, url) = start_peer().await;
    let g = gateway_with(Backend::Sqlite, &url, "agency_regions = [\"3601\"]\n", "").await;
    let rt = &g.runtime;
    let shutdown = Shutdown::default();
    pull_catalogue_then_behaviour(&g, &shutdown).await;
    let refused = rt
        .store
        .quarantine_list(&QuarantineFilter {
            rule: Some("source.agency_not_allowed".into()),
            ..QuarantineFilter::default()
        })
        .await
        .unwrap();
    assert!(
        !refused.is_empty(),
        "the other cities' valid records are refused (invalid ones keep their own violations)"
    );
    let cases = rt.store.cases(&gateway::store::CaseFilter::default()).await.unwrap();
    assert!(!cases.is_empty(), "Nanchang's records are committed");
    for case in &cases {
        assert!(
            case.region.starts_with("3601"),
            "{} of region {}",
            case.unified_code,
            case.region
        );
    }
}

/// A source is red from its first failed run: `failing`, one failure in a row, since then, with
/// the real error. When its circuit breaker opens it is `paused` until the trial time and the
/// real error stays what operators see beside the pause. "Pull now" waited on says what happened;
/// the metrics carry the state; once the peer answers again it is `healthy`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_source_is_red_from_its_first_failed_run_and_a_pause_keeps_the_real_error() {
    let (peer, url) = start_peer().await;
    peer.failing_pages.lock().unwrap().insert(1);
    let g = gateway_with(
        Backend::Sqlite,
        &url,
        "",
        "circuit_failures = 6\ncircuit_open_seconds = 600\n",
    )
    .await;
    let rt = g.runtime.clone();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    rt.sources.attach_control("iplus-behaviour", tx);
    let shutdown = Shutdown::default();
    let task = start_scheduler(&g, rx, &shutdown).await;
    let board = rt.sources.clone();
    let first = board.get("iplus-behaviour").unwrap();
    assert_eq!(
        first.state,
        gateway::telemetry::HealthState::Failing,
        "red from the first failed run"
    );
    assert_eq!(first.failures_in_row, 1);
    assert!(first.failing_since.is_some());
    let real = first.last_error.clone().expect("the error").1;
    assert!(real.contains("500"), "the real cause: {real}");
    let last_run = first.last_run.clone().expect("last run");
    assert!(!last_run.ok);

    // The next failures open the circuit: paused, the real error kept.
    for _ in 0..2 {
        let runs = board.get("iplus-behaviour").unwrap().runs;
        board.command("iplus-behaviour", SourceCommand::PullNow).unwrap();
        wait_for("the pull to end", || {
            board
                .get("iplus-behaviour")
                .is_some_and(|s| s.runs > runs && !s.pulling)
        })
        .await;
    }
    let paused = board.get("iplus-behaviour").unwrap();
    assert_eq!(paused.state, gateway::telemetry::HealthState::Paused, "{paused:?}");
    assert!(paused.paused_until.is_some_and(|u| u > chrono::Utc::now()));
    assert_eq!(paused.failures_in_row, 3);
    let shown = paused.last_error.clone().expect("error").1;
    assert!(
        shown.contains("500") && !shown.contains("circuit breaker"),
        "the real error stays: {shown}"
    );
    let message = paused.last_run.clone().and_then(|r| r.message).unwrap_or_default();
    assert!(
        message.contains("circuit breaker") && message.contains("500"),
        "{message}"
    );
    let metrics = rt.metrics.render(&[], &[]);
    rt.metrics.set_source_health(&board.snapshot());
    let metrics_after = rt.metrics.render(&[], &[]);
    assert!(
        metrics_after.contains(r#"gateway_source_health{source="iplus-behaviour",state="paused"} 1"#)
            && metrics_after.contains(r#"gateway_source_health{source="iplus-behaviour",state="healthy"} 0"#),
        "{metrics}"
    );

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();

    // A new scheduler with a fresh connection once the peer answers: healthy again.
    peer.failing_pages.lock().unwrap().clear();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    rt.sources.attach_control("iplus-behaviour", tx);
    let shutdown = Shutdown::default();
    let runs = board.get("iplus-behaviour").unwrap().runs;
    let task = tokio::spawn(run_scheduler(
        g.runtime.clone(),
        "iplus-behaviour".into(),
        pull_source(&g, "iplus-behaviour"),
        Schedule::Every(Duration::from_secs(3600)),
        PageTarget::Cases,
        rx,
        shutdown.clone(),
    ));
    wait_for("a successful run", || {
        board
            .get("iplus-behaviour")
            .is_some_and(|s| s.runs > runs && !s.pulling)
    })
    .await;
    let healthy = board.get("iplus-behaviour").unwrap();
    assert!(healthy.state.is_working(), "{healthy:?}");
    assert_eq!((healthy.failures_in_row, healthy.failing_since), (0, None));
    assert!(healthy
        .last_run
        .is_some_and(|r| r.ok && r.summary.is_some_and(|s| s.received == 48)));
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}

/// The behaviour rows behind next links: the source's own origin answers the first ten with a
/// next link to `next` (another origin), which answers the rest.
async fn next_link_peers(rows: Vec<Value>) -> (String, String, Arc<AtomicU64>) {
    let hits = Arc::new(AtomicU64::new(0));
    let h = Arc::clone(&hits);
    let rest: Vec<Value> = rows[10..].to_vec();
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_url = format!("http://{}", other.local_addr().unwrap());
    let other_router = Router::new().route(
        "/rest",
        get(move || {
            h.fetch_add(1, Ordering::Relaxed);
            let rest = rest.clone();
            async move { Json(json!({"code": "200", "data": {"rows": rest, "next": null}})) }
        }),
    );
    tokio::spawn(async move { axum::serve(other, other_router).await.unwrap() });
    let first: Vec<Value> = rows[..10].to_vec();
    let next = format!("{other_url}/rest");
    let own = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let own_url = format!("http://{}", own.local_addr().unwrap());
    let own_router = Router::new().route(
        "/first",
        get(move || {
            let (first, next) = (first.clone(), next.clone());
            async move { Json(json!({"code": "200", "data": {"rows": first, "next": next}})) }
        }),
    );
    tokio::spawn(async move { axum::serve(own, own_router).await.unwrap() });
    (own_url, other_url, hits)
}

/// A next link to another origin ends the run before anything is sent there: the page before
/// it is committed, the cursor does not move; listed in `allowed_hosts`, it is followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_link_to_another_origin_ends_the_run_keeping_the_committed_page_and_the_cursor() {
    let rows = behaviour_rows();
    let total = rows.len() as u64;
    let (own, other, other_hits) = next_link_peers(rows).await;
    let other_port = other.rsplit(':').next().unwrap().to_string();
    let mapping = repo().join("mappings/internet-plus-behaviour/mapping.toml");
    let blocks = |allowed: &str| {
        format!(
            "[[sources]]\nid = \"iplus-behaviour\"\nkind = \"rest\"\nmapping = \"{}\"\nrecord_key = \"record_unique_identity\"\n\
             [sources.rest]\nurl = \"{own}/first\"\npagination = \"next_link\"\nnext_link_path = \"data.next\"\n\
             records_path = \"data.rows\"\nstatus_path = \"code\"\nsuccess_values = [\"200\"]\nmax_attempts = 1\n\
             watermark_path = \"cd_time\"\nsince_param = \"since\"\n\
             auth = {{ kind = \"api_key\", query_param = \"appkey\", value = \"k-secret\" }}\n{allowed}",
            mapping.display()
        )
    };
    let g = gateway_of(Backend::Sqlite, &blocks("")).await;
    let rt = &g.runtime;
    let shutdown = Shutdown::default();
    let failed = pull_once(
        rt,
        "iplus-behaviour",
        &pull_source(&g, "iplus-behaviour"),
        PullMode::Incremental,
        &shutdown,
    )
    .await
    .expect_err("the next link is refused");
    let text = failed.to_string();
    assert!(
        text.contains(&format!("another origin {other}")) && text.contains("allowed_hosts"),
        "{text}"
    );
    assert_eq!(other_hits.load(Ordering::Relaxed), 0, "the other origin saw nothing");
    assert_eq!(
        rt.store.stats().await.unwrap().raw_records,
        10,
        "the first page is committed"
    );
    assert_eq!(
        rt.store.cursor("iplus-behaviour").await.unwrap(),
        None,
        "the cursor did not move"
    );

    let listed = gateway_of(
        Backend::Sqlite,
        &blocks(&format!("allowed_hosts = [\"127.0.0.1:{other_port}\"]\n")),
    )
    .await;
    let done = pull_once(
        &listed.runtime,
        "iplus-behaviour",
        &pull_source(&listed, "iplus-behaviour"),
        PullMode::Incremental,
        &shutdown,
    )
    .await
    .unwrap();
    assert_eq!(done.received, total);
    assert_eq!(other_hits.load(Ordering::Relaxed), 1);
    assert!(listed.runtime.store.cursor("iplus-behaviour").await.unwrap().is_some());
}

const SOAP_ENVELOPE: &str = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ws="http://ws.zfxt.sthjt.jiangxi.gov.cn/"><soapenv:Header/><soapenv:Body><ws:queryCases><pageSize>{{page_size}}</pageSize><since>{{since}}</since></ws:queryCases></soapenv:Body></soapenv:Envelope>"#;

/// A SOAP service answering the ecology sample with a business result code (`E002` until told
/// otherwise), the cases in the answer either way.
async fn soap_peer(code: Arc<Mutex<&'static str>>) -> String {
    let sample = std::fs::read_to_string(repo().join("mappings/jiangxi-ecology-soap/samples/records.xml")).unwrap();
    let router = Router::new().route(
        "/ws",
        axum::routing::post(move || {
            let code = *code.lock().unwrap();
            let message = if code == "E002" {
                "page size out of range"
            } else {
                "成功"
            };
            let answer = sample.replacen(
                "<return>",
                &format!("<return><resultCode>{code}</resultCode><resultMsg>{message}</resultMsg>"),
                1,
            );
            async move { ([("content-type", "text/xml; charset=utf-8")], answer) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ws", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

/// A SOAP answer with a business error code fails the run through the source-failure path (the
/// board's last error, `gateway_source_errors_total`) with its code and message, commits none of
/// the cases it carries and stores no cursor; once the service answers success, the pull works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soap_business_error_fails_the_pull_with_code_and_message_and_commits_nothing() {
    let code = Arc::new(Mutex::new("E002"));
    let url = soap_peer(Arc::clone(&code)).await;
    let mapping = repo().join("mappings/jiangxi-ecology-soap/mapping.toml");
    let ret = "Envelope.Body.queryCasesResponse.return";
    let g = gateway_of(
        Backend::Sqlite,
        &format!(
            "[[sources]]\nid = \"jiangxi-ecology\"\nkind = \"soap\"\nmapping = \"{}\"\nrecord_key = \"ajbh\"\n\
             [sources.soap]\nurl = \"{url}\"\nenvelope_template = '{SOAP_ENVELOPE}'\nrecords_path = \"{ret}.case\"\n\
             status_path = \"{ret}.resultCode\"\nsuccess_values = [\"0000\", \"S000\"]\nmessage_path = \"{ret}.resultMsg\"\n\
             watermark_path = \"gxsj\"\nmax_attempts = 1\n",
            mapping.display()
        ),
    )
    .await;
    let rt = g.runtime.clone();
    let board = rt.sources.clone();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    board.attach_control("jiangxi-ecology", tx);
    let shutdown = Shutdown::default();
    let task = tokio::spawn(run_scheduler(
        rt.clone(),
        "jiangxi-ecology".into(),
        pull_source(&g, "jiangxi-ecology"),
        Schedule::Every(Duration::from_secs(3600)),
        PageTarget::Cases,
        rx,
        shutdown.clone(),
    ));
    wait_for("the pull at start", || {
        board
            .get("jiangxi-ecology")
            .is_some_and(|s| s.last_pull_finished.is_some())
    })
    .await;
    let status = board.get("jiangxi-ecology").unwrap();
    let (_, error) = status
        .last_error
        .clone()
        .expect("the business error is the source's last error");
    assert!(
        error.contains("E002") && error.contains("page size out of range"),
        "{error}"
    );
    let text = rt.metrics.render(&[], &[]);
    assert!(
        text.contains(r#"gateway_source_errors_total{source="jiangxi-ecology"} 1"#),
        "{text}"
    );
    assert_eq!(status.totals.received, 0);
    assert_eq!(
        rt.store.stats().await.unwrap().raw_records,
        0,
        "none of the answer's cases"
    );
    assert_eq!(rt.store.cursor("jiangxi-ecology").await.unwrap(), None);

    *code.lock().unwrap() = "0000";
    board.command("jiangxi-ecology", SourceCommand::PullNow).unwrap();
    wait_for("the pull after the service recovered", || {
        board
            .get("jiangxi-ecology")
            .is_some_and(|s| s.totals.received > 0 && !s.pulling)
    })
    .await;
    let stats = rt.store.stats().await.unwrap();
    assert!(stats.raw_records > 0 && stats.cases > 0, "{stats:?}");
    assert!(rt.store.cursor("jiangxi-ecology").await.unwrap().is_some());
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// An officer registry (执法人员名录) pulled from a REST peer.

async fn officer_rows(State(rows): State<Arc<Mutex<Vec<Value>>>>, Query(q): Params) -> Response {
    Json(page_of(&rows.lock().unwrap(), &q)).into_response()
}

async fn officer_registry_pulled_whole_replaces_each_agencys_list_and_is_in_force(backend: Backend) {
    const NANCHANG: &str = "11360100014523152U";
    const JIUJIANG: &str = "11360400014587316A";
    let row =
        |name: &str, cert: &str, agency: &str| json!({"xm": name, "zfzh": cert, "jgdm": agency, "yxqz": "2027-12-31"});
    let rows = Arc::new(Mutex::new(vec![
        row("张三", "36010020001", NANCHANG),
        row("李四", "36010020002", NANCHANG),
        row("王五", "36040020001", JIUJIANG),
        row("赵六", "36010020003", NANCHANG),
        row("钱七", "36040020002", JIUJIANG),
    ]));
    let router = Router::new()
        .route("/officers/list", get(officer_rows))
        .with_state(Arc::clone(&rows));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let mapping = repo().join("mappings/nanchang-amr-penalty/mapping.toml");
    let g = gateway_of(
        backend,
        &format!(
            "[normalizer.officers]\nseverity = \"auto\"\n\n\
             [[sources]]\nid = \"files\"\nkind = \"file\"\nmapping = \"{}\"\n\n\
             [[officer_registries]]\nid = \"registry\"\nkind = \"rest\"\n\
             [officer_registries.rest]\nurl = \"{url}/officers/list\"\npage_size = 2\n{REST_COMMON}\n\
             [officer_registries.fields]\nname = \"xm\"\ncert_no = \"zfzh\"\nagency = \"jgdm\"\nvalid_to = \"yxqz\"\n",
            mapping.display()
        ),
    )
    .await;
    let rt = &g.runtime;
    let config = &rt.resolved.config.officer_registries[0];
    let pull = adapters::sources::build(
        "registry",
        "rest",
        &config.adapter_table(),
        &rt.resolved.config.base_dir,
    )
    .unwrap();
    let target = PageTarget::Officers {
        fields: config.fields.clone(),
        agency: None,
    };
    let in_force = || {
        rt.preparers
            .get("files")
            .and_then(|p| p.normalizer.rule_options().officers.clone())
            .map_or(0, |o| o.registry.len())
    };
    assert_eq!(in_force(), 0);
    let summary = pull_into(
        rt,
        "registry",
        &pull,
        PullMode::Incremental,
        &Shutdown::default(),
        &target,
    )
    .await
    .unwrap();
    assert_eq!(
        (summary.received, summary.accepted),
        (5, 5),
        "every page of the registry"
    );
    let (versions, total) = rt.store.officers().officer_versions(None, None, 0, 10).await.unwrap();
    assert_eq!(total, 2, "one version per agency");
    assert!(versions
        .iter()
        .all(|v| v.loaded_by == "source:registry" && v.version == 1));
    assert_eq!(in_force(), 5, "validation uses the pulled registry");
    assert_eq!(
        rt.sources.get("registry").map(|s| s.totals.received),
        Some(5),
        "the source board counts the records"
    );

    // The next pull is whole again (no cursor): 李四 is gone from 南昌's list.
    rows.lock().unwrap().remove(1);
    pull_into(
        rt,
        "registry",
        &pull,
        PullMode::Incremental,
        &Shutdown::default(),
        &target,
    )
    .await
    .unwrap();
    let (versions, total) = rt
        .store
        .officers()
        .officer_versions(Some(NANCHANG), None, 0, 10)
        .await
        .unwrap();
    assert_eq!(total, 2);
    assert_eq!(
        (versions[0].version, versions[0].removed, versions[0].officers),
        (2, 1, 2)
    );
    assert_eq!(in_force(), 4);

    // A bad record keeps the lists as they are (a partial list would unregister officers).
    rows.lock()
        .unwrap()
        .push(json!({"xm": "孙八", "zfzh": "36010020009", "jgdm": "11360100014523152X"}));
    let summary = pull_into(
        rt,
        "registry",
        &pull,
        PullMode::Incremental,
        &Shutdown::default(),
        &target,
    )
    .await
    .unwrap();
    assert_eq!(summary.quarantined, 1);
    let (_, total) = rt.store.officers().officer_versions(None, None, 0, 10).await.unwrap();
    assert_eq!(total, 4, "no new version");
    let status = rt.sources.get("registry").unwrap();
    let reason = status.degraded_reason.unwrap_or_default();
    assert!(
        reason.contains("11360100014523152X") && reason.contains("agency"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn officer_registry_pulled_whole_replaces_each_agencys_list_and_is_in_force_sqlite() {
    officer_registry_pulled_whole_replaces_each_agencys_list_and_is_in_force(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn officer_registry_pulled_whole_replaces_each_agencys_list_and_is_in_force_postgres() {
    officer_registry_pulled_whole_replaces_each_agencys_list_and_is_in_force(Backend::Postgres).await;
}
