//! Reconciliation, cases off the platform and alerts on SQLite.

use super::error::StoreResult;
use super::oversight::{
    minute_of, AlertRow, Claim, DayTally, MinuteTally, NewAlert, NotificationRow, OverdueCount, OverdueDelivery,
    OverdueQuarantine, OversightStore, Raised, SendOutcome, Undelivered, MAX_MISSING_KEYS,
};
use super::sqlite::{now, parse_time, time, to_json, SqliteStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::time::Duration;

const TALLY_COLUMNS: &str = "source_id, day, received, accepted, unchanged, stale, quarantined, replayed";
const ALERT_COLUMNS: &str = "id, rule, subject, status, severity, summary_zh, summary_en, value, started_at, \
                             last_seen_at, resolved_at, last_notified_at";
const NOTIFICATION_COLUMNS: &str =
    "id, alert_id, webhook_id, event, status, attempts, next_attempt_at, last_error, created_at, sent_at";

fn tally_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DayTally> {
    Ok(DayTally {
        source_id: r.get(0)?,
        day: r.get(1)?,
        received: r.get(2)?,
        accepted: r.get(3)?,
        unchanged: r.get(4)?,
        stale: r.get(5)?,
        quarantined: r.get(6)?,
        replayed: r.get(7)?,
    })
}

type RawAlert = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
);

fn raw_alert(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawAlert> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
    ))
}

fn alert_of(a: RawAlert) -> StoreResult<AlertRow> {
    Ok(AlertRow {
        id: a.0,
        rule: a.1,
        subject: a.2,
        status: a.3,
        severity: a.4,
        summary_zh: a.5,
        summary_en: a.6,
        value: a.7,
        started_at: parse_time(&a.8)?,
        last_seen_at: parse_time(&a.9)?,
        resolved_at: a.10.as_deref().map(parse_time).transpose()?,
        last_notified_at: parse_time(&a.11)?,
    })
}

fn alerts_where(conn: &Connection, sql: &str, param: &dyn rusqlite::ToSql) -> StoreResult<Vec<AlertRow>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let raw = stmt
        .query_map([param], raw_alert)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    raw.into_iter().map(alert_of).collect()
}

type RawNotification = (
    i64,
    i64,
    String,
    String,
    String,
    i32,
    String,
    Option<String>,
    String,
    Option<String>,
);

fn notification_of(n: RawNotification) -> StoreResult<NotificationRow> {
    Ok(NotificationRow {
        id: n.0,
        alert_id: n.1,
        webhook_id: n.2,
        event: n.3,
        status: n.4,
        attempts: n.5,
        next_attempt_at: parse_time(&n.6)?,
        last_error: n.7,
        created_at: parse_time(&n.8)?,
        sent_at: n.9.as_deref().map(parse_time).transpose()?,
    })
}

fn notifications_where(
    conn: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> StoreResult<Vec<NotificationRow>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let raw = stmt
        .query_map(params, |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<RawNotification>>>()?;
    raw.into_iter().map(notification_of).collect()
}

fn queue(conn: &Connection, alert_id: i64, webhooks: &[String], event: &str, at: &str) -> StoreResult<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO alert_notifications (alert_id, webhook_id, event, next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?4)",
    )?;
    for w in webhooks {
        stmt.execute(params![alert_id, w, event, at])?;
    }
    Ok(())
}

/// `day` shifted to China time, as SQLite's date() writes it, of a stored UTC time column.
fn china_day(column: &str) -> String {
    format!("date({column}, '+8 hours')")
}

