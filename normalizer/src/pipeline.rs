//! Mapping + schema + rules in one call: what the gateway runs for every record.

use crate::mapping::{Mapping, SupplementField};
use crate::rules::{self, RuleOptions};
use crate::schema::{SchemaError, SchemaSet};
use crate::standards::credit_code::CreditCode;
use crate::standards::today_in_china;
use crate::supplement;
use crate::{CaseNumber, CaseType, Violation};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::Value;

/// Result of normalising one source record: the canonical record and every violation found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    /// The canonical record (possibly partial when the mapping failed on some fields).
    pub record: Value,
    /// Every violation, errors and warnings, in a stable order.
    pub violations: Vec<Violation>,
}

impl Outcome {
    /// True when no violation is an error: the record may be committed.
    pub fn is_accepted(&self) -> bool {
        !self.violations.iter().any(Violation::is_error)
    }

    /// What the gateway keeps of the canonical record besides its text, read once here where
    /// the canonical schema is known: the business key (typed), the numbering year and region,
    /// the target's identifier. `None` when the business key is incomplete or its credit code
    /// is not a valid normalised one (such a record cannot become a case).
    pub fn case_facts(&self) -> Option<CaseFacts> {
        let record = &self.record;
        let case_type: CaseType = record.get("case_type")?.as_str()?.parse().ok()?;
        let agency_credit_code = CreditCode::from_normalised(record.pointer("/agency/credit_code")?.as_str()?)?;
        let case_number = CaseNumber::parse(record.get("case_number")?.as_str()?)?;
        let text = |pointer: &str| record.pointer(pointer).and_then(Value::as_str);
        let plan_year = (case_type == CaseType::Plan)
            .then(|| record.pointer("/plan/year").and_then(Value::as_i64))
            .flatten()
            .and_then(|y| i32::try_from(y).ok());
        let numbering_year = plan_year
            .or_else(|| {
                year_fields(case_type)
                    .iter()
                    .filter_map(|p| text(p))
                    .find_map(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                    .map(|d| d.year())
            })
            .unwrap_or_else(|| today_in_china().year());
        Some(CaseFacts {
            agency_credit_code,
            case_type,
            case_number,
            numbering_year,
            region: text("/agency/region_code").unwrap_or_default().to_string(),
            target_id: text("/target/id_number").map(str::to_string),
            source_updated_at: text("/source_updated_at")
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
        })
    }

    /// The business key as text (`credit code/case type/case number`) as far as the record names
    /// it, valid or not: how a record without a key of its own at the source is known in logs
    /// and in the quarantine.
    pub fn key_text(&self) -> Option<String> {
        let record = &self.record;
        let case_type: CaseType = record.get("case_type")?.as_str()?.parse().ok()?;
        let agency = record.pointer("/agency/credit_code")?.as_str()?;
        let number = record.get("case_number")?.as_str()?.trim();
        (!agency.is_empty() && !number.is_empty()).then(|| format!("{agency}/{case_type}/{number}"))
    }
}

/// The facts of an accepted canonical record that identify and number its case (see
/// [`Outcome::case_facts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFacts {
    /// The handling agency's unified social credit code.
    pub agency_credit_code: CreditCode,
    /// The case type.
    pub case_type: CaseType,
    /// The agency's own case number.
    pub case_number: CaseNumber,
    /// The year the case is numbered in: the year of its first action (inspection date,
    /// penalty filing or decision date, coercion start; a plan's year), else the current year in China.
    pub numbering_year: i32,
    /// The handling agency's GB/T 2260 region code (`/agency/region_code`; empty when absent).
    pub region: String,
    /// The target's identifier (`/target/id_number`: credit code or ID number), for look-ups.
    pub target_id: Option<String>,
    /// When the source system last changed the record (`/source_updated_at`), if the mapping
    /// names it: versions of a case are ordered by it.
    pub source_updated_at: Option<DateTime<Utc>>,
}

