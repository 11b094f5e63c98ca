//! The mapping lifecycle: data-standards owners change a mapping or a code table, see what the
//! change does to real archived records, activate it, roll it back, with an audit trail.
//!
//! - Versions live in the store ([`store::MappingStore`]): each a self-contained
//!   [`MappingBundle`] (mapping text + every code table it reads), with its test report,
//!   uploader and status (candidate / active / retired). Files are how a mapping enters; the
//!   store is what runs.
//! - At start ([`Runtime::open`](crate::runtime::Runtime::open)) each source runs its active stored
//!   version. A source without any stored version gets the configuration's mapping file
//!   imported and activated (audited as `system`). A configuration file that differs from every
//!   stored version is logged as a warning naming both, and the stored active version runs.
//! - [`upload`] parses the mapping (errors with file:line:col), runs its embedded tests,
//!   refuses a version number not greater than every stored one or another mapping id, and
//!   stores it as a candidate.
//! - [`dry_run`] replays the last N raw records of the source through the active version and a
//!   candidate and reports what would change ([`compare`]); nothing is written but the audit.
//! - [`activate`] and [`rollback`] switch the active version in one transaction (at most one
//!   active per source, even with several instances on one PostgreSQL store) and swap the
//!   running mapping; the audit entry carries the unified diff of the two versions.
//! - [`history`] lists every version and the audit entries; [`watch`] lets a running gateway
//!   pick up activations made by another instance.
//!
//! Every function takes the [`Runtime`], the acting user (`cli:<user>`, a token name, `system`)
//! and plain input, and returns a JSON-serialisable report or a [`LifecycleError`] with a stable
//! [`LifecycleError::code`].

pub mod actions;
pub mod compare;
pub mod error;
pub mod textdiff;
mod watch;

pub use actions::*;
pub use compare::{Comparison, FieldChange, NewlyRejected, RecordRef, SampleDiff};
pub use error::{load_stored, LifecycleError};
pub use watch::{sync_active, watch, watch_every, WATCH_INTERVAL};
