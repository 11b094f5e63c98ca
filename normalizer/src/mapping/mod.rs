//! Declarative mapping engine: one TOML file per source system turns a source record (JSON, or
//! the tree [`crate::xml_tree::parse_xml`] builds from XML) into a canonical record.
//!
//! A mapping file has a header (`id`, `version`, `description`, `case_type`), code tables
//! (`[tables.NAME]`, CSV beside the file or inline), an ordered list of fields (`[[field]]`:
//! `target` + one source of `from`/`concat`/`const`/`each`/`zip`, then `steps`, `as`, `unit`,
//! `table`, `when`, ...) and embedded tests (`[[test]]`). `docs/mappings.md` is the user
//! documentation of every key.
//!
//! Loading checks everything it can (unknown keys, path syntax, steps, types, units, tables,
//! targets against the canonical schemas) and reports the first problem with file, line and
//! column. Applying compiles nothing: paths, tables and options are resolved at load time.
//! Every problem met while mapping a record is a [`Violation`](crate::Violation) (`mapping.date`,
//! `mapping.number`, `mapping.boolean`, `mapping.unmapped_code`, `mapping.missing`,
//! `mapping.type`, `mapping.zip_length`, `mapping.case_type`); [`Mapping::apply`] never panics.

mod apply;
mod compile;
mod convert;
mod dates;
mod error;
mod layout;
mod loaded;
mod path;
mod spec;
mod tables;
mod targets;
mod test_case;

pub use crate::supplement::SupplementField;
pub use compile::join_relative;
/// The value readers the mapping engine uses, for the mapping proposer (`crate::suggest`).
pub(crate) use convert::{parse_amount, parse_bool};
pub use convert::{Step, Unit};
pub(crate) use dates::parse_text as parse_date_text;
pub use error::{MappingError, MappingErrorKind};
pub use loaded::{Mapped, Mapping};
pub use spec::AsType;
pub use tables::Unmapped;
pub use test_case::{ExpectedViolation, TestCase};