/// Where each case type's numbering year is read from, in order of preference.
fn year_fields(case_type: CaseType) -> &'static [&'static str] {
    match case_type {
        CaseType::Inspection => &["/inspection/check_date"],
        CaseType::Penalty => &["/penalty/filing_date", "/penalty/decision_date"],
        CaseType::Coercion => &["/coercion/start_date"],
        // A plan is numbered in its plan year (`/plan/year`, a number), else the year it starts.
        CaseType::Plan => &["/plan/start_date"],
    }
}

/// Validates canonical records against the schemas and the cross-field rules.
#[derive(Debug)]
pub struct Normalizer {
    schemas: SchemaSet,
    rules: RuleOptions,
}

impl Default for Normalizer {
    /// The shipped schemas with default rule options (no province restriction, no catalogue).
    fn default() -> Self {
        #[allow(clippy::expect_used)]
        Normalizer::new(RuleOptions::default()).expect("the shipped schemas compile (tested)")
    }
}

impl Normalizer {
    /// Compile the shipped schemas and keep the rule options.
    pub fn new(rules: RuleOptions) -> Result<Normalizer, SchemaError> {
        Ok(Normalizer {
            schemas: SchemaSet::embedded()?,
            rules,
        })
    }

    /// The compiled schemas (titles of fields, for messages and dashboards).
    pub fn schemas(&self) -> &SchemaSet {
        &self.schemas
    }

    /// The rule options in force.
    pub fn rule_options(&self) -> &RuleOptions {
        &self.rules
    }

    /// Schema and rule violations of a canonical record. A delete (`"operation": "delete"`) only
    /// needs its business key: case type, agency credit code and case number.
    pub fn validate(&self, record: &Value) -> Vec<Violation> {
        self.validate_as(record, is_delete(record))
    }

    /// [`Normalizer::validate`], told whether the record is a delete.
    fn validate_as(&self, record: &Value, delete: bool) -> Vec<Violation> {
        if delete {
            return delete_key_violations(record);
        }
        let mut violations = self.schemas.validate(record);
        violations.extend(rules::check(record, &self.rules));
        violations
    }

    /// Map a source record and validate the result.
    pub fn normalize(&self, mapping: &Mapping, source: &Value) -> Outcome {
        let mut outcome = Outcome::default();
        self.normalize_into(mapping, source, &mut outcome);
        outcome
    }

    /// [`Normalizer::normalize`] into `outcome`, reusing its record's keys and objects and its
    /// list of violations: a stream of records normalised into one `Outcome` (each used before
    /// the next call) builds the record's shape once instead of once per record. The result is
    /// the same as `normalize`'s whatever `outcome` held.
    pub fn normalize_into(&self, mapping: &Mapping, source: &Value, outcome: &mut Outcome) {
        let mapping_violations = mapping.apply_into(source, &mut outcome.record);
        let violations = &mut outcome.violations;
        if violations.capacity() == 0 {
            *violations = mapping_violations;
        } else {
            violations.clear();
            violations.extend(mapping_violations);
        }
        let delete = is_delete(&outcome.record);
        if delete {
            // A withdrawal only carries its business key: other fields may be absent.
            violations.retain(|v| DELETE_KEY_POINTERS.contains(&v.pointer.as_str()));
        } else if outcome.record.get("item_name").is_some() {
            // A system that names the item instead of coding it: the catalogue gives the code.
            let year = action_year(&outcome.record);
            let mut found =
                crate::catalogue::resolve_item_name(&mut outcome.record, self.rules.catalogue.as_ref(), year);
            // When the mapping declares the code `supplement = true`, a name the catalogue cannot
            // place leaves the code awaiting supplement: the look-up's message says why.
            if let Some(v) = found.as_mut() {
                if mapping.supplements().iter().any(|f| f.pointer == v.pointer) {
                    v.severity = crate::Severity::Warning;
                }
            }
            violations.extend(found);
        }
        let awaiting = if delete || mapping.supplements().is_empty() {
            Vec::new()
        } else {
            let supplied = self
                .rules
                .supplied
                .as_deref()
                .filter(|s| !s.is_empty())
                .and_then(|s| outcome.key_text().and_then(|key| s.get(&key)));
            supplement::mark(
                &mut outcome.record,
                mapping.supplements(),
                supplied.as_ref(),
                &[],
                &outcome.violations,
            )
        };
        let violations = &mut outcome.violations;
        let mapped = violations.len();
        for v in self.validate_as(&outcome.record, delete) {
            // A field the mapping already reported (e.g. an unreadable date left out) is not
            // reported again as "missing".
            if v.rule == "schema.required" && violations[..mapped].iter().any(|m| m.pointer == v.pointer) {
                continue;
            }
            violations.push(v);
        }
        supplement::soften(violations, mapped, &awaiting, &self.schemas);
    }

