//! The gateway's Prometheus metrics: what the pipeline committed per source, the rule
//! violations it found, how long batch commits took, the outbox depth per sink and status, and
//! the HTTP requests served. One registry per running gateway, held by the
//! [`Runtime`](crate::runtime::Runtime); the committer counts every batch into it through the
//! [`BatchCommitted`](super::events::BatchCommitted) event.
//!
//! Names (text format, as served on `GET /metrics`):
//! - `gateway_source_records_total{source, outcome}`: outcome `received`, `accepted`,
//!   `updated`, `unchanged`, `stale` (older than the case's head by source time) or
//!   `quarantined`;
//! - `gateway_rule_violations_total{source, rule, severity}`: every violation of a committed
//!   record (`error` ones quarantine it, `warning` ones are kept with the version);
//! - `gateway_batch_commit_seconds{source}`: histogram of batch commit latency;
//! - `gateway_outbox_deliveries{sink, status}`: deliveries per sink and status (pending,
//!   delivered, dead, superseded, withheld), read from the store at each scrape;
//! - `gateway_http_requests_total{method, route, status}`: requests served by the API;
//! - `gateway_source_errors_total{source}`: failed runs or connections of a source;
//! - `gateway_cases_awaiting_supplement{source}`: cases awaiting supplement (待补录), at each scrape;
//! - `gateway_source_stalled{source}`: 1 while a pull source cannot move its cursor;
//! - `gateway_source_health{source, state}`: 1 for the source's state (`healthy`, `degraded`,
//!   `failing`, `paused`, `stalled`), 0 for the others, from the source board at each scrape;
//! - `gateway_limit_refusals_total{limit}`: requests refused by a limit (`push_body_bytes`,
//!   `push_records`, `request_body_bytes`, `auth_failures`); records over a record limit are
//!   counted by their rule (`input.too_large`, `violations.truncated`) in
//!   `gateway_rule_violations_total`;
//! - `gateway_joint_candidate_groups`: joint-inspection groups waiting for an operator
//!   (status `candidate`), read from the store at each scrape;
//! - `gateway_bookkeeping_failures_total{kind}`: bookkeeping written after a batch that could not
//!   be written after its retries (`reconciliation_counts`, `publicity_marks`);
//! - `gateway_archive_witness_failures_total{witness}`: failed attempts to send signed archive
//!   checkpoints to a witness (each retried at the next round);
//! - `gateway_archive_checkpoints_total`: archive checkpoints signed by this instance;
//! - `gateway_joint_index_backlog`: index facts queued for the background joint-inspection
//!   indexer (`[joint] index = "background"`), read from the store at each scrape;
//! - `gateway_penalties_publicity_overdue`: penalties not made public within 7 working days of
//!   their decision (双公示; not withheld by the publicity rules), read from the store at each
//!   scrape;
//! - `gateway_attachments{status}`: evidence attachments per state (`pending`, `stored`,
//!   `failed`, `refused`), read from the store at each scrape (see [`AttachmentMetrics`]);
//! - `gateway_attachments_pending`: attachments waiting to be fetched (or retried);
//! - `gateway_attachment_fetch_failures_total{source}`: fetches that failed (each is retried
//!   until `fetch_max_attempts`);
//! - `gateway_attachment_stored_bytes_total`: bytes streamed into the object store;
//! - reconciliation, cases off the platform and alerts: see [`super::oversight_metrics`].

