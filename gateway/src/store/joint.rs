//! Joint inspections (联合检查相似度比对、合并): inspections of the same target by several
//! agencies, found so that they can be merged into one joint inspection (赣法府建办字〔2021〕1号:
//! 进一次门，查多项事).
//!
//! The store keeps an index of the current, not withdrawn inspection cases by target
//! (`joint_members`), written in the same transaction as every commit, and the groups found in it
//! (`joint_groups`). Two inspections are a *similar* pair when they have the same target, are
//! handled by different agencies and their check dates lie at most `window_days` apart; a
//! similar group is a connected component of such pairs. Inspections that name the same joint
//! task (`/inspection/joint_task_id`) on the same target form a *declared* group, without the
//! date rule (when at least two agencies declare it; a lone declaration is matched like any
//! other inspection).
//!
//! This module holds the pure part (facts of a record, components, reconciling the groups found
//! with the groups stored, keeping operators' decisions) and the [`JointStore`] interface both
//! backends implement (`joint_sqlite.rs`, `joint_postgres.rs`).

use super::error::StoreResult;
pub use super::types::JointFacts;
use super::types::{AuditEntry, IncomingRecord, Verdict};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use normalizer::CaseType;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// The default `[joint] window_days`.
pub const DEFAULT_WINDOW_DAYS: i64 = 7;

/// The audit log's actor of what the gateway does by itself (as `store::mappings::SYSTEM_ACTOR`).
const SYSTEM_ACTOR: &str = "system";

/// How joint inspections are found (`[joint]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JointSettings {
    /// Whether commits keep the index (off: nothing is written; `gateway joint rebuild` catches up).
    pub enabled: bool,
    /// Largest number of days between the check dates of a similar pair.
    pub window_days: i64,
    /// PostgreSQL: commits only queue their inspections' index facts (`joint_queue`), and the
    /// indexer ([`JointStore::joint_drain`]) applies them in the background; otherwise the index
    /// is kept in the commit's own transaction.
    pub background: bool,
}

impl Default for JointSettings {
    fn default() -> Self {
        JointSettings {
            enabled: true,
            window_days: DEFAULT_WINDOW_DAYS,
            background: false,
        }
    }
}

/// The settings a store commits with, changeable once the store is open.
#[derive(Debug)]
pub struct SettingsCell {
    enabled: AtomicBool,
    window_days: AtomicI64,
    background: AtomicBool,
}

impl Default for SettingsCell {
    fn default() -> Self {
        SettingsCell {
            enabled: AtomicBool::new(true),
            window_days: AtomicI64::new(DEFAULT_WINDOW_DAYS),
            background: AtomicBool::new(false),
        }
    }
}

impl SettingsCell {
    /// The current settings.
    pub fn get(&self) -> JointSettings {
        JointSettings {
            enabled: self.enabled.load(Ordering::Relaxed),
            window_days: self.window_days.load(Ordering::Relaxed),
            background: self.background.load(Ordering::Relaxed),
        }
    }

    /// Replace the settings.
    pub fn set(&self, s: JointSettings) {
        self.enabled.store(s.enabled, Ordering::Relaxed);
        self.window_days.store(s.window_days.max(0), Ordering::Relaxed);
        self.background.store(s.background, Ordering::Relaxed);
    }
}

/// What one turn of the background indexer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DrainReport {
    /// Queued index facts applied (and removed from the queue).
    pub applied: usize,
    /// False when another instance was draining (nothing was done).
    pub ran: bool,
}

