//! [`JointStore`] on the embedded SQLite store, and the joint records' deliveries the outbox
//! claims and settles (see `joint_sqlite.rs` for the index).

use super::joint::{
    audit_entry, decided, refresh, Decide, GroupFilter, JointGroup, JointSettings, JointStore, Member, RebuildReport,
};
use super::joint_sqlite::{
    decode_group, group_row, insert_audit, insert_deliveries, member_of, one_group, parse_date, parse_time, time,
    to_json, views, write_refresh, FILTER, GROUP_COLUMNS, MEMBER_COLUMNS,
};
use super::sqlite::{now, SqliteStore};
use super::{StoreError, StoreResult};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::collections::BTreeMap;

#[async_trait]
impl JointStore for SqliteStore {
    fn joint_settings(&self) -> JointSettings {
        self.joint.get()
    }

    fn configure_joint(&self, settings: JointSettings) {
        self.joint.set(settings);
    }

    /// SQLite keeps the index at commit: nothing is ever queued.
    async fn joint_drain(&self, _max: usize, _sinks: &[String]) -> StoreResult<super::joint::DrainReport> {
        Ok(super::joint::DrainReport { applied: 0, ran: true })
    }

    async fn joint_backlog(&self) -> StoreResult<i64> {
        Ok(0)
    }

    async fn joint_rebuild(&self) -> StoreResult<RebuildReport> {
        let window = self.joint.get().window_days;
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now();
            tx.execute("DELETE FROM joint_members", [])?;
            {
                let mut select = tx.prepare(
                    "SELECT c.id, c.agency_credit_code, c.source_id, v.record FROM cases c
                     JOIN case_versions v ON v.case_id = c.id AND v.version = c.current_version
                     WHERE c.case_type = 'inspection' AND c.withdrawn = 0",
                )?;
                let mut insert = tx.prepare(
                    "INSERT INTO joint_members (case_id, target_id, agency, source_id, check_date, task_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                let mut rows = select.query([])?;
                while let Some(r) = rows.next()? {
                    let record: String = r.get(3)?;
                    let Some((target, facts)) = super::joint::facts_of_json(record.as_bytes()) else {
                        continue;
                    };
                    insert.execute(params![
                        r.get::<_, i64>(0)?,
                        target,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        facts.check_date.to_string(),
                        facts.task_id
                    ])?;
                }
            }
            let members = {
                let mut stmt = tx.prepare(&format!("SELECT {MEMBER_COLUMNS} FROM joint_members"))?;
                let rows = stmt.query_map([], member_of)?;
                let mut out = Vec::new();
                for row in rows {
                    let (case_id, target_id, agency, source_id, date, task_id, _) = row?;
                    out.push(Member {
                        case_id,
                        target_id,
                        agency,
                        source_id,
                        check_date: parse_date(&date)?,
                        task_id,
                        group_id: None,
                    });
                }
                out
            };
            let groups = {
                let mut stmt = tx.prepare(&format!("SELECT {GROUP_COLUMNS} FROM joint_groups"))?;
                let rows = stmt.query_map([], group_row)?;
                let mut out = Vec::new();
                for row in rows {
                    out.push(decode_group(row?)?.0);
                }
                out
            };
            let r = refresh(&members, &groups, window);
            write_refresh(&tx, r, &members, &[], &now)?;
            let groups: i64 = tx.query_row("SELECT count(*) FROM joint_groups", [], |r| r.get(0))?;
            tx.commit()?;
            Ok(RebuildReport {
                inspections: i64::try_from(members.len()).unwrap_or(i64::MAX),
                groups,
            })
        })
        .await
    }

    async fn joint_groups(&self, filter: &GroupFilter) -> StoreResult<(Vec<JointGroup>, i64)> {
        let f = filter.clone();
        self.with_conn(move |conn| {
            let sources = f.sources.as_ref().map(to_json).transpose()?;
            let q = f.q.as_deref().map(|q| q.trim().to_uppercase());
            let p = params![
                f.status.map(|s| s.as_str()),
                f.kind.map(|k| k.as_str()),
                f.target,
                f.agency,
                q,
                sources,
                f.limit,
                f.offset
            ];
            let rows = {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {} FROM joint_groups g WHERE {FILTER} ORDER BY g.id LIMIT ?7 OFFSET ?8",
                    GROUP_COLUMNS
                        .split(", ")
                        .map(|c| format!("g.{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))?;
                let rows = stmt.query_map(p, group_row)?;
                rows.collect::<Result<Vec<_>, _>>()?
            };
            let total: i64 = conn.query_row(
                &format!("SELECT count(*) FROM joint_groups g WHERE {FILTER} AND ?7 IS NOT NULL AND ?8 IS NOT NULL"),
                p,
                |r| r.get(0),
            )?;
            let items = views(conn, rows)?.into_iter().map(|(_, v)| v).collect();
            Ok((items, total))
        })
        .await
    }

    async fn joint_group(&self, id: i64) -> StoreResult<JointGroup> {
        self.with_conn(move |conn| Ok(one_group(conn, id)?.1)).await
    }

    async fn joint_decide(
        &self,
        id: i64,
        decide: &Decide,
        actor: &str,
        reason: &str,
        sinks: &[String],
    ) -> StoreResult<JointGroup> {
        let (decide, actor, reason, sinks) = (decide.clone(), actor.to_string(), reason.to_string(), sinks.to_vec());
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now_text = now();
            let (g, view) = one_group(&tx, id)?;
            let at = parse_time(&now_text)?;
            let (next, delivery) =
                decided(&g, &view, &decide, &actor, &reason, at).map_err(|e| StoreError::Conflict(e.to_string()))?;
            tx.execute(
                "UPDATE joint_groups SET status = ?2, decision = ?3, previous = ?4, joint_version = ?5,
                                         joint_record = ?6, updated_at = ?7
                 WHERE id = ?1",
                params![
                    id,
                    next.status.as_str(),
                    next.decision.as_ref().map(to_json).transpose()?,
                    next.previous.as_ref().map(to_json).transpose()?,
                    next.joint_version,
                    next.joint_record.as_ref().map(to_json).transpose()?,
                    now_text
                ],
            )?;
            if let Some(d) = &delivery {
                insert_deliveries(&tx, d, &sinks, &now_text)?;
            }
            insert_audit(&tx, &audit_entry(&view, &decide, &actor, &reason), &now_text)?;
            let (_, view) = one_group(&tx, id)?;
            tx.commit()?;
            Ok(view)
        })
        .await
    }

    async fn joint_counts(&self) -> StoreResult<BTreeMap<String, i64>> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached("SELECT status, count(*) FROM joint_groups GROUP BY status")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            Ok(rows.collect::<Result<BTreeMap<_, _>, _>>()?)
        })
        .await
    }
}

