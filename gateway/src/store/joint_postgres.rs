//! The joint-inspection index on PostgreSQL: its writes inside a commit (set-wise statements
//! (one per kind of write and batch), the targets a commit touches locked with transaction-level
//! advisory locks in a fixed order, so that concurrent commits of one target's inspections see
//! each other's members), and the reads the store's [`JointStore`] (`joint_postgres_store.rs`)
//! shares. Low in the store: the commit calls it, so it names nothing of `postgres.rs`.

use super::audit_postgres::insert_audit;
use super::joint::{
    components, refresh, reopened_audit, DecisionInfo, GroupKind, GroupMember, GroupStatus, JointDelivery, JointGroup,
    JointSettings, Member, MemberChange, Refresh, StoredGroup,
};
use super::{StoreError, StoreResult};
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use tokio_postgres::Row;

/// The advisory-lock class of joint-inspection targets.
pub(crate) const TARGET_LOCK_CLASS: i32 = 0x4a4f;

/// The columns of a `joint_members` row, in the order the readers take them.
pub(crate) const MEMBER_COLUMNS: &str = "case_id, target_id, agency, source_id, check_date, task_id, group_id";
/// The columns of a `joint_groups` row, in the order the readers take them.
pub(crate) const GROUP_COLUMNS: &str =
    "g.id, g.target_id, g.kind, g.task_id, g.status, g.members, g.decision, g.previous, \
     g.joint_version, g.joint_record, g.updated_at";

/// A `joint_members` row as read.
pub(crate) fn member_of(r: &Row) -> StoreResult<Member> {
    Ok(Member {
        case_id: r.try_get(0)?,
        target_id: r.try_get(1)?,
        agency: r.try_get(2)?,
        source_id: r.try_get(3)?,
        check_date: r.try_get(4)?,
        task_id: r.try_get(5)?,
        group_id: r.try_get(6)?,
    })
}

fn decision_of(v: Option<Value>) -> StoreResult<Option<DecisionInfo>> {
    v.map(|v| serde_json::from_value(v).map_err(|e| StoreError::Corrupt(format!("joint group decision: {e}"))))
        .transpose()
}

/// A group and when it last changed, from a row of [`GROUP_COLUMNS`].
pub(crate) fn group_of(r: &Row) -> StoreResult<(StoredGroup, DateTime<Utc>)> {
    let kind: String = r.try_get(2)?;
    let status: String = r.try_get(4)?;
    Ok((
        StoredGroup {
            id: r.try_get(0)?,
            target_id: r.try_get(1)?,
            kind: GroupKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("joint group kind {kind:?}")))?,
            task_id: r.try_get(3)?,
            status: GroupStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("joint group status {status:?}")))?,
            members: r.try_get(5)?,
            decision: decision_of(r.try_get(6)?)?,
            previous: decision_of(r.try_get(7)?)?,
            joint_version: r.try_get(8)?,
            joint_record: r.try_get(9)?,
        },
        r.try_get(10)?,
    ))
}

/// A value as JSON for a `jsonb` parameter.
pub(crate) fn to_value<T: serde::Serialize>(v: &T) -> StoreResult<Value> {
    serde_json::to_value(v).map_err(|e| StoreError::Corrupt(format!("JSON: {e}")))
}