/// The target's identifier of a canonical record (`/target/id_number`), as the store keeps it.
pub fn target_of(record: &Value) -> Option<String> {
    record
        .pointer("/target/id_number")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// The target and joint facts of a canonical record's JSON text, reading only those fields (a
/// rebuild reads every current inspection: the rest of the record is skipped, not built).
pub fn facts_of_json(text: &[u8]) -> Option<(String, JointFacts)> {
    #[derive(serde::Deserialize)]
    struct Target {
        id_number: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Participant {
        credit_code: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Inspection {
        check_date: Option<String>,
        joint_task_id: Option<String>,
        #[serde(default)]
        joint_participants: Vec<Participant>,
    }
    #[derive(serde::Deserialize)]
    struct Agency {
        credit_code: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Record {
        case_type: Option<String>,
        agency: Option<Agency>,
        target: Option<Target>,
        inspection: Option<Inspection>,
    }
    let r: Record = serde_json::from_slice(text).ok()?;
    if r.case_type.as_deref() != Some(CaseType::Inspection.as_str()) {
        return None;
    }
    let target = r.target?.id_number.filter(|t| !t.is_empty())?;
    let inspection = r.inspection?;
    let agency = r.agency.and_then(|a| a.credit_code).unwrap_or_default();
    let participants: Vec<&str> = inspection
        .joint_participants
        .iter()
        .filter_map(|p| p.credit_code.as_deref())
        .collect();
    facts_of_parts(
        &target,
        inspection.check_date.as_deref(),
        inspection.joint_task_id.as_deref(),
        &agency,
        &participants,
    )
}

/// The target and joint facts from the record's fields as text: `agency` the handling agency's
/// credit code, `participants` the credit codes of the participants it names.
pub fn facts_of_parts(
    target: &str,
    check_date: Option<&str>,
    task: Option<&str>,
    agency: &str,
    participants: &[&str],
) -> Option<(String, JointFacts)> {
    if target.is_empty() {
        return None;
    }
    let check_date = NaiveDate::parse_from_str(check_date?, "%Y-%m-%d").ok()?;
    let task_id = JointFacts::declared_task(task, agency, check_date, participants);
    Some((target.to_string(), JointFacts { check_date, task_id }))
}

/// One inspection in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Case id.
    pub case_id: i64,
    /// The target's identifier (credit code or ID number, normalised).
    pub target_id: String,
    /// The handling agency's credit code.
    pub agency: String,
    /// The source of the case's current version.
    pub source_id: String,
    /// Check date.
    pub check_date: NaiveDate,
    /// Declared joint task.
    pub task_id: Option<String>,
    /// The group it is in (as stored; ignored when written).
    pub group_id: Option<i64>,
}

/// What one committed version does to the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// The case is (now) in the index with these facts.
    Upsert(Member),
    /// The case leaves the index (withdrawn, no longer an inspection with target and date).
    Remove(i64),
}

/// The index changes of a batch's versions: `versions` are (record index, case id, withdrawn) in
/// commit order; the last version of a case wins.
pub fn changes_of(records: &[IncomingRecord], versions: &[(usize, i64, bool)]) -> Vec<MemberChange> {
    let mut last: BTreeMap<i64, MemberChange> = BTreeMap::new();
    for &(index, case_id, withdrawn) in versions {
        let Some(record) = records.get(index) else {
            continue;
        };
        let Verdict::Accept(a) = &record.verdict else {
            continue;
        };
        if a.key.case_type != CaseType::Inspection {
            continue;
        }
        let change = match (withdrawn, &a.target_id, &a.joint) {
            (false, Some(target), Some(facts)) if !target.is_empty() => MemberChange::Upsert(Member {
                case_id,
                target_id: target.clone(),
                agency: a.key.agency_credit_code.as_str().to_string(),
                source_id: record.source_id.clone(),
                check_date: facts.check_date,
                task_id: facts.task_id.clone(),
                group_id: None,
            }),
            _ => MemberChange::Remove(case_id),
        };
        last.insert(case_id, change);
    }
    last.into_values().collect()
}

/// Kind of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    /// Found by the date rule.
    Similar,
    /// Declared by the records (same joint task).
    Declared,
}

impl GroupKind {
    /// Name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupKind::Similar => "similar",
            GroupKind::Declared => "declared",
        }
    }

    /// Parse a stored name.
    pub fn parse(s: &str) -> Option<GroupKind> {
        match s {
            "similar" => Some(GroupKind::Similar),
            "declared" => Some(GroupKind::Declared),
            _ => None,
        }
    }
}

/// State of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupStatus {
    /// Waits for an operator.
    Candidate,
    /// Merged into one joint inspection record.
    Merged,
    /// Not a joint inspection (with a reason).
    Dismissed,
}

impl GroupStatus {
    /// Name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupStatus::Candidate => "candidate",
            GroupStatus::Merged => "merged",
            GroupStatus::Dismissed => "dismissed",
        }
    }

    /// Parse a stored or asked name.
    pub fn parse(s: &str) -> Option<GroupStatus> {
        match s {
            "candidate" => Some(GroupStatus::Candidate),
            "merged" => Some(GroupStatus::Merged),
            "dismissed" => Some(GroupStatus::Dismissed),
            _ => None,
        }
    }
}

/// A group found in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// Similar or declared.
    pub kind: GroupKind,
    /// The declared joint task.
    pub task_id: Option<String>,
    /// Member case ids, ascending.
    pub members: Vec<i64>,
}

