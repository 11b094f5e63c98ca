//! The evidence-grade raw archive (证据级原始归档), for reconsideration and litigation:
//!
//! - [`chain`](crate::crypto::chain): every NEW raw payload of a source is the next link of that source's hash chain
//!   (SM3 by default), written by the commit in the same transaction under the lock of the
//!   source's chain head;
//! - [`keys`](crate::crypto::keys): the SM2 (or Ed25519) keys that sign checkpoints;
//! - [`checkpoint`]: signed statements of every chain head, made periodically (a cluster job)
//!   and on demand, and sent to external witnesses;
//! - [`verify`]: `gateway archive verify`: re-hash the archive, check every link and checkpoint;
//! - [`receipt`]: a receipt for one raw row, verifiable with OpenSSL and a short script.
//!
//! The byte layouts and the verification procedure are documented for auditors in
//! `docs/archive.md`.

pub mod checkpoint;
pub mod receipt;
pub mod verify;

use crate::crypto::chain;
use crate::store::archive::ChainHead;
use chrono::{DateTime, Utc};

/// First line of every checkpoint statement (its format and version).
pub const CHECKPOINT_TAG: &str = "ganzhi-archive-checkpoint/1";

/// What a checkpoint states and signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// When it was signed.
    pub signed_at: DateTime<Utc>,
    /// The signing instance.
    pub instance: String,
    /// `sm2` or `ed25519`.
    pub algorithm: String,
    /// The signer's key id (SM3 of its SubjectPublicKeyInfo DER, hex).
    pub key_id: String,
    /// The chain heads, by source id.
    pub heads: Vec<ChainHead>,
}

impl Statement {
    /// The canonical text signed: one `key=value` line each for the header, then one line per
    /// head, `head source=<id> seq=<n> hash=<hex>`, sorted by source id; each line ends with a
    /// line feed.
    pub fn text(&self) -> String {
        let mut heads = self.heads.clone();
        heads.sort_by(|a, b| a.source_id.cmp(&b.source_id));
        let mut out = format!(
            "{CHECKPOINT_TAG}\nsigned_at={}\ninstance={}\nalgorithm={}\nkey={}\nheads={}\n",
            chain::time_text(&self.signed_at),
            self.instance.replace(['\n', '\r'], " "),
            self.algorithm,
            self.key_id,
            heads.len()
        );
        for h in &heads {
            out.push_str(&format!("head source={} seq={} hash={}\n", h.source_id, h.seq, h.hash));
        }
        out
    }

    /// Read a statement from its text; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Statement> {
        let mut lines = text.strip_suffix('\n')?.split('\n');
        if lines.next()? != CHECKPOINT_TAG {
            return None;
        }
        let mut value = |key: &str| -> Option<String> { lines.next()?.strip_prefix(key).map(str::to_string) };
        let signed_at = DateTime::parse_from_rfc3339(&value("signed_at=")?)
            .ok()?
            .with_timezone(&Utc);
        let instance = value("instance=")?;
        let algorithm = value("algorithm=")?;
        let key_id = value("key=")?;
        let count: usize = value("heads=")?.parse().ok()?;
        let mut heads = Vec::with_capacity(count);
        for line in lines {
            let rest = line.strip_prefix("head source=")?;
            let (source_id, rest) = rest.split_once(" seq=")?;
            let (seq, hash) = rest.split_once(" hash=")?;
            heads.push(ChainHead {
                source_id: source_id.to_string(),
                seq: seq.parse().ok()?,
                hash: hash.to_string(),
            });
        }
        (heads.len() == count).then_some(Statement {
            signed_at,
            instance,
            algorithm,
            key_id,
            heads,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_text_parses_back_to_the_same_statement() {
        let statement = Statement {
            signed_at: DateTime::parse_from_rfc3339("2026-12-06T09:00:00.5Z")
                .unwrap()
                .with_timezone(&Utc),
            instance: "gw-1".into(),
            algorithm: "sm2".into(),
            key_id: "ab".repeat(32),
            heads: vec![
                ChainHead {
                    source_id: "z-src".into(),
                    seq: 3,
                    hash: "11".repeat(32),
                },
                ChainHead {
                    source_id: "a-src".into(),
                    seq: 12,
                    hash: "22".repeat(32),
                },
            ],
        };
        let text = statement.text();
        assert!(text.starts_with("ganzhi-archive-checkpoint/1\nsigned_at=2026-12-06T09:00:00.500000Z\n"));
        assert!(text.contains(&format!("heads=2\nhead source=a-src seq=12 hash={}\n", "22".repeat(32))));
        let parsed = Statement::parse(&text).unwrap();
        assert_eq!(parsed.heads[0].source_id, "a-src");
        assert_eq!(parsed.text(), text);
        assert_eq!(Statement::parse("ganzhi-archive-checkpoint/1\n"), None);
        assert_eq!(Statement::parse(&text.replace("heads=2", "heads=3")), None);
    }
}
