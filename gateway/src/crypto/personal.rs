//! Personal data at rest (个人信息): natural persons' ID numbers and the fields a mapping marks
//! `personal = true` are kept sealed — encrypted with SM4-GCM (GB/T 32907, the default) or
//! AES-256-GCM under a data key from a file or an environment variable — and shown masked
//! (`3601**********123X`) to whoever does not hold the `personal-data` permission.
//!
//! Sealing of text values is deterministic: the 96-bit nonce is a keyed SM3 (HMAC-SM3, GB/T 32905) of the value
//! under a key derived from the data key (a synthetic IV, as in RFC 5297). Equal values seal to
//! equal text under one key, so the store finds a person's cases by comparing sealed forms — the
//! keyed SM3 index — without ever holding the number in clear; nothing but that equality is
//! revealed. A sealed text value reads `pd1:<cipher>:<key id>:<base64url(nonce ‖ ciphertext ‖
//! tag)>`; a sealed payload (raw archive) starts with the bytes `\0PD1`.
//!
//! Several keys may be configured: new values are sealed under the current one, every
//! configured key opens what it sealed, so a key is rotated without downtime (add the new key
//! everywhere, make it current, re-seal with `gateway personal-data rekey`, then retire the old
//! one; `docs/security.md`). Pure: no store, no network.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac012::{Hmac, Mac};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use zeroize::Zeroizing;

/// What went wrong with a personal-data key or a sealed value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PersonalError {
    /// A key's text is not the hex key its cipher needs.
    #[error("个人信息密钥 {id} 无法读取：{detail} / personal-data key {id} cannot be read: {detail}")]
    BadKey {
        /// The key's id.
        id: String,
        /// Why.
        detail: String,
    },
    /// A key id that cannot be used in sealed values.
    #[error("个人信息密钥编号“{0}”无效：只能由 1–32 个字母、数字、- 或 _ 组成 / personal-data key id \"{0}\" is invalid: 1–32 letters, digits, - or _")]
    BadKeyId(String),
    /// Two keys with one id.
    #[error("个人信息密钥编号“{0}”重复 / personal-data key id \"{0}\" is given twice")]
    DuplicateKey(String),
    /// `current` names no configured key.
    #[error("当前个人信息密钥“{0}”未配置 / the current personal-data key \"{0}\" is not among the configured keys")]
    NoCurrentKey(String),
    /// A value sealed under a key this process does not hold.
    #[error("个人信息以密钥 {0} 加密，但本实例未配置该密钥（[personal_data] keys）/ personal data sealed under key {0}, which this instance does not hold ([personal_data] keys)")]
    UnknownKey(String),
    /// A sealed value that does not open (altered, or under another key of the same id).
    #[error("个人信息密文无法解密（密钥 {0}）：数据被改动或密钥不符 / sealed personal data does not open under key {0}: altered, or not that key")]
    DoesNotOpen(String),
    /// A sealed value whose form is broken.
    #[error("个人信息密文格式错误 / sealed personal data is malformed")]
    Malformed,
}

/// The cipher of a data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cipher {
    /// SM4 (GB/T 32907) in GCM mode (RFC 8998), 128-bit key: the default.
    #[default]
    #[serde(rename = "sm4-gcm", alias = "sm4")]
    Sm4Gcm,
    /// AES-256 in GCM mode (NIST SP 800-38D), 256-bit key.
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
}

impl Cipher {
    /// The short name written in sealed values (`sm4`, `aes`).
    pub fn tag(self) -> &'static str {
        match self {
            Cipher::Sm4Gcm => "sm4",
            Cipher::Aes256Gcm => "aes",
        }
    }
    /// The configured name.
    pub fn name(self) -> &'static str {
        match self {
            Cipher::Sm4Gcm => "sm4-gcm",
            Cipher::Aes256Gcm => "aes-256-gcm",
        }
    }
    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Cipher::Sm4Gcm => 16,
            Cipher::Aes256Gcm => 32,
        }
    }
    /// The cipher of a configured name (`sm4-gcm`, `sm4`, `aes-256-gcm`).
    pub fn of_name(name: &str) -> Option<Cipher> {
        match name {
            "sm4-gcm" | "sm4" => Some(Cipher::Sm4Gcm),
            "aes-256-gcm" => Some(Cipher::Aes256Gcm),
            _ => None,
        }
    }

    fn of_tag(tag: &str) -> Option<Cipher> {
        match tag {
            "sm4" => Some(Cipher::Sm4Gcm),
            "aes" => Some(Cipher::Aes256Gcm),
            _ => None,
        }
    }
    fn code(self) -> u8 {
        match self {
            Cipher::Sm4Gcm => 1,
            Cipher::Aes256Gcm => 2,
        }
    }
    fn of_code(code: u8) -> Option<Cipher> {
        match code {
            1 => Some(Cipher::Sm4Gcm),
            2 => Some(Cipher::Aes256Gcm),
            _ => None,
        }
    }
}

