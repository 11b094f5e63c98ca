//! [`MappingStore`] on the embedded SQLite store. Every change runs in an immediate transaction,
//! which serialises it with every other writer of the file; the unique partial index
//! `mapping_versions_one_active` keeps one active version per source whatever happens.

use super::sqlite::{insert_audit, parse_time, query_audit, time, SqliteStore};
use super::{StoreError, StoreResult};
use crate::store::mappings::{
    ActivateOutcome, Activation, ActivationKind, ActivationRow, ActiveMapping, MappingStore, NewVersion, StoredVersion,
    VersionStatus,
};
use crate::store::{AuditEntry, AuditRecord, PayloadFormat, RawRecord};
use async_trait::async_trait;
use chrono::Utc;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

const VERSION_COLUMNS: &str = "source_id, mapping_id, version, fingerprint, description, file_name, mapping_toml,
    code_tables, status, uploaded_by, uploaded_at, tests, activated_at, activated_by, retired_at";

/// The columns of [`VERSION_COLUMNS`] as read, before decoding.
struct VersionColumns {
    source_id: String,
    mapping_id: String,
    version: i64,
    fingerprint: String,
    description: String,
    file_name: String,
    mapping_toml: String,
    code_tables: String,
    status: String,
    uploaded_by: String,
    uploaded_at: String,
    tests: String,
    activated_at: Option<String>,
    activated_by: Option<String>,
    retired_at: Option<String>,
}

fn read_version_columns(r: &Row<'_>) -> rusqlite::Result<VersionColumns> {
    Ok(VersionColumns {
        source_id: r.get(0)?,
        mapping_id: r.get(1)?,
        version: r.get(2)?,
        fingerprint: r.get(3)?,
        description: r.get(4)?,
        file_name: r.get(5)?,
        mapping_toml: r.get(6)?,
        code_tables: r.get(7)?,
        status: r.get(8)?,
        uploaded_by: r.get(9)?,
        uploaded_at: r.get(10)?,
        tests: r.get(11)?,
        activated_at: r.get(12)?,
        activated_by: r.get(13)?,
        retired_at: r.get(14)?,
    })
}

impl VersionColumns {
    fn decode(self) -> StoreResult<StoredVersion> {
        Ok(StoredVersion {
            source_id: self.source_id,
            mapping_id: self.mapping_id,
            version: self.version,
            fingerprint: self.fingerprint,
            description: self.description,
            file_name: self.file_name,
            mapping_toml: self.mapping_toml,
            code_tables: serde_json::from_str(&self.code_tables).map_err(|e| corrupt("stored code tables", e))?,
            status: VersionStatus::parse(&self.status)
                .ok_or_else(|| corrupt("mapping version status", &self.status))?,
            uploaded_by: self.uploaded_by,
            uploaded_at: parse_time(&self.uploaded_at)?,
            tests: serde_json::from_str(&self.tests).map_err(|e| corrupt("stored test report", e))?,
            activated_at: self.activated_at.as_deref().map(parse_time).transpose()?,
            activated_by: self.activated_by,
            retired_at: self.retired_at.as_deref().map(parse_time).transpose()?,
        })
    }
}

fn select_versions(
    conn: &Connection,
    source_id: &str,
    filter: &str,
    arg: Option<i64>,
) -> StoreResult<Vec<StoredVersion>> {
    let sql = format!("SELECT {VERSION_COLUMNS} FROM mapping_versions WHERE source_id = ?1 {filter} ORDER BY version");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = match arg {
        Some(v) => stmt
            .query_map(params![source_id, v], read_version_columns)?
            .collect::<Result<Vec<_>, _>>()?,
        None => stmt
            .query_map(params![source_id], read_version_columns)?
            .collect::<Result<Vec<_>, _>>()?,
    };
    rows.into_iter().map(VersionColumns::decode).collect()
}

fn active_version(conn: &Connection, source_id: &str) -> StoreResult<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT version FROM mapping_versions WHERE source_id = ?1 AND status = 'active'",
            [source_id],
            |r| r.get(0),
        )
        .optional()?)
}

