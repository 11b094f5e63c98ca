//! Supervision (监督): reconciliation of each source against what it says it holds (对账,
//! [`reconcile`]), cases left off the platform ([`off_platform`]), and alerts (告警, [`alerts`])
//! with their webhook messages ([`webhooks`]).
//!
//! In `gateway run` ([`run`]):
//! - every instance evaluates the rules about what runs on it (a source failing or stalled, a
//!   certificate about to expire): the store keeps one firing alert per rule and subject, so two
//!   instances raising the same alert raise it once;
//! - one instance at a time (the lease `oversight:alerts`) evaluates the rules about the store
//!   (quarantine rate, dead deliveries, reconciliation gaps, cases off the platform) and sends
//!   the queued webhook messages;
//! - one instance at a time (the lease `oversight:reconcile`) asks every source with a count
//!   query, every `[reconciliation] check_minutes`.

pub mod alerts;
pub mod context;
pub mod off_platform;
pub mod queries;
pub mod reconcile;
pub mod service;
pub mod webhooks;

pub use context::{Oversight, OversightError};
pub use service::run;
