//! The officer registry on SQLite.

use super::error::StoreResult;
use super::officers::{
    diff, parse_day, parse_status, OfficerFilter, OfficerRow, OfficerStore, RegistryLoad, RegistryVersion,
};
use super::sqlite::{now, parse_time, SqliteStore};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

const OFFICER_COLUMNS: &str = "agency_credit_code, cert_no, name, valid_from, valid_to, status, version";
const VERSION_COLUMNS: &str =
    "id, agency_credit_code, version, loaded_at, loaded_by, origin, officers, added, removed, changed";

fn officer_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawOfficer> {
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

type RawOfficer = (String, String, String, Option<String>, Option<String>, String, i64);

fn to_row(raw: RawOfficer) -> StoreResult<OfficerRow> {
    let (agency_credit_code, cert_no, name, valid_from, valid_to, status, version) = raw;
    Ok(OfficerRow {
        agency_credit_code,
        cert_no,
        name,
        valid_from: parse_day(valid_from)?,
        valid_to: parse_day(valid_to)?,
        status: parse_status(&status)?,
        version,
    })
}

type RawVersion = (i64, String, i64, String, String, String, i64, i64, i64, i64);

fn version_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawVersion> {
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
    ))
}

fn to_version(raw: RawVersion) -> StoreResult<RegistryVersion> {
    let (id, agency_credit_code, version, loaded_at, loaded_by, origin, officers, added, removed, changed) = raw;
    Ok(RegistryVersion {
        id,
        agency_credit_code,
        version,
        loaded_at: parse_time(&loaded_at)?,
        loaded_by,
        origin,
        officers,
        added,
        removed,
        changed,
    })
}

fn agency_officers(conn: &Connection, agency: &str) -> StoreResult<Vec<OfficerRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OFFICER_COLUMNS} FROM officers WHERE agency_credit_code = ?1"
    ))?;
    let raws = stmt.query_map([agency], officer_row)?.collect::<Result<Vec<_>, _>>()?;
    raws.into_iter().map(to_row).collect()
}

/// The scope condition's parameters: (restricted, codes as JSON, prefixes as JSON).
fn scope_params(scope: Option<&(Vec<String>, Vec<String>)>) -> StoreResult<(bool, String, String)> {
    let (codes, prefixes) = scope.cloned().unwrap_or_default();
    Ok((
        scope.is_some(),
        super::sqlite::to_json(&codes)?,
        super::sqlite::to_json(&prefixes)?,
    ))
}

/// Agencies within the scope (parameters `?1` restricted, `?2` codes, `?3` region prefixes).
const SCOPE_SQL: &str = "(NOT ?1 OR agency_credit_code IN (SELECT value FROM json_each(?2))
    OR EXISTS (SELECT 1 FROM json_each(?3) p WHERE substr(agency_credit_code, 3, length(p.value)) = p.value))";