impl fmt::Display for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

type HmacSm3 = Hmac<sm3::Sm3>;
type Sm4Gcm = aes_gcm::AesGcm<sm4::Sm4, U12>;

/// Additional authenticated data of sealed text values and of sealed payloads: a value cannot
/// be moved from one kind to the other.
const TEXT_AAD: &[u8] = b"ganzhi-gateway/personal-data/text/v1";
const BYTES_AAD: &[u8] = b"ganzhi-gateway/personal-data/bytes/v1";
/// The prefix of sealed text values.
pub const TEXT_PREFIX: &str = "pd1:";
/// The first bytes of a sealed payload.
pub const BYTES_MAGIC: &[u8; 4] = b"\0PD1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// One data key: its id, cipher, key bytes and the nonce key derived from them.
pub struct DataKey {
    id: String,
    cipher: Cipher,
    key: Zeroizing<Vec<u8>>,
    nonce_key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.id)
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

fn valid_key_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn hmac_sm3(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail for it.
    let mut mac = match <HmacSm3 as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable_hmac(),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cold]
fn unreachable_hmac() -> ! {
    panic!("HMAC takes keys of every length")
}

impl DataKey {
    /// A key from its configured text: hex digits (32 for SM4, 64 for AES-256), surrounding
    /// white space ignored.
    pub fn from_hex(id: &str, cipher: Cipher, text: &str) -> Result<DataKey, PersonalError> {
        if !valid_key_id(id) {
            return Err(PersonalError::BadKeyId(id.to_string()));
        }
        let text = Zeroizing::new(text.trim().to_string());
        let bytes = Zeroizing::new(hex::decode(text.as_bytes()).map_err(|_| PersonalError::BadKey {
            id: id.to_string(),
            detail: format!(
                "须为 {n} 位十六进制数字 / must be {n} hex digits",
                n = cipher.key_len() * 2
            ),
        })?);
        DataKey::from_bytes(id, cipher, &bytes)
    }

    /// A key from its bytes (16 for SM4, 32 for AES-256).
    pub fn from_bytes(id: &str, cipher: Cipher, bytes: &[u8]) -> Result<DataKey, PersonalError> {
        if !valid_key_id(id) {
            return Err(PersonalError::BadKeyId(id.to_string()));
        }
        if bytes.len() != cipher.key_len() {
            return Err(PersonalError::BadKey {
                id: id.to_string(),
                detail: format!(
                    "{cipher} 密钥须为 {n} 字节（{h} 位十六进制），实为 {got} 字节 / a {cipher} key is {n} bytes ({h} hex digits), this one has {got}",
                    n = cipher.key_len(),
                    h = cipher.key_len() * 2,
                    got = bytes.len()
                ),
            });
        }
        let nonce_key = Zeroizing::new(hmac_sm3(bytes, &[b"ganzhi-gateway/personal-data/nonce-key/v1"]));
        Ok(DataKey {
            id: id.to_string(),
            cipher,
            key: Zeroizing::new(bytes.to_vec()),
            nonce_key,
        })
    }

