//! Penalties' publicity (双公示) on SQLite: the commit's writes and the queries.

use super::error::{StoreError, StoreResult};
use super::publicity::{
    china_day, AgencyPublicity, PublicityFilter, PublicityMark, PublicityRow, PublicityStatus, PublicityStore,
};
use super::sqlite::{parse_time, time, SqliteStore};
use async_trait::async_trait;
use chrono::NaiveDate;
use rusqlite::{params, Row};
use std::collections::BTreeMap;

/// The day a penalty became public: the earlier of the record's date and a sink's delivery.
const PUBLISHED_ON: &str = "CASE WHEN p.publicity_date IS NULL THEN p.published_on
          WHEN p.published_on IS NULL OR p.publicity_date <= p.published_on THEN p.publicity_date
          ELSE p.published_on END";

/// Penalties (not withdrawn) with their publication day and status on `?1`, within the filter
/// `?2` agency, `?3` sources (JSON array), `?4`/`?5` decision dates.
fn selected() -> String {
    format!(
        "SELECT unified_code, agency_credit_code, agency_name, source_id, version, decision_date, deadline,
                publicity_date, published_at, published_sink, withheld_reason, published_day,
                CASE WHEN published_day IS NOT NULL AND deadline IS NOT NULL AND published_day > deadline THEN 'late'
                     WHEN published_day IS NOT NULL THEN 'on_time'
                     WHEN withheld_reason IS NOT NULL THEN 'withheld'
                     WHEN deadline IS NULL THEN 'deadline_unknown'
                     WHEN deadline < ?1 THEN 'overdue'
                     ELSE 'due' END AS status
         FROM (SELECT p.*, {PUBLISHED_ON} AS published_day FROM penalty_publicity p
               WHERE p.withdrawn = 0
                 AND (?2 IS NULL OR p.agency_credit_code = ?2)
                 AND (?3 IS NULL OR p.source_id IN (SELECT value FROM json_each(?3)))
                 AND (?4 IS NULL OR p.decision_date >= ?4)
                 AND (?5 IS NULL OR p.decision_date <= ?5))"
    )
}

fn date(s: Option<String>) -> StoreResult<Option<NaiveDate>> {
    s.map(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|e| StoreError::Corrupt(format!("date {s:?}: {e}"))))
        .transpose()
}

fn row_of(r: &Row<'_>) -> StoreResult<PublicityRow> {
    let status: String = r.get(12)?;
    let decided: String = r.get(5)?;
    let published_at: Option<String> = r.get(8)?;
    Ok(PublicityRow {
        code: r.get(0)?,
        agency_credit_code: r.get(1)?,
        agency_name: r.get(2)?,
        source_id: r.get(3)?,
        version: r.get(4)?,
        decision_date: date(Some(decided))?.unwrap_or_default(),
        deadline: date(r.get(6)?)?,
        publicity_date: date(r.get(7)?)?,
        published_at: published_at.as_deref().map(parse_time).transpose()?,
        published_sink: r.get(9)?,
        withheld_reason: r.get(10)?,
        published_on: date(r.get(11)?)?,
        status: PublicityStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("publicity status {status:?}")))?,
    })
}

/// The filter's bound values: today, agency, sources (JSON), from, to.
fn bound(
    filter: &PublicityFilter,
    today: NaiveDate,
) -> (String, Option<String>, Option<String>, Option<String>, Option<String>) {
    (
        today.to_string(),
        filter.agency.clone(),
        filter
            .source_ids
            .as_ref()
            .map(|ids| serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())),
        filter.decided_from.map(|d| d.to_string()),
        filter.decided_to.map(|d| d.to_string()),
    )
}

#[async_trait]
impl PublicityStore for SqliteStore {
    async fn publicity(&self, filter: &PublicityFilter, today: NaiveDate) -> StoreResult<(Vec<PublicityRow>, i64)> {
        let (today, agency, sources, from, to) = bound(filter, today);
        let status = filter.status.map(|s| s.as_str().to_string());
        let limit = filter.limit.unwrap_or(100).clamp(1, 1000);
        let offset = filter.offset.unwrap_or(0).max(0);
        self.with_conn(move |conn| {
            let where_status = "WHERE (?6 IS NULL OR status = ?6)";
            let mut page = conn.prepare(&format!(
                "SELECT * FROM ({}) {where_status} ORDER BY decision_date, unified_code LIMIT ?7 OFFSET ?8",
                selected()
            ))?;
            let items = page
                .query_map(params![today, agency, sources, from, to, status, limit, offset], |r| {
                    Ok(row_of(r))
                })?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .collect::<StoreResult<Vec<_>>>()?;
            let total: i64 = conn.query_row(
                &format!("SELECT count(*) FROM ({}) {where_status}", selected()),
                params![today, agency, sources, from, to, status],
                |r| r.get(0),
            )?;
            Ok((items, total))
        })
        .await
    }

    async fn publicity_by_agency(
        &self,
        filter: &PublicityFilter,
        today: NaiveDate,
    ) -> StoreResult<Vec<AgencyPublicity>> {
        let (today, agency, sources, from, to) = bound(filter, today);
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT agency_credit_code, max(agency_name), status, count(*) FROM ({}) GROUP BY agency_credit_code, status",
                selected()
            ))?;
            let rows = stmt
                .query_map(params![today, agency, sources, from, to], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut by_agency: BTreeMap<String, AgencyPublicity> = BTreeMap::new();
            for (agency, name, status, count) in rows {
                let status = PublicityStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("publicity status {status:?}")))?;
                by_agency
                    .entry(agency.clone())
                    .or_insert_with(|| AgencyPublicity {
                        agency_credit_code: agency,
                        agency_name: name,
                        ..AgencyPublicity::default()
                    })
                    .add(status, count);
            }
            Ok(by_agency.into_values().collect())
        })
        .await
    }

    async fn publicity_overdue(&self, today: NaiveDate) -> StoreResult<i64> {
        let today = today.to_string();
        self.with_conn(move |conn| {
            Ok(conn.query_row(
                "SELECT count(*) FROM penalty_publicity
                 WHERE publicity_date IS NULL AND published_on IS NULL AND withheld_reason IS NULL
                   AND withdrawn = 0 AND deadline < ?1",
                [today],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn mark_publicity(&self, marks: &[PublicityMark]) -> StoreResult<()> {
        if marks.is_empty() {
            return Ok(());
        }
        let marks = marks.to_vec();
        self.with_conn(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut published = tx.prepare_cached(
                    "UPDATE penalty_publicity
                        SET published_at = COALESCE(published_at, ?2), published_on = COALESCE(published_on, ?3),
                            published_sink = COALESCE(published_sink, ?4), withheld_reason = NULL
                     WHERE unified_code = ?1",
                )?;
                let mut withheld = tx.prepare_cached(
                    "UPDATE penalty_publicity SET withheld_reason = ?2 WHERE unified_code = ?1 AND published_on IS NULL",
                )?;
                for m in &marks {
                    match m {
                        PublicityMark::Published { code, sink, at } => {
                            published.execute(params![code, time(*at), china_day(*at).to_string(), sink])?;
                        }
                        PublicityMark::Withheld { code, reason } => {
                            withheld.execute(params![code, reason])?;
                        }
                    }
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }
}
