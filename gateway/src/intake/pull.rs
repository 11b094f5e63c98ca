//! Running a pull source (REST, SOAP): on its schedule, or when an operator asks (pull now,
//! full resync), fetch pages from the stored cursor and commit each page together with the
//! cursor it carries. Fetching the next page overlaps with committing the previous one; a
//! page is committed only after every earlier page, so the persisted cursor never runs ahead
//! of what is committed. A failed run leaves the cursor where the last committed page put it:
//! the next run pulls again from there, and records seen twice are absorbed by content hash.

use super::catalogue::items_of_page;
use crate::config::schedule::Schedule;
use crate::config::CatalogueFields;
use crate::prepare::reader::from_source_item;
use crate::prepare::{prepare_parallel, PrepareError, Preparer};
use crate::runtime::cluster::JobLease;
use crate::runtime::Runtime;
use crate::shutdown::Shutdown;
use crate::store::{IncomingRecord, StoreError, Verdict};
use crate::telemetry::{BatchCommitted, SourceCommand, SourceFailed, Summary};
use adapters::sources::{CircuitState, Page, PullMode, PullSource, SourceError, SourceItem};
use chrono::{DateTime, NaiveDateTime, Utc};
use normalizer::Violation;
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::Instrument;

/// Pages fetched ahead of the committer.
const PAGES_AHEAD: usize = 4;

/// Why a pull run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The source failed; the cursor stays at the last committed page.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The store failed; the page being committed stays at its source.
    #[error(
        "存储失败，本页未提交，将重新拉取 / store failed, the page was not committed and will be pulled again: {0}"
    )]
    Store(#[from] StoreError),
    /// Records could not be prepared; the page stays at its source.
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    /// The source has no preparer (unknown source id).
    #[error("未知来源 / unknown source {0:?}")]
    UnknownSource(String),
    /// This instance may no longer act on the job's lease (it was paused past it, or lost it):
    /// nothing more is fetched; another instance runs the job.
    #[error("租约已失效，停止拉取 / the job's lease is no longer held here: pulling stopped")]
    LeaseLost,
}

impl PullError {
    /// Whether the run ended because the job moved to another instance (not a failure of the
    /// source).
    pub fn is_lease_lost(&self) -> bool {
        matches!(
            self,
            PullError::LeaseLost | PullError::Store(StoreError::Fenced { .. }) | PullError::Source(SourceError::Gated)
        )
    }
}

/// Seconds between a cursor that is a time and now (the source's lag), if it is one.
pub fn lag_seconds(cursor: &str, now: DateTime<Utc>) -> Option<i64> {
    let t = DateTime::parse_from_rfc3339(cursor)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(cursor, "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(|t| t.and_utc() - chrono::Duration::hours(8))
        })?;
    Some((now - t).num_seconds().max(0))
}

/// Which records of a page had a watermark beyond the run's start plus the allowed clock skew,
/// with that watermark.
fn records_in_future(items: &[SourceItem]) -> Vec<(usize, DateTime<Utc>)> {
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| item.as_ref().ok()?.watermark_in_future.map(|t| (i, t)))
        .collect()
}

/// Keep the warning `source.watermark_in_future` with each such record (accepted or not): its
/// time did not move the source's cursor, and the clerk should know why.
fn flag_in_future(prepared: &mut [IncomingRecord], in_future: &[(usize, DateTime<Utc>)]) {
    for (index, watermark) in in_future {
        let Some(record) = prepared.get_mut(*index) else {
            continue;
        };
        let warning = Violation::warning(
            "",
            "source.watermark_in_future",
            Some(watermark.to_rfc3339()),
            format!(
                "记录的更新时间 {} 晚于本次拉取开始时间加允许的时钟偏差：该记录已接收，但不推进游标；请核对来源系统的时钟或该记录的更新时间",
                watermark.to_rfc3339()
            ),
            format!(
                "the record's last-changed time {} lies beyond this pull's start plus the allowed clock skew: the record is taken, but it does not move the cursor; check the source system's clock or the record's time",
                watermark.to_rfc3339()
            ),
        );
        match &mut record.verdict {
            Verdict::Accept(a) => a.warnings.push(warning),
            Verdict::Quarantine(v) => v.push(warning),
        }
    }
}

