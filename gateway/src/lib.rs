//! The gateway: configuration, pipeline, store, operator API and command line.
//! A record's way through the program: source -> raw archive -> normalise -> commit (or
//! quarantine) -> outbox -> sinks.

pub mod allocator;
pub mod cli;
pub mod config;
pub mod lifecycle;
pub mod outbox;
pub mod pipeline;
pub mod runtime;
pub mod server;
pub mod sources;
pub mod store;
