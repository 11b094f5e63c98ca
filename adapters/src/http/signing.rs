//! The pieces of request signatures (`auth = { kind = "hmac", ... }`): the algorithms (HMAC-SHA256,
//! HMAC-SM3 国密, plain SHA-256 / SM3 digests), how a signature is written (`hex`, `HEX`,
//! `base64`), where the secret goes into the string, and the canonical string of
//! `style = "sorted_params"`.
//!
//! The `sorted_params` string, as many Chinese departmental gateways define it: every query
//! parameter of the request plus the app key, timestamp and nonce (under configurable names),
//! empty values left out (`skip_empty`), sorted by name (then value), written `name=value` and
//! joined by `&`, the values raw (`encode_values = false`, default) or form-URL-encoded; then,
//! when configured, `&body=<raw body>` (`body = "param"`) or the raw body (`body = "append"`),
//! then `&<secret_param>=<secret>`; the whole possibly wrapped in the secret
//! (`secret_position`). For example, a GET with `since=2024-03-01 00:00:00&page=1`, app key
//! `ak`, timestamp `1709251200000` and nonce `n1`:
//!
//! ```text
//! appKey=ak&nonce=n1&page=1&since=2024-03-01 00:00:00&timestamp=1709251200000
//! ```

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};
use sm3::Sm3;

/// The function that turns the canonical string into a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignAlgorithm {
    /// HMAC with SHA-256, keyed with the secret (`hmac-sha256`, default).
    HmacSha256,
    /// HMAC with SM3 (GB/T 32905), keyed with the secret (`hmac-sm3`).
    HmacSm3,
    /// A plain SHA-256 digest of the string, which must hold the secret itself (`sha256`).
    Sha256,
    /// A plain SM3 digest of the string, which must hold the secret itself (`sm3`).
    Sm3,
}

impl SignAlgorithm {
    /// The algorithm named in the configuration (`hmac-sha256`, `hmac-sm3`, `sha256`, `sm3`).
    pub fn parse(text: &str) -> Result<SignAlgorithm, String> {
        match text {
            "hmac-sha256" => Ok(SignAlgorithm::HmacSha256),
            "hmac-sm3" => Ok(SignAlgorithm::HmacSm3),
            "sha256" => Ok(SignAlgorithm::Sha256),
            "sm3" => Ok(SignAlgorithm::Sm3),
            other => Err(format!(
                "应为 hmac-sha256、hmac-sm3、sha256 或 sm3 / must be hmac-sha256, hmac-sm3, sha256 or sm3, got {other:?}"
            )),
        }
    }

    /// True for the plain digests, which prove nothing unless the secret is in the string.
    pub fn is_plain_digest(self) -> bool {
        matches!(self, SignAlgorithm::Sha256 | SignAlgorithm::Sm3)
    }

    /// The raw signature (or digest) bytes of `message` under `secret`.
    pub fn sign(self, secret: &[u8], message: &[u8]) -> Vec<u8> {
        match self {
            SignAlgorithm::HmacSha256 => hmac_bytes::<Hmac<Sha256>>(secret, message),
            SignAlgorithm::HmacSm3 => hmac_bytes::<Hmac<Sm3>>(secret, message),
            SignAlgorithm::Sha256 => Sha256::digest(message).to_vec(),
            SignAlgorithm::Sm3 => Sm3::digest(message).to_vec(),
        }
    }
}

fn hmac_bytes<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    let Ok(mut mac) = <M as Mac>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// How signature bytes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureEncoding {
    /// Lower-case hex (`hex`, default).
    Hex,
    /// Upper-case hex (`HEX`).
    UpperHex,
    /// Standard base64 with padding (`base64`).
    Base64,
}

impl SignatureEncoding {
    /// The encoding named in the configuration (`hex`, `HEX`, `base64`).
    pub fn parse(text: &str) -> Result<SignatureEncoding, String> {
        match text {
            "hex" => Ok(SignatureEncoding::Hex),
            "HEX" => Ok(SignatureEncoding::UpperHex),
            "base64" => Ok(SignatureEncoding::Base64),
            other => Err(format!(
                "应为 hex、HEX 或 base64 / must be hex (lower case), HEX (upper case) or base64, got {other:?}"
            )),
        }
    }

