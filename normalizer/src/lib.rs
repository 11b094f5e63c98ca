//! The pure core of the gateway: everything that decides whether an administrative
//! law-enforcement record is right and what it becomes. No network, no database.
//!
//! - [`standards`]: GB 32100 credit codes, GB 11643 ID numbers, GB/T 2260 region codes,
//!   the unified case code (一案一码) and working days.
//! - [`schema`]: the canonical JSON Schemas with the standards plugged in as named formats.
//! - [`rules`]: cross-field rules that a schema cannot express.
//! - [`catalogue`]: the supervision-item catalogue by year (codes, names, scopes, domains).
//! - [`officers`]: the officer registry (执法人员名录) and its rules.
//! - [`supplement`]: fields a source cannot supply (待补录), awaiting completion by the department.
//! - [`plans`]: the rules on inspection plans (filing and entry deadlines, sampling ratio, unknown plans).
//! - [`publicity`]: the public outputs of a case (双公示 penalty record, inspection result), masking,
//!   withholding and the publicity deadline.
//! - [`mapping`]: the declarative mapping engine that turns a source record into a canonical one.
//! - [`xml_tree`]: hardened XML reader producing the tree the mapping engine reads.
//! - [`pipeline`]: mapping + schema + rules in one call, as the gateway uses it.
//! - [`mapping_tests`]: runs the `[[test]]` cases of a mapping file through the pipeline.
//! - [`suggest`]: proposes a mapping file from sample records (`gateway mappings suggest`).

pub mod case_number;
pub mod case_type;
pub mod catalogue;
pub mod mapping;
pub mod mapping_tests;
pub mod officers;
pub mod pipeline;
pub mod plans;
pub mod publicity;
pub mod rules;
pub mod schema;
pub mod standards;
pub mod suggest;
pub mod supplement;
pub mod violation;
pub mod xml_tree;

pub use case_number::CaseNumber;
pub use case_type::CaseType;
pub use pipeline::{CaseFacts, Normalizer, Outcome};
pub use violation::{Severity, Violation};