/// The groups of one target's inspections (`members` all of one target).
pub fn components(members: &[Member], window_days: i64) -> Vec<Component> {
    let mut out = Vec::new();
    // Declared: the same task, at least two agencies.
    let mut by_task: BTreeMap<&str, Vec<&Member>> = BTreeMap::new();
    for m in members {
        if let Some(t) = &m.task_id {
            by_task.entry(t.as_str()).or_default().push(m);
        }
    }
    let mut declared: BTreeSet<i64> = BTreeSet::new();
    for (task, list) in by_task {
        let agencies: BTreeSet<&str> = list.iter().map(|m| m.agency.as_str()).collect();
        if agencies.len() >= 2 {
            let mut ids: Vec<i64> = list.iter().map(|m| m.case_id).collect();
            ids.sort_unstable();
            declared.extend(&ids);
            out.push(Component {
                kind: GroupKind::Declared,
                task_id: Some(task.to_string()),
                members: ids,
            });
        }
    }
    // Similar: connected components of pairs (different agencies, dates within the window).
    let mut rest: Vec<&Member> = members.iter().filter(|m| !declared.contains(&m.case_id)).collect();
    rest.sort_by_key(|m| (m.check_date, m.case_id));
    let n = rest.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for i in 0..n {
        for j in (i + 1)..n {
            if (rest[j].check_date - rest[i].check_date).num_days() > window_days {
                break;
            }
            if rest[i].agency != rest[j].agency {
                let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                if a != b {
                    parent[a.max(b)] = a.min(b);
                }
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
    for (i, m) in rest.iter().enumerate() {
        let root = find(&mut parent, i);
        groups.entry(root).or_default().push(m.case_id);
    }
    for (_, mut ids) in groups {
        if ids.len() >= 2 {
            ids.sort_unstable();
            out.push(Component {
                kind: GroupKind::Similar,
                task_id: None,
                members: ids,
            });
        }
    }
    out.sort_by(|a, b| a.members.cmp(&b.members));
    out
}

/// An operator's decision on a group, as kept with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DecisionInfo {
    /// `merged` or `dismissed`.
    pub status: String,
    /// Who decided.
    pub actor: String,
    /// Why.
    pub reason: String,
    /// The lead agency (merged).
    pub lead_agency: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
    /// The members when it was decided (unified codes).
    pub cases: Vec<String>,
}

/// A group as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGroup {
    /// Group id.
    pub id: i64,
    /// Target.
    pub target_id: String,
    /// Kind.
    pub kind: GroupKind,
    /// Declared task.
    pub task_id: Option<String>,
    /// Status.
    pub status: GroupStatus,
    /// The decision in force (merged or dismissed).
    pub decision: Option<DecisionInfo>,
    /// The decision before the group's members changed (shown while it is a candidate again).
    pub previous: Option<DecisionInfo>,
    /// Member case ids, ascending.
    pub members: Vec<i64>,
    /// Version of the joint record last written for it (0: never merged).
    pub joint_version: i32,
    /// The joint record last written for it (merged or withdrawn).
    pub joint_record: Option<Value>,
}

/// What to write after comparing the groups found with those stored for some targets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Groups to keep with new members, status or previous decision (id, new state).
    pub updated: Vec<StoredGroup>,
    /// New groups (id 0: the store numbers them), with their target.
    pub created: Vec<StoredGroup>,
    /// Groups that no longer exist.
    pub deleted: Vec<StoredGroup>,
    /// Merged groups whose joint record must be withdrawn (their members changed or they are gone).
    pub withdraw: Vec<StoredGroup>,
    /// Decided groups whose members changed (their members now) or that are gone (`None`).
    pub reopened: Vec<(StoredGroup, Option<Vec<i64>>)>,
}

impl Reconciled {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.updated.is_empty() && self.created.is_empty() && self.deleted.is_empty()
    }
}