    /// `bytes` written this way.
    pub fn encode(self, bytes: &[u8]) -> String {
        match self {
            SignatureEncoding::Hex => hex::encode(bytes),
            SignatureEncoding::UpperHex => hex::encode_upper(bytes),
            SignatureEncoding::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }
}

/// Where the secret is put into the string itself (besides keying an HMAC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretPosition {
    /// Not in the string (`none`, default).
    None,
    /// Before it (`prepend`).
    Prepend,
    /// After it (`append`).
    Append,
    /// Before and after it (`both`, as some gateways do with MD5/SM3 digests).
    Both,
}

impl SecretPosition {
    /// The position named in the configuration.
    pub fn parse(text: &str) -> Result<SecretPosition, String> {
        match text {
            "none" => Ok(SecretPosition::None),
            "prepend" => Ok(SecretPosition::Prepend),
            "append" => Ok(SecretPosition::Append),
            "both" => Ok(SecretPosition::Both),
            other => Err(format!(
                "应为 none、prepend、append 或 both / must be none, prepend, append or both, got {other:?}"
            )),
        }
    }

    /// `text` with the secret where this position says.
    pub fn apply(self, text: String, secret: &str) -> String {
        match self {
            SecretPosition::None => text,
            SecretPosition::Prepend => format!("{secret}{text}"),
            SecretPosition::Append => format!("{text}{secret}"),
            SecretPosition::Both => format!("{secret}{text}{secret}"),
        }
    }
}

/// How the request body enters a `sorted_params` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyPart {
    /// Not at all (`none`).
    None,
    /// As one more pair after the sorted ones, `&<name>=<raw body>` (`param`), when there is a
    /// body.
    Param(String),
    /// The raw body right after the sorted pairs (`append`).
    Append,
}

/// The rules of a `sorted_params` canonical string (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortedParams {
    /// Name of the app key parameter.
    pub app_key_param: String,
    /// Name of the timestamp parameter.
    pub timestamp_param: String,
    /// Name of the nonce parameter.
    pub nonce_param: String,
    /// Name of the signature parameter (sent, never signed).
    pub signature_param: String,
    /// App key, timestamp, nonce and signature go as query parameters (else as headers).
    pub in_query: bool,
    /// Names and values form-URL-encoded in the string (else raw).
    pub encode_values: bool,
    /// Parameters with an empty value are left out.
    pub skip_empty: bool,
    /// Where the body goes.
    pub body: BodyPart,
    /// `&<name>=<secret>` appended at the very end, when set.
    pub secret_param: Option<String>,
    /// Between pairs.
    pub pair_separator: String,
    /// Between a name and its value.
    pub kv_separator: String,
}