/// A page as the committer gets it.
enum Fetched {
    /// Catalogue records, as pulled.
    Raw(Page),
    /// Case records, mapped and validated.
    Prepared {
        prepared: Vec<IncomingRecord>,
        preparer: Preparer,
        cursor: Option<String>,
        received: u64,
    },
}

/// What a pull source's records are.
#[derive(Debug, Clone)]
pub enum PageTarget {
    /// Cases: mapped, validated, committed or quarantined.
    Cases,
    /// Supervision-item catalogue items, kept by year (see [`super::catalogue`]).
    Catalogue(CatalogueFields),
    /// An officer registry: every page of a complete pull (always from the start), then the
    /// lists of the agencies named replaced at once (see [`super::officers`]).
    Officers {
        /// Where each officer's parts are.
        fields: crate::config::OfficerFields,
        /// The agency of records naming none.
        agency: Option<String>,
    },
}

/// One pull run: every page from the stored cursor (or from the start), committed in order.
pub async fn pull_once(
    runtime: &Runtime,
    source_id: &str,
    source: &Arc<dyn PullSource>,
    mode: PullMode,
    shutdown: &Shutdown,
) -> Result<Summary, PullError> {
    pull_into(runtime, source_id, source, mode, shutdown, &PageTarget::Cases).await
}

/// [`pull_once`] for either kind of record.
pub async fn pull_into(
    runtime: &Runtime,
    source_id: &str,
    source: &Arc<dyn PullSource>,
    mode: PullMode,
    shutdown: &Shutdown,
    target: &PageTarget,
) -> Result<Summary, PullError> {
    pull_fenced(runtime, source_id, source, mode, shutdown, target, None).await
}