/// Compare the groups found for a target with those stored for it: a found group with the same
/// kind (and task) and the same members keeps its stored id and state; one sharing members with
/// a stored group of the same kind takes that group's id (most shared members first) and, when the
/// group had a decision, becomes a candidate again with the decision kept as `previous` (a merged
/// group's joint record is withdrawn); stored groups left over are deleted (a merged one's joint
/// record withdrawn).
pub fn reconcile(target_id: &str, old: &[StoredGroup], found: Vec<Component>) -> Reconciled {
    let mut out = Reconciled::default();
    let mut taken: BTreeSet<i64> = BTreeSet::new();
    let mut pending: Vec<Component> = Vec::new();
    for c in found {
        match old
            .iter()
            .find(|g| !taken.contains(&g.id) && g.kind == c.kind && g.task_id == c.task_id && g.members == c.members)
        {
            Some(g) => {
                taken.insert(g.id);
            }
            None => pending.push(c),
        }
    }
    for c in pending {
        let best = old
            .iter()
            .filter(|g| !taken.contains(&g.id) && g.kind == c.kind)
            .map(|g| {
                (
                    g.members.iter().filter(|m| c.members.binary_search(m).is_ok()).count(),
                    g,
                )
            })
            .filter(|(shared, _)| *shared > 0)
            .max_by_key(|(shared, g)| (*shared, std::cmp::Reverse(g.id)));
        match best {
            Some((_, g)) => {
                taken.insert(g.id);
                let mut next = g.clone();
                next.members = c.members;
                next.task_id = c.task_id;
                if g.status != GroupStatus::Candidate {
                    out.reopened.push((g.clone(), Some(next.members.clone())));
                    next.previous = g.decision.clone();
                    next.decision = None;
                    next.status = GroupStatus::Candidate;
                    if g.status == GroupStatus::Merged {
                        out.withdraw.push(g.clone());
                        next.joint_version = g.joint_version + 1;
                        next.joint_record = withdrawn_record(g.joint_record.as_ref());
                    }
                }
                out.updated.push(next);
            }
            None => out.created.push(StoredGroup {
                id: 0,
                target_id: target_id.to_string(),
                kind: c.kind,
                task_id: c.task_id,
                status: GroupStatus::Candidate,
                decision: None,
                previous: None,
                members: c.members,
                joint_version: 0,
                joint_record: None,
            }),
        }
    }
    for g in old {
        if !taken.contains(&g.id) {
            if g.status == GroupStatus::Merged {
                out.withdraw.push(g.clone());
            }
            if g.status != GroupStatus::Candidate {
                out.reopened.push((g.clone(), None));
            }
            out.deleted.push(g.clone());
        }
    }
    out
}

/// The writes of refreshing some targets: the reconciliations of all of them, and the stored
/// groups that stay as they are.
#[derive(Debug, Clone, Default)]
pub struct Refresh {
    /// What changes.
    pub changes: Reconciled,
    /// Groups kept unchanged.
    pub kept: Vec<StoredGroup>,
}

/// Refresh the groups of the targets of `members` and `old` (all members and stored groups of
/// those targets).
pub fn refresh(members: &[Member], old: &[StoredGroup], window_days: i64) -> Refresh {
    let mut by_target: BTreeMap<&str, (Vec<Member>, Vec<StoredGroup>)> = BTreeMap::new();
    for m in members {
        by_target.entry(m.target_id.as_str()).or_default().0.push(m.clone());
    }
    for g in old {
        by_target.entry(g.target_id.as_str()).or_default().1.push(g.clone());
    }
    let mut out = Refresh::default();
    for (target, (ms, gs)) in by_target {
        if ms.len() < 2 && gs.is_empty() {
            continue;
        }
        let r = reconcile(target, &gs, components(&ms, window_days));
        let touched: BTreeSet<i64> = r.updated.iter().chain(&r.deleted).map(|g| g.id).collect();
        out.kept.extend(gs.into_iter().filter(|g| !touched.contains(&g.id)));
        out.changes.updated.extend(r.updated);
        out.changes.created.extend(r.created);
        out.changes.deleted.extend(r.deleted);
        out.changes.withdraw.extend(r.withdraw);
        out.changes.reopened.extend(r.reopened);
    }
    out
}

impl Refresh {
    /// Members whose group changes: (case id, new group), once `created` carry their ids.
    pub fn assignments(&self, members: &[Member]) -> Vec<(i64, Option<i64>)> {
        let mut desired: BTreeMap<i64, i64> = BTreeMap::new();
        for g in self
            .kept
            .iter()
            .chain(&self.changes.updated)
            .chain(&self.changes.created)
        {
            for &m in &g.members {
                desired.insert(m, g.id);
            }
        }
        members
            .iter()
            .filter_map(|m| {
                let want = desired.get(&m.case_id).copied();
                (want != m.group_id).then_some((m.case_id, want))
            })
            .collect()
    }
}

/// A joint record's delivery to the sinks (one outbox row per sink).
#[derive(Debug, Clone, PartialEq)]
pub struct JointDelivery {
    /// Group id.
    pub group_id: i64,
    /// The joint record's version.
    pub version: i32,
    /// `LHJC-<group id>:<version>`.
    pub idempotency_key: String,
    /// The lead agency's region (AMQP routing key).
    pub region: String,
    /// True for the joint record's withdrawal.
    pub withdrawn: bool,
    /// The record.
    pub record: Value,
}

impl JointDelivery {
    /// The delivery of `record` as version `version` of group `group_id`'s joint record.
    pub fn new(group_id: i64, version: i32, record: Value) -> JointDelivery {
        let withdrawn = record.get("operation").and_then(Value::as_str) == Some("delete");
        let region = record
            .get("lead_agency")
            .and_then(Value::as_str)
            .and_then(|a| a.get(2..8))
            .unwrap_or("000000")
            .to_string();
        JointDelivery {
            group_id,
            version,
            idempotency_key: format!("{}:{version}", joint_id(group_id)),
            region,
            withdrawn,
            record,
        }
    }