/// Write the index changes of a commit and refresh the groups of the targets they touch, inside
/// the commit's transaction. `existing` lists (sorted) the cases that were in the store before
/// this batch: only they can already be in the index, and only their rows are written here (the
/// caller writes the new cases' rows first). Most of a batch's inspections are new
/// cases of targets inspected once: their rows are written and read back in one round trip, and
/// only the targets with two inspections or more (or one that moved away) have their groups read.
pub(crate) async fn apply(
    tx: &impl GenericClient,
    changes: &[MemberChange],
    existing: &[i64],
    settings: &JointSettings,
    sinks: &[String],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let is_old = |id: i64| existing.binary_search(&id).is_ok();
    let old_ids: Vec<i64> = changes
        .iter()
        .map(|c| match c {
            MemberChange::Upsert(m) => m.case_id,
            MemberChange::Remove(id) => *id,
        })
        .filter(|id| is_old(*id))
        .collect();
    // Targets an existing case leaves (its old target's group may shrink).
    let mut left: BTreeSet<String> = BTreeSet::new();
    if !old_ids.is_empty() {
        let stmt = tx
            .prepare_cached("SELECT DISTINCT target_id FROM joint_members WHERE case_id = ANY($1)")
            .await?;
        for row in tx.query(&stmt, &[&old_ids]).await? {
            left.insert(row.try_get(0)?);
        }
    }
    let upserts: Vec<&Member> = changes
        .iter()
        .filter_map(|c| match c {
            MemberChange::Upsert(m) => Some(m),
            MemberChange::Remove(_) => None,
        })
        .collect();
    let mut targets: BTreeSet<String> = left.clone();
    targets.extend(upserts.iter().map(|m| m.target_id.clone()));
    let targets: Vec<String> = targets.into_iter().collect();
    let removed: Vec<i64> = changes
        .iter()
        .filter_map(|c| match c {
            MemberChange::Remove(id) if is_old(*id) => Some(*id),
            _ => None,
        })
        .collect();
    // One pipeline: the targets locked, the rows written, the targets' members read back.
    let lock = tx.prepare_cached(LOCK_TARGETS).await?;
    let delete = tx
        .prepare_cached("DELETE FROM joint_members WHERE case_id = ANY($1)")
        .await?;
    let read = tx
        .prepare_cached(&format!(
            "SELECT {MEMBER_COLUMNS} FROM joint_members WHERE target_id = ANY($1)"
        ))
        .await?;
    let insert = upsert_statement(tx).await?;
    // New cases' rows are written by the caller (by COPY, see `postgres_commit.rs`).
    let to_write: Vec<&Member> = upserts.iter().copied().filter(|m| is_old(m.case_id)).collect();
    let columns = MemberColumns::of(&to_write);
    let read_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&targets];
    let (_, _, _, rows) = tokio::try_join!(
        biased;
        async { tx.query_one(&lock, &[&TARGET_LOCK_CLASS, &targets]).await.map(|_| 0) },
        async {
            if removed.is_empty() {
                Ok(0)
            } else {
                tx.execute(&delete, &[&removed]).await
            }
        },
        async {
            if to_write.is_empty() {
                Ok(0)
            } else {
                tx.execute(&insert, &columns.params()).await
            }
        },
        tx.query(&read, &read_params),
    )?;
    let mut by_target: BTreeMap<String, Vec<Member>> = BTreeMap::new();
    for row in &rows {
        let m = member_of(row)?;
        by_target.entry(m.target_id.clone()).or_default().push(m);
    }
    // Only a target that has a group (a member names it), one a case left, or whose members now
    // form one can see its groups change: the others' groups are not read.
    let mut members = Vec::new();
    let mut wanted: Vec<String> = Vec::new();
    for (target, ms) in by_target {
        let has_group = ms.iter().any(|m| m.group_id.is_some());
        if has_group || left.contains(&target) || (ms.len() >= 2 && !components(&ms, settings.window_days).is_empty()) {
            wanted.push(target);
            members.extend(ms);
        }
    }
    for target in &left {
        if let Err(at) = wanted.binary_search(target) {
            wanted.insert(at, target.clone());
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT {GROUP_COLUMNS} FROM joint_groups g WHERE g.target_id = ANY($1)"
        ))
        .await?;
    let mut groups = Vec::new();
    for row in tx.query(&stmt, &[&wanted]).await? {
        groups.push(group_of(&row)?.0);
    }
    let r = refresh(&members, &groups, settings.window_days);
    write_refresh(tx, r, &members, sinks, now).await?;
    Ok(())
}

