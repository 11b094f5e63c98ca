//! Checkpoint signing keys: SM2 (GB/T 32918, with SM3 and the default user id
//! `1234567812345678` of GM/T 0009) or Ed25519 (RFC 8032). Private keys are PKCS#8 PEM (what
//! `gateway archive keygen` and `openssl genpkey` write) or, for SM2, the 32-byte private scalar
//! in hex; public keys are SubjectPublicKeyInfo PEM. SM2 signatures are DER
//! (`SEQUENCE { r INTEGER, s INTEGER }`, what OpenSSL reads and writes); Ed25519 ones the 64
//! bytes of RFC 8032.

use ed25519_dalek::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _};
use ed25519_dalek::{Signer as _, Verifier as _};
use serde::{Deserialize, Serialize};
use sm2::pkcs8::der::pem::LineEnding;
use std::fmt;

/// The user id (distinguishing identifier) of SM2 signatures: GM/T 0009's default.
pub const SM2_USER_ID: &str = "1234567812345678";

/// What went wrong with a key or signature.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key text is neither PKCS#8 PEM nor (SM2) a 64-digit hex scalar of the algorithm.
    #[error("签名私钥无法读取（算法 {algorithm}）/ the signing key cannot be read as a {algorithm} key: {detail}")]
    Private {
        /// The configured algorithm.
        algorithm: SignAlg,
        /// Why.
        detail: String,
    },
    /// The public key PEM cannot be read.
    #[error("公钥无法读取（算法 {algorithm}）/ the public key cannot be read as a {algorithm} key: {detail}")]
    Public {
        /// The algorithm.
        algorithm: SignAlg,
        /// Why.
        detail: String,
    },
    /// Signing failed (an internal error of the signature crate).
    #[error("签名失败 / signing failed: {0}")]
    Sign(String),
}

/// The signature algorithm of checkpoints (`[archive.checkpoints] algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SignAlg {
    /// SM2 with SM3 (GB/T 32918.2), the default.
    #[default]
    Sm2,
    /// Ed25519 (RFC 8032).
    Ed25519,
}

impl SignAlg {
    /// The name used in configuration, checkpoints and receipts.
    pub fn name(self) -> &'static str {
        match self {
            SignAlg::Sm2 => "sm2",
            SignAlg::Ed25519 => "ed25519",
        }
    }

    /// The algorithm named `name`.
    pub fn of_name(name: &str) -> Option<SignAlg> {
        match name {
            "sm2" => Some(SignAlg::Sm2),
            "ed25519" => Some(SignAlg::Ed25519),
            _ => None,
        }
    }
}

impl fmt::Display for SignAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A private key that signs checkpoints.
pub enum SigningKey {
    /// SM2 with the default user id.
    Sm2(Box<sm2::dsa::SigningKey>),
    /// Ed25519.
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, <secret>)", self.algorithm())
    }
}

fn private_error(algorithm: SignAlg, detail: impl fmt::Display) -> KeyError {
    KeyError::Private {
        algorithm,
        detail: detail.to_string(),
    }
}

impl SigningKey {
    /// Read a private key of `algorithm` from its text: PKCS#8 PEM, or (SM2) 64 hex digits.
    pub fn from_text(algorithm: SignAlg, text: &str) -> Result<SigningKey, KeyError> {
        let text = text.trim();
        match algorithm {
            SignAlg::Sm2 => {
                let secret = if text.starts_with("-----BEGIN") {
                    sm2::SecretKey::from_pkcs8_pem(text).map_err(|e| private_error(algorithm, e))?
                } else {
                    let bytes = hex::decode(text)
                        .map_err(|_| private_error(algorithm, "neither PKCS#8 PEM nor 64 hex digits"))?;
                    sm2::SecretKey::from_slice(&bytes)
                        .map_err(|_| private_error(algorithm, "not a valid SM2 scalar"))?
                };
                let key = sm2::dsa::SigningKey::new(SM2_USER_ID, &secret).map_err(|e| private_error(algorithm, e))?;
                Ok(SigningKey::Sm2(Box::new(key)))
            }
            SignAlg::Ed25519 => {
                let key = ed25519_dalek::SigningKey::from_pkcs8_pem(text).map_err(|e| private_error(algorithm, e))?;
                Ok(SigningKey::Ed25519(Box::new(key)))
            }
        }
    }