    /// The withdrawal of a merged group's joint record (when its members changed or it is gone).
    pub fn withdrawal(g: &StoredGroup) -> Option<JointDelivery> {
        let record = withdrawn_record(g.joint_record.as_ref())?;
        Some(JointDelivery::new(g.id, g.joint_version + 1, record))
    }
}

/// Add the joint-record deliveries' counts (sink, status, count) to the outbox's.
pub fn add_joint_counts(
    out: &mut Vec<super::outbox::DeliveryCount>,
    joint: Vec<(String, String, i64)>,
) -> StoreResult<()> {
    use super::outbox::{DeliveryCount, DeliveryStatus};
    for (sink_id, status, count) in joint {
        let status = DeliveryStatus::parse(&status)
            .ok_or_else(|| super::error::StoreError::Corrupt(format!("delivery status {status:?}")))?;
        match out.iter_mut().find(|c| c.sink_id == sink_id && c.status == status) {
            Some(c) => c.count += count,
            None => out.push(DeliveryCount { sink_id, status, count }),
        }
    }
    out.sort_by(|a, b| (a.sink_id.as_str(), a.status.as_str()).cmp(&(b.sink_id.as_str(), b.status.as_str())));
    Ok(())
}

/// The record type joint records are delivered as (`Delivery::case_type`).
pub const JOINT_RECORD_TYPE: &str = "joint_inspection";

/// A joint record's withdrawal: the record with `operation` = `delete`.
pub fn withdrawn_record(record: Option<&Value>) -> Option<Value> {
    let mut r = record?.clone();
    if let Some(obj) = r.as_object_mut() {
        obj.insert("operation".into(), Value::from("delete"));
    }
    Some(r)
}

/// Filter of group listings.
#[derive(Debug, Clone, Default)]
pub struct GroupFilter {
    /// Only this status.
    pub status: Option<GroupStatus>,
    /// Only this kind.
    pub kind: Option<GroupKind>,
    /// Only groups of this target.
    pub target: Option<String>,
    /// Only groups with a member of this agency.
    pub agency: Option<String>,
    /// Free text: target, a member's unified code or agency.
    pub q: Option<String>,
    /// Department scope: only groups with a member from one of these sources.
    pub sources: Option<Vec<String>>,
    /// Skip this many.
    pub offset: i64,
    /// At most this many.
    pub limit: i64,
}

/// A member of a group as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupMember {
    /// Case id.
    #[serde(skip)]
    pub case_id: i64,
    /// Unified case code.
    pub code: String,
    /// Handling agency's credit code.
    pub agency: String,
    /// Source of the case's current version.
    pub source_id: String,
    /// Check date.
    pub check_date: NaiveDate,
    /// Declared joint task.
    pub task_id: Option<String>,
}

/// A group as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JointGroup {
    /// Group id.
    pub group_id: i64,
    /// Target.
    pub target_id: String,
    /// Similar or declared.
    pub kind: GroupKind,
    /// Candidate, merged or dismissed.
    pub status: GroupStatus,
    /// Declared task.
    pub task_id: Option<String>,
    /// Members, by check date.
    pub members: Vec<GroupMember>,
    /// The decision in force.
    pub decision: Option<DecisionInfo>,
    /// The decision before the members changed.
    pub previous: Option<DecisionInfo>,
    /// The joint record's stable id (`LHJC-<group id>`), once merged.
    pub joint_id: Option<String>,
    /// The joint record's version (0: never merged).
    pub joint_version: i32,
    /// When the group was last changed.
    pub updated_at: DateTime<Utc>,
}

impl JointGroup {
    /// Unified codes of the members.
    pub fn cases(&self) -> Vec<String> {
        self.members.iter().map(|m| m.code.clone()).collect()
    }

    /// Agencies of the members, distinct, in member order.
    pub fn agencies(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for m in &self.members {
            if !out.contains(&m.agency) {
                out.push(m.agency.clone());
            }
        }
        out
    }

    /// Check dates of the members, in member order.
    pub fn dates(&self) -> Vec<String> {
        self.members.iter().map(|m| m.check_date.to_string()).collect()
    }

    /// The export line (`gateway export joint-groups`).
    pub fn export_line(&self) -> Value {
        serde_json::json!({
            "group_id": self.group_id,
            "target_id": self.target_id,
            "kind": self.kind,
            "status": self.status,
            "cases": self.cases(),
            "agencies": self.agencies(),
            "dates": self.dates(),
        })
    }
}

/// The joint record's stable id of a group.
pub fn joint_id(group_id: i64) -> String {
    format!("LHJC-{group_id}")
}

