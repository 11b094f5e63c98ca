//! [`OutboxStore`] on the embedded SQLite store (one gateway instance per file: a claim is a
//! select and an update in one immediate transaction).

use super::outbox::{
    Claimed, DeliveryCount, DeliveryFilter, DeliveryRow, DeliveryStatus, OutboxStore, Redrive, RedriveReport,
    Settlement, NEWER_DELIVERED, SUPERSEDE,
};
use super::sqlite::{parse_time, time, to_json, SqliteStore};
use super::{StoreError, StoreResult};
use adapters::sinks::Delivery;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

fn parse_status(s: &str) -> StoreResult<DeliveryStatus> {
    DeliveryStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("delivery status {s:?}")))
}

const CLAIMABLE: &str = "
    SELECT o.id, o.version, o.idempotency_key, o.attempts, c.unified_code, c.case_type, c.year, c.region,
           v.status, v.created_at, v.record
    FROM outbox o
    JOIN cases c ON c.id = o.case_id
    JOIN case_versions v ON v.case_id = o.case_id AND v.version = o.version
    WHERE o.sink_id = ?1 AND o.status = 'pending'
      AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= ?2)
      AND NOT EXISTS (SELECT 1 FROM outbox p
                      WHERE p.sink_id = o.sink_id AND p.case_id = o.case_id AND p.status = 'pending'
                        AND p.version < o.version)
    ORDER BY o.id LIMIT ?3";