    /// A new random key of `algorithm` (from the operating system's generator).
    pub fn generate(algorithm: SignAlg) -> Result<SigningKey, KeyError> {
        loop {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| private_error(algorithm, e))?;
            match algorithm {
                SignAlg::Sm2 => {
                    // A scalar outside [1, n-1] (probability about 2^-32) is drawn again.
                    if let Ok(key) = sm2::dsa::SigningKey::from_slice(SM2_USER_ID, &bytes) {
                        return Ok(SigningKey::Sm2(Box::new(key)));
                    }
                }
                SignAlg::Ed25519 => {
                    return Ok(SigningKey::Ed25519(Box::new(ed25519_dalek::SigningKey::from_bytes(
                        &bytes,
                    ))))
                }
            }
        }
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> SignAlg {
        match self {
            SigningKey::Sm2(_) => SignAlg::Sm2,
            SigningKey::Ed25519(_) => SignAlg::Ed25519,
        }
    }

    /// The private key as PKCS#8 PEM (for `gateway archive keygen`).
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        let pem = match self {
            SigningKey::Sm2(k) => {
                let secret = sm2::SecretKey::from(k.as_nonzero_scalar());
                sm2::pkcs8::EncodePrivateKey::to_pkcs8_pem(&secret, LineEnding::LF)
                    .map_err(|e| private_error(SignAlg::Sm2, e))?
            }
            SigningKey::Ed25519(k) => k
                .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
                .map_err(|e| private_error(SignAlg::Ed25519, e))?,
        };
        Ok(pem.to_string())
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        match self {
            SigningKey::Sm2(k) => PublicKey::Sm2(Box::new(k.verifying_key().clone())),
            SigningKey::Ed25519(k) => PublicKey::Ed25519(Box::new(k.verifying_key())),
        }
    }

    /// Sign `message`: SM2 gives a DER signature, Ed25519 its 64 bytes.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match self {
            SigningKey::Sm2(k) => {
                let sig: sm2::dsa::Signature = k.try_sign(message).map_err(|e| KeyError::Sign(e.to_string()))?;
                Ok(der_of_rs(&sig.r_bytes(), &sig.s_bytes()))
            }
            SigningKey::Ed25519(k) => Ok(k.sign(message).to_bytes().to_vec()),
        }
    }
}

/// A public key that verifies checkpoints.
#[derive(Clone)]
pub enum PublicKey {
    /// SM2 with the default user id.
    Sm2(Box<sm2::dsa::VerifyingKey>),
    /// Ed25519.
    Ed25519(Box<ed25519_dalek::VerifyingKey>),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({}, {})", self.algorithm(), self.key_id())
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.spki_der() == other.spki_der()
    }
}

impl PublicKey {
    /// Read a SubjectPublicKeyInfo PEM of `algorithm`.
    pub fn from_pem(algorithm: SignAlg, pem: &str) -> Result<PublicKey, KeyError> {
        let public_error = |e: &dyn fmt::Display| KeyError::Public {
            algorithm,
            detail: e.to_string(),
        };
        match algorithm {
            SignAlg::Sm2 => {
                let key = sm2::PublicKey::from_public_key_pem(pem.trim()).map_err(|e| public_error(&e))?;
                let key = sm2::dsa::VerifyingKey::new(SM2_USER_ID, key).map_err(|e| public_error(&e))?;
                Ok(PublicKey::Sm2(Box::new(key)))
            }
            SignAlg::Ed25519 => {
                let key = ed25519_dalek::VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| public_error(&e))?;
                Ok(PublicKey::Ed25519(Box::new(key)))
            }
        }
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> SignAlg {
        match self {
            PublicKey::Sm2(_) => SignAlg::Sm2,
            PublicKey::Ed25519(_) => SignAlg::Ed25519,
        }
    }

