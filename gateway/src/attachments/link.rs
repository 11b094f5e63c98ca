//! Expiring download links: `GET /api/attachments/{sha256}?expires=UNIX&sig=HEX`, where `sig` is
//! HMAC-SHA256 over `"<sha256>\n<expires>"` with the configured `link_secret`. A link is refused
//! after `expires` and with any other signature (compared in constant time).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Signs and checks download links.
#[derive(Clone)]
pub struct LinkSigner {
    key: Vec<u8>,
    ttl_seconds: u64,
    base_url: String,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSigner")
            .field("ttl_seconds", &self.ttl_seconds)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// Why a link is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefused {
    /// Past its `expires`.
    #[error("下载链接已过期 / the download link has expired")]
    Expired,
    /// The signature does not match.
    #[error("下载链接签名无效 / the download link's signature is not valid")]
    BadSignature,
}

impl LinkSigner {
    /// A signer with `key`, links valid `ttl_seconds`, under `base_url` (e.g.
    /// `https://gw.example.gov.cn`; empty: links are paths only).
    pub fn new(key: Vec<u8>, ttl_seconds: u64, base_url: &str) -> LinkSigner {
        LinkSigner {
            key,
            ttl_seconds,
            base_url: base_url.trim_end_matches('/').to_string(),
        }
    }

    fn mac(&self, sha256: &str, expires: i64) -> HmacSha256 {
        // HMAC takes a key of any length.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(sha256.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// The signature of a link to `sha256` valid until `expires` (unix seconds).
    pub fn signature(&self, sha256: &str, expires: i64) -> String {
        hex::encode(self.mac(sha256, expires).finalize().into_bytes())
    }

    /// A link to `sha256` valid from `now` (unix seconds) for the configured time: the URL and
    /// when it expires.
    pub fn link(&self, sha256: &str, now: i64) -> (String, i64) {
        let expires = now.saturating_add(i64::try_from(self.ttl_seconds).unwrap_or(i64::MAX));
        let sig = self.signature(sha256, expires);
        (
            format!("{}/api/attachments/{sha256}?expires={expires}&sig={sig}", self.base_url),
            expires,
        )
    }

    /// Check a link's `expires` and `sig` at `now` (unix seconds).
    pub fn verify(&self, sha256: &str, expires: i64, sig: &str, now: i64) -> Result<(), LinkRefused> {
        let given = hex::decode(sig).map_err(|_| LinkRefused::BadSignature)?;
        self.mac(sha256, expires)
            .verify_slice(&given)
            .map_err(|_| LinkRefused::BadSignature)?;
        if now > expires {
            return Err(LinkRefused::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn a_link_holds_until_it_expires_and_not_for_another_content_or_key() {
        let signer = LinkSigner::new(b"k1".to_vec(), 60, "https://gw.example/");
        let (url, expires) = signer.link(HASH, 1000);
        assert_eq!(expires, 1060);
        assert!(url.starts_with(&format!("https://gw.example/api/attachments/{HASH}?expires=1060&sig=")));
        let sig = url.rsplit("sig=").next().unwrap_or_default();
        assert_eq!(signer.verify(HASH, expires, sig, 1060), Ok(()));
        assert_eq!(signer.verify(HASH, expires, sig, 1061), Err(LinkRefused::Expired));
        assert_eq!(
            signer.verify(HASH, expires + 1, sig, 1000),
            Err(LinkRefused::BadSignature)
        );
        let other = "0".repeat(64);
        assert_eq!(
            signer.verify(&other, expires, sig, 1000),
            Err(LinkRefused::BadSignature)
        );
        let stranger = LinkSigner::new(b"k2".to_vec(), 60, "");
        assert_eq!(
            stranger.verify(HASH, expires, sig, 1000),
            Err(LinkRefused::BadSignature)
        );
        assert_eq!(signer.verify(HASH, expires, "zz", 1000), Err(LinkRefused::BadSignature));
    }
}
