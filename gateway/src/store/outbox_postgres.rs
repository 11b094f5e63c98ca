//! [`OutboxStore`] on PostgreSQL: claims pick rows with `FOR UPDATE SKIP LOCKED` and lease them
//! in the same statement, so several gateway instances dispatch side by side; outcomes are
//! written set-wise with one `UPDATE ... FROM UNNEST`.

use super::outbox::{
    Claimed, DeliveryCount, DeliveryFilter, DeliveryRow, DeliveryStatus, OutboxStore, Redrive, RedriveReport,
    Settlement, NEWER_DELIVERED, SUPERSEDE,
};
use super::postgres::PostgresStore;
use super::{StoreError, StoreResult};
use adapters::sinks::Delivery;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::Row;

/// Lease the oldest claimable rows (see `outbox::store`) and return them with their case
/// versions. $1 sink, $2 limit, $3 lease end, $4 now.
///
/// The rows are locked in id order with `SKIP LOCKED` (rows another instance holds are passed
/// over). The order check is a correlated `NOT EXISTS` kept as a subplan by `OFFSET 0`: one index
/// probe per row scanned, and the scan stops at the limit. Turned into an anti-join, it was planned
/// as a nested loop over every pending row (stale statistics) or a sort of all pending rows.
const CLAIM: &str = "
    WITH claimed AS (
        UPDATE outbox o SET next_attempt_at = $3
        WHERE o.id IN (
            SELECT c.id FROM outbox c
            WHERE c.sink_id = $1 AND c.status = 'pending'
              AND (c.next_attempt_at IS NULL OR c.next_attempt_at <= $4)
              AND NOT EXISTS (SELECT 1 FROM outbox p
                              WHERE p.sink_id = c.sink_id AND p.case_id = c.case_id AND p.status = 'pending'
                                AND p.version < c.version
                              OFFSET 0)
            ORDER BY c.id
            LIMIT $2
            FOR UPDATE SKIP LOCKED)
        RETURNING o.id, o.case_id, o.version, o.idempotency_key, o.attempts)
    SELECT cl.id, cl.version, cl.idempotency_key, cl.attempts, k.unified_code, k.case_type, k.year, k.region,
           v.status, v.created_at, v.record, v.record_lz4
    FROM claimed cl
    JOIN cases k ON k.id = cl.case_id
    JOIN case_versions v ON v.case_id = cl.case_id AND v.version = cl.version
    ORDER BY cl.id";

/// Settle rows still under the lease, and count the delivered ones per sink (`outbox_delivered`)
/// in the same statement; answers how many rows were settled.
const SETTLE: &str = "
    WITH settled AS (
        UPDATE outbox o
           SET status = u.status, attempts = u.attempts, next_attempt_at = u.next_attempt_at,
               last_error = u.last_error, delivered_at = u.delivered_at
        FROM UNNEST($1::int8[], $2::text[], $3::int4[], $4::timestamptz[], $5::text[], $6::timestamptz[])
             AS u(id, status, attempts, next_attempt_at, last_error, delivered_at)
        WHERE o.id = u.id AND o.status = 'pending' AND o.next_attempt_at = $7
        RETURNING o.sink_id, o.status
    ), counted AS (
        INSERT INTO outbox_delivered (sink_id, delivered)
        SELECT sink_id, count(*) FROM settled WHERE status = 'delivered' GROUP BY sink_id
        ON CONFLICT (sink_id) DO UPDATE SET delivered = outbox_delivered.delivered + EXCLUDED.delivered
    )
    SELECT count(*) FROM settled";

/// Deliveries per sink and status, without scanning the outbox (see [`SETTLE`]).
const COUNTS: &str = "
    SELECT sink_id, 'pending', count(*) FROM outbox WHERE status = 'pending' GROUP BY sink_id
    UNION ALL
    SELECT sink_id, 'dead', count(*) FROM outbox WHERE status = 'dead' GROUP BY sink_id
    UNION ALL
    SELECT sink_id, 'superseded', count(*) FROM outbox WHERE status = 'superseded' GROUP BY sink_id
    UNION ALL
    SELECT sink_id, 'withheld', count(*) FROM outbox WHERE status = 'withheld' GROUP BY sink_id
    UNION ALL
    SELECT sink_id, 'delivered', delivered FROM outbox_delivered WHERE delivered > 0
    ORDER BY 1, 2";

const LIST: &str = "
    SELECT id, sink_id, idempotency_key, version, status, attempts, next_attempt_at, last_error, created_at,
           delivered_at
    FROM outbox
    WHERE ($1::text IS NULL OR sink_id = $1) AND ($2::text IS NULL OR status = $2)
      AND ($3::int8 IS NULL OR id < $3)
    ORDER BY id DESC LIMIT $4 OFFSET $5";

const RESET: &str = "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = NULL";

fn parse_status(s: &str) -> StoreResult<DeliveryStatus> {
    DeliveryStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("delivery status {s:?}")))
}

fn claimed_from_row(r: &Row) -> StoreResult<Claimed> {
    let status: String = r.try_get(8)?;
    Ok(Claimed {
        delivery: Delivery {
            outbox_id: r.try_get(0)?,
            version: r.try_get(1)?,
            idempotency_key: r.try_get(2)?,
            unified_code: r.try_get(4)?,
            case_type: r.try_get(5)?,
            year: r.try_get(6)?,
            region: r.try_get(7)?,
            withdrawn: status == "withdrawn",
            committed_at: r.try_get(9)?,
            record: super::compress::record_of(r.try_get(10)?, r.try_get(11)?)?,
        },
        attempts: r.try_get(3)?,
    })
}

