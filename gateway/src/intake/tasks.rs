//! Starting the ways in of a running gateway: the runtime with the stored catalogue in force,
//! the tasks that take records by themselves (AMQP consumers, pull schedulers), and the one-shot
//! pull of every pull source (`gateway run --once`).

use super::amqp::run_consumer;
use super::directory::{scan_directory, DirectoryError};
use super::files::IngestError;
use super::pull::{pull_into, pull_once, PageTarget, ScheduledPull};
use crate::commit::Batching;
use crate::config::schedule::Schedule;
use crate::config::SourceConfig;
use crate::runtime::cluster::{self, job_name, JobLease, LeaseTimings};
use crate::runtime::Runtime;
use crate::shutdown::Shutdown;
use crate::store::StoreError;
use adapters::sources::amqp::AmqpSourceSettings;
use adapters::sources::PullMode;
use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;
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
    for r in &runtime.resolved.config.officer_registries {
        runtime.sources.register(&r.id, &r.kind);
    }
    // So is a stored officer registry.
    let officers = super::officers::refresh_officers(&runtime).await?;
    if officers > 0 {
        tracing::info!(officers, "officer registry in force");
    }
    let (plans, supplied) = crate::runtime::reference::refresh(&runtime).await?;
    if plans + supplied > 0 {
        tracing::info!(plans, supplied, "inspection plans and supplied values in force");
    }
    Ok(runtime)
}

