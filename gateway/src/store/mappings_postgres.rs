//! [`MappingStore`] on PostgreSQL, shared by several gateway instances. Every change of a
//! source's versions first takes a transaction-scoped advisory lock keyed by the source, so two
//! instances uploading, importing or activating at the same moment take turns: the second one
//! sees what the first committed (an activation that expected another active version changes
//! nothing and says so). The unique partial index `mapping_versions_one_active` is the last
//! guard: two active versions of one source cannot be committed whatever the code does.

use super::audit_postgres::{audit_record, insert_audit};
use super::postgres::{raw_record_from_row, PostgresStore, RAW_COLUMNS, RAW_TABLES};
use super::{StoreError, StoreResult};
use crate::store::mappings::{
    ActivateOutcome, Activation, ActivationKind, ActivationRow, ActiveMapping, MappingStore, NewVersion, StoredVersion,
    VersionStatus,
};
use crate::store::{AuditEntry, AuditRecord, RawRecord};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Row;

/// First key of the advisory lock of mapping changes ("mapp" in ASCII); the second is the
/// hash of the source id.
const MAPPING_LOCK_CLASS: i32 = 0x6d61_7070;

const VERSION_COLUMNS: &str = "source_id, mapping_id, version, fingerprint, description, file_name, mapping_toml,
    code_tables, status, uploaded_by, uploaded_at, tests, activated_at, activated_by, retired_at";

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn version_from_row(r: &Row) -> StoreResult<StoredVersion> {
    let status: String = r.try_get(8)?;
    let code_tables: Value = r.try_get(7)?;
    let tests: Value = r.try_get(11)?;
    Ok(StoredVersion {
        source_id: r.try_get(0)?,
        mapping_id: r.try_get(1)?,
        version: r.try_get(2)?,
        fingerprint: r.try_get(3)?,
        description: r.try_get(4)?,
        file_name: r.try_get(5)?,
        mapping_toml: r.try_get(6)?,
        code_tables: serde_json::from_value(code_tables).map_err(|e| corrupt("stored code tables", e))?,
        status: VersionStatus::parse(&status).ok_or_else(|| corrupt("mapping version status", &status))?,
        uploaded_by: r.try_get(9)?,
        uploaded_at: r.try_get(10)?,
        tests: serde_json::from_value(tests).map_err(|e| corrupt("stored test report", e))?,
        activated_at: r.try_get(12)?,
        activated_by: r.try_get(13)?,
        retired_at: r.try_get(14)?,
    })
}

async fn lock_source(client: &impl GenericClient, source_id: &str) -> StoreResult<()> {
    client
        .execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&MAPPING_LOCK_CLASS, &source_id],
        )
        .await?;
    Ok(())
}

async fn select_version(
    client: &impl GenericClient,
    source_id: &str,
    version: i64,
) -> StoreResult<Option<StoredVersion>> {
    let row = client
        .query_opt(
            &format!("SELECT {VERSION_COLUMNS} FROM mapping_versions WHERE source_id = $1 AND version = $2"),
            &[&source_id, &version],
        )
        .await?;
    row.as_ref().map(version_from_row).transpose()
}

async fn active_version(client: &impl GenericClient, source_id: &str) -> StoreResult<Option<i64>> {
    let row = client
        .query_opt(
            "SELECT version FROM mapping_versions WHERE source_id = $1 AND status = 'active'",
            &[&source_id],
        )
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

async fn insert_version(
    client: &impl GenericClient,
    new: &NewVersion,
    status: VersionStatus,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let code_tables = serde_json::to_value(&new.code_tables).map_err(|e| corrupt("code tables", e))?;
    let tests = serde_json::to_value(&new.tests).map_err(|e| corrupt("test report", e))?;
    let active = status == VersionStatus::Active;
    let activated_at = active.then_some(now);
    let activated_by = active.then_some(new.uploaded_by.as_str());
    client
        .execute(
            "INSERT INTO mapping_versions (source_id, mapping_id, version, fingerprint, description, file_name,
                                           mapping_toml, code_tables, status, uploaded_by, uploaded_at, tests,
                                           activated_at, activated_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            &[
                &new.source_id,
                &new.mapping_id,
                &new.version,
                &new.fingerprint,
                &new.description,
                &new.file_name,
                &new.mapping_toml,
                &code_tables,
                &status.as_str(),
                &new.uploaded_by,
                &now,
                &tests,
                &activated_at,
                &activated_by,
            ],
        )
        .await?;
    Ok(())
}

async fn insert_activation(client: &impl GenericClient, row: &ActivationRow) -> StoreResult<()> {
    client
        .execute(
            "INSERT INTO mapping_activations (source_id, version, previous_version, kind, actor, at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &row.source_id,
                &row.version,
                &row.previous_version,
                &row.kind.as_str(),
                &row.actor,
                &row.at,
            ],
        )
        .await?;
    Ok(())
}