const LIST: &str = "
    SELECT id, sink_id, idempotency_key, version, status, attempts, next_attempt_at, last_error, created_at,
           delivered_at
    FROM outbox
    WHERE (?1 IS NULL OR sink_id = ?1) AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR id < ?3)
    ORDER BY id DESC LIMIT ?4 OFFSET ?5";

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn claim(
        &self,
        sink_id: &str,
        limit: usize,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Vec<Claimed>> {
        let sink_id = sink_id.to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut claimed = Vec::new();
            {
                let mut select = tx.prepare_cached(CLAIMABLE)?;
                let rows = select.query_map(params![sink_id, time(now), limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i32>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i32>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, i32>(6)?,
                        r.get::<_, String>(7)?,
                        r.get::<_, String>(8)?,
                        r.get::<_, String>(9)?,
                        r.get::<_, String>(10)?,
                    ))
                })?;
                for row in rows {
                    let r = row?;
                    claimed.push(Claimed {
                        delivery: Delivery {
                            outbox_id: r.0,
                            version: r.1,
                            idempotency_key: r.2,
                            unified_code: r.4,
                            case_type: r.5,
                            year: r.6,
                            region: r.7,
                            withdrawn: r.8 == "withdrawn",
                            committed_at: parse_time(&r.9)?,
                            record: serde_json::from_str(&r.10)
                                .map_err(|e| StoreError::Corrupt(format!("stored record: {e}")))?,
                        },
                        attempts: r.3,
                    });
                }
                let mut lease = tx.prepare_cached("UPDATE outbox SET next_attempt_at = ?2 WHERE id = ?1")?;
                let until = time(lease_until);
                for c in &claimed {
                    lease.execute(params![c.delivery.outbox_id, until])?;
                }
                let room = limit - i64::try_from(claimed.len()).unwrap_or(limit);
                claimed.extend(super::joint_sqlite_store::claim(
                    &tx,
                    &sink_id,
                    room,
                    &time(now),
                    &until,
                )?);
            }
            tx.commit()?;
            Ok(claimed)
        })
        .await
    }

    async fn settle(&self, settlements: &[Settlement], lease_until: DateTime<Utc>) -> StoreResult<u64> {
        let settlements = settlements.to_vec();
        let lease = time(lease_until);
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut settled = 0u64;
            {
                let mut update = tx.prepare_cached(
                    "UPDATE outbox SET status = ?2, attempts = ?3, next_attempt_at = ?4, last_error = ?5,
                                       delivered_at = ?6
                     WHERE id = ?1 AND status = 'pending' AND next_attempt_at = ?7",
                )?;
                let mut delivered: Vec<i64> = Vec::new();
                let joint: Vec<&Settlement> = settlements.iter().filter(|s| s.id < 0).collect();
                settled += super::joint_sqlite_store::settle(&tx, &joint, &lease)?;
                for s in settlements.iter().filter(|s| s.id >= 0) {
                    let n = update.execute(params![
                        s.id,
                        s.status.as_str(),
                        s.attempts,
                        s.next_attempt_at.map(time),
                        s.last_error,
                        s.delivered_at.map(time),
                        lease
                    ])? as u64;
                    if n > 0 && s.status == DeliveryStatus::Delivered {
                        delivered.push(s.id);
                    }
                    settled += n;
                }
                if !delivered.is_empty() {
                    // The batch's delivered rows counted per sink in one statement.
                    tx.prepare_cached(
                        "INSERT INTO outbox_delivered (sink_id, delivered)
                         SELECT sink_id, count(*) FROM outbox WHERE id IN (SELECT value FROM json_each(?1))
                         GROUP BY sink_id
                         ON CONFLICT (sink_id) DO UPDATE SET delivered = delivered + excluded.delivered",
                    )?
                    .execute([to_json(&delivered)?])?;
                }
            }
            tx.commit()?;
            Ok(settled)
        })
        .await
    }

    async fn deliveries(&self, filter: &DeliveryFilter) -> StoreResult<Vec<DeliveryRow>> {
        let f = filter.clone();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(LIST)?;
            let rows = stmt.query_map(
                params![
                    f.sink_id,
                    f.status.map(DeliveryStatus::as_str),
                    f.before_id,
                    f.limit.unwrap_or(100),
                    f.offset.unwrap_or(0).max(0)
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i32>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, i32>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, Option<String>>(7)?,
                        r.get::<_, String>(8)?,
                        r.get::<_, Option<String>>(9)?,
                    ))
                },
            )?;
            let mut out = Vec::new();
            for row in rows {
                let r = row?;
                out.push(DeliveryRow {
                    id: r.0,
                    sink_id: r.1,
                    idempotency_key: r.2,
                    version: r.3,
                    status: parse_status(&r.4)?,
                    attempts: r.5,
                    next_attempt_at: r.6.as_deref().map(parse_time).transpose()?,
                    last_error: r.7,
                    created_at: parse_time(&r.8)?,
                    delivered_at: r.9.as_deref().map(parse_time).transpose()?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn delivery_counts(&self) -> StoreResult<Vec<DeliveryCount>> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT sink_id, 'pending', count(*) FROM outbox WHERE status = 'pending' GROUP BY sink_id
                 UNION ALL
                 SELECT sink_id, 'dead', count(*) FROM outbox WHERE status = 'dead' GROUP BY sink_id
                 UNION ALL
                 SELECT sink_id, 'superseded', count(*) FROM outbox WHERE status = 'superseded' GROUP BY sink_id
                 UNION ALL
                 SELECT sink_id, 'withheld', count(*) FROM outbox WHERE status = 'withheld' GROUP BY sink_id
                 UNION ALL
                 SELECT sink_id, 'delivered', delivered FROM outbox_delivered WHERE delivered > 0
                 ORDER BY 1, 2",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (sink_id, status, count) = row?;
                out.push(DeliveryCount {
                    sink_id,
                    status: parse_status(&status)?,
                    count,
                });
            }
            super::joint::add_joint_counts(&mut out, super::joint_sqlite_store::counts(conn)?)?;
            Ok(out)
        })
        .await
    }

    async fn redrive(&self, target: &Redrive) -> StoreResult<RedriveReport> {
        let target = target.clone();
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let reset = "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = NULL";
            let report = match &target {
                Redrive::One(id) if *id < 0 => RedriveReport {
                    redriven: super::joint_sqlite_store::redrive_one(&tx, *id)?,
                    superseded: 0,
                },
                Redrive::One(id) => {
                    let status: Option<String> = tx
                        .query_row("SELECT status FROM outbox WHERE id = ?1", [id], |r| r.get(0))
                        .optional()?;
                    match status.as_deref() {
                        None => return Err(StoreError::NotFound(format!("delivery {id}"))),
                        Some("dead") => {
                            let which = "WHERE id = ?1 AND status = 'dead'";
                            let superseded = tx.execute(&format!("{SUPERSEDE} {which} AND {NEWER_DELIVERED}"), [id])?;
                            let redriven = tx.execute(&format!("{reset} {which}"), [id])?;
                            RedriveReport {
                                redriven: redriven as u64,
                                superseded: superseded as u64,
                            }
                        }
                        Some(other) => {
                            return Err(StoreError::Conflict(format!(
                                "投递 {id} 的状态是 {other}，只能重投死信 / delivery {id} is {other}: only dead deliveries can be re-driven"
                            )))
                        }
                    }
                }
                Redrive::AllDead { sink_id } => {
                    let which = "WHERE sink_id = ?1 AND status = 'dead'";
                    let superseded = tx.execute(&format!("{SUPERSEDE} {which} AND {NEWER_DELIVERED}"), [sink_id])?;
                    let redriven = tx.execute(&format!("{reset} {which}"), [sink_id])?;
                    let joint = super::joint_sqlite_store::redrive_sink(&tx, sink_id)?;
                    RedriveReport {
                        redriven: redriven as u64 + joint,
                        superseded: superseded as u64,
                    }
                }
            };
            tx.commit()?;
            Ok(report)
        })
        .await
    }
}
