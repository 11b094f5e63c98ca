//! Onward delivery: the outbox dispatcher, its retry timing, and the outbox's interface to the
//! store.
//!
//! Every committed case version has one outbox row per configured sink (written by the commit,
//! in the same transaction). The [`dispatcher`] delivers them at least once, in order per case
//! and sink, with retries and dead deliveries an operator can re-drive
//! (`gateway deliveries list|redrive`). The idempotency key `<unified code>:<version>` travels
//! with every delivery so receivers can drop repeats.

pub mod dispatcher;
pub mod publicity;
pub mod retry;

pub use dispatcher::{DispatchError, Dispatchers, Mode};
