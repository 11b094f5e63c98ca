//! The joint-inspection index on SQLite: its writes inside a commit and the reads the store's
//! [`JointStore`] (`joint_sqlite_store.rs`) shares. Low in the store: the SQLite store's commit
//! calls it, so it names nothing of `sqlite.rs`.

use super::joint::{
    refresh, reopened_audit, DecisionInfo, GroupKind, GroupMember, GroupStatus, JointDelivery, JointGroup,
    JointSettings, Member, MemberChange, Refresh, StoredGroup,
};
use super::types::AuditEntry;
use super::{StoreError, StoreResult};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{BTreeMap, BTreeSet};

/// A timestamp as the SQLite store writes it (RFC 3339, UTC, microseconds: text order is time order).
pub(crate) fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Read a timestamp written by [`time`].
pub(crate) fn parse_time(s: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp {s:?}: {e}")))
}

/// A value as JSON text (as the SQLite store keeps JSON columns).
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("JSON: {e}")))
}

/// Append an audit entry inside the caller's transaction, identifiers masked ([`AuditEntry::masked`]).
pub(crate) fn insert_audit(conn: &Connection, entry: &AuditEntry, now: &str) -> StoreResult<()> {
    let entry = entry.masked();
    conn.execute(
        "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![now, entry.actor, entry.action, entry.subject, to_json(&entry.detail)?],
    )?;
    Ok(())
}

/// The columns of a `joint_members` row, in the order the readers take them.
pub(crate) const MEMBER_COLUMNS: &str = "case_id, target_id, agency, source_id, check_date, task_id, group_id";
/// The columns of a `joint_groups` row, in the order the readers take them.
pub(crate) const GROUP_COLUMNS: &str =
    "id, target_id, kind, task_id, status, members, decision, previous, joint_version, joint_record, updated_at";

/// Read a check date as stored (`YYYY-MM-DD`).
pub(crate) fn parse_date(s: &str) -> StoreResult<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| StoreError::Corrupt(format!("check date {s:?}: {e}")))
}

/// A `joint_members` row as read.
pub(crate) type MemberRow = (i64, String, String, String, String, Option<String>, Option<i64>);

/// A `joint_members` row as read.
pub(crate) fn member_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<MemberRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn members_where(conn: &Connection, sql_where: &str, param: &dyn rusqlite::ToSql) -> StoreResult<Vec<Member>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {MEMBER_COLUMNS} FROM joint_members WHERE {sql_where}"))?;
    let rows = stmt.query_map([param], member_of)?;
    let mut out = Vec::new();
    for row in rows {
        let (case_id, target_id, agency, source_id, date, task_id, group_id) = row?;
        out.push(Member {
            case_id,
            target_id,
            agency,
            source_id,
            check_date: parse_date(&date)?,
            task_id,
            group_id,
        });
    }
    Ok(out)
}

/// A `joint_groups` row as read.
pub(crate) type GroupRow = (
    i64,
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    i32,
    Option<String>,
    String,
);

/// A `joint_groups` row as read.
pub(crate) fn group_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<GroupRow> {
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
    ))
}

fn json_opt<T: serde::de::DeserializeOwned>(s: Option<String>) -> StoreResult<Option<T>> {
    s.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("stored joint group: {e}"))))
        .transpose()
}

/// A group and when it last changed, from its row.
pub(crate) fn decode_group(r: GroupRow) -> StoreResult<(StoredGroup, chrono::DateTime<chrono::Utc>)> {
    let kind = GroupKind::parse(&r.2).ok_or_else(|| StoreError::Corrupt(format!("joint group kind {:?}", r.2)))?;
    let status =
        GroupStatus::parse(&r.4).ok_or_else(|| StoreError::Corrupt(format!("joint group status {:?}", r.4)))?;
    let members: Vec<i64> =
        serde_json::from_str(&r.5).map_err(|e| StoreError::Corrupt(format!("joint group members: {e}")))?;
    Ok((
        StoredGroup {
            id: r.0,
            target_id: r.1,
            kind,
            task_id: r.3,
            status,
            decision: json_opt::<DecisionInfo>(r.6)?,
            previous: json_opt::<DecisionInfo>(r.7)?,
            members,
            joint_version: r.8,
            joint_record: json_opt(r.9)?,
        },
        parse_time(&r.10)?,
    ))
}