fn insert_version(conn: &Connection, new: &NewVersion, status: VersionStatus, now: &str) -> StoreResult<()> {
    let code_tables = serde_json::to_string(&new.code_tables).map_err(|e| corrupt("code tables", e))?;
    let tests = serde_json::to_string(&new.tests).map_err(|e| corrupt("test report", e))?;
    let active = status == VersionStatus::Active;
    conn.execute(
        "INSERT INTO mapping_versions (source_id, mapping_id, version, fingerprint, description, file_name,
                                       mapping_toml, code_tables, status, uploaded_by, uploaded_at, tests,
                                       activated_at, activated_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            new.source_id,
            new.mapping_id,
            new.version,
            new.fingerprint,
            new.description,
            new.file_name,
            new.mapping_toml,
            code_tables,
            status.as_str(),
            new.uploaded_by,
            now,
            tests,
            active.then_some(now),
            active.then_some(new.uploaded_by.as_str()),
        ],
    )?;
    Ok(())
}

fn insert_activation(conn: &Connection, row: &ActivationRow) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO mapping_activations (source_id, version, previous_version, kind, actor, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            row.source_id,
            row.version,
            row.previous_version,
            row.kind.as_str(),
            row.actor,
            time(row.at)
        ],
    )?;
    Ok(())
}

#[async_trait]
impl MappingStore for SqliteStore {
    async fn mapping_versions(&self, source_id: &str) -> StoreResult<Vec<StoredVersion>> {
        let source_id = source_id.to_string();
        self.with_conn(move |conn| select_versions(conn, &source_id, "", None))
            .await
    }

    async fn mapping_version(&self, source_id: &str, version: i64) -> StoreResult<Option<StoredVersion>> {
        let source_id = source_id.to_string();
        self.with_conn(move |conn| {
            Ok(select_versions(conn, &source_id, "AND version = ?2", Some(version))?
                .into_iter()
                .next())
        })
        .await
    }

    async fn active_mapping(&self, source_id: &str) -> StoreResult<Option<StoredVersion>> {
        let source_id = source_id.to_string();
        self.with_conn(move |conn| {
            Ok(select_versions(conn, &source_id, "AND status = 'active'", None)?
                .into_iter()
                .next())
        })
        .await
    }

    async fn active_mappings(&self) -> StoreResult<Vec<ActiveMapping>> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT source_id, version, fingerprint FROM mapping_versions WHERE status = 'active'
                 ORDER BY source_id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(ActiveMapping {
                    source_id: r.get(0)?,
                    version: r.get(1)?,
                    fingerprint: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn insert_mapping_version(&self, new: &NewVersion, audit: &AuditEntry) -> StoreResult<StoredVersion> {
        let new = new.clone();
        let audit = audit.clone();
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let newest: Option<i64> = tx.query_row(
                "SELECT max(version) FROM mapping_versions WHERE source_id = ?1",
                [&new.source_id],
                |r| r.get(0),
            )?;
            if let Some(newest) = newest.filter(|n| *n >= new.version) {
                return Err(StoreError::Conflict(format!(
                    "来源 {} 已有版本 {newest}，新版本号须更大 / source {}: version {} is not greater than the stored version {newest}",
                    new.source_id, new.source_id, new.version
                )));
            }
            let now = time(Utc::now());
            insert_version(&tx, &new, VersionStatus::Candidate, &now)?;
            insert_audit(&tx, &audit, &now)?;
            let stored = select_versions(&tx, &new.source_id, "AND version = ?2", Some(new.version))?
                .into_iter()
                .next()
                .ok_or_else(|| StoreError::NotFound(format!("mapping version {}", new.version)))?;
            tx.commit()?;
            Ok(stored)
        })
        .await
    }