    /// Validate a record a department completed by hand (`fields`: pointer → value, set into a
    /// copy of the case's current record): the declared supplement fields still missing stay
    /// awaiting, the given ones are listed as supplied. Answers the completed record and its
    /// violations (errors mean it cannot be accepted).
    pub fn complete_supplement(
        &self,
        current: &Value,
        supplements: &[SupplementField],
        fields: &[(String, Value)],
    ) -> Outcome {
        let mut record = current.clone();
        let mut already = supplement::listed(current, "supplied");
        for (pointer, value) in fields {
            supplement::set_pointer(&mut record, pointer, value.clone());
            if !already.contains(pointer) {
                already.push(pointer.clone());
            }
        }
        let awaiting = supplement::mark(&mut record, supplements, None, &already, &[]);
        let mut violations = self.validate_as(&record, false);
        supplement::soften(&mut violations, 0, &awaiting, &self.schemas);
        Outcome { record, violations }
    }
}

/// The year of a record's first action (as its case is numbered), else this year in China.
fn action_year(record: &Value) -> i32 {
    let case_type = record
        .get("case_type")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<CaseType>().ok());
    case_type
        .map(year_fields)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| record.pointer(p).and_then(Value::as_str))
        .find_map(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .map(|d| d.year())
        .unwrap_or_else(|| today_in_china().year())
}

/// True for a delete (withdrawal): `"operation": "delete"`.
fn is_delete(record: &Value) -> bool {
    record.get("operation").and_then(Value::as_str) == Some("delete")
}

/// The fields a delete (withdrawal) record must carry: its business key and operation.
const DELETE_KEY_POINTERS: &[&str] = &["/case_type", "/agency/credit_code", "/case_number", "/operation"];

fn delete_key_violations(record: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    match record
        .get("case_type")
        .and_then(Value::as_str)
        .map(str::parse::<CaseType>)
    {
        Some(Ok(_)) => {}
        _ => out.push(Violation::error(
            "/case_type",
            "schema.case_type",
            record.get("case_type").map(crate::schema::value_text),
            "删除记录缺少有效的案件类型",
            "a delete record needs a valid case_type",
        )),
    }
    match record.pointer("/agency/credit_code").and_then(Value::as_str) {
        Some(code) => match CreditCode::parse(code) {
            Ok(c) if c.as_str() == code => {}
            Ok(_) => out.push(Violation::error(
                "/agency/credit_code",
                "uscc.not_normalised",
                Some(code.to_string()),
                "执法部门统一社会信用代码未规范化",
                "agency credit code is not in normalised form",
            )),
            Err(e) => out.push(e.to_violation("/agency/credit_code", code)),
        },
        None => out.push(Violation::error(
            "/agency/credit_code",
            "schema.required",
            None,
            "删除记录缺少「执法部门统一社会信用代码」",
            "a delete record needs /agency/credit_code",
        )),
    }
    let has_case_number = record
        .get("case_number")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.trim().is_empty());
    if !has_case_number {
        out.push(Violation::error(
            "/case_number",
            "schema.required",
            None,
            "删除记录缺少「部门案件编号」",
            "a delete record needs /case_number",
        ));
    }
    out
}
