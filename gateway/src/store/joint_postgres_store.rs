//! [`JointStore`] on PostgreSQL, and the joint records' deliveries the outbox claims and settles
//! (see `joint_postgres.rs` for the index).

use super::audit_postgres::insert_audit;
use super::joint::{
    audit_entry, decided, refresh, Decide, GroupFilter, JointGroup, JointSettings, JointStore, Member, RebuildReport,
};
use super::joint_postgres::{
    group_of, insert_deliveries, insert_members, lock_targets, one_group, to_value, views, write_refresh, FILTER,
    GROUP_COLUMNS,
};
use super::postgres::PostgresStore;
use super::{StoreError, StoreResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use std::collections::BTreeMap;

#[async_trait]
impl JointStore for PostgresStore {
    fn joint_settings(&self) -> JointSettings {
        self.joint.get()
    }

    fn configure_joint(&self, settings: JointSettings) {
        self.joint.set(settings);
    }

    async fn joint_drain(&self, max: usize, sinks: &[String]) -> StoreResult<super::joint::DrainReport> {
        use super::joint::{DrainReport, Member, MemberChange};
        let settings = self.joint.get();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // One indexer at a time (the lock ends with the transaction); the targets' own locks
        // (taken in `apply`) order it with decisions and commit-time indexing.
        let got: bool = tx
            .query_one(
                "SELECT pg_try_advisory_xact_lock($1, 256)",
                &[&super::joint_postgres::TARGET_LOCK_CLASS],
            )
            .await?
            .try_get(0)?;
        if !got {
            return Ok(DrainReport { applied: 0, ran: false });
        }
        let limit = i64::try_from(max.max(1)).unwrap_or(i64::MAX);
        let rows = tx
            .query(
                "SELECT id, case_id, removed, target_id, agency, source_id, check_date, task_id
                 FROM joint_queue ORDER BY id LIMIT $1",
                &[&limit],
            )
            .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(DrainReport { applied: 0, ran: true });
        }
        // The last queued facts of each case win (a case's versions are queued in order).
        let mut ids = Vec::with_capacity(rows.len());
        let mut last: BTreeMap<i64, MemberChange> = BTreeMap::new();
        for r in &rows {
            ids.push(r.try_get::<_, i64>(0)?);
            let case_id: i64 = r.try_get(1)?;
            let removed: bool = r.try_get(2)?;
            let target: Option<String> = r.try_get(3)?;
            let date: Option<chrono::NaiveDate> = r.try_get(6)?;
            let change = match (removed, target, date) {
                (false, Some(target_id), Some(check_date)) => MemberChange::Upsert(Member {
                    case_id,
                    target_id,
                    agency: r.try_get::<_, Option<String>>(4)?.unwrap_or_default(),
                    source_id: r.try_get::<_, Option<String>>(5)?.unwrap_or_default(),
                    check_date,
                    task_id: r.try_get(7)?,
                    group_id: None,
                }),
                _ => MemberChange::Remove(case_id),
            };
            last.insert(case_id, change);
        }
        let existing: Vec<i64> = last.keys().copied().collect();
        let changes: Vec<MemberChange> = last.into_values().collect();
        super::joint_postgres::apply(&tx, &changes, &existing, &settings, sinks, Utc::now()).await?;
        tx.execute("DELETE FROM joint_queue WHERE id = ANY($1)", &[&ids])
            .await?;
        tx.commit().await?;
        Ok(DrainReport {
            applied: ids.len(),
            ran: true,
        })
    }

    async fn joint_backlog(&self) -> StoreResult<i64> {
        let client = self.client().await?;
        Ok(client
            .query_one("SELECT count(*) FROM joint_queue", &[])
            .await?
            .try_get(0)?)
    }

    async fn joint_rebuild(&self) -> StoreResult<RebuildReport> {
        let window = self.joint.get().window_days;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
        // One rebuild at a time, and no commit's index writes in between.
        tx.batch_execute("LOCK TABLE joint_members, joint_groups, joint_queue IN EXCLUSIVE MODE")
            .await?;
        // Everything queued for the background indexer is committed, so read below.
        tx.batch_execute("DELETE FROM joint_members; DELETE FROM joint_queue")
            .await?;
        let now = Utc::now();
        // jsonb records (written before migration 0006) give their fields here; compressed ones
        // are read in full and parsed for these fields only.
        let stmt = tx
            .prepare(
                "SELECT c.id, c.agency_credit_code, c.source_id, v.record #>> '{target,id_number}',
                        v.record #>> '{inspection,check_date}', v.record #>> '{inspection,joint_task_id}',
                        CASE WHEN v.record IS NULL THEN v.record_lz4 END,
                        ARRAY(SELECT p ->> 'credit_code' FROM jsonb_array_elements(
                                  CASE WHEN jsonb_typeof(v.record #> '{inspection,joint_participants}') = 'array'
                                       THEN v.record #> '{inspection,joint_participants}' ELSE '[]'::jsonb END) p
                              WHERE p ->> 'credit_code' IS NOT NULL)
                 FROM cases c
                 JOIN case_versions v ON v.case_id = c.id AND v.version = c.current_version
                 WHERE c.case_type = 'inspection' AND NOT c.withdrawn",
            )
            .await?;
        let portal = tx.bind(&stmt, &[]).await?;
        let mut members: Vec<Member> = Vec::new();
        loop {
            let rows = tx.query_portal(&portal, 20_000).await?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let lz4: Option<Vec<u8>> = r.try_get(6)?;
                let found = match lz4 {
                    Some(block) => super::joint::facts_of_json(&super::compress::decompress(&block)?),
                    None => {
                        let target: Option<String> = r.try_get(3)?;
                        let date: Option<String> = r.try_get(4)?;
                        let task: Option<String> = r.try_get(5)?;
                        let agency: String = r.try_get(1)?;
                        let participants: Vec<String> = r.try_get(7)?;
                        let participants: Vec<&str> = participants.iter().map(String::as_str).collect();
                        target.and_then(|t| {
                            super::joint::facts_of_parts(&t, date.as_deref(), task.as_deref(), &agency, &participants)
                        })
                    }
                };
                let Some((target, facts)) = found else {
                    continue;
                };
                members.push(Member {
                    case_id: r.try_get(0)?,
                    target_id: target,
                    agency: r.try_get(1)?,
                    source_id: r.try_get(2)?,
                    check_date: facts.check_date,
                    task_id: facts.task_id,
                    group_id: None,
                });
            }
        }
        let mut groups = Vec::new();
        for row in tx
            .query(&format!("SELECT {GROUP_COLUMNS} FROM joint_groups g"), &[])
            .await?
        {
            groups.push(group_of(&row)?.0);
        }
        // The groups first (new ones numbered), then the members with their groups, set-wise.
        let r = write_refresh(&tx, refresh(&members, &groups, window), &[], &[], now).await?;
        let assigned: std::collections::HashMap<i64, Option<i64>> = r.assignments(&members).into_iter().collect();
        for m in &mut members {
            m.group_id = assigned.get(&m.case_id).copied().flatten();
        }
        for chunk in members.chunks(50_000) {
            let refs: Vec<&Member> = chunk.iter().collect();
            insert_members(&tx, &refs, false).await?;
        }
        let groups: i64 = tx
            .query_one("SELECT count(*) FROM joint_groups", &[])
            .await?
            .try_get(0)?;
        tx.commit().await?;
        Ok(RebuildReport {
            inspections: i64::try_from(members.len()).unwrap_or(i64::MAX),
            groups,
        })
    }

    async fn joint_groups(&self, filter: &GroupFilter) -> StoreResult<(Vec<JointGroup>, i64)> {
        let client = self.client().await?;
        let status = filter.status.map(|s| s.as_str());
        let kind = filter.kind.map(|k| k.as_str());
        let q = filter.q.as_deref().map(|q| q.trim().to_uppercase());
        let page =
            format!("SELECT {GROUP_COLUMNS} FROM joint_groups g WHERE {FILTER} ORDER BY g.id LIMIT $7 OFFSET $8");
        let count = format!("SELECT count(*) FROM joint_groups g WHERE {FILTER}");
        let page_params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] = [
            &status,
            &kind,
            &filter.target,
            &filter.agency,
            &q,
            &filter.sources,
            &filter.limit,
            &filter.offset,
        ];
        let (rows, total) = tokio::try_join!(
            client.query(&page, &page_params),
            client.query_one(&count, &page_params[..6]),
        )?;
        let items = views(&client, &rows).await?.into_iter().map(|(_, v)| v).collect();
        Ok((items, total.try_get(0)?))
    }

    async fn joint_group(&self, id: i64) -> StoreResult<JointGroup> {
        let client = self.client().await?;
        Ok(one_group(&client, id, false).await?.1)
    }

    async fn joint_decide(
        &self,
        id: i64,
        decide: &Decide,
        actor: &str,
        reason: &str,
        sinks: &[String],
    ) -> StoreResult<JointGroup> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = Utc::now();
        // The group's target first, as a commit refreshing its groups does: a decision and a
        // commit touching the same target never work on each other's stale state.
        let target: String = tx
            .query_opt("SELECT target_id FROM joint_groups WHERE id = $1", &[&id])
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("joint group {id}")))?
            .try_get(0)?;
        lock_targets(&tx, std::slice::from_ref(&target)).await?;
        let (g, view) = one_group(&tx, id, true).await?;
        let (next, delivery) =
            decided(&g, &view, decide, actor, reason, now).map_err(|e| StoreError::Conflict(e.to_string()))?;
        let decision = next.decision.as_ref().map(to_value).transpose()?;
        let previous = next.previous.as_ref().map(to_value).transpose()?;
        tx.execute(
            "UPDATE joint_groups SET status = $2, decision = $3, previous = $4, joint_version = $5,
                                     joint_record = $6, updated_at = $7
             WHERE id = $1",
            &[
                &id,
                &next.status.as_str(),
                &decision,
                &previous,
                &next.joint_version,
                &next.joint_record,
                &now,
            ],
        )
        .await?;
        if let Some(d) = &delivery {
            insert_deliveries(&tx, d, sinks, now).await?;
        }
        insert_audit(&tx, &audit_entry(&view, decide, actor, reason), now).await?;
        let (_, view) = one_group(&tx, id, false).await?;
        tx.commit().await?;
        Ok(view)
    }

    async fn joint_counts(&self) -> StoreResult<BTreeMap<String, i64>> {
        let client = self.client().await?;
        let mut out = BTreeMap::new();
        for r in client
            .query("SELECT status, count(*) FROM joint_groups GROUP BY status", &[])
            .await?
        {
            out.insert(r.try_get(0)?, r.try_get(1)?);
        }
        Ok(out)
    }
}

