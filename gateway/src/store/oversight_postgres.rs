//! Reconciliation, cases off the platform and alerts on PostgreSQL.

use super::error::StoreResult;
use super::oversight::{
    minute_of, AlertRow, Claim, DayTally, MinuteTally, NewAlert, NotificationRow, OverdueCount, OverdueDelivery,
    OverdueQuarantine, OversightStore, Raised, SendOutcome, Undelivered, MAX_MISSING_KEYS,
};
use super::postgres::PostgresStore;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use std::time::Duration;
use tokio_postgres::Row;

const TALLY_COLUMNS: &str = "source_id, day::text, received, accepted, unchanged, stale, quarantined, replayed";
const ALERT_COLUMNS: &str = "id, rule, subject, status, severity, summary_zh, summary_en, value, started_at, \
                             last_seen_at, resolved_at, last_notified_at";
const NOTIFICATION_COLUMNS: &str =
    "id, alert_id, webhook_id, event, status, attempts, next_attempt_at, last_error, created_at, sent_at";

fn tally_from_row(r: &Row) -> StoreResult<DayTally> {
    Ok(DayTally {
        source_id: r.try_get(0)?,
        day: r.try_get(1)?,
        received: r.try_get(2)?,
        accepted: r.try_get(3)?,
        unchanged: r.try_get(4)?,
        stale: r.try_get(5)?,
        quarantined: r.try_get(6)?,
        replayed: r.try_get(7)?,
    })
}

fn alert_from_row(r: &Row) -> StoreResult<AlertRow> {
    Ok(AlertRow {
        id: r.try_get(0)?,
        rule: r.try_get(1)?,
        subject: r.try_get(2)?,
        status: r.try_get(3)?,
        severity: r.try_get(4)?,
        summary_zh: r.try_get(5)?,
        summary_en: r.try_get(6)?,
        value: r.try_get(7)?,
        started_at: r.try_get(8)?,
        last_seen_at: r.try_get(9)?,
        resolved_at: r.try_get(10)?,
        last_notified_at: r.try_get(11)?,
    })
}

fn notification_from_row(r: &Row) -> StoreResult<NotificationRow> {
    Ok(NotificationRow {
        id: r.try_get(0)?,
        alert_id: r.try_get(1)?,
        webhook_id: r.try_get(2)?,
        event: r.try_get(3)?,
        status: r.try_get(4)?,
        attempts: r.try_get(5)?,
        next_attempt_at: r.try_get(6)?,
        last_error: r.try_get(7)?,
        created_at: r.try_get(8)?,
        sent_at: r.try_get(9)?,
    })
}

fn counts_from_rows(rows: &[Row]) -> StoreResult<Vec<OverdueCount>> {
    rows.iter()
        .map(|r| {
            Ok(OverdueCount {
                key: r.try_get(0)?,
                count: r.try_get(1)?,
                oldest: r.try_get(2)?,
            })
        })
        .collect()
}

async fn queue(
    tx: &impl GenericClient,
    alert_id: i64,
    webhooks: &[String],
    event: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    if webhooks.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO alert_notifications (alert_id, webhook_id, event, next_attempt_at, created_at)
         SELECT $1, w, $3, $4, $4 FROM unnest($2::text[]) AS w",
        &[&alert_id, &webhooks, &event, &at],
    )
    .await?;
    Ok(())
}

/// The day (China time) of a stored time column, as `YYYY-MM-DD` text.
fn china_day(column: &str) -> String {
    format!("to_char({column} AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD')")
}