    /// A new random key in hex (what `gateway personal-data keygen` writes).
    pub fn generate_hex(cipher: Cipher) -> Result<Zeroizing<String>, getrandom::Error> {
        let mut bytes = Zeroizing::new(vec![0u8; cipher.key_len()]);
        getrandom::fill(&mut bytes)?;
        Ok(Zeroizing::new(hex::encode(&*bytes)))
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn nonce(&self, aad: &[u8], plain: &[u8]) -> [u8; NONCE_LEN] {
        let mac = hmac_sm3(&self.nonce_key[..], &[aad, &[0], plain]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&mac[..NONCE_LEN]);
        nonce
    }

    /// `nonce ‖ ciphertext ‖ tag` of `plain`.
    fn seal_raw(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let nonce = self.nonce(aad, plain);
        let mut out = Vec::with_capacity(NONCE_LEN + plain.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&self.encrypt(&nonce, aad, plain));
        out
    }

    /// GCM encryption with an explicit nonce (ciphertext ‖ tag).
    pub fn encrypt(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let payload = Payload { msg: plain, aad };
        let sealed = match self.cipher {
            Cipher::Sm4Gcm => Sm4Gcm::new_from_slice(&self.key).map(|c| c.encrypt(nonce.into(), payload)),
            Cipher::Aes256Gcm => {
                aes_gcm::Aes256Gcm::new_from_slice(&self.key).map(|c| c.encrypt(nonce.into(), payload))
            }
        };
        // The key length was checked when the key was made, and GCM encrypts any message of
        // less than 64 GiB: neither step can fail here.
        match sealed {
            Ok(Ok(bytes)) => bytes,
            _ => unreachable_gcm(),
        }
    }

    /// GCM decryption with an explicit nonce; `None` when the tag does not verify.
    pub fn decrypt(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let payload = Payload { msg: sealed, aad };
        match self.cipher {
            Cipher::Sm4Gcm => Sm4Gcm::new_from_slice(&self.key)
                .ok()?
                .decrypt(nonce.into(), payload)
                .ok(),
            Cipher::Aes256Gcm => aes_gcm::Aes256Gcm::new_from_slice(&self.key)
                .ok()?
                .decrypt(nonce.into(), payload)
                .ok(),
        }
    }

    fn open_raw(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, PersonalError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(PersonalError::Malformed);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(nonce);
        self.decrypt(&n, aad, rest)
            .ok_or_else(|| PersonalError::DoesNotOpen(self.id.clone()))
    }

    /// `plain` sealed as a text value under this key.
    pub fn seal_text(&self, plain: &str) -> String {
        let raw = self.seal_raw(TEXT_AAD, plain.as_bytes());
        format!(
            "{TEXT_PREFIX}{}:{}:{}",
            self.cipher.tag(),
            self.id,
            URL_SAFE_NO_PAD.encode(raw)
        )
    }

    /// `plain` sealed as a payload under this key. Payloads need no equality (the archive finds
    /// a payload sent again by its content hash), so their nonce is random, which spares a keyed
    /// SM3 pass over the payload; should the system's randomness fail, the synthetic one is used.
    pub fn seal_bytes(&self, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        let raw = match getrandom::fill(&mut nonce) {
            Ok(()) => {
                let mut out = Vec::with_capacity(NONCE_LEN + plain.len() + TAG_LEN);
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&self.encrypt(&nonce, BYTES_AAD, plain));
                out
            }
            Err(_) => self.seal_raw(BYTES_AAD, plain),
        };
        let mut out = Vec::with_capacity(BYTES_MAGIC.len() + 2 + self.id.len() + raw.len());
        out.extend_from_slice(BYTES_MAGIC);
        out.push(self.cipher.code());
        out.push(self.id.len() as u8);
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&raw);
        out
    }
}

#[cold]
fn unreachable_gcm() -> ! {
    panic!("GCM with a checked key length encrypts every message")
}

/// A sealed text value taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedText<'a> {
    /// The cipher named in it.
    pub cipher: Cipher,
    /// The key id named in it.
    pub key_id: &'a str,
    /// `nonce ‖ ciphertext ‖ tag`, base64url.
    pub body: &'a str,
}

impl<'a> SealedText<'a> {
    /// The sealed value at the start of `text`, and how many bytes it takes; `None` when
    /// `text` does not start with one.
    pub fn parse_prefix(text: &'a str) -> Option<(SealedText<'a>, usize)> {
        let rest = text.strip_prefix(TEXT_PREFIX)?;
        let (tag, rest) = rest.split_once(':')?;
        let cipher = Cipher::of_tag(tag)?;
        let (key_id, rest) = rest.split_once(':')?;
        if !valid_key_id(key_id) {
            return None;
        }
        let body_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
            .count();
        if body_len < (NONCE_LEN + TAG_LEN) * 4 / 3 {
            return None;
        }
        let body = &rest[..body_len];
        let used = text.len() - rest.len() + body_len;
        Some((SealedText { cipher, key_id, body }, used))
    }

