//! Reconciliation (对账): per source and calendar day (China time), what the source says it
//! holds (its count query, `[sources.reconcile]`) against what the gateway received, accepted,
//! quarantined and delivered (the store's daily counts and its outbox).
//!
//! A day shows a gap when
//! - `missing`: the source listed keys the gateway never received (with `keys_path`), or, without
//!   a key list, it counted more records than the gateway received that day;
//! - `undelivered`: deliveries of the day's accepted versions are still pending
//!   `delivery_overdue_hours` after the day ended;
//! - `dead`: deliveries of the day's versions are dead (an operator must re-drive them).

use super::context::Oversight;
use super::queries::ReconcileJob;
use crate::config::oversight::ReconcileSettings;
use crate::runtime::Runtime;
use crate::store::oversight::{china, day_of, Claim, DayTally, Undelivered};
use crate::store::Store;
use crate::store::StoreResult;
use adapters::common::json_path::json_at;
use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, TimeZone as _, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The days reconciled in a round, newest first: today and `days_back` before (China time).
pub fn recent_days(now: DateTime<Utc>, days_back: u32) -> Vec<String> {
    (0..=i64::from(days_back))
        .map(|d| day_of(now - ChronoDuration::days(d)))
        .collect()
}

/// Ask every source with a count query about every recent day and keep what they say.
pub async fn round(o: &Oversight) {
    let days = recent_days(Utc::now(), o.runtime.resolved.config.reconciliation.days_back);
    for job in &o.jobs {
        for day in &days {
            check_and_keep(o.runtime.store.as_ref(), job, day).await;
        }
    }
}

/// Ask `job`'s source about `day` and keep the answer (or the failure) in the store.
pub async fn check_and_keep(store: &dyn Store, job: &ReconcileJob, day: &str) -> Claim {
    let claim = check(store, job, day).await;
    if let Some(e) = &claim.error {
        tracing::warn!(source = %job.source_id, day = %day, error = %e, "reconciliation count query failed");
    } else {
        tracing::info!(source = %job.source_id, day = %day, claimed = ?claim.claimed,
            missing = claim.missing_count, "reconciliation count query answered");
    }
    if let Err(e) = store.oversight().put_claim(&claim).await {
        tracing::warn!(source = %job.source_id, day = %day, error = %e, "cannot keep the reconciliation claim");
    }
    claim
}

/// Ask `job`'s source about `day`: its count and, with `keys_path`, the keys the gateway never
/// received. A failure is kept in the claim's `error`.
pub async fn check(store: &dyn Store, job: &ReconcileJob, day: &str) -> Claim {
    let mut claim = Claim {
        source_id: job.source_id.clone(),
        day: day.to_string(),
        checked_at: Utc::now(),
        ..Claim::default()
    };
    match ask(job, day).await {
        Ok((count, keys)) => {
            claim.claimed = Some(count);
            if let Some(keys) = keys {
                claim.keys_listed = true;
                match store.oversight().keys_never_received(&job.source_id, &keys).await {
                    Ok(missing) => {
                        claim.missing_count = i64::try_from(missing.len()).unwrap_or(i64::MAX);
                        claim.missing_keys = missing;
                    }
                    Err(e) => claim.error = Some(format!("store: {e}")),
                }
            }
        }
        Err(e) => claim.error = Some(e),
    }
    claim
}

/// The count (and the key list) the source answers for `day`.
async fn ask(job: &ReconcileJob, day: &str) -> Result<(i64, Option<Vec<String>>), String> {
    let s = &job.settings;
    let url = ReconcileSettings::fill(&s.url, day);
    let body = s.body.as_deref().map(|b| ReconcileSettings::fill(b, day));
    let post = s.method == "POST";
    let answer = job
        .client
        .send(
            |c| {
                if post {
                    c.post(&url)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone().unwrap_or_else(|| "{}".into()))
                } else {
                    c.get(&url)
                }
            },
            |_, _| false,
        )
        .await
        .map_err(|e| e.to_string())?;
    let value: Value =
        serde_json::from_slice(&answer.body).map_err(|e| format!("应答不是 JSON / the answer is not JSON: {e}"))?;
    let count = json_at(&value, &s.count_path)
        .and_then(|v| match v {
            Value::Number(n) => n.as_i64(),
            Value::String(t) => t.trim().parse().ok(),
            _ => None,
        })
        .ok_or_else(|| {
            format!(
                "应答中 {} 处没有数量 / no count at {} in the answer",
                s.count_path, s.count_path
            )
        })?;
    let keys = match &s.keys_path {
        None => None,
        Some(path) => {
            let list = json_at(&value, path)
                .and_then(Value::as_array)
                .ok_or_else(|| format!("应答中 {path} 处没有列表 / no list at {path} in the answer"))?;
            let key_of = |v: &Value| -> Option<String> {
                let v = match &s.key_field {
                    Some(f) => json_at(v, f)?,
                    None => v,
                };
                match v {
                    Value::String(t) => Some(t.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                }
            };
            Some(list.iter().filter_map(key_of).collect())
        }
    };
    Ok((count, keys))
}