#[async_trait]
impl OversightStore for PostgresStore {
    async fn add_tallies(&self, tallies: &[DayTally], minutes: &[MinuteTally]) -> StoreResult<()> {
        if tallies.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        if !minutes.is_empty() {
            let sources: Vec<&str> = minutes.iter().map(|m| m.source_id.as_str()).collect();
            let at: Vec<&str> = minutes.iter().map(|m| m.minute.as_str()).collect();
            let received: Vec<i64> = minutes.iter().map(|m| m.received).collect();
            let quarantined: Vec<i64> = minutes.iter().map(|m| m.quarantined).collect();
            client
                .execute(
                    "INSERT INTO intake_minutes (source_id, minute, received, quarantined)
                     SELECT s, m, r, q FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS t(s, m, r, q)
                     ORDER BY s, m
                     ON CONFLICT (source_id, minute) DO UPDATE SET
                       received = intake_minutes.received + excluded.received,
                       quarantined = intake_minutes.quarantined + excluded.quarantined",
                    &[&sources, &at, &received, &quarantined],
                )
                .await?;
        }
        let column = |f: fn(&DayTally) -> i64| tallies.iter().map(f).collect::<Vec<i64>>();
        let sources: Vec<&str> = tallies.iter().map(|t| t.source_id.as_str()).collect();
        let days: Vec<&str> = tallies.iter().map(|t| t.day.as_str()).collect();
        // One statement, rows in key order: concurrent adds of the same keys never deadlock.
        client
            .execute(
                "INSERT INTO reconciliation_counts (source_id, day, received, accepted, unchanged, stale,
                   quarantined, replayed)
                 SELECT s, d::date, r, a, u, st, q, rp
                 FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
                             $7::bigint[], $8::bigint[]) AS t(s, d, r, a, u, st, q, rp)
                 ORDER BY s, d
                 ON CONFLICT (source_id, day) DO UPDATE SET
                   received = reconciliation_counts.received + excluded.received,
                   accepted = reconciliation_counts.accepted + excluded.accepted,
                   unchanged = reconciliation_counts.unchanged + excluded.unchanged,
                   stale = reconciliation_counts.stale + excluded.stale,
                   quarantined = reconciliation_counts.quarantined + excluded.quarantined,
                   replayed = reconciliation_counts.replayed + excluded.replayed",
                &[
                    &sources,
                    &days,
                    &column(|t| t.received),
                    &column(|t| t.accepted),
                    &column(|t| t.unchanged),
                    &column(|t| t.stale),
                    &column(|t| t.quarantined),
                    &column(|t| t.replayed),
                ],
            )
            .await?;
        Ok(())
    }

    async fn day_counts(&self, source: Option<&str>, from: &str, to: &str) -> StoreResult<Vec<DayTally>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {TALLY_COLUMNS} FROM reconciliation_counts
                     WHERE ($1::text IS NULL OR source_id = $1) AND day >= $2::text::date AND day <= $3::text::date
                     ORDER BY day DESC, source_id"
                ),
                &[&source, &from, &to],
            )
            .await?;
        rows.iter().map(tally_from_row).collect()
    }

    async fn put_claim(&self, claim: &Claim) -> StoreResult<()> {
        let client = self.client().await?;
        let keys = serde_json::Value::from(
            claim
                .missing_keys
                .iter()
                .take(MAX_MISSING_KEYS)
                .cloned()
                .collect::<Vec<String>>(),
        );
        client
            .execute(
                "INSERT INTO reconciliation_claims (source_id, day, claimed, keys_listed, missing_count,
                   missing_keys, checked_at, error) VALUES ($1, $2::text::date, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (source_id, day) DO UPDATE SET claimed = excluded.claimed,
                   keys_listed = excluded.keys_listed, missing_count = excluded.missing_count,
                   missing_keys = excluded.missing_keys, checked_at = excluded.checked_at, error = excluded.error",
                &[
                    &claim.source_id,
                    &claim.day,
                    &claim.claimed,
                    &claim.keys_listed,
                    &claim.missing_count,
                    &keys,
                    &claim.checked_at,
                    &claim.error,
                ],
            )
            .await?;
        Ok(())
    }

    async fn claims(&self, source: Option<&str>, from: &str, to: &str) -> StoreResult<Vec<Claim>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT source_id, day::text, claimed, keys_listed, missing_count, missing_keys, checked_at, error
                 FROM reconciliation_claims
                 WHERE ($1::text IS NULL OR source_id = $1) AND day >= $2::text::date AND day <= $3::text::date
                 ORDER BY day DESC, source_id",
                &[&source, &from, &to],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let keys: serde_json::Value = r.try_get(5)?;
                Ok(Claim {
                    source_id: r.try_get(0)?,
                    day: r.try_get(1)?,
                    claimed: r.try_get(2)?,
                    keys_listed: r.try_get(3)?,
                    missing_count: r.try_get(4)?,
                    missing_keys: serde_json::from_value(keys).unwrap_or_default(),
                    checked_at: r.try_get(6)?,
                    error: r.try_get(7)?,
                })
            })
            .collect()
    }

    async fn keys_never_received(&self, source: &str, keys: &[String]) -> StoreResult<Vec<String>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT k FROM unnest($2::text[]) WITH ORDINALITY AS t(k, n)
                 WHERE NOT EXISTS (SELECT 1 FROM raw_records r WHERE r.source_id = $1 AND r.record_key = t.k)
                 ORDER BY n",
                &[&source, &keys],
            )
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    async fn undelivered(&self, source: Option<&str>, from: &str, to: &str) -> StoreResult<Vec<Undelivered>> {
        let client = self.client().await?;
        let day = china_day("o.created_at");
        let rows = client
            .query(
                &format!(
                    "SELECT c.source_id, {day} AS d,
                            count(*) FILTER (WHERE o.status = 'pending'), count(*) FILTER (WHERE o.status = 'dead')
                     FROM outbox o JOIN cases c ON c.id = o.case_id
                     WHERE o.status IN ('pending', 'dead') AND ($1::text IS NULL OR c.source_id = $1)
                       AND {day} >= $2 AND {day} <= $3
                     GROUP BY c.source_id, d ORDER BY d DESC, c.source_id"
                ),
                &[&source, &from, &to],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Undelivered {
                    source_id: r.try_get(0)?,
                    day: r.try_get(1)?,
                    pending: r.try_get(2)?,
                    dead: r.try_get(3)?,
                })
            })
            .collect()
    }

    async fn overdue_deliveries(
        &self,
        before: DateTime<Utc>,
        agency: Option<&str>,
        limit: i64,
    ) -> StoreResult<(Vec<OverdueCount>, Vec<OverdueDelivery>)> {
        let client = self.client().await?;
        let counts = client
            .query(
                "SELECT c.agency_credit_code::text, count(*), min(o.created_at)
                 FROM outbox o JOIN cases c ON c.id = o.case_id
                 WHERE o.status IN ('pending', 'dead') AND o.created_at < $1
                   AND ($2::text IS NULL OR c.agency_credit_code = $2)
                 GROUP BY c.agency_credit_code ORDER BY count(*) DESC, c.agency_credit_code",
                &[&before, &agency],
            )
            .await?;
        let items = client
            .query(
                "SELECT o.id, c.agency_credit_code::text, o.sink_id::text, c.unified_code::text, o.version, o.status,
                        o.attempts, o.last_error, o.created_at
                 FROM outbox o JOIN cases c ON c.id = o.case_id
                 WHERE o.status IN ('pending', 'dead') AND o.created_at < $1
                   AND ($2::text IS NULL OR c.agency_credit_code = $2)
                 ORDER BY o.created_at, o.id LIMIT $3",
                &[&before, &agency, &limit],
            )
            .await?;
        let items = items
            .iter()
            .map(|r| {
                Ok(OverdueDelivery {
                    delivery_id: r.try_get(0)?,
                    agency: r.try_get(1)?,
                    sink_id: r.try_get(2)?,
                    unified_code: r.try_get(3)?,
                    version: r.try_get(4)?,
                    status: r.try_get(5)?,
                    attempts: r.try_get(6)?,
                    last_error: r.try_get(7)?,
                    since: r.try_get(8)?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((counts_from_rows(&counts)?, items))
    }

    async fn overdue_quarantine(
        &self,
        before: DateTime<Utc>,
        sources: Option<&[String]>,
        limit: i64,
    ) -> StoreResult<(Vec<OverdueCount>, Vec<OverdueQuarantine>)> {
        let client = self.client().await?;
        let sources: Option<Vec<String>> = sources.map(<[String]>::to_vec);
        let counts = client
            .query(
                "SELECT source_id::text, count(*), min(created_at) FROM quarantine
                 WHERE status = 'open' AND created_at < $1 AND ($2::text[] IS NULL OR source_id = ANY($2))
                 GROUP BY source_id ORDER BY count(*) DESC, source_id",
                &[&before, &sources],
            )
            .await?;
        let items = client
            .query(
                "SELECT id, source_id::text, record_key, case_number, rules, created_at FROM quarantine
                 WHERE status = 'open' AND created_at < $1 AND ($2::text[] IS NULL OR source_id = ANY($2))
                 ORDER BY created_at, id LIMIT $3",
                &[&before, &sources, &limit],
            )
            .await?;
        let items = items
            .iter()
            .map(|r| {
                Ok(OverdueQuarantine {
                    quarantine_id: r.try_get(0)?,
                    source_id: r.try_get(1)?,
                    record_key: r.try_get(2)?,
                    case_number: r.try_get(3)?,
                    rules: r.try_get(4)?,
                    since: r.try_get(5)?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((counts_from_rows(&counts)?, items))
    }

    async fn recent_intake(&self, since: DateTime<Utc>) -> StoreResult<Vec<(String, i64, i64)>> {
        let client = self.client().await?;
        let forget = minute_of(Utc::now() - chrono::Duration::days(2));
        client
            .execute("DELETE FROM intake_minutes WHERE minute < $1", &[&forget])
            .await?;
        let rows = client
            .query(
                "SELECT source_id::text, sum(received)::bigint, sum(quarantined)::bigint FROM intake_minutes
                 WHERE minute >= $1 GROUP BY source_id ORDER BY source_id",
                &[&minute_of(since)],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    async fn dead_deliveries(&self) -> StoreResult<Vec<(String, i64)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT sink_id::text, count(*) FROM outbox WHERE status = 'dead' GROUP BY sink_id ORDER BY sink_id",
                &[],
            )
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    async fn alert_raise(
        &self,
        alert: &NewAlert,
        webhooks: &[String],
        repeat: Option<Duration>,
    ) -> StoreResult<Raised> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let at = Utc::now();
        let inserted = tx
            .query_opt(
                "INSERT INTO alerts (rule, subject, status, severity, summary_zh, summary_en, value, started_at,
                   last_seen_at, last_notified_at)
                 VALUES ($1, $2, 'firing', $3, $4, $5, $6, $7, $7, $7)
                 ON CONFLICT (rule, subject) WHERE status = 'firing' DO NOTHING RETURNING id",
                &[
                    &alert.rule,
                    &alert.subject,
                    &alert.severity,
                    &alert.summary_zh,
                    &alert.summary_en,
                    &alert.value,
                    &at,
                ],
            )
            .await?;
        let raised = if let Some(row) = inserted {
            let id: i64 = row.try_get(0)?;
            queue(&tx, id, webhooks, "firing", at).await?;
            Raised::New(id)
        } else {
            // The firing row is locked by this update until the transaction ends: of two
            // instances, the second sees the first's reminder.
            let row = tx
                .query_one(
                    "UPDATE alerts SET last_seen_at = $3, value = $4, summary_zh = $5, summary_en = $6, severity = $7
                     WHERE rule = $1 AND subject = $2 AND status = 'firing' RETURNING id, last_notified_at",
                    &[
                        &alert.rule,
                        &alert.subject,
                        &at,
                        &alert.value,
                        &alert.summary_zh,
                        &alert.summary_en,
                        &alert.severity,
                    ],
                )
                .await?;
            let id: i64 = row.try_get(0)?;
            let last: DateTime<Utc> = row.try_get(1)?;
            let due = repeat
                .and_then(|r| chrono::Duration::from_std(r).ok())
                .is_some_and(|r| last <= at - r);
            if due {
                tx.execute("UPDATE alerts SET last_notified_at = $2 WHERE id = $1", &[&id, &at])
                    .await?;
                queue(&tx, id, webhooks, "repeat", at).await?;
                Raised::Reminded(id)
            } else {
                Raised::Kept(id)
            }
        };
        tx.commit().await?;
        Ok(raised)
    }

    async fn alert_resolve(&self, rule: &str, subject: &str, webhooks: &[String]) -> StoreResult<Option<i64>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let at = Utc::now();
        let row = tx
            .query_opt(
                "UPDATE alerts SET status = 'resolved', resolved_at = $3, last_notified_at = $3
                 WHERE rule = $1 AND subject = $2 AND status = 'firing' RETURNING id",
                &[&rule, &subject, &at],
            )
            .await?;
        let id = match row {
            Some(r) => {
                let id: i64 = r.try_get(0)?;
                queue(&tx, id, webhooks, "resolved", at).await?;
                Some(id)
            }
            None => None,
        };
        tx.commit().await?;
        Ok(id)
    }

    async fn alerts_firing(&self) -> StoreResult<Vec<AlertRow>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE status = 'firing' ORDER BY id"),
                &[],
            )
            .await?;
        rows.iter().map(alert_from_row).collect()
    }

    async fn alerts_recent(&self, limit: i64) -> StoreResult<Vec<AlertRow>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {ALERT_COLUMNS} FROM alerts ORDER BY id DESC LIMIT $1"),
                &[&limit],
            )
            .await?;
        rows.iter().map(alert_from_row).collect()
    }

    async fn alert(&self, id: i64) -> StoreResult<Option<AlertRow>> {
        let client = self.client().await?;
        let row = client
            .query_opt(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1"), &[&id])
            .await?;
        row.as_ref().map(alert_from_row).transpose()
    }

    async fn notifications_due(&self, at: DateTime<Utc>, limit: i64) -> StoreResult<Vec<NotificationRow>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {NOTIFICATION_COLUMNS} FROM alert_notifications
                     WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY id LIMIT $2"
                ),
                &[&at, &limit],
            )
            .await?;
        rows.iter().map(notification_from_row).collect()
    }

    async fn notification_settle(&self, id: i64, outcome: &SendOutcome) -> StoreResult<()> {
        let client = self.client().await?;
        let at = Utc::now();
        match outcome {
            SendOutcome::Sent => {
                client
                    .execute(
                        "UPDATE alert_notifications SET status = 'sent', attempts = attempts + 1, sent_at = $2,
                           last_error = NULL WHERE id = $1 AND status = 'pending'",
                        &[&id, &at],
                    )
                    .await?
            }
            SendOutcome::Retry(next, error) => {
                client
                    .execute(
                        "UPDATE alert_notifications SET attempts = attempts + 1, next_attempt_at = $2,
                           last_error = $3 WHERE id = $1 AND status = 'pending'",
                        &[&id, next, error],
                    )
                    .await?
            }
            SendOutcome::Dead(error) => {
                client
                    .execute(
                        "UPDATE alert_notifications SET status = 'dead', attempts = attempts + 1, last_error = $2
                         WHERE id = $1 AND status = 'pending'",
                        &[&id, error],
                    )
                    .await?
            }
        };
        Ok(())
    }

    async fn notifications_recent(&self, alert_id: Option<i64>, limit: i64) -> StoreResult<Vec<NotificationRow>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {NOTIFICATION_COLUMNS} FROM alert_notifications
                     WHERE ($1::bigint IS NULL OR alert_id = $1) ORDER BY id DESC LIMIT $2"
                ),
                &[&alert_id, &limit],
            )
            .await?;
        rows.iter().map(notification_from_row).collect()
    }
}
