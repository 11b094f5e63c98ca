//! The handlers of the API, one module per resource.

pub mod attachments;
pub mod audit_log;
pub mod cases;
pub mod deliveries;
pub mod health;
pub mod instances;
pub mod joint;
pub mod mappings;
pub mod officers;
pub mod oversight;
pub mod publicity;
pub mod push;
pub mod quarantine;
pub mod records;
pub mod sources;
pub mod supplements;
pub mod uploads;