/// Transaction-level advisory locks on the targets' lock buckets (the low 8 bits of the target's
/// hash: 256 buckets), taken in bucket order by every transaction: a commit and a decision
/// touching one target wait for each other, and a batch of thousands of targets holds at most
/// that many locks (PostgreSQL's lock table is shared by all sessions).
const LOCK_TARGETS: &str = "SELECT count(pg_advisory_xact_lock($1, b)) FROM
    (SELECT DISTINCT (hashtext(t) & 255) AS b FROM unnest($2::text[]) t ORDER BY 1) s";

/// Lock the targets (see [`LOCK_TARGETS`]).
pub(crate) async fn lock_targets(tx: &impl GenericClient, targets: &[String]) -> StoreResult<()> {
    let stmt = tx.prepare_cached(LOCK_TARGETS).await?;
    tx.query_one(&stmt, &[&TARGET_LOCK_CLASS, &targets]).await?;
    Ok(())
}

/// The columns of index rows to write, as arrays for `UNNEST`.
struct MemberColumns<'m> {
    case_ids: Vec<i64>,
    targets: Vec<&'m str>,
    agencies: Vec<&'m str>,
    sources: Vec<&'m str>,
    dates: Vec<NaiveDate>,
    tasks: Vec<Option<&'m str>>,
    groups: Vec<Option<i64>>,
}

