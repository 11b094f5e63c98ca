//! The preparer (mapping and validation) of every source, swappable while running.

use crate::prepare::Preparer;
use normalizer::mapping::Mapping;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The preparer of every source, swappable while running (a mapping activated or rolled back
/// takes effect for the next batch).
#[derive(Debug, Default)]
pub struct PreparerRegistry {
    by_source: RwLock<HashMap<String, Preparer>>,
}

impl PreparerRegistry {
    /// A registry holding these preparers.
    pub fn new(preparers: HashMap<String, Preparer>) -> PreparerRegistry {
        PreparerRegistry {
            by_source: RwLock::new(preparers),
        }
    }

    /// The source's current preparer.
    pub fn get(&self, source_id: &str) -> Option<Preparer> {
        self.by_source.read().ok()?.get(source_id).cloned()
    }

    /// Use `mapping` for the source's next batches; false if the source is unknown.
    pub fn replace_mapping(&self, source_id: &str, mapping: Arc<Mapping>) -> bool {
        let Ok(mut map) = self.by_source.write() else {
            return false;
        };
        match map.get_mut(source_id) {
            Some(p) => {
                p.mapping = mapping;
                true
            }
            None => false,
        }
    }

    /// Use `normalizer` (schemas and rules, e.g. with a new catalogue) for every source's next batches.
    pub fn replace_normalizer(&self, normalizer: Arc<normalizer::Normalizer>) {
        if let Ok(mut map) = self.by_source.write() {
            for p in map.values_mut() {
                p.normalizer = Arc::clone(&normalizer);
            }
        }
    }

    /// Every source's current preparer, by source id.
    pub fn snapshot(&self) -> HashMap<String, Preparer> {
        self.by_source.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// Ids of every source.
    pub fn source_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .by_source
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }
}