/// Lease the oldest claimable joint-record deliveries of a sink (like the outbox's `CLAIM`).
/// $1 sink, $2 limit, $3 lease end, $4 now.
const CLAIM: &str = "
    UPDATE joint_outbox o SET next_attempt_at = $3
    WHERE o.id IN (
        SELECT c.id FROM joint_outbox c
        WHERE c.sink_id = $1 AND c.status = 'pending'
          AND (c.next_attempt_at IS NULL OR c.next_attempt_at <= $4)
          AND NOT EXISTS (SELECT 1 FROM joint_outbox p
                          WHERE p.sink_id = c.sink_id AND p.group_id = c.group_id AND p.status = 'pending'
                            AND p.version < c.version)
        ORDER BY c.id
        LIMIT $2
        FOR UPDATE SKIP LOCKED)
    RETURNING o.id, o.version, o.idempotency_key, o.attempts, o.group_id, o.region, o.withdrawn, o.created_at,
              o.record";

/// Claim up to `limit` joint-record deliveries of `sink_id`: like case versions, version N+1 of a
/// joint record never leaves before version N. Their outbox ids are negative
/// (`-joint_outbox.id`), so that settling tells them apart.
pub(crate) async fn claim(
    client: &impl GenericClient,
    sink_id: &str,
    limit: i64,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> StoreResult<Vec<super::outbox::Claimed>> {
    if limit <= 0 {
        return Ok(Vec::new());
    }
    let stmt = client.prepare_cached(CLAIM).await?;
    let mut rows = client.query(&stmt, &[&sink_id, &limit, &lease_until, &now]).await?;
    rows.sort_by_key(|r| r.try_get::<_, i64>(0).unwrap_or(0));
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: i64 = r.try_get(0)?;
        let group: i64 = r.try_get(4)?;
        let committed_at: DateTime<Utc> = r.try_get(7)?;
        out.push(super::outbox::Claimed {
            delivery: adapters::sinks::Delivery {
                outbox_id: -id,
                version: r.try_get(1)?,
                idempotency_key: r.try_get(2)?,
                unified_code: super::joint::joint_id(group),
                case_type: super::joint::JOINT_RECORD_TYPE.to_string(),
                year: chrono::Datelike::year(&committed_at),
                region: r.try_get(5)?,
                withdrawn: r.try_get(6)?,
                committed_at,
                record: r.try_get(8)?,
            },
            attempts: r.try_get(3)?,
        });
    }
    Ok(out)
}

