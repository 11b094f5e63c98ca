//! The pure part of committing a batch: given what the store already holds for the batch's
//! business keys and code counters, decide what every record becomes. Backends read the inputs
//! under their locks, call [`plan_batch`], and write the result.

use super::types::{BusinessKey, IncomingRecord, Operation, RecordResult, Verdict};
use chrono::{DateTime, Utc};
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use normalizer::standards::case_code::CaseCode;
use normalizer::{CaseType, Violation};

/// The largest sequence a counter can give (7 digits).
pub const MAX_SEQUENCE: u32 = 9_999_999;

/// What the store holds for one existing case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingCase {
    /// Case id.
    pub case_id: i64,
    /// Unified case code.
    pub code: String,
    /// Current version number.
    pub version: i32,
    /// Hash of the current version's record.
    pub record_hash: String,
    /// Whether the current version is a withdrawal.
    pub withdrawn: bool,
    /// The source that wrote the current version.
    pub source_id: String,
    /// When the current version's record arrived (its raw record's first receipt).
    pub head_received_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The current version's time at its source (`source_updated_at`), if it carried one.
    pub head_source_time: Option<chrono::DateTime<chrono::Utc>>,
}

/// A code counter: sequences are numbered per (case type, year, region).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CounterKey {
    /// Case type.
    pub case_type: CaseType,
    /// Year.
    pub year: i32,
    /// Region code of the handling agency.
    pub region: String,
}

/// Which case a new version belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaseRef {
    /// A case already in the store.
    Existing(i64),
    /// A case created by this batch (index into [`Plan::new_cases`]).
    New(usize),
}

/// A case created by this batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCase {
    /// Index of the record that created it.
    pub record_index: usize,
    /// Business key.
    pub key: BusinessKey,
    /// Numbering year.
    pub year: i32,
    /// Numbering region.
    pub region: String,
    /// Allocated sequence.
    pub sequence: u32,
    /// The unified case code.
    pub code: String,
}

/// A version written by this batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVersion {
    /// Index of the record it comes from.
    pub record_index: usize,
    /// Its case.
    pub case: CaseRef,
    /// Version number.
    pub version: i32,
    /// True for a withdrawal (delete).
    pub withdrawn: bool,
    /// The case's unified code.
    pub code: String,
    /// True when the version before it has the same source time and other content: it wins
    /// because it arrived later (a warning on the version says so).
    pub same_source_time: bool,
}

/// A record older than its case's current version by the source's own time: archived and kept
/// in the lineage as stale, never the head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleVersion {
    /// Index of the record it comes from.
    pub record_index: usize,
    /// Its case.
    pub case: CaseRef,
    /// The case's current version, which is newer.
    pub head_version: i32,
    /// The case's unified code.
    pub code: String,
}

/// What becomes of one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Written as a version (new case, update or withdrawal); index into [`Plan::versions`].
    Version(usize),
    /// Nothing to write besides the raw archive: same content as the current version.
    Unchanged {
        /// The case's code.
        code: String,
    },
    /// Quarantined with these violations.
    Quarantine(Vec<Violation>),
    /// Older than the case's current version by source time; index into [`Plan::stale`].
    Stale(usize),
}

/// The whole batch's plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Cases to create, with their codes.
    pub new_cases: Vec<NewCase>,
    /// Versions to write, in record order.
    pub versions: Vec<NewVersion>,
    /// Stale records to keep in the lineage, in record order.
    pub stale: Vec<StaleVersion>,
    /// Counters to store: the last sequence used after this batch.
    pub counters: Vec<(CounterKey, u32)>,
    /// One decision per record, in record order.
    pub decisions: Vec<Decision>,
}