#[async_trait]
impl OfficerStore for SqliteStore {
    async fn officers_load(&self, load: &RegistryLoad) -> StoreResult<Vec<RegistryVersion>> {
        let load = load.clone();
        self.with_conn(move |conn| {
            let at = now();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut versions = Vec::new();
            for (agency, list) in &load.agencies {
                let old = agency_officers(&tx, agency)?;
                let (added, removed, changed) = diff(&old, list);
                let version: i64 = tx.query_row(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM officer_registry_versions WHERE agency_credit_code = ?1",
                    [agency],
                    |r| r.get(0),
                )?;
                tx.execute("DELETE FROM officers WHERE agency_credit_code = ?1", [agency])?;
                {
                    let mut insert = tx.prepare_cached(&format!(
                        "INSERT INTO officers ({OFFICER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                    ))?;
                    for o in list {
                        insert.execute(params![
                            agency,
                            o.cert_no,
                            o.name,
                            o.valid_from.map(|d| d.to_string()),
                            o.valid_to.map(|d| d.to_string()),
                            o.status.as_str(),
                            version
                        ])?;
                    }
                }
                tx.execute(
                    "INSERT INTO officer_registry_versions
                        (agency_credit_code, version, loaded_at, loaded_by, origin, officers, added, removed, changed)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        agency,
                        version,
                        at,
                        load.actor,
                        load.origin,
                        list.len() as i64,
                        added,
                        removed,
                        changed
                    ],
                )?;
                let id = tx.last_insert_rowid();
                let raw = tx.query_row(
                    &format!("SELECT {VERSION_COLUMNS} FROM officer_registry_versions WHERE id = ?1"),
                    [id],
                    version_row,
                )?;
                versions.push(to_version(raw)?);
            }
            tx.commit()?;
            Ok(versions)
        })
        .await
    }

    async fn officers_list(&self, filter: &OfficerFilter) -> StoreResult<(Vec<OfficerRow>, i64)> {
        let filter = filter.clone();
        self.with_conn(move |conn| {
            let (restricted, codes, prefixes) = scope_params(filter.scope.as_ref())?;
            let condition = format!(
                "{SCOPE_SQL} AND (?4 IS NULL OR agency_credit_code = ?4)
                 AND (?5 IS NULL OR instr(name, ?5) > 0 OR instr(cert_no, upper(?5)) > 0)"
            );
            let agency = filter.agency.clone();
            let q = filter.q.clone();
            let total: i64 = conn.query_row(
                &format!("SELECT COUNT(*) FROM officers WHERE {condition}"),
                params![restricted, codes, prefixes, agency, q],
                |r| r.get(0),
            )?;
            let mut stmt = conn.prepare(&format!(
                "SELECT {OFFICER_COLUMNS} FROM officers WHERE {condition}
                 ORDER BY agency_credit_code, cert_no LIMIT ?6 OFFSET ?7"
            ))?;
            let raws = stmt
                .query_map(
                    params![restricted, codes, prefixes, agency, q, filter.limit, filter.offset],
                    officer_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            let items = raws.into_iter().map(to_row).collect::<StoreResult<Vec<_>>>()?;
            Ok((items, total))
        })
        .await
    }

    async fn officers_all(&self) -> StoreResult<(Vec<OfficerRow>, Vec<String>)> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {OFFICER_COLUMNS} FROM officers ORDER BY agency_credit_code, cert_no"
            ))?;
            let raws = stmt.query_map([], officer_row)?.collect::<Result<Vec<_>, _>>()?;
            let rows = raws.into_iter().map(to_row).collect::<StoreResult<Vec<_>>>()?;
            let mut stmt = conn.prepare_cached(
                "SELECT DISTINCT agency_credit_code FROM officer_registry_versions ORDER BY agency_credit_code",
            )?;
            let agencies = stmt.query_map([], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
            Ok((rows, agencies))
        })
        .await
    }

    async fn officer_versions(
        &self,
        agency: Option<&str>,
        scope: Option<&(Vec<String>, Vec<String>)>,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<RegistryVersion>, i64)> {
        let agency = agency.map(str::to_string);
        let (restricted, codes, prefixes) = scope_params(scope)?;
        self.with_conn(move |conn| {
            let condition = format!("{SCOPE_SQL} AND (?4 IS NULL OR agency_credit_code = ?4)");
            let total: i64 = conn.query_row(
                &format!("SELECT COUNT(*) FROM officer_registry_versions WHERE {condition}"),
                params![restricted, codes, prefixes, agency],
                |r| r.get(0),
            )?;
            let mut stmt = conn.prepare(&format!(
                "SELECT {VERSION_COLUMNS} FROM officer_registry_versions WHERE {condition}
                 ORDER BY id DESC LIMIT ?5 OFFSET ?6"
            ))?;
            let raws = stmt
                .query_map(params![restricted, codes, prefixes, agency, limit, offset], version_row)?
                .collect::<Result<Vec<_>, _>>()?;
            let items = raws.into_iter().map(to_version).collect::<StoreResult<Vec<_>>>()?;
            Ok((items, total))
        })
        .await
    }

    async fn officers_stamp(&self) -> StoreResult<Option<i64>> {
        self.with_conn(|conn| {
            Ok(conn
                .query_row("SELECT MAX(id) FROM officer_registry_versions", [], |r| {
                    r.get::<_, Option<i64>>(0)
                })
                .optional()?
                .flatten())
        })
        .await
    }
}