    /// SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> Vec<u8> {
        match self {
            PublicKey::Sm2(k) => sm2::PublicKey::from(k.as_ref())
                .to_public_key_der()
                .map(|d| d.as_bytes().to_vec())
                .unwrap_or_default(),
            PublicKey::Ed25519(k) => k.to_public_key_der().map(|d| d.as_bytes().to_vec()).unwrap_or_default(),
        }
    }

    /// SubjectPublicKeyInfo PEM (what `openssl pkeyutl -verify -pubin -inkey` reads).
    pub fn to_pem(&self) -> String {
        let der = self.spki_der();
        sm2::pkcs8::der::pem::encode_string("PUBLIC KEY", LineEnding::LF, &der).unwrap_or_default()
    }

    /// The key's id: the SM3 digest (hex) of its SubjectPublicKeyInfo DER.
    pub fn key_id(&self) -> String {
        hex::encode(super::chain::HashAlg::Sm3.digest(&self.spki_der()))
    }

    /// Whether `signature` is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Sm2(k) => {
                let Some((r, s)) = rs_of_der(signature) else {
                    return false;
                };
                let Ok(sig) = sm2::dsa::Signature::from_scalars(r, s) else {
                    return false;
                };
                k.verify(message, &sig).is_ok()
            }
            PublicKey::Ed25519(k) => {
                let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
                    return false;
                };
                k.verify(message, &sig).is_ok()
            }
        }
    }
}

