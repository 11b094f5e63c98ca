//! Delivery sinks: where committed case versions go after the gateway's outbox.
//!
//! A sink takes a batch of [`Delivery`]s (one case version each, at most one version per case)
//! and answers with one [`Outcome`] per delivery. The gateway's dispatcher turns outcomes into
//! outbox state: delivered, retried with backoff, dead, or deferred because the sink could not
//! be reached. Sinks never decide about retries themselves; they only say what happened.
//!
//! - [`postgres`]: the platform's relational tables (one column per canonical field), upserted
//!   by (unified code, version) in one transaction per batch.
//! - [`amqp`]: persistent messages on a durable exchange, routing key `<type>.<region>`, many
//!   publisher confirms in flight.
//! - [`rest`]: one POST/PUT per delivery to an upload API, body from a template, rate limited.
//!
//! The types every kind shares are in `delivery.rs`. Settings of every kind are parsed and
//! checked by [`settings`]; secrets come from [`secret`] (the ground floor's
//! [`crate::common::secret`]); message bodies are encoded by [`encode`].

pub mod amqp;
mod delivery;
pub mod encode;
pub mod postgres;
pub mod rest;
pub mod settings;

/// Secrets of sink settings (`url`, `url_env`, `url_file`, ...).
pub use crate::common::secret;
pub use crate::common::settings::SettingsProblem;
pub use delivery::{Delivery, Outcome, Sink, SinkError};
pub use settings::{check_settings, SinkSettings};
