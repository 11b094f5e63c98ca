//! Penalties' publicity (双公示) on PostgreSQL: the commit's writes and the queries.

use super::error::{StoreError, StoreResult};
use super::postgres::PostgresStore;
use super::publicity::{
    AgencyPublicity, PublicityFilter, PublicityMark, PublicityRow, PublicityStatus, PublicityStore,
};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::BTreeMap;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// The day a penalty became public: the earlier of the record's date and a sink's delivery.
const PUBLISHED_ON: &str = "CASE WHEN p.publicity_date IS NULL THEN p.published_on
          WHEN p.published_on IS NULL OR p.publicity_date <= p.published_on THEN p.publicity_date
          ELSE p.published_on END";

/// Penalties (not withdrawn) with their publication day and status on `$1`, within the filter
/// `$2` agency, `$3` sources, `$4`/`$5` decision dates.
fn selected() -> String {
    format!(
        "SELECT p.unified_code, p.agency_credit_code, p.agency_name, p.source_id, p.version, p.decision_date,
                p.deadline, p.publicity_date, p.published_at, p.published_sink, p.withheld_reason,
                pub.day AS published_day,
                CASE WHEN pub.day IS NOT NULL AND p.deadline IS NOT NULL AND pub.day > p.deadline THEN 'late'
                     WHEN pub.day IS NOT NULL THEN 'on_time'
                     WHEN p.withheld_reason IS NOT NULL THEN 'withheld'
                     WHEN p.deadline IS NULL THEN 'deadline_unknown'
                     WHEN p.deadline < $1 THEN 'overdue'
                     ELSE 'due' END AS status
         FROM penalty_publicity p, LATERAL (SELECT {PUBLISHED_ON} AS day) pub
         WHERE NOT p.withdrawn
           AND ($2::text IS NULL OR p.agency_credit_code = $2)
           AND ($3::text[] IS NULL OR p.source_id = ANY($3))
           AND ($4::date IS NULL OR p.decision_date >= $4)
           AND ($5::date IS NULL OR p.decision_date <= $5)"
    )
}

fn row_of(r: &Row) -> StoreResult<PublicityRow> {
    let status: String = r.try_get(12)?;
    Ok(PublicityRow {
        code: r.try_get(0)?,
        agency_credit_code: r.try_get(1)?,
        agency_name: r.try_get(2)?,
        source_id: r.try_get(3)?,
        version: r.try_get(4)?,
        decision_date: r.try_get(5)?,
        deadline: r.try_get(6)?,
        publicity_date: r.try_get(7)?,
        published_at: r.try_get(8)?,
        published_sink: r.try_get(9)?,
        withheld_reason: r.try_get(10)?,
        published_on: r.try_get(11)?,
        status: PublicityStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("publicity status {status:?}")))?,
    })
}

#[async_trait]
impl PublicityStore for PostgresStore {
    async fn publicity(&self, filter: &PublicityFilter, today: NaiveDate) -> StoreResult<(Vec<PublicityRow>, i64)> {
        let client = self.client().await?;
        let status = filter.status.map(PublicityStatus::as_str);
        let limit = filter.limit.unwrap_or(100).clamp(1, 1000);
        let offset = filter.offset.unwrap_or(0).max(0);
        let sql = format!(
            "SELECT *, count(*) OVER () FROM ({}) s WHERE ($6::text IS NULL OR s.status = $6)
             ORDER BY s.decision_date, s.unified_code LIMIT $7 OFFSET $8",
            selected()
        );
        let params: [&(dyn ToSql + Sync); 8] = [
            &today,
            &filter.agency,
            &filter.source_ids,
            &filter.decided_from,
            &filter.decided_to,
            &status,
            &limit,
            &offset,
        ];
        let rows = client.query(&sql, &params).await?;
        let total = match rows.first() {
            Some(r) => r.try_get(13)?,
            None if offset > 0 => {
                let sql = format!(
                    "SELECT count(*) FROM ({}) s WHERE ($6::text IS NULL OR s.status = $6)",
                    selected()
                );
                client.query_one(&sql, &params[..6]).await?.try_get(0)?
            }
            None => 0,
        };
        let items = rows.iter().map(row_of).collect::<StoreResult<_>>()?;
        Ok((items, total))
    }

    async fn publicity_by_agency(
        &self,
        filter: &PublicityFilter,
        today: NaiveDate,
    ) -> StoreResult<Vec<AgencyPublicity>> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT s.agency_credit_code, max(s.agency_name), s.status, count(*) FROM ({}) s
             GROUP BY s.agency_credit_code, s.status",
            selected()
        );
        let rows = client
            .query(
                &sql,
                &[
                    &today,
                    &filter.agency,
                    &filter.source_ids,
                    &filter.decided_from,
                    &filter.decided_to,
                ],
            )
            .await?;
        let mut by_agency: BTreeMap<String, AgencyPublicity> = BTreeMap::new();
        for r in &rows {
            let agency: String = r.try_get(0)?;
            let name: String = r.try_get(1)?;
            let status: String = r.try_get(2)?;
            let count: i64 = r.try_get(3)?;
            let status = PublicityStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("publicity status {status:?}")))?;
            let entry = by_agency.entry(agency.clone()).or_insert_with(|| AgencyPublicity {
                agency_credit_code: agency,
                agency_name: name,
                ..AgencyPublicity::default()
            });
            entry.add(status, count);
        }
        Ok(by_agency.into_values().collect())
    }

    async fn publicity_overdue(&self, today: NaiveDate) -> StoreResult<i64> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM penalty_publicity
                 WHERE publicity_date IS NULL AND published_on IS NULL AND withheld_reason IS NULL
                   AND NOT withdrawn AND deadline < $1",
                &[&today],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    async fn mark_publicity(&self, marks: &[PublicityMark]) -> StoreResult<()> {
        if marks.is_empty() {
            return Ok(());
        }
        let mut published_codes = Vec::new();
        let mut published_sinks = Vec::new();
        let mut published_at: Vec<DateTime<Utc>> = Vec::new();
        let mut published_on: Vec<NaiveDate> = Vec::new();
        let mut withheld_codes = Vec::new();
        let mut withheld_reasons = Vec::new();
        for m in marks {
            match m {
                PublicityMark::Published { code, sink, at } => {
                    published_codes.push(code.as_str());
                    published_sinks.push(sink.as_str());
                    published_at.push(*at);
                    published_on.push(super::publicity::china_day(*at));
                }
                PublicityMark::Withheld { code, reason } => {
                    withheld_codes.push(code.as_str());
                    withheld_reasons.push(reason.as_str());
                }
            }
        }
        let client = self.client().await?;
        if !published_codes.is_empty() {
            client
                .execute(
                    "UPDATE penalty_publicity p
                        SET published_at = COALESCE(p.published_at, u.at), published_on = COALESCE(p.published_on, u.day),
                            published_sink = COALESCE(p.published_sink, u.sink), withheld_reason = NULL
                     FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::date[]) AS u(code, sink, at, day)
                     JOIN cases c ON c.unified_code = u.code
                     WHERE p.case_id = c.id",
                    &[&published_codes, &published_sinks, &published_at, &published_on],
                )
                .await?;
        }
        if !withheld_codes.is_empty() {
            client
                .execute(
                    "UPDATE penalty_publicity p SET withheld_reason = u.reason
                     FROM UNNEST($1::text[], $2::text[]) AS u(code, reason)
                     JOIN cases c ON c.unified_code = u.code
                     WHERE p.case_id = c.id AND p.published_on IS NULL",
                    &[&withheld_codes, &withheld_reasons],
                )
                .await?;
        }
        Ok(())
    }
}
