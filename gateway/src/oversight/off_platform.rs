//! Cases left off the platform (不得线下运行), per department: deliveries neither delivered nor
//! superseded `delivery_overdue_hours` after they were queued, and quarantined records (no
//! unified code) open for `quarantine_overdue_hours`.
//!
//! A delivery's department is its case's handling agency. A quarantined record may not name a
//! valid agency: its department is its source's agency when the source is configured with exactly
//! one (`agencies = ["…"]`), else `source:<id>`.

use crate::runtime::Runtime;
use crate::store::oversight::{OverdueDelivery, OverdueQuarantine};
use crate::store::StoreResult;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// The most cases listed of each kind (counts are always complete).
pub const LIST_LIMIT: i64 = 500;

/// One department's cases off the platform.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Department {
    /// The agency's credit code, or `source:<id>`.
    pub department: String,
    /// Deliveries overdue.
    pub undelivered: i64,
    /// Quarantined records without a unified code, overdue.
    pub quarantined: i64,
    /// The oldest case's time.
    pub oldest: DateTime<Utc>,
    /// The overdue deliveries (of the first [`LIST_LIMIT`] overall).
    pub deliveries: Vec<OverdueDelivery>,
    /// The overdue quarantined records (of the first [`LIST_LIMIT`] overall).
    pub records: Vec<OverdueQuarantine>,
}

/// Every department's cases off the platform.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OffPlatform {
    /// The thresholds used.
    pub delivery_overdue_hours: f64,
    /// The thresholds used.
    pub quarantine_overdue_hours: f64,
    /// Deliveries overdue in all.
    pub undelivered: i64,
    /// Quarantined records overdue in all.
    pub quarantined: i64,
    /// Per department, most cases first.
    pub departments: Vec<Department>,
}

/// The department of a source's quarantined records.
pub fn source_department(runtime: &Runtime, source: &str) -> String {
    let config = &runtime.resolved.config;
    match config
        .sources
        .iter()
        .find(|s| s.id == source)
        .map(|s| s.agencies.as_slice())
    {
        Some([one]) => one.clone(),
        _ => format!("source:{source}"),
    }
}

fn hours(h: f64) -> ChronoDuration {
    ChronoDuration::milliseconds((h * 3_600_000.0) as i64)
}

/// The cases off the platform now, of one department or all; `sources` limits the quarantined
/// records to those sources (a department token's scope).
pub async fn report(
    runtime: &Runtime,
    department: Option<&str>,
    sources: Option<&[String]>,
) -> StoreResult<OffPlatform> {
    let r = &runtime.resolved.config.reconciliation;
    let now = Utc::now();
    let store = runtime.store.oversight();
    let agency = department.filter(|d| !d.starts_with("source:"));
    let (delivery_counts, deliveries) = if department.is_some() && agency.is_none() {
        (Vec::new(), Vec::new())
    } else {
        store
            .overdue_deliveries(now - hours(r.delivery_overdue_hours), agency, LIST_LIMIT)
            .await?
    };
    let (quarantine_counts, records) = store
        .overdue_quarantine(now - hours(r.quarantine_overdue_hours), sources, LIST_LIMIT)
        .await?;
    let mut by: BTreeMap<String, Department> = BTreeMap::new();
    fn entry(by: &mut BTreeMap<String, Department>, d: String, oldest: DateTime<Utc>) -> &mut Department {
        let e = by.entry(d.clone()).or_insert_with(|| Department {
            department: d,
            undelivered: 0,
            quarantined: 0,
            oldest,
            deliveries: Vec::new(),
            records: Vec::new(),
        });
        e.oldest = e.oldest.min(oldest);
        e
    }
    for c in delivery_counts {
        entry(&mut by, c.key, c.oldest).undelivered += c.count;
    }
    for c in quarantine_counts {
        let d = source_department(runtime, &c.key);
        if department.is_some_and(|want| want != d) {
            continue;
        }
        entry(&mut by, d, c.oldest).quarantined += c.count;
    }
    for d in deliveries {
        entry(&mut by, d.agency.clone(), d.since).deliveries.push(d);
    }
    for q in records {
        let d = source_department(runtime, &q.source_id);
        if department.is_some_and(|want| want != d) {
            continue;
        }
        entry(&mut by, d, q.since).records.push(q);
    }
    let mut departments: Vec<Department> = by.into_values().collect();
    departments.sort_by(|a, b| {
        (b.undelivered + b.quarantined)
            .cmp(&(a.undelivered + a.quarantined))
            .then_with(|| a.department.cmp(&b.department))
    });
    Ok(OffPlatform {
        delivery_overdue_hours: r.delivery_overdue_hours,
        quarantine_overdue_hours: r.quarantine_overdue_hours,
        undelivered: departments.iter().map(|d| d.undelivered).sum(),
        quarantined: departments.iter().map(|d| d.quarantined).sum(),
        departments,
    })
}
