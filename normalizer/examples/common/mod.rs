//! What the normaliser's loop examples share: the benchmark record and what normalises it.

use normalizer::mapping::Mapping;
use normalizer::rules::RuleOptions;
use normalizer::Normalizer;
use serde_json::Value;
use std::path::Path;

/// The Nanchang penalty mapping, a normaliser for Jiangxi agencies, and the first sample record,
/// which that mapping turns into a valid canonical record (checked here).
pub fn benchmark_setup() -> (Mapping, Normalizer, Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings/nanchang-amr-penalty");
    let mapping = Mapping::load(&dir.join("mapping.toml")).unwrap_or_else(|e| panic!("mapping: {e}"));
    let normalizer = Normalizer::new(RuleOptions {
        agency_region_prefix: Some("36".into()),
        catalogue: None,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("schemas: {e}"));
    let text = std::fs::read_to_string(dir.join("samples/records.jsonl")).unwrap_or_default();
    let record: Value = serde_json::from_str(text.lines().next().unwrap_or("{}")).unwrap_or(Value::Null);
    let outcome = normalizer.normalize(&mapping, &record);
    assert!(outcome.is_accepted(), "{:?}", outcome.violations);
    (mapping, normalizer, record)
}