/// Start the tasks that take records by themselves: AMQP consumers (on every instance: they
/// compete for messages), and the scheduled jobs — pull schedulers, catalogues, drop-folder
/// scans — each on the one instance holding its lease (see [`crate::runtime::cluster`]), plus
/// this instance's heartbeat.
pub fn start_source_tasks(runtime: &Runtime, shutdown: &Shutdown) -> anyhow::Result<JoinSet<()>> {
    let mut tasks = JoinSet::new();
    let base = runtime.resolved.config.base_dir.clone();
    let timings = LeaseTimings::from_config(&runtime.resolved.config.cluster);
    tasks.spawn(cluster::heartbeat(
        runtime.clone(),
        Arc::clone(&runtime.instance),
        timings,
        shutdown.clone(),
    ));
    tasks.spawn(crate::runtime::reference::keep_fresh(runtime.clone(), shutdown.clone()));
    tasks.spawn(crate::runtime::joint_indexer::keep_indexing(
        runtime.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(crate::archive::checkpoint::keep_signing(
        runtime.clone(),
        shutdown.clone(),
    ));
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
                let pull = runtime
                    .pull_source(source)
                    .map_err(|e| anyhow::anyhow!("sources {:?}: {e}", source.id))?;
                let schedule = Schedule::from_config(source.cron.as_deref(), source.poll_seconds)
                    .map_err(|e| anyhow::anyhow!("sources {:?}: {e}", source.id))?;
                spawn_leased_pull(
                    &mut tasks,
                    runtime,
                    job_name("source", &source.id),
                    source.id.clone(),
                    pull,
                    schedule,
                    PageTarget::Cases,
                    shutdown,
                );
            }
            "directory" => {
                let job = job_name("directory", &source.id);
                runtime.sources.update(&source.id, |s| s.runs_here = Some(false));
                let (runtime_for_job, source) = (runtime.clone(), source.clone());
                tasks.spawn(cluster::run_under_lease(
                    runtime.clone(),
                    Arc::clone(&runtime.instance),
                    job,
                    timings,
                    shutdown.clone(),
                    move |lease, stop| scan_while_held(runtime_for_job.clone(), source.clone(), lease, stop),
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
        spawn_leased_pull(
            &mut tasks,
            runtime,
            job_name("source", &catalogue.id),
            catalogue.id.clone(),
            pull,
            schedule,
            PageTarget::Catalogue(catalogue.fields.clone()),
            shutdown,
        );
    }
    for registry in &runtime.resolved.config.officer_registries {
        let pull = adapters::sources::build(&registry.id, &registry.kind, &registry.adapter_table(), &base)
            .map_err(|e| anyhow::anyhow!("officer_registries {:?}: {e}", registry.id))?;
        let schedule = Schedule::from_config(registry.cron.as_deref(), registry.poll_seconds)
            .map_err(|e| anyhow::anyhow!("officer_registries {:?}: {e}", registry.id))?;
        spawn_leased_pull(
            &mut tasks,
            runtime,
            job_name("source", &registry.id),
            registry.id.clone(),
            pull,
            schedule,
            PageTarget::Officers {
                fields: registry.fields.clone(),
                agency: registry.agency.clone(),
            },
            shutdown,
        );
    }
    tasks.spawn(super::officers::refresher(runtime.clone(), shutdown.clone()));
    Ok(tasks)
}

/// Run a pull source's (or catalogue's) schedule on whichever instance holds `job`'s lease;
/// operators' commands reach it while this instance runs it.
#[allow(clippy::too_many_arguments)]
fn spawn_leased_pull(
    tasks: &mut JoinSet<()>,
    runtime: &Runtime,
    job: String,
    id: String,
    pull: Arc<dyn adapters::sources::PullSource>,
    schedule: Schedule,
    target: PageTarget,
    shutdown: &Shutdown,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    runtime.sources.attach_control(&id, tx);
    runtime.sources.update(&id, |s| s.runs_here = Some(false));
    let commands = Arc::new(tokio::sync::Mutex::new(rx));
    let timings = LeaseTimings::from_config(&runtime.resolved.config.cluster);
    let for_job = runtime.clone();
    tasks.spawn(cluster::run_under_lease(
        runtime.clone(),
        Arc::clone(&runtime.instance),
        job,
        timings,
        shutdown.clone(),
        move |lease, stop| {
            let (runtime, id, pull, schedule, target, commands) = (
                for_job.clone(),
                id.clone(),
                Arc::clone(&pull),
                schedule.clone(),
                target.clone(),
                Arc::clone(&commands),
            );
            async move {
                runtime.sources.update(&id, |s| s.runs_here = Some(true));
                let mut commands = commands.lock().await;
                ScheduledPull {
                    runtime: &runtime,
                    source_id: &id,
                    source: &pull,
                    schedule: &schedule,
                    target: &target,
                }
                .run(&mut commands, &stop, Some(&lease))
                .await;
                runtime.sources.update(&id, |s| {
                    s.runs_here = Some(false);
                    s.next_pull = None;
                });
            }
        },
    ));
}

/// Scan a drop folder every `poll_seconds` while this instance holds its lease.
async fn scan_while_held(runtime: Runtime, source: SourceConfig, lease: JobLease, stop: Shutdown) {
    runtime.sources.update(&source.id, |s| s.runs_here = Some(true));
    let committer = runtime.committer("directory").with_fence(Some(lease.fence.clone()));
    let batching = Batching::from(&runtime.resolved.config);
    let poll = Duration::from_secs(source.poll_seconds.max(1));
    while lease.valid() {
        let Some(preparer) = runtime.preparers.get(&source.id) else {
            tracing::error!(source = %source.id, "no preparer for the drop folder");
            break;
        };
        let scanned = scan_directory(
            &committer,
            &source,
            &runtime.resolved.config.base_dir,
            &preparer,
            &batching,
            &stop,
            Duration::from_secs(2),
        )
        .await;
        match scanned {
            Err(DirectoryError::Ingest(IngestError::Store(StoreError::Fenced { .. }))) => {
                tracing::warn!(source = %source.id, "another instance holds the drop folder now; stopping here");
                break;
            }
            Err(e) => {
                tracing::error!(source = %source.id, error = %e, "drop-folder scan failed; retrying at the next scan")
            }
            Ok(()) => {}
        }
        tokio::select! {
            _ = stop.wait() => break,
            _ = tokio::time::sleep(poll) => {}
        }
    }
    runtime.sources.update(&source.id, |s| s.runs_here = Some(false));
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
    for registry in &runtime.resolved.config.officer_registries {
        let pull = adapters::sources::build(&registry.id, &registry.kind, &registry.adapter_table(), &base)
            .map_err(|e| anyhow::anyhow!("officer_registries {:?}: {e}", registry.id))?;
        let target = PageTarget::Officers {
            fields: registry.fields.clone(),
            agency: registry.agency.clone(),
        };
        let summary = pull_into(runtime, &registry.id, &pull, PullMode::FullResync, shutdown, &target)
            .await
            .with_context(|| format!("pull of officer registry {:?}", registry.id))?;
        tracing::info!(registry = %registry.id, ?summary, "officer registry pulled once");
    }
    for source in &runtime.resolved.config.sources {
        if source.pull_table().is_none() {
            continue;
        }
        let pull = runtime
            .pull_source(source)
            .map_err(|e| anyhow::anyhow!("sources {:?}: {e}", source.id))?;
        let summary = pull_once(runtime, &source.id, &pull, PullMode::Incremental, shutdown)
            .await
            .with_context(|| format!("pull of source {:?}", source.id))?;
        tracing::info!(source = %source.id, ?summary, "pulled once");
    }
    Ok(())
}
