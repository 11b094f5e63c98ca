//! Committing: the one [`Committer`] every way in hands its prepared records to ([`committer`]),
//! batching of record streams ([`batching`]) and the retrying, bad-record-isolating commit of
//! one batch ([`isolate`]).

pub mod batching;
pub mod committer;
pub mod isolate;

pub use batching::{Batching, OnCommit};
pub use committer::{Committed, Committer, RecordOutcome};
