//! What the operator console asks the store beyond the pipeline's own reads: what became of
//! each received record ([`RecordFate`]), and the audit log searched ([`AuditFilter`]). The
//! SQL is built here once for both backends ([`Dialect`]); each backend runs it.

use super::types::{QuarantineStatus, Resolution};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What became of a received record, as the console lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It is (or was) a version of a case.
    Accepted,
    /// Older than its case's current version by source time: kept in the lineage as stale.
    Stale,
    /// In the quarantine, open.
    Quarantined,
    /// In the quarantine, ignored by an operator.
    Ignored,
    /// In the quarantine, superseded by a later record of the same key.
    Superseded,
    /// Archived, with no version and no entry: the same content as its case's current version.
    Unchanged,
}

impl Outcome {
    /// Parse the API's name of an outcome.
    pub fn parse(s: &str) -> Option<Outcome> {
        Some(match s {
            "accepted" => Outcome::Accepted,
            "stale" => Outcome::Stale,
            "quarantined" => Outcome::Quarantined,
            "ignored" => Outcome::Ignored,
            "superseded" => Outcome::Superseded,
            "unchanged" => Outcome::Unchanged,
            _ => return None,
        })
    }
}

/// Which received records to list.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    /// Only this source.
    pub source_id: Option<String>,
    /// Only these sources (a department's scope).
    pub sources: Option<Vec<String>>,
    /// Only this record key (exact).
    pub record_key: Option<String>,
    /// Only records with this outcome.
    pub outcome: Option<Outcome>,
    /// Received at or after.
    pub since: Option<DateTime<Utc>>,
    /// Received before.
    pub until: Option<DateTime<Utc>>,
    /// Only archive ids below this (paging, newest first).
    pub before_id: Option<i64>,
    /// Skip this many.
    pub offset: Option<i64>,
    /// At most this many (default 100).
    pub limit: Option<i64>,
}

/// One received record and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct RecordFate {
    /// Archive id of its payload.
    pub raw_id: i64,
    /// Source id.
    pub source_id: String,
    /// Record key at the source.
    pub record_key: String,
    /// When first received.
    pub received_at: DateTime<Utc>,
    /// What became of it.
    pub outcome: Outcome,
    /// The case it is a version of (or, when stale, lost to).
    pub code: Option<String>,
    /// That version (when stale: the newer version it lost to).
    pub version: Option<i32>,
    /// The agency's case number, from the case or the quarantine entry.
    pub case_number: Option<String>,
    /// Its newest quarantine entry, if it was ever quarantined.
    pub quarantine_id: Option<i64>,
    /// The rules that entry's violations broke.
    pub rules: Vec<String>,
}

/// An archived record as the page query reads it.
#[derive(Debug, Clone)]
pub struct RawHead {
    /// Archive id.
    pub raw_id: i64,
    /// Source id.
    pub source_id: String,
    /// Record key.
    pub record_key: String,
    /// First received.
    pub received_at: DateTime<Utc>,
}

/// What the store knows of a page of archived records, looked up by their ids.
#[derive(Debug, Clone, Default)]
pub struct FateLookups {
    /// (raw id, case code, version, case number) of every case version from these records.
    pub versions: Vec<(i64, String, i32, String)>,
    /// (raw id, case code, head version) of every stale version from these records.
    pub stale: Vec<(i64, String, i32)>,
    /// Every quarantine entry of these records.
    pub entries: Vec<EntryFact>,
}

/// A quarantine entry of a received record, as [`fates`] needs it.
#[derive(Debug, Clone)]
pub struct EntryFact {
    /// The record's archive id.
    pub raw_id: i64,
    /// The entry id.
    pub id: i64,
    /// Its status.
    pub status: QuarantineStatus,
    /// The rules its violations broke, each once.
    pub rules: Vec<String>,
    /// The case number the mapping read.
    pub case_number: Option<String>,
}

