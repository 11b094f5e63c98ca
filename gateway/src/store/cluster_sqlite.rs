//! Instances and leases on SQLite: one instance runs on a SQLite store (a second `gateway run`
//! on the same file is refused), and its jobs' leases are kept the same way as on PostgreSQL,
//! by this process's clock.

use super::cluster::{ClusterStore, Fence, InstanceInfo, InstanceRow, LeaseRow};
use super::error::StoreResult;
use super::sqlite::{now, parse_time, time, SqliteStore};
use async_trait::async_trait;
use chrono::Utc;
use rusqlite::{params, OptionalExtension};
use std::time::Duration;

fn expiry(ttl: Duration) -> String {
    time(Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(10)))
}

#[async_trait]
impl ClusterStore for SqliteStore {
    async fn lease_acquire(&self, job: &str, holder: &str, ttl: Duration, grace: Duration) -> StoreResult<Option<i64>> {
        let (job, holder) = (job.to_string(), holder.to_string());
        self.with_conn(move |conn| {
            let now = now();
            let run_out_by = time(Utc::now() - chrono::Duration::from_std(grace).unwrap_or_default());
            Ok(conn
                .query_row(
                    "INSERT INTO job_leases (job, holder, epoch, acquired_at, expires_at) VALUES (?1, ?2, 1, ?3, ?4)
                     ON CONFLICT (job) DO UPDATE
                        SET holder = excluded.holder, epoch = job_leases.epoch + 1,
                            acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
                        WHERE job_leases.expires_at <= ?5 OR job_leases.holder = excluded.holder
                     RETURNING epoch",
                    params![job, holder, now, expiry(ttl), run_out_by],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn lease_renew(&self, fence: &Fence, ttl: Duration) -> StoreResult<bool> {
        let fence = fence.clone();
        self.with_conn(move |conn| {
            let n = conn.execute(
                "UPDATE job_leases SET expires_at = ?4 WHERE job = ?1 AND holder = ?2 AND epoch = ?3",
                params![fence.job, fence.holder, fence.epoch, expiry(ttl)],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn lease_release(&self, fence: &Fence) -> StoreResult<()> {
        let fence = fence.clone();
        self.with_conn(move |conn| {
            conn.execute(
                "UPDATE job_leases SET expires_at = ?4 WHERE job = ?1 AND holder = ?2 AND epoch = ?3",
                params![fence.job, fence.holder, fence.epoch, now()],
            )?;
            Ok(())
        })
        .await
    }

    async fn leases(&self) -> StoreResult<Vec<LeaseRow>> {
        self.with_conn(|conn| {
            let now = Utc::now();
            let mut stmt =
                conn.prepare_cached("SELECT job, holder, epoch, acquired_at, expires_at FROM job_leases ORDER BY job")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (job, holder, epoch, acquired, expires) = row?;
                let expires_at = parse_time(&expires)?;
                out.push(LeaseRow {
                    job,
                    holder,
                    epoch,
                    acquired_at: parse_time(&acquired)?,
                    expired: expires_at <= now,
                    expires_at,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn instance_heartbeat(&self, instance: &InstanceInfo, committed: i64) -> StoreResult<()> {
        let instance = instance.clone();
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO instances (id, host, pid, version, started_at, last_heartbeat, committed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (id) DO UPDATE SET last_heartbeat = excluded.last_heartbeat,
                    committed = excluded.committed, stopped_at = NULL",
                params![
                    instance.id,
                    instance.host,
                    instance.pid,
                    instance.version,
                    time(instance.started_at),
                    now(),
                    committed
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn leases_release_held(&self, holder: &str) -> StoreResult<u64> {
        let holder = holder.to_string();
        self.with_conn(move |conn| {
            Ok(conn.execute(
                "UPDATE job_leases SET expires_at = ?2 WHERE holder = ?1 AND expires_at > ?2",
                params![holder, now()],
            )? as u64)
        })
        .await
    }

    async fn instance_stopped(&self, id: &str) -> StoreResult<()> {
        let id = id.to_string();
        self.with_conn(move |conn| {
            conn.execute("UPDATE instances SET stopped_at = ?2 WHERE id = ?1", params![id, now()])?;
            Ok(())
        })
        .await
    }

    async fn instances_forget(&self, age: Duration) -> StoreResult<u64> {
        let before = time(Utc::now() - chrono::Duration::from_std(age).unwrap_or_default());
        self.with_conn(move |conn| {
            Ok(conn.execute("DELETE FROM instances WHERE last_heartbeat < ?1", [before])? as u64)
        })
        .await
    }

    async fn instances(&self) -> StoreResult<Vec<InstanceRow>> {
        self.with_conn(|conn| {
            let now = Utc::now();
            let mut stmt = conn.prepare_cached(
                "SELECT id, host, pid, version, started_at, last_heartbeat, committed, stopped_at
                 FROM instances ORDER BY last_heartbeat DESC",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i32>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, Option<String>>(7)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, host, pid, version, started, beat, committed, stopped) = row?;
                let last_heartbeat = parse_time(&beat)?;
                out.push(InstanceRow {
                    info: InstanceInfo {
                        id,
                        host,
                        pid,
                        version,
                        started_at: parse_time(&started)?,
                    },
                    seconds_since_heartbeat: (now - last_heartbeat).num_seconds().max(0),
                    last_heartbeat,
                    committed,
                    stopped_at: stopped.as_deref().map(parse_time).transpose()?,
                });
            }
            Ok(out)
        })
        .await
    }
}
