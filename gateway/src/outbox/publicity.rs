//! A publicity sink's side of the dispatcher (`content = "publicity"`): each claimed case
//! version becomes its public record (双公示 penalty record, 双随机 inspection result) under the
//! `[publicity]` rules before the sink sees it; what the rules do not publish is withheld (settled
//! without sending, with the reason logged and kept), and a penalty whose required public fields
//! are missing is refused with the fields named.

use crate::store::publicity::PublicityMark;
use crate::store::Store;
use crate::telemetry::Metrics;
use adapters::sinks::Delivery;
use normalizer::publicity::{publish, FieldNames, Publication, PublicityPolicy};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What becomes of one claimed delivery on a publicity sink.
#[derive(Debug)]
pub enum Prepared {
    /// Send this (the public record in place of the canonical one).
    Send(Delivery),
    /// Do not send: the rules withhold it (the reason, Chinese / English).
    Withhold(String),
    /// Do not send: required public fields are missing (dead, with this reason).
    Refuse(String),
}

/// What publicity sinks share: the `[publicity]` rules, the store their publications are noted
/// in, and the metrics a failed note is counted in.
#[derive(Clone)]
pub struct PublicityContext<'a> {
    /// The `[publicity]` rules.
    pub policy: &'a PublicityPolicy,
    /// Where publications and withholdings are noted (`penalty_publicity`).
    pub store: Arc<dyn Store>,
    /// Where a note that could not be written is counted.
    pub metrics: Option<Arc<Metrics>>,
}

/// The publicity rules of one sink, and where to note what it publishes.
pub struct PublicityOutput {
    sink_id: String,
    policy: PublicityPolicy,
    store: Arc<dyn Store>,
    metrics: Option<Arc<Metrics>>,
}

impl PublicityOutput {
    /// The rules for sink `sink_id` of kind `kind`: a PostgreSQL sink writes the field codes as
    /// its columns, so it always gets codes (no renaming, nothing left out).
    pub fn new(sink_id: &str, kind: &str, context: &PublicityContext<'_>) -> PublicityOutput {
        let mut policy = context.policy.clone();
        if kind == "postgres" {
            policy.field_names = FieldNames::Codes;
            policy.rename = BTreeMap::new();
            policy.omit = Vec::new();
        }
        PublicityOutput {
            sink_id: sink_id.to_string(),
            policy,
            store: Arc::clone(&context.store),
            metrics: context.metrics.clone(),
        }
    }

    /// The public form of `d`. A withdrawal is always sent (with its public record when one can
    /// be made, else an empty one), so that a receiver takes down what it published before.
    pub fn prepare(&self, d: &Delivery) -> Prepared {
        let publication = publish(&d.record, &self.policy);
        let with_record = |record: Map<String, Value>| {
            Prepared::Send(Delivery {
                record: Value::Object(record),
                ..d.clone()
            })
        };
        match publication {
            Publication::Publish { fields, .. } => with_record(fields),
            _ if d.withdrawn => with_record(Map::new()),
            Publication::Withhold(w) => Prepared::Withhold(w.to_string()),
            Publication::NotApplicable => Prepared::Withhold(
                "不属于公示范围（仅公示行政处罚和双随机抽查结果）/ not a public record (only penalties and random-inspection results are published)"
                    .to_string(),
            ),
            Publication::Incomplete(missing) => Prepared::Refuse(
                missing
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        }
    }

    /// Note what became of penalties: published (delivered) or withheld, retried briefly. A
    /// failure is logged and counted (`gateway_bookkeeping_failures_total{kind="publicity_marks"}`);
    /// the delivery itself stands.
    pub async fn note(&self, marks: Vec<PublicityMark>) {
        if marks.is_empty() {
            return;
        }
        let noted = crate::store::retried(3, || self.store.publicity().mark_publicity(&marks)).await;
        if let Err(e) = noted {
            tracing::error!(sink = %self.sink_id, penalties = marks.len(), error = %e,
                "cannot note the penalties' publicity: they show as not public until delivered again");
            if let Some(m) = &self.metrics {
                m.bookkeeping_failed("publicity_marks");
            }
        }
    }

    /// The sink's id.
    pub fn sink_id(&self) -> &str {
        &self.sink_id
    }
}