/// Each record of a page with what became of it, in page order.
pub fn fates(page: Vec<RawHead>, lookups: &FateLookups) -> Vec<RecordFate> {
    page.into_iter()
        .map(|head| {
            let id = head.raw_id;
            let version = lookups
                .versions
                .iter()
                .filter(|v| v.0 == id)
                .max_by_key(|v| v.2)
                .map(|v| {
                    (
                        Resolution {
                            code: v.1.clone(),
                            version: Some(v.2),
                        },
                        v.3.clone(),
                    )
                });
            let stale = lookups.stale.iter().filter(|s| s.0 == id).max_by_key(|s| s.2);
            let entry = lookups.entries.iter().filter(|e| e.raw_id == id).max_by_key(|e| e.id);
            let (outcome, code, number) = match (&version, stale, entry) {
                (Some((r, number)), _, _) => (Outcome::Accepted, Some(r.clone()), Some(number.clone())),
                (None, Some(s), _) => (
                    Outcome::Stale,
                    Some(Resolution {
                        code: s.1.clone(),
                        version: Some(s.2),
                    }),
                    None,
                ),
                (None, None, Some(e)) => (
                    match e.status {
                        QuarantineStatus::Open => Outcome::Quarantined,
                        QuarantineStatus::Ignored => Outcome::Ignored,
                        QuarantineStatus::Superseded => Outcome::Superseded,
                        QuarantineStatus::Replayed => Outcome::Unchanged,
                    },
                    None,
                    e.case_number.clone(),
                ),
                (None, None, None) => (Outcome::Unchanged, None, None),
            };
            RecordFate {
                raw_id: id,
                source_id: head.source_id,
                record_key: head.record_key,
                received_at: head.received_at,
                outcome,
                code: code.as_ref().map(|r| r.code.clone()),
                version: code.and_then(|r| r.version),
                case_number: number.or_else(|| entry.and_then(|e| e.case_number.clone())),
                quarantine_id: entry.map(|e| e.id),
                rules: entry.map(|e| e.rules.clone()).unwrap_or_default(),
            }
        })
        .collect()
}

/// Which SQL a statement is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `?N` parameters, times as RFC 3339 text, lists as JSON text.
    Sqlite,
    /// `$N` parameters, typed.
    Postgres,
}

/// A parameter of a built statement.
#[derive(Debug, Clone)]
pub enum Param {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
    /// A time.
    Time(DateTime<Utc>),
    /// A list of texts.
    TextList(Vec<String>),
}

/// A WHERE clause under construction, with its parameters numbered from 1.
struct Conditions {
    dialect: Dialect,
    sql: Vec<String>,
    params: Vec<Param>,
}

impl Conditions {
    fn new(dialect: Dialect) -> Conditions {
        Conditions {
            dialect,
            sql: vec!["1 = 1".into()],
            params: Vec::new(),
        }
    }