fn groups_of_target(conn: &Connection, target: &str) -> StoreResult<Vec<StoredGroup>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {GROUP_COLUMNS} FROM joint_groups WHERE target_id = ?1"
    ))?;
    let rows = stmt.query_map([target], group_row)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(decode_group(row?)?.0);
    }
    Ok(out)
}

/// Write the index changes of a commit and refresh the groups of the targets they touch, inside
/// the commit's transaction.
pub(crate) fn apply(
    conn: &Connection,
    changes: &[MemberChange],
    settings: &JointSettings,
    sinks: &[String],
    now: &str,
) -> StoreResult<()> {
    let mut targets: BTreeSet<String> = BTreeSet::new();
    {
        let mut old_target = conn.prepare_cached("SELECT target_id FROM joint_members WHERE case_id = ?1")?;
        let mut upsert = conn.prepare_cached(
            "INSERT INTO joint_members (case_id, target_id, agency, source_id, check_date, task_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (case_id) DO UPDATE SET target_id = excluded.target_id, agency = excluded.agency,
                source_id = excluded.source_id, check_date = excluded.check_date, task_id = excluded.task_id",
        )?;
        let mut remove = conn.prepare_cached("DELETE FROM joint_members WHERE case_id = ?1")?;
        for change in changes {
            let case_id = match change {
                MemberChange::Upsert(m) => m.case_id,
                MemberChange::Remove(id) => *id,
            };
            if let Some(t) = old_target.query_row([case_id], |r| r.get::<_, String>(0)).optional()? {
                targets.insert(t);
            }
            match change {
                MemberChange::Upsert(m) => {
                    upsert.execute(params![
                        m.case_id,
                        m.target_id,
                        m.agency,
                        m.source_id,
                        m.check_date.to_string(),
                        m.task_id
                    ])?;
                    targets.insert(m.target_id.clone());
                }
                MemberChange::Remove(id) => {
                    remove.execute([id])?;
                }
            }
        }
    }
    let mut members = Vec::new();
    let mut groups = Vec::new();
    for t in &targets {
        members.extend(members_where(conn, "target_id = ?1", t)?);
        groups.extend(groups_of_target(conn, t)?);
    }
    let r = refresh(&members, &groups, settings.window_days);
    write_refresh(conn, r, &members, sinks, now)
}

/// Write what a refresh changes: groups deleted, updated and created (numbered here), members moved
/// between groups, withdrawals of merged groups' joint records, audit entries of reopened groups.
pub(crate) fn write_refresh(
    conn: &Connection,
    mut r: Refresh,
    members: &[Member],
    sinks: &[String],
    now: &str,
) -> StoreResult<()> {
    if r.changes.is_empty() && r.assignments(members).is_empty() {
        return Ok(());
    }
    {
        let mut delete = conn.prepare_cached("DELETE FROM joint_groups WHERE id = ?1")?;
        for g in &r.changes.deleted {
            delete.execute([g.id])?;
        }
        let mut update = conn.prepare_cached(
            "UPDATE joint_groups SET task_id = ?2, members = ?3, status = ?4, decision = ?5, previous = ?6,
                                     joint_version = ?7, joint_record = ?8, updated_at = ?9
             WHERE id = ?1",
        )?;
        for g in &r.changes.updated {
            update.execute(params![
                g.id,
                g.task_id,
                to_json(&g.members)?,
                g.status.as_str(),
                g.decision.as_ref().map(to_json).transpose()?,
                g.previous.as_ref().map(to_json).transpose()?,
                g.joint_version,
                g.joint_record.as_ref().map(to_json).transpose()?,
                now
            ])?;
        }
        let mut insert = conn.prepare_cached(
            "INSERT INTO joint_groups (target_id, kind, task_id, members, status, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, 'candidate', ?5, ?5) RETURNING id",
        )?;
        for g in &mut r.changes.created {
            g.id = insert.query_row(
                params![g.target_id, g.kind.as_str(), g.task_id, to_json(&g.members)?, now],
                |row| row.get(0),
            )?;
        }
        let mut assign = conn.prepare_cached("UPDATE joint_members SET group_id = ?2 WHERE case_id = ?1")?;
        for (case_id, group) in r.assignments(members) {
            assign.execute(params![case_id, group])?;
        }
    }
    for g in &r.changes.withdraw {
        if let Some(d) = JointDelivery::withdrawal(g) {
            insert_deliveries(conn, &d, sinks, now)?;
        }
    }
    for (g, now_members) in &r.changes.reopened {
        insert_audit(conn, &reopened_audit(g, now_members.as_deref()), now)?;
    }
    Ok(())
}