    /// The whole of `text` as a sealed value.
    pub fn parse(text: &'a str) -> Option<SealedText<'a>> {
        match SealedText::parse_prefix(text) {
            Some((sealed, used)) if used == text.len() => Some(sealed),
            _ => None,
        }
    }
}

/// Whether `bytes` is a sealed payload.
pub fn is_sealed_bytes(bytes: &[u8]) -> bool {
    bytes.starts_with(BYTES_MAGIC)
}

/// The key id a sealed payload names.
pub fn sealed_bytes_key(bytes: &[u8]) -> Option<&str> {
    let rest = bytes.strip_prefix(BYTES_MAGIC)?;
    let len = usize::from(*rest.get(1)?);
    std::str::from_utf8(rest.get(2..2 + len)?).ok()
}

/// The configured data keys: the current one seals, every one opens what it sealed.
#[derive(Debug, Clone)]
pub struct Keyring {
    current: Arc<DataKey>,
    keys: BTreeMap<String, Arc<DataKey>>,
}

impl Keyring {
    /// A keyring of `keys`, sealing with the one whose id is `current`.
    pub fn new(keys: Vec<DataKey>, current: &str) -> Result<Keyring, PersonalError> {
        let mut by_id = BTreeMap::new();
        for key in keys {
            let id = key.id.clone();
            if by_id.insert(id.clone(), Arc::new(key)).is_some() {
                return Err(PersonalError::DuplicateKey(id));
            }
        }
        let current = by_id
            .get(current)
            .cloned()
            .ok_or_else(|| PersonalError::NoCurrentKey(current.to_string()))?;
        Ok(Keyring { current, keys: by_id })
    }

    /// The key new values are sealed under.
    pub fn current(&self) -> &DataKey {
        &self.current
    }

    /// `plain` sealed under the current key.
    pub fn seal_text(&self, plain: &str) -> String {
        self.current.seal_text(plain)
    }

    /// `plain` sealed under the current key, as a payload.
    pub fn seal_bytes(&self, plain: &[u8]) -> Vec<u8> {
        self.current.seal_bytes(plain)
    }

    /// `plain` sealed under every key (the current first): what a look-up compares stored
    /// values with while values sealed under an older key remain.
    pub fn sealed_forms(&self, plain: &str) -> Vec<String> {
        let mut forms = vec![self.current.seal_text(plain)];
        forms.extend(
            self.keys
                .values()
                .filter(|k| k.id != self.current.id)
                .map(|k| k.seal_text(plain)),
        );
        forms
    }

    /// The clear text of a sealed value; `Ok(None)` when `text` is not sealed.
    pub fn open_text(&self, text: &str) -> Result<Option<String>, PersonalError> {
        let Some(sealed) = SealedText::parse(text) else {
            return Ok(None);
        };
        self.open_parsed(&sealed).map(Some)
    }

    fn open_parsed(&self, sealed: &SealedText<'_>) -> Result<String, PersonalError> {
        let key = self
            .keys
            .get(sealed.key_id)
            .ok_or_else(|| PersonalError::UnknownKey(sealed.key_id.to_string()))?;
        if key.cipher != sealed.cipher {
            return Err(PersonalError::DoesNotOpen(key.id.clone()));
        }
        let raw = URL_SAFE_NO_PAD
            .decode(sealed.body)
            .map_err(|_| PersonalError::Malformed)?;
        let plain = key.open_raw(TEXT_AAD, &raw)?;
        String::from_utf8(plain).map_err(|_| PersonalError::Malformed)
    }

    /// The clear bytes of a payload: sealed ones opened, others as they are.
    pub fn open_bytes<'b>(&self, bytes: &'b [u8]) -> Result<Cow<'b, [u8]>, PersonalError> {
        let Some(rest) = bytes.strip_prefix(BYTES_MAGIC) else {
            return Ok(Cow::Borrowed(bytes));
        };
        let (&code, rest) = rest.split_first().ok_or(PersonalError::Malformed)?;
        let (&len, rest) = rest.split_first().ok_or(PersonalError::Malformed)?;
        let len = usize::from(len);
        let id = rest
            .get(..len)
            .and_then(|id| std::str::from_utf8(id).ok())
            .ok_or(PersonalError::Malformed)?;
        let key = self
            .keys
            .get(id)
            .ok_or_else(|| PersonalError::UnknownKey(id.to_string()))?;
        if Some(key.cipher) != Cipher::of_code(code) {
            return Err(PersonalError::DoesNotOpen(key.id.clone()));
        }
        key.open_raw(BYTES_AAD, &rest[len..]).map(Cow::Owned)
    }

    /// `text` with every sealed value in it under another key than the current one re-sealed
    /// under the current key; `Ok(None)` when there is none. A value that does not open is an
    /// error (the text is left as it is).
    pub fn reseal_all(&self, text: &str) -> Result<Option<String>, PersonalError> {
        let mut failure = None;
        let (out, changed) = rewrite_sealed(text, |sealed| {
            if sealed.key_id == self.current.id || failure.is_some() {
                return None;
            }
            match self.open_parsed(sealed) {
                Ok(plain) => Some(self.seal_text(&plain)),
                Err(e) => {
                    failure = Some(e);
                    None
                }
            }
        });
        match failure {
            Some(e) => Err(e),
            None => Ok((changed > 0).then(|| out.into_owned())),
        }
    }

    /// A sealed payload re-sealed under the current key; `Ok(None)` when it is not sealed or is
    /// already under the current key.
    pub fn reseal_bytes(&self, bytes: &[u8]) -> Result<Option<Vec<u8>>, PersonalError> {
        match sealed_bytes_key(bytes) {
            Some(id) if id != self.current.id => Ok(Some(self.seal_bytes(&self.open_bytes(bytes)?))),
            _ => Ok(None),
        }
    }

    /// Every sealed value in `text` replaced by what `show` makes of its clear text (`Err` of
    /// one that does not open is shown as `show_failure` makes of it). Answers the text and how
    /// many values were replaced.
    pub fn replace_sealed<'t>(
        &self,
        text: &'t str,
        mut show: impl FnMut(&str) -> String,
        mut show_failure: impl FnMut(&PersonalError) -> String,
    ) -> (Cow<'t, str>, usize) {
        rewrite_sealed(text, |sealed| {
            Some(match self.open_parsed(sealed) {
                Ok(plain) => show(&plain),
                Err(e) => show_failure(&e),
            })
        })
    }
}