impl<'m> MemberColumns<'m> {
    fn of(members: &[&'m Member]) -> MemberColumns<'m> {
        MemberColumns {
            case_ids: members.iter().map(|m| m.case_id).collect(),
            targets: members.iter().map(|m| m.target_id.as_str()).collect(),
            agencies: members.iter().map(|m| m.agency.as_str()).collect(),
            sources: members.iter().map(|m| m.source_id.as_str()).collect(),
            dates: members.iter().map(|m| m.check_date).collect(),
            tasks: members.iter().map(|m| m.task_id.as_deref()).collect(),
            groups: members.iter().map(|m| m.group_id).collect(),
        }
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 7] {
        [
            &self.case_ids,
            &self.targets,
            &self.agencies,
            &self.sources,
            &self.dates,
            &self.tasks,
            &self.groups,
        ]
    }
}

const INSERT_MEMBERS: &str =
    "INSERT INTO joint_members (case_id, target_id, agency, source_id, check_date, task_id, group_id)
     SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::date[], $6::text[], $7::int8[])";

/// The upsert of index rows: a case already there takes the new facts, keeping its group.
async fn upsert_statement(tx: &impl GenericClient) -> StoreResult<tokio_postgres::Statement> {
    Ok(tx
        .prepare_cached(&format!(
            "{INSERT_MEMBERS} ON CONFLICT (case_id) DO UPDATE SET target_id = EXCLUDED.target_id,              agency = EXCLUDED.agency, source_id = EXCLUDED.source_id, check_date = EXCLUDED.check_date,              task_id = EXCLUDED.task_id"
        ))
        .await?)
}

/// Insert index rows set-wise (`upsert`: a case already there takes the new facts, keeping its group).
pub(crate) async fn insert_members(tx: &impl GenericClient, members: &[&Member], upsert: bool) -> StoreResult<()> {
    let stmt = if upsert {
        upsert_statement(tx).await?
    } else {
        tx.prepare_cached(INSERT_MEMBERS).await?
    };
    let columns = MemberColumns::of(members);
    tx.execute(&stmt, &columns.params()).await?;
    Ok(())
}

/// Write what a refresh changes: groups deleted, updated and created (numbered here), members moved
/// between groups, withdrawals of merged groups' joint records, audit entries of reopened groups.
pub(crate) async fn write_refresh(
    tx: &impl GenericClient,
    mut r: Refresh,
    members: &[Member],
    sinks: &[String],
    now: DateTime<Utc>,
) -> StoreResult<Refresh> {
    if r.changes.is_empty() && r.assignments(members).is_empty() {
        return Ok(r);
    }
    if !r.changes.deleted.is_empty() {
        let ids: Vec<i64> = r.changes.deleted.iter().map(|g| g.id).collect();
        let stmt = tx.prepare_cached("DELETE FROM joint_groups WHERE id = ANY($1)").await?;
        tx.execute(&stmt, &[&ids]).await?;
    }
    if !r.changes.updated.is_empty() {
        let stmt = tx
            .prepare_cached(
                "UPDATE joint_groups SET task_id = $2, members = $3, status = $4, decision = $5, previous = $6,
                                         joint_version = $7, joint_record = $8, updated_at = $9
                 WHERE id = $1",
            )
            .await?;
        for g in &r.changes.updated {
            let decision = g.decision.as_ref().map(to_value).transpose()?;
            let previous = g.previous.as_ref().map(to_value).transpose()?;
            tx.execute(
                &stmt,
                &[
                    &g.id,
                    &g.task_id,
                    &g.members,
                    &g.status.as_str(),
                    &decision,
                    &previous,
                    &g.joint_version,
                    &g.joint_record,
                    &now,
                ],
            )
            .await?;
        }
    }
    if !r.changes.created.is_empty() {
        let n = i64::try_from(r.changes.created.len()).unwrap_or(i64::MAX);
        let stmt = tx
            .prepare_cached("SELECT nextval('joint_groups_id_seq') FROM generate_series(1, $1::int8)")
            .await?;
        let rows = tx.query(&stmt, &[&n]).await?;
        if rows.len() != r.changes.created.len() {
            return Err(StoreError::Task("joint group ids: sequence answered too few".into()));
        }
        for (g, row) in r.changes.created.iter_mut().zip(&rows) {
            g.id = row.try_get(0)?;
        }
        let ids: Vec<i64> = r.changes.created.iter().map(|g| g.id).collect();
        let targets: Vec<&str> = r.changes.created.iter().map(|g| g.target_id.as_str()).collect();
        let kinds: Vec<&str> = r.changes.created.iter().map(|g| g.kind.as_str()).collect();
        let tasks: Vec<Option<&str>> = r.changes.created.iter().map(|g| g.task_id.as_deref()).collect();
        let members: Vec<String> = r
            .changes
            .created
            .iter()
            .map(|g| serde_json::to_string(&g.members).unwrap_or_else(|_| "[]".into()))
            .collect();
        let stmt = tx
            .prepare_cached(
                "INSERT INTO joint_groups (id, target_id, kind, task_id, members, status, created_at, updated_at)
                 SELECT u.id, u.t, u.k, u.task,
                        ARRAY(SELECT jsonb_array_elements_text(u.m::jsonb)::int8), 'candidate', $6, $6
                 FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(id, t, k, task, m)",
            )
            .await?;
        tx.execute(&stmt, &[&ids, &targets, &kinds, &tasks, &members, &now])
            .await?;
    }
    let assignments = r.assignments(members);
    if !assignments.is_empty() {
        let case_ids: Vec<i64> = assignments.iter().map(|a| a.0).collect();
        let groups: Vec<Option<i64>> = assignments.iter().map(|a| a.1).collect();
        let stmt = tx
            .prepare_cached(
                "UPDATE joint_members m SET group_id = u.g
                 FROM UNNEST($1::int8[], $2::int8[]) AS u(c, g) WHERE m.case_id = u.c",
            )
            .await?;
        tx.execute(&stmt, &[&case_ids, &groups]).await?;
    }
    for g in &r.changes.withdraw {
        if let Some(d) = JointDelivery::withdrawal(g) {
            insert_deliveries(tx, &d, sinks, now).await?;
        }
    }
    for (g, now_members) in &r.changes.reopened {
        insert_audit(tx, &reopened_audit(g, now_members.as_deref()), now).await?;
    }
    Ok(r)
}

/// One outbox row per sink for a joint record's version.
pub(crate) async fn insert_deliveries(
    tx: &impl GenericClient,
    d: &JointDelivery,
    sinks: &[String],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if sinks.is_empty() {
        return Ok(());
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO joint_outbox (sink_id, group_id, version, idempotency_key, region, withdrawn, record, created_at)
             SELECT s, $2, $3, $4, $5, $6, $7, $8 FROM unnest($1::text[]) s
             ON CONFLICT (sink_id, idempotency_key) DO NOTHING",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &sinks,
            &d.group_id,
            &d.version,
            &d.idempotency_key,
            &d.region,
            &d.withdrawn,
            &d.record,
            &now,
        ],
    )
    .await?;
    Ok(())
}

