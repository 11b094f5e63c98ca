//! The hash chain of the raw archive: the digest of a payload, the canonical text of one link
//! and its hash. Each NEW raw row of a source is one link; the layout is documented in
//! `docs/archive.md` so that an auditor can recompute it with `openssl dgst -sm3`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use sm3::Digest as _;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

/// The hash of the chain before its first link: 32 zero bytes.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// First line of every link's canonical text (its format and version).
pub const LINK_TAG: &str = "ganzhi-archive-link/1";

/// The hash algorithm of a chain link (`[archive] hash`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HashAlg {
    /// SM3 (GB/T 32905), the default.
    #[default]
    Sm3,
    /// SHA-256 (FIPS 180-4).
    Sha256,
}

impl HashAlg {
    /// The name written in link texts and configuration (`sm3`, `sha256`).
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sm3 => "sm3",
            HashAlg::Sha256 => "sha256",
        }
    }

    /// The number stored in `raw_records.chain_alg`.
    pub fn code(self) -> i16 {
        match self {
            HashAlg::Sm3 => 1,
            HashAlg::Sha256 => 2,
        }
    }

    /// The algorithm of a stored `chain_alg` number.
    pub fn of_code(code: i16) -> Option<HashAlg> {
        match code {
            1 => Some(HashAlg::Sm3),
            2 => Some(HashAlg::Sha256),
            _ => None,
        }
    }

    /// The algorithm named `name` (`sm3`, `sha256`).
    pub fn of_name(name: &str) -> Option<HashAlg> {
        match name {
            "sm3" => Some(HashAlg::Sm3),
            "sha256" => Some(HashAlg::Sha256),
            _ => None,
        }
    }

    /// The digest of `bytes`.
    pub fn digest(self, bytes: &[u8]) -> [u8; 32] {
        match self {
            HashAlg::Sm3 => sm3::Sm3::digest(bytes).into(),
            HashAlg::Sha256 => sha2::Sha256::digest(bytes).into(),
        }
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The algorithm the preparation threads digest payloads with, for the store's chain (0: none).
static PREPARED_DIGEST: AtomicU8 = AtomicU8::new(0);

/// Which digest the preparation threads make of each payload they compress for the store
/// ([`IncomingRecord::compress_for_store`](crate::store::IncomingRecord::compress_for_store)),
/// so that the commit need not; set from `[archive]` when the store is opened. A digest of
/// another algorithm (or none) is made by the commit itself, so this is only a saving.
pub fn set_prepared_digest(alg: Option<HashAlg>) {
    PREPARED_DIGEST.store(alg.map(|a| a.code() as u8).unwrap_or(0), Ordering::Relaxed);
}

/// The algorithm set by [`set_prepared_digest`].
pub fn prepared_digest() -> Option<HashAlg> {
    HashAlg::of_code(i16::from(PREPARED_DIGEST.load(Ordering::Relaxed)))
}

/// A received time as every link text writes it: RFC 3339 in UTC with microseconds and `Z`
/// (the precision both stores keep).
pub fn time_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// What one link covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link<'a> {
    /// The link's hash algorithm (also of its payload digest).
    pub alg: HashAlg,
    /// The source whose chain it is.
    pub source_id: &'a str,
    /// Its position in the source's chain, from 1.
    pub seq: i64,
    /// The raw row's id.
    pub raw_id: i64,
    /// When the payload was received.
    pub received_at: DateTime<Utc>,
    /// The digest (`alg`) of the payload as archived.
    pub payload_digest: [u8; 32],
    /// The previous link's hash ([`GENESIS`] for the first).
    pub prev: [u8; 32],
}

impl Link<'_> {
    /// The canonical text hashed: eight lines, each ended by a line feed (see `docs/archive.md`).
    pub fn text(&self) -> String {
        format!(
            "{LINK_TAG}\nalg={}\nsource={}\nseq={}\nraw_id={}\nreceived_at={}\npayload={}\nprev={}\n",
            self.alg.name(),
            self.source_id,
            self.seq,
            self.raw_id,
            time_text(&self.received_at),
            hex::encode(self.payload_digest),
            hex::encode(self.prev),
        )
    }

    /// The link's hash: the digest (`alg`) of its [text](Link::text).
    pub fn hash(&self) -> [u8; 32] {
        self.alg.digest(self.text().as_bytes())
    }
}

/// A 32-byte hash from its hex text.
pub fn hash_of_hex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// A 32-byte hash from stored bytes.
pub fn hash_of_bytes(bytes: &[u8]) -> Option<[u8; 32]> {
    <[u8; 32]>::try_from(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sm3_matches_the_gb_t_32905_examples() {
        // GB/T 32905-2016, appendix A, examples 1 and 2.
        assert_eq!(
            hex::encode(HashAlg::Sm3.digest(b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(
            hex::encode(HashAlg::Sm3.digest("abcd".repeat(16).as_bytes())),
            "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
        );
    }

    #[test]
    fn sha256_matches_the_fips_180_example() {
        assert_eq!(
            hex::encode(HashAlg::Sha256.digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_link_text_has_the_documented_eight_lines() {
        let link = Link {
            alg: HashAlg::Sm3,
            source_id: "nanchang-amr",
            seq: 1,
            raw_id: 17,
            received_at: DateTime::parse_from_rfc3339("2026-12-06T08:21:42.123456789Z")
                .unwrap()
                .with_timezone(&Utc),
            payload_digest: HashAlg::Sm3.digest(b"abc"),
            prev: GENESIS,
        };
        let text = link.text();
        assert_eq!(
            text,
            format!(
                "ganzhi-archive-link/1\nalg=sm3\nsource=nanchang-amr\nseq=1\nraw_id=17\nreceived_at=2026-12-06T08:21:42.123456Z\npayload=66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0\nprev={}\n",
                "0".repeat(64)
            )
        );
        assert_eq!(link.hash(), HashAlg::Sm3.digest(text.as_bytes()));
        let other = Link { seq: 2, ..link.clone() };
        assert_ne!(other.hash(), link.hash());
    }

    #[test]
    fn algorithm_codes_and_names_round_trip() {
        for alg in [HashAlg::Sm3, HashAlg::Sha256] {
            assert_eq!(HashAlg::of_code(alg.code()), Some(alg));
            assert_eq!(HashAlg::of_name(alg.name()), Some(alg));
        }
        assert_eq!(HashAlg::of_code(9), None);
    }
}