/// Why a batch cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The counter has no sequence left (9,999,999 cases of one type, year and region).
    #[error("案件编码序号已用尽 / case-code sequence exhausted for {0:?}")]
    Exhausted(CounterKey),
    /// The year or region cannot form a unified case code.
    #[error("无法生成案件编码 / cannot form a case code for {key:?}: {reason}")]
    InvalidCode {
        /// The counter asked for.
        key: CounterKey,
        /// Why (from the case-code format).
        reason: String,
    },
}

/// A version written by another source than the case's version before it: written to the audit
/// log in the same transaction (the agency check of the new source passed while preparing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceChange {
    /// The case's unified code.
    pub code: String,
    /// The new version.
    pub version: i32,
    /// The source of the version before.
    pub from: String,
    /// The source of the new version.
    pub to: String,
    /// The new version's record key at its source.
    pub record_key: String,
}

impl SourceChange {
    /// The audit entry of the change, by the gateway itself.
    pub fn audit_entry(&self) -> super::types::AuditEntry {
        super::types::AuditEntry {
            actor: super::mappings::SYSTEM_ACTOR.to_string(),
            action: "case.source_changed".into(),
            subject: format!("case:{}", self.code),
            detail: serde_json::json!({
                "version": self.version,
                "from_source": self.from,
                "to_source": self.to,
                "record_key": self.record_key,
            }),
        }
    }
}

/// The versions of `plan` written by another source than the version before them (in the store
/// or earlier in the batch).
pub fn source_changes(
    plan: &Plan,
    records: &[IncomingRecord],
    existing: &HashMap<BusinessKey, ExistingCase>,
) -> Vec<SourceChange> {
    let mut current: HashMap<CaseRef, &str> = HashMap::new();
    for case in existing.values() {
        current.insert(CaseRef::Existing(case.case_id), case.source_id.as_str());
    }
    let mut changes = Vec::new();
    for v in &plan.versions {
        let Some(record) = records.get(v.record_index) else {
            continue;
        };
        let to = record.source_id.as_str();
        if let Some(from) = current.insert(v.case, to) {
            if from != to {
                changes.push(SourceChange {
                    code: v.code.clone(),
                    version: v.version,
                    from: from.to_string(),
                    to: to.to_string(),
                    record_key: record.record_key.clone(),
                });
            }
        }
    }
    changes
}

/// Open quarantine entries of one record at its source that an accepted later record of the
/// same source and record key supersedes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supersede<'a> {
    /// The source.
    pub source_id: &'a str,
    /// The record's key at the source.
    pub record_key: &'a str,
    /// The entries' note: which case version supersedes them.
    pub note: String,
}

/// The open entries a batch supersedes: one per (source, record key) that got a version, unless
/// a later record of the batch with the same source and key was quarantined (that one is newer).
/// The store marks open entries of these keys `superseded` after every other quarantine write of
/// the batch, so the entries the batch itself resolves are `replayed`, not superseded.
pub fn superseding<'a>(plan: &Plan, records: &'a [IncomingRecord]) -> Vec<Supersede<'a>> {
    let mut last: HashMap<(&'a str, &'a str), Option<&NewVersion>> = HashMap::new();
    for (record, decision) in records.iter().zip(&plan.decisions) {
        let key = (record.source_id.as_str(), record.record_key.as_str());
        match decision {
            Decision::Version(vi) => {
                last.insert(key, plan.versions.get(*vi));
            }
            Decision::Quarantine(_) if record.replay_of.is_none() => {
                if let Some(slot) = last.get_mut(&key) {
                    *slot = None;
                }
            }
            _ => {}
        }
    }
    let mut out: Vec<Supersede<'a>> = last
        .into_iter()
        .filter_map(|((source_id, record_key), v)| {
            let v = v?;
            Some(Supersede {
                source_id,
                record_key,
                note: format!(
                    "已被案件 {code} 第 {n} 版（同一来源、同一记录的较新数据）取代 / superseded by version {n} of case {code} (a later record of the same source and key)",
                    code = v.code,
                    n = v.version
                ),
            })
        })
        .collect();
    out.sort_by(|a, b| (a.source_id, a.record_key).cmp(&(b.source_id, b.record_key)));
    out
}

