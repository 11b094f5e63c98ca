//! Sources: where records come from. Pull sources (REST, SOAP/XML) fetch pages of records
//! changed since a cursor; the gateway commits each page and only then persists the cursor
//! that page carries, so a crash never skips a record (it only re-pulls, and re-sent records
//! are absorbed by content hash).
//!
//! The contract between an adapter and the gateway:
//! - [`PullSource::start`] begins one pull run from the stored cursor (or from the start for a
//!   full resync) and returns a [`PullRun`];
//! - [`PullRun::next_page`] yields [`Page`]s until `None`; each page's `cursor`, when set, is
//!   safe to persist once every record of that page and of all earlier pages is committed;
//! - [`PullSource::health`] reports what operators see (circuit state, last error, counts).
//!
//! The adapters: [`rest`] (`kind = "rest"`, table `[sources.rest]`) and [`soap`] (`kind =
//! "soap"`, table `[sources.soap]`); the gateway checks a table with [`check_settings`] and
//! builds the source with [`build`]. [`amqp`] is the queue consumer (`kind = "amqp"`), which the
//! gateway runs itself: it acknowledges messages after their commit.
//!
//! The contract's types are in `contract.rs`, what REST and SOAP share in `http_pull.rs`, the
//! keys both read in [`settings`].

pub mod amqp;
mod contract;
mod http_pull;
pub mod rest;
pub mod settings;
pub mod soap;
pub mod wsdl;

pub use crate::common::health::{CircuitState, SourceHealth};
use crate::common::settings::SettingsProblem;
pub use crate::http::client::SystemClients;
pub use contract::{
    Page, PullMode, PullRun, PullSource, PulledRecord, RequestGate, SourceError, SourceItem, UnparsedRecord,
};
use std::path::Path;
use std::sync::Arc;

/// Check a source block's kind-specific table (`[sources.rest]` / `[sources.soap]`) without
/// connecting: every problem, each naming its key (dotted for nested tables, e.g.
/// `auth.token_env`). Kinds other than `rest` and `soap` give no problems here.
pub fn check_settings(kind: &str, table: &toml::Table, base: &Path) -> Vec<SettingsProblem> {
    match kind {
        "rest" => rest::check(table, base),
        "soap" => soap::check(table, base),
        _ => Vec::new(),
    }
}

/// Build the pull source of `kind` (`rest` | `soap`) from its table; `base` is the
/// configuration file's directory (for secret and template files). No connection is made
/// before the first pull.
pub fn build(
    source_id: &str,
    kind: &str,
    table: &toml::Table,
    base: &Path,
) -> Result<Arc<dyn PullSource>, SourceError> {
    build_in(source_id, kind, table, base, None)
}

/// [`build`], for an endpoint of a system (`Some((system id, the gateway's clients))`): the
/// source gets its own breaker and counters over the system's one connection, rate limit and
/// token cache, made by the first endpoint built.
pub fn build_in(
    source_id: &str,
    kind: &str,
    table: &toml::Table,
    base: &Path,
    system: Option<(&str, &SystemClients)>,
) -> Result<Arc<dyn PullSource>, SourceError> {
    match kind {
        "rest" => rest::build(source_id, table, base, system),
        "soap" => soap::build(source_id, table, base, system),
        other => Err(SourceError::Settings(format!(
            "不是拉取型来源 / not a pull source kind: {other:?} (rest or soap)"
        ))),
    }
}
