//! The `normalize` benchmark with mimalloc as the global allocator, to show what the allocator
//! of the binary is worth: the canonical record is a `serde_json::Value` of about a hundred
//! small heap blocks that are made and freed for every record.
//! Run: `cargo bench -p normalizer --bench normalize_mimalloc`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use criterion::{criterion_group, criterion_main};

criterion_group!(normalize, common::benches);
criterion_main!(normalize);