/// An operator's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decide {
    /// Merge into one joint inspection led by this agency (one of the members').
    Merge {
        /// Lead agency's credit code.
        lead_agency: String,
    },
    /// Not a joint inspection.
    Dismiss,
    /// Undo a merge or dismissal: the group is a candidate again.
    Undo,
}

impl Decide {
    /// The audit action.
    pub fn action(&self) -> &'static str {
        match self {
            Decide::Merge { .. } => "joint.merge",
            Decide::Dismiss => "joint.dismiss",
            Decide::Undo => "joint.undo",
        }
    }
}

/// What a rebuild found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RebuildReport {
    /// Inspections in the index.
    pub inspections: i64,
    /// Groups.
    pub groups: i64,
}

/// Joint inspections kept by a store.
#[async_trait]
pub trait JointStore: Send + Sync {
    /// The settings commits use.
    fn joint_settings(&self) -> JointSettings;

    /// Change the settings commits use (from the configuration, once opened).
    fn configure_joint(&self, settings: JointSettings);

    /// Rebuild the index and the groups from the cases, keeping the decisions of groups found
    /// again with the same members.
    async fn joint_rebuild(&self) -> StoreResult<RebuildReport>;

    /// The background indexer's turn (`[joint] index = "background"`): apply up to `max` queued
    /// index facts, oldest first, and the groups they change, delivering merged groups' changes
    /// to `sinks`; one instance at a time (another's turn returns `ran = false`).
    async fn joint_drain(&self, max: usize, sinks: &[String]) -> StoreResult<DrainReport>;

    /// Index facts queued and not yet applied (0 when the index is kept at commit).
    async fn joint_backlog(&self) -> StoreResult<i64>;

    /// A page of groups (by id) and how many the filter selects.
    async fn joint_groups(&self, filter: &GroupFilter) -> StoreResult<(Vec<JointGroup>, i64)>;

    /// One group.
    async fn joint_group(&self, id: i64) -> StoreResult<JointGroup>;

    /// Decide on a group (with `reason`), audit-logged by `actor` in the same transaction; a
    /// merge (and the undoing of one) writes the joint record's delivery to every sink in `sinks`.
    async fn joint_decide(
        &self,
        id: i64,
        decide: &Decide,
        actor: &str,
        reason: &str,
        sinks: &[String],
    ) -> StoreResult<JointGroup>;

    /// Groups per status (for the gauge).
    async fn joint_counts(&self) -> StoreResult<BTreeMap<String, i64>>;
}

/// Why a decision cannot be taken (the store answers it as a conflict).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    /// The group is not in a state the decision applies to.
    #[error("联合检查组 {id} 的状态为 {status}，不能{what_zh} / joint group {id} is {status}: cannot {what_en}")]
    State {
        /// Group id.
        id: i64,
        /// Its status.
        status: &'static str,
        /// The decision (Chinese).
        what_zh: &'static str,
        /// The decision (English).
        what_en: &'static str,
    },
    /// The lead agency is not one of the members' agencies.
    #[error("lead_agency：牵头部门 {0:?} 不是该组检查的执法部门之一 / lead_agency: {0:?} is not the agency of one of the group's inspections")]
    LeadAgency(String),
}

