//! Instances and leases on PostgreSQL: expiry by the server's clock, the lease row locked by
//! every fenced commit (`FOR SHARE`), so a takeover waits for a commit in flight and a commit
//! after a takeover is refused.

use super::cluster::{ClusterStore, Fence, InstanceInfo, InstanceRow, LeaseRow};
use super::error::StoreResult;
use super::postgres::PostgresStore;
use async_trait::async_trait;
use std::time::Duration;

fn millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl ClusterStore for PostgresStore {
    async fn lease_acquire(&self, job: &str, holder: &str, ttl: Duration, grace: Duration) -> StoreResult<Option<i64>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // A commit in flight holds the row `FOR SHARE`: wait for it briefly, then try again
        // later rather than queue behind it.
        tx.batch_execute("SET LOCAL lock_timeout = '1s'").await?;
        let row = match tx
            .query_opt(
                "INSERT INTO job_leases (job, holder, epoch, acquired_at, expires_at)
                 VALUES ($1, $2, 1, now(), now() + $3 * interval '1 millisecond')
                 ON CONFLICT (job) DO UPDATE
                    SET holder = EXCLUDED.holder, epoch = job_leases.epoch + 1,
                        acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at
                    WHERE job_leases.expires_at <= now() - $4 * interval '1 millisecond'
                       OR job_leases.holder = EXCLUDED.holder
                 RETURNING epoch",
                &[&job, &holder, &(millis(ttl) as f64), &(millis(grace) as f64)],
            )
            .await
        {
            Ok(row) => row,
            // 55P03 lock_not_available: held by a commit in flight; not free now.
            Err(e) if e.code().map(|c| c.code()) == Some("55P03") => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let epoch = row.map(|r| r.try_get(0)).transpose()?;
        tx.commit().await?;
        Ok(epoch)
    }

    async fn lease_renew(&self, fence: &Fence, ttl: Duration) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Never wait long: a renewal that cannot be made in time counts as not made.
        tx.batch_execute("SET LOCAL lock_timeout = '1s'").await?;
        let n = tx
            .execute(
                "UPDATE job_leases SET expires_at = now() + $4 * interval '1 millisecond'
                 WHERE job = $1 AND holder = $2 AND epoch = $3",
                &[&fence.job, &fence.holder, &fence.epoch, &(millis(ttl) as f64)],
            )
            .await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn lease_release(&self, fence: &Fence) -> StoreResult<()> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE job_leases SET expires_at = now() WHERE job = $1 AND holder = $2 AND epoch = $3",
                &[&fence.job, &fence.holder, &fence.epoch],
            )
            .await?;
        Ok(())
    }

    async fn leases(&self) -> StoreResult<Vec<LeaseRow>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT job, holder, epoch, acquired_at, expires_at, expires_at <= now() FROM job_leases ORDER BY job",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(LeaseRow {
                    job: r.try_get(0)?,
                    holder: r.try_get(1)?,
                    epoch: r.try_get(2)?,
                    acquired_at: r.try_get(3)?,
                    expires_at: r.try_get(4)?,
                    expired: r.try_get(5)?,
                })
            })
            .collect()
    }

    async fn instance_heartbeat(&self, instance: &InstanceInfo, committed: i64) -> StoreResult<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO instances (id, host, pid, version, started_at, last_heartbeat, committed)
                 VALUES ($1, $2, $3, $4, $5, now(), $6)
                 ON CONFLICT (id) DO UPDATE SET last_heartbeat = now(), committed = EXCLUDED.committed,
                    stopped_at = NULL",
                &[
                    &instance.id,
                    &instance.host,
                    &instance.pid,
                    &instance.version,
                    &instance.started_at,
                    &committed,
                ],
            )
            .await?;
        Ok(())
    }

    async fn leases_release_held(&self, holder: &str) -> StoreResult<u64> {
        let client = self.client().await?;
        Ok(client
            .execute(
                "UPDATE job_leases SET expires_at = now() WHERE holder = $1 AND expires_at > now()",
                &[&holder],
            )
            .await?)
    }

    async fn instance_stopped(&self, id: &str) -> StoreResult<()> {
        let client = self.client().await?;
        client
            .execute("UPDATE instances SET stopped_at = now() WHERE id = $1", &[&id])
            .await?;
        Ok(())
    }

    async fn instances_forget(&self, age: Duration) -> StoreResult<u64> {
        let client = self.client().await?;
        Ok(client
            .execute(
                "DELETE FROM instances WHERE last_heartbeat < now() - $1 * interval '1 millisecond'",
                &[&(millis(age) as f64)],
            )
            .await?)
    }

    async fn instances(&self) -> StoreResult<Vec<InstanceRow>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, host, pid, version, started_at, last_heartbeat,
                        floor(extract(epoch FROM now() - last_heartbeat))::int8, committed, stopped_at
                 FROM instances ORDER BY last_heartbeat DESC",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(InstanceRow {
                    info: InstanceInfo {
                        id: r.try_get(0)?,
                        host: r.try_get(1)?,
                        pid: r.try_get(2)?,
                        version: r.try_get(3)?,
                        started_at: r.try_get(4)?,
                    },
                    last_heartbeat: r.try_get(5)?,
                    seconds_since_heartbeat: r.try_get(6)?,
                    committed: r.try_get(7)?,
                    stopped_at: r.try_get(8)?,
                })
            })
            .collect()
    }
}
