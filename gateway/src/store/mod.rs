//! The store: raw archive, cases and their versions, code counters, quarantine, outbox,
//! source cursors and the audit log. One interface, two backends: an embedded SQLite file
//! (the default) and PostgreSQL (production, several gateway instances).
//!
//! A batch of records is committed in ONE transaction by [`Store::commit_batch`]: the backend
//! reads what it needs (existing cases, counters) under the right locks, the pure planner in
//! [`plan`] decides what each record becomes, and the backend writes the plan set-wise.

pub mod archive;
mod archive_postgres;
mod archive_sqlite;
pub mod attachments;
mod attachments_postgres;
mod attachments_sqlite;
mod audit_postgres;
pub mod catalogue;
mod catalogue_postgres;
mod catalogue_sqlite;
pub mod cluster;
mod cluster_postgres;
mod cluster_sqlite;
mod compress;
pub mod console;
pub mod error;
pub mod interface;
pub mod joint;
mod joint_postgres;
mod joint_postgres_store;
mod joint_sqlite;
mod joint_sqlite_store;
pub mod mapping_bundle;
pub mod mappings;
pub mod mappings_postgres;
pub mod mappings_sqlite;
pub mod officers;
mod officers_postgres;
mod officers_sqlite;
pub mod open;
pub mod outbox;
pub mod outbox_postgres;
pub mod outbox_sqlite;
pub mod oversight;
mod oversight_postgres;
mod oversight_sqlite;
pub mod plan;
pub mod postgres;
mod postgres_commit;
pub mod publicity;
mod publicity_postgres;
mod publicity_sqlite;
pub mod sealed;
mod sealed_postgres;
mod sealed_sqlite;
pub mod sqlite;
pub mod supplement;
mod supplement_postgres;
mod supplement_sqlite;
pub mod types;

pub use cluster::{ClusterStore, Fence, InstanceInfo, InstanceRow, LeaseRow};
pub(crate) use compress::decompress as decompressed;
pub use console::{AuditFilter, Outcome, RecordFate, RecordFilter};
pub use error::{retried, StoreError, StoreResult};
pub use interface::Store;
pub use mapping_bundle::{BundleError, MappingBundle};
pub use mappings::{
    audit_subject, ActivateOutcome, Activation, ActivationKind, ActivationRow, ActiveMapping, MappingStore, NewVersion,
    StoredVersion, TestFailure, TestSummary, VersionStatus, SYSTEM_ACTOR,
};
pub use open::{open, Stores};
pub use outbox::{
    Claimed, DeliveryCount, DeliveryFilter, DeliveryRow, DeliveryStatus, OutboxStore, Redrive, RedriveReport,
    Settlement,
};
pub use oversight::OversightStore;
pub use supplement::{
    completion_batch, AwaitingCase, AwaitingCount, AwaitingFilter, NewSupplied, SupplementStore, SuppliedRow,
};
pub use types::*;
