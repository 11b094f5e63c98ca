//! The handlers of the API, one module per resource.

pub mod cases;
pub mod deliveries;
pub mod health;
pub mod mappings;
pub mod push;
pub mod quarantine;
pub mod sources;