/// One source's day as reconciliation shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DayReport {
    /// The source.
    pub source_id: String,
    /// YYYY-MM-DD, China time.
    pub day: String,
    /// What the source says it holds (`None`: not asked, or the query failed).
    pub claimed: Option<i64>,
    /// Received by the gateway that day (replays not counted).
    pub received: i64,
    /// Accepted (new cases, new versions, withdrawals).
    pub accepted: i64,
    /// Unchanged re-sends.
    pub unchanged: i64,
    /// Older than the case's head.
    pub stale: i64,
    /// Quarantined.
    pub quarantined: i64,
    /// Quarantined records replayed and accepted that day.
    pub replayed: i64,
    /// Deliveries of the day's versions still pending.
    pub pending: i64,
    /// Deliveries of the day's versions dead.
    pub dead: i64,
    /// Records the source holds that the gateway lacks.
    pub missing: i64,
    /// Whether the source listed its keys.
    pub keys_listed: bool,
    /// The keys the gateway never received (at most 1000).
    pub missing_keys: Vec<String>,
    /// When the source was asked.
    pub checked_at: Option<DateTime<Utc>>,
    /// Why asking failed.
    pub check_error: Option<String>,
    /// `missing`, `undelivered`, `dead`.
    pub gaps: Vec<&'static str>,
    /// `gap`, `check_failed`, `unchecked` (a count query is configured but has not answered
    /// for the day) or `ok`.
    pub status: &'static str,
}

impl DayReport {
    /// Records missing or not delivered: what the gap metric counts.
    pub fn gap_records(&self) -> i64 {
        let mut n = 0;
        if self.gaps.contains(&"missing") {
            n += self.missing;
        }
        if self.gaps.contains(&"undelivered") {
            n += self.pending;
        }
        if self.gaps.contains(&"dead") {
            n += self.dead;
        }
        n
    }
}

/// When `day` (YYYY-MM-DD, China time) ends.
fn day_end(day: &str) -> Option<DateTime<Utc>> {
    let date = NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
    let next = date.succ_opt()?.and_hms_opt(0, 0, 0)?;
    china()
        .from_local_datetime(&next)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// Merge the counts, the claims and the outbox of the days `from..=to` into one report per
/// source and day, newest first. `asked` are the sources with a count query.
pub fn merge(
    counts: Vec<DayTally>,
    claims: Vec<Claim>,
    undelivered: Vec<Undelivered>,
    asked: &[String],
    delivery_overdue_hours: f64,
    now: DateTime<Utc>,
) -> Vec<DayReport> {
    let mut by: BTreeMap<(String, String), DayReport> = BTreeMap::new();
    fn entry<'a>(by: &'a mut BTreeMap<(String, String), DayReport>, source: &str, day: &str) -> &'a mut DayReport {
        by.entry((day.to_string(), source.to_string()))
            .or_insert_with(|| DayReport {
                source_id: source.to_string(),
                day: day.to_string(),
                claimed: None,
                received: 0,
                accepted: 0,
                unchanged: 0,
                stale: 0,
                quarantined: 0,
                replayed: 0,
                pending: 0,
                dead: 0,
                missing: 0,
                keys_listed: false,
                missing_keys: Vec::new(),
                checked_at: None,
                check_error: None,
                gaps: Vec::new(),
                status: "ok",
            })
    }
    for c in counts {
        let r = entry(&mut by, &c.source_id, &c.day);
        r.received = c.received;
        r.accepted = c.accepted;
        r.unchanged = c.unchanged;
        r.stale = c.stale;
        r.quarantined = c.quarantined;
        r.replayed = c.replayed;
    }
    for u in undelivered {
        let r = entry(&mut by, &u.source_id, &u.day);
        r.pending = u.pending;
        r.dead = u.dead;
    }
    for c in claims {
        let r = entry(&mut by, &c.source_id, &c.day);
        r.claimed = c.claimed;
        r.keys_listed = c.keys_listed;
        r.missing_keys = c.missing_keys;
        r.checked_at = Some(c.checked_at);
        r.check_error = c.error;
        r.missing = c.missing_count;
    }
    let overdue = ChronoDuration::milliseconds((delivery_overdue_hours * 3_600_000.0) as i64);
    let mut out: Vec<DayReport> = by.into_values().rev().collect();
    for r in &mut out {
        if !r.keys_listed {
            r.missing = r.claimed.map_or(0, |c| (c - r.received).max(0));
        }
        if r.missing > 0 {
            r.gaps.push("missing");
        }
        if r.pending > 0 && day_end(&r.day).is_some_and(|end| end + overdue <= now) {
            r.gaps.push("undelivered");
        }
        if r.dead > 0 {
            r.gaps.push("dead");
        }
        r.status = if !r.gaps.is_empty() {
            "gap"
        } else if r.check_error.is_some() {
            "check_failed"
        } else if r.checked_at.is_none() && asked.contains(&r.source_id) {
            "unchecked"
        } else {
            "ok"
        };
    }
    out
}