/// One outbox row per sink for a joint record's version.
pub(crate) fn insert_deliveries(conn: &Connection, d: &JointDelivery, sinks: &[String], now: &str) -> StoreResult<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO joint_outbox (sink_id, group_id, version, idempotency_key, region, withdrawn, record, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (sink_id, idempotency_key) DO NOTHING",
    )?;
    for sink in sinks {
        insert.execute(params![
            sink,
            d.group_id,
            d.version,
            d.idempotency_key,
            d.region,
            d.withdrawn,
            to_json(&d.record)?,
            now
        ])?;
    }
    Ok(())
}

/// The groups with these ids as listed, members included.
pub(crate) fn views(conn: &Connection, rows: Vec<GroupRow>) -> StoreResult<Vec<(StoredGroup, JointGroup)>> {
    let mut decoded = Vec::with_capacity(rows.len());
    for r in rows {
        decoded.push(decode_group(r)?);
    }
    let ids: Vec<i64> = decoded.iter().map(|(g, _)| g.id).collect();
    let mut by_group: BTreeMap<i64, Vec<GroupMember>> = BTreeMap::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT m.case_id, c.unified_code, m.agency, m.source_id, m.check_date, m.task_id, m.group_id
             FROM joint_members m JOIN cases c ON c.id = m.case_id
             WHERE m.group_id IN (SELECT value FROM json_each(?1))
             ORDER BY m.check_date, m.case_id",
        )?;
        let rows = stmt.query_map([to_json(&ids)?], member_of)?;
        for row in rows {
            let (case_id, code, agency, source_id, date, task_id, group_id) = row?;
            if let Some(g) = group_id {
                by_group.entry(g).or_default().push(GroupMember {
                    case_id,
                    code,
                    agency,
                    source_id,
                    check_date: parse_date(&date)?,
                    task_id,
                });
            }
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
pub(crate) fn one_group(conn: &Connection, id: i64) -> StoreResult<(StoredGroup, JointGroup)> {
    let row = conn
        .query_row(
            &format!("SELECT {GROUP_COLUMNS} FROM joint_groups WHERE id = ?1"),
            [id],
            group_row,
        )
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("joint group {id}")))?;
    views(conn, vec![row])?
        .pop()
        .ok_or_else(|| StoreError::NotFound(format!("joint group {id}")))
}

/// The listing filter (status, kind, target, agency, free text, department sources).
pub(crate) const FILTER: &str =
    "(?1 IS NULL OR g.status = ?1) AND (?2 IS NULL OR g.kind = ?2) AND (?3 IS NULL OR g.target_id = ?3)
     AND (?4 IS NULL OR EXISTS (SELECT 1 FROM joint_members m WHERE m.group_id = g.id AND m.agency = ?4))
     AND (?5 IS NULL OR g.target_id = ?5 OR EXISTS (SELECT 1 FROM joint_members m JOIN cases c ON c.id = m.case_id
                                                    WHERE m.group_id = g.id
                                                      AND (c.unified_code = ?5 OR m.agency = ?5 OR m.task_id = ?5)))
     AND (?6 IS NULL OR EXISTS (SELECT 1 FROM joint_members m WHERE m.group_id = g.id
                                  AND m.source_id IN (SELECT value FROM json_each(?6))))";