    /// The next parameter's placeholder, for `param`.
    fn bind(&mut self, param: Param) -> String {
        self.params.push(param);
        let n = self.params.len();
        match self.dialect {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// `column` equals `value` (a text).
    fn text_eq(&mut self, column: &str, value: &str) {
        let p = self.bind(Param::Text(value.to_string()));
        let cast = if self.dialect == Dialect::Postgres {
            "::text"
        } else {
            ""
        };
        self.sql.push(format!("{column} = {p}{cast}"));
    }

    /// `column` is one of `values`.
    fn text_in(&mut self, column: &str, values: &[String]) {
        let p = self.bind(Param::TextList(values.to_vec()));
        self.sql.push(match self.dialect {
            Dialect::Sqlite => format!("{column} IN (SELECT value FROM json_each({p}))"),
            Dialect::Postgres => format!("{column} = ANY({p}::text[])"),
        });
    }

    /// `column op value` for a time.
    fn time_cmp(&mut self, column: &str, op: &str, value: DateTime<Utc>) {
        let p = self.bind(Param::Time(value));
        self.sql.push(format!("{column} {op} {p}"));
    }

    /// `column < value` for an id.
    fn id_below(&mut self, column: &str, value: i64) {
        let p = self.bind(Param::Int(value));
        self.sql.push(format!("{column} < {p}"));
    }

    fn text(&self) -> String {
        self.sql.join(" AND ")
    }
}

/// A statement with its parameters.
#[derive(Debug, Clone)]
pub struct Statement {
    /// The SQL.
    pub sql: String,
    /// Its parameters, numbered from 1.
    pub params: Vec<Param>,
}

/// The SQL conditions for an outcome, on `raw_records r`.
fn outcome_condition(outcome: Outcome) -> String {
    let accepted = "EXISTS (SELECT 1 FROM case_versions v WHERE v.raw_id = r.id)";
    let stale = "EXISTS (SELECT 1 FROM stale_versions s WHERE s.raw_id = r.id)";
    let entry = |status: &str| {
        format!(
            "EXISTS (SELECT 1 FROM quarantine q WHERE q.raw_id = r.id AND q.status = '{status}'
                     AND q.id = (SELECT max(q2.id) FROM quarantine q2 WHERE q2.raw_id = r.id))"
        )
    };
    let neither = format!("NOT {accepted} AND NOT {stale}");
    match outcome {
        Outcome::Accepted => accepted.to_string(),
        Outcome::Stale => format!("NOT {accepted} AND {stale}"),
        Outcome::Quarantined => format!("{neither} AND {}", entry("open")),
        Outcome::Ignored => format!("{neither} AND {}", entry("ignored")),
        Outcome::Superseded => format!("{neither} AND {}", entry("superseded")),
        Outcome::Unchanged => format!(
            "{neither} AND NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.raw_id = r.id AND q.status <> 'replayed')"
        ),
    }
}

fn record_conditions(f: &RecordFilter, dialect: Dialect, paging: bool) -> Conditions {
    let mut c = Conditions::new(dialect);
    if let Some(s) = &f.source_id {
        c.text_eq("r.source_id", s);
    }
    if let Some(list) = &f.sources {
        c.text_in("r.source_id", list);
    }
    if let Some(k) = &f.record_key {
        c.text_eq("r.record_key", k);
    }
    if let Some(t) = f.since {
        c.time_cmp("r.received_at", ">=", t);
    }
    if let Some(t) = f.until {
        c.time_cmp("r.received_at", "<", t);
    }
    if let (Some(id), true) = (f.before_id, paging) {
        c.id_below("r.id", id);
    }
    if let Some(o) = f.outcome {
        c.sql.push(outcome_condition(o));
    }
    c
}

/// The page of archived records a filter selects: `raw_id, source_id, record_key, received_at`,
/// newest first.
pub fn records_page(f: &RecordFilter, dialect: Dialect) -> Statement {
    let mut c = record_conditions(f, dialect, true);
    let limit = c.bind(Param::Int(f.limit.unwrap_or(100)));
    let offset = c.bind(Param::Int(f.offset.unwrap_or(0).max(0)));
    Statement {
        sql: format!(
            "SELECT r.id, r.source_id, r.record_key, r.received_at FROM raw_records r WHERE {}
             ORDER BY r.id DESC LIMIT {limit} OFFSET {offset}",
            c.text()
        ),
        params: c.params,
    }
}

/// How many archived records a filter selects in all.
pub fn records_count(f: &RecordFilter, dialect: Dialect) -> Statement {
    let c = record_conditions(f, dialect, false);
    Statement {
        sql: format!("SELECT count(*) FROM raw_records r WHERE {}", c.text()),
        params: c.params,
    }
}

/// Which audit entries to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this actor (token name).
    pub actor: Option<String>,
    /// Only this action, or (written without a dot, e.g. `mapping`) every action of its family.
    pub action: Option<String>,
    /// Only subjects starting with this (e.g. `quarantine:12`, `mapping:`).
    pub subject: Option<String>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
    /// Only ids below this (paging, newest first).
    pub before_id: Option<i64>,
    /// Skip this many.
    pub offset: Option<i64>,
    /// At most this many (default 100).
    pub limit: Option<i64>,
}