/// Claim up to `limit` joint-record deliveries of `sink_id` (inside the outbox claim's
/// transaction): like case versions, version N+1 of a joint record never leaves before version N.
/// Their outbox ids are negative (`-joint_outbox.id`), so that settling tells them apart.
pub(crate) fn claim(
    conn: &Connection,
    sink_id: &str,
    limit: i64,
    now: &str,
    lease_until: &str,
) -> StoreResult<Vec<super::outbox::Claimed>> {
    if limit <= 0 {
        return Ok(Vec::new());
    }
    let mut select = conn.prepare_cached(
        "SELECT o.id, o.version, o.idempotency_key, o.attempts, o.group_id, o.region, o.withdrawn, o.created_at,
                o.record
         FROM joint_outbox o
         WHERE o.sink_id = ?1 AND o.status = 'pending' AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= ?2)
           AND NOT EXISTS (SELECT 1 FROM joint_outbox p WHERE p.sink_id = o.sink_id AND p.group_id = o.group_id
                             AND p.status = 'pending' AND p.version < o.version)
         ORDER BY o.id LIMIT ?3",
    )?;
    let rows = select.query_map(params![sink_id, now, limit], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i32>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i32>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, bool>(6)?,
            r.get::<_, String>(7)?,
            r.get::<_, String>(8)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let r = row?;
        let committed_at = parse_time(&r.7)?;
        out.push(super::outbox::Claimed {
            delivery: adapters::sinks::Delivery {
                outbox_id: -r.0,
                version: r.1,
                idempotency_key: r.2,
                unified_code: super::joint::joint_id(r.4),
                case_type: super::joint::JOINT_RECORD_TYPE.to_string(),
                year: chrono::Datelike::year(&committed_at),
                region: r.5,
                withdrawn: r.6,
                committed_at,
                record: serde_json::from_str(&r.8).map_err(|e| StoreError::Corrupt(format!("joint record: {e}")))?,
            },
            attempts: r.3,
        });
    }
    let mut lease = conn.prepare_cached("UPDATE joint_outbox SET next_attempt_at = ?2 WHERE id = ?1")?;
    for c in &out {
        lease.execute(params![-c.delivery.outbox_id, lease_until])?;
    }
    Ok(out)
}

/// Settle joint-record deliveries (negative outbox ids) still under the lease `lease`.
pub(crate) fn settle(conn: &Connection, settlements: &[&super::outbox::Settlement], lease: &str) -> StoreResult<u64> {
    let mut update = conn.prepare_cached(
        "UPDATE joint_outbox SET status = ?2, attempts = ?3, next_attempt_at = ?4, last_error = ?5, delivered_at = ?6
         WHERE id = ?1 AND status = 'pending' AND next_attempt_at = ?7",
    )?;
    let mut settled = 0u64;
    for s in settlements {
        settled += update.execute(params![
            -s.id,
            s.status.as_str(),
            s.attempts,
            s.next_attempt_at.map(time),
            s.last_error,
            s.delivered_at.map(time),
            lease
        ])? as u64;
    }
    Ok(settled)
}

/// Joint-record deliveries per sink and status (added to the outbox's counts).
pub(crate) fn counts(conn: &Connection) -> StoreResult<Vec<(String, String, i64)>> {
    let mut stmt =
        conn.prepare_cached("SELECT sink_id, status, count(*) FROM joint_outbox GROUP BY sink_id, status")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Make the dead joint-record deliveries of a sink pending again; how many.
pub(crate) fn redrive_sink(conn: &Connection, sink_id: &str) -> StoreResult<u64> {
    Ok(conn.execute(
        "UPDATE joint_outbox SET status = 'pending', attempts = 0, next_attempt_at = NULL
         WHERE sink_id = ?1 AND status = 'dead'",
        [sink_id],
    )? as u64)
}

/// Make one dead joint-record delivery (outbox id `-id`) pending again.
pub(crate) fn redrive_one(conn: &Connection, id: i64) -> StoreResult<u64> {
    let status: Option<String> = conn
        .query_row("SELECT status FROM joint_outbox WHERE id = ?1", [-id], |r| r.get(0))
        .optional()?;
    match status.as_deref() {
        None => Err(StoreError::NotFound(format!("delivery {id}"))),
        Some("dead") => Ok(conn.execute(
            "UPDATE joint_outbox SET status = 'pending', attempts = 0, next_attempt_at = NULL
             WHERE id = ?1 AND status = 'dead'",
            [-id],
        )? as u64),
        Some(other) => Err(StoreError::Conflict(format!(
            "投递 {id} 的状态是 {other}，只能重投死信 / delivery {id} is {other}: only dead deliveries can be re-driven"
        ))),
    }
}