/// The note an entry gets when record `index` resolves it: the case version it became (or, for
/// a stale record, the newer version it lost to), so that a clerk sees where the record went.
pub fn resolved_note(plan: &Plan, index: usize) -> Option<String> {
    match plan.decisions.get(index)? {
        Decision::Version(vi) => {
            let v = plan.versions.get(*vi)?;
            Some(format!(
                "已成为案件 {code} 第 {n} 版 / became version {n} of case {code}",
                code = v.code,
                n = v.version
            ))
        }
        Decision::Stale(si) => {
            let s = plan.stale.get(*si)?;
            Some(format!(
                "较案件 {code} 第 {n} 版旧（来源时间），已作为过时记录列入沿革 / older than version {n} of case {code} by source time: kept in its lineage as stale",
                code = s.code,
                n = s.head_version
            ))
        }
        Decision::Unchanged { code } if !code.is_empty() => Some(format!(
            "与案件 {code} 的当前版本相同 / the same as the current version of case {code}"
        )),
        _ => None,
    }
}

/// The case version record `index` became (for a stale record, the newer version it lost to;
/// for a record the same as its case's current version, the case alone), for the entry it resolves.
pub fn resolution(plan: &Plan, index: usize) -> Option<super::types::Resolution> {
    use super::types::Resolution;
    match plan.decisions.get(index)? {
        Decision::Version(vi) => plan.versions.get(*vi).map(|v| Resolution {
            code: v.code.clone(),
            version: Some(v.version),
        }),
        Decision::Stale(si) => plan.stale.get(*si).map(|s| Resolution {
            code: s.code.clone(),
            version: Some(s.head_version),
        }),
        Decision::Unchanged { code } if !code.is_empty() => Some(Resolution {
            code: code.clone(),
            version: None,
        }),
        _ => None,
    }
}

/// Why a replayed entry older than the case's current version stays in the quarantine.
fn superseded(case: &ExistingCase, record: &IncomingRecord) -> Violation {
    let head = case
        .head_received_at
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    let arrived = record.received_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Violation::error(
        "",
        "replay.superseded",
        Some(case.code.clone()),
        format!(
            "案件 {} 已有更新的第 {} 版（{head} 收到），本记录于 {arrived} 收到，较旧：重放会以旧内容覆盖新版本，因此不予提交；如确需更正，请由来源系统重新报送最新内容",
            case.code, case.version
        ),
        format!(
            "case {} already has a newer version {} (received {head}); this record was received {arrived} and is older: replaying it would put an old state over the newer one, so it is not committed. To correct the case, have the source send its current state again",
            case.code, case.version
        ),
    )
}

/// How a record's source time compares with its case's current version's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceOrder {
    /// One of them has no source time: arrival order decides.
    Unknown,
    /// The record is older: it is stale.
    Older,
    /// Same time (different content): the later arrival wins.
    Same,
    /// The record is newer.
    Newer,
}

impl SourceOrder {
    fn of(record: Option<DateTime<Utc>>, head: Option<DateTime<Utc>>) -> SourceOrder {
        match (record, head) {
            (Some(r), Some(h)) if r < h => SourceOrder::Older,
            (Some(r), Some(h)) if r == h => SourceOrder::Same,
            (Some(_), Some(_)) => SourceOrder::Newer,
            _ => SourceOrder::Unknown,
        }
    }
}

/// The warning kept with a version that replaced one of the same source time and other
/// content (the later arrival wins).
pub fn same_source_time_warning(code: &str, version: i32) -> Violation {
    Violation::warning(
        "/source_updated_at",
        "version.same_source_time",
        None,
        format!(
            "案件 {code} 第 {} 版与本版的来源系统更新时间相同而内容不同：按到达顺序，以后到的本版为准",
            version - 1
        ),
        format!(
            "version {} of case {code} has the same source time and other content: this version arrived later and wins",
            version - 1
        ),
    )
}

