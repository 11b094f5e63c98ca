//! `[personal_data]`: the keys natural persons' personal data is sealed under (个人信息加密存储).
//! See [`crate::crypto::personal`] and `docs/security.md`.

use crate::crypto::personal::{Cipher, DataKey, Keyring};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `[personal_data]`: absent (no keys) keeps personal data in clear.
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct PersonalDataConfig {
    /// The id of the key new values are sealed under.
    pub current: Option<String>,
    /// Every key values may be sealed under: the current one and those being retired.
    #[serde(default)]
    pub keys: Vec<PersonalKeyConfig>,
}

/// `[[personal_data.keys]]`: one data key.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct PersonalKeyConfig {
    /// The key's id (1–32 letters, digits, `-`, `_`), written into every value sealed under it.
    pub id: String,
    /// `sm4-gcm` (default) or `aes-256-gcm`.
    #[serde(default)]
    pub cipher: Cipher,
    /// File holding the key as hex digits (32 for SM4, 64 for AES-256), e.g. written by
    /// `gateway personal-data keygen`.
    pub file: Option<PathBuf>,
    /// Environment variable holding it.
    pub env: Option<String>,
}

impl PersonalDataConfig {
    /// The keyring (`None` when no key is configured). Errors name the key, never its value.
    pub fn keyring(&self, base: &Path) -> Result<Option<Keyring>, String> {
        if self.keys.is_empty() {
            return Ok(None);
        }
        let mut keys = Vec::new();
        for (i, k) in self.keys.iter().enumerate() {
            let source = adapters::common::secret::SecretSource {
                name: "personal_data.keys",
                inline: None,
                env: k.env.as_deref(),
                file: k.file.as_deref(),
            };
            let secret = source
                .resolve(base)
                .map_err(|e| format!("personal_data.keys[{i}] ({}): {e}", k.id))?
                .ok_or_else(|| {
                    format!(
                        "personal_data.keys[{i}] ({}): 须给出 file 或 env / give `file` or `env`",
                        k.id
                    )
                })?;
            keys.push(DataKey::from_hex(&k.id, k.cipher, secret.expose()).map_err(|e| e.to_string())?);
        }
        let current =
            match (&self.current, self.keys.as_slice()) {
                (Some(id), _) => id.clone(),
                (None, [only]) => only.id.clone(),
                (None, _) => return Err(
                    "personal_data.current: 配置了多个密钥时须指明当前密钥 / with several keys, name the current one"
                        .into(),
                ),
            };
        Keyring::new(keys, &current).map(Some).map_err(|e| e.to_string())
    }

    /// Problems of the `[personal_data]` table: (place, message).
    pub fn check(&self, base: &Path) -> Vec<(String, String)> {
        match self.keyring(base) {
            Ok(_) => Vec::new(),
            Err(e) => vec![("personal_data".to_string(), e)],
        }
    }
}