    async fn import_first_mapping(&self, new: &NewVersion, audit: &AuditEntry) -> StoreResult<bool> {
        let new = new.clone();
        let audit = audit.clone();
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let stored: i64 = tx.query_row(
                "SELECT count(*) FROM mapping_versions WHERE source_id = ?1",
                [&new.source_id],
                |r| r.get(0),
            )?;
            if stored > 0 {
                return Ok(false);
            }
            let now = Utc::now();
            let now_text = time(now);
            insert_version(&tx, &new, VersionStatus::Active, &now_text)?;
            insert_activation(
                &tx,
                &ActivationRow {
                    source_id: new.source_id.clone(),
                    version: new.version,
                    previous_version: None,
                    kind: ActivationKind::Import,
                    actor: new.uploaded_by.clone(),
                    at: now,
                },
            )?;
            insert_audit(&tx, &audit, &now_text)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn activate_mapping(&self, activation: &Activation, audit: &AuditEntry) -> StoreResult<ActivateOutcome> {
        let a = activation.clone();
        let audit = audit.clone();
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let active = active_version(&tx, &a.source_id)?;
            if active != a.expected_active {
                return Ok(ActivateOutcome::ActiveChanged { active });
            }
            let exists: Option<i64> = tx
                .query_row(
                    "SELECT version FROM mapping_versions WHERE source_id = ?1 AND version = ?2",
                    params![a.source_id, a.version],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!(
                    "mapping version {} of source {}",
                    a.version, a.source_id
                )));
            }
            if active == Some(a.version) {
                return Err(StoreError::Conflict(format!(
                    "版本 {} 已是生效版本 / version {} is already active",
                    a.version, a.version
                )));
            }
            let now = Utc::now();
            let now_text = time(now);
            tx.execute(
                "UPDATE mapping_versions SET status = 'retired', retired_at = ?2
                 WHERE source_id = ?1 AND status = 'active'",
                params![a.source_id, now_text],
            )?;
            tx.execute(
                "UPDATE mapping_versions SET status = 'active', activated_at = ?3, activated_by = ?4
                 WHERE source_id = ?1 AND version = ?2",
                params![a.source_id, a.version, now_text, a.actor],
            )?;
            let row = ActivationRow {
                source_id: a.source_id.clone(),
                version: a.version,
                previous_version: active,
                kind: a.kind,
                actor: a.actor.clone(),
                at: now,
            };
            insert_activation(&tx, &row)?;
            insert_audit(&tx, &audit, &now_text)?;
            tx.commit()?;
            Ok(ActivateOutcome::Done(row))
        })
        .await
    }

    async fn mapping_activations(&self, source_id: &str) -> StoreResult<Vec<ActivationRow>> {
        let source_id = source_id.to_string();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT source_id, version, previous_version, kind, actor, at FROM mapping_activations
                 WHERE source_id = ?1 ORDER BY id",
            )?;
            let rows = stmt
                .query_map([source_id], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|r| {
                    Ok(ActivationRow {
                        source_id: r.0,
                        version: r.1,
                        previous_version: r.2,
                        kind: ActivationKind::parse(&r.3).ok_or_else(|| corrupt("activation kind", &r.3))?,
                        actor: r.4,
                        at: parse_time(&r.5)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn last_raw_records(&self, source_id: &str, limit: i64) -> StoreResult<Vec<RawRecord>> {
        let source_id = source_id.to_string();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, source_id, record_key, content_hash, format, received_at, payload, last_received_at, times_received
                 FROM raw_records
                 WHERE source_id = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = stmt
                .query_map(params![source_id, limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, Vec<u8>>(6)?,
                        r.get::<_, String>(7)?,
                        r.get::<_, i32>(8)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|r| {
                    Ok(RawRecord {
                        id: r.0,
                        source_id: r.1,
                        record_key: r.2,
                        content_hash: r.3,
                        format: PayloadFormat::parse(&r.4).ok_or_else(|| corrupt("payload format", &r.4))?,
                        received_at: parse_time(&r.5)?,
                        payload: super::compress::payload_of(r.6, super::compress::CODEC_PLAIN)?,
                        last_received_at: parse_time(&r.7)?,
                        times_received: r.8,
                    })
                })
                .collect()
        })
        .await
    }

    async fn audit_about(&self, subject: &str, action_prefix: &str) -> StoreResult<Vec<AuditRecord>> {
        let subject = subject.to_string();
        let prefix = action_prefix.to_string();
        self.with_conn(move |conn| {
            query_audit(
                conn,
                "SELECT id, at, actor, action, subject, detail FROM audit_log
                 WHERE subject = ?1 AND substr(action, 1, length(?2)) = ?2 ORDER BY id",
                params![subject, prefix],
            )
        })
        .await
    }
}
