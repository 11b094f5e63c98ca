//! `Normalizer::normalize_into` reuses the previous record's keys and objects: whatever the
//! reused `Outcome` held, the result must be exactly what a fresh `normalize` gives.

use normalizer::mapping::Mapping;
use normalizer::xml_tree::{find_records, parse_xml, XmlLimits};
use normalizer::{Normalizer, Outcome, Violation};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn example_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings").join(name)
}

fn load(name: &str) -> Mapping {
    Mapping::load(&example_dir(name).join("mapping.toml")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn jsonl(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(example_dir(name).join("samples/records.jsonl")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Every sample record of the three example mappings, with its mapping: valid and defective
/// records of three record shapes.
fn samples() -> Vec<(Mapping, Vec<Value>)> {
    let bytes = std::fs::read(example_dir("jiangxi-ecology-soap").join("samples/records.xml")).unwrap();
    let tree = parse_xml(&bytes, &XmlLimits::default()).unwrap();
    let soap = find_records(&tree, "Envelope.Body.queryCasesResponse.return.case")
        .into_iter()
        .cloned()
        .collect();
    vec![
        (load("nanchang-amr-penalty"), jsonl("nanchang-amr-penalty")),
        (load("jiangxi-ecology-soap"), soap),
        (load("internet-plus-behaviour"), jsonl("internet-plus-behaviour")),
    ]
}

#[test]
fn normalizing_into_the_outcome_of_any_earlier_record_gives_what_a_fresh_normalize_gives() {
    let normalizer = Normalizer::default();
    let sets = samples();
    let all: Vec<(&Mapping, &Value)> = sets
        .iter()
        .flat_map(|(m, records)| records.iter().map(move |r| (m, r)))
        .collect();
    assert!(all.len() > 80, "only {} samples", all.len());
    let fresh: Vec<Outcome> = all.iter().map(|(m, r)| normalizer.normalize(m, r)).collect();
    assert!(fresh.iter().any(Outcome::is_accepted) && !fresh.iter().all(Outcome::is_accepted));
    for (i, (earlier_mapping, earlier)) in all.iter().enumerate() {
        for (j, (mapping, record)) in all.iter().enumerate() {
            let mut outcome = Outcome::default();
            normalizer.normalize_into(earlier_mapping, earlier, &mut outcome);
            normalizer.normalize_into(mapping, record, &mut outcome);
            assert_eq!(outcome, fresh[j], "sample {j} normalised after sample {i}");
        }
    }
}

#[test]
fn normalizing_into_an_outcome_holding_foreign_data_ignores_that_data() {
    let normalizer = Normalizer::default();
    let mapping = load("nanchang-amr-penalty");
    let record = &jsonl("nanchang-amr-penalty")[0];
    let expected = normalizer.normalize(&mapping, record);
    assert!(expected.is_accepted(), "{:?}", expected.violations);
    let junk_violation = Violation::error("/x", "schema.required", None, "旧的", "stale");
    for foreign in [
        json!({"agency": "not an object", "aaa": 1, "zzz": [1, 2], "penalty": {"unknown": true}}),
        json!({"officers": {"name": "not a list"}, "target": {}, "case_type": null}),
        json!([{"case_type": "penalty"}]),
        json!("text"),
        json!(12),
        Value::Null,
    ] {
        let mut outcome = Outcome {
            record: foreign.clone(),
            violations: vec![junk_violation.clone()],
        };
        normalizer.normalize_into(&mapping, record, &mut outcome);
        assert_eq!(outcome, expected, "normalised into {foreign}");
    }
}

#[test]
fn lists_of_officers_growing_shrinking_and_with_blank_entries_are_rebuilt_exactly() {
    let normalizer = Normalizer::default();
    let mapping = load("nanchang-amr-penalty");
    let base = jsonl("nanchang-amr-penalty").swap_remove(0);
    let officer = |name: &str, cert: &str| json!({"xm": name, "zfzh": cert});
    let lists = [
        json!([
            officer("张三", "36010020001"),
            officer("李四", "36010020002"),
            officer("王五", "36010020003")
        ]),
        json!([officer("赵六", "36010020004")]),
        json!([{}, officer("张三", "36010020001"), {"xm": " "}, officer("李四", "36010020002")]),
        json!([{"bz": "no officer fields"}]),
        json!("not a list"),
        json!([officer("张三", "36010020001"), officer("张三", "36010020001")]),
    ];
    let mut outcome = Outcome::default();
    for round in 0..2 {
        for list in &lists {
            let mut record = base.clone();
            record["zfry"] = list.clone();
            normalizer.normalize_into(&mapping, &record, &mut outcome);
            assert_eq!(
                outcome,
                normalizer.normalize(&mapping, &record),
                "round {round}, officers {list}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Records of one source with random fields left out, normalised one after another into
    /// one outcome (as the gateway does within a chunk), each equal to its fresh normalisation.
    #[test]
    fn a_stream_of_records_with_missing_fields_normalises_as_each_would_alone(
        picks in proptest::collection::vec((0usize..24, proptest::collection::vec(any::<bool>(), 40)), 1..6)
    ) {
        let normalizer = Normalizer::default();
        let mapping = load("nanchang-amr-penalty");
        let records = jsonl("nanchang-amr-penalty");
        let mut outcome = Outcome::default();
        for (index, keep) in picks {
            let mut record = records[index % records.len()].clone();
            if let Value::Object(map) = &mut record {
                let mut keeps = keep.iter().cycle();
                map.retain(|_, _| keeps.next().copied().unwrap_or(true));
            }
            normalizer.normalize_into(&mapping, &record, &mut outcome);
            prop_assert_eq!(&outcome, &normalizer.normalize(&mapping, &record));
        }
    }
}
