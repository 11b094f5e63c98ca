//! Preparing records: read them from their input format ([`reader`]; text decoded by
//! [`encoding`], spreadsheets read by [`spreadsheet`]), map and validate each
//! into an [`IncomingRecord`](crate::store::IncomingRecord) with its verdict ([`record`]), on the
//! preparation threads ([`workers`]), many at once in order ([`parallel`]).

pub mod encoding;
pub mod item;
pub mod parallel;
pub mod personal;
pub mod reader;
pub mod record;
pub mod spreadsheet;
pub mod workers;

pub use encoding::TextEncoding;
pub use parallel::{prepare_in_order, prepare_parallel, PrepareError};
pub use reader::{InputFormat, ReadError, ReadItem, ReadSettings, SourceRecord, UnreadableRecord};
pub use record::{sha256_hex, Preparer};
pub use spreadsheet::SheetSelection;