/// `text` with each sealed value in it replaced by what `replace` makes of it (`None`: kept as
/// it is), and how many were replaced.
fn rewrite_sealed<'t>(
    text: &'t str,
    mut replace: impl FnMut(&SealedText<'_>) -> Option<String>,
) -> (Cow<'t, str>, usize) {
    if !text.contains(TEXT_PREFIX) {
        return (Cow::Borrowed(text), 0);
    }
    let mut out = String::with_capacity(text.len());
    let mut count = 0;
    let mut rest = text;
    while let Some(at) = rest.find(TEXT_PREFIX) {
        out.push_str(&rest[..at]);
        let candidate = &rest[at..];
        let used = match SealedText::parse_prefix(candidate) {
            Some((sealed, used)) => {
                match replace(&sealed) {
                    Some(new) => {
                        out.push_str(&new);
                        count += 1;
                    }
                    None => out.push_str(&candidate[..used]),
                }
                used
            }
            None => {
                out.push_str(TEXT_PREFIX);
                TEXT_PREFIX.len()
            }
        };
        rest = &candidate[used..];
    }
    if count == 0 {
        return (Cow::Borrowed(text), 0);
    }
    out.push_str(rest);
    (Cow::Owned(out), count)
}

/// The masked form of a personal value: an identifier of 9 characters or more keeps its first
/// and last four (`3601**********123X`, as [`normalizer::standards::id_number::mask_id`]), a
/// shorter value its first and last character, a value of one or two characters none.
pub fn mask(value: &str) -> String {
    let n = value.chars().count();
    if n >= 9 {
        return normalizer::standards::id_number::mask_id(value);
    }
    let keep = usize::from(n >= 3);
    value
        .chars()
        .enumerate()
        .map(|(i, c)| if i < keep || i + keep >= n { c } else { '*' })
        .collect()
}

/// How a text that leaves the gateway shows personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// Sealed values opened.
    Clear,
    /// Sealed values masked, and everything shaped like an ID number in clear text (raw
    /// payloads) masked too.
    Masked,
}

/// `text` (JSON when `json`: values are written escaped) as it may be shown: every sealed value
/// opened or masked (one that does not open says so), and with [`Shown::Masked`] every possible
/// identifier in it masked. Answers the text and how many sealed values it held.
pub fn shown_text(keys: &Keyring, text: &str, shown: Shown, json: bool) -> (String, usize) {
    let escape = |s: String| {
        if json {
            let quoted = serde_json::Value::String(s).to_string();
            quoted[1..quoted.len() - 1].to_string()
        } else {
            s
        }
    };
    let (replaced, count) = keys.replace_sealed(
        text,
        |plain| {
            escape(match shown {
                Shown::Clear => plain.to_string(),
                Shown::Masked => mask(plain),
            })
        },
        |e| escape(format!("[无法解密 / cannot be opened: {e}]")),
    );
    let text = match shown {
        Shown::Clear => replaced.into_owned(),
        Shown::Masked => mask_possible_identifiers(&replaced).into_owned(),
    };
    (text, count)
}

/// The keys this process holds, by id, for opening payloads and values wherever they are read
/// (the store's readers of the raw archive, the archive's verifier): the union of the keyrings
/// [registered](register). Sealing always uses a gateway's own [`Keyring`].
static REGISTERED: RwLock<Option<Arc<Keyring>>> = RwLock::new(None);

