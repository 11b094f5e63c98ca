//! The gateway's Prometheus metrics: what the pipeline committed per source, the rule
//! violations it found, how long batch commits took, the outbox depth per sink and status, and
//! the HTTP requests served. One registry per running gateway, held by the
//! [`Runtime`](crate::runtime::Runtime); the pipeline reaches it through each source's
//! [`Preparer`](crate::pipeline::prepare::Preparer).
//!
//! Names (text format, as served on `GET /metrics`):
//! - `gateway_source_records_total{source, outcome}`: outcome `received`, `accepted`,
//!   `updated`, `unchanged` or `quarantined`;
//! - `gateway_rule_violations_total{source, rule, severity}`: every violation of a committed
//!   record (`error` ones quarantine it, `warning` ones are kept with the version);
//! - `gateway_batch_commit_seconds{source}`: histogram of batch commit latency;
//! - `gateway_outbox_deliveries{sink, status}`: deliveries per sink and status (pending,
//!   delivered, dead), read from the store at each scrape;
//! - `gateway_http_requests_total{method, route, status}`: requests served by the API.

use crate::outbox::DeliveryCount;
use crate::store::{IncomingRecord, RecordResult, Verdict};
use normalizer::violation::Severity;
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
struct DeliveryLabels {
    sink: String,
    status: &'static str,
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
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// What one committed batch counts, gathered before the batch is handed to the store.
#[derive(Debug, Clone, Default)]
pub struct BatchTally {
    source: String,
    received: u64,
    rules: Vec<(String, &'static str)>,
}

impl BatchTally {
    /// Tally the records of a batch about to be committed.
    pub fn of(records: &[IncomingRecord]) -> BatchTally {
        let mut tally = BatchTally {
            source: records.first().map(|r| r.source_id.clone()).unwrap_or_default(),
            received: records.len() as u64,
            rules: Vec::new(),
        };
        for r in records {
            let violations = match &r.verdict {
                Verdict::Accept(a) => &a.warnings,
                Verdict::Quarantine(v) => v,
            };
            for v in violations {
                let severity = match v.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                };
                tally.rules.push((v.rule.clone(), severity));
            }
        }
        tally
    }
}

impl Metrics {
    /// An empty registry with every metric registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let records = Family::<RecordLabels, Counter>::default();
        registry.register(
            "gateway_source_records",
            "Records per source and outcome: received, accepted, updated, unchanged, quarantined",
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
        Metrics {
            registry,
            records,
            violations,
            commit_seconds,
            deliveries,
            http_requests,
        }
    }

    /// Count a committed batch: its tally (taken before the commit), the results, the latency.
    pub fn batch_committed(&self, tally: &BatchTally, results: &[RecordResult], elapsed: Duration) {
        let source = &tally.source;
        let count = |outcome: &'static str, n: u64| {
            if n > 0 {
                self.records
                    .get_or_create(&RecordLabels {
                        source: source.clone(),
                        outcome,
                    })
                    .inc_by(n);
            }
        };
        let mut summary = crate::pipeline::Summary::default();
        for r in results {
            summary.add(r);
        }
        count("received", tally.received);
        count("accepted", summary.accepted);
        count("updated", summary.updated);
        count("unchanged", summary.unchanged);
        count("quarantined", summary.quarantined);
        for (rule, severity) in &tally.rules {
            self.violations
                .get_or_create(&RuleLabels {
                    source: source.clone(),
                    rule: rule.clone(),
                    severity,
                })
                .inc();
        }
        self.commit_seconds
            .get_or_create(&SourceLabel { source: source.clone() })
            .observe(elapsed.as_secs_f64());
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
    pub fn render(&self, sinks: &[String], deliveries: &[DeliveryCount]) -> String {
        self.deliveries.clear();
        for sink in sinks {
            for status in ["pending", "delivered", "dead"] {
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
                    sink: d.sink_id.clone(),
                    status: d.status.as_str(),
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
    use crate::outbox::DeliveryStatus;

    #[test]
    fn rendered_text_names_sources_rules_latency_and_outbox_depth() {
        let m = Metrics::new();
        let tally = BatchTally {
            source: "s1".into(),
            received: 3,
            rules: vec![("uscc.check_char".into(), "error")],
        };
        let results = vec![
            RecordResult::Accepted { code: "X".into() },
            RecordResult::Accepted { code: "Y".into() },
            RecordResult::Quarantined { quarantine_id: 1 },
        ];
        m.batch_committed(&tally, &results, Duration::from_millis(5));
        let text = m.render(
            &["platform".to_string()],
            &[DeliveryCount {
                sink_id: "platform".into(),
                status: DeliveryStatus::Dead,
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
        assert!(text.contains(r#"gateway_outbox_deliveries{sink="platform",status="dead"} 4"#));
        assert!(text.contains(r#"gateway_outbox_deliveries{sink="platform",status="pending"} 0"#));
    }
}
