//! Connections between the gateway and the systems around it: the pull sources that fetch
//! records from departmental systems (REST, SOAP/XML), the HTTP toolkit they share, and the
//! delivery sinks that carry committed case versions onward (PostgreSQL platform tables, AMQP,
//! REST upload APIs).

pub mod http;
pub mod sinks;
pub mod sources;