/// Make `keyring`'s keys available to [`open_payload`] and [`registered`].
pub fn register(keyring: &Keyring) {
    let mut slot = REGISTERED.write().unwrap_or_else(|e| e.into_inner());
    let mut merged = keyring.clone();
    if let Some(held) = slot.as_ref() {
        for (id, key) in &held.keys {
            merged.keys.entry(id.clone()).or_insert_with(|| key.clone());
        }
    }
    *slot = Some(Arc::new(merged));
}

/// The keys [registered](register) in this process, if any.
pub fn registered() -> Option<Arc<Keyring>> {
    REGISTERED.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The clear bytes of a payload as the archive keeps it: a sealed one opened with the
/// [registered](register) keys, another as it is.
pub fn open_payload(bytes: &[u8]) -> Result<Cow<'_, [u8]>, PersonalError> {
    if !is_sealed_bytes(bytes) {
        return Ok(Cow::Borrowed(bytes));
    }
    match registered() {
        Some(keys) => keys.open_bytes(bytes).map(|b| Cow::Owned(b.into_owned())),
        None => Err(PersonalError::UnknownKey(
            sealed_bytes_key(bytes).unwrap_or("?").to_string(),
        )),
    }
}

/// Every sealed string in `value` replaced by its clear text (with `keyring`); answers how many
/// were. Values under a key not held, or altered, are an error (nothing of them is guessed).
pub fn open_json(keyring: &Keyring, value: &mut serde_json::Value) -> Result<usize, PersonalError> {
    let mut opened = 0;
    open_json_into(keyring, value, &mut opened)?;
    Ok(opened)
}

