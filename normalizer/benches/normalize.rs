//! Throughput of the whole normalise path (mapping + schema + rules) on a realistic ~1 KB
//! penalty record of the Nanchang example system, and of its parts, with the system allocator.
//! Run: `cargo bench -p normalizer --bench normalize`.

mod common;

use criterion::{criterion_group, criterion_main};

criterion_group!(normalize, common::benches);
criterion_main!(normalize);
