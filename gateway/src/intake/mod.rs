//! The ways in, one file each, in the order a newcomer meets them. Every one of them hands its
//! prepared records to the one [`Committer`](crate::commit::Committer); what differs is how the
//! records arrive and what is answered to the source after the commit.
//!
//! - [`files`]: files of one source (`gateway ingest`), read, prepared and committed in batches;
//! - [`directory`]: drop folders scanned by `gateway run` (each file through [`files`]);
//! - [`pull`]: REST/SOAP sources pulled page by page from their cursor, on their schedule;
//! - [`amqp`]: queues consumed, acknowledged after the commit;
//! - [`push`]: bodies pushed over HTTP, answered record by record after the commit;
//! - [`replay`]: quarantine entries run again through the current mapping;
//! - [`catalogue`]: the supervision-item catalogue, pulled like a source but kept by year;
//! - [`officers`]: the officer registry (执法人员名录), loaded or pulled, kept in force;
//! - [`tasks`]: starting the ways in of a running gateway.

pub mod amqp;
pub mod catalogue;
pub mod directory;
pub mod files;
pub mod officers;
pub mod pull;
mod pulled;
pub mod push;
pub mod replay;
pub mod tasks;