fn audit_conditions(f: &AuditFilter, dialect: Dialect, paging: bool) -> Conditions {
    let mut c = Conditions::new(dialect);
    if let Some(a) = &f.actor {
        c.text_eq("actor", a);
    }
    if let Some(a) = &f.action {
        if a.contains('.') {
            c.text_eq("action", a);
        } else {
            let p = c.bind(Param::Text(format!("{a}.")));
            c.sql.push(match dialect {
                Dialect::Sqlite => format!("substr(action, 1, length({p})) = {p}"),
                Dialect::Postgres => format!("starts_with(action, {p}::text)"),
            });
        }
    }
    if let Some(s) = &f.subject {
        let p = c.bind(Param::Text(s.clone()));
        c.sql.push(match dialect {
            Dialect::Sqlite => format!("substr(subject, 1, length({p})) = {p}"),
            Dialect::Postgres => format!("starts_with(subject, {p}::text)"),
        });
    }
    if let Some(t) = f.since {
        c.time_cmp("at", ">=", t);
    }
    if let Some(t) = f.until {
        c.time_cmp("at", "<", t);
    }
    if let (Some(id), true) = (f.before_id, paging) {
        c.id_below("id", id);
    }
    c
}

/// The page of audit entries a filter selects (`id, at, actor, action, subject, detail`),
/// newest first.
pub fn audit_page(f: &AuditFilter, dialect: Dialect) -> Statement {
    let mut c = audit_conditions(f, dialect, true);
    let limit = c.bind(Param::Int(f.limit.unwrap_or(100)));
    let offset = c.bind(Param::Int(f.offset.unwrap_or(0).max(0)));
    Statement {
        sql: format!(
            "SELECT id, at, actor, action, subject, detail FROM audit_log WHERE {}
             ORDER BY id DESC LIMIT {limit} OFFSET {offset}",
            c.text()
        ),
        params: c.params,
    }
}

/// How many audit entries a filter selects in all.
pub fn audit_count(f: &AuditFilter, dialect: Dialect) -> Statement {
    let c = audit_conditions(f, dialect, false);
    Statement {
        sql: format!("SELECT count(*) FROM audit_log WHERE {}", c.text()),
        params: c.params,
    }
}

fn awaiting_conditions(f: &super::supplement::AwaitingFilter, dialect: Dialect) -> Conditions {
    let mut c = Conditions::new(dialect);
    if let Some(a) = &f.agency {
        c.text_eq("agency_credit_code", a);
    }
    if let Some(s) = &f.source_id {
        c.text_eq("source_id", s);
    }
    if let Some(list) = &f.source_ids {
        c.text_in("source_id", list);
    }
    if let Some(t) = &f.case_type {
        c.text_eq("case_type", t);
    }
    if let Some(field) = &f.field {
        // `fields` is a JSON array of pointers: the quoted pointer is in it.
        let p = c.bind(Param::Text(format!(
            "%\"{}\"%",
            field.replace('%', "").replace('_', "\\_")
        )));
        c.sql.push(match dialect {
            Dialect::Sqlite => format!("fields LIKE {p} ESCAPE '\\'"),
            Dialect::Postgres => format!("fields LIKE {p}::text ESCAPE '\\'"),
        });
    }
    c
}

/// Columns of an awaiting-supplement row, in [`super::supplement::AwaitingCase`] order.
pub const AWAITING_COLUMNS: &str =
    "case_id, unified_code, agency_credit_code, case_type, case_number, source_id, fields, since, updated_at";