/// The group after `decide` (and the joint record's delivery it needs, if any): merging needs a
/// candidate and a member's agency as lead, dismissing a candidate, undoing a merged or
/// dismissed group (a merge's joint record is withdrawn).
pub fn decided(
    g: &StoredGroup,
    view: &JointGroup,
    decide: &Decide,
    actor: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(StoredGroup, Option<JointDelivery>), DecideError> {
    let state = |what_zh, what_en| DecideError::State {
        id: g.id,
        status: g.status.as_str(),
        what_zh,
        what_en,
    };
    let mut next = g.clone();
    let info = |status: GroupStatus, lead: Option<String>| DecisionInfo {
        status: status.as_str().to_string(),
        actor: actor.to_string(),
        reason: reason.to_string(),
        lead_agency: lead,
        at: now,
        cases: view.cases(),
    };
    let delivery = match decide {
        Decide::Merge { lead_agency } => {
            if g.status != GroupStatus::Candidate {
                return Err(state("合并", "merge it"));
            }
            if !view.members.iter().any(|m| &m.agency == lead_agency) {
                return Err(DecideError::LeadAgency(lead_agency.clone()));
            }
            next.status = GroupStatus::Merged;
            next.decision = Some(info(GroupStatus::Merged, Some(lead_agency.clone())));
            next.joint_version = g.joint_version + 1;
            let record = joint_record(view, lead_agency, reason, false);
            next.joint_record = Some(record.clone());
            Some(JointDelivery::new(g.id, next.joint_version, record))
        }
        Decide::Dismiss => {
            if g.status != GroupStatus::Candidate {
                return Err(state("驳回", "dismiss it"));
            }
            next.status = GroupStatus::Dismissed;
            next.decision = Some(info(GroupStatus::Dismissed, None));
            None
        }
        Decide::Undo => {
            if g.status == GroupStatus::Candidate {
                return Err(state("撤销决定", "undo a decision"));
            }
            let mut previous = g.decision.clone();
            if let Some(p) = &mut previous {
                p.reason = format!("{} (undone by {actor}: {reason})", p.reason);
            }
            next.previous = previous;
            next.decision = None;
            next.status = GroupStatus::Candidate;
            if g.status == GroupStatus::Merged {
                let delivery = JointDelivery::withdrawal(g);
                next.joint_version = g.joint_version + 1;
                next.joint_record = withdrawn_record(g.joint_record.as_ref());
                delivery
            } else {
                None
            }
        }
    };
    Ok((next, delivery))
}

/// The audit entry (by the gateway) of a decided group whose members changed: it is a
/// candidate again (or gone), its decision kept as `previous`.
pub fn reopened_audit(g: &StoredGroup, now_members: Option<&[i64]>) -> AuditEntry {
    AuditEntry {
        actor: SYSTEM_ACTOR.to_string(),
        action: if now_members.is_some() {
            "joint.reopened"
        } else {
            "joint.dissolved"
        }
        .to_string(),
        subject: format!("joint-group:{}", g.id),
        detail: serde_json::json!({
            "target_id": g.target_id,
            "earlier_status": g.status.as_str(),
            "earlier_members": g.members,
            "members": now_members,
        }),
    }
}

/// The joint record delivered to sinks for a merged group (or its withdrawal).
pub fn joint_record(group: &JointGroup, lead_agency: &str, reason: &str, withdrawn: bool) -> Value {
    serde_json::json!({
        "record_type": JOINT_RECORD_TYPE,
        "joint_id": joint_id(group.group_id),
        "group_id": group.group_id,
        "kind": group.kind,
        "target_id": group.target_id,
        "lead_agency": lead_agency,
        "task_id": group.task_id,
        "note": reason,
        "operation": if withdrawn { "delete" } else { "upsert" },
        "members": group.members.iter().map(|m| serde_json::json!({
            "unified_code": m.code,
            "agency_credit_code": m.agency,
            "check_date": m.check_date.to_string(),
        })).collect::<Vec<_>>(),
    })
}

/// The audit entry of a decision.
pub fn audit_entry(group: &JointGroup, decide: &Decide, actor: &str, reason: &str) -> AuditEntry {
    let lead = match decide {
        Decide::Merge { lead_agency } => Some(lead_agency.clone()),
        _ => None,
    };
    AuditEntry {
        actor: actor.to_string(),
        action: decide.action().to_string(),
        subject: format!("joint-group:{}", group.group_id),
        detail: serde_json::json!({
            "reason": reason,
            "lead_agency": lead,
            "target_id": group.target_id,
            "cases": group.cases(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: i64, agency: &str, day: u32, task: Option<&str>) -> Member {
        Member {
            case_id: id,
            target_id: "T".into(),
            agency: agency.into(),
            source_id: "s".into(),
            check_date: NaiveDate::from_ymd_opt(2024, 3, day).unwrap_or_default(),
            task_id: task.map(str::to_string),
            group_id: None,
        }
    }

    #[test]
    fn pairs_within_the_window_by_different_agencies_form_transitive_groups() {
        let members = [
            m(1, "A", 1, None),
            m(2, "B", 6, None),
            m(3, "C", 11, None),
            m(4, "A", 2, None),
        ];
        let c = components(&members, 7);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].members, vec![1, 2, 3, 4]);
        assert_eq!(c[0].kind, GroupKind::Similar);
        // Same agency only: never a pair.
        assert!(components(&[m(1, "A", 1, None), m(2, "A", 1, None)], 7).is_empty());
        // Outside the window.
        assert!(components(&[m(1, "A", 1, None), m(2, "B", 9, None)], 7).is_empty());
    }

    #[test]
    fn a_declared_task_groups_without_the_date_rule() {
        let members = [m(1, "A", 1, Some("T1")), m(2, "B", 28, Some("T1")), m(3, "C", 2, None)];
        let c = components(&members, 7);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].kind, c[0].members.clone()), (GroupKind::Declared, vec![1, 2]));
    }

    #[test]
    fn a_rebuild_reads_target_date_and_task_from_the_record_text_alone() {
        let text = br#"{"case_type":"inspection","officers":[{"name":"x"}],"target":{"name":"n","id_number":"T1"},
                        "inspection":{"form":"random","check_date":"2024-03-02","joint_task_id":" lh-1 "}}"#;
        let (target, facts) = facts_of_json(text).expect("facts");
        assert_eq!(target, "T1");
        assert_eq!(
            facts.check_date,
            NaiveDate::from_ymd_opt(2024, 3, 2).unwrap_or_default()
        );
        assert_eq!(facts.task_id.as_deref(), Some("LH-1"));
        assert!(facts_of_json(br#"{"case_type":"penalty","target":{"id_number":"T1"}}"#).is_none());
        assert!(facts_of_json(
            br#"{"case_type":"inspection","target":{"id_number":"T1"},"inspection":{"check_date":"2024-13-01"}}"#
        )
        .is_none());
    }

    #[test]
    fn records_naming_each_others_agencies_as_participants_form_a_declared_group() {
        let record = |agency: &str, date: &str, participants: &[&str]| {
            let ps: Vec<Value> = participants
                .iter()
                .map(|c| serde_json::json!({"name": "参与部门", "credit_code": c}))
                .collect();
            serde_json::json!({"case_type": "inspection", "agency": {"credit_code": agency},
                "target": {"id_number": "T1"},
                "inspection": {"check_date": date, "joint_participants": ps}})
        };
        let task = |r: &Value| JointFacts::of(r).and_then(|f| f.task_id);
        // The lead names the others; each other names the lead and the third: one task.
        let a = task(&record("A", "2024-03-02", &["B", "C"]));
        let b = task(&record("B", "2024-03-02", &["A", "C"]));
        let c = task(&record("C", "2024-03-02", &["a", "B", "C"]));
        assert_eq!(a.as_deref(), Some("~2024-03-02:A+B+C"));
        assert_eq!((&a, &b), (&c, &c));
        // The record text a rebuild reads gives the same task.
        let text = record("B", "2024-03-02", &["A", "C"]).to_string();
        assert_eq!(facts_of_json(text.as_bytes()).and_then(|(_, f)| f.task_id), b);
        // Another day, or other agencies, is another joint inspection; naming none is no task.
        assert_ne!(task(&record("B", "2024-03-03", &["A", "C"])), a);
        assert_ne!(task(&record("B", "2024-03-02", &["A"])), a);
        assert_eq!(task(&record("A", "2024-03-02", &[])), None);
        assert_eq!(
            task(&record("A", "2024-03-02", &["A"])),
            None,
            "itself alone is not joint"
        );
        // An explicit task wins.
        let mut explicit = record("A", "2024-03-02", &["B"]);
        explicit["inspection"]["joint_task_id"] = serde_json::json!("lh-9");
        assert_eq!(task(&explicit).as_deref(), Some("LH-9"));
        // Declared by participants, a group forms whatever the dates' distance to others.
        let members = [
            m(1, "A", 2, a.as_deref()),
            m(2, "B", 2, b.as_deref()),
            m(3, "C", 20, None),
        ];
        let found = components(&members, 0);
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].kind, found[0].members.clone()),
            (GroupKind::Declared, vec![1, 2])
        );
    }

    fn stored(id: i64, status: GroupStatus, members: Vec<i64>) -> StoredGroup {
        StoredGroup {
            id,
            target_id: "T".into(),
            kind: GroupKind::Similar,
            task_id: None,
            status,
            decision: (status != GroupStatus::Candidate).then(|| DecisionInfo {
                status: status.as_str().into(),
                actor: "op".into(),
                reason: "r".into(),
                lead_agency: None,
                at: Utc::now(),
                cases: Vec::new(),
            }),
            previous: None,
            members,
            joint_version: 1,
            joint_record: None,
        }
    }

    #[test]
    fn a_decided_group_that_changes_becomes_a_candidate_showing_the_decision() {
        let old = [stored(5, GroupStatus::Merged, vec![1, 2])];
        let found = vec![Component {
            kind: GroupKind::Similar,
            task_id: None,
            members: vec![1, 2, 3],
        }];
        let r = reconcile("T", &old, found);
        assert_eq!(r.updated.len(), 1);
        assert_eq!(r.updated[0].id, 5);
        assert_eq!(r.updated[0].status, GroupStatus::Candidate);
        assert_eq!(
            r.updated[0].previous.as_ref().map(|d| d.status.as_str()),
            Some("merged")
        );
        assert_eq!(r.withdraw.len(), 1);
        // Unchanged members: nothing to write.
        let same = reconcile(
            "T",
            &old,
            vec![Component {
                kind: GroupKind::Similar,
                task_id: None,
                members: vec![1, 2],
            }],
        );
        assert!(same.is_empty());
        // Gone: deleted, the joint record withdrawn.
        let gone = reconcile("T", &old, Vec::new());
        assert_eq!((gone.deleted.len(), gone.withdraw.len()), (1, 1));
    }
}
