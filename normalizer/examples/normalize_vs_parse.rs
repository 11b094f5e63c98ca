//! The normalise path timed against the machine's own speed, for shared and throttled
//! machines whose absolute timings drift by a factor of two between instances and by a
//! quarter between runs.
//!
//! Rounds alternate short blocks of two workloads on one core: parsing the canonical case
//! record (JSON with Chinese text) into a `serde_json::Value` and dropping it, which the
//! performance notes of this machine class measured at ~500 MB/s, and `normalize_into` of
//! the benchmark record into one reused `Outcome`, as the gateway runs it. A slowdown of the
//! machine hits both blocks of a round alike, so the ratio of the two is steady where each
//! time is not. The median ratio times the parse time at the reference speed gives the time
//! per record on a machine of the reference speed.
//!
//! A third block parses the 1,304-byte source record; its ratio is printed for comparison
//! only (per byte, this key-heavy record parses at a different speed from a case record).
//!
//! `cargo build --release -p normalizer --example normalize_vs_parse`, then
//! `target/release/examples/normalize_vs_parse [ROUNDS] [RECORDS_PER_BLOCK] [into|fresh]`
//! (defaults 200, 2000, `into`; `fresh` normalises into a new `Outcome` each time).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use serde_json::Value;
use std::hint::black_box;
use std::time::Instant;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200).max(1);
    let block: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(2000).max(1);
    let fresh = args.next().is_some_and(|mode| mode == "fresh");
    let reference_mb_per_s = 500.0;

    let (mapping, normalizer, record) = common::benchmark_setup();
    let canonical = serde_json::to_vec(&normalizer.normalize(&mapping, &record).record).unwrap_or_default();
    let source = serde_json::to_vec(&record).unwrap_or_default();

    let mut reused = normalizer::Outcome::default();
    let mut parse_us = Vec::with_capacity(rounds);
    let mut normalize_us = Vec::with_capacity(rounds);
    let mut ratios = Vec::with_capacity(rounds);
    let mut source_ratios = Vec::with_capacity(rounds);
    let mut sink = 0usize;
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..block {
            let parsed = serde_json::from_slice::<Value>(black_box(&canonical));
            sink += usize::from(black_box(parsed).is_ok());
        }
        let parse = start.elapsed().as_secs_f64() * 1e6 / block as f64;
        let start = Instant::now();
        for _ in 0..block {
            if fresh {
                sink += black_box(normalizer.normalize(&mapping, black_box(&record)))
                    .violations
                    .len();
            } else {
                normalizer.normalize_into(&mapping, black_box(&record), &mut reused);
                sink += black_box(&reused).violations.len();
            }
        }
        let normalize = start.elapsed().as_secs_f64() * 1e6 / block as f64;
        let start = Instant::now();
        for _ in 0..block {
            let parsed = serde_json::from_slice::<Value>(black_box(&source));
            sink += usize::from(black_box(parsed).is_ok());
        }
        let source_parse = start.elapsed().as_secs_f64() * 1e6 / block as f64;
        parse_us.push(parse);
        normalize_us.push(normalize);
        ratios.push(normalize / parse);
        source_ratios.push(normalize / source_parse);
    }
    let ratio = median(&mut ratios);
    let source_ratio = median(&mut source_ratios);
    let parse = median(&mut parse_us);
    let normalize = median(&mut normalize_us);
    let parse_at_reference_us = canonical.len() as f64 / reference_mb_per_s;
    let at_reference = ratio * parse_at_reference_us;
    println!(
        "{rounds} rounds of {block} records; canonical record {} B ({sink} checks)",
        canonical.len()
    );
    println!(
        "here: parse {parse:.3} µs ({:.0} MB/s), normalize {normalize:.3} µs ({:.0} records/s) (medians)",
        canonical.len() as f64 / parse,
        1e6 / normalize
    );
    let mode = if fresh { "normalize" } else { "normalize_into" };
    println!("{mode} / parse of the canonical record, median of the rounds: {ratio:.3}");
    println!(
        "  at the notes' parse speed of {reference_mb_per_s:.0} MB/s: parse {parse_at_reference_us:.3} µs, \
         {mode} {at_reference:.3} µs ({:.0} records/s)",
        1e6 / at_reference
    );
    println!(
        "{mode} / parse of the {} B source record, median of the rounds: {source_ratio:.3}",
        source.len()
    );
}
