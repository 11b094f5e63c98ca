//! The officer registry on PostgreSQL.

use super::error::StoreResult;
use super::officers::{
    diff, parse_day, parse_status, OfficerFilter, OfficerRow, OfficerStore, RegistryLoad, RegistryVersion,
};
use super::postgres::PostgresStore;
use async_trait::async_trait;
use chrono::Utc;
use tokio_postgres::Row;

const OFFICER_COLUMNS: &str = "agency_credit_code, cert_no, name, valid_from, valid_to, status, version";
const VERSION_COLUMNS: &str =
    "id, agency_credit_code, version, loaded_at, loaded_by, origin, officers, added, removed, changed";

fn to_row(r: &Row) -> StoreResult<OfficerRow> {
    Ok(OfficerRow {
        agency_credit_code: r.try_get(0)?,
        cert_no: r.try_get(1)?,
        name: r.try_get(2)?,
        valid_from: parse_day(r.try_get(3)?)?,
        valid_to: parse_day(r.try_get(4)?)?,
        status: parse_status(r.try_get::<_, &str>(5)?)?,
        version: r.try_get(6)?,
    })
}

fn to_version(r: &Row) -> StoreResult<RegistryVersion> {
    Ok(RegistryVersion {
        id: r.try_get(0)?,
        agency_credit_code: r.try_get(1)?,
        version: r.try_get(2)?,
        loaded_at: r.try_get(3)?,
        loaded_by: r.try_get(4)?,
        origin: r.try_get(5)?,
        officers: r.try_get(6)?,
        added: r.try_get(7)?,
        removed: r.try_get(8)?,
        changed: r.try_get(9)?,
    })
}

/// Agencies within the scope (parameters `$1` restricted, `$2` codes, `$3` region prefixes).
const SCOPE_SQL: &str = "(NOT $1 OR agency_credit_code = ANY($2::text[])
    OR EXISTS (SELECT 1 FROM unnest($3::text[]) p WHERE substr(agency_credit_code, 3, length(p)) = p))";

fn scope_params(scope: Option<&(Vec<String>, Vec<String>)>) -> (bool, Vec<String>, Vec<String>) {
    let (codes, prefixes) = scope.cloned().unwrap_or_default();
    (scope.is_some(), codes, prefixes)
}