/// [`pull_into`] under a job's lease: no page is requested once the lease may have run out
/// here ([`PullError::LeaseLost`]), and every commit carries the lease's fence and is refused
/// once another instance holds the job ([`StoreError::Fenced`]).
pub async fn pull_fenced(
    runtime: &Runtime,
    source_id: &str,
    source: &Arc<dyn PullSource>,
    mode: PullMode,
    shutdown: &Shutdown,
    target: &PageTarget,
    lease: Option<&JobLease>,
) -> Result<Summary, PullError> {
    let fence = lease.map(|l| &l.fence);
    let fetch_lease = lease.cloned();
    // Checked again by the HTTP client right before each request is sent, after every wait;
    // taken off when the run ends, however it ends.
    source.set_gate(
        lease
            .cloned()
            .map(|l| Arc::new(move || l.valid()) as adapters::sources::RequestGate),
    );
    struct GateOff<'a>(&'a Arc<dyn PullSource>);
    impl Drop for GateOff<'_> {
        fn drop(&mut self) {
            self.0.set_gate(None);
        }
    }
    let _gate_off = GateOff(source);
    let registry = matches!(target, PageTarget::Officers { .. });
    let cursor = match mode {
        // A registry is complete only when pulled whole.
        _ if registry => None,
        PullMode::Incremental => runtime.store.cursor(source_id).await?,
        PullMode::FullResync => None,
    };
    let mut run = source.start(cursor, if registry { PullMode::FullResync } else { mode });
    let mut pulled_officers = Vec::new();
    let mut refused_officers = 0u64;
    let (page_tx, mut page_rx) = mpsc::channel::<Result<Fetched, PullError>>(PAGES_AHEAD);
    let fetch_stop = shutdown.clone();
    // Case pages are prepared (mapped, validated) here, so that page N+1 is fetched and prepared
    // while page N commits.
    let prepare_with = match target {
        PageTarget::Cases => Some(Arc::clone(&runtime.preparers)),
        PageTarget::Catalogue(_) | PageTarget::Officers { .. } => None,
    };
    let id = source_id.to_string();
    let compress = runtime.store.keeps_compressed();
    let fetcher = tokio::spawn(
        async move {
            loop {
                if fetch_stop.is_triggered() {
                    break;
                }
                if fetch_lease.as_ref().is_some_and(|l| !l.valid()) {
                    let _ = page_tx.send(Err(PullError::LeaseLost)).await;
                    break;
                }
                let fetched = match run.next_page().await {
                    Ok(Some(page)) => match &prepare_with {
                        None => Ok(Fetched::Raw(page)),
                        Some(registry) => match registry.get(&id) {
                            None => Err(PullError::UnknownSource(id.clone())),
                            Some(preparer) => {
                                let received = page.items.len() as u64;
                                let in_future = records_in_future(&page.items);
                                let items = page.items.into_iter().map(from_source_item).collect();
                                prepare_parallel(&preparer, items, compress)
                                    .await
                                    .map(|mut prepared| {
                                        flag_in_future(&mut prepared, &in_future);
                                        prepared
                                    })
                                    .map(|prepared| Fetched::Prepared {
                                        prepared,
                                        preparer,
                                        cursor: page.cursor,
                                        received,
                                    })
                                    .map_err(PullError::Prepare)
                            }
                        },
                    },
                    Ok(None) => break,
                    Err(e) => Err(PullError::Source(e)),
                };
                let failed = fetched.is_err();
                if page_tx.send(fetched).await.is_err() || failed {
                    break;
                }
            }
        }
        .in_current_span(),
    );
    let mut summary = Summary::default();
    let mut page_no = 0u64;
    let committer = runtime.committer("pull").with_fence(fence.cloned());
    let batch_size = runtime.resolved.config.pipeline.batch_size;
    // A page taken from the queue that could not join the previous commit.
    let mut held: Option<Result<Fetched, PullError>> = None;
    let result = loop {
        let page = match held.take() {
            Some(page) => page,
            None => match page_rx.recv().await {
                Some(page) => page,
                None => break Ok(summary),
            },
        };
        let fetched = match page {
            Ok(f) => f,
            Err(e) => break Err(e),
        };
        page_no += 1;
        let (mut prepared, preparer, mut cursor, mut received) = match fetched {
            Fetched::Prepared {
                prepared,
                preparer,
                cursor,
                received,
            } => (prepared, preparer, cursor, received),
            Fetched::Raw(page) if registry => {
                let PageTarget::Officers { fields, agency } = target else {
                    break Err(PullError::UnknownSource(source_id.to_string()));
                };
                let received = page.items.len() as u64;
                let (officers, refused) = super::officers::officers_of_page(page.items, fields, agency.as_deref());
                refused_officers += refused.len() as u64;
                let page_summary = report_reference_page(
                    runtime,
                    source_id,
                    (
                        "执法人员记录被拒绝，名录未更新",
                        "officer records refused, the registry was not replaced",
                    ),
                    received,
                    officers.len(),
                    &refused,
                    std::time::Duration::ZERO,
                );
                summary.merge(&page_summary);
                pulled_officers.extend(officers);
                continue;
            }
            Fetched::Raw(page) => {
                let PageTarget::Catalogue(fields) = target else {
                    break Err(PullError::UnknownSource(source_id.to_string()));
                };
                let received = page.items.len() as u64;
                let (items, refused) = items_of_page(page.items, fields);
                let started = std::time::Instant::now();
                if let Err(e) = runtime
                    .store
                    .catalogue()
                    .catalogue_commit(source_id, &items, page.cursor.as_deref(), fence)
                    .await
                {
                    break Err(PullError::Store(e));
                }
                let page_summary = report_reference_page(
                    runtime,
                    source_id,
                    ("目录记录被拒绝", "catalogue records refused"),
                    received,
                    items.len(),
                    &refused,
                    started.elapsed(),
                );
                summary.merge(&page_summary);
                continue;
            }
        };
        // Pages already fetched and prepared join this commit, up to a batch of records: one
        // transaction (with the last page's cursor) instead of one per small page.
        let first_page = page_no;
        while prepared.len() < batch_size {
            match page_rx.try_recv() {
                Ok(Ok(Fetched::Prepared {
                    prepared: more,
                    preparer: same,
                    cursor: next_cursor,
                    received: more_received,
                })) if Arc::ptr_eq(&same.mapping, &preparer.mapping) => {
                    page_no += 1;
                    prepared.extend(more);
                    received += more_received;
                    if next_cursor.is_some() {
                        cursor = next_cursor;
                    }
                }
                Ok(other) => {
                    held = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let span = tracing::info_span!("pages", source = %source_id, pages = %format!("{first_page}..={page_no}"),
            records = received);
        let committed = match committer
            .commit(prepared, cursor.clone().map(|c| (preparer.source_id.clone(), c)))
            .instrument(span)
            .await
        {
            Ok(c) => c,
            Err(e) => break Err(PullError::Store(e)),
        };
        summary.merge(&committed.summary);
        if let Some(c) = cursor {
            let lag = lag_seconds(&c, Utc::now());
            runtime.sources.update(source_id, |s| {
                s.cursor = Some(c);
                s.lag_seconds = lag;
            });
        }
    };
    drop(page_rx);
    let _ = fetcher.await;
    if let (PageTarget::Officers { agency, .. }, Ok(_)) = (target, &result) {
        if refused_officers == 0 && !shutdown.is_triggered() {
            let load = crate::store::officers::RegistryLoad::grouped(
                &format!("source:{source_id}"),
                source_id,
                std::mem::take(&mut pulled_officers),
                agency.as_deref(),
            );
            let versions = super::officers::load(runtime, &load).await?;
            tracing::info!(source = %source_id, agencies = versions.len(), "officer registry pulled; validation uses it from the next batch");
        }
    }
    if matches!(target, PageTarget::Catalogue(_)) && summary.accepted > 0 {
        let items = super::catalogue::refresh_normalizer(runtime).await?;
        tracing::info!(source = %source_id, items, "supervision-item catalogue refreshed; validation uses it from the next batch");
    }
    result
}

/// Run a pull source until shutdown: on its schedule and on operators' commands.
pub async fn run_scheduler(
    runtime: Runtime,
    source_id: String,
    source: Arc<dyn PullSource>,
    schedule: Schedule,
    target: PageTarget,
    mut commands: mpsc::Receiver<SourceCommand>,
    shutdown: Shutdown,
) {
    let job = ScheduledPull {
        runtime: &runtime,
        source_id: &source_id,
        source: &source,
        schedule: &schedule,
        target: &target,
    };
    job.run(&mut commands, &shutdown, None).await;
}

/// A pull source's schedule, as one instance runs it while it holds the job.
pub struct ScheduledPull<'a> {
    /// The running gateway.
    pub runtime: &'a Runtime,
    /// The source (or catalogue) id.
    pub source_id: &'a str,
    /// Its connection.
    pub source: &'a Arc<dyn PullSource>,
    /// When it is pulled.
    pub schedule: &'a Schedule,
    /// What its records are.
    pub target: &'a PageTarget,
}

impl ScheduledPull<'_> {
    /// Pull on the schedule and on operators' commands until `shutdown`, under `lease` when
    /// given (see [`pull_fenced`]).
    pub async fn run(
        &self,
        commands: &mut mpsc::Receiver<SourceCommand>,
        shutdown: &Shutdown,
        lease: Option<&JobLease>,
    ) {
        let ScheduledPull {
            runtime,
            source_id,
            source,
            schedule,
            target,
        } = *self;
        schedule_loop(runtime, source_id, source, schedule, target, commands, shutdown, lease).await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn schedule_loop(
    runtime: &Runtime,
    source_id: &str,
    source: &Arc<dyn PullSource>,
    schedule: &Schedule,
    target: &PageTarget,
    commands: &mut mpsc::Receiver<SourceCommand>,
    shutdown: &Shutdown,
    lease: Option<&JobLease>,
) {
    let board = Arc::clone(&runtime.sources);
    if let Ok(Some(c)) = runtime.store.cursor(source_id).await {
        let lag = lag_seconds(&c, Utc::now());
        board.update(source_id, |s| {
            s.cursor = Some(c);
            s.lag_seconds = lag;
        });
    }
    // The first pull runs at start.
    let mut due = Some(Utc::now());
    loop {
        board.update(source_id, |s| s.next_pull = due);
        let wait = due
            .and_then(|d| (d - Utc::now()).to_std().ok())
            .unwrap_or(std::time::Duration::ZERO);
        let mode = tokio::select! {
            _ = shutdown.wait() => break,
            _ = tokio::time::sleep(wait), if due.is_some() => PullMode::Incremental,
            cmd = commands.recv() => match cmd {
                Some(SourceCommand::PullNow) => PullMode::Incremental,
                Some(SourceCommand::FullResync) => PullMode::FullResync,
                None => break,
            },
        };
        let started = Utc::now();
        let retries_before = source.health().retries;
        board.update(source_id, |s| {
            s.pulling = true;
            s.last_pull_started = Some(started);
            s.next_pull = None;
            // What makes this run degraded is found during it.
            s.degraded_reason = None;
        });
        let span = tracing::info_span!("pull", source = %source_id, mode = ?mode);
        let result = pull_fenced(runtime, source_id, source, mode, shutdown, target, lease)
            .instrument(span.clone())
            .await;
        let finished = Utc::now();
        let health = source.health();
        let stalled = matches!(result, Err(PullError::Source(SourceError::Backlog(_))));
        let result_fenced = result.as_ref().is_err_and(PullError::is_lease_lost);
        let paused_until = match health.circuit {
            CircuitState::Open => health.circuit_reopens_at,
            _ => None,
        };
        let retried = health.retries.saturating_sub(retries_before);
        let half_open = health.circuit == CircuitState::HalfOpen;
        board.update(source_id, |s| {
            s.pulling = false;
            s.last_pull_finished = Some(finished);
            s.health = Some(health);
            s.stalled = stalled;
        });
        runtime.metrics.source_stalled(source_id, stalled);
        match result {
            Ok(summary) => {
                span.in_scope(|| tracing::info!(?summary, "pull finished"));
                let degraded = board
                    .get(source_id)
                    .and_then(|s| s.degraded_reason)
                    .or_else(|| {
                        (retried > 0).then(|| {
                            format!("本次拉取有 {retried} 个请求需重试后才成功 / {retried} requests had to be retried in this run")
                        })
                    })
                    .or_else(|| half_open.then(|| "熔断器半开，正在试探 / circuit half-open: on trial".to_string()));
                board.run_succeeded(source_id, Some(summary), degraded);
            }
            // Not the source's failure: the job moved to another instance.
            Err(_) if result_fenced => {}
            Err(e) => span.in_scope(|| {
                runtime.telemetry().emit(SourceFailed {
                    source: source_id,
                    stage: "pull",
                    error: &e.to_string(),
                    run_failed: true,
                    paused_until,
                    only_paused: matches!(e, PullError::Source(SourceError::CircuitOpen { .. })),
                })
            }),
        }
        if result_fenced {
            tracing::warn!(source = %source_id, "another instance holds the job now; stopping here");
            break;
        }
        due = schedule.next_after(finished);
        if due.is_none() {
            tracing::warn!(source = %source_id, "the schedule has no next time; only manual pulls will run");
        }
    }
}

/// Report a pulled page of reference records (catalogue items, officers): each refused record
/// logged, the first shown on the source board with how many (`what`: what was refused, Chinese
/// and English), and the page counted like a committed batch. Answers the page's counts.
fn report_reference_page(
    runtime: &Runtime,
    source_id: &str,
    what: (&str, &str),
    received: u64,
    accepted: usize,
    refused: &[super::pulled::RefusedItem],
    elapsed: std::time::Duration,
) -> Summary {
    for r in refused {
        tracing::warn!(source = %source_id, position = %r.position, reason = %r.reason, "pulled reference record refused");
    }
    if let Some(r) = refused.first() {
        let n = refused.len();
        runtime.sources.set_degraded(
            source_id,
            format!(
                "{n} 条{}，例如 {}：{} / {n} {}, e.g. {}: {}",
                what.0, r.position, r.reason, what.1, r.position, r.reason
            ),
        );
    }
    let page_summary = Summary {
        received,
        accepted: accepted as u64,
        quarantined: refused.len() as u64,
        ..Summary::default()
    };
    runtime.telemetry().emit(BatchCommitted {
        source: source_id,
        summary: &page_summary,
        rules: &[],
        elapsed,
    });
    page_summary
}