/// The counter a record's new case would be numbered from.
pub fn counter_key(key: &BusinessKey, year: i32, region: &str) -> CounterKey {
    CounterKey {
        case_type: key.case_type,
        year,
        region: region.to_string(),
    }
}

/// Decide what every record becomes. `counters` holds the last sequence used per counter
/// (absent = none used yet). `delivered` holds the (source id, payload hash) pairs already in
/// the raw archive and NOT waiting in the open quarantine: such a payload is a duplicate
/// delivery (a redelivered message, an overlapping pull) and changes nothing, so a stale
/// re-sent version can never overwrite a newer one. Replays are always processed.
pub fn plan_batch(
    records: &[IncomingRecord],
    existing: &HashMap<BusinessKey, ExistingCase>,
    counters: &HashMap<CounterKey, u32>,
    delivered: &HashSet<(String, String)>,
) -> Result<Plan, PlanError> {
    struct State {
        case: CaseRef,
        code: String,
        version: i32,
        hash: String,
        withdrawn: bool,
        source_time: Option<DateTime<Utc>>,
    }
    let mut state: HashMap<&BusinessKey, State> = HashMap::new();
    let mut last_seq: HashMap<CounterKey, u32> = HashMap::new();
    let mut plan = Plan::default();
    let mut seen_in_batch: HashSet<(&str, &str)> = HashSet::new();

    for (index, record) in records.iter().enumerate() {
        let payload = (record.source_id.as_str(), record.payload_hash.as_str());
        let first_in_batch = seen_in_batch.insert(payload);
        let duplicate = record.replay_of.is_none()
            && (!first_in_batch || delivered.contains(&(record.source_id.clone(), record.payload_hash.clone())));
        if duplicate {
            let code = match &record.verdict {
                Verdict::Accept(a) => state
                    .get(&a.key)
                    .map(|s| s.code.clone())
                    .or_else(|| existing.get(&a.key).map(|e| e.code.clone()))
                    .unwrap_or_default(),
                Verdict::Quarantine(_) => String::new(),
            };
            plan.decisions.push(Decision::Unchanged { code });
            continue;
        }
        let accepted = match &record.verdict {
            Verdict::Quarantine(violations) => {
                plan.decisions.push(Decision::Quarantine(violations.clone()));
                continue;
            }
            Verdict::Accept(accepted) => accepted,
        };
        let current = match state.get(&accepted.key) {
            Some(s) => Some((
                s.case,
                s.code.clone(),
                s.version,
                s.hash.clone(),
                s.withdrawn,
                s.source_time,
            )),
            None => existing.get(&accepted.key).map(|e| {
                (
                    CaseRef::Existing(e.case_id),
                    e.code.clone(),
                    e.version,
                    e.record_hash.clone(),
                    e.withdrawn,
                    e.head_source_time,
                )
            }),
        };
        let is_delete = accepted.operation == Operation::Delete;
        let order = current
            .as_ref()
            .map(|c| SourceOrder::of(accepted.source_updated_at, c.5))
            .unwrap_or(SourceOrder::Unknown);
        if let (Some((case, code, version, hash, withdrawn, _)), SourceOrder::Older) = (&current, order) {
            if *hash != accepted.record_hash && !(is_delete && *withdrawn) {
                plan.stale.push(StaleVersion {
                    record_index: index,
                    case: *case,
                    head_version: *version,
                    code: code.clone(),
                });
                plan.decisions.push(Decision::Stale(plan.stale.len() - 1));
                continue;
            }
        }
        // Without source times: a replayed quarantine entry that arrived before the case's
        // current version is older than it, and committing it would put an old state over a
        // newer one.
        if record.replay_of.is_some() && order == SourceOrder::Unknown && !state.contains_key(&accepted.key) {
            if let Some(e) = existing.get(&accepted.key) {
                if e.head_received_at.is_some_and(|head| head > record.received_at) {
                    plan.decisions.push(Decision::Quarantine(vec![superseded(e, record)]));
                    continue;
                }
            }
        }
        let (case, code, version) = match current {
            Some((_, code, _, hash, withdrawn, _)) if hash == accepted.record_hash || (is_delete && withdrawn) => {
                plan.decisions.push(Decision::Unchanged { code });
                continue;
            }
            Some((case, code, version, _, _, _)) => (case, code, version + 1),
            None if is_delete => {
                plan.decisions.push(Decision::Quarantine(vec![Violation::error(
                    "/operation",
                    "pipeline.delete_unknown_case",
                    Some(accepted.key.to_string()),
                    format!("删除(撤回)的案件在网关中不存在：{}", accepted.key),
                    format!("delete of a case the gateway has never received: {}", accepted.key),
                )]));
                continue;
            }
            None => {
                let counter = counter_key(&accepted.key, accepted.year, &accepted.region);
                let used = last_seq
                    .get(&counter)
                    .copied()
                    .or_else(|| counters.get(&counter).copied())
                    .unwrap_or(0);
                let sequence = used + 1;
                if sequence > MAX_SEQUENCE {
                    return Err(PlanError::Exhausted(counter));
                }
                let code = CaseCode::new(
                    accepted.key.case_type,
                    u16::try_from(accepted.year).unwrap_or(0),
                    &accepted.region,
                    sequence,
                )
                .map_err(|e| PlanError::InvalidCode {
                    key: counter.clone(),
                    reason: format!("{} / {}", e.message_zh, e.message_en),
                })?
                .to_string();
                last_seq.insert(counter, sequence);
                plan.new_cases.push(NewCase {
                    record_index: index,
                    key: accepted.key.clone(),
                    year: accepted.year,
                    region: accepted.region.clone(),
                    sequence,
                    code: code.clone(),
                });
                (CaseRef::New(plan.new_cases.len() - 1), code, 1)
            }
        };
        plan.versions.push(NewVersion {
            record_index: index,
            case,
            version,
            withdrawn: is_delete,
            code: code.clone(),
            same_source_time: order == SourceOrder::Same && !accepted.completion,
        });
        plan.decisions.push(Decision::Version(plan.versions.len() - 1));
        state.insert(
            &accepted.key,
            State {
                case,
                code,
                version,
                hash: accepted.record_hash.clone(),
                withdrawn: is_delete,
                source_time: accepted.source_updated_at,
            },
        );
    }
    let mut counters_out: Vec<(CounterKey, u32)> = last_seq.into_iter().collect();
    counters_out.sort();
    plan.counters = counters_out;
    Ok(plan)
}