fn encoded(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

impl SortedParams {
    /// The canonical string of a request whose parameters are `params` (decoded, the
    /// signature's own left out by the caller) and whose body is `body`.
    pub fn canonical(&self, params: &[(String, String)], body: &[u8], secret: &str) -> String {
        let mut pairs: Vec<(&str, &str)> = params
            .iter()
            .filter(|(k, v)| *k != self.signature_param && !(self.skip_empty && v.is_empty()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        pairs.sort();
        let write = |k: &str, v: &str| {
            if self.encode_values {
                format!("{}{}{}", encoded(k), self.kv_separator, encoded(v))
            } else {
                format!("{k}{}{v}", self.kv_separator)
            }
        };
        let mut out: Vec<String> = pairs.iter().map(|(k, v)| write(k, v)).collect();
        let body_text = String::from_utf8_lossy(body);
        let mut text = match &self.body {
            BodyPart::Param(name) if !body.is_empty() => {
                out.push(format!("{name}{}{body_text}", self.kv_separator));
                out.join(&self.pair_separator)
            }
            BodyPart::Append => format!("{}{body_text}", out.join(&self.pair_separator)),
            _ => out.join(&self.pair_separator),
        };
        if let Some(name) = &self.secret_param {
            if !text.is_empty() {
                text.push_str(&self.pair_separator);
            }
            text.push_str(&format!("{name}{}{secret}", self.kv_separator));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn department() -> SortedParams {
        SortedParams {
            app_key_param: "appKey".into(),
            timestamp_param: "timestamp".into(),
            nonce_param: "nonce".into(),
            signature_param: "sign".into(),
            in_query: true,
            encode_values: false,
            skip_empty: true,
            body: BodyPart::Param("body".into()),
            secret_param: None,
            pair_separator: "&".into(),
            kv_separator: "=".into(),
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn sm3_matches_the_gb_t_32905_vectors() {
        // GB/T 32905-2016 appendix A: "abc" and "abcd" repeated 16 times (64 bytes).
        assert_eq!(
            hex::encode(SignAlgorithm::Sm3.sign(b"", b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(
            hex::encode(SignAlgorithm::Sm3.sign(b"", "abcd".repeat(16).as_bytes())),
            "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
        );
    }

    #[test]
    fn hmac_sm3_matches_vectors_computed_by_openssl() {
        // Computed with an independent implementation (OpenSSL 3.0 through Python's hmac:
        // `hmac.new(key, msg, 'sm3').hexdigest()`), in the RFC 4231 shapes: short key, short
        // key with short data, a key longer than the 64-byte block (hashed first).
        let cases: [(&[u8], &[u8], &str); 3] = [
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "2e87f1d16862e6d964b50a5200bf2b10b764faa9680a296a2405f24bec39f882",
            ),
            (
                &[0x0b; 20],
                b"Hi There",
                "51b00d1fb49832bfb01c3ce27848e59f871d9ba938dc563b338ca964755cce70",
            ),
            (
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "b4fd844e13342002f0b2e0690ea7741f1497d993a70494cea601e657bedf67a0",
            ),
        ];
        for (key, message, expected) in cases {
            assert_eq!(hex::encode(SignAlgorithm::HmacSm3.sign(key, message)), expected);
        }
        // RFC 4231 test case 2 for HMAC-SHA256, through the same path.
        assert_eq!(
            hex::encode(SignAlgorithm::HmacSha256.sign(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signatures_are_written_in_lower_hex_upper_hex_or_base64() {
        let bytes = [0xab, 0x01, 0xff];
        assert_eq!(SignatureEncoding::Hex.encode(&bytes), "ab01ff");
        assert_eq!(SignatureEncoding::UpperHex.encode(&bytes), "AB01FF");
        assert_eq!(SignatureEncoding::Base64.encode(&bytes), "qwH/");
        assert!(SignatureEncoding::parse("Hex").is_err());
    }

    #[test]
    fn sorted_params_string_sorts_raw_values_and_skips_empty_ones() {
        let p = department();
        let params = pairs(&[
            ("since", "2024-03-01 00:00:00"),
            ("page", "1"),
            ("region", ""),
            ("appKey", "ak"),
            ("timestamp", "1709251200000"),
            ("nonce", "n1"),
        ]);
        assert_eq!(
            p.canonical(&params, b"", "s"),
            "appKey=ak&nonce=n1&page=1&since=2024-03-01 00:00:00&timestamp=1709251200000"
        );
        let kept = SortedParams {
            skip_empty: false,
            encode_values: true,
            ..department()
        };
        assert_eq!(
            kept.canonical(&params, b"", "s"),
            "appKey=ak&nonce=n1&page=1&region=&since=2024-03-01+00%3A00%3A00&timestamp=1709251200000"
        );
    }

    #[test]
    fn sorted_params_string_takes_the_body_and_the_secret_as_configured() {
        let params = pairs(&[("b", "2"), ("a", "1"), ("sign", "old")]);
        let body = br#"{"since":"2024-03-01 00:00:00"}"#;
        assert_eq!(
            department().canonical(&params, body, "s"),
            r#"a=1&b=2&body={"since":"2024-03-01 00:00:00"}"#,
            "the signature parameter itself is never signed"
        );
        assert_eq!(
            department().canonical(&params, b"", "s"),
            "a=1&b=2",
            "no body, no body pair"
        );
        let appended = SortedParams {
            body: BodyPart::Append,
            secret_param: Some("appSecret".into()),
            ..department()
        };
        assert_eq!(appended.canonical(&params, b"xyz", "s3"), "a=1&b=2xyz&appSecret=s3");
        let compact = SortedParams {
            pair_separator: String::new(),
            kv_separator: String::new(),
            body: BodyPart::None,
            ..department()
        };
        assert_eq!(
            SecretPosition::Both.apply(compact.canonical(&params, body, "s"), "S"),
            "Sa1b2S"
        );
    }

    #[test]
    fn configuration_names_are_checked() {
        assert_eq!(SignAlgorithm::parse("hmac-sm3"), Ok(SignAlgorithm::HmacSm3));
        assert!(SignAlgorithm::parse("md5").unwrap_err().contains("hmac-sm3"));
        assert!(SignAlgorithm::Sm3.is_plain_digest() && !SignAlgorithm::HmacSm3.is_plain_digest());
        assert_eq!(SecretPosition::parse("both"), Ok(SecretPosition::Both));
        assert!(SecretPosition::parse("middle").is_err());
    }
}
