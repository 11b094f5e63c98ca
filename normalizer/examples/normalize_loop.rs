//! Runs the normalise path of the benchmark record in a loop, for profilers that count
//! instructions (`valgrind --tool=callgrind --toggle-collect='*hot_loop*'`), which are
//! repeatable on a shared machine where timings are not.
//!
//! `cargo build --release -p normalizer --example normalize_loop`, then
//! `target/release/examples/normalize_loop [ITERATIONS] [all|into|map|validate|parse]`
//! (`into` reuses one `Outcome` as the gateway does within a chunk).

#[path = "common/mod.rs"]
mod common;

use normalizer::mapping::Mapping;
use normalizer::Normalizer;
use serde_json::Value;
use std::hint::black_box;

#[inline(never)]
fn hot_loop(mode: &str, n: usize, normalizer: &Normalizer, mapping: &Mapping, record: &Value, bytes: &[u8]) -> usize {
    let mut total = 0;
    let mapped = normalizer.normalize(mapping, record).record;
    let mut reused = normalizer::Outcome::default();
    for _ in 0..n {
        total += match mode {
            "into" => {
                normalizer.normalize_into(mapping, black_box(record), &mut reused);
                black_box(&reused).violations.len()
            }
            "map" => black_box(mapping.apply(black_box(record))).violations.len(),
            "validate" => black_box(normalizer.validate(black_box(&mapped))).len(),
            "parse" => {
                let value: Value = serde_json::from_slice(black_box(bytes)).unwrap_or(Value::Null);
                black_box(normalizer.normalize(mapping, &value)).violations.len()
            }
            _ => black_box(normalizer.normalize(mapping, black_box(record)))
                .violations
                .len(),
        };
    }
    total
}

pub fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let mode = args.next().unwrap_or_else(|| "all".into());
    let (mapping, normalizer, record) = common::benchmark_setup();
    let bytes = serde_json::to_vec(&record).unwrap_or_default();
    let start = std::time::Instant::now();
    let total = hot_loop(&mode, n, &normalizer, &mapping, &record, &bytes);
    let elapsed = start.elapsed();
    println!(
        "{mode}: {n} iterations, {:.3} µs each, {total} violations",
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
}
