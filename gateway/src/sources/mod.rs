//! Sources the running gateway takes records from by itself: pull sources on a schedule
//! ([`pull`], with [`schedule`]) and AMQP queues ([`amqp`]). Directory drop folders are in
//! `cli::run`; HTTP pushes in the server.

pub mod amqp;
pub mod catalogue;
pub mod pull;
pub mod schedule;