/// Settle joint-record deliveries (negative outbox ids) still under the lease.
pub(crate) async fn settle(
    client: &impl GenericClient,
    settlements: &[&super::outbox::Settlement],
    lease_until: DateTime<Utc>,
) -> StoreResult<u64> {
    if settlements.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = settlements.iter().map(|s| -s.id).collect();
    let statuses: Vec<&str> = settlements.iter().map(|s| s.status.as_str()).collect();
    let attempts: Vec<i32> = settlements.iter().map(|s| s.attempts).collect();
    let next: Vec<Option<DateTime<Utc>>> = settlements.iter().map(|s| s.next_attempt_at).collect();
    let errors: Vec<Option<&str>> = settlements.iter().map(|s| s.last_error.as_deref()).collect();
    let delivered: Vec<Option<DateTime<Utc>>> = settlements.iter().map(|s| s.delivered_at).collect();
    let stmt = client
        .prepare_cached(
            "UPDATE joint_outbox o
                SET status = u.status, attempts = u.attempts, next_attempt_at = u.next_attempt_at,
                    last_error = u.last_error, delivered_at = u.delivered_at
             FROM UNNEST($1::int8[], $2::text[], $3::int4[], $4::timestamptz[], $5::text[], $6::timestamptz[])
                  AS u(id, status, attempts, next_attempt_at, last_error, delivered_at)
             WHERE o.id = u.id AND o.status = 'pending' AND o.next_attempt_at = $7",
        )
        .await?;
    let n = client
        .execute(
            &stmt,
            &[&ids, &statuses, &attempts, &next, &errors, &delivered, &lease_until],
        )
        .await?;
    Ok(n)
}

