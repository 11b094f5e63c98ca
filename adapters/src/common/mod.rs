//! The ground floor of the adapters: what the HTTP toolkit, the sources and the sinks all build
//! on. Nothing here imports from `http`, `sources` or `sinks`.
//!
//! - [`settings`]: the problem every settings check reports, naming its key; TOML tables read
//!   with errors that name their keys; templates given inline or in a file;
//! - [`secret`]: secrets given inline, in an environment variable or in a file, never shown;
//! - [`template`]: the one `{{name}}` template engine (query parameters, JSON and XML bodies,
//!   SOAP envelopes, URLs);
//! - [`charset`]: answers in UTF-8, GBK or GB18030 decoded by a setting, their `Content-Type` or
//!   (XML) their BOM or prolog;
//! - [`json_path`]: dotted paths into JSON answers;
//! - [`retry_after`]: the `Retry-After` of an HTTP answer;
//! - [`http_error`]: why an HTTP exchange gave no usable answer, or could not be authorised;
//! - [`health`]: the circuit state and counts operators see of a connection;
//! - [`amqp_url`]: the broker URLs of an AMQP source or sink (one node or a cluster's), and
//!   connecting to the first node that answers;
//! - [`amqp_queue`]: the type of the queues an AMQP source or sink declares (classic or quorum),
//!   and the broker's refusals read back into what differs;
//! - [`postgres_tls`]: TLS for the PostgreSQL connections (store and sink), libpq's `sslmode`;
//! - [`text`]: answers and errors cut to a length messages can hold.

pub mod amqp_queue;
pub mod amqp_url;
pub mod charset;
pub mod health;
pub mod http_error;
pub mod json_path;
pub mod postgres_tls;
pub mod retry_after;
pub mod secret;
pub mod settings;
pub mod template;
pub mod text;
