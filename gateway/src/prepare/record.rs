//! One source record -> an [`IncomingRecord`]: map and validate it, hash the payload and the
//! canonical record, and derive the business key, numbering year and region.

use super::reader::{parse_item, ParsedRecord, ReadItem, Truncated, KEPT_PREFIX_BYTES};
use crate::config::{AgencyScope, LimitsConfig};
use crate::store::{AcceptedRecord, BusinessKey, IncomingRecord, Operation, PayloadFormat, RecordLabels, Verdict};
use chrono::{DateTime, Utc};
use normalizer::mapping::Mapping;
use normalizer::{Normalizer, Outcome, Violation};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The rules of records that stay unreadable when replayed (see [`Preparer::still_unreadable`]).
pub const STILL_UNREADABLE_RULES: [&str; 2] = [
    crate::prepare::reader::RULE_UNDECODABLE,
    crate::prepare::spreadsheet::RULE_CELL,
];

/// Everything needed to prepare one source's records.
#[derive(Debug, Clone)]
pub struct Preparer {
    /// Source id.
    pub source_id: String,
    /// The source's mapping.
    pub mapping: Arc<Mapping>,
    /// Schema and rule validation.
    pub normalizer: Arc<Normalizer>,
    /// Path in the source record of its key at the source.
    pub record_key_path: Option<String>,
    /// The handling agencies the source may write for (everyone when open).
    pub agencies: Arc<AgencyScope>,
    /// Largest record and most violations kept per record.
    pub limits: LimitsConfig,
    /// Limits of evidence attachments (证据附件): what a record declares is checked here.
    pub attachments: Arc<crate::config::attachments::AttachmentsConfig>,
    /// Seals personal data (`[personal_data]`); `None`: kept in clear.
    pub sealer: Option<super::personal::Sealer>,
}

/// SHA-256 as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Hash identifying a version's content, from the canonical record's text without its
/// `operation` member (an "update" identical to what is stored is unchanged), marked for
/// withdrawals.
fn hash_of_text(without_operation: &[u8], operation: Operation) -> String {
    let mut hasher = Sha256::new();
    if operation == Operation::Delete {
        hasher.update(b"withdrawn:");
    }
    hasher.update(without_operation);
    hex::encode(hasher.finalize())
}

/// The record's compact JSON text twice, from one serialisation: without its `operation` member
/// (what [`hash_of_text`] hashes; the bytes `serde_json::to_vec` gives for a copy without it) and
/// whole (what is stored; the bytes of `serde_json::to_string`).
fn canonical_texts(record: &Value) -> (Vec<u8>, String) {
    let Value::Object(map) = record else {
        let text = record.to_string();
        return (text.clone().into_bytes(), text);
    };
    let mut out = Vec::with_capacity(2048);
    out.push(b'{');
    let mut first = true;
    // Where the `operation` member sits in the serialisation order, and its value.
    let mut operation: Option<(usize, bool, &Value)> = None;
    for (key, value) in map {
        if key == "operation" {
            operation = Some((out.len(), first, value));
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        // Writing a string or a `Value` into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut out, key);
        out.push(b':');
        let _ = serde_json::to_writer(&mut out, value);
    }
    out.push(b'}');
    let whole = match operation {
        None => out.clone(),
        Some((at, was_first, value)) => {
            let mut member = Vec::with_capacity(32);
            member.extend_from_slice(b"\"operation\":");
            let _ = serde_json::to_writer(&mut member, value);
            let mut whole = Vec::with_capacity(out.len() + member.len() + 1);
            whole.extend_from_slice(&out[..at]);
            if was_first {
                whole.extend_from_slice(&member);
                if out.get(at) != Some(&b'}') {
                    whole.push(b',');
                }
            } else {
                whole.push(b',');
                whole.extend_from_slice(&member);
            }
            whole.extend_from_slice(&out[at..]);
            whole
        }
    };
    // Both are serde_json output, hence UTF-8.
    let whole = String::from_utf8(whole).unwrap_or_else(|_| record.to_string());
    (out, whole)
}

/// `text` with every control character (NUL, line breaks, escapes, ...) replaced by U+FFFD: a
/// record key or position may come from a message property, a file name or a header, text
/// columns cannot hold NUL, and a key must always be storable and printable (the record is
/// quarantined under it when nothing else is).
pub fn storable_key(text: String) -> String {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| if c.is_control() { '\u{fffd}' } else { c })
            .collect()
    } else {
        text
    }
}