fn open_json_into(keyring: &Keyring, value: &mut serde_json::Value, opened: &mut usize) -> Result<(), PersonalError> {
    match value {
        serde_json::Value::String(s) => {
            if let Some(plain) = keyring.open_text(s)? {
                *s = plain;
                *opened += 1;
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                open_json_into(keyring, item, opened)?;
            }
        }
        serde_json::Value::Object(map) => {
            for item in map.values_mut() {
                open_json_into(keyring, item, opened)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// [`open_json`] with the [registered](register) keys; a value without sealed strings is left
/// alone when none are registered.
pub fn open_json_registered(value: &mut serde_json::Value) -> Result<usize, PersonalError> {
    match registered() {
        Some(keys) => open_json(&keys, value),
        None => match first_sealed(value) {
            Some(key) => Err(PersonalError::UnknownKey(key)),
            None => Ok(0),
        },
    }
}

fn first_sealed(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => SealedText::parse(s).map(|t| t.key_id.to_string()),
        serde_json::Value::Array(items) => items.iter().find_map(first_sealed),
        serde_json::Value::Object(map) => map.values().find_map(first_sealed),
        _ => None,
    }
}

/// `text` with everything in it that looks like a resident ID number masked — right or
/// mistyped (unlike [`normalizer::standards::id_number::mask_identifiers`], which masks valid
/// numbers only), a mistyped number is a person's too: 17 digits and a digit or `X` whose digits 7–14
/// are a birth date (1900–2099), or 15 digits whose digits 7–12 are one (first generation),
/// standing alone (not inside a longer run of letters or digits). For texts that are shown but
/// cannot be sealed value by value: raw payloads, messages, audit subjects.
pub fn mask_possible_identifiers(text: &str) -> Cow<'_, str> {
    fn birth_date(digits: &str, layout: &str) -> bool {
        chrono::NaiveDate::parse_from_str(digits, layout)
            .is_ok_and(|d| (1900..=2099).contains(&chrono::Datelike::year(&d)))
    }
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() || (i > 0 && bytes[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        let mut len = digits;
        if digits == 17 && matches!(bytes.get(i + 17), Some(b'X' | b'x')) {
            len = 18;
        }
        let end = i + len;
        let alone = !bytes.get(end).is_some_and(|b| b.is_ascii_alphanumeric());
        let candidate = &text[i..end];
        let is_id = alone
            && match len {
                18 => birth_date(&candidate[6..14], "%Y%m%d"),
                15 => birth_date(&format!("19{}", &candidate[6..12]), "%Y%m%d"),
                _ => false,
            };
        if is_id {
            let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
            o.push_str(&text[copied..i]);
            o.push_str(&mask(candidate));
            copied = end;
        }
        i = end.max(i + 1);
    }
    match out {
        Some(mut o) => {
            o.push_str(&text[copied..]);
            Cow::Owned(o)
        }
        None => Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).expect("test hex")
    }

    #[test]
    fn sm4_block_matches_the_gbt_32907_example() {
        use sm4::cipher::{BlockEncrypt, KeyInit as _};
        let key = unhex("0123456789abcdeffedcba9876543210");
        let cipher = sm4::Sm4::new_from_slice(&key).expect("16 bytes");
        let mut block = sm4::cipher::generic_array::GenericArray::clone_from_slice(&key);
        cipher.encrypt_block(&mut block);
        assert_eq!(hex::encode(block), "681edf34d206965e86b3e94f536e4246");
        // GB/T 32907 A.2: the same block encrypted 1,000,000 times.
        let mut block = sm4::cipher::generic_array::GenericArray::clone_from_slice(&key);
        for _ in 0..1_000_000 {
            cipher.encrypt_block(&mut block);
        }
        assert_eq!(hex::encode(block), "595298c7c6fd271f0402f804c33d3f66");
    }

    #[test]
    fn sm4_gcm_matches_the_rfc_8998_example() {
        let key = DataKey::from_hex("t", Cipher::Sm4Gcm, "0123456789ABCDEFFEDCBA9876543210").expect("key");
        let nonce: [u8; 12] = unhex("00001234567800000000ABCD").try_into().expect("12");
        let aad = unhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2");
        let plain = unhex(
            "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDDEEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA",
        );
        let sealed = key.encrypt(&nonce, &aad, &plain);
        let expected = unhex(
            "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D83DE3541E4C2B58177E065A9BF7B62EC",
        );
        assert_eq!(sealed, expected);
        assert_eq!(key.decrypt(&nonce, &aad, &sealed), Some(plain));
        let mut altered = sealed.clone();
        altered[3] ^= 1;
        assert_eq!(key.decrypt(&nonce, &aad, &altered), None);
    }

    #[test]
    fn aes_256_gcm_matches_the_nist_example() {
        // The GCM specification's test case 14: zero key, zero nonce, one zero block.
        let key = DataKey::from_bytes("t", Cipher::Aes256Gcm, &[0u8; 32]).expect("key");
        let sealed = key.encrypt(&[0u8; 12], b"", &[0u8; 16]);
        assert_eq!(
            hex::encode(sealed),
            "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"
        );
    }

    fn ring(ids: &[(&str, Cipher, &str)], current: &str) -> Keyring {
        let keys = ids
            .iter()
            .map(|(id, c, hex)| DataKey::from_hex(id, *c, hex).expect("key"))
            .collect();
        Keyring::new(keys, current).expect("ring")
    }

    const K1: &str = "00112233445566778899aabbccddeeff";
    const K2: &str = "ffeeddccbbaa99887766554433221100";

    #[test]
    fn sealing_is_deterministic_per_key_and_opens_back() {
        let a = ring(&[("k1", Cipher::Sm4Gcm, K1)], "k1");
        let id = "36010219900101123X";
        let one = a.seal_text(id);
        assert_eq!(
            one,
            a.seal_text(id),
            "equal values seal equal: look-ups compare sealed forms"
        );
        assert_ne!(one, a.seal_text("360102199001011231"));
        assert!(one.starts_with("pd1:sm4:k1:"), "{one}");
        assert!(!one.contains(id));
        assert_eq!(a.open_text(&one), Ok(Some(id.to_string())));
        assert_eq!(a.open_text("plain"), Ok(None));
        let b = ring(&[("k2", Cipher::Sm4Gcm, K2)], "k2");
        assert_eq!(b.open_text(&one), Err(PersonalError::UnknownKey("k1".into())));
    }

    #[test]
    fn a_value_altered_or_under_a_wrong_key_of_the_same_id_does_not_open() {
        let a = ring(&[("k1", Cipher::Sm4Gcm, K1)], "k1");
        let b = ring(&[("k1", Cipher::Sm4Gcm, K2)], "k1");
        let sealed = a.seal_text("36010219900101123X");
        assert_eq!(b.open_text(&sealed), Err(PersonalError::DoesNotOpen("k1".into())));
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 3;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).expect("ascii");
        assert_eq!(a.open_text(&altered), Err(PersonalError::DoesNotOpen("k1".into())));
    }

    #[test]
    fn payloads_seal_and_open_and_plain_ones_pass() {
        let a = ring(
            &[
                ("k1", Cipher::Sm4Gcm, K1),
                ("k2", Cipher::Aes256Gcm, &format!("{K1}{K2}")),
            ],
            "k2",
        );
        let payload = br#"{"zjhm":"36010219900101123X"}"#;
        let sealed = a.seal_bytes(payload);
        assert!(is_sealed_bytes(&sealed));
        assert_eq!(sealed_bytes_key(&sealed), Some("k2"));
        assert_eq!(a.open_bytes(&sealed).expect("opens").as_ref(), payload);
        assert_eq!(a.open_bytes(payload).expect("plain").as_ref(), payload);
    }

    #[test]
    fn rotation_reseals_old_values_under_the_current_key_and_both_forms_are_found() {
        let old = ring(&[("k1", Cipher::Sm4Gcm, K1)], "k1");
        let both = ring(&[("k1", Cipher::Sm4Gcm, K1), ("k2", Cipher::Sm4Gcm, K2)], "k2");
        let id = "36010219900101123X";
        let before = old.seal_text(id);
        let forms = both.sealed_forms(id);
        assert_eq!(forms.len(), 2);
        assert!(
            forms.contains(&before),
            "a look-up during rotation still finds old values"
        );
        let after = both.reseal_all(&before).expect("opens").expect("resealed");
        let json = format!(r#"{{"a":"{before}","b":"{after}","c":"pd1:x"}}"#);
        let moved = both.reseal_all(&json).expect("opens").expect("changed");
        assert_eq!(moved, format!(r#"{{"a":"{after}","b":"{after}","c":"pd1:x"}}"#));
        assert_eq!(both.reseal_all(&moved), Ok(None), "nothing left under the old key");
        assert!(after.starts_with("pd1:sm4:k2:"));
        assert_eq!(both.open_text(&after), Ok(Some(id.to_string())));
        assert_eq!(both.reseal_all(&after), Ok(None), "already current");
        let payload = old.seal_bytes(b"abc");
        let moved = both.reseal_bytes(&payload).expect("opens").expect("resealed");
        assert_eq!(sealed_bytes_key(&moved), Some("k2"));
    }

    #[test]
    fn sealed_values_in_any_text_are_replaced() {
        let a = ring(&[("k1", Cipher::Sm4Gcm, K1)], "k1");
        let s1 = a.seal_text("36010219900101123X");
        let s2 = a.seal_text("13800001111");
        let text = format!(r#"{{"id":"{s1}","phone":"{s2}","note":"pd1:not-sealed"}}"#);
        let (shown, n) = a.replace_sealed(&text, mask, |_| "?".into());
        assert_eq!(n, 2);
        assert_eq!(
            shown,
            r#"{"id":"3601**********123X","phone":"1380***1111","note":"pd1:not-sealed"}"#
        );
    }

    #[test]
    fn identifiers_in_free_text_are_masked_and_other_numbers_are_not() {
        use normalizer::standards::id_number::id_check_char;
        let first17 = "36010219900101123";
        let id = format!("{first17}{}", id_check_char(first17).expect("check char"));
        let text = format!(
            r#"{{"zjhm":"{id}","old":"360102900101123","typo":"360102199001011239","phone":"13800001111","code":"9{id}"}}"#
        );
        let masked = mask_possible_identifiers(&text);
        assert!(
            !masked.contains(&id[..]) || masked.contains(&format!("9{id}")),
            "{masked}"
        );
        assert!(masked.contains(&mask(&id)), "{masked}");
        assert!(masked.contains("3601*******1123"), "{masked}");
        assert!(
            masked.contains("3601**********1239"),
            "a mistyped number is masked too: {masked}"
        );
        assert!(
            masked.contains("13800001111") && masked.contains(&format!("9{id}")),
            "{masked}"
        );
        assert!(matches!(mask_possible_identifiers("no numbers"), Cow::Borrowed(_)));
    }

    #[test]
    fn masks_keep_little_of_the_value() {
        assert_eq!(mask("36010219900101123X"), "3601**********123X");
        assert_eq!(mask("360102900101123"), "3601*******1123");
        assert_eq!(mask("张三丰"), "张*丰");
        assert_eq!(mask("张三"), "**");
        assert_eq!(mask(""), "");
    }

    #[test]
    fn bad_keys_are_refused_with_the_key_named() {
        let e = DataKey::from_hex("k1", Cipher::Sm4Gcm, "00112233").expect_err("short");
        assert!(e.to_string().contains("k1") && e.to_string().contains("16"), "{e}");
        assert!(matches!(
            DataKey::from_hex("k:1", Cipher::Sm4Gcm, K1),
            Err(PersonalError::BadKeyId(_))
        ));
        let keys = vec![
            DataKey::from_hex("k1", Cipher::Sm4Gcm, K1).expect("key"),
            DataKey::from_hex("k1", Cipher::Sm4Gcm, K2).expect("key"),
        ];
        assert!(matches!(Keyring::new(keys, "k1"), Err(PersonalError::DuplicateKey(_))));
    }
}
