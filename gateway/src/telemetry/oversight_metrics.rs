//! The metrics of reconciliation, cases off the platform and alerts (对账与告警), refreshed from
//! the store (at most every 30 s, when `/metrics` is scraped):
//!
//! - `gateway_reconciliation_gap{source}`: records of the days reconciled (today and
//!   `[reconciliation] days_back` days before) the source holds and the gateway never received,
//!   plus deliveries of them overdue or dead;
//! - `gateway_reconciliation_claimed{source}` / `gateway_reconciliation_received{source}`: today's
//!   count at the source (its count query) and at the gateway;
//! - `gateway_off_platform_cases{department, kind}`: cases not on the platform after the
//!   thresholds, `kind` `undelivered` (a delivery neither delivered nor superseded) or
//!   `quarantined` (no unified code); `department` is the agency's credit code (quarantined
//!   records: the source's agency when it has one, else `source:<id>`); at most 100 departments,
//!   the rest summed as `other`;
//! - `gateway_alerts_firing{rule}`: firing alerts per rule;
//! - `gateway_alert_notifications_total{webhook, outcome}`: webhook messages `sent`, `failed`
//!   (to be tried again) and `dead` (given up).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The most departments named in `gateway_off_platform_cases` (the rest are `other`).
pub const MAX_DEPARTMENTS: usize = 100;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OffPlatformLabels {
    department: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabel {
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    webhook: String,
    outcome: &'static str,
}

/// One source's reconciliation figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceGap {
    /// The source.
    pub source: String,
    /// Records missing or not delivered over the reconciled days.
    pub gap: i64,
    /// Today's count at the source, when asked.
    pub claimed: Option<i64>,
    /// Today's count at the gateway.
    pub received: i64,
}

/// The oversight metrics (registered in the gateway's registry).
#[derive(Debug, Clone, Default)]
pub struct OversightMetrics {
    gap: Family<SourceLabel, Gauge>,
    claimed: Family<SourceLabel, Gauge>,
    received: Family<SourceLabel, Gauge>,
    off_platform: Family<OffPlatformLabels, Gauge>,
    alerts_firing: Family<RuleLabel, Gauge>,
    notifications: Family<NotificationLabels, Counter>,
    refreshed: std::sync::Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

impl OversightMetrics {
    /// Register every oversight metric in `registry`.
    pub fn register(registry: &mut Registry) -> OversightMetrics {
        let m = OversightMetrics::default();
        registry.register(
            "gateway_reconciliation_gap",
            "Records the source holds that the gateway never received, plus their deliveries overdue or dead, over the reconciled days (对账差异)",
            m.gap.clone(),
        );
        registry.register(
            "gateway_reconciliation_claimed",
            "Today's record count at the source, from its count query",
            m.claimed.clone(),
        );
        registry.register(
            "gateway_reconciliation_received",
            "Today's records received from the source by the gateway",
            m.received.clone(),
        );
        registry.register(
            "gateway_off_platform_cases",
            "Cases off the platform per department: undelivered after delivery_overdue_hours, or quarantined without a unified code after quarantine_overdue_hours",
            m.off_platform.clone(),
        );
        registry.register(
            "gateway_alerts_firing",
            "Firing alerts per rule",
            m.alerts_firing.clone(),
        );
        registry.register(
            "gateway_alert_notifications",
            "Alert webhook messages per webhook and outcome: sent, failed (tried again), dead (given up)",
            m.notifications.clone(),
        );
        m
    }

    /// Set the reconciliation figures of every source (`sources`: every configured source).
    pub fn set_reconciliation(&self, sources: &[String], gaps: &[SourceGap]) {
        self.gap.clear();
        self.claimed.clear();
        self.received.clear();
        for s in sources {
            let label = SourceLabel { source: s.clone() };
            let g = gaps.iter().find(|g| &g.source == s);
            self.gap.get_or_create(&label).set(g.map_or(0, |g| g.gap));
            self.received.get_or_create(&label).set(g.map_or(0, |g| g.received));
            if let Some(c) = g.and_then(|g| g.claimed) {
                self.claimed.get_or_create(&label).set(c);
            }
        }
    }

    /// Set the cases off the platform: (department, kind, count); departments beyond
    /// [`MAX_DEPARTMENTS`] (by count) are summed as `other`.
    pub fn set_off_platform(&self, mut counts: Vec<(String, &'static str, i64)>) {
        self.off_platform.clear();
        for kind in ["undelivered", "quarantined"] {
            self.off_platform
                .get_or_create(&OffPlatformLabels {
                    department: "other".into(),
                    kind,
                })
                .set(0);
        }
        counts.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        let mut named = std::collections::BTreeSet::new();
        for (department, kind, count) in counts {
            let department = if named.contains(&department) || named.len() < MAX_DEPARTMENTS {
                named.insert(department.clone());
                department
            } else {
                "other".to_string()
            };
            self.off_platform
                .get_or_create(&OffPlatformLabels { department, kind })
                .inc_by(count);
        }
    }

    /// Set the firing alerts per rule (`rules`: every rule, zero when none fires).
    pub fn set_alerts_firing(&self, rules: &[&str], firing: &[String]) {
        for r in rules {
            let n = firing.iter().filter(|f| f == r).count();
            self.alerts_firing
                .get_or_create(&RuleLabel { rule: (*r).to_string() })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Whether the store-read figures are older than `every` (then they count as refreshed now).
    pub fn refresh_due(&self, every: std::time::Duration) -> bool {
        let mut last = self.refreshed.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < every) {
            return false;
        }
        *last = Some(std::time::Instant::now());
        true
    }

    /// Count a webhook message's outcome (`sent`, `failed`, `dead`).
    pub fn notification(&self, webhook: &str, outcome: &'static str) {
        self.notifications
            .get_or_create(&NotificationLabels {
                webhook: webhook.to_string(),
                outcome,
            })
            .inc();
    }

    /// Make every webhook's counters appear (at zero) before its first message.
    pub fn register_webhook(&self, webhook: &str) {
        for outcome in ["sent", "failed", "dead"] {
            self.notifications
                .get_or_create(&NotificationLabels {
                    webhook: webhook.to_string(),
                    outcome,
                })
                .inc_by(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn departments_beyond_the_cap_are_summed_as_other() {
        let mut registry = Registry::default();
        let m = OversightMetrics::register(&mut registry);
        let counts: Vec<_> = (0..MAX_DEPARTMENTS + 5)
            .map(|i| (format!("d{i:03}"), "undelivered", 1))
            .collect();
        m.set_off_platform(counts);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"gateway_off_platform_cases{department="other",kind="undelivered"} 5"#),
            "{text}"
        );
        assert_eq!(text.matches("kind=\"undelivered\"").count(), MAX_DEPARTMENTS + 1);
    }
}
