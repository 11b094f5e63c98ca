//! Readiness (`GET /readyz`), kept up to date in the background: every few seconds the store is
//! asked a trivial question, each AMQP sink's broker is connected to (less often), and each AMQP
//! source's consumer is read off the source board (consuming, or the error that keeps it from
//! starting). A request only reads the last report, so probing `/readyz` opens no connection and
//! takes no pool connection; without a refresher (a router built alone, in tests) the first
//! request makes the report and later ones reuse it for [`MAX_AGE`].

use crate::runtime::Runtime;
use crate::shutdown::Shutdown;
use adapters::common::amqp_url::{connect_first, nodes_of_table, Rotation};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the store and the sources are checked.
const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// How often each AMQP sink's broker is connected to.
const BROKER_EVERY: Duration = Duration::from_secs(30);
/// A report older than this is made again on request.
pub const MAX_AGE: Duration = Duration::from_secs(15);

/// One check's result.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Check {
    /// Whether it is usable.
    pub ok: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Check {
    fn ok() -> Check {
        Check { ok: true, error: None }
    }
    fn failed(error: impl Into<String>) -> Check {
        Check {
            ok: false,
            error: Some(error.into()),
        }
    }
}

/// What `/readyz` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// All checks pass.
    pub ready: bool,
    /// When the report was made.
    pub checked_at: DateTime<Utc>,
    /// Each check by name: `store`, `amqp:sink:<id>`, `amqp:source:<id>`.
    pub checks: BTreeMap<String, Check>,
}

/// The last report, shared by the refresher and the handler.
#[derive(Default)]
pub struct Readiness {
    last: tokio::sync::Mutex<Option<(Instant, Report)>>,
    brokers: tokio::sync::Mutex<BTreeMap<String, (Instant, Check)>>,
}

impl Readiness {
    /// The last report, made now if there is none younger than [`MAX_AGE`].
    pub async fn current(&self, runtime: &Runtime) -> Report {
        let mut last = self.last.lock().await;
        if let Some((at, report)) = last.as_ref() {
            if at.elapsed() < MAX_AGE {
                return report.clone();
            }
        }
        let report = self.check(runtime).await;
        *last = Some((Instant::now(), report.clone()));
        report
    }

    /// Make a new report and keep it.
    async fn refresh(&self, runtime: &Runtime) {
        let report = self.check(runtime).await;
        *self.last.lock().await = Some((Instant::now(), report));
    }

    async fn check(&self, runtime: &Runtime) -> Report {
        let mut checks: BTreeMap<String, Check> = BTreeMap::new();
        let store = tokio::time::timeout(CHECK_TIMEOUT, runtime.store.cursor("")).await;
        checks.insert(
            "store".into(),
            match store {
                Ok(Ok(_)) => Check::ok(),
                // Logged in full; the answer is public, so it only names the failure.
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "readiness: the store does not answer");
                    Check::failed("存储无法访问 / the store cannot be reached")
                }
                Err(_) => Check::failed("存储响应超时 / the store did not answer in time"),
            },
        );
        let config = &runtime.resolved.config;
        for sink in config.sinks.iter().filter(|s| s.kind == "amqp") {
            let name = format!("amqp:sink:{}", sink.id);
            let check = self.broker(&name, &sink.settings, &config.base_dir).await;
            checks.insert(name, check);
        }
        for source in config.sources.iter().filter(|s| s.kind == "amqp") {
            let check = match runtime.sources.get(&source.id) {
                Some(status) if status.pulling => Check::ok(),
                Some(status) => match status.last_error {
                    Some((at, message)) => Check::failed(format!(
                        "未在消费（{}）：{message} / not consuming ({}): {message}",
                        at.format("%Y-%m-%d %H:%M:%S UTC"),
                        at.format("%Y-%m-%d %H:%M:%S UTC")
                    )),
                    None => Check::failed("尚未开始消费 / not consuming yet"),
                },
                None => Check::failed("未运行 / not running"),
            };
            checks.insert(format!("amqp:source:{}", source.id), check);
        }
        for id in &config.server.ready_sources {
            let check = match runtime.sources.get(id) {
                Some(status) if status.state.is_working() => Check::ok(),
                Some(status) => {
                    let why = status.last_error.map(|(_, m)| m).unwrap_or_default();
                    Check::failed(format!("{}: {why}", status.state.as_str()))
                }
                None => Check::failed("未运行 / not running"),
            };
            checks.insert(format!("source:{id}"), check);
        }
        Report {
            ready: checks.values().all(|c| c.ok),
            checked_at: Utc::now(),
            checks,
        }
    }

    /// A sink's broker, connected to at most every [`BROKER_EVERY`].
    async fn broker(&self, name: &str, table: &toml::Table, base: &Path) -> Check {
        if let Some((at, check)) = self.brokers.lock().await.get(name) {
            if at.elapsed() < BROKER_EVERY {
                return check.clone();
            }
        }
        let check = amqp_check(table, base).await;
        self.brokers
            .lock()
            .await
            .insert(name.to_string(), (Instant::now(), check.clone()));
        check
    }
}

/// Keep `readiness` fresh until `shutdown`.
pub fn spawn_refresher(runtime: Arc<Runtime>, readiness: Arc<Readiness>, shutdown: Shutdown) {
    tokio::spawn(async move {
        loop {
            readiness.refresh(&runtime).await;
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = tokio::time::sleep(REFRESH_EVERY) => {}
            }
        }
    });
}

async fn amqp_check(table: &toml::Table, base: &Path) -> Check {
    let nodes = match nodes_of_table(table, base) {
        Ok(nodes) => nodes,
        Err(p) => return Check::failed(p.to_string()),
    };
    // Ready when any node of the cluster takes a connection, as the sink would use it.
    let properties = lapin::ConnectionProperties::default();
    let mut rotation = Rotation::default();
    let connect = connect_first(&nodes, &mut rotation, &properties, CHECK_TIMEOUT);
    match tokio::time::timeout(CHECK_TIMEOUT * nodes.len().max(1) as u32, connect).await {
        Ok(Ok((connection, _))) => {
            let _ = connection.close(200, "readyz".into()).await;
            Check::ok()
        }
        // The answer is public: name the failure, not the nodes (they are in the log).
        Ok(Err(_)) if nodes.len() > 1 => Check::failed(format!(
            "无法连接任何消息代理节点（共 {} 个）/ cannot connect to any of the {} broker nodes",
            nodes.len(),
            nodes.len()
        )),
        Ok(Err(_)) => Check::failed("无法连接消息代理 / cannot connect to the broker"),
        Err(_) => Check::failed("连接消息代理超时 / connecting to the broker timed out"),
    }
}