/// A page of the cases awaiting supplement, oldest first.
pub fn awaiting_page(f: &super::supplement::AwaitingFilter, dialect: Dialect) -> Statement {
    let c = awaiting_conditions(f, dialect);
    let limit = f.limit.unwrap_or(100).clamp(1, 1000);
    let offset = f.offset.unwrap_or(0).max(0);
    Statement {
        sql: format!(
            "SELECT {AWAITING_COLUMNS} FROM awaiting_supplement WHERE {} ORDER BY since, case_id LIMIT {limit} OFFSET {offset}",
            c.text()
        ),
        params: c.params,
    }
}

/// How many cases awaiting supplement a filter selects in all.
pub fn awaiting_count(f: &super::supplement::AwaitingFilter, dialect: Dialect) -> Statement {
    let c = awaiting_conditions(f, dialect);
    Statement {
        sql: format!("SELECT count(*) FROM awaiting_supplement WHERE {}", c.text()),
        params: c.params,
    }
}

/// Cases awaiting supplement per agency and source, within `source_ids` if given.
pub fn awaiting_counts(source_ids: Option<&[String]>, dialect: Dialect) -> Statement {
    let mut c = Conditions::new(dialect);
    if let Some(list) = source_ids {
        c.text_in("source_id", list);
    }
    Statement {
        sql: format!(
            "SELECT agency_credit_code, source_id, count(*), min(since) FROM awaiting_supplement WHERE {}
             GROUP BY agency_credit_code, source_id ORDER BY count(*) DESC, agency_credit_code, source_id",
            c.text()
        ),
        params: c.params,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(id: i64) -> RawHead {
        RawHead {
            raw_id: id,
            source_id: "s".into(),
            record_key: format!("k{id}"),
            received_at: Utc::now(),
        }
    }

    fn fact(raw_id: i64, id: i64, status: QuarantineStatus, rule: &str) -> EntryFact {
        EntryFact {
            raw_id,
            id,
            status,
            rules: vec![rule.into()],
            case_number: Some(format!("N{raw_id}")),
        }
    }

    #[test]
    fn a_record_that_became_a_version_is_accepted_even_after_an_entry() {
        let lookups = FateLookups {
            versions: vec![(1, "C1".into(), 2, "N1".into())],
            entries: vec![fact(1, 7, QuarantineStatus::Replayed, "rule.x")],
            ..Default::default()
        };
        let f = &fates(vec![head(1)], &lookups)[0];
        assert_eq!(f.outcome, Outcome::Accepted);
        assert_eq!((f.code.as_deref(), f.version), (Some("C1"), Some(2)));
        assert_eq!(f.quarantine_id, Some(7));
    }

    #[test]
    fn a_record_only_in_the_quarantine_has_its_entry_status_and_rules() {
        let lookups = FateLookups {
            entries: vec![fact(3, 9, QuarantineStatus::Open, "gb11643.checksum")],
            ..Default::default()
        };
        let out = fates(vec![head(3), head(4)], &lookups);
        assert_eq!(out[0].outcome, Outcome::Quarantined);
        assert_eq!(out[0].rules, vec!["gb11643.checksum".to_string()]);
        assert_eq!(out[0].case_number.as_deref(), Some("N3"));
        assert_eq!(out[1].outcome, Outcome::Unchanged);
    }

    #[test]
    fn the_audit_action_family_matches_by_prefix_and_a_full_action_exactly() {
        let family = audit_page(
            &AuditFilter {
                action: Some("mapping".into()),
                ..Default::default()
            },
            Dialect::Postgres,
        );
        assert!(family.sql.contains("starts_with(action, $1::text)"), "{}", family.sql);
        assert!(matches!(&family.params[0], Param::Text(t) if t == "mapping."));
        let exact = audit_count(
            &AuditFilter {
                action: Some("quarantine.ignore".into()),
                ..Default::default()
            },
            Dialect::Sqlite,
        );
        assert!(exact.sql.contains("action = ?1"), "{}", exact.sql);
    }
}