/// The reconciliation of days `from..=to` (YYYY-MM-DD), of one source or all.
pub async fn report(runtime: &Runtime, source: Option<&str>, from: &str, to: &str) -> StoreResult<Vec<DayReport>> {
    let store = runtime.store.oversight();
    let counts = store.day_counts(source, from, to).await?;
    let claims = store.claims(source, from, to).await?;
    let undelivered = store.undelivered(source, from, to).await?;
    let config = &runtime.resolved.config;
    let asked: Vec<String> = config
        .sources
        .iter()
        .filter(|s| s.reconcile.is_some())
        .map(|s| s.id.clone())
        .collect();
    Ok(merge(
        counts,
        claims,
        undelivered,
        &asked,
        config.reconciliation.delivery_overdue_hours,
        Utc::now(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(source: &str, day: &str, received: i64, accepted: i64, quarantined: i64) -> DayTally {
        DayTally {
            source_id: source.into(),
            day: day.into(),
            received,
            accepted,
            quarantined,
            ..DayTally::default()
        }
    }

    #[test]
    fn a_source_claiming_more_than_arrived_is_a_missing_gap_and_a_match_is_ok() {
        let now = Utc::now();
        let claim = |source: &str, n| Claim {
            source_id: source.into(),
            day: "2025-03-01".into(),
            claimed: Some(n),
            checked_at: now,
            ..Claim::default()
        };
        let reports = merge(
            vec![tally("a", "2025-03-01", 8, 7, 1), tally("b", "2025-03-01", 5, 5, 0)],
            vec![claim("a", 10), claim("b", 5)],
            Vec::new(),
            &["a".into(), "b".into()],
            24.0,
            now,
        );
        let a = reports.iter().find(|r| r.source_id == "a").unwrap();
        assert_eq!((a.missing, a.status, a.gaps.clone()), (2, "gap", vec!["missing"]));
        assert_eq!(a.gap_records(), 2);
        let b = reports.iter().find(|r| r.source_id == "b").unwrap();
        assert_eq!((b.missing, b.status), (0, "ok"));
    }

    #[test]
    fn pending_deliveries_are_a_gap_only_once_the_day_is_overdue() {
        let undelivered = |day: &str| Undelivered {
            source_id: "a".into(),
            day: day.into(),
            pending: 3,
            dead: 0,
        };
        let now = Utc::now();
        let today = day_of(now);
        let old = merge(Vec::new(), Vec::new(), vec![undelivered("2020-01-01")], &[], 24.0, now);
        assert_eq!(old[0].gaps, vec!["undelivered"]);
        let fresh = merge(Vec::new(), Vec::new(), vec![undelivered(&today)], &[], 24.0, now);
        assert!(fresh[0].gaps.is_empty(), "{:?}", fresh[0]);
    }

    #[test]
    fn a_day_ends_at_midnight_china_time() {
        assert_eq!(
            day_end("2025-03-01").map(|t| t.to_rfc3339()),
            Some("2025-03-01T16:00:00+00:00".to_string())
        );
    }
}