impl Plan {
    /// The result to report for a stale record.
    pub fn stale_result(&self, stale_index: usize) -> RecordResult {
        let s = &self.stale[stale_index];
        RecordResult::Stale {
            code: s.code.clone(),
            version: s.head_version,
        }
    }

    /// The result to report for a record whose decision is a version.
    pub fn version_result(&self, version_index: usize) -> RecordResult {
        let v = &self.versions[version_index];
        let code = v.code.clone();
        match (v.case, v.withdrawn) {
            (_, true) => RecordResult::Withdrawn {
                code,
                version: v.version,
            },
            (CaseRef::New(_), false) if v.version == 1 => RecordResult::Accepted { code },
            (_, false) => RecordResult::Updated {
                code,
                version: v.version,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::types::{AcceptedRecord, PayloadFormat};
    use chrono::Utc;

    fn key(n: &str) -> BusinessKey {
        BusinessKey {
            agency_credit_code: normalizer::standards::CreditCode::parse("11360100014523152U").expect("valid code"),
            case_type: CaseType::Penalty,
            case_number: normalizer::CaseNumber::parse(n).expect("case number"),
        }
    }

    fn record(n: &str, hash: &str, operation: Operation) -> IncomingRecord {
        IncomingRecord {
            source_id: "s".into(),
            record_key: n.into(),
            payload: hash.as_bytes().to_vec(),
            payload_format: PayloadFormat::Json,
            payload_hash: format!("p-{n}-{hash}"),
            received_at: Utc::now(),
            mapping_id: "m".into(),
            mapping_version: 1,
            verdict: Verdict::Accept(AcceptedRecord {
                key: key(n),
                year: 2024,
                region: "360100".into(),
                operation,
                record_json: "{}".into(),
                record_lz4: None,
                joint: None,
                publicity: None,
                target_id: None,
                record_hash: hash.into(),
                warnings: Vec::new(),
                source_updated_at: None,
                completion: false,
            }),
            replay_of: None,
            payload_lz4: None,
            payload_digest: None,
            labels: Default::default(),
        }
    }

    fn plan(records: &[IncomingRecord], existing: &[(&str, ExistingCase)], last_seq: u32) -> Plan {
        let existing = existing.iter().map(|(n, e)| (key(n), e.clone())).collect();
        let counters = [(counter_key(&key("x"), 2024, "360100"), last_seq)]
            .into_iter()
            .collect();
        plan_batch(records, &existing, &counters, &HashSet::new()).expect("plan")
    }

    #[test]
    fn new_cases_take_the_next_sequences_of_their_counter() {
        let p = plan(
            &[
                record("A", "h1", Operation::Insert),
                record("B", "h2", Operation::Insert),
            ],
            &[],
            41,
        );
        let seqs: Vec<u32> = p.new_cases.iter().map(|c| c.sequence).collect();
        assert_eq!(seqs, [42, 43]);
        assert_eq!(p.counters, vec![(counter_key(&key("A"), 2024, "360100"), 43)]);
        assert!(p.new_cases[0].code.starts_with("CF20243601000000042"));
    }

    #[test]
    fn same_key_twice_in_a_batch_is_one_case_with_two_versions() {
        let p = plan(
            &[
                record("A", "h1", Operation::Insert),
                record("A", "h2", Operation::Update),
            ],
            &[],
            0,
        );
        assert_eq!(p.new_cases.len(), 1);
        assert_eq!(p.versions.iter().map(|v| v.version).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(
            p.version_result(1),
            RecordResult::Updated {
                code: p.new_cases[0].code.clone(),
                version: 2
            }
        );
    }

    #[test]
    fn identical_content_is_unchanged_and_a_delete_of_a_withdrawn_case_too() {
        let existing = ExistingCase {
            case_id: 7,
            code: "C".into(),
            version: 3,
            record_hash: "h1".into(),
            withdrawn: false,
            source_id: "s".into(),
            head_received_at: None,
            head_source_time: None,
        };
        let p = plan(&[record("A", "h1", Operation::Update)], &[("A", existing.clone())], 5);
        assert_eq!(p.decisions, vec![Decision::Unchanged { code: "C".into() }]);
        let withdrawn = ExistingCase {
            withdrawn: true,
            record_hash: "w".into(),
            ..existing
        };
        let p = plan(&[record("A", "w2", Operation::Delete)], &[("A", withdrawn)], 5);
        assert_eq!(p.decisions, vec![Decision::Unchanged { code: "C".into() }]);
        assert!(p.counters.is_empty(), "no sequence consumed");
    }

    #[test]
    fn a_version_from_another_source_than_the_one_before_it_is_a_source_change() {
        let existing = ExistingCase {
            case_id: 7,
            code: "C".into(),
            version: 3,
            record_hash: "h1".into(),
            withdrawn: false,
            source_id: "dept-a".into(),
            head_received_at: None,
            head_source_time: None,
        };
        let mut from_b = record("A", "h2", Operation::Update);
        from_b.source_id = "dept-b".into();
        let mut again_b = record("A", "h3", Operation::Update);
        again_b.source_id = "dept-b".into();
        let mut new_b = record("N", "h4", Operation::Insert);
        new_b.source_id = "dept-b".into();
        let mut new_c = record("N", "h5", Operation::Update);
        new_c.source_id = "dept-c".into();
        let records = [from_b, again_b, new_b, new_c];
        let existing_map: HashMap<BusinessKey, ExistingCase> = [(key("A"), existing.clone())].into_iter().collect();
        let p = plan(&records, &[("A", existing)], 0);
        let changes = source_changes(&p, &records, &existing_map);
        let seen: Vec<(i32, &str, &str)> = changes
            .iter()
            .map(|c| (c.version, c.from.as_str(), c.to.as_str()))
            .collect();
        assert_eq!(seen, [(4, "dept-a", "dept-b"), (2, "dept-b", "dept-c")]);
        assert_eq!(changes[0].code, "C");
        let audit = changes[0].audit_entry();
        assert_eq!(
            (audit.action.as_str(), audit.subject.as_str()),
            ("case.source_changed", "case:C")
        );
        assert_eq!(audit.detail["from_source"], "dept-a");
    }

    #[test]
    fn a_replay_of_an_entry_older_than_the_current_version_cannot_regress_the_case() {
        let now = Utc::now();
        let existing = ExistingCase {
            case_id: 7,
            code: "C".into(),
            version: 2,
            record_hash: "v2".into(),
            withdrawn: false,
            source_id: "s".into(),
            head_received_at: Some(now),
            head_source_time: None,
        };
        let mut older = record("A", "v1-fixed", Operation::Update);
        older.replay_of = Some(11);
        older.received_at = now - chrono::Duration::minutes(5);
        let p = plan(std::slice::from_ref(&older), &[("A", existing.clone())], 5);
        assert!(
            matches!(&p.decisions[0], Decision::Quarantine(v) if v[0].rule == "replay.superseded"),
            "{:?}",
            p.decisions
        );
        assert!(p.versions.is_empty(), "no version over the newer one");
        // An entry that arrived after the current version is newer: its replay is committed.
        let mut newer = older.clone();
        newer.received_at = now + chrono::Duration::minutes(5);
        let p = plan(&[newer], &[("A", existing.clone())], 5);
        assert_eq!(p.versions.len(), 1);
        // Records that are not replays keep arrival order, as before.
        let mut plain = older;
        plain.replay_of = None;
        let p = plan(&[plain], &[("A", existing)], 5);
        assert_eq!(p.versions.len(), 1);
    }

    fn at(minute: i64) -> Option<chrono::DateTime<Utc>> {
        chrono::DateTime::from_timestamp(1_700_000_000 + minute * 60, 0)
    }

    fn timed(n: &str, hash: &str, source_time: Option<chrono::DateTime<Utc>>) -> IncomingRecord {
        let mut r = record(n, hash, Operation::Update);
        if let Verdict::Accept(a) = &mut r.verdict {
            a.source_updated_at = source_time;
        }
        r
    }

    #[test]
    fn a_record_older_than_the_head_by_source_time_is_stale_and_never_the_head() {
        let existing = ExistingCase {
            case_id: 7,
            code: "C".into(),
            version: 2,
            record_hash: "v2".into(),
            withdrawn: false,
            source_id: "s".into(),
            head_received_at: Some(Utc::now() - chrono::Duration::hours(1)),
            head_source_time: at(20),
        };
        let p = plan(&[timed("A", "v1", at(10))], &[("A", existing.clone())], 0);
        assert_eq!(p.decisions, vec![Decision::Stale(0)]);
        assert!(p.versions.is_empty());
        assert_eq!(
            p.stale_result(0),
            RecordResult::Stale {
                code: "C".into(),
                version: 2
            }
        );
        // The same holds for a replay, and for a withdrawal older than the head.
        let mut replay = timed("A", "v1-fixed", at(10));
        replay.replay_of = Some(3);
        let mut delete = timed("A", "gone", at(15));
        if let Verdict::Accept(a) = &mut delete.verdict {
            a.operation = Operation::Delete;
        }
        let p = plan(&[replay, delete], &[("A", existing.clone())], 0);
        assert_eq!(p.decisions, vec![Decision::Stale(0), Decision::Stale(1)]);
        // Newer by source time wins even when it arrived before the head (a replay).
        let mut newer = timed("A", "v3", at(30));
        newer.replay_of = Some(4);
        newer.received_at = Utc::now() - chrono::Duration::hours(2);
        let p = plan(&[newer], &[("A", existing.clone())], 0);
        assert_eq!(p.versions.len(), 1);
        assert_eq!(p.versions[0].version, 3);
        assert!(!p.versions[0].same_source_time);
        // Without a source time on either side: arrival order.
        let p = plan(&[timed("A", "v9", None)], &[("A", existing)], 0);
        assert_eq!(p.versions.len(), 1);
    }

    #[test]
    fn equal_source_times_with_other_content_let_the_later_arrival_win_and_say_so() {
        let existing = ExistingCase {
            case_id: 7,
            code: "C".into(),
            version: 2,
            record_hash: "v2".into(),
            withdrawn: false,
            source_id: "s".into(),
            head_received_at: None,
            head_source_time: at(20),
        };
        let p = plan(&[timed("A", "v2b", at(20))], &[("A", existing)], 0);
        assert_eq!(p.versions.len(), 1);
        assert!(p.versions[0].same_source_time);
        let w = same_source_time_warning("C", p.versions[0].version);
        assert_eq!(w.rule, "version.same_source_time");
        assert!(w.message_en.contains("version 2 of case C"), "{}", w.message_en);
    }

    #[test]
    fn within_a_batch_versions_out_of_source_order_keep_the_newest_as_head() {
        let p = plan(
            &[
                timed("A", "v2", at(20)),
                timed("A", "v1", at(10)),
                timed("A", "v3", at(30)),
            ],
            &[],
            0,
        );
        let kinds: Vec<&Decision> = p.decisions.iter().collect();
        assert!(matches!(kinds[0], Decision::Version(0)));
        assert_eq!(kinds[1], &Decision::Stale(0));
        assert!(matches!(kinds[2], Decision::Version(1)));
        assert_eq!(
            p.stale[0].case,
            CaseRef::New(0),
            "stale against the case the batch creates"
        );
        assert_eq!(p.versions[1].version, 2);
    }

    #[test]
    fn delete_of_an_unknown_case_is_quarantined_without_consuming_a_code() {
        let p = plan(&[record("A", "h1", Operation::Delete)], &[], 0);
        assert!(matches!(&p.decisions[0], Decision::Quarantine(v) if v[0].rule == "pipeline.delete_unknown_case"));
        assert!(p.new_cases.is_empty() && p.counters.is_empty());
    }

    #[test]
    fn a_payload_already_delivered_changes_nothing() {
        let existing = ExistingCase {
            case_id: 7,
            code: "C".into(),
            version: 3,
            record_hash: "h9".into(),
            withdrawn: false,
            source_id: "s".into(),
            head_received_at: None,
            head_source_time: None,
        };
        let stale = record("A", "h1", Operation::Update);
        let delivered = [(stale.source_id.clone(), stale.payload_hash.clone())]
            .into_iter()
            .collect();
        let existing_map = [(key("A"), existing)].into_iter().collect();
        let p = plan_batch(&[stale], &existing_map, &HashMap::new(), &delivered).expect("plan");
        assert_eq!(
            p.decisions,
            vec![Decision::Unchanged { code: "C".into() }],
            "a stale re-delivery never overwrites"
        );
    }
}
