//! The audit log on PostgreSQL: appending an entry (on a client or inside the caller's
//! transaction) and reading one back; shared by the store, its commit and the mapping versions.

use super::error::StoreResult;
use super::types::{AuditEntry, AuditRecord};
use chrono::{DateTime, Utc};
use tokio_postgres::{Error as PgError, Row};

/// Append an audit entry at `now`, on a client or inside the caller's transaction, identifiers
/// masked ([`AuditEntry::masked`]).
pub(crate) async fn insert_audit(
    client: &impl deadpool_postgres::GenericClient,
    entry: &AuditEntry,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let entry = entry.masked();
    let stmt = client
        .prepare_cached("INSERT INTO audit_log (at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5)")
        .await?;
    client
        .execute(
            &stmt,
            &[&now, &entry.actor, &entry.action, &entry.subject, &entry.detail],
        )
        .await?;
    Ok(())
}

/// An audit entry from a row of `id, at, actor, action, subject, detail`.
pub(crate) fn audit_record(r: &Row) -> Result<AuditRecord, PgError> {
    Ok(AuditRecord {
        id: r.try_get(0)?,
        at: r.try_get(1)?,
        actor: r.try_get(2)?,
        action: r.try_get(3)?,
        subject: r.try_get(4)?,
        detail: r.try_get(5)?,
    })
}