/// `text` with every NUL character replaced by U+FFFD (what no text column nor JSON document of
/// the store can hold).
fn without_nul(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{fffd}")
    } else {
        text
    }
}

/// One violation per text of the canonical record that contains a NUL character (U+0000): no
/// database text column and no downstream system takes it, and the mapping cannot know where it
/// came from, so the record is quarantined for the clerk to correct at the source.
fn fields_with_nul(canonical: &Value) -> Vec<Violation> {
    fn walk(value: &Value, pointer: &mut String, out: &mut Vec<Violation>) {
        match value {
            Value::String(s) if s.contains('\0') => out.push(Violation::error(
                pointer.clone(),
                "text.nul_character",
                Some(s.replace('\0', "\\0")),
                "字段含有空字符（U+0000），请在源系统中删除后重新推送",
                "the field contains a NUL character (U+0000); remove it at the source and send the record again",
            )),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = pointer.len();
                    pointer.push_str(&format!("/{i}"));
                    walk(item, pointer, out);
                    pointer.truncate(len);
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&normalizer::violation::pointer_token(key));
                    walk(item, pointer, out);
                    pointer.truncate(len);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(canonical, &mut String::new(), &mut out);
    out
}

/// The first `max` violations, then one `violations.truncated` naming how many more there were
/// and their rules (an error when any of them was one, so the record's fate does not change).
fn capped(mut violations: Vec<Violation>, max: usize) -> Vec<Violation> {
    if violations.len() <= max {
        return violations;
    }
    let dropped = violations.split_off(max);
    let more = dropped.len();
    let mut rules: Vec<&str> = Vec::new();
    for v in &dropped {
        if !rules.contains(&v.rule.as_str()) && rules.len() < 10 {
            rules.push(&v.rule);
        }
    }
    let rules = rules.join(", ");
    let zh = format!(
        "另有 {more} 条问题未列出（每条记录最多列出 {max} 条，limits.max_violations_per_record），涉及规则：{rules}"
    );
    let en = format!("{more} more violations not listed (at most {max} per record, limits.max_violations_per_record); their rules: {rules}");
    let summary = if dropped.iter().any(Violation::is_error) {
        Violation::error("", "violations.truncated", Some(more.to_string()), zh, en)
    } else {
        Violation::warning("", "violations.truncated", Some(more.to_string()), zh, en)
    };
    violations.push(summary);
    violations
}

fn key_text(value: &Value, path: &str) -> Option<String> {
    let mut cur = value;
    for seg in path.split('.') {
        cur = cur.get(seg)?;
    }
    match cur {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Preparer {
    /// Prepare one item from a reader.
    pub fn prepare(&self, item: ReadItem, received_at: DateTime<Utc>) -> IncomingRecord {
        self.prepare_reusing(item, received_at, &mut Outcome::default())
    }

    /// [`Preparer::prepare`], normalising into `scratch` (see [`Normalizer::normalize_into`]).
    fn prepare_reusing(&self, item: ReadItem, received_at: DateTime<Utc>, scratch: &mut Outcome) -> IncomingRecord {
        let too_large = match &item {
            Ok(r) => r.payload.len() as u64 > self.limits.max_record_bytes,
            Err(u) => u.truncated.is_some() || u.payload.len() as u64 > self.limits.max_record_bytes,
        };
        if too_large {
            let (payload, position, truncated) = match item {
                Ok(r) => (r.payload, r.position, None),
                Err(u) => (u.payload, u.position, u.truncated),
            };
            return self.too_large(payload, position, truncated, received_at);
        }
        match parse_item(item) {
            Ok(record) => self.prepare_record_reusing(record, received_at, None, scratch),
            Err(unreadable) => {
                let position = storable_key(unreadable.position);
                let message = without_nul(unreadable.message);
                IncomingRecord {
                    source_id: self.source_id.clone(),
                    payload_hash: sha256_hex(&unreadable.payload),
                    payload: unreadable.payload,
                    payload_format: PayloadFormat::Json,
                    received_at,
                    mapping_id: self.mapping.id().to_string(),
                    mapping_version: self.mapping.version(),
                    verdict: Verdict::Quarantine(vec![Violation::error(
                        "",
                        unreadable.rule.unwrap_or("input.unreadable"),
                        None,
                        format!("记录无法解析（{position}）：{message}"),
                        format!("record cannot be parsed ({position}): {message}"),
                    )]),
                    record_key: position,
                    replay_of: None,
                    payload_lz4: None,
                    payload_digest: None,
                    labels: Default::default(),
                }
            }
        }
    }

    /// A record quarantined as unreadable in how its bytes were read (one of
    /// [`STILL_UNREADABLE_RULES`]), replayed: it stays what it was,
    /// with its violations as they were. What made it unreadable is in how its bytes were read
    /// (a byte not valid in the file's encoding, a spreadsheet cell Excel could not hold
    /// exactly), which no mapping change can mend: its kept payload may even be a readable
    /// object with U+FFFD or rounded digits in it, which must not become a case. Send it again.
    pub fn still_unreadable(
        &self,
        payload: Vec<u8>,
        position: String,
        violations: Vec<Violation>,
        received_at: DateTime<Utc>,
    ) -> IncomingRecord {
        IncomingRecord {
            source_id: self.source_id.clone(),
            payload_hash: sha256_hex(&payload),
            payload,
            payload_format: PayloadFormat::Json,
            received_at,
            mapping_id: self.mapping.id().to_string(),
            mapping_version: self.mapping.version(),
            verdict: Verdict::Quarantine(violations),
            record_key: storable_key(position),
            replay_of: None,
            payload_lz4: None,
            labels: Default::default(),
            payload_digest: None,
        }
    }

    /// A record over `max_record_bytes`: quarantined with `input.too_large`, keeping its first
    /// [`KEPT_PREFIX_BYTES`] as its payload and identified by the SHA-256 of all of it (so that a
    /// re-sent copy is recognised). `truncated` is set when the reader already cut it.
    pub fn too_large(
        &self,
        mut payload: Vec<u8>,
        position: String,
        truncated: Option<Truncated>,
        received_at: DateTime<Utc>,
    ) -> IncomingRecord {
        let whole = truncated.unwrap_or_else(|| Truncated {
            bytes: payload.len() as u64,
            sha256: sha256_hex(&payload),
        });
        payload.truncate(KEPT_PREFIX_BYTES);
        let position = storable_key(position);
        let limit = self.limits.max_record_bytes;
        let bytes = whole.bytes;
        let sha = &whole.sha256;
        IncomingRecord {
            source_id: self.source_id.clone(),
            payload_hash: whole.sha256.clone(),
            payload,
            payload_format: PayloadFormat::Json,
            received_at,
            mapping_id: self.mapping.id().to_string(),
            mapping_version: self.mapping.version(),
            verdict: Verdict::Quarantine(vec![Violation::error(
                "",
                "input.too_large",
                Some(bytes.to_string()),
                format!(
                    "记录（{position}）有 {bytes} 字节，超过上限 limits.max_record_bytes = {limit}：未处理；隔离区只保留其前 {} KiB，整条记录的 SHA-256 为 {sha}。请在源系统中拆分或精简该记录",
                    KEPT_PREFIX_BYTES / 1024
                ),
                format!(
                    "record ({position}) of {bytes} bytes exceeds limits.max_record_bytes = {limit}: not processed; the quarantine keeps its first {} KiB, the SHA-256 of the whole record is {sha}. Split or shorten it at the source",
                    KEPT_PREFIX_BYTES / 1024
                ),
            )]),
            record_key: position,
            replay_of: None,
            payload_lz4: None,
            payload_digest: None,
            labels: Default::default(),
        }
    }

    /// Prepare a chunk of read items received now, compressing each for the store when it
    /// [keeps records compressed](crate::store::Store::keeps_compressed).
    /// The records of a chunk are normalised into one reused [`Outcome`]: the canonical records
    /// of one source mostly have the same keys, which are then built once per chunk.
    pub fn prepare_chunk(&self, chunk: Vec<ReadItem>, compress: bool) -> Vec<IncomingRecord> {
        let now = Utc::now();
        let mut scratch = Outcome::default();
        chunk
            .into_iter()
            .map(|item| {
                let mut record = self.prepare_reusing(item, now, &mut scratch);
                if compress {
                    record.compress_for_store();
                }
                record
            })
            .collect()
    }

    /// Prepare one parsed source record; `replay_of` names the quarantine entry being replayed.
    pub fn prepare_record(
        &self,
        record: ParsedRecord,
        received_at: DateTime<Utc>,
        replay_of: Option<i64>,
    ) -> IncomingRecord {
        self.prepare_record_reusing(record, received_at, replay_of, &mut Outcome::default())
    }

    /// [`Preparer::prepare_record`], normalising into `outcome` (see [`Normalizer::normalize_into`]).
    fn prepare_record_reusing(
        &self,
        record: ParsedRecord,
        received_at: DateTime<Utc>,
        replay_of: Option<i64>,
        outcome: &mut Outcome,
    ) -> IncomingRecord {
        let ParsedRecord {
            value,
            payload,
            position,
        } = record;
        self.normalizer.normalize_into(&self.mapping, &value, outcome);
        let accepted = outcome.is_accepted();
        let canonical = &outcome.record;
        // Only an accepted record becomes a case: the facts of a rejected one are not read.
        let facts = if accepted { outcome.case_facts() } else { None };
        let record_key = self
            .record_key_path
            .as_deref()
            .and_then(|p| key_text(&value, p))
            .or_else(|| outcome.key_text())
            .unwrap_or(position);
        let record_key = storable_key(record_key);
        let texts = accepted.then(|| canonical_texts(canonical));
        let nul_fields = match &texts {
            Some((_, json)) if json.contains("\\u0000") => fields_with_nul(canonical),
            _ => Vec::new(),
        };
        let verdict = match (texts, facts) {
            (Some(_), Some(_)) if !nul_fields.is_empty() => Verdict::Quarantine(nul_fields),
            (Some(_), Some(facts)) if !self.agencies.allows(facts.agency_credit_code.as_str(), &facts.region) => {
                let name = canonical.pointer("/agency/name").and_then(serde_json::Value::as_str);
                Verdict::Quarantine(vec![self.agency_not_allowed(&facts, name)])
            }
            (Some((without_operation, record_json)), Some(facts)) => {
                let operation = Operation::from_record(canonical);
                Verdict::Accept(AcceptedRecord {
                    record_hash: hash_of_text(&without_operation, operation),
                    record_json,
                    target_id: facts.target_id,
                    joint: crate::store::joint::JointFacts::of(canonical).map(Box::new),
                    publicity: crate::store::publicity::PenaltyFacts::of(canonical).map(Box::new),
                    source_updated_at: facts.source_updated_at,
                    key: BusinessKey {
                        agency_credit_code: facts.agency_credit_code,
                        case_type: facts.case_type,
                        case_number: facts.case_number,
                    },
                    year: facts.numbering_year,
                    region: facts.region,
                    operation,
                    warnings: std::mem::take(&mut outcome.violations),
                    record_lz4: None,
                    completion: false,
                })
            }
            (Some(_), None) => Verdict::Quarantine(vec![Violation::error(
                "",
                "pipeline.no_business_key",
                None,
                "记录缺少业务主键（执法部门统一社会信用代码、案件类型、部门案件编号）",
                "record lacks its business key (agency credit code, case type, case number)",
            )]),
            (None, _) => Verdict::Quarantine(std::mem::take(&mut outcome.violations)),
        };
        let verdict = match verdict {
            Verdict::Accept(a) if canonical.get("attachments").is_some() => self.check_attachments(canonical, a),
            other => other,
        };
        let max = self.limits.max_violations_per_record;
        let verdict = match verdict {
            Verdict::Quarantine(v) => Verdict::Quarantine(capped(v, max)),
            Verdict::Accept(mut a) => {
                a.warnings = capped(std::mem::take(&mut a.warnings), max);
                Verdict::Accept(a)
            }
        };
        let labels = match &verdict {
            Verdict::Quarantine(_) => RecordLabels::of(&outcome.record),
            Verdict::Accept(_) => RecordLabels::default(),
        };
        let mut incoming = IncomingRecord {
            source_id: self.source_id.clone(),
            record_key,
            payload_hash: sha256_hex(&payload),
            payload,
            payload_format: PayloadFormat::Json,
            received_at,
            mapping_id: self.mapping.id().to_string(),
            mapping_version: self.mapping.version(),
            verdict,
            replay_of,
            payload_lz4: None,
            payload_digest: None,
            labels,
        };
        self.seal(&mut incoming, &outcome.record);
        incoming
    }

    /// Seal the record's personal data when `[personal_data]` is configured (`canonical`: its
    /// clear canonical record).
    fn seal(&self, incoming: &mut IncomingRecord, canonical: &serde_json::Value) {
        if let Some(sealer) = &self.sealer {
            sealer.seal(
                incoming,
                canonical,
                self.mapping.personal_fields(),
                crate::crypto::chain::prepared_digest(),
            );
        }
    }

    /// A department's completion of a case's fields awaiting supplement as a record to commit:
    /// `outcome` is the completed canonical record with its violations (from
    /// [`normalizer::Normalizer::complete_supplement`]), `payload` what the department sent (kept
    /// in the raw archive), `mapping_version` the version of this source's mapping that wrote
    /// the case's current version. The version it becomes carries the current version's source
    /// time. `Err` with the errors when the completed record cannot be accepted.
    pub fn prepare_completion(
        &self,
        outcome: &normalizer::Outcome,
        payload: Vec<u8>,
        mapping_version: i64,
        received_at: DateTime<Utc>,
    ) -> Result<IncomingRecord, Vec<Violation>> {
        if !outcome.is_accepted() {
            return Err(outcome.violations.iter().filter(|v| v.is_error()).cloned().collect());
        }
        let facts = outcome.case_facts().ok_or_else(|| {
            vec![Violation::error(
                "",
                "pipeline.no_business_key",
                None,
                "记录缺少业务主键（执法部门统一社会信用代码、案件类型、部门案件编号）",
                "record lacks its business key (agency credit code, case type, case number)",
            )]
        })?;
        let (without_operation, record_json) = canonical_texts(&outcome.record);
        let operation = Operation::from_record(&outcome.record);
        let record_key = storable_key(outcome.key_text().unwrap_or_default());
        let mut incoming = IncomingRecord {
            source_id: self.source_id.clone(),
            record_key,
            payload_hash: sha256_hex(&payload),
            payload,
            payload_format: PayloadFormat::Json,
            received_at,
            mapping_id: self.mapping.id().to_string(),
            mapping_version,
            verdict: Verdict::Accept(AcceptedRecord {
                record_hash: hash_of_text(&without_operation, operation),
                record_json,
                target_id: facts.target_id,
                source_updated_at: facts.source_updated_at,
                key: BusinessKey {
                    agency_credit_code: facts.agency_credit_code,
                    case_type: facts.case_type,
                    case_number: facts.case_number,
                },
                year: facts.numbering_year,
                region: facts.region,
                operation,
                warnings: capped(outcome.violations.clone(), self.limits.max_violations_per_record),
                record_lz4: None,
                completion: true,
                joint: crate::store::joint::JointFacts::of(&outcome.record).map(Box::new),
                publicity: crate::store::publicity::PenaltyFacts::of(&outcome.record).map(Box::new),
            }),
            replay_of: None,
            payload_lz4: None,
            payload_digest: None,
            labels: RecordLabels::default(),
        };
        self.seal(&mut incoming, &outcome.record);
        Ok(incoming)
    }

    /// Why a record naming an agency outside the source's scope is quarantined.
    /// The record's declared attachments against the limits: an error quarantines the record
    /// (with its warnings), warnings are kept with the version.
    fn check_attachments(&self, canonical: &serde_json::Value, mut accepted: AcceptedRecord) -> Verdict {
        let found = crate::attachments::check(canonical, &self.attachments);
        if found.iter().any(|v| v.severity == normalizer::Severity::Error) {
            let mut all = found;
            all.append(&mut accepted.warnings);
            return Verdict::Quarantine(all);
        }
        accepted.warnings.extend(found);
        Verdict::Accept(accepted)
    }

    fn agency_not_allowed(&self, facts: &normalizer::CaseFacts, name: Option<&str>) -> Violation {
        let code = facts.agency_credit_code.as_str();
        let agency = match name {
            Some(name) => format!("{name}（{code}）"),
            None => code.to_string(),
        };
        let agency_en = match name {
            Some(name) => format!("{name} ({code})"),
            None => code.to_string(),
        };
        let region = &facts.region;
        let allowed = self.agencies.describe();
        Violation::error(
            "/agency/credit_code",
            "source.agency_not_allowed",
            Some(code.to_string()),
            format!(
                "来源 {} 无权报送执法部门 {agency}（行政区划 {region}）的案件；该来源只能报送：{allowed}。请由该部门自己的系统报送，或请管理员在该来源的 agencies / agency_regions 中加入该部门",
                self.source_id
            ),
            format!(
                "source {} may not write cases of agency {agency_en} (region {region}); it may write for: {allowed}. Send the case from that agency's own system, or have an administrator add the agency to the source's agencies / agency_regions",
                self.source_id
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prepare::reader::SourceRecord;

    fn nanchang_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings/nanchang-amr-penalty")
    }

    /// A preparer of source `source_id` with the Nanchang mapping, writing for any agency.
    fn nanchang_preparer(source_id: &str) -> Preparer {
        Preparer {
            source_id: source_id.into(),
            mapping: Arc::new(Mapping::load(&nanchang_dir().join("mapping.toml")).unwrap()),
            normalizer: Arc::new(Normalizer::default()),
            record_key_path: None,
            agencies: Arc::default(),
            limits: LimitsConfig::default(),
            attachments: Arc::default(),
            sealer: None,
        }
    }

    #[test]
    fn a_record_over_the_size_limit_is_quarantined_with_its_beginning_and_whole_hash() {
        let mut preparer = nanchang_preparer("nanchang");
        preparer.limits.max_record_bytes = 100_000;
        let big = format!("{{\"ajbh\":\"{}\"}}", "x".repeat(200_000));
        let item = Ok(SourceRecord::unparsed_json(big.clone().into_bytes(), "push:1".into()));
        let record = preparer.prepare(item, Utc::now());
        assert_eq!(record.payload.len(), KEPT_PREFIX_BYTES);
        assert_eq!(record.payload_hash, sha256_hex(big.as_bytes()));
        let Verdict::Quarantine(v) = &record.verdict else {
            panic!("quarantined")
        };
        assert_eq!(v[0].rule, "input.too_large");
        assert_eq!(v[0].value.as_deref(), Some(big.len().to_string().as_str()));
        assert!(
            v[0].message_en.contains("limits.max_record_bytes = 100000"),
            "{}",
            v[0].message_en
        );
        assert!(v[0].message_zh.contains(&record.payload_hash));
    }

    #[test]
    fn violations_beyond_the_limit_are_summed_up_in_one_that_keeps_the_verdict() {
        let many: Vec<Violation> = (0..10_000)
            .map(|i| Violation::error(format!("/x/{i}"), "mapping.unmapped_code", None, "码", "code"))
            .collect();
        let kept = capped(many, 100);
        assert_eq!(kept.len(), 101);
        let last = &kept[100];
        assert_eq!(last.rule, "violations.truncated");
        assert!(last.is_error());
        assert_eq!(last.value.as_deref(), Some("9900"));
        assert!(last.message_en.contains("mapping.unmapped_code"));
        let warnings: Vec<Violation> = (0..3)
            .map(|i| Violation::warning(format!("/w/{i}"), "w", None, "w", "w"))
            .collect();
        let kept = capped(warnings, 2);
        assert!(!kept[2].is_error(), "dropped warnings stay a warning");
        assert_eq!(capped(vec![], 2).len(), 0);
    }

    #[test]
    fn a_chunk_prepares_each_record_as_it_would_be_prepared_alone() {
        let preparer = nanchang_preparer("nanchang");
        let text = std::fs::read_to_string(nanchang_dir().join("samples/records.jsonl")).unwrap();
        let items = || -> Vec<ReadItem> {
            text.lines()
                .chain(["{not json", "[]"])
                .enumerate()
                .map(|(i, line)| {
                    Ok(SourceRecord::unparsed_json(
                        line.as_bytes().to_vec(),
                        format!("line {i}"),
                    ))
                })
                .collect()
        };
        let chunk = preparer.prepare_chunk(items(), false);
        assert_eq!(chunk.len(), text.lines().count() + 2);
        let accepted = chunk.iter().filter(|r| matches!(r.verdict, Verdict::Accept(_))).count();
        assert!(accepted > 5 && accepted < chunk.len() - 5, "{accepted} accepted");
        for (in_chunk, item) in chunk.iter().zip(items()) {
            let alone = preparer.prepare(item, in_chunk.received_at);
            assert_eq!(format!("{alone:?}"), format!("{in_chunk:?}"));
        }
    }

    #[test]
    fn keys_and_positions_from_outside_are_stored_without_control_characters() {
        let preparer = nanchang_preparer("mq");
        // An unreadable message whose position (its message id) and error hold NUL and escapes.
        let unreadable = crate::prepare::reader::UnreadableRecord {
            payload: b"{\"a\":\0}".to_vec(),
            position: "message id-\0-\u{1b}[2J".into(),
            message: "bad byte \0 here".into(),
            truncated: None,
            rule: None,
        };
        let record = preparer.prepare(Err(unreadable), Utc::now());
        assert_eq!(record.record_key, "message id-\u{fffd}-\u{fffd}[2J");
        let Verdict::Quarantine(violations) = &record.verdict else {
            panic!("an unreadable record is quarantined")
        };
        let text = serde_json::to_string(violations).unwrap();
        assert!(
            !text.contains("\\u0000"),
            "no NUL reaches the stored violations: {text}"
        );
        assert_eq!(storable_key("plain-key 1".into()), "plain-key 1");
    }

    fn record_hash(record: &Value, operation: Operation) -> String {
        hash_of_text(&canonical_texts(record).0, operation)
    }

    #[test]
    fn both_texts_equal_serde_json_wherever_the_operation_member_sorts() {
        for record in [
            serde_json::json!({"operation": "delete"}),
            serde_json::json!({"operation": "update", "zz": 1}),
            serde_json::json!({"aa": [1, {"b": "文"}], "operation": "insert"}),
            serde_json::json!({"aa": 1, "operation": "update", "zz": {"x": null}}),
            serde_json::json!({"aa": 1, "zz": "no operation"}),
            serde_json::json!({}),
            serde_json::json!("not an object"),
        ] {
            let (without, whole) = canonical_texts(&record);
            assert_eq!(whole, record.to_string(), "{record}");
            let mut copy = record.clone();
            if let Some(map) = copy.as_object_mut() {
                map.remove("operation");
            }
            assert_eq!(without, serde_json::to_vec(&copy).unwrap_or_default(), "{record}");
        }
    }

    #[test]
    fn hash_text_without_operation_equals_serialising_a_copy_without_it() {
        let record = serde_json::json!({
            "agency": {"name": "南昌市市场监督管理局", "region_code": "360100"},
            "case_number": "洪市监罚〔2024〕1号\n\"引号\"",
            "fine": 1234.5,
            "officers": [{"name": "张三"}, {"name": "李四"}],
            "operation": "update",
            "zz_last": null
        });
        let mut copy = record.as_object().cloned().unwrap_or_default();
        copy.remove("operation");
        assert_eq!(
            canonical_texts(&record).0,
            serde_json::to_vec(&copy).unwrap_or_default()
        );
        let without = Value::Object(copy);
        assert_eq!(
            canonical_texts(&without).0,
            serde_json::to_vec(&without).unwrap_or_default()
        );
        assert_eq!(
            record_hash(&record, Operation::Update),
            record_hash(&without, Operation::Insert)
        );
        assert_ne!(
            record_hash(&record, Operation::Update),
            record_hash(&record, Operation::Delete)
        );
    }
}
