//! `gateway demo`, reconciliation and alerts (对账与告警): the simulated REST penalty system
//! also answers a count query — it holds three cases more than it ever served (cases kept off
//! the platform) — and a simulated DingTalk group robot receives the gateway's alerts and checks
//! their signature. The demo asks the count query, prints the day's reconciliation with the
//! missing case numbers, evaluates the alert rules and prints what the robot received.

use super::demo_peers;
use crate::oversight::alerts::{self, Scope};
use crate::oversight::{queries, reconcile, webhooks, Oversight};
use crate::runtime::Runtime;
use crate::store::oversight::day_of;
use anyhow::Context;
use axum::extract::{RawQuery, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The robot's signing secret (this demo only).
const ROBOT_SECRET: &str = "SECdemo0f8c2b1e";

/// Case numbers the department's system holds but never sent (kept off the platform).
pub const OFFLINE_CASES: [&str; 3] = ["NCSJ-CF-2024-OFF-001", "NCSJ-CF-2024-OFF-002", "NCSJ-CF-2024-OFF-003"];

/// What the robot received: (signature verified, message).
type Inbox = Arc<Mutex<Vec<(bool, Value)>>>;

/// The count interface and the robot, running.
pub struct OversightPeers {
    /// The count query's URL (with `{day}`).
    pub count_url: String,
    /// The robot's URL.
    pub robot_url: String,
    inbox: Inbox,
}

async fn serve(router: Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "simulated system stopped");
        }
    });
    Ok(addr)
}

/// Start the count interface (the REST system's case numbers plus [`OFFLINE_CASES`]) and the
/// robot.
pub async fn start(mappings: &Path, extra_rest: usize) -> std::io::Result<OversightPeers> {
    let samples = std::fs::read_to_string(mappings.join("nanchang-amr-penalty/samples/records.jsonl"))?;
    let mut keys: BTreeSet<String> = demo_peers::rest_records(&samples, extra_rest)
        .iter()
        .filter_map(|r| r["ajbh"].as_str().map(str::to_string))
        .collect();
    keys.extend(OFFLINE_CASES.iter().map(|k| (*k).to_string()));
    let keys: Arc<Vec<String>> = Arc::new(keys.into_iter().collect());
    let count = Router::new()
        .route(
            "/api/v1/penalty/count",
            get(|State(keys): State<Arc<Vec<String>>>| async move {
                Json(json!({
                    "code": "0000",
                    "msg": "成功",
                    "data": { "total": keys.len(), "list": keys.iter().map(|k| json!({ "ajbh": k })).collect::<Vec<_>>() }
                }))
            }),
        )
        .with_state(keys);
    let inbox: Inbox = Arc::default();
    let robot = Router::new()
        .route(
            "/robot/send",
            post(
                |State(inbox): State<Inbox>, RawQuery(query): RawQuery, Json(body): Json<Value>| async move {
                    let q: std::collections::HashMap<String, String> =
                        url_pairs(query.as_deref().unwrap_or(""));
                    let verified = match (q.get("timestamp"), q.get("sign")) {
                        (Some(ts), Some(sign)) => ts
                            .parse::<i64>()
                            .is_ok_and(|ts| webhooks::dingtalk_sign(ROBOT_SECRET, ts) == *sign),
                        _ => false,
                    };
                    if let Ok(mut v) = inbox.lock() {
                        v.push((verified, body));
                    }
                    Json(json!({ "errcode": if verified { 0 } else { 310000 }, "errmsg": if verified { "ok" } else { "sign not match" } }))
                },
            ),
        )
        .with_state(Arc::clone(&inbox));
    let count_addr = serve(count).await?;
    let robot_addr = serve(robot).await?;
    Ok(OversightPeers {
        count_url: format!("http://{count_addr}/api/v1/penalty/count?date={{day}}"),
        robot_url: format!("http://{robot_addr}/robot/send?access_token=demo-robot"),
        inbox,
    })
}

/// A query string's pairs, percent-decoded.
fn url_pairs(query: &str) -> std::collections::HashMap<String, String> {
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

impl OversightPeers {
    /// The `[sources.reconcile]` table of the REST source (inside its `[[sources]]` block).
    pub fn reconcile_table(&self) -> String {
        format!(
            "\n# 对账：部门系统按日报告它持有的案件数与案件编号\n[sources.reconcile]\nurl = \"{}\"\ncount_path = \"data.total\"\nkeys_path = \"data.list\"\nkey_field = \"ajbh\"\n",
            self.count_url
        )
    }

    /// The `[alerts]` and `[[alert_webhooks]]` tables (at the end of the file).
    pub fn alert_tables(&self) -> String {
        format!(
            "\n# 告警：推送到钉钉群机器人（模拟，加签）\n[alerts]\nrepeat_minutes = 240\n\n[[alert_webhooks]]\nid = \"ops-dingtalk\"\nkind = \"dingtalk\"\nurl = \"{}\"\nsecret = \"{ROBOT_SECRET}\"\n",
            self.robot_url
        )
    }
}

/// Reconcile today, evaluate the alert rules, send the messages, and print all of it.
pub async fn show(runtime: &Runtime, peers: &OversightPeers) -> anyhow::Result<()> {
    let today = day_of(chrono::Utc::now());
    let jobs = queries::jobs(&runtime.resolved.config).map_err(|e| anyhow::anyhow!(e))?;
    for job in &jobs {
        reconcile::check_and_keep(runtime.store.as_ref(), job, &today).await;
    }
    println!("\n对账 / reconciliation {today} (GET /api/reconciliation, dashboard 对账):");
    for r in reconcile::report(runtime, None, &today, &today).await? {
        println!(
            "  {:<22} source says {:>5}  received {:>4}  accepted {:>4}  quarantined {:>3}  missing {:>2}  {}",
            r.source_id,
            r.claimed.map_or("-".into(), |c| c.to_string()),
            r.received,
            r.accepted,
            r.quarantined,
            r.missing,
            if r.status == "gap" {
                "对账差异 GAP"
            } else {
                r.status
            }
        );
        for k in &r.missing_keys {
            println!("      缺失 / missing: {k}");
        }
    }
    let oversight = Oversight::new(Arc::new(runtime.clone())).context("alerts")?;
    alerts::evaluate(&oversight, Scope::All).await?;
    webhooks::send_due(&oversight).await?;
    let firing = runtime.store.oversight().alerts_firing().await?;
    println!(
        "\n告警 / alerts firing (GET /api/alerts, dashboard 告警): {}",
        firing.len()
    );
    for a in &firing {
        println!("  [{}] {} {}: {}", a.severity, a.rule, a.subject, a.summary_en);
    }
    let inbox = peers.inbox.lock().map(|v| v.clone()).unwrap_or_default();
    println!(
        "钉钉群机器人收到 / the DingTalk robot received {} messages:",
        inbox.len()
    );
    for (verified, body) in &inbox {
        let title = body["markdown"]["title"].as_str().unwrap_or("");
        println!(
            "  {title}  (签名{} / signature {})",
            if *verified { "正确" } else { "错误" },
            if *verified { "verified" } else { "WRONG" }
        );
    }
    Ok(())
}
