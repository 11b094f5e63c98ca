//! Re-sealing personal data on SQLite.

use super::error::StoreResult;
use super::sealed::{reseal_columns, Resealed, SealedStore};
use super::sqlite::SqliteStore;
use crate::crypto::personal::{is_sealed_bytes, Keyring};
use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter};

/// (table, key column, text columns that may hold sealed values).
const TEXT_PLACES: [(&str, &str, &[&str]); 4] = [
    ("case_versions", "id", &["record"]),
    ("quarantine", "id", &["violations", "target_id"]),
    ("joint_members", "case_id", &["target_id"]),
    ("joint_groups", "id", &["target_id", "joint_record"]),
];

#[async_trait]
impl SealedStore for SqliteStore {
    async fn reseal(&self, keys: &Keyring, batch: i64) -> StoreResult<Resealed> {
        let keys = keys.clone();
        self.with_conn(move |conn| {
            let mut done = Resealed::default();
            let mut after = 0i64;
            loop {
                let rows: Vec<(i64, Vec<u8>)> = conn
                    .prepare_cached("SELECT id, payload FROM raw_records WHERE id > ?1 AND substr(payload, 1, 4) = X'00504431' ORDER BY id LIMIT ?2")?
                    .query_map(params![after, batch], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                let Some(last) = rows.last() else { break };
                after = last.0;
                for (id, payload) in rows.into_iter().filter(|(_, p)| is_sealed_bytes(p)) {
                    match keys.reseal_bytes(&payload) {
                        Ok(Some(new)) => {
                            let n = conn.execute(
                                "UPDATE raw_records SET payload = ?1 WHERE id = ?2 AND payload = ?3",
                                params![new, id, payload],
                            )?;
                            done.written("raw_records", n as u64);
                        }
                        Ok(None) => {}
                        Err(e) => done.fail(format!("raw_records {id}: {e}")),
                    }
                }
            }
            for (table, key, columns) in TEXT_PLACES {
                let any = columns
                    .iter()
                    .map(|c| format!("instr({c}, 'pd1:') > 0"))
                    .collect::<Vec<_>>()
                    .join(" OR ");
                let select = format!(
                    "SELECT {key}, {} FROM {table} WHERE {key} > ?1 AND ({any}) ORDER BY {key} LIMIT ?2",
                    columns.join(", ")
                );
                let set = columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{c} = ?{}", i + 1))
                    .collect::<Vec<_>>()
                    .join(", ");
                let unchanged = columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{c} IS ?{}", columns.len() + 2 + i))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                let update = format!(
                    "UPDATE {table} SET {set} WHERE {key} = ?{} AND {unchanged}",
                    columns.len() + 1
                );
                let mut after = i64::MIN;
                loop {
                    let rows: Vec<(i64, Vec<Option<String>>)> = conn
                        .prepare_cached(&select)?
                        .query_map(params![after, batch], |r| {
                            let mut values = Vec::with_capacity(columns.len());
                            for i in 0..columns.len() {
                                values.push(r.get::<_, Option<String>>(i + 1)?);
                            }
                            Ok((r.get(0)?, values))
                        })?
                        .collect::<Result<_, _>>()?;
                    let Some(last) = rows.last() else { break };
                    after = last.0;
                    for (id, old) in rows {
                        match reseal_columns(&keys, &old) {
                            Ok(Some(new)) => {
                                let mut values: Vec<SqlValue> =
                                    new.into_iter().map(|v| v.map_or(SqlValue::Null, SqlValue::Text)).collect();
                                values.push(SqlValue::Integer(id));
                                values.extend(old.into_iter().map(|v| v.map_or(SqlValue::Null, SqlValue::Text)));
                                done.written(table, conn.execute(&update, params_from_iter(values))? as u64);
                            }
                            Ok(None) => {}
                            Err(e) => done.fail(format!("{table} {id}: {e}")),
                        }
                    }
                }
            }
            Ok(done)
        })
        .await
    }
}
