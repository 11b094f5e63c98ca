//! The benchmark cases, shared by the bench with the system allocator (`normalize`) and the one
//! with mimalloc (`normalize_mimalloc`).

use criterion::{BatchSize, Criterion, Throughput};
use normalizer::mapping::Mapping;
use normalizer::rules::RuleOptions;
use normalizer::standards::credit_code::CreditCode;
use normalizer::Normalizer;
use serde_json::Value;
use std::hint::black_box;
use std::path::Path;

fn sample_records() -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings/nanchang-amr-penalty/samples/records.jsonl");
    let text = std::fs::read_to_string(path).expect("sample records");
    text.lines()
        .map(|line| serde_json::from_str(line).expect("sample JSON"))
        .collect()
}

fn sample_record() -> Value {
    sample_records().into_iter().next().expect("a sample line")
}

/// Every case: the whole path on one record, its parts, and credit-code parsing.
pub fn benches(c: &mut Criterion) {
    let mapping =
        Mapping::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings/nanchang-amr-penalty/mapping.toml"))
            .expect("mapping loads");
    let normalizer = Normalizer::new(RuleOptions {
        agency_region_prefix: Some("36".into()),
        catalogue: None,
        ..Default::default()
    })
    .expect("schemas compile");
    let record = sample_record();
    let bytes = serde_json::to_vec(&record).expect("serialise");
    let outcome = normalizer.normalize(&mapping, &record);
    assert!(
        outcome.is_accepted(),
        "the benchmark record is valid: {:?}",
        outcome.violations
    );

    let mut group = c.benchmark_group("normalize");
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("parse_json_map_validate_{}B_record", bytes.len()), |b| {
        b.iter(|| {
            let value: Value = serde_json::from_slice(black_box(&bytes)).expect("json");
            black_box(normalizer.normalize(&mapping, &value))
        })
    });
    group.bench_function("map_and_validate", |b| {
        b.iter(|| black_box(normalizer.normalize(&mapping, black_box(&record))))
    });
    // What the gateway runs: the records of a chunk normalised into one reused `Outcome`.
    group.bench_function("map_and_validate_into", |b| {
        let mut reused = normalizer::Outcome::default();
        b.iter(|| {
            normalizer.normalize_into(&mapping, black_box(&record), &mut reused);
            black_box(reused.violations.len())
        })
    });
    // The 24 sample records in turn (valid and defective, with different fields present).
    let samples = sample_records();
    group.bench_function("map_and_validate_24_samples_in_turn", |b| {
        let mut next = samples.iter().cycle();
        b.iter(|| black_box(normalizer.normalize(&mapping, black_box(next.next().unwrap_or(&record)))))
    });
    group.bench_function("map_and_validate_into_24_samples_in_turn", |b| {
        let mut next = samples.iter().cycle();
        let mut reused = normalizer::Outcome::default();
        b.iter(|| {
            normalizer.normalize_into(&mapping, black_box(next.next().unwrap_or(&record)), &mut reused);
            black_box(reused.violations.len())
        })
    });
    group.bench_function("map_only", |b| b.iter(|| black_box(mapping.apply(black_box(&record)))));
    group.bench_function("schema_and_rules_only", |b| {
        b.iter_batched(
            || outcome.record.clone(),
            |r| black_box(normalizer.validate(&r)),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    // The machine's own speed, to set the figures above against the performance notes of this
    // machine class (`serde_json`, a 616 B case record with Chinese text into a `Value`: ~500 MB/s
    // there): the canonical case record and the source record parsed and dropped.
    let canonical = serde_json::to_vec(&outcome.record).expect("serialise");
    let mut group = c.benchmark_group("reference");
    for (name, json) in [("canonical", &canonical), ("source", &bytes)] {
        group.throughput(Throughput::Bytes(json.len() as u64));
        group.bench_function(format!("serde_json_parse_{}B_{name}_record", json.len()), |b| {
            b.iter(|| black_box(serde_json::from_slice::<Value>(black_box(json)).map(|v| v.is_object())))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("standards");
    group.throughput(Throughput::Elements(1));
    group.bench_function("credit_code_parse", |b| {
        b.iter(|| black_box(CreditCode::parse(black_box("91360102MA35G7K86A")).is_ok()))
    });
    group.finish();
}
