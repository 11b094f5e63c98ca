//! Sealing a prepared record's personal data before it reaches the store
//! ([`crate::crypto::personal`]): the raw payload as a whole, and in the canonical record, its
//! labels and its violations, every personal value — the target's identifier when the target is
//! a person (`/target/id_type` other than `uscc`) and each field the mapping marks
//! `personal = true`. Messages that quote a personal value quote it masked.
//!
//! The record's content hash is made from the clear record before sealing, so a record sent
//! again is the same version whatever key it is sealed under.

use crate::crypto::personal::{mask, Keyring};
use crate::store::{IncomingRecord, Verdict};
use normalizer::Violation;
use serde_json::Value;

/// The target identifier's pointer.
const TARGET_ID: &str = "/target/id_number";

/// Whether the (possibly partial) canonical record's target is a person, whose identifier is
/// then personal data: an identifier of a type other than the unified social credit code, or
/// without a type, of a target that is not declared a legal person.
pub fn target_is_person(record: &Value) -> bool {
    match record.pointer("/target/id_type").and_then(Value::as_str) {
        Some(kind) => kind != "uscc",
        None => record.pointer("/target/kind").and_then(Value::as_str) != Some("legal_person"),
    }
}

/// Whether the concrete pointer `pointer` (`/witnesses/0/phone`) is matched by `pattern`
/// (`/witnesses/*/phone`).
fn matches(pattern: &str, pointer: &str) -> bool {
    let mut p = pattern.split('/');
    let mut c = pointer.split('/');
    loop {
        match (p.next(), c.next()) {
            (None, None) => return true,
            (Some("*"), Some(token)) if token.bytes().all(|b| b.is_ascii_digit()) && !token.is_empty() => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// The personal values of a canonical record: (concrete pointer, clear text); `person`: its
/// target is a person ([`target_is_person`]).
fn personal_values(record: &Value, patterns: &[String], person: bool) -> Vec<(String, String)> {
    let mut found = Vec::new();
    if person {
        if let Some(text) = scalar_text(record.pointer(TARGET_ID)) {
            found.push((TARGET_ID.to_string(), text));
        }
    }
    for pattern in patterns {
        collect(record, pattern.trim_start_matches('/'), String::new(), &mut found);
    }
    found.sort();
    found.dedup();
    found
}

fn scalar_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn collect(value: &Value, rest: &str, at: String, found: &mut Vec<(String, String)>) {
    if rest.is_empty() {
        if let Some(text) = scalar_text(Some(value)) {
            found.push((at, text));
        }
        return;
    }
    let (token, tail) = rest.split_once('/').unwrap_or((rest, ""));
    match (token, value) {
        ("*", Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                collect(item, tail, format!("{at}/{i}"), found);
            }
        }
        (key, Value::Object(map)) => {
            let key = key.replace("~1", "/").replace("~0", "~");
            if let Some(v) = map.get(&key) {
                collect(v, tail, format!("{at}/{token}"), found);
            }
        }
        (index, Value::Array(items)) => {
            if let Some(v) = index.parse::<usize>().ok().and_then(|i| items.get(i)) {
                collect(v, tail, format!("{at}/{index}"), found);
            }
        }
        _ => {}
    }
}

/// Seals personal data of prepared records under a gateway's current key.
#[derive(Debug, Clone)]
pub struct Sealer {
    keyring: std::sync::Arc<Keyring>,
}

impl Sealer {
    /// A sealer with `keyring`.
    pub fn new(keyring: std::sync::Arc<Keyring>) -> Sealer {
        Sealer { keyring }
    }

    /// The keys.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Seal `record` in place: `canonical` is its clear canonical record (for a rejected one,
    /// as far as it was built), `patterns` the mapping's `personal = true` pointers. The
    /// payload's chain digest (`chain`) is made from the clear payload first.
    pub fn seal(
        &self,
        record: &mut IncomingRecord,
        canonical: &Value,
        patterns: &[String],
        chain: Option<crate::crypto::chain::HashAlg>,
    ) {
        let person = target_is_person(canonical);
        let values = personal_values(canonical, patterns, person);
        match &mut record.verdict {
            Verdict::Accept(accepted) => {
                if !values.is_empty() {
                    accepted.record_json =
                        self.sealed_json(std::mem::take(&mut accepted.record_json), canonical, &values);
                    accepted.record_lz4 = None;
                }
                if person {
                    if let Some(id) = accepted.target_id.take() {
                        accepted.target_id = Some(self.keyring.seal_text(&id));
                    }
                }
                self.scrub(&mut accepted.warnings, &values, patterns, person);
            }
            Verdict::Quarantine(violations) => self.scrub(violations, &values, patterns, person),
        }
        if person {
            if let Some(id) = record.labels.target_id.take() {
                record.labels.target_id = Some(self.keyring.seal_text(&id));
            }
        }
        if let (Some(alg), None) = (chain, record.payload_digest) {
            record.payload_digest = Some((alg, alg.digest(&record.payload)));
        }
        record.payload = self.keyring.seal_bytes(&record.payload);
        record.payload_lz4 = None;
    }

    /// The record's JSON text with each personal value sealed: each string value replaced in the
    /// text (no second serialisation of the whole record), else the record serialised again.
    fn sealed_json(&self, json: String, canonical: &Value, values: &[(String, String)]) -> String {
        let mut text = json;
        let in_place = !text.is_empty()
            && values.iter().all(|(pointer, plain)| {
                if !canonical.pointer(pointer).is_some_and(Value::is_string) {
                    return false;
                }
                let quoted = Value::String(plain.clone()).to_string();
                if !text.contains(&quoted) {
                    return false;
                }
                text = text.replace(&quoted, &Value::String(self.keyring.seal_text(plain)).to_string());
                true
            });
        if in_place {
            return text;
        }
        let mut sealed = canonical.clone();
        for (pointer, plain) in values {
            if let Some(slot) = sealed.pointer_mut(pointer) {
                *slot = Value::String(self.keyring.seal_text(plain));
            }
        }
        sealed.to_string()
    }

    /// Violations about personal fields keep their value sealed; every message quoting a
    /// personal value quotes it masked.
    fn scrub(&self, violations: &mut [Violation], values: &[(String, String)], patterns: &[String], person: bool) {
        for v in violations {
            let personal_field = (person && v.pointer == TARGET_ID)
                || patterns.iter().any(|p| matches(p, &v.pointer))
                || values.iter().any(|(p, _)| *p == v.pointer);
            if let Some(value) = v.value.take() {
                let quoted = values.iter().any(|(_, text)| *text == value);
                if personal_field || quoted {
                    for text in [&mut v.message_zh, &mut v.message_en] {
                        if text.contains(value.as_str()) {
                            *text = text.replace(value.as_str(), &mask(&value));
                        }
                    }
                    v.value = Some(self.keyring.seal_text(&value));
                } else {
                    v.value = Some(value);
                }
            }
            for (_, text) in values.iter().filter(|(_, t)| t.chars().count() >= 4) {
                for message in [&mut v.message_zh, &mut v.message_en] {
                    if message.contains(text.as_str()) {
                        *message = message.replace(text.as_str(), &mask(text));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::personal::{Cipher, DataKey};
    use serde_json::json;

    fn sealer() -> Sealer {
        let key = DataKey::from_hex("k1", Cipher::Sm4Gcm, "00112233445566778899aabbccddeeff").expect("key");
        Sealer::new(std::sync::Arc::new(Keyring::new(vec![key], "k1").expect("ring")))
    }

    #[test]
    fn a_persons_identifier_and_marked_fields_are_found_but_a_credit_code_is_not() {
        let person = json!({"target": {"kind": "natural_person", "id_type": "resident_id", "id_number": "36010219900101123X"},
                            "witnesses": [{"phone": "13800001111"}, {"phone": "13900002222"}]});
        let found = personal_values(&person, &["/witnesses/*/phone".to_string()], target_is_person(&person));
        assert_eq!(
            found,
            vec![
                ("/target/id_number".to_string(), "36010219900101123X".to_string()),
                ("/witnesses/0/phone".to_string(), "13800001111".to_string()),
                ("/witnesses/1/phone".to_string(), "13900002222".to_string()),
            ]
        );
        let company = json!({"target": {"kind": "legal_person", "id_type": "uscc", "id_number": "91360100MA35XXXX0X"}});
        assert!(personal_values(&company, &[], target_is_person(&company)).is_empty());
        assert!(matches("/a/*/b", "/a/10/b") && !matches("/a/*/b", "/a/x/b") && !matches("/a/*/b", "/a/1"));
    }

    #[test]
    fn messages_quote_personal_values_masked_and_values_are_sealed() {
        let s = sealer();
        let record = json!({"target": {"id_type": "resident_id", "id_number": "36010219900101123X"}});
        let values = personal_values(&record, &[], true);
        let mut violations = vec![Violation::error(
            "/target/id_number",
            "id_number.check_char",
            Some("36010219900101123X".into()),
            "身份证号码“36010219900101123X”校验码错误",
            "ID number \"36010219900101123X\" has a wrong check character",
        )];
        s.scrub(&mut violations, &values, &[], true);
        let v = &violations[0];
        assert!(!v.message_zh.contains("36010219900101123X") && v.message_zh.contains("3601**********123X"));
        assert!(!v.message_en.contains("36010219900101123X"));
        let sealed = v.value.clone().expect("value kept");
        assert_eq!(s.keyring().open_text(&sealed), Ok(Some("36010219900101123X".into())));
    }
}