/// Joint-record deliveries per sink and status (added to the outbox's counts).
pub(crate) async fn counts(client: &impl GenericClient) -> StoreResult<Vec<(String, String, i64)>> {
    let mut out = Vec::new();
    for r in client
        .query(
            "SELECT sink_id, status, count(*) FROM joint_outbox GROUP BY sink_id, status",
            &[],
        )
        .await?
    {
        out.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
    }
    Ok(out)
}

/// Make the dead joint-record deliveries of a sink pending again; how many.
pub(crate) async fn redrive_sink(client: &impl GenericClient, sink_id: &str) -> StoreResult<u64> {
    Ok(client
        .execute(
            "UPDATE joint_outbox SET status = 'pending', attempts = 0, next_attempt_at = NULL
             WHERE sink_id = $1 AND status = 'dead'",
            &[&sink_id],
        )
        .await?)
}

/// Make one dead joint-record delivery (outbox id `-id`) pending again.
pub(crate) async fn redrive_one(client: &impl GenericClient, id: i64) -> StoreResult<u64> {
    let row = client
        .query_opt("SELECT status FROM joint_outbox WHERE id = $1 FOR UPDATE", &[&-id])
        .await?;
    let status: Option<String> = row.map(|r| r.try_get(0)).transpose()?;
    match status.as_deref() {
        None => Err(StoreError::NotFound(format!("delivery {id}"))),
        Some("dead") => Ok(client
            .execute(
                "UPDATE joint_outbox SET status = 'pending', attempts = 0, next_attempt_at = NULL
                 WHERE id = $1 AND status = 'dead'",
                &[&-id],
            )
            .await?),
        Some(other) => Err(StoreError::Conflict(format!(
            "投递 {id} 的状态是 {other}，只能重投死信 / delivery {id} is {other}: only dead deliveries can be re-driven"
        ))),
    }
}
