//! The cryptography of the evidence-grade archive, pure (no store, no network): the hash chain's
//! links ([`chain`], SM3 or SHA-256) and the keys that sign checkpoints ([`keys`], SM2 or
//! Ed25519). The store writes links with [`chain`] in the commit; [`crate::archive`] signs,
//! verifies and makes receipts with both.

pub mod chain;
pub mod keys;
pub mod personal;
