//! Re-sealing the store's personal data under the current key (`gateway personal-data rekey`),
//! so that an old data key can be retired: every sealed value and payload under another key is
//! opened and sealed again, row by row, each row written only if it still holds what was read
//! (the gateway may be running meanwhile).

use super::error::StoreResult;
use crate::crypto::personal::Keyring;
use async_trait::async_trait;
use serde::Serialize;

/// What one re-sealing pass did, per place of the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Resealed {
    /// (table, rows re-sealed) for each place visited, in order.
    pub places: Vec<(String, u64)>,
    /// Rows whose values did not open (a key not configured, or altered data): left as they are,
    /// with the first reason.
    pub failed: u64,
    /// Why the first failed row failed.
    pub first_failure: Option<String>,
    /// Rows changed by someone else between reading and writing: left for the next pass.
    pub raced: u64,
}

impl Resealed {
    /// Count the write of a re-sealed row of `table` that changed `rows` rows: one, or none when
    /// someone changed the row after it was read (left for the next pass).
    pub fn written(&mut self, table: &str, rows: u64) {
        if rows == 0 {
            self.raced += 1;
            return;
        }
        match self.places.iter_mut().find(|(t, _)| t == table) {
            Some((_, n)) => *n += 1,
            None => self.places.push((table.to_string(), 1)),
        }
    }

    /// Count a row that did not open.
    pub fn fail(&mut self, why: String) {
        self.failed += 1;
        self.first_failure.get_or_insert(why);
    }

    /// Rows re-sealed in all.
    pub fn total(&self) -> u64 {
        self.places.iter().map(|(_, n)| n).sum()
    }
}

/// Re-sealing of stored personal data.
#[async_trait]
pub trait SealedStore: Send + Sync {
    /// Re-seal, under `keys`' current key, every value and payload the store keeps sealed under
    /// another key, `batch` rows at a time.
    async fn reseal(&self, keys: &Keyring, batch: i64) -> StoreResult<Resealed>;
}

/// The row's text columns re-sealed: `Ok(None)` when none changed.
pub(crate) fn reseal_columns(keys: &Keyring, values: &[Option<String>]) -> Result<Option<Vec<Option<String>>>, String> {
    let mut changed = false;
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        match v.as_deref().map(|t| keys.reseal_all(t)).transpose() {
            Ok(Some(Some(new))) => {
                changed = true;
                out.push(Some(new));
            }
            Ok(_) => out.push(v.clone()),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(changed.then_some(out))
}