/// The groups of `rows` as listed, members included.
pub(crate) async fn views(client: &impl GenericClient, rows: &[Row]) -> StoreResult<Vec<(StoredGroup, JointGroup)>> {
    let mut decoded = Vec::with_capacity(rows.len());
    for r in rows {
        decoded.push(group_of(r)?);
    }
    let ids: Vec<i64> = decoded.iter().map(|(g, _)| g.id).collect();
    let stmt = client
        .prepare_cached(
            "SELECT m.case_id, c.unified_code, m.agency, m.source_id, m.check_date, m.task_id, m.group_id
             FROM joint_members m JOIN cases c ON c.id = m.case_id
             WHERE m.group_id = ANY($1) ORDER BY m.check_date, m.case_id",
        )
        .await?;
    let mut by_group: BTreeMap<i64, Vec<GroupMember>> = BTreeMap::new();
    for r in client.query(&stmt, &[&ids]).await? {
        let group: Option<i64> = r.try_get(6)?;
        if let Some(g) = group {
            by_group.entry(g).or_default().push(GroupMember {
                case_id: r.try_get(0)?,
                code: r.try_get(1)?,
                agency: r.try_get(2)?,
                source_id: r.try_get(3)?,
                check_date: r.try_get(4)?,
                task_id: r.try_get(5)?,
            });
        }
    }
    Ok(decoded
        .into_iter()
        .map(|(g, updated_at)| {
            let view = JointGroup {
                group_id: g.id,
                target_id: g.target_id.clone(),
                kind: g.kind,
                status: g.status,
                task_id: g.task_id.clone(),
                members: by_group.remove(&g.id).unwrap_or_default(),
                decision: g.decision.clone(),
                previous: g.previous.clone(),
                joint_id: (g.joint_version > 0).then(|| super::joint::joint_id(g.id)),
                joint_version: g.joint_version,
                updated_at,
            };
            (g, view)
        })
        .collect())
}

/// One group, stored and as listed.
pub(crate) async fn one_group(
    client: &impl GenericClient,
    id: i64,
    lock: bool,
) -> StoreResult<(StoredGroup, JointGroup)> {
    let sql = format!(
        "SELECT {GROUP_COLUMNS} FROM joint_groups g WHERE g.id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let rows = client.query(&sql, &[&id]).await?;
    views(client, &rows)
        .await?
        .pop()
        .ok_or_else(|| StoreError::NotFound(format!("joint group {id}")))
}

/// The listing filter (status, kind, target, agency, free text, department sources).
pub(crate) const FILTER: &str = "($1::text IS NULL OR g.status = $1) AND ($2::text IS NULL OR g.kind = $2)
     AND ($3::text IS NULL OR g.target_id = $3)
     AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM joint_members m WHERE m.group_id = g.id AND m.agency = $4))
     AND ($5::text IS NULL OR g.target_id = $5 OR EXISTS (SELECT 1 FROM joint_members m JOIN cases c ON c.id = m.case_id
                                                          WHERE m.group_id = g.id
                                                            AND (c.unified_code = $5 OR m.agency = $5 OR m.task_id = $5)))
     AND ($6::text[] IS NULL OR EXISTS (SELECT 1 FROM joint_members m WHERE m.group_id = g.id
                                          AND m.source_id = ANY($6)))";