use super::summary::Summary;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RecordLabels {
    source: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    source: String,
    rule: String,
    severity: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabel {
    job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    instance: String,
    host: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceStateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    sink: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HealthLabels {
    source: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabel {
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BookkeepingLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WitnessLabel {
    witness: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

type HistogramFamily = Family<SourceLabel, Histogram, fn() -> Histogram>;

fn commit_histogram() -> Histogram {
    // 1 ms .. ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The metrics registry of a running gateway.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    records: Family<RecordLabels, Counter>,
    violations: Family<RuleLabels, Counter>,
    commit_seconds: HistogramFamily,
    deliveries: Family<DeliveryLabels, Gauge>,
    http_requests: Family<HttpLabels, Counter>,
    source_errors: Family<SourceLabel, Counter>,
    source_stalled: Family<SourceLabel, Gauge>,
    limit_refusals: Family<LimitLabel, Counter>,
    bookkeeping_failures: Family<BookkeepingLabel, Counter>,
    witness_failures: Family<WitnessLabel, Counter>,
    checkpoints: Counter,
    source_health: Family<HealthLabels, Gauge>,
    lease_held: Family<JobLabel, Gauge>,
    instance_info: Family<InstanceLabels, Gauge>,
    instances: Family<InstanceStateLabel, Gauge>,
    awaiting_supplement: Family<SourceLabel, Gauge>,
    joint_candidates: Gauge,
    publicity_overdue: Gauge,
    joint_backlog: Gauge,
    attachments: AttachmentMetrics,
    /// Reconciliation, cases off the platform and alerts (see [`super::oversight_metrics`]).
    pub oversight: super::oversight_metrics::OversightMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// One outbox depth figure: how many deliveries of a sink are in a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryDepth {
    /// The sink id.
    pub sink: String,
    /// `pending`, `delivered` or `dead`.
    pub status: &'static str,
    /// How many.
    pub count: i64,
}

impl Metrics {
    /// An empty registry with every metric registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let records = Family::<RecordLabels, Counter>::default();
        registry.register(
            "gateway_source_records",
            "Records per source and outcome: received, accepted, updated, unchanged, stale, quarantined",
            records.clone(),
        );
        let violations = Family::<RuleLabels, Counter>::default();
        registry.register(
            "gateway_rule_violations",
            "Rule violations of committed records per source, rule id and severity",
            violations.clone(),
        );
        let commit_seconds: HistogramFamily = Family::new_with_constructor(commit_histogram);
        registry.register(
            "gateway_batch_commit_seconds",
            "Latency of batch commits (one transaction each), per source",
            commit_seconds.clone(),
        );
        let deliveries = Family::<DeliveryLabels, Gauge>::default();
        registry.register(
            "gateway_outbox_deliveries",
            "Outbox deliveries per sink and status (pending, delivered, dead)",
            deliveries.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "gateway_http_requests",
            "HTTP requests served by the operator API, per method, route and status",
            http_requests.clone(),
        );
        let source_errors = Family::<SourceLabel, Counter>::default();
        registry.register(
            "gateway_source_errors",
            "Failed runs or connections per source (pulls, consumers, drop-folder files)",
            source_errors.clone(),
        );
        let awaiting_supplement = Family::<SourceLabel, Gauge>::default();
        registry.register(
            "gateway_cases_awaiting_supplement",
            "Cases whose current version lacks fields their source cannot supply (待补录), per source, at each scrape",
            awaiting_supplement.clone(),
        );
        let source_stalled = Family::<SourceLabel, Gauge>::default();
        registry.register(
            "gateway_source_stalled",
            "1 while a pull source is stalled: its last run reached max_pages with more records and could not move its cursor",
            source_stalled.clone(),
        );
        let bookkeeping_failures = Family::<BookkeepingLabel, Counter>::default();
        registry.register(
            "gateway_bookkeeping_failures",
            "Records committed or delivered whose bookkeeping could not be written after retries: reconciliation_counts (the day's counts are short), publicity_marks (a publication or withholding not noted)",
            bookkeeping_failures.clone(),
        );
        for kind in ["reconciliation_counts", "publicity_marks"] {
            drop(bookkeeping_failures.get_or_create(&BookkeepingLabel { kind }));
        }
        let witness_failures = Family::<WitnessLabel, Counter>::default();
        registry.register(
            "gateway_archive_witness_failures",
            "Failed attempts to send signed archive checkpoints to a witness (retried at the next round)",
            witness_failures.clone(),
        );
        let checkpoints = Counter::default();
        registry.register(
            "gateway_archive_checkpoints",
            "Archive checkpoints (signed statements of the chain heads) signed by this instance",
            checkpoints.clone(),
        );
        let limit_refusals = Family::<LimitLabel, Counter>::default();
        registry.register(
            "gateway_limit_refusals",
            "Requests refused by a limit: push_body_bytes, push_records, request_body_bytes, auth_failures, connections",
            limit_refusals.clone(),
        );
        let source_health = Family::<HealthLabels, Gauge>::default();
        registry.register(
            "gateway_source_health",
            "1 for each source's current health state (healthy, degraded, failing, paused, stalled), 0 for the others",
            source_health.clone(),
        );
        let lease_held = Family::<JobLabel, Gauge>::default();
        registry.register(
            "gateway_job_lease_held",
            "1 while this instance holds the job's lease and runs it (a REST/SOAP source, a catalogue, a drop folder), 0 while another instance does",
            lease_held.clone(),
        );
        let instance_info = Family::<InstanceLabels, Gauge>::default();
        registry.register(
            "gateway_instance",
            "1, labelled with this instance's id, host and version",
            instance_info.clone(),
        );
        let instances = Family::<InstanceStateLabel, Gauge>::default();
        registry.register(
            "gateway_cluster_instances",
            "Instances on this store by state: alive (heartbeating), gone (silent for three heartbeats without a clean stop), stopped",
            instances.clone(),
        );
        let joint_candidates = Gauge::default();
        registry.register(
            "gateway_joint_candidate_groups",
            "Joint-inspection groups (same target, several agencies) waiting for an operator's merge or dismissal",
            joint_candidates.clone(),
        );
        let publicity_overdue = Gauge::default();
        registry.register(
            "gateway_penalties_publicity_overdue",
            "Penalties not made public within 7 working days of their decision (双公示), not withheld by the publicity rules",
            publicity_overdue.clone(),
        );
        let joint_backlog = Gauge::default();
        registry.register(
            "gateway_joint_index_backlog",
            "Inspections' index facts queued for the background joint-inspection indexer and not yet applied",
            joint_backlog.clone(),
        );
        let attachments = AttachmentMetrics::register(&mut registry);
        let oversight = super::oversight_metrics::OversightMetrics::register(&mut registry);
        Metrics {
            oversight,
            registry,
            attachments,
            joint_candidates,
            publicity_overdue,
            joint_backlog,
            lease_held,
            instance_info,
            instances,
            limit_refusals,
            bookkeeping_failures,
            witness_failures,
            checkpoints,
            source_health,
            source_errors,
            source_stalled,
            awaiting_supplement,
            records,
            violations,
            commit_seconds,
            deliveries,
            http_requests,
        }
    }

    /// Set the number of index facts waiting for the background joint-inspection indexer.
    pub fn set_joint_backlog(&self, queued: i64) {
        self.joint_backlog.set(queued);
    }

    /// Set the number of penalties past their publicity deadline and not public.
    pub fn set_publicity_overdue(&self, overdue: i64) {
        self.publicity_overdue.set(overdue);
    }

    /// The evidence-attachment metrics.
    pub fn attachments(&self) -> &AttachmentMetrics {
        &self.attachments
    }

    /// Set the number of open joint-inspection candidate groups.
    pub fn set_joint_candidates(&self, open: i64) {
        self.joint_candidates.set(open);
    }

    /// Set every source's health gauges from the source board: 1 for its state, 0 for the others.
    pub fn set_source_health(&self, sources: &[crate::telemetry::SourceStatus]) {
        for s in sources {
            for state in crate::telemetry::HealthState::ALL {
                self.source_health
                    .get_or_create(&HealthLabels {
                        source: s.id.clone(),
                        state: state.as_str(),
                    })
                    .set(i64::from(s.state == state));
            }
        }
    }

    /// Count a request refused by the limit named `limit` (see the metric's help text).
    pub fn limit_refused(&self, limit: &'static str) {
        self.limit_refusals.get_or_create(&LimitLabel { limit }).inc();
    }

    /// Count a failed attempt to send checkpoints to witness `witness`.
    pub fn witness_failed(&self, witness: &str) {
        self.witness_failures
            .get_or_create(&WitnessLabel {
                witness: witness.to_string(),
            })
            .inc();
    }

    /// Count a checkpoint signed by this instance.
    pub fn checkpoint_signed(&self) {
        self.checkpoints.inc();
    }

    /// Count bookkeeping of `kind` (`reconciliation_counts`, `publicity_marks`) that could not be
    /// written after its retries.
    pub fn bookkeeping_failed(&self, kind: &'static str) {
        self.bookkeeping_failures
            .get_or_create(&BookkeepingLabel { kind })
            .inc();
    }

    /// Count a committed batch of `source`: its outcomes, the rules its records violated (rule id
    /// and severity, one entry per violation) and the commit's latency.
    pub fn batch_committed(
        &self,
        source: &str,
        summary: &Summary,
        rules: &[(String, &'static str)],
        elapsed: Duration,
    ) {
        let count = |outcome: &'static str, n: u64| {
            if n > 0 {
                self.records
                    .get_or_create(&RecordLabels {
                        source: source.to_string(),
                        outcome,
                    })
                    .inc_by(n);
            }
        };
        count("received", summary.received);
        count("accepted", summary.accepted);
        count("updated", summary.updated);
        count("unchanged", summary.unchanged);
        count("stale", summary.stale);
        count("quarantined", summary.quarantined);
        for (rule, severity) in rules {
            self.violations
                .get_or_create(&RuleLabels {
                    source: source.to_string(),
                    rule: rule.clone(),
                    severity,
                })
                .inc();
        }
        self.commit_seconds
            .get_or_create(&SourceLabel {
                source: source.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Count a failed run or connection of `source` (a pull, a consumer, a drop-folder file).
    pub fn source_failed(&self, source: &str) {
        self.source_errors
            .get_or_create(&SourceLabel {
                source: source.to_string(),
            })
            .inc();
    }

    /// Whether this instance holds `job`'s lease (and runs it) now.
    pub fn lease_held(&self, job: &str, held: bool) {
        self.lease_held
            .get_or_create(&JobLabel { job: job.to_string() })
            .set(i64::from(held));
    }

    /// Label this instance.
    pub fn set_instance(&self, id: &str, host: &str, version: &str) {
        self.instance_info
            .get_or_create(&InstanceLabels {
                instance: id.to_string(),
                host: host.to_string(),
                version: version.to_string(),
            })
            .set(1);
    }

    /// How many instances on the store are alive, gone and stopped.
    pub fn set_instance_counts(&self, alive: i64, gone: i64, stopped: i64) {
        for (state, n) in [("alive", alive), ("gone", gone), ("stopped", stopped)] {
            self.instances.get_or_create(&InstanceStateLabel { state }).set(n);
        }
    }

    /// How many cases of each source await supplement (sources not listed: 0).
    pub fn set_awaiting_supplement(&self, sources: &[String], counts: &[(String, i64)]) {
        self.awaiting_supplement.clear();
        for source in sources {
            self.awaiting_supplement
                .get_or_create(&SourceLabel { source: source.clone() })
                .set(0);
        }
        for (source, n) in counts {
            let gauge = self
                .awaiting_supplement
                .get_or_create(&SourceLabel { source: source.clone() });
            gauge.set(gauge.get() + n);
        }
    }

    /// Whether a pull source is stalled now (see [`crate::telemetry::SourceStatus::stalled`]).
    pub fn source_stalled(&self, source: &str, stalled: bool) {
        self.source_stalled
            .get_or_create(&SourceLabel {
                source: source.to_string(),
            })
            .set(i64::from(stalled));
    }

    /// Count one HTTP request.
    pub fn http_request(&self, method: &str, route: &str, status: u16) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_string(),
                route: route.to_string(),
                status,
            })
            .inc();
    }

    /// The text exposition, with the outbox depth set from `deliveries` (every configured sink
    /// gets its three statuses, zero when absent).
    pub fn render(&self, sinks: &[String], deliveries: &[DeliveryDepth]) -> String {
        self.deliveries.clear();
        for sink in sinks {
            for status in ["pending", "delivered", "dead", "superseded", "withheld"] {
                self.deliveries
                    .get_or_create(&DeliveryLabels {
                        sink: sink.clone(),
                        status,
                    })
                    .set(0);
            }
        }
        for d in deliveries {
            self.deliveries
                .get_or_create(&DeliveryLabels {
                    sink: d.sink.clone(),
                    status: d.status,
                })
                .set(d.count);
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_text_names_sources_rules_latency_and_outbox_depth() {
        let m = Metrics::new();
        let summary = Summary {
            received: 3,
            accepted: 2,
            quarantined: 1,
            ..Summary::default()
        };
        m.batch_committed(
            "s1",
            &summary,
            &[("uscc.check_char".into(), "error")],
            Duration::from_millis(5),
        );
        m.source_failed("s1");
        m.source_stalled("s1", true);
        let text = m.render(
            &["platform".to_string()],
            &[DeliveryDepth {
                sink: "platform".into(),
                status: "dead",
                count: 4,
            }],
        );
        assert!(
            text.contains(r#"gateway_source_records_total{source="s1",outcome="received"} 3"#),
            "{text}"
        );
        assert!(text.contains(r#"gateway_source_records_total{source="s1",outcome="accepted"} 2"#));
        assert!(
            text.contains(r#"gateway_rule_violations_total{source="s1",rule="uscc.check_char",severity="error"} 1"#)
        );
        assert!(text.contains(r#"gateway_batch_commit_seconds_count{source="s1"} 1"#));
        assert!(text.contains(r#"gateway_source_errors_total{source="s1"} 1"#));
        assert!(text.contains(r#"gateway_source_stalled{source="s1"} 1"#));
        assert!(text.contains(r#"gateway_outbox_deliveries{sink="platform",status="dead"} 4"#));
        assert!(text.contains(r#"gateway_outbox_deliveries{sink="platform",status="pending"} 0"#));
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttachmentStatusLabel {
    status: &'static str,
}

/// The evidence-attachment metrics (证据附件).
#[derive(Debug, Clone, Default)]
pub struct AttachmentMetrics {
    by_status: Family<AttachmentStatusLabel, Gauge>,
    pending: Gauge,
    fetch_failures: Family<SourceLabel, Counter>,
    stored_bytes: Counter,
}

impl AttachmentMetrics {
    fn register(registry: &mut Registry) -> AttachmentMetrics {
        let m = AttachmentMetrics::default();
        registry.register(
            "gateway_attachments",
            "Evidence attachments per state: pending, stored, failed (out of attempts), refused (over a limit or of a media type not allowed)",
            m.by_status.clone(),
        );
        registry.register(
            "gateway_attachments_pending",
            "Evidence attachments waiting to be fetched or retried",
            m.pending.clone(),
        );
        registry.register(
            "gateway_attachment_fetch_failures",
            "Failed attachment fetches per source (each retried with backoff until fetch_max_attempts)",
            m.fetch_failures.clone(),
        );
        registry.register(
            "gateway_attachment_stored_bytes",
            "Bytes of attachments streamed into the object store (duplicates included)",
            m.stored_bytes.clone(),
        );
        m
    }

    /// Set the gauges from the store's counts.
    pub fn set_counts(&self, pending: i64, stored: i64, failed: i64, refused: i64) {
        self.pending.set(pending);
        for (status, n) in [
            ("pending", pending),
            ("stored", stored),
            ("failed", failed),
            ("refused", refused),
        ] {
            self.by_status.get_or_create(&AttachmentStatusLabel { status }).set(n);
        }
    }

    /// Count a failed fetch of an attachment of `source`.
    pub fn fetch_failed(&self, source: &str) {
        self.fetch_failures
            .get_or_create(&SourceLabel {
                source: source.to_string(),
            })
            .inc();
    }

    /// Count bytes streamed into the store.
    pub fn stored(&self, bytes: u64) {
        self.stored_bytes.inc_by(bytes);
    }
}
