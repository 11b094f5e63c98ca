//! `[archive]`: the evidence-grade raw archive (证据级原始归档): the hash chain kept by every
//! commit, the signed checkpoints of the chain heads and the witnesses they are sent to. See
//! `docs/archive.md`.

use crate::crypto::chain::HashAlg;
use crate::crypto::keys::{PublicKey, SignAlg, SigningKey};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The evidence-grade raw archive.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// Whether each new raw payload is chained to the previous one of its source (default true).
    #[serde(default = "default_chain")]
    pub chain: bool,
    /// The chain's hash: `sm3` (default) or `sha256`.
    #[serde(default)]
    pub hash: HashAlg,
    /// Public keys (SubjectPublicKeyInfo PEM files) of earlier signing keys whose checkpoints
    /// `gateway archive verify` accepts, besides the current key's; on a verifying machine
    /// without the private key, the current public key too.
    #[serde(default)]
    pub trusted_keys: Vec<PathBuf>,
    /// Signed checkpoints of the chain heads.
    #[serde(default)]
    pub checkpoints: CheckpointsConfig,
    /// Where each checkpoint is sent.
    #[serde(default)]
    pub witnesses: Vec<WitnessConfig>,
}

fn default_chain() -> bool {
    true
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            chain: true,
            hash: HashAlg::Sm3,
            trusted_keys: Vec::new(),
            checkpoints: CheckpointsConfig::default(),
            witnesses: Vec::new(),
        }
    }
}

/// `[archive.checkpoints]`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct CheckpointsConfig {
    /// Minutes between checkpoints signed by `gateway run` (default 60; 0: only on demand, with
    /// `gateway archive checkpoint`).
    #[serde(default = "default_every_minutes")]
    pub every_minutes: u64,
    /// `sm2` (default) or `ed25519`.
    #[serde(default)]
    pub algorithm: SignAlg,
    /// File holding the private key (PKCS#8 PEM, or for SM2 the 64-hex-digit private scalar).
    pub signing_key_file: Option<PathBuf>,
    /// Environment variable holding it.
    pub signing_key_env: Option<String>,
}

fn default_every_minutes() -> u64 {
    60
}

impl Default for CheckpointsConfig {
    fn default() -> Self {
        CheckpointsConfig {
            every_minutes: default_every_minutes(),
            algorithm: SignAlg::Sm2,
            signing_key_file: None,
            signing_key_env: None,
        }
    }
}

/// `[[archive.witnesses]]`: an external place every checkpoint is sent to.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// Unique name (what the store records its progress under).
    pub name: String,
    /// `file` (append one JSON line per checkpoint) or `rest` (POST the JSON).
    pub kind: String,
    /// `file`: the file appended to.
    pub path: Option<PathBuf>,
    /// `rest`: the URL posted to.
    pub url: Option<String>,
    /// `rest`: environment variable holding a bearer token.
    pub token_env: Option<String>,
    /// `rest`: file holding a bearer token.
    pub token_file: Option<PathBuf>,
    /// `rest`: seconds before a request is given up (default 10).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn default_timeout() -> u64 {
    10
}

impl CheckpointsConfig {
    /// Whether a signing key is configured (checkpoints can be signed).
    pub fn enabled(&self) -> bool {
        self.signing_key_file.is_some() || self.signing_key_env.is_some()
    }

    /// Read the signing key (`None` when none is configured). Errors name the key, never its value.
    pub fn signing_key(&self, base: &Path) -> Result<Option<SigningKey>, String> {
        let source = adapters::common::secret::SecretSource {
            name: "signing_key",
            inline: None,
            env: self.signing_key_env.as_deref(),
            file: self.signing_key_file.as_deref(),
        };
        let Some(secret) = source.resolve(base)? else {
            return Ok(None);
        };
        SigningKey::from_text(self.algorithm, secret.expose())
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

impl ArchiveConfig {
    /// The algorithm commits hash links with (`None`: `chain = false`).
    pub fn chain_alg(&self) -> Option<HashAlg> {
        self.chain.then_some(self.hash)
    }

    /// The public keys whose checkpoints verify: the signing key's and `trusted_keys`.
    pub fn trusted(&self, base: &Path) -> Result<Vec<PublicKey>, String> {
        let mut keys = Vec::new();
        if let Some(key) = self.checkpoints.signing_key(base)? {
            keys.push(key.public_key());
        }
        for (i, path) in self.trusted_keys.iter().enumerate() {
            let full = if path.is_absolute() {
                path.clone()
            } else {
                base.join(path)
            };
            let text = std::fs::read_to_string(&full).map_err(|e| {
                format!(
                    "archive.trusted_keys[{i}]: 无法读取 / cannot read {}: {e}",
                    full.display()
                )
            })?;
            let key = PublicKey::from_pem(SignAlg::Sm2, &text)
                .or_else(|_| PublicKey::from_pem(SignAlg::Ed25519, &text))
                .map_err(|_| {
                    format!(
                        "archive.trusted_keys[{i}]: {} 不是 SM2 或 Ed25519 公钥 / is neither an SM2 nor an Ed25519 public key (PEM)",
                        full.display()
                    )
                })?;
            keys.push(key);
        }
        Ok(keys)
    }

    /// Problems of the `[archive]` table: (place, message).
    pub fn check(&self, base: &Path) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if let Err(e) = self.checkpoints.signing_key(base) {
            problems.push(("archive.checkpoints".to_string(), e));
        }
        if let Err(e) = self.trusted(base) {
            problems.push(("archive.trusted_keys".to_string(), e));
        }
        let mut names = std::collections::HashSet::new();
        for (i, w) in self.witnesses.iter().enumerate() {
            let place = format!("archive.witnesses[{i}]");
            if w.name.is_empty() || !names.insert(w.name.as_str()) {
                problems.push((
                    format!("{place}.name"),
                    format!("名称为空或重复 / name empty or used twice: {:?}", w.name),
                ));
            }
            match w.kind.as_str() {
                "file" if w.path.is_none() => problems.push((
                    format!("{place}.path"),
                    "file 见证需要 path / a file witness needs `path`".into(),
                )),
                "rest" => match w.url.as_deref().map(url::Url::parse) {
                    Some(Ok(u)) if matches!(u.scheme(), "http" | "https") => {}
                    _ => problems.push((
                        format!("{place}.url"),
                        format!(
                            "rest 见证需要 http(s) URL / a rest witness needs an http(s) `url`, got {:?}",
                            w.url
                        ),
                    )),
                },
                "file" => {}
                other => problems.push((
                    format!("{place}.kind"),
                    format!("未知见证类型 / unknown witness kind {other:?}: use \"file\" or \"rest\""),
                )),
            }
            if w.token_env.is_some() && w.token_file.is_some() {
                problems.push((
                    format!("{place}.token_env"),
                    "token_env 与 token_file 只能给出一个 / give only one of token_env, token_file".into(),
                ));
            }
        }
        if !self.witnesses.is_empty() && !self.checkpoints.enabled() {
            problems.push((
                "archive.witnesses".into(),
                "见证需要签名检查点：请设置 archive.checkpoints.signing_key_file 或 signing_key_env / witnesses need signed checkpoints: set archive.checkpoints.signing_key_file or signing_key_env".into(),
            ));
        }
        problems
    }
}
