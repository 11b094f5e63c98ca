//! Connections between the gateway and the systems around it. For now: the delivery sinks
//! that carry committed case versions onward (PostgreSQL platform tables, AMQP, REST upload APIs).

pub mod sinks;
pub mod sources;