fn delivery_from_row(r: &Row) -> StoreResult<DeliveryRow> {
    let status: String = r.try_get(4)?;
    Ok(DeliveryRow {
        id: r.try_get(0)?,
        sink_id: r.try_get(1)?,
        idempotency_key: r.try_get(2)?,
        version: r.try_get(3)?,
        status: parse_status(&status)?,
        attempts: r.try_get(5)?,
        next_attempt_at: r.try_get(6)?,
        last_error: r.try_get(7)?,
        created_at: r.try_get(8)?,
        delivered_at: r.try_get(9)?,
    })
}

#[async_trait]
impl OutboxStore for PostgresStore {
    async fn claim(
        &self,
        sink_id: &str,
        limit: usize,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Vec<Claimed>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(CLAIM).await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client.query(&stmt, &[&sink_id, &limit, &lease_until, &now]).await?;
        let mut claimed = rows.iter().map(claimed_from_row).collect::<StoreResult<Vec<_>>>()?;
        let room = limit - i64::try_from(claimed.len()).unwrap_or(limit);
        claimed.extend(super::joint_postgres_store::claim(&client, sink_id, room, now, lease_until).await?);
        Ok(claimed)
    }

    async fn settle(&self, settlements: &[Settlement], lease_until: DateTime<Utc>) -> StoreResult<u64> {
        if settlements.is_empty() {
            return Ok(0);
        }
        let joint: Vec<&Settlement> = settlements.iter().filter(|s| s.id < 0).collect();
        let joint_settled = if joint.is_empty() {
            0
        } else {
            super::joint_postgres_store::settle(&self.client().await?, &joint, lease_until).await?
        };
        let settlements: Vec<Settlement> = settlements.iter().filter(|s| s.id >= 0).cloned().collect();
        if settlements.is_empty() {
            return Ok(joint_settled);
        }
        let ids: Vec<i64> = settlements.iter().map(|s| s.id).collect();
        let statuses: Vec<&str> = settlements.iter().map(|s| s.status.as_str()).collect();
        let attempts: Vec<i32> = settlements.iter().map(|s| s.attempts).collect();
        let next: Vec<Option<DateTime<Utc>>> = settlements.iter().map(|s| s.next_attempt_at).collect();
        let errors: Vec<Option<&str>> = settlements.iter().map(|s| s.last_error.as_deref()).collect();
        let delivered: Vec<Option<DateTime<Utc>>> = settlements.iter().map(|s| s.delivered_at).collect();
        let client = self.client().await?;
        let stmt = client.prepare_cached(SETTLE).await?;
        let row = client
            .query_one(
                &stmt,
                &[&ids, &statuses, &attempts, &next, &errors, &delivered, &lease_until],
            )
            .await?;
        let settled: i64 = row.try_get(0)?;
        Ok(u64::try_from(settled).unwrap_or(0) + joint_settled)
    }

    async fn deliveries(&self, filter: &DeliveryFilter) -> StoreResult<Vec<DeliveryRow>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(LIST).await?;
        let status = filter.status.map(DeliveryStatus::as_str);
        let limit = filter.limit.unwrap_or(100);
        let offset = filter.offset.unwrap_or(0).max(0);
        let rows = client
            .query(&stmt, &[&filter.sink_id, &status, &filter.before_id, &limit, &offset])
            .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn delivery_counts(&self) -> StoreResult<Vec<DeliveryCount>> {
        let client = self.client().await?;
        let rows = client.query(COUNTS, &[]).await?;
        let mut out = rows
            .iter()
            .map(|r| {
                let status: String = r.try_get(1)?;
                Ok(DeliveryCount {
                    sink_id: r.try_get(0)?,
                    status: parse_status(&status)?,
                    count: r.try_get(2)?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        super::joint::add_joint_counts(&mut out, super::joint_postgres_store::counts(&client).await?)?;
        Ok(out)
    }

    async fn redrive(&self, target: &Redrive) -> StoreResult<RedriveReport> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let report = match target {
            Redrive::One(id) if *id < 0 => RedriveReport {
                redriven: super::joint_postgres_store::redrive_one(&tx, *id).await?,
                superseded: 0,
            },
            Redrive::One(id) => {
                let row = tx
                    .query_opt("SELECT status FROM outbox WHERE id = $1 FOR UPDATE", &[id])
                    .await?;
                let status: Option<String> = row.map(|r| r.try_get(0)).transpose()?;
                match status.as_deref() {
                    None => return Err(StoreError::NotFound(format!("delivery {id}"))),
                    Some("dead") => {
                        let which = "WHERE id = $1 AND status = 'dead'";
                        RedriveReport {
                            superseded: tx
                                .execute(&format!("{SUPERSEDE} {which} AND {NEWER_DELIVERED}"), &[id])
                                .await?,
                            redriven: tx.execute(&format!("{RESET} {which}"), &[id]).await?,
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
                let which = "WHERE sink_id = $1 AND status = 'dead'";
                RedriveReport {
                    superseded: tx
                        .execute(&format!("{SUPERSEDE} {which} AND {NEWER_DELIVERED}"), &[sink_id])
                        .await?,
                    redriven: tx.execute(&format!("{RESET} {which}"), &[sink_id]).await?
                        + super::joint_postgres_store::redrive_sink(&tx, sink_id).await?,
                }
            }
        };
        tx.commit().await?;
        Ok(report)
    }
}
