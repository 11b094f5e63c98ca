//! Starting the ways in of a running gateway: the runtime with the stored catalogue in force,
//! the tasks that take records by themselves (AMQP consumers, pull schedulers), and the one-shot
//! pull of every pull source (`gateway run --once`).

use super::amqp::run_consumer;
use super::pull::{pull_into, pull_once, run_scheduler, PageTarget};
use crate::config::schedule::Schedule;
use crate::runtime::Runtime;
use crate::shutdown::Shutdown;
use adapters::sources::amqp::AmqpSourceSettings;
use adapters::sources::PullMode;
use anyhow::Context;
use tokio::task::JoinSet;

/// The shared runtime of a loaded configuration: store, each source's active mapping version
/// (see [`crate::lifecycle`]), the source board, and the stored supervision-item catalogue.
pub async fn build_runtime(resolved: crate::config::Resolved) -> anyhow::Result<Runtime> {
    let runtime = Runtime::open(resolved).await?;
    for c in &runtime.resolved.config.catalogues {
        runtime.sources.register(&c.id, &c.kind);
    }
    // A catalogue pulled earlier is in force from the start.
    let items = super::catalogue::refresh_normalizer(&runtime).await?;
    if items > 0 {
        tracing::info!(items, "supervision-item catalogue in force");
    }
    Ok(runtime)
}

/// Start the tasks that take records by themselves: AMQP consumers and pull schedulers.
pub fn start_source_tasks(runtime: &Runtime, shutdown: &Shutdown) -> anyhow::Result<JoinSet<()>> {
    let mut tasks = JoinSet::new();
    let base = runtime.resolved.config.base_dir.clone();
    for source in &runtime.resolved.config.sources {
        match source.kind.as_str() {
            "amqp" => {
                let table = source.amqp.clone().unwrap_or_default();
                let settings = AmqpSourceSettings::from_table(&table)
                    .map_err(|p| anyhow::anyhow!("sources {:?} amqp.{}: {}", source.id, p.key, p.message))?;
                tasks.spawn(run_consumer(
                    runtime.clone(),
                    source.id.clone(),
                    settings,
                    base.clone(),
                    shutdown.clone(),
                ));
            }
            "rest" | "soap" => {
                let table = source.pull_table().unwrap_or_default();
                let pull = adapters::sources::build(&source.id, &source.kind, &table, &base)
                    .map_err(|e| anyhow::anyhow!("sources {:?}: {e}", source.id))?;
                let schedule = Schedule::from_config(source.cron.as_deref(), source.poll_seconds)
                    .map_err(|e| anyhow::anyhow!("sources {:?}: {e}", source.id))?;
                let (tx, rx) = tokio::sync::mpsc::channel(4);
                runtime.sources.attach_control(&source.id, tx);
                tasks.spawn(run_scheduler(
                    runtime.clone(),
                    source.id.clone(),
                    pull,
                    schedule,
                    PageTarget::Cases,
                    rx,
                    shutdown.clone(),
                ));
            }
            _ => {}
        }
    }
    for catalogue in &runtime.resolved.config.catalogues {
        let pull = adapters::sources::build(&catalogue.id, &catalogue.kind, &catalogue.adapter_table(), &base)
            .map_err(|e| anyhow::anyhow!("catalogues {:?}: {e}", catalogue.id))?;
        let schedule = Schedule::from_config(catalogue.cron.as_deref(), catalogue.poll_seconds)
            .map_err(|e| anyhow::anyhow!("catalogues {:?}: {e}", catalogue.id))?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        runtime.sources.attach_control(&catalogue.id, tx);
        tasks.spawn(run_scheduler(
            runtime.clone(),
            catalogue.id.clone(),
            pull,
            schedule,
            PageTarget::Catalogue(catalogue.fields.clone()),
            rx,
            shutdown.clone(),
        ));
    }
    Ok(tasks)
}

/// `--once`: one incremental pull of every catalogue and REST/SOAP source (AMQP sources are not
/// consumed).
pub async fn pull_each_once(runtime: &Runtime, shutdown: &Shutdown) -> anyhow::Result<()> {
    let base = runtime.resolved.config.base_dir.clone();
    // The catalogue first: cases pulled next are checked against it.
    for catalogue in &runtime.resolved.config.catalogues {
        let pull = adapters::sources::build(&catalogue.id, &catalogue.kind, &catalogue.adapter_table(), &base)
            .map_err(|e| anyhow::anyhow!("catalogues {:?}: {e}", catalogue.id))?;
        let target = PageTarget::Catalogue(catalogue.fields.clone());
        let summary = pull_into(runtime, &catalogue.id, &pull, PullMode::Incremental, shutdown, &target)
            .await
            .with_context(|| format!("pull of catalogue {:?}", catalogue.id))?;
        tracing::info!(catalogue = %catalogue.id, ?summary, "catalogue pulled once");
    }
    for source in &runtime.resolved.config.sources {
        let Some(table) = source.pull_table() else { continue };
        let pull = adapters::sources::build(&source.id, &source.kind, &table, &base)
            .map_err(|e| anyhow::anyhow!("sources {:?}: {e}", source.id))?;
        let summary = pull_once(runtime, &source.id, &pull, PullMode::Incremental, shutdown)
            .await
            .with_context(|| format!("pull of source {:?}", source.id))?;
        tracing::info!(source = %source.id, ?summary, "pulled once");
    }
    Ok(())
}