#[async_trait]
impl OversightStore for SqliteStore {
    async fn add_tallies(&self, tallies: &[DayTally], minutes: &[MinuteTally]) -> StoreResult<()> {
        let (tallies, minutes) = (tallies.to_vec(), minutes.to_vec());
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut stmt = tx.prepare_cached(&format!(
                    "INSERT INTO reconciliation_counts ({TALLY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (source_id, day) DO UPDATE SET
                       received = received + excluded.received, accepted = accepted + excluded.accepted,
                       unchanged = unchanged + excluded.unchanged, stale = stale + excluded.stale,
                       quarantined = quarantined + excluded.quarantined, replayed = replayed + excluded.replayed"
                ))?;
                for t in &tallies {
                    stmt.execute(params![
                        t.source_id,
                        t.day,
                        t.received,
                        t.accepted,
                        t.unchanged,
                        t.stale,
                        t.quarantined,
                        t.replayed
                    ])?;
                }
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO intake_minutes (source_id, minute, received, quarantined) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (source_id, minute) DO UPDATE SET received = received + excluded.received,
                       quarantined = quarantined + excluded.quarantined",
                )?;
                for m in &minutes {
                    stmt.execute(params![m.source_id, m.minute, m.received, m.quarantined])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn day_counts(&self, source: Option<&str>, from: &str, to: &str) -> StoreResult<Vec<DayTally>> {
        let (source, from, to) = (source.map(str::to_string), from.to_string(), to.to_string());
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {TALLY_COLUMNS} FROM reconciliation_counts
                 WHERE (?1 IS NULL OR source_id = ?1) AND day >= ?2 AND day <= ?3 ORDER BY day DESC, source_id"
            ))?;
            let rows = stmt
                .query_map(params![source, from, to], tally_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn put_claim(&self, claim: &Claim) -> StoreResult<()> {
        let claim = claim.clone();
        let keys = to_json(&claim.missing_keys.iter().take(MAX_MISSING_KEYS).collect::<Vec<_>>())?;
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO reconciliation_claims (source_id, day, claimed, keys_listed, missing_count,
                   missing_keys, checked_at, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (source_id, day) DO UPDATE SET claimed = excluded.claimed,
                   keys_listed = excluded.keys_listed, missing_count = excluded.missing_count,
                   missing_keys = excluded.missing_keys, checked_at = excluded.checked_at, error = excluded.error",
                params![
                    claim.source_id,
                    claim.day,
                    claim.claimed,
                    claim.keys_listed,
                    claim.missing_count,
                    keys,
                    time(claim.checked_at),
                    claim.error
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn claims(&self, source: Option<&str>, from: &str, to: &str) -> StoreResult<Vec<Claim>> {
        let (source, from, to) = (source.map(str::to_string), from.to_string(), to.to_string());
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT source_id, day, claimed, keys_listed, missing_count, missing_keys, checked_at, error
                 FROM reconciliation_claims
                 WHERE (?1 IS NULL OR source_id = ?1) AND day >= ?2 AND day <= ?3 ORDER BY day DESC, source_id",
            )?;
            type RawClaim = (String, String, Option<i64>, bool, i64, String, String, Option<String>);
            let raw = stmt
                .query_map(params![source, from, to], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<RawClaim>>>()?;
            raw.into_iter()
                .map(|c| {
                    Ok(Claim {
                        source_id: c.0,
                        day: c.1,
                        claimed: c.2,
                        keys_listed: c.3,
                        missing_count: c.4,
                        missing_keys: serde_json::from_str(&c.5).unwrap_or_default(),
                        checked_at: parse_time(&c.6)?,
                        error: c.7,
                    })
                })
                .collect()
        })
        .await
    }

    async fn keys_never_received(&self, source: &str, keys: &[String]) -> StoreResult<Vec<String>> {
        let (source, keys) = (source.to_string(), keys.to_vec());
        let list = to_json(&keys)?;
        self.with_conn(move |conn| {
            // One pass over the source's archive rows (its index), the keys as an IN list.
            let mut stmt = conn.prepare_cached(
                "SELECT DISTINCT record_key FROM raw_records
                 WHERE source_id = ?1 AND record_key IN (SELECT value FROM json_each(?2))",
            )?;
            let found = stmt
                .query_map(params![source, list], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<std::collections::HashSet<String>>>()?;
            Ok(keys.into_iter().filter(|k| !found.contains(k)).collect())
        })
        .await
    }

    async fn undelivered(&self, source: Option<&str>, from: &str, to: &str) -> StoreResult<Vec<Undelivered>> {
        let (source, from, to) = (source.map(str::to_string), from.to_string(), to.to_string());
        self.with_conn(move |conn| {
            let day = china_day("o.created_at");
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT c.source_id, {day} AS d,
                        sum(CASE WHEN o.status = 'pending' THEN 1 ELSE 0 END),
                        sum(CASE WHEN o.status = 'dead' THEN 1 ELSE 0 END)
                 FROM outbox o JOIN cases c ON c.id = o.case_id
                 WHERE o.status IN ('pending', 'dead') AND (?1 IS NULL OR c.source_id = ?1)
                   AND {day} >= ?2 AND {day} <= ?3
                 GROUP BY c.source_id, d ORDER BY d DESC, c.source_id"
            ))?;
            let rows = stmt
                .query_map(params![source, from, to], |r| {
                    Ok(Undelivered {
                        source_id: r.get(0)?,
                        day: r.get(1)?,
                        pending: r.get(2)?,
                        dead: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn overdue_deliveries(
        &self,
        before: DateTime<Utc>,
        agency: Option<&str>,
        limit: i64,
    ) -> StoreResult<(Vec<OverdueCount>, Vec<OverdueDelivery>)> {
        let (before, agency) = (time(before), agency.map(str::to_string));
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT c.agency_credit_code, count(*), min(o.created_at)
                 FROM outbox o JOIN cases c ON c.id = o.case_id
                 WHERE o.status IN ('pending', 'dead') AND o.created_at < ?1 AND (?2 IS NULL OR c.agency_credit_code = ?2)
                 GROUP BY c.agency_credit_code ORDER BY count(*) DESC, c.agency_credit_code",
            )?;
            let raw = stmt
                .query_map(params![before, agency], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let counts = overdue_counts(raw)?;
            let mut stmt = conn.prepare_cached(
                "SELECT o.id, c.agency_credit_code, o.sink_id, c.unified_code, o.version, o.status, o.attempts,
                        o.last_error, o.created_at
                 FROM outbox o JOIN cases c ON c.id = o.case_id
                 WHERE o.status IN ('pending', 'dead') AND o.created_at < ?1 AND (?2 IS NULL OR c.agency_credit_code = ?2)
                 ORDER BY o.created_at, o.id LIMIT ?3",
            )?;
            type Raw = (i64, String, String, String, i32, String, i32, Option<String>, String);
            let raw = stmt
                .query_map(params![before, agency, limit], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<Raw>>>()?;
            let items = raw
                .into_iter()
                .map(|d| {
                    Ok(OverdueDelivery {
                        delivery_id: d.0,
                        agency: d.1,
                        sink_id: d.2,
                        unified_code: d.3,
                        version: d.4,
                        status: d.5,
                        attempts: d.6,
                        last_error: d.7,
                        since: parse_time(&d.8)?,
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?;
            Ok((counts, items))
        })
        .await
    }

    async fn overdue_quarantine(
        &self,
        before: DateTime<Utc>,
        sources: Option<&[String]>,
        limit: i64,
    ) -> StoreResult<(Vec<OverdueCount>, Vec<OverdueQuarantine>)> {
        let before = time(before);
        let sources = sources.map(|s| to_json(&s)).transpose()?;
        self.with_conn(move |conn| {
            let scope = "(?2 IS NULL OR source_id IN (SELECT value FROM json_each(?2)))";
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT source_id, count(*), min(created_at) FROM quarantine
                 WHERE status = 'open' AND created_at < ?1 AND {scope}
                 GROUP BY source_id ORDER BY count(*) DESC, source_id"
            ))?;
            let raw = stmt
                .query_map(params![before, sources], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let counts = overdue_counts(raw)?;
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT id, source_id, record_key, case_number, rules, created_at FROM quarantine
                 WHERE status = 'open' AND created_at < ?1 AND {scope} ORDER BY created_at, id LIMIT ?3"
            ))?;
            type Raw = (i64, String, String, Option<String>, String, String);
            let raw = stmt
                .query_map(params![before, sources, limit], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
                })?
                .collect::<rusqlite::Result<Vec<Raw>>>()?;
            let items = raw
                .into_iter()
                .map(|q| {
                    Ok(OverdueQuarantine {
                        quarantine_id: q.0,
                        source_id: q.1,
                        record_key: q.2,
                        case_number: q.3,
                        rules: serde_json::from_str(&q.4).unwrap_or_default(),
                        since: parse_time(&q.5)?,
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?;
            Ok((counts, items))
        })
        .await
    }

    async fn recent_intake(&self, since: DateTime<Utc>) -> StoreResult<Vec<(String, i64, i64)>> {
        let minute = minute_of(since);
        let forget = minute_of(Utc::now() - chrono::Duration::days(2));
        self.with_conn(move |conn| {
            conn.execute("DELETE FROM intake_minutes WHERE minute < ?1", params![forget])?;
            let mut stmt = conn.prepare_cached(
                "SELECT source_id, sum(received), sum(quarantined) FROM intake_minutes
                 WHERE minute >= ?1 GROUP BY source_id ORDER BY source_id",
            )?;
            let since = minute;
            let rows = stmt
                .query_map(params![since], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn dead_deliveries(&self) -> StoreResult<Vec<(String, i64)>> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT sink_id, count(*) FROM outbox WHERE status = 'dead' GROUP BY sink_id ORDER BY sink_id",
            )?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn alert_raise(
        &self,
        alert: &NewAlert,
        webhooks: &[String],
        repeat: Option<Duration>,
    ) -> StoreResult<Raised> {
        let (alert, webhooks) = (alert.clone(), webhooks.to_vec());
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let at = now();
            let inserted: Option<i64> = tx
                .query_row(
                    "INSERT INTO alerts (rule, subject, status, severity, summary_zh, summary_en, value, started_at,
                       last_seen_at, last_notified_at)
                     VALUES (?1, ?2, 'firing', ?3, ?4, ?5, ?6, ?7, ?7, ?7)
                     ON CONFLICT (rule, subject) WHERE status = 'firing' DO NOTHING RETURNING id",
                    params![
                        alert.rule,
                        alert.subject,
                        alert.severity,
                        alert.summary_zh,
                        alert.summary_en,
                        alert.value,
                        at
                    ],
                    |r| r.get(0),
                )
                .optional()?;
            let raised = if let Some(id) = inserted {
                queue(&tx, id, &webhooks, "firing", &at)?;
                Raised::New(id)
            } else {
                let id: i64 = tx.query_row(
                    "UPDATE alerts SET last_seen_at = ?3, value = ?4, summary_zh = ?5, summary_en = ?6, severity = ?7
                     WHERE rule = ?1 AND subject = ?2 AND status = 'firing' RETURNING id",
                    params![
                        alert.rule,
                        alert.subject,
                        at,
                        alert.value,
                        alert.summary_zh,
                        alert.summary_en,
                        alert.severity
                    ],
                    |r| r.get(0),
                )?;
                let due = repeat
                    .and_then(|r| chrono::Duration::from_std(r).ok())
                    .map(|r| time(Utc::now() - r));
                let reminded = match due {
                    Some(due) => {
                        tx.execute(
                            "UPDATE alerts SET last_notified_at = ?2 WHERE id = ?1 AND last_notified_at <= ?3",
                            params![id, at, due],
                        )? == 1
                    }
                    None => false,
                };
                if reminded {
                    queue(&tx, id, &webhooks, "repeat", &at)?;
                    Raised::Reminded(id)
                } else {
                    Raised::Kept(id)
                }
            };
            tx.commit()?;
            Ok(raised)
        })
        .await
    }

    async fn alert_resolve(&self, rule: &str, subject: &str, webhooks: &[String]) -> StoreResult<Option<i64>> {
        let (rule, subject, webhooks) = (rule.to_string(), subject.to_string(), webhooks.to_vec());
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let at = now();
            let id: Option<i64> = tx
                .query_row(
                    "UPDATE alerts SET status = 'resolved', resolved_at = ?3, last_notified_at = ?3
                     WHERE rule = ?1 AND subject = ?2 AND status = 'firing' RETURNING id",
                    params![rule, subject, at],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = id {
                queue(&tx, id, &webhooks, "resolved", &at)?;
            }
            tx.commit()?;
            Ok(id)
        })
        .await
    }

    async fn alerts_firing(&self) -> StoreResult<Vec<AlertRow>> {
        self.with_conn(move |conn| {
            alerts_where(
                conn,
                &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE status = ?1 ORDER BY id"),
                &"firing",
            )
        })
        .await
    }

    async fn alerts_recent(&self, limit: i64) -> StoreResult<Vec<AlertRow>> {
        self.with_conn(move |conn| {
            alerts_where(
                conn,
                &format!("SELECT {ALERT_COLUMNS} FROM alerts ORDER BY id DESC LIMIT ?1"),
                &limit,
            )
        })
        .await
    }

    async fn alert(&self, id: i64) -> StoreResult<Option<AlertRow>> {
        self.with_conn(move |conn| {
            Ok(
                alerts_where(conn, &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"), &id)?
                    .into_iter()
                    .next(),
            )
        })
        .await
    }

    async fn notifications_due(&self, at: DateTime<Utc>, limit: i64) -> StoreResult<Vec<NotificationRow>> {
        let at = time(at);
        self.with_conn(move |conn| {
            notifications_where(
                conn,
                &format!(
                    "SELECT {NOTIFICATION_COLUMNS} FROM alert_notifications
                     WHERE status = 'pending' AND next_attempt_at <= ?1 ORDER BY id LIMIT ?2"
                ),
                &[&at, &limit],
            )
        })
        .await
    }

    async fn notification_settle(&self, id: i64, outcome: &SendOutcome) -> StoreResult<()> {
        let outcome = outcome.clone();
        self.with_conn(move |conn| {
            let at = now();
            match outcome {
                SendOutcome::Sent => conn.execute(
                    "UPDATE alert_notifications SET status = 'sent', attempts = attempts + 1, sent_at = ?2,
                       last_error = NULL WHERE id = ?1 AND status = 'pending'",
                    params![id, at],
                )?,
                SendOutcome::Retry(next, error) => conn.execute(
                    "UPDATE alert_notifications SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3
                     WHERE id = ?1 AND status = 'pending'",
                    params![id, time(next), error],
                )?,
                SendOutcome::Dead(error) => conn.execute(
                    "UPDATE alert_notifications SET status = 'dead', attempts = attempts + 1, last_error = ?2
                     WHERE id = ?1 AND status = 'pending'",
                    params![id, error],
                )?,
            };
            Ok(())
        })
        .await
    }

    async fn notifications_recent(&self, alert_id: Option<i64>, limit: i64) -> StoreResult<Vec<NotificationRow>> {
        self.with_conn(move |conn| {
            notifications_where(
                conn,
                &format!(
                    "SELECT {NOTIFICATION_COLUMNS} FROM alert_notifications
                     WHERE (?1 IS NULL OR alert_id = ?1) ORDER BY id DESC LIMIT ?2"
                ),
                &[&alert_id, &limit],
            )
        })
        .await
    }
}

/// (key, count, oldest timestamp as stored) rows as overdue counts.
fn overdue_counts(raw: Vec<(String, i64, String)>) -> StoreResult<Vec<OverdueCount>> {
    raw.into_iter()
        .map(|(key, count, oldest)| {
            Ok(OverdueCount {
                key,
                count,
                oldest: parse_time(&oldest)?,
            })
        })
        .collect()
}