#[async_trait]
impl MappingStore for PostgresStore {
    async fn mapping_versions(&self, source_id: &str) -> StoreResult<Vec<StoredVersion>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {VERSION_COLUMNS} FROM mapping_versions WHERE source_id = $1 ORDER BY version"),
                &[&source_id],
            )
            .await?;
        rows.iter().map(version_from_row).collect()
    }

    async fn mapping_version(&self, source_id: &str, version: i64) -> StoreResult<Option<StoredVersion>> {
        let client = self.client().await?;
        select_version(&client, source_id, version).await
    }

    async fn active_mapping(&self, source_id: &str) -> StoreResult<Option<StoredVersion>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {VERSION_COLUMNS} FROM mapping_versions WHERE source_id = $1 AND status = 'active'"),
                &[&source_id],
            )
            .await?;
        row.as_ref().map(version_from_row).transpose()
    }

    async fn active_mappings(&self) -> StoreResult<Vec<ActiveMapping>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT source_id, version, fingerprint FROM mapping_versions WHERE status = 'active'
                 ORDER BY source_id",
            )
            .await?;
        let rows = client.query(&stmt, &[]).await?;
        rows.iter()
            .map(|r| {
                Ok(ActiveMapping {
                    source_id: r.try_get(0)?,
                    version: r.try_get(1)?,
                    fingerprint: r.try_get(2)?,
                })
            })
            .collect()
    }

    async fn insert_mapping_version(&self, new: &NewVersion, audit: &AuditEntry) -> StoreResult<StoredVersion> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        lock_source(&tx, &new.source_id).await?;
        let newest: Option<i64> = tx
            .query_one(
                "SELECT max(version) FROM mapping_versions WHERE source_id = $1",
                &[&new.source_id],
            )
            .await?
            .try_get(0)?;
        if let Some(newest) = newest.filter(|n| *n >= new.version) {
            return Err(StoreError::Conflict(format!(
                "来源 {} 已有版本 {newest}，新版本号须更大 / source {}: version {} is not greater than the stored version {newest}",
                new.source_id, new.source_id, new.version
            )));
        }
        let now = Utc::now();
        insert_version(&tx, new, VersionStatus::Candidate, now).await?;
        insert_audit(&tx, audit, now).await?;
        let stored = select_version(&tx, &new.source_id, new.version)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("mapping version {}", new.version)))?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn import_first_mapping(&self, new: &NewVersion, audit: &AuditEntry) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        lock_source(&tx, &new.source_id).await?;
        let stored: i64 = tx
            .query_one(
                "SELECT count(*) FROM mapping_versions WHERE source_id = $1",
                &[&new.source_id],
            )
            .await?
            .try_get(0)?;
        if stored > 0 {
            return Ok(false);
        }
        let now = Utc::now();
        insert_version(&tx, new, VersionStatus::Active, now).await?;
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
        )
        .await?;
        insert_audit(&tx, audit, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn activate_mapping(&self, a: &Activation, audit: &AuditEntry) -> StoreResult<ActivateOutcome> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        lock_source(&tx, &a.source_id).await?;
        let active = active_version(&tx, &a.source_id).await?;
        if active != a.expected_active {
            return Ok(ActivateOutcome::ActiveChanged { active });
        }
        let exists = tx
            .query_opt(
                "SELECT 1 FROM mapping_versions WHERE source_id = $1 AND version = $2",
                &[&a.source_id, &a.version],
            )
            .await?;
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
        tx.execute(
            "UPDATE mapping_versions SET status = 'retired', retired_at = $2 WHERE source_id = $1 AND status = 'active'",
            &[&a.source_id, &now],
        )
        .await?;
        tx.execute(
            "UPDATE mapping_versions SET status = 'active', activated_at = $3, activated_by = $4
             WHERE source_id = $1 AND version = $2",
            &[&a.source_id, &a.version, &now, &a.actor],
        )
        .await?;
        let row = ActivationRow {
            source_id: a.source_id.clone(),
            version: a.version,
            previous_version: active,
            kind: a.kind,
            actor: a.actor.clone(),
            at: now,
        };
        insert_activation(&tx, &row).await?;
        insert_audit(&tx, audit, now).await?;
        tx.commit().await?;
        Ok(ActivateOutcome::Done(row))
    }

    async fn mapping_activations(&self, source_id: &str) -> StoreResult<Vec<ActivationRow>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT source_id, version, previous_version, kind, actor, at FROM mapping_activations
                 WHERE source_id = $1 ORDER BY id",
                &[&source_id],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get(3)?;
                Ok(ActivationRow {
                    source_id: r.try_get(0)?,
                    version: r.try_get(1)?,
                    previous_version: r.try_get(2)?,
                    kind: ActivationKind::parse(&kind).ok_or_else(|| corrupt("activation kind", &kind))?,
                    actor: r.try_get(4)?,
                    at: r.try_get(5)?,
                })
            })
            .collect()
    }

    async fn last_raw_records(&self, source_id: &str, limit: i64) -> StoreResult<Vec<RawRecord>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {RAW_COLUMNS} FROM {RAW_TABLES} WHERE r.source_id = $1 ORDER BY r.id DESC LIMIT $2"
            ))
            .await?;
        let rows = client.query(&stmt, &[&source_id, &limit]).await?;
        rows.iter().map(raw_record_from_row).collect()
    }

    async fn audit_about(&self, subject: &str, action_prefix: &str) -> StoreResult<Vec<AuditRecord>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, at, actor, action, subject, detail FROM audit_log
                 WHERE subject = $1 AND left(action, length($2)) = $2 ORDER BY id",
                &[&subject, &action_prefix],
            )
            .await?;
        Ok(rows.iter().map(audit_record).collect::<Result<_, _>>()?)
    }
}
