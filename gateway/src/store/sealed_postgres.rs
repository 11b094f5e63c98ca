//! Re-sealing personal data on PostgreSQL.

use super::compress;
use super::error::StoreResult;
use super::postgres::PostgresStore;
use super::sealed::{reseal_columns, Resealed, SealedStore};
use crate::crypto::personal::{is_sealed_bytes, Keyring};
use async_trait::async_trait;
use tokio_postgres::types::ToSql;

/// A text column that may hold sealed values, and whether it is jsonb.
type Column = (&'static str, bool);

/// (table, key column, its columns that may hold sealed values).
const TEXT_PLACES: [(&str, &str, &[Column]); 4] = [
    ("quarantine", "id", &[("violations", true), ("target_id", false)]),
    ("joint_members", "case_id", &[("target_id", false)]),
    ("joint_groups", "id", &[("target_id", false), ("joint_record", true)]),
    ("joint_queue", "id", &[("target_id", false)]),
];

#[async_trait]
impl SealedStore for PostgresStore {
    async fn reseal(&self, keys: &Keyring, batch: i64) -> StoreResult<Resealed> {
        let client = self.client().await?;
        let mut done = Resealed::default();

        // Raw payloads: stored plain or lz4-compressed; a re-sealed one is written plain (codec 0).
        let mut after = 0i64;
        loop {
            let rows = client
                .query(
                    "SELECT id, payload, payload_codec FROM raw_records WHERE id > $1 ORDER BY id LIMIT $2",
                    &[&after, &batch],
                )
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.try_get(0)?;
            for r in &rows {
                let id: i64 = r.try_get(0)?;
                let stored: Vec<u8> = r.try_get(1)?;
                let codec: i16 = r.try_get(2)?;
                let payload = match codec {
                    compress::CODEC_LZ4 => compress::decompress(&stored)?,
                    _ => stored.clone(),
                };
                if !is_sealed_bytes(&payload) {
                    continue;
                }
                match keys.reseal_bytes(&payload) {
                    Ok(Some(new)) => {
                        let n = client
                            .execute(
                                "UPDATE raw_records SET payload = $1, payload_codec = 0 WHERE id = $2 AND payload = $3",
                                &[&new, &id, &stored],
                            )
                            .await?;
                        done.written("raw_records", n);
                    }
                    Ok(None) => {}
                    Err(e) => done.fail(format!("raw_records {id}: {e}")),
                }
            }
        }

        // Case versions: the record (lz4 text, or jsonb for rows before migration 0006) and the
        // target look-up column.
        let mut after = (0i64, 0i32);
        loop {
            let rows = client
                .query(
                    "SELECT case_id, version, record_lz4, record::text, target_id FROM case_versions
                     WHERE (case_id, version) > ($1, $2) ORDER BY case_id, version LIMIT $3",
                    &[&after.0, &after.1, &batch],
                )
                .await?;
            let Some(last) = rows.last() else { break };
            after = (last.try_get(0)?, last.try_get(1)?);
            for r in &rows {
                let (case_id, version): (i64, i32) = (r.try_get(0)?, r.try_get(1)?);
                let lz4: Option<Vec<u8>> = r.try_get(2)?;
                let jsonb: Option<String> = r.try_get(3)?;
                let target: Option<String> = r.try_get(4)?;
                let text = match &lz4 {
                    Some(block) => Some(String::from_utf8_lossy(&compress::decompress(block)?).into_owned()),
                    None => jsonb.clone(),
                };
                let new = match reseal_columns(keys, &[text, target.clone()]) {
                    Ok(Some(new)) => new,
                    Ok(None) => continue,
                    Err(e) => {
                        done.fail(format!("case_versions {case_id}/{version}: {e}"));
                        continue;
                    }
                };
                let new_record = new[0].clone().unwrap_or_default();
                let n = match &lz4 {
                    Some(block) => {
                        client
                            .execute(
                                "UPDATE case_versions SET record_lz4 = $1, target_id = $2
                                 WHERE case_id = $3 AND version = $4 AND record_lz4 = $5
                                   AND target_id IS NOT DISTINCT FROM $6",
                                &[
                                    &compress::compress(new_record.as_bytes()),
                                    &new[1],
                                    &case_id,
                                    &version,
                                    block,
                                    &target,
                                ],
                            )
                            .await?
                    }
                    None => {
                        client
                            .execute(
                                "UPDATE case_versions SET record = $1::text::jsonb, target_id = $2
                                 WHERE case_id = $3 AND version = $4 AND record::text = $5
                                   AND target_id IS NOT DISTINCT FROM $6",
                                &[&new_record, &new[1], &case_id, &version, &jsonb, &target],
                            )
                            .await?
                    }
                };
                done.written("case_versions", n);
            }
        }

        for (table, key, columns) in TEXT_PLACES {
            let read: Vec<String> = columns.iter().map(|(c, _)| format!("{c}::text")).collect();
            let any = read
                .iter()
                .map(|c| format!("strpos({c}, 'pd1:') > 0"))
                .collect::<Vec<_>>()
                .join(" OR ");
            let select = format!(
                "SELECT {key}::int8, {} FROM {table} WHERE {key} > $1 AND ({any}) ORDER BY {key} LIMIT $2",
                read.join(", ")
            );
            let n = columns.len();
            let set = columns
                .iter()
                .enumerate()
                .map(|(i, (c, jsonb))| {
                    if *jsonb {
                        format!("{c} = ${}::text::jsonb", i + 1)
                    } else {
                        format!("{c} = ${}", i + 1)
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            let unchanged = read
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c} IS NOT DISTINCT FROM ${}", n + 2 + i))
                .collect::<Vec<_>>()
                .join(" AND ");
            let update = format!("UPDATE {table} SET {set} WHERE {key} = ${} AND {unchanged}", n + 1);
            let mut after = i64::MIN;
            loop {
                let rows = client.query(&select, &[&after, &batch]).await?;
                let Some(last) = rows.last() else { break };
                after = last.try_get(0)?;
                for r in &rows {
                    let id: i64 = r.try_get(0)?;
                    let old: Vec<Option<String>> = (0..n).map(|i| r.try_get(i + 1)).collect::<Result<_, _>>()?;
                    match reseal_columns(keys, &old) {
                        Ok(Some(new)) => {
                            let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(2 * n + 1);
                            for v in &new {
                                params.push(v);
                            }
                            params.push(&id);
                            for v in &old {
                                params.push(v);
                            }
                            done.written(table, client.execute(&update, &params).await?);
                        }
                        Ok(None) => {}
                        Err(e) => done.fail(format!("{table} {id}: {e}")),
                    }
                }
            }
        }
        Ok(done)
    }
}
