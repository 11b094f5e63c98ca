//! Connections between the gateway and the systems around it: the pull sources that fetch
//! records from departmental systems (REST, SOAP/XML) and the queue consumer (AMQP), the
//! delivery sinks that carry committed case versions onward (PostgreSQL platform tables, AMQP,
//! REST upload APIs), the HTTP toolkit both use, and the ground floor under all of them.
//!
//! Layers, lowest first (`scripts/import_graph.py` checks them): [`common`]; [`http`];
//! [`sources`] and [`sinks`], siblings that do not import each other.

pub mod common;
pub mod http;
pub mod sinks;
pub mod sources;
