//! The gateway: a record's way through the program, one folder per stage, in data-flow order:
//!
//! ```text
//! intake ──> prepare ──> commit ──> store ──> outbox ──> sinks (adapters)
//! ```
//!
//! - ground floor: [`shutdown`] (stopping cleanly), [`telemetry`] (counts, metrics, the source
//!   board, internal events), [`allocator`];
//! - [`config`]: the configuration file, checked whole (with each source's [`config::schedule`]);
//! - [`archive`]: the evidence-grade raw archive (hash chain, signed checkpoints, receipts);
//! - [`store`]: everything kept (raw archive, cases, quarantine, outbox, mapping versions), one
//!   interface and two backends, opened in one place;
//! - [`attachments`]: evidence attachments (证据附件): the object store, fetching, download links
//!   and holding deliveries until a version's attachments are stored;
//! - [`prepare`]: reading source records and mapping and validating them on the preparation threads;
//! - [`commit`]: the one committer every way in hands its prepared records to;
//! - [`runtime`]: what a running gateway shares, built at start-up from the store's active mappings;
//! - [`lifecycle`]: mapping versions (upload, dry run, activate, roll back, follow);
//! - [`intake`]: the ways in (files, drop folders, REST/SOAP pulls, AMQP, HTTP push, replay,
//!   the supervision-item catalogue, the officer registry);
//! - [`outbox`]: onward delivery to the sinks;
//! - [`server`]: the operator API, dashboard and HTTP push endpoint;
//! - [`cli`]: the command line.

pub mod allocator;
pub mod crypto;
pub mod shutdown;
pub mod telemetry;

pub mod config;

pub mod store;

pub mod attachments;

pub mod prepare;

pub mod commit;

pub mod runtime;

pub mod lifecycle;

pub mod archive;
pub mod intake;
pub mod outbox;
pub mod oversight;

pub mod server;

pub mod cli;