#[async_trait]
impl OfficerStore for PostgresStore {
    async fn officers_load(&self, load: &RegistryLoad) -> StoreResult<Vec<RegistryVersion>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = Utc::now();
        let mut versions = Vec::new();
        for (agency, list) in &load.agencies {
            // One load of an agency at a time: versions are numbered without gaps or clashes.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                &[&format!("officers:{agency}")],
            )
            .await?;
            let old = tx
                .query(
                    &format!("SELECT {OFFICER_COLUMNS} FROM officers WHERE agency_credit_code = $1"),
                    &[agency],
                )
                .await?
                .iter()
                .map(to_row)
                .collect::<StoreResult<Vec<_>>>()?;
            let (added, removed, changed) = diff(&old, list);
            let version: i64 = tx
                .query_one(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM officer_registry_versions WHERE agency_credit_code = $1",
                    &[agency],
                )
                .await?
                .try_get(0)?;
            tx.execute("DELETE FROM officers WHERE agency_credit_code = $1", &[agency])
                .await?;
            let certs: Vec<&str> = list.iter().map(|o| o.cert_no.as_str()).collect();
            let names: Vec<&str> = list.iter().map(|o| o.name.as_str()).collect();
            let from: Vec<Option<String>> = list.iter().map(|o| o.valid_from.map(|d| d.to_string())).collect();
            let to: Vec<Option<String>> = list.iter().map(|o| o.valid_to.map(|d| d.to_string())).collect();
            let status: Vec<&str> = list.iter().map(|o| o.status.as_str()).collect();
            tx.execute(
                &format!(
                    "INSERT INTO officers ({OFFICER_COLUMNS})
                     SELECT $1, c, n, f, t, s, $7 FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
                         AS u(c, n, f, t, s)"
                ),
                &[agency, &certs, &names, &from, &to, &status, &version],
            )
            .await?;
            let row = tx
                .query_one(
                    &format!(
                        "INSERT INTO officer_registry_versions
                            (agency_credit_code, version, loaded_at, loaded_by, origin, officers, added, removed, changed)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {VERSION_COLUMNS}"
                    ),
                    &[
                        agency,
                        &version,
                        &now,
                        &load.actor,
                        &load.origin,
                        &(list.len() as i64),
                        &added,
                        &removed,
                        &changed,
                    ],
                )
                .await?;
            versions.push(to_version(&row)?);
        }
        tx.commit().await?;
        Ok(versions)
    }

    async fn officers_list(&self, filter: &OfficerFilter) -> StoreResult<(Vec<OfficerRow>, i64)> {
        let client = self.client().await?;
        let (restricted, codes, prefixes) = scope_params(filter.scope.as_ref());
        let condition = format!(
            "{SCOPE_SQL} AND ($4::text IS NULL OR agency_credit_code = $4)
             AND ($5::text IS NULL OR strpos(name, $5) > 0 OR strpos(cert_no, upper($5)) > 0)"
        );
        let total: i64 = client
            .query_one(
                &format!("SELECT COUNT(*) FROM officers WHERE {condition}"),
                &[&restricted, &codes, &prefixes, &filter.agency, &filter.q],
            )
            .await?
            .try_get(0)?;
        let rows = client
            .query(
                &format!(
                    "SELECT {OFFICER_COLUMNS} FROM officers WHERE {condition}
                     ORDER BY agency_credit_code, cert_no LIMIT $6 OFFSET $7"
                ),
                &[
                    &restricted,
                    &codes,
                    &prefixes,
                    &filter.agency,
                    &filter.q,
                    &filter.limit,
                    &filter.offset,
                ],
            )
            .await?;
        let items = rows.iter().map(to_row).collect::<StoreResult<Vec<_>>>()?;
        Ok((items, total))
    }

    async fn officers_all(&self) -> StoreResult<(Vec<OfficerRow>, Vec<String>)> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {OFFICER_COLUMNS} FROM officers ORDER BY agency_credit_code, cert_no"),
                &[],
            )
            .await?;
        let officers = rows.iter().map(to_row).collect::<StoreResult<Vec<_>>>()?;
        let agencies = client
            .query(
                "SELECT DISTINCT agency_credit_code FROM officer_registry_versions ORDER BY agency_credit_code",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<Vec<String>, _>>()?;
        Ok((officers, agencies))
    }

    async fn officer_versions(
        &self,
        agency: Option<&str>,
        scope: Option<&(Vec<String>, Vec<String>)>,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<RegistryVersion>, i64)> {
        let client = self.client().await?;
        let (restricted, codes, prefixes) = scope_params(scope);
        let condition = format!("{SCOPE_SQL} AND ($4::text IS NULL OR agency_credit_code = $4)");
        let total: i64 = client
            .query_one(
                &format!("SELECT COUNT(*) FROM officer_registry_versions WHERE {condition}"),
                &[&restricted, &codes, &prefixes, &agency],
            )
            .await?
            .try_get(0)?;
        let rows = client
            .query(
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM officer_registry_versions WHERE {condition}
                     ORDER BY id DESC LIMIT $5 OFFSET $6"
                ),
                &[&restricted, &codes, &prefixes, &agency, &limit, &offset],
            )
            .await?;
        let items = rows.iter().map(to_version).collect::<StoreResult<Vec<_>>>()?;
        Ok((items, total))
    }

    async fn officers_stamp(&self) -> StoreResult<Option<i64>> {
        let client = self.client().await?;
        Ok(client
            .query_one("SELECT MAX(id) FROM officer_registry_versions", &[])
            .await?
            .try_get(0)?)
    }
}