/// DER of `SEQUENCE { INTEGER r, INTEGER s }` for two 32-byte unsigned big-endian numbers.
fn der_of_rs(r: &[u8], s: &[u8]) -> Vec<u8> {
    fn integer(out: &mut Vec<u8>, n: &[u8]) {
        let start = n.iter().position(|&b| b != 0).unwrap_or(n.len().saturating_sub(1));
        let n = &n[start..];
        let pad = n.first().is_some_and(|&b| b & 0x80 != 0);
        out.push(0x02);
        out.push((n.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(n);
    }
    let mut body = Vec::with_capacity(70);
    integer(&mut body, r);
    integer(&mut body, s);
    let mut out = Vec::with_capacity(body.len() + 2);
    out.push(0x30);
    out.push(body.len() as u8);
    out.extend_from_slice(&body);
    out
}

/// The two 32-byte numbers of a DER `SEQUENCE { INTEGER r, INTEGER s }` (short lengths only, as
/// every SM2 signature has).
fn rs_of_der(der: &[u8]) -> Option<([u8; 32], [u8; 32])> {
    fn integer(input: &[u8]) -> Option<([u8; 32], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let len = usize::from(len);
        if tag != 0x02 || len > 33 || len == 0 || rest.len() < len {
            return None;
        }
        let (value, rest) = rest.split_at(len);
        let value = if len == 33 {
            if value[0] != 0 {
                return None;
            }
            &value[1..]
        } else {
            value
        };
        let mut out = [0u8; 32];
        out[32 - value.len()..].copy_from_slice(value);
        Some((out, rest))
    }
    let (&tag, rest) = der.split_first()?;
    let (&len, body) = rest.split_first()?;
    if tag != 0x30 || usize::from(len) != body.len() {
        return None;
    }
    let (r, rest) = integer(body)?;
    let (s, rest) = integer(rest)?;
    rest.is_empty().then_some((r, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(text: &str) -> Vec<u8> {
        hex::decode(text).unwrap()
    }

    /// The published signature example on the recommended curve: GM/T 0003.5-2012 annex A.2
    /// (= GB/T 32918.5-2017 annex A): private key `3945208F…`, user id `1234567812345678` (the
    /// default this gateway signs with), message `message digest`, Z_A `B2E14C5C…`.
    #[test]
    fn sm2_verifies_the_published_gm_t_0003_signature_and_rejects_a_changed_message() {
        let public = h(concat!(
            "04",
            "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020",
            "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
        ));
        let r = h("F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3");
        let s = h("B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA");
        let key = sm2::dsa::VerifyingKey::from_sec1_bytes(SM2_USER_ID, &public).unwrap();
        let sig = sm2::dsa::Signature::from_scalars(
            <[u8; 32]>::try_from(r.as_slice()).unwrap(),
            <[u8; 32]>::try_from(s.as_slice()).unwrap(),
        )
        .unwrap();
        assert!(key.verify(b"message digest", &sig).is_ok());
        assert!(key.verify(b"message digesT", &sig).is_err());
        // The same signature in this module's DER form verifies through [`PublicKey`].
        let der = der_of_rs(&r, &s);
        let public_key = PublicKey::Sm2(Box::new(key.clone()));
        assert!(public_key.verify(b"message digest", &der));
        // Another user id gives another Z_A: the signature no longer verifies.
        let other = sm2::dsa::VerifyingKey::from_sec1_bytes("ALICE123@YAHOO.COM", &public).unwrap();
        assert!(other.verify(b"message digest", &sig).is_err());
        // The same private key (dA of the example) gives the same public key.
        let private = SigningKey::from_text(
            SignAlg::Sm2,
            "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8",
        )
        .unwrap();
        let PublicKey::Sm2(derived) = private.public_key() else {
            panic!("an SM2 key");
        };
        assert_eq!(derived.to_sec1_bytes().to_vec(), public);
    }

    /// RFC 8032 section 7.1, test 1 (empty message).
    #[test]
    fn ed25519_verifies_the_rfc_8032_test_vector() {
        let public: [u8; 32] = h("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
            .try_into()
            .unwrap();
        let sig = h("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
        let key = PublicKey::Ed25519(Box::new(ed25519_dalek::VerifyingKey::from_bytes(&public).unwrap()));
        assert!(key.verify(b"", &sig));
        assert!(!key.verify(b"x", &sig));
    }

    #[test]
    fn generated_keys_sign_and_verify_through_their_pem_forms() {
        for alg in [SignAlg::Sm2, SignAlg::Ed25519] {
            let key = SigningKey::generate(alg).unwrap();
            let reread = SigningKey::from_text(alg, &key.to_pkcs8_pem().unwrap()).unwrap();
            let public = PublicKey::from_pem(alg, &key.public_key().to_pem()).unwrap();
            assert_eq!(public, key.public_key());
            let sig = reread.sign(b"checkpoint").unwrap();
            assert!(public.verify(b"checkpoint", &sig), "{alg}");
            assert!(!public.verify(b"checkpoinT", &sig), "{alg}");
            let mut bad = sig.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(!public.verify(b"checkpoint", &bad), "{alg}");
            let other = SigningKey::generate(alg).unwrap().public_key();
            assert!(!other.verify(b"checkpoint", &sig), "{alg}");
        }
    }

    #[test]
    fn der_signatures_round_trip_with_leading_zeros_and_high_bits() {
        for (r, s) in [([0x80u8; 32], [0x01u8; 32]), ([0u8; 32], [0x7fu8; 32])] {
            let mut r2 = r;
            r2[31] = 5;
            let der = der_of_rs(&r2, &s);
            assert_eq!(rs_of_der(&der), Some((r2, s)));
        }
        assert_eq!(rs_of_der(b"\x30\x00"), None);
        assert_eq!(rs_of_der(b""), None);
    }

    #[test]
    fn a_key_of_the_wrong_text_is_refused_with_its_algorithm_named() {
        let err = SigningKey::from_text(SignAlg::Sm2, "not a key")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sm2") && err.contains("签名私钥"), "{err}");
        let err = SigningKey::from_text(SignAlg::Ed25519, "zz").unwrap_err().to_string();
        assert!(err.contains("ed25519"), "{err}");
    }
}
